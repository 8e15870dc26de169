//! The caller's own row (operator or customer), read by authentication on
//! every request. R12 wants a disabled operator refused at once, so a cached
//! row is used only while the gateway would hear of a change to it:
//!
//! - PostgreSQL: while the change feed (LISTEN/NOTIFY, `sessions::changes`)
//!   is connected; each notification drops the changed row. While it is
//!   down, every request reads.
//! - SQLite file: every request first compares the database's WAL index
//!   header (its change counter moves on every commit, by any process; the
//!   layout is SQLite's documented WAL format) and the files' sizes and
//!   modification times with what it saw last; any difference drops every
//!   cached principal.
//! - Otherwise (an in-memory database): every request reads.
//!
//! Reading the row costs a round trip to the database on the request path
//! (for SQLite, two thread hand-offs); it was the largest single cost in the
//! BENCHMARKS.md profile.

use crate::model;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// An authenticated principal's row.
#[derive(Clone, Debug)]
pub enum PrincipalRow {
    Operator(model::Operator),
    Customer(model::Customer),
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
                if probe.changed() {
                    on_change();
                }
                true
            }
        }
    }
}

/// What a SQLite database's files looked like: the WAL index header and the
/// size and modification time of the database and WAL files.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
struct Snapshot {
    wal_index_header: Option<[u8; WAL_INDEX_HEADER]>,
    files: [Option<(u64, SystemTime)>; 2],
}

/// The first copy of the WAL index header (`WalIndexHdr`, 48 bytes) at the
/// start of `<db>-shm`; `iChange` in it counts transactions.
const WAL_INDEX_HEADER: usize = 48;

#[derive(Debug)]
pub(super) struct FileProbe {
    db: PathBuf,
    wal: PathBuf,
    shm: PathBuf,
    seen: Mutex<Snapshot>,
}

impl FileProbe {
    pub fn new(db: &Path) -> FileProbe {
        let with_suffix = |suffix: &str| {
            let mut name = db.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        let probe = FileProbe {
            db: db.to_owned(),
            wal: with_suffix("-wal"),
            shm: with_suffix("-shm"),
            seen: Mutex::new(Snapshot::default()),
        };
        *probe.seen.lock().unwrap_or_else(|p| p.into_inner()) = probe.snapshot();
        probe
    }

    /// Whether anything changed since the last call (or creation).
    pub fn changed(&self) -> bool {
        let now = self.snapshot();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == now {
            return false;
        }
        *seen = now;
        true
    }

    fn snapshot(&self) -> Snapshot {
        let file = |path: &Path| {
            std::fs::metadata(path)
                .ok()
                .and_then(|m| Some((m.len(), m.modified().ok()?)))
        };
        Snapshot {
            wal_index_header: read_header(&self.shm),
            files: [file(&self.db), file(&self.wal)],
        }
    }
}

fn read_header(path: &Path) -> Option<[u8; WAL_INDEX_HEADER]> {
    use std::io::Read;
    let mut header = [0u8; WAL_INDEX_HEADER];
    File::open(path).ok()?.read_exact(&mut header).ok()?;
    Some(header)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        pool.close().await;
    }
}
