//! [`Filter`] → an SQL condition over the rows of a list's item table, the
//! same text on SQLite and PostgreSQL.
//!
//! It reads the one attribute table ([`super::attributes`]) that the entity
//! loader reads entities through: which column an attribute is, when an
//! optional one exists (`has`), and which parents `in` follows (a customer
//! is in its partner, a reseller in its distributor, an order in its
//! customer, an export in whoever asked for it). The list tests compare
//! every list with single decisions.
//!
//! Every condition is two-valued: an optional column is tested only behind
//! its presence guard, so `NOT` never meets an SQL `NULL`. Hierarchy tests
//! are uncorrelated `IN (SELECT ...)` sets, which each database evaluates
//! once per query, not once per row.

use super::attributes::{attr, fill, parents, table, Attr, Parent};
use super::query::{Bind, Where};
use crate::filter::{CmpOp, Filter, Scalar};
use crate::refs::{EntityRef, EntityType};

/// A filter that has no SQL form here (the gateway then decides each
/// candidate instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no SQL form for {0}")]
pub struct SqlError(pub String);

/// How deep `in` follows parents: item → customer → partner → distributor
/// is the longest chain the model has (an export's owner adds one).
const MAX_DEPTH: usize = 5;

/// The condition `filter` puts on `alias`, a row of `item`'s table, with
/// its binds added to `w`.
pub fn condition(
    filter: &Filter,
    item: EntityType,
    alias: &str,
    w: &mut Where,
) -> Result<String, SqlError> {
    Compiler { w, next: 0 }.filter(filter, item, alias)
}

/// Whether `filter` has an SQL form for items of type `item` (checked by the
/// gateway before it hands a filter to the store).
pub fn check(filter: &Filter, item: EntityType) -> Result<(), SqlError> {
    condition(filter, item, "t", &mut Where::new()).map(drop)
}

/// The condition of `filter` over rows `t` of `item`'s table, with its
/// values written in (for people reading an explanation; never run).
pub fn readable(filter: &Filter, item: EntityType) -> Result<String, SqlError> {
    let mut w = Where::new();
    let mut sql = condition(filter, item, "t", &mut w)?;
    // From the highest placeholder down, so that `$1` does not eat `$12`.
    for (i, bind) in w.binds().iter().enumerate().rev() {
        let value = match bind {
            Bind::Text(s) => format!("'{}'", s.replace('\'', "''")),
            Bind::Int(n) => n.to_string(),
        };
        sql = sql.replace(&format!("${}", i + 1), &value);
    }
    Ok(sql)
}

/// The rows `t` of `item`'s table that `filter` matches: the conditions,
/// and the `FROM` clause.
pub fn matching(filter: &Filter, item: EntityType) -> Result<(Where, String), SqlError> {
    let mut w = Where::new();
    let cond = condition(filter, item, "t", &mut w)?;
    w.raw(cond);
    Ok((w, format!("FROM {} t", table(item))))
}

/// The ids of the rows [`matching`] gives, in id order: one page, or all.
pub async fn ids(
    pool: &sqlx::AnyPool,
    (w, from): (Where, String),
    paging: Option<crate::catalog::fields::Paging>,
) -> Result<Vec<String>, sqlx::Error> {
    use sqlx::Row;
    let select = format!("SELECT t.id AS id {from}");
    w.fetch(pool, &select, "ORDER BY t.id", paging)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("id"))
        .collect()
}

/// The SQL text of a comparison.
fn sql_operator(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

/// The parents to follow from a row of `t` reached through `via` (a
/// distributor, reached from its reseller, has none).
fn parents_via(t: EntityType, via: Option<EntityType>) -> &'static [Parent] {
    if t == EntityType::Partner && via == Some(EntityType::Partner) {
        &[]
    } else {
        parents(t)
    }
}

/// Whether an entity of type `from` (reached through `via`) can be `in` one
/// of type `to`.
fn reaches(from: EntityType, via: Option<EntityType>, to: EntityType, depth: usize) -> bool {
    from == to
        || (depth < MAX_DEPTH
            && parents_via(from, via)
                .iter()
                .any(|p| reaches(p.ty, Some(from), to, depth + 1)))
}

/// `guard AND cond`, with `guard` left out when there is none.
fn guarded(guard: Option<&str>, alias: &str, cond: String) -> String {
    match guard {
        Some(g) => format!("({} AND {cond})", fill(g, alias)),
        None => cond,
    }
}

