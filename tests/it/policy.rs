//! The Cedar policy model: every decision test of `policies/tests/` through
//! the CLI's runner, strict validation, loader errors with file and line,
//! fail-closed decisions, and the entity loader (slice contents, unknown ids,
//! cache hits, invalidation) on SQLite and PostgreSQL.

use crate::kit::TestDb;
use crate::test_both_backends;
use cedar_policy::{Entities, EvalResult};
use partner_gateway::entities::EntityLoader;
use partner_gateway::ids::*;
use partner_gateway::model::AuthorizationScope;
use partner_gateway::model::SessionFacts;
use partner_gateway::policy::{AccessRequest, PolicyEngine};
use partner_gateway::refs::EntityRef;
use partner_gateway::store::seed::Fixture;
use partner_gateway::verify::testing::{default_test_files, run_files};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

const NOW: &str = "2026-11-21T12:00:00Z";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn engine() -> PolicyEngine {
    PolicyEngine::load(&repo("policies"), &repo("schema")).unwrap_or_else(|e| panic!("{e}"))
}

fn op(id: &str) -> EntityRef {
    EntityRef::Operator(id.into())
}

fn cust(id: &str) -> EntityRef {
    EntityRef::Customer(id.into())
}

fn ctx(v: Value) -> Map<String, Value> {
    let mut map = v.as_object().cloned().expect("object");
    map.entry("now").or_insert(json!(NOW));
    map.entry("source_ip").or_insert(json!("127.0.0.1"));
    map
}

fn budget_ctx(kind: &str, amount: &str) -> Map<String, Value> {
    ctx(json!({"budget_type": kind, "amount": amount, "cancel_partner_frozen": false}))
}

