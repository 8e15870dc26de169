//! FreezeSubCustomers / UnfreezeSubCustomers: `POST /v2/partners/sub-customers/freeze`
//! and `.../unfreeze`.
//!
//! A request names 1..10 distinct `customer_ids`, a `reason` (1..256
//! characters, required) and `freeze_type` / `unfreeze_type` (`ACCOUNT`, the
//! default, or `ACCOUNT_AND_RESOURCE`). A malformed request is refused whole
//! (400) and changes nothing. A well-formed one is answered **200**, as the
//! public API does: `{}` when every customer changed, otherwise
//! `{"error_details": [{"id", "error_code", "error_msg"}, ...]}` with one entry
//! per customer that did not change (even when none did); the others are
//! changed, all in one transaction. Per-id refusals:
//!
//! | case | error_code |
//! |---|---|
//! | unknown id, or a customer outside the caller's scope (indistinguishable) | `CBC.0151` |
//! | referral customer (freezing applies to resale customers only) | `CBC.99005024` |
//! | freeze: already frozen; unfreeze: not frozen, or frozen with the other type | `CBC.30000067` |
//!
//! Freezing with `ACCOUNT_AND_RESOURCE` also freezes the customer's resources
//! that are `in_use` or `stopped`, remembering each one's status
//! (`resources.status_before_freeze`); unfreezing with the same type puts
//! each frozen resource back to that status (`in_use` when none was recorded,
//! as for resources seeded frozen). Closed and expired resources are left
//! alone. Every change writes a `freeze_records` row: customer, action, type,
//! reason, the operator and partner from the identity assertion, time.

use super::extract::{non_empty, ApiJson, Caller};
use super::scope::PartnerScope;
use super::DomainState;
use crate::api_error::{codes, ApiError};
use crate::assertion::Identity;
use crate::model::{Association, FreezeType};
use crate::time;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::{AnyConnection, Row};

/// The most customers one freeze or unfreeze call may name (public limit).
pub const MAX_IDS: usize = 10;
/// The longest reason accepted, in characters.
pub const MAX_REASON: usize = 256;

pub fn routes() -> Router<DomainState> {
    Router::new()
        .route("/v2/partners/sub-customers/freeze", post(freeze))
        .route("/v2/partners/sub-customers/unfreeze", post(unfreeze))
}

/// FreezeSubCustomersReq.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FreezeReq {
    customer_ids: Option<Vec<String>>,
    reason: Option<String>,
    indirect_partner_id: Option<String>,
    freeze_type: Option<String>,
}

/// UnfreezeSubCustomersReq.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnfreezeReq {
    customer_ids: Option<Vec<String>>,
    reason: Option<String>,
    indirect_partner_id: Option<String>,
    unfreeze_type: Option<String>,
}

/// The two bodies differ only in the name of the type field.
impl From<UnfreezeReq> for FreezeReq {
    fn from(r: UnfreezeReq) -> Self {
        FreezeReq {
            customer_ids: r.customer_ids,
            reason: r.reason,
            indirect_partner_id: r.indirect_partner_id,
            freeze_type: r.unfreeze_type,
        }
    }
}

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

/// 403 CBC.99005024: the operation does not apply to the customer's
/// association type. 403, as the gateway answers when its policy refuses the
/// same request, so a client sees one answer whichever layer refuses.
pub(super) fn wrong_association(msg: &str) -> ApiError {
    ApiError::new(http::StatusCode::FORBIDDEN, codes::WRONG_ASSOCIATION, msg)
}

/// Parses `freeze_type` / `unfreeze_type` (absent or empty: `ACCOUNT`).
fn parse_freeze_type(field: &str, value: Option<String>) -> Result<FreezeType, ApiError> {
    match non_empty(value) {
        None => Ok(FreezeType::Account),
        Some(v) => v.trim().parse().map_err(|_| {
            ApiError::invalid(format!("{field} must be ACCOUNT or ACCOUNT_AND_RESOURCE"))
        }),
    }
}

