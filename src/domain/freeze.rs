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
use crate::catalog::FreezeChange;
use crate::store::domain::{FreezeRequest, Refusal};
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

/// CustomerErrorDetail.
#[derive(Debug, Serialize, JsonSchema)]
struct CustomerErrorDetail {
    error_code: String,
    error_msg: String,
    id: String,
}

/// Freeze/UnfreezeSubCustomersResponse.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct BatchResponse {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    error_details: Vec<CustomerErrorDetail>,
}

/// `POST /v2/partners/sub-customers/freeze`.
pub(super) async fn freeze(
    state: &DomainState,
    served: &Served,
    req: FreezeChange,
) -> Result<Response, ApiError> {
    batch(state, served, true, &req).await
}

/// `POST /v2/partners/sub-customers/unfreeze`.
pub(super) async fn unfreeze(
    state: &DomainState,
    served: &Served,
    req: FreezeChange,
) -> Result<Response, ApiError> {
    batch(state, served, false, &req).await
}

/// Applies one direction to every id in one transaction, answering the
/// per-id refusals.
async fn batch(
    state: &DomainState,
    served: &Served,
    freeze: bool,
    req: &FreezeChange,
) -> Result<Response, ApiError> {
    let outcome = state
        .store
        .change_freeze(&FreezeRequest {
            freeze,
            customer_ids: &req.customer_ids,
            freeze_type: req.freeze_type,
            reason: &req.reason,
            partner: served.identity.partner.as_deref(),
            operator: served.identity.acting_operator(),
        })
        .await?;
    let error_details = outcome
        .refused
        .into_iter()
        .map(|(id, refusal)| {
            let e = match refusal {
                Refusal::Unknown => ApiError::denied(),
                Refusal::AlreadyFrozen(current) => ApiError::conflict(
                    codes::CONFLICT,
                    format!("The customer is already frozen ({current})."),
                ),
                Refusal::NotFrozen => {
                    ApiError::conflict(codes::CONFLICT, "The customer is not frozen.")
                }
                Refusal::FrozenWith(current) => ApiError::conflict(
                    codes::CONFLICT,
                    format!(
                        "The customer is frozen with type {current}; unfreeze_type must match."
                    ),
                ),
            };
            CustomerErrorDetail {
                error_code: e.code,
                error_msg: e.msg,
                id,
            }
        })
        .collect();
    Ok(Json(BatchResponse { error_details }).into_response())
}
