//! Prometheus metrics, rendered by `GET /metrics` on the admin listener.
//!
//! Recording goes through the `metrics` facade: any module records with one
//! call and no handle threaded through the request path (the sessions code
//! calls [`set_live_sessions`] from wherever it counts them).
//! `metrics-exporter-prometheus` renders the Prometheus text exposition format
//! (0.0.4) with real histograms. The recorder is process-wide, installed once
//! by the first gateway that starts: a deployment runs one gateway per process
//! (several gateways in one process, as in the tests, add up).
//!
//! Every name is listed in README.md ("Metrics").

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// Counter: requests answered, by `route` (the route template, `unmatched`
/// when none matched), `action` (`none` before routing), `decision`
/// (`allow`, `deny`, `none` when no decision was reached), `status` and
/// `reason` (a 401's reason code, `none` otherwise).
pub const REQUESTS: &str = "pgw_requests_total";
/// Histogram: the whole request, from the first byte read to the answer, by `route`.
pub const REQUEST_SECONDS: &str = "pgw_request_duration_seconds";
/// Histogram: the authorization stage of a request (entity slices and every
/// Cedar check of a batch), by `action`.
pub const DECISION_SECONDS: &str = "pgw_decision_duration_seconds";
/// Histogram: the exchange with the domain store, by `route`.
pub const UPSTREAM_SECONDS: &str = "pgw_upstream_duration_seconds";
/// Counters read from the entity cache at scrape time.
pub const ENTITY_CACHE_HITS: &str = "pgw_entity_cache_hits_total";
pub const ENTITY_CACHE_MISSES: &str = "pgw_entity_cache_misses_total";
pub const DECISIONS_REUSED: &str = "pgw_decisions_reused_total";
pub const DECISIONS_TAKEN: &str = "pgw_decisions_taken_total";
/// Gauges: entity records and reusable decisions cached (approximate), and
/// their weight in bytes as the caches bound it.
pub const ENTITY_CACHE_ENTRIES: &str = "pgw_entity_cache_entries";
pub const ENTITY_CACHE_BYTES: &str = "pgw_entity_cache_bytes";
pub const BUILT_ENTITIES_ENTRIES: &str = "pgw_built_entities_entries";
pub const BUILT_ENTITIES_BYTES: &str = "pgw_built_entities_bytes";
pub const DECISION_CACHE_ENTRIES: &str = "pgw_decision_cache_entries";
pub const DECISION_CACHE_BYTES: &str = "pgw_decision_cache_bytes";
/// Counter: policy reload attempts, by `set` (`live`, `shadow`) and `result`
/// (`applied`, `unchanged`, `unsettled`, `failed`).
pub const POLICY_RELOADS: &str = "pgw_policy_reloads_total";
/// Gauge by `set`: 1 while the files on disk are refused (they do not load,
/// or the set breaks an invariant or was not proved in time; the last good
/// set keeps serving), 0 otherwise.
pub const POLICY_RELOAD_ERROR: &str = "pgw_policy_reload_error";
/// Gauge by `set` and `version`: 1 for the version serving, 0 for the ones before.
pub const POLICY_VERSION: &str = "pgw_policy_version_info";
/// Gauge by `instance`: the number of the publication this gateway serves
/// (`--policy-source database`; 0 when it serves files).
pub const POLICY_PUBLICATION: &str = "pgw_policy_publication";
/// Gauge by `set` and `invariant`: 1 for each invariant (or `never-errors`)
/// not proved at the last check: for `live`, of the files the last reload
/// refused (the set serving meets them all); for `shadow`, of the set
/// serving as shadow (it would be refused as live). 0 once proved again.
pub const POLICY_INVARIANT_FAILED: &str = "pgw_policy_invariant_failed";
/// Counter: decisions where the shadow set disagrees with the live set, by
/// `action`, `live` and `shadow` (`allow`/`deny`).
pub const SHADOW_DISAGREEMENTS: &str = "pgw_shadow_disagreements_total";
/// Counter: decisions the shadow set was evaluated on, by `action`.
pub const SHADOW_DECISIONS: &str = "pgw_shadow_decisions_total";
/// Gauge: assume-role sessions currently live (set by the sessions code).
pub const LIVE_SESSIONS: &str = "pgw_live_sessions";
/// Counter: lists whose residual policies had no filter form, so that their
/// items were decided one by one, by `action`.
pub const LIST_FALLBACKS: &str = "pgw_list_fallbacks_total";
/// Counter: decisions denied because a policy failed to evaluate, by `action`.
pub const EVALUATION_ERRORS: &str = "pgw_policy_evaluation_errors_total";
/// Counter: requests refused with 429 for being over a principal's rate, by `partner`.
pub const RATE_LIMITED: &str = "pgw_rate_limited_total";
/// Counter: requests shed with 503 because the store's in-flight bound was reached.
pub const SHED: &str = "pgw_shed_total";
/// Counter: connections closed at accept, by `reason` (a connection limit).
pub const CONNECTIONS_REFUSED: &str = "pgw_connections_refused_total";

