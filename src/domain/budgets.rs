//! Customer budgets: ShowSubCustomerBudget, ListSubCustomerBudget,
//! ListSubCustomerBudgetRecords and UpdateSubCustomerBudget.
//!
//! Rules the data imposes (who may set a budget, and a reseller's quotas, are
//! policy matters decided by the gateway):
//! - Budgets exist only for resale (`association_type` 3) customers. Showing
//!   or setting one for a referral customer is 403 CBC.99005024 (the answer
//!   the gateway's policy gives for the same request); ListSubCustomerBudget
//!   leaves such ids out, as the public API does.
//! - `budget_amount`: a JSON number (what the SDK sends) or a decimal string,
//!   read exactly, in (0, 2147483647] with at most two places, else 400
//!   CBC.0100. `budget_type`: `MONTHLY` (default) or `PACKAGE`.
//!   `cancel_partner_frozen`: `"0"` (default) or `"1"`. `frozen_operate_type`:
//!   0 or 1, kept with the budget (absent: unchanged). Other values: 400 CBC.0101.
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
//!   ListSubCustomerBudget leaves it out.
//! - Unknown customers and customers outside the caller's scope: 403 CBC.0151.
//!
//! The update answers 200 `{}` (the SDK reads no field of it).

use super::extract::{non_empty, ApiJson, ApiQuery, Caller, Paging};
use super::freeze::{self, wrong_association, Change};
use super::query::{self, bind_all, Bind, Where};
use super::scope::PartnerScope;
use super::wire::{self, AmountInput};
use super::DomainState;
use crate::api_error::ApiError;
use crate::model::{Association, BudgetType};
use crate::money::{to_cents, MAX_BUDGET};
use crate::time::{self, Timestamp};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The most ids ListSubCustomerBudget takes (public limit).
pub const MAX_BUDGET_IDS: usize = 100;

pub fn routes() -> Router<DomainState> {
    Router::new()
        .route(
            "/v2/partners/sub-customers/budget",
            get(show_budget).post(update_budget),
        )
        .route(
            "/v2/partners/sub-customers/budget/query",
            post(list_budgets),
        )
        .route(
            "/v2/partners/sub-customers/budget/records",
            get(list_records),
        )
}

/// Checks a required customer id (1..=64 characters).
fn required_customer_id(value: Option<String>) -> Result<String, ApiError> {
    let id = non_empty(value).ok_or_else(|| ApiError::parameter("customer_id is required"))?;
    if id.chars().count() > 64 {
        return Err(ApiError::invalid(
            "customer_id must be at most 64 characters",
        ));
    }
    Ok(id)
}

/// Parses an optional `budget_type`; absent or empty gives `None`.
fn parse_budget_type(value: Option<String>) -> Result<Option<BudgetType>, ApiError> {
    non_empty(value)
        .map(|v| {
            v.trim()
                .parse::<BudgetType>()
                .map_err(|_| ApiError::invalid("budget_type must be MONTHLY or PACKAGE"))
        })
        .transpose()
}

/// The customer's association, when it is within `scope` (else 403 CBC.0151).
async fn association_in_scope(
    state: &DomainState,
    scope: &PartnerScope,
    customer_id: &str,
) -> Result<Association, ApiError> {
    if !scope.sees_customer(state.store.pool(), customer_id).await? {
        return Err(ApiError::denied());
    }
    let row = sqlx::query("SELECT association FROM customers WHERE id = $1")
        .bind(customer_id.to_owned())
        .fetch_one(state.store.pool())
        .await?;
    query::parse(&row, "association")
}

// ---- ShowSubCustomerBudget ---------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    customer_id: Option<String>,
    indirect_partner_id: Option<String>,
}

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

async fn show_budget(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiQuery(q): ApiQuery<ShowQuery>,
) -> Result<Json<ShowBudgetResponse>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    let customer_id = required_customer_id(q.customer_id)?;
    let scope = scope
        .narrowed(&state.store, non_empty(q.indirect_partner_id).as_deref())
        .await?;
    if association_in_scope(&state, &scope, &customer_id).await? != Association::Reseller {
        return Err(wrong_association(
            "Budgets apply only to resale (association type 3) customers.",
        ));
    }
    let row = sqlx::query("SELECT * FROM budgets WHERE customer_id = $1")
        .bind(customer_id)
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
    Ok(Json(resp))
}

// ---- ListSubCustomerBudget ---------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListBudgetReq {
    customer_ids: Option<Vec<String>>,
    indirect_partner_id: Option<String>,
}

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

async fn list_budgets(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiJson(req): ApiJson<ListBudgetReq>,
) -> Result<Json<ListBudgetResponse>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    let ids = req
        .customer_ids
        .ok_or_else(|| ApiError::parameter("customer_ids is required"))?;
    if ids.is_empty() || ids.len() > MAX_BUDGET_IDS {
        return Err(ApiError::invalid(format!(
            "customer_ids must hold 1 to {MAX_BUDGET_IDS} ids"
        )));
    }
    if ids
        .iter()
        .any(|id| id.trim().is_empty() || id.chars().count() > 64)
    {
        return Err(ApiError::invalid(
            "each of customer_ids must be 1 to 64 characters",
        ));
    }
    let scope = scope
        .narrowed(&state.store, non_empty(req.indirect_partner_id).as_deref())
        .await?;
    let mut f = Where::new();
    f.is_in("c.id", ids.iter().map(|id| Bind::Text(id.clone())));
    f.eq(
        "c.association",
        Bind::Text(Association::Reseller.as_str().to_owned()),
    );
    f.scope(&scope, "c");
    let sql = format!(
        "SELECT b.* FROM budgets b JOIN customers c ON c.id = b.customer_id{}",
        f.sql()
    );
    let rows = bind_all(sqlx::query(&sql), f.binds())
        .fetch_all(state.store.pool())
        .await?;
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
    budget_infos.sort_by_key(|b| ids.iter().position(|id| *id == b.customer_id));
    Ok(Json(ListBudgetResponse {
        measure_id: wire::MEASURE_ID,
        currency: wire::CURRENCY,
        budget_infos,
    }))
}

