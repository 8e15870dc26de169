//! A gateway in a fleet: with `--policy-source database` it serves the
//! latest live publication (`policy publish`), and with either source it
//! reports what it serves to `policy_gateways` (`policy fleet`, the
//! console's Fleet view, `pgw_policy_publication`).
//!
//! A publication is written to a directory of this process and loaded by
//! the same reloader as files are: parsed, validated, proved against the
//! invariants (the gateway's own `--invariants`, when given, instead of the
//! stored ones), and swapped in only when proved; a refused publication
//! leaves the last good set serving and is reported as the gateway's
//! problem. A publication is heard on PostgreSQL through LISTEN (channel
//! `pgw_policies`, migration 0019's trigger), on SQLite through the WAL
//! probe, and on both at every heartbeat, in case a notification was lost.

use super::publish::{host_name, SetDirs};
use super::reload::{self, Outcome, PolicyReloader, Serving as SetServing, SetName};
use crate::store::notifications::{self, Heard};
use crate::store::publications::{GatewayReport, Publication};
use crate::store::{Backend, Store};
use crate::time::{self, Timestamp};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// The PostgreSQL channel a publication is announced on.
pub const CHANNEL: &str = "pgw_policies";
/// How often the SQLite WAL probe is read (two system calls).
const PROBE_EVERY: Duration = Duration::from_millis(50);

/// What this gateway serves, as it reports it.
#[derive(Debug)]
struct Served {
    seq: Option<i64>,
    problem: Option<String>,
    /// The publication refused last: not tried again until another comes.
    refused: Option<i64>,
    /// The shadow publication compared (or refused: tried once).
    shadow_seq: Option<i64>,
}

/// One gateway of the fleet.
pub struct FleetMember {
    store: Store,
    database_url: String,
    pub instance: String,
    host: String,
    started_at: Timestamp,
    /// Database source: where publications are written (removed at exit).
    publications: Option<tempfile::TempDir>,
    serving: Mutex<Served>,
}

impl FleetMember {
    /// A gateway serving files.
    pub fn serving_files(
        store: Store,
        database_url: &str,
        instance: Option<String>,
    ) -> FleetMember {
        FleetMember::new(store, database_url, instance, None, None)
    }

    fn new(
        store: Store,
        database_url: &str,
        instance: Option<String>,
        publications: Option<tempfile::TempDir>,
        seq: Option<i64>,
    ) -> FleetMember {
        let host = host_name();
        let instance = instance
            .unwrap_or_else(|| format!("{host}-{}", hex::encode(rand::random::<[u8; 3]>())));
        FleetMember {
            store,
            database_url: database_url.to_owned(),
            instance,
            host,
            started_at: time::now(),
            publications,
            serving: Mutex::new(Served {
                seq,
                problem: None,
                refused: None,
                shadow_seq: None,
            }),
        }
    }

    /// A gateway serving the live publication: writes it to disk and returns
    /// where, for the start-up load, with the shadow publication's files if
    /// there is one. Nothing published: an error (a gateway has nothing to
    /// decide with, so it does not start).
    pub async fn serving_database(
        store: Store,
        database_url: &str,
        instance: Option<String>,
    ) -> anyhow::Result<(FleetMember, SetDirs, Option<SetDirs>)> {
        let publication = store.live_publication().await?.with_context(|| {
            "nothing is published in the database: publish a policy set first \
             (partner-gateway policy publish --database-url URL)"
        })?;
        let shadow = store.shadow_publication().await?;
        let root = tempfile::Builder::new()
            .prefix("partner-gateway-policies-")
            .tempdir()?;
        let dirs = write_linked(root.path(), &publication, LIVE)?;
        let shadow_dirs = match &shadow {
            Some(shadow) => Some(write_linked(root.path(), shadow, SHADOW)?),
            None => None,
        };
        tracing::info!(
            seq = publication.seq,
            version = %publication.new.version,
            shadow = shadow.as_ref().map(|s| s.seq),
            "serving the live policy publication"
        );
        let member = FleetMember::new(
            store,
            database_url,
            instance,
            Some(root),
            Some(publication.seq),
        );
        member.serving().shadow_seq = shadow.map(|s| s.seq);
        Ok((member, dirs, shadow_dirs))
    }

