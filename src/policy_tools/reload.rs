//! Hot reload of the policy sets while traffic flows.
//!
//! The policy and schema directories (and the shadow directory, if any) are
//! watched (`notify`); changes are debounced (a burst of writes is one
//! reload) and SIGHUP reloads too. A reload waits for the files to be quiet
//! ([`QUIET`]), parses and strictly validates ([`PolicyEngine::load`]), then
//! proves the invariants of `<policies>/invariants/` with the solver
//! ([`super::verify`]), off the async workers and within
//! `--policy-verify-timeout-secs`; only a valid set whose
//! every invariant is proved is swapped in, atomically, into the `ArcSwap`
//! the gateway reads once per request, so a request in flight finishes on the
//! set it started with. An invalid change, a broken invariant or a proof that
//! did not finish in time keeps the last good set serving, logs every problem
//! (with file and line, and the counterexample), and shows in `/readyz` and
//! the metrics until the files on disk are good again. The start-up load goes
//! through the same [`load_set`] and [`prove`].
//!
//! The live and the shadow sets reload independently: a broken shadow set
//! never touches the live one. A shadow set decides nothing, so one that
//! breaks an invariant still serves as shadow (that is how a team sees what
//! the change would do); `/readyz` and `pgw_policy_invariant_failed` say
//! it would be refused as the live set.

use crate::authorizer::ShadowSlot;
use crate::policy::load;
use crate::policy::{PolicyEngine, PolicyLoadError};
use crate::time::{self, Timestamp};
use crate::verify::{self, Invariants, VerifyOptions};
use arc_swap::{ArcSwap, ArcSwapOption};
use notify::Watcher as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A burst of file events ends after this much quiet, and a reload reads
/// the files only once they have been quiet this long...
const QUIET: Duration = Duration::from_millis(200);
/// ...or after this long, whichever comes first (a file rewritten in a loop
/// must not postpone the reload forever; a reload then refuses to read it).
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// Which set: `live` decides, `shadow` is only compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetName {
    Live,
    Shadow,
}

impl SetName {
    pub fn as_str(self) -> &'static str {
        match self {
            SetName::Live => "live",
            SetName::Shadow => "shadow",
        }
    }
}

/// What one reload of one set did.
#[derive(Debug)]
pub enum Outcome {
    /// A new version now serves.
    Applied { from: String, to: String },
    /// The files load and are the version already serving, with the same invariants.
    Unchanged,
    /// The files kept changing, or changed while they were loaded: nothing
    /// was taken from them. The writes are events the watcher reloads on
    /// once they stop.
    Unsettled,
    /// The files do not load, or the set breaks an invariant, or its proof
    /// did not finish; the last good set keeps serving.
    Failed(Refusal),
}

impl Outcome {
    fn result(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::Unsettled => "unsettled",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// Why a set may not serve: every problem, and the counterexamples found.
#[derive(Clone, Debug, Default)]
pub struct Refusal {
    /// `file:line: message` each.
    pub issues: Vec<String>,
    /// The ids of the invariants not proved (`never-errors` included).
    pub invariants: Vec<String>,
    /// Decision test files reproducing a broken invariant (the first of each).
    pub counterexamples: Vec<Value>,
}

impl From<PolicyLoadError> for Refusal {
    fn from(e: PolicyLoadError) -> Refusal {
        Refusal {
            issues: e.issues.iter().map(|i| i.to_string()).collect(),
            ..Refusal::default()
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} problem(s):", self.issues.len())?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        for c in &self.counterexamples {
            write!(
                f,
                "\n  counterexample (a decision test: partner-gateway policy test FILE): {c}"
            )?;
        }
        Ok(())
    }
}

/// What was proved of a policy set's invariants.
#[derive(Clone, Debug)]
pub struct Verification {
    pub at: Timestamp,
    /// The invariant files' hash: a set is proved again when they change.
    pub invariants_digest: String,
    pub invariants: usize,
    pub elapsed: Duration,
    /// What was not proved; no issue when everything was.
    pub refusal: Refusal,
}

impl Verification {
    pub fn proved(&self) -> bool {
        self.refusal.issues.is_empty()
    }

