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
use crate::store::notifications::{self, Heard};
use std::sync::Arc;

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

/// Listens for changes until the process ends; while not listening (and
/// once listening again, since notifications may have been missed) nothing
/// cached is trusted.
pub fn spawn_listener(database_url: String, entities: Arc<EntityLoader>) {
    notifications::listen(database_url, CHANNEL, "entity change", move |heard| {
        match heard {
            Heard::Listening => {
                entities.invalidate_all();
                entities.set_change_feed(true);
            }
            Heard::Note(payload) => {
                if let Some(key) = payload.strip_prefix("credentials:") {
                    entities.invalidate_credential(key);
                } else if let Some(entity) = entity_of(payload) {
                    entities.invalidate(&entity);
                }
            }
            Heard::Lost => {
                entities.set_change_feed(false);
                entities.invalidate_all();
            }
        }
        true
    });
}