    fn serving(&self) -> std::sync::MutexGuard<'_, Served> {
        self.serving.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs until `shutdown`: follows the publications (database source)
    /// and reports every `heartbeat` (when it looks for a publication whose
    /// notification was missed, too).
    ///
    /// The first report is made before this returns: a gateway that is up
    /// is in the fleet status.
    pub async fn start(
        self: Arc<Self>,
        reloader: Arc<PolicyReloader>,
        heartbeat: Duration,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, mut published) = mpsc::channel::<()>(1);
        if self.publications.is_some() {
            match self.store.backend() {
                Backend::Postgres => listen(self.database_url.clone(), tx),
                Backend::Sqlite => {
                    if let Some(file) = self.store.sqlite_file() {
                        probe(file.to_owned(), tx);
                    }
                }
            }
        }
        // Listening already: a publication made from now on is heard.
        self.follow(&reloader).await;
        self.report(&reloader).await;
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let mut heartbeat = tokio::time::interval(heartbeat);
            // The first tick is at once: that report was just made.
            heartbeat.tick().await;
            loop {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = heartbeat.tick() => {}
                    Some(()) = published.recv() => {}
                }
                self.follow(&reloader).await;
                self.report(&reloader).await;
            }
        })
    }

    /// Serves the latest live publication, and compares the shadow one, if
    /// they are not yet.
    async fn follow(&self, reloader: &PolicyReloader) {
        let Some(root) = &self.publications else {
            return;
        };
        self.follow_live(reloader, root.path()).await;
        self.follow_shadow(reloader, root.path()).await;
    }

    async fn follow_shadow(&self, reloader: &PolicyReloader, root: &Path) {
        let Some(seq) = read(self.store.shadow_publication_seq().await) else {
            return;
        };
        if self.serving().shadow_seq == seq {
            return;
        }
        let publication = match seq {
            None => None,
            Some(_) => match read(self.store.shadow_publication().await) {
                Some(p) => p,
                None => return,
            },
        };
        let Some(publication) = publication else {
            reloader.set_shadow(None).await;
            tracing::info!("the shadow publication ended: no shadow set is compared");
            self.serving().shadow_seq = None;
            return;
        };
        // A shadow set decides nothing: it is compared even when an
        // invariant is not proved, which `/readyz` and the metrics show.
        let loaded = match write_linked(root, &publication, SHADOW) {
            Ok(dirs) => reload::checked_set(
                &dirs.policies,
                &dirs.schema,
                &dirs.invariants,
                reloader.verify_timeout(),
            )
            .await
            .map(|(engine, verification)| SetServing {
                engine: Arc::new(arc_swap::ArcSwap::from_pointee(engine)),
                invariants_dir: dirs.invariants,
                verification,
            }),
            Err(e) => Err(reload::Refusal {
                issues: vec![e.to_string()],
                ..Default::default()
            }),
        };
        match loaded {
            Ok(serving) => {
                reloader.set_shadow(Some(serving)).await;
                tracing::info!(seq = publication.seq, version = %publication.new.version, "comparing the shadow publication with live traffic");
            }
            Err(refusal) => {
                tracing::error!(
                    seq = publication.seq,
                    "the shadow publication does not load: {refusal}"
                );
            }
        }
        self.serving().shadow_seq = Some(publication.seq);
    }

    async fn follow_live(&self, reloader: &PolicyReloader, root: &Path) {
        // The number first (a probe fires on every commit): the files
        // only when a publication is new.
        let Some(Some(seq)) = read(self.store.live_publication_seq().await) else {
            return;
        };
        {
            let serving = self.serving();
            if serving.seq == Some(seq) || serving.refused == Some(seq) {
                return;
            }
        }
        let Some(Some(latest)) = read(self.store.live_publication().await) else {
            return;
        };
        if let Err(e) = write_linked(root, &latest, LIVE) {
            tracing::error!(seq = latest.seq, error = %e, "cannot write the policy publication");
            self.serving().problem = Some(format!("publication {}: {e}", latest.seq));
            return;
        }
        let cause = format!("publication {}", latest.seq);
        let outcomes = reloader.reload(&cause).await;
        let live = outcomes.iter().find(|(set, _)| *set == SetName::Live);
        let mut serving = self.serving();
        match live.map(|(_, outcome)| outcome) {
            // Not read (its files still changing): read again at the next
            // heartbeat or probe.
            Some(Outcome::Unsettled) => {
                tracing::info!(
                    seq = latest.seq,
                    "policy publication written; its files still settling"
                );
            }
            Some(Outcome::Failed(refusal)) => {
                serving.problem = Some(format!("publication {} refused: {refusal}", latest.seq));
                serving.refused = Some(latest.seq);
            }
            _ => {
                serving.seq = Some(latest.seq);
                serving.problem = None;
                serving.refused = None;
                tracing::info!(seq = latest.seq, version = %latest.new.version, "policy publication serving");
            }
        }
    }

    /// Records what this gateway serves (and sets its metric).
    async fn report(&self, reloader: &PolicyReloader) {
        let now = time::now();
        let report = {
            let serving = self.serving();
            GatewayReport {
                instance: self.instance.clone(),
                host: self.host.clone(),
                version: reloader.live.engine.load().version().to_owned(),
                seq: serving.seq,
                since: reloader.live.loaded_at(),
                proved: reloader.live.proved(),
                shadow_version: reloader
                    .shadow()
                    .map(|s| s.engine.load().version().to_owned()),
                shadow_flips: i64::try_from(reloader.shadow_slot().flips()).unwrap_or(i64::MAX),
                problem: serving.problem.clone(),
                started_at: self.started_at,
                last_seen: now,
            }
        };
        crate::metrics::policy_publication(&self.instance, report.seq);
        if let Err(e) = self.store.report_gateway(&report).await {
            tracing::warn!(error = %e, "cannot report this gateway to the fleet status");
        }
    }
}

