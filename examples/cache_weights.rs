//! The bytes a cached entity record and a kept decision hold, measured
//! against the weights the caches bound them by (`Record::weight`,
//! `reuse::weight`): `bench/run`'s bytes per cached record.
//!
//! `cargo run --release --example cache_weights -- --database-url URL --customers N`
//! on a database `bench_tool db` made: reads the slices of N of its
//! generated customers (as `op-dist-00-finance`) into an entity cache,
//! then decides each once into a decision cache, counting the heap the
//! system allocator holds before and after (`stats_alloc`). Prints
//! `RECORDS entries heap_per_record weight_per_record` and
//! `DECISIONS entries heap_per_decision weight_per_decision`, then builds
//! each slice's Cedar entities once into the loader's built cache:
//! `BUILT entries heap_per_slice weight_per_slice`.

#[path = "../benches/support/bigstore.rs"]
#[allow(dead_code)]
mod bigstore;

use anyhow::Context;
use partner_gateway::authorizer::reuse::{DecisionCache, Parts};
use partner_gateway::entities::EntityLoader;
use partner_gateway::policy::{AccessRequest, Asked, PolicyEngine};
use partner_gateway::refs::EntityRef;
use partner_gateway::store::Store;
use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::time::Duration;

#[global_allocator]
static COUNTED: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Heap bytes held now.
fn held() -> f64 {
    let s = COUNTED.stats();
    s.bytes_allocated as f64 - s.bytes_deallocated as f64 + s.bytes_reallocated as f64
}

/// What the cache grew by, per entry, in heap and in weight.
fn per_entry(heap: f64, entries: (u64, u64), bytes: (u64, u64)) -> (u64, f64, f64) {
    let n = entries.1.saturating_sub(entries.0);
    let per = |v: f64| v / n.max(1) as f64;
    (n, per(heap), per(bytes.1 as f64 - bytes.0 as f64))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .with_context(|| format!("{name} is required"))
    };
    let url = opt("--database-url")?;
    let customers: usize = opt("--customers")?.parse()?;
    let store = Store::connect(url, bigstore::cipher()).await?;
    let engine = PolicyEngine::load("policies".as_ref(), "schema".as_ref())?;
    let loader = EntityLoader::new(store.clone(), u64::MAX, Duration::from_secs(3600));
    let decisions = DecisionCache::new(u64::MAX);
    let principal = EntityRef::Operator("op-dist-00-finance".into());
    let customer = |i: usize| EntityRef::Customer(bigstore::customer_id(i).into());
    // The records every slice shares (the principal, the partners) first,
    // so that what follows is one customer's records each.
    for i in 0..20 {
        loader
            .slice_records(&engine, &principal, &customer(i), &[])
            .await?;
    }
    let (before, start) = (held(), loader.stats());
    for i in 20..customers {
        loader
            .slice_records(&engine, &principal, &customer(i), &[])
            .await?;
    }
    let end = loader.stats();
    let (n, heap, weight) = per_entry(
        held() - before,
        (start.entries, end.entries),
        (start.bytes, end.bytes),
    );
    println!("RECORDS {n} {heap:.0} {weight:.0}");

    let before = held();
    for i in 20..customers {
        let resource = customer(i);
        let Some(slice) = loader
            .slice_records(&engine, &principal, &resource, &[])
            .await?
        else {
            continue;
        };
        let asked = Asked::live("127.0.0.1".parse()?);
        let now = partner_gateway::time::parse(bigstore::NOW)?;
        let own = serde_json::Map::new();
        let question = Parts {
            principal: &principal,
            action: "ViewBudget",
            resource: &resource,
            context: &own,
            source_ip: asked.source_ip,
        };
        decisions.decide(&engine, &question, now, &slice, || {
            let request = AccessRequest::new(
                principal.clone(),
                "ViewBudget",
                resource.clone(),
                own.clone(),
            )
            .asked(&Asked { now, ..asked });
            match slice.entities_for(&engine, &request.action) {
                Ok(entities) => engine.decide(&request, &entities),
                Err(e) => partner_gateway::policy::Decision::failed(e.to_string()),
            }
        });
    }
    let kept = decisions.stats();
    let (n, heap, weight) = per_entry(held() - before, (0, kept.entries), (0, kept.bytes));
    println!("DECISIONS {n} {heap:.0} {weight:.0}");

    let (before, start) = (held(), loader.stats());
    for i in 20..customers {
        if let Some(slice) = loader
            .slice_records(&engine, &principal, &customer(i), &[])
            .await?
        {
            loader.entities_for(&engine, "ViewBudget", &slice)?;
        }
    }
    let end = loader.stats();
    let (n, heap, weight) = per_entry(
        held() - before,
        (start.built_entries, end.built_entries),
        (start.built_bytes, end.built_bytes),
    );
    println!("BUILT {n} {heap:.0} {weight:.0}");
    Ok(())
}
