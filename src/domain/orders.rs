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
//!   time), 6 pending payment, 9 to be confirmed ([`ORDER_STATUSES`]). The
//!   response models' 2 (pending refund) and 10..=13 (logistics) describe
//!   refunds and physical goods, which the store does not have: it neither
//!   stores nor filters by them. An order is *unpaid* when its status is 1 or
//!   6 and it has no payment time ([`UNPAID_STATUSES`]); price adjustment and
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
//!   a task still pending after [`STALE_EXPORT_MINUTES`] minutes was lost
//!   with a restart: it is answered as failed at once, and the worker
//!   records it so. The file route answers 409 CBC.30000067 until the
//!   export is completed.

use super::extract::Served;
use super::lists::{page_or_answer, List};
use super::query::{self, db_error, Bind, Where};
use super::resources::service_type_name;
use super::{wire, DomainState, ExportJob};
use crate::api_error::{codes, ApiError};
use crate::assertion::{CallerKind, Identity};
use crate::catalog::{
    AdjustOrderPrice, CreateOrderExport, ListCustomerOrders, ListOrderExports,
    ListPriceAdjustments, OrderBy, ShowCustomerOrderDetails,
};
use crate::model::ExportStatus;
use crate::money::to_cents;
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::any::AnyRow;

/// Order status (public code): pending approval.
pub(super) const STATUS_PENDING_APPROVAL: i64 = 1;
/// Order status (public code): pending payment.
pub(super) const STATUS_PENDING_PAYMENT: i64 = 6;
/// Statuses of an order not paid yet (with no payment time, see the module
/// docs): the ones whose price may still be adjusted and that the customer
/// overview counts as unpaid.
pub(super) const UNPAID_STATUSES: [i64; 2] = [STATUS_PENDING_APPROVAL, STATUS_PENDING_PAYMENT];
/// Order type: new purchase.
pub(super) const ORDER_TYPE_NEW: i64 = 1;
/// A pending export older than this was interrupted (it takes milliseconds).
pub const STALE_EXPORT_MINUTES: i64 = 10;
/// Orders read per query when an export renders its file.
pub(super) const EXPORT_CHUNK: usize = 500;
/// The error of an export lost with a restart.
pub(super) const INTERRUPTED: &str = "the export was interrupted; request a new one";

/// An export created before this and still pending at `now` was lost (it
/// takes milliseconds).
pub(super) fn stale_before(now: Timestamp) -> Timestamp {
    now - chrono::Duration::minutes(STALE_EXPORT_MINUTES)
}

/// An order row with what its views need.
#[derive(Clone, Debug)]
pub(super) struct OrderRow {
    pub id: String,
    pub customer: String,
    pub account_name: String,
    pub status: i64,
    pub order_type: i64,
    pub service_type_code: String,
    pub source_type: i64,
    pub amount: Decimal,
    pub official_amount: Decimal,
    pub currency: String,
    pub created_at: Timestamp,
    pub payment_time: Option<Timestamp>,
    /// Whether the order's price was adjusted.
    pub adjusted: bool,
}

/// Orders (`o`) with their customers (`c`), as order queries read them.
pub(super) const ORDERS_FROM: &str = "FROM orders o JOIN customers c ON c.id = o.customer_id";

/// An order's columns (over [`ORDERS_FROM`]) with its customer's and its
/// price-adjustment count.
pub(super) const ORDER_COLUMNS: &str = "o.*, c.account_name AS account_name,
        (SELECT COUNT(*) FROM price_adjustments p WHERE p.order_id = o.id) AS adjustments";

pub(super) fn order_from_row(row: &AnyRow) -> Result<OrderRow, ApiError> {
    Ok(OrderRow {
        id: query::text(row, "id")?,
        customer: query::text(row, "customer_id")?,
        account_name: query::text(row, "account_name")?,
        status: query::int(row, "status")?,
        order_type: query::int(row, "order_type")?,
        service_type_code: query::text(row, "service_type_code")?,
        source_type: query::int(row, "source_type")?,
        amount: query::money(row, "amount_cents")?,
        official_amount: query::money(row, "official_amount_cents")?,
        currency: query::text(row, "currency")?,
        created_at: query::ts(row, "created_at")?,
        payment_time: query::opt_ts(row, "payment_time")?,
        adjusted: query::int(row, "adjustments")? > 0,
    })
}

