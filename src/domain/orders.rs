//! Customer orders: the public list and details (ListCustomerOrders,
//! ShowCustomerOrderDetails), price adjustments with their history, and
//! order exports as asynchronous tasks. Which orders and exports a caller
//! sees, and which it may adjust or export, is the policies' (R1, R4); the
//! store serves the orders the gateway decided on, and lists under the
//! assertion's filter.
//!
//! Decisions where the public API and docs/domain.md are silent:
//! - **Status codes** are the public API's (docs/wire-format.md §4.8), so an
//!   SDK user's `status` filter means what the SDK documents: 1 pending
//!   approval, 3 processing, 4 cancelled, 5 completed (paid: it has a payment
//!   time), 6 pending payment, 9 to be confirmed ([`crate::model::ORDER_STATUSES`]). The
//!   response models' 2 (pending refund) and 10..=13 (logistics) describe
//!   refunds and physical goods, which the store does not have: it neither
//!   stores nor filters by them. An order is *unpaid* when its status is 1 or
//!   6 and it has no payment time ([`crate::model::Order::unpaid`]); price adjustment and
//!   the customer overview's `unpaid_count` use this one definition.
//! - **Filters** (ListCustomerOrders): `status` and `order_type` must be known
//!   codes; `create_time_*` and `payment_time_*` bounds are inclusive, a
//!   `begin` after its `end` or a range longer than one calendar year is
//!   refused (one bound alone is accepted); `order_by` is `createTime` or
//!   `-createTime` (the default: newest first, then by id). Empty values mean
//!   "no filter", unknown parameters are refused. `method=sub_customer`
//!   (orders of enterprise sub-accounts) answers an empty list: the store
//!   keeps no sub-accounts. `indirect_partner_id` narrows to the orders of
//!   that reseller's own customers.
//! - **Amounts.** `amount_after_discount` is what the customer pays,
//!   `official_amount` the list price. When they differ, `amount_info.discounts`
//!   holds one entry for the difference: type `609` (order price adjustment)
//!   once the order was price-adjusted, else `500` (partner-specified discount).
//! - **Price adjustments** (`POST .../{order_id}/price-adjustments`; which
//!   orders, referral customers' ones, is R4's): only unpaid orders: status 1 (pending approval) or 6
//!   (pending payment) without a payment time (else 409 CBC.30000067); the new
//!   amount is 0 or more with at most two places and not above the order's
//!   official amount (a discount off the list price, never a surcharge); the
//!   reason is required, at most 256 characters. The order's amount and the
//!   history record (operator, before, after, reason, time) are written in one
//!   transaction; a concurrent change of the order makes the second request
//!   fail with 409 instead of overwriting. The order's line items keep their
//!   own amounts: the adjustment applies to the order total.
//! - **Exports.** The set of orders is fixed when the export is requested
//!   (the given ids, each decided by the gateway; or every order the caller
//!   may export, under the assertion's filter) and rendered to CSV by a
//!   background task. Each export is `in` the principal that requested it
//!   (kind and id of the assertion), which is what the policies' ViewExport
//!   looks at. The export worker (`exports.rs`) renders them one at a time;
//!   a task still pending after [`crate::store::domain::STALE_EXPORT_MINUTES`] minutes was lost
//!   with a restart: it is answered as failed at once, and the worker
//!   records it so. The file route answers 409 CBC.30000067 until the
//!   export is completed.

use super::extract::Served;
use super::lists::page_or_answer;
use super::resources::service_type_name;
use super::{wire, DomainState, ExportJob};
use crate::api_error::{codes, ApiError};
use crate::assertion::{CallerKind, Identity};
use crate::catalog::{
    AdjustOrderPrice, CreateOrderExport, ListCustomerOrders, ListOrderExports,
    ListPriceAdjustments, ShowCustomerOrderDetails,
};
use crate::model::{
    ExportStatus, OrderLineItem, ORDER_STATUS_PENDING_APPROVAL, ORDER_STATUS_PENDING_PAYMENT,
};
use crate::money::to_cents;
use crate::store::domain::{
    AdjustOutcome, Adjustment, ExportRecord, NewAdjustment, NewExport, OrderQuery, OrderSummary,
};
use crate::time::Timestamp;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Serialize;

