//! Proofs about a policy set for every request and every entity store, with
//! Cedar's symbolic compiler (cedar-policy-symcc) and the cvc5 solver:
//!
//! - [`verify`]: every invariant of `<policies>/invariants/` holds, and no
//!   policy errors on any schema-valid request (built in);
//! - [`diff`]: where two policy sets decide differently.
//!
//! The work is split per request kind (principal type, action, resource
//! type) from the schema, each with only the policies whose scope can match
//! it, and spread over a few solver processes. A kind's result is kept for
//! the life of the process under a hash of everything it depends on (schema,
//! those policies, those invariants), so a reload re-proves only the kinds an
//! edit touched. A solver's counterexample is replayed through Cedar's
//! concrete evaluator, and the test case written from it through the
//! decision-test runner, before it is reported; when either disagrees the
//! report says so, and nothing is ever counted as proved that was not.

mod counterexample;
pub mod invariants;
pub mod question;
mod solver;
pub mod testing;

pub use invariants::{Check, Invariant, Invariants};
pub use solver::{solver_program, solver_version};

use crate::policy::plan::{can_apply, groups_of, with_missing};
use crate::policy::{describe, Decision, PolicyEngine};
use cedar_policy::{Authorizer, Entities, EntityUid, Policy, PolicySet, RequestEnv, Schema};
use cedar_policy_symcc::{CompiledPolicy, CompiledPolicySet, Env};
use counterexample::Case;
use serde_json::Value;
use sha2::{Digest, Sha256};
use solver::{Query, Worker};
use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

/// The time a whole verification or diff may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// How a verification or a diff runs.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// For the whole run; what is not proved by then is reported unproved.
    pub timeout: Duration,
    /// Solver processes at once.
    pub jobs: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            timeout: DEFAULT_TIMEOUT,
            jobs: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(4),
        }
    }
}

/// A principal type, an action and a resource type: `Session ListCustomers Partner`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestKind {
    pub principal: String,
    pub action: String,
    pub resource: String,
}

impl RequestKind {
    fn of(env: &RequestEnv) -> RequestKind {
        RequestKind {
            principal: env.principal().basename().to_owned(),
            action: env.action().id().unescaped().to_owned(),
            resource: env.resource().basename().to_owned(),
        }
    }
}

impl fmt::Display for RequestKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.principal, self.action, self.resource)
    }
}

/// What the solver found, checked against the concrete evaluator.
#[derive(Clone, Debug)]
pub struct Counterexample {
    pub kind: RequestKind,
    /// What is wrong with the request, in a sentence.
    pub what: String,
    /// `Session::"session-1" ListCustomers Partner::"partner-1"`
    pub request: String,
    /// A decision test file (inline entities) that reproduces it.
    pub test: Value,
    pub replay: Replay,
}

/// The concrete evaluator's word on a counterexample.
#[derive(Clone, Debug)]
pub enum Replay {
    /// Cedar decides the request as the solver said.
    Confirmed,
    /// It does not: a solver or encoding bug. Reported loudly, and a
    /// property with such a finding is not proved either.
    Disagrees(String),
}

/// One finding against a property.
#[derive(Clone, Debug)]
pub enum Finding {
    Counterexample(Counterexample),
    /// No answer for this request kind: the time limit, a solver failure,
    /// `unknown`, or a policy the symbolic compiler refused. Never a pass.
    Unproved {
        kind: RequestKind,
        reason: String,
    },
}

/// One property and what was found against it.
#[derive(Clone, Debug)]
pub struct PropertyReport {
    /// The invariant's `@id`, or `never-errors`.
    pub id: String,
    /// `never`, `only_when` or `never_errors`.
    pub check: &'static str,
    /// `file:line` of the invariant.
    pub location: Option<String>,
    /// The comment above the invariant.
    pub comment: Option<String>,
    pub findings: Vec<Finding>,
}

impl PropertyReport {
    pub fn proved(&self) -> bool {
        self.findings.is_empty()
    }

    fn counterexamples(&self) -> impl Iterator<Item = &Counterexample> {
        self.findings.iter().filter_map(|f| match f {
            Finding::Counterexample(c) => Some(c),
            Finding::Unproved { .. } => None,
        })
    }
}

