//! AuthZEN 1.0 on the admin listener: the specification's examples with our
//! types, decisions equal to the gateway's, batches in order with their
//! semantics, resource search equal to the list routes, and the token.

use crate::kit::{http_client, policies_dir, send, DomainServer, TestResponse};
use partner_gateway::store::Backend;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const DEMO: &str = include_str!("../../examples/demo.json");

async fn post(s: &DomainServer, path: &str, body: &Value) -> TestResponse {
    crate::kit::post_admin(s.running.admin_addr, path, body).await
}

async fn ok(s: &DomainServer, path: &str, body: &Value) -> Value {
    let r = post(s, path, body).await;
    assert_eq!(
        r.status,
        200,
        "{path} {body}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

fn demo_ids(kind: &str) -> Vec<String> {
    let demo: Value = serde_json::from_str(DEMO).unwrap();
    demo[kind]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect()
}

fn question(op: &str, action: &str, kind: &str, id: &str) -> Value {
    json!({
        "subject": {"type": "Operator", "id": op},
        "action": {"name": action},
        "resource": {"type": kind, "id": id},
    })
}

async fn decision(s: &DomainServer, q: &Value) -> bool {
    ok(s, "/access/v1/evaluation", q).await["decision"]
        .as_bool()
        .expect("a boolean decision")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_specification_examples_with_our_types() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    // Access Evaluation (properties are accepted; the store's attributes decide).
    let v = ok(
        &s,
        "/access/v1/evaluation",
        &json!({
            "subject": {"type": "Operator", "id": "op-dist-admin", "properties": {"department": "Sales"}},
            "resource": {"type": "Customer", "id": "cust-acme"},
            "action": {"name": "ViewCustomer", "properties": {"method": "GET"}},
            "context": {"now": s.at("now+3d")}
        }),
    )
    .await;
    assert_eq!(v["decision"], true, "{v}");
    assert!(!v["context"]["reason_admin"]["determining"]
        .as_array()
        .unwrap()
        .is_empty());
    // Access Evaluations: top-level defaults, an item overriding the action.
    let v = ok(
        &s,
        "/access/v1/evaluations",
        &json!({
            "subject": {"type": "Operator", "id": "op-east-admin"},
            "action": {"name": "ViewCustomer"},
            "evaluations": [
                {"resource": {"type": "Customer", "id": "cust-acme"}},
                {"resource": {"type": "Customer", "id": "cust-kite"}},
                {"action": {"name": "ViewBudget"}, "resource": {"type": "Customer", "id": "cust-birch"}}
            ]
        }),
    )
    .await;
    let got: Vec<Value> = v["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["decision"].clone())
        .collect();
    assert_eq!(got, [json!(true), json!(false), json!(true)], "{v}");
    // Without `evaluations` it is one evaluation.
    let v = ok(
        &s,
        "/access/v1/evaluations",
        &question("op-east-admin", "ViewCustomer", "Customer", "cust-acme"),
    )
    .await;
    assert_eq!(v["decision"], true);
    // Resource search: the customers a reseller's admin may view.
    let v = ok(
        &s,
        "/access/v1/search/resource",
        &json!({"subject": {"type": "Operator", "id": "op-west-admin"}, "action": {"name": "ViewCustomer"}, "resource": {"type": "Customer"}}),
    )
    .await;
    assert_eq!(
        v["results"],
        json!([
            {"type": "Customer", "id": "cust-harbor"},
            {"type": "Customer", "id": "cust-iris"},
            {"type": "Customer", "id": "cust-jade"}
        ])
    );
    assert_eq!(v["page"]["next_token"], "");
    // An unknown subject may do nothing: an empty page, as for a denied one.
    let v = ok(
        &s,
        "/access/v1/search/resource",
        &json!({"subject": {"type": "Operator", "id": "op-nobody"}, "action": {"name": "ViewCustomer"}, "resource": {"type": "Customer"}}),
    )
    .await;
    assert_eq!(v["results"], json!([]));
    // Subject search: who at res-west may view cust-harbor.
    let v = ok(
        &s,
        "/access/v1/search/subject",
        &json!({"subject": {"type": "Operator"}, "action": {"name": "ViewCustomer"}, "resource": {"type": "Customer", "id": "cust-harbor"}}),
    )
    .await;
    let who: BTreeSet<&str> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert!(
        who.contains("op-west-admin")
            && who.contains("op-west-am")
            && who.contains("op-dist-admin"),
        "{v}"
    );
    assert!(
        !who.contains("op-east-admin")
            && !who.contains("op-sp-admin")
            && !who.contains("op-dist-former"),
        "{v}"
    );
    // Discovery.
    let r = send(
        &http_client(),
        "GET",
        &format!(
            "http://{}/.well-known/authzen-configuration",
            s.running.admin_addr
        ),
        &[],
        vec![],
    )
    .await;
    assert_eq!(r.status, 200);
    let base = format!("http://{}", s.running.admin_addr);
    let meta = r.json();
    assert_eq!(meta["policy_decision_point"], base);
    assert_eq!(
        meta["access_evaluation_endpoint"],
        format!("{base}/access/v1/evaluation")
    );
    assert_eq!(
        meta["search_resource_endpoint"],
        format!("{base}/access/v1/search/resource")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_questions_name_the_field() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let cases = [
        (
            json!({"action": {"name": "ViewCustomer"}, "resource": {"type": "Customer", "id": "c"}}),
            "subject",
        ),
        (
            question("op-dist-admin", "ViewCustomers", "Customer", "c"),
            "action.name",
        ),
        (
            question("op-dist-admin", "ViewCustomer", "Client", "c"),
            "resource.type",
        ),
        (
            json!({"subject": {"type": "Partner", "id": "dist-north"}, "action": {"name": "ViewCustomer"}, "resource": {"type": "Customer", "id": "c"}}),
            "subject.type",
        ),
        (
            json!({"subject": {"type": "Operator", "id": "op-dist-admin"}, "evaluations": [{"action": {"name": "ViewCustomer"}, "resource": {"type": "Customer", "id": "c"}}, {"resource": {"type": "Customer", "id": "c"}}]}),
            "evaluations[1].action",
        ),
    ];
    for (body, field) in cases {
        let path = if body.get("evaluations").is_some() {
            "/access/v1/evaluations"
        } else {
            "/access/v1/evaluation"
        };
        let r = post(&s, path, &body).await;
        assert_eq!(r.status, 400, "{body}");
        let msg = r.json()["error_msg"].as_str().unwrap().to_owned();
        assert!(
            msg.contains(&format!("invalid parameter {field}")),
            "{field}: {msg}"
        );
    }
}

/// Gateway routes that decide one action on one customer.
const ROUTES: &[(&str, &str)] = &[
    ("ViewCustomer", "/v2/partners/sub-customers/{}/overview"),
    (
        "ViewBudget",
        "/v2/partners/sub-customers/budget?customer_id={}",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_equal_the_gateways() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let mut customers = demo_ids("customers");
    customers.push("cust-ghost".into());
    let mut seen = BTreeSet::new();
    for op in demo_ids("operators") {
        let who = s.operator(&op).await;
        for c in &customers {
            for (action, route) in ROUTES {
                let gateway = s
                    .call("GET", &route.replace("{}", c), Some(&who), None)
                    .await;
                assert!(
                    gateway.status == 200 || gateway.status == 403,
                    "{op} {route} {c}: {}",
                    gateway.status
                );
                let allowed = gateway.status == 200;
                let authzen = decision(&s, &question(&op, action, "Customer", c)).await;
                assert_eq!(authzen, allowed, "{op} {action} {c}");
                seen.insert(allowed);
            }
        }
    }
    assert_eq!(seen.len(), 2, "the table holds allows and denies");
    // A customer principal, on its own account and another's.
    let acme = s.customer("cust-acme");
    let own = s
        .call("GET", "/v2/customers/partner-activity", Some(&acme), None)
        .await;
    assert_eq!(own.status, 200);
    let q = |id: &str| json!({"subject": {"type": "Customer", "id": "cust-acme"}, "action": {"name": "ViewPartnerActivity"}, "resource": {"type": "Customer", "id": id}});
    assert!(decision(&s, &q("cust-acme")).await);
    assert!(!decision(&s, &q("cust-birch")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_keep_order_and_semantics() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let mut items = Vec::new();
    for (op, c) in [
        ("op-east-admin", "cust-kite"),
        ("op-east-admin", "cust-acme"),
        ("op-west-am", "cust-harbor"),
        ("op-west-am", "cust-iris"),
        ("op-dist-admin", "cust-jade"),
        ("op-sp-admin", "cust-acme"),
        ("op-dist-former", "cust-nova"),
        ("op-sp-admin", "cust-kite"),
    ] {
        items.push(question(op, "ViewCustomer", "Customer", c));
    }
    let mut one_by_one = Vec::new();
    for q in &items {
        one_by_one.push(decision(&s, q).await);
    }
    assert_eq!(
        one_by_one,
        [false, true, true, false, true, false, false, true]
    );
    let batch = |semantic: &str| json!({"evaluations": items, "options": {"evaluations_semantic": semantic}});
    let decisions = |v: Value| -> Vec<bool> {
        v["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["decision"].as_bool().unwrap())
            .collect()
    };
    let all = decisions(ok(&s, "/access/v1/evaluations", &batch("execute_all")).await);
    assert_eq!(all, one_by_one);
    let no_options =
        decisions(ok(&s, "/access/v1/evaluations", &json!({"evaluations": items})).await);
    assert_eq!(no_options, one_by_one);
    // Stops at the first deny (the first item), and at the first permit (the second).
    let d = decisions(ok(&s, "/access/v1/evaluations", &batch("deny_on_first_deny")).await);
    assert_eq!(d, [false]);
    let p = decisions(
        ok(
            &s,
            "/access/v1/evaluations",
            &batch("permit_on_first_permit"),
        )
        .await,
    );
    assert_eq!(p, [false, true]);
    let reversed: Vec<Value> = items.iter().rev().cloned().collect();
    let r = decisions(
        ok(
            &s,
            "/access/v1/evaluations",
            &json!({"evaluations": reversed}),
        )
        .await,
    );
    assert_eq!(r, one_by_one.iter().rev().cloned().collect::<Vec<_>>());
    let bad = post(&s, "/access/v1/evaluations", &batch("first_come")).await;
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error_msg"]
        .as_str()
        .unwrap()
        .contains("options.evaluations_semantic"));
}

/// Every page of a resource search at `limit`.
async fn searched(s: &DomainServer, op: &str, action: &str, kind: &str, limit: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = String::new();
    loop {
        let v = ok(
            s,
            "/access/v1/search/resource",
            &json!({"subject": {"type": "Operator", "id": op}, "action": {"name": action},
                    "resource": {"type": kind}, "page": {"token": token, "limit": limit}}),
        )
        .await;
        let page = v["results"].as_array().unwrap();
        assert!(page.len() as u64 <= limit);
        out.extend(page.iter().map(|r| {
            assert_eq!(r["type"], kind);
            r["id"].as_str().unwrap().to_owned()
        }));
        token = v["page"]["next_token"].as_str().unwrap().to_owned();
        if token.is_empty() {
            return out;
        }
    }
}

/// Every item of a gateway list, page by page.
async fn listed(s: &DomainServer, op: &str, customers: bool) -> Option<Vec<String>> {
    let who = s.operator(op).await;
    let (r, list, field) = if customers {
        let r = s
            .call(
                "POST",
                "/v2/partners/sub-customers/query",
                Some(&who),
                Some(json!({"offset": 0, "limit": 100})),
            )
            .await;
        (r, "customer_infos", "customer_id")
    } else {
        let r = s
            .call(
                "GET",
                "/v2/orders/customer-orders?offset=0&limit=100",
                Some(&who),
                None,
            )
            .await;
        (r, "order_infos", "order_id")
    };
    if r.status == 403 {
        return None;
    }
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    Some(
        r.json()[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o[field].as_str().unwrap().to_owned())
            .collect(),
    )
}

async fn resource_search_equals_the_list_routes(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let mut nonempty = 0;
    for (k, op) in demo_ids("operators").iter().enumerate() {
        for (customers, action, kind) in [
            (true, "ViewCustomer", "Customer"),
            (false, "ViewOrder", "Order"),
        ] {
            let limit = [1, 2, 3, 7, 100][k % 5];
            let found: BTreeSet<String> = searched(&s, op, action, kind, limit)
                .await
                .into_iter()
                .collect();
            let listed: BTreeSet<String> = listed(&s, op, customers)
                .await
                .unwrap_or_default()
                .into_iter()
                .collect();
            assert_eq!(found, listed, "{op} {kind} (limit {limit})");
            nonempty += usize::from(!found.is_empty());
        }
    }
    assert!(nonempty > 10, "the table compares real lists");
}

crate::test_on_backends! {
    resource_search_equals_lists => resource_search_equals_the_list_routes;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_wrong_token_is_401() {
    const TOKEN: &str = "authzen-test-token-0123456789";
    let s = DomainServer::start_tuned(Backend::Sqlite, DEMO, &policies_dir(), |cfg| {
        cfg.operations.admin.token = Some(TOKEN.into());
    })
    .await;
    let q = question("op-dist-admin", "ViewCustomer", "Customer", "cust-acme");
    let search = json!({"subject": {"type": "Operator", "id": "op-dist-admin"}, "action": {"name": "ViewCustomer"}, "resource": {"type": "Customer"}});
    for (path, body) in [
        ("/access/v1/evaluation", &q),
        ("/access/v1/evaluations", &q),
        ("/access/v1/search/resource", &search),
    ] {
        for auth in [None, Some("Bearer not-the-token-0123456789")] {
            let mut headers = vec![("content-type", "application/json".to_owned())];
            headers.extend(auth.map(|a| ("authorization", a.to_owned())));
            let url = format!("http://{}{path}", s.running.admin_addr);
            let r = send(
                &http_client(),
                "POST",
                &url,
                &headers,
                serde_json::to_vec(body).unwrap(),
            )
            .await;
            assert_eq!(r.status, 401, "{path} {auth:?}");
            assert!(r.json().get("decision").is_none() && r.json().get("results").is_none());
        }
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("authorization", format!("Bearer {TOKEN}")),
        ];
        let url = format!("http://{}{path}", s.running.admin_addr);
        let r = send(
            &http_client(),
            "POST",
            &url,
            &headers,
            serde_json::to_vec(body).unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{path}");
    }
    // Discovery is read before a client holds any credential: open.
    let url = format!(
        "http://{}/.well-known/authzen-configuration",
        s.running.admin_addr
    );
    assert_eq!(
        send(&http_client(), "GET", &url, &[], vec![]).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_decision_is_a_decision_record() {
    let captured = crate::gateway::operations::captured();
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let one = ok(
        &s,
        "/access/v1/evaluation",
        &question("op-west-am", "ViewCustomer", "Customer", "cust-harbor"),
    )
    .await;
    let batch = ok(
        &s,
        "/access/v1/evaluations",
        &json!({"evaluations": [
            question("op-west-am", "ViewBudget", "Customer", "cust-iris"),
            question("op-sp-admin", "ViewCustomer", "Customer", "cust-kite"),
        ]}),
    )
    .await;
    let mut expected = vec![(
        one["context"]["id"].clone(),
        "op-west-am",
        "ViewCustomer",
        "cust-harbor",
        "allow",
    )];
    let answers = batch["evaluations"].as_array().unwrap();
    expected.push((
        answers[0]["context"]["id"].clone(),
        "op-west-am",
        "ViewBudget",
        "cust-iris",
        "deny",
    ));
    expected.push((
        answers[1]["context"]["id"].clone(),
        "op-sp-admin",
        "ViewCustomer",
        "cust-kite",
        "allow",
    ));
    let lines = captured.decision_lines();
    for (id, who, action, customer, decision) in expected {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id)
            .unwrap_or_else(|| panic!("no decision record {id}"));
        assert_eq!(line["principal"], format!("Operator::\"{who}\""), "{line}");
        assert_eq!(line["action"], action, "{line}");
        assert_eq!(line["decision"], decision, "{line}");
        assert!(line["resources"].to_string().contains(customer), "{line}");
        assert!(
            line["path"]
                .as_str()
                .unwrap()
                .starts_with("/access/v1/evaluation"),
            "{line}"
        );
    }
}
