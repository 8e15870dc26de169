//! Typed requests of the order and resource routes: the public order list
//! and details, price adjustments, order exports, and the partner's resource
//! queries.

use super::fields::{
    self, cedar_decimal, id_list, missing, non_empty, opt_int, required_id, schema, Money,
    NoFields, Paging, PagingQuery, TimeRange,
};
use super::partner::reason;
use super::{ctx_string, ApiRequest, CallerRefs, Input, ParseRequest};
use crate::api_error::ApiError;
use crate::model::{ORDER_STATUSES, ORDER_TYPES};
use crate::refs::EntityRef;
use rust_decimal::Decimal;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

// ---- ListCustomerOrders ------------------------------------------------------

/// `order_by` of the public API.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OrderBy {
    CreateTimeAsc,
    /// The default: newest first.
    #[default]
    CreateTimeDesc,
}

impl OrderBy {
    pub fn parse(value: Option<String>) -> Result<OrderBy, ApiError> {
        match non_empty(value).as_deref() {
            None | Some("-createTime") => Ok(OrderBy::CreateTimeDesc),
            Some("createTime") => Ok(OrderBy::CreateTimeAsc),
            Some(other) => Err(fields::invalid(
                "order_by",
                format!("{other:?} is not createTime or -createTime"),
            )),
        }
    }
}

/// [`OrderBy::parse`]'s values.
pub(super) fn order_by_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["createTime", "-createTime"]})
}

/// [`order_status`]'s values.
pub(super) fn order_status_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "integer", "enum": ORDER_STATUSES})
}

/// [`order_type`]'s values.
pub(super) fn order_type_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "integer", "enum": ORDER_TYPES})
}

/// `method`'s values (ListCustomerOrders).
fn method_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "string", "enum": ["oneself", "sub_customer"]})
}

/// A `status` filter value: a known order status code.
pub fn order_status(value: Option<String>) -> Result<Option<i64>, ApiError> {
    let status = opt_int("status", value)?;
    match status {
        Some(s) if !ORDER_STATUSES.contains(&s) => Err(fields::invalid(
            "status",
            format!("{s} is not one of {ORDER_STATUSES:?}"),
        )),
        _ => Ok(status),
    }
}

/// An `order_type` filter value: a known order type code (sent as a string).
pub fn order_type(value: Option<String>) -> Result<Option<i64>, ApiError> {
    let t = opt_int("order_type", value)?;
    match t {
        Some(t) if !ORDER_TYPES.contains(&t) => Err(fields::invalid(
            "order_type",
            format!("{t} is not one of {ORDER_TYPES:?}"),
        )),
        _ => Ok(t),
    }
}

/// `GET /v2/orders/customer-orders` (ListCustomerOrdersRequest). With a
/// `customer_id`, that customer is a target (ViewOrders); either way each
/// order listed is decided with ViewOrder.
#[derive(Debug, Default)]
pub struct ListCustomerOrders {
    pub customer_id: Option<String>,
    pub order_id: Option<String>,
    pub service_type_code: Option<String>,
    pub status: Option<i64>,
    pub order_type: Option<i64>,
    pub created: TimeRange,
    pub paid: TimeRange,
    pub order_by: OrderBy,
    /// `method=sub_customer`: orders of enterprise sub-accounts, which the
    /// store does not keep (an empty list).
    pub sub_customers: bool,
    pub indirect_partner_id: Option<String>,
    pub paging: Paging,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListOrdersQuery {
    order_id: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::id")]
    customer_id: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    create_time_begin: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    create_time_end: Option<String>,
    service_type_code: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "order_status_schema")]
    status: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "order_type_schema")]
    order_type: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "order_by_schema")]
    order_by: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    payment_time_begin: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    payment_time_end: Option<String>,
    indirect_partner_id: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "method_schema")]
    method: Option<String>,
}

