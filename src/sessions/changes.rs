//! Cross-gateway invalidation on PostgreSQL: triggers (migration 0010)
//! `NOTIFY pgw_entities, '<table>:<id>'` on every change to partners,
//! operators, customers, authorizations and sessions (and, migration 0012,
//! `credentials:<access key>`; migration 0013, an order's or resource's
//! owner); each gateway LISTENs
//! and drops the cached entity at once, so a revocation made through one
//! gateway (or directly in the database) holds on every other within
//! milliseconds. SQLite has no such channel: there, the WAL probe of
//! `entities::principals` drops principals and credentials on any commit.

use crate::entities::EntityLoader;
use crate::refs::EntityRef;
use std::sync::Arc;
use std::time::Duration;

pub const CHANNEL: &str = "pgw_entities";

/// Maps a notification payload to the cached entity it concerns.
pub fn entity_of(payload: &str) -> Option<EntityRef> {
    let (table, id) = payload.split_once(':')?;
    let id = id.to_owned();
    Some(match table {
        "partners" => EntityRef::Partner(id.into()),
        "operators" => EntityRef::Operator(id.into()),
        "customers" => EntityRef::Customer(id.into()),
        "customer_authorizations" => EntityRef::Authorization(id.into()),
        "partner_sessions" => EntityRef::Session(id.into()),
        "orders" => EntityRef::Order(id.into()),
        "resources" => EntityRef::Resource(id.into()),
        _ => return None,
    })
}

/// Listens for changes until the process ends, reconnecting after failures;
/// after a reconnect everything is dropped, since notifications may have been missed.
pub fn spawn_listener(database_url: String, entities: Arc<EntityLoader>) {
    tokio::spawn(async move {
        loop {
            match sqlx::postgres::PgListener::connect(&database_url).await {
                Ok(mut listener) => {
                    // Report a lost connection at once: by default `try_recv`
                    // first reconnects (retrying for up to the pool's acquire
                    // timeout while the database is down), and all that time
                    // the cache would be trusted with notifications lost.
                    listener.eager_reconnect(false);
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::error!(error = %e, "cannot LISTEN for entity changes");
                    } else {
                        entities.invalidate_all();
                        entities.set_change_feed(true);
                        loop {
                            // `try_recv`, not `recv`: `recv` reconnects silently and
                            // notifications sent meanwhile are lost.
                            match listener.try_recv().await {
                                Ok(Some(note)) => {
                                    let payload = note.payload();
                                    if let Some(key) = payload.strip_prefix("credentials:") {
                                        entities.invalidate_credential(key);
                                    } else if let Some(entity) = entity_of(payload) {
                                        entities.invalidate(&entity);
                                    }
                                }
                                // The connection closed. `try_recv` would reconnect on
                                // the next call, but nothing says when it is listening
                                // again: until a fresh LISTEN, nothing is cached.
                                Ok(None) => {
                                    entities.set_change_feed(false);
                                    entities.invalidate_all();
                                    tracing::warn!(
                                        "entity change listener lost its connection; reconnecting"
                                    );
                                    break;
                                }
                                Err(e) => {
                                    entities.set_change_feed(false);
                                    tracing::warn!(error = %e, "entity change listener lost its connection");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot connect the entity change listener"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}
