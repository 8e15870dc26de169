//! The customer's own account (`/v2/customer/...`): placing orders, listing
//! its orders and resources, and operating its resources. The caller is the
//! customer principal itself or an assume-role session acting as it
//! ([`own_customer`]); whether a session holds the scope for an action is the
//! gateway's policy decision (R9, R10), not checked here.
//!
//! Decisions where DOMAIN.md is silent:
//! - **Placing an order** (`POST /v2/customer/orders` → 201). Body fields,
//!   unknown ones refused: `charging`, `service_type_code`
//!   (`hws.service.type.<name>`), `product_id` (letters, digits, `.`, `_`,
//!   `-`; at most 64), and for `yearly_monthly` also `period_type` (2 month,
//!   3 year), `period_num` (1..=9 months or 1..=3 years) and `amount` (a
//!   string or number, more than 0, at most 2147483647, two places at most).
//!   A `yearly_monthly` purchase creates a new-purchase order (order type 1)
//!   in status 6, pending payment, with one line item, and its resource,
//!   `in_use` at once and expiring after the period (the store models no
//!   payment step). A `pay_per_use` purchase takes none of period and amount
//!   and only enables the resource: the public model has no orders for
//!   pay-per-use resources (they are billed by usage). The answer is
//!   `{"source_type", "order", "resource"}` with `order` null for pay-per-use.
//!   `source_type` is 2 (agent) when a session places it, else 1 (customer).
//! - **Frozen customers** can neither order nor operate resources: 409 with
//!   CBC.99005036, the code the R9 policy gives the same refusal.
//! - **Activity.** Every order and resource operation by a session writes an
//!   `activities` row in the same transaction as the change: customer,
//!   session, the operator behind it, its partner, the action (`place_order`,
//!   `start_resource`, `stop_resource`, `restart_resource`, `renew_resource`,
//!   `unsubscribe_resource`), the target (order id, or resource id for
//!   pay-per-use purchases and operations), a JSON detail and the time.
//! - **Operations**: the state machine of [`super::resources`]; a resource of
//!   another customer answers like an unknown one (403 CBC.0151). A change
//!   that races with another one on the same resource gets 409 instead of
//!   overwriting it.

use super::extract::{non_empty, ApiJson, ApiQuery, Caller};
use super::orders::{
    order_from_row, order_type_filter, page_of_orders, paging_of, status_filter, OrderBy,
    OrderPage, OrderV2, ORDER_SELECT, ORDER_TYPE_NEW, STATUS_PENDING_PAYMENT,
};
use super::query::{bind_all, Bind, Where};
use super::resources::{
    self, page_of_resources, resource_of, resource_source, Operation, OwnResource, Period,
};
use super::scope::own_customer;
use super::{wire, DomainState};
use crate::api_error::{codes, ApiError};
use crate::assertion::Identity;
use crate::model::{Charging, ResourceStatus};
use crate::money::{to_cents, MAX_BUDGET};
use crate::time::{self, Timestamp};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::{Any, Transaction};

pub fn routes() -> Router<DomainState> {
    Router::new()
        .route(
            "/v2/customer/orders",
            get(list_own_orders).post(place_order),
        )
        .route("/v2/customer/resources", get(list_own_resources))
        .route(
            "/v2/customer/resources/{resource_id}/operations",
            post(operate),
        )
}

/// The refusal code for a frozen customer's orders and operations (as R9's policy).
pub const CUSTOMER_FROZEN: &str = "CBC.99005036";
/// `source_type`: placed by the customer.
const SOURCE_CUSTOMER: i64 = 1;
/// `source_type`: placed by a partner on the customer's behalf (a session).
const SOURCE_AGENT: i64 = 2;
/// Longest `service_type_code` and `product_id`.
const MAX_CODE_LEN: usize = 64;

fn frozen() -> ApiError {
    ApiError::conflict(
        CUSTOMER_FROZEN,
        "The customer account is frozen; it cannot place orders or operate resources until it is unfrozen.",
    )
}