/// The id of the built-in property.
pub const NEVER_ERRORS: &str = "never-errors";

/// What [`verify`] found.
#[derive(Clone, Debug)]
pub struct Report {
    /// Every invariant in file order, then `never-errors`.
    pub properties: Vec<PropertyReport>,
    pub request_kinds: usize,
    /// Request kinds whose result was kept from an earlier run.
    pub reused: usize,
    /// Questions put to the solver.
    pub asked: usize,
    pub elapsed: Duration,
}

impl Report {
    pub fn proved(&self) -> bool {
        self.properties.iter().all(PropertyReport::proved)
    }

    pub fn failing(&self) -> impl Iterator<Item = &PropertyReport> {
        self.properties.iter().filter(|p| !p.proved())
    }

    /// One line per property that is not proved, `file:line: ...`, naming
    /// the first counterexample (how reload failures are listed).
    pub fn problems(&self) -> Vec<String> {
        self.failing()
            .map(|p| {
                let at = p
                    .location
                    .as_deref()
                    .map(|l| format!("{l}: "))
                    .unwrap_or_default();
                let first = p.findings.first().map(|f| match f {
                    Finding::Counterexample(c) => format!(
                        "{}: {}{}",
                        c.request,
                        c.what,
                        match &c.replay {
                            Replay::Confirmed => String::new(),
                            Replay::Disagrees(why) =>
                                format!(" (SOLVER DISAGREES WITH CEDAR: {why})"),
                        }
                    ),
                    Finding::Unproved { kind, reason } => format!("{kind}: {reason}"),
                });
                format!(
                    "{at}invariant {} ({}) not proved on {} request kind{}; first: {}",
                    p.id,
                    p.check,
                    p.findings.len(),
                    if p.findings.len() == 1 { "" } else { "s" },
                    first.unwrap_or_default()
                )
            })
            .collect()
    }

    /// The first counterexample of each property that is not proved.
    pub fn first_counterexamples(&self) -> Vec<&Counterexample> {
        self.failing()
            .filter_map(|p| p.counterexamples().next())
            .collect()
    }

