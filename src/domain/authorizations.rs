//! Customer authorizations (a customer's consent that its direct partner may
//! act on its behalf) and the partner-activity list.
//!
//! Partner side (operators; the gateway decides R6):
//! - `POST /v2/partners/sub-customers/{customer_id}/authorizations`
//!   `{"scopes": ["om", "order"], "duration_days": 365}` → 201 with the new,
//!   `pending` authorization. `scopes`: required, non-empty, each `om` or
//!   `order`, no repeats (400 otherwise). `duration_days`: 1..=3650, default
//!   365. The authorization is always to the customer's **direct** partner
//!   (whoever in its hierarchy asked; `requested_by` records the operator),
//!   since that is the consent the session rules (R8) look at.
//! - `GET /v2/partners/sub-customers/{customer_id}/authorizations`: the
//!   customer's authorizations, newest first, paged.
//! - A customer outside the caller's scope, or unknown: 403 CBC.0151.
//! - Who may ask (roles, resale customers only, a reseller's `on_behalf`
//!   grant) is R6, decided by the gateway's policy; the store does not repeat it.
//!
//! Customer side (the customer principal only; a session or an operator gets
//! 403 CBC.0151):
//! - `GET /v2/customers/partner-authorizations`: its own, newest first, paged.
//! - `POST /v2/customers/partner-authorizations/{id}/approve|reject|revoke` →
//!   200 with the updated authorization. Someone else's authorization answers
//!   exactly as an unknown id (403 CBC.0151).
//! - `GET /v2/customers/partner-activity`: what partners did on its account
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
//!   identity assertion), and for the customer's decisions the customer
//!   itself (the only one who can make them) with `updated_at` /
//!   `approved_at`.

use super::extract::{ApiJson, ApiQuery, Caller, PagingParams};
use super::query::{self, Bind, Where};
use super::scope::PartnerScope;
use super::wire;
use super::DomainState;
use crate::api_error::{codes, ApiError};
use crate::assertion::{CallerKind, Identity};
use crate::model::{join_set, split_set, AuthorizationScope, AuthorizationStatus};
use crate::time::{self, Timestamp};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Duration;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

/// Accepted `duration_days`.
pub const DURATION_DAYS: std::ops::RangeInclusive<i64> = 1..=3650;
/// `duration_days` when the request leaves it out.
pub const DEFAULT_DURATION_DAYS: i64 = 365;

pub fn routes() -> Router<DomainState> {
    Router::new()
        .route(
            "/v2/partners/sub-customers/{customer_id}/authorizations",
            get(partner_list).post(request),
        )
        .route("/v2/customers/partner-authorizations", get(customer_list))
        .route(
            "/v2/customers/partner-authorizations/{authorization_id}/approve",
            post(approve),
        )
        .route(
            "/v2/customers/partner-authorizations/{authorization_id}/reject",
            post(reject),
        )
        .route(
            "/v2/customers/partner-authorizations/{authorization_id}/revoke",
            post(revoke),
        )
        .route("/v2/customers/partner-activity", get(activity))
}

/// An authorization as every route answers it.
#[derive(Debug, Serialize)]
struct AuthorizationView {
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
    created_at: Timestamp,
    #[serde(serialize_with = "wire::time")]
    updated_at: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    approved_at: Option<Timestamp>,
    #[serde(serialize_with = "wire::time")]
    expires_at: Timestamp,
}

fn view(row: &AnyRow, now: Timestamp) -> Result<AuthorizationView, ApiError> {
    let expires_at = query::ts(row, "expires_at")?;
    let scopes = split_set(&query::text(row, "scopes")?)
        .map_err(|e| ApiError::from(crate::store::StoreError::Corrupt(e.to_string())))?;
    Ok(AuthorizationView {
        authorization_id: query::text(row, "id")?,
        customer_id: query::text(row, "customer_id")?,
        partner_id: query::text(row, "partner_id")?,
        scopes,
        status: query::parse(row, "status")?,
        expired: expires_at <= now,
        duration_days: query::opt_int(row, "duration_days")?,
        requested_by: query::opt_text(row, "requested_by")?,
        created_at: query::ts(row, "created_at")?,
        updated_at: query::ts(row, "updated_at")?,
        approved_at: query::opt_ts(row, "approved_at")?,
        expires_at,
    })
}