/// DiscountItemV2.
#[derive(Serialize, JsonSchema)]
struct Discount {
    discount_type: String,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    discount_amount: Decimal,
}

/// AmountInfomationV2 (sic).
#[derive(Serialize, JsonSchema)]
struct AmountInfo {
    discounts: Vec<Discount>,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    flexipurchase_coupon_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    coupon_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    stored_card_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    commission_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    consumed_amount: Decimal,
}

impl AmountInfo {
    fn new(discounts: Vec<Discount>) -> AmountInfo {
        AmountInfo {
            discounts,
            flexipurchase_coupon_amount: Decimal::ZERO,
            coupon_amount: Decimal::ZERO,
            stored_card_amount: Decimal::ZERO,
            commission_amount: Decimal::ZERO,
            consumed_amount: Decimal::ZERO,
        }
    }

    fn of(s: &OrderSummary) -> AmountInfo {
        let o = &s.order;
        let off = o.official_amount - o.amount;
        let discounts = if off > Decimal::ZERO {
            let kind = if s.adjusted { "609" } else { "500" };
            vec![Discount {
                discount_type: kind.to_owned(),
                discount_amount: off,
            }]
        } else {
            vec![]
        };
        AmountInfo::new(discounts)
    }
}

/// The fields CustomerOrderV2 and CustomerOrderV3 share.
#[derive(Serialize, JsonSchema)]
struct OrderCore {
    order_id: String,
    customer_id: String,
    service_type_code: String,
    service_type_name: String,
    source_type: i64,
    status: i64,
    order_type: i64,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    amount_after_discount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    official_amount: Decimal,
    measure_id: i64,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    create_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    payment_time: Option<Timestamp>,
    currency: String,
    contract_id: Option<String>,
    amount_info: AmountInfo,
}

impl OrderCore {
    fn of(s: &OrderSummary) -> OrderCore {
        let o = &s.order;
        OrderCore {
            order_id: o.id.0.clone(),
            customer_id: o.customer.0.clone(),
            service_type_code: o.service_type_code.clone(),
            service_type_name: service_type_name(&o.service_type_code),
            source_type: o.source_type,
            status: o.status,
            order_type: o.order_type,
            amount_after_discount: o.amount,
            official_amount: o.official_amount,
            measure_id: wire::MEASURE_ID,
            create_time: o.created_at,
            payment_time: o.payment_time,
            currency: o.currency.clone(),
            contract_id: None,
            amount_info: AmountInfo::of(s),
        }
    }
}

/// CustomerOrderV2 (an order in ListCustomerOrders).
#[derive(Serialize, JsonSchema)]
pub(super) struct OrderV2 {
    #[serde(flatten)]
    core: OrderCore,
    enterprise_projects: Vec<()>,
    sub_order_infos: Vec<()>,
    agent_pay_info: Option<()>,
}

impl From<&OrderSummary> for OrderV2 {
    fn from(o: &OrderSummary) -> Self {
        OrderV2 {
            core: OrderCore::of(o),
            enterprise_projects: vec![],
            sub_order_infos: vec![],
            agent_pay_info: None,
        }
    }
}

/// CustomerOrderV3 (the order of ShowCustomerOrderDetails).
#[derive(Serialize, JsonSchema)]
struct OrderV3 {
    #[serde(flatten)]
    core: OrderCore,
    /// The customer's account name (who the order was placed for).
    user_name: String,
    pending_payment_end_time: Option<String>,
    sub_order_infos: Vec<()>,
}

/// ListCustomerOrdersResponse, also the customer-self order list.
#[derive(Serialize, JsonSchema)]
pub(super) struct OrderPage {
    pub total_count: i64,
    pub order_infos: Vec<OrderV2>,
}

