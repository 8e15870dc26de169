//! Reused decisions. A decision is a function of the policy set, the
//! question (principal, action, resource, context) and the facts of its
//! entity slice; the only input that changes on its own is `now`. So an
//! entry is keyed by the policy version, the question without `now`, and the
//! slice's stamps (a record read again after any change is a new record with
//! a new stamp: the entity cache's invalidation, the change feed and the
//! SQLite probe all end reuse exactly where they end the cached record), and
//! it serves only until `now` reaches the first instant of its slice or of
//! the policies' literals after the moment it was decided, where a
//! comparison with `now` could flip. Policies that compute with time are
//! never reused (`PolicyEngine::reusable`).

use crate::entities::{Slice, Stamp};
use crate::policy::{AccessRequest, Decision, PolicyEngine};
use crate::refs::EntityRef;
use crate::time::{self, Timestamp};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    version: String,
    principal: EntityRef,
    action: String,
    resource: EntityRef,
    /// The context without `now`, as JSON text (its keys are sorted).
    context: String,
    slice: Vec<Stamp>,
}

/// A decision and the interval of `now` it holds for: from the last instant
/// of its slice or policies at or before the `now` that decided it, to the
/// next one after. No comparison of `now` with those instants flips inside.
#[derive(Debug)]
struct Entry {
    decision: Decision,
    from: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl Entry {
    fn holds_at(&self, now: Timestamp) -> bool {
        self.from.is_none_or(|from| from <= now) && self.until.is_none_or(|until| now < until)
    }
}

/// A bounded cache of decisions.
pub struct DecisionCache {
    /// `None` when turned off.
    cache: Option<moka::sync::Cache<Key, Arc<Entry>>>,
    reused: AtomicU64,
    taken: AtomicU64,
}

/// Reusable decisions served from the cache, and evaluated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReuseStats {
    pub reused: u64,
    pub taken: u64,
}

impl std::fmt::Debug for DecisionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecisionCache")
            .field("entries", &self.cache.as_ref().map(|c| c.entry_count()))
            .field("stats", &self.stats())
            .finish()
    }
}

impl DecisionCache {
    /// Holds at most `capacity` decisions; 0 turns reuse off.
    pub fn new(capacity: u64) -> DecisionCache {
        DecisionCache {
            cache: (capacity > 0).then(|| moka::sync::Cache::new(capacity)),
            reused: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> ReuseStats {
        ReuseStats {
            reused: self.reused.load(Ordering::Relaxed),
            taken: self.taken.load(Ordering::Relaxed),
        }
    }

    /// Decides `request` on `slice` with `decide`, or reuses an earlier
    /// decision of the same question on the same facts that holds at the
    /// context's `now`. Decisions with errors are never kept. Only questions
    /// asked at the gateway's own clock come here (`Authorizer::decide`).
    pub fn decide(
        &self,
        engine: &PolicyEngine,
        request: &AccessRequest,
        slice: &Slice,
        decide: impl FnOnce() -> Decision,
    ) -> Decision {
        let (Some(cache), Some(literals), Some(now)) = (
            &self.cache,
            engine.reusable(&request.action),
            request
                .context
                .get("now")
                .and_then(|v| v.as_str())
                .and_then(|t| time::parse(t).ok()),
        ) else {
            return decide();
        };
        let key = Key {
            version: engine.version().to_owned(),
            principal: request.principal.clone(),
            action: request.action.clone(),
            resource: request.resource.clone(),
            context: context_without_now(request),
            slice: slice.stamps(),
        };
        if let Some(entry) = cache.get(&key) {
            if entry.holds_at(now) {
                self.reused.fetch_add(1, Ordering::Relaxed);
                return entry.decision.clone();
            }
            cache.invalidate(&key);
        }
        self.taken.fetch_add(1, Ordering::Relaxed);
        let decision = decide();
        if decision.errors.is_empty() {
            let next = literals.iter().copied().filter(|t| *t > now).min();
            let until = [slice.next_instant_after(now), next]
                .into_iter()
                .flatten()
                .min();
            let last = literals.iter().copied().filter(|t| *t <= now).max();
            let from = [slice.last_instant_at_or_before(now), last]
                .into_iter()
                .flatten()
                .max();
            let entry = Entry {
                decision: decision.clone(),
                from,
                until,
            };
            cache.insert(key, Arc::new(entry));
        }
        decision
    }
}

fn context_without_now(request: &AccessRequest) -> String {
    let fields: serde_json::Map<String, serde_json::Value> = request
        .context
        .iter()
        .filter(|(k, _)| k.as_str() != "now")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    serde_json::Value::Object(fields).to_string()
}
