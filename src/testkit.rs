//! Test support shared by the unit, integration and benchmark code: a fresh,
//! real database per test on SQLite (a temporary file) or PostgreSQL (a new
//! database on the server named by `PGW_TEST_DATABASE_URL`).

use crate::crypto::SecretCipher;
use crate::store::{Backend, Store};
use sqlx::Connection;

/// The variable naming a PostgreSQL server where tests may create databases,
/// e.g. `postgres://pgw:pgw@127.0.0.1:5432/postgres` (`.ci/run` sets it).
pub const POSTGRES_ENV: &str = "PGW_TEST_DATABASE_URL";

/// A throwaway database; dropped with the value (PostgreSQL: best effort).
pub struct TestDb {
    pub url: String,
    pub store: Store,
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
}

/// A fixed master key, so tests that reopen a database can unseal secrets.
pub fn test_cipher() -> SecretCipher {
    SecretCipher::from_bytes(&[42u8; 32]).expect("32-byte key")
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/test.db", dir.path().display());
        let store = Store::connect(&url, test_cipher())
            .await
            .expect("open SQLite");
        TestDb {
            url,
            store,
            backend: Backend::Sqlite,
            _dir: Some(dir),
        }
    }

    /// A new, empty PostgreSQL database. Panics with instructions when the
    /// server is not configured: the suite must run against both databases.
    pub async fn postgres() -> TestDb {
        let admin = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
            panic!("{POSTGRES_ENV} is not set: run the suite with `bash .ci/run`, which starts PostgreSQL, or set it to a server URL such as postgres://pgw:pgw@127.0.0.1:5432/postgres")
        });
        sqlx::any::install_default_drivers();
        let name = format!("pgw_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::AnyConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {POSTGRES_ENV}: {e}"));
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let url = replace_database(&admin, &name);
        let store = Store::connect(&url, test_cipher())
            .await
            .expect("open PostgreSQL");
        TestDb {
            url,
            store,
            backend: Backend::Postgres,
            _dir: None,
        }
    }

    /// Opens a second handle on the same database (as another process would).
    pub async fn reopen(&self) -> Store {
        Store::connect(&self.url, test_cipher())
            .await
            .expect("reopen")
    }
}

/// `postgres://u:p@h:5432/postgres?x=y` with the database name replaced.
pub fn replace_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// Runs one async test body against a fresh database of each backend, as two
/// named tests: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! test_both_backends {
    ($($name:ident => $body:ident;)+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = $crate::testkit::TestDb::new($crate::store::Backend::Sqlite).await;
                super::$body(&db).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let db = $crate::testkit::TestDb::new($crate::store::Backend::Postgres).await;
                super::$body(&db).await;
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            super::replace_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(
            super::replace_database("postgres://h", "x"),
            "postgres://h/x"
        );
    }
}