    /// The report as `policy verify` prints it; `full` counterexamples per
    /// property are printed as test files, the others as one line.
    pub fn render(&self, full: usize) -> String {
        let mut out = String::new();
        for p in &self.properties {
            let at = p.location.as_deref().unwrap_or("built in");
            if p.proved() {
                let _ = writeln!(out, "proved   {} ({}, {at})", p.id, p.check);
                continue;
            }
            let _ = writeln!(
                out,
                "REFUTED  {} ({}, {at}){}",
                p.id,
                p.check,
                p.comment
                    .as_deref()
                    .map(|c| format!(": {c}"))
                    .unwrap_or_default()
            );
            let mut shown = 0;
            for f in &p.findings {
                match f {
                    Finding::Counterexample(c) => {
                        let _ = writeln!(out, "  {}: {}", c.request, c.what);
                        if let Replay::Disagrees(why) = &c.replay {
                            let _ = writeln!(
                                out,
                                "  SOLVER DISAGREES WITH THE CONCRETE EVALUATOR: {why}"
                            );
                        }
                        if shown < full {
                            shown += 1;
                            let _ = writeln!(
                                out,
                                "  decision test (partner-gateway policy test FILE):\n{}",
                                indent(&pretty(&c.test), 4)
                            );
                        }
                    }
                    Finding::Unproved { kind, reason } => {
                        let _ = writeln!(out, "  {kind}: NOT PROVED: {reason}");
                    }
                }
            }
        }
        let failed = self.failing().count();
        let _ = writeln!(
            out,
            "{} proved, {} not proved ({} request kinds, {} solver checks, {} kinds reused, {:.1} s)",
            self.properties.len() - failed,
            failed,
            self.request_kinds,
            self.asked,
            self.reused,
            self.elapsed.as_secs_f64()
        );
        out
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

fn indent(text: &str, by: usize) -> String {
    let pad = " ".repeat(by);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------ verify

/// What a request kind yields, before replay: kept across runs.
#[derive(Clone, Debug)]
enum Raw {
    /// The set allows a request the invariant rules out.
    Violation { invariant: String, env: Env },
    /// The invariant itself errors on a request.
    InvariantErrors { invariant: String, env: Env },
    /// A policy of the set errors on a request.
    PolicyErrors { policy: String, env: Env },
}

#[derive(Default)]
struct KindResult {
    raw: Vec<Raw>,
    /// (property id, why) for each question without an answer.
    unproved: Vec<(String, String)>,
}

/// One request kind to prove.
struct KindJob {
    env: RequestEnv,
    kind: RequestKind,
    /// The policies whose scope can match the kind.
    policies: PolicySet,
    permits: bool,
    /// Indexes of the invariants whose scope can match the kind.
    invariants: Vec<usize>,
    key: [u8; 32],
}

/// Kind results proved before, by [`KindJob::key`]. Bounded: cleared when full.
/// Process-wide on purpose: a memo of a pure function, keyed by a hash of
/// every input of the proof (schema, policies, invariants, assumptions), so
/// a result is right for whoever asks; the live and shadow reloaders, the
/// CLI and the tests all gain from sharing it.
static PROVED: LazyLock<Mutex<HashMap<[u8; 32], Vec<Raw>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
const PROVED_CAPACITY: usize = 20_000;

/// Proves every invariant and that no policy errors, over every request
/// kind of the schema. `Err` only when the run could not start (no solver,
/// a schema without action entities).
pub fn verify(
    engine: &PolicyEngine,
    invariants: &Invariants,
    options: &VerifyOptions,
) -> Result<Report, String> {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let schema = engine.schema();
    let jobs = kind_jobs(engine, invariants)?;

    let cached: Vec<Option<Vec<Raw>>> = {
        let proved = PROVED.lock().unwrap_or_else(|p| p.into_inner());
        jobs.iter().map(|j| proved.get(&j.key).cloned()).collect()
    };
    let todo: Vec<&KindJob> = jobs
        .iter()
        .zip(&cached)
        .filter(|(_, c)| c.is_none())
        .map(|(j, _)| j)
        .collect();
    let (computed, asked) = solver::run(&todo, options.jobs, deadline, |w, job| {
        check_kind(w, job, schema, invariants)
    })?;
    {
        let mut proved = PROVED.lock().unwrap_or_else(|p| p.into_inner());
        if proved.len() + computed.len() > PROVED_CAPACITY {
            proved.clear();
        }
        for (job, result) in todo.iter().zip(&computed) {
            if result.unproved.is_empty() {
                proved.insert(job.key, result.raw.clone());
            }
        }
    }
    let mut computed = computed.into_iter();
    let mut properties: Vec<PropertyReport> = invariants
        .items
        .iter()
        .map(|i| PropertyReport {
            id: i.info.id.clone(),
            check: i.check.as_str(),
            location: Some(i.info.location()),
            comment: i.info.comment.clone(),
            findings: Vec::new(),
        })
        .collect();
    properties.push(PropertyReport {
        id: NEVER_ERRORS.into(),
        check: "never_errors",
        location: None,
        comment: Some("no policy errors on any schema-valid request".into()),
        findings: Vec::new(),
    });
    let positions: HashMap<String, usize> = properties
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.clone(), i))
        .collect();
    let reused = cached.iter().filter(|c| c.is_some()).count();
    for (job, cached) in jobs.iter().zip(cached) {
        let result = match cached {
            Some(raw) => KindResult {
                raw,
                unproved: Vec::new(),
            },
            None => computed.next().unwrap_or_default(),
        };
        for (property, reason) in result.unproved {
            let at = positions
                .get(&property)
                .copied()
                .unwrap_or(properties.len() - 1);
            properties[at].findings.push(Finding::Unproved {
                kind: job.kind.clone(),
                reason,
            });
        }
        for raw in result.raw {
            let (property, c) = replay_raw(engine, invariants, &job.kind, &raw);
            let at = positions
                .get(property)
                .copied()
                .unwrap_or(properties.len() - 1);
            properties[at].findings.push(Finding::Counterexample(c));
        }
    }
    Ok(Report {
        properties,
        request_kinds: jobs.len(),
        reused,
        asked,
        elapsed: started.elapsed(),
    })
}

/// One request kind of the schema, and which policies can apply to it.
struct Scope {
    env: RequestEnv,
    kind: RequestKind,
    /// The action groups the action is in.
    groups: Vec<EntityUid>,
}

/// The policies of a set whose scope can match a request kind.
struct Subset {
    policies: PolicySet,
    /// Their Cedar text, sorted: what decides the kind.
    texts: Vec<String>,
    permits: bool,
}

impl Scope {
    /// Every request kind of `schema`, in a stable order.
    fn all(schema: &Schema) -> Result<Vec<Scope>, String> {
        let actions = schema.action_entities().map_err(|e| describe(&e))?;
        let mut scopes: Vec<Scope> = schema
            .request_envs()
            .map(|env| Scope {
                kind: RequestKind::of(&env),
                groups: groups_of(&actions, env.action()),
                env,
            })
            .collect();
        scopes.sort_by(|a, b| a.kind.cmp(&b.kind));
        Ok(scopes)
    }

