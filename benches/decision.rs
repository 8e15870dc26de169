//! Decision latency against the size of the database:
//! - `warm/<n>`: entity slice from a warm cache + decision, its Cedar
//!   entities built (the first new decision on those records);
//! - `cold_sqlite/<n>`, `cold_postgres/<n>`: every record of the slice read
//!   from the store (a fresh cache per request) + decision;
//! - `decide_only`: the Cedar decision alone, on prepared slices;
//! - a new decision by the gateway's engine and by `cedar-local-agent` 3.0.0
//!   (AWS's reference authorizer), same requests, same slices, each
//!   building its Cedar entities from the slice, interleaved (p50/p99 from
//!   a timing loop; `support/local_agent.rs`);
//! - a new decision with the slice's Cedar entities kept built by the
//!   loader, as the gateway keeps them for records decided on before
//!   (p50/p99 from a timing loop);
//! - a reused decision (p50/p99 from a timing loop): the slice's records
//!   from a warm cache and the gateway's decision cache answering (what a
//!   repeated question costs the gateway);
//! - ListSubCustomers (limit 100, first page and its count) for a
//!   distributor's admin: the filter derived from the policies (partial
//!   evaluation, compiled to SQL, run) against the hand-written scope SQL
//!   the store used before lists followed the policies (p50/p99 from timing
//!   loops only);
//!
//! at 1k, 100k and 1M customers (`PGW_BENCH_SIZES=1000,100000` to choose).
//! Criterion reports means/medians; the p99 comes from plain timing loops
//! printed after it, and a Markdown table of medians and p99s is printed and
//! written to `<target>/bench-data/decision-results.md` (BENCHMARKS.md
//! includes it).
//!
//! The stores (one authorization per customer, 100 resellers under 10
//! distributors, `support/bigstore.rs`) are generated once: SQLite files in
//! `<target>/bench-data/`, PostgreSQL databases `pgw_bench_<n>` in the
//! cluster named by `PGW_BENCH_DATABASE_URL` or `PGW_TEST_DATABASE_URL`
//! (`source .ci/postgres.sh`). Without either URL the PostgreSQL rows are
//! skipped, and the output says so.
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs the 1k
//! SQLite store with a few iterations, only to prove the bench still works.
//!
//! For a profiler, `PGW_BENCH_PROFILE=decide:N` (or `warm:N`, `kept:N`)
//! runs only N new decisions on prepared slices (or with their slices from
//! the warm cache, or with those slices' Cedar entities kept built) and
//! stops, e.g. `PGW_BENCH_SIZES=1000 PGW_BENCH_PROFILE=decide:3000
//! valgrind --tool=callgrind target/release/deps/decision-HASH --bench`:
//! instruction counts repeat exactly where times on a shared machine do not.

#[path = "support/bigstore.rs"]
#[allow(dead_code)]
mod bigstore;
#[path = "support/local_agent.rs"]
mod local_agent;

use bigstore::{customer_partner, DISTRIBUTORS, NOW};
use cedar_policy::Entities;
use criterion::{criterion_group, BenchmarkId, Criterion};
use partner_gateway::authorizer::reuse::{DecisionCache, Parts};
use partner_gateway::catalog::fields::Paging;
use partner_gateway::entities::{EntityLoader, Slice};
use partner_gateway::policy::{AccessRequest, PolicyEngine};
use partner_gateway::refs::{EntityRef, EntityType};
use partner_gateway::store::query::{Bind, Where};
use partner_gateway::store::Store;
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

struct Setup {
    sizes: Vec<usize>,
    /// Distinct requests cycled through (the warm working set).
    working_set: usize,
    /// Iterations of the warm p99 timing loops.
    iterations: usize,
    /// Iterations of the cold p99 timing loops (each reads the store).
    cold_iterations: usize,
    /// Iterations of each list timing loop.
    list_iterations: usize,
    postgres: Option<String>,
}

/// The distributor whose admin lists its customers.
const DISTRIBUTORS_FIRST: &str = "dist-00";

fn full_run() -> bool {
    std::env::args().any(|a| a == "--bench")
}

