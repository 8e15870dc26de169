//! FreezeSubCustomers / UnfreezeSubCustomers: `POST /v2/partners/sub-customers/freeze`
//! and `.../unfreeze`.
//!
//! A request names 1..10 distinct `customer_ids`, a `reason` (1..256
//! characters, required) and `freeze_type` / `unfreeze_type` (`ACCOUNT`, the
//! default, or `ACCOUNT_AND_RESOURCE`): the catalog's checks. The gateway has
//! allowed every id (all or nothing, R3). A well-formed request is answered
//! **200**, as the public API does: `{}` when every customer changed,
//! otherwise `{"error_details": [{"id", "error_code", "error_msg"}, ...]}`
//! with one entry per customer that did not change (even when none did); the
//! others are changed, all in one transaction. Per-id refusals, all the
//! data's own:
//!
//! | case | error_code |
//! |---|---|
//! | the customer vanished after the gateway's decision | `CBC.0151` |
//! | freeze: already frozen; unfreeze: not frozen, or frozen with the other type | `CBC.30000067` |
//!
//! Freezing with `ACCOUNT_AND_RESOURCE` also freezes the customer's resources
//! that are `in_use` or `stopped`, remembering each one's status
//! (`resources.status_before_freeze`); unfreezing with the same type puts
//! each frozen resource back to that status (`in_use` when none was recorded,
//! as for resources seeded frozen). Closed and expired resources are left
//! alone. Every change writes a `freeze_records` row: customer, action, type,
//! reason, the operator and partner from the identity assertion, time.

use super::extract::Served;
use super::DomainState;
use crate::api_error::{codes, ApiError};
use crate::assertion::Identity;
use crate::catalog::FreezeChange;
use crate::model::FreezeType;
use crate::time;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sqlx::{AnyConnection, Row};

/// CustomerErrorDetail.
#[derive(Debug, Serialize)]
struct CustomerErrorDetail {
    error_code: String,
    error_msg: String,
    id: String,
}

/// Freeze/UnfreezeSubCustomersResponse.
#[derive(Debug, Serialize)]
struct BatchResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    error_details: Vec<CustomerErrorDetail>,
}

/// Which change a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    Freeze,
    Unfreeze,
}

/// Who made a freeze-state change and through which route, for `freeze_records`.
pub(super) struct Change<'a> {
    pub customer_id: &'a str,
    pub freeze_type: FreezeType,
    pub reason: &'a str,
    /// `freeze`, `unfreeze` or `budget`.
    pub via: &'static str,
    pub identity: &'a Identity,
    pub now: &'a str,
}

/// `POST /v2/partners/sub-customers/freeze`.
pub(super) async fn freeze(
    state: &DomainState,
    served: &Served,
    req: FreezeChange,
) -> Result<Response, ApiError> {
    batch(state, &served.identity, Direction::Freeze, &req).await
}

/// `POST /v2/partners/sub-customers/unfreeze`.
pub(super) async fn unfreeze(
    state: &DomainState,
    served: &Served,
    req: FreezeChange,
) -> Result<Response, ApiError> {
    batch(state, &served.identity, Direction::Unfreeze, &req).await
}

/// Applies one direction to every id in one transaction, collecting per-id refusals.
async fn batch(
    state: &DomainState,
    identity: &Identity,
    direction: Direction,
    req: &FreezeChange,
) -> Result<Response, ApiError> {
    let (ids, reason, freeze_type) = (&req.customer_ids, req.reason.as_str(), req.freeze_type);
    let now = time::format(time::now());
    let mut tx = state.store.pool().begin().await?;
    // Lock every named customer up front, in one global order, so that two
    // batches naming the same customers in different orders cannot deadlock.
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    for id in sorted {
        lock_row(&mut tx, id).await?;
    }
    let mut error_details = Vec::new();
    for id in ids {
        let refusal = match lock_customer(&mut tx, id).await? {
            None => Some(ApiError::denied()),
            Some(state) => {
                let change = Change {
                    customer_id: id,
                    freeze_type,
                    reason,
                    via: match direction {
                        Direction::Freeze => "freeze",
                        Direction::Unfreeze => "unfreeze",
                    },
                    identity,
                    now: &now,
                };
                match (direction, state) {
                    (
                        Direction::Freeze,
                        FreezeState {
                            frozen: Some(current),
                            ..
                        },
                    ) => Some(ApiError::conflict(
                        codes::CONFLICT,
                        format!("The customer is already frozen ({current})."),
                    )),
                    (Direction::Freeze, FreezeState { frozen: None, .. }) => {
                        apply_freeze(&mut tx, &change).await?;
                        None
                    }
                    (Direction::Unfreeze, FreezeState { frozen: None, .. }) => Some(
                        ApiError::conflict(codes::CONFLICT, "The customer is not frozen."),
                    ),
                    (
                        Direction::Unfreeze,
                        FreezeState {
                            frozen: Some(current),
                            ..
                        },
                    ) if current != freeze_type => Some(ApiError::conflict(
                        codes::CONFLICT,
                        format!(
                            "The customer is frozen with type {current}; unfreeze_type must match."
                        ),
                    )),
                    (
                        Direction::Unfreeze,
                        FreezeState {
                            frozen: Some(_), ..
                        },
                    ) => {
                        apply_unfreeze(&mut tx, &change).await?;
                        None
                    }
                }
            }
        };
        if let Some(e) = refusal {
            error_details.push(CustomerErrorDetail {
                error_code: e.code,
                error_msg: e.msg,
                id: id.clone(),
            });
        }
    }
    tx.commit().await?;
    Ok(Json(BatchResponse { error_details }).into_response())
}

