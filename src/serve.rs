//! `partner-gateway serve`: wires the store, the policies, the entity cache,
//! the authenticator, the upstream (the domain store, in this process unless
//! `--upstream` names another), the TLS listener and the admin listener,
//! the policy reload triggers (file watch, SIGHUP) and graceful shutdown.

use crate::assertion::AssertionKey;
use crate::authorizer::reuse::DecisionCache;
use crate::authorizer::Authorizer;
use crate::config::{PolicySource, ServeConfig, TlsMode};
use crate::domain::{self, DomainState};
use crate::entities::EntityLoader;
use crate::gateway::authn::Authenticator;
use crate::gateway::forward::Upstream;
use crate::gateway::tokens::TokenSigner;
use crate::gateway::Gateway;
use crate::ids::PartnerId;
use crate::policy_tools::fleet::FleetMember;
use crate::policy_tools::reload::{self, PolicyReloader, Serving};
use crate::recent::Recent;
use crate::sessions::SessionKeys;
use crate::store::seed::Fixture;
use crate::store::Store;
use anyhow::Context;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The demo organisation, embedded so `serve --demo` works from any directory.
pub const DEMO_FIXTURE: &str = include_str!("../examples/demo.json");

/// How long cached entities live before they are read again (writes that go
/// through this gateway drop what they change at once).
pub const ENTITY_TTL: Duration = Duration::from_secs(5);
/// The admin token's file in the data directory, when none is given.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// A gateway that is up: where it listens, and how to stop it.
pub struct RunningGateway {
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// `https` with `--admin-tls-cert`, else `http`.
    pub admin_scheme: &'static str,
    /// Where the admin token is, when the gateway took it from its data
    /// directory (it never prints the token itself).
    pub admin_token_file: Option<PathBuf>,
    /// The certificate clients should trust (TLS modes only).
    pub certificate: Option<PathBuf>,
    pub upstream: String,
    pub store: Store,
    pub gateway: Arc<Gateway>,
    /// The live and shadow policy sets and their reload state.
    pub reloader: Arc<PolicyReloader>,
    /// This gateway's name in the fleet status (`policy fleet`).
    pub instance: String,
    shutdown: tokio::sync::watch::Sender<bool>,
    serving: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
}

impl RunningGateway {
    /// Graceful shutdown: stops accepting, lets requests in flight finish
    /// (at most the configured grace period), then stops the admin listener
    /// and the policy reload triggers.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.serving.await;
        for task in self.background {
            if tokio::time::timeout(self.grace, task).await.is_err() {
                tracing::warn!("a background task did not stop within the grace period");
            }
        }
    }

    /// Serves until SIGINT or SIGTERM.
    pub async fn wait_for_signal(self) {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}

