//! Order exports: requested with their set of orders fixed, rendered by the
//! export worker, read back by their owner. A pending export older than
//! [`STALE_EXPORT_MINUTES`] was lost with a restart: it reads as failed at
//! once, and the worker's sweep records it so.

use super::super::lists::List;
use super::super::query::Where;
use super::super::row::{get, opt_ts, parse_enum, ts};
use super::super::{Store, StoreError, StoreResult};
use super::Listed;
use crate::catalog::fields::Paging;
use crate::filter::ListScope;
use crate::model::ExportStatus;
use crate::refs::EntityType;
use crate::time::{self, Timestamp};
use sqlx::any::AnyRow;

/// A pending export older than this was interrupted (it takes milliseconds).
pub const STALE_EXPORT_MINUTES: i64 = 10;
/// The error of an export lost with a restart.
const INTERRUPTED: &str = "the export was interrupted; request a new one";

/// An export as its owner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportRecord {
    pub id: String,
    pub status: ExportStatus,
    /// How many orders it holds.
    pub order_count: i64,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    pub error: Option<String>,
}

/// An export to record, pending: who asks and which orders.
#[derive(Debug)]
pub struct NewExport<'a> {
    /// The principal that asks (its kind and id): the export is `in` it.
    pub owner_kind: &'a str,
    pub owner_id: &'a str,
    pub partner: Option<&'a str>,
    pub order_ids: &'a [String],
}

/// An export created before this and still pending at `now` was lost.
fn stale_before(now: Timestamp) -> Timestamp {
    now - chrono::Duration::minutes(STALE_EXPORT_MINUTES)
}

const EXPORT_COLUMNS: &str = "e.id, e.status, e.order_ids, e.created_at, e.completed_at, e.error";

fn export_from_row(row: &AnyRow) -> StoreResult<ExportRecord> {
    let ids: Vec<String> = serde_json::from_str(
        &get::<Option<String>>(row, "order_ids")?.unwrap_or_else(|| "[]".into()),
    )
    .map_err(|e| StoreError::Corrupt(format!("export order ids: {e}")))?;
    let mut export = ExportRecord {
        id: get(row, "id")?,
        status: parse_enum(row, "status")?,
        order_count: i64::try_from(ids.len()).unwrap_or(i64::MAX),
        created_at: ts(row, "created_at")?,
        completed_at: opt_ts(row, "completed_at")?,
        error: get(row, "error")?,
    };
    if export.status == ExportStatus::Pending && export.created_at < stale_before(time::now()) {
        export.status = ExportStatus::Failed;
        export.error = Some(INTERRUPTED.to_owned());
    }
    Ok(export)
}

impl Store {
    /// Records a requested export, pending, and returns its id.
    pub async fn create_export(&self, e: &NewExport<'_>) -> StoreResult<String> {
        let now = time::now();
        let id = format!(
            "exp-{}-{}",
            now.format("%Y%m%d%H%M%S"),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let ids =
            serde_json::to_string(e.order_ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO export_tasks (id, principal_kind, principal_id, partner_id, status, order_ids, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.clone())
        .bind(e.owner_kind.to_owned())
        .bind(e.owner_id.to_owned())
        .bind(e.partner.map(str::to_owned))
        .bind(ExportStatus::Pending.as_str().to_owned())
        .bind(ids)
        .bind(time::format(now))
        .execute(self.pool())
        .await?;
        Ok(id)
    }

    /// The exports under `scope`, newest first.
    pub async fn list_exports(
        &self,
        scope: &ListScope,
        paging: Paging,
    ) -> StoreResult<Listed<ExportRecord>> {
        List {
            item: EntityType::Export,
            alias: "e",
            from: "FROM export_tasks e",
            columns: EXPORT_COLUMNS,
            filters: Where::new(),
            order_by: "ORDER BY e.created_at DESC, e.id DESC",
        }
        .run(self.pool(), scope, Some(paging), export_from_row)
        .await
    }

    /// Export `id` with its file (once rendered), or `None`.
    pub async fn export_with_file(
        &self,
        id: &str,
    ) -> StoreResult<Option<(ExportRecord, Option<String>)>> {
        let sql = format!("SELECT {EXPORT_COLUMNS}, e.csv FROM export_tasks e WHERE e.id = $1");
        let Some(row) = sqlx::query(&sql)
            .bind(id.to_owned())
            .fetch_optional(self.pool())
            .await?
        else {
            return Ok(None);
        };
        Ok(Some((export_from_row(&row)?, get(&row, "csv")?)))
    }

    /// Records how a pending export ended: rendered (its CSV and how many
    /// orders it holds), or failed (why).
    pub async fn finish_export(
        &self,
        id: &str,
        outcome: Result<(String, usize), &str>,
    ) -> StoreResult<()> {
        let (status, csv, rows, error) = match outcome {
            Ok((csv, rows)) => (
                ExportStatus::Completed,
                Some(csv),
                Some(i64::try_from(rows).unwrap_or(i64::MAX)),
                None,
            ),
            Err(why) => (ExportStatus::Failed, None, None, Some(why.to_owned())),
        };
        sqlx::query(
            "UPDATE export_tasks SET status = $1, csv = $2, row_count = $3, error = $4,
                completed_at = $5
             WHERE id = $6 AND status = $7",
        )
        .bind(status.as_str().to_owned())
        .bind(csv)
        .bind(rows)
        .bind(error)
        .bind(time::format(time::now()))
        .bind(id.to_owned())
        .bind(ExportStatus::Pending.as_str().to_owned())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records as failed the exports lost with a restart (still pending
    /// since before the stale cutoff).
    pub async fn fail_stale_exports(&self) -> StoreResult<()> {
        let now = time::now();
        sqlx::query(
            "UPDATE export_tasks SET status = $1, error = $2, completed_at = $3
             WHERE status = $4 AND created_at < $5",
        )
        .bind(ExportStatus::Failed.as_str().to_owned())
        .bind(INTERRUPTED.to_owned())
        .bind(time::format(now))
        .bind(ExportStatus::Pending.as_str().to_owned())
        .bind(time::format(stale_before(now)))
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
