//! The real gateway end to end: TLS, real SDK-HMAC-SHA256 signatures, a real
//! database (SQLite and PostgreSQL) and the real domain store behind it.

mod auth;
mod call_cli;
mod canonical;
mod cluster;
mod credentials_cli;
pub(crate) mod dead;
mod demo_restart;
mod faults;
mod hygiene;
mod invariants;
pub(crate) mod operations;
mod oracle;
mod pg_outage;
mod pressure;
mod raw;
mod reuse;
mod routes;
pub(crate) mod sessions;
mod slow_clients;
mod trace;

use crate::kit::TestDb;
use partner_gateway::client::{self, Answer, Credentials, HttpsClient, Trust};
use partner_gateway::config::{ServeConfig, TlsMode};
use partner_gateway::serve::{self, RunningGateway};
use partner_gateway::store::Backend;
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long a change made outside the gateway may take to reach it on
/// PostgreSQL (LISTEN/NOTIFY; milliseconds in practice).
pub const NOTIFIED: Duration = Duration::from_secs(2);

pub const DEMO: &str = include_str!("../../../examples/demo.json");

/// A running gateway over a fresh demo database, and a client that trusts it.
pub struct TestGateway {
    pub running: RunningGateway,
    pub endpoint: String,
    pub client: HttpsClient,
    pub db: TestDb,
    keys: HashMap<String, Credentials>,
    _certs: tempfile::TempDir,
}

/// The base64 of the master key `testkit::test_cipher` uses.
fn test_master_key() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

impl TestGateway {
    pub async fn start(backend: Backend) -> TestGateway {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts with the config adjusted by `tweak` (e.g. another upstream, limits).
    pub async fn start_with(backend: Backend, tweak: impl FnOnce(&mut ServeConfig)) -> TestGateway {
        let db = TestDb::new(backend).await;
        let certs = tempfile::tempdir().unwrap();
        let (cert, key) = partner_gateway::listener::development_certificate(certs.path()).unwrap();
        let mut config = ServeConfig {
            demo: true,
            tls: TlsMode::Files {
                cert: cert.clone(),
                key,
            },
            ..ServeConfig::local(
                crate::kit::test_database(&db),
                crate::kit::policies_dir(),
                crate::kit::schema_dir(),
            )
        };
        config.limits.rate_limit = crate::kit::UNLIMITED;
        config.operations.decision_log_writer = Some(crate::kit::decisions().log.clone());
        tweak(&mut config);
        let running = serve::start(config).await.expect("gateway starts");
        let endpoint = format!("https://localhost:{}", running.addr.port());
        let client = client::https_client(&Trust::CaFile(cert)).unwrap();
        TestGateway {
            running,
            endpoint,
            client,
            db,
            keys: demo_keys(),
            _certs: certs,
        }
    }

    /// The demo credentials of an operator or customer id.
    pub fn credentials(&self, principal: &str) -> Credentials {
        self.keys
            .get(principal)
            .unwrap_or_else(|| panic!("no demo credentials for {principal}"))
            .clone()
    }

    /// A signed call as a demo principal.
    pub async fn call(
        &self,
        principal: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Answer {
        self.try_call(principal, method, path, body)
            .await
            .expect("call")
    }

    /// [`TestGateway::call`], with a connection the gateway refused or
    /// closed as an error rather than a panic (for polls that wait for room).
    pub async fn try_call(
        &self,
        principal: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let creds = self.credentials(principal);
        let body = body
            .map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default();
        client::call(
            &self.client,
            &self.endpoint,
            Some(&creds),
            method,
            path,
            &body,
            &[],
        )
        .await
    }

    /// A call with explicit credentials (or none), body bytes and extra signed headers.
    pub async fn call_raw(
        &self,
        creds: Option<&Credentials>,
        method: &str,
        path: &str,
        body: &[u8],
        extra: &[(&str, &str)],
    ) -> Answer {
        client::call(
            &self.client,
            &self.endpoint,
            creds,
            method,
            path,
            body,
            extra,
        )
        .await
        .expect("call")
    }
}

fn demo_keys() -> HashMap<String, Credentials> {
    let demo: serde_json::Value = serde_json::from_str(DEMO).unwrap();
    let mut keys = HashMap::new();
    for section in ["operators", "customers"] {
        for entry in demo[section].as_array().unwrap() {
            if let (Some(ak), Some(sk)) =
                (entry["access_key"].as_str(), entry["secret_key"].as_str())
            {
                keys.insert(
                    entry["id"].as_str().unwrap().to_owned(),
                    Credentials {
                        access_key: ak.to_owned(),
                        secret_key: sk.to_owned(),
                        security_token: None,
                    },
                );
            }
        }
    }
    keys
}

/// Polls `check` every 20 ms for at most `limit`; panics with `what` after.
pub async fn poll<T, F: Future<Output = Option<T>>>(
    what: &str,
    limit: Duration,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
