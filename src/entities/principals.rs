//! The caller's own row (operator or customer) and its credential, read by
//! authentication on every request. R12 wants a disabled operator refused at once, so a cached
//! row is used only while the gateway would hear of a change to it:
//!
//! - PostgreSQL: while the change feed (LISTEN/NOTIFY, `sessions::changes`)
//!   is connected; each notification drops the changed row (credentials:
//!   `credentials:<access key>`, migration 0012). While it is
//!   down, every request reads.
//! - SQLite file: every request first compares the database's WAL index
//!   header with what it saw last (its change counter moves on every commit,
//!   by any process; the layout is SQLite's documented WAL format,
//!   <https://sqlite.org/walformat.html>); any difference drops every cached
//!   principal.
//! - Otherwise (an in-memory database): every request reads.
//!
//! Reading the row costs a round trip to the database on the request path
//! (for SQLite, two thread hand-offs); it was the largest single cost in the
//! BENCHMARKS.md profile.

use crate::model;
use arc_swap::ArcSwapOption;
use std::cell::Cell;
use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// An authenticated principal's row.
#[derive(Clone, Debug)]
pub enum PrincipalRow {
    Operator(model::Operator),
    Customer(model::Customer),
}

tokio::task_local! {
    /// Within [`as_one_request`]: whether the SQLite file was probed yet.
    static PROBED: Cell<bool>;
}

/// Runs `request` as one request: the SQLite file is probed at its first
/// lookup only, and its later lookups (the credential, the caller's row, the
/// slice's operators) use what that probe saw. The request sees the store
/// as of that moment, as if its lookups had all run then; a commit after
/// it is seen by the next request. Four probes per request were two system
/// calls each under a shared lock.
///
/// A plain function, not an `async fn`: one would hold `request` and the
/// scope's copy of it side by side, twice the request's state in every
/// connection's future.
pub fn as_one_request<F: Future>(request: F) -> impl Future<Output = F::Output> {
    PROBED.scope(Cell::new(false), request)
}

/// How the loader knows its cached principals are still current.
#[derive(Debug)]
pub(super) enum Freshness {
    /// No way to hear of changes: read every time.
    ReadEachTime,
    /// PostgreSQL's change feed; `true` while it is connected.
    ChangeFeed(AtomicBool),
    /// A SQLite database file, probed before each use.
    SqliteFile(FileProbe),
}

impl Freshness {
    /// Whether a cached row may be used now. `on_change` runs when the probe
    /// sees a change (it drops the cached rows).
    pub fn cache_usable(&self, on_change: impl FnOnce()) -> bool {
        match self {
            Freshness::ReadEachTime => false,
            Freshness::ChangeFeed(connected) => connected.load(Ordering::Acquire),
            Freshness::SqliteFile(probe) => {
                let probed = PROBED.try_with(|probed| probed.replace(true));
                if !probed.unwrap_or(false) && probe.changed() {
                    on_change();
                }
                true
            }
        }
    }
}

/// The first copy of the WAL index header (`WalIndexHdr`, 48 bytes) at the
/// start of `<db>-shm`; `iChange` in it counts transactions, and a writer
/// updates it as the last step of every commit.
const WAL_INDEX_HEADER: usize = 48;

/// Watches a SQLite database in WAL mode (the store always sets it) through
/// its WAL index: two system calls per check, no database round trip. They
/// run outside any lock: every request's first lookup probes, and a lock
/// held across them made the runtime's threads wait on each other.
#[derive(Debug)]
pub struct FileProbe {
    shm: PathBuf,
    file: ArcSwapOption<File>,
    /// The header the last probe saw. Held only to compare and replace it.
    header: Mutex<Option<[u8; WAL_INDEX_HEADER]>>,
}

impl FileProbe {
    pub fn new(db: &Path) -> FileProbe {
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let probe = FileProbe {
            shm: PathBuf::from(shm),
            file: ArcSwapOption::empty(),
            header: Mutex::new(None),
        };
        probe.changed();
        probe
    }

