//! Identity assertions the domain store has accepted, each accepted once: a
//! captured request replayed within the assertion's lifetime is refused.
//! Every store process remembers what it accepted; on PostgreSQL the table
//! `seen_assertions` (migration 0014) also shares it with every other store
//! process on the database. SQLite is one machine: the process suffices.

use super::{Backend, Store, StoreResult};
use std::time::Duration;

/// What a store process has accepted.
#[derive(Clone, Debug)]
pub struct SeenAssertions {
    /// Each for the lifetime of an assertion, by the SHA-256 of its header
    /// (32 bytes: at full load this holds every assertion of the last 35 s).
    /// No capacity bound: an entry evicted before its assertion expires
    /// could be replayed.
    local: moka::sync::Cache<[u8; 32], ()>,
    /// PostgreSQL: shared by every store process.
    shared: Option<Box<Store>>,
}

impl SeenAssertions {
    /// For a store on `store`'s database; `lifetime` is the longest an
    /// assertion lives.
    pub fn over(store: &Store, lifetime: Duration) -> SeenAssertions {
        SeenAssertions {
            local: moka::sync::Cache::builder()
                .time_to_live(lifetime + Duration::from_secs(5))
                .build(),
            shared: (store.backend() == Backend::Postgres).then(|| Box::new(store.clone())),
        }
    }

    /// Records the assertion `digest`, valid until `expires_at` (Unix
    /// seconds): true the first time, false ever after.
    pub async fn first_use(
        &self,
        digest: [u8; 32],
        expires_at: i64,
        now: i64,
    ) -> StoreResult<bool> {
        if !self.local.entry(digest).or_insert(()).is_fresh() {
            return Ok(false);
        }
        let Some(store) = &self.shared else {
            return Ok(true);
        };
        // Now and then (one call in 256), forget the expired ones; best
        // effort: a failure here only leaves rows for the next sweep.
        if rand::random::<u8>() == 0 {
            let _ = sqlx::query("DELETE FROM seen_assertions WHERE expires_at < $1")
                .bind(now)
                .execute(store.pool())
                .await;
        }
        let inserted = sqlx::query(
            "INSERT INTO seen_assertions (digest, expires_at) VALUES ($1, $2)
             ON CONFLICT (digest) DO NOTHING",
        )
        .bind(hex::encode(digest))
        .bind(expires_at)
        .execute(store.pool())
        .await;
        match inserted {
            Ok(done) => Ok(done.rows_affected() == 1),
            // A read-only database (a standby after failover) takes no
            // record: this process's stands alone, reads go on, and every
            // write fails on its own.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("25006") => Ok(true),
            Err(e) => Err(e.into()),
        }
    }
}
