//! The console's JSON on the admin listener (the pages themselves are driven
//! in a real browser by `tests/console`, from `.ci/run`).

use crate::gateway::operations::PolicyCopy;
use crate::kit::{http_client, send, DomainServer, TestResponse};
use partner_gateway::model::AuthorizationScope::Om;
use partner_gateway::store::Backend;
use serde_json::{json, Value};

const DEMO: &str = include_str!("../../examples/demo.json");

async fn admin(s: &DomainServer, method: &str, path: &str, body: Option<Value>) -> TestResponse {
    send(
        &http_client(),
        method,
        &format!("http://{}{path}", s.running.admin_addr),
        &[("content-type", "application/json".to_owned())],
        body.map(|b| serde_json::to_vec(&b).unwrap())
            .unwrap_or_default(),
    )
    .await
}

async fn get(s: &DomainServer, path: &str) -> Value {
    let r = admin(s, "GET", path, None).await;
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    r.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ending_a_session_from_the_console_kills_its_credentials() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let session = s
        .session("sess-console", "op-east-admin", "cust-acme", vec![Om])
        .await;
    let own = "/v2/customer/resources";
    assert_eq!(s.call("GET", own, Some(&session), None).await.status, 200);
    let live = get(&s, "/console/api/sessions").await;
    let row = live["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "sess-console")
        .unwrap_or_else(|| panic!("the session is listed: {live}"));
    assert_eq!(row["operator"], "op-east-admin");
    assert_eq!(row["customer"], "cust-acme");
    assert_eq!(row["scopes"], json!(["om"]));

    let ended = admin(
        &s,
        "POST",
        "/console/api/sessions/sess-console/end",
        Some(json!({})),
    )
    .await;
    assert_eq!(ended.status, 200);
    assert_eq!(ended.json()["ended"], true);
    // At once: the very next request is refused (not after the cache's TTL).
    let after = s.call("GET", own, Some(&session), None).await;
    assert_eq!(
        after.status,
        403,
        "{}",
        String::from_utf8_lossy(&after.body)
    );
    let live = get(&s, "/console/api/sessions").await;
    assert!(!live.to_string().contains("sess-console"), "{live}");
    // Recorded in the customer's activity, as a switch-back is.
    let acme = s.customer("cust-acme");
    let activity = s
        .call("GET", "/v2/customers/partner-activity", Some(&acme), None)
        .await;
    assert!(activity.json().to_string().contains("end_session"));
    let unknown = admin(
        &s,
        "POST",
        "/console/api/sessions/sess-nope/end",
        Some(json!({})),
    )
    .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_listed_filtered_with_their_policies() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let who = s.operator("op-west-am").await;
    let denied = s
        .call(
            "GET",
            "/v2/partners/sub-customers/cust-kite/overview",
            Some(&who),
            None,
        )
        .await;
    assert_eq!(denied.status, 403);
    let allowed = s
        .call(
            "GET",
            "/v2/partners/sub-customers/cust-harbor/overview",
            Some(&who),
            None,
        )
        .await;
    assert_eq!(allowed.status, 200);
    let id = |r: &TestResponse| r.headers["x-request-id"].to_str().unwrap().to_owned();
    let (denied_id, allowed_id) = (id(&denied), id(&allowed));

    let listed = |v: &Value| -> Vec<Value> { v["decisions"].as_array().unwrap().clone() };
    let all = listed(&get(&s, "/console/api/decisions?principal=op-west-am").await);
    let d = all
        .iter()
        .find(|d| d["request_id"] == denied_id.as_str())
        .expect("the denied call is listed");
    assert_eq!(d["decision"], "deny");
    assert_eq!(d["action"], "ViewCustomer");
    let policy = &d["determining"][0];
    assert_eq!(policy["id"], "R1-operator-stays-in-its-hierarchy");
    assert!(
        policy["location"]
            .as_str()
            .unwrap()
            .contains("00-guardrails.cedar:"),
        "{policy}"
    );
    assert!(
        policy["text"].as_str().unwrap().contains("forbid"),
        "{policy}"
    );

    let denies = listed(
        &get(
            &s,
            "/console/api/decisions?principal=op-west-am&decision=deny&resource=cust-",
        )
        .await,
    );
    assert!(denies.iter().all(|d| d["decision"] == "deny"));
    assert!(denies.iter().any(|d| d["request_id"] == denied_id.as_str()));
    assert!(!denies
        .iter()
        .any(|d| d["request_id"] == allowed_id.as_str()));
    let harbor = listed(
        &get(
            &s,
            "/console/api/decisions?resource=CUST-HARBOR&action=viewcustomer",
        )
        .await,
    );
    assert!(harbor
        .iter()
        .any(|d| d["request_id"] == allowed_id.as_str()));
    assert!(!harbor.iter().any(|d| d["request_id"] == denied_id.as_str()));
    let bad = admin(&s, "GET", "/console/api/decisions?decision=maybe", None).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_of_a_partner() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    s.session("sess-graph", "op-west-admin", "cust-harbor", vec![Om])
        .await;
    let g = get(&s, "/console/api/graph?partner=dist-north").await;
    let ids: Vec<&str> = g["partners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["dist-north", "res-east", "res-west"]);
    let west = &g["partners"][2];
    assert_eq!(west["grants"]["on_behalf"], false);
    let customers: Vec<&str> = west["customers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(customers, ["cust-harbor", "cust-iris", "cust-jade"]);
    let harbor = &west["customers"][0];
    assert_eq!(harbor["authorizations"][0]["status"], "approved");
    assert_eq!(harbor["sessions"][0]["id"], "sess-graph");
    // A reseller's own graph holds only it.
    let g = get(&s, "/console/api/graph?partner=res-west").await;
    assert_eq!(g["partners"].as_array().unwrap().len(), 1);
    let missing = admin(&s, "GET", "/console/api/graph?partner=nobody", None).await;
    assert_eq!(missing.status, 400);
    assert!(missing.json()["error_msg"]
        .as_str()
        .unwrap()
        .contains("partner"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_disagreements_side_by_side() {
    let shadow = PolicyCopy::new();
    shadow.write(
        "99-test-forbid-views.cedar",
        "@id(\"TEST-forbid-views\")\nforbid (principal, action == PartnerCenter::Action::\"ViewCustomer\", resource);\n",
    );
    let dir = shadow.policies();
    let s = DomainServer::start_tuned(Backend::Sqlite, DEMO, &crate::kit::policies_dir(), |cfg| {
        cfg.operations.shadow_policies = Some(dir);
    })
    .await;
    let who = s.operator("op-west-admin").await;
    let r = s
        .call(
            "GET",
            "/v2/partners/sub-customers/cust-iris/overview",
            Some(&who),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let v = get(&s, "/console/api/shadow").await;
    assert_eq!(v["configured"], true);
    let d = v["disagreements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["principal"] == "Operator::\"op-west-admin\""
                && d["resource"] == "Customer::\"cust-iris\""
        })
        .unwrap_or_else(|| panic!("the disagreement is listed: {v}"));
    assert_eq!(d["live"]["decision"], "allow");
    assert_eq!(d["shadow"]["decision"], "deny");
    assert_eq!(d["shadow"]["determining"], json!(["TEST-forbid-views"]));
    let status = get(&s, "/console/api/status").await;
    assert!(status["shadow_policies"]["version"].is_string(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_embedded_and_locked_down() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let r = admin(&s, "GET", path, None).await;
        assert_eq!(r.status, 200, "{path}");
        let ct = r.headers["content-type"].to_str().unwrap();
        assert!(ct.starts_with(kind), "{path}: {ct}");
        let csp = r.headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"));
    }
    let page = admin(&s, "GET", "/console", None).await;
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        html.contains("/console/app.js") && !html.contains("<script>"),
        "no inline script"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_count_their_live_decisions_and_the_fleet_lists_this_gateway() {
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let count = |v: &Value, id: &str| {
        v["policies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {v}"))["determined"]
            .as_u64()
            .unwrap()
    };
    let viewer = "R1-operator-views-customer-data";
    let before = get(&s, "/console/api/policies").await;
    let east = s.operator("op-east-admin").await;
    let overview = "/v2/partners/sub-customers/cust-acme/overview";
    for _ in 0..2 {
        // The second is a reused decision: counted as well.
        assert_eq!(s.call("GET", overview, Some(&east), None).await.status, 200);
    }
    let after = get(&s, "/console/api/policies").await;
    assert_eq!(count(&after, viewer), count(&before, viewer) + 2);
    // A question an administrator asks is no live decision.
    let explained = admin(
        &s,
        "POST",
        "/v1/explain",
        Some(json!({"principal": "Operator::\"op-east-admin\"", "action": "ViewCustomer", "resource": "Customer::\"cust-acme\""})),
    )
    .await;
    assert_eq!(explained.status, 200);
    assert_eq!(
        count(&get(&s, "/console/api/policies").await, viewer),
        count(&after, viewer)
    );

    let started = std::time::Instant::now();
    loop {
        let fleet = get(&s, "/console/api/fleet").await;
        let me = fleet["gateways"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["instance"] == fleet["instance"]);
        if let Some(me) = me {
            assert_eq!(me["version"], after["version"], "{fleet}");
            assert_eq!(me["seq"], Value::Null, "serves files: {fleet}");
            assert_eq!(me["proved"], true, "{fleet}");
            assert_eq!(fleet["publications"], json!([]), "{fleet}");
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "this gateway never reported: {fleet}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