    fn applies(&self, policy: &Policy) -> bool {
        let env = &self.env;
        can_apply(
            policy,
            env.action(),
            &self.groups,
            env.principal(),
            env.resource(),
        )
    }

    fn subset(&self, set: &PolicySet) -> Subset {
        let mut policies = PolicySet::new();
        let mut texts = Vec::new();
        let mut permits = false;
        for p in set.policies().filter(|p| self.applies(p)) {
            texts.push(p.to_string());
            permits |= p.effect() == cedar_policy::Effect::Permit;
            // Ids are unique in the set it comes from.
            let _ = policies.add(p.clone());
        }
        texts.sort();
        Subset {
            policies,
            texts,
            permits,
        }
    }
}

fn kind_jobs(engine: &PolicyEngine, invariants: &Invariants) -> Result<Vec<KindJob>, String> {
    let mut jobs = Vec::new();
    for scope in Scope::all(engine.schema())? {
        let subset = scope.subset(engine.policy_set());
        let mut key = Sha256::new();
        key.update(engine.schema_digest());
        key.update(scope.kind.to_string());
        for text in &subset.texts {
            key.update([0]);
            key.update(text);
        }
        let mut applicable = Vec::new();
        for (i, inv) in invariants.items.iter().enumerate() {
            if scope.applies(&inv.written) {
                key.update([1]);
                key.update(inv.check.as_str());
                // The invariant as asked, with the assumptions and the day
                // it was proved on.
                key.update(inv.violation.to_string());
                applicable.push(i);
            }
        }
        jobs.push(KindJob {
            env: scope.env,
            kind: scope.kind,
            policies: subset.policies,
            permits: subset.permits,
            invariants: applicable,
            key: key.finalize().into(),
        });
    }
    Ok(jobs)
}

fn check_kind(
    w: &mut Worker,
    job: &KindJob,
    schema: &Schema,
    invariants: &Invariants,
) -> KindResult {
    let env = &job.env;
    let mut out = KindResult::default();
    let refused =
        |e: &dyn miette::Diagnostic| format!("the symbolic compiler refused it: {}", describe(e));
    // Without a permit the set allows nothing here: no invariant can fail.
    let set = match job.permits {
        false => Ok(None),
        true => CompiledPolicySet::compile(&job.policies, env, schema)
            .map(Some)
            .map_err(|e| refused(&e)),
    };
    // Asked at most once per kind, and only when a violation exists without
    // them: an assumption that errors would make the violations it is part
    // of skip the requests it errors on, so all of them, in the order
    // violations read them, must be proved never to.
    let mut assumptions_hold: Option<Result<(), String>> = None;
    for &i in &job.invariants {
        let inv = &invariants.items[i];
        let id = &inv.info.id;
        let mut unproved = |why: String| out.unproved.push((id.clone(), why));
        match CompiledPolicy::compile(&inv.written, env, schema) {
            Ok(p) => match w.ask(Query::NeverErrors(&p)) {
                Ok(None) => {}
                Ok(Some(env)) => out.raw.push(Raw::InvariantErrors {
                    invariant: id.clone(),
                    env,
                }),
                Err(why) => unproved(why),
            },
            Err(e) => unproved(refused(&e)),
        }
        let set = match &set {
            Ok(Some(set)) => set,
            Ok(None) => continue,
            Err(why) => {
                out.unproved.push((id.clone(), why.clone()));
                continue;
            }
        };
        // Without the assumptions first: proved so, it is proved (the
        // common case, and the cheaper question); otherwise asked again with
        // them, for a counterexample like real data or a proof under them.
        let ask = |w: &mut Worker, violation: &Policy| {
            CompiledPolicy::compile(violation, env, schema)
                .map_err(|e| refused(&e))
                .and_then(|p| w.ask(Query::Disjoint(set, &p.into_compiled_policyset())))
        };
        let answer = match ask(w, &inv.unassumed) {
            Ok(Some(_)) => match assumptions_hold
                .get_or_insert_with(|| assumptions_never_error(w, invariants, env, schema))
            {
                Ok(()) => ask(w, &inv.violation),
                Err(why) => Err(why.clone()),
            },
            other => other,
        };
        match answer {
            Ok(None) => {}
            Ok(Some(env)) => out.raw.push(Raw::Violation {
                invariant: id.clone(),
                env,
            }),
            Err(why) => out.unproved.push((id.clone(), why)),
        }
    }
    for p in job.policies.policies() {
        let answer = CompiledPolicy::compile(p, env, schema)
            .map_err(|e| refused(&e))
            .and_then(|c| w.ask(Query::NeverErrors(&c)));
        match answer {
            Ok(None) => {}
            Ok(Some(env)) => out.raw.push(Raw::PolicyErrors {
                policy: p.id().to_string(),
                env,
            }),
            Err(why) => out
                .unproved
                .push((NEVER_ERRORS.into(), format!("policy {}: {why}", p.id()))),
        }
    }
    out
}

/// Whether the assumptions, all of them in the order violations read them,
/// never error on `env`'s request kind.
fn assumptions_never_error(
    w: &mut Worker,
    invariants: &Invariants,
    env: &RequestEnv,
    schema: &Schema,
) -> Result<(), String> {
    let answer = CompiledPolicy::compile(&invariants.assumed, env, schema)
        .map_err(|e| format!("the symbolic compiler refused them: {}", describe(&e)))
        .and_then(|c| w.ask(Query::NeverErrors(&c)));
    match answer {
        Ok(None) => Ok(()),
        Ok(Some(_)) => Err(format!(
            "the assumptions ({}) can error on this request kind: guard what they read with `has` and `is`",
            invariants.assuming()
        )),
        Err(why) => Err(format!("the assumptions: {why}")),
    }
}

/// Cedar's concrete answer for `env` with `policies`.
struct Concrete {
    allow: bool,
    /// The policies that decided it (the permits that allow it, or the
    /// forbids that deny it), by `@id`.
    determining: Vec<String>,
    errors: Vec<String>,
}

impl Concrete {
    fn of(policies: &PolicySet, env: &Env, schema: &Schema) -> Concrete {
        let entities = match schema.action_entities() {
            Ok(actions) => with_missing(&env.entities, actions.iter()),
            Err(e) => Err(describe(&e)),
        };
        let entities: std::borrow::Cow<'_, Entities> = match entities {
            Ok(e) => e,
            Err(e) => {
                return Concrete {
                    allow: false,
                    determining: Vec::new(),
                    errors: vec![e],
                }
            }
        };
        let answer = Authorizer::new().is_authorized(&env.request, policies, &entities);
        let mut determining: Vec<String> = answer
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        determining.sort();
        Concrete {
            allow: answer.decision() == cedar_policy::Decision::Allow,
            determining,
            errors: answer
                .diagnostics()
                .errors()
                .map(|e| e.to_string())
                .collect(),
        }
    }