impl ParseRequest for ListCustomerOrders {
    type Query = ListOrdersQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let q: Self::Query = fields::query(input.query)?;
        let sub_customers = match non_empty(q.method).as_deref() {
            None | Some("oneself") => false,
            Some("sub_customer") => true,
            Some(other) => {
                return Err(fields::invalid(
                    "method",
                    format!("{other:?} is not oneself or sub_customer"),
                ))
            }
        };
        let customer_id = non_empty(q.customer_id);
        if let Some(id) = &customer_id {
            fields::check_id("customer_id", id)?;
        }
        Ok(ListCustomerOrders {
            paging: Paging::from_text(q.offset, q.limit)?,
            status: order_status(q.status)?,
            order_type: order_type(q.order_type)?,
            order_by: OrderBy::parse(q.order_by)?,
            created: TimeRange::parse(
                ("create_time_begin", q.create_time_begin),
                ("create_time_end", q.create_time_end),
                true,
            )?,
            paid: TimeRange::parse(
                ("payment_time_begin", q.payment_time_begin),
                ("payment_time_end", q.payment_time_end),
                true,
            )?,
            sub_customers,
            customer_id,
            order_id: non_empty(q.order_id),
            service_type_code: non_empty(q.service_type_code),
            indirect_partner_id: non_empty(q.indirect_partner_id),
        })
    }
}

impl ApiRequest for ListCustomerOrders {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }

    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(self
            .customer_id
            .iter()
            .map(|c| EntityRef::Customer(c.as_str().into()))
            .collect())
    }
}

// ---- one order ---------------------------------------------------------------

fn order(id: &str) -> Vec<EntityRef> {
    vec![EntityRef::Order(id.into())]
}

/// `GET /v2/orders/customer-orders/details/{order_id}`: the order and a page
/// of its line items.
#[derive(Debug)]
pub struct ShowCustomerOrderDetails {
    pub order_id: String,
    pub paging: Paging,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailsQuery {
    #[serde(default)]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<String>,
    #[allow(dead_code)]
    indirect_partner_id: Option<String>,
}

impl ParseRequest for ShowCustomerOrderDetails {
    type Query = DetailsQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let q: Self::Query = fields::query(input.query)?;
        Ok(ShowCustomerOrderDetails {
            order_id: input.param("order_id")?,
            paging: Paging::from_text(q.offset, q.limit)?,
        })
    }
}

impl ApiRequest for ShowCustomerOrderDetails {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(order(&self.order_id))
    }
}

/// `GET /v2/orders/customer-orders/{order_id}/price-adjustments`.
#[derive(Debug)]
pub struct ListPriceAdjustments {
    pub order_id: String,
    pub paging: Paging,
}

impl ParseRequest for ListPriceAdjustments {
    type Query = PagingQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        Ok(ListPriceAdjustments {
            order_id: input.param("order_id")?,
            paging: PagingQuery::parse(input.query)?,
        })
    }
}

impl ApiRequest for ListPriceAdjustments {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(order(&self.order_id))
    }
}

/// The longest price-adjustment reason, in characters.
pub const MAX_ADJUSTMENT_REASON: usize = 256;

/// `POST /v2/orders/customer-orders/{order_id}/price-adjustments`.
#[derive(Debug)]
pub struct AdjustOrderPrice {
    pub order_id: String,
    /// At least 0, at most two places (the store also keeps it at or below
    /// the order's list price).
    pub amount: Decimal,
    pub reason: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdjustBody {
    #[schemars(schema_with = "schema::money_from_zero")]
    amount_after_adjustment: Option<Money>,
    #[schemars(schema_with = "schema::text::<MAX_ADJUSTMENT_REASON>")]
    reason: Option<String>,
}

impl ParseRequest for AdjustOrderPrice {
    type Query = NoFields;
    type Body = AdjustBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        let field = "amount_after_adjustment";
        Ok(AdjustOrderPrice {
            order_id: input.param("order_id")?,
            amount: b
                .amount_after_adjustment
                .ok_or_else(|| missing(field))?
                .within(field, Decimal::ZERO, false)?,
            reason: reason("reason", b.reason, MAX_ADJUSTMENT_REASON)?
                .trim()
                .to_owned(),
        })
    }
}

impl ApiRequest for AdjustOrderPrice {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(order(&self.order_id))
    }

    fn context(&self, _: &CallerRefs) -> Map<String, Value> {
        let mut ctx = Map::new();
        ctx_string(&mut ctx, "amount", &cedar_decimal(self.amount));
        ctx
    }
}

// ---- exports -----------------------------------------------------------------

/// At most this many ids in one export request.
pub const MAX_EXPORT_IDS: usize = 1000;