    fn status(&self, dir: &Path) -> Value {
        json!({
            "dir": dir.display().to_string(),
            "count": self.invariants,
            "proved": self.proved(),
            "checked_at": time::format(self.at),
            "seconds": self.elapsed.as_secs_f64(),
            "problems": self.refusal.issues,
            "counterexamples": self.refusal.counterexamples,
        })
    }
}

/// Where the invariants of a set in `policies_dir` are: its own
/// `invariants/`, or, for a shadow directory without one, those of `live`
/// (the invariants it would have to meet as the live set).
pub fn invariants_dir(policies_dir: &Path, live: Option<&Path>) -> PathBuf {
    let own = Invariants::dir_of(policies_dir);
    match live {
        Some(live) if !own.is_dir() => Invariants::dir_of(live),
        _ => own,
    }
}

/// Loads a policy set and its invariants, validated against the schema.
pub fn load_set(
    policies_dir: &Path,
    schema_dir: &Path,
    invariants_dir: &Path,
) -> Result<(PolicyEngine, Invariants), PolicyLoadError> {
    let engine = PolicyEngine::load(policies_dir, schema_dir)?;
    let invariants = Invariants::load(invariants_dir, engine.schema())?;
    Ok((engine, invariants))
}

/// Proves `invariants` of `engine` (blocking: solver processes). A proof
/// that cannot run (no solver) fails like a refuted invariant.
pub fn prove(engine: &PolicyEngine, invariants: &Invariants, timeout: Duration) -> Verification {
    let options = VerifyOptions {
        timeout,
        ..VerifyOptions::default()
    };
    let at = time::now();
    let started = std::time::Instant::now();
    let refusal = match verify::verify(engine, invariants, &options) {
        Ok(report) => Refusal {
            issues: report.problems(),
            invariants: report.failing().map(|p| p.id.clone()).collect(),
            counterexamples: report
                .first_counterexamples()
                .into_iter()
                .map(|c| c.test.clone())
                .collect(),
        },
        Err(e) => Refusal {
            issues: vec![format!(
                "{}: the invariants could not be checked: {e}",
                invariants.dir.display()
            )],
            invariants: invariants.items.iter().map(|i| i.info.id.clone()).collect(),
            counterexamples: Vec::new(),
        },
    };
    Verification {
        at,
        invariants_digest: invariants.digest.clone(),
        invariants: invariants.items.len(),
        elapsed: started.elapsed(),
        refusal,
    }
}

/// Loads a policy set and proves its invariants, off the async workers.
pub async fn checked_set(
    policies: &Path,
    schema: &Path,
    invariants: &Path,
    timeout: Duration,
) -> Result<(PolicyEngine, Verification), Refusal> {
    let (policies, schema, invariants) = (
        policies.to_owned(),
        schema.to_owned(),
        invariants.to_owned(),
    );
    tokio::task::spawn_blocking(move || {
        let (engine, invariants) = load_set(&policies, &schema, &invariants)?;
        let verified = prove(&engine, &invariants, timeout);
        Ok((engine, verified))
    })
    .await
    .map_err(|e| Refusal {
        issues: vec![format!("the policy loader failed: {e}")],
        ..Refusal::default()
    })?
}

/// The last reload failure, as `/readyz` shows it.
#[derive(Clone, Debug)]
struct ReloadFailure {
    at: Timestamp,
    refusal: Refusal,
}

#[derive(Debug)]
struct SetState {
    /// When the serving version was swapped in.
    loaded_at: Timestamp,
    last_attempt: Option<(Timestamp, &'static str)>,
    /// Present while the files on disk are refused.
    failure: Option<ReloadFailure>,
    /// What was proved of the set serving.
    verification: Verification,
    /// The invariants marked failing in the metrics.
    failing_invariants: Vec<String>,
    applied: u64,
    failed: u64,
}

/// A policy set's directories as [`WatchedSet::on_disk`] reads them.
#[derive(PartialEq)]
struct OnDisk {
    version: String,
    invariants: String,
    modified: Vec<(PathBuf, Option<std::time::SystemTime>)>,
}

/// One watched policy set and the engine that serves it.
pub struct WatchedSet {
    pub name: SetName,
    pub policies_dir: PathBuf,
    pub schema_dir: PathBuf,
    pub invariants_dir: PathBuf,
    pub engine: Arc<ArcSwap<PolicyEngine>>,
    verify_timeout: Duration,
    state: Mutex<SetState>,
}

/// A set as it starts serving: its engine, where its invariants are, and
/// what was proved of them.
pub struct Serving {
    pub engine: Arc<ArcSwap<PolicyEngine>>,
    pub invariants_dir: PathBuf,
    pub verification: Verification,
}

impl WatchedSet {
    /// A set serving `serving.engine`, loaded from the engine's directories.
    pub fn new(name: SetName, serving: Serving, verify_timeout: Duration) -> WatchedSet {
        let current = serving.engine.load();
        crate::metrics::policy_set_started(name.as_str(), current.version());
        crate::metrics::policy_invariants_failed(
            name.as_str(),
            &[],
            &serving.verification.refusal.invariants,
        );
        WatchedSet {
            name,
            policies_dir: current.policies_dir().to_owned(),
            schema_dir: current.schema_dir().to_owned(),
            invariants_dir: serving.invariants_dir,
            engine: serving.engine.clone(),
            verify_timeout,
            state: Mutex::new(SetState {
                loaded_at: time::now(),
                last_attempt: None,
                failure: None,
                failing_invariants: serving.verification.refusal.invariants.clone(),
                verification: serving.verification,
                applied: 0,
                failed: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Loads and proves the files on disk, off the async workers. `Ok(None)`:
    /// the version serving, with the same invariants (nothing to prove again).
    async fn check(&self) -> Result<Option<(PolicyEngine, Verification)>, Refusal> {
        let (policies, schema, invariants) = (
            self.policies_dir.clone(),
            self.schema_dir.clone(),
            self.invariants_dir.clone(),
        );
        let failed = |what: &str, e: tokio::task::JoinError| Refusal {
            issues: vec![format!(
                "{}: the {what} failed: {e}",
                self.policies_dir.display()
            )],
            ..Refusal::default()
        };
        let (engine, invariants) =
            tokio::task::spawn_blocking(move || load_set(&policies, &schema, &invariants))
                .await
                .map_err(|e| failed("policy loader", e))??;
        let serving_version = self.engine.load().version().to_owned();
        let proved_with = self.state().verification.invariants_digest.clone();
        if engine.version() == serving_version && invariants.digest == proved_with {
            return Ok(None);
        }
        let timeout = self.verify_timeout;
        let (engine, verification) = tokio::task::spawn_blocking(move || {
            let verification = prove(&engine, &invariants, timeout);
            (engine, verification)
        })
        .await
        .map_err(|e| failed("invariant prover", e))?;
        Ok(Some((engine, verification)))
    }

    /// What the set's directories hold now: the version and invariants
    /// digest their files load as, and every file's modification time (which
    /// tells a file emptied once before a load and again after it from one
    /// left empty).
    fn on_disk(&self) -> OnDisk {
        let (version, invariants) =
            load::digests_on_disk(&self.policies_dir, &self.schema_dir, &self.invariants_dir);
        let mut modified = Vec::new();
        for dir in [&self.policies_dir, &self.schema_dir, &self.invariants_dir] {
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for entry in entries.flatten() {
                modified.push((
                    entry.path(),
                    entry.metadata().and_then(|m| m.modified()).ok(),
                ));
            }
        }
        modified.sort();
        OnDisk {
            version,
            invariants,
            modified,
        }
    }

    /// The set's directories once they have been quiet for [`QUIET`]: read
    /// twice that long apart and found the same. A file written in place is
    /// empty for a moment, and a reload fast enough to read it empty, load
    /// and prove (a proof may be remembered) before the write ends would find
    /// it empty before and after. The files' modification times are
    /// compared with each other, never with the clock: a clock set apart
    /// from the file system's (a VM's drift, a faked time) would otherwise
    /// call a file just emptied long quiet. `seen`: what the reload read
    /// first. `None`: still changing after [`MAX_DEBOUNCE`].
    async fn settled(&self, mut seen: OnDisk) -> Option<OnDisk> {
        let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
        loop {
            if tokio::time::Instant::now() + QUIET > deadline {
                return None;
            }
            tokio::time::sleep(QUIET).await;
            let again = self.on_disk();
            if again == seen {
                return Some(again);
            }
            seen = again;
        }
    }

    /// Whether the files hold the set serving, with the invariants it was
    /// proved against: then there is nothing to wait for, load or prove.
    fn serves(&self, on_disk: &OnDisk) -> bool {
        on_disk.version == self.engine.load().version()
            && on_disk.invariants == self.state().verification.invariants_digest
    }

    /// Loads and proves the settled set `before`, and swaps it in if it is
    /// still the set on disk and may serve.
    async fn swap_in(&self, before: OnDisk, cause: &str) -> (Outcome, Option<Verification>) {
        let set = self.name.as_str();
        match self.check().await {
            Err(refusal) => (Outcome::Failed(refusal), None),
            Ok(None) => (Outcome::Unchanged, None),
            // A file written in place is empty or partial for a moment, and
            // may still parse (an empty file is a valid, empty policy file):
            // only a set whose files did not change while it was loaded and
            // proved, and which is the set on disk (a file read while empty
            // and whole again by the end would pass the first test alone),
            // may serve. The writes that changed them are events the watcher
            // reloads on next.
            Ok(Some((engine, verification)))
                if self.on_disk() != before
                    || before.version != engine.version()
                    || before.invariants != verification.invariants_digest =>
            {
                tracing::info!(
                    set,
                    cause,
                    "policy files changed while loading; waiting for them to settle"
                );
                (Outcome::Unsettled, None)
            }
            // The live set serves only what is proved; a shadow set decides
            // nothing and serves either way, its verification on show.
            Ok(Some((_, verification))) if self.name == SetName::Live && !verification.proved() => {
                (Outcome::Failed(verification.refusal), None)
            }
            Ok(Some((engine, verification))) => {
                let current = self.engine.load();
                if engine.version() == current.version() {
                    (Outcome::Unchanged, Some(verification))
                } else {
                    let (from, to) = (current.version().to_owned(), engine.version().to_owned());
                    let count = engine.policies().len();
                    self.engine.store(Arc::new(engine));
                    tracing::info!(set, cause, from = %from, to = %to, policies = count, "policy set reloaded");
                    crate::metrics::policy_version(set, Some(&from), &to);
                    (Outcome::Applied { from, to }, Some(verification))
                }
            }
        }
    }

    async fn reload(&self, cause: &str) -> Outcome {
        let set = self.name.as_str();
        let now = time::now();
        let seen = self.on_disk();
        let (outcome, verification) = if self.serves(&seen) {
            (Outcome::Unchanged, None)
        } else if let Some(before) = self.settled(seen).await {
            self.swap_in(before, cause).await
        } else {
            tracing::info!(
                set,
                cause,
                "policy files still changing; waiting for them to settle"
            );
            (Outcome::Unsettled, None)
        };
        match (&outcome, &verification) {
            (Outcome::Failed(refusal), _) => {
                for issue in &refusal.issues {
                    tracing::error!(set, cause, "policy reload: {issue}");
                }
                for c in &refusal.counterexamples {
                    tracing::error!(set, cause, counterexample = %c, "policy reload: an invariant is broken; the counterexample is a decision test");
                }
                tracing::error!(
                    set,
                    cause,
                    problems = refusal.issues.len(),
                    serving = %self.engine.load().version(),
                    "policy reload refused; the last good policy set keeps serving"
                );
            }
            (_, Some(v)) if !v.proved() => {
                for issue in &v.refusal.issues {
                    tracing::error!(set, cause, "the shadow set breaks an invariant (it would be refused as the live set): {issue}");
                }
            }
            _ => {}
        }
        crate::metrics::policy_reload(set, outcome.result());
        let mut state = self.state();
        state.last_attempt = Some((now, outcome.result()));
        // The invariants the files on disk do not meet: those of a refusal,
        // or (a shadow set serving anyway) of its verification.
        let failing = match (&outcome, &verification) {
            (Outcome::Failed(refusal), _) => refusal.invariants.clone(),
            (_, Some(v)) => v.refusal.invariants.clone(),
            (_, None) => state.verification.refusal.invariants.clone(),
        };
        crate::metrics::policy_invariants_failed(set, &state.failing_invariants, &failing);
        state.failing_invariants = failing;
        if let Some(v) = verification {
            state.verification = v;
        }
        match &outcome {
            Outcome::Applied { .. } => {
                state.loaded_at = now;
                state.applied += 1;
                state.failure = None;
            }
            Outcome::Unchanged => state.failure = None,
            // Nothing was read: whatever the last reload found stands.
            Outcome::Unsettled => {}
            Outcome::Failed(refusal) => {
                state.failed += 1;
                state.failure = Some(ReloadFailure {
                    at: now,
                    refusal: refusal.clone(),
                });
            }
        }
        outcome
    }

    /// What `/readyz` shows of this set.
    pub fn status(&self) -> Value {
        let engine = self.engine.load();
        let state = self.state();
        json!({
            "loaded": true,
            "version": engine.version(),
            "count": engine.policies().len(),
            "policies_dir": self.policies_dir.display().to_string(),
            "schema_dir": self.schema_dir.display().to_string(),
            "loaded_at": time::format(state.loaded_at),
            "invariants": state.verification.status(&self.invariants_dir),
            "last_reload": state.last_attempt.map(|(at, result)| json!({"at": time::format(at), "result": result})),
            "last_reload_error": state.failure.as_ref().map(|f| json!({
                "at": time::format(f.at),
                "issues": f.refusal.issues,
                "counterexamples": f.refusal.counterexamples,
            })),
            "reloads_applied": state.applied,
            "reloads_failed": state.failed,
        })
    }

    /// When the version serving was swapped in (or the gateway started).
    pub fn loaded_at(&self) -> Timestamp {
        self.state().loaded_at
    }

    /// Whether every invariant of the set serving is proved.
    pub fn proved(&self) -> bool {
        self.state().verification.proved()
    }

    /// Whether the files on disk were refused at the last attempt.
    pub fn failing(&self) -> bool {
        self.state().failure.is_some()
    }
}

/// The live set, the optional shadow set, and the triggers that reload them.
pub struct PolicyReloader {
    pub live: WatchedSet,
    /// The shadow set: from `--shadow-policies`, or a shadow publication,
    /// which may come and go while the gateway serves.
    shadow: ArcSwapOption<WatchedSet>,
    /// What the authorizer compares with: the shadow set's engine, or none.
    shadow_slot: ShadowSlot,
    verify_timeout: Duration,
    /// One reload at a time: two overlapping loads could otherwise swap in
    /// an older read after a newer one.
    serial: tokio::sync::Mutex<()>,
}

impl PolicyReloader {
    pub fn new(live: Serving, shadow: Option<Serving>, verify_timeout: Duration) -> PolicyReloader {
        let shadow_slot = ShadowSlot::new(shadow.as_ref().map(|s| s.engine.clone()));
        PolicyReloader {
            live: WatchedSet::new(SetName::Live, live, verify_timeout),
            shadow: ArcSwapOption::new(
                shadow.map(|s| Arc::new(WatchedSet::new(SetName::Shadow, s, verify_timeout))),
            ),
            shadow_slot,
            verify_timeout,
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// How long proving a set may take.
    pub fn verify_timeout(&self) -> Duration {
        self.verify_timeout
    }

    /// The shadow set, when there is one.
    pub fn shadow(&self) -> Option<Arc<WatchedSet>> {
        self.shadow.load_full()
    }

    /// The slot the authorizer reads the shadow set from.
    pub fn shadow_slot(&self) -> ShadowSlot {
        self.shadow_slot.clone()
    }

    /// Starts comparing with `shadow` (in place of any shadow set before),
    /// or, with `None`, stops comparing.
    pub async fn set_shadow(&self, shadow: Option<Serving>) {
        let _one = self.serial.lock().await;
        match shadow {
            Some(serving) => {
                let engine = serving.engine.clone();
                let set = WatchedSet::new(SetName::Shadow, serving, self.verify_timeout);
                self.shadow.store(Some(Arc::new(set)));
                self.shadow_slot.set(Some(engine));
            }
            None => {
                self.shadow_slot.set(None);
                self.shadow.store(None);
            }
        }
    }

    /// Reloads every set now; `cause` is logged (`SIGHUP`, `file change`).
    pub async fn reload(&self, cause: &str) -> Vec<(SetName, Outcome)> {
        let _one = self.serial.lock().await;
        let mut outcomes = vec![(SetName::Live, self.live.reload(cause).await)];
        if let Some(shadow) = self.shadow() {
            outcomes.push((SetName::Shadow, shadow.reload(cause).await));
        }
        outcomes
    }

    /// The directories to watch, each once (the invariants directory too:
    /// re-armed after each change, so one created later is watched from then).
    fn directories(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        let shadow = self.shadow();
        for set in std::iter::once(&self.live).chain(shadow.as_deref()) {
            for dir in [&set.policies_dir, &set.schema_dir, &set.invariants_dir] {
                if !dirs.contains(dir) {
                    dirs.push(dir.clone());
                }
            }
        }
        dirs
    }

    /// Starts the reload triggers: SIGHUP always (on Unix), and the file
    /// watcher when `watch_files`. Both are set up before this returns, so a
    /// signal or a change that follows is never missed. Ends when `shutdown`
    /// resolves.
    pub fn start(
        self: Arc<Self>,
        watch_files: bool,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, mut events) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
        let dirs = self.directories();
        let mut watcher = if watch_files {
            match notify::recommended_watcher(move |event| {
                let _ = tx.send(event);
            }) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch the policy directories; reload with SIGHUP");
                    None
                }
            }
        } else {
            None
        };
        if let Some(w) = watcher.as_mut() {
            arm(w, &dirs, false);
        }
        let mut hangup = crate::signals::hangup();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = hangup.next() => {
                        tracing::info!("SIGHUP: reloading the policies");
                        self.reload("SIGHUP").await;
                    }
                    Some(event) = events.recv() => {
                        if !relevant(&event) {
                            continue;
                        }
                        debounce(&mut events).await;
                        self.reload("file change").await;
                        // A directory replaced as a whole (rm + copy, or a
                        // mount swapped) loses its watch: watch it again.
                        if let Some(w) = watcher.as_mut() {
                            arm(w, &dirs, true);
                        }
                    }
                }
            }
            drop(watcher);
        })
    }
}

/// (Re)watches every directory, non-recursively (`policies/tests/` is not policy).
fn arm(watcher: &mut notify::RecommendedWatcher, dirs: &[PathBuf], again: bool) {
    for dir in dirs {
        if again {
            let _ = watcher.unwatch(dir);
        }
        if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch a policy directory; reload with SIGHUP");
        }
    }
}

/// A change that may alter what loads: anything but reads.
fn relevant(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(e) => !matches!(e.kind, notify::EventKind::Access(_)),
        Err(e) => {
            tracing::warn!(error = %e, "policy directory watch error");
            false
        }
    }
}

/// Waits until the events stop for [`QUIET`], at most [`MAX_DEBOUNCE`].
async fn debounce(events: &mut mpsc::UnboundedReceiver<notify::Result<notify::Event>>) {
    let deadline = tokio::time::Instant::now() + MAX_DEBOUNCE;
    loop {
        let until = (tokio::time::Instant::now() + QUIET).min(deadline);
        match tokio::time::timeout_at(until, events.recv()).await {
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}
