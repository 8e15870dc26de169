//! Customer authorizations (a customer's consent that its direct partner may
//! act on its behalf) and the partner-activity list.
//!
//! Who may request, list, approve, reject or revoke (R6, R7) is the
//! policies'; the store serves the customer or the authorization the gateway
//! decided on, and keeps the data's rules:
//! - `POST /v2/partners/sub-customers/{customer_id}/authorizations`
//!   `{"scopes": ["om", "order"], "duration_days": 365}` → 201 with the new,
//!   `pending` authorization. The authorization is always to the customer's
//!   **direct** partner (whoever in its hierarchy asked; `requested_by`
//!   records the operator), since that is the consent sessions look at.
//! - `GET .../{customer_id}/authorizations` and
//!   `GET /v2/customers/partner-authorizations`: the customer's
//!   authorizations the caller may see (per authorization), newest first, paged.
//! - `POST /v2/customers/partner-authorizations/{id}/approve|reject|revoke` →
//!   200 with the updated authorization.
//! - `GET /v2/customers/partner-activity`: what partners did on the account
//!   (the `activities` rows written by on-behalf actions), newest first, paged.
//!
//! Lifecycle, and the decisions the domain left open:
//! - pending → approved (approve) or rejected (reject); approved → revoked
//!   (revoke). Any other transition is 409 CBC.30000067 and changes nothing.
//! - **Expiry is by time**: an authorization is expired once `expires_at` ≤
//!   now, whatever its status; answers carry `expired` (computed) beside
//!   `status`. A request gets a provisional `expires_at` = request time +
//!   `duration_days`, after which the pending request lapses and can no longer
//!   be approved (409). **Approval restarts the clock**: `expires_at` =
//!   `approved_at` + `duration_days`, so the customer grants the full period
//!   it saw. Rejecting an expired request and revoking an expired approval are
//!   allowed (they only end something already dead).
//! - **One live authorization per customer and partner**: live = pending or
//!   approved, and not expired. A request while one is live is refused with
//!   409 CBC.30000067 naming it. The check runs under a lock on the customer
//!   row, so two concurrent requests cannot both pass.
//! - Every write records who did it: `requested_by` (the operator from the
//!   identity assertion), and for the decisions `updated_at` / `approved_at`.

use super::extract::Served;
use super::lists::page_or_answer;
use super::wire;
use super::DomainState;
use crate::api_error::{codes, ApiError};
use crate::catalog::fields::Paging;
use crate::catalog::{AuthorizationDecision, ListPartnerActivity, RequestAuthorization};
use crate::ids::CustomerId;
use crate::model::{Authorization, AuthorizationScope, AuthorizationStatus};
use crate::store::domain::{AuthorizationChange, Decided, NewAuthorization, Requested};
use crate::time::{self, Timestamp};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

/// An authorization as every route answers it.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct AuthorizationView {
    authorization_id: String,
    customer_id: String,
    partner_id: String,
    scopes: Vec<AuthorizationScope>,
    status: AuthorizationStatus,
    /// `expires_at` ≤ now (whatever the status).
    expired: bool,
    duration_days: Option<i64>,
    requested_by: Option<String>,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    created_at: Timestamp,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    updated_at: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    approved_at: Option<Timestamp>,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    expires_at: Timestamp,
}

fn view(a: Authorization, now: Timestamp) -> AuthorizationView {
    AuthorizationView {
        authorization_id: a.id.0,
        customer_id: a.customer.0,
        partner_id: a.partner.0,
        scopes: a.scopes,
        status: a.status,
        expired: a.expires_at <= now,
        duration_days: a.duration_days,
        requested_by: a.requested_by.map(|o| o.0),
        created_at: a.created_at,
        updated_at: a.updated_at,
        approved_at: a.approved_at,
        expires_at: a.expires_at,
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct AuthorizationList {
    total_count: i64,
    authorizations: Vec<AuthorizationView>,
}

/// The authorizations of customer `customer_id` the caller may see, newest first.
pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    customer_id: &str,
    paging: Paging,
) -> Result<Response, ApiError> {
    let listed = state
        .store
        .list_authorizations(customer_id, &served.list, paging)
        .await?;
    let (total_count, authorizations) = page_or_answer!(listed);
    let now = time::now();
    Ok(Json(AuthorizationList {
        total_count,
        authorizations: authorizations.into_iter().map(|a| view(a, now)).collect(),
    })
    .into_response())
}

/// `POST /v2/partners/sub-customers/{customer_id}/authorizations`.
pub(super) async fn request(
    state: &DomainState,
    served: &Served,
    req: RequestAuthorization,
) -> Result<Response, ApiError> {
    let requested = state
        .store
        .request_authorization(&NewAuthorization {
            customer: &CustomerId::from(req.customer_id),
            scopes: &req.scopes,
            duration_days: req.duration_days,
            requested_by: served.identity.acting_operator(),
        })
        .await?;
    match requested {
        Requested::Created(a) => {
            Ok((StatusCode::CREATED, Json(view(a, time::now()))).into_response())
        }
        Requested::UnknownCustomer => Err(ApiError::denied()),
        Requested::Live(live) => Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "The customer already has a live ({}) authorization {} for this partner.",
                live.status, live.id.0
            ),
        )),
    }
}

/// Approves, rejects or revokes the authorization the gateway decided on.
pub(super) async fn decide(
    state: &DomainState,
    req: AuthorizationDecision,
    change: AuthorizationChange,
) -> Result<Response, ApiError> {
    match state
        .store
        .change_authorization(&req.authorization_id, change)
        .await?
    {
        Decided::Done(a) => Ok(Json(view(a, time::now())).into_response()),
        Decided::Unknown => Err(ApiError::denied()),
        Decided::Refused(why) => Err(ApiError::conflict(codes::CONFLICT, why)),
    }
}

// ---- partner activity ----------------------------------------------------------

#[derive(Debug, Serialize, JsonSchema)]
struct ActivityView {
    id: i64,
    session_id: Option<String>,
    operator_id: Option<String>,
    partner_id: Option<String>,
    action: String,
    target: Option<String>,
    /// What was done, as a JSON object (stored as text).
    detail: Option<serde_json::Value>,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    created_at: Timestamp,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ActivityList {
    total_count: i64,
    activities: Vec<ActivityView>,
}

/// `GET /v2/customers/partner-activity`: who acted on the caller's own account.
pub(super) async fn activity(
    state: &DomainState,
    served: &Served,
    req: ListPartnerActivity,
) -> Result<Response, ApiError> {
    let page = state
        .store
        .activities(served.own_customer()?, req.paging)
        .await?;
    let activities = page
        .items
        .into_iter()
        .map(|a| ActivityView {
            id: a.id,
            session_id: a.session_id,
            operator_id: a.operator_id,
            partner_id: a.partner_id,
            action: a.action,
            target: a.target,
            detail: a.detail.map(|text: String| {
                serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
            }),
            created_at: a.at,
        })
        .collect();
    Ok(Json(ActivityList {
        total_count: page.total,
        activities,
    })
    .into_response())
}