/// `POST /v2/orders/customer-orders/exports`: the named orders (each a
/// target, all or nothing), or, without `order_ids`, every order the caller
/// may export (ExportOrders per order).
#[derive(Debug)]
pub struct CreateOrderExport {
    pub order_ids: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportBody {
    #[serde(default)]
    #[schemars(schema_with = "schema::ids::<1, MAX_EXPORT_IDS>")]
    order_ids: Option<Vec<String>>,
}

impl ParseRequest for CreateOrderExport {
    type Query = NoFields;
    type Body = ExportBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        let order_ids = match b.order_ids {
            None => None,
            Some(ids) if ids.is_empty() => {
                return Err(fields::invalid(
                    "order_ids",
                    "must not be empty; leave it out to export every order you may export",
                ))
            }
            Some(ids) => Some(id_list("order_ids", Some(ids), 1, MAX_EXPORT_IDS)?),
        };
        Ok(CreateOrderExport { order_ids })
    }
}

impl ApiRequest for CreateOrderExport {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(self
            .order_ids
            .iter()
            .flatten()
            .map(|id| EntityRef::Order(id.as_str().into()))
            .collect())
    }

    fn lists(&self) -> bool {
        self.order_ids.is_none()
    }
}

/// `GET /v2/orders/customer-orders/exports`: the exports the caller may see
/// (ViewExport per export), newest first.
#[derive(Debug)]
pub struct ListOrderExports {
    pub paging: Paging,
}

impl ParseRequest for ListOrderExports {
    type Query = PagingQuery;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        Ok(ListOrderExports {
            paging: PagingQuery::parse(input.query)?,
        })
    }
}

impl ApiRequest for ListOrderExports {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }
}

/// `GET /v2/orders/customer-orders/exports/{export_id}`.
#[derive(Debug)]
pub struct ShowOrderExport {
    pub export_id: String,
}

/// `GET /v2/orders/customer-orders/exports/{export_id}/file`: the CSV, once completed.
#[derive(Debug)]
pub struct DownloadOrderExport {
    pub export_id: String,
}

impl ParseRequest for ShowOrderExport {
    type Query = NoFields;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        fields::no_query(input.query)?;
        Ok(ShowOrderExport {
            export_id: input.param("export_id")?,
        })
    }
}

impl ParseRequest for DownloadOrderExport {
    type Query = NoFields;
    type Body = NoFields;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        fields::no_query(input.query)?;
        Ok(DownloadOrderExport {
            export_id: input.param("export_id")?,
        })
    }
}

impl ApiRequest for ShowOrderExport {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Export(self.export_id.as_str().into())])
    }
}

impl ApiRequest for DownloadOrderExport {
    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Export(self.export_id.as_str().into())])
    }
}

// ---- resource queries ----------------------------------------------------------

/// At most this many `resource_ids` in one resource query.
pub const MAX_RESOURCE_IDS: usize = 50;

/// `resource_ids`: at most 50 non-empty ids; absent or empty is no filter.
fn resource_ids(value: Option<Vec<String>>) -> Result<Vec<String>, ApiError> {
    let ids = value.unwrap_or_default();
    if ids.is_empty() {
        return Ok(ids);
    }
    id_list("resource_ids", Some(ids), 1, MAX_RESOURCE_IDS)
}

/// An optional text filter of a body: absent or `null` is no filter, an empty
/// string is refused.
fn text_filter(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.trim().is_empty() => Err(fields::invalid(field, "must not be empty")),
        other => Ok(other),
    }
}

/// `POST /v2/partners/sub-customers/on-demand-resources/query`
/// (QueryCustomerOnDemandResourcesReq): the customer's pay-per-use resources.
#[derive(Debug)]
pub struct ListCustomerOnDemandResources {
    pub customer_id: String,
    pub region_code: Option<String>,
    pub service_type_code: Option<String>,
    pub resource_ids: Vec<String>,
    pub effective: TimeRange,
    /// The public on-demand status code, 1..=6.
    pub status: Option<i64>,
    pub paging: Paging,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnDemandBody {
    #[schemars(schema_with = "schema::id")]
    customer_id: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::non_blank")]
    region_code: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::non_blank")]
    service_type_code: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::ids::<0, MAX_RESOURCE_IDS>")]
    resource_ids: Option<Vec<String>>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    effective_time_begin: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    effective_time_end: Option<String>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<i64>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::int::<1, 6>")]
    status: Option<i64>,
    #[allow(dead_code)]
    indirect_partner_id: Option<String>,
}

impl ParseRequest for ListCustomerOnDemandResources {
    type Query = NoFields;
    type Body = OnDemandBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        let status = match b.status {
            None => None,
            Some(s @ 1..=6) => Some(s),
            Some(s) => return Err(fields::invalid("status", format!("{s} is not one of 1..6"))),
        };
        Ok(ListCustomerOnDemandResources {
            paging: Paging::new(b.offset, b.limit)?,
            effective: TimeRange::parse(
                ("effective_time_begin", b.effective_time_begin),
                ("effective_time_end", b.effective_time_end),
                false,
            )?,
            status,
            region_code: text_filter("region_code", b.region_code)?,
            service_type_code: text_filter("service_type_code", b.service_type_code)?,
            resource_ids: resource_ids(b.resource_ids)?,
            customer_id: required_id("customer_id", b.customer_id)?,
        })
    }
}

