//! Fixture import (docs/domain.md section 5): `partner-gateway seed FILE`.
//!
//! A fixture is parsed entry by entry (so an error names the entry and the
//! field), checked for dangling references and domain constraints, and then
//! written in one transaction with upserts keyed by id: loading the same file
//! twice leaves the database as loading it once. Nothing is written unless the
//! whole file is valid.
//!
//! Beyond the sections docs/domain.md shows, a fixture may carry `coupons` and
//! `expenditures` (for the customer overview) and `line_items` on orders.

use super::{Store, StoreError};
use crate::model::*;
use crate::money::{self, to_cents, MAX_BUDGET};
use crate::time::{self, Timestamp};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt;

/// A refusal that names the offending entry and field.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{entry}: {field}: {message}")]
    Invalid {
        entry: String,
        field: String,
        message: String,
    },
    #[error("fixture is not valid JSON: {0}")]
    Json(String),
    #[error("cannot read fixture {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SeedError {
    fn from(e: sqlx::Error) -> Self {
        SeedError::Store(StoreError::Database(e))
    }
}

/// A decimal amount written as a string with at most two places, e.g. `"1000.00"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Amount(pub Decimal);

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        money::parse_amount(&s)
            .and_then(|d| to_cents(d).map(|_| Amount(d)))
            .map_err(|e| serde::de::Error::custom(format!("invalid amount {s:?}: {e}")))
    }
}

/// An instant in a fixture: absolute, in RFC 3339 (`"2026-10-01T08:00:00Z"`)
/// or as a date (`"2026-10-01"`), or relative to the moment the fixture is
/// loaded: `"now"`, `"now+9d"`, `"now-51d4h"`, `"now-51d+5m"` (terms of
/// whole days, hours, minutes and seconds, each signed or continuing the
/// sign before it). Relative instants are what keep data whose meaning
/// depends on "now" (an authorization still live, a resource expiring
/// within 7 days) true at any date; [`Fixture::at`] resolves them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instant {
    At(Timestamp),
    FromLoad(chrono::Duration),
}

impl Instant {
    /// Parses one fixture instant (the forms above).
    pub fn parse(s: &str) -> Result<Instant, String> {
        if let Some(offset) = s.strip_prefix("now") {
            return parse_offset(offset).map(Instant::FromLoad).map_err(|why| {
                format!("invalid relative time {s:?}: {why}; write e.g. now, now+9d, now-30d12h")
            });
        }
        time::parse(s)
            .or_else(|_| time::parse(&format!("{s}T00:00:00Z")))
            .map(Instant::At)
            .map_err(|_| {
                format!(
                    "invalid time {s:?}: use RFC 3339 (2026-10-01T08:00:00Z), a date (2026-10-01) \
                     or a time relative to the load (now-30d, now+2h30m)"
                )
            })
    }

    /// The instant, with a relative one counted from `anchor`.
    pub fn resolve(self, anchor: Timestamp) -> Timestamp {
        match self {
            Instant::At(t) => t,
            Instant::FromLoad(d) => anchor + d,
        }
    }
}

/// The largest offset a fixture may write: a century either way, far inside
/// what a timestamp can hold.
const MAX_OFFSET_DAYS: i64 = 36_525;