#[derive(Debug, Serialize)]
struct AuthorizationList {
    total_count: i64,
    authorizations: Vec<AuthorizationView>,
}

/// One page of a customer's authorizations, newest first.
async fn list_of(
    state: &DomainState,
    customer_id: &str,
    paging: PagingParams,
) -> Result<AuthorizationList, ApiError> {
    let paging = paging.paging()?;
    let mut f = Where::new();
    f.eq("a.customer_id", Bind::Text(customer_id.to_owned()));
    let pool = state.store.pool();
    let total_count = f.count(pool, "FROM customer_authorizations a").await?;
    let rows = f
        .fetch_page(
            pool,
            "SELECT a.* FROM customer_authorizations a",
            "ORDER BY a.created_at DESC, a.id DESC",
            paging,
        )
        .await?;
    let now = time::now();
    let authorizations = rows
        .iter()
        .map(|r| view(r, now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AuthorizationList {
        total_count,
        authorizations,
    })
}

// ---- partner side --------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestBody {
    scopes: Option<Vec<String>>,
    duration_days: Option<i64>,
}

/// Checks requested scopes: non-empty, known, no repeats; in canonical order.
fn check_scopes(scopes: Option<Vec<String>>) -> Result<Vec<AuthorizationScope>, ApiError> {
    let scopes = scopes.ok_or_else(|| ApiError::parameter("scopes is required"))?;
    if scopes.is_empty() {
        return Err(ApiError::invalid(
            "scopes must name at least one of om, order",
        ));
    }
    let mut out: Vec<AuthorizationScope> = Vec::new();
    for s in &scopes {
        let scope: AuthorizationScope = s
            .parse()
            .map_err(|_| ApiError::invalid(format!("unknown scope {s:?}: use om or order")))?;
        if out.contains(&scope) {
            return Err(ApiError::invalid(format!(
                "scope {s} is named more than once"
            )));
        }
        out.push(scope);
    }
    out.sort_by_key(|s| AuthorizationScope::ALL.iter().position(|a| a == s));
    Ok(out)
}

fn check_duration(days: Option<i64>) -> Result<i64, ApiError> {
    let days = days.unwrap_or(DEFAULT_DURATION_DAYS);
    if !DURATION_DAYS.contains(&days) {
        return Err(ApiError::invalid(format!(
            "duration_days must be between {} and {}",
            DURATION_DAYS.start(),
            DURATION_DAYS.end()
        )));
    }
    Ok(days)
}

async fn request(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    Path(customer_id): Path<String>,
    ApiJson(body): ApiJson<RequestBody>,
) -> Result<(StatusCode, Json<AuthorizationView>), ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    let scopes = check_scopes(body.scopes)?;
    let days = check_duration(body.duration_days)?;
    let now = time::now();
    let now_text = time::format(now);
    let mut tx = state.store.pool().begin().await?;
    // Serialises requests for one customer (see the module docs).
    super::freeze::lock_row(&mut tx, &customer_id).await?;
    if !scope.sees_customer(&mut *tx, &customer_id).await? {
        return Err(ApiError::denied());
    }
    let partner: String = sqlx::query_scalar("SELECT partner_id FROM customers WHERE id = $1")
        .bind(customer_id.clone())
        .fetch_one(&mut *tx)
        .await?;
    let live: Option<(String, String)> = sqlx::query_as(
        "SELECT id, status FROM customer_authorizations
         WHERE customer_id = $1 AND partner_id = $2 AND status IN ('pending', 'approved')
           AND expires_at > $3
         ORDER BY created_at DESC, id DESC LIMIT 1",
    )
    .bind(customer_id.clone())
    .bind(partner.clone())
    .bind(now_text.clone())
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, status)) = live {
        return Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "The customer already has a live ({status}) authorization {id} for this partner."
            ),
        ));
    }
    let id = format!("auth-{}", uuid::Uuid::new_v4().simple());
    sqlx::query(
        "INSERT INTO customer_authorizations (id, customer_id, partner_id, scopes, status,
            duration_days, requested_by, created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, $4, 'pending', $5, $6, $7, $7, $8)",
    )
    .bind(id.clone())
    .bind(customer_id)
    .bind(partner)
    .bind(join_set(&scopes))
    .bind(days)
    .bind(claims.identity.acting_operator().map(str::to_owned))
    .bind(now_text)
    .bind(time::format(now + Duration::days(days)))
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query("SELECT * FROM customer_authorizations WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view(&row, now)?)))
}

