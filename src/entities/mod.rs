//! Store rows → Cedar entities: the slice one decision needs, not the whole
//! database, read through a bounded, short-lived cache that the gateway can
//! invalidate entity by entity when it forwards a write.
//!
//! The mapping from rows to attributes is the one `policies/README.md` fixes
//! (section *Entity model*); the slice holds what its *Fail closed* paragraph
//! lists: the principal, the resource, the entities their attributes point at
//! (partner, customer, live authorization, a session's operator, customer and
//! authorization) and every ancestor up to the distributor.

mod principals;

pub use principals::{as_one_request, FileProbe, PrincipalRow};

use crate::ids::*;
use crate::model::SessionFacts;
use crate::policy::extension::Extension;
use crate::policy::PolicyEngine;
use crate::refs::{EntityRef, EntityType};
use crate::store::attributes::Value;
use crate::store::{Backend, CredentialRecord, Store, StoreError};
use crate::time::{self, Timestamp};
use cedar_policy::{Entities, Entity, EntityUid, RestrictedExpression};
use rust_decimal::Decimal;
use sha2::{Digest as _, Sha256};
use smallvec::SmallVec;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{from} refers to {missing}, which does not exist")]
    Dangling { from: String, missing: String },
    #[error("cannot express {entity} in Cedar: {message}")]
    Build { entity: String, message: String },
    #[error("the entity slice does not conform to the schema: {0}")]
    Schema(String),
}

/// Cache counters, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries currently cached (approximate, as moka counts them).
    pub entries: u64,
    /// Their weight in bytes ([`Record::weight`]).
    pub bytes: u64,
    /// Slices' entities kept built ([`EntityLoader::entities_for`]), and
    /// their weight in bytes.
    pub built_entries: u64,
    pub built_bytes: u64,
}

/// One cached entity: the Cedar entity ready for a slice, and the entities
/// the slice must also hold because of it.
#[derive(Debug)]
struct Record {
    entity: Entity,
    links: Vec<EntityRef>,
    /// Customers only: the ids of every pending or approved authorization
    /// when the record was read. A change to any of them may change which one
    /// is live, so invalidating one drops this record too.
    live_candidates: Vec<String>,
    /// The version of the policy engine whose schema `entity` was checked
    /// against when it was read; another version checks it again.
    checked_for: String,
    /// What this record is, for a reused decision: a number no other record
    /// gets (a record read again is a new record), or a session's facts,
    /// since sessions are read for each request.
    stamp: Stamp,
    /// The instants among its attributes: a decision comparing `now` with
    /// one of them may change when `now` passes it.
    instants: Vec<Timestamp>,
    /// [`Record::weight`], counted once: it reads every attribute back
    /// from Cedar's form, and each built slice holding the record asks again.
    weight: std::sync::OnceLock<u32>,
}

impl Record {
    /// About the heap bytes this record holds, its weight in the cache: a
    /// fixed part (the record, the Cedar entity's maps and uid) and what
    /// grows with its attributes, references and ids, times what Cedar's own
    /// representation holds beyond that count (source locations, maps'
    /// spare room) and the cache's node. Measured with a counting allocator
    /// on the generated store (BENCHMARKS.md, *Memory*).
    fn weight(&self) -> u32 {
        *self.weight.get_or_init(|| self.measure())
    }

    fn measure(&self) -> u32 {
        const FIXED: usize = 700;
        const PER_ATTRIBUTE: usize = 120;
        const PER_REFERENCE: usize = 80;
        const MEASURED_TENTHS: usize = 33;
        let uid = self.entity.uid().id().unescaped().len();
        let attributes: usize = self
            .entity
            .attrs()
            .map(|(name, value)| PER_ATTRIBUTE + name.len() + value.map_or(0, |v| value_bytes(&v)))
            .sum();
        let references: usize = self
            .links
            .iter()
            .map(|r| PER_REFERENCE + r.id().len())
            .sum();
        let candidates: usize = self.live_candidates.iter().map(|c| 24 + c.len()).sum();
        let counted = FIXED + uid + attributes + references + candidates + 8 * self.instants.len();
        u32::try_from(counted * MEASURED_TENTHS / 10).unwrap_or(u32::MAX)
    }
}

/// The heap bytes of one attribute value, roughly (see [`Record::weight`]).
fn value_bytes(value: &cedar_policy::EvalResult) -> usize {
    use cedar_policy::EvalResult;
    match value {
        EvalResult::String(s) => 16 + s.len(),
        EvalResult::EntityUid(uid) => 48 + uid.id().unescaped().len(),
        EvalResult::Set(set) => 48 + set.iter().map(|v| 16 + value_bytes(v)).sum::<usize>(),
        EvalResult::Record(record) => {
            48 + record
                .iter()
                .map(|(k, v)| 32 + k.len() + value_bytes(v))
                .sum::<usize>()
        }
        EvalResult::ExtensionValue(text) => 64 + text.len(),
        _ => 0,
    }
}

