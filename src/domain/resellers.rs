//! Resellers: ListIndirectPartners (`POST /v2/partners/indirect-partners/query`)
//! and the reseller-grants extension (`GET`/`PUT
//! /v2/partners/indirect-partners/{partner_id}/grants`).
//!
//! A caller sees only its own partner's resellers (a reseller or solution
//! provider has none, so its list is empty); a grants call on anything else,
//! unknown ids included, is 403 CBC.0151. Who among the distributor's
//! operators may do this (R5, admin) is the gateway's policy.
//!
//! ListIndirectPartners: the store keeps no separate account name, contact
//! data or account manager for partners, so `account_name` is the partner id,
//! `associated_on` the time the partner was created in the store, and
//! `mobile_phone`, `email`, `account_manager_id`/`_name` are `null`. Filters:
//! `account_name` (case-insensitive substring of the id), `indirect_partner_id`
//! (exact), `associated_on_begin`/`_end` (inclusive). Each entry also carries
//! the reseller's `grants` (an extension). Order: by id.
//!
//! Grants: `PUT` replaces all five values, so every field is required:
//! `{"budget": bool, "freeze": bool, "on_behalf": bool, "monthly_quota":
//! "5000.00" | null, "one_time_quota": "20000.00" | null}`. Quotas are decimal
//! strings (a JSON number is refused: it cannot carry money exactly) in
//! (0, 2147483647] with at most two places; `null` means no quota, i.e. that
//! budget type is not allowed to the reseller. Every change writes a
//! `grant_records` row with the operator from the identity assertion; both
//! answers (200) carry the grants and the last change (`updated_at`,
//! `updated_by`; `null` for grants never changed through the API).

use super::customers::contains;
use super::extract::{
    check_time_order, non_empty, opt_time, ApiJson, Caller, OptionalJson, Paging,
};
use super::query::{self, Bind, Where};
use super::scope::PartnerScope;
use super::wire;
use super::DomainState;
use crate::api_error::ApiError;
use crate::model::PartnerKind;
use crate::money::{parse_amount, to_cents, MAX_BUDGET};
use crate::time::{self, Timestamp};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::any::AnyRow;

pub fn routes() -> Router<DomainState> {
    Router::new()
        .route("/v2/partners/indirect-partners/query", post(list_resellers))
        .route(
            "/v2/partners/indirect-partners/{partner_id}/grants",
            get(show_grants).put(set_grants),
        )
}

/// The grants as both grant routes answer them, and as listed resellers carry them.
#[derive(Debug, Serialize)]
struct GrantsView {
    indirect_partner_id: String,
    budget: bool,
    freeze: bool,
    on_behalf: bool,
    #[serde(serialize_with = "wire::opt_money_text")]
    monthly_quota: Option<Decimal>,
    #[serde(serialize_with = "wire::opt_money_text")]
    one_time_quota: Option<Decimal>,
    #[serde(serialize_with = "wire::opt_time")]
    updated_at: Option<Timestamp>,
    updated_by: Option<String>,
}

/// Reads a partners row (with the optional `updated_at`/`updated_by` of the
/// last grant change) into the grants view.
fn grants_view(row: &AnyRow) -> Result<GrantsView, ApiError> {
    Ok(GrantsView {
        indirect_partner_id: query::text(row, "id")?,
        budget: crate::store::flag(row, "grant_budget")?,
        freeze: crate::store::flag(row, "grant_freeze")?,
        on_behalf: crate::store::flag(row, "grant_on_behalf")?,
        monthly_quota: query::opt_money(row, "monthly_quota_cents")?,
        one_time_quota: query::opt_money(row, "one_time_quota_cents")?,
        updated_at: query::opt_ts(row, "grants_updated_at")?,
        updated_by: query::opt_text(row, "grants_updated_by")?,
    })
}

/// Selects resellers with their last grant change; `{where}` follows.
const RESELLER_SELECT: &str =
    "SELECT p.*, g.created_at AS grants_updated_at, g.operator_id AS grants_updated_by
     FROM partners p
     LEFT JOIN grant_records g ON g.id = (
         SELECT MAX(g2.id) FROM grant_records g2 WHERE g2.partner_id = p.id)";

// ---- ListIndirectPartners ----------------------------------------------------

/// QueryIndirectPartnersReq.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListResellersReq {
    account_name: Option<String>,
    associated_on_begin: Option<String>,
    associated_on_end: Option<String>,
    offset: Option<i64>,
    limit: Option<i64>,
    indirect_partner_id: Option<String>,
}

/// IndirectPartnerInfo (+ `grants`, an extension).
#[derive(Debug, Serialize)]
struct IndirectPartnerInfo {
    indirect_partner_id: String,
    mobile_phone: Option<String>,
    email: Option<String>,
    account_name: String,
    name: String,
    #[serde(serialize_with = "wire::time")]
    associated_on: Timestamp,
    account_manager_id: Option<String>,
    account_manager_name: Option<String>,
    grants: GrantsView,
}

#[derive(Debug, Serialize)]
struct ListResellersResponse {
    count: i64,
    indirect_partners: Vec<IndirectPartnerInfo>,
}