    /// What the gateway does with it: allow only without errors.
    fn gateway_allows(&self) -> bool {
        self.allow && self.errors.is_empty()
    }
}

fn single(policy: &Policy) -> PolicySet {
    let mut set = PolicySet::new();
    let _ = set.add(policy.clone());
    set
}

/// Checks a finding on the concrete evaluator and writes its test case.
fn replay_raw<'r>(
    engine: &PolicyEngine,
    invariants: &Invariants,
    kind: &RequestKind,
    raw: &'r Raw,
) -> (&'r str, Counterexample) {
    let schema = engine.schema();
    let full = Concrete::of(engine.policy_set(), env_of(raw), schema);
    let invariant = |id: &str| invariants.items.iter().find(|i| i.info.id == id);
    let (property, what, claim): (&str, String, Result<(), String>) = match raw {
        Raw::Violation { invariant: id, env } => {
            let Some(inv) = invariant(id) else {
                return (id, lost(kind, raw));
            };
            let matched = Concrete::of(&single(&inv.violation), env, schema);
            // The permits that allow it: the policies to look at (an edit
            // to one of them, or a forbid missing beside them).
            let allowed_by = format!("allowed by {}", full.determining.join(", "));
            let what = match inv.check {
                Check::Never => format!("{allowed_by}; the invariant says never"),
                Check::OnlyWhen => {
                    format!("{allowed_by}, but the invariant's conditions do not hold")
                }
            } + &errors_note(&full);
            let claim = if !full.allow {
                Err("Cedar denies this request".to_owned())
            } else if !(matched.allow && matched.errors.is_empty()) {
                Err("the invariant does not apply to this request".to_owned())
            } else {
                Ok(())
            };
            (id, what, claim)
        }
        Raw::InvariantErrors { invariant: id, env } => {
            let Some(inv) = invariant(id) else {
                return (id, lost(kind, raw));
            };
            let own = Concrete::of(&single(&inv.written), env, schema);
            let what = format!(
                "the invariant itself errors on this request, so it would not cover it: {}",
                own.errors.join("; ")
            );
            let claim = if own.errors.is_empty() {
                Err("the invariant evaluates without error".to_owned())
            } else {
                Ok(())
            };
            (id, what, claim)
        }
        Raw::PolicyErrors { policy, .. } => {
            let errors: Vec<&String> = full
                .errors
                .iter()
                .filter(|e| e.contains(policy.as_str()))
                .collect();
            let what = format!(
                "policy {policy} errors on this request; Cedar skips it and the gateway denies: {}",
                errors
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            );
            let claim = if errors.is_empty() {
                Err(format!("policy {policy} evaluates without error"))
            } else {
                Ok(())
            };
            (NEVER_ERRORS, what, claim)
        }
    };
    let case = Case {
        description: format!(
            "policy verify: counterexample to {property} ({what})",
            property = if property == NEVER_ERRORS {
                NEVER_ERRORS.to_owned()
            } else {
                format!("invariant {property}")
            }
        ),
        name: format!("{property}: {kind}"),
        expect: "deny",
    };
    let expected = Decided {
        allow: full.gateway_allows(),
        errors: !full.errors.is_empty(),
    };
    let written = write_case(env_of(raw), &case, &[(engine, expected)]);
    let (test, replay) = match (claim, written) {
        (Ok(()), Ok(test)) => (test, Replay::Confirmed),
        (Err(why), Ok(test)) => (test, Replay::Disagrees(why)),
        (Ok(()), Err((test, why))) | (Err(_), Err((test, why))) => (test, Replay::Disagrees(why)),
    };
    (
        property,
        Counterexample {
            kind: kind.clone(),
            what,
            request: counterexample::request_line(&test),
            test,
            replay,
        },
    )
}

