//! The `partner-gateway` command, with every heap allocation counted:
//! `bench/run`'s allocations per request. The system allocator is wrapped by
//! `stats_alloc`, whatever allocator the shipped binary uses; while the
//! gateway serves, the counts are the metric `pgw_bench_allocations_total`
//! (by `call`: `alloc` or `realloc`) on its admin `/metrics`, beside
//! `pgw_requests_total`, sampled every 10 ms.
//!
//! `cargo run --release --example counted_gateway -- serve ...` takes what
//! `partner-gateway serve` takes.

use stats_alloc::{StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;
use std::time::Duration;

#[global_allocator]
static COUNTED: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The metrics recorder is installed when the gateway starts; until then
    // these are no-ops.
    tokio::spawn(async {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tick.tick().await;
            let stats = COUNTED.stats();
            metrics::counter!("pgw_bench_allocations_total", "call" => "alloc")
                .absolute(stats.allocations as u64);
            metrics::counter!("pgw_bench_allocations_total", "call" => "realloc")
                .absolute(stats.reallocations as u64);
        }
    });
    partner_gateway::cli::main().await
}
