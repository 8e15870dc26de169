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
use super::lists::page_or_answer;
use super::{wire, DomainState};
use crate::api_error::{codes, ApiError};
use crate::catalog::{ListCustomerOnDemandResources, ListPayPerUseCustomerResources, Period};
use crate::model::{Charging, ResourceOperation, ResourceStatus};
use crate::store::domain::{ResourceQuery, ResourceView};
use crate::time::Timestamp;
use axum::response::{IntoResponse, Response};
use axum::Json;
use schemars::JsonSchema;
use serde::Serialize;

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

/// The statuses a wire status filter selects.
fn statuses_for(wire: i64, to_wire: fn(ResourceStatus) -> i64) -> Vec<ResourceStatus> {
    [
        ResourceStatus::InUse,
        ResourceStatus::Stopped,
        ResourceStatus::Frozen,
        ResourceStatus::Expired,
        ResourceStatus::Closed,
    ]
    .into_iter()
    .filter(|s| to_wire(*s) == wire)
    .collect()
}

/// CustomerOnDemandResource.
#[derive(Serialize, JsonSchema)]
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
    #[schemars(with = "String")]
    effective_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    expire_time: Option<Timestamp>,
    status: i64,
    resource_spec_code: Option<String>,
    resource_info: Option<String>,
    product_spec_desc: Option<String>,
}

impl From<ResourceView> for OnDemandResource {
    fn from(v: ResourceView) -> Self {
        let r = v.resource;
        OnDemandResource {
            customer_id: r.customer.0,
            region_code: r.region_code,
            availability_zone_code: None,
            service_type_name: service_type_name(&r.service_type_code),
            service_type_code: r.service_type_code,
            resource_type_code: r.resource_type_code,
            resource_type_name: None,
            resource_id: r.id.0,
            resource_name: r.name,
            effective_time: r.created_at,
            expire_time: r.expire_at,
            status: on_demand_status(v.status),
            resource_spec_code: None,
            resource_info: None,
            product_spec_desc: None,
        }
    }
}

/// OrderInstanceV2.
#[derive(Serialize, JsonSchema)]
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
    #[schemars(with = "String")]
    effective_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    expire_time: Option<Timestamp>,
    expire_policy: Option<i64>,
    product_spec_desc: Option<String>,
    /// A decimal in text, as the public API has it.
    #[schemars(with = "Option<String>")]
    spec_size: Option<rust_decimal::Decimal>,
    spec_size_measure_id: Option<i64>,
    update_time: Option<String>,
    enterprise_project: Option<()>,
}