/// Identifies one record exactly (see [`Record::stamp`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Stamp {
    Read(u64),
    Session(Box<SessionFacts>),
}

/// Feeds `Hash` values into SHA-256, for keys of a fixed 32 bytes that
/// nobody can make two inputs share, whoever chose their ids. Rust's `Hash`
/// encoding ends every string with a byte UTF-8 never holds and prefixes
/// every sequence with its length, so no two inputs write the same bytes.
pub struct Sha256Hasher(pub Sha256);

impl Sha256Hasher {
    pub fn new() -> Sha256Hasher {
        Sha256Hasher(Sha256::new())
    }

    pub fn finish_digest(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

impl Default for Sha256Hasher {
    fn default() -> Sha256Hasher {
        Sha256Hasher::new()
    }
}

impl std::hash::Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Never asked: the digest is read with [`Sha256Hasher::finish_digest`].
    fn finish(&self) -> u64 {
        0
    }
}

/// The records of one slice, not yet made into Cedar entities. Two slices
/// with the same [`Slice::stamps`] hold the same facts, so a decision taken
/// on one holds for the other until `now` passes one of its instants.
#[derive(Debug)]
pub struct Slice {
    // Inline: most slices are a handful of records.
    records: SmallVec<[Arc<Record>; 8]>,
}

impl Slice {
    /// Every record's stamp, in a fixed order.
    pub fn stamps(&self) -> impl ExactSizeIterator<Item = &Stamp> {
        self.records.iter().map(|r| &r.stamp)
    }

    /// The first instant of the slice's attributes after `now`, if any.
    pub fn next_instant_after(&self, now: Timestamp) -> Option<Timestamp> {
        self.records
            .iter()
            .flat_map(|r| r.instants.iter().copied())
            .filter(|t| *t > now)
            .min()
    }

    /// The last instant of the slice's attributes at or before `now`, if any.
    pub fn last_instant_at_or_before(&self, now: Timestamp) -> Option<Timestamp> {
        self.records
            .iter()
            .flat_map(|r| r.instants.iter().copied())
            .filter(|t| *t <= now)
            .max()
    }

    /// The Cedar entities. Each was checked on its own; the slice adds no
    /// new facts.
    pub fn entities(&self) -> Result<Entities, EntityError> {
        self.entities_with(std::iter::empty())
    }

    /// The Cedar entities with those `engine` needs to decide `action`,
    /// in one go: Cedar computes the hierarchy once, and the decision adds
    /// nothing (about a fifth of a new decision's cost when it did).
    pub fn entities_for(
        &self,
        engine: &PolicyEngine,
        action: &str,
    ) -> Result<Entities, EntityError> {
        self.entities_with(engine.action_entities(action))
    }

    /// What [`Slice::entities_for`] builds, as a digest: the policy version
    /// (its schema's action entities and the schema the records were checked
    /// against), the action and the records' stamps, which name each
    /// record's facts exactly.
    fn built_key(&self, version: &str, action: &str) -> [u8; 32] {
        use std::hash::{Hash, Hasher};
        let mut digest = Sha256Hasher::new();
        version.hash(&mut digest);
        action.hash(&mut digest);
        digest.write_usize(self.records.len());
        for stamp in self.stamps() {
            stamp.hash(&mut digest);
        }
        digest.finish_digest()
    }

    /// About the heap bytes [`Slice::entities_for`]'s result holds, its
    /// weight in the cache: a copy of each record's Cedar entity with its
    /// ancestors (a share of the record's own weight, which also counts our
    /// links), and a fixed part for the action's entities, the map and the
    /// cache's node. Measured as [`Record::weight`] is.
    fn built_weight(&self) -> u32 {
        const FIXED: u64 = 1_000;
        const SHARE_TENTHS: u64 = 7;
        let records: u64 = self.records.iter().map(|r| u64::from(r.weight())).sum();
        u32::try_from(FIXED + records * SHARE_TENTHS / 10).unwrap_or(u32::MAX)
    }

