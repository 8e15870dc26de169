//! Customer budgets: ShowSubCustomerBudget, ListSubCustomerBudget,
//! ListSubCustomerBudgetRecords and UpdateSubCustomerBudget.
//!
//! Who may view or set a budget, for which customers (resale ones, R3) and
//! within which quota, is the policies'; the store keeps the data's rules:
//! - `budget_amount` in (0, 2147483647] with at most two places, `budget_type`
//!   `MONTHLY` (default) or `PACKAGE`, `cancel_partner_frozen` `"0"`/`"1"`,
//!   `frozen_operate_type` 0 or 1 (absent: unchanged): the catalog's checks.
//! - Setting replaces amount and type; the used amount is billing data and is
//!   kept (a new budget starts at 0 used).
//! - Every update writes a `budget_records` row (customer, type, old and new
//!   amount, `cancel_partner_frozen`, the operator and partner from the
//!   identity assertion, time) in the same transaction; the records are listed
//!   newest first by ListSubCustomerBudgetRecords with `operation_type`
//!   `SETTING` (the store never deletes budgets, so `DELETE` matches nothing).
//! - `cancel_partner_frozen = "1"` unfreezes a frozen customer (and its
//!   resources, by its freeze type) in the same transaction, recorded in
//!   `freeze_records` with `via = budget`; for a customer that is not frozen
//!   it changes nothing.
//! - A customer without a budget: ShowSubCustomerBudget answers 200 with
//!   `budget_amount`, `used_amount` and `budget_type` `null`;
//!   ListSubCustomerBudget leaves it out, as it leaves out every customer the
//!   caller may not view (ViewBudget per customer).
//! - A customer that vanished after the gateway's decision: 403 CBC.0151.
//!
//! The update answers 200 `{}` (the SDK reads no field of it).

use super::extract::Served;
use super::lists::page_or_answer;
use super::wire;
use super::DomainState;
use crate::api_error::ApiError;
use crate::catalog::{
    ListSubCustomerBudget, ListSubCustomerBudgetRecords, ShowSubCustomerBudget,
    UpdateSubCustomerBudget,
};
use crate::ids::CustomerId;
use crate::model::BudgetType;
use crate::money::to_cents;
use crate::store::domain::{BudgetRecordQuery, BudgetUpdate};
use crate::time::Timestamp;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Serialize;

/// 403 CBC.0151 unless customer `id` exists (it may have vanished since the
/// gateway decided).
async fn existing(state: &DomainState, id: &CustomerId) -> Result<(), ApiError> {
    match state.store.customer(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::denied()),
    }
}

// ---- ShowSubCustomerBudget ---------------------------------------------------

/// ShowSubCustomerBudgetResponse (+ `frozen_operate_type`, an extension).
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ShowBudgetResponse {
    #[serde(serialize_with = "wire::opt_money")]
    #[schemars(with = "Option<f64>")]
    budget_amount: Option<Decimal>,
    #[serde(serialize_with = "wire::opt_money")]
    #[schemars(with = "Option<f64>")]
    used_amount: Option<Decimal>,
    measure_id: i64,
    currency: &'static str,
    budget_type: Option<BudgetType>,
    frozen_operate_type: Option<i64>,
}

pub(super) async fn show(
    state: &DomainState,
    req: ShowSubCustomerBudget,
) -> Result<Response, ApiError> {
    let id = CustomerId::from(req.customer_id.as_str());
    existing(state, &id).await?;
    let budget = state.store.budget_with_operate_type(&id).await?;
    Ok(Json(match budget {
        Some((b, frozen_operate_type)) => ShowBudgetResponse {
            budget_amount: Some(b.amount),
            used_amount: Some(b.used),
            measure_id: wire::MEASURE_ID,
            currency: wire::CURRENCY,
            budget_type: Some(b.budget_type),
            frozen_operate_type,
        },
        None => ShowBudgetResponse {
            budget_amount: None,
            used_amount: None,
            measure_id: wire::MEASURE_ID,
            currency: wire::CURRENCY,
            budget_type: None,
            frozen_operate_type: None,
        },
    })
    .into_response())
}

// ---- ListSubCustomerBudget ---------------------------------------------------

