//! The store: one sqlx pool over SQLite (the embedded default) or PostgreSQL,
//! chosen by the database URL. Queries are written once, in the SQL both
//! dialects share (`$1` placeholders, `ON CONFLICT`, integer cents, RFC 3339
//! text times); only the migrations come in two dialect files.

pub mod attributes;
pub mod client_tokens;
mod credentials;
pub mod domain;
pub mod filter_sql;
pub mod limits;
mod lists;
mod migrations;
pub mod notifications;
pub mod publications;
pub mod query;
mod read;
pub mod replays;
pub(crate) mod row;
pub mod seed;
pub mod sessions;

use crate::crypto::SecretCipher;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::path::Path;
use std::time::Duration;

pub use credentials::NewOperator;
pub use read::CredentialRecord;

/// The default database: a SQLite file under `data/`, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/partner-gateway.db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL {0:?}: use sqlite://PATH or postgres://...")]
    UnsupportedUrl(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A lifecycle command named something that does not exist.
    #[error("no such {0}")]
    NotFound(String),
    /// A lifecycle command that would break a rule of the data.
    #[error("{0}")]
    Refused(String),
}

impl From<crate::model::UnknownValue> for StoreError {
    fn from(e: crate::model::UnknownValue) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

impl From<chrono::ParseError> for StoreError {
    fn from(e: chrono::ParseError) -> Self {
        StoreError::Corrupt(format!("bad stored time: {e}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

impl StoreError {
    /// Whether the database cannot be reached or written now (the request
    /// may succeed later), rather than that the request met a bug.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(e) if database_unavailable(e))
    }
}

/// Whether `e` says the database cannot be reached or written now (the
/// request may succeed later), rather than that the request met a bug.
fn database_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // PostgreSQL (SQLSTATE, 5 characters): connection exceptions,
            // out of resources, operator intervention (shutdown), and a
            // read-only transaction (a standby after failover, or
            // `default_transaction_read_only`).
            let postgres = code.len() == 5
                && (code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
                    || code == "25006");
            // SQLite (a number, the primary code in its low byte): BUSY,
            // LOCKED, READONLY, IOERR, FULL, CANTOPEN.
            let sqlite = code.len() < 5
                && code
                    .parse::<i32>()
                    .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13 | 14));
            postgres || sqlite
        }
        _ => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> StoreResult<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(url.to_owned()))
        }
    }
}

/// Connections of the pool a process serving requests opens.
const POOL_CONNECTIONS: u32 = 16;

/// SQLite's page cache per connection of the gateway's pool, in KiB
/// ([`Store::connect_for_gateway`]).
pub const GATEWAY_SQLITE_CACHE_KIB: u32 = 256;

/// Connections of the gateway's pool on SQLite: twice the processors, at
/// least 4 and at most [`POOL_CONNECTIONS`]. Each SQLite connection is a
/// thread of its own that does the query's work on the processor (sqlx
/// runs it there), so connections beyond the processors only queue on
/// them, and each thread's allocations keep a malloc arena of their own.
/// On 2 processors the soak measured 4 connections against 16: 62 MB
/// resident against 69 MB, and more requests a second, not fewer
/// (BENCHMARKS.md, *Memory*). PostgreSQL's work is the server's: its pool
/// keeps [`POOL_CONNECTIONS`].
fn gateway_sqlite_connections() -> u32 {
    let processors = std::thread::available_parallelism().map_or(1, |n| n.get());
    (2 * processors as u32).clamp(4, POOL_CONNECTIONS)
}

/// A handle on the database; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    cipher: SecretCipher,
    /// The database file, for SQLite on disk.
    sqlite_file: Option<std::path::PathBuf>,
}

impl Store {
    /// Connects, creating a SQLite file (and its directory) when missing, and
    /// applies the migrations.
    pub async fn connect(url: &str, cipher: SecretCipher) -> StoreResult<Store> {
        Self::connect_with(url, cipher, POOL_CONNECTIONS).await
    }

    pub async fn connect_with(
        url: &str,
        cipher: SecretCipher,
        max_connections: u32,
    ) -> StoreResult<Store> {
        Self::open(url, cipher, max_connections, None).await
    }

    /// The gateway's connection: its reads are point lookups by key, most
    /// of them spared by its entity cache, so SQLite's page cache is held to
    /// [`GATEWAY_SQLITE_CACHE_KIB`] per pooled connection instead of 2 MiB.
    /// That took 35 MB off the soak's resident memory (BENCHMARKS.md,
    /// *Memory*); the pages stay in the kernel's cache. On SQLite the pool
    /// is also smaller ([`gateway_sqlite_connections`]).
    pub async fn connect_for_gateway(url: &str, cipher: SecretCipher) -> StoreResult<Store> {
        let connections = match Backend::of_url(url)? {
            Backend::Sqlite => gateway_sqlite_connections(),
            Backend::Postgres => POOL_CONNECTIONS,
        };
        Self::open(url, cipher, connections, Some(GATEWAY_SQLITE_CACHE_KIB)).await
    }

