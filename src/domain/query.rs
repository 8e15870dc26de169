//! Building filtered, paged SQL once for both databases: a `WHERE` clause whose
//! `$n` placeholders are numbered as conditions are added, the count and page
//! reads every paged list makes with it, and column readers for the store's
//! conventions (integer cents, RFC 3339 text times).

use super::extract::Paging;
use super::scope::PartnerScope;
use crate::api_error::ApiError;
use crate::money::from_cents;
use crate::time::{self, Timestamp};
use rust_decimal::Decimal;
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

    /// The number the next placeholder gets.
    pub fn next(&self) -> usize {
        self.binds.len() + 1
    }

    /// Adds a placeholder for `bind` and returns its text (`$3`), for clauses
    /// that use one value more than once or in an expression.
    pub fn arg(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    /// Adds a literal condition (no binds).
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

    /// The caller's reach over the customers table aliased `alias`.
    pub fn scope(&mut self, scope: &PartnerScope, alias: &str) {
        let (sql, binds) = scope.condition(alias, self.next());
        self.binds.extend(binds.into_iter().map(Bind::Text));
        self.clauses.push(sql);
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
    pub async fn count(&self, pool: &AnyPool, from: &str) -> Result<i64, ApiError> {
        let sql = format!("SELECT COUNT(*) AS n {from}{}", self.sql());
        let row = bind_all(sqlx::query(&sql), &self.binds)
            .fetch_one(pool)
            .await?;
        int(&row, "n")
    }

    /// One page of `select` (`SELECT ... FROM ...`) under these conditions,
    /// in `order_by` (`ORDER BY ...`) order. Takes `self` because the page's
    /// binds join the conditions': [`Where::count`] comes first.
    pub async fn fetch_page(
        mut self,
        pool: &AnyPool,
        select: &str,
        order_by: &str,
        paging: Paging,
    ) -> Result<Vec<AnyRow>, ApiError> {
        let filter = self.sql();
        let page = self.page(paging);
        let sql = format!("{select}{filter} {order_by}{page}");
        Ok(bind_all(sqlx::query(&sql), &self.binds)
            .fetch_all(pool)
            .await?)
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

/// Logs a database error and answers 500 without its detail.
pub fn db_error(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "domain store database error");
    ApiError::internal()
}

fn col<T>(row: &AnyRow, name: &str) -> Result<T, ApiError>
where
    T: for<'r> sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get::<T, _>(name).map_err(db_error)
}

pub fn text(row: &AnyRow, name: &str) -> Result<String, ApiError> {
    col(row, name)
}

pub fn opt_text(row: &AnyRow, name: &str) -> Result<Option<String>, ApiError> {
    col(row, name)
}

pub fn int(row: &AnyRow, name: &str) -> Result<i64, ApiError> {
    col(row, name)
}

pub fn opt_int(row: &AnyRow, name: &str) -> Result<Option<i64>, ApiError> {
    col(row, name)
}

/// A cents column as money.
pub fn money(row: &AnyRow, name: &str) -> Result<Decimal, ApiError> {
    int(row, name).map(from_cents)
}

pub fn opt_money(row: &AnyRow, name: &str) -> Result<Option<Decimal>, ApiError> {
    opt_int(row, name).map(|c| c.map(from_cents))
}

pub fn ts(row: &AnyRow, name: &str) -> Result<Timestamp, ApiError> {
    time::parse(&text(row, name)?).map_err(db_error)
}

pub fn opt_ts(row: &AnyRow, name: &str) -> Result<Option<Timestamp>, ApiError> {
    opt_text(row, name)?
        .map(|s| time::parse(&s).map_err(db_error))
        .transpose()
}

/// A stored enum value.
pub fn parse<T: std::str::FromStr<Err = crate::model::UnknownValue>>(
    row: &AnyRow,
    name: &str,
) -> Result<T, ApiError> {
    text(row, name)?.parse::<T>().map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_placeholders_in_order() {
        let mut w = Where::new();
        w.eq("o.status", Bind::Int(5));
        w.is_in("o.id", [Bind::Text("a".into()), Bind::Text("b".into())]);
        w.scope(
            &PartnerScope {
                partner: "dist".into(),
                account_manager: Some("am".into()),
            },
            "c",
        );
        let page = w.page(Paging {
            offset: 0,
            limit: 10,
        });
        let sql = w.sql();
        assert!(
            sql.starts_with(" WHERE o.status = $1 AND o.id IN ($2, $3) AND (c.partner_id = $4"),
            "{sql}"
        );
        assert!(sql.contains("c.account_manager_id = $5"), "{sql}");
        assert_eq!(page, " LIMIT $6 OFFSET $7");
        assert_eq!(w.binds().len(), 7);
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
        assert_eq!(
            both.binds(),
            &[
                Bind::Text("2026-11-21T12:00:00Z".into()),
                Bind::Text("2026-11-21T12:00:00Z".into())
            ]
        );
        let mut end_only = Where::new();
        end_only.between("r.expire_at", None, Some(t));
        assert_eq!(end_only.sql(), " WHERE r.expire_at <= $1");
        let mut neither = Where::new();
        neither.between("r.expire_at", None, None);
        assert_eq!(neither.sql(), "");
    }
}