    /// Whether a transaction may have committed since the last call. When
    /// it cannot tell (no WAL index, a read error) it says yes, so cached
    /// rows are never trusted blindly. Probes that overlap may both say yes
    /// (a cache dropped once more than needed); one that reads a header
    /// after a commit never says no unless a probe that read it too said
    /// yes.
    pub fn changed(&self) -> bool {
        use std::os::unix::fs::{FileExt, MetadataExt};
        // SQLite deletes the index when the last connection closes and makes
        // a new one on the next open: an unlinked file would never change.
        let unlinked = |f: &File| f.metadata().map_or(true, |m| m.nlink() == 0);
        let mut file = self.file.load_full();
        if file.as_deref().is_none_or(unlinked) {
            file = File::open(&self.shm).ok().map(Arc::new);
            self.file.store(file.clone());
            *self.last_header() = None;
        }
        let mut header = [0u8; WAL_INDEX_HEADER];
        let read = file
            .as_deref()
            .is_some_and(|f| f.read_exact_at(&mut header, 0).is_ok());
        let mut last = self.last_header();
        if !read {
            self.file.store(None);
            *last = None;
            return true;
        }
        if *last == Some(header) {
            return false;
        }
        *last = Some(header);
        true
    }

    fn last_header(&self) -> std::sync::MutexGuard<'_, Option<[u8; WAL_INDEX_HEADER]>> {
        self.header.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scope adds a flag to the request's future, not a second copy of
    /// it: every connection holds one such future.
    #[test]
    fn one_request_is_not_twice_its_future() {
        let request = async {
            let state = [1u8; 4096];
            tokio::task::yield_now().await;
            state.len()
        };
        let request_size = std::mem::size_of_val(&request);
        assert!(std::mem::size_of_val(&as_one_request(request)) < request_size + 64);
    }

    /// A request probes at its first lookup only; the next request sees a
    /// commit made during the one before.
    #[tokio::test]
    async fn a_request_probes_once_and_the_next_one_sees_what_followed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.db");
        sqlx::any::install_default_drivers();
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        for sql in ["PRAGMA journal_mode = WAL", "CREATE TABLE t (v INTEGER)"] {
            sqlx::query(sql).execute(&pool).await.unwrap();
        }
        let commit = || sqlx::query("INSERT INTO t VALUES (1)").execute(&pool);
        let freshness = Freshness::SqliteFile(FileProbe::new(&path));
        let dropped = Cell::new(0);
        let look_up = || assert!(freshness.cache_usable(|| dropped.set(dropped.get() + 1)));

        commit().await.unwrap();
        as_one_request(async {
            look_up();
            assert_eq!(
                dropped.get(),
                1,
                "the first lookup sees the commit before the request"
            );
            commit().await.unwrap();
            look_up();
            assert_eq!(
                dropped.get(),
                1,
                "later lookups of the request do not probe"
            );
        })
        .await;
        as_one_request(async { look_up() }).await;
        assert_eq!(dropped.get(), 2, "the next request sees the commit");
        // Outside a request (the admin side, the CLI), every lookup probes.
        commit().await.unwrap();
        look_up();
        assert_eq!(dropped.get(), 3);
        pool.close().await;
    }

    #[tokio::test]
    async fn the_probe_sees_every_commit_of_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.db");
        let url = format!("sqlite://{}?mode=rwc", path.display());
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER)")
            .execute(&pool)
            .await
            .unwrap();
        let probe = FileProbe::new(&path);
        assert!(!probe.changed(), "nothing happened yet");
        for i in 0..50 {
            // Same-size rewrites within one clock tick: only the header tells.
            sqlx::query("INSERT INTO t VALUES ($1)")
                .bind(i)
                .execute(&pool)
                .await
                .unwrap();
            assert!(probe.changed(), "commit {i}");
            assert!(!probe.changed(), "no commit after {i}");
            if i % 10 == 0 {
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await
                    .unwrap();
                probe.changed();
            }
        }
        // The last connection closing deletes the index; a new one is made.
        pool.close().await;
        let pool = sqlx::AnyPool::connect(&url).await.unwrap();
        sqlx::query("INSERT INTO t VALUES (99)")
            .execute(&pool)
            .await
            .unwrap();
        assert!(probe.changed(), "commit after the index was made again");
        assert!(!probe.changed());
        pool.close().await;
    }
}
