//! The one table of entity attributes and where each is stored: which
//! column holds it, when an optional one exists (`has`), and which parents
//! `in` follows. The entity loader reads every stored entity through it
//! ([`Store::entity_values`]) and the list filter's SQL
//! ([`super::filter_sql`]) tests the same columns, so a filter means in SQL
//! what a policy means in Cedar over the loaded entities.
//!
//! Conditions are SQL over the entity's row, with `{a}` standing for its
//! alias: the loader selects them, the filter writes them into its `WHERE`.
//! The schema (`schema/partner.cedarschema`) declares the attributes' types;
//! the loader checks every entity it builds against it.

use super::row::get;
use super::{Store, StoreResult};
use crate::money::from_cents;
use crate::refs::{EntityRef, EntityType};
use crate::time::{self, Timestamp};
use rust_decimal::Decimal;
use sqlx::any::AnyRow;
use EntityType as T;

/// How an attribute is stored.
#[derive(Clone, Copy, Debug)]
pub enum Attr {
    /// A reference to an entity of type `ty`, whose id is in `col`; present
    /// when `present` holds (`None`: always).
    Entity {
        ty: EntityType,
        col: &'static str,
        present: Option<&'static str>,
    },
    /// A string in `col`, present when `present` holds (`None`: always).
    Text {
        col: &'static str,
        present: Option<&'static str>,
    },
    /// A Bool: the predicate that is its value.
    Flag(&'static str),
    /// A set of strings, stored comma-separated.
    TextSet(&'static str),
    /// An instant, stored as RFC 3339 text.
    Datetime(&'static str),
    /// A decimal stored in cents, present when `present` holds (the filter
    /// can only test that it exists).
    Decimal {
        col: &'static str,
        present: &'static str,
    },
    /// A record of attributes (a partner's grants).
    Record(&'static [(&'static str, Attr)]),
    /// Not in the entity's row (a customer's live authorization is chosen
    /// among several rows): the loader works it out, and a filter on it is
    /// decided item by item.
    Derived,
}

/// A parent `in` follows: its type, the column holding its id, and when the
/// link exists (`None`: always).
#[derive(Clone, Copy, Debug)]
pub struct Parent {
    pub ty: EntityType,
    pub col: &'static str,
    pub when: Option<&'static str>,
}

/// A partner's grants: only a reseller holds any (anyone else has all-false
/// grants and no quotas).
const GRANTS: &[(&str, Attr)] = &[
    (
        "budget",
        Attr::Flag("{a}.kind = 'reseller' AND {a}.grant_budget = TRUE"),
    ),
    (
        "freeze",
        Attr::Flag("{a}.kind = 'reseller' AND {a}.grant_freeze = TRUE"),
    ),
    (
        "on_behalf",
        Attr::Flag("{a}.kind = 'reseller' AND {a}.grant_on_behalf = TRUE"),
    ),
    (
        "monthly_quota",
        Attr::Decimal {
            col: "monthly_quota_cents",
            present: "{a}.kind = 'reseller' AND {a}.monthly_quota_cents IS NOT NULL",
        },
    ),
    (
        "one_time_quota",
        Attr::Decimal {
            col: "one_time_quota_cents",
            present: "{a}.kind = 'reseller' AND {a}.one_time_quota_cents IS NOT NULL",
        },
    ),
];

const fn entity(ty: EntityType, col: &'static str) -> Attr {
    Attr::Entity {
        ty,
        col,
        present: None,
    }
}

const fn text(col: &'static str) -> Attr {
    Attr::Text { col, present: None }
}

const PARTNER: &[(&str, Attr)] = &[
    ("kind", text("kind")),
    (
        "distributor",
        Attr::Entity {
            ty: T::Partner,
            col: "distributor_id",
            present: Some("{a}.kind = 'reseller' AND {a}.distributor_id IS NOT NULL"),
        },
    ),
    ("grants", Attr::Record(GRANTS)),
];

const OPERATOR: &[(&str, Attr)] = &[
    ("partner", entity(T::Partner, "partner_id")),
    ("roles", Attr::TextSet("roles")),
    ("status", text("status")),
];

const CUSTOMER: &[(&str, Attr)] = &[
    ("partner", entity(T::Partner, "partner_id")),
    ("association", text("association")),
    (
        "account_manager",
        Attr::Entity {
            ty: T::Operator,
            col: "account_manager_id",
            present: Some("{a}.account_manager_id IS NOT NULL"),
        },
    ),
    ("frozen", Attr::Flag("{a}.frozen = TRUE")),
    (
        "freeze_type",
        Attr::Text {
            col: "freeze_type",
            present: Some("{a}.frozen = TRUE AND {a}.freeze_type IS NOT NULL"),
        },
    ),
    ("authorization", Attr::Derived),
];

const AUTHORIZATION: &[(&str, Attr)] = &[
    ("customer", entity(T::Customer, "customer_id")),
    ("partner", entity(T::Partner, "partner_id")),
    ("scopes", Attr::TextSet("scopes")),
    ("status", text("status")),
    ("expires_at", Attr::Datetime("expires_at")),
];

const ORDER: &[(&str, Attr)] = &[("customer", entity(T::Customer, "customer_id"))];

const RESOURCE: &[(&str, Attr)] = &[
    ("customer", entity(T::Customer, "customer_id")),
    ("charging", text("charging")),
];

const SESSION: &[(&str, Attr)] = &[
    ("customer", entity(T::Customer, "customer_id")),
    ("operator", entity(T::Operator, "operator_id")),
    ("scopes", Attr::TextSet("scopes")),
    ("expires_at", Attr::Datetime("expires_at")),
    ("ended", Attr::Flag("{a}.ended_at IS NOT NULL")),
    (
        "authorization",
        Attr::Entity {
            ty: T::Authorization,
            col: "authorization_id",
            present: Some("{a}.authorization_id IS NOT NULL"),
        },
    ),
];

const EXPORT: &[(&str, Attr)] = &[];

/// The attributes of an entity type, as the schema names them.
pub fn attributes(t: EntityType) -> &'static [(&'static str, Attr)] {
    match t {
        T::Partner => PARTNER,
        T::Operator => OPERATOR,
        T::Customer => CUSTOMER,
        T::Authorization => AUTHORIZATION,
        T::Order => ORDER,
        T::Resource => RESOURCE,
        T::Session => SESSION,
        T::Export => EXPORT,
    }
}

