//! Hot reload of the policy sets while traffic flows.
//!
//! The policy and schema directories (and the shadow directory, if any) are
//! watched (`notify`); changes are debounced (a burst of writes is one
//! reload) and SIGHUP reloads too. A reload parses and strictly validates
//! first ([`PolicyEngine::load`]); only a valid set is swapped in, atomically,
//! into the `ArcSwap` the gateway reads once per request, so a request in
//! flight finishes on the set it started with. An invalid change keeps the
//! last good set serving, logs every problem with file and line, and shows in
//! `/readyz` and the metrics until the files load again. The live and the
//! shadow sets reload independently: a broken shadow set never touches the
//! live one.

use super::{PolicyEngine, PolicyLoadError};
use crate::time::{self, Timestamp};
use arc_swap::ArcSwap;
use notify::Watcher as _;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A burst of file events ends after this much quiet...
const QUIET: Duration = Duration::from_millis(200);
/// ...or after this long, whichever comes first (a file rewritten in a loop
/// must not postpone the reload forever).
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
    /// The files load and are the version already serving.
    Unchanged,
    /// The files do not load; the last good set keeps serving.
    Failed(PolicyLoadError),
}

impl Outcome {
    fn result(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// The last reload failure, as `/readyz` shows it.
#[derive(Clone, Debug)]
struct ReloadFailure {
    at: Timestamp,
    issues: Vec<String>,
}

#[derive(Debug)]
struct SetState {
    /// When the serving version was swapped in.
    loaded_at: Timestamp,
    last_attempt: Option<(Timestamp, &'static str)>,
    /// Present while the files on disk do not load.
    failure: Option<ReloadFailure>,
    applied: u64,
    failed: u64,
}

/// One watched policy set and the engine that serves it.
pub struct WatchedSet {
    pub name: SetName,
    pub policies_dir: PathBuf,
    pub schema_dir: PathBuf,
    pub engine: Arc<ArcSwap<PolicyEngine>>,
    state: Mutex<SetState>,
}

impl WatchedSet {
    /// A set serving `engine`, loaded from `engine`'s directories.
    pub fn new(name: SetName, engine: Arc<ArcSwap<PolicyEngine>>) -> WatchedSet {
        let current = engine.load();
        crate::metrics::policy_set_started(name.as_str(), current.version());
        WatchedSet {
            name,
            policies_dir: current.policies_dir().to_owned(),
            schema_dir: current.schema_dir().to_owned(),
            engine: engine.clone(),
            state: Mutex::new(SetState {
                loaded_at: time::now(),
                last_attempt: None,
                failure: None,
                applied: 0,
                failed: 0,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SetState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn reload(&self, cause: &str) -> Outcome {
        let (policies, schema) = (self.policies_dir.clone(), self.schema_dir.clone());
        // File reads and validation are blocking work: off the async workers.
        let loaded = tokio::task::spawn_blocking(move || PolicyEngine::load(&policies, &schema))
            .await
            .unwrap_or_else(|e| {
                Err(PolicyLoadError {
                    issues: vec![super::LoadIssue {
                        file: self.policies_dir.clone(),
                        line: None,
                        message: format!("the policy loader failed: {e}"),
                    }],
                })
            });
        let set = self.name.as_str();
        let now = time::now();
        let outcome = match loaded {
            Ok(engine) => {
                let current = self.engine.load();
                if engine.version() == current.version() {
                    Outcome::Unchanged
                } else {
                    let (from, to) = (current.version().to_owned(), engine.version().to_owned());
                    let count = engine.policies().len();
                    self.engine.store(Arc::new(engine));
                    tracing::info!(set, cause, from = %from, to = %to, policies = count, "policy set reloaded");
                    crate::metrics::policy_version(set, Some(&from), &to);
                    Outcome::Applied { from, to }
                }
            }
            Err(e) => {
                for issue in &e.issues {
                    tracing::error!(set, cause, "policy reload: {issue}");
                }
                tracing::error!(
                    set,
                    cause,
                    problems = e.issues.len(),
                    serving = %self.engine.load().version(),
                    "policy reload refused; the last good policy set keeps serving"
                );
                Outcome::Failed(e)
            }
        };
        crate::metrics::policy_reload(set, outcome.result());
        let mut state = self.state();
        state.last_attempt = Some((now, outcome.result()));
        match &outcome {
            Outcome::Applied { .. } => {
                state.loaded_at = now;
                state.applied += 1;
                state.failure = None;
            }
            Outcome::Unchanged => state.failure = None,
            Outcome::Failed(e) => {
                state.failed += 1;
                state.failure = Some(ReloadFailure {
                    at: now,
                    issues: e.issues.iter().map(|i| i.to_string()).collect(),
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
            "last_reload": state.last_attempt.map(|(at, result)| json!({"at": time::format(at), "result": result})),
            "last_reload_error": state.failure.as_ref().map(|f| json!({"at": time::format(f.at), "issues": f.issues})),
            "reloads_applied": state.applied,
            "reloads_failed": state.failed,
        })
    }

    /// Whether the files on disk failed to load at the last attempt.
    pub fn failing(&self) -> bool {
        self.state().failure.is_some()
    }
}

/// The live set, the optional shadow set, and the triggers that reload them.
pub struct PolicyReloader {
    pub live: WatchedSet,
    pub shadow: Option<WatchedSet>,
    /// One reload at a time: two overlapping loads could otherwise swap in
    /// an older read after a newer one.
    serial: tokio::sync::Mutex<()>,
}

impl PolicyReloader {
    pub fn new(
        live: Arc<ArcSwap<PolicyEngine>>,
        shadow: Option<Arc<ArcSwap<PolicyEngine>>>,
    ) -> PolicyReloader {
        PolicyReloader {
            live: WatchedSet::new(SetName::Live, live),
            shadow: shadow.map(|s| WatchedSet::new(SetName::Shadow, s)),
            serial: tokio::sync::Mutex::new(()),
        }
    }

    fn sets(&self) -> impl Iterator<Item = &WatchedSet> {
        std::iter::once(&self.live).chain(self.shadow.as_ref())
    }

    /// Reloads every set now; `cause` is logged (`SIGHUP`, `file change`).
    pub async fn reload(&self, cause: &str) -> Vec<(SetName, Outcome)> {
        let _one = self.serial.lock().await;
        let mut outcomes = Vec::new();
        for set in self.sets() {
            outcomes.push((set.name, set.reload(cause).await));
        }
        outcomes
    }

    /// The directories to watch, each once.
    fn directories(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = Vec::new();
        for set in self.sets() {
            for dir in [&set.policies_dir, &set.schema_dir] {
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
        let mut hangup = hangup_signal();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    Some(()) = next_hangup(&mut hangup) => {
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

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = Option<()>;

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {
    None
}

/// The next SIGHUP; pending forever without a handler.
#[cfg(unix)]
async fn next_hangup(hangup: &mut Hangup) -> Option<()> {
    match hangup {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}