/// Checks the id list: 1..=10 distinct, non-empty ids of at most 64 characters.
fn check_ids(ids: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let ids = ids.ok_or_else(|| ApiError::parameter("customer_ids is required"))?;
    if ids.is_empty() || ids.len() > MAX_IDS {
        return Err(ApiError::invalid(format!(
            "customer_ids must hold 1 to {MAX_IDS} ids"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for id in &ids {
        if id.trim().is_empty() || id.chars().count() > 64 {
            return Err(ApiError::invalid(
                "each of customer_ids must be 1 to 64 characters",
            ));
        }
        if !seen.insert(id.as_str()) {
            return Err(ApiError::invalid(format!(
                "customer_ids names {id} more than once"
            )));
        }
    }
    Ok(ids)
}

/// Checks the reason: required, 1..=256 characters.
fn check_reason(reason: Option<String>) -> Result<String, ApiError> {
    let reason = non_empty(reason).ok_or_else(|| ApiError::parameter("reason is required"))?;
    if reason.chars().count() > MAX_REASON {
        return Err(ApiError::invalid(format!(
            "reason must be at most {MAX_REASON} characters"
        )));
    }
    Ok(reason)
}

async fn freeze(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiJson(req): ApiJson<FreezeReq>,
) -> Result<Json<BatchResponse>, ApiError> {
    checked_batch(&state, &claims.identity, Direction::Freeze, req).await
}

async fn unfreeze(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiJson(req): ApiJson<UnfreezeReq>,
) -> Result<Json<BatchResponse>, ApiError> {
    checked_batch(&state, &claims.identity, Direction::Unfreeze, req.into()).await
}

/// Checks a freeze or unfreeze request whole (a malformed one changes
/// nothing), then runs the batch.
async fn checked_batch(
    state: &DomainState,
    identity: &Identity,
    direction: Direction,
    req: FreezeReq,
) -> Result<Json<BatchResponse>, ApiError> {
    let scope = PartnerScope::of(identity)?;
    let ids = check_ids(req.customer_ids)?;
    let reason = check_reason(req.reason)?;
    let type_field = match direction {
        Direction::Freeze => "freeze_type",
        Direction::Unfreeze => "unfreeze_type",
    };
    let freeze_type = parse_freeze_type(type_field, req.freeze_type)?;
    let scope = scope
        .narrowed(&state.store, non_empty(req.indirect_partner_id).as_deref())
        .await?;
    batch(
        state,
        &scope,
        identity,
        direction,
        &ids,
        &reason,
        freeze_type,
    )
    .await
}

/// Applies one direction to every id in one transaction, collecting per-id refusals.
async fn batch(
    state: &DomainState,
    scope: &PartnerScope,
    identity: &Identity,
    direction: Direction,
    ids: &[String],
    reason: &str,
    freeze_type: FreezeType,
) -> Result<Json<BatchResponse>, ApiError> {
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
        let refusal = match lock_customer(&mut tx, scope, id).await? {
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
                        _,
                        FreezeState {
                            association: Association::Referral,
                            ..
                        },
                    ) => Some(wrong_association(
                        "Freezing applies only to resale (association type 3) customers.",
                    )),
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
    Ok(Json(BatchResponse { error_details }))
}

/// What a freeze decision needs to know about a customer.
#[derive(Clone, Copy, Debug)]
pub(super) struct FreezeState {
    pub association: Association,
    /// The current freeze type, when frozen.
    pub frozen: Option<FreezeType>,
}

/// Locks customer `id` for the rest of the transaction ([`lock_row`]) and
/// reads its freeze state, or `None` when it is unknown or outside `scope`.
pub(super) async fn lock_customer(
    conn: &mut AnyConnection,
    scope: &PartnerScope,
    id: &str,
) -> Result<Option<FreezeState>, ApiError> {
    lock_row(conn, id).await?;
    if !scope.sees_customer(&mut *conn, id).await? {
        return Ok(None);
    }
    let row = sqlx::query("SELECT association, frozen, freeze_type FROM customers WHERE id = $1")
        .bind(id.to_owned())
        .fetch_one(&mut *conn)
        .await?;
    let corrupt = |e: crate::model::UnknownValue| {
        ApiError::from(crate::store::StoreError::Corrupt(e.to_string()))
    };
    let association: Association = row
        .try_get::<String, _>("association")?
        .parse()
        .map_err(corrupt)?;
    let frozen = crate::store::flag(&row, "frozen")?;
    let freeze_type = row
        .try_get::<Option<String>, _>("freeze_type")?
        .map(|t| t.parse::<FreezeType>())
        .transpose()
        .map_err(corrupt)?;
    Ok(Some(FreezeState {
        association,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_are_checked_before_anything_changes() {
        assert_eq!(check_ids(None).unwrap_err().code, codes::PARAMETER_ERROR);
        assert_eq!(
            check_ids(Some(vec![])).unwrap_err().code,
            codes::INVALID_PARAMETER
        );
        let eleven: Vec<String> = (0..11).map(|i| format!("c{i}")).collect();
        assert!(check_ids(Some(eleven)).is_err());
        assert!(check_ids(Some(vec!["a".into(), "a".into()])).is_err());
        assert!(check_ids(Some(vec![" ".into()])).is_err());
        assert_eq!(
            check_ids(Some(vec!["a".into(), "b".into()])).unwrap().len(),
            2
        );
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(check_reason(None).is_err());
        assert!(check_reason(Some("  ".into())).is_err());
        assert!(check_reason(Some("x".repeat(257))).is_err());
        assert!(check_reason(Some("é".repeat(256))).is_ok());
    }
}