/// `""`, `"+9d"`, `"-51d4h"`, `"-51d+5m"`: signed runs of `<whole number><d|h|m|s>`.
fn parse_offset(text: &str) -> Result<chrono::Duration, &'static str> {
    let mut total = chrono::Duration::zero();
    let mut rest = text;
    let mut sign = 0i64;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('+') {
            (sign, rest) = (1, r);
        } else if let Some(r) = rest.strip_prefix('-') {
            (sign, rest) = (-1, r);
        } else if sign == 0 {
            return Err("after now comes + or -");
        }
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err("expected a whole number");
        }
        let n: i64 = rest[..digits]
            .parse()
            .map_err(|_| "the number is too large")?;
        let unit = rest[digits..]
            .chars()
            .next()
            .ok_or("the number has no unit (d, h, m or s)")?;
        let seconds_per = match unit {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err("units are d, h, m and s"),
        };
        let seconds = n
            .checked_mul(seconds_per)
            .filter(|s| *s <= MAX_OFFSET_DAYS * 86_400)
            .ok_or("the offset is more than a century")?;
        total += chrono::Duration::seconds(sign * seconds);
        if total.num_days().abs() > MAX_OFFSET_DAYS {
            return Err("the offset is more than a century");
        }
        rest = &rest[digits + 1..];
    }
    Ok(total)
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Instant::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureGrants {
    #[serde(default)]
    pub budget: bool,
    #[serde(default)]
    pub freeze: bool,
    #[serde(default)]
    pub on_behalf: bool,
    #[serde(default)]
    pub monthly_quota: Option<Amount>,
    #[serde(default)]
    pub one_time_quota: Option<Amount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixturePartner {
    pub id: String,
    pub name: String,
    pub kind: PartnerKind,
    #[serde(default)]
    pub distributor: Option<String>,
    #[serde(default)]
    pub grants: Option<FixtureGrants>,
}

fn default_active() -> OperatorStatus {
    OperatorStatus::Active
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureOperator {
    pub id: String,
    pub partner: String,
    pub name: String,
    pub roles: Vec<Role>,
    #[serde(default = "default_active")]
    pub status: OperatorStatus,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub secret_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureCustomer {
    pub id: String,
    pub account_name: String,
    pub name: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    pub partner: String,
    pub association: Association,
    #[serde(default)]
    pub account_manager: Option<String>,
    #[serde(default)]
    pub frozen: bool,
    #[serde(default)]
    pub freeze_type: Option<FreezeType>,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub associated_on: Option<Instant>,
    #[serde(default)]
    pub access_key: Option<String>,
    #[serde(default)]
    pub secret_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureAuthorization {
    pub id: String,
    pub customer: String,
    pub partner: String,
    pub scopes: Vec<AuthorizationScope>,
    pub status: AuthorizationStatus,
    pub expires_at: Instant,
    #[serde(default)]
    pub created_at: Option<Instant>,
    #[serde(default)]
    pub requested_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureBudget {
    pub customer: String,
    pub budget_type: BudgetType,
    pub amount: Amount,
    #[serde(default)]
    pub used: Option<Amount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureLineItem {
    pub id: String,
    pub product_id: String,
    #[serde(default)]
    pub service_type_code: Option<String>,
    #[serde(default)]
    pub resource_type_code: Option<String>,
    #[serde(default)]
    pub region_code: Option<String>,
    #[serde(default)]
    pub period_type: Option<i64>,
    #[serde(default)]
    pub period_num: Option<i64>,
    #[serde(default)]
    pub subscription_num: Option<i64>,
    pub amount: Amount,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureOrder {
    pub id: String,
    pub customer: String,
    pub status: i64,
    pub order_type: i64,
    pub service_type_code: String,
    pub amount: Amount,
    #[serde(default)]
    pub official_amount: Option<Amount>,
    #[serde(default)]
    pub source_type: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    pub created_at: Instant,
    #[serde(default)]
    pub payment_time: Option<Instant>,
    #[serde(default)]
    pub line_items: Vec<FixtureLineItem>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureResource {
    pub id: String,
    pub customer: String,
    pub charging: Charging,
    pub service_type_code: String,
    pub name: String,
    pub status: ResourceStatus,
    #[serde(default)]
    pub expire_at: Option<Instant>,
    #[serde(default)]
    pub resource_type_code: Option<String>,
    #[serde(default)]
    pub region_code: Option<String>,
    #[serde(default)]
    pub order: Option<String>,
    #[serde(default)]
    pub created_at: Option<Instant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureCoupon {
    pub id: String,
    pub customer: String,
    pub face_value: Amount,
    #[serde(default)]
    pub balance: Option<Amount>,
    #[serde(default)]
    pub status: Option<CouponStatus>,
    pub expire_at: Instant,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureExpenditure {
    pub id: String,
    pub customer: String,
    pub service_type_code: String,
    pub amount: Amount,
    pub spent_on: Instant,
}

/// A parsed and checked fixture, ready to import.
#[derive(Debug, Default)]
pub struct Fixture {
    /// The moment the fixture was loaded: relative instants count from it,
    /// and an omitted `created_at` is it.
    pub anchor: Timestamp,
    pub partners: Vec<FixturePartner>,
    pub operators: Vec<FixtureOperator>,
    pub customers: Vec<FixtureCustomer>,
    pub authorizations: Vec<FixtureAuthorization>,
    pub budgets: Vec<FixtureBudget>,
    pub orders: Vec<FixtureOrder>,
    pub resources: Vec<FixtureResource>,
    pub coupons: Vec<FixtureCoupon>,
    pub expenditures: Vec<FixtureExpenditure>,
}

const SECTIONS: &[&str] = &[
    "partners",
    "operators",
    "customers",
    "authorizations",
    "budgets",
    "orders",
    "resources",
    "coupons",
    "expenditures",
];

/// What an import wrote, per section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub counts: Vec<(&'static str, usize)>,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

fn invalid(entry: impl Into<String>, field: &str, message: impl Into<String>) -> SeedError {
    SeedError::Invalid {
        entry: entry.into(),
        field: field.to_owned(),
        message: message.into(),
    }
}

/// How an entry is named in errors: `customers[3] "cust-4"`.
fn entry_name(section: &str, index: usize, value: &Value) -> String {
    let key = value
        .get("id")
        .or_else(|| value.get("customer"))
        .and_then(Value::as_str);
    match key {
        Some(id) => format!("{section}[{index}] {id:?}"),
        None => format!("{section}[{index}]"),
    }
}

fn parse_section<T: DeserializeOwned>(root: &Value, section: &str) -> Result<Vec<T>, SeedError> {
    let Some(value) = root.get(section) else {
        return Ok(Vec::new());
    };
    let Some(items) = value.as_array() else {
        return Err(invalid(section, section, "must be an array"));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            serde_path_to_error::deserialize::<_, T>(item).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "(entry)".to_owned()
                } else {
                    path
                };
                let message = e.into_inner().to_string();
                // serde reports an unknown field at the entry level: name it.
                let field = match message.strip_prefix("unknown field `") {
                    Some(rest) if field == "(entry)" => {
                        rest.split('`').next().unwrap_or_default().to_owned()
                    }
                    _ => field,
                };
                invalid(entry_name(section, i, item), &field, message)
            })
        })
        .collect()
}

impl Fixture {
    /// Parses a fixture document loaded now; refuses unknown sections and fields.
    pub fn parse(text: &str) -> Result<Fixture, SeedError> {
        Self::parse_at(text, time::now())
    }

    /// Parses a fixture document whose relative instants count from `anchor`.
    pub fn parse_at(text: &str, anchor: Timestamp) -> Result<Fixture, SeedError> {
        let root: Value = serde_json::from_str(text).map_err(|e| SeedError::Json(e.to_string()))?;
        let Some(obj) = root.as_object() else {
            return Err(SeedError::Json("the top level must be an object".into()));
        };
        if let Some(unknown) = obj.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            return Err(invalid(
                "(fixture)",
                unknown,
                format!("unknown section; expected one of {}", SECTIONS.join(", ")),
            ));
        }
        Ok(Fixture {
            anchor,
            partners: parse_section(&root, "partners")?,
            operators: parse_section(&root, "operators")?,
            customers: parse_section(&root, "customers")?,
            authorizations: parse_section(&root, "authorizations")?,
            budgets: parse_section(&root, "budgets")?,
            orders: parse_section(&root, "orders")?,
            resources: parse_section(&root, "resources")?,
            coupons: parse_section(&root, "coupons")?,
            expenditures: parse_section(&root, "expenditures")?,
        })
    }

    /// Reads and parses a fixture file loaded now.
    pub fn load(path: &std::path::Path) -> Result<Fixture, SeedError> {
        Self::load_at(path, time::now())
    }

    /// Reads and parses a fixture file whose relative instants count from `anchor`.
    pub fn load_at(path: &std::path::Path, anchor: Timestamp) -> Result<Fixture, SeedError> {
        let text = std::fs::read_to_string(path).map_err(|source| SeedError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_at(&text, anchor)
    }

    /// A fixture instant as an absolute one.
    pub fn at(&self, instant: Instant) -> String {
        time::format(instant.resolve(self.anchor))
    }

    fn summary(&self) -> ImportSummary {
        ImportSummary {
            counts: vec![
                ("partners", self.partners.len()),
                ("operators", self.operators.len()),
                ("customers", self.customers.len()),
                ("authorizations", self.authorizations.len()),
                ("budgets", self.budgets.len()),
                ("orders", self.orders.len()),
                ("resources", self.resources.len()),
                ("coupons", self.coupons.len()),
                ("expenditures", self.expenditures.len()),
            ],
        }
    }
}

/// What an entry refers to, resolved from the fixture itself or, failing
/// that, from what the database already holds.
struct Known<'a> {
    store: &'a Store,
    partners: HashMap<&'a str, (PartnerKind, Option<&'a str>)>,
    operators: HashMap<&'a str, &'a str>,
    customers: HashMap<&'a str, (&'a str, Association)>,
    orders: HashSet<&'a str>,
}

impl<'a> Known<'a> {
    async fn partner(&self, id: &str) -> Result<Option<PartnerKind>, SeedError> {
        if let Some((kind, _)) = self.partners.get(id) {
            return Ok(Some(*kind));
        }
        Ok(self.store.partner(&id.into()).await?.map(|p| p.kind))
    }

    /// The partner an operator belongs to.
    async fn operator_partner(&self, id: &str) -> Result<Option<String>, SeedError> {
        if let Some(p) = self.operators.get(id) {
            return Ok(Some((*p).to_owned()));
        }
        Ok(self.store.operator(&id.into()).await?.map(|o| o.partner.0))
    }

    /// A customer's direct partner and association.
    async fn customer(&self, id: &str) -> Result<Option<(String, Association)>, SeedError> {
        if let Some((p, a)) = self.customers.get(id) {
            return Ok(Some(((*p).to_owned(), *a)));
        }
        Ok(self
            .store
            .customer(&id.into())
            .await?
            .map(|c| (c.partner.0, c.association)))
    }

    async fn order(&self, id: &str) -> Result<bool, SeedError> {
        Ok(self.orders.contains(id) || self.store.order(&id.into()).await?.is_some())
    }
}

fn unique_ids<'a>(section: &str, ids: impl Iterator<Item = &'a str>) -> Result<(), SeedError> {
    let mut seen = HashSet::new();
    for (i, id) in ids.enumerate() {
        if !seen.insert(id) {
            return Err(invalid(
                format!("{section}[{i}] {id:?}"),
                "id",
                "duplicate id",
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Checks a fixture against itself and the database, then writes it in
    /// one transaction. On any refusal nothing is written.
    pub async fn import_fixture(&self, fx: &Fixture) -> Result<ImportSummary, SeedError> {
        self.check_fixture(fx).await?;
        let mut tx = self.pool().begin().await?;
        let now = time::format(fx.anchor);

        // Distributors before the resellers that reference them.
        let mut partners: Vec<&FixturePartner> = fx.partners.iter().collect();
        partners.sort_by_key(|p| p.kind == PartnerKind::Reseller);
        for p in partners {
            let g = p.grants.as_ref();
            let cents = |a: Option<Amount>| a.map(|a| to_cents(a.0)).transpose();
            let monthly = cents(g.and_then(|g| g.monthly_quota))
                .map_err(|e| invalid(&p.id, "grants.monthly_quota", e.to_string()))?;
            let one_time = cents(g.and_then(|g| g.one_time_quota))
                .map_err(|e| invalid(&p.id, "grants.one_time_quota", e.to_string()))?;
            sqlx::query(
                "INSERT INTO partners (id, name, kind, distributor_id, grant_budget, grant_freeze,
                    grant_on_behalf, monthly_quota_cents, one_time_quota_cents, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, kind = excluded.kind,
                    distributor_id = excluded.distributor_id, grant_budget = excluded.grant_budget,
                    grant_freeze = excluded.grant_freeze, grant_on_behalf = excluded.grant_on_behalf,
                    monthly_quota_cents = excluded.monthly_quota_cents,
                    one_time_quota_cents = excluded.one_time_quota_cents",
            )
            .bind(p.id.clone())
            .bind(p.name.clone())
            .bind(p.kind.as_str())
            .bind(p.distributor.clone())
            .bind(g.is_some_and(|g| g.budget))
            .bind(g.is_some_and(|g| g.freeze))
            .bind(g.is_some_and(|g| g.on_behalf))
            .bind(monthly)
            .bind(one_time)
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
        }

        for o in &fx.operators {
            sqlx::query(
                "INSERT INTO operators (id, partner_id, name, roles, status, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET partner_id = excluded.partner_id,
                    name = excluded.name, roles = excluded.roles, status = excluded.status",
            )
            .bind(o.id.clone())
            .bind(o.partner.clone())
            .bind(o.name.clone())
            .bind(join_set(&o.roles))
            .bind(o.status.as_str())
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
        }

        for c in &fx.customers {
            let labels = serde_json::to_string(&c.labels).expect("labels serialize");
            let associated_on = c
                .associated_on
                .map(|t| fx.at(t))
                .unwrap_or_else(|| now.clone());
            let freeze_type = c
                .frozen
                .then(|| c.freeze_type.unwrap_or(FreezeType::Account).as_str());
            sqlx::query(
                "INSERT INTO customers (id, account_name, name, email, phone, partner_id, association,
                    account_manager_id, frozen, freeze_type, labels, associated_on, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (id) DO UPDATE SET account_name = excluded.account_name,
                    name = excluded.name, email = excluded.email, phone = excluded.phone,
                    partner_id = excluded.partner_id, association = excluded.association,
                    account_manager_id = excluded.account_manager_id, frozen = excluded.frozen,
                    freeze_type = excluded.freeze_type, labels = excluded.labels,
                    associated_on = excluded.associated_on",
            )
            .bind(c.id.clone())
            .bind(c.account_name.clone())
            .bind(c.name.clone())
            .bind(c.email.clone())
            .bind(c.phone.clone())
            .bind(c.partner.clone())
            .bind(c.association.as_str())
            .bind(c.account_manager.clone())
            .bind(c.frozen)
            .bind(freeze_type)
            .bind(labels)
            .bind(associated_on)
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
        }

        let operator_keys = fx.operators.iter().filter_map(|o| {
            Some((
                o.access_key.as_deref()?,
                o.secret_key.as_deref()?,
                PrincipalKind::Operator,
                o.id.as_str(),
            ))
        });
        let customer_keys = fx.customers.iter().filter_map(|c| {
            Some((
                c.access_key.as_deref()?,
                c.secret_key.as_deref()?,
                PrincipalKind::Customer,
                c.id.as_str(),
            ))
        });
        for (ak, sk, kind, id) in operator_keys.chain(customer_keys) {
            // Re-sealing would change the stored bytes on every import; keep an
            // existing row that already holds this very secret for this principal.
            if let Some(existing) = self.credential(ak).await? {
                if existing.secret == sk
                    && existing.principal_kind == kind
                    && existing.principal_id == id
                {
                    continue;
                }
            }
            sqlx::query(
                "INSERT INTO credentials (access_key, principal_kind, principal_id, secret_sealed, created_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (access_key) DO UPDATE SET principal_kind = excluded.principal_kind,
                    principal_id = excluded.principal_id, secret_sealed = excluded.secret_sealed",
            )
            .bind(ak.to_owned())
            .bind(kind.as_str())
            .bind(id.to_owned())
            .bind(self.cipher().seal(ak, sk))
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
        }

        for a in &fx.authorizations {
            let created = a
                .created_at
                .map(|t| fx.at(t))
                .unwrap_or_else(|| now.clone());
            sqlx::query(
                "INSERT INTO customer_authorizations (id, customer_id, partner_id, scopes, status,
                    requested_by, created_at, updated_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id,
                    partner_id = excluded.partner_id, scopes = excluded.scopes,
                    status = excluded.status, requested_by = excluded.requested_by,
                    expires_at = excluded.expires_at",
            )
            .bind(a.id.clone())
            .bind(a.customer.clone())
            .bind(a.partner.clone())
            .bind(join_set(&a.scopes))
            .bind(a.status.as_str())
            .bind(a.requested_by.clone())
            .bind(created)
            .bind(fx.at(a.expires_at))
            .execute(&mut *tx)
            .await?;
        }

        for b in &fx.budgets {
            sqlx::query(
                "INSERT INTO budgets (customer_id, budget_type, amount_cents, used_cents, updated_at)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (customer_id) DO UPDATE SET budget_type = excluded.budget_type,
                    amount_cents = excluded.amount_cents, used_cents = excluded.used_cents",
            )
            .bind(b.customer.clone())
            .bind(b.budget_type.as_str())
            .bind(cents_of(b.amount))
            .bind(b.used.map(cents_of).unwrap_or(0))
            .bind(now.clone())
            .execute(&mut *tx)
            .await?;
        }

        for o in &fx.orders {
            sqlx::query(
                "INSERT INTO orders (id, customer_id, status, order_type, service_type_code, source_type,
                    amount_cents, official_amount_cents, currency, created_at, payment_time)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id,
                    status = excluded.status, order_type = excluded.order_type,
                    service_type_code = excluded.service_type_code, source_type = excluded.source_type,
                    amount_cents = excluded.amount_cents,
                    official_amount_cents = excluded.official_amount_cents,
                    currency = excluded.currency, created_at = excluded.created_at,
                    payment_time = excluded.payment_time",
            )
            .bind(o.id.clone())
            .bind(o.customer.clone())
            .bind(o.status)
            .bind(o.order_type)
            .bind(o.service_type_code.clone())
            .bind(o.source_type.unwrap_or(1))
            .bind(cents_of(o.amount))
            .bind(cents_of(o.official_amount.unwrap_or(o.amount)))
            .bind(o.currency.clone().unwrap_or_else(|| "USD".into()))
            .bind(fx.at(o.created_at))
            .bind(o.payment_time.map(|t| fx.at(t)))
            .execute(&mut *tx)
            .await?;
            for li in &o.line_items {
                sqlx::query(
                    "INSERT INTO order_line_items (id, order_id, product_id, service_type_code,
                        resource_type_code, region_code, period_type, period_num, subscription_num, amount_cents)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                     ON CONFLICT (id) DO UPDATE SET order_id = excluded.order_id,
                        product_id = excluded.product_id, service_type_code = excluded.service_type_code,
                        resource_type_code = excluded.resource_type_code, region_code = excluded.region_code,
                        period_type = excluded.period_type, period_num = excluded.period_num,
                        subscription_num = excluded.subscription_num, amount_cents = excluded.amount_cents",
                )
                .bind(li.id.clone())
                .bind(o.id.clone())
                .bind(li.product_id.clone())
                .bind(li.service_type_code.clone().unwrap_or_else(|| o.service_type_code.clone()))
                .bind(li.resource_type_code.clone())
                .bind(li.region_code.clone())
                .bind(li.period_type)
                .bind(li.period_num)
                .bind(li.subscription_num.unwrap_or(1))
                .bind(cents_of(li.amount))
                .execute(&mut *tx)
                .await?;
            }
        }

        for r in &fx.resources {
            let created = r
                .created_at
                .map(|t| fx.at(t))
                .unwrap_or_else(|| now.clone());
            sqlx::query(
                "INSERT INTO resources (id, customer_id, charging, service_type_code, resource_type_code,
                    name, region_code, status, expire_at, order_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id,
                    charging = excluded.charging, service_type_code = excluded.service_type_code,
                    resource_type_code = excluded.resource_type_code, name = excluded.name,
                    region_code = excluded.region_code, status = excluded.status,
                    expire_at = excluded.expire_at, order_id = excluded.order_id",
            )
            .bind(r.id.clone())
            .bind(r.customer.clone())
            .bind(r.charging.as_str())
            .bind(r.service_type_code.clone())
            .bind(r.resource_type_code.clone())
            .bind(r.name.clone())
            .bind(r.region_code.clone())
            .bind(r.status.as_str())
            .bind(r.expire_at.map(|t| fx.at(t)))
            .bind(r.order.clone())
            .bind(created)
            .execute(&mut *tx)
            .await?;
        }

        for c in &fx.coupons {
            sqlx::query(
                "INSERT INTO coupons (id, customer_id, face_value_cents, balance_cents, status, expire_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id,
                    face_value_cents = excluded.face_value_cents, balance_cents = excluded.balance_cents,
                    status = excluded.status, expire_at = excluded.expire_at",
            )
            .bind(c.id.clone())
            .bind(c.customer.clone())
            .bind(cents_of(c.face_value))
            .bind(cents_of(c.balance.unwrap_or(c.face_value)))
            .bind(c.status.unwrap_or(CouponStatus::Available).as_str())
            .bind(fx.at(c.expire_at))
            .execute(&mut *tx)
            .await?;
        }

        for e in &fx.expenditures {
            sqlx::query(
                "INSERT INTO expenditures (id, customer_id, service_type_code, amount_cents, spent_on)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET customer_id = excluded.customer_id,
                    service_type_code = excluded.service_type_code,
                    amount_cents = excluded.amount_cents, spent_on = excluded.spent_on",
            )
            .bind(e.id.clone())
            .bind(e.customer.clone())
            .bind(e.service_type_code.clone())
            .bind(cents_of(e.amount))
            .bind(fx.at(e.spent_on))
            .execute(&mut *tx)
            .await?;
        }

        tx.commit().await?;
        Ok(fx.summary())
    }

    async fn check_fixture(&self, fx: &Fixture) -> Result<(), SeedError> {
        unique_ids("partners", fx.partners.iter().map(|p| p.id.as_str()))?;
        unique_ids("operators", fx.operators.iter().map(|o| o.id.as_str()))?;
        unique_ids("customers", fx.customers.iter().map(|c| c.id.as_str()))?;
        unique_ids(
            "authorizations",
            fx.authorizations.iter().map(|a| a.id.as_str()),
        )?;
        unique_ids("budgets", fx.budgets.iter().map(|b| b.customer.as_str()))?;
        unique_ids("orders", fx.orders.iter().map(|o| o.id.as_str()))?;
        unique_ids(
            "order line items",
            fx.orders
                .iter()
                .flat_map(|o| o.line_items.iter().map(|l| l.id.as_str())),
        )?;
        unique_ids("resources", fx.resources.iter().map(|r| r.id.as_str()))?;
        unique_ids("coupons", fx.coupons.iter().map(|c| c.id.as_str()))?;
        unique_ids(
            "expenditures",
            fx.expenditures.iter().map(|e| e.id.as_str()),
        )?;
        unique_ids(
            "customers",
            fx.customers.iter().map(|c| c.account_name.as_str()),
        )
        .map_err(|e| match e {
            SeedError::Invalid { entry, .. } => {
                invalid(entry, "account_name", "duplicate account_name")
            }
            other => other,
        })?;

        let known = Known {
            store: self,
            partners: fx
                .partners
                .iter()
                .map(|p| (p.id.as_str(), (p.kind, p.distributor.as_deref())))
                .collect(),
            operators: fx
                .operators
                .iter()
                .map(|o| (o.id.as_str(), o.partner.as_str()))
                .collect(),
            customers: fx
                .customers
                .iter()
                .map(|c| (c.id.as_str(), (c.partner.as_str(), c.association)))
                .collect(),
            orders: fx.orders.iter().map(|o| o.id.as_str()).collect(),
        };

        for (i, p) in fx.partners.iter().enumerate() {
            let entry = format!("partners[{i}] {:?}", p.id);
            match (p.kind, &p.distributor) {
                (PartnerKind::Reseller, None) => {
                    return Err(invalid(
                        entry,
                        "distributor",
                        "a reseller needs its distributor",
                    ))
                }
                (PartnerKind::Reseller, Some(d)) => match known.partner(d).await? {
                    Some(PartnerKind::Distributor) => {}
                    Some(kind) => {
                        return Err(invalid(
                            entry,
                            "distributor",
                            format!("partner {d:?} is a {kind}, not a distributor"),
                        ))
                    }
                    None => {
                        return Err(invalid(
                            entry,
                            "distributor",
                            format!("unknown partner {d:?}"),
                        ))
                    }
                },
                (kind, Some(_)) => {
                    return Err(invalid(
                        entry,
                        "distributor",
                        format!("only a reseller has a distributor, this is a {kind}"),
                    ))
                }
                (_, None) => {}
            }
            if p.grants.is_some() && p.kind != PartnerKind::Reseller {
                return Err(invalid(entry, "grants", "only a reseller receives grants"));
            }
            // Amounts are never negative (`Amount`); a quota is bounded as
            // the API bounds one.
            if let Some(g) = &p.grants {
                for (field, quota) in [
                    ("grants.monthly_quota", g.monthly_quota),
                    ("grants.one_time_quota", g.one_time_quota),
                ] {
                    if quota.is_some_and(|q| q.0 > MAX_BUDGET) {
                        return Err(invalid(
                            entry,
                            field,
                            format!("must be at most {MAX_BUDGET}"),
                        ));
                    }
                }
            }
        }

        let mut access_keys = HashSet::new();
        for (i, o) in fx.operators.iter().enumerate() {
            let entry = format!("operators[{i}] {:?}", o.id);
            if known.partner(&o.partner).await?.is_none() {
                return Err(invalid(
                    entry,
                    "partner",
                    format!("unknown partner {:?}", o.partner),
                ));
            }
            let distinct: HashSet<_> = o.roles.iter().collect();
            if o.roles.is_empty() || o.roles.len() > 3 || distinct.len() != o.roles.len() {
                return Err(invalid(
                    entry,
                    "roles",
                    "an operator has one to three distinct roles",
                ));
            }
            check_key_pair(&entry, &o.access_key, &o.secret_key, &mut access_keys)?;
        }

        for (i, c) in fx.customers.iter().enumerate() {
            let entry = format!("customers[{i}] {:?}", c.id);
            if known.partner(&c.partner).await?.is_none() {
                return Err(invalid(
                    entry,
                    "partner",
                    format!("unknown partner {:?}", c.partner),
                ));
            }
            if let Some(am) = &c.account_manager {
                match known.operator_partner(am).await? {
                    None => {
                        return Err(invalid(
                            entry,
                            "account_manager",
                            format!("unknown operator {am:?}"),
                        ))
                    }
                    Some(p) if p != c.partner => {
                        return Err(invalid(
                            entry,
                            "account_manager",
                            format!(
                                "operator {am:?} belongs to {p:?}, not to the customer's partner"
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
            if !c.frozen && c.freeze_type.is_some() {
                return Err(invalid(
                    entry,
                    "freeze_type",
                    "only a frozen customer has a freeze type",
                ));
            }
            check_key_pair(&entry, &c.access_key, &c.secret_key, &mut access_keys)?;
        }

        let operator_keys = fx.operators.iter().enumerate().filter_map(|(i, o)| {
            Some((
                format!("operators[{i}] {:?}", o.id),
                o.access_key.as_deref()?,
                PrincipalKind::Operator,
                o.id.as_str(),
            ))
        });
        let customer_keys = fx.customers.iter().enumerate().filter_map(|(i, c)| {
            Some((
                format!("customers[{i}] {:?}", c.id),
                c.access_key.as_deref()?,
                PrincipalKind::Customer,
                c.id.as_str(),
            ))
        });
        for (entry, ak, kind, id) in operator_keys.chain(customer_keys) {
            if let Some((owner_kind, owner_id)) = self.credential_owner(ak).await? {
                if owner_kind != kind || owner_id != id {
                    return Err(invalid(
                        entry,
                        "access_key",
                        format!("access key already belongs to {owner_kind} {owner_id:?}"),
                    ));
                }
            }
        }

        for (i, a) in fx.authorizations.iter().enumerate() {
            let entry = format!("authorizations[{i}] {:?}", a.id);
            let Some((direct, _)) = known.customer(&a.customer).await? else {
                return Err(invalid(
                    entry,
                    "customer",
                    format!("unknown customer {:?}", a.customer),
                ));
            };
            if direct != a.partner {
                return Err(invalid(
                    entry,
                    "partner",
                    format!(
                        "the customer's direct partner is {direct:?}, not {:?}",
                        a.partner
                    ),
                ));
            }
            let distinct: HashSet<_> = a.scopes.iter().collect();
            if a.scopes.is_empty() || distinct.len() != a.scopes.len() {
                return Err(invalid(
                    entry,
                    "scopes",
                    "one or both of \"om\", \"order\", each once",
                ));
            }
            if let Some(op) = &a.requested_by {
                if known.operator_partner(op).await?.is_none() {
                    return Err(invalid(
                        entry,
                        "requested_by",
                        format!("unknown operator {op:?}"),
                    ));
                }
            }
        }

        for (i, b) in fx.budgets.iter().enumerate() {
            let entry = format!("budgets[{i}] {:?}", b.customer);
            match known.customer(&b.customer).await? {
                None => {
                    return Err(invalid(
                        entry,
                        "customer",
                        format!("unknown customer {:?}", b.customer),
                    ))
                }
                Some((_, Association::Referral)) => {
                    return Err(invalid(
                        entry,
                        "customer",
                        "budgets are only for reseller-association customers",
                    ))
                }
                Some(_) => {}
            }
            if b.amount.0.is_zero() || b.amount.0 > MAX_BUDGET {
                return Err(invalid(entry, "amount", "must be in (0, 2147483647]"));
            }
        }

        for (i, o) in fx.orders.iter().enumerate() {
            let entry = format!("orders[{i}] {:?}", o.id);
            if known.customer(&o.customer).await?.is_none() {
                return Err(invalid(
                    entry,
                    "customer",
                    format!("unknown customer {:?}", o.customer),
                ));
            }
            if !ORDER_STATUSES.contains(&o.status) {
                return Err(invalid(
                    entry,
                    "status",
                    format!(
                        "unknown order status {}; expected one of {ORDER_STATUSES:?}",
                        o.status
                    ),
                ));
            }
            if !ORDER_TYPES.contains(&o.order_type) {
                return Err(invalid(
                    entry,
                    "order_type",
                    format!(
                        "unknown order type {}; expected one of {ORDER_TYPES:?}",
                        o.order_type
                    ),
                ));
            }
            if let Some(s) = o.source_type {
                if s != 1 && s != 2 {
                    return Err(invalid(
                        entry,
                        "source_type",
                        "1 (customer) or 2 (partner on the customer's behalf)",
                    ));
                }
            }
        }

        for (i, r) in fx.resources.iter().enumerate() {
            let entry = format!("resources[{i}] {:?}", r.id);
            if known.customer(&r.customer).await?.is_none() {
                return Err(invalid(
                    entry,
                    "customer",
                    format!("unknown customer {:?}", r.customer),
                ));
            }
            if let Some(order) = &r.order {
                if !known.order(order).await? {
                    return Err(invalid(entry, "order", format!("unknown order {order:?}")));
                }
            }
        }
        for (i, c) in fx.coupons.iter().enumerate() {
            if known.customer(&c.customer).await?.is_none() {
                return Err(invalid(
                    format!("coupons[{i}] {:?}", c.id),
                    "customer",
                    format!("unknown customer {:?}", c.customer),
                ));
            }
        }
        for (i, e) in fx.expenditures.iter().enumerate() {
            if known.customer(&e.customer).await?.is_none() {
                return Err(invalid(
                    format!("expenditures[{i}] {:?}", e.id),
                    "customer",
                    format!("unknown customer {:?}", e.customer),
                ));
            }
        }
        Ok(())
    }
}

fn cents_of(a: Amount) -> i64 {
    to_cents(a.0).expect("amounts are checked to convert to cents when parsed")
}

fn check_key_pair<'a>(
    entry: &str,
    access_key: &'a Option<String>,
    secret_key: &Option<String>,
    seen: &mut HashSet<&'a str>,
) -> Result<(), SeedError> {
    match (access_key, secret_key) {
        (Some(ak), Some(sk)) => {
            if ak.is_empty() || sk.len() < 16 {
                return Err(invalid(
                    entry,
                    "secret_key",
                    "access key must be non-empty and the secret at least 16 characters",
                ));
            }
            if !seen.insert(ak.as_str()) {
                return Err(invalid(
                    entry,
                    "access_key",
                    "access key used twice in this fixture",
                ));
            }
            Ok(())
        }
        (None, None) => Ok(()),
        (Some(_), None) => Err(invalid(
            entry,
            "secret_key",
            "an access key needs its secret key",
        )),
        (None, Some(_)) => Err(invalid(
            entry,
            "access_key",
            "a secret key needs its access key",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::Instant;
    use crate::time;

    #[test]
    fn instants_absolute_and_relative_to_the_load() {
        let anchor = time::parse("2026-11-21T12:00:00Z").unwrap();
        let at = |s: &str| time::format(Instant::parse(s).unwrap().resolve(anchor));
        assert_eq!(at("2026-10-01T08:00:00+08:00"), "2026-10-01T00:00:00Z");
        assert_eq!(at("2026-10-01"), "2026-10-01T00:00:00Z");
        assert_eq!(at("now"), "2026-11-21T12:00:00Z");
        assert_eq!(at("now+9d"), "2026-11-30T12:00:00Z");
        assert_eq!(at("now-51d4h"), "2026-10-01T08:00:00Z");
        assert_eq!(at("now-51d4h+5m"), "2026-10-01T08:05:00Z");
        assert_eq!(at("now+1h30m15s"), "2026-11-21T13:30:15Z");
        for bad in [
            "now9d",
            "now+",
            "now+d",
            "now+9",
            "now+9w",
            "now-9d+",
            "now 9d",
            "now+36526d",
            "now+99999999999999999999d",
            "yesterday",
            "",
        ] {
            assert!(Instant::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
