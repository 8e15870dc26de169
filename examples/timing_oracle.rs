//! Does an unknown id answer faster or slower than a known one the caller
//! may not see? Both are 403 with the same body (no existence oracle); this
//! measures whether their latency tells them apart.
//!
//! `cargo run --release --example timing_oracle [SAMPLES]` starts the real
//! gateway (plain HTTP, the demo organisation, SQLite in a temporary
//! directory), then asks, interleaved, for the budget of another partner's
//! customer and of an unknown customer as `op-dist-admin`, and prints the
//! median and quartiles of each, in microseconds.

use partner_gateway::client::{self, Credentials, Trust};
use partner_gateway::config::{DatabaseArgs, ServeConfig};
use partner_gateway::serve;
use std::time::Instant;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let samples: usize = std::env::args().nth(1).map_or(Ok(2000), |s| s.parse())?;
    let dir = tempfile::tempdir()?;
    let root = env!("CARGO_MANIFEST_DIR");
    let config = ServeConfig {
        demo: true,
        ..ServeConfig::local(
            DatabaseArgs {
                database_url: format!("sqlite://{}/timing.db", dir.path().display()),
                master_key: Some({
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .encode([7u8; 32])
                        .into()
                }),
                master_key_file: None,
            },
            format!("{root}/policies").into(),
            format!("{root}/schema").into(),
        )
    };
    // Thousands of samples from one principal: timed, not throttled.
    let mut config = config;
    config.limits.rate_limit = partner_gateway::store::limits::PartnerLimit { rate: 0, burst: 0 };
    let running = serve::start(config).await?;
    let endpoint = format!("http://{}", running.addr);
    let http = client::https_client(&Trust::System)?;
    let demo: serde_json::Value =
        serde_json::from_str(include_str!("demo.json")).expect("demo.json");
    let admin = demo["operators"]
        .as_array()
        .and_then(|ops| ops.iter().find(|o| o["id"] == "op-dist-admin"))
        .expect("op-dist-admin in the demo");
    let creds = Credentials {
        access_key: admin["access_key"].as_str().unwrap_or_default().to_owned(),
        secret_key: admin["secret_key"].as_str().unwrap_or_default().to_owned(),
        security_token: None,
    };
    // cust-kite belongs to sp-blue: out of op-dist-admin's reach.
    let cases = [("known", "cust-kite"), ("unknown", "cust-nobody")];
    let mut times: [Vec<u128>; 2] = [Vec::new(), Vec::new()];
    for round in 0..samples + 200 {
        for (i, (_, id)) in cases.iter().enumerate() {
            let path = format!("/v2/partners/sub-customers/budget?customer_id={id}");
            let started = Instant::now();
            let answer =
                client::call(&http, &endpoint, Some(&creds), "GET", &path, b"", &[]).await?;
            let took = started.elapsed().as_micros();
            anyhow::ensure!(answer.status == 403, "{id}: {}", answer.status);
            if round >= 200 {
                times[i].push(took); // the first 200 rounds warm the caches
            }
        }
    }
    for ((name, _), t) in cases.iter().zip(times.iter_mut()) {
        t.sort_unstable();
        let q = |f: f64| t[((t.len() - 1) as f64 * f) as usize];
        println!(
            "{name:8} n={} p25={} median={} p75={} µs",
            t.len(),
            q(0.25),
            q(0.5),
            q(0.75)
        );
    }
    running.stop().await;
    Ok(())
}
