//! Fair shares under pressure: one token bucket per principal, so that one
//! partner's runaway integration cannot take every other partner's capacity.
//!
//! - An operator's access keys, tokens and sessions share the operator's
//!   bucket; a customer's own key and tokens share the customer's.
//! - The bucket holds `burst` requests and refills at `rate` per second
//!   (`serve --rate-limit`, `--rate-limit-burst`); a partner's own limit
//!   ([`crate::store::limits`]) applies to each of its operators instead.
//! - A bucket is debited only after the request's signature is verified
//!   (the gateway calls [`Throttle::admit`] then), so nobody can drain
//!   another partner's bucket with requests it cannot sign.
//! - The limits are per gateway: N gateways behind one load balancer let a
//!   principal through at up to N times its rate.
//! - A refusal is answered after [`REFUSAL_DELAY`], which slows a client
//!   that retries without waiting.
//!
//! Buckets live in memory, one per principal seen recently; an idle one is
//! dropped once it would have refilled anyway.

use crate::assertion::{CallerKind, Identity};
use crate::store::limits::PartnerLimit;
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a refusal (429) waits before it is sent. A client honouring
/// `Retry-After` never meets it; a runaway loop that retries at once is held
/// to a few requests a second per connection, so that its refusals cost the
/// gateway little CPU and other partners keep their share (the fairness
/// figure of BENCHMARKS.md). Short, so that it holds a connection briefly.
pub const REFUSAL_DELAY: Duration = Duration::from_millis(200);

/// Principals of each kind (operators, customers) whose buckets are kept at
/// most; the least recently used go first.
const MAX_BUCKETS: u64 = 100_000;

/// What the throttle says of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over the principal's rate: try again after this long (whole seconds).
    Throttled {
        retry_after_secs: u64,
    },
}

/// One principal's bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The rate limits of every principal.
pub struct Throttle {
    /// The gateway's limit; `rate` 0: none.
    default: PartnerLimit,
    /// Partners' own limits, by partner id (refreshed from the store).
    partners: ArcSwap<HashMap<String, PartnerLimit>>,
    /// Buckets by principal id, one map per kind: a request finds its
    /// bucket by the id it has, without building a key.
    operators: Buckets,
    customers: Buckets,
}

type Buckets = moka::sync::Cache<String, Arc<Mutex<Bucket>>>;

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("default", &self.default)
            .field(
                "buckets",
                &(self.operators.entry_count() + self.customers.entry_count()),
            )
            .finish()
    }
}

/// Whose bucket a request spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Principal<'a> {
    Operator(&'a str),
    Customer(&'a str),
}

/// The principal whose bucket a caller spends, and the partner whose own
/// limit applies.
fn bucket_of(identity: &Identity) -> (Principal<'_>, Option<&str>) {
    match identity.kind {
        CallerKind::Operator => (
            Principal::Operator(&identity.id),
            identity.partner.as_deref(),
        ),
        // A session spends its operator's bucket.
        CallerKind::Session => (
            Principal::Operator(identity.source_operator.as_deref().unwrap_or(&identity.id)),
            identity.partner.as_deref(),
        ),
        CallerKind::Customer => (Principal::Customer(&identity.id), None),
    }
}

impl Throttle {
    /// A throttle at `default` for everyone (`rate` 0: no limit).
    pub fn new(default: PartnerLimit) -> Throttle {
        let buckets = || {
            moka::sync::Cache::builder()
                .max_capacity(MAX_BUCKETS)
                // A bucket idle for an hour has refilled, unless its burst is
                // above 3600 × its rate: such a one is dropped a little
                // early, in its principal's favour.
                .time_to_idle(Duration::from_secs(3600))
                .build()
        };
        Throttle {
            default,
            partners: ArcSwap::from_pointee(HashMap::new()),
            operators: buckets(),
            customers: buckets(),
        }
    }

    /// Replaces the partners' own limits.
    pub fn set_partner_limits(&self, limits: HashMap<String, PartnerLimit>) {
        self.partners.store(Arc::new(limits));
    }

    /// The limit of a principal of `partner`.
    fn limit(&self, partner: Option<&str>) -> PartnerLimit {
        partner
            .and_then(|p| self.partners.load().get(p).copied())
            .unwrap_or(self.default)
    }

    /// Takes one request from `identity`'s bucket, or says when to retry.
    pub fn admit(&self, identity: &Identity, now: Instant) -> Admission {
        let (principal, partner) = bucket_of(identity);
        let limit = self.limit(partner);
        if limit.rate == 0 {
            return Admission::Admitted;
        }
        let (rate, burst) = (f64::from(limit.rate), f64::from(limit.burst.max(1)));
        let (buckets, id) = match principal {
            Principal::Operator(id) => (&self.operators, id),
            Principal::Customer(id) => (&self.customers, id),
        };
        // Found by the id borrowed; its key is copied only when it is new.
        let bucket = buckets.get_with_by_ref(id, || {
            Arc::new(Mutex::new(Bucket {
                tokens: burst,
                at: now,
            }))
        });
        let mut b = bucket.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Admission::Admitted
        } else {
            let wait = (1.0 - b.tokens) / rate;
            Admission::Throttled {
                retry_after_secs: (wait.ceil() as u64).max(1),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn operator(id: &str, partner: &str) -> Identity {
        Identity {
            kind: CallerKind::Operator,
            id: id.into(),
            partner: Some(partner.into()),
            customer: None,
            source_operator: None,
        }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let t = Throttle::new(PartnerLimit {
            rate: 10,
            burst: 20,
        });
        let op = operator("op-1", "p-1");
        let start = Instant::now();
        let admitted = (0..100)
            .filter(|_| t.admit(&op, start) == Admission::Admitted)
            .count();
        assert_eq!(admitted, 20);
        assert_eq!(
            t.admit(&op, start),
            Admission::Throttled {
                retry_after_secs: 1
            }
        );
        // One second later: ten more.
        let later = start + Duration::from_secs(1);
        let admitted = (0..100)
            .filter(|_| t.admit(&op, later) == Admission::Admitted)
            .count();
        assert_eq!(admitted, 10);
        // Another operator has its own bucket.
        assert_eq!(
            t.admit(&operator("op-2", "p-1"), later),
            Admission::Admitted
        );
    }

    #[test]
    fn a_session_spends_its_operators_bucket_and_partners_have_their_own_limits() {
        let t = Throttle::new(PartnerLimit { rate: 1, burst: 1 });
        let now = Instant::now();
        let session = Identity {
            kind: CallerKind::Session,
            id: "s-1".into(),
            partner: Some("p-1".into()),
            customer: Some("c-1".into()),
            source_operator: Some("op-1".into()),
        };
        assert_eq!(t.admit(&operator("op-1", "p-1"), now), Admission::Admitted);
        assert!(matches!(
            t.admit(&session, now),
            Admission::Throttled { .. }
        ));
        t.set_partner_limits(HashMap::from([(
            "p-1".to_owned(),
            PartnerLimit { rate: 0, burst: 0 },
        )]));
        assert_eq!(t.admit(&session, now), Admission::Admitted);
        let off = Throttle::new(PartnerLimit { rate: 0, burst: 0 });
        assert!((0..1000).all(|_| off.admit(&session, now) == Admission::Admitted));
    }
}