fn env_of(raw: &Raw) -> &Env {
    match raw {
        Raw::Violation { env, .. }
        | Raw::InvariantErrors { env, .. }
        | Raw::PolicyErrors { env, .. } => env,
    }
}

fn lost(kind: &RequestKind, raw: &Raw) -> Counterexample {
    Counterexample {
        kind: kind.clone(),
        what: "a finding for an invariant that is no longer loaded".into(),
        request: String::new(),
        test: Value::Null,
        replay: Replay::Disagrees(format!("{raw:?}")),
    }
}

fn errors_note(c: &Concrete) -> String {
    if c.errors.is_empty() {
        String::new()
    } else {
        format!(
            " (Cedar allows it by skipping policies that error; the gateway denies on errors: {})",
            c.errors.join("; ")
        )
    }
}

/// A gateway decision as far as a replay compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Decided {
    allow: bool,
    errors: bool,
}

impl Decided {
    fn of(d: &Decision) -> Decided {
        Decided {
            allow: d.allow,
            errors: !d.errors.is_empty(),
        }
    }
}

/// Writes `env` as a test file and runs it through the decision-test runner
/// with each engine, which must decide as given: renamed for reading if that
/// keeps the decisions, with the solver's own ids otherwise.
fn write_case(
    env: &Env,
    case: &Case<'_>,
    expected: &[(&PolicyEngine, Decided)],
) -> Result<Value, (Value, String)> {
    let mut last = (Value::Null, String::new());
    for readable in [true, false] {
        let test = match counterexample::test_file(env, case, readable) {
            Ok(t) => t,
            Err(e) => return Err((Value::Null, format!("cannot write the test case: {e}"))),
        };
        let mismatch = expected.iter().find_map(|(engine, want)| {
            match testing::decide_inline(engine, &test) {
                Ok(got) if got.len() == 1 && Decided::of(&got[0]) == *want => None,
                Ok(got) => Some(format!(
                    "the written test case decides {:?} with {}, the evaluator {want:?}",
                    got.first(),
                    engine.version()
                )),
                Err(e) => Some(format!("the written test case does not run: {e}")),
            }
        });
        match mismatch {
            None => return Ok(test),
            Some(why) => last = (test, why),
        }
    }
    Err(last)
}