async fn list_resellers(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    OptionalJson(req): OptionalJson<ListResellersReq>,
) -> Result<Json<ListResellersResponse>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    let paging = Paging::new(req.offset, req.limit)?;
    let begin = opt_time("associated_on_begin", req.associated_on_begin)?;
    let end = opt_time("associated_on_end", req.associated_on_end)?;
    check_time_order("associated_on_begin", begin, "associated_on_end", end)?;
    let mut f = Where::new();
    f.eq("p.distributor_id", Bind::Text(scope.partner.clone()));
    f.eq(
        "p.kind",
        Bind::Text(PartnerKind::Reseller.as_str().to_owned()),
    );
    if let Some(v) = non_empty(req.account_name) {
        contains(&mut f, "p.id", &v);
    }
    if let Some(v) = non_empty(req.indirect_partner_id) {
        f.eq("p.id", Bind::Text(v));
    }
    f.between("p.created_at", begin, end);
    let pool = state.store.pool();
    let count = f.count(pool, "FROM partners p").await?;
    let rows = f
        .fetch_page(pool, RESELLER_SELECT, "ORDER BY p.id", paging)
        .await?;
    let indirect_partners = rows
        .iter()
        .map(|row| {
            let id = query::text(row, "id")?;
            Ok(IndirectPartnerInfo {
                indirect_partner_id: id.clone(),
                mobile_phone: None,
                email: None,
                account_name: id,
                name: query::text(row, "name")?,
                associated_on: query::ts(row, "created_at")?,
                account_manager_id: None,
                account_manager_name: None,
                grants: grants_view(row)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(ListResellersResponse {
        count,
        indirect_partners,
    }))
}

// ---- grants ------------------------------------------------------------------

/// One of the caller's resellers with its grants, or 403 CBC.0151.
async fn own_reseller<'c, E>(
    exec: E,
    scope: &PartnerScope,
    id: &str,
) -> Result<GrantsView, ApiError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql =
        format!("{RESELLER_SELECT} WHERE p.id = $1 AND p.distributor_id = $2 AND p.kind = $3");
    let row = sqlx::query(&sql)
        .bind(id.to_owned())
        .bind(scope.partner.clone())
        .bind(PartnerKind::Reseller.as_str())
        .fetch_optional(exec)
        .await?;
    match row {
        Some(row) => grants_view(&row),
        None => Err(ApiError::denied()),
    }
}

async fn show_grants(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    Path(partner_id): Path<String>,
) -> Result<Json<GrantsView>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    Ok(Json(
        own_reseller(state.store.pool(), &scope, &partner_id).await?,
    ))
}

/// A quota: a decimal string in (0, 2147483647] with at most two places, or `null`.
fn quota<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let amount = parse_amount(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid quota {text:?}: {e}")))?;
    if amount <= Decimal::ZERO || amount > MAX_BUDGET {
        return Err(serde::de::Error::custom(format!(
            "invalid quota {text:?}: must be more than 0 and at most 2147483647"
        )));
    }
    Ok(Some(amount))
}

/// The PUT body: every field required (`null` allowed for the quotas).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsReq {
    budget: bool,
    freeze: bool,
    on_behalf: bool,
    #[serde(deserialize_with = "quota")]
    monthly_quota: Option<Decimal>,
    #[serde(deserialize_with = "quota")]
    one_time_quota: Option<Decimal>,
}

async fn set_grants(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    Path(partner_id): Path<String>,
    ApiJson(req): ApiJson<GrantsReq>,
) -> Result<Json<GrantsView>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    let cents = |q: Option<Decimal>| {
        q.map(to_cents)
            .transpose()
            .map_err(|e| ApiError::parameter(format!("quota: {e}")))
    };
    let monthly = cents(req.monthly_quota)?;
    let one_time = cents(req.one_time_quota)?;
    let now = time::format(time::now());
    let mut tx = state.store.pool().begin().await?;
    // The write itself checks that the partner is one of the caller's
    // resellers (writing first also takes SQLite's write lock at once).
    let updated = sqlx::query(
        "UPDATE partners SET grant_budget = $2, grant_freeze = $3, grant_on_behalf = $4,
            monthly_quota_cents = $5, one_time_quota_cents = $6
         WHERE id = $1 AND distributor_id = $7 AND kind = $8",
    )
    .bind(partner_id.clone())
    .bind(req.budget)
    .bind(req.freeze)
    .bind(req.on_behalf)
    .bind(monthly)
    .bind(one_time)
    .bind(scope.partner.clone())
    .bind(PartnerKind::Reseller.as_str())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(ApiError::denied());
    }
    sqlx::query(
        "INSERT INTO grant_records (partner_id, operator_id, grant_budget, grant_freeze,
            grant_on_behalf, monthly_quota_cents, one_time_quota_cents, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(partner_id.clone())
    .bind(claims.identity.acting_operator().map(str::to_owned))
    .bind(req.budget)
    .bind(req.freeze)
    .bind(req.on_behalf)
    .bind(monthly)
    .bind(one_time)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let view = own_reseller(&mut *tx, &scope, &partner_id).await?;
    tx.commit().await?;
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_body_requires_every_field_and_string_quotas() {
        let parse = |s: &str| crate::domain::extract::parse_json::<GrantsReq>(s.as_bytes());
        let ok = parse(
            r#"{"budget": true, "freeze": false, "on_behalf": true, "monthly_quota": "5000.00", "one_time_quota": null}"#,
        )
        .unwrap();
        assert_eq!(ok.monthly_quota, Some(Decimal::new(500_000, 2)));
        assert_eq!(ok.one_time_quota, None);
        for bad in [
            r#"{"budget": true, "freeze": false, "on_behalf": true, "monthly_quota": null}"#,
            r#"{"budget": true, "freeze": false, "on_behalf": true, "monthly_quota": 5000, "one_time_quota": null}"#,
            r#"{"budget": true, "freeze": false, "on_behalf": true, "monthly_quota": "0", "one_time_quota": null}"#,
            r#"{"budget": true, "freeze": false, "on_behalf": true, "monthly_quota": "1.001", "one_time_quota": null}"#,
            r#"{"budget": "yes", "freeze": false, "on_behalf": true, "monthly_quota": null, "one_time_quota": null}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
