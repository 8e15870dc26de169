//! Reused decisions (`authorizer::reuse`) end exactly where their facts
//! do: a decision served again is never one whose facts changed (an operator
//! disabled, an authorization revoked, a grant withdrawn) nor one past an
//! instant its policies compare `now` with (an expiry). Each case first
//! shows the question's decision being reused, so that the change is made
//! under a warm cache.

use super::dead::until;
use super::operations::{scrape, total};
use super::sessions::{as_session, assume, credentials};
use super::TestGateway;
use crate::test_on_backends;
use partner_gateway::client::Credentials;
use partner_gateway::refs::EntityRef;
use partner_gateway::store::Backend;
use serde_json::json;

const BUDGET: &str = "/v2/partners/sub-customers/budget";
const OWN_RESOURCES: &str = "/v2/customer/resources";

/// Repeats `call` (whose status must be `want`) until its decision is
/// served from the cache. Usually by the third time (on SQLite, a commit by
/// anyone has operators read again, so the first repeat may still miss);
/// on a loaded machine the change feed may still be delivering the demo
/// data's own commits, each of which has entities read again, so up to ten.
async fn warm(gw: &TestGateway, want: u16, call: impl AsyncFn() -> u16) {
    let reused = || gw.running.gateway.authorizer.decisions.stats().reused;
    let before = reused();
    for _ in 0..10 {
        assert_eq!(call().await, want);
        if reused() > before {
            return;
        }
    }
    panic!("the decision was never reused");
}

/// op-east-ops switched into cust-acme: the session's credentials.
async fn switch_in(gw: &TestGateway) -> Credentials {
    let created = assume(gw, "op-east-ops", "cust-acme", &["om"], None).await;
    assert_eq!(created.status, 201);
    credentials(&created)
}

/// op-east-finance reads cust-acme's budget: the status.
async fn reads_acmes_budget(gw: &TestGateway) -> u16 {
    let path = format!("{BUDGET}?customer_id=cust-acme");
    gw.call("op-east-finance", "GET", &path, None)
        .await
        .status
        .as_u16()
}

async fn views_own_resources(gw: &TestGateway, session: &Credentials) -> u16 {
    as_session(gw, session, "GET", OWN_RESOURCES, None)
        .await
        .status
        .as_u16()
}

