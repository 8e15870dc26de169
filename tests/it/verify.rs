//! Proofs over the policies (issue 14): `policy verify` proves every
//! invariant of the shipped set; cutting a guardrail from a copy is refuted
//! with a counterexample that `policy test` reproduces; `policy diff` names
//! the requests whose decision flips; a proof out of time is a refusal; and
//! the solver answers correctly on the schema's datetime, decimal, ipaddr and
//! set values, checked against Cedar's concrete evaluator.
//!
//! These need the cvc5 solver (`bash tools/cvc5/install.sh`, then `CVC5` or
//! `cvc5` on the PATH); without it they fail saying so.

use partner_gateway::policy::PolicyEngine;
use partner_gateway::policy_tools::reload::{load_set, prove};
use partner_gateway::verify::testing::run_files;
use partner_gateway::verify::{
    self, Counterexample, Finding, Invariants, Replay, Report, VerifyOptions,
};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// An editable copy of the shipped policies and their invariants.
struct Copy {
    dir: tempfile::TempDir,
}

impl Copy {
    fn new() -> Copy {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["policies", "policies/invariants"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
            for entry in std::fs::read_dir(repo(sub)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "cedar") {
                    std::fs::copy(&path, dir.path().join(sub).join(path.file_name().unwrap()))
                        .unwrap();
                }
            }
        }
        Copy { dir }
    }

    fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    /// Removes the policy with this `@id` from whichever file holds it.
    fn cut(&self, id: &str) -> &Copy {
        let marker = format!("@id(\"{id}\")");
        for entry in std::fs::read_dir(self.policies()).unwrap() {
            let path = entry.unwrap().path();
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            if let Some(at) = text.find(&marker) {
                let end = at + text[at..].find(';').unwrap() + 1;
                std::fs::write(&path, format!("{}{}", &text[..at], &text[end..])).unwrap();
                return self;
            }
        }
        panic!("no policy {id} to cut");
    }

    fn add(&self, file: &str, text: &str) -> &Copy {
        std::fs::write(self.policies().join(file), text).unwrap();
        self
    }
}