/// Attribute `name` of type `t`.
pub fn attr(t: EntityType, name: &str) -> Option<Attr> {
    attributes(t)
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, a)| *a)
}

/// The parents `in` follows from a row of `t`. A partner has one parent at
/// most, its distributor, and a distributor has none: the importer refuses
/// any other shape and no route changes a partner's distributor.
pub fn parents(t: EntityType) -> &'static [Parent] {
    const fn parent(ty: EntityType, col: &'static str, when: Option<&'static str>) -> Parent {
        Parent { ty, col, when }
    }
    const OF_DISTRIBUTOR: &[Parent] = &[parent(
        T::Partner,
        "distributor_id",
        Some("{a}.kind = 'reseller' AND {a}.distributor_id IS NOT NULL"),
    )];
    const OF_PARTNER: &[Parent] = &[parent(T::Partner, "partner_id", None)];
    const OF_CUSTOMER: &[Parent] = &[parent(T::Customer, "customer_id", None)];
    // An export is `in` whoever asked for it.
    const OF_OWNER: &[Parent] = &[
        parent(
            T::Operator,
            "principal_id",
            Some("{a}.principal_kind = 'operator'"),
        ),
        parent(
            T::Customer,
            "principal_id",
            Some("{a}.principal_kind = 'customer'"),
        ),
        parent(
            T::Session,
            "principal_id",
            Some("{a}.principal_kind = 'session'"),
        ),
    ];
    match t {
        T::Partner => OF_DISTRIBUTOR,
        T::Operator | T::Customer => OF_PARTNER,
        T::Authorization | T::Order | T::Resource => OF_CUSTOMER,
        // A session is `in` nothing: its links are attributes.
        T::Session => &[],
        T::Export => OF_OWNER,
    }
}

/// The table that holds entities of type `t`.
pub fn table(t: EntityType) -> &'static str {
    match t {
        EntityType::Partner => "partners",
        EntityType::Operator => "operators",
        EntityType::Customer => "customers",
        EntityType::Authorization => "customer_authorizations",
        EntityType::Order => "orders",
        EntityType::Resource => "resources",
        EntityType::Session => "partner_sessions",
        EntityType::Export => "export_tasks",
    }
}

/// `template` with `{a}` replaced by `alias`.
pub fn fill(template: &str, alias: &str) -> String {
    template.replace("{a}", alias)
}