    fn entities_with(&self, more: impl Iterator<Item = Entity>) -> Result<Entities, EntityError> {
        let records = self.records.iter().map(|r| r.entity.clone());
        Entities::from_entities(records.chain(more), None)
            .map_err(|e| EntityError::Schema(crate::policy::describe(&e)))
    }
}

/// Builds entity slices from the store through a moka cache of per-entity records.
pub struct EntityLoader {
    store: Store,
    cache: moka::sync::Cache<EntityRef, Arc<Record>>,
    /// Callers' own rows for authentication (see `principals.rs`).
    principals: moka::sync::Cache<EntityRef, Arc<PrincipalRow>>,
    /// Unsealed credentials by access key: a signature check needs the
    /// secret, and unsealing costs a read and a decryption. Held under the
    /// same rule as principals, so a rotation or revocation is heard at once.
    credentials: moka::sync::Cache<String, Arc<CredentialRecord>>,
    freshness: principals::Freshness,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Numbers the records read, for their stamps.
    records_read: AtomicU64,
    /// Bumped by every invalidation. A record read while an invalidation
    /// happened may predate the write behind it, so it is used for that
    /// request but not cached.
    epoch: Mutex<u64>,
    /// A known resource of each type, decided in place of an unknown one so
    /// that an unknown id costs what a known one does (no timing oracle).
    stand_ins: Mutex<HashMap<EntityType, EntityRef>>,
    /// Ids found missing, briefly ([`ABSENT_TTL`]): a repeated unknown id is
    /// answered from memory as a repeated known one is, not by a database
    /// read that would make it the slower one.
    absent: moka::sync::Cache<EntityRef, ()>,
    /// Slices' Cedar entities as built for an action
    /// ([`EntityLoader::entities_for`]), by [`Slice::built_key`], with their
    /// weight ([`Slice::built_weight`]).
    built: moka::sync::Cache<[u8; 32], (Arc<Entities>, u32)>,
}

/// The weight of a caller's row or credential beside its ids: its other
/// fields are short and bounded (names, roles, state).
const ROW_WEIGHT: u32 = 512;

/// How long an id found missing is believed missing without an
/// invalidation: short, since an entity created elsewhere (another gateway,
/// the store's own new ids) is not always heard of.
const ABSENT_TTL: Duration = Duration::from_secs(1);

impl std::fmt::Debug for EntityLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntityLoader")
            .field("stats", &self.stats())
            .finish()
    }
}