async fn partner_list(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    Path(customer_id): Path<String>,
    ApiQuery(paging): ApiQuery<PagingParams>,
) -> Result<Json<AuthorizationList>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    if !scope
        .sees_customer(state.store.pool(), &customer_id)
        .await?
    {
        return Err(ApiError::denied());
    }
    Ok(Json(list_of(&state, &customer_id, paging).await?))
}

// ---- customer side -------------------------------------------------------------

/// The customer principal's own id; anyone else (sessions included) is denied.
fn customer_principal(identity: &Identity) -> Result<String, ApiError> {
    match (identity.kind, &identity.customer) {
        (CallerKind::Customer, Some(id)) => Ok(id.clone()),
        _ => Err(ApiError::denied()),
    }
}

async fn customer_list(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiQuery(paging): ApiQuery<PagingParams>,
) -> Result<Json<AuthorizationList>, ApiError> {
    let customer_id = customer_principal(&claims.identity)?;
    Ok(Json(list_of(&state, &customer_id, paging).await?))
}

/// What the customer decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Approve,
    Reject,
    Revoke,
}

/// The status a decision moves to from `status`, or why it cannot.
fn transition(
    decision: Decision,
    status: AuthorizationStatus,
    expired: bool,
) -> Result<AuthorizationStatus, ApiError> {
    use AuthorizationStatus::*;
    let refuse = |msg: String| Err(ApiError::conflict(codes::CONFLICT, msg));
    match (decision, status) {
        (Decision::Approve, Pending) if expired => {
            refuse("The authorization request has expired and can no longer be approved.".into())
        }
        (Decision::Approve, Pending) => Ok(Approved),
        (Decision::Reject, Pending) => Ok(Rejected),
        (Decision::Revoke, Approved) => Ok(Revoked),
        (Decision::Approve, s) => refuse(format!(
            "Only a pending authorization can be approved; this one is {s}."
        )),
        (Decision::Reject, s) => refuse(format!(
            "Only a pending authorization can be rejected; this one is {s}."
        )),
        (Decision::Revoke, s) => refuse(format!(
            "Only an approved authorization can be revoked; this one is {s}."
        )),
    }
}

async fn decide(
    state: &DomainState,
    identity: &Identity,
    authorization_id: &str,
    decision: Decision,
) -> Result<Json<AuthorizationView>, ApiError> {
    let customer_id = customer_principal(identity)?;
    let now = time::now();
    let now_text = time::format(now);
    let mut tx = state.store.pool().begin().await?;
    // Lock the row (a no-op write) so that two decisions cannot interleave.
    sqlx::query(
        "UPDATE customer_authorizations SET status = status WHERE id = $1 AND customer_id = $2",
    )
    .bind(authorization_id.to_owned())
    .bind(customer_id.clone())
    .execute(&mut *tx)
    .await?;
    let Some(row) =
        sqlx::query("SELECT * FROM customer_authorizations WHERE id = $1 AND customer_id = $2")
            .bind(authorization_id.to_owned())
            .bind(customer_id.clone())
            .fetch_optional(&mut *tx)
            .await?
    else {
        return Err(ApiError::denied());
    };
    let current = view(&row, now)?;
    let next = transition(decision, current.status, current.expired)?;
    if next == AuthorizationStatus::Approved {
        // The clock starts at approval (seeded rows without a duration keep theirs).
        let expires_at = match current.duration_days {
            Some(days) => time::format(now + Duration::days(days)),
            None => time::format(current.expires_at),
        };
        // At most one live authorization per customer and partner: approving
        // supersedes any other still-live approval (only seeded data can have one).
        sqlx::query(
            "UPDATE customer_authorizations SET status = 'revoked', updated_at = $4
             WHERE customer_id = $1 AND partner_id = $2 AND id <> $3
               AND status = 'approved' AND expires_at > $4",
        )
        .bind(customer_id.clone())
        .bind(current.partner_id.clone())
        .bind(authorization_id.to_owned())
        .bind(now_text.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE customer_authorizations SET status = $2, updated_at = $3, approved_at = $3,
                expires_at = $4
             WHERE id = $1",
        )
        .bind(authorization_id.to_owned())
        .bind(next.as_str())
        .bind(now_text)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
    } else {
        sqlx::query(
            "UPDATE customer_authorizations SET status = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(authorization_id.to_owned())
        .bind(next.as_str())
        .bind(now_text)
        .execute(&mut *tx)
        .await?;
    }
    let row = sqlx::query("SELECT * FROM customer_authorizations WHERE id = $1")
        .bind(authorization_id.to_owned())
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Json(view(&row, now)?))
}