// ---- ListSubCustomerBudgetRecords --------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordsQuery {
    customer_id: Option<String>,
    indirect_partner_id: Option<String>,
    operation_type: Option<String>,
    budget_type: Option<String>,
    offset: Option<i64>,
    limit: Option<i64>,
}

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

async fn list_records(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiQuery(q): ApiQuery<RecordsQuery>,
) -> Result<Json<RecordsResponse>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    let customer_id = required_customer_id(q.customer_id)?;
    let paging = Paging::new(q.offset, q.limit)?;
    // Absent means all; an empty string is invalid (public API).
    let operation_type = match q.operation_type.as_deref() {
        None => None,
        Some(v @ ("SETTING" | "DELETE")) => Some(v),
        Some(_) => {
            return Err(ApiError::invalid(
                "operation_type must be SETTING or DELETE",
            ))
        }
    };
    let budget_type = match q.budget_type {
        None => None,
        Some(v) => Some(
            v.parse::<BudgetType>()
                .map_err(|_| ApiError::invalid("budget_type must be MONTHLY or PACKAGE"))?,
        ),
    };
    let scope = scope
        .narrowed(&state.store, non_empty(q.indirect_partner_id).as_deref())
        .await?;
    if !scope
        .sees_customer(state.store.pool(), &customer_id)
        .await?
    {
        return Err(ApiError::denied());
    }
    let mut f = Where::new();
    f.eq("r.customer_id", Bind::Text(customer_id));
    if let Some(t) = budget_type {
        f.eq("r.budget_type", Bind::Text(t.as_str().to_owned()));
    }
    if operation_type == Some("DELETE") {
        f.raw("1 = 0");
    }
    let pool = state.store.pool();
    let total_count = f.count(pool, "FROM budget_records r").await?;
    let rows = f
        .fetch_page(
            pool,
            "SELECT r.*, o.name AS operator_name, p.name AS partner_name
             FROM budget_records r
             LEFT JOIN operators o ON o.id = r.operator_id
             LEFT JOIN partners p ON p.id = r.partner_id",
            "ORDER BY r.created_at DESC, r.id DESC",
            paging,
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
    }))
}

// ---- UpdateSubCustomerBudget -------------------------------------------------

/// ModSubCustomerBudgetReq.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBudgetReq {
    customer_id: Option<String>,
    budget_amount: Option<AmountInput>,
    cancel_partner_frozen: Option<String>,
    indirect_partner_id: Option<String>,
    budget_type: Option<String>,
    frozen_operate_type: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Empty {}

/// The reason recorded when a budget update lifts a freeze.
const BUDGET_UNFREEZE_REASON: &str = "budget updated with cancel_partner_frozen = 1";

async fn update_budget(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiJson(req): ApiJson<UpdateBudgetReq>,
) -> Result<Json<Empty>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    let customer_id = required_customer_id(req.customer_id)?;
    let amount = req
        .budget_amount
        .ok_or_else(|| ApiError::parameter("budget_amount is required"))?
        .0;
    if amount <= Decimal::ZERO || amount > MAX_BUDGET {
        return Err(ApiError::parameter(
            "budget_amount must be more than 0 and at most 2147483647",
        ));
    }
    let cents = to_cents(amount).map_err(|e| ApiError::parameter(format!("budget_amount: {e}")))?;
    let budget_type = parse_budget_type(req.budget_type)?.unwrap_or(BudgetType::Monthly);
    let cancel_frozen = match non_empty(req.cancel_partner_frozen)
        .as_deref()
        .map(str::trim)
    {
        None | Some("0") => false,
        Some("1") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "cancel_partner_frozen must be \"0\" or \"1\"",
            ))
        }
    };
    if let Some(t) = req.frozen_operate_type {
        if !(0..=1).contains(&t) {
            return Err(ApiError::invalid("frozen_operate_type must be 0 or 1"));
        }
    }
    let scope = scope
        .narrowed(&state.store, non_empty(req.indirect_partner_id).as_deref())
        .await?;

    let now = time::format(time::now());
    let mut tx = state.store.pool().begin().await?;
    let Some(current) = freeze::lock_customer(&mut tx, &scope, &customer_id).await? else {
        return Err(ApiError::denied());
    };
    if current.association != Association::Reseller {
        return Err(wrong_association(
            "Budgets apply only to resale (association type 3) customers.",
        ));
    }
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
    let identity = &claims.identity;
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
    Ok(Json(Empty {}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_type_defaults_and_refusals() {
        assert_eq!(parse_budget_type(None).unwrap(), None);
        assert_eq!(parse_budget_type(Some(String::new())).unwrap(), None);
        assert_eq!(
            parse_budget_type(Some("PACKAGE".into())).unwrap(),
            Some(BudgetType::Package)
        );
        assert!(parse_budget_type(Some("monthly".into())).is_err());
    }
}
