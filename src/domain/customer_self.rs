//! The customer's own account (`/v2/customer/...`): placing orders, listing
//! its orders and resources, and operating its resources. The target is the
//! customer the gateway decided on (the customer principal itself, or the
//! customer a session acts as) or, for an operation, the resource; who may
//! (a session's scopes, a frozen customer, R9 and R10) is the policies'.
//!
//! Decisions where docs/domain.md is silent:
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
//! - **Activity.** Every order and resource operation by a session writes an
//!   `activities` row in the same transaction as the change: customer,
//!   session, the operator behind it, its partner, the action (`place_order`,
//!   `start_resource`, `stop_resource`, `restart_resource`, `renew_resource`,
//!   `unsubscribe_resource`), the target (order id, or resource id for
//!   pay-per-use purchases and operations), a JSON detail and the time.
//! - **Operations**: the state machine of [`super::resources`] (nothing
//!   operates a frozen or closed resource: 409 CBC.30000067). A change that
//!   races with another one on the same resource gets 409 instead of
//!   overwriting it.

use super::extract::Served;
use super::lists::page_or_answer;
use super::orders::{
    order_from_row, order_list, OrderPage, OrderV2, ORDERS_FROM, ORDER_COLUMNS, ORDER_TYPE_NEW,
    STATUS_PENDING_PAYMENT,
};
use super::query::{bind_all, Bind, Where};
use super::resources::{self, page_of_resources, resource_of, resource_source, OwnResource};
use super::{wire, DomainState};
use crate::api_error::{codes, ApiError};
use crate::assertion::Identity;
use crate::catalog::{ListOwnOrders, ListOwnResources, OperateResource, PlaceOrder};
use crate::model::ResourceStatus;
use crate::money::to_cents;
use crate::time::{self, Timestamp};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sqlx::{Any, Transaction};

/// `source_type`: placed by the customer.
const SOURCE_CUSTOMER: i64 = 1;
/// `source_type`: placed by a partner on the customer's behalf (a session).
const SOURCE_AGENT: i64 = 2;

/// The customer the gateway decided on, checked to exist (it may have
/// vanished since; then it looks unknown).
async fn own(state: &DomainState, served: &Served) -> Result<String, ApiError> {
    let id = served.own_customer()?;
    match state.store.customer(&id.into()).await? {
        Some(_) => Ok(id.to_owned()),
        None => Err(ApiError::denied()),
    }
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
pub(super) async fn place_order(
    state: &DomainState,
    served: &Served,
    purchase: PlaceOrder,
) -> Result<Response, ApiError> {
    let identity = &served.identity;
    let customer = own(state, served).await?;
    let source_type = if identity.session_id().is_some() {
        SOURCE_AGENT
    } else {
        SOURCE_CUSTOMER
    };
    let now = time::now();
    let resource_id = format!("res-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let resource_name = format!("{}-{}", purchase.product_id, &resource_id[4..10]);

    let mut tx = state.store.pool().begin().await?;
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
        "INSERT INTO resources (id, customer_id, charging, service_type_code, product_id, name, status, expire_at, order_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(resource_id.clone())
    .bind(customer.clone())
    .bind(purchase.charging.as_str().to_owned())
    .bind(purchase.service_type_code.clone())
    .bind(purchase.product_id.clone())
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
            let row = sqlx::query(&format!(
                "SELECT {ORDER_COLUMNS} {ORDERS_FROM} WHERE o.id = $1"
            ))
            .bind(id.clone())
            .fetch_one(state.store.pool())
            .await?;
            Some(OrderV2::from(&order_from_row(&row)?))
        }
        None => None,
    };
    let resource = resource_of(state, &resource_id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok((
        StatusCode::CREATED,
        Json(Placed {
            source_type,
            order,
            resource: resource.into(),
        }),
    )
        .into_response())
}

/// `GET /v2/customer/orders`: the customer's own orders, in the ListCustomerOrders shape.
pub(super) async fn list_orders(
    state: &DomainState,
    served: &Served,
    q: ListOwnOrders,
) -> Result<Response, ApiError> {
    let customer = own(state, served).await?;
    let mut w = Where::new();
    w.eq("o.customer_id", Bind::Text(customer));
    if let Some(s) = q.status {
        w.eq("o.status", Bind::Int(s));
    }
    if let Some(t) = q.order_type {
        w.eq("o.order_type", Bind::Int(t));
    }
    let listed = order_list(w, q.order_by)
        .run(state.store.pool(), served, Some(q.paging))
        .await?;
    let (total_count, rows) = page_or_answer!(listed);
    let orders = rows
        .iter()
        .map(order_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(OrderPage {
        total_count,
        order_infos: orders.iter().map(OrderV2::from).collect(),
    })
    .into_response())
}

#[derive(Serialize)]
struct ResourcePage {
    total_count: i64,
    resources: Vec<OwnResource>,
}

/// `GET /v2/customer/resources`: the customer's own resources, newest first;
/// optional `charging` and `status` (store status names) filters.
pub(super) async fn list_resources(
    state: &DomainState,
    served: &Served,
    q: ListOwnResources,
) -> Result<Response, ApiError> {
    let customer = own(state, served).await?;
    let mut w = Where::new();
    let source = resource_source(&mut w);
    w.eq("r.customer_id", Bind::Text(customer));
    if let Some(c) = q.charging {
        w.eq("r.charging", Bind::Text(c.as_str().to_owned()));
    }
    if let Some(s) = q.status {
        w.eq("r.effective_status", Bind::Text(s.as_str().to_owned()));
    }
    let listed = page_of_resources(state, served, &source, w, q.paging).await?;
    let (total_count, rows) = page_or_answer!(listed);
    Ok(Json(ResourcePage {
        total_count,
        resources: resources::resources(&rows)?
            .into_iter()
            .map(OwnResource::from)
            .collect(),
    })
    .into_response())
}

/// `POST /v2/customer/resources/{resource_id}/operations` → 200 with the resource.
pub(super) async fn operate(
    state: &DomainState,
    served: &Served,
    req: OperateResource,
) -> Result<Response, ApiError> {
    let identity = &served.identity;
    let op = req.operation;
    let resource = resource_of(state, &req.resource_id)
        .await?
        .ok_or_else(ApiError::denied)?;
    let customer = resource.customer.clone();
    let now = time::now();

    let mut tx = state.store.pool().begin().await?;
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

    let updated = resource_of(state, &resource.id)
        .await?
        .ok_or_else(ApiError::internal)?;
    Ok(Json(OwnResource::from(updated)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_look_public() {
        let id = new_order_id(time::parse("2026-11-21T12:34:00Z").unwrap());
        assert!(id.starts_with("CS2611211234") && id.len() == 18, "{id}");
    }
}