const TRUE: &str = "1 = 1";
const FALSE: &str = "1 = 0";

struct Compiler<'w> {
    w: &'w mut Where,
    next: usize,
}

impl Compiler<'_> {
    fn alias(&mut self) -> String {
        self.next += 1;
        format!("pf{}", self.next)
    }

    fn filter(&mut self, f: &Filter, ty: EntityType, a: &str) -> Result<String, SqlError> {
        Ok(match f {
            Filter::True => TRUE.to_owned(),
            Filter::False => FALSE.to_owned(),
            Filter::And { all } => self.join(all, " AND ", ty, a)?,
            Filter::Or { any } => self.join(any, " OR ", ty, a)?,
            Filter::Not { not } => format!("NOT ({})", self.filter(not, ty, a)?),
            Filter::In { path, entity } => self.at(ty, a, path, &Test::In(entity))?,
            Filter::Eq { path, value } => self.at(ty, a, path, &Test::Eq(value))?,
            Filter::Has { path } => self.at(ty, a, path, &Test::Has)?,
            Filter::Cmp { path, cmp, value } => self.at(ty, a, path, &Test::Cmp(*cmp, value))?,
            Filter::Contains { path, value } => self.at(ty, a, path, &Test::Contains(value))?,
        })
    }

    fn join(
        &mut self,
        items: &[Filter],
        op: &str,
        ty: EntityType,
        a: &str,
    ) -> Result<String, SqlError> {
        let parts = items
            .iter()
            .map(|f| self.filter(f, ty, a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!("({})", parts.join(op)))
    }

    /// `test` on the attribute at `path` of the row `a` of type `ty`.
    fn at(
        &mut self,
        ty: EntityType,
        a: &str,
        path: &[String],
        test: &Test,
    ) -> Result<String, SqlError> {
        let Some((name, rest)) = path.split_first() else {
            // The item itself.
            return match test {
                Test::In(e) => Ok(self.in_row(ty, None, a, e, 0)),
                Test::Eq(Scalar::Entity(e)) if e.kind() == ty => {
                    let p = self.w.arg(Bind::Text(e.id().to_owned()));
                    Ok(format!("{a}.id = {p}"))
                }
                Test::Eq(Scalar::Entity(_)) => Ok(FALSE.to_owned()),
                _ => Err(SqlError(format!("{test:?} on a {ty} itself"))),
            };
        };
        let attribute = match attr(ty, name) {
            Some(Attr::Derived) | None => return Err(SqlError(format!("{ty}.{name}"))),
            Some(a) => a,
        };
        match (attribute, rest) {
            (
                Attr::Entity {
                    ty: target,
                    col,
                    present,
                },
                [],
            ) => {
                let cond = match test {
                    Test::Has => return Ok(present.map(|p| fill(p, a)).unwrap_or(TRUE.into())),
                    Test::Eq(Scalar::Entity(e)) if e.kind() == target => {
                        let p = self.w.arg(Bind::Text(e.id().to_owned()));
                        format!("{a}.{col} = {p}")
                    }
                    Test::Eq(Scalar::Entity(_)) => return Ok(FALSE.into()),
                    Test::In(e) => self.in_id(target, Some(ty), &format!("{a}.{col}"), e, 0),
                    _ => return Err(SqlError(format!("{test:?} on {ty}.{name}"))),
                };
                Ok(guarded(present, a, cond))
            }
            (
                Attr::Entity {
                    ty: target,
                    col,
                    present,
                },
                rest,
            ) => {
                // An attribute of the referenced entity: the set of its rows
                // that pass, uncorrelated.
                let x = self.alias();
                let inner = self.at(target, &x, rest, test)?;
                let cond = format!(
                    "{a}.{col} IN (SELECT {x}.id FROM {} {x} WHERE {inner})",
                    table(target)
                );
                Ok(guarded(present, a, cond))
            }
            (Attr::Record(_), []) => match test {
                Test::Has => Ok(TRUE.into()),
                _ => Err(SqlError(format!("{test:?} on {ty}.{name}"))),
            },
            (Attr::Record(fields), [field]) => {
                let (_, g) = fields
                    .iter()
                    .find(|(n, _)| n == field)
                    .ok_or_else(|| SqlError(format!("{name}.{field}")))?;
                self.leaf(*g, a, test, &format!("{ty}.{name}.{field}"))
            }
            (other, []) => self.leaf(other, a, test, &format!("{ty}.{name}")),
            (_, _) => Err(SqlError(format!("{ty}.{}", path.join(".")))),
        }
    }

    /// `test` on a primitive attribute of row `a`.
    fn leaf(
        &mut self,
        attribute: Attr,
        a: &str,
        test: &Test,
        what: &str,
    ) -> Result<String, SqlError> {
        let unsupported = || SqlError(format!("{test:?} on {what}"));
        match (attribute, test) {
            (Attr::Text { present, .. }, Test::Has) => {
                Ok(present.map(|p| fill(p, a)).unwrap_or(TRUE.into()))
            }
            (Attr::Decimal { present, .. }, Test::Has) => Ok(fill(present, a)),
            (Attr::Flag(_) | Attr::TextSet(_) | Attr::Datetime(_), Test::Has) => Ok(TRUE.into()),
            (Attr::Text { col, present }, Test::Eq(Scalar::String(s))) => {
                let p = self.w.arg(Bind::Text(s.clone()));
                Ok(guarded(present, a, format!("{a}.{col} = {p}")))
            }
            (Attr::Flag(pred), Test::Eq(Scalar::Bool(b))) => {
                let pred = format!("({})", fill(pred, a));
                Ok(if *b { pred } else { format!("NOT {pred}") })
            }
            (Attr::TextSet(col), Test::Contains(value)) => {
                // A comma would span two members. `replace` finds the member
                // exactly, in both databases: SQLite's LIKE ignores case
                // (`Admin` would match `admin`, which Cedar does not) and
                // treats `_` (as in `account_manager`) as a wildcard.
                if value.is_empty() || value.contains(',') {
                    return Err(unsupported());
                }
                let p = self.w.arg(Bind::Text(format!(",{value},")));
                let members = format!("(',' || {a}.{col} || ',')");
                Ok(format!("replace({members}, {p}, '') <> {members}"))
            }
            (Attr::Datetime(col), Test::Cmp(op, Scalar::Datetime(text))) => {
                let (floor, ceil) = whole_seconds(text).ok_or_else(unsupported)?;
                // Stored instants are whole seconds: compare with the bound
                // that gives the same answer for every whole second.
                let bound = match op {
                    CmpOp::Lt | CmpOp::Ge => ceil,
                    CmpOp::Le | CmpOp::Gt => floor,
                };
                let p = self.w.arg(Bind::Text(bound));
                Ok(format!("{a}.{col} {} {p}", sql_operator(*op)))
            }
            (Attr::Datetime(col), Test::Eq(Scalar::Datetime(text))) => {
                let (floor, ceil) = whole_seconds(text).ok_or_else(unsupported)?;
                if floor != ceil {
                    return Ok(FALSE.into());
                }
                let p = self.w.arg(Bind::Text(floor));
                Ok(format!("{a}.{col} = {p}"))
            }
            // Values of another type never equal the attribute (validated
            // policies do not write these; kept exact anyway).
            (Attr::Text { .. }, Test::Eq(_)) | (Attr::Flag(_), Test::Eq(_)) => Ok(FALSE.into()),
            _ => Err(unsupported()),
        }
    }

    /// Row `a` of type `ty` (reached through `via`) is `target` or a
    /// descendant of it.
    fn in_row(
        &mut self,
        ty: EntityType,
        via: Option<EntityType>,
        a: &str,
        target: &EntityRef,
        depth: usize,
    ) -> String {
        let mut any = Vec::new();
        if ty == target.kind() {
            let p = self.w.arg(Bind::Text(target.id().to_owned()));
            any.push(format!("{a}.id = {p}"));
        }
        for p in parents_via(ty, via) {
            if depth < MAX_DEPTH && reaches(p.ty, Some(ty), target.kind(), depth + 1) {
                let cond = self.in_id(p.ty, Some(ty), &format!("{a}.{}", p.col), target, depth + 1);
                any.push(guarded(p.when, a, cond));
            }
        }
        or(any)
    }

    /// The entity of type `ty` (reached through `via`) whose id is `id` (an
    /// SQL expression, never NULL here) is `target` or a descendant of it.
    fn in_id(
        &mut self,
        ty: EntityType,
        via: Option<EntityType>,
        id: &str,
        target: &EntityRef,
        depth: usize,
    ) -> String {
        let mut any = Vec::new();
        if ty == target.kind() {
            let p = self.w.arg(Bind::Text(target.id().to_owned()));
            any.push(format!("{id} = {p}"));
        }
        let above: Vec<_> = parents_via(ty, via)
            .iter()
            .filter(|p| depth < MAX_DEPTH && reaches(p.ty, Some(ty), target.kind(), depth + 1))
            .collect();
        if !above.is_empty() {
            let x = self.alias();
            let mut parts = Vec::new();
            for p in above {
                let cond = self.in_id(p.ty, Some(ty), &format!("{x}.{}", p.col), target, depth + 1);
                parts.push(guarded(p.when, &x, cond));
            }
            any.push(format!(
                "{id} IN (SELECT {x}.id FROM {} {x} WHERE {})",
                table(ty),
                or(parts)
            ));
        }
        or(any)
    }
}

