//! Resources: the partner queries of one customer's pay-per-use resources
//! (`POST /v2/partners/sub-customers/on-demand-resources/query`,
//! ListCustomerOnDemandResources) and yearly/monthly resources
//! (`POST /v2/orders/suscriptions/resources/query`, sic; the SDK calls it
//! ListPayPerUseCustomerResources), plus what the customer-self routes share:
//! the resource views and the O&M state machine.
//!
//! Decisions where the public API is silent:
//! - A yearly/monthly resource whose `expire_at` has passed counts as
//!   `expired` (in answers, filters and operations) even before anything
//!   rewrites its row: expiry is a matter of time, not of a background job.
//! - Wire status of yearly/monthly resources (OrderInstanceV2): `in_use` and
//!   `stopped` → 2 (in use: a stopped server is still subscribed), `closed`
//!   → 3, `frozen` → 4, `expired` → 5. Of pay-per-use resources
//!   (CustomerOnDemandResource): `in_use`, `stopped` → 1 (normal), `expired`
//!   → 2 (grace period), `frozen` → 3, `closed` → 6; 4 and 5 (changing,
//!   closing) are valid filters that match nothing, as no resource is ever
//!   caught mid-change here.
//! - `effective_time` is the resource's creation time. `indirect_partner_id`
//!   narrows a distributor's scope to that reseller's customers
//!   ([`PartnerScope::narrowed`]). A customer outside the caller's scope
//!   answers exactly like an unknown one (403 CBC.0151).
//! - The O&M state machine ([`transition`]): `start` only from `stopped`;
//!   `stop` and `restart` only from `in_use`; `renew` only for yearly/monthly
//!   resources that are in use, stopped or expired: it extends `expire_at`
//!   by the resource's period (the period of its order's line item, one
//!   month when it has none) counted from the later of the old expiry and
//!   now, and revives an expired resource to `in_use`; `unsubscribe` closes a
//!   resource that is in use, stopped or expired. Nothing operates a frozen
//!   or closed resource. Renewing and unsubscribing do not create orders
//!   here (the store keeps no price list to bill them with).

use super::extract::{check_time_order, non_empty, opt_time, Caller, OptionalJson, Paging};
use super::query::{self, bind_all, db_error, Bind, Where};
use super::scope::PartnerScope;
use super::{wire, DomainState};
use crate::api_error::{codes, ApiError};
use crate::model::{Charging, ResourceStatus};
use crate::time::{self, Timestamp};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

pub fn routes() -> Router<DomainState> {
    Router::new()
        .route(
            "/v2/partners/sub-customers/on-demand-resources/query",
            post(list_on_demand),
        )
        .route(
            "/v2/orders/suscriptions/resources/query",
            post(list_subscriptions),
        )
}

/// At most this many `resource_ids` in one query (the public limit).
const MAX_RESOURCE_IDS: usize = 50;

/// The display name of a service type code; the code itself when unknown.
pub(super) fn service_type_name(code: &str) -> String {
    match code {
        "hws.service.type.ec2" => "Elastic Cloud Server",
        "hws.service.type.ebs" => "Elastic Volume Service",
        "hws.service.type.obs" => "Object Storage Service",
        "hws.service.type.rds" => "Relational Database Service",
        "hws.service.type.vpc" => "Virtual Private Cloud",
        "hws.service.type.elb" => "Elastic Load Balance",
        "hws.service.type.cce" => "Cloud Container Engine",
        other => other,
    }
    .to_owned()
}

/// A billing period: `period_type` 0 day, 1 week, 2 month, 3 year, 4 hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Period {
    pub period_type: i64,
    pub period_num: i64,
}

impl Period {
    pub const ONE_MONTH: Period = Period {
        period_type: 2,
        period_num: 1,
    };