#[derive(Debug, Serialize, JsonSchema)]
struct BudgetInfo {
    customer_id: String,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    budget_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    used_amount: Decimal,
    budget_type: BudgetType,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct ListBudgetResponse {
    measure_id: i64,
    currency: &'static str,
    budget_infos: Vec<BudgetInfo>,
}

pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    req: ListSubCustomerBudget,
) -> Result<Response, ApiError> {
    let listed = state
        .store
        .list_budgets(
            &req.customer_ids,
            req.indirect_partner_id.as_deref(),
            &served.list,
        )
        .await?;
    let (_, budgets) = page_or_answer!(listed);
    let mut budget_infos: Vec<BudgetInfo> = budgets
        .into_iter()
        .map(|b| BudgetInfo {
            customer_id: b.customer.0,
            budget_amount: b.amount,
            used_amount: b.used,
            budget_type: b.budget_type,
        })
        .collect();
    // In the order asked for.
    budget_infos.sort_by_key(|b| req.customer_ids.iter().position(|id| *id == b.customer_id));
    Ok(Json(ListBudgetResponse {
        measure_id: wire::MEASURE_ID,
        currency: wire::CURRENCY,
        budget_infos,
    })
    .into_response())
}

// ---- ListSubCustomerBudgetRecords --------------------------------------------

/// BudgetRecordInfo (+ extensions: `old_budget_amount`, `operator_name`,
/// `cancel_partner_frozen`).
#[derive(Debug, Serialize, JsonSchema)]
struct BudgetRecordInfo {
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    budget_amount: Decimal,
    operation_type: &'static str,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    operation_time: Timestamp,
    /// The operator's id (their login name).
    operator: Option<String>,
    budget_type: BudgetType,
    partner_corp_name: Option<String>,
    partner_account_name: Option<String>,
    #[serde(serialize_with = "wire::opt_money")]
    #[schemars(with = "Option<f64>")]
    old_budget_amount: Option<Decimal>,
    operator_name: Option<String>,
    cancel_partner_frozen: &'static str,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct RecordsResponse {
    total_count: i64,
    measure_id: i64,
    currency: &'static str,
    record_list: Vec<BudgetRecordInfo>,
}

pub(super) async fn records(
    state: &DomainState,
    req: ListSubCustomerBudgetRecords,
) -> Result<Response, ApiError> {
    let id = CustomerId::from(req.customer_id.as_str());
    existing(state, &id).await?;
    let page = state
        .store
        .budget_records(
            &BudgetRecordQuery {
                customer: &id,
                budget_type: req.budget_type,
                deletions_only: req.deletions_only,
            },
            req.paging,
        )
        .await?;
    let total_count = page.total;
    let record_list = page
        .items
        .into_iter()
        .map(|r| BudgetRecordInfo {
            budget_amount: r.new_amount,
            operation_type: "SETTING",
            operation_time: r.at,
            operator: r.operator_id,
            budget_type: r.budget_type,
            partner_corp_name: r.partner_name,
            partner_account_name: r.partner_id,
            old_budget_amount: r.old_amount,
            operator_name: r.operator_name,
            cancel_partner_frozen: if r.cancel_partner_frozen { "1" } else { "0" },
        })
        .collect();
    Ok(Json(RecordsResponse {
        total_count,
        measure_id: wire::MEASURE_ID,
        currency: wire::CURRENCY,
        record_list,
    })
    .into_response())
}

// ---- UpdateSubCustomerBudget -------------------------------------------------

#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct Empty {}

/// The reason recorded when a budget update lifts a freeze.
const BUDGET_UNFREEZE_REASON: &str = "budget updated with cancel_partner_frozen = 1";

pub(super) async fn update(
    state: &DomainState,
    served: &Served,
    req: UpdateSubCustomerBudget,
) -> Result<Response, ApiError> {
    let amount_cents =
        to_cents(req.amount).map_err(|e| ApiError::parameter(format!("budget_amount: {e}")))?;
    let identity = &served.identity;
    let update = BudgetUpdate {
        customer: &CustomerId::from(req.customer_id.as_str()),
        budget_type: req.budget_type,
        amount_cents,
        frozen_operate_type: req.frozen_operate_type,
        cancel_partner_frozen: req.cancel_partner_frozen,
        partner: identity.partner.as_deref(),
        operator: identity.acting_operator(),
        unfreeze_reason: BUDGET_UNFREEZE_REASON,
    };
    if !state.store.set_budget(&update).await? {
        return Err(ApiError::denied());
    }
    Ok(Json(Empty {}).into_response())
}