/// The `ORDER BY` of `order_by` (ending with the id: pages are stable).
pub(super) fn order_by_sql(order_by: OrderBy) -> &'static str {
    match order_by {
        OrderBy::CreateTimeAsc => "ORDER BY o.created_at ASC, o.id ASC",
        OrderBy::CreateTimeDesc => "ORDER BY o.created_at DESC, o.id DESC",
    }
}

/// The orders (`o`, with their customers `c`) matching `filters` that the
/// assertion allows: one page and the total.
pub(super) fn order_list(filters: Where, order_by: OrderBy) -> List<'static> {
    List {
        item: EntityType::Order,
        alias: "o",
        from: ORDERS_FROM,
        columns: ORDER_COLUMNS,
        filters,
        order_by: order_by_sql(order_by),
    }
}

/// One order, or `None` when it vanished after the gateway's decision; on
/// any executor, so that a transaction can read the order it is about to
/// change.
async fn order<'c, E>(exec: E, id: &str) -> Result<Option<OrderRow>, ApiError>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let mut w = Where::new();
    w.eq("o.id", Bind::Text(id.to_owned()));
    let sql = format!("SELECT {ORDER_COLUMNS} {ORDERS_FROM}{}", w.sql());
    let row = query::bind_all(sqlx::query(&sql), w.binds())
        .fetch_optional(exec)
        .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// DiscountItemV2.
#[derive(Serialize)]
struct Discount {
    discount_type: String,
    #[serde(serialize_with = "wire::money")]
    discount_amount: Decimal,
}

/// AmountInfomationV2 (sic).
#[derive(Serialize)]
struct AmountInfo {
    discounts: Vec<Discount>,
    #[serde(serialize_with = "wire::money")]
    flexipurchase_coupon_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    coupon_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    stored_card_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
    commission_amount: Decimal,
    #[serde(serialize_with = "wire::money")]
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

