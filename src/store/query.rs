//! Building filtered, paged SQL once for both databases: a `WHERE` clause
//! whose `$n` placeholders are numbered as conditions are added, and the
//! count and page reads every paged list makes with it.

use crate::catalog::fields::Paging;
use crate::time::{self, Timestamp};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyPool, Row};

/// A bound value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bind {
    Text(String),
    Int(i64),
}

/// Conditions joined with `AND`, and their binds in placeholder order.
#[derive(Clone, Debug, Default)]
pub struct Where {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Where {
    pub fn new() -> Where {
        Where::default()
    }

    /// Adds a placeholder for `bind` and returns its text (`$3`), for clauses
    /// that use one value more than once or in an expression.
    pub fn arg(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    /// Adds a condition built with [`Where::arg`] (or with no binds).
    pub fn raw(&mut self, clause: impl Into<String>) {
        self.clauses.push(clause.into());
    }

    /// `column = value`.
    pub fn eq(&mut self, column: &str, value: Bind) {
        let p = self.arg(value);
        self.clauses.push(format!("{column} = {p}"));
    }

    /// `column <op> value`, e.g. `>=` for a lower time bound.
    pub fn cmp(&mut self, column: &str, op: &str, value: Bind) {
        let p = self.arg(value);
        self.clauses.push(format!("{column} {op} {p}"));
    }

    /// `column IN (values)`; an empty set matches nothing.
    pub fn is_in(&mut self, column: &str, values: impl IntoIterator<Item = Bind>) {
        let ps: Vec<String> = values.into_iter().map(|v| self.arg(v)).collect();
        if ps.is_empty() {
            self.clauses.push("1 = 0".to_owned());
        } else {
            self.clauses
                .push(format!("{column} IN ({})", ps.join(", ")));
        }
    }

    /// `begin <= column <= end` on a text time column, for whichever bounds are given.
    pub fn between(&mut self, column: &str, begin: Option<Timestamp>, end: Option<Timestamp>) {
        if let Some(b) = begin {
            self.cmp(column, ">=", Bind::Text(time::format(b)));
        }
        if let Some(e) = end {
            self.cmp(column, "<=", Bind::Text(time::format(e)));
        }
    }

    /// A case-insensitive substring match of `column` against `needle`, with
    /// the LIKE wildcards of the needle taken literally.
    pub fn contains(&mut self, column: &str, needle: &str) {
        let escaped = needle
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let p = self.arg(Bind::Text(format!("%{escaped}%")));
        self.raw(format!("LOWER({column}) LIKE {p} ESCAPE '\\'"));
    }

    /// ` WHERE a AND b`, or nothing.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// ` LIMIT $n OFFSET $m` for `paging`, with its binds added.
    fn page(&mut self, paging: Paging) -> String {
        let limit = self.arg(Bind::Int(paging.limit));
        let offset = self.arg(Bind::Int(paging.offset));
        format!(" LIMIT {limit} OFFSET {offset}")
    }

    pub fn binds(&self) -> &[Bind] {
        &self.binds
    }

    /// How many rows `from` (`FROM ...` with its joins) holds under these
    /// conditions: a paged list's total, across pages.
    pub async fn count(&self, pool: &AnyPool, from: &str) -> Result<i64, sqlx::Error> {
        let sql = format!("SELECT COUNT(*) AS n {from}{}", self.sql());
        let row = bind_all(sqlx::query(&sql), &self.binds)
            .fetch_one(pool)
            .await?;
        row.try_get("n")
    }

    /// The rows of `select` (`SELECT ... FROM ...`) under these conditions in
    /// `order_by` (`ORDER BY ...`) order: one page, or all of them. Takes
    /// `self` because the page's binds join the conditions': [`Where::count`]
    /// comes first.
    pub async fn fetch(
        mut self,
        pool: &AnyPool,
        select: &str,
        order_by: &str,
        paging: Option<Paging>,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let filter = self.sql();
        let page = paging.map(|p| self.page(p)).unwrap_or_default();
        let sql = format!("{select}{filter} {order_by}{page}");
        bind_all(sqlx::query(&sql), &self.binds)
            .fetch_all(pool)
            .await
    }
}

/// Binds `binds` to `query`, in order.
pub fn bind_all<'q>(
    mut query: Query<'q, Any, AnyArguments<'q>>,
    binds: &[Bind],
) -> Query<'q, Any, AnyArguments<'q>> {
    for b in binds {
        query = match b {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_in_order() {
        let mut w = Where::new();
        w.eq("o.status", Bind::Int(5));
        w.is_in("o.id", [Bind::Text("a".into()), Bind::Text("b".into())]);
        let page = w.page(Paging {
            offset: 0,
            limit: 10,
        });
        assert_eq!(w.sql(), " WHERE o.status = $1 AND o.id IN ($2, $3)");
        assert_eq!(page, " LIMIT $4 OFFSET $5");
        assert_eq!(w.binds().len(), 5);
        let mut empty = Where::new();
        empty.is_in("x", []);
        assert_eq!(empty.sql(), " WHERE 1 = 0");
    }

    #[test]
    fn time_bounds_are_inclusive_and_optional() {
        let t = time::parse("2026-11-21T12:00:00Z").unwrap();
        let mut both = Where::new();
        both.between("c.associated_on", Some(t), Some(t));
        assert_eq!(
            both.sql(),
            " WHERE c.associated_on >= $1 AND c.associated_on <= $2"
        );
        let mut neither = Where::new();
        neither.between("r.expire_at", None, None);
        assert_eq!(neither.sql(), "");
    }

    #[test]
    fn substring_filters_take_wildcards_literally() {
        let mut f = Where::new();
        f.contains("c.name", "50%_A\\");
        assert_eq!(f.sql(), " WHERE LOWER(c.name) LIKE $1 ESCAPE '\\'");
        assert_eq!(f.binds(), &[Bind::Text("%50\\%\\_a\\\\%".into())]);
    }
}
