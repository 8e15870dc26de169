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
//! - `effective_time` is the resource's creation time. The gateway decided on
//!   the customer (ViewResources); the list holds the resources the
//!   assertion allows (ViewResources per resource).
//! - The O&M state machine ([`transition`]): `start` only from `stopped`;
//!   `stop` and `restart` only from `in_use`; `renew` only for yearly/monthly
//!   resources that are in use, stopped or expired: it extends `expire_at`
//!   by the resource's period (the period of its order's line item, one
//!   month when it has none) counted from the later of the old expiry and
//!   now, and revives an expired resource to `in_use`; `unsubscribe` closes a
//!   resource that is in use, stopped or expired. Nothing operates a frozen
//!   or closed resource. Renewing and unsubscribing do not create orders
//!   here (the store keeps no price list to bill them with).

use super::extract::Served;
use super::lists::{page_or_answer, List, Listed};
use super::query::{self, bind_all, db_error, Bind, Where};
use super::{wire, DomainState};
use crate::api_error::{codes, ApiError};
use crate::catalog::fields::Paging;
use crate::catalog::{ListCustomerOnDemandResources, ListPayPerUseCustomerResources, Period};
use crate::model::{Charging, ResourceOperation, ResourceStatus};
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use sqlx::any::AnyRow;

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
            COALESCE(li.product_id, rs.product_id) AS li_product_id, li.period_type AS li_period_type, li.period_num AS li_period_num
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

/// The resources matching `w` (which must have been started with
/// [`resource_source`]) that the assertion allows, newest first: one page
/// and the total.
pub(super) async fn page_of_resources(
    state: &DomainState,
    served: &Served,
    source: &str,
    w: Where,
    paging: Paging,
) -> Result<Listed, ApiError> {
    let from = format!("FROM {source}");
    let list = List {
        item: EntityType::Resource,
        alias: "r",
        from: &from,
        columns: "r.*",
        filters: w,
        order_by: "ORDER BY r.created_at DESC, r.id",
    };
    list.run(state.store.pool(), served, Some(paging)).await
}

/// The rows of a page of resources.
pub(super) fn resources(rows: &[AnyRow]) -> Result<Vec<ResourceRow>, ApiError> {
    rows.iter().map(resource_from_row).collect()
}

/// One resource (with the effective status), or `None`.
pub(super) async fn resource_of(
    state: &DomainState,
    id: &str,
) -> Result<Option<ResourceRow>, ApiError> {
    let mut w = Where::new();
    let source = resource_source(&mut w);
    w.eq("r.id", Bind::Text(id.to_owned()));
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

#[derive(Serialize)]
struct OnDemandPage {
    resources: Vec<OnDemandResource>,
    total_count: i64,
}

/// `POST /v2/partners/sub-customers/on-demand-resources/query`.
pub(super) async fn list_on_demand(
    state: &DomainState,
    served: &Served,
    q: ListCustomerOnDemandResources,
) -> Result<Response, ApiError> {
    let mut w = Where::new();
    let source = resource_source(&mut w);
    w.eq("r.customer_id", Bind::Text(q.customer_id));
    w.eq(
        "r.charging",
        Bind::Text(Charging::PayPerUse.as_str().to_owned()),
    );
    if !q.resource_ids.is_empty() {
        w.is_in("r.id", q.resource_ids.into_iter().map(Bind::Text));
    }
    if let Some(region) = q.region_code {
        w.eq("r.region_code", Bind::Text(region));
    }
    if let Some(service) = q.service_type_code {
        w.eq("r.service_type_code", Bind::Text(service));
    }
    w.between("r.created_at", q.effective.begin, q.effective.end);
    if let Some(status) = q.status {
        w.is_in("r.effective_status", statuses_for(status, on_demand_status));
    }
    let listed = page_of_resources(state, served, &source, w, q.paging).await?;
    let (total_count, rows) = page_or_answer!(listed);
    Ok(Json(OnDemandPage {
        resources: resources(&rows)?
            .into_iter()
            .map(OnDemandResource::from)
            .collect(),
        total_count,
    })
    .into_response())
}

#[derive(Serialize)]
struct SubscriptionPage {
    data: Vec<SubscriptionResource>,
    total_count: i64,
}

/// `POST /v2/orders/suscriptions/resources/query`.
pub(super) async fn list_subscriptions(
    state: &DomainState,
    served: &Served,
    q: ListPayPerUseCustomerResources,
) -> Result<Response, ApiError> {
    let mut w = Where::new();
    let source = resource_source(&mut w);
    w.eq("r.customer_id", Bind::Text(q.customer_id));
    w.eq(
        "r.charging",
        Bind::Text(Charging::YearlyMonthly.as_str().to_owned()),
    );
    if !q.resource_ids.is_empty() {
        w.is_in("r.id", q.resource_ids.into_iter().map(Bind::Text));
    }
    // Every resource here is a main resource, so only_main_resource filters nothing.
    if let Some(order) = q.order_id {
        w.eq("r.order_id", Bind::Text(order));
    }
    if let Some(service) = q.service_type_code {
        w.eq("r.service_type_code", Bind::Text(service));
    }
    w.between("r.expire_at", q.expire.begin, q.expire.end);
    let statuses: Vec<Bind> = q
        .status_list
        .iter()
        .flat_map(|s| statuses_for(*s, subscription_status))
        .collect();
    if !statuses.is_empty() {
        w.is_in("r.effective_status", statuses);
    }
    let listed = page_of_resources(state, served, &source, w, q.paging).await?;
    let (total_count, rows) = page_or_answer!(listed);
    Ok(Json(SubscriptionPage {
        data: resources(&rows)?
            .into_iter()
            .map(SubscriptionResource::from)
            .collect(),
        total_count,
    })
    .into_response())
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
    op: ResourceOperation,
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
        (ResourceOperation::Start, Stopped) => Ok(stay(InUse)),
        (ResourceOperation::Start, s) => Err(refuse(format!(
            "resource {id} is {s}; only a stopped resource can be started"
        ))),
        (ResourceOperation::Stop, InUse) => Ok(stay(Stopped)),
        (ResourceOperation::Restart, InUse) => Ok(stay(InUse)),
        (ResourceOperation::Stop | ResourceOperation::Restart, s) => Err(refuse(format!(
            "resource {id} is {s}; only a resource in use can be {}",
            if op == ResourceOperation::Stop {
                "stopped"
            } else {
                "restarted"
            }
        ))),
        (ResourceOperation::Renew, s) => {
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
        (ResourceOperation::Unsubscribe, InUse | Stopped | Expired) => Ok(stay(Closed)),
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
        use ResourceOperation::*;
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
}