/// The caller's own customer id, checked to exist (a vanished one looks unknown).
async fn own(state: &DomainState, identity: &Identity) -> Result<String, ApiError> {
    let id = own_customer(identity)?;
    match state.store.customer(&id.as_str().into()).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::denied()),
    }
}

/// Whether the customer is frozen, read inside the transaction that changes its data.
async fn is_frozen(tx: &mut Transaction<'static, Any>, customer: &str) -> Result<bool, ApiError> {
    let row = sqlx::query("SELECT frozen FROM customers WHERE id = $1")
        .bind(customer.to_owned())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(ApiError::denied)?;
    Ok(crate::store::flag(&row, "frozen")?)
}

/// Records an on-behalf action of a session (no-op for the customer itself).
async fn record_activity(
    tx: &mut Transaction<'static, Any>,
    identity: &Identity,
    customer: &str,
    action: &str,
    target: &str,
    detail: serde_json::Value,
    now: Timestamp,
) -> Result<(), ApiError> {
    let Some(session) = identity.session_id() else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO activities (customer_id, session_id, operator_id, partner_id, action, target, detail, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(customer.to_owned())
    .bind(session.to_owned())
    .bind(identity.source_operator.clone())
    .bind(identity.partner.clone())
    .bind(action.to_owned())
    .bind(target.to_owned())
    .bind(detail.to_string())
    .bind(time::format(now))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaceOrderBody {
    charging: String,
    service_type_code: String,
    product_id: String,
    period_type: Option<i64>,
    period_num: Option<i64>,
    amount: Option<wire::AmountInput>,
}

/// A validated purchase.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Purchase {
    charging: Charging,
    service_type_code: String,
    product_id: String,
    /// Period and amount, for yearly/monthly purchases.
    subscription: Option<(Period, Decimal)>,
}

fn check_code(name: &str, value: &str, ok: impl Fn(char) -> bool) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::parameter(format!("{name} is required")));
    }
    if v.len() > MAX_CODE_LEN || !v.chars().all(ok) {
        return Err(ApiError::invalid(format!(
            "{name} must be at most {MAX_CODE_LEN} letters, digits, '.', '_' or '-'"
        )));
    }
    Ok(v.to_owned())
}

fn validate(body: PlaceOrderBody) -> Result<Purchase, ApiError> {
    let charging: Charging = body
        .charging
        .parse()
        .map_err(|_| ApiError::invalid("charging must be yearly_monthly or pay_per_use"))?;
    let code_char =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_' || c == '-';
    let service_type_code = check_code("service_type_code", &body.service_type_code, code_char)?;
    if service_type_code
        .strip_prefix("hws.service.type.")
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::invalid(
            "service_type_code must be a service type such as hws.service.type.ec2",
        ));
    }
    let product_id = check_code("product_id", &body.product_id, |c| {
        c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-'
    })?;
    let subscription = match charging {
        Charging::PayPerUse => {
            for (name, given) in [
                ("period_type", body.period_type.is_some()),
                ("period_num", body.period_num.is_some()),
                ("amount", body.amount.is_some()),
            ] {
                if given {
                    return Err(ApiError::invalid(format!(
                        "{name} does not apply to pay_per_use (billed by usage)"
                    )));
                }
            }
            None
        }
        Charging::YearlyMonthly => {
            let period_type = body
                .period_type
                .ok_or_else(|| ApiError::parameter("period_type is required for yearly_monthly"))?;
            let period_num = body
                .period_num
                .ok_or_else(|| ApiError::parameter("period_num is required for yearly_monthly"))?;
            let max = match period_type {
                2 => 9,
                3 => 3,
                _ => {
                    return Err(ApiError::invalid(
                        "period_type must be 2 (month) or 3 (year)",
                    ))
                }
            };
            if !(1..=max).contains(&period_num) {
                return Err(ApiError::invalid(format!(
                    "period_num must be between 1 and {max} for period_type {period_type}"
                )));
            }
            let amount = body
                .amount
                .ok_or_else(|| ApiError::parameter("amount is required for yearly_monthly"))?
                .0;
            if amount <= Decimal::ZERO || amount > MAX_BUDGET {
                return Err(ApiError::invalid(format!(
                    "amount must be more than 0 and at most {MAX_BUDGET}"
                )));
            }
            Some((
                Period {
                    period_type,
                    period_num,
                },
                amount,
            ))
        }
    };
    Ok(Purchase {
        charging,
        service_type_code,
        product_id,
        subscription,
    })
}