// -------------------------------------------------------------------- diff

/// What [`diff`] found: the requests whose decision flips.
#[derive(Clone, Debug, Default)]
pub struct DiffReport {
    /// Denied by the old set, allowed by the new one: one per request kind.
    pub newly_allowed: Vec<Counterexample>,
    /// Allowed by the old set, denied by the new one.
    pub newly_denied: Vec<Counterexample>,
    pub unproved: Vec<(RequestKind, String)>,
    pub request_kinds: usize,
    pub asked: usize,
    pub elapsed: Duration,
}

impl DiffReport {
    pub fn alike(&self) -> bool {
        self.newly_allowed.is_empty() && self.newly_denied.is_empty() && self.unproved.is_empty()
    }

    /// The report as `policy diff` prints it (`full` test files per
    /// direction): nothing when the sets decide alike.
    pub fn render(&self, full: usize) -> String {
        let mut out = String::new();
        for (label, list) in [
            ("NEWLY ALLOWED", &self.newly_allowed),
            ("NEWLY DENIED ", &self.newly_denied),
        ] {
            for (shown, c) in list.iter().enumerate() {
                let _ = writeln!(out, "{label} {}: {}", c.request, c.what);
                if let Replay::Disagrees(why) = &c.replay {
                    let _ = writeln!(out, "  SOLVER DISAGREES WITH THE CONCRETE EVALUATOR: {why}");
                }
                if shown < full {
                    let _ = writeln!(out, "{}", indent(&pretty(&c.test), 2));
                }
            }
        }
        for (kind, why) in &self.unproved {
            let _ = writeln!(out, "NOT PROVED    {kind}: {why}");
        }
        out
    }
}

/// One request kind to compare.
struct DiffJob {
    env: RequestEnv,
    kind: RequestKind,
    old: Option<PolicySet>,
    new: Option<PolicySet>,
}