impl From<ResourceView> for SubscriptionResource {
    fn from(v: ResourceView) -> Self {
        let r = v.resource;
        SubscriptionResource {
            id: r.id.0.clone(),
            resource_id: r.id.0,
            resource_name: r.name,
            region_code: r.region_code,
            service_type_name: service_type_name(&r.service_type_code),
            service_type_code: r.service_type_code,
            resource_type_code: r.resource_type_code,
            resource_type_name: None,
            resource_spec_code: None,
            project_id: None,
            product_id: v.product_id,
            parent_resource_id: None,
            is_main_resource: 1,
            status: subscription_status(v.status),
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
#[derive(Serialize, JsonSchema)]
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
    #[schemars(with = "String")]
    effective_time: Timestamp,
    #[serde(serialize_with = "wire::opt_time")]
    #[schemars(with = "Option<String>")]
    expire_time: Option<Timestamp>,
    order_id: Option<String>,
    product_id: Option<String>,
}

impl From<ResourceView> for OwnResource {
    fn from(v: ResourceView) -> Self {
        let r = v.resource;
        OwnResource {
            resource_id: r.id.0,
            resource_name: r.name,
            charging: r.charging,
            service_type_name: service_type_name(&r.service_type_code),
            service_type_code: r.service_type_code,
            resource_type_code: r.resource_type_code,
            region_code: r.region_code,
            status: v.status,
            effective_time: r.created_at,
            expire_time: r.expire_at,
            order_id: r.order.map(|o| o.0),
            product_id: v.product_id,
        }
    }
}

#[derive(Serialize, JsonSchema)]
pub(super) struct OnDemandPage {
    resources: Vec<OnDemandResource>,
    total_count: i64,
}

/// `POST /v2/partners/sub-customers/on-demand-resources/query`.
pub(super) async fn list_on_demand(
    state: &DomainState,
    served: &Served,
    q: ListCustomerOnDemandResources,
) -> Result<Response, ApiError> {
    let query = ResourceQuery {
        customer: Some(&q.customer_id),
        charging: Some(Charging::PayPerUse),
        ids: &q.resource_ids,
        region_code: q.region_code.as_deref(),
        service_type_code: q.service_type_code.as_deref(),
        created: (q.effective.begin, q.effective.end),
        statuses: q.status.map(|s| statuses_for(s, on_demand_status)),
        ..ResourceQuery::default()
    };
    let listed = state
        .store
        .list_resources(&query, &served.list, q.paging)
        .await?;
    let (total_count, resources) = page_or_answer!(listed);
    Ok(Json(OnDemandPage {
        resources: resources.into_iter().map(OnDemandResource::from).collect(),
        total_count,
    })
    .into_response())
}

#[derive(Serialize, JsonSchema)]
pub(super) struct SubscriptionPage {
    data: Vec<SubscriptionResource>,
    total_count: i64,
}

/// `POST /v2/orders/suscriptions/resources/query`.
pub(super) async fn list_subscriptions(
    state: &DomainState,
    served: &Served,
    q: ListPayPerUseCustomerResources,
) -> Result<Response, ApiError> {
    let statuses: Vec<ResourceStatus> = q
        .status_list
        .iter()
        .flat_map(|s| statuses_for(*s, subscription_status))
        .collect();
    let query = ResourceQuery {
        customer: Some(&q.customer_id),
        charging: Some(Charging::YearlyMonthly),
        ids: &q.resource_ids,
        // Every resource here is a main resource, so only_main_resource filters nothing.
        order: q.order_id.as_deref(),
        service_type_code: q.service_type_code.as_deref(),
        expire: (q.expire.begin, q.expire.end),
        statuses: (!statuses.is_empty()).then_some(statuses),
        ..ResourceQuery::default()
    };
    let listed = state
        .store
        .list_resources(&query, &served.list, q.paging)
        .await?;
    let (total_count, resources) = page_or_answer!(listed);
    Ok(Json(SubscriptionPage {
        data: resources
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

/// The O&M state machine (see the module docs), from the effective status.
pub(super) fn transition(
    v: &ResourceView,
    op: ResourceOperation,
    now: Timestamp,
) -> Result<Transition, ApiError> {
    use ResourceStatus::*;
    let r = &v.resource;
    let id = r.id.as_str();
    let stay = |status| Transition {
        status,
        expire_at: r.expire_at,
    };
    match (op, v.status) {
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
            let period = v.period.unwrap_or(Period::ONE_MONTH);
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
    use crate::model::Resource;
    use crate::time;

    fn ts(s: &str) -> Timestamp {
        time::parse(s).unwrap()
    }

    fn res(
        charging: Charging,
        status: ResourceStatus,
        expire: Option<&str>,
        period: Option<Period>,
    ) -> ResourceView {
        ResourceView {
            resource: Resource {
                id: "r1".into(),
                customer: "c1".into(),
                charging,
                service_type_code: "hws.service.type.ec2".into(),
                resource_type_code: None,
                name: "n".into(),
                region_code: None,
                status,
                expire_at: expire.map(ts),
                order: None,
                created_at: ts("2026-01-01T00:00:00Z"),
            },
            status,
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
        let ok = |r: &ResourceView, op| transition(r, op, now).map(|t| t.status);
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
        let names = |v: Vec<ResourceStatus>| v.iter().map(|s| s.as_str()).collect::<Vec<_>>();
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