/// A stored attribute's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Entity(EntityRef),
    String(String),
    Bool(bool),
    Strings(Vec<String>),
    Datetime(Timestamp),
    Decimal(Decimal),
    Record(Vec<(&'static str, Value)>),
}

/// An entity as stored: its attributes present (in the table's order, the
/// derived ones left out) and its parents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEntity {
    pub attrs: Vec<(&'static str, Value)>,
    pub parents: Vec<EntityRef>,
}

/// The `SELECT` that reads an entity of type `t` through the table: one
/// column per stored value (`v0`, `v1`, ...; NULL when absent), then one per
/// parent (`p0`, ...; NULL when the link does not exist).
fn select(t: EntityType) -> String {
    fn values(attrs: &[(&str, Attr)], out: &mut Vec<String>) {
        let when = |present: Option<&str>, col: &str| match present {
            Some(p) => format!("CASE WHEN {} THEN t.{col} END", fill(p, "t")),
            None => format!("t.{col}"),
        };
        for (_, a) in attrs {
            let expr = match a {
                Attr::Entity { col, present, .. } | Attr::Text { col, present } => {
                    when(*present, col)
                }
                Attr::Flag(pred) => {
                    format!(
                        "CAST(CASE WHEN {} THEN 1 ELSE 0 END AS BIGINT)",
                        fill(pred, "t")
                    )
                }
                Attr::TextSet(col) | Attr::Datetime(col) => format!("t.{col}"),
                Attr::Decimal { col, present } => when(Some(present), col),
                Attr::Record(fields) => {
                    values(fields, out);
                    continue;
                }
                Attr::Derived => continue,
            };
            out.push(expr);
        }
    }
    let mut columns = Vec::new();
    values(attributes(t), &mut columns);
    let mut select: Vec<String> = columns
        .into_iter()
        .enumerate()
        .map(|(i, e)| format!("{e} AS v{i}"))
        .collect();
    for (i, p) in parents(t).iter().enumerate() {
        let e = match p.when {
            Some(w) => format!("CASE WHEN {} THEN t.{} END", fill(w, "t"), p.col),
            None => format!("t.{}", p.col),
        };
        select.push(format!("{e} AS p{i}"));
    }
    if select.is_empty() {
        select.push("t.id".to_owned());
    }
    format!(
        "SELECT {} FROM {} t WHERE t.id = $1",
        select.join(", "),
        table(t)
    )
}

/// The values of `attrs` from `row`, from column `v{next}` on.
fn read_values(
    attrs: &[(&'static str, Attr)],
    row: &AnyRow,
    next: &mut usize,
) -> StoreResult<Vec<(&'static str, Value)>> {
    let mut out = Vec::new();
    for (name, a) in attrs {
        if let Attr::Derived = a {
            continue;
        }
        if let Attr::Record(fields) = a {
            out.push((*name, Value::Record(read_values(fields, row, next)?)));
            continue;
        }
        let col = format!("v{next}");
        *next += 1;
        let value = match a {
            Attr::Entity { ty, .. } => {
                get::<Option<String>>(row, &col)?.map(|id| Value::Entity(ty.entity(id)))
            }
            Attr::Text { .. } => get::<Option<String>>(row, &col)?.map(Value::String),
            Attr::Flag(_) => Some(Value::Bool(get::<i64>(row, &col)? != 0)),
            Attr::TextSet(_) => Some(Value::Strings(
                get::<String>(row, &col)?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            )),
            Attr::Datetime(_) => Some(Value::Datetime(time::parse(&get::<String>(row, &col)?)?)),
            Attr::Decimal { .. } => {
                get::<Option<i64>>(row, &col)?.map(|c| Value::Decimal(from_cents(c)))
            }
            Attr::Record(_) | Attr::Derived => unreachable!("handled above"),
        };
        if let Some(v) = value {
            out.push((*name, v));
        }
    }
    Ok(out)
}

impl Store {
    /// Entity `r` as stored, read through the table, or `None` when it does
    /// not exist.
    pub async fn entity_values(&self, r: &EntityRef) -> StoreResult<Option<StoredEntity>> {
        let t = r.kind();
        let Some(row) = sqlx::query(&select(t))
            .bind(r.id().to_owned())
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        let mut next = 0;
        let attrs = read_values(attributes(t), &row, &mut next)?;
        let mut parent_refs = Vec::new();
        for (i, p) in parents(t).iter().enumerate() {
            if let Some(id) = get::<Option<String>>(&row, &format!("p{i}"))? {
                parent_refs.push(p.ty.entity(id));
            }
        }
        Ok(Some(StoredEntity {
            attrs,
            parents: parent_refs,
        }))
    }
}