/// Where `old` and `new` (loaded with the same schema) decide differently:
/// for every request kind, proves they decide alike or finds a request
/// newly allowed and one newly denied.
pub fn diff(
    old: &PolicyEngine,
    new: &PolicyEngine,
    options: &VerifyOptions,
) -> Result<DiffReport, String> {
    let started = Instant::now();
    let deadline = started + options.timeout;
    if old.schema_digest() != new.schema_digest() {
        return Err("the two policy sets were loaded with different schemas".into());
    }
    let schema = new.schema();
    let scopes = Scope::all(schema)?;
    let request_kinds = scopes.len();
    let mut jobs = Vec::new();
    for scope in scopes {
        let (before, after) = (
            scope.subset(old.policy_set()),
            scope.subset(new.policy_set()),
        );
        // The same policies decide alike; no permit on either side, deny alike.
        if before.texts == after.texts || !(before.permits || after.permits) {
            continue;
        }
        let side = |s: Subset| s.permits.then_some(s.policies);
        jobs.push(DiffJob {
            env: scope.env,
            kind: scope.kind,
            old: side(before),
            new: side(after),
        });
    }
    let (results, asked) = solver::run(&jobs, options.jobs, deadline, |w, job| {
        compare_kind(w, job, schema)
    })?;
    let mut report = DiffReport {
        request_kinds,
        asked,
        ..DiffReport::default()
    };
    for (job, (allowed, denied)) in jobs.iter().zip(results) {
        for (found, newly_allowed) in [(allowed, true), (denied, false)] {
            match found {
                Ok(None) => {}
                Ok(Some(env)) => {
                    let c = replay_flip(old, new, &job.kind, &env, newly_allowed);
                    if newly_allowed {
                        report.newly_allowed.push(c);
                    } else {
                        report.newly_denied.push(c);
                    }
                }
                Err(why) => report.unproved.push((job.kind.clone(), why)),
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

type Flip = Result<Option<Env>, String>;

fn compare_kind(w: &mut Worker, job: &DiffJob, schema: &Schema) -> (Flip, Flip) {
    let compile = |set: &Option<PolicySet>| match set {
        None => Ok(None),
        Some(s) => CompiledPolicySet::compile(s, &job.env, schema)
            .map(Some)
            .map_err(|e| format!("the symbolic compiler refused it: {}", describe(&e))),
    };
    let (old, new) = match (compile(&job.old), compile(&job.new)) {
        (Ok(o), Ok(n)) => (o, n),
        (Err(e), _) | (_, Err(e)) => return (Err(e.clone()), Err(e)),
    };
    // A side without permits allows nothing: only the other side can flip.
    let mut flip =
        |from: &Option<CompiledPolicySet>, to: &Option<CompiledPolicySet>| match (from, to) {
            (None, _) => Ok(None),
            (Some(from), Some(to)) => w.ask(Query::Implies(from, to)),
            (Some(from), None) => w.ask(Query::AlwaysDenies(from)),
        };
    let newly_allowed = flip(&new, &old);
    let newly_denied = flip(&old, &new);
    (newly_allowed, newly_denied)
}

fn replay_flip(
    old: &PolicyEngine,
    new: &PolicyEngine,
    kind: &RequestKind,
    env: &Env,
    newly_allowed: bool,
) -> Counterexample {
    let schema = new.schema();
    let before = Concrete::of(old.policy_set(), env, schema);
    let after = Concrete::of(new.policy_set(), env, schema);
    let claim = if before.allow != after.allow && after.allow == newly_allowed {
        Ok(())
    } else {
        Err(format!(
            "Cedar decides it {} with the old set and {} with the new one",
            word(before.allow),
            word(after.allow)
        ))
    };
    let case = Case {
        description: format!(
            "policy diff: {} by the old set ({}), {} by the new one ({})",
            word(before.allow),
            old.version(),
            word(after.allow),
            new.version()
        ),
        name: format!(
            "{} {kind}",
            if newly_allowed {
                "newly allowed:"
            } else {
                "newly denied:"
            }
        ),
        expect: word(newly_allowed),
    };
    let decided = |c: &Concrete| Decided {
        allow: c.gateway_allows(),
        errors: !c.errors.is_empty(),
    };
    let written = write_case(
        env,
        &case,
        &[(old, decided(&before)), (new, decided(&after))],
    );
    let by = |c: &Concrete| {
        if c.determining.is_empty() {
            String::new()
        } else {
            format!(" ({})", c.determining.join(", "))
        }
    };
    let what = format!(
        "{}{} before, {}{} after{}",
        word(before.allow),
        by(&before),
        word(after.allow),
        by(&after),
        errors_note(&after)
    );
    let (test, replay) = match (claim, written) {
        (Ok(()), Ok(test)) => (test, Replay::Confirmed),
        (Err(why), Ok(test)) | (_, Err((test, why))) => (test, Replay::Disagrees(why)),
    };
    Counterexample {
        kind: kind.clone(),
        what,
        request: counterexample::request_line(&test),
        test,
        replay,
    }
}

fn word(allow: bool) -> &'static str {
    if allow {
        "allow"
    } else {
        "deny"
    }
}