async fn reuse_ends_with_its_facts(backend: Backend) {
    let gw = TestGateway::start(backend).await;

    // An operator disabled (directly in the database, as the credentials CLI does).
    let read = || reads_acmes_budget(&gw);
    warm(&gw, 200, read).await;
    // Reuse is counted on /metrics (the registry is process-wide: at least ours).
    let (_, samples) = scrape(&gw).await;
    assert!(total(&samples, "pgw_decisions_reused_total", &[]) >= 1.0);
    let disabled = "UPDATE operators SET status = 'disabled' WHERE id = 'op-east-finance'";
    sqlx::query(disabled)
        .execute(gw.db.store.pool())
        .await
        .unwrap();
    until(backend, "the disabled operator refused", 403, read).await;

    // An administrator's questions about it neither read nor fill the
    // cache: explain, its list form and who-can.
    warm(&gw, 403, read).await;
    let stats = || gw.running.gateway.authorizer.decisions.stats();
    let before = stats();
    for (path, body) in [
        (
            "/v1/explain",
            json!({"principal": "Operator::\"op-east-finance\"", "action": "ViewBudget", "resource": "Customer::\"cust-acme\""}),
        ),
        (
            "/v1/explain",
            json!({"principal": "Operator::\"op-east-finance\"", "action": "ViewCustomer", "resource": "Customer"}),
        ),
        (
            "/v1/who-can",
            json!({"action": "ViewBudget", "resource": "Customer::\"cust-acme\""}),
        ),
    ] {
        let answer = crate::kit::post_admin(gw.running.admin_addr, path, &body).await;
        assert_eq!(
            answer.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    assert_eq!(
        stats(),
        before,
        "an administrator's question used the cache"
    );

    // A grant withdrawn: once its reseller holds the budget grant, the
    // distributor no longer sets the customer's budget (a deny, reused);
    // withdrawn, it does again.
    let set = || async {
        let body =
            json!({"customer_id": "cust-birch", "budget_amount": 700, "budget_type": "MONTHLY"});
        gw.call("op-dist-admin", "POST", BUDGET, Some(body))
            .await
            .status
            .as_u16()
    };
    warm(&gw, 403, set).await;
    // The reseller's sessions are refused too once `on_behalf` goes.
    let session = switch_in(&gw).await;
    let views = || views_own_resources(&gw, &session);
    warm(&gw, 200, views).await;
    let grants = json!({"budget": false, "freeze": false, "on_behalf": false,
                        "monthly_quota": "5000.00", "one_time_quota": "20000.00"});
    let path = "/v2/partners/indirect-partners/res-east/grants";
    let withdrawn = gw.call("op-dist-admin", "PUT", path, Some(grants)).await;
    assert_eq!(withdrawn.status, 200, "{}", withdrawn.json());
    assert_eq!(set().await, 200, "the next request after the withdrawal");
    assert_eq!(views().await, 403, "the next request after the withdrawal");
    let grants = json!({"budget": true, "freeze": false, "on_behalf": true,
                        "monthly_quota": "5000.00", "one_time_quota": "20000.00"});
    let granted = gw.call("op-dist-admin", "PUT", path, Some(grants)).await;
    assert_eq!(granted.status, 200);

    // An authorization revoked by its customer.
    let session = switch_in(&gw).await;
    let views = || views_own_resources(&gw, &session);
    warm(&gw, 200, views).await;
    let revoke = "/v2/customers/partner-authorizations/auth-acme/revoke";
    assert_eq!(gw.call("cust-acme", "POST", revoke, None).await.status, 200);
    assert_eq!(views().await, 403, "the next request after the revocation");
    gw.running.stop().await;
}

/// An authorization about to expire: its session's decisions are reused
/// until the expiry and never after it. The question is one the policies
/// allow and the store then refuses (stopping a stopped server), so that no
/// write changes the facts in between, and not a list, whose filter is
/// decided apart.
async fn reuse_ends_at_an_expiry(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let session = switch_in(&gw).await;
    let stop = || async {
        let path = "/v2/customer/resources/vm-acme-web-2/operations";
        let body = json!({"operation": "stop"});
        as_session(&gw, &session, "POST", path, Some(body))
            .await
            .status
            .as_u16()
    };
    // Expires at the second after next (instants are whole seconds).
    let expires = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() + 2, 0).unwrap();
    sqlx::query("UPDATE customer_authorizations SET expires_at = $1 WHERE id = 'auth-acme'")
        .bind(partner_gateway::time::format(expires))
        .execute(gw.db.store.pool())
        .await
        .unwrap();
    // As the change feed does on PostgreSQL (SQLite hears it at the entity TTL).
    let entities = &gw.running.gateway.authorizer.entities;
    entities.invalidate(&EntityRef::Authorization("auth-acme".into()));
    let allowed = stop().await;
    assert!(
        allowed != 403 && allowed >= 400,
        "allowed, refused by the store: {allowed}"
    );
    warm(&gw, allowed, stop).await;
    // Asked again and again across the expiry: allowed before, never after.
    let mut answers = Vec::new();
    loop {
        let sent = chrono::Utc::now();
        let status = stop().await;
        answers.push((sent, status));
        if sent >= expires + chrono::Duration::milliseconds(300) {
            break;
        }
    }
    let after: Vec<_> = answers
        .iter()
        .filter(|(sent, s)| *sent >= expires && *s != 403)
        .collect();
    assert!(after.is_empty(), "allowed after the expiry: {after:?}");
    assert!(answers
        .iter()
        .any(|(sent, s)| *sent < expires && *s == allowed));
    gw.running.stop().await;
}

/// An AuthZEN question to the admin listener.
async fn authzen(
    gw: &TestGateway,
    path: &str,
    body: serde_json::Value,
) -> crate::kit::TestResponse {
    crate::kit::post_admin(gw.running.admin_addr, path, &body).await
}

/// A `now` a caller names (AuthZEN) is a question about another moment:
/// its decision is never served to live traffic, nor live traffic's to it.
/// Both ways the shared cache was once crossed: a past-the-gate `now`
/// opened a time-gated forbid for live requests, a future one locked a live
/// session out. A `now` beyond ten years of the clock is refused, naming
/// the field.
async fn a_callers_now_never_reaches_live_traffic(backend: Backend) {
    // A forbid on reading budgets until a year from now (so this test holds
    // at any date), beside the shipped policies.
    let gate = partner_gateway::time::now() + chrono::Duration::days(365);
    let dir = tempfile::tempdir().unwrap();
    crate::kit::promise_nothing(dir.path());
    for entry in std::fs::read_dir(crate::kit::policies_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cedar") {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.path().join("95-gate.cedar"),
        format!(
            "@id(\"TEST-no-budget-reads-yet\")\nforbid (principal, action == PartnerCenter::Action::\"ViewBudget\", resource)\nwhen {{ context.now < datetime(\"{}\") }};\n",
            partner_gateway::time::format(gate)
        ),
    )
    .unwrap();
    let policies = dir.path().to_owned();
    let gw = TestGateway::start_with(backend, |c| c.policies = policies).await;
    let at = |t: chrono::DateTime<chrono::Utc>| partner_gateway::time::format(t);

    let read = || reads_acmes_budget(&gw);
    warm(&gw, 403, read).await;
    let past_the_gate = json!({
        "subject": {"type": "Operator", "id": "op-east-finance"},
        "action": {"name": "ViewBudget"},
        "resource": {"type": "Customer", "id": "cust-acme"},
        "context": {"now": at(gate + chrono::Duration::days(1))},
    });
    for _ in 0..3 {
        let answer = authzen(&gw, "/access/v1/evaluation", past_the_gate.clone()).await;
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        assert_eq!(answer.json()["decision"], true, "allowed past the gate");
        assert_eq!(read().await, 403, "live traffic is still before the gate");
    }

    // Even at a moment live traffic shares, a caller's `now` neither reads
    // nor writes the shared cache.
    let stats = || gw.running.gateway.authorizer.decisions.stats();
    let before = stats();
    let mut a_minute_ago = past_the_gate.clone();
    a_minute_ago["context"]["now"] = json!(at(
        partner_gateway::time::now() - chrono::Duration::minutes(1)
    ));
    let answer = authzen(&gw, "/access/v1/evaluation", a_minute_ago).await;
    assert_eq!(answer.json()["decision"], false, "before the gate");
    assert_eq!(stats(), before, "the cache was used for a caller's now");

    // A live session, and the question of whether it is live in five years.
    let session = switch_in(&gw).await;
    let created = assume(&gw, "op-east-ops", "cust-acme", &["om"], None).await;
    let session_id = created.json()["session_id"].as_str().unwrap().to_owned();
    let second = credentials(&created);
    let views = || views_own_resources(&gw, &second);
    warm(&gw, 200, views).await;
    let later = json!({
        "subject": {"type": "Session", "id": session_id},
        "action": {"name": "ViewOwnResources"},
        "resource": {"type": "Customer", "id": "cust-acme"},
        "context": {"now": at(partner_gateway::time::now() + chrono::Duration::days(5 * 365))},
    });
    let answer = authzen(&gw, "/access/v1/evaluation", later.clone()).await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.json()["decision"], false, "expired by then");
    for _ in 0..3 {
        assert_eq!(views().await, 200, "the live session is not locked out");
        assert_eq!(views_own_resources(&gw, &session).await, 200);
    }

    // Beyond ten years of the clock, or not an instant: 400 naming the field.
    for (now, path, body) in [
        (
            at(partner_gateway::time::now() + chrono::Duration::days(11 * 365)),
            "/access/v1/evaluation",
            None,
        ),
        (
            "1969-12-31T23:59:59Z".to_owned(),
            "/access/v1/evaluation",
            None,
        ),
        ("yesterday".to_owned(), "/access/v1/search/resource", None),
        (
            "9999-01-01T00:00:00Z".to_owned(),
            "/access/v1/evaluations",
            Some("evaluations[0].context.now"),
        ),
    ] {
        let mut question = past_the_gate.clone();
        question["context"]["now"] = json!(now);
        let (question, field) = match (path, body) {
            ("/access/v1/search/resource", _) => (
                json!({"subject": question["subject"], "action": question["action"],
                       "resource": {"type": "Customer"}, "context": question["context"]}),
                "context.now",
            ),
            (_, Some(field)) => (json!({"evaluations": [question]}), field),
            _ => (question, "context.now"),
        };
        let answer = authzen(&gw, path, question).await;
        assert_eq!(
            answer.status,
            400,
            "{now}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let msg = answer.json()["error_msg"].as_str().unwrap().to_owned();
        assert!(msg.contains(field), "{now}: {msg}");
    }
    gw.running.stop().await;
}

test_on_backends! {
    facts => reuse_ends_with_its_facts;
    expiry => reuse_ends_at_an_expiry;
    callers_now => a_callers_now_never_reaches_live_traffic;
}
