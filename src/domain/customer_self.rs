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
use super::orders::{OrderPage, OrderV2};
use super::resources::{self, OwnResource};
use super::{wire, DomainState};
use crate::api_error::{codes, ApiError};
use crate::assertion::Identity;
use crate::catalog::{ListOwnOrders, ListOwnResources, OperateResource, PlaceOrder};
use crate::model::{ResourceStatus, ORDER_STATUS_PENDING_PAYMENT, ORDER_TYPE_NEW};
use crate::money::to_cents;
use crate::store::domain::{
    Guarded, NewActivity, NewOrder, NewResource, OrderQuery, Placement, ResourceQuery,
};
use crate::time::{self, Timestamp};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

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

/// The activity record of an on-behalf action of a session (none for the
/// customer itself).
fn activity<'a>(
    identity: &'a Identity,
    customer: &'a str,
    action: &'a str,
    target: &'a str,
    detail: &'a serde_json::Value,
    at: Timestamp,
) -> Option<NewActivity<'a>> {
    Some(NewActivity {
        customer,
        session: identity.session_id()?,
        operator: identity.source_operator.as_deref(),
        partner: identity.partner.as_deref(),
        action,
        target,
        detail,
        at,
    })
}

/// An order id in the public form: `CS` + `yyMMddHHmm` + six letters/digits.
fn new_order_id(now: Timestamp) -> String {
    let tail = uuid::Uuid::new_v4().simple().to_string()[..6].to_ascii_uppercase();
    format!("CS{}{tail}", now.format("%y%m%d%H%M"))
}

#[derive(Serialize, JsonSchema)]
pub(super) struct Placed {
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

    let order_id = purchase.subscription.map(|_| new_order_id(now));
    let mut order = None;
    let mut expire_at = None;
    if let (Some((period, amount)), Some(id)) = (purchase.subscription, &order_id) {
        let amount_cents =
            to_cents(amount).map_err(|e| ApiError::invalid(format!("amount: {e}")))?;
        expire_at = Some(
            period
                .after(now)
                .ok_or_else(|| ApiError::invalid("the period is out of range"))?,
        );
        order = Some(NewOrder {
            id,
            status: ORDER_STATUS_PENDING_PAYMENT,
            order_type: ORDER_TYPE_NEW,
            source_type,
            amount_cents,
            currency: wire::CURRENCY,
            period,
        });
    }
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
    let target = order_id.as_deref().unwrap_or(&resource_id);
    state
        .store
        .place_order(&Placement {
            customer: &customer,
            service_type_code: &purchase.service_type_code,
            product_id: &purchase.product_id,
            order,
            resource: NewResource {
                id: &resource_id,
                name: &resource_name,
                charging: purchase.charging,
                status: ResourceStatus::InUse,
                expire_at,
            },
            session: identity.session_id(),
            source_operator: identity.source_operator.as_deref(),
            activity: activity(identity, &customer, "place_order", target, &detail, now),
            at: now,
        })
        .await?;

    let order = match &order_id {
        Some(id) => Some(OrderV2::from(
            &state
                .store
                .order_summary(id)
                .await?
                .ok_or_else(ApiError::internal)?,
        )),
        None => None,
    };
    let resource = state
        .store
        .resource_view(&resource_id)
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
    let query = OrderQuery {
        customer: Some(&customer),
        status: q.status,
        order_type: q.order_type,
        order_by: q.order_by,
        ..OrderQuery::default()
    };
    let listed = state
        .store
        .list_orders(&query, &served.list, Some(q.paging))
        .await?;
    let (total_count, orders) = page_or_answer!(listed);
    Ok(Json(OrderPage {
        total_count,
        order_infos: orders.iter().map(OrderV2::from).collect(),
    })
    .into_response())
}

#[derive(Serialize, JsonSchema)]
pub(super) struct ResourcePage {
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
    let query = ResourceQuery {
        customer: Some(&customer),
        charging: q.charging,
        statuses: q.status.map(|s| vec![s]),
        ..ResourceQuery::default()
    };
    let listed = state
        .store
        .list_resources(&query, &served.list, q.paging)
        .await?;
    let (total_count, resources) = page_or_answer!(listed);
    Ok(Json(ResourcePage {
        total_count,
        resources: resources.into_iter().map(OwnResource::from).collect(),
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
    let read = state
        .store
        .resource_view(&req.resource_id)
        .await?
        .ok_or_else(ApiError::denied)?;
    let now = time::now();
    let next = resources::transition(&read, op, now)?;
    let id = read.resource.id.as_str();
    let customer = read.resource.customer.as_str();
    let detail = serde_json::json!({
        "operation": op.as_str(),
        "status_before": read.status,
        "status_after": next.status,
        "expire_at": next.expire_at.map(time::format),
    });
    let action = format!("{}_resource", op.as_str());
    let change = Guarded {
        read: &read,
        status: next.status,
        expire_at: next.expire_at,
    };
    // Guarded on the state read above: a concurrent change makes this a 409, never a lost update.
    let changed = state
        .store
        .operate_resource(
            &change,
            activity(identity, customer, &action, id, &detail, now).as_ref(),
        )
        .await?;
    if !changed {
        return Err(ApiError::conflict(
            codes::CONFLICT,
            format!("resource {id} changed meanwhile; read it again and retry"),
        ));
    }
    let updated = state
        .store
        .resource_view(id)
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