impl EntityLoader {
    /// The entity records kept weigh at most `bytes` (as [`Record::weight`]
    /// counts them), the callers' rows, credentials and absent ids at most an
    /// eighth of it each; `ttl` is how long one is trusted without an
    /// invalidation (keep it short: it bounds how stale a write that did not
    /// pass through this gateway can be).
    pub fn new(store: Store, bytes: u64, ttl: Duration) -> EntityLoader {
        let freshness = match (store.backend(), store.sqlite_file()) {
            (Backend::Postgres, _) => principals::Freshness::ChangeFeed(AtomicBool::new(false)),
            (Backend::Sqlite, Some(file)) => {
                principals::Freshness::SqliteFile(principals::FileProbe::new(file))
            }
            (Backend::Sqlite, None) => principals::Freshness::ReadEachTime,
        };
        EntityLoader {
            store,
            cache: moka::sync::Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, record: &Arc<Record>| record.weight())
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
            principals: moka::sync::Cache::builder()
                .max_capacity(bytes / 8)
                .weigher(|r: &EntityRef, _| ROW_WEIGHT + r.id().len() as u32)
                .time_to_live(ttl)
                .build(),
            credentials: moka::sync::Cache::builder()
                .max_capacity(bytes / 8)
                .weigher(|key: &String, c: &Arc<CredentialRecord>| {
                    ROW_WEIGHT + (key.len() + c.principal_id.len() + c.secret.len()) as u32
                })
                .time_to_live(ttl)
                .build(),
            freshness,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            records_read: AtomicU64::new(0),
            epoch: Mutex::new(0),
            stand_ins: Mutex::new(HashMap::new()),
            absent: moka::sync::Cache::builder()
                .max_capacity(bytes / 8)
                .weigher(|r: &EntityRef, _| 64 + r.id().len() as u32)
                .time_to_live(ttl.min(ABSENT_TTL))
                .build(),
            built: moka::sync::Cache::builder()
                .max_capacity(bytes / 8)
                .weigher(|_, (_, weight): &(Arc<Entities>, u32)| *weight)
                .time_to_live(ttl)
                .build(),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// PostgreSQL: whether the change feed is connected (its notifications
    /// reach [`EntityLoader::invalidate`]). Cached principals are used only
    /// while it is.
    pub fn set_change_feed(&self, connected: bool) {
        if let principals::Freshness::ChangeFeed(flag) = &self.freshness {
            flag.store(connected, Ordering::Release);
        }
    }

    /// Whether changes are heard at once: PostgreSQL's change feed is
    /// connected (SQLite: always, by its file probe or by reading each time).
    pub fn change_feed_connected(&self) -> bool {
        match &self.freshness {
            principals::Freshness::ChangeFeed(flag) => flag.load(Ordering::Acquire),
            _ => true,
        }
    }

    /// The row of an operator or customer principal, for authentication:
    /// cached only while a change to it would be heard at once (see
    /// `principals.rs`). `None` for other entity types and for unknown ids.
    pub async fn principal(&self, r: &EntityRef) -> Result<Option<Arc<PrincipalRow>>, StoreError> {
        let usable = self.freshness.cache_usable(|| self.drop_principals());
        if usable {
            if let Some(row) = self.principals.get(r) {
                return Ok(Some(row));
            }
        }
        let started = *self.epoch();
        let row = match r {
            EntityRef::Operator(id) => Box::pin(self.store.operator(&OperatorId::from(&**id)))
                .await?
                .map(PrincipalRow::Operator),
            EntityRef::Customer(id) => Box::pin(self.store.customer(&CustomerId::from(&**id)))
                .await?
                .map(PrincipalRow::Customer),
            _ => None,
        };
        let Some(row) = row.map(Arc::new) else {
            return Ok(None);
        };
        let epoch = self.epoch();
        if usable && *epoch == started {
            self.principals.insert(r.clone(), row.clone());
        }
        Ok(Some(row))
    }

    /// The credential of an access key with its secret unsealed, cached like
    /// principal rows; `None` for an unknown key.
    pub async fn credential(
        &self,
        access_key: &str,
    ) -> Result<Option<Arc<CredentialRecord>>, StoreError> {
        let usable = self.freshness.cache_usable(|| self.drop_principals());
        if usable {
            if let Some(found) = self.credentials.get(access_key) {
                return Ok(Some(found));
            }
        }
        let started = *self.epoch();
        let Some(record) = Box::pin(self.store.credential(access_key))
            .await?
            .map(Arc::new)
        else {
            return Ok(None);
        };
        let epoch = self.epoch();
        if usable && *epoch == started {
            self.credentials
                .insert(access_key.to_owned(), record.clone());
        }
        Ok(Some(record))
    }

    /// Drops one access key's cached credential (it was rotated or revoked).
    pub fn invalidate_credential(&self, access_key: &str) {
        let mut epoch = self.epoch();
        *epoch += 1;
        self.credentials.invalidate(access_key);
    }

    /// The invalidation counter (see the field), held while a cache changes.
    fn epoch(&self) -> std::sync::MutexGuard<'_, u64> {
        self.epoch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every cached principal row and operator record: a change was
    /// heard of that may be to any of them.
    fn drop_principals(&self) {
        let mut epoch = self.epoch();
        *epoch += 1;
        self.principals.invalidate_all();
        self.credentials.invalidate_all();
        self.absent.invalidate_all();
        if self
            .cache
            .invalidate_entries_if(|k, _| matches!(k, EntityRef::Operator(_)))
            .is_err()
        {
            self.cache.invalidate_all();
        }
    }

    pub fn stats(&self) -> CacheStats {
        // Inserts and evictions settle in moka's pending tasks: run them so
        // that the entries and bytes are exact (a scrape, not the hot path).
        self.cache.run_pending_tasks();
        self.built.run_pending_tasks();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
            built_entries: self.built.entry_count(),
            built_bytes: self.built.weighted_size(),
        }
    }

    /// The entities one decision on (`principal`, `resource`) needs, each
    /// checked against `engine`'s schema (once, when read into the cache).
    /// The action's entities are not included: [`PolicyEngine::decide`] adds
    /// those of the action it decides. The engine is an argument rather than
    /// loader state so that a policy reload changes the schema together with
    /// the policies that read the slice.
    ///
    /// `sessions` holds the facts of sessions already read (the caller's);
    /// any other session the slice needs is read from the store, uncached.
    /// `Ok(None)` when the principal or the resource does not exist: the
    /// gateway answers that exactly like a deny.
    pub async fn slice(
        &self,
        engine: &PolicyEngine,
        principal: &EntityRef,
        resource: &EntityRef,
        sessions: &[SessionFacts],
    ) -> Result<Option<Entities>, EntityError> {
        match self
            .slice_records(engine, principal, resource, sessions)
            .await?
        {
            Some(slice) => slice.entities().map(Some),
            None => Ok(None),
        }
    }

    /// `slice`'s Cedar entities with those `engine` needs to decide
    /// `action` ([`Slice::entities_for`]), kept for the next decision on the
    /// same records: Cedar computes the hierarchy of every set it builds,
    /// which costs about what the decision itself does, and a slice whose
    /// decision is not reused (another context, reuse off, a shadow set,
    /// an administrator's question) is decided on again.
    pub fn entities_for(
        &self,
        engine: &PolicyEngine,
        action: &str,
        slice: &Slice,
    ) -> Result<Arc<Entities>, EntityError> {
        let key = slice.built_key(engine.version(), action);
        if let Some((entities, _)) = self.built.get(&key) {
            return Ok(entities);
        }
        let entities = Arc::new(slice.entities_for(engine, action)?);
        self.built
            .insert(key, (entities.clone(), slice.built_weight()));
        Ok(entities)
    }