async fn approve(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<AuthorizationView>, ApiError> {
    decide(&state, &claims.identity, &id, Decision::Approve).await
}

async fn reject(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<AuthorizationView>, ApiError> {
    decide(&state, &claims.identity, &id, Decision::Reject).await
}

async fn revoke(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    Path(id): Path<String>,
) -> Result<Json<AuthorizationView>, ApiError> {
    decide(&state, &claims.identity, &id, Decision::Revoke).await
}

// ---- partner activity ----------------------------------------------------------

#[derive(Debug, Serialize)]
struct ActivityView {
    id: i64,
    session_id: Option<String>,
    operator_id: Option<String>,
    partner_id: Option<String>,
    action: String,
    target: Option<String>,
    detail: Option<String>,
    #[serde(serialize_with = "wire::time")]
    created_at: Timestamp,
}

#[derive(Debug, Serialize)]
struct ActivityList {
    total_count: i64,
    activities: Vec<ActivityView>,
}

async fn activity(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiQuery(paging): ApiQuery<PagingParams>,
) -> Result<Json<ActivityList>, ApiError> {
    let customer_id = customer_principal(&claims.identity)?;
    let paging = paging.paging()?;
    let mut f = Where::new();
    f.eq("customer_id", Bind::Text(customer_id));
    let pool = state.store.pool();
    let total_count = f.count(pool, "FROM activities").await?;
    let rows = f
        .fetch_page(
            pool,
            "SELECT * FROM activities",
            "ORDER BY created_at DESC, id DESC",
            paging,
        )
        .await?;
    let activities = rows
        .iter()
        .map(|r| {
            Ok(ActivityView {
                id: query::int(r, "id")?,
                session_id: query::opt_text(r, "session_id")?,
                operator_id: query::opt_text(r, "operator_id")?,
                partner_id: query::opt_text(r, "partner_id")?,
                action: query::text(r, "action")?,
                target: query::opt_text(r, "target")?,
                detail: query::opt_text(r, "detail")?,
                created_at: query::ts(r, "created_at")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(ActivityList {
        total_count,
        activities,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthorizationStatus::*;

    #[test]
    fn scopes_are_checked_and_canonical() {
        let s = |v: &[&str]| check_scopes(Some(v.iter().map(|s| s.to_string()).collect()));
        assert_eq!(
            s(&["order", "om"]).unwrap(),
            vec![AuthorizationScope::Om, AuthorizationScope::Order]
        );
        assert!(s(&[]).is_err());
        assert!(s(&["om", "om"]).is_err());
        assert!(s(&["admin"]).is_err());
        assert!(check_scopes(None).is_err());
    }

    #[test]
    fn durations_have_a_range_and_a_default() {
        assert_eq!(check_duration(None).unwrap(), 365);
        assert!(check_duration(Some(0)).is_err());
        assert!(check_duration(Some(3651)).is_err());
        assert_eq!(check_duration(Some(3650)).unwrap(), 3650);
    }

    #[test]
    fn lifecycle_transitions() {
        assert_eq!(
            transition(Decision::Approve, Pending, false).unwrap(),
            Approved
        );
        assert!(transition(Decision::Approve, Pending, true).is_err());
        assert_eq!(
            transition(Decision::Reject, Pending, true).unwrap(),
            Rejected
        );
        assert_eq!(
            transition(Decision::Revoke, Approved, false).unwrap(),
            Revoked
        );
        for s in [Approved, Rejected, Revoked] {
            assert!(transition(Decision::Approve, s, false).is_err());
            assert!(transition(Decision::Reject, s, false).is_err());
        }
        for s in [Pending, Rejected, Revoked] {
            assert!(transition(Decision::Revoke, s, false).is_err());
        }
    }
}
