//! `who-can` (issue 17) equals a brute-force check: on the demo data with
//! live, ended and expired sessions, for every action of the schema and
//! several resources (one customer of each kind, and the orders, resources,
//! authorizations, partners, sessions, exports and operators around them),
//! the principals it lists, with their determining policies, are exactly
//! those a decision allows among every operator, customer and session. On
//! both databases; the admin listener's `POST /v1/who-can` and the CLI give
//! the same answer, and a question naming nothing real is refused.

use crate::domain::support::DEMO;
use crate::kit::{http_client, policies_dir, schema_dir, send, DomainServer};
use crate::test_on_backends;
use arc_swap::ArcSwap;
use partner_gateway::authorizer::reuse::{DecisionCache, ReuseStats};
use partner_gateway::authorizer::Authorizer;
use partner_gateway::entities::EntityLoader;
use partner_gateway::model::AuthorizationScope::{Om, Order};
use partner_gateway::policy::{AccessRequest, PolicyEngine};
use partner_gateway::policy_tools::who_can::who_can;
use partner_gateway::refs::{EntityRef, EntityType};
use partner_gateway::store::Backend;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// One customer of each kind: the distributor's own (resale, referral,
/// frozen), a granted reseller's (resale with an approved authorization,
/// referral, frozen), an ungranted reseller's, a solution provider's (resale,
/// referral).
const CUSTOMERS: [&str; 9] = [
    "cust-nova",
    "cust-pixel",
    "cust-quartz",
    "cust-acme",
    "cust-fjord",
    "cust-glacier",
    "cust-harbor",
    "cust-kite",
    "cust-lumen",
];

const NOW: &str = "2026-11-21T12:00:00Z";

/// A context that fits `action`: its fields besides `now` and `source_ip`.
/// An action added to the schema must be added here (the check says so).
fn context(action: &str) -> Map<String, Value> {
    let extra = match action {
        "RevealContact" => json!({"fields": ["email"]}),
        "SetBudget" => {
            json!({"amount": "100.00", "budget_type": "MONTHLY", "cancel_partner_frozen": false})
        }
        "FreezeCustomer" | "UnfreezeCustomer" => json!({"freeze_type": "ACCOUNT"}),
        "AdjustOrderPrice" => json!({"amount": "90.00"}),
        "SetResellerGrants" => json!({"budget": true, "freeze": false, "on_behalf": true}),
        "RequestAuthorization" => json!({"scopes": ["om"], "duration_days": 365}),
        "AssumeRole" => json!({"scopes": ["om"], "duration_seconds": 3600}),
        "PlaceOrder" => {
            json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.obs"})
        }
        "OperateResource" => json!({"operation": "restart"}),
        "IssueToken" => json!({"auth_method": "signature", "duration_seconds": 3600}),
        _ => json!({}),
    };
    let mut context = extra.as_object().unwrap().clone();
    context.insert("now".into(), json!(NOW));
    context.insert("source_ip".into(), json!("127.0.0.1"));
    context
}

/// Every id of `ty`'s table (optionally `WHERE` a condition).
async fn all(s: &DomainServer, table: &str, filter: &str) -> Vec<String> {
    let sql = format!("SELECT id FROM {table} {filter} ORDER BY id");
    let rows: Vec<(String,)> = sqlx::query_as(&sql)
        .fetch_all(s.db.store.pool())
        .await
        .unwrap();
    rows.into_iter().map(|(id,)| id).collect()
}