    /// [`EntityLoader::slice`] before its records are made into Cedar
    /// entities: what the gateway decides on (and reuses decisions by).
    pub async fn slice_records(
        &self,
        engine: &PolicyEngine,
        principal: &EntityRef,
        resource: &EntityRef,
        sessions: &[SessionFacts],
    ) -> Result<Option<Slice>, EntityError> {
        let slice = self
            .slice_of(engine, &[resource, principal], sessions)
            .await?;
        if slice.is_some() {
            self.stand_ins_lock()
                .entry(resource.kind())
                .or_insert_with(|| resource.clone());
        }
        Ok(slice)
    }

    /// For a `resource` that does not exist: a known resource of its type
    /// and the slice deciding it would need (`None` before one is known).
    /// Deciding it is wasted work on purpose, done so that an unknown id
    /// takes as long as a known one; its answer must never be used.
    pub async fn stand_in(
        &self,
        engine: &PolicyEngine,
        principal: &EntityRef,
        resource: &EntityRef,
        sessions: &[SessionFacts],
    ) -> Result<Option<(EntityRef, Slice)>, EntityError> {
        let Some(stand_in) = self.stand_ins_lock().get(&resource.kind()).cloned() else {
            return Ok(None);
        };
        let slice = self
            .slice_of(engine, &[&stand_in, principal], sessions)
            .await?;
        if slice.is_none() {
            self.stand_ins_lock().remove(&resource.kind()); // it went away
        }
        Ok(slice.map(|entities| (stand_in, entities)))
    }

    fn stand_ins_lock(&self) -> std::sync::MutexGuard<'_, HashMap<EntityType, EntityRef>> {
        self.stand_ins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entities of the principal alone (and what it links to): what a
    /// list question, whose resource is every item, needs.
    pub async fn principal_slice(
        &self,
        engine: &PolicyEngine,
        principal: &EntityRef,
        sessions: &[SessionFacts],
    ) -> Result<Option<Entities>, EntityError> {
        match self.slice_of(engine, &[principal], sessions).await? {
            Some(slice) => slice.entities().map(Some),
            None => Ok(None),
        }
    }

    /// The entities `roots` need; `Ok(None)` when a root does not exist.
    async fn slice_of(
        &self,
        engine: &PolicyEngine,
        roots: &[&EntityRef],
        sessions: &[SessionFacts],
    ) -> Result<Option<Slice>, EntityError> {
        // A slice is a handful of records: the model's references are single
        // (no attribute holds a set of entities) and its ancestors a short
        // chain. Searched in order, for less than hashing each reference.
        let is_built =
            |built: &[(EntityRef, Arc<Record>)], r: &EntityRef| built.iter().any(|(b, _)| b == r);
        let mut built: SmallVec<[(EntityRef, Arc<Record>); 8]> = SmallVec::new();
        let mut queue: SmallVec<[(EntityRef, Option<EntityRef>); 8]> = SmallVec::new();
        queue.extend(roots.iter().map(|r| ((*r).clone(), None)));
        while let Some((r, from)) = queue.pop() {
            if is_built(&built, &r) {
                continue;
            }
            let found = match &r {
                // Sessions are read each time, never cached: ending one must
                // show at once.
                EntityRef::Session(id) => {
                    let facts = match sessions.iter().find(|s| s.id.as_str() == &**id) {
                        Some(facts) => Some(facts.clone()),
                        None => Box::pin(self.store.session(&SessionId::from(&**id)))
                            .await?
                            .map(|s| s.facts()),
                    };
                    match facts {
                        Some(facts) => Some(Arc::new(checked(session_record(&facts)?, engine)?)),
                        None => None,
                    }
                }
                other => self.record(other, engine).await?,
            };
            let Some(record) = found else {
                return match from {
                    None => Ok(None),
                    Some(from) => Err(EntityError::Dangling {
                        from: from.to_string(),
                        missing: r.to_string(),
                    }),
                };
            };
            if record.checked_for != engine.version() {
                check(&record.entity, engine)?;
            }
            for link in &record.links {
                if !is_built(&built, link) {
                    queue.push((link.clone(), Some(r.clone())));
                }
            }
            built.push((r, record));
        }
        // In a fixed order, so that equal slices have equal stamps.
        built.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        Ok(Some(Slice {
            records: built.into_iter().map(|(_, r)| r).collect(),
        }))
    }