fn setup() -> Setup {
    if full_run() {
        let sizes = std::env::var("PGW_BENCH_SIZES")
            .unwrap_or_else(|_| "1000,100000,1000000".into())
            .split(',')
            .map(|s| {
                s.trim()
                    .parse()
                    .expect("PGW_BENCH_SIZES: comma-separated customer counts")
            })
            .collect();
        Setup {
            sizes,
            working_set: 2_000,
            iterations: 100_000,
            cold_iterations: 3_000,
            list_iterations: 200,
            postgres: std::env::var("PGW_BENCH_DATABASE_URL")
                .or_else(|_| std::env::var("PGW_TEST_DATABASE_URL"))
                .ok(),
        }
    } else {
        Setup {
            sizes: vec![1_000],
            working_set: 50,
            iterations: 200,
            cold_iterations: 20,
            list_iterations: 3,
            postgres: None,
        }
    }
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A spread of requests over the whole store: finance of the customer's
/// partner setting a budget, the distributor's admin freezing, an account
/// manager viewing.
fn requests(customers: usize, n: usize) -> Vec<AccessRequest> {
    let stride = (customers / n).max(1);
    (0..n)
        .map(|k| {
            let i = (k * stride + k % 7) % customers;
            let partner = customer_partner(i);
            let customer = EntityRef::Customer(bigstore::customer_id(i).into());
            let mut ctx = Map::new();
            ctx.insert("now".into(), json!(NOW));
            ctx.insert("source_ip".into(), json!("10.1.2.3"));
            match k % 3 {
                0 => {
                    ctx.insert("budget_type".into(), json!("MONTHLY"));
                    ctx.insert("amount".into(), json!("1200.00"));
                    ctx.insert("cancel_partner_frozen".into(), Value::Bool(false));
                    AccessRequest::new(
                        EntityRef::Operator(format!("op-{partner}-finance").into()),
                        "SetBudget",
                        customer,
                        ctx,
                    )
                }
                1 => {
                    ctx.insert("freeze_type".into(), json!("ACCOUNT"));
                    let dist = format!("dist-{:02}", i % DISTRIBUTORS);
                    AccessRequest::new(
                        EntityRef::Operator(format!("op-{dist}-admin").into()),
                        "FreezeCustomer",
                        customer,
                        ctx,
                    )
                }
                _ => AccessRequest::new(
                    EntityRef::Operator(format!("op-{partner}-account_manager").into()),
                    "ViewCustomer",
                    customer,
                    ctx,
                ),
            }
        })
        .collect()
}

/// The rows of the summary table.
#[derive(Default)]
struct Summary(Vec<(String, String, Duration, Duration, usize)>);

impl Summary {
    /// Records (and prints) the median and p99 of `samples`.
    fn add(&mut self, what: &str, customers: &str, mut samples: Vec<Duration>) {
        samples.sort_unstable();
        let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        let (median, p99) = (at(0.50), at(0.99));
        println!(
            "{what} @ {customers} customers: median {:.1} µs, p99 {:.1} µs per decision ({} timed iterations)",
            micros(median),
            micros(p99),
            samples.len()
        );
        self.0
            .push((what.into(), customers.into(), median, p99, samples.len()));
    }

    /// The decision targets: warm p99 ≤ 25 µs, and flat from the
    /// smallest to the largest store (median at the largest within 25 % of
    /// the smallest's).
    fn targets(&self) -> String {
        let mut out = String::from("| target | measured | verdict |\n|---|---:|---|\n");
        let verdict = |met: bool, miss: String| {
            if met {
                "met".to_owned()
            } else {
                format!("missed: {miss}")
            }
        };
        for (what, n, _, p99, _) in self.0.iter().filter(|r| r.0.contains("warm")) {
            let p99 = micros(*p99);
            let _ = writeln!(
                out,
                "| warm decision p99 ≤ 25 µs ({n} customers; {what}) | {p99:.1} µs | {} |",
                verdict(p99 <= 25.0, format!("by {:.1} µs", p99 - 25.0))
            );
        }
        // Against the reference authorizer: a new decision, and a reused one.
        let find = |what: &str| self.0.iter().find(|r| r.0 == what);
        if let Some(theirs) = find(AGENT) {
            for (label, ours) in [("new", find(ENGINE)), ("reused", find(REUSED))] {
                let Some(ours) = ours else { continue };
                let per_second = |median: Duration| 1.0 / median.as_secs_f64().max(1e-9);
                let ahead = ours.2 < theirs.2 && ours.3 < theirs.3;
                let _ = writeln!(
                    out,
                    "| a {label} decision ahead of cedar-local-agent at p50 and p99 | ours {:.1} / {:.1} µs ({:.0} per s per core), cedar-local-agent {:.1} / {:.1} µs ({:.0} per s) | {} |",
                    micros(ours.2),
                    micros(ours.3),
                    per_second(ours.2),
                    micros(theirs.2),
                    micros(theirs.3),
                    per_second(theirs.2),
                    verdict(ahead, format!("p50 ×{:.2}, p99 ×{:.2} of theirs", micros(ours.2) / micros(theirs.2), micros(ours.3) / micros(theirs.3)))
                );
            }
        }
        let mut kinds: Vec<&str> = Vec::new();
        for r in &self.0 {
            if !kinds.contains(&r.0.as_str()) {
                kinds.push(&r.0);
            }
        }
        // A list's cost grows with what it counts: only decisions should be flat.
        for kind in kinds.into_iter().filter(|k| !k.starts_with(LIST)) {
            let rows: Vec<_> = self
                .0
                .iter()
                .filter(|r| r.0 == kind && r.1 != "any")
                .collect();
            if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
                if rows.len() < 2 {
                    continue;
                }
                let ratio = micros(last.2) / micros(first.2);
                let _ = writeln!(
                    out,
                    "| flat from {} to {} customers: {kind} | median ×{ratio:.2} | {} |",
                    first.1,
                    last.1,
                    verdict(ratio <= 1.25, format!("grows ×{ratio:.2}"))
                );
            }
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::from("| measurement | customers | median | p99 | timed iterations |\n|---|---:|---:|---:|---:|\n");
        for (what, n, median, p99, count) in &self.0 {
            let _ = writeln!(
                out,
                "| {what} | {n} | {:.1} µs | {:.1} µs | {count} |",
                micros(*median),
                micros(*p99)
            );
        }
        out
    }
}

/// The list measurements' name prefix.
const LIST: &str = "ListSubCustomers";
/// The measurements set against cedar-local-agent.
const ENGINE: &str = "new decision, entities built from the slice: partner-gateway's engine";
const AGENT: &str =
    "new decision, entities built from the slice: cedar-local-agent 3.0.0 simple::Authorizer";
const REUSED: &str = "slice records from warm cache + reused decision";

impl Summary {
    /// Issue 13's target: the derived filter within 1.2× of the hand-written
    /// scope, median and p99, per backend and size.
    fn list_targets(&self) -> String {
        let mut out = String::new();
        for derived in self.0.iter().filter(|r| r.0.contains("derived")) {
            let hand_name = derived.0.replace("derived filter", "hand-written scope");
            let Some(hand) = self.0.iter().find(|r| r.0 == hand_name && r.1 == derived.1) else {
                continue;
            };
            for (q, d, h) in [("median", derived.2, hand.2), ("p99", derived.3, hand.3)] {
                let ratio = micros(d) / micros(h);
                let _ = writeln!(
                    out,
                    "| {} ({} customers): derived ≤ 1.2× hand-written, {q} | ×{ratio:.2} | {} |",
                    derived.0.replace(", derived filter", ""),
                    derived.1,
                    if ratio <= 1.2 {
                        "met".to_owned()
                    } else {
                        format!("missed by ×{:.2}", ratio / 1.2)
                    }
                );
            }
        }
        out
    }
}

/// The first page (limit 100) and the count of ListSubCustomers for
/// `principal`, as the gateway and the store run it now: the principal's
/// slice (warm), the partial evaluation, its compiled filter, then the
/// store's query with the filter's SQL.
async fn list_derived(
    engine: &PolicyEngine,
    loader: &EntityLoader,
    store: &Store,
    principal: &EntityRef,
) -> usize {
    let entities = loader
        .principal_slice(engine, principal, &[])
        .await
        .expect("slice")
        .expect("the principal exists");
    let mut ctx = Map::new();
    ctx.insert("now".into(), json!(NOW));
    ctx.insert("source_ip".into(), json!("10.1.2.3"));
    let residuals = engine
        .residuals(
            principal,
            "ViewCustomer",
            EntityType::Customer,
            &ctx,
            &entities,
        )
        .expect("residuals");
    let filter =
        partner_gateway::policy::residual_filter::compile(&residuals, EntityType::Customer)
            .exact
            .expect("an exact filter");
    let mut w = Where::new();
    let cond =
        partner_gateway::store::filter_sql::condition(&filter, EntityType::Customer, "c", &mut w)
            .expect("an SQL form");
    w.raw(cond);
    list_page(store, w).await
}

/// The same page and count with the scope SQL the store had before
/// (`src/domain/scope.rs` until lists followed the policies).
async fn list_hand_written(store: &Store, partner: &str) -> usize {
    let mut w = Where::new();
    let p = w.arg(Bind::Text(partner.to_owned()));
    w.raw(format!(
        "(c.partner_id = {p} OR c.partner_id IN (SELECT id FROM partners WHERE distributor_id = {p}))"
    ));
    list_page(store, w).await
}

/// ListSubCustomers' count and first page of 100 under `w`.
async fn list_page(store: &Store, w: Where) -> usize {
    let from = "FROM customers c";
    let total = w.count(store.pool(), from).await.expect("count");
    let rows = w
        .fetch(
            store.pool(),
            &format!("SELECT c.* {from}"),
            "ORDER BY c.associated_on DESC, c.id",
            Some(Paging {
                offset: 0,
                limit: 100,
            }),
        )
        .await
        .expect("page");
    assert!(total > 0 && !rows.is_empty());
    rows.len()
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// One store size on one backend, with its warm loader and request sets.
struct Sized {
    customers: usize,
    sqlite: Store,
    postgres: Option<Store>,
    warm: EntityLoader,
    reqs: Vec<AccessRequest>,
    cold_reqs: Vec<AccessRequest>,
}

/// How a decision gets its slice's Cedar entities.
#[derive(Clone, Copy)]
enum Building {
    /// Built from the records each time: the first decision on them.
    EachTime,
    /// Kept built by the loader, as the gateway does
    /// (`EntityLoader::entities_for`): a new decision on records decided on
    /// before.
    Kept,
}

/// Slice through `loader` + decide; panics on an evaluation error, which
/// would make the numbers meaningless.
async fn decide(
    engine: &PolicyEngine,
    loader: &EntityLoader,
    r: &AccessRequest,
    building: Building,
) -> bool {
    let slice = loader
        .slice_records(engine, &r.principal, &r.resource, &[])
        .await
        .expect("slice")
        .expect("generated entities exist");
    let d = match building {
        Building::EachTime => {
            engine.decide(r, &slice.entities_for(engine, &r.action).expect("entities"))
        }
        Building::Kept => engine.decide(
            r,
            &loader
                .entities_for(engine, &r.action, &slice)
                .expect("entities"),
        ),
    };
    assert!(d.errors.is_empty(), "{d:?}");
    d.allow
}

/// A cold decision: a fresh cache, so every record is read from `store`.
/// What the gateway does for a question it has decided before on the same
/// facts: the slice's records from the warm cache, then the decision cache.
/// `own` is the request's context without `now` and `source_ip`, the
/// action's own fields, as the gateway keeps a question apart from Cedar's
/// request.
async fn reuse(
    engine: &PolicyEngine,
    loader: &EntityLoader,
    cache: &DecisionCache,
    r: &AccessRequest,
    own: &Map<String, Value>,
) -> bool {
    let slice = loader
        .slice_records(engine, &r.principal, &r.resource, &[])
        .await
        .expect("slice")
        .expect("generated entities exist");
    let question = Parts {
        principal: &r.principal,
        action: &r.action,
        resource: &r.resource,
        context: own,
        source_ip: *SOURCE_IP,
    };
    let evaluate = || engine.decide(r, &slice.entities_for(engine, &r.action).expect("entities"));
    cache
        .decide(engine, &question, *NOW_PARSED, &slice, evaluate)
        .allow
}

static SOURCE_IP: std::sync::LazyLock<std::net::IpAddr> =
    std::sync::LazyLock::new(|| "10.1.2.3".parse().expect("an address"));
static NOW_PARSED: std::sync::LazyLock<partner_gateway::time::Timestamp> =
    std::sync::LazyLock::new(|| partner_gateway::time::parse(NOW).expect("an instant"));

/// A request's context without `now` and `source_ip`.
fn own_context(r: &AccessRequest) -> Map<String, Value> {
    let mut own = r.context.clone();
    own.remove("now");
    own.remove("source_ip");
    own
}

async fn cold_decide(engine: &PolicyEngine, store: &Store, r: &AccessRequest) -> Duration {
    let fresh = EntityLoader::new(store.clone(), 1 << 20, Duration::from_secs(60));
    let t = Instant::now();
    std::hint::black_box(decide(engine, &fresh, r, Building::EachTime).await);
    t.elapsed()
}

/// The slice of each request of the working set, from the warm cache.
fn prepared_slices(
    rt: &tokio::runtime::Runtime,
    engine: &PolicyEngine,
    sized: &Sized,
) -> Vec<Slice> {
    rt.block_on(async {
        let mut out = Vec::new();
        for r in &sized.reqs {
            let slice = sized
                .warm
                .slice_records(engine, &r.principal, &r.resource, &[]);
            out.push(slice.await.unwrap().unwrap());
        }
        out
    })
}

/// Each slice's Cedar entities as the gateway decides on them: with the
/// entities of the request's action.
fn deciding_entities(engine: &PolicyEngine, sized: &Sized, slices: &[Slice]) -> Vec<Entities> {
    let both = sized.reqs.iter().zip(slices);
    both.map(|(r, slice)| slice.entities_for(engine, &r.action).unwrap())
        .collect()
}

fn bench(c: &mut Criterion) {
    let s = setup();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engine = PolicyEngine::load(&repo("policies"), &repo("schema")).unwrap();
    let mut summary = Summary::default();
    if s.postgres.is_none() {
        println!("PostgreSQL: skipped (set PGW_TEST_DATABASE_URL, e.g. `source .ci/postgres.sh`)");
    }

    // A quick run (`cargo test`) builds its tiny store in a temporary
    // directory, out of the way of a full run's cached files.
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let stores: Vec<Sized> = s
        .sizes
        .iter()
        .map(|&customers| {
            rt.block_on(async {
                let sqlite = if full_run() {
                    bigstore::sqlite(customers).await
                } else {
                    bigstore::sqlite_at(&scratch.path().join("decision.db"), customers).await
                };
                let postgres = match &s.postgres {
                    Some(url) => Some(bigstore::postgres(url, customers).await),
                    None => None,
                };
                let warm = EntityLoader::new(sqlite.clone(), 256 << 20, Duration::from_secs(3600));
                let reqs = requests(customers, s.working_set.min(customers));
                let mut allowed = 0;
                for r in &reqs {
                    allowed += usize::from(decide(&engine, &warm, r, Building::EachTime).await);
                }
                println!(
                    "store: {customers} customers; warm working set {} requests, {allowed} allowed",
                    reqs.len()
                );
                let cold_reqs = requests(customers, s.cold_iterations.min(customers));
                Sized {
                    customers,
                    sqlite,
                    postgres,
                    warm,
                    reqs,
                    cold_reqs,
                }
            })
        })
        .collect();

    // For a profiler (`valgrind --tool=callgrind`, `perf record`):
    // `PGW_BENCH_PROFILE=decide:N` makes N new decisions on prepared slices,
    // `warm:N` N new decisions with their slices from the warm cache,
    // `kept:N` the same with the slices' Cedar entities kept built by the
    // loader, and nothing else.
    if let Ok(profile) = std::env::var("PGW_BENCH_PROFILE") {
        let (what, n) = profile
            .split_once(':')
            .and_then(|(what, n)| Some((what, n.parse::<usize>().ok()?)))
            .expect("PGW_BENCH_PROFILE: decide:N, warm:N or kept:N");
        let first = &stores[0];
        let reqs = first.reqs.iter().cycle().take(n);
        match what {
            "decide" => {
                let slices =
                    deciding_entities(&engine, first, &prepared_slices(&rt, &engine, first));
                for (r, slice) in reqs.zip(slices.iter().cycle()) {
                    std::hint::black_box(engine.decide(r, slice));
                }
            }
            "warm" | "kept" => {
                let building = if what == "warm" {
                    Building::EachTime
                } else {
                    Building::Kept
                };
                for r in reqs {
                    std::hint::black_box(rt.block_on(decide(&engine, &first.warm, r, building)));
                }
            }
            _ => panic!("PGW_BENCH_PROFILE: decide:N, warm:N or kept:N, not {profile}"),
        }
        println!("profiled {n} iterations of {what}");
        return;
    }

    let mut group = c.benchmark_group("decision");
    if full_run() {
        group.measurement_time(Duration::from_secs(6));
        group.warm_up_time(Duration::from_secs(2));
    }
    for sized in &stores {
        let (engine, sized_ref) = (&engine, sized);
        let k = AtomicUsize::new(0);
        group.bench_with_input(BenchmarkId::new("warm", sized.customers), &(), |b, _| {
            b.to_async(&rt).iter(|| {
                let r = &sized_ref.reqs[k.fetch_add(1, Ordering::Relaxed) % sized_ref.reqs.len()];
                decide(engine, &sized_ref.warm, r, Building::EachTime)
            })
        });
        let backends = [
            ("cold_sqlite", Some(&sized.sqlite)),
            ("cold_postgres", sized.postgres.as_ref()),
        ];
        for (name, store) in backends {
            let Some(store) = store else { continue };
            let k = &k;
            group.bench_with_input(BenchmarkId::new(name, sized.customers), &(), |b, _| {
                b.to_async(&rt).iter_custom(move |iters| async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let r = &sized_ref.cold_reqs
                            [k.fetch_add(1, Ordering::Relaxed) % sized_ref.cold_reqs.len()];
                        total += cold_decide(engine, store, r).await;
                    }
                    total
                })
            });
        }
    }
    // The decision alone does not read the store: one size is enough.
    let first = &stores[0];
    let records = prepared_slices(&rt, &engine, first);
    let slices = deciding_entities(&engine, first, &records);
    let k = AtomicUsize::new(0);
    group.bench_function("decide_only", |b| {
        b.iter(|| {
            let i = k.fetch_add(1, Ordering::Relaxed) % first.reqs.len();
            engine.decide(&first.reqs[i], &slices[i])
        })
    });
    group.finish();

    // p99: plain timing loops.
    for sized in &stores {
        let n = sized.customers.to_string();
        let warm = |building| -> Vec<Duration> {
            rt.block_on(async {
                let mut out = Vec::with_capacity(s.iterations);
                for i in 0..s.iterations {
                    let r = &sized.reqs[i % sized.reqs.len()];
                    let t = Instant::now();
                    std::hint::black_box(decide(&engine, &sized.warm, r, building).await);
                    out.push(t.elapsed());
                }
                out
            })
        };
        summary.add(
            "slice from warm cache + decide",
            &n,
            warm(Building::EachTime),
        );
        summary.add(
            "slice from warm cache, its Cedar entities kept + decide",
            &n,
            warm(Building::Kept),
        );
        let cache = DecisionCache::new(64 << 20);
        let own: Vec<_> = sized.reqs.iter().map(own_context).collect();
        let reused: Vec<Duration> = rt.block_on(async {
            for (r, own) in sized.reqs.iter().zip(&own) {
                reuse(&engine, &sized.warm, &cache, r, own).await; // fills the cache
            }
            let mut out = Vec::with_capacity(s.iterations);
            for i in 0..s.iterations {
                let k = i % sized.reqs.len();
                let (r, own) = (&sized.reqs[k], &own[k]);
                let t = Instant::now();
                std::hint::black_box(reuse(&engine, &sized.warm, &cache, r, own).await);
                out.push(t.elapsed());
            }
            out
        });
        assert!(
            cache.stats().reused >= s.iterations as u64,
            "{:?}",
            cache.stats()
        );
        summary.add(REUSED, &n, reused);
        let backends = [
            ("SQLite", Some(&sized.sqlite)),
            ("PostgreSQL", sized.postgres.as_ref()),
        ];
        for (backend, store) in backends {
            let Some(store) = store else { continue };
            let cold: Vec<Duration> = rt.block_on(async {
                let mut out = Vec::with_capacity(sized.cold_reqs.len());
                for r in &sized.cold_reqs {
                    out.push(cold_decide(&engine, store, r).await);
                }
                out
            });
            summary.add(
                &format!("slice read from {backend} (cold) + decide"),
                &n,
                cold,
            );
        }
    }
    let alone: Vec<Duration> = (0..s.iterations)
        .map(|i| {
            let k = i % first.reqs.len();
            let t = Instant::now();
            std::hint::black_box(engine.decide(&first.reqs[k], &slices[k]));
            t.elapsed()
        })
        .collect();
    summary.add("decide alone (prepared slice)", "any", alone);

    // cedar-local-agent, on the same requests and slices: both decide
    // alike first, then each is timed, interleaved, building its request
    // and its entities: ours from the slice's records with the action's
    // entities, as the gateway does; theirs merging its provider's action
    // entities into the slice's, as it does on every call.
    let agent = local_agent::LocalAgent::new(&engine, &repo("policies"));
    let plain: Vec<Entities> = records.iter().map(|s| s.entities().unwrap()).collect();
    let ours_new = |k: usize| {
        let r = &first.reqs[k];
        engine.decide(r, &records[k].entities_for(&engine, &r.action).unwrap())
    };
    let (ours, theirs): (Vec<Duration>, Vec<Duration>) = rt.block_on(async {
        for (k, r) in first.reqs.iter().enumerate() {
            assert_eq!(
                agent.decide(&engine, r, &plain[k]).await,
                ours_new(k).allow,
                "cedar-local-agent and the engine disagree on {r:?}"
            );
        }
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for i in 0..s.iterations {
            let k = i % first.reqs.len();
            let t = Instant::now();
            std::hint::black_box(ours_new(k));
            ours.push(t.elapsed());
            let t = Instant::now();
            std::hint::black_box(agent.decide(&engine, &first.reqs[k], &plain[k]).await);
            theirs.push(t.elapsed());
        }
        (ours, theirs)
    });
    summary.add(ENGINE, "any", ours);
    summary.add(AGENT, "any", theirs);

    // Lists: a distributor admin's ListSubCustomers, derived against hand-written.
    let admin = EntityRef::Operator(format!("op-{}-admin", DISTRIBUTORS_FIRST).into());
    for sized in &stores {
        let n = sized.customers.to_string();
        let backends = [
            ("SQLite", Some(&sized.sqlite)),
            ("PostgreSQL", sized.postgres.as_ref()),
        ];
        for (backend, store) in backends {
            let Some(store) = store else { continue };
            let loader = EntityLoader::new(store.clone(), 1 << 20, Duration::from_secs(3600));
            let (derived, hand): (Vec<Duration>, Vec<Duration>) = rt.block_on(async {
                // Both answer the same page before anything is timed.
                assert_eq!(
                    list_derived(&engine, &loader, store, &admin).await,
                    list_hand_written(store, DISTRIBUTORS_FIRST).await
                );
                let (mut derived, mut hand) = (Vec::new(), Vec::new());
                // Interleaved, so both see the same machine.
                for _ in 0..s.list_iterations {
                    let t = Instant::now();
                    std::hint::black_box(list_derived(&engine, &loader, store, &admin).await);
                    derived.push(t.elapsed());
                    let t = Instant::now();
                    std::hint::black_box(list_hand_written(store, DISTRIBUTORS_FIRST).await);
                    hand.push(t.elapsed());
                }
                (derived, hand)
            });
            summary.add(
                &format!("{LIST} limit 100, distributor admin, {backend}, derived filter"),
                &n,
                derived,
            );
            summary.add(
                &format!("{LIST} limit 100, distributor admin, {backend}, hand-written scope"),
                &n,
                hand,
            );
        }
    }
    for sized in &stores {
        let stats = sized.warm.stats();
        println!(
            "warm cache at {} customers: {} hits, {} misses, {} entries",
            sized.customers, stats.hits, stats.misses, stats.entries
        );
    }
    let table = format!(
        "{}\n{}{}",
        summary.markdown(),
        summary.targets(),
        summary.list_targets()
    );
    println!("\n{table}");
    if full_run() {
        let out = bigstore::data_dir().join("decision-results.md");
        match std::fs::write(&out, &table) {
            Ok(()) => println!("written to {}", out.display()),
            Err(e) => eprintln!("cannot write {}: {e}", out.display()),
        }
    }
    rt.block_on(async {
        for sized in &stores {
            sized.sqlite.close().await;
            if let Some(pg) = &sized.postgres {
                pg.close().await;
            }
        }
    });
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