    fn of(o: &OrderRow) -> AmountInfo {
        let off = o.official_amount - o.amount;
        let discounts = if off > Decimal::ZERO {
            let kind = if o.adjusted { "609" } else { "500" };
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
#[derive(Serialize)]
struct OrderCore {
    order_id: String,
    customer_id: String,
    service_type_code: String,
    service_type_name: String,
    source_type: i64,
    status: i64,
    order_type: i64,
    #[serde(serialize_with = "wire::money")]
    amount_after_discount: Decimal,
    #[serde(serialize_with = "wire::money")]
    official_amount: Decimal,
    measure_id: i64,
    #[serde(serialize_with = "wire::time")]
    create_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    payment_time: Option<Timestamp>,
    currency: String,
    contract_id: Option<String>,
    amount_info: AmountInfo,
}

impl OrderCore {
    fn of(o: &OrderRow) -> OrderCore {
        OrderCore {
            order_id: o.id.clone(),
            customer_id: o.customer.clone(),
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
            amount_info: AmountInfo::of(o),
        }
    }
}

/// CustomerOrderV2 (an order in ListCustomerOrders).
#[derive(Serialize)]
pub(super) struct OrderV2 {
    #[serde(flatten)]
    core: OrderCore,
    enterprise_projects: Vec<()>,
    sub_order_infos: Vec<()>,
    agent_pay_info: Option<()>,
}

impl From<&OrderRow> for OrderV2 {
    fn from(o: &OrderRow) -> Self {
        OrderV2 {
            core: OrderCore::of(o),
            enterprise_projects: vec![],
            sub_order_infos: vec![],
            agent_pay_info: None,
        }
    }
}

/// CustomerOrderV3 (the order of ShowCustomerOrderDetails).
#[derive(Serialize)]
struct OrderV3 {
    #[serde(flatten)]
    core: OrderCore,
    /// The customer's account name (who the order was placed for).
    user_name: String,
    pending_payment_end_time: Option<String>,
    sub_order_infos: Vec<()>,
}

/// ListCustomerOrdersResponse, also the customer-self order list.
#[derive(Serialize)]
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
    let mut w = Where::new();
    if q.sub_customers {
        w.raw("1 = 0");
    }
    if let Some(c) = q.customer_id {
        w.eq("o.customer_id", Bind::Text(c));
    }
    if let Some(reseller) = q.indirect_partner_id {
        w.eq("c.partner_id", Bind::Text(reseller));
    }
    if let Some(id) = q.order_id {
        w.eq("o.id", Bind::Text(id));
    }
    if let Some(code) = q.service_type_code {
        w.eq("o.service_type_code", Bind::Text(code));
    }
    if let Some(s) = q.status {
        w.eq("o.status", Bind::Int(s));
    }
    if let Some(t) = q.order_type {
        w.eq("o.order_type", Bind::Int(t));
    }
    w.between("o.created_at", q.created.begin, q.created.end);
    w.between("o.payment_time", q.paid.begin, q.paid.end);
    let listed = order_list(w, q.order_by)
        .run(state.store.pool(), served, Some(q.paging))
        .await?;
    let (total_count, rows) = page_or_answer!(listed);
    let orders: Vec<OrderRow> = rows.iter().map(order_from_row).collect::<Result<_, _>>()?;
    Ok(Json(OrderPage {
        total_count,
        order_infos: orders.iter().map(OrderV2::from).collect(),
    })
    .into_response())
}

/// ProductObject.
#[derive(Serialize)]
struct ProductObject {
    product_id: String,
    product_spec_desc: Option<String>,
    category_code: Option<String>,
    product_owner_service: String,
    commercial_resource: Option<String>,
}

/// OrderLineItemEntityV2.
#[derive(Serialize)]
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
    effective_time: Option<Timestamp>,
    /// The effective time moved on by the period.
    #[serde(serialize_with = "wire::opt_time")]
    expire_time: Option<Timestamp>,
    subscription_num: i64,
    #[serde(serialize_with = "wire::money")]
    amount_after_discount: Decimal,
    #[serde(serialize_with = "wire::money")]
    official_amount: Decimal,
    amount_info: AmountInfo,
    currency: String,
    category_code: Option<String>,
    product_owner_service: String,
    commercial_resource: Option<String>,
    base_product_info: ProductObject,
    order_id: String,
}

fn line_item_from_row(row: &AnyRow, order: &OrderRow) -> Result<LineItem, ApiError> {
    let product_id = query::text(row, "product_id")?;
    let service_type_code = query::text(row, "service_type_code")?;
    let resource_type_code = query::opt_text(row, "resource_type_code")?;
    let period_type = query::opt_int(row, "period_type")?;
    let period_num = query::opt_int(row, "period_num")?;
    let amount = query::money(row, "amount_cents")?;
    let expire_time = match (order.payment_time, period_type, period_num) {
        (Some(start), Some(period_type), Some(period_num)) => crate::catalog::Period {
            period_type,
            period_num,
        }
        .after(start),
        _ => None,
    };
    Ok(LineItem {
        order_line_item_id: query::text(row, "id")?,
        service_type_name: service_type_name(&service_type_code),
        product_spec_desc: None,
        period_type,
        period_num,
        effective_time: order.payment_time,
        expire_time,
        subscription_num: query::int(row, "subscription_num")?,
        amount_after_discount: amount,
        official_amount: amount,
        amount_info: AmountInfo::new(vec![]),
        currency: order.currency.clone(),
        category_code: None,
        product_owner_service: service_type_code.clone(),
        commercial_resource: resource_type_code.clone(),
        base_product_info: ProductObject {
            product_id: product_id.clone(),
            product_spec_desc: None,
            category_code: None,
            product_owner_service: service_type_code.clone(),
            commercial_resource: resource_type_code,
        },
        product_id,
        service_type_code,
        order_id: order.id.clone(),
    })
}

/// ShowCustomerOrderDetailsRequest's query.
/// ShowCustomerOrderDetailsResponse.
#[derive(Serialize)]
struct OrderDetails {
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
    let pool = state.store.pool();
    let order = order(pool, &req.order_id)
        .await?
        .ok_or_else(ApiError::denied)?;
    let mut w = Where::new();
    w.eq("order_id", Bind::Text(order.id.clone()));
    let total_count = w.count(pool, "FROM order_line_items").await?;
    let rows = w
        .fetch(
            pool,
            "SELECT * FROM order_line_items",
            "ORDER BY id",
            Some(req.paging),
        )
        .await?;
    let items = rows
        .iter()
        .map(|r| line_item_from_row(r, &order))
        .collect::<Result<_, _>>()?;
    Ok(Json(OrderDetails {
        total_count,
        order_info: OrderV3 {
            core: OrderCore::of(&order),
            user_name: order.account_name.clone(),
            pending_payment_end_time: None,
            sub_order_infos: vec![],
        },
        order_line_items: items,
    })
    .into_response())
}

/// One price adjustment.
#[derive(Serialize)]
struct PriceAdjustment {
    adjustment_id: i64,
    order_id: String,
    #[serde(serialize_with = "wire::money")]
    amount_before_adjustment: Decimal,
    #[serde(serialize_with = "wire::money")]
    amount_after_adjustment: Decimal,
    reason: String,
    operator_id: Option<String>,
    operator_name: Option<String>,
    #[serde(serialize_with = "wire::time")]
    create_time: Timestamp,
}

fn adjustment_from_row(row: &AnyRow) -> Result<PriceAdjustment, ApiError> {
    Ok(PriceAdjustment {
        adjustment_id: query::int(row, "id")?,
        order_id: query::text(row, "order_id")?,
        amount_before_adjustment: query::money(row, "amount_before_cents")?,
        amount_after_adjustment: query::money(row, "amount_after_cents")?,
        reason: query::text(row, "reason")?,
        operator_id: query::opt_text(row, "operator_id")?,
        operator_name: query::opt_text(row, "operator_name")?,
        create_time: query::ts(row, "created_at")?,
    })
}

#[derive(Serialize)]
struct AdjustmentPage {
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
    let pool = state.store.pool();
    let order = order(pool, &req.order_id)
        .await?
        .ok_or_else(ApiError::denied)?;
    let mut w = Where::new();
    w.eq("p.order_id", Bind::Text(order.id.clone()));
    let total_count = w.count(pool, "FROM price_adjustments p").await?;
    let rows = w
        .fetch(
            pool,
            "SELECT p.*, op.name AS operator_name FROM price_adjustments p
             LEFT JOIN operators op ON op.id = p.operator_id",
            "ORDER BY p.id DESC",
            Some(req.paging),
        )
        .await?;
    Ok(Json(AdjustmentPage {
        order_id: order.id,
        total_count,
        price_adjustments: rows
            .iter()
            .map(adjustment_from_row)
            .collect::<Result<_, _>>()?,
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
    let new_cents = to_cents(new_amount)
        .map_err(|e| ApiError::parameter(format!("amount_after_adjustment: {e}")))?;
    let reason = req.reason;
    let operator = served.identity.acting_operator().map(str::to_owned);

    let mut tx = state.store.pool().begin().await?;
    let order = order(&mut *tx, &req.order_id)
        .await?
        .ok_or_else(ApiError::denied)?;
    if !UNPAID_STATUSES.contains(&order.status) || order.payment_time.is_some() {
        return Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "order {} has status {}{}; only unpaid orders (status {STATUS_PENDING_APPROVAL} pending approval or {STATUS_PENDING_PAYMENT} pending payment) can be price-adjusted",
                order.id,
                order.status,
                if order.payment_time.is_some() { " and is paid" } else { "" }
            ),
        ));
    }
    if new_amount > order.official_amount {
        return Err(ApiError::invalid(format!(
            "amount_after_adjustment {new_amount:.2} exceeds the order's official amount {:.2}",
            order.official_amount
        )));
    }
    let old_cents = to_cents(order.amount).map_err(db_error)?;
    let now = time::now();
    let updated = sqlx::query(
        "UPDATE orders SET amount_cents = $1
         WHERE id = $2 AND amount_cents = $3 AND status = $4 AND payment_time IS NULL",
    )
    .bind(new_cents)
    .bind(order.id.clone())
    .bind(old_cents)
    .bind(order.status)
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() != 1 {
        return Err(ApiError::conflict(
            codes::CONFLICT,
            format!(
                "order {} changed while it was being adjusted; read it again and retry",
                order.id
            ),
        ));
    }
    let row = sqlx::query(
        "INSERT INTO price_adjustments (order_id, operator_id, amount_before_cents, amount_after_cents, reason, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(order.id.clone())
    .bind(operator.clone())
    .bind(old_cents)
    .bind(new_cents)
    .bind(reason.clone())
    .bind(time::format(now))
    .fetch_one(&mut *tx)
    .await?;
    let adjustment_id = query::int(&row, "id")?;
    tx.commit().await?;

    let operator_name = match &operator {
        Some(id) => state
            .store
            .operator(&id.as_str().into())
            .await?
            .map(|o| o.name),
        None => None,
    };
    Ok((
        StatusCode::CREATED,
        Json(PriceAdjustment {
            adjustment_id,
            order_id: order.id,
            amount_before_adjustment: order.amount,
            amount_after_adjustment: new_amount,
            reason,
            operator_id: operator,
            operator_name,
            create_time: now,
        }),
    )
        .into_response())
}

/// Who owns an export: the principal kind and id of the assertion.
fn owner(identity: &Identity) -> (&'static str, String) {
    let kind = match identity.kind {
        CallerKind::Operator => "operator",
        CallerKind::Customer => "customer",
        CallerKind::Session => "session",
    };
    (kind, identity.id.clone())
}

#[derive(Serialize)]
struct ExportCreated {
    export_id: String,
    status: ExportStatus,
}

/// `POST /v2/orders/customer-orders/exports` → 202.
pub(super) async fn create_export(
    state: &DomainState,
    served: &Served,
    req: CreateOrderExport,
) -> Result<Response, ApiError> {
    let pool = state.store.pool();
    let ids: Vec<String> = match req.order_ids {
        Some(given) => {
            // Each id was decided by the gateway; all must still exist.
            let mut w = Where::new();
            w.is_in("o.id", given.iter().cloned().map(Bind::Text));
            if usize::try_from(w.count(pool, "FROM orders o").await?).ok() != Some(given.len()) {
                return Err(ApiError::denied());
            }
            given
        }
        None => {
            let listed = order_list(Where::new(), OrderBy::CreateTimeDesc)
                .run(pool, served, None)
                .await?;
            let (_, rows) = page_or_answer!(listed);
            rows.iter()
                .map(|r| query::text(r, "id"))
                .collect::<Result<_, _>>()?
        }
    };

    // A place in the worker's queue before the export exists: a full queue
    // refuses the request and leaves nothing pending.
    let queued = state.exports.reserve()?;
    let now = time::now();
    let export_id = format!(
        "exp-{}-{}",
        now.format("%Y%m%d%H%M%S"),
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let (kind, principal) = owner(&served.identity);
    let ids_json = serde_json::to_string(&ids).map_err(db_error)?;
    sqlx::query(
        "INSERT INTO export_tasks (id, principal_kind, principal_id, partner_id, status, order_ids, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(export_id.clone())
    .bind(kind.to_owned())
    .bind(principal)
    .bind(served.identity.partner.clone())
    .bind(ExportStatus::Pending.as_str().to_owned())
    .bind(ids_json)
    .bind(time::format(now))
    .execute(pool)
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
#[derive(Serialize)]
struct ExportView {
    export_id: String,
    status: ExportStatus,
    /// How many orders the export holds.
    order_count: i64,
    #[serde(serialize_with = "wire::time")]
    create_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    complete_time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_msg: Option<String>,
}

fn export_from_row(row: &AnyRow) -> Result<ExportView, ApiError> {
    let ids: Vec<String> =
        serde_json::from_str(&query::opt_text(row, "order_ids")?.unwrap_or_else(|| "[]".into()))
            .map_err(db_error)?;
    let mut view = ExportView {
        export_id: query::text(row, "id")?,
        status: query::parse(row, "status")?,
        order_count: i64::try_from(ids.len()).unwrap_or(i64::MAX),
        create_time: query::ts(row, "created_at")?,
        complete_time: query::opt_ts(row, "completed_at")?,
        error_msg: query::opt_text(row, "error")?,
    };
    // Lost with a restart: reported failed at once; the export worker
    // records it so (`exports::fail_stale`).
    if view.status == ExportStatus::Pending && view.create_time < stale_before(time::now()) {
        view.status = ExportStatus::Failed;
        view.error_msg = Some(INTERRUPTED.to_owned());
    }
    Ok(view)
}

#[derive(Serialize)]
struct ExportPage {
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
    let pool = state.store.pool();
    let list = List {
        item: EntityType::Export,
        alias: "e",
        from: "FROM export_tasks e",
        columns: "e.id, e.status, e.order_ids, e.created_at, e.completed_at, e.error",
        filters: Where::new(),
        order_by: "ORDER BY e.created_at DESC, e.id DESC",
    };
    let (total_count, rows) = page_or_answer!(list.run(pool, served, Some(req.paging)).await?);
    Ok(Json(ExportPage {
        total_count,
        exports: rows.iter().map(export_from_row).collect::<Result<_, _>>()?,
    })
    .into_response())
}

/// Export `id` (with its file), or 403 as for an unknown one.
async fn export(state: &DomainState, id: &str) -> Result<(ExportView, Option<String>), ApiError> {
    let pool = state.store.pool();
    let row = sqlx::query(
        "SELECT id, status, order_ids, created_at, completed_at, error, csv FROM export_tasks
         WHERE id = $1",
    )
    .bind(id.to_owned())
    .fetch_optional(pool)
    .await?
    .ok_or_else(ApiError::denied)?;
    Ok((export_from_row(&row)?, query::opt_text(&row, "csv")?))
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