    /// Drops exactly `entity`'s cached record, and the records derived from
    /// it: for an authorization, the customer records whose live
    /// authorization it is or may become.
    pub fn invalidate(&self, entity: &EntityRef) {
        let mut epoch = self.epoch();
        *epoch += 1;
        if let EntityRef::Authorization(id) = entity {
            if let Some(owner) = self.cache.get(entity).and_then(|r| {
                r.links
                    .iter()
                    .find(|l| matches!(l, EntityRef::Customer(_)))
                    .cloned()
            }) {
                self.cache.invalidate(&owner);
            }
            let id = id.clone();
            let registered = self.cache.invalidate_entries_if(move |k, v| {
                matches!(k, EntityRef::Customer(_)) && v.live_candidates.iter().any(|c| **c == *id)
            });
            if registered.is_err() {
                // Cannot happen (the builder enables closures); stay correct anyway.
                self.cache.invalidate_all();
            }
        }
        self.cache.invalidate(entity);
        self.principals.invalidate(entity);
        self.absent.invalidate(entity);
    }

    /// Drops every cached record (after a bulk import, for instance).
    pub fn invalidate_all(&self) {
        let mut epoch = self.epoch();
        *epoch += 1;
        self.cache.invalidate_all();
        self.principals.invalidate_all();
        self.credentials.invalidate_all();
        self.absent.invalidate_all();
    }

    /// One stored entity's record, from the cache or the store. An
    /// operator's record (whose status R12 reads: a disabled operator and its
    /// sessions are denied at once) is cached only while a change to it would
    /// be heard, as the principals' rows are (see `principals.rs`).
    async fn record(
        &self,
        r: &EntityRef,
        engine: &PolicyEngine,
    ) -> Result<Option<Arc<Record>>, EntityError> {
        let cacheable = !matches!(r, EntityRef::Operator(_))
            || self.freshness.cache_usable(|| self.drop_principals());
        if let Some(record) = self.cache.get(r).filter(|_| cacheable) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some(record));
        }
        if cacheable && self.absent.contains_key(r) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let started = *self.epoch();
        // Boxed, as every store read on a miss here: their futures are
        // large, and unboxed every request's future would carry them.
        let Some((record, extra)) = Box::pin(self.fetch(r)).await? else {
            if cacheable && *self.epoch() == started {
                self.absent.insert(r.clone(), ());
            }
            return Ok(None);
        };
        let record = Arc::new(checked(record, engine)?);
        let extra = extra
            .into_iter()
            .map(|(k, v)| Ok((k, Arc::new(checked(v, engine)?))))
            .collect::<Result<Vec<_>, EntityError>>()?;
        let epoch = self.epoch();
        if *epoch == started && cacheable {
            self.cache.insert(r.clone(), record.clone());
            for (k, v) in extra {
                self.cache.insert(k, v);
            }
        }
        Ok(Some(record))
    }

    /// Reads one entity from the store, through the attribute table
    /// ([`crate::store::attributes`]). Besides its record, it may return
    /// records read along the way (a customer's live authorization).
    async fn fetch(
        &self,
        r: &EntityRef,
    ) -> Result<Option<(Record, Vec<(EntityRef, Record)>)>, EntityError> {
        // Read by `slice` itself, never cached.
        if let EntityRef::Session(_) = r {
            return Ok(None);
        }
        let s = &self.store;
        let stamp = || Stamp::Read(self.records_read.fetch_add(1, Ordering::Relaxed));
        let Some(stored) = s.entity_values(r).await? else {
            return Ok(None);
        };
        let mut attrs = stored
            .attrs
            .into_iter()
            .map(|(name, value)| Ok((name, expression(value)?)))
            .collect::<Result<Vec<_>, EntityError>>()?;
        let mut extra = Vec::new();
        let mut live_candidates = Vec::new();
        if let EntityRef::Customer(id) = r {
            // The derived attribute: the live authorization to the
            // customer's own partner, chosen among its rows.
            let partner = stored
                .parents
                .iter()
                .find_map(|p| match p {
                    EntityRef::Partner(p) => Some(PartnerId::from(&**p)),
                    _ => None,
                })
                .ok_or_else(|| StoreError::Corrupt(format!("customer {id} has no partner")))?;
            let candidates = s
                .live_authorization_candidates(&CustomerId::from(&**id), &partner)
                .await?;
            if let Some(a) = candidates.first() {
                let live = EntityRef::Authorization(a.id.0.as_str().into());
                if let Some(stored) = s.entity_values(&live).await? {
                    let live_attrs = stored
                        .attrs
                        .into_iter()
                        .map(|(name, value)| Ok((name, expression(value)?)))
                        .collect::<Result<Vec<_>, EntityError>>()?;
                    extra.push((
                        live.clone(),
                        build(&live, live_attrs, stored.parents, stamp())?,
                    ));
                }
                attrs.push(("authorization", entity(&live)));
            }
            live_candidates = candidates.iter().map(|a| a.id.0.clone()).collect();
        }
        let mut record = build(r, attrs, stored.parents, stamp())?;
        record.live_candidates = live_candidates;
        Ok(Some((record, extra)))
    }
}