/// Starts everything `cfg` describes and returns once the listeners are bound.
pub async fn start(mut cfg: ServeConfig) -> anyhow::Result<RunningGateway> {
    if let Err(e) = crate::metrics::install() {
        tracing::warn!(error = %e, "GET /metrics will be unavailable");
    }
    let data_dir = cfg.database.data_dir();
    let admin_token_file = data_dir.join(ADMIN_TOKEN_FILE);
    if cfg.operations.admin.token_from_data_dir {
        let token = crate::crypto::read_or_create_secret(&admin_token_file, || {
            hex::encode(rand::random::<[u8; 24]>())
        })
        .with_context(|| format!("cannot read or create {}", admin_token_file.display()))?;
        anyhow::ensure!(
            token.chars().count() >= crate::config::MIN_ADMIN_TOKEN_CHARS,
            "{} holds no admin token of at least {} characters",
            admin_token_file.display(),
            crate::config::MIN_ADMIN_TOKEN_CHARS
        );
        cfg.operations.admin.token = Some(token);
    }
    let cipher = cfg.database.secret_cipher()?;
    let store = Store::connect_for_gateway(&cfg.database.database_url, cipher.clone())
        .await
        .with_context(|| format!("cannot open the database {}", cfg.database.database_url))?;
    if cfg.demo {
        let demo = Fixture::parse(DEMO_FIXTURE)?;
        // Loaded once: a restart keeps what was done since (budgets set,
        // sessions, keys rotated) unless --demo-reset asks to start over.
        let first_partner = demo
            .partners
            .first()
            .map(|p| p.id.as_str())
            .unwrap_or_default();
        let loaded = store
            .partner(&PartnerId::from(first_partner))
            .await?
            .is_some();
        if loaded && !cfg.demo_reset {
            tracing::info!("demo data kept from the last run (--demo-reset loads it again)");
        } else {
            let summary = store.import_fixture(&demo).await?;
            tracing::info!(%summary, "demo data loaded");
        }
    }
    if let Some(seed) = &cfg.seed {
        let summary = store
            .import_fixture(&Fixture::load(seed)?)
            .await
            .with_context(|| format!("{} was not imported; nothing was written", seed.display()))?;
        tracing::info!(file = %seed.display(), %summary, "fixture imported");
    }
    // With `--policy-source database`, the live publication is written to
    // disk and served from there like files; nothing published, no start.
    let database_url = &cfg.database.database_url;
    // A gateway restarted on the same host and port is the same instance
    // (one row in the fleet status); on an ephemeral port, a new one.
    let instance = cfg.operations.instance.clone().or_else(|| {
        let port = cfg.listen.port();
        (port != 0).then(|| format!("{}:{port}", crate::policy_tools::publish::host_name()))
    });
    let fleet = match cfg.operations.policy_source {
        PolicySource::Files => FleetMember::serving_files(store.clone(), database_url, instance),
        PolicySource::Database => {
            anyhow::ensure!(
                cfg.operations.shadow_policies.is_none(),
                "--shadow-policies is for --policy-source files; with the database, \
                 publish the shadow set (policy publish --shadow)"
            );
            let (member, dirs, shadow) =
                FleetMember::serving_database(store.clone(), database_url, instance).await?;
            cfg.policies = dirs.policies;
            cfg.schema = dirs.schema;
            cfg.operations.shadow_policies = shadow.map(|s| s.policies);
            member
        }
    };
    // The same checks as every reload: valid, and every invariant proved
    // (solver work: off the async workers). A live set that fails either
    // does not start; a shadow set decides nothing, so its unproved
    // invariants are reported and it serves as shadow all the same.
    let timeout = cfg.operations.policy_verify_timeout;
    let live_invariants = cfg
        .operations
        .invariants
        .clone()
        .unwrap_or_else(|| reload::invariants_dir(&cfg.policies, None));
    let (engine, live_verified) =
        reload::checked_set(&cfg.policies, &cfg.schema, &live_invariants, timeout)
            .await
            .map_err(|e| anyhow::anyhow!("policies {}: {e}", cfg.policies.display()))?;
    if !live_verified.proved() {
        anyhow::bail!(
            "policies {}: not every invariant is proved, so this policy set will not serve: {}",
            cfg.policies.display(),
            live_verified.refusal
        );
    }
    tracing::info!(
        version = engine.version(),
        policies = engine.policies().len(),
        invariants = live_verified.invariants,
        proved_in_ms = live_verified.elapsed.as_millis() as u64,
        "policies loaded, invariants proved"
    );
    let live = Arc::new(ArcSwap::from_pointee(engine));
    let shadow = match &cfg.operations.shadow_policies {
        Some(dir) => {
            let invariants = reload::invariants_dir(dir, Some(&cfg.policies));
            let (shadow, verified) = reload::checked_set(dir, &cfg.schema, &invariants, timeout)
                .await
                .map_err(|e| anyhow::anyhow!("shadow policies {}: {e}", dir.display()))?;
            tracing::info!(version = shadow.version(), policies = shadow.policies().len(), dir = %dir.display(), "shadow policies loaded");
            for issue in &verified.refusal.issues {
                tracing::error!("the shadow set breaks an invariant (it would be refused as the live set): {issue}");
            }
            Some((
                Arc::new(ArcSwap::from_pointee(shadow)),
                invariants,
                verified,
            ))
        }
        None => None,
    };

    let key = match &cfg.assertion_key {
        Some(text) => AssertionKey::from_base64(text.expose())
            .map_err(|_| anyhow::anyhow!("--assertion-key must be base64 of at least 32 bytes"))?,
        None => AssertionKey::random(),
    };
    // Stops every task of the gateway (`RunningGateway::stop`).
    let (shutdown, mut stop) = tokio::sync::watch::channel(false);
    let mut export_worker = None;
    let upstream_url = match &cfg.upstream {
        Some(url) => url.clone(),
        None => {
            // The domain store in this process, reached over HTTP like a remote one.
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let (exports, worker) =
                domain::start_export_worker(store.clone(), shutdown.subscribe());
            export_worker = Some(worker);
            let state = DomainState::new(store.clone(), key.clone(), exports);
            tokio::spawn(async move {
                if let Err(e) = domain::serve(listener, state).await {
                    tracing::error!(error = %e, "the in-process domain store stopped");
                }
            });
            format!("http://{addr}")
        }
    };
    let upstream = Upstream::new(
        &upstream_url,
        cfg.limits.upstream_timeout,
        key,
        &cfg.upstream_tls,
    )?;

    let entities = Arc::new(EntityLoader::new(
        store.clone(),
        cfg.limits.entity_cache_bytes,
        ENTITY_TTL,
    ));
    if store.backend() == crate::store::Backend::Postgres {
        crate::sessions::changes::spawn_listener(
            cfg.database.database_url.clone(),
            entities.clone(),
        );
    }

    let tls = crate::listener::tls_acceptor(&cfg.tls, &data_dir, None)?;
    let certificate = tls.as_ref().map(|(_, path)| path.clone());
    let reloader = Arc::new(PolicyReloader::new(
        Serving {
            engine: live.clone(),
            invariants_dir: live_invariants,
            verification: live_verified,
        },
        shadow
            .as_ref()
            .map(|(engine, invariants_dir, verification)| Serving {
                engine: engine.clone(),
                invariants_dir: invariants_dir.clone(),
                verification: verification.clone(),
            }),
        timeout,
    ));
    let decision_log = match (
        &cfg.operations.decision_log_writer,
        &cfg.operations.decision_log,
    ) {
        (Some(log), _) => Some(log.clone()),
        (None, Some(target)) => Some(
            crate::audit::DecisionLog::open(target, cfg.operations.decision_log_sample_allowed)
                .with_context(|| format!("cannot open the decision log {target}"))?,
        ),
        (None, None) => None,
    };
    let gateway = Arc::new(Gateway {
        authorizer: Authorizer::new(
            live.clone(),
            reloader.shadow_slot(),
            entities.clone(),
            DecisionCache::new(cfg.limits.decision_cache_bytes),
        ),
        recent_decisions: Recent::new(crate::recent::DECISIONS),
        decision_log,
        exports_traces: cfg.operations.otlp_endpoint.is_some(),
        authn: Authenticator::new(
            entities.clone(),
            TokenSigner::new(cipher.derive_key("x-auth-token v1")),
            SessionKeys::from_cipher(&cipher),
        ),
        upstream,
        max_body_bytes: cfg.limits.max_body_bytes,
        body_timeout: cfg.limits.body_timeout,
        unauthenticated_bytes: Arc::new(tokio::sync::Semaphore::new(
            cfg.limits.max_unauthenticated_body_bytes,
        )),
        tls: cfg.tls != TlsMode::Plaintext,
        throttle: crate::throttle::Throttle::new(cfg.limits.rate_limit),
        upstream_slots: tokio::sync::Semaphore::new(cfg.limits.max_upstream_in_flight),
        trusted_proxies: cfg.trusted_proxies.clone(),
        openapi: crate::openapi::text().into(),
    });
    refresh_partner_limits(&store, &gateway).await;

    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let admin_listener = TcpListener::bind(cfg.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (admin)", cfg.admin_listen))?;
    let admin_addr = admin_listener.local_addr()?;

    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let token_from_data_dir = cfg.operations.admin.token_from_data_dir;
    let admin = crate::admin::router(
        gateway.clone(),
        store.clone(),
        reloader.clone(),
        &fleet.instance,
        cfg.operations.admin.clone(),
        admin_addr,
    );
    let admin_stop = stopped(stop.clone());
    let admin_tls = crate::listener::tls_acceptor(&cfg.admin_tls, &data_dir, None)
        .context("the admin listener's TLS")?;
    let admin_scheme = if admin_tls.is_some() { "https" } else { "http" };
    let admin_task = match admin_tls {
        Some((acceptor, _)) => {
            let listener = crate::listener::TlsListener::new(admin_listener, acceptor)?;
            tokio::spawn(async move {
                let _ = axum::serve(listener, admin)
                    .with_graceful_shutdown(admin_stop)
                    .await;
            })
        }
        None => tokio::spawn(async move {
            let _ = axum::serve(admin_listener, admin)
                .with_graceful_shutdown(admin_stop)
                .await;
        }),
    };
    // A publication is written by this process alone: nothing to watch.
    let watch_files =
        cfg.operations.policy_watch && cfg.operations.policy_source == PolicySource::Files;
    let reload_task = reloader.clone().start(watch_files, stopped(stop.clone()));
    let fleet = Arc::new(fleet);
    let instance = fleet.instance.clone();
    let fleet_task = fleet
        .start(
            reloader.clone(),
            cfg.operations.fleet_heartbeat,
            stopped(stop.clone()),
        )
        .await;
    let upkeep_stop = stopped(stop.clone());
    // logrotate's `postrotate` (README "Decision log").
    let mut log_rotated = crate::signals::user1();
    let (upkeep_store, upkeep_gateway) = (store.clone(), gateway.clone());
    let upkeep_task = tokio::spawn(async move {
        tokio::pin!(upkeep_stop);
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = &mut upkeep_stop => break,
                _ = every.tick() => {
                    crate::metrics::upkeep();
                    // Partners' own limits are heard within one interval.
                    refresh_partner_limits(&upkeep_store, &upkeep_gateway).await;
                    ticks += 1;
                    if ticks.is_multiple_of(12) {
                        if let Err(e) = upkeep_store.forget_client_tokens(crate::time::now()).await {
                            tracing::warn!(error = %e, "cannot forget old client tokens");
                        }
                    }
                }
                _ = log_rotated.next() => {
                    tracing::info!("SIGUSR1: reopening the decision log");
                    if let Some(log) = &upkeep_gateway.decision_log {
                        log.reopen();
                    }
                }
            }
        }
    });
    let serving = tokio::spawn(crate::listener::serve(
        listener,
        tls.map(|(acceptor, _)| acceptor),
        cfg.limits,
        cfg.trusted_proxies.clone(),
        gateway.clone(),
        async move {
            let _ = stop.changed().await;
        },
        cfg.operations.shutdown_grace,
    ));
    Ok(RunningGateway {
        addr,
        admin_addr,
        admin_scheme,
        admin_token_file: token_from_data_dir.then_some(admin_token_file),
        certificate,
        upstream: upstream_url,
        store,
        gateway,
        reloader,
        shutdown,
        serving,
        instance,
        background: [admin_task, reload_task, upkeep_task, fleet_task]
            .into_iter()
            .chain(export_worker)
            .collect(),
        grace: cfg.operations.shutdown_grace,
    })
}