    /// `t` moved on by this period; `None` when the period is not one (or overflows).
    pub fn after(self, t: Timestamp) -> Option<Timestamp> {
        let n = u32::try_from(self.period_num).ok().filter(|n| *n > 0)?;
        match self.period_type {
            0 => t.checked_add_signed(chrono::Duration::days(n.into())),
            1 => t.checked_add_signed(chrono::Duration::weeks(n.into())),
            2 => t.checked_add_months(chrono::Months::new(n)),
            3 => t.checked_add_months(chrono::Months::new(n.checked_mul(12)?)),
            4 => t.checked_add_signed(chrono::Duration::hours(n.into())),
            _ => None,
        }
    }
}

/// A resource row as the domain routes read it.
#[derive(Clone, Debug)]
pub(super) struct ResourceRow {
    pub id: String,
    pub customer: String,
    pub charging: Charging,
    pub service_type_code: String,
    pub resource_type_code: Option<String>,
    pub name: String,
    pub region_code: Option<String>,
    /// The status as stored.
    pub stored_status: ResourceStatus,
    /// The status with expiry applied (see the module docs).
    pub status: ResourceStatus,
    pub expire_at: Option<Timestamp>,
    pub order: Option<String>,
    pub created_at: Timestamp,
    pub product_id: Option<String>,
    /// The period of the order line item the resource was bought with.
    pub period: Option<Period>,
}

/// `FROM` clause over resources (aliased `r`, with the effective status,
/// product id and period of its order's line item) joined to their customers
/// (`c`). Adds the one bind it needs (now) to `w`.
pub(super) fn resource_source(w: &mut Where) -> String {
    let now = w.arg(Bind::Text(time::format(time::now())));
    // The resource's line item in its order: the first one of the same
    // resource type, else the first one. (Chosen with MIN rather than a
    // correlated ORDER BY, which SQLite 3.46 fails to resolve under COUNT.)
    format!(
        "(SELECT rs.*,
            CASE WHEN rs.charging = 'yearly_monthly' AND rs.status IN ('in_use', 'stopped')
                      AND rs.expire_at IS NOT NULL AND rs.expire_at <= {now}
                 THEN 'expired' ELSE rs.status END AS effective_status,
            li.product_id AS li_product_id, li.period_type AS li_period_type, li.period_num AS li_period_num
          FROM resources rs
          LEFT JOIN order_line_items li ON li.id = COALESCE(
            (SELECT MIN(l.id) FROM order_line_items l
              WHERE l.order_id = rs.order_id AND l.resource_type_code = rs.resource_type_code),
            (SELECT MIN(l.id) FROM order_line_items l WHERE l.order_id = rs.order_id))) r
         JOIN customers c ON c.id = r.customer_id"
    )
}

pub(super) fn resource_from_row(row: &AnyRow) -> Result<ResourceRow, ApiError> {
    let period = match (
        query::opt_int(row, "li_period_type")?,
        query::opt_int(row, "li_period_num")?,
    ) {
        (Some(period_type), Some(period_num)) => Some(Period {
            period_type,
            period_num,
        }),
        _ => None,
    };
    Ok(ResourceRow {
        id: query::text(row, "id")?,
        customer: query::text(row, "customer_id")?,
        charging: query::parse(row, "charging")?,
        service_type_code: query::text(row, "service_type_code")?,
        resource_type_code: query::opt_text(row, "resource_type_code")?,
        name: query::text(row, "name")?,
        region_code: query::opt_text(row, "region_code")?,
        stored_status: query::parse(row, "status")?,
        status: query::parse(row, "effective_status")?,
        expire_at: query::opt_ts(row, "expire_at")?,
        order: query::opt_text(row, "order_id")?,
        created_at: query::ts(row, "created_at")?,
        product_id: query::opt_text(row, "li_product_id")?,
        period,
    })
}

/// Counts and reads one page of resources matching `w` (which must have been
/// started with [`resource_source`]), newest first.
pub(super) async fn page_of_resources(
    state: &DomainState,
    source: &str,
    w: Where,
    paging: Paging,
) -> Result<(i64, Vec<ResourceRow>), ApiError> {
    let pool = state.store.pool();
    let total = w.count(pool, &format!("FROM {source}")).await?;
    let rows = w
        .fetch_page(
            pool,
            &format!("SELECT r.* FROM {source}"),
            "ORDER BY r.created_at DESC, r.id",
            paging,
        )
        .await?;
    let items = rows
        .iter()
        .map(resource_from_row)
        .collect::<Result<_, _>>()?;
    Ok((total, items))
}

