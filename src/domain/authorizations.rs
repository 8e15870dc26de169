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
use super::lists::{page_or_answer, List};
use super::query::{self, Bind, Where};
use super::wire;
use super::DomainState;
use crate::api_error::{codes, ApiError};
use crate::catalog::fields::Paging;
use crate::catalog::{AuthorizationDecision, ListPartnerActivity, RequestAuthorization};
use crate::model::{join_set, split_set, AuthorizationScope, AuthorizationStatus};
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Duration;
use serde::Serialize;
use sqlx::any::AnyRow;

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

/// The authorizations of customer `customer_id` the caller may see, newest first.
pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    customer_id: &str,
    paging: Paging,
) -> Result<Response, ApiError> {
    let mut f = Where::new();
    f.eq("a.customer_id", Bind::Text(customer_id.to_owned()));
    let list = List {
        item: EntityType::Authorization,
        alias: "a",
        from: "FROM customer_authorizations a",
        columns: "a.*",
        filters: f,
        order_by: "ORDER BY a.created_at DESC, a.id DESC",
    };
    let (total_count, rows) =
        page_or_answer!(list.run(state.store.pool(), served, Some(paging)).await?);
    let now = time::now();
    let authorizations = rows
        .iter()
        .map(|r| view(r, now))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(AuthorizationList {
        total_count,
        authorizations,
    })
    .into_response())
}

/// `POST /v2/partners/sub-customers/{customer_id}/authorizations`.
pub(super) async fn request(
    state: &DomainState,
    served: &Served,
    req: RequestAuthorization,
) -> Result<Response, ApiError> {
    let customer_id = req.customer_id;
    let days = req.duration_days;
    let now = time::now();
    let now_text = time::format(now);
    let mut tx = state.store.pool().begin().await?;
    // Serialises requests for one customer (see the module docs).
    super::freeze::lock_row(&mut tx, &customer_id).await?;
    let partner: String = sqlx::query_scalar("SELECT partner_id FROM customers WHERE id = $1")
        .bind(customer_id.clone())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(ApiError::denied)?;
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
    .bind(join_set(&req.scopes))
    .bind(days)
    .bind(served.identity.acting_operator().map(str::to_owned))
    .bind(now_text)
    .bind(time::format(now + Duration::days(days)))
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query("SELECT * FROM customer_authorizations WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, Json(view(&row, now)?)).into_response())
}

/// What the customer decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
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

/// Approves, rejects or revokes the authorization the gateway decided on.
pub(super) async fn decide(
    state: &DomainState,
    req: AuthorizationDecision,
    decision: Decision,
) -> Result<Response, ApiError> {
    let authorization_id = req.authorization_id.as_str();
    let now = time::now();
    let now_text = time::format(now);
    let mut tx = state.store.pool().begin().await?;
    // Lock the row (a no-op write) so that two decisions cannot interleave.
    sqlx::query("UPDATE customer_authorizations SET status = status WHERE id = $1")
        .bind(authorization_id.to_owned())
        .execute(&mut *tx)
        .await?;
    let Some(row) = sqlx::query("SELECT * FROM customer_authorizations WHERE id = $1")
        .bind(authorization_id.to_owned())
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
        .bind(current.customer_id.clone())
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
    Ok(Json(view(&row, now)?).into_response())
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
    /// What was done, as a JSON object (stored as text).
    detail: Option<serde_json::Value>,
    #[serde(serialize_with = "wire::time")]
    created_at: Timestamp,
}

#[derive(Debug, Serialize)]
struct ActivityList {
    total_count: i64,
    activities: Vec<ActivityView>,
}

/// `GET /v2/customers/partner-activity`: who acted on the caller's own account.
pub(super) async fn activity(
    state: &DomainState,
    served: &Served,
    req: ListPartnerActivity,
) -> Result<Response, ApiError> {
    let mut f = Where::new();
    f.eq("customer_id", Bind::Text(served.own_customer()?.to_owned()));
    let pool = state.store.pool();
    let total_count = f.count(pool, "FROM activities").await?;
    let rows = f
        .fetch(
            pool,
            "SELECT * FROM activities",
            "ORDER BY created_at DESC, id DESC",
            Some(req.paging),
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
                detail: query::opt_text(r, "detail")?.map(|text| {
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
                }),
                created_at: query::ts(r, "created_at")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(ActivityList {
        total_count,
        activities,
    })
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthorizationStatus::*;

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