/// Upper bounds (seconds) of the latency histograms: 0.5 ms to 30 s.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Process-wide because the `metrics` facade's recorder is: it is installed
/// once per process, and any module records through the facade.
static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// Installs the process-wide recorder (once) and describes every metric.
/// Fails when another recorder was installed first (by an embedding program).
pub fn install() -> Result<&'static PrometheusHandle, String> {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets(&LATENCY_BUCKETS)
                .map_err(|e| e.to_string())?
                .install_recorder()
                .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
            describe();
            Ok(handle)
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn describe() {
    use ::metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        LIST_FALLBACKS,
        "Lists whose items were decided one by one (residual policies without a filter form), by action."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused with 429 for being over their principal's rate, by partner (customers: none)."
    );
    describe_counter!(
        SHED,
        "Requests answered 503 at once because the domain store's in-flight bound was reached."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed at accept because a connection limit was reached, by reason."
    );
    describe_counter!(
        EVALUATION_ERRORS,
        "Decisions denied because a policy failed to evaluate (fail closed), by action."
    );
    describe_counter!(
        REQUESTS,
        "Requests answered, by route template, action, decision and status."
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Whole request latency, by route template."
    );
    describe_histogram!(
        DECISION_SECONDS,
        Unit::Seconds,
        "Authorization stage latency (entities + Cedar), by action."
    );
    describe_histogram!(
        UPSTREAM_SECONDS,
        Unit::Seconds,
        "Domain store exchange latency, by route template."
    );
    describe_counter!(ENTITY_CACHE_HITS, "Entity cache hits.");
    describe_counter!(
        ENTITY_CACHE_MISSES,
        "Entity cache misses (records read from the database)."
    );
    describe_gauge!(ENTITY_CACHE_ENTRIES, "Entity records cached.");
    describe_gauge!(
        ENTITY_CACHE_BYTES,
        "Weight of the entity records cached, in bytes."
    );
    describe_gauge!(
        BUILT_ENTITIES_ENTRIES,
        "Entity slices kept built as Cedar entities."
    );
    describe_gauge!(
        BUILT_ENTITIES_BYTES,
        "Weight of the entity slices kept built, in bytes."
    );
    describe_gauge!(DECISION_CACHE_ENTRIES, "Decisions kept for reuse.");
    describe_gauge!(
        DECISION_CACHE_BYTES,
        "Weight of the decisions kept for reuse, in bytes."
    );
    describe_counter!(
        DECISIONS_REUSED,
        "Decisions served from the decision cache (same question, same facts, no instant passed)."
    );
    describe_counter!(
        DECISIONS_TAKEN,
        "Reusable decisions evaluated by Cedar (decision cache misses)."
    );
    describe_counter!(
        POLICY_RELOADS,
        "Policy reload attempts, by set and result (applied, unchanged, failed)."
    );
    describe_gauge!(
        POLICY_RELOAD_ERROR,
        "1 while the policy files on disk are refused (they do not load, break an invariant, or were not proved in time) and the last good set serves."
    );
    describe_gauge!(
        POLICY_INVARIANT_FAILED,
        "1 per invariant not proved at the last check, by set and invariant (live: of the files the last reload refused; shadow: of the set serving as shadow)."
    );
    describe_gauge!(
        POLICY_VERSION,
        "1 for the policy set version serving, by set."
    );
    describe_gauge!(
        POLICY_PUBLICATION,
        "The policy publication this gateway serves, by instance (0: files)."
    );
    describe_counter!(
        SHADOW_DISAGREEMENTS,
        "Decisions where the shadow policies disagree with the live ones."
    );
    describe_counter!(
        SHADOW_DECISIONS,
        "Decisions the shadow policies were evaluated on."
    );
    describe_gauge!(LIVE_SESSIONS, "Assume-role sessions currently live.");
    set_live_sessions(0);
}

/// What one gateway's caches count, read at a scrape.
#[derive(Clone, Copy, Debug, Default)]
pub struct CacheCounts {
    pub entity_hits: u64,
    pub entity_misses: u64,
    /// Entities cached now (approximate), and their weight in bytes.
    pub entity_entries: u64,
    pub entity_bytes: u64,
    /// Slices kept built (approximate), and their weight in bytes.
    pub built_entries: u64,
    pub built_bytes: u64,
    pub decisions_reused: u64,
    pub decisions_taken: u64,
    /// Decisions cached now (approximate), and their weight in bytes.
    pub decision_entries: u64,
    pub decision_bytes: u64,
}