/// One resource of `customer` (with the effective status), or `None`.
pub(super) async fn resource_of(
    state: &DomainState,
    customer: &str,
    id: &str,
) -> Result<Option<ResourceRow>, ApiError> {
    let mut w = Where::new();
    let source = resource_source(&mut w);
    w.eq("r.id", Bind::Text(id.to_owned()));
    w.eq("r.customer_id", Bind::Text(customer.to_owned()));
    let sql = format!("SELECT r.* FROM {source}{}", w.sql());
    let row = bind_all(sqlx::query(&sql), w.binds())
        .fetch_optional(state.store.pool())
        .await
        .map_err(db_error)?;
    row.as_ref().map(resource_from_row).transpose()
}

/// Yearly/monthly wire status (OrderInstanceV2).
fn subscription_status(s: ResourceStatus) -> i64 {
    match s {
        ResourceStatus::InUse | ResourceStatus::Stopped => 2,
        ResourceStatus::Closed => 3,
        ResourceStatus::Frozen => 4,
        ResourceStatus::Expired => 5,
    }
}

/// Pay-per-use wire status (CustomerOnDemandResource).
fn on_demand_status(s: ResourceStatus) -> i64 {
    match s {
        ResourceStatus::InUse | ResourceStatus::Stopped => 1,
        ResourceStatus::Expired => 2,
        ResourceStatus::Frozen => 3,
        ResourceStatus::Closed => 6,
    }
}

/// The stored statuses a wire status filter selects.
fn statuses_for(wire: i64, to_wire: fn(ResourceStatus) -> i64) -> Vec<Bind> {
    [
        ResourceStatus::InUse,
        ResourceStatus::Stopped,
        ResourceStatus::Frozen,
        ResourceStatus::Expired,
        ResourceStatus::Closed,
    ]
    .into_iter()
    .filter(|s| to_wire(*s) == wire)
    .map(|s| Bind::Text(s.as_str().to_owned()))
    .collect()
}

/// CustomerOnDemandResource.
#[derive(Serialize)]
struct OnDemandResource {
    customer_id: String,
    region_code: Option<String>,
    availability_zone_code: Option<String>,
    service_type_code: String,
    resource_type_code: Option<String>,
    service_type_name: String,
    resource_type_name: Option<String>,
    resource_id: String,
    resource_name: String,
    #[serde(serialize_with = "wire::time")]
    effective_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    expire_time: Option<Timestamp>,
    status: i64,
    resource_spec_code: Option<String>,
    resource_info: Option<String>,
    product_spec_desc: Option<String>,
}

impl From<ResourceRow> for OnDemandResource {
    fn from(r: ResourceRow) -> Self {
        OnDemandResource {
            customer_id: r.customer,
            region_code: r.region_code,
            availability_zone_code: None,
            service_type_name: service_type_name(&r.service_type_code),
            service_type_code: r.service_type_code,
            resource_type_code: r.resource_type_code,
            resource_type_name: None,
            resource_id: r.id,
            resource_name: r.name,
            effective_time: r.created_at,
            expire_time: r.expire_at,
            status: on_demand_status(r.status),
            resource_spec_code: None,
            resource_info: None,
            product_spec_desc: None,
        }
    }
}

/// OrderInstanceV2.
#[derive(Serialize)]
struct SubscriptionResource {
    id: String,
    resource_id: String,
    resource_name: String,
    region_code: Option<String>,
    service_type_code: String,
    resource_type_code: Option<String>,
    resource_type_name: Option<String>,
    service_type_name: String,
    resource_spec_code: Option<String>,
    project_id: Option<String>,
    product_id: Option<String>,
    parent_resource_id: Option<String>,
    is_main_resource: i64,
    status: i64,
    #[serde(serialize_with = "wire::time")]
    effective_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    expire_time: Option<Timestamp>,
    expire_policy: Option<i64>,
    product_spec_desc: Option<String>,
    spec_size: Option<rust_decimal::Decimal>,
    spec_size_measure_id: Option<i64>,
    update_time: Option<String>,
    enterprise_project: Option<()>,
}