/// How often the gateway's upkeep runs: metrics, partners' own rate limits
/// (a change is heard within this), and, every twelfth time, forgetting
/// client tokens past their day.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Reads the partners' own rate limits into the gateway's throttle; on a
/// database error the limits in force stay.
async fn refresh_partner_limits(store: &Store, gateway: &Gateway) {
    match store.rate_limits().await {
        Ok(limits) => gateway.throttle.set_partner_limits(
            limits
                .into_iter()
                .map(|(partner, limit, _)| (partner, limit))
                .collect(),
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read the partners' rate limits"),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// What `serve --demo` prints for a newcomer: who is who, and a call to try.
pub fn demo_banner(running: &RunningGateway) -> String {
    let fixture: serde_json::Value =
        serde_json::from_str(DEMO_FIXTURE).expect("embedded demo parses");
    let scheme = if running.certificate.is_some() {
        "https"
    } else {
        "http"
    };
    let endpoint = format!("{scheme}://{}", running.addr);
    let mut out = String::new();
    out.push_str("\nDemo principals (access key / secret key):\n");
    let rows = fixture["operators"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            (
                o,
                format!(
                    "operator {} ({}, {})",
                    o["id"].as_str().unwrap_or(""),
                    o["partner"].as_str().unwrap_or(""),
                    o["roles"]
                        .as_array()
                        .map(|r| r
                            .iter()
                            .filter_map(|v| v.as_str())
                            .collect::<Vec<_>>()
                            .join("+"))
                        .unwrap_or_default()
                ),
            )
        })
        .chain(
            fixture["customers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c.get("access_key").is_some())
                .map(|c| (c, format!("customer {}", c["id"].as_str().unwrap_or("")))),
        );
    for (entry, label) in rows {
        let status = entry
            .get("status")
            .and_then(|s| s.as_str())
            .filter(|s| *s != "active")
            .map(|s| format!(" [{s}]"))
            .unwrap_or_default();
        out.push_str(&format!(
            "  {:<48} {}  {}{}\n",
            label,
            entry["access_key"].as_str().unwrap_or(""),
            entry["secret_key"].as_str().unwrap_or(""),
            status
        ));
    }
    let insecure = if running.certificate.is_some() {
        " --insecure"
    } else {
        ""
    };
    out.push_str(&format!(
        "\nTry it (the distributor's admin lists its customers):\n  cargo run -- call --endpoint {endpoint}{insecure} --ak DEMODISTADMIN0000000 --sk demo-secret-dist-admin-xxxxxxxxxxxxxxxxx POST /v2/partners/sub-customers/query '{{\"offset\": 0, \"limit\": 5}}'\n"
    ));
    if let Some(cert) = &running.certificate {
        out.push_str(&format!(
            "  (or trust the development certificate instead of --insecure: --cacert {})\n",
            cert.display()
        ));
    }
    out
}