/// One answered request, as the request metrics label and time it.
pub struct Answered {
    /// The route template; `None` when none matched.
    pub route: Option<&'static str>,
    pub action: Option<&'static str>,
    /// `allow`, `deny` or `none`.
    pub decision: &'static str,
    pub status: u16,
    /// A 401's reason code.
    pub auth_failure: Option<&'static str>,
    pub latency: Duration,
    pub decision_latency: Option<Duration>,
    pub upstream_latency: Option<Duration>,
}

/// What one gateway's caches had counted at its last scrape: entity hits and
/// misses, decisions reused and taken.
#[derive(Debug, Default)]
pub struct CacheReported(std::sync::Mutex<[u64; 4]>);

/// The Prometheus text of every metric, with the cache counters read
/// now. Each scrape adds what this gateway's caches counted since its last
/// one (`reported`), so that several gateways in one process (the tests)
/// add up rather than mask each other, as setting the counters outright did.
pub fn render(counts: CacheCounts, reported: &CacheReported) -> Result<String, String> {
    let handle = install()?;
    let now = [
        counts.entity_hits,
        counts.entity_misses,
        counts.decisions_reused,
        counts.decisions_taken,
    ];
    let added = {
        let mut last = reported.0.lock().unwrap_or_else(|p| p.into_inner());
        let added: Vec<u64> = now
            .iter()
            .zip(last.iter())
            .map(|(n, l)| n.saturating_sub(*l))
            .collect();
        *last = now;
        added
    };
    for (name, n) in [
        ENTITY_CACHE_HITS,
        ENTITY_CACHE_MISSES,
        DECISIONS_REUSED,
        DECISIONS_TAKEN,
    ]
    .into_iter()
    .zip(added)
    {
        ::metrics::counter!(name).increment(n);
    }
    for (name, n) in [
        (ENTITY_CACHE_ENTRIES, counts.entity_entries),
        (ENTITY_CACHE_BYTES, counts.entity_bytes),
        (BUILT_ENTITIES_ENTRIES, counts.built_entries),
        (BUILT_ENTITIES_BYTES, counts.built_bytes),
        (DECISION_CACHE_ENTRIES, counts.decision_entries),
        (DECISION_CACHE_BYTES, counts.decision_bytes),
    ] {
        ::metrics::gauge!(name).set(n as f64);
    }
    handle.run_upkeep();
    Ok(handle.render())
}

/// Folds recorded histogram samples; call it now and then so that memory
/// stays bounded between scrapes.
pub fn upkeep() {
    if let Some(Ok(handle)) = HANDLE.get() {
        handle.run_upkeep();
    }
}

/// One kind of answered request: its labels (route, action, decision,
/// status, 401 reason) and whether it was decided and went upstream (only
/// then are those histograms its own).
type RequestLabels = (
    &'static str,
    &'static str,
    &'static str,
    u16,
    &'static str,
    bool,
    bool,
);

/// The request metrics' handles of one kind of answered request.
#[derive(Clone)]
struct RequestHandles {
    requests: ::metrics::Counter,
    latency: ::metrics::Histogram,
    decision: Option<::metrics::Histogram>,
    upstream: Option<::metrics::Histogram>,
}

/// Handles resolved once per kind of request, not per request: resolving
/// builds and hashes the metric's key. The labels come from the catalog
/// and the code (routes, actions, statuses), never from a client, so
/// there are few of them.
static REQUEST_HANDLES: std::sync::LazyLock<
    std::sync::RwLock<std::collections::HashMap<RequestLabels, RequestHandles>>,
> = std::sync::LazyLock::new(Default::default);

fn request_handles(labels: RequestLabels) -> RequestHandles {
    let known = REQUEST_HANDLES
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(&labels)
        .cloned();
    if let Some(handles) = known {
        return handles;
    }
    let (route, action, decision, status, reason, decided, forwarded) = labels;
    let handles = RequestHandles {
        requests: ::metrics::counter!(
            REQUESTS,
            "route" => route,
            "action" => action,
            "decision" => decision,
            "status" => status.to_string(),
            "reason" => reason,
        ),
        latency: ::metrics::histogram!(REQUEST_SECONDS, "route" => route),
        decision: decided.then(|| ::metrics::histogram!(DECISION_SECONDS, "action" => action)),
        upstream: forwarded.then(|| ::metrics::histogram!(UPSTREAM_SECONDS, "route" => route)),
    };
    // Before the recorder is installed the handles record nowhere: not kept.
    if HANDLE.get().is_some_and(Result::is_ok) {
        REQUEST_HANDLES
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(labels, handles.clone());
    }
    handles
}