impl ApiRequest for ListCustomerOnDemandResources {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }

    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Customer(self.customer_id.as_str().into())])
    }
}

/// `POST /v2/orders/suscriptions/resources/query` (QueryResourcesReq): the
/// customer's yearly/monthly resources.
#[derive(Debug)]
pub struct ListPayPerUseCustomerResources {
    pub customer_id: String,
    pub resource_ids: Vec<String>,
    pub order_id: Option<String>,
    /// Public subscription status codes, each 2..=5.
    pub status_list: Vec<i64>,
    pub expire: TimeRange,
    pub service_type_code: Option<String>,
    pub paging: Paging,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionBody {
    #[serde(default)]
    #[schemars(schema_with = "schema::ids::<0, MAX_RESOURCE_IDS>")]
    resource_ids: Option<Vec<String>>,
    #[serde(default)]
    #[schemars(schema_with = "schema::non_blank")]
    order_id: Option<String>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::int::<0, 1>")]
    only_main_resource: Option<i64>,
    #[serde(default, deserialize_with = "fields::integers")]
    #[schemars(schema_with = "status_list_schema")]
    status_list: Option<Vec<i64>>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::offset")]
    offset: Option<i64>,
    #[serde(default, deserialize_with = "fields::integer")]
    #[schemars(schema_with = "schema::limit")]
    limit: Option<i64>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    expire_time_begin: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::time")]
    expire_time_end: Option<String>,
    #[serde(default)]
    #[schemars(schema_with = "schema::non_blank")]
    service_type_code: Option<String>,
    #[schemars(schema_with = "schema::id")]
    customer_id: Option<String>,
}

/// `status_list`'s values (the parser below).
fn status_list_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({"type": "array", "items": {"type": "integer", "minimum": 2, "maximum": 5}})
}

impl ParseRequest for ListPayPerUseCustomerResources {
    type Query = NoFields;
    type Body = SubscriptionBody;

    fn parse(input: &Input) -> Result<Self, ApiError> {
        let b: Self::Body = fields::json(input.body)?;
        if let Some(m) = b.only_main_resource {
            // Every resource here is a main resource, so it filters nothing.
            fields::long_in("only_main_resource", Some(m), 0..=1, None)?;
        }
        let status_list = b.status_list.unwrap_or_default();
        if let Some(s) = status_list.iter().find(|s| !(2..=5).contains(*s)) {
            return Err(fields::invalid(
                "status_list",
                format!("{s} is not one of 2, 3, 4, 5"),
            ));
        }
        Ok(ListPayPerUseCustomerResources {
            paging: Paging::new(b.offset, b.limit)?,
            expire: TimeRange::parse(
                ("expire_time_begin", b.expire_time_begin),
                ("expire_time_end", b.expire_time_end),
                false,
            )?,
            status_list,
            service_type_code: text_filter("service_type_code", b.service_type_code)?,
            order_id: text_filter("order_id", b.order_id)?,
            resource_ids: resource_ids(b.resource_ids)?,
            customer_id: required_id("customer_id", b.customer_id)?,
        })
    }
}

impl ApiRequest for ListPayPerUseCustomerResources {
    fn paging(&self) -> Option<Paging> {
        Some(self.paging)
    }

    fn targets(&self, _: &CallerRefs) -> Result<Vec<EntityRef>, ApiError> {
        Ok(vec![EntityRef::Customer(self.customer_id.as_str().into())])
    }
}
