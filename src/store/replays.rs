//! Identity assertions the domain store has accepted, each accepted once: a
//! captured request replayed within the assertion's lifetime is refused.
//! On PostgreSQL every store process shares the table `seen_assertions`
//! (migration 0014); on SQLite, one machine, the process remembers them.

use super::{Backend, Store, StoreResult};
use std::time::Duration;

/// What a store process has accepted.
#[derive(Clone, Debug)]
pub enum SeenAssertions {
    /// Remembered in this process, each for the lifetime of an assertion.
    InProcess(moka::sync::Cache<String, ()>),
    /// In the database, shared by every store process.
    Shared(Box<Store>),
}

impl SeenAssertions {
    /// For a store on `store`'s database; `lifetime` is the longest an
    /// assertion lives.
    pub fn over(store: &Store, lifetime: Duration) -> SeenAssertions {
        match store.backend() {
            Backend::Postgres => SeenAssertions::Shared(Box::new(store.clone())),
            // No capacity bound: an entry evicted before it expires could
            // be replayed.
            Backend::Sqlite => SeenAssertions::InProcess(
                moka::sync::Cache::builder()
                    .time_to_live(lifetime + Duration::from_secs(5))
                    .build(),
            ),
        }
    }

    /// Records the assertion `digest`, valid until `expires_at` (Unix
    /// seconds): true the first time, false ever after.
    pub async fn first_use(&self, digest: String, expires_at: i64, now: i64) -> StoreResult<bool> {
        match self {
            SeenAssertions::InProcess(seen) => Ok(seen.entry(digest).or_insert(()).is_fresh()),
            SeenAssertions::Shared(store) => {
                // Now and then (one call in 256), forget the expired ones.
                if rand::random::<u8>() == 0 {
                    sqlx::query("DELETE FROM seen_assertions WHERE expires_at < $1")
                        .bind(now)
                        .execute(store.pool())
                        .await?;
                }
                let inserted = sqlx::query(
                    "INSERT INTO seen_assertions (digest, expires_at) VALUES ($1, $2)
                     ON CONFLICT (digest) DO NOTHING",
                )
                .bind(digest)
                .bind(expires_at)
                .execute(store.pool())
                .await?;
                Ok(inserted.rows_affected() == 1)
            }
        }
    }
}