impl From<ResourceRow> for SubscriptionResource {
    fn from(r: ResourceRow) -> Self {
        SubscriptionResource {
            id: r.id.clone(),
            resource_id: r.id,
            resource_name: r.name,
            region_code: r.region_code,
            service_type_name: service_type_name(&r.service_type_code),
            service_type_code: r.service_type_code,
            resource_type_code: r.resource_type_code,
            resource_type_name: None,
            resource_spec_code: None,
            project_id: None,
            product_id: r.product_id,
            parent_resource_id: None,
            is_main_resource: 1,
            status: subscription_status(r.status),
            effective_time: r.created_at,
            expire_time: r.expire_at,
            expire_policy: None,
            product_spec_desc: None,
            spec_size: None,
            spec_size_measure_id: None,
            update_time: None,
            enterprise_project: None,
        }
    }
}

/// A resource as the customer-self routes show it (an extension: both
/// charging modes in one list, with the store's own status names).
#[derive(Serialize)]
pub(super) struct OwnResource {
    resource_id: String,
    resource_name: String,
    charging: Charging,
    service_type_code: String,
    service_type_name: String,
    resource_type_code: Option<String>,
    region_code: Option<String>,
    status: ResourceStatus,
    #[serde(serialize_with = "wire::time")]
    effective_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    expire_time: Option<Timestamp>,
    order_id: Option<String>,
    product_id: Option<String>,
}

impl From<ResourceRow> for OwnResource {
    fn from(r: ResourceRow) -> Self {
        OwnResource {
            resource_id: r.id,
            resource_name: r.name,
            charging: r.charging,
            service_type_name: service_type_name(&r.service_type_code),
            service_type_code: r.service_type_code,
            resource_type_code: r.resource_type_code,
            region_code: r.region_code,
            status: r.status,
            effective_time: r.created_at,
            expire_time: r.expire_at,
            order_id: r.order,
            product_id: r.product_id,
        }
    }
}

/// `customer_id` of a partner resource query: required, and a customer in
/// the caller's scope; an unknown one and one outside the scope look the same.
async fn customer_in_scope(
    state: &DomainState,
    scope: &PartnerScope,
    customer_id: Option<String>,
) -> Result<String, ApiError> {
    let id =
        non_empty(customer_id).ok_or_else(|| ApiError::parameter("customer_id is required"))?;
    if id.len() > 64 {
        return Err(ApiError::invalid(
            "customer_id must be at most 64 characters",
        ));
    }
    if !scope.sees_customer(state.store.pool(), &id).await? {
        return Err(ApiError::denied());
    }
    Ok(id)
}

/// `resource_ids`: at most 50 non-empty ids; an empty list is no filter.
fn resource_ids_filter(w: &mut Where, ids: Option<Vec<String>>) -> Result<(), ApiError> {
    let ids = ids.unwrap_or_default();
    if ids.len() > MAX_RESOURCE_IDS {
        return Err(ApiError::invalid(format!(
            "resource_ids may hold at most {MAX_RESOURCE_IDS} ids"
        )));
    }
    if ids.iter().any(|id| id.trim().is_empty()) {
        return Err(ApiError::invalid("resource_ids must not contain empty ids"));
    }
    if !ids.is_empty() {
        w.is_in("r.id", ids.into_iter().map(Bind::Text));
    }
    Ok(())
}

/// An optional text filter of a body: absent or `null` is no filter, an empty string is refused.
fn text_filter(name: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.trim().is_empty() => {
            Err(ApiError::invalid(format!("{name} must not be empty")))
        }
        other => Ok(other),
    }
}

