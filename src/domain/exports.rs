//! The export worker: renders the requested order exports to CSV, one at a
//! time, off the request path, and records as failed the exports lost with
//! a restart. `serve` starts it and stops it with the gateway (it finishes
//! the exports already queued); the standalone store runs it for its life.

use super::resources::service_type_name;
use super::{ExportJob, ExportQueue};
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
                    if let Err(e) = store.fail_stale_exports().await {
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
    let outcome = match render_csv(store, &ids).await {
        Ok(csv) => Ok((csv, ids.len())),
        Err(e) => {
            tracing::error!(export_id = %export_id, error = %e, "order export failed");
            Err("the export could not be rendered; request a new one")
        }
    };
    let recorded = store.finish_export(&export_id, outcome).await;
    if let Err(e) = recorded {
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
    let by_id: std::collections::HashMap<String, _> = store
        .order_summaries(ids)
        .await?
        .into_iter()
        .map(|s| (s.order.id.0.clone(), s))
        .collect();
    let mut out = csv::Writer::from_writer(Vec::new());
    out.write_record(CSV_HEADER)?;
    for id in ids {
        let s = by_id
            .get(id)
            .ok_or_else(|| format!("order {id} disappeared"))?;
        let o = &s.order;
        out.write_record([
            o.id.0.clone(),
            o.customer.0.clone(),
            s.account_name.clone(),
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
