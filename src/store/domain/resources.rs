//! Resources as the partner API reads them: with the status that expiry
//! gives them, and the product and period of the order line item they were
//! bought with.

use super::super::lists::List;
use super::super::query::{bind_all, Bind, Where};
use super::super::read::resource_from_row;
use super::super::row::{get, parse_enum};
use super::super::{Store, StoreResult};
use super::activities::{self, NewActivity};
use super::Listed;
use crate::catalog::fields::Paging;
use crate::catalog::Period;
use crate::filter::ListScope;
use crate::model::{Charging, Resource, ResourceStatus};
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use sqlx::any::AnyRow;

/// A resource with what the API's views of it need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceView {
    /// As stored (`resource.status` is the stored status).
    pub resource: Resource,
    /// The status with expiry applied: a yearly/monthly resource in use or
    /// stopped whose `expire_at` has passed is `expired`, before anything
    /// rewrites its row.
    pub status: ResourceStatus,
    /// The product of its order's line item, else its own.
    pub product_id: Option<String>,
    /// The period of the order line item it was bought with.
    pub period: Option<Period>,
}

/// A resource list's filters (each optional).
#[derive(Debug, Default)]
pub struct ResourceQuery<'a> {
    pub customer: Option<&'a str>,
    pub charging: Option<Charging>,
    /// Any of these ids (empty: any).
    pub ids: &'a [String],
    pub region_code: Option<&'a str>,
    pub service_type_code: Option<&'a str>,
    pub order: Option<&'a str>,
    /// Inclusive bounds of the creation time.
    pub created: (Option<Timestamp>, Option<Timestamp>),
    /// Inclusive bounds of the expiry.
    pub expire: (Option<Timestamp>, Option<Timestamp>),
    /// Any of these effective statuses (`None`: any; empty: none).
    pub statuses: Option<Vec<ResourceStatus>>,
}

/// A resource change that applies only if the resource is still as it was
/// read: a concurrent change makes it fail instead of being overwritten.
#[derive(Debug)]
pub struct Guarded<'a> {
    /// The resource as read.
    pub read: &'a ResourceView,
    pub status: ResourceStatus,
    pub expire_at: Option<Timestamp>,
}

/// `FROM` clause over resources (aliased `r`, with the effective status,
/// product id and period of its order's line item) joined to their
/// customers (`c`). Adds the one bind it needs (now) to `w`.
fn resource_source(w: &mut Where) -> String {
    let now = w.arg(Bind::Text(time::format(time::now())));
    // The resource's line item in its order: the first one of the same
    // resource type, else the first one. (Chosen with MIN rather than a
    // correlated ORDER BY, which SQLite 3.46 fails to resolve under COUNT.)
    format!(
        "FROM (SELECT rs.*,
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

fn view_from_row(row: &AnyRow) -> StoreResult<ResourceView> {
    let period = match (get(row, "li_period_type")?, get(row, "li_period_num")?) {
        (Some(period_type), Some(period_num)) => Some(Period {
            period_type,
            period_num,
        }),
        _ => None,
    };
    Ok(ResourceView {
        resource: resource_from_row(row)?,
        status: parse_enum(row, "effective_status")?,
        product_id: get(row, "li_product_id")?,
        period,
    })
}

impl Store {
    /// The resources matching `q` under `scope`, newest first.
    pub async fn list_resources(
        &self,
        q: &ResourceQuery<'_>,
        scope: &ListScope,
        paging: Paging,
    ) -> StoreResult<Listed<ResourceView>> {
        let mut w = Where::new();
        let from = resource_source(&mut w);
        if let Some(c) = q.customer {
            w.eq("r.customer_id", Bind::Text(c.to_owned()));
        }
        if let Some(c) = q.charging {
            w.eq("r.charging", Bind::Text(c.as_str().to_owned()));
        }
        if !q.ids.is_empty() {
            w.is_in("r.id", q.ids.iter().cloned().map(Bind::Text));
        }
        if let Some(region) = q.region_code {
            w.eq("r.region_code", Bind::Text(region.to_owned()));
        }
        if let Some(service) = q.service_type_code {
            w.eq("r.service_type_code", Bind::Text(service.to_owned()));
        }
        if let Some(order) = q.order {
            w.eq("r.order_id", Bind::Text(order.to_owned()));
        }
        w.between("r.created_at", q.created.0, q.created.1);
        w.between("r.expire_at", q.expire.0, q.expire.1);
        if let Some(statuses) = &q.statuses {
            w.is_in(
                "r.effective_status",
                statuses.iter().map(|s| Bind::Text(s.as_str().to_owned())),
            );
        }
        List {
            item: EntityType::Resource,
            alias: "r",
            from: &from,
            columns: "r.*",
            filters: w,
            order_by: "ORDER BY r.created_at DESC, r.id",
        }
        .run(self.pool(), scope, Some(paging), view_from_row)
        .await
    }

    /// Applies an O&M change if the resource is still as read, with the
    /// session's activity record, in one transaction; `false` when the
    /// resource changed meanwhile.
    pub async fn operate_resource(
        &self,
        change: &Guarded<'_>,
        activity: Option<&NewActivity<'_>>,
    ) -> StoreResult<bool> {
        let mut tx = self.pool().begin().await?;
        if !apply_guarded(&mut tx, change).await? {
            return Ok(false);
        }
        if let Some(activity) = activity {
            activities::record(&mut tx, activity).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Resource `id` as the API reads it, or `None`.
    pub async fn resource_view(&self, id: &str) -> StoreResult<Option<ResourceView>> {
        let mut w = Where::new();
        let from = resource_source(&mut w);
        w.eq("r.id", Bind::Text(id.to_owned()));
        let sql = format!("SELECT r.* {from}{}", w.sql());
        bind_all(sqlx::query(&sql), w.binds())
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(view_from_row)
            .transpose()
    }
}

/// Applies `change` in `tx` if the resource is still as read; `false` when
/// it changed meanwhile.
async fn apply_guarded(tx: &mut sqlx::AnyConnection, change: &Guarded<'_>) -> StoreResult<bool> {
    let r = &change.read.resource;
    let mut w = Where::new();
    let status = w.arg(Bind::Text(change.status.as_str().to_owned()));
    let expiry = match change.expire_at {
        Some(t) => w.arg(Bind::Text(time::format(t))),
        None => "NULL".to_owned(),
    };
    w.eq("id", Bind::Text(r.id.as_str().to_owned()));
    w.eq("customer_id", Bind::Text(r.customer.as_str().to_owned()));
    w.eq("status", Bind::Text(r.status.as_str().to_owned()));
    match r.expire_at {
        Some(e) => w.eq("expire_at", Bind::Text(time::format(e))),
        None => w.raw("expire_at IS NULL"),
    }
    let sql = format!(
        "UPDATE resources SET status = {status}, expire_at = {expiry}{}",
        w.sql()
    );
    let updated = bind_all(sqlx::query(&sql), w.binds())
        .execute(&mut *tx)
        .await?;
    Ok(updated.rows_affected() == 1)
}