/// What the database answered; `None`, logged, when it could not be read
/// (the set serving stays, and the next heartbeat asks again).
fn read<T>(answer: crate::store::StoreResult<T>) -> Option<T> {
    answer
        .map_err(|e| tracing::warn!(error = %e, "cannot read the policy publications"))
        .ok()
}

/// The links under a gateway's publications directory to the set serving
/// and to the shadow set.
const LIVE: &str = "live";
const SHADOW: &str = "shadow";

/// Writes `publication` under `root/<seq>` and points `root/<link>` at it
/// (a symbolic link replaced in one rename, so a load reads one set whole).
fn write_linked(root: &Path, publication: &Publication, link: &str) -> std::io::Result<SetDirs> {
    let dir = root.join(publication.seq.to_string());
    if !dir.exists() {
        let partial = root.join(format!("{}.partial", publication.seq));
        let _ = std::fs::remove_dir_all(&partial);
        SetDirs::write(&partial, &publication.new.files)?;
        std::fs::rename(&partial, &dir)?;
    }
    let (linked, next) = (root.join(link), root.join(format!("{link}.next")));
    let _ = std::fs::remove_file(&next);
    std::os::unix::fs::symlink(&dir, &next)?;
    std::fs::rename(&next, &linked)?;
    Ok(SetDirs::under(&linked))
}

/// PostgreSQL: a message on `tx` for every publication, and on listening
/// (again: one may have been missed meanwhile).
fn listen(database_url: String, tx: mpsc::Sender<()>) {
    notifications::listen(database_url, CHANNEL, "policy publication", move |heard| {
        if !matches!(heard, Heard::Lost) {
            let _ = tx.try_send(());
        }
        !tx.is_closed()
    });
}

/// SQLite: a message on `tx` after every commit to the database file.
fn probe(file: PathBuf, tx: mpsc::Sender<()>) {
    tokio::spawn(async move {
        let probe = crate::entities::FileProbe::new(&file);
        let mut every = tokio::time::interval(PROBE_EVERY);
        while !tx.is_closed() {
            every.tick().await;
            if probe.changed() {
                let _ = tx.try_send(());
            }
        }
    });
}