/// An order id in the public form: `CS` + `yyMMddHHmm` + six letters/digits.
fn new_order_id(now: Timestamp) -> String {
    let tail = uuid::Uuid::new_v4().simple().to_string()[..6].to_ascii_uppercase();
    format!("CS{}{tail}", now.format("%y%m%d%H%M"))
}

#[derive(Serialize)]
struct Placed {
    source_type: i64,
    order: Option<OrderV2>,
    resource: OwnResource,
}

/// `POST /v2/customer/orders` → 201.
async fn place_order(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiJson(body): ApiJson<PlaceOrderBody>,
) -> Result<(StatusCode, Json<Placed>), ApiError> {
    let identity = &claims.identity;
    let customer = own(&state, identity).await?;
    let purchase = validate(body)?;
    let source_type = if identity.session_id().is_some() {
        SOURCE_AGENT
    } else {
        SOURCE_CUSTOMER
    };
    let now = time::now();
    let resource_id = format!("res-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let resource_name = format!("{}-{}", purchase.product_id, &resource_id[4..10]);

    let mut tx = state.store.pool().begin().await?;
    if is_frozen(&mut tx, &customer).await? {
        return Err(frozen());
    }
    let mut order_id = None;
    let mut expire_at = None;
    if let Some((period, amount)) = purchase.subscription {
        let id = new_order_id(now);
        let cents = to_cents(amount).map_err(|e| ApiError::invalid(format!("amount: {e}")))?;
        expire_at = Some(
            period
                .after(now)
                .ok_or_else(|| ApiError::invalid("the period is out of range"))?,
        );
        sqlx::query(
            "INSERT INTO orders (id, customer_id, status, order_type, service_type_code, source_type,
                 amount_cents, official_amount_cents, currency, created_at, payment_time, session_id, source_operator_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, $12)",
        )
        .bind(id.clone())
        .bind(customer.clone())
        .bind(STATUS_PENDING_PAYMENT)
        .bind(ORDER_TYPE_NEW)
        .bind(purchase.service_type_code.clone())
        .bind(source_type)
        .bind(cents)
        .bind(cents)
        .bind(wire::CURRENCY.to_owned())
        .bind(time::format(now))
        .bind(identity.session_id().map(str::to_owned))
        .bind(identity.source_operator.clone())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO order_line_items (id, order_id, product_id, service_type_code, period_type, period_num,
                 subscription_num, amount_cents)
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7)",
        )
        .bind(format!("{id}-1"))
        .bind(id.clone())
        .bind(purchase.product_id.clone())
        .bind(purchase.service_type_code.clone())
        .bind(period.period_type)
        .bind(period.period_num)
        .bind(cents)
        .execute(&mut *tx)
        .await?;
        order_id = Some(id);
    }
    sqlx::query(
        "INSERT INTO resources (id, customer_id, charging, service_type_code, name, status, expire_at, order_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(resource_id.clone())
    .bind(customer.clone())
    .bind(purchase.charging.as_str().to_owned())
    .bind(purchase.service_type_code.clone())
    .bind(resource_name)
    .bind(ResourceStatus::InUse.as_str().to_owned())
    .bind(expire_at.map(time::format))
    .bind(order_id.clone())
    .bind(time::format(now))
    .execute(&mut *tx)
    .await?;
    let mut detail = serde_json::json!({
        "charging": purchase.charging,
        "service_type_code": purchase.service_type_code,
        "product_id": purchase.product_id,
        "resource_id": resource_id,
    });
    if let Some((period, amount)) = purchase.subscription {
        detail["period_type"] = period.period_type.into();
        detail["period_num"] = period.period_num.into();
        detail["amount"] = format!("{amount:.2}").into();
    }
    let target = order_id.clone().unwrap_or_else(|| resource_id.clone());
    record_activity(
        &mut tx,
        identity,
        &customer,
        "place_order",
        &target,
        detail,
        now,
    )
    .await?;
    tx.commit().await?;

    let order = match &order_id {
        Some(id) => {
            let row = sqlx::query(&format!("{ORDER_SELECT} WHERE o.id = $1"))
                .bind(id.clone())
                .fetch_one(state.store.pool())
                .await?;
            Some(OrderV2::from(&order_from_row(&row)?))
        }
        None => None,
    };
    let resource = resource_of(&state, &customer, &resource_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(Placed {
            source_type,
            order,
            resource: resource.into(),
        }),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnOrdersQuery {
    offset: Option<String>,
    limit: Option<String>,
    status: Option<String>,
    order_type: Option<String>,
    order_by: Option<String>,
}

/// `GET /v2/customer/orders`: the customer's own orders, in the ListCustomerOrders shape.
async fn list_own_orders(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiQuery(q): ApiQuery<OwnOrdersQuery>,
) -> Result<Json<OrderPage>, ApiError> {
    let paging = paging_of(q.offset, q.limit)?;
    let status = status_filter(q.status)?;
    let order_type = order_type_filter(q.order_type)?;
    let order_by = OrderBy::parse(q.order_by)?;
    let customer = own(&state, &claims.identity).await?;
    let mut w = Where::new();
    w.eq("o.customer_id", Bind::Text(customer));
    if let Some(s) = status {
        w.eq("o.status", Bind::Int(s));
    }
    if let Some(t) = order_type {
        w.eq("o.order_type", Bind::Int(t));
    }
    let (total_count, orders) = page_of_orders(state.store.pool(), w, order_by, paging).await?;
    Ok(Json(OrderPage {
        total_count,
        order_infos: orders.iter().map(OrderV2::from).collect(),
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OwnResourcesQuery {
    offset: Option<String>,
    limit: Option<String>,
    charging: Option<String>,
    status: Option<String>,
}

#[derive(Serialize)]
struct ResourcePage {
    total_count: i64,
    resources: Vec<OwnResource>,
}

/// `GET /v2/customer/resources`: the customer's own resources, newest first;
/// optional `charging` and `status` (store status names) filters.
async fn list_own_resources(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    ApiQuery(q): ApiQuery<OwnResourcesQuery>,
) -> Result<Json<ResourcePage>, ApiError> {
    let paging = paging_of(q.offset, q.limit)?;
    let charging = non_empty(q.charging)
        .map(|c| {
            c.parse::<Charging>()
                .map_err(|_| ApiError::invalid("charging must be yearly_monthly or pay_per_use"))
        })
        .transpose()?;
    let status = non_empty(q.status)
        .map(|s| {
            s.parse::<ResourceStatus>().map_err(|_| {
                ApiError::invalid("status must be one of in_use, stopped, frozen, expired, closed")
            })
        })
        .transpose()?;
    let customer = own(&state, &claims.identity).await?;
    let mut w = Where::new();
    let source = resource_source(&mut w);
    w.eq("r.customer_id", Bind::Text(customer));
    if let Some(c) = charging {
        w.eq("r.charging", Bind::Text(c.as_str().to_owned()));
    }
    if let Some(s) = status {
        w.eq("r.effective_status", Bind::Text(s.as_str().to_owned()));
    }
    let (total_count, rows) = page_of_resources(&state, &source, w, paging).await?;
    Ok(Json(ResourcePage {
        total_count,
        resources: rows.into_iter().map(OwnResource::from).collect(),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperationBody {
    operation: String,
}

/// `POST /v2/customer/resources/{resource_id}/operations` → 200 with the resource.
async fn operate(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    Path(resource_id): Path<String>,
    ApiJson(body): ApiJson<OperationBody>,
) -> Result<Json<OwnResource>, ApiError> {
    let identity = &claims.identity;
    let op: Operation = serde_json::from_value(serde_json::Value::String(body.operation.clone()))
        .map_err(|_| {
        ApiError::invalid("operation must be one of start, stop, restart, renew, unsubscribe")
    })?;
    let customer = own(&state, identity).await?;
    let resource = resource_of(&state, &customer, &resource_id)
        .await?
        .ok_or_else(ApiError::denied)?;
    let now = time::now();

    let mut tx = state.store.pool().begin().await?;
    if is_frozen(&mut tx, &customer).await? {
        return Err(frozen());
    }
    let next = resources::transition(&resource, op, now)?;
    let old_expiry = resource.expire_at.map(time::format);
    // Guarded on the state read above: a concurrent change makes this a 409, never a lost update.
    let mut w = Where::new();
    let status = w.arg(Bind::Text(next.status.as_str().to_owned()));
    let expiry = match next.expire_at {
        Some(t) => w.arg(Bind::Text(time::format(t))),
        None => "NULL".to_owned(),
    };
    w.eq("id", Bind::Text(resource.id.clone()));
    w.eq("customer_id", Bind::Text(customer.clone()));
    w.eq(
        "status",
        Bind::Text(resource.stored_status.as_str().to_owned()),
    );
    match old_expiry {
        Some(e) => w.eq("expire_at", Bind::Text(e)),
        None => w.raw("expire_at IS NULL"),
    }
    let sql = format!(
        "UPDATE resources SET status = {status}, expire_at = {expiry}{}",
        w.sql()
    );
    let updated = bind_all(sqlx::query(&sql), w.binds())
        .execute(&mut *tx)
        .await?;
    if updated.rows_affected() != 1 {
        return Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "resource {} changed meanwhile; read it again and retry",
                resource.id
            ),
        ));
    }
    let detail = serde_json::json!({
        "operation": op.as_str(),
        "status_before": resource.status,
        "status_after": next.status,
        "expire_at": next.expire_at.map(time::format),
    });
    let action = format!("{}_resource", op.as_str());
    record_activity(
        &mut tx,
        identity,
        &customer,
        &action,
        &resource.id,
        detail,
        now,
    )
    .await?;
    tx.commit().await?;

    let updated = resource_of(&state, &customer, &resource.id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok(Json(updated.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: serde_json::Value) -> Result<Purchase, ApiError> {
        validate(serde_json::from_value(v).unwrap())
    }

    #[test]
    fn purchases_are_validated() {
        let ok = body(serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2",
            "product_id": "00301-ec2", "period_type": 3, "period_num": 1, "amount": "1200.00"}))
        .unwrap();
        assert_eq!(
            ok.subscription.unwrap().0,
            Period {
                period_type: 3,
                period_num: 1
            }
        );
        let ppu = body(serde_json::json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.obs",
            "product_id": "obs-std"}))
        .unwrap();
        assert_eq!(ppu.subscription, None);
        let refused = [
            serde_json::json!({"charging": "monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p"}),
            serde_json::json!({"charging": "pay_per_use", "service_type_code": "ec2", "product_id": "p"}),
            serde_json::json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "a b"}),
            serde_json::json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.ec2", "product_id": "p", "amount": "1.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 1, "period_num": 1, "amount": "1.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 2, "period_num": 10, "amount": "1.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 3, "period_num": 4, "amount": "1.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 2, "period_num": 1, "amount": "0.00"}),
            serde_json::json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "p", "period_type": 2, "period_num": 1}),
        ];
        for r in refused {
            assert!(body(r.clone()).is_err(), "{r}");
        }
    }

    #[test]
    fn order_ids_look_public() {
        let id = new_order_id(time::parse("2026-11-21T12:34:00Z").unwrap());
        assert!(id.starts_with("CS2611211234") && id.len() == 18, "{id}");
    }
}
