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
use super::lists::page_or_answer;
use super::wire;
use super::DomainState;
use crate::api_error::{codes, ApiError};
use crate::catalog::{ListIndirectPartners, SetResellerGrants, ShowResellerGrants};
use crate::model::Grants;
use crate::money::to_cents;
use crate::store::domain::{GrantsChange, GrantsOutcome, ResellerGrants, ResellerQuery};
use crate::time::Timestamp;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Serialize;

/// The grants as both grant routes answer them, and as listed resellers carry them.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct GrantsView {
    indirect_partner_id: String,
    budget: bool,
    freeze: bool,
    on_behalf: bool,
    #[serde(serialize_with = "wire::opt_money_text")]
    #[schemars(with = "Option<String>")]
    monthly_quota: Option<Decimal>,
    #[serde(serialize_with = "wire::opt_money_text")]
    #[schemars(with = "Option<String>")]
    one_time_quota: Option<Decimal>,
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    updated_at: Option<Timestamp>,
    updated_by: Option<String>,
}

impl From<&ResellerGrants> for GrantsView {
    fn from(r: &ResellerGrants) -> Self {
        let g = &r.partner.grants;
        GrantsView {
            indirect_partner_id: r.partner.id.0.clone(),
            budget: g.budget,
            freeze: g.freeze,
            on_behalf: g.on_behalf,
            monthly_quota: g.monthly_quota,
            one_time_quota: g.one_time_quota,
            updated_at: r.updated_at,
            updated_by: r.updated_by.clone(),
        }
    }
}

// ---- ListIndirectPartners ----------------------------------------------------

/// IndirectPartnerInfo (+ `grants`, an extension).
#[derive(Debug, Serialize, JsonSchema)]
struct IndirectPartnerInfo {
    indirect_partner_id: String,
    mobile_phone: Option<String>,
    email: Option<String>,
    account_name: String,
    name: String,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    associated_on: Timestamp,
    account_manager_id: Option<String>,
    account_manager_name: Option<String>,
    grants: GrantsView,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ListResellersResponse {
    count: i64,
    indirect_partners: Vec<IndirectPartnerInfo>,
}

pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    req: ListIndirectPartners,
) -> Result<Response, ApiError> {
    let q = ResellerQuery {
        account_name: req.account_name.as_deref(),
        id: req.indirect_partner_id.as_deref(),
        associated_on: (req.associated_on.begin, req.associated_on.end),
    };
    let listed = state
        .store
        .list_resellers(&q, &served.list, req.paging)
        .await?;
    let (count, resellers) = page_or_answer!(listed);
    let indirect_partners = resellers
        .iter()
        .map(|r| IndirectPartnerInfo {
            indirect_partner_id: r.partner.id.0.clone(),
            mobile_phone: None,
            email: None,
            account_name: r.partner.id.0.clone(),
            name: r.partner.name.clone(),
            associated_on: r.associated_on,
            account_manager_id: None,
            account_manager_name: None,
            grants: GrantsView::from(r),
        })
        .collect();
    Ok(Json(ListResellersResponse {
        count,
        indirect_partners,
    })
    .into_response())
}

// ---- grants ------------------------------------------------------------------

/// The grants view of what a grants route found: 403 CBC.0151 when the
/// partner vanished, 409 when it is no reseller (only resellers hold grants).
fn answer(outcome: GrantsOutcome) -> Result<Response, ApiError> {
    match outcome {
        GrantsOutcome::Reseller(r) => Ok(Json(GrantsView::from(&r)).into_response()),
        GrantsOutcome::Unknown => Err(ApiError::denied()),
        GrantsOutcome::NotAReseller => Err(ApiError::conflict(
            codes::CONFLICT,
            "Only a reseller holds grants; this partner is not a reseller.",
        )),
    }
}

/// `GET /v2/partners/indirect-partners/{partner_id}/grants`.
pub(super) async fn show_grants(
    state: &DomainState,
    req: ShowResellerGrants,
) -> Result<Response, ApiError> {
    answer(state.store.reseller_grants(&req.partner_id).await?)
}

/// `PUT /v2/partners/indirect-partners/{partner_id}/grants`.
pub(super) async fn set_grants(
    state: &DomainState,
    served: &Served,
    req: SetResellerGrants,
) -> Result<Response, ApiError> {
    for quota in [req.monthly_quota, req.one_time_quota]
        .into_iter()
        .flatten()
    {
        to_cents(quota).map_err(|e| ApiError::parameter(format!("quota: {e}")))?;
    }
    let grants = Grants {
        budget: req.budget,
        freeze: req.freeze,
        on_behalf: req.on_behalf,
        monthly_quota: req.monthly_quota,
        one_time_quota: req.one_time_quota,
    };
    answer(
        state
            .store
            .set_grants(&GrantsChange {
                reseller: &req.partner_id,
                grants: &grants,
                operator: served.identity.acting_operator(),
            })
            .await?,
    )
}