/// The demo data with sessions (live ones, one ended, one expired) and an
/// export of each principal kind.
async fn demo_with_sessions(backend: Backend) -> DomainServer {
    let s = DomainServer::start(backend, DEMO).await;
    for (id, operator, customer, scopes) in [
        ("s-acme", "op-east-ops", "cust-acme", vec![Om, Order]),
        ("s-acme-am", "op-east-am", "cust-acme", vec![Om]),
        ("s-nova", "op-dist-ops", "cust-nova", vec![Order]),
        ("s-harbor", "op-west-admin", "cust-harbor", vec![Om]),
        ("s-kite", "op-sp-finops", "cust-kite", vec![Order]),
        (
            "s-glacier",
            "op-east-admin",
            "cust-glacier",
            vec![Om, Order],
        ),
        ("s-ended", "op-east-ops", "cust-acme", vec![Om, Order]),
        ("s-expired", "op-dist-ops", "cust-nova", vec![Order]),
    ] {
        s.session(id, operator, customer, scopes).await;
    }
    let pool = s.db.store.pool();
    for sql in [
        "UPDATE partner_sessions SET ended_at = created_at WHERE id = 's-ended'",
        "UPDATE partner_sessions SET expires_at = '2026-01-01T00:00:00Z' WHERE id = 's-expired'",
    ] {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    for (id, kind, owner) in [
        ("exp-op", "operator", "op-dist-admin"),
        ("exp-cust", "customer", "cust-acme"),
        ("exp-sess", "session", "s-acme"),
    ] {
        sqlx::query(
            "INSERT INTO export_tasks (id, principal_kind, principal_id, status, created_at)
             VALUES ($1, $2, $3, 'pending', $4)",
        )
        .bind(id)
        .bind(kind)
        .bind(owner)
        .bind(NOW)
        .execute(pool)
        .await
        .unwrap();
    }
    s
}

/// The resources the check asks about, for each resource type.
async fn resources(s: &DomainServer) -> BTreeMap<EntityType, Vec<EntityRef>> {
    let chosen = CUSTOMERS.map(|c| format!("'{c}'")).join(", ");
    let of_chosen = format!("WHERE customer_id IN ({chosen})");
    let mut out = BTreeMap::new();
    let mut put = |ty: EntityType, ids: Vec<String>| {
        out.insert(ty, ids.into_iter().map(|id| ty.entity(id)).collect());
    };
    put(EntityType::Customer, CUSTOMERS.map(str::to_owned).to_vec());
    // One order and one resource of each chosen customer that has any.
    for (ty, table) in [
        (EntityType::Order, "orders"),
        (EntityType::Resource, "resources"),
    ] {
        let sql = format!("SELECT MIN(id) FROM {table} {of_chosen} GROUP BY customer_id");
        let rows: Vec<(String,)> = sqlx::query_as(&sql)
            .fetch_all(s.db.store.pool())
            .await
            .unwrap();
        put(ty, rows.into_iter().map(|(id,)| id).collect());
    }
    put(
        EntityType::Authorization,
        all(s, "customer_authorizations", &of_chosen).await,
    );
    put(EntityType::Partner, all(s, "partners", "").await);
    put(EntityType::Session, all(s, "partner_sessions", "").await);
    put(EntityType::Export, all(s, "export_tasks", "").await);
    put(
        EntityType::Operator,
        ["op-dist-admin", "op-east-am", "op-dist-former"]
            .map(str::to_owned)
            .to_vec(),
    );
    out
}

/// Principal → determining policy ids.
type Answer = BTreeMap<String, Vec<String>>;

/// Every principal of the demo with its sessions.
async fn every_principal(s: &DomainServer) -> Vec<EntityRef> {
    let mut principals: Vec<EntityRef> = Vec::new();
    for (ty, table) in [
        (EntityType::Operator, "operators"),
        (EntityType::Customer, "customers"),
        (EntityType::Session, "partner_sessions"),
    ] {
        principals.extend(all(s, table, "").await.into_iter().map(|id| ty.entity(id)));
    }
    principals
}

/// What who-can answered, as principal → determining policies.
fn listed(answer: &partner_gateway::policy_tools::who_can::WhoCan) -> Answer {
    answer
        .principals
        .iter()
        .map(|p| {
            let ids = p.determining.iter().map(|d| d.id.clone()).collect();
            (p.principal.clone(), ids)
        })
        .collect()
}

/// The same question decided for every principal, one by one.
async fn brute_force(
    engine: &PolicyEngine,
    loader: &EntityLoader,
    principals: &[EntityRef],
    action: &str,
    resource: &EntityRef,
    context: &Map<String, Value>,
) -> Answer {
    let mut expected = Answer::new();
    for principal in principals {
        let entities = loader
            .slice(engine, principal, resource, &[])
            .await
            .unwrap()
            .expect("every principal and resource exists");
        let request =
            AccessRequest::new(principal.clone(), action, resource.clone(), context.clone());
        let decision = engine.decide(&request, &entities);
        assert!(
            decision.errors.is_empty(),
            "{action} {principal} {resource}: {:?}",
            decision.errors
        );
        if decision.allow {
            expected.insert(principal.to_string(), decision.determining);
        }
    }
    expected
}

async fn agrees_with_brute_force(backend: Backend) {
    let s = demo_with_sessions(backend).await;
    // With a decision cache, as the gateway's authorizer has: who-can's
    // questions must neither read nor fill it.
    let authorizer = Authorizer::new(
        Arc::new(ArcSwap::from_pointee(
            PolicyEngine::load(&policies_dir(), &schema_dir()).unwrap(),
        )),
        Default::default(),
        Arc::new(EntityLoader::new(
            s.db.store.clone(),
            16 << 20,
            Duration::from_secs(60),
        )),
        DecisionCache::new(4 << 20),
    );
    let (engine, loader) = (authorizer.policies.load_full(), &authorizer.entities);
    let principals = every_principal(&s).await;
    assert_eq!(principals.len(), 14 + 18 + 8, "every principal of the demo");
    let resources = resources(&s).await;
    let schema = engine.schema();
    let (mut asked, mut allowed, mut filtered, mut one_by_one) = (0, 0, 0, 0);
    for action in schema.actions() {
        let name = action.id().unescaped().to_owned();
        let Some(types) = schema.resources_for_action(action) else {
            continue;
        };
        let context = context(&name);
        for ty in types.filter_map(EntityType::from_cedar) {
            for resource in &resources[&ty] {
                let answer = who_can(&authorizer, &engine, &name, resource, context.clone())
                    .await
                    .unwrap_or_else(|e| panic!("{name} on {resource}: {e}"));
                let got = listed(&answer);
                let expected =
                    brute_force(&engine, loader, &principals, &name, resource, &context).await;
                assert_eq!(got, expected, "who may {name} on {resource}:\n{answer}");
                asked += 1;
                allowed += got.len();
                for t in &answer.by_type {
                    if t.answer.decision != "filter" {
                        continue;
                    }
                    match (&t.answer.filter, t.answer.item_by_item.is_empty()) {
                        (Some(_), true) => filtered += 1,
                        _ => one_by_one += 1,
                    }
                }
            }
        }
    }
    // The check covered real answers, both by a filter and one by one.
    assert!(asked > 250, "{asked} questions");
    assert!(allowed > 500, "{allowed} principals allowed in all");
    assert!(
        filtered > 150 && one_by_one > 20,
        "{filtered} types by a filter, {one_by_one} one by one"
    );
    assert_eq!(
        authorizer.decisions.stats(),
        ReuseStats::default(),
        "an administrator's questions used the decision cache"
    );

    // The admin listener gives the same answer.
    let body = json!({"action": "ViewOwnOrders", "resource": "Customer::\"cust-acme\"", "context": {"now": NOW}});
    let r = admin(&s, &body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let listed: Vec<String> = r.json()["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["principal"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        listed,
        [
            "Customer::\"cust-acme\"",
            "Session::\"s-acme\"",
            "Session::\"s-acme-am\""
        ]
    );
}

/// A policy naming a set member in another case (`"Admin"`, where roles are
/// stored as `admin`) matches nobody in Cedar, and so in who-can's SQL:
/// SQLite's `LIKE` would have matched it.
async fn members_match_in_their_case(backend: Backend) {
    let s = demo_with_sessions(backend).await;
    let dir = tempfile::tempdir().unwrap();
    for file in std::fs::read_dir(policies_dir()).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let added = r#"@id("R99-Admin-freezes")
permit (
  principal is PartnerCenter::Operator,
  action == PartnerCenter::Action::"FreezeCustomer",
  resource is PartnerCenter::Customer
)
when { principal.roles.contains("Admin") };
"#;
    std::fs::write(dir.path().join("99-case.cedar"), added).unwrap();
    let authorizer = Authorizer::for_questions(
        PolicyEngine::load(dir.path(), &schema_dir()).unwrap(),
        EntityLoader::new(s.db.store.clone(), 16 << 20, Duration::from_secs(60)),
    );
    let (engine, loader) = (authorizer.policies.load_full(), &authorizer.entities);
    let principals = every_principal(&s).await;
    let resource = EntityRef::Customer("cust-nova".into());
    let context = context("FreezeCustomer");
    let answer = who_can(
        &authorizer,
        &engine,
        "FreezeCustomer",
        &resource,
        context.clone(),
    )
    .await
    .unwrap();
    let expected = brute_force(
        &engine,
        loader,
        &principals,
        "FreezeCustomer",
        &resource,
        &context,
    )
    .await;
    assert_eq!(listed(&answer), expected, "{answer}");
}

test_on_backends! {
    who_can_equals_brute_force => agrees_with_brute_force;
    who_can_matches_members_in_their_case => members_match_in_their_case;
}

async fn admin(s: &DomainServer, body: &Value) -> crate::kit::TestResponse {
    send(
        &http_client(),
        "POST",
        &format!("http://{}/v1/who-can", s.running.admin_addr),
        &[("content-type", "application/json".into())],
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreal_question_is_a_400_naming_the_field() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let acme = "Customer::\"cust-acme\"";
    for (body, expect) in [
        (
            json!({"action": "Freeze", "resource": acme}),
            &["invalid parameter action", "FreezeCustomer"][..],
        ),
        (
            json!({"action": "ViewOrder", "resource": acme}),
            &[
                "invalid parameter resource",
                "Customer cannot be the resource of ViewOrder",
                "Order",
            ],
        ),
        (
            json!({"action": "ViewCustomer", "resource": "Customer::\"cust-nope\""}),
            &["invalid parameter resource", "cust-acme", "cust-nova"],
        ),
        (
            json!({"action": "SetBudget", "resource": acme, "context": {"amount": "1.00"}}),
            &["invalid parameter context", "budget_type"],
        ),
    ] {
        let r = admin(&s, &body).await;
        assert_eq!(
            r.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&r.body)
        );
        let v = r.json();
        let msg = v["error_msg"].as_str().unwrap();
        assert!(v["error_code"].is_string(), "{v}");
        for e in expect {
            assert!(msg.contains(e), "{e:?} not in {msg}");
        }
    }
}

/// Runs `policy who-can` on the demo data.
fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_partner-gateway"))
        .args(["policy", "who-can"])
        .args(args)
        .args([
            "--fixture",
            concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo.json"),
            "--policies",
            concat!(env!("CARGO_MANIFEST_DIR"), "/policies"),
            "--schema",
            concat!(env!("CARGO_MANIFEST_DIR"), "/schema"),
        ])
        .output()
        .unwrap()
}

#[test]
fn the_cli_lists_principals_with_their_policies() {
    let out = cli(&[
        "FreezeCustomer",
        "Customer::\"cust-acme\"",
        "--context",
        r#"{"freeze_type": "ACCOUNT"}"#,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // cust-acme's reseller holds no freeze grant: its distributor's admin
    // and finance operators, and no one else.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  Operator::"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for op in ["op-dist-admin", "op-dist-am-fin", "op-dist-finance"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(op)
                    && l.contains("R3-distributor-freezes-for-ungranted-reseller")),
            "{op} in {text}"
        );
    }
    // The answer, not how it was worked out, unless asked for; instants
    // in residuals as instants.
    assert!(
        !text.contains("sql:") && !text.contains("residual policies"),
        "{text}"
    );
    let how = cli(&["ViewBudget", "Customer::\"cust-acme\"", "--residuals"]);
    let how = String::from_utf8_lossy(&how.stdout);
    assert!(
        how.contains("residual policies") && how.contains("sql:"),
        "{how}"
    );
    assert!(
        how.contains("principal.expires_at <= datetime(\"20") && !how.contains("1970-01-01"),
        "{how}"
    );
    let json = cli(&["ViewCustomer", "Customer::\"cust-acme\"", "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["principals"].as_array().unwrap().len(), 8, "{v}");

    for (args, expect) in [
        (
            &["Freeze", "Customer::\"cust-acme\""][..],
            "unknown action \"Freeze\"",
        ),
        (
            &["ViewOrder", "Customer::\"cust-acme\""],
            "its resource types are: Order",
        ),
        (
            &["ViewCustomer", "Widget::\"w\""],
            "unknown entity type \"Widget\"",
        ),
        (&["ViewCustomer", "Customer::\"cust-nope\""], "cust-acme"),
        (&["SetBudget", "Customer::\"cust-acme\""], "amount"),
    ] {
        let out = cli(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(expect), "{expect:?} not in {err}");
        assert!(out.stdout.is_empty(), "no answer is printed");
    }
}

/// `POST /v1/who-can` answers a page at a time, as AuthZEN's searches do:
/// the pages at a small limit hold, in order, exactly the principals of one
/// large page, and a limit out of 1..=1000 is a 400 naming `page.limit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_can_answers_in_pages() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let ask = |page: Value| json!({"action": "ViewCustomer", "resource": "Customer::\"cust-acme\"", "page": page});
    let names = |v: &Value| -> Vec<String> {
        v["principals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["principal"].as_str().unwrap().to_owned())
            .collect()
    };
    let whole = admin(&s, &ask(json!({"limit": 1000}))).await.json();
    let all = names(&whole);
    assert!(all.len() > 2, "{whole}");
    assert_eq!(whole["page"]["total"], all.len());
    assert_eq!(whole["page"]["next_token"], "");
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let v = admin(&s, &ask(json!({"limit": 2, "token": token})))
            .await
            .json();
        let got = names(&v);
        assert!(got.len() <= 2 && v["page"]["count"] == got.len(), "{v}");
        assert_eq!(v["page"]["total"], all.len());
        paged.extend(got);
        token = v["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(paged, all);
    for limit in [0, 1001] {
        let r = admin(&s, &ask(json!({"limit": limit}))).await;
        assert_eq!(r.status, 400);
        assert!(r.json()["error_msg"]
            .as_str()
            .unwrap()
            .contains("page.limit"));
    }
}