/// One answered request: the counter and the latency histograms.
pub fn observe_request(answered: Answered) {
    let handles = request_handles((
        answered.route.unwrap_or("unmatched"),
        answered.action.unwrap_or("none"),
        answered.decision,
        answered.status,
        answered.auth_failure.unwrap_or("none"),
        answered.decision_latency.is_some(),
        answered.upstream_latency.is_some(),
    ));
    handles.requests.increment(1);
    handles.latency.record(answered.latency.as_secs_f64());
    if let (Some(d), Some(h)) = (answered.decision_latency, &handles.decision) {
        h.record(d.as_secs_f64());
    }
    if let (Some(d), Some(h)) = (answered.upstream_latency, &handles.upstream) {
        h.record(d.as_secs_f64());
    }
}

/// A policy reload attempt of `set` (`live` or `shadow`).
pub fn policy_reload(set: &'static str, result: &'static str) {
    ::metrics::counter!(POLICY_RELOADS, "set" => set, "result" => result).increment(1);
    ::metrics::gauge!(POLICY_RELOAD_ERROR, "set" => set).set(if result == "failed" {
        1.0
    } else {
        0.0
    });
}

/// A policy set starts serving: its version, and its reload counters at 0 so
/// that they are scraped (and alert rules see them) before the first reload.
pub fn policy_set_started(set: &'static str, version: &str) {
    for result in ["applied", "unchanged", "unsettled", "failed"] {
        ::metrics::counter!(POLICY_RELOADS, "set" => set, "result" => result).increment(0);
    }
    ::metrics::gauge!(POLICY_RELOAD_ERROR, "set" => set).set(0.0);
    policy_version(set, None, version);
}

/// The invariants of `set` not proved at its last check (`failing`); those
/// of `before` that now pass go back to 0.
pub fn policy_invariants_failed(set: &'static str, before: &[String], failing: &[String]) {
    for id in before.iter().filter(|id| !failing.contains(id)) {
        ::metrics::gauge!(POLICY_INVARIANT_FAILED, "set" => set, "invariant" => id.clone())
            .set(0.0);
    }
    for id in failing {
        ::metrics::gauge!(POLICY_INVARIANT_FAILED, "set" => set, "invariant" => id.clone())
            .set(1.0);
    }
}

/// The version of `set` serving now (`previous` is marked 0).
pub fn policy_version(set: &'static str, previous: Option<&str>, current: &str) {
    if let Some(old) = previous.filter(|old| *old != current) {
        ::metrics::gauge!(POLICY_VERSION, "set" => set, "version" => old.to_owned()).set(0.0);
    }
    ::metrics::gauge!(POLICY_VERSION, "set" => set, "version" => current.to_owned()).set(1.0);
}

/// The publication gateway `instance` serves (`None`: files).
pub fn policy_publication(instance: &str, seq: Option<i64>) {
    ::metrics::gauge!(POLICY_PUBLICATION, "instance" => instance.to_owned())
        .set(seq.unwrap_or(0) as f64);
}

/// One decision the shadow set was evaluated on, and whether it disagreed.
pub fn shadow_decision(action: &str, live: bool, shadow: bool) {
    ::metrics::counter!(SHADOW_DECISIONS, "action" => action.to_owned()).increment(1);
    if live != shadow {
        let text = |allow: bool| if allow { "allow" } else { "deny" };
        ::metrics::counter!(
            SHADOW_DISAGREEMENTS,
            "action" => action.to_owned(),
            "live" => text(live),
            "shadow" => text(shadow),
        )
        .increment(1);
    }
}

/// Sets the live sessions gauge. For the sessions code: call it with the
/// count whenever sessions are created, ended or expire (or periodically).
pub fn list_fallback(action: &'static str) {
    ::metrics::counter!(LIST_FALLBACKS, "action" => action).increment(1);
}

pub fn evaluation_error(action: &str) {
    ::metrics::counter!(EVALUATION_ERRORS, "action" => action.to_owned()).increment(1);
}

/// A request over its principal's rate, of `partner` (none for a customer).
pub fn rate_limited(partner: Option<&str>) {
    ::metrics::counter!(RATE_LIMITED, "partner" => partner.unwrap_or("none").to_owned())
        .increment(1);
}

pub fn shed() {
    ::metrics::counter!(SHED).increment(1);
}

pub fn connection_refused(reason: &'static str) {
    ::metrics::counter!(CONNECTIONS_REFUSED, "reason" => reason).increment(1);
}

pub fn set_live_sessions(n: u64) {
    ::metrics::gauge!(LIVE_SESSIONS).set(n as f64);
}