/// `GET /v2/orders/customer-orders` (ListCustomerOrders).
pub(super) async fn list(
    state: &DomainState,
    served: &Served,
    q: ListCustomerOrders,
) -> Result<Response, ApiError> {
    let query = OrderQuery {
        nothing: q.sub_customers,
        customer: q.customer_id.as_deref(),
        reseller: q.indirect_partner_id.as_deref(),
        id: q.order_id.as_deref(),
        service_type_code: q.service_type_code.as_deref(),
        status: q.status,
        order_type: q.order_type,
        created: (q.created.begin, q.created.end),
        paid: (q.paid.begin, q.paid.end),
        order_by: q.order_by,
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

/// ProductObject.
#[derive(Serialize, JsonSchema)]
struct ProductObject {
    product_id: String,
    product_spec_desc: Option<String>,
    category_code: Option<String>,
    product_owner_service: String,
    commercial_resource: Option<String>,
}

/// OrderLineItemEntityV2.
#[derive(Serialize, JsonSchema)]
struct LineItem {
    order_line_item_id: String,
    service_type_code: String,
    service_type_name: String,
    product_id: String,
    product_spec_desc: Option<String>,
    period_type: Option<i64>,
    period_num: Option<i64>,
    /// When the subscription starts: the payment time (none before payment).
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    effective_time: Option<Timestamp>,
    /// The effective time moved on by the period.
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    expire_time: Option<Timestamp>,
    subscription_num: i64,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    amount_after_discount: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    official_amount: Decimal,
    amount_info: AmountInfo,
    currency: String,
    category_code: Option<String>,
    product_owner_service: String,
    commercial_resource: Option<String>,
    base_product_info: ProductObject,
    order_id: String,
}

fn line_item(li: OrderLineItem, s: &OrderSummary) -> LineItem {
    let order = &s.order;
    let expire_time = match (order.payment_time, li.period_type, li.period_num) {
        (Some(start), Some(period_type), Some(period_num)) => crate::catalog::Period {
            period_type,
            period_num,
        }
        .after(start),
        _ => None,
    };
    LineItem {
        order_line_item_id: li.id,
        service_type_name: service_type_name(&li.service_type_code),
        product_spec_desc: None,
        period_type: li.period_type,
        period_num: li.period_num,
        effective_time: order.payment_time,
        expire_time,
        subscription_num: li.subscription_num,
        amount_after_discount: li.amount,
        official_amount: li.amount,
        amount_info: AmountInfo::new(vec![]),
        currency: order.currency.clone(),
        category_code: None,
        product_owner_service: li.service_type_code.clone(),
        commercial_resource: li.resource_type_code.clone(),
        base_product_info: ProductObject {
            product_id: li.product_id.clone(),
            product_spec_desc: None,
            category_code: None,
            product_owner_service: li.service_type_code.clone(),
            commercial_resource: li.resource_type_code,
        },
        product_id: li.product_id,
        service_type_code: li.service_type_code,
        order_id: order.id.0.clone(),
    }
}

/// ShowCustomerOrderDetailsRequest's query.
/// ShowCustomerOrderDetailsResponse.
#[derive(Serialize, JsonSchema)]
pub(super) struct OrderDetails {
    /// The number of line items (all pages).
    total_count: i64,
    order_info: OrderV3,
    order_line_items: Vec<LineItem>,
}

/// `GET /v2/orders/customer-orders/details/{order_id}` (ShowCustomerOrderDetails).
pub(super) async fn details(
    state: &DomainState,
    req: ShowCustomerOrderDetails,
) -> Result<Response, ApiError> {
    let order = state
        .store
        .order_summary(&req.order_id)
        .await?
        .ok_or_else(ApiError::denied)?;
    let page = state
        .store
        .order_line_items(order.order.id.as_str(), req.paging)
        .await?;
    Ok(Json(OrderDetails {
        total_count: page.total,
        order_info: OrderV3 {
            core: OrderCore::of(&order),
            user_name: order.account_name.clone(),
            pending_payment_end_time: None,
            sub_order_infos: vec![],
        },
        order_line_items: page
            .items
            .into_iter()
            .map(|li| line_item(li, &order))
            .collect(),
    })
    .into_response())
}

/// One price adjustment.
#[derive(Serialize, JsonSchema)]
pub(super) struct PriceAdjustment {
    adjustment_id: i64,
    order_id: String,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    amount_before_adjustment: Decimal,
    #[serde(serialize_with = "wire::money")]
    #[schemars(with = "f64")]
    amount_after_adjustment: Decimal,
    reason: String,
    operator_id: Option<String>,
    operator_name: Option<String>,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    create_time: Timestamp,
}

impl From<Adjustment> for PriceAdjustment {
    fn from(a: Adjustment) -> Self {
        PriceAdjustment {
            adjustment_id: a.id,
            order_id: a.order_id,
            amount_before_adjustment: a.before,
            amount_after_adjustment: a.after,
            reason: a.reason,
            operator_id: a.operator_id,
            operator_name: a.operator_name,
            create_time: a.at,
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub(super) struct AdjustmentPage {
    order_id: String,
    total_count: i64,
    price_adjustments: Vec<PriceAdjustment>,
}

/// `GET /v2/orders/customer-orders/{order_id}/price-adjustments`: the
/// order's adjustments, newest first.
pub(super) async fn adjustments(
    state: &DomainState,
    req: ListPriceAdjustments,
) -> Result<Response, ApiError> {
    let order = state
        .store
        .order_summary(&req.order_id)
        .await?
        .ok_or_else(ApiError::denied)?;
    let id = order.order.id.0;
    let page = state.store.price_adjustments(&id, req.paging).await?;
    Ok(Json(AdjustmentPage {
        order_id: id,
        total_count: page.total,
        price_adjustments: page.items.into_iter().map(PriceAdjustment::from).collect(),
    })
    .into_response())
}

/// `POST /v2/orders/customer-orders/{order_id}/price-adjustments` → 201.
pub(super) async fn adjust_price(
    state: &DomainState,
    served: &Served,
    req: AdjustOrderPrice,
) -> Result<Response, ApiError> {
    let new_amount = req.amount;
    let amount_cents = to_cents(new_amount)
        .map_err(|e| ApiError::parameter(format!("amount_after_adjustment: {e}")))?;
    let outcome = state
        .store
        .adjust_price(&NewAdjustment {
            order_id: &req.order_id,
            amount_cents,
            reason: &req.reason,
            operator: served.identity.acting_operator(),
        })
        .await?;
    match outcome {
        AdjustOutcome::Done(_, adjustment) => {
            Ok((StatusCode::CREATED, Json(PriceAdjustment::from(adjustment))).into_response())
        }
        AdjustOutcome::Unknown => Err(ApiError::denied()),
        AdjustOutcome::NotUnpaid(s) => Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "order {} has status {}{}; only unpaid orders (status {ORDER_STATUS_PENDING_APPROVAL} pending approval or {ORDER_STATUS_PENDING_PAYMENT} pending payment) can be price-adjusted",
                s.order.id.0,
                s.order.status,
                if s.order.payment_time.is_some() { " and is paid" } else { "" }
            ),
        )),
        AdjustOutcome::AboveOfficial(s) => Err(ApiError::invalid(format!(
            "amount_after_adjustment {new_amount:.2} exceeds the order's official amount {:.2}",
            s.order.official_amount
        ))),
        AdjustOutcome::Changed(s) => Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "order {} changed while it was being adjusted; read it again and retry",
                s.order.id.0
            ),
        )),
    }
}