/// What a freeze decision needs to know about a customer.
#[derive(Clone, Copy, Debug)]
pub(super) struct FreezeState {
    /// The current freeze type, when frozen.
    pub frozen: Option<FreezeType>,
}

/// Locks customer `id` for the rest of the transaction ([`lock_row`]) and
/// reads its freeze state, or `None` when it is unknown.
pub(super) async fn lock_customer(
    conn: &mut AnyConnection,
    id: &str,
) -> Result<Option<FreezeState>, ApiError> {
    lock_row(conn, id).await?;
    let Some(row) = sqlx::query("SELECT frozen, freeze_type FROM customers WHERE id = $1")
        .bind(id.to_owned())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let corrupt = |e: crate::model::UnknownValue| {
        ApiError::from(crate::store::StoreError::Corrupt(e.to_string()))
    };
    let frozen = crate::store::flag(&row, "frozen")?;
    let freeze_type = row
        .try_get::<Option<String>, _>("freeze_type")?
        .map(|t| t.parse::<FreezeType>())
        .transpose()
        .map_err(corrupt)?;
    Ok(Some(FreezeState {
        // A frozen customer without a recorded type was frozen by account.
        frozen: frozen.then(|| freeze_type.unwrap_or(FreezeType::Account)),
    }))
}

/// Takes the lock on customer `id`'s row until the transaction ends (a no-op
/// write: a row lock on PostgreSQL, the write lock on SQLite). Harmless for
/// unknown ids.
pub(super) async fn lock_row(conn: &mut AnyConnection, id: &str) -> Result<(), ApiError> {
    sqlx::query("UPDATE customers SET frozen = frozen WHERE id = $1")
        .bind(id.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Freezes a customer (and, by type, its resources) and records it.
pub(super) async fn apply_freeze(conn: &mut AnyConnection, c: &Change<'_>) -> Result<(), ApiError> {
    sqlx::query("UPDATE customers SET frozen = $2, freeze_type = $3 WHERE id = $1")
        .bind(c.customer_id.to_owned())
        .bind(true)
        .bind(c.freeze_type.as_str())
        .execute(&mut *conn)
        .await?;
    if c.freeze_type == FreezeType::AccountAndResource {
        sqlx::query(
            "UPDATE resources SET status_before_freeze = status, status = 'frozen'
             WHERE customer_id = $1 AND status IN ('in_use', 'stopped')",
        )
        .bind(c.customer_id.to_owned())
        .execute(&mut *conn)
        .await?;
    }
    record(conn, "freeze", c).await
}

/// Unfreezes a customer (and, by type, its resources) and records it.
pub(super) async fn apply_unfreeze(
    conn: &mut AnyConnection,
    c: &Change<'_>,
) -> Result<(), ApiError> {
    sqlx::query("UPDATE customers SET frozen = $2, freeze_type = NULL WHERE id = $1")
        .bind(c.customer_id.to_owned())
        .bind(false)
        .execute(&mut *conn)
        .await?;
    if c.freeze_type == FreezeType::AccountAndResource {
        sqlx::query(
            "UPDATE resources SET status = COALESCE(status_before_freeze, 'in_use'),
                status_before_freeze = NULL
             WHERE customer_id = $1 AND status = 'frozen'",
        )
        .bind(c.customer_id.to_owned())
        .execute(&mut *conn)
        .await?;
    }
    record(conn, "unfreeze", c).await
}

async fn record(conn: &mut AnyConnection, action: &str, c: &Change<'_>) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO freeze_records (customer_id, action, freeze_type, reason, via, partner_id,
            operator_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(c.customer_id.to_owned())
    .bind(action.to_owned())
    .bind(c.freeze_type.as_str())
    .bind(c.reason.to_owned())
    .bind(c.via)
    .bind(c.identity.partner.clone())
    .bind(c.identity.acting_operator().map(str::to_owned))
    .bind(c.now.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}