fn or(parts: Vec<String>) -> String {
    match parts.len() {
        0 => FALSE.to_owned(),
        1 => parts.into_iter().next().expect("one part"),
        _ => format!("({})", parts.join(" OR ")),
    }
}

/// The stored form of the whole seconds at or below, and at or above, a
/// Cedar datetime literal.
fn whole_seconds(text: &str) -> Option<(String, String)> {
    let t = chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc().fixed_offset())
        })?
        .with_timezone(&chrono::Utc);
    let floor = chrono::DateTime::from_timestamp(t.timestamp(), 0)?;
    let ceil = if t.timestamp_subsec_nanos() == 0 {
        floor
    } else {
        floor + chrono::Duration::seconds(1)
    };
    Some((crate::time::format(floor), crate::time::format(ceil)))
}

/// What a leaf filter tests.
#[derive(Debug)]
enum Test<'f> {
    In(&'f EntityRef),
    Eq(&'f Scalar),
    Has,
    Cmp(CmpOp, &'f Scalar),
    Contains(&'f str),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(f: &Filter, ty: EntityType) -> (String, Vec<Bind>) {
        let mut w = Where::new();
        let s = condition(f, ty, "c", &mut w).unwrap();
        (s, w.binds().to_vec())
    }

    #[test]
    fn hierarchy_is_an_uncorrelated_set() {
        let f = Filter::In {
            path: vec![],
            entity: EntityRef::Partner("dist-a".into()),
        };
        let (s, binds) = sql(&f, EntityType::Customer);
        assert!(
            s.starts_with("(c.partner_id = $1 OR c.partner_id IN (SELECT pf1.id FROM partners pf1"),
            "{s}"
        );
        assert!(binds.iter().all(|b| *b == Bind::Text("dist-a".into())));
        // An order is in a partner through its customer.
        let (s, _) = sql(&f, EntityType::Order);
        assert!(
            s.starts_with("c.customer_id IN (SELECT pf1.id FROM customers pf1"),
            "{s}"
        );
        // A session is in nothing.
        assert_eq!(sql(&f, EntityType::Session).0, FALSE);
    }

    #[test]
    fn optional_attributes_are_guarded() {
        let f = Filter::not(Filter::Eq {
            path: vec!["account_manager".into()],
            value: Scalar::Entity(EntityRef::Operator("am".into())),
        });
        let (s, _) = sql(&f, EntityType::Customer);
        assert_eq!(
            s,
            "NOT ((c.account_manager_id IS NOT NULL AND c.account_manager_id = $1))"
        );
        let f = Filter::Eq {
            path: vec!["customer".into(), "frozen".into()],
            value: Scalar::Bool(true),
        };
        let (s, _) = sql(&f, EntityType::Order);
        assert_eq!(
            s,
            "c.customer_id IN (SELECT pf1.id FROM customers pf1 WHERE (pf1.frozen = TRUE))"
        );
    }

    #[test]
    fn unmapped_forms_are_refused() {
        let f = Filter::Has {
            path: vec!["authorization".into()],
        };
        assert!(check(&f, EntityType::Customer).is_err());
        let f = Filter::Cmp {
            path: vec!["expires_at".into()],
            cmp: CmpOp::Lt,
            value: Scalar::Datetime("2026-11-21T12:00:00.5Z".into()),
        };
        let (s, binds) = sql(&f, EntityType::Session);
        assert_eq!(s, "c.expires_at < $1");
        assert_eq!(binds, vec![Bind::Text("2026-11-21T12:00:01Z".into())]);
    }
}