/// Who owns an export: the principal kind and id of the assertion.
fn owner(identity: &Identity) -> (&'static str, &str) {
    let kind = match identity.kind {
        CallerKind::Operator => "operator",
        CallerKind::Customer => "customer",
        CallerKind::Session => "session",
    };
    (kind, &identity.id)
}

#[derive(Serialize, JsonSchema)]
pub(super) struct ExportCreated {
    export_id: String,
    status: ExportStatus,
}

/// `POST /v2/orders/customer-orders/exports` → 202.
pub(super) async fn create_export(
    state: &DomainState,
    served: &Served,
    req: CreateOrderExport,
) -> Result<Response, ApiError> {
    let ids: Vec<String> = match req.order_ids {
        Some(given) => {
            // Each id was decided by the gateway; all must still exist.
            if !state.store.orders_exist(&given).await? {
                return Err(ApiError::denied());
            }
            given
        }
        None => {
            let listed = state
                .store
                .list_orders(&OrderQuery::default(), &served.list, None)
                .await?;
            let (_, orders) = page_or_answer!(listed);
            orders.into_iter().map(|o| o.order.id.0).collect()
        }
    };

    // A place in the worker's queue before the export exists: a full queue
    // refuses the request and leaves nothing pending.
    let queued = state.exports.reserve()?;
    let (owner_kind, owner_id) = owner(&served.identity);
    let export_id = state
        .store
        .create_export(&NewExport {
            owner_kind,
            owner_id,
            partner: served.identity.partner.as_deref(),
            order_ids: &ids,
        })
        .await?;
    queued.send(ExportJob {
        export_id: export_id.clone(),
        order_ids: ids,
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(ExportCreated {
            export_id,
            status: ExportStatus::Pending,
        }),
    )
        .into_response())
}

