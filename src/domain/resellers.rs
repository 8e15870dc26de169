//! Resellers: ListIndirectPartners (`POST /v2/partners/indirect-partners/query`)
//! and the reseller-grants extension (`GET`/`PUT
//! /v2/partners/indirect-partners/{partner_id}/grants`).
//!
//! The list holds the resellers the caller may list (ListResellers per
//! reseller, R5); the grant routes serve the reseller the gateway decided on.
//! Grants belong to resellers: a grants call on any other partner is 409
//! CBC.30000067 (the data has no grants there), on a partner that vanished
//! 403 CBC.0151.
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
//! 5000 | "5000.00" | null, "one_time_quota": ...}`. Quotas are amounts in
//! (0, 2147483647] with at most two places, as numbers or decimal strings;
//! `null` means no quota, i.e. that budget type is not allowed to the
//! reseller. Every change writes a
//! `grant_records` row with the operator from the identity assertion; both
//! answers (200) carry the grants and the last change (`updated_at`,
//! `updated_by`; `null` for grants never changed through the API).

use super::extract::Served;
use super::lists::{page_or_answer, List};
use super::query::{self, Bind, Where};
use super::wire;
use super::DomainState;
use crate::api_error::{codes, ApiError};
use crate::catalog::{ListIndirectPartners, SetResellerGrants, ShowResellerGrants};
use crate::model::PartnerKind;
use crate::money::to_cents;
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::any::AnyRow;

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

/// Partners with their last grant change.
const RESELLER_FROM: &str = "FROM partners p
     LEFT JOIN grant_records g ON g.id = (
         SELECT MAX(g2.id) FROM grant_records g2 WHERE g2.partner_id = p.id)";
const RESELLER_COLUMNS: &str =
    "p.*, g.created_at AS grants_updated_at, g.operator_id AS grants_updated_by";

// ---- ListIndirectPartners ----------------------------------------------------

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

pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    req: ListIndirectPartners,
) -> Result<Response, ApiError> {
    let mut f = Where::new();
    f.eq(
        "p.kind",
        Bind::Text(PartnerKind::Reseller.as_str().to_owned()),
    );
    if let Some(v) = &req.account_name {
        f.contains("p.id", v);
    }
    if let Some(v) = &req.indirect_partner_id {
        f.eq("p.id", Bind::Text(v.clone()));
    }
    f.between(
        "p.created_at",
        req.associated_on.begin,
        req.associated_on.end,
    );
    let list = List {
        item: EntityType::Partner,
        alias: "p",
        from: RESELLER_FROM,
        columns: RESELLER_COLUMNS,
        filters: f,
        order_by: "ORDER BY p.id",
    };
    let (count, rows) = page_or_answer!(
        list.run(state.store.pool(), served, Some(req.paging))
            .await?
    );
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
    })
    .into_response())
}

// ---- grants ------------------------------------------------------------------

/// Reseller `id` with its grants: 403 CBC.0151 when it vanished, 409 when
/// the partner is no reseller (only resellers hold grants).
async fn reseller<'c, E>(exec: E, id: &str) -> Result<GrantsView, ApiError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let sql = format!("SELECT {RESELLER_COLUMNS} {RESELLER_FROM} WHERE p.id = $1");
    let row = sqlx::query(&sql)
        .bind(id.to_owned())
        .fetch_optional(exec)
        .await?
        .ok_or_else(ApiError::denied)?;
    if query::text(&row, "kind")? != PartnerKind::Reseller.as_str() {
        return Err(not_a_reseller());
    }
    grants_view(&row)
}

fn not_a_reseller() -> ApiError {
    ApiError::conflict(
        codes::CONFLICT,
        "Only a reseller holds grants; this partner is not a reseller.",
    )
}

/// `GET /v2/partners/indirect-partners/{partner_id}/grants`.
pub(super) async fn show_grants(
    state: &DomainState,
    req: ShowResellerGrants,
) -> Result<Response, ApiError> {
    Ok(Json(reseller(state.store.pool(), &req.partner_id).await?).into_response())
}

/// `PUT /v2/partners/indirect-partners/{partner_id}/grants`.
pub(super) async fn set_grants(
    state: &DomainState,
    served: &Served,
    req: SetResellerGrants,
) -> Result<Response, ApiError> {
    let cents = |q: Option<Decimal>| {
        q.map(to_cents)
            .transpose()
            .map_err(|e| ApiError::parameter(format!("quota: {e}")))
    };
    let monthly = cents(req.monthly_quota)?;
    let one_time = cents(req.one_time_quota)?;
    let now = time::format(time::now());
    let mut tx = state.store.pool().begin().await?;
    // Writing first takes SQLite's write lock at once; a partner that is no
    // reseller is left as it was (and the transaction rolled back).
    let updated = sqlx::query(
        "UPDATE partners SET grant_budget = $2, grant_freeze = $3, grant_on_behalf = $4,
            monthly_quota_cents = $5, one_time_quota_cents = $6
         WHERE id = $1 AND kind = $7",
    )
    .bind(req.partner_id.clone())
    .bind(req.budget)
    .bind(req.freeze)
    .bind(req.on_behalf)
    .bind(monthly)
    .bind(one_time)
    .bind(PartnerKind::Reseller.as_str())
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        // Tells a vanished partner (403) from one that is not a reseller (409).
        reseller(&mut *tx, &req.partner_id).await?;
        return Err(not_a_reseller());
    }
    sqlx::query(
        "INSERT INTO grant_records (partner_id, operator_id, grant_budget, grant_freeze,
            grant_on_behalf, monthly_quota_cents, one_time_quota_cents, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(req.partner_id.clone())
    .bind(served.identity.acting_operator().map(str::to_owned))
    .bind(req.budget)
    .bind(req.freeze)
    .bind(req.on_behalf)
    .bind(monthly)
    .bind(one_time)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let view = reseller(&mut *tx, &req.partner_id).await?;
    tx.commit().await?;
    Ok(Json(view).into_response())
}
