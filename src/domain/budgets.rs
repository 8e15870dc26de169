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
use super::freeze::{self, Change};
use super::lists::{page_or_answer, List};
use super::query::{self, Bind, Where};
use super::wire;
use super::DomainState;
use crate::api_error::ApiError;
use crate::catalog::{
    ListSubCustomerBudget, ListSubCustomerBudgetRecords, ShowSubCustomerBudget,
    UpdateSubCustomerBudget,
};
use crate::model::BudgetType;
use crate::money::to_cents;
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;

/// 403 CBC.0151 unless customer `id` exists (it may have vanished since the
/// gateway decided).
async fn existing(state: &DomainState, id: &str) -> Result<(), ApiError> {
    match state.store.customer(&id.into()).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::denied()),
    }
}

// ---- ShowSubCustomerBudget ---------------------------------------------------

/// ShowSubCustomerBudgetResponse (+ `frozen_operate_type`, an extension).
#[derive(Debug, Serialize)]
struct ShowBudgetResponse {
    #[serde(serialize_with = "wire::opt_money")]
    budget_amount: Option<Decimal>,
    #[serde(serialize_with = "wire::opt_money")]
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
    existing(state, &req.customer_id).await?;
    let row = sqlx::query("SELECT * FROM budgets WHERE customer_id = $1")
        .bind(req.customer_id)
        .fetch_optional(state.store.pool())
        .await?;
    let mut resp = ShowBudgetResponse {
        budget_amount: None,
        used_amount: None,
        measure_id: wire::MEASURE_ID,
        currency: wire::CURRENCY,
        budget_type: None,
        frozen_operate_type: None,
    };
    if let Some(row) = row {
        resp.budget_amount = Some(query::money(&row, "amount_cents")?);
        resp.used_amount = Some(query::money(&row, "used_cents")?);
        resp.budget_type = Some(query::parse(&row, "budget_type")?);
        resp.frozen_operate_type = query::opt_int(&row, "frozen_operate_type")?;
    }
    Ok(Json(resp).into_response())
}

// ---- ListSubCustomerBudget ---------------------------------------------------

#[derive(Debug, Serialize)]
struct BudgetInfo {
    customer_id: String,
    #[serde(serialize_with = "wire::money")]
    budget_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    used_amount: Decimal,
    budget_type: BudgetType,
}

#[derive(Debug, Serialize)]
struct ListBudgetResponse {
    measure_id: i64,
    currency: &'static str,
    budget_infos: Vec<BudgetInfo>,
}

pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    req: ListSubCustomerBudget,
) -> Result<Response, ApiError> {
    let mut f = Where::new();
    f.is_in(
        "c.id",
        req.customer_ids.iter().map(|id| Bind::Text(id.clone())),
    );
    if let Some(reseller) = &req.indirect_partner_id {
        f.eq("c.partner_id", Bind::Text(reseller.clone()));
    }
    let list = List {
        item: EntityType::Customer,
        alias: "c",
        from: "FROM budgets b JOIN customers c ON c.id = b.customer_id",
        columns: "b.*",
        filters: f,
        order_by: "ORDER BY c.id",
    };
    let (_, rows) = page_or_answer!(list.run(state.store.pool(), served, None).await?);
    let mut budget_infos = rows
        .iter()
        .map(|row| {
            Ok(BudgetInfo {
                customer_id: query::text(row, "customer_id")?,
                budget_amount: query::money(row, "amount_cents")?,
                used_amount: query::money(row, "used_cents")?,
                budget_type: query::parse(row, "budget_type")?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
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
#[derive(Debug, Serialize)]
struct BudgetRecordInfo {
    #[serde(serialize_with = "wire::money")]
    budget_amount: Decimal,
    operation_type: &'static str,
    #[serde(serialize_with = "wire::time")]
    operation_time: Timestamp,
    /// The operator's id (their login name).
    operator: Option<String>,
    budget_type: BudgetType,
    partner_corp_name: Option<String>,
    partner_account_name: Option<String>,
    #[serde(serialize_with = "wire::opt_money")]
    old_budget_amount: Option<Decimal>,
    operator_name: Option<String>,
    cancel_partner_frozen: &'static str,
}

#[derive(Debug, Serialize)]
struct RecordsResponse {
    total_count: i64,
    measure_id: i64,
    currency: &'static str,
    record_list: Vec<BudgetRecordInfo>,
}

pub(super) async fn records(
    state: &DomainState,
    req: ListSubCustomerBudgetRecords,
) -> Result<Response, ApiError> {
    existing(state, &req.customer_id).await?;
    let mut f = Where::new();
    f.eq("r.customer_id", Bind::Text(req.customer_id));
    if let Some(t) = req.budget_type {
        f.eq("r.budget_type", Bind::Text(t.as_str().to_owned()));
    }
    if req.deletions_only {
        f.raw("1 = 0");
    }
    let pool = state.store.pool();
    let total_count = f.count(pool, "FROM budget_records r").await?;
    let rows = f
        .fetch(
            pool,
            "SELECT r.*, o.name AS operator_name, p.name AS partner_name
             FROM budget_records r
             LEFT JOIN operators o ON o.id = r.operator_id
             LEFT JOIN partners p ON p.id = r.partner_id",
            "ORDER BY r.created_at DESC, r.id DESC",
            Some(req.paging),
        )
        .await?;
    let record_list = rows
        .iter()
        .map(|row| {
            Ok(BudgetRecordInfo {
                budget_amount: query::money(row, "new_amount_cents")?,
                operation_type: "SETTING",
                operation_time: query::ts(row, "created_at")?,
                operator: query::opt_text(row, "operator_id")?,
                budget_type: query::parse(row, "budget_type")?,
                partner_corp_name: query::opt_text(row, "partner_name")?,
                partner_account_name: query::opt_text(row, "partner_id")?,
                old_budget_amount: query::opt_money(row, "old_amount_cents")?,
                operator_name: query::opt_text(row, "operator_name")?,
                cancel_partner_frozen: if crate::store::flag(row, "cancel_partner_frozen")? {
                    "1"
                } else {
                    "0"
                },
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(RecordsResponse {
        total_count,
        measure_id: wire::MEASURE_ID,
        currency: wire::CURRENCY,
        record_list,
    })
    .into_response())
}

// ---- UpdateSubCustomerBudget -------------------------------------------------

#[derive(Debug, Serialize)]
struct Empty {}

/// The reason recorded when a budget update lifts a freeze.
const BUDGET_UNFREEZE_REASON: &str = "budget updated with cancel_partner_frozen = 1";

pub(super) async fn update(
    state: &DomainState,
    served: &Served,
    req: UpdateSubCustomerBudget,
) -> Result<Response, ApiError> {
    let customer_id = req.customer_id;
    let cents =
        to_cents(req.amount).map_err(|e| ApiError::parameter(format!("budget_amount: {e}")))?;
    let budget_type = req.budget_type;
    let cancel_frozen = req.cancel_partner_frozen;
    let now = time::format(time::now());
    let mut tx = state.store.pool().begin().await?;
    let Some(current) = freeze::lock_customer(&mut tx, &customer_id).await? else {
        return Err(ApiError::denied());
    };
    let old: Option<i64> =
        sqlx::query_scalar("SELECT amount_cents FROM budgets WHERE customer_id = $1")
            .bind(customer_id.clone())
            .fetch_optional(&mut *tx)
            .await?;
    sqlx::query(
        "INSERT INTO budgets (customer_id, budget_type, amount_cents, used_cents, updated_at,
            frozen_operate_type)
         VALUES ($1, $2, $3, 0, $4, $5)
         ON CONFLICT (customer_id) DO UPDATE SET budget_type = excluded.budget_type,
            amount_cents = excluded.amount_cents, updated_at = excluded.updated_at,
            frozen_operate_type = COALESCE(excluded.frozen_operate_type, budgets.frozen_operate_type)",
    )
    .bind(customer_id.clone())
    .bind(budget_type.as_str())
    .bind(cents)
    .bind(now.clone())
    .bind(req.frozen_operate_type)
    .execute(&mut *tx)
    .await?;
    let identity = &served.identity;
    sqlx::query(
        "INSERT INTO budget_records (customer_id, partner_id, operator_id, budget_type,
            old_amount_cents, new_amount_cents, cancel_partner_frozen, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(customer_id.clone())
    .bind(identity.partner.clone())
    .bind(identity.acting_operator().map(str::to_owned))
    .bind(budget_type.as_str())
    .bind(old)
    .bind(cents)
    .bind(cancel_frozen)
    .bind(now.clone())
    .execute(&mut *tx)
    .await?;
    if cancel_frozen {
        if let Some(freeze_type) = current.frozen {
            let change = Change {
                customer_id: &customer_id,
                freeze_type,
                reason: BUDGET_UNFREEZE_REASON,
                via: "budget",
                identity,
                now: &now,
            };
            freeze::apply_unfreeze(&mut tx, &change).await?;
        }
    }
    tx.commit().await?;
    Ok(Json(Empty {}).into_response())
}