/// An export as its owner sees it.
#[derive(Serialize, JsonSchema)]
pub(super) struct ExportView {
    export_id: String,
    status: ExportStatus,
    /// How many orders the export holds.
    order_count: i64,
    #[serde(serialize_with = "wire::time")]
    #[schemars(with = "String")]
    create_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    complete_time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_msg: Option<String>,
}

impl From<ExportRecord> for ExportView {
    fn from(e: ExportRecord) -> Self {
        ExportView {
            export_id: e.id,
            status: e.status,
            order_count: e.order_count,
            create_time: e.created_at,
            complete_time: e.completed_at,
            error_msg: e.error,
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub(super) struct ExportPage {
    total_count: i64,
    exports: Vec<ExportView>,
}

/// `GET /v2/orders/customer-orders/exports`: the exports the caller may see
/// (its own, under the shipped policies), newest first.
pub(super) async fn list_exports(
    state: &DomainState,
    served: &Served,
    req: ListOrderExports,
) -> Result<Response, ApiError> {
    let listed = state.store.list_exports(&served.list, req.paging).await?;
    let (total_count, exports) = page_or_answer!(listed);
    Ok(Json(ExportPage {
        total_count,
        exports: exports.into_iter().map(ExportView::from).collect(),
    })
    .into_response())
}

/// Export `id` (with its file), or 403 as for an unknown one.
async fn export(state: &DomainState, id: &str) -> Result<(ExportView, Option<String>), ApiError> {
    let (export, csv) = state
        .store
        .export_with_file(id)
        .await?
        .ok_or_else(ApiError::denied)?;
    Ok((export.into(), csv))
}

/// `GET /v2/orders/customer-orders/exports/{export_id}`.
pub(super) async fn show_export(
    state: &DomainState,
    export_id: &str,
) -> Result<Response, ApiError> {
    let (view, _) = export(state, export_id).await?;
    Ok(Json(view).into_response())
}

/// `GET /v2/orders/customer-orders/exports/{export_id}/file`: the CSV, once completed.
pub(super) async fn export_file(
    state: &DomainState,
    export_id: &str,
) -> Result<Response, ApiError> {
    let (view, csv) = export(state, export_id).await?;
    match (view.status, csv) {
        (ExportStatus::Completed, Some(csv)) => Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"customer-orders-{}.csv\"",
                        view.export_id
                    ),
                ),
            ],
            csv,
        )
            .into_response()),
        (ExportStatus::Failed, _) => Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "export {} failed ({}); there is no file to download",
                view.export_id,
                view.error_msg.unwrap_or_default()
            ),
        )),
        (status, _) => Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "export {} is {status}; its file can be downloaded once its status is completed",
                view.export_id
            ),
        )),
    }
}