    async fn open(
        url: &str,
        cipher: SecretCipher,
        max_connections: u32,
        sqlite_cache_kib: Option<u32>,
    ) -> StoreResult<Store> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let url = match backend {
            Backend::Sqlite => prepare_sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let sqlite_file = match backend {
            Backend::Sqlite => sqlite_file_of(&url),
            Backend::Postgres => None,
        };
        let writable_file = sqlite_file.clone();
        let pool = AnyPoolOptions::new()
            // No ping before every checkout: it doubled the round trips of each
            // read on the request path (BENCHMARKS.md profile). A dead
            // connection fails its query instead, which the gateway answers
            // with 503 (fail closed) and the pool replaces.
            .test_before_acquire(false)
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |conn, _meta| {
                let writable_file = writable_file.clone();
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL lets readers (the gateway) run beside the writer (the domain store).
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA busy_timeout = 5000")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                        if let Some(kib) = sqlite_cache_kib {
                            // Negative: a size in KiB rather than in pages.
                            sqlx::query(&format!("PRAGMA cache_size = -{kib}"))
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    // SQLite opens a file it cannot write read-only, and the
                    // connection stays so: refused here, so that once the
                    // file is writable again the pool opens writable ones
                    // instead of failing writes on it for good. Asked with
                    // access(2), which opens nothing: closing a descriptor of
                    // the file would drop SQLite's POSIX locks on it.
                    if let Some(file) = &writable_file {
                        rustix::fs::access(file, rustix::fs::Access::WRITE_OK).map_err(|e| {
                            sqlx::Error::Configuration(
                                format!(
                                    "the database file {} is not writable: {e}",
                                    file.display()
                                )
                                .into(),
                            )
                        })?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        let files = match backend {
            Backend::Sqlite => migrations::SQLITE,
            Backend::Postgres => migrations::POSTGRES,
        };
        migrations::migrator(files).await?.run(&pool).await?;
        Ok(Store {
            pool,
            backend,
            cipher,
            sqlite_file,
        })
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite database file; `None` for PostgreSQL and in-memory SQLite.
    pub fn sqlite_file(&self) -> Option<&std::path::Path> {
        self.sqlite_file.as_deref()
    }

    pub fn cipher(&self) -> &SecretCipher {
        &self.cipher
    }

    /// Whether the database answers (for readiness checks).
    pub async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Whether the database can be read and written, for `/readyz`. A SQLite
    /// file deleted or made read-only under a running process stays open
    /// and writable through its descriptors, so its path is checked too.
    pub async fn check_read_write(&self) -> StoreResult<()> {
        if let Some(path) = &self.sqlite_file {
            let meta = std::fs::metadata(path).map_err(|e| {
                StoreError::Corrupt(format!("the database file {} is gone: {e}", path.display()))
            })?;
            if meta.permissions().readonly() {
                return Err(StoreError::Corrupt(format!(
                    "the database file {} is read-only",
                    path.display()
                )));
            }
        }
        sqlx::query("SELECT id FROM partners LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        // A write that changes nothing, rolled back: refused by a read-only
        // database (a PostgreSQL standby, a read-only transaction default).
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE partners SET id = id WHERE 1 = 0")
            .execute(&mut *tx)
            .await?;
        tx.rollback().await?;
        Ok(())
    }

    /// Row counts of the main tables, for summaries.
    pub async fn table_counts(&self) -> StoreResult<Vec<(&'static str, i64)>> {
        let mut out = Vec::new();
        for table in COUNTED_TABLES {
            let row: AnyRow = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
                .fetch_one(&self.pool)
                .await?;
            out.push((*table, row.try_get::<i64, _>("n")?));
        }
        Ok(out)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Tables counted in summaries and compared by the idempotency tests.
pub const COUNTED_TABLES: &[&str] = &[
    "partners",
    "operators",
    "credentials",
    "customers",
    "customer_authorizations",
    "budgets",
    "budget_records",
    "orders",
    "order_line_items",
    "price_adjustments",
    "resources",
    "coupons",
    "expenditures",
    "export_tasks",
    "activities",
    "partner_sessions",
];

/// `sqlite://data/x.db` → the same URL with `mode=rwc`, after creating `data/`.
fn prepare_sqlite_url(url: &str) -> StoreResult<String> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(dir) = Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Corrupt(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// The file of a `sqlite:` URL; `None` for an in-memory database.
fn sqlite_file_of(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let in_memory = path.is_empty() || path == ":memory:" || query.contains("mode=memory");
    (!in_memory).then(|| std::path::PathBuf::from(path))
}

/// The directory that holds a SQLite database file (and, by default, the
/// master key and development certificate); `data` for other databases.
pub fn data_dir_for(url: &str) -> std::path::PathBuf {
    if matches!(Backend::of_url(url), Ok(Backend::Sqlite)) {
        let rest = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:");
        let path = rest.split('?').next().unwrap_or_default();
        if let Some(dir) = Path::new(path).parent() {
            if !dir.as_os_str().is_empty() {
                return dir.to_path_buf();
            }
        }
    }
    std::path::PathBuf::from("data")
}
