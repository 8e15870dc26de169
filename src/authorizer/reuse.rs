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

use crate::entities::{Sha256Hasher, Slice, Stamp};
use crate::policy::{Decision, PolicyEngine};
use crate::refs::EntityRef;
use crate::time::Timestamp;
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The question without `now` and the stamps of its slice, as one SHA-256
/// digest: a fixed 32 bytes to hash and compare rather than the strings of
/// the question, built with no allocation. SHA-256 is collision-resistant,
/// so two questions share a key only if they are the same question on the
/// same facts, whoever chose their ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key([u8; 32]);

impl Key {
    /// The digest of, in order: the policy version, the principal, the
    /// action, the resource, the action's own context (its JSON text: `now`
    /// is never in it, [`DecisionCache::decide`] refuses such a question), the
    /// source address and the slice's stamps. Each part is written in Rust's
    /// `Hash` encoding, which ends every string with a byte UTF-8 never
    /// holds and prefixes every sequence with its length, and the context's
    /// JSON text is a single value that ends where it ends: no two questions
    /// write the same bytes.
    fn of<'a>(
        version: &str,
        question: &Parts<'_>,
        stamps: impl ExactSizeIterator<Item = &'a Stamp>,
    ) -> Key {
        use std::hash::{Hash, Hasher};
        let mut digest = Sha256Hasher::new();
        version.hash(&mut digest);
        question.principal.hash(&mut digest);
        question.action.hash(&mut digest);
        question.resource.hash(&mut digest);
        // SHA-256 is an `io::Write` of its own.
        serde_json::to_writer(&mut digest.0, question.context).expect("a JSON map serializes");
        question.source_ip.hash(&mut digest);
        digest.write_usize(stamps.len());
        for stamp in stamps {
            stamp.hash(&mut digest);
        }
        Key(digest.finish_digest())
    }
}

/// A question as its key reads it: what Cedar is asked, but `now`. The
/// context is the action's own fields; Cedar's also holds `now` and
/// `source_ip`, filled in only when the question is evaluated.
pub struct Parts<'a> {
    pub principal: &'a EntityRef,
    pub action: &'a str,
    pub resource: &'a EntityRef,
    pub context: &'a Map<String, Value>,
    pub source_ip: IpAddr,
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

/// Reusable decisions served from the cache, and evaluated; the decisions
/// cached now (approximate) and their weight in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReuseStats {
    pub reused: u64,
    pub taken: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// About the heap bytes one cached decision holds, its weight in the cache:
/// a fixed part (the entry, its `Arc`, the key and the cache's own node,
/// most of it) and the ids of the policies that determined it. Measured as
/// `Record::weight` is (BENCHMARKS.md, *Memory*).
fn weight(_: &Key, entry: &Arc<Entry>) -> u32 {
    const FIXED: usize = 1_400;
    let decision: usize = entry
        .decision
        .determining
        .iter()
        .map(|id| 24 + id.len())
        .sum();
    u32::try_from(FIXED + decision).unwrap_or(u32::MAX)
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
    /// Holds decisions weighing at most `bytes` in all (see [`weight`]); 0
    /// turns reuse off.
    pub fn new(bytes: u64) -> DecisionCache {
        DecisionCache {
            cache: (bytes > 0).then(|| {
                moka::sync::Cache::builder()
                    .max_capacity(bytes)
                    .weigher(weight)
                    .build()
            }),
            reused: AtomicU64::new(0),
            taken: AtomicU64::new(0),
        }
    }

    pub fn stats(&self) -> ReuseStats {
        if let Some(cache) = &self.cache {
            cache.run_pending_tasks(); // as `EntityLoader::stats` does
        }
        ReuseStats {
            reused: self.reused.load(Ordering::Relaxed),
            taken: self.taken.load(Ordering::Relaxed),
            entries: self.cache.as_ref().map_or(0, |c| c.entry_count()),
            bytes: self.cache.as_ref().map_or(0, |c| c.weighted_size()),
        }
    }

    /// Decides `question` at `now` on `slice` with `decide`, or reuses an
    /// earlier decision of the same question on the same facts that holds
    /// at `now`. Decisions with errors are never kept. Only questions asked
    /// at the gateway's own clock come here (`Authorizer::decide`); one
    /// whose context names its own `now` is decided.
    pub fn decide(
        &self,
        engine: &PolicyEngine,
        question: &Parts<'_>,
        now: Timestamp,
        slice: &Slice,
        decide: impl FnOnce() -> Decision,
    ) -> Decision {
        // A context naming its own `now` asks about another moment (the
        // gateway's never does; AuthZEN's is not shared): decided, and the
        // key needs no `now` left out.
        let (Some(cache), Some(literals), false) = (
            &self.cache,
            engine.reusable(question.action),
            question.context.contains_key("now"),
        ) else {
            return decide();
        };
        let key = Key::of(engine.version(), question, slice.stamps());
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

#[cfg(test)]
mod tests {
    use super::{Key, Parts};
    use crate::entities::Stamp;
    use crate::refs::EntityRef;
    use serde_json::{json, Map};
    use std::net::IpAddr;

    /// The same question on the same facts has the same key; any other
    /// part changed, or moved from one part to the next, gives another.
    #[test]
    fn a_key_is_the_question_without_now_and_its_facts() {
        let stamps = [Stamp::Read(1), Stamp::Read(2)];
        let (o, p) = (
            EntityRef::Operator("o".into()),
            EntityRef::Operator("p".into()),
        );
        let (c, d) = (
            EntityRef::Customer("c".into()),
            EntityRef::Partner("c".into()),
        );
        let none = Map::new();
        let amount = json!({"amount": "1"}).as_object().unwrap().clone();
        let here: IpAddr = "127.0.0.1".parse().unwrap();
        let there: IpAddr = "127.0.0.2".parse().unwrap();
        let parts = |principal, action, resource, context, source_ip| Parts {
            principal,
            action,
            resource,
            context,
            source_ip,
        };
        let key = |version: &str, question: Parts<'_>, stamps: &[Stamp]| {
            Key::of(version, &question, stamps.iter())
        };
        let asked = || parts(&o, "ViewBudget", &c, &none, here);
        let base = key("v1", asked(), &stamps);
        assert_eq!(base, key("v1", asked(), &stamps));
        let ov = EntityRef::Operator("oV".into());
        let others = [
            key("v2", asked(), &stamps),
            key("v1", parts(&p, "ViewBudget", &c, &none, here), &stamps),
            key("v1", parts(&o, "SetBudget", &c, &none, here), &stamps),
            key("v1", parts(&o, "ViewBudget", &d, &none, here), &stamps),
            key("v1", parts(&o, "ViewBudget", &c, &amount, here), &stamps),
            key("v1", parts(&o, "ViewBudget", &c, &none, there), &stamps),
            key("v1", asked(), &stamps[..1]),
            key("v1", asked(), &[Stamp::Read(1), Stamp::Read(3)]),
            // The boundary between principal and action moved.
            key("v1", parts(&ov, "iewBudget", &c, &none, here), &stamps),
        ];
        for other in others {
            assert_ne!(base, other);
        }
    }
}
