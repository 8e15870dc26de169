//! The export worker: renders the requested order exports to CSV, one at a
//! time, off the request path, and records as failed the exports lost with
//! a restart. `serve` starts it and stops it with the gateway (it finishes
//! the exports already queued); the standalone store runs it for its life.

use super::orders::{
    order_from_row, stale_before, EXPORT_CHUNK, INTERRUPTED, ORDERS_FROM, ORDER_COLUMNS,
};
use super::query::{self, Bind, Where};
use super::resources::service_type_name;
use super::{ExportJob, ExportQueue};
use crate::model::ExportStatus;
use crate::store::Store;
use crate::time;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How many requested exports may wait for the worker; past it, 503.
const QUEUE: usize = 256;
/// How often the worker records lost exports as failed.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Starts the worker over `store`; it stops when `stop` turns true (or its
/// sender is gone), after the exports already queued.
pub fn start_worker(
    store: Store,
    mut stop: watch::Receiver<bool>,
) -> (ExportQueue, tokio::task::JoinHandle<()>) {
    let (queue, mut jobs) = mpsc::channel::<ExportJob>(QUEUE);
    let task = tokio::spawn(async move {
        let mut sweep = tokio::time::interval(SWEEP_EVERY);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                job = jobs.recv() => match job {
                    Some(job) => run_export(&store, job).await,
                    None => break,
                },
                _ = sweep.tick() => {
                    if let Err(e) = fail_stale(store.pool()).await {
                        tracing::warn!(error = %e, "cannot record lost exports as failed");
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        // What was requested before the stop is still rendered.
        jobs.close();
        while let Some(job) = jobs.recv().await {
            run_export(&store, job).await;
        }
    });
    (ExportQueue(queue), task)
}

/// Renders one export's CSV and records the outcome.
async fn run_export(store: &Store, job: ExportJob) {
    let ExportJob {
        export_id,
        order_ids: ids,
    } = job;
    let outcome = render_csv(store, &ids).await;
    let now = time::format(time::now());
    let result =
        match outcome {
            Ok(csv) => sqlx::query(
                "UPDATE export_tasks SET status = $1, csv = $2, row_count = $3, completed_at = $4
                 WHERE id = $5 AND status = $6",
            )
            .bind(ExportStatus::Completed.as_str().to_owned())
            .bind(csv)
            .bind(i64::try_from(ids.len()).unwrap_or(i64::MAX))
            .bind(now)
            .bind(export_id.clone())
            .bind(ExportStatus::Pending.as_str().to_owned())
            .execute(store.pool())
            .await,
            Err(e) => {
                tracing::error!(export_id = %export_id, error = %e, "order export failed");
                sqlx::query(
                    "UPDATE export_tasks SET status = $1, error = $2, completed_at = $3
                 WHERE id = $4 AND status = $5",
                )
                .bind(ExportStatus::Failed.as_str().to_owned())
                .bind("the export could not be rendered; request a new one".to_owned())
                .bind(now)
                .bind(export_id.clone())
                .bind(ExportStatus::Pending.as_str().to_owned())
                .execute(store.pool())
                .await
            }
        };
    if let Err(e) = result {
        tracing::error!(export_id = %export_id, error = %e, "could not record the outcome of an order export");
    }
}

/// The CSV columns of an order export.
const CSV_HEADER: [&str; 13] = [
    "order_id",
    "customer_id",
    "customer_account_name",
    "service_type_code",
    "service_type_name",
    "order_type",
    "status",
    "source_type",
    "official_amount",
    "amount_after_discount",
    "currency",
    "create_time",
    "payment_time",
];

/// The orders `ids`, in that order, as CSV with a header row.
async fn render_csv(
    store: &Store,
    ids: &[String],
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let mut by_id = std::collections::HashMap::new();
    for chunk in ids.chunks(EXPORT_CHUNK) {
        let mut w = Where::new();
        w.is_in("o.id", chunk.iter().cloned().map(Bind::Text));
        let sql = format!("SELECT {ORDER_COLUMNS} {ORDERS_FROM}{}", w.sql());
        let rows = query::bind_all(sqlx::query(&sql), w.binds())
            .fetch_all(store.pool())
            .await?;
        for row in &rows {
            let order = order_from_row(row).map_err(|e| e.to_string())?;
            by_id.insert(order.id.clone(), order);
        }
    }
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER)?;
    for id in ids {
        let o = by_id
            .get(id)
            .ok_or_else(|| format!("order {id} disappeared"))?;
        out.write_record([
            o.id.clone(),
            o.customer.clone(),
            o.account_name.clone(),
            o.service_type_code.clone(),
            service_type_name(&o.service_type_code),
            o.order_type.to_string(),
            o.status.to_string(),
            o.source_type.to_string(),
            format!("{:.2}", o.official_amount),
            format!("{:.2}", o.amount),
            o.currency.clone(),
            time::format(o.created_at),
            o.payment_time.map(time::format).unwrap_or_default(),
        ])?;
    }
    Ok(String::from_utf8(out.into_inner()?)?)
}

/// Records as failed the exports lost with a restart (still pending
/// since before [`stale_before`]).
async fn fail_stale(pool: &sqlx::AnyPool) -> Result<(), sqlx::Error> {
    let now = time::now();
    let cutoff = stale_before(now);
    sqlx::query(
        "UPDATE export_tasks SET status = $1, error = $2, completed_at = $3
         WHERE status = $4 AND created_at < $5",
    )
    .bind(ExportStatus::Failed.as_str().to_owned())
    .bind(INTERRUPTED.to_owned())
    .bind(time::format(now))
    .bind(ExportStatus::Pending.as_str().to_owned())
    .bind(time::format(cutoff))
    .execute(pool)
    .await?;
    Ok(())
}