// ---- the decision tests --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_policy_test_case_passes() {
    let engine = engine();
    let files = default_test_files(&repo("policies/tests")).unwrap();
    let mut cases = 0;
    for f in &files {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        cases += v["cases"].as_array().map(Vec::len).unwrap_or(0);
    }
    assert!(files.len() >= 9, "test files found: {files:?}");
    assert!(
        !files.iter().any(|f| f.ends_with("fixture.json")),
        "the fixture is not a test file"
    );
    let report = run_files(&engine, &files).await;
    let listing: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(
        report.failures.is_empty(),
        "{}\n{}",
        listing.join("\n"),
        report.summary()
    );
    assert_eq!(report.passed, cases, "every case ran: {}", report.summary());
    assert!(cases >= 172);
    // Coverage (`policy test --coverage`): every policy determines a case.
    let uncovered: Vec<String> = report
        .uncovered(&engine)
        .iter()
        .map(|p| p.location())
        .collect();
    assert!(
        uncovered.is_empty(),
        "policies no test case covers: {uncovered:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runner_reports_wrong_expectations() {
    let engine = engine();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.json");
    let fixture = repo("policies/tests/fixture.json");
    std::fs::write(
        &file,
        json!({
            "fixture": fixture,
            "now": NOW,
            "cases": [
                {"name": "right", "principal": "Operator::\"op-c-admin\"", "action": "ViewCustomer",
                 "resource": "Customer::\"cust-c-1\"", "expect": "allow"},
                {"name": "wrong decision", "principal": "Operator::\"op-b-admin\"", "action": "ViewCustomer",
                 "resource": "Customer::\"cust-c-1\"", "expect": "allow"},
                {"name": "wrong determining", "principal": "Operator::\"op-c-admin\"", "action": "ViewCustomer",
                 "resource": "Customer::\"cust-c-1\"", "expect": "allow", "determining": ["nope"]},
                {"name": "unknown context field", "principal": "Operator::\"op-c-admin\"", "action": "ViewCustomer",
                 "resource": "Customer::\"cust-c-1\"", "context": {"extra": 1}, "expect": "deny"},
                {"name": "unknown id", "principal": "Operator::\"op-ghost\"", "action": "ViewCustomer",
                 "resource": "Customer::\"cust-c-1\"", "expect": "deny"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"fixture": "x.json", "now": "2026-11-21T12:00:00Z", "cases": [], "typo": 1}"#,
    )
    .unwrap();
    let report = run_files(&engine, &[file.clone(), bad]).await;
    assert_eq!(report.passed, 1);
    assert_eq!(report.summary(), "1 passed, 5 failed");
    let lines: Vec<String> = report.failures.iter().map(|f| f.to_string()).collect();
    assert!(
        lines[0].contains("wrong decision: expected allow, got deny"),
        "{lines:?}"
    );
    assert!(
        lines[0].contains("R1-operator-stays-in-its-hierarchy"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("determining expected [\"nope\"]"),
        "{lines:?}"
    );
    assert!(lines[2].contains("errors"), "{lines:?}");
    assert!(lines[3].contains("does not exist"), "{lines:?}");
    assert!(
        lines[4].contains("bad.json") && lines[4].contains("typo"),
        "{lines:?}"
    );
}

// ---- loading and validation ------------------------------------------------

#[test]
fn the_policies_validate_strictly_and_read_like_a_specification() {
    let engine = engine();
    let policies = engine.policies();
    assert!(policies.len() >= 40);
    assert_eq!(engine.version().len(), 12);
    let result = cedar_policy::Validator::new(engine.schema().clone())
        .validate(engine.policy_set(), cedar_policy::ValidationMode::Strict);
    assert!(result.validation_passed_without_warnings());
    for p in policies {
        // R1..R12 of docs/domain.md section 2, S4 for section 4's tokens.
        assert!(
            p.id.starts_with('R') || p.id.starts_with("S4-"),
            "{} names its rule",
            p.id
        );
        assert!(
            p.comment.is_some(),
            "{} has a comment saying why",
            p.location()
        );
        let text = std::fs::read_to_string(&p.file).unwrap();
        let line = text.lines().nth(p.line - 1).unwrap();
        assert_eq!(line, format!("@id(\"{}\")", p.id), "{}", p.location());
    }
    // File order: the guardrails come first.
    assert!(policies[0].file.ends_with("00-guardrails.cedar"));
    let files: Vec<&PathBuf> = policies.iter().map(|p| &p.file).collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(files, sorted);
}

/// A copy of the real policies and schema in a temporary directory, plus `extra`.
fn policy_dir_with(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    std::fs::create_dir_all(dir.path().join("schema")).unwrap();
    for entry in std::fs::read_dir(repo("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "cedar") {
            std::fs::copy(
                &path,
                dir.path().join("policies").join(path.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    std::fs::copy(
        repo("schema/partner.cedarschema"),
        dir.path().join("schema/partner.cedarschema"),
    )
    .unwrap();
    std::fs::write(dir.path().join("policies/90-extra.cedar"), extra).unwrap();
    dir
}

fn load_error(dir: &tempfile::TempDir) -> Vec<String> {
    let err = PolicyEngine::load(&dir.path().join("policies"), &dir.path().join("schema"))
        .expect_err("must not load");
    let display = err.to_string();
    let lines: Vec<String> = err.issues.iter().map(|i| i.to_string()).collect();
    for l in &lines {
        assert!(display.contains(l.as_str()), "Display lists every issue");
    }
    lines
}

#[test]
fn a_duplicate_id_is_reported_with_both_places() {
    let dir = policy_dir_with(
        "// fine\n@id(\"extra-ok\")\npermit (principal, action, resource);\n\n\
         // again\n@id(\"R12-disabled-operator-denied\")\nforbid (principal, action, resource);\n",
    );
    let issues = load_error(&dir);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].ends_with(
            "90-extra.cedar:6: duplicate policy id \"R12-disabled-operator-denied\" (first at "
        ) || issues[0].contains(
            "90-extra.cedar:6: duplicate policy id \"R12-disabled-operator-denied\" (first at "
        ),
        "{issues:?}"
    );
    assert!(issues[0].contains("00-guardrails.cedar:"), "{issues:?}");
}

#[test]
fn parse_errors_are_reported_with_file_and_line() {
    let dir = policy_dir_with(
        "// ok\n@id(\"extra-ok\")\npermit (principal, action, resource);\n\n\
         @id(\"broken\")\npermit (principal, action, resource)\nwhen { principal.roles.contains( };\n",
    );
    let issues = load_error(&dir);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].contains("90-extra.cedar:7: parse error"),
        "{issues:?}"
    );
}

#[test]
fn validation_errors_are_reported_with_file_and_line() {
    let dir = policy_dir_with(
        "// a typo in an attribute name\n@id(\"typo\")\npermit (principal is PartnerCenter::Operator, action, resource)\n\
         when { principal.rolez.contains(\"admin\") };\n",
    );
    let issues = load_error(&dir);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].contains("90-extra.cedar:4: validation error in policy typo"),
        "{issues:?}"
    );
    assert!(issues[0].contains("rolez"), "{issues:?}");
}

/// The entity loader follows every reference; a policy may read through at
/// most four of them (`partner_gateway::policy::MAX_DEREF_LEVEL`): level 4
/// loads, level 5 is refused naming the policy.
#[test]
fn a_policy_reading_deeper_than_four_references_is_refused() {
    let through = |chain: &str| {
        format!(
            "@id(\"deep\")\nforbid (principal is PartnerCenter::Session, action, resource)\n\
             when {{ principal has authorization && principal.authorization.customer has account_manager && \
             {chain} == PartnerCenter::Partner::\"dist-a\" }};\n"
        )
    };
    let four = policy_dir_with(&through(
        "principal.authorization.customer.account_manager.partner",
    ));
    PolicyEngine::load(&four.path().join("policies"), &four.path().join("schema"))
        .expect("level 4 loads");
    let five = policy_dir_with(
        &through("principal.authorization.customer.account_manager.partner.distributor").replace(
            "account_manager && ",
            "account_manager && principal.authorization.customer.account_manager.partner has distributor && ",
        ),
    );
    let issues = load_error(&five);
    assert_eq!(issues.len(), 1, "{issues:?}");
    assert!(
        issues[0].contains("90-extra.cedar:3: validation error in policy deep")
            && issues[0].contains("level 5"),
        "{issues:?}"
    );
}

#[test]
fn a_policy_without_id_and_a_bad_schema_are_refused() {
    let dir = policy_dir_with("\n\npermit (principal, action, resource);\n");
    let issues = load_error(&dir);
    assert!(
        issues[0].contains("90-extra.cedar:3: policy has no @id"),
        "{issues:?}"
    );

    let dir = policy_dir_with("");
    std::fs::write(
        dir.path().join("schema/partner.cedarschema"),
        "entity A = { x: Strin };\n",
    )
    .unwrap();
    let issues = load_error(&dir);
    assert!(issues[0].contains("partner.cedarschema:1:"), "{issues:?}");
    assert!(issues[0].contains("Strin"), "{issues:?}");
}

// ---- decisions -----------------------------------------------------------------

async fn fixture_db(backend_db: &TestDb) {
    let fx = Fixture::load(&repo("policies/tests/fixture.json")).unwrap();
    backend_db.store.import_fixture(&fx).await.unwrap();
}

async fn sqlite_fixture() -> (TestDb, EntityLoader) {
    let db = TestDb::sqlite().await;
    fixture_db(&db).await;
    let loader = EntityLoader::new(db.store.clone(), 1 << 20, Duration::from_secs(60));
    (db, loader)
}

async fn slice(
    loader: &EntityLoader,
    engine: &PolicyEngine,
    p: &EntityRef,
    r: &EntityRef,
) -> Entities {
    loader
        .slice(engine, p, r, &[])
        .await
        .unwrap()
        .expect("both exist")
}

/// The entity cache is bounded by the bytes its records weigh, not by
/// their number: with room for about three records, loading a dozen
/// customers' slices leaves about three, weighing no more than the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_entity_cache_holds_what_its_bytes_allow() {
    let engine = engine();
    let db = TestDb::sqlite().await;
    fixture_db(&db).await;
    let roomy = EntityLoader::new(db.store.clone(), 1 << 20, Duration::from_secs(60));
    let one = {
        slice(&roomy, &engine, &op("op-a1-finance"), &cust("cust-a1-1")).await;
        let stats = roomy.stats();
        stats.bytes / stats.entries
    };
    assert!(one > 1_000, "a record weighs what it holds, not 1: {one}");
    let bound = 3 * one;
    let tight = EntityLoader::new(db.store.clone(), bound, Duration::from_secs(60));
    let customers = [
        "cust-a1-1",
        "cust-a1-2",
        "cust-a1-expired",
        "cust-a1-frozen",
        "cust-a1-pending",
        "cust-a1-referral",
        "cust-a1-rejected",
        "cust-a1-revoked",
        "cust-a2-1",
    ];
    for c in customers {
        slice(&tight, &engine, &op("op-a-admin"), &cust(c)).await;
    }
    let stats = tight.stats();
    assert!(
        stats.bytes <= bound,
        "{} bytes cached, bound {bound}",
        stats.bytes
    );
    assert!(
        (1..=6).contains(&stats.entries),
        "{} records cached in room for about three",
        stats.entries
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_fails_closed_on_a_context_that_does_not_match_the_schema() {
    let engine = engine();
    let (_db, loader) = sqlite_fixture().await;
    let (p, r) = (op("op-a1-finance"), cust("cust-a1-1"));
    let entities = slice(&loader, &engine, &p, &r).await;
    let ok = AccessRequest::new(
        p.clone(),
        "SetBudget",
        r.clone(),
        budget_ctx("MONTHLY", "100.00"),
    );
    assert!(engine.decide(&ok, &entities).allow, "control");

    let mut missing = budget_ctx("MONTHLY", "100.00");
    missing.remove("amount");
    let mut extra = budget_ctx("MONTHLY", "100.00");
    extra.insert("sneaky".into(), json!(true));
    let mut wrong_type = budget_ctx("MONTHLY", "100.00");
    wrong_type.insert("cancel_partner_frozen".into(), json!("1"));
    let mut no_now = budget_ctx("MONTHLY", "100.00");
    no_now.remove("now");
    for (what, context) in [
        ("missing field", missing),
        ("unknown field", extra),
        ("wrong type", wrong_type),
        ("no time", no_now),
        ("not a decimal", budget_ctx("MONTHLY", "1e3")),
    ] {
        let d = engine.decide(
            &AccessRequest::new(p.clone(), "SetBudget", r.clone(), context),
            &entities,
        );
        assert!(!d.allow, "{what}");
        assert_eq!(d.errors.len(), 1, "{what}: {d:?}");
        assert_eq!(engine.denial(&d).0, "CBC.0151", "{what}");
    }
    let unknown_action = AccessRequest::new(p.clone(), "DropTables", r.clone(), ctx(json!({})));
    let d = engine.decide(&unknown_action, &entities);
    assert!(!d.allow && !d.errors.is_empty(), "{d:?}");
    let wrong_resource_type = AccessRequest::new(
        p.clone(),
        "SetBudget",
        op("op-a1-admin"),
        budget_ctx("MONTHLY", "1.00"),
    );
    let d = engine.decide(&wrong_resource_type, &entities);
    assert!(!d.allow && !d.errors.is_empty(), "{d:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decide_fails_closed_when_a_forbid_cannot_be_evaluated() {
    let engine = engine();
    let (_db, loader) = sqlite_fixture().await;
    let (p, r) = (op("op-a1-ops"), cust("cust-a1-1"));
    let request = AccessRequest::new(
        p.clone(),
        "AssumeRole",
        r.clone(),
        ctx(json!({"scopes": ["om"], "duration_seconds": 3600})),
    );
    let full = slice(&loader, &engine, &p, &r).await;
    assert!(
        engine.decide(&request, &full).allow,
        "control: allowed with the full slice"
    );

    // Without the customer's authorization the R8 forbids cannot be
    // evaluated; Cedar skips them and would allow on the permit alone.
    let partial = full
        .remove_entities([EntityRef::Authorization("auth-a1-1".into()).uid()])
        .unwrap();
    let d = engine.decide(&request, &partial);
    assert!(!d.allow, "{d:?}");
    assert!(!d.errors.is_empty(), "{d:?}");
    assert_eq!(
        d.determining,
        vec!["R8-operator-assumes-customer-role"],
        "Cedar's own answer was allow"
    );
    assert_eq!(
        engine.denial(&d),
        ("CBC.0151".into(), "Access denied.".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_denial_comes_from_the_first_determining_forbid() {
    let engine = engine();
    let (_db, loader) = sqlite_fixture().await;
    let decide = |p: EntityRef, action: &'static str, r: EntityRef, c: Map<String, Value>| {
        let loader = &loader;
        let engine = &engine;
        async move {
            let entities = slice(loader, engine, &p, &r).await;
            engine.decide(&AccessRequest::new(p, action, r, c), &entities)
        }
    };
    // Another distributor's operator on a referral customer: the guardrail
    // comes first, so no hint about the customer's association leaks.
    let d = decide(
        op("op-b-admin"),
        "SetBudget",
        cust("cust-c-referral"),
        budget_ctx("MONTHLY", "1.00"),
    )
    .await;
    assert!(!d.allow);
    assert_eq!(
        d.determining.first().map(String::as_str),
        Some("R1-operator-stays-in-its-hierarchy")
    );
    assert!(
        d.determining
            .contains(&"R3-resale-customers-only".to_owned()),
        "{d:?}"
    );
    assert_eq!(
        engine.denial(&d),
        ("CBC.0151".into(), "Access denied.".into())
    );

    // Its own partner: the association forbid answers with its code.
    let d = decide(
        op("op-c-admin"),
        "SetBudget",
        cust("cust-c-referral"),
        budget_ctx("MONTHLY", "1.00"),
    )
    .await;
    assert_eq!(d.determining, vec!["R3-resale-customers-only"]);
    let (code, msg) = engine.denial(&d);
    assert_eq!(code, "CBC.99005024");
    assert!(msg.contains("resale"), "{msg}");

    // Default deny: no determining policy.
    let d = decide(
        op("op-a1-ops"),
        "SetBudget",
        cust("cust-a1-1"),
        budget_ctx("MONTHLY", "1.00"),
    )
    .await;
    assert!(
        !d.allow && d.determining.is_empty() && d.errors.is_empty(),
        "{d:?}"
    );
    assert_eq!(engine.denial(&d).0, "CBC.0151");
}

// ---- the entity loader, on both backends -----------------------------------------

fn uids(entities: &Entities) -> BTreeSet<String> {
    entities
        .iter()
        .filter_map(|e| EntityRef::from_uid(&e.uid()))
        .map(|r| r.to_string())
        .collect()
}

fn attr(entities: &Entities, r: &EntityRef, name: &str) -> Option<EvalResult> {
    entities.get(&r.uid())?.attr(name).map(|v| v.unwrap())
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

test_both_backends! {
    entity_slices_hold_what_the_policies_read => slice_contents;
    unknown_principals_and_resources_give_none => unknown_ids;
    the_cache_serves_the_second_slice => cache_hits;
    invalidation_makes_a_changed_row_visible => invalidation;
    built_entities_serve_only_their_own_records => built_entities;
    an_authorization_change_drops_the_customers_live_link => authorization_invalidation;
}

async fn loader_over(db: &TestDb) -> (PolicyEngine, EntityLoader) {
    fixture_db(db).await;
    (
        engine(),
        EntityLoader::new(db.store.clone(), 1 << 20, Duration::from_secs(60)),
    )
}

async fn slice_contents(db: &TestDb) {
    let (engine, loader) = loader_over(db).await;
    let s = slice(&loader, &engine, &op("op-a1-finance"), &cust("cust-a1-1")).await;
    // Every entity an attribute refers to, the customer's account manager
    // among them, so that a policy reading through it sees it.
    assert_eq!(
        uids(&s),
        set(&[
            r#"Operator::"op-a1-finance""#,
            r#"Partner::"res-a1""#,
            r#"Partner::"dist-a""#,
            r#"Customer::"cust-a1-1""#,
            r#"Authorization::"auth-a1-1""#,
            r#"Operator::"op-a1-am""#,
        ])
    );
    assert!(attr(&s, &op("op-a1-am"), "roles").is_some());
    // No action entities: `decide` adds those of the action it decides,
    // which R1's `action in ViewCustomerData` needs to allow.
    assert!(s.get(&PolicyEngine::action_uid("ViewBudget")).is_none());
    let view = AccessRequest::new(
        op("op-a1-finance"),
        "ViewBudget",
        cust("cust-a1-1"),
        ctx(json!({})),
    );
    assert!(engine.decide(&view, &s).allow);
    // Ancestry up to the distributor, attributes as policies/README.md says.
    assert!(s.is_ancestor_of(
        &EntityRef::Partner("dist-a".into()).uid(),
        &cust("cust-a1-1").uid()
    ));
    let res_a1 = EntityRef::Partner("res-a1".into());
    let Some(EvalResult::Record(grants)) = attr(&s, &res_a1, "grants") else {
        panic!("grants")
    };
    assert_eq!(grants.get("budget"), Some(&EvalResult::Bool(true)));
    assert!(grants.get("monthly_quota").is_some() && grants.get("one_time_quota").is_none());
    assert_eq!(
        attr(&s, &res_a1, "distributor"),
        Some(EvalResult::EntityUid(
            EntityRef::Partner("dist-a".into()).uid()
        ))
    );
    let dist = EntityRef::Partner("dist-a".into());
    assert_eq!(attr(&s, &dist, "distributor"), None);
    assert_eq!(
        attr(&s, &cust("cust-a1-1"), "authorization"),
        Some(EvalResult::EntityUid(
            EntityRef::Authorization("auth-a1-1".into()).uid()
        ))
    );
    assert_eq!(attr(&s, &cust("cust-a1-1"), "freeze_type"), None);

    // A non-reseller's grants are all false whatever is stored.
    let s = slice(&loader, &engine, &op("op-c-admin"), &cust("cust-c-1")).await;
    let Some(EvalResult::Record(grants)) = attr(&s, &EntityRef::Partner("sp-c".into()), "grants")
    else {
        panic!()
    };
    assert_eq!(grants.get("budget"), Some(&EvalResult::Bool(false)));

    // An order: its customer, the customer's partner chain and live authorization.
    let s = slice(
        &loader,
        &engine,
        &op("op-a-admin"),
        &EntityRef::Order("ord-a1-2".into()),
    )
    .await;
    assert_eq!(
        uids(&s),
        set(&[
            r#"Operator::"op-a-admin""#,
            r#"Partner::"dist-a""#,
            r#"Order::"ord-a1-2""#,
            r#"Customer::"cust-a1-2""#,
            r#"Partner::"res-a1""#,
            r#"Authorization::"auth-a1-2""#,
        ])
    );
    // A customer without live authorization has no `authorization`.
    let s = slice(
        &loader,
        &engine,
        &op("op-a1-admin"),
        &cust("cust-a1-revoked"),
    )
    .await;
    assert_eq!(attr(&s, &cust("cust-a1-revoked"), "authorization"), None);
    // A frozen customer carries its freeze type.
    let s = slice(
        &loader,
        &engine,
        &op("op-a1-admin"),
        &cust("cust-a1-frozen"),
    )
    .await;
    assert_eq!(
        attr(&s, &cust("cust-a1-frozen"), "freeze_type"),
        Some(EvalResult::String("ACCOUNT".into()))
    );

    // A session: its operator, the operator's partner chain, its customer and
    // the authorization it was created under; and a session as resource.
    let sessions = [
        session("sess-1", "op-a-ops", "cust-a1-2", "auth-a1-2"),
        session("sess-2", "op-a1-ops", "cust-a1-1", "auth-a1-1"),
    ];
    let s = loader
        .slice(
            &engine,
            &EntityRef::Session("sess-1".into()),
            &EntityRef::Resource("vm-a1-2".into()),
            &sessions,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        uids(&s),
        set(&[
            r#"Session::"sess-1""#,
            r#"Operator::"op-a-ops""#,
            r#"Partner::"dist-a""#,
            r#"Customer::"cust-a1-2""#,
            r#"Partner::"res-a1""#,
            r#"Authorization::"auth-a1-2""#,
            r#"Resource::"vm-a1-2""#,
        ])
    );
    let s = loader
        .slice(
            &engine,
            &EntityRef::Session("sess-1".into()),
            &EntityRef::Session("sess-2".into()),
            &sessions,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(
        uids(&s).contains(r#"Operator::"op-a1-ops""#),
        "the resource session's operator"
    );
    assert!(uids(&s).contains(r#"Authorization::"auth-a1-1""#));

    // What the slice holds is enough: a decision on it has no errors.
    let d = engine.decide(
        &AccessRequest::new(
            EntityRef::Session("sess-1".into()),
            "OperateResource",
            EntityRef::Resource("vm-a1-2".into()),
            ctx(json!({"operation": "stop"})),
        ),
        &loader
            .slice(
                &engine,
                &EntityRef::Session("sess-1".into()),
                &EntityRef::Resource("vm-a1-2".into()),
                &sessions,
            )
            .await
            .unwrap()
            .unwrap(),
    );
    assert!(d.errors.is_empty(), "{d:?}");
    assert!(d.allow, "{d:?}");
}

fn session(id: &str, operator: &str, customer: &str, authorization: &str) -> SessionFacts {
    SessionFacts {
        id: SessionId::from(id),
        operator: OperatorId::from(operator),
        customer: CustomerId::from(customer),
        scopes: vec![AuthorizationScope::Om],
        expires_at: partner_gateway::time::parse("2026-11-21T13:00:00Z").unwrap(),
        ended: false,
        end_reason: None,
        authorization_id: Some(AuthorizationId::from(authorization)),
    }
}

async fn unknown_ids(db: &TestDb) {
    let (engine, loader) = loader_over(db).await;
    let ghosts = [
        (op("op-ghost"), cust("cust-a1-1")),
        (op("op-a1-admin"), cust("cust-ghost")),
        (op("op-a1-admin"), EntityRef::Order("ord-ghost".into())),
        (op("op-a1-admin"), EntityRef::Resource("vm-ghost".into())),
        (
            op("op-a1-admin"),
            EntityRef::Authorization("auth-ghost".into()),
        ),
        (op("op-a1-admin"), EntityRef::Partner("ghost".into())),
        (EntityRef::Session("sess-ghost".into()), cust("cust-a1-1")),
        // An id of the wrong type does not exist either.
        (op("cust-a1-1"), cust("cust-a1-1")),
    ];
    for (p, r) in &ghosts {
        let found = loader.slice(&engine, p, r, &[]).await;
        assert!(matches!(found, Ok(None)), "{p} → {r}: {found:?}");
    }
    // A session pointing at an authorization that is not there is an error, not a deny.
    let broken = [session("s", "op-a1-ops", "cust-a1-1", "auth-ghost")];
    let err = loader
        .slice(
            &engine,
            &EntityRef::Session("s".into()),
            &cust("cust-a1-1"),
            &broken,
        )
        .await
        .expect_err("dangling");
    assert!(err.to_string().contains("auth-ghost"), "{err}");
}

async fn cache_hits(db: &TestDb) {
    let (engine, loader) = loader_over(db).await;
    // Operator records are cached only while a change would be heard: on
    // PostgreSQL, while the change feed is connected (as a running gateway's is).
    loader.set_change_feed(true);
    let (p, r) = (op("op-a1-finance"), cust("cust-a1-1"));
    // The gateway shares one engine and one loader between request tasks.
    fn shared<T: Send + Sync>(_: &T) {}
    fn sendable<T: Send>(_: &T) {}
    shared(&engine);
    shared(&loader);
    let first = loader.slice(&engine, &p, &r, &[]);
    sendable(&first);
    let first = first.await.unwrap().unwrap();
    let after_first = loader.stats();
    assert!(after_first.misses >= 4, "{after_first:?}");
    let second = slice(&loader, &engine, &p, &r).await;
    let after_second = loader.stats();
    assert_eq!(
        after_second.misses, after_first.misses,
        "no store read the second time"
    );
    assert!(
        after_second.hits >= after_first.hits + 5,
        "{after_second:?}"
    );
    assert!(first.deep_eq(&second));
}

/// Freezes a customer (an account freeze) straight in the database, as a
/// write that did not pass through the gateway.
async fn freeze_in_database(db: &TestDb, customer: &str) {
    sqlx::query("UPDATE customers SET frozen = $1, freeze_type = $2 WHERE id = $3")
        .bind(true)
        .bind("ACCOUNT")
        .bind(customer)
        .execute(db.store.pool())
        .await
        .unwrap();
}

async fn invalidation(db: &TestDb) {
    let (engine, loader) = loader_over(db).await;
    let (p, r) = (op("op-a1-admin"), cust("cust-a1-1"));
    let frozen = |s: &Entities| attr(s, &r, "frozen");
    assert_eq!(
        frozen(&slice(&loader, &engine, &p, &r).await),
        Some(EvalResult::Bool(false))
    );
    freeze_in_database(db, "cust-a1-1").await;
    assert_eq!(
        frozen(&slice(&loader, &engine, &p, &r).await),
        Some(EvalResult::Bool(false)),
        "cached"
    );
    loader.invalidate(&op("op-a1-admin"));
    assert_eq!(
        frozen(&slice(&loader, &engine, &p, &r).await),
        Some(EvalResult::Bool(false)),
        "another entity"
    );
    loader.invalidate(&r);
    let s = slice(&loader, &engine, &p, &r).await;
    assert_eq!(frozen(&s), Some(EvalResult::Bool(true)));
    assert_eq!(
        attr(&s, &r, "freeze_type"),
        Some(EvalResult::String("ACCOUNT".into()))
    );

    // Grants: the partner record.
    sqlx::query("UPDATE partners SET grant_budget = $1 WHERE id = $2")
        .bind(false)
        .bind("res-a1")
        .execute(db.store.pool())
        .await
        .unwrap();
    let request = AccessRequest::new(
        op("op-a1-finance"),
        "SetBudget",
        r.clone(),
        budget_ctx("MONTHLY", "10.00"),
    );
    let d = engine.decide(
        &request,
        &slice(&loader, &engine, &op("op-a1-finance"), &r).await,
    );
    assert!(d.allow, "cached grant");
    loader.invalidate(&EntityRef::Partner("res-a1".into()));
    let d = engine.decide(
        &request,
        &slice(&loader, &engine, &op("op-a1-finance"), &r).await,
    );
    assert!(!d.allow, "grant withdrawn: {d:?}");
}

/// A slice's Cedar entities, built once for an action, serve the next
/// decision on the same records and nothing else: another action, or a
/// record read again after a change, has them built anew.
async fn built_entities(db: &TestDb) {
    let (engine, loader) = loader_over(db).await;
    loader.set_change_feed(true);
    let (p, r) = (op("op-a1-admin"), cust("cust-a1-1"));
    let records = || async {
        loader
            .slice_records(&engine, &p, &r, &[])
            .await
            .unwrap()
            .expect("both exist")
    };
    let first = records().await;
    let built = loader.entities_for(&engine, "ViewBudget", &first).unwrap();
    assert!(built.deep_eq(&first.entities_for(&engine, "ViewBudget").unwrap()));
    let again = loader
        .entities_for(&engine, "ViewBudget", &records().await)
        .unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&built, &again),
        "the same records, built once"
    );
    let other = loader.entities_for(&engine, "SetBudget", &first).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&built, &other), "another action");
    assert!(other.deep_eq(&first.entities_for(&engine, "SetBudget").unwrap()));

    freeze_in_database(db, "cust-a1-1").await;
    loader.invalidate(&r);
    let changed = loader
        .entities_for(&engine, "ViewBudget", &records().await)
        .unwrap();
    assert_eq!(attr(&changed, &r, "frozen"), Some(EvalResult::Bool(true)));
}

async fn authorization_invalidation(db: &TestDb) {
    let (engine, loader) = loader_over(db).await;
    let (p, r) = (op("op-a1-ops"), cust("cust-a1-1"));
    let live = |s: &Entities| attr(s, &r, "authorization");
    let auth = |id: &str| {
        Some(EvalResult::EntityUid(
            EntityRef::Authorization(id.into()).uid(),
        ))
    };
    assert_eq!(
        live(&slice(&loader, &engine, &p, &r).await),
        auth("auth-a1-1")
    );

    // A newer pending request does not hide the approved authorization.
    sqlx::query(
        "INSERT INTO customer_authorizations (id, customer_id, partner_id, scopes, status,
            created_at, updated_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $7)",
    )
    .bind("auth-a1-1-new")
    .bind("cust-a1-1")
    .bind("res-a1")
    .bind("om")
    .bind("pending")
    .bind("2099-01-01T00:00:00Z")
    .bind("2099-12-31T00:00:00Z")
    .execute(db.store.pool())
    .await
    .unwrap();
    loader.invalidate(&r);
    assert_eq!(
        live(&slice(&loader, &engine, &p, &r).await),
        auth("auth-a1-1"),
        "approved first"
    );
    let stored = db
        .store
        .live_authorization(&"cust-a1-1".into(), &"res-a1".into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.id.as_str(), "auth-a1-1");

    // Approving the pending one supersedes the old one. The new one is not
    // cached (only the live one is), but the customer record knows it as a
    // candidate: invalidating the authorization alone drops the link.
    for (id, status) in [("auth-a1-1", "revoked"), ("auth-a1-1-new", "approved")] {
        sqlx::query("UPDATE customer_authorizations SET status = $1 WHERE id = $2")
            .bind(status)
            .bind(id)
            .execute(db.store.pool())
            .await
            .unwrap();
    }
    assert_eq!(
        live(&slice(&loader, &engine, &p, &r).await),
        auth("auth-a1-1"),
        "cached"
    );
    loader.invalidate(&EntityRef::Authorization("auth-a1-1-new".into()));
    let s = slice(&loader, &engine, &p, &r).await;
    assert_eq!(live(&s), auth("auth-a1-1-new"));
    assert_eq!(
        attr(
            &s,
            &EntityRef::Authorization("auth-a1-1-new".into()),
            "status"
        ),
        Some(EvalResult::String("approved".into()))
    );

    // Revoking it: now cached, it drops its own record and its customer's.
    sqlx::query("UPDATE customer_authorizations SET status = $1 WHERE id = $2")
        .bind("revoked")
        .bind("auth-a1-1-new")
        .execute(db.store.pool())
        .await
        .unwrap();
    let assume = AccessRequest::new(
        p.clone(),
        "AssumeRole",
        r.clone(),
        ctx(json!({"scopes": ["om"], "duration_seconds": 3600})),
    );
    assert!(
        engine
            .decide(&assume, &slice(&loader, &engine, &p, &r).await)
            .allow,
        "cached"
    );
    loader.invalidate(&EntityRef::Authorization("auth-a1-1-new".into()));
    let s = slice(&loader, &engine, &p, &r).await;
    assert_eq!(live(&s), None);
    let d = engine.decide(&assume, &s);
    assert_eq!(
        d.determining,
        vec!["R8-needs-approved-unexpired-authorization"],
        "{d:?}"
    );
}