/// A stored value as Cedar's.
fn expression(value: Value) -> Result<RestrictedExpression, EntityError> {
    Ok(match value {
        Value::Entity(r) => entity(&r),
        Value::String(s) => RestrictedExpression::new_string(s),
        Value::Bool(b) => RestrictedExpression::new_bool(b),
        Value::Strings(items) => strings(items),
        Value::Datetime(t) => datetime(t),
        Value::Decimal(d) => decimal(d),
        Value::Record(fields) => RestrictedExpression::new_record(
            fields
                .into_iter()
                .map(|(name, v)| Ok((name.to_owned(), expression(v)?)))
                .collect::<Result<Vec<_>, EntityError>>()?,
        )
        .map_err(|e| EntityError::Build {
            entity: String::new(),
            message: e.to_string(),
        })?,
    })
}

/// Checks one entity against `engine`'s schema: attributes and their types,
/// parent types. Cedar checks entities one at a time, so checking each
/// record is the same as checking the slice they make up.
fn check(entity: &Entity, engine: &PolicyEngine) -> Result<(), EntityError> {
    Entities::empty()
        .add_entities([entity.clone()], Some(engine.schema()))
        .map(drop)
        .map_err(|e| EntityError::Schema(crate::policy::describe(&e)))
}

/// `record`, checked against `engine`'s schema and marked as such.
fn checked(mut record: Record, engine: &PolicyEngine) -> Result<Record, EntityError> {
    check(&record.entity, engine)?;
    record.checked_for = engine.version().to_owned();
    Ok(record)
}

/// One entity and what its slice must also hold: its parents and every
/// entity any attribute refers to, read back from the built entity, so that
/// no reference an attribute makes can be left out of a slice (a policy may
/// read through any of them; see `policies/README.md`, *Entity model*).
fn build(
    r: &EntityRef,
    attrs: Vec<(&str, RestrictedExpression)>,
    parents: Vec<EntityRef>,
    stamp: Stamp,
) -> Result<Record, EntityError> {
    let names: Vec<String> = attrs.iter().map(|(k, _)| (*k).to_owned()).collect();
    let entity = Entity::new(
        r.uid(),
        attrs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        parents
            .iter()
            .map(EntityRef::uid)
            .collect::<HashSet<EntityUid>>(),
    )
    .map_err(|e| EntityError::Build {
        entity: r.to_string(),
        message: crate::policy::describe(&e),
    })?;
    let instants = instants_of(&entity, &names)?;
    let mut links = parents;
    for (_, value) in entity.attrs() {
        let value = value.map_err(|e| EntityError::Build {
            entity: r.to_string(),
            message: e.to_string(),
        })?;
        referenced(&value, &mut links);
    }
    links.sort_unstable();
    links.dedup();
    Ok(Record {
        entity,
        links,
        live_candidates: Vec::new(),
        checked_for: String::new(),
        stamp,
        instants,
        weight: std::sync::OnceLock::new(),
    })
}

/// Adds the entities `value` refers to, inside sets and records too.
fn referenced(value: &cedar_policy::EvalResult, into: &mut Vec<EntityRef>) {
    use cedar_policy::EvalResult;
    match value {
        EvalResult::EntityUid(uid) => into.extend(EntityRef::from_uid(uid)),
        EvalResult::Set(set) => set.iter().for_each(|v| referenced(v, into)),
        EvalResult::Record(record) => record.iter().for_each(|(_, v)| referenced(v, into)),
        _ => {}
    }
}