/// QueryCustomerOnDemandResourcesReq.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnDemandQuery {
    customer_id: Option<String>,
    region_code: Option<String>,
    service_type_code: Option<String>,
    resource_ids: Option<Vec<String>>,
    effective_time_begin: Option<String>,
    effective_time_end: Option<String>,
    offset: Option<i64>,
    limit: Option<i64>,
    status: Option<i64>,
    indirect_partner_id: Option<String>,
}

#[derive(Serialize)]
struct OnDemandPage {
    resources: Vec<OnDemandResource>,
    total_count: i64,
}

async fn list_on_demand(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    OptionalJson(q): OptionalJson<OnDemandQuery>,
) -> Result<Json<OnDemandPage>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?
        .narrowed(&state.store, q.indirect_partner_id.as_deref())
        .await?;
    let paging = Paging::new(q.offset, q.limit)?;
    let begin = opt_time("effective_time_begin", q.effective_time_begin)?;
    let end = opt_time("effective_time_end", q.effective_time_end)?;
    check_time_order("effective_time_begin", begin, "effective_time_end", end)?;
    let status = match q.status {
        None => None,
        Some(s @ 1..=6) => Some(statuses_for(s, on_demand_status)),
        Some(s) => return Err(ApiError::invalid(format!("status {s} is not one of 1..6"))),
    };
    let region = text_filter("region_code", q.region_code)?;
    let service = text_filter("service_type_code", q.service_type_code)?;
    let customer = customer_in_scope(&state, &scope, q.customer_id).await?;

    let mut w = Where::new();
    let source = resource_source(&mut w);
    w.eq("r.customer_id", Bind::Text(customer));
    w.eq(
        "r.charging",
        Bind::Text(Charging::PayPerUse.as_str().to_owned()),
    );
    resource_ids_filter(&mut w, q.resource_ids)?;
    if let Some(region) = region {
        w.eq("r.region_code", Bind::Text(region));
    }
    if let Some(service) = service {
        w.eq("r.service_type_code", Bind::Text(service));
    }
    w.between("r.created_at", begin, end);
    if let Some(statuses) = status {
        w.is_in("r.effective_status", statuses);
    }
    let (total_count, rows) = page_of_resources(&state, &source, w, paging).await?;
    Ok(Json(OnDemandPage {
        resources: rows.into_iter().map(OnDemandResource::from).collect(),
        total_count,
    }))
}

/// QueryResourcesReq.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubscriptionQuery {
    resource_ids: Option<Vec<String>>,
    order_id: Option<String>,
    only_main_resource: Option<i64>,
    status_list: Option<Vec<i64>>,
    offset: Option<i64>,
    limit: Option<i64>,
    expire_time_begin: Option<String>,
    expire_time_end: Option<String>,
    service_type_code: Option<String>,
    customer_id: Option<String>,
}

#[derive(Serialize)]
struct SubscriptionPage {
    data: Vec<SubscriptionResource>,
    total_count: i64,
}

async fn list_subscriptions(
    State(state): State<DomainState>,
    Caller(claims): Caller,
    OptionalJson(q): OptionalJson<SubscriptionQuery>,
) -> Result<Json<SubscriptionPage>, ApiError> {
    let scope = PartnerScope::of(&claims.identity)?;
    let paging = Paging::new(q.offset, q.limit)?;
    let begin = opt_time("expire_time_begin", q.expire_time_begin)?;
    let end = opt_time("expire_time_end", q.expire_time_end)?;
    check_time_order("expire_time_begin", begin, "expire_time_end", end)?;
    if let Some(m) = q.only_main_resource {
        if m != 0 && m != 1 {
            return Err(ApiError::invalid("only_main_resource must be 0 or 1"));
        }
    }
    let mut statuses = Vec::new();
    for s in q.status_list.unwrap_or_default() {
        if !(2..=5).contains(&s) {
            return Err(ApiError::invalid(format!(
                "status_list: {s} is not one of 2, 3, 4, 5"
            )));
        }
        statuses.extend(statuses_for(s, subscription_status));
    }
    let service = text_filter("service_type_code", q.service_type_code)?;
    let order = text_filter("order_id", q.order_id)?;
    let customer = customer_in_scope(&state, &scope, q.customer_id).await?;

    let mut w = Where::new();
    let source = resource_source(&mut w);
    w.eq("r.customer_id", Bind::Text(customer));
    w.eq(
        "r.charging",
        Bind::Text(Charging::YearlyMonthly.as_str().to_owned()),
    );
    resource_ids_filter(&mut w, q.resource_ids)?;
    // Every resource here is a main resource, so only_main_resource filters nothing.
    if let Some(order) = order {
        w.eq("r.order_id", Bind::Text(order));
    }
    if let Some(service) = service {
        w.eq("r.service_type_code", Bind::Text(service));
    }
    w.between("r.expire_at", begin, end);
    if !statuses.is_empty() {
        w.is_in("r.effective_status", statuses);
    }
    let (total_count, rows) = page_of_resources(&state, &source, w, paging).await?;
    Ok(Json(SubscriptionPage {
        data: rows.into_iter().map(SubscriptionResource::from).collect(),
        total_count,
    }))
}