fn load(policies: &Path) -> (PolicyEngine, Invariants) {
    load_set(
        policies,
        &repo("schema"),
        &Invariants::dir_of(&repo("policies")),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn run_verify(policies: &Path) -> Report {
    let (engine, invariants) = load(policies);
    verify::verify(&engine, &invariants, &VerifyOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// [`run_verify`] with the copy's own invariants (and assumptions).
fn verify_with_own_invariants(policies: &Path) -> Report {
    let (engine, invariants) = load_set(policies, &repo("schema"), &Invariants::dir_of(policies))
        .unwrap_or_else(|e| panic!("{e}"));
    verify::verify(&engine, &invariants, &VerifyOptions::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn counterexamples<'r>(report: &'r Report, id: &str) -> Vec<&'r Counterexample> {
    let property = report
        .properties
        .iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no property {id}"));
    property
        .findings
        .iter()
        .map(|f| match f {
            Finding::Counterexample(c) => c,
            Finding::Unproved { kind, reason } => panic!("{id}: {kind} not proved: {reason}"),
        })
        .collect()
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- the shipped set -----------------------------------------------------

#[test]
fn every_invariant_of_the_shipped_set_is_proved_within_the_budget() {
    let started = Instant::now();
    let report = run_verify(&repo("policies"));
    let took = started.elapsed();
    assert!(report.proved(), "{}", report.render(1));
    assert!(took < Duration::from_secs(60), "verify took {took:?}");
    let ids: BTreeSet<&str> = report.properties.iter().map(|p| p.id.as_str()).collect();
    for required in [
        "INV-R11-session-never-partner-level",
        "INV-R11-session-stays-in-its-customer",
        "INV-R1-operator-stays-in-its-hierarchy",
        "INV-R12-disabled-operator-allowed-nothing",
        "INV-R12-dead-session-allowed-nothing",
        "INV-R12-session-needs-live-authorization",
        "INV-R8-assume-role-needs-live-covering-authorization",
        "INV-R7-only-the-customer-decides-its-authorizations",
        verify::NEVER_ERRORS,
        "INV-R3-one-party-sets-a-resale-budget",
        "INV-R3-one-party-freezes-a-resale-customer",
    ] {
        assert!(ids.contains(required), "{required} is not checked: {ids:?}");
    }
    // Every request kind of the schema was covered.
    assert!(report.request_kinds >= 90, "{}", report.request_kinds);
}

// ---- a guardrail cut from a copy -----------------------------------------

/// A counterexample meets what the proofs assume
/// (policies/invariants/assumptions.cedar), as real data does: the partners
/// the request names (the caller's, a session's operator's and customer's,
/// the resource or its customer's) of a known kind, a reseller's
/// distributor a distributor; amounts and quotas within the API's bounds;
/// `now` within 10 years of the clock.
fn like_real_data(test: &serde_json::Value) {
    use serde_json::{json, Value};
    let entities = test["entities"].as_array().unwrap();
    let entity = |uid: &Value| {
        entities
            .iter()
            .find(|e| e["uid"]["type"] == uid["type"] && e["uid"]["id"] == uid["id"])
    };
    let parse_ref = |r: &Value| {
        let (ty, id) = r.as_str().unwrap().split_once("::").unwrap();
        json!({"type": format!("PartnerCenter::{ty}"), "id": id.trim_matches('"')})
    };
    // The entity at `path` (attribute names) from `uid`, when all of it is there.
    let follow = |uid: Value, path: &[&str]| {
        let mut at = entity(&uid)?;
        for attr in path {
            at = entity(&at["attrs"].get(*attr)?["__entity"])?;
        }
        Some(at)
    };
    let bounded = |what: &str, v: &Value| {
        let d: f64 = v.as_str().unwrap().parse().unwrap();
        assert!((0.0..=2147483647.0).contains(&d), "{what} {v}: {test}");
    };
    for case in test["cases"].as_array().unwrap() {
        let (principal, resource) = (parse_ref(&case["principal"]), parse_ref(&case["resource"]));
        let named = [
            follow(principal.clone(), &["partner"]),
            follow(principal.clone(), &["operator", "partner"]),
            follow(principal, &["customer", "partner"]),
            follow(resource.clone(), &[]).filter(|e| e["uid"]["type"] == "PartnerCenter::Partner"),
            follow(resource.clone(), &["partner"]),
            follow(resource, &["customer", "partner"]),
        ];
        for partner in named.into_iter().flatten() {
            let attrs = &partner["attrs"];
            let kind = attrs["kind"].as_str().unwrap();
            assert!(
                ["distributor", "reseller", "solution_provider"].contains(&kind),
                "partner kind {kind:?}: {test}"
            );
            assert_eq!(
                kind == "reseller",
                attrs.get("distributor").is_some(),
                "{test}"
            );
            if let Some(d) = attrs
                .get("distributor")
                .and_then(|d| entity(&d["__entity"]))
            {
                assert_eq!(d["attrs"]["kind"], "distributor", "{test}");
            }
            for quota in ["monthly_quota", "one_time_quota"] {
                if let Some(q) = attrs["grants"].get(quota) {
                    bounded(quota, q);
                }
            }
        }
        let context = &case["context"];
        for field in ["amount", "monthly_quota", "one_time_quota"] {
            if let Some(v) = context.get(field) {
                bounded(field, v);
            }
        }
        let now = partner_gateway::time::parse(context["now"].as_str().unwrap()).unwrap();
        let years = (now - partner_gateway::time::now()).num_days().abs() as f64 / 365.25;
        assert!(years <= 10.01, "context.now {now}: {test}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_a_guardrail_is_refuted_and_policy_test_reproduces_the_counterexample() {
    let shipped = load(&repo("policies")).0;
    for (guardrail, invariant) in [
        (
            "R11-session-stays-in-its-customer",
            "INV-R11-session-stays-in-its-customer",
        ),
        (
            "R12-disabled-operator-denied",
            "INV-R12-disabled-operator-allowed-nothing",
        ),
        (
            "R1-operator-stays-in-its-hierarchy",
            "INV-R1-operator-stays-in-its-hierarchy",
        ),
    ] {
        let copy = Copy::new();
        copy.cut(guardrail);
        let report = run_verify(&copy.policies());
        let failing: Vec<&str> = report.failing().map(|p| p.id.as_str()).collect();
        assert_eq!(failing, [invariant], "cutting {guardrail}");
        let found = counterexamples(&report, invariant);
        assert!(!found.is_empty());
        let (cut, _) = load(&copy.policies());
        for c in &found {
            assert!(matches!(c.replay, Replay::Confirmed), "{guardrail}: {c:?}");
            like_real_data(&c.test);
            // It names the permits that allow it, as Cedar decides it.
            let decided = partner_gateway::verify::testing::decide_inline(&cut, &c.test).unwrap();
            let mut allowing = decided[0].determining.clone();
            allowing.sort();
            assert!(!allowing.is_empty());
            assert!(
                c.what
                    .starts_with(&format!("allowed by {};", allowing.join(", "))),
                "{guardrail}: {}",
                c.what
            );
        }

        // The first counterexample, as written, is a decision test that
        // fails on the cut set with the wrong decision and passes on the
        // shipped one.
        let file = copy.dir.path().join("counterexample.json");
        std::fs::write(&file, serde_json::to_string_pretty(&found[0].test).unwrap()).unwrap();
        let on_cut = run_files(&cut, std::slice::from_ref(&file)).await;
        assert_eq!((on_cut.passed, on_cut.failed()), (0, 1), "{guardrail}");
        let failure = on_cut.failures[0].to_string();
        assert!(
            failure.contains("expected deny, got allow"),
            "{guardrail}: {failure}"
        );
        let on_shipped = run_files(&shipped, std::slice::from_ref(&file)).await;
        assert_eq!(
            (on_shipped.passed, on_shipped.failed()),
            (1, 0),
            "{guardrail}: {:?}",
            on_shipped.failures
        );
    }
}

#[test]
fn the_cli_verifies_writes_the_counterexample_and_policy_test_runs_it() {
    let schema = repo("schema");
    let shipped = cli(&[
        "policy",
        "verify",
        "--policies",
        path(&repo("policies")),
        "--schema",
        path(&schema),
    ]);
    let text = stdout(&shipped);
    assert!(shipped.status.success(), "{text}");
    assert!(
        text.contains("proved   INV-R12-disabled-operator-allowed-nothing"),
        "{text}"
    );
    assert!(text.contains(", 0 not proved"), "{text}");

    let copy = Copy::new();
    copy.cut("R12-disabled-operator-denied");
    let cases = copy.dir.path().join("cases");
    let refuted = cli(&[
        "policy",
        "verify",
        "--policies",
        path(&copy.policies()),
        "--schema",
        path(&schema),
        "--write-cases",
        path(&cases),
    ]);
    let text = stdout(&refuted);
    assert_eq!(refuted.status.code(), Some(1), "{text}");
    assert!(
        text.contains("REFUTED  INV-R12-disabled-operator-allowed-nothing"),
        "{text}"
    );
    assert!(
        text.contains("\"expect\": \"deny\""),
        "the test case is printed: {text}"
    );
    let first = cases.join("INV-R12-disabled-operator-allowed-nothing-1.json");
    assert!(first.is_file(), "{text}");

    let reproduced = cli(&[
        "policy",
        "test",
        "--policies",
        path(&copy.policies()),
        "--schema",
        path(&schema),
        path(&first),
    ]);
    let text = stdout(&reproduced);
    assert_eq!(reproduced.status.code(), Some(1), "{text}");
    assert!(text.contains("expected deny, got allow"), "{text}");
    assert!(text.contains("0 passed, 1 failed"), "{text}");
    let fixed = cli(&[
        "policy",
        "test",
        "--policies",
        path(&repo("policies")),
        "--schema",
        path(&schema),
        path(&first),
    ]);
    assert!(fixed.status.success(), "{}", stdout(&fixed));
}

#[test]
fn a_proof_out_of_time_is_a_refusal_never_a_pass() {
    // A policy no earlier run has seen, so nothing is reused from memory.
    let copy = Copy::new();
    let id = format!("trial-{}", uuid::Uuid::new_v4());
    copy.add(
        "90-trial.cedar",
        &format!(
            "@id(\"{id}\")\nforbid (principal, action == PartnerCenter::Action::\"ViewBudget\", resource);\n"
        ),
    );
    let (engine, invariants) = load(&copy.policies());
    let verification = prove(&engine, &invariants, Duration::ZERO);
    assert!(!verification.proved());
    assert!(
        verification
            .refusal
            .issues
            .iter()
            .any(|i| i.contains("time limit")),
        "{:?}",
        verification.refusal.issues
    );
}

#[test]
fn a_policy_or_an_invariant_that_can_error_is_refuted() {
    let copy = Copy::new();
    copy.add(
        "90-trial.cedar",
        r#"@id("trial-overflow")
forbid (
  principal is PartnerCenter::Operator,
  action == PartnerCenter::Action::"AssumeRole",
  resource
)
when { context.duration_seconds * 1000000000 > 3600000000000 };
"#,
    );
    std::fs::write(
        copy.policies().join("invariants/90-trial.cedar"),
        r#"@id("INV-trial-can-error")
@check("never")
forbid (
  principal is PartnerCenter::Session,
  action == PartnerCenter::Action::"PlaceOrder",
  resource
)
when { context.now.offset(duration("1ms")) == context.now };
"#,
    )
    .unwrap();
    let report = verify_with_own_invariants(&copy.policies());
    let failing: Vec<&str> = report.failing().map(|p| p.id.as_str()).collect();
    assert_eq!(
        failing,
        ["INV-trial-can-error", verify::NEVER_ERRORS],
        "{}",
        report.render(0)
    );
    for id in failing {
        for c in counterexamples(&report, id) {
            assert!(matches!(c.replay, Replay::Confirmed), "{id}: {c:?}");
            assert!(c.what.contains("overflow"), "{id}: {}", c.what);
        }
    }
    let policy_error = &counterexamples(&report, verify::NEVER_ERRORS)[0];
    assert!(
        policy_error.what.contains("policy trial-overflow errors"),
        "{}",
        policy_error.what
    );
}

/// The figures policies/README.md shows of `policy verify` (its example
/// output, the shipped set with `R12-disabled-operator-denied` cut, and the
/// number of request kinds) are those of the current schema and policies.
#[test]
fn the_verify_figures_in_the_policy_docs_are_current() {
    let docs = std::fs::read_to_string(repo("policies/README.md")).unwrap();
    let copy = Copy::new();
    copy.cut("R12-disabled-operator-denied");
    // In a process of its own: this one keeps earlier tests' proofs.
    let out = cli(&[
        "policy",
        "verify",
        "--policies",
        path(&copy.policies()),
        "--invariants",
        path(&Invariants::dir_of(&repo("policies"))),
    ]);
    let rendered = stdout(&out);
    let summary = rendered.lines().last().unwrap();
    // All but the time it took.
    let figures = &summary[..summary.rfind(", ").unwrap()];
    assert!(
        docs.contains(figures),
        "policies/README.md should show `{summary}`"
    );
    let kinds_count = summary.split(" request kinds").next().unwrap();
    let kinds_count = &kinds_count[kinds_count.rfind('(').unwrap() + 1..];
    let kinds = format!("for each request kind of the schema ({kinds_count} today)");
    assert!(
        docs.contains(&kinds),
        "policies/README.md should say `{kinds}`"
    );
}

/// An assumption is proved never to error, as an invariant is: one that can
/// leaves the invariants it is part of unproved where they need it.
#[test]
fn an_assumption_that_can_error_leaves_the_invariant_unproved() {
    let copy = Copy::new();
    copy.cut("R12-disabled-operator-denied");
    std::fs::write(
        copy.policies().join("invariants/90-trial.cedar"),
        r#"@id("A-trial-can-error")
@check("assume")
permit (principal, action, resource)
when
{
  if context has duration_seconds
  then context.duration_seconds * 1000000000 > 0
  else true
};
"#,
    )
    .unwrap();
    let report = verify_with_own_invariants(&copy.policies());
    let property = report
        .properties
        .iter()
        .find(|p| p.id == "INV-R12-disabled-operator-allowed-nothing")
        .unwrap();
    let unproved: Vec<String> = property
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Unproved { kind, reason } if reason.contains("the assumptions") => {
                Some(kind.to_string())
            }
            _ => None,
        })
        .collect();
    assert!(
        unproved.iter().any(|k| k.contains("AssumeRole")),
        "{}",
        report.render(0)
    );
    // Where the trial assumption reads nothing, counterexamples as before.
    assert!(property
        .findings
        .iter()
        .any(|f| matches!(f, Finding::Counterexample(_))));
}

// ---- policy diff -----------------------------------------------------------

const NO_REVEAL_FOR_RESELLERS: &str = r#"// Trial: reseller operators no longer reveal contact data.
@id("trial-no-reveal-for-resellers")
forbid (
  principal is PartnerCenter::Operator,
  action == PartnerCenter::Action::"RevealContact",
  resource
)
when { principal.partner.kind == "reseller" };
"#;

#[test]
fn diff_names_the_flipped_request_and_a_set_diffed_with_itself_prints_nothing() {
    let shipped = load(&repo("policies")).0;
    let same = verify::diff(&shipped, &shipped, &VerifyOptions::default()).unwrap();
    assert!(same.alike(), "{}", same.render(1));
    assert_eq!(same.render(1), "");

    let copy = Copy::new();
    copy.add("90-trial.cedar", NO_REVEAL_FOR_RESELLERS);
    let trial = load(&copy.policies()).0;
    let report = verify::diff(&shipped, &trial, &VerifyOptions::default()).unwrap();
    assert!(report.newly_allowed.is_empty(), "{}", report.render(1));
    assert_eq!(report.newly_denied.len(), 1, "{}", report.render(1));
    let flip = &report.newly_denied[0];
    assert!(matches!(flip.replay, Replay::Confirmed), "{flip:?}");
    assert_eq!(flip.kind.to_string(), "Operator RevealContact Customer");
    assert_eq!(flip.test["cases"][0]["expect"], "deny");
    // The written case holds a reseller operator: what the new forbid is about.
    let entities = flip.test["entities"].as_array().unwrap();
    assert!(
        entities.iter().any(|e| e["attrs"]["kind"] == "reseller"),
        "{}",
        flip.test
    );

    // The CLI: nothing and 0 for the same set; newly allowed first, 1, otherwise.
    let schema = repo("schema");
    let alike = cli(&[
        "policy",
        "diff",
        path(&repo("policies")),
        path(&repo("policies")),
        "--schema",
        path(&schema),
    ]);
    assert_eq!(alike.status.code(), Some(0));
    assert_eq!(stdout(&alike), "");
    let both_ways = Copy::new();
    both_ways
        .add("90-trial.cedar", NO_REVEAL_FOR_RESELLERS)
        .cut("R9-frozen-customer-cannot-order");
    let differ = cli(&[
        "policy",
        "diff",
        path(&repo("policies")),
        path(&both_ways.policies()),
        "--schema",
        path(&schema),
    ]);
    let text = stdout(&differ);
    assert_eq!(differ.status.code(), Some(1), "{text}");
    let allowed = text.find("NEWLY ALLOWED").expect(&text);
    let denied = text.find("NEWLY DENIED").expect(&text);
    assert!(allowed < denied, "newly allowed first: {text}");
    assert!(
        text[allowed..]
            .lines()
            .next()
            .unwrap()
            .contains("PlaceOrder"),
        "{text}"
    );
    assert!(
        text[denied..]
            .lines()
            .next()
            .unwrap()
            .contains("RevealContact"),
        "{text}"
    );
}

// ---- the solver on the schema's values -------------------------------------

/// A condition on one request kind of the schema, whether some request
/// satisfies it, and the context value that request is forced to have.
struct SolverCase {
    scope: &'static str,
    condition: &'static str,
    satisfiable: bool,
    forces: Option<(&'static str, &'static str)>,
}

/// Every answer was worked out by hand; each request the solver gives is
/// checked against Cedar's concrete evaluator (and the test runner) by
/// `diff`, and `forces` pins the corner it had to find.
const SOLVER_CASES: &[SolverCase] = &[
    SolverCase {
        scope: SESSION_ORDERS,
        condition: r#"context.now > datetime("2025-12-31T23:59:59.998Z") && context.now < datetime("2026-01-01")"#,
        satisfiable: true,
        forces: Some(("now", "2025-12-31T23:59:59.999Z")),
    },
    SolverCase {
        scope: SESSION_ORDERS,
        condition: r#"context.now > datetime("2025-12-31T23:59:59.999Z") && context.now < datetime("2026-01-01")"#,
        satisfiable: false,
        forces: None,
    },
    SolverCase {
        scope: SESSION_ORDERS,
        condition: r#"principal.expires_at == context.now.offset(duration("1h30m")) && context.now.toDate() == datetime("2026-11-21") && context.now.toTime() == duration("12h0m0s1ms")"#,
        satisfiable: true,
        forces: Some(("now", "2026-11-21T12:00:00.001Z")),
    },
    SolverCase {
        scope: SESSION_ORDERS,
        condition: "principal.expires_at <= context.now && context.now < principal.expires_at",
        satisfiable: false,
        forces: None,
    },
    SolverCase {
        scope: OPERATOR_BUDGET,
        condition: r#"context.amount.lessThanOrEqual(decimal("5000.00")) && context.amount.greaterThan(decimal("4999.9999"))"#,
        satisfiable: true,
        forces: Some(("amount", "5000.0000")),
    },
    SolverCase {
        scope: OPERATOR_BUDGET,
        condition: r#"context.amount.lessThanOrEqual(decimal("5000.00")) && context.amount.greaterThan(decimal("5000.0000"))"#,
        satisfiable: false,
        forces: None,
    },
    SolverCase {
        scope: OPERATOR_BUDGET,
        condition: r#"principal.partner.grants has monthly_quota && context.amount.greaterThan(principal.partner.grants.monthly_quota) && principal.partner.grants.monthly_quota.greaterThanOrEqual(decimal("922337203685477.5807"))"#,
        satisfiable: false,
        forces: None,
    },
    SolverCase {
        scope: OPERATOR_VIEW,
        condition: r#"context.source_ip.isInRange(ip("10.0.0.0/8")) && !context.source_ip.isInRange(ip("10.0.0.0/9")) && context.source_ip.isInRange(ip("10.255.255.255/32"))"#,
        satisfiable: true,
        forces: Some(("source_ip", "10.255.255.255/32")),
    },
    SolverCase {
        scope: OPERATOR_VIEW,
        condition: r#"context.source_ip.isInRange(ip("10.0.0.0/8")) && context.source_ip.isLoopback()"#,
        satisfiable: false,
        forces: None,
    },
    SolverCase {
        scope: OPERATOR_VIEW,
        condition: "context.source_ip.isIpv6() && context.source_ip.isLoopback()",
        satisfiable: true,
        forces: Some(("source_ip", "0000:0000:0000:0000:0000:0000:0000:0001/128")),
    },
    SolverCase {
        scope: OPERATOR_VIEW,
        condition: r#"principal.roles.containsAny(["admin", "finance"]) && !principal.roles.contains("admin") && !principal.roles.contains("finance")"#,
        satisfiable: false,
        forces: None,
    },
    SolverCase {
        scope: SESSION_ORDERS,
        condition: r#"principal.scopes.containsAll(["om", "order"]) && principal has authorization && principal.authorization.scopes.containsAll(principal.scopes) && !principal.authorization.scopes.contains("order")"#,
        satisfiable: false,
        forces: None,
    },
    SolverCase {
        scope: OPERATOR_ASSUME,
        condition: r#"context.scopes.containsAll(["om", "order"]) && !(["om", "order"].containsAll(context.scopes))"#,
        satisfiable: true,
        forces: None,
    },
    SolverCase {
        scope: OPERATOR_ASSUME,
        condition: r#"context.scopes.isEmpty() && resource has authorization && resource.authorization.scopes.containsAll(context.scopes) && context.duration_seconds * 2 == 86400"#,
        satisfiable: true,
        forces: None,
    },
    SolverCase {
        scope: SESSION_ORDERS,
        condition: r#"context.now == datetime("2026-11-21T12:00:00Z") && principal has authorization && principal.authorization.expires_at.durationSince(context.now) == duration("-1d")"#,
        satisfiable: true,
        forces: Some(("now", "2026-11-21T12:00:00Z")),
    },
    SolverCase {
        scope: OPERATOR_VIEW,
        condition: r#"context.source_ip.isMulticast() && context.source_ip.isIpv4() && !context.source_ip.isInRange(ip("224.0.0.0/5"))"#,
        satisfiable: true,
        forces: None,
    },
    SolverCase {
        scope: OPERATOR_VIEW,
        condition: r#"resource.association like "re*er" && resource.association != "reseller" && resource.association != "reer""#,
        satisfiable: true,
        forces: None,
    },
    SolverCase {
        scope: OPERATOR_ORDER,
        condition: "resource in principal.partner && !(resource.customer in principal.partner) && resource in resource.customer",
        satisfiable: true,
        forces: None,
    },
];

const OPERATOR_ORDER: &str = r#"principal is PartnerCenter::Operator, action == PartnerCenter::Action::"ViewOrder", resource"#;
const SESSION_ORDERS: &str = r#"principal is PartnerCenter::Session, action == PartnerCenter::Action::"ViewOwnOrders", resource"#;
const OPERATOR_BUDGET: &str = r#"principal is PartnerCenter::Operator, action == PartnerCenter::Action::"SetBudget", resource"#;
const OPERATOR_VIEW: &str = r#"principal is PartnerCenter::Operator, action == PartnerCenter::Action::"ViewCustomer", resource"#;
const OPERATOR_ASSUME: &str = r#"principal is PartnerCenter::Operator, action == PartnerCenter::Action::"AssumeRole", resource"#;

#[test]
fn the_solver_answers_correctly_on_datetime_decimal_ipaddr_and_sets() {
    let dir = tempfile::tempdir().unwrap();
    let nothing = dir.path().join("nothing");
    std::fs::create_dir(&nothing).unwrap();
    std::fs::write(nothing.join("00-none.cedar"), "").unwrap();
    let empty = PolicyEngine::load(&nothing, &repo("schema")).unwrap();
    let mut wrong = Vec::new();
    for (i, case) in SOLVER_CASES.iter().enumerate() {
        let (scope, condition) = (case.scope, case.condition);
        let set = dir.path().join(format!("case-{i}"));
        std::fs::create_dir(&set).unwrap();
        std::fs::write(
            set.join("p.cedar"),
            format!("@id(\"case-{i}\")\npermit ({scope})\nwhen {{ {condition} }};\n"),
        )
        .unwrap();
        let one = PolicyEngine::load(&set, &repo("schema")).unwrap_or_else(|e| panic!("{e}"));
        // A request the one permit allows exists iff the condition is satisfiable.
        let report = verify::diff(&empty, &one, &VerifyOptions::default()).unwrap();
        assert!(
            report.unproved.is_empty(),
            "{condition}: {:?}",
            report.unproved
        );
        let found: Vec<&Counterexample> = report.newly_allowed.iter().collect();
        let sat = !found.is_empty();
        if sat != case.satisfiable {
            wrong.push(format!(
                "{condition}: expected satisfiable {}, the solver says {sat}",
                case.satisfiable
            ));
            continue;
        }
        for c in &found {
            assert!(matches!(c.replay, Replay::Confirmed), "{condition}: {c:?}");
        }
        if let (Some((field, value)), Some(c)) = (case.forces, found.first()) {
            let got: &Value = &c.test["cases"][0]["context"][field];
            assert_eq!(got, value, "{condition}: {}", c.test);
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