/// The instants among `entity`'s attributes, read back from Cedar so that
/// no `datetime` attribute can be left out. One inside a record or set is
/// refused: a reused decision would not know of it.
fn instants_of(entity: &Entity, names: &[String]) -> Result<Vec<Timestamp>, EntityError> {
    let mut instants = Vec::new();
    for name in names {
        let Some(Ok(value)) = entity.attr(name) else {
            continue;
        };
        let text = value.to_string();
        if !text.contains("datetime(") {
            continue;
        }
        let instant = text
            .strip_prefix("datetime(\"")
            .and_then(|t| t.strip_suffix("\")"))
            .and_then(|t| time::parse(t).ok())
            .ok_or_else(|| EntityError::Build {
                entity: entity.uid().to_string(),
                message: format!("`{name}`: an instant only as a top-level attribute, not {text}"),
            })?;
        instants.push(instant);
    }
    Ok(instants)
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

fn entity(r: &EntityRef) -> RestrictedExpression {
    RestrictedExpression::new_entity_uid(r.uid())
}

fn strings<T: AsRef<str>>(items: impl IntoIterator<Item = T>) -> RestrictedExpression {
    RestrictedExpression::new_set(items.into_iter().map(|s| string(s.as_ref())))
}

fn datetime(t: Timestamp) -> RestrictedExpression {
    Extension::Datetime.value(&time::format(t))
}

/// Cedar's `decimal` literal needs a point and at most four places.
fn decimal(d: Decimal) -> RestrictedExpression {
    let text = d.to_string();
    let text = if text.contains('.') {
        text
    } else {
        format!("{text}.0")
    };
    Extension::Decimal.value(&text)
}

/// A session, from the facts authentication read (sessions are read each
/// time, never cached: ending one must show at once). Its attributes are
/// the attribute table's (a test holds them to it).
fn session_record(s: &SessionFacts) -> Result<Record, EntityError> {
    let operator = EntityRef::Operator(s.operator.0.as_str().into());
    let customer = EntityRef::Customer(s.customer.0.as_str().into());
    let mut attrs = vec![
        ("customer", entity(&customer)),
        ("operator", entity(&operator)),
        ("scopes", strings(s.scopes.iter().map(|s| s.as_str()))),
        ("expires_at", datetime(s.expires_at)),
        ("ended", RestrictedExpression::new_bool(s.ended)),
    ];
    if let Some(a) = &s.authorization_id {
        let authorization = EntityRef::Authorization(a.0.as_str().into());
        attrs.push(("authorization", entity(&authorization)));
    }
    build(
        &EntityRef::Session(s.id.0.as_str().into()),
        attrs,
        vec![],
        Stamp::Session(Box::new(s.clone())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AuthorizationScope;

    fn session(expires_at: &str, ended: bool) -> SessionFacts {
        SessionFacts {
            id: SessionId::from("s-1"),
            operator: OperatorId::from("op-1"),
            customer: CustomerId::from("cust-1"),
            scopes: vec![AuthorizationScope::Om],
            expires_at: time::parse(expires_at).unwrap(),
            ended,
            end_reason: None,
            authorization_id: None,
        }
    }

    #[test]
    fn a_session_has_the_attribute_tables_attributes() {
        let mut facts = session("2027-01-02T03:04:05Z", true);
        facts.authorization_id = Some(AuthorizationId::from("auth-1"));
        let record = session_record(&facts).unwrap();
        let mut built: Vec<String> = record.entity.attrs().map(|(k, _)| k.to_string()).collect();
        let mut table: Vec<String> = crate::store::attributes::attributes(EntityType::Session)
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect();
        built.sort();
        table.sort();
        assert_eq!(built, table);
    }

    #[test]
    fn a_record_knows_its_instants() {
        let record = session_record(&session("2027-01-02T03:04:05Z", false)).unwrap();
        assert_eq!(
            record.instants,
            [time::parse("2027-01-02T03:04:05Z").unwrap()]
        );
        let slice = Slice {
            records: smallvec::smallvec![Arc::new(record)],
        };
        let before = time::parse("2027-01-01T00:00:00Z").unwrap();
        let after = time::parse("2027-02-01T00:00:00Z").unwrap();
        assert_eq!(
            slice.next_instant_after(before),
            Some(time::parse("2027-01-02T03:04:05Z").unwrap())
        );
        assert_eq!(slice.next_instant_after(after), None);
    }

    /// Records read from the store are stamped apart by their loader
    /// (`records_read`); `tests/it/gateway/reuse.rs` holds that a record
    /// read again ends the reuse of decisions on the old one.
    #[test]
    fn sessions_are_stamped_by_their_facts() {
        let a = session_record(&session("2027-01-02T03:04:05Z", false)).unwrap();
        let b = session_record(&session("2027-01-02T03:04:05Z", false)).unwrap();
        let ended = session_record(&session("2027-01-02T03:04:05Z", true)).unwrap();
        assert_eq!(a.stamp, b.stamp);
        assert_ne!(a.stamp, ended.stamp);
    }

    /// Built entities are kept by the policy version, the action and the
    /// records' stamps, and by nothing less.
    #[test]
    fn built_entities_are_keyed_by_version_action_and_stamps() {
        let slice = |ended: &[bool]| Slice {
            records: ended
                .iter()
                .map(|e| Arc::new(session_record(&session("2027-01-02T03:04:05Z", *e)).unwrap()))
                .collect(),
        };
        let base = slice(&[false, true]).built_key("v1", "ViewBudget");
        assert_eq!(base, slice(&[false, true]).built_key("v1", "ViewBudget"));
        for other in [
            slice(&[false, true]).built_key("v2", "ViewBudget"),
            slice(&[false, true]).built_key("v1", "SetBudget"),
            slice(&[false, false]).built_key("v1", "ViewBudget"),
            slice(&[false]).built_key("v1", "ViewBudget"),
            // The boundary between version and action moved.
            slice(&[false, true]).built_key("v1V", "iewBudget"),
        ] {
            assert_ne!(base, other);
        }
    }
}