/// A resource operation of the customer-self O&M route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Operation {
    Start,
    Stop,
    Restart,
    Renew,
    Unsubscribe,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Start => "start",
            Operation::Stop => "stop",
            Operation::Restart => "restart",
            Operation::Renew => "renew",
            Operation::Unsubscribe => "unsubscribe",
        }
    }
}

/// What an operation turns a resource into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Transition {
    pub status: ResourceStatus,
    pub expire_at: Option<Timestamp>,
}

fn refuse(msg: String) -> ApiError {
    ApiError::conflict(codes::CONFLICT, msg)
}

/// The O&M state machine (see the module docs). `r.status` is the effective status.
pub(super) fn transition(
    r: &ResourceRow,
    op: Operation,
    now: Timestamp,
) -> Result<Transition, ApiError> {
    use ResourceStatus::*;
    let id = &r.id;
    let stay = |status| Transition {
        status,
        expire_at: r.expire_at,
    };
    match (op, r.status) {
        (_, Closed) => Err(refuse(format!(
            "resource {id} is closed; no operation applies to it"
        ))),
        (_, Frozen) => Err(refuse(format!(
            "resource {id} is frozen; it cannot be operated until it is unfrozen"
        ))),
        (Operation::Start, Stopped) => Ok(stay(InUse)),
        (Operation::Start, s) => Err(refuse(format!(
            "resource {id} is {s}; only a stopped resource can be started"
        ))),
        (Operation::Stop, InUse) => Ok(stay(Stopped)),
        (Operation::Restart, InUse) => Ok(stay(InUse)),
        (Operation::Stop | Operation::Restart, s) => Err(refuse(format!(
            "resource {id} is {s}; only a resource in use can be {}",
            if op == Operation::Stop {
                "stopped"
            } else {
                "restarted"
            }
        ))),
        (Operation::Renew, s) => {
            if r.charging != Charging::YearlyMonthly {
                return Err(refuse(format!(
                    "resource {id} is pay-per-use; only yearly/monthly resources are renewed"
                )));
            }
            let period = r.period.unwrap_or(Period::ONE_MONTH);
            let from = r.expire_at.map_or(now, |e| e.max(now));
            let expire_at = period
                .after(from)
                .ok_or_else(|| refuse(format!("resource {id} has no renewable period")))?;
            let status = if s == Expired { InUse } else { s };
            Ok(Transition {
                status,
                expire_at: Some(expire_at),
            })
        }
        (Operation::Unsubscribe, InUse | Stopped | Expired) => Ok(stay(Closed)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        time::parse(s).unwrap()
    }

    fn res(
        charging: Charging,
        status: ResourceStatus,
        expire: Option<&str>,
        period: Option<Period>,
    ) -> ResourceRow {
        ResourceRow {
            id: "r1".into(),
            customer: "c1".into(),
            charging,
            service_type_code: "hws.service.type.ec2".into(),
            resource_type_code: None,
            name: "n".into(),
            region_code: None,
            stored_status: status,
            status,
            expire_at: expire.map(ts),
            order: None,
            created_at: ts("2026-01-01T00:00:00Z"),
            product_id: None,
            period,
        }
    }

    #[test]
    fn state_machine() {
        use Operation::*;
        use ResourceStatus::*;
        let now = ts("2026-11-21T12:00:00Z");
        let ym = |s| {
            res(
                Charging::YearlyMonthly,
                s,
                Some("2026-12-01T00:00:00Z"),
                None,
            )
        };
        let ok = |r: &ResourceRow, op| transition(r, op, now).map(|t| t.status);
        assert_eq!(ok(&ym(Stopped), Start), Ok(InUse));
        assert!(ok(&ym(InUse), Start).is_err());
        assert_eq!(ok(&ym(InUse), Stop), Ok(Stopped));
        assert!(ok(&ym(Stopped), Stop).is_err());
        assert_eq!(ok(&ym(InUse), Restart), Ok(InUse));
        assert!(ok(&ym(Stopped), Restart).is_err());
        for op in [Start, Stop, Restart, Renew, Unsubscribe] {
            assert!(ok(&ym(Frozen), op).is_err(), "{op:?} of frozen");
            assert!(ok(&ym(Closed), op).is_err(), "{op:?} of closed");
        }
        for op in [Start, Stop, Restart] {
            let e = transition(&ym(Expired), op, now).unwrap_err();
            assert_eq!(e.status, 409);
            assert!(e.msg.contains("expired"), "{}", e.msg);
        }
        assert_eq!(ok(&ym(Expired), Unsubscribe), Ok(Closed));
        assert_eq!(ok(&ym(Stopped), Unsubscribe), Ok(Closed));
        // Renewing extends from the old expiry when it is still ahead...
        let t = transition(&ym(Stopped), Renew, now).unwrap();
        assert_eq!(
            t,
            Transition {
                status: Stopped,
                expire_at: Some(ts("2027-01-01T00:00:00Z"))
            }
        );
        // ...from now when it has passed, reviving the resource, by the bought period.
        let yearly = Period {
            period_type: 3,
            period_num: 2,
        };
        let old = res(
            Charging::YearlyMonthly,
            Expired,
            Some("2026-10-01T00:00:00Z"),
            Some(yearly),
        );
        let t = transition(&old, Renew, now).unwrap();
        assert_eq!(
            t,
            Transition {
                status: InUse,
                expire_at: Some(ts("2028-11-21T12:00:00Z"))
            }
        );
        // Pay-per-use resources are never renewed.
        let ppu = res(Charging::PayPerUse, InUse, None, None);
        assert!(transition(&ppu, Renew, now).is_err());
        assert_eq!(ok(&ppu, Unsubscribe), Ok(Closed));
    }

    #[test]
    fn wire_status_filters_select_the_mapped_statuses() {
        let names = |v: Vec<Bind>| {
            v.into_iter()
                .map(|b| match b {
                    Bind::Text(s) => s,
                    Bind::Int(_) => unreachable!(),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(statuses_for(2, subscription_status)),
            ["in_use", "stopped"]
        );
        assert_eq!(
            names(statuses_for(1, on_demand_status)),
            ["in_use", "stopped"]
        );
        assert_eq!(names(statuses_for(6, on_demand_status)), ["closed"]);
        assert!(statuses_for(4, on_demand_status).is_empty());
    }

    #[test]
    fn periods() {
        let t = ts("2026-01-31T00:00:00Z");
        assert_eq!(
            Period {
                period_type: 2,
                period_num: 1
            }
            .after(t),
            Some(ts("2026-02-28T00:00:00Z"))
        );
        assert_eq!(
            Period {
                period_type: 3,
                period_num: 1
            }
            .after(t),
            Some(ts("2027-01-31T00:00:00Z"))
        );
        assert_eq!(
            Period {
                period_type: 2,
                period_num: 0
            }
            .after(t),
            None
        );
        assert_eq!(
            Period {
                period_type: 9,
                period_num: 1
            }
            .after(t),
            None
        );
    }
}
