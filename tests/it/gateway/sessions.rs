//! Assume-role sessions end to end (issue 6): consent, switching in, acting
//! on the customer's behalf, switching back, revocation, refusals.

use super::{poll, TestGateway, NOTIFIED};
use crate::test_on_backends;
use partner_gateway::client::{Answer, Credentials};
use partner_gateway::store::Backend;
use serde_json::{json, Value};

/// Switches `operator` into `customer`; returns the answer.
pub(super) async fn assume(
    gw: &TestGateway,
    operator: &str,
    customer: &str,
    scopes: &[&str],
    duration: Option<i64>,
) -> Answer {
    let mut body = json!({"customer_id": customer, "scopes": scopes});
    if let Some(d) = duration {
        body["duration_seconds"] = json!(d);
    }
    gw.call(operator, "POST", "/v3/partner-sessions", Some(body))
        .await
}

/// The temporary credentials of an assume-role answer.
pub(super) fn credentials(created: &Answer) -> Credentials {
    let c = &created.json()["credential"];
    Credentials {
        access_key: c["access"].as_str().unwrap().to_owned(),
        secret_key: c["secret"].as_str().unwrap().to_owned(),
        security_token: Some(c["securitytoken"].as_str().unwrap().to_owned()),
    }
}

pub(super) async fn as_session(
    gw: &TestGateway,
    creds: &Credentials,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Answer {
    let body = body
        .map(|b| serde_json::to_vec(&b).unwrap())
        .unwrap_or_default();
    gw.call_raw(Some(creds), method, path, &body, &[]).await
}

fn text(a: &Answer) -> String {
    format!("{} {}", a.status, String::from_utf8_lossy(&a.body))
}

const YEARLY: fn() -> Value = || json!({"charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2", "product_id": "00301-ec2-c6.large.2", "period_type": 2, "period_num": 1, "amount": "100.00"});
const PAY_PER_USE: fn() -> Value = || json!({"charging": "pay_per_use", "service_type_code": "hws.service.type.obs", "product_id": "obs-standard"});

async fn consent_switch_in_act_and_switch_back(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    // Consent: the customer turns down the old request, the partner asks again, the customer approves.
    let rejected = gw
        .call(
            "cust-birch",
            "POST",
            "/v2/customers/partner-authorizations/auth-birch/reject",
            None,
        )
        .await;
    assert_eq!(rejected.status, 200, "{}", text(&rejected));
    let requested = gw
        .call(
            "op-east-ops",
            "POST",
            "/v2/partners/sub-customers/cust-birch/authorizations",
            Some(json!({"scopes": ["om", "order"], "duration_days": 30})),
        )
        .await;
    assert_eq!(requested.status, 201, "{}", text(&requested));
    let auth_id = requested.json()["authorization_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let approved = gw
        .call(
            "cust-birch",
            "POST",
            &format!("/v2/customers/partner-authorizations/{auth_id}/approve"),
            None,
        )
        .await;
    assert_eq!(approved.status, 200, "{}", text(&approved));

    // Switch in with both scopes.
    let created = assume(
        &gw,
        "op-east-ops",
        "cust-birch",
        &["om", "order"],
        Some(1800),
    )
    .await;
    assert_eq!(created.status, 201, "{}", text(&created));
    let session = created.json();
    assert_eq!(session["customer_id"], "cust-birch");
    assert_eq!(session["source_identity"], "op-east-ops");
    let session_id = session["session_id"].as_str().unwrap().to_owned();
    let creds = credentials(&created);
    assert_eq!(creds.access_key.len(), 20);

    // order: a yearly/monthly order and a pay-per-use resource, placed as the agent.
    let order = as_session(&gw, &creds, "POST", "/v2/customer/orders", Some(YEARLY())).await;
    assert_eq!(order.status, 201, "{}", text(&order));
    assert_eq!(order.json()["source_type"], 2);
    let ppu = as_session(
        &gw,
        &creds,
        "POST",
        "/v2/customer/orders",
        Some(PAY_PER_USE()),
    )
    .await;
    assert_eq!(ppu.status, 201, "{}", text(&ppu));
    // om: operate the customer's resources.
    for op in ["stop", "start", "restart"] {
        let done = as_session(
            &gw,
            &creds,
            "POST",
            "/v2/customer/resources/vm-birch-batch/operations",
            Some(json!({"operation": op})),
        )
        .await;
        assert_eq!(done.status, 200, "{op}: {}", text(&done));
    }
    let own = as_session(&gw, &creds, "GET", "/v2/customer/orders", None).await;
    assert_eq!(own.status, 200);

    // The customer sees who acted, as which session.
    let activity = gw
        .call(
            "cust-birch",
            "GET",
            "/v2/customers/partner-activity?limit=100",
            None,
        )
        .await;
    assert_eq!(activity.status, 200, "{}", text(&activity));
    let rows = activity.json().to_string();
    assert!(
        rows.contains(&session_id) && rows.contains("op-east-ops"),
        "{rows}"
    );
    for action in [
        "assume_role",
        "place_order",
        "stop_resource",
        "start_resource",
        "restart_resource",
    ] {
        assert!(rows.contains(action), "{action} missing from {rows}");
    }

    // No chaining, no partner level, no other customer.
    let chained = as_session(
        &gw,
        &creds,
        "POST",
        "/v3/partner-sessions",
        Some(json!({"customer_id": "cust-birch", "scopes": ["om"]})),
    )
    .await;
    assert_eq!(chained.status, 403, "{}", text(&chained));
    let consent = as_session(
        &gw,
        &creds,
        "POST",
        "/v2/partners/sub-customers/cust-birch/authorizations",
        Some(json!({"scopes": ["om"]})),
    )
    .await;
    assert_eq!(consent.status, 403);
    let approve_own = as_session(
        &gw,
        &creds,
        "POST",
        &format!("/v2/customers/partner-authorizations/{auth_id}/revoke"),
        None,
    )
    .await;
    assert_eq!(approve_own.status, 403);
    let partner_view = as_session(
        &gw,
        &creds,
        "POST",
        "/v2/partners/sub-customers/query",
        Some(json!({})),
    )
    .await;
    assert_eq!(partner_view.status, 403);
    let elsewhere = as_session(
        &gw,
        &creds,
        "POST",
        "/v2/customer/resources/vm-acme-web-1/operations",
        Some(json!({"operation": "stop"})),
    )
    .await;
    assert_eq!(elsewhere.status, 403);
    let budget = as_session(
        &gw,
        &creds,
        "POST",
        "/v2/partners/sub-customers/budget",
        Some(json!({"customer_id": "cust-birch", "budget_amount": 1.00})),
    )
    .await;
    assert_eq!(budget.status, 403);

    // The operator lists its live sessions; a session lists none.
    let listed = gw
        .call("op-east-ops", "GET", "/v3/partner-sessions", None)
        .await;
    assert_eq!(listed.status, 200);
    assert!(listed.json()["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["session_id"] == session_id.as_str()));
    assert_eq!(
        as_session(&gw, &creds, "GET", "/v3/partner-sessions", None)
            .await
            .status,
        403
    );
    // Another operator cannot end it.
    let foreign = gw
        .call(
            "op-east-admin",
            "DELETE",
            &format!("/v3/partner-sessions/{session_id}"),
            None,
        )
        .await;
    assert_eq!(foreign.status, 403);

    // Switch back: the old credentials are dead at once.
    let ended = gw
        .call(
            "op-east-ops",
            "DELETE",
            &format!("/v3/partner-sessions/{session_id}"),
            None,
        )
        .await;
    assert_eq!(ended.status, 204, "{}", text(&ended));
    // Its credentials still say who it is; R12 denies an ended session,
    // and the denial says why.
    let after = as_session(&gw, &creds, "GET", "/v2/customer/orders", None).await;
    assert_eq!(
        (after.status.as_u16(), after.error_code()),
        (403, "CBC.0151".into())
    );
    assert!(
        text(&after).contains("this session has ended (switched_back)"),
        "{}",
        text(&after)
    );
    // The operator's list shows it among the ended ones, with the reason;
    // the customer's activity records it.
    let listed = gw
        .call(
            "op-east-ops",
            "GET",
            "/v3/partner-sessions?include=ended",
            None,
        )
        .await;
    let listed = listed.json();
    let shown = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == session_id.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(shown["end_reason"], "switched_back", "{shown}");
    assert!(shown["ended_at"].is_string(), "{shown}");
    let live = gw
        .call("op-east-ops", "GET", "/v3/partner-sessions", None)
        .await;
    assert!(!live.json().to_string().contains(&session_id));
    let bad = gw
        .call(
            "op-east-ops",
            "GET",
            "/v3/partner-sessions?include=all",
            None,
        )
        .await;
    assert_eq!(bad.status, 400, "{}", text(&bad));
    assert!(text(&bad).contains("include"), "{}", text(&bad));
    let activity = gw
        .call(
            "cust-birch",
            "GET",
            "/v2/customers/partner-activity?limit=100",
            None,
        )
        .await
        .json();
    let ended = activity["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["action"] == "end_session" && a["session_id"] == session_id.as_str())
        .unwrap_or_else(|| panic!("{activity}"));
    assert_eq!(ended["detail"], json!({"reason": "switched_back"}));
    // A session may also end itself.
    let again = assume(&gw, "op-east-ops", "cust-birch", &["om"], None).await;
    let creds2 = credentials(&again);
    let id2 = again.json()["session_id"].as_str().unwrap().to_owned();
    assert_eq!(
        as_session(
            &gw,
            &creds2,
            "DELETE",
            &format!("/v3/partner-sessions/{id2}"),
            None
        )
        .await
        .status,
        204
    );
    let after = as_session(&gw, &creds2, "GET", "/v2/customer/resources", None).await;
    assert_eq!(after.status, 403);
    assert!(
        text(&after).contains("(ended_from_inside)"),
        "{}",
        text(&after)
    );
    gw.running.stop().await;
}

async fn revocation_is_immediate(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    // The customer revokes its authorization.
    let s = credentials(&assume(&gw, "op-east-ops", "cust-acme", &["om", "order"], None).await);
    assert_eq!(
        as_session(&gw, &s, "GET", "/v2/customer/resources", None)
            .await
            .status,
        200
    );
    let revoked = gw
        .call(
            "cust-acme",
            "POST",
            "/v2/customers/partner-authorizations/auth-acme/revoke",
            None,
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", text(&revoked));
    let after = as_session(&gw, &s, "GET", "/v2/customer/resources", None).await;
    assert_eq!(after.status, 403);
    assert!(
        text(&after).contains("this session has ended (authorization_revoked)"),
        "{}",
        text(&after)
    );

    // The customer is frozen: ordering stops at once, O&M views go on.
    let s = credentials(&assume(&gw, "op-dist-ops", "cust-nova", &["om", "order"], None).await);
    assert_eq!(
        as_session(&gw, &s, "POST", "/v2/customer/orders", Some(PAY_PER_USE()))
            .await
            .status,
        201
    );
    let frozen = gw
        .call(
            "op-dist-finance",
            "POST",
            "/v2/partners/sub-customers/freeze",
            Some(json!({"customer_ids": ["cust-nova"], "reason": "arrears"})),
        )
        .await;
    assert_eq!(frozen.status, 200, "{}", text(&frozen));
    let order = as_session(&gw, &s, "POST", "/v2/customer/orders", Some(PAY_PER_USE())).await;
    assert_eq!(order.status, 403);
    assert_eq!(order.error_code(), "CBC.99005036");
    assert_eq!(
        as_session(&gw, &s, "GET", "/v2/customer/resources", None)
            .await
            .status,
        200
    );

    // The operator is disabled (outside the gateway: on SQLite the next
    // request sees the commit, on PostgreSQL the change notification does).
    sqlx::query("UPDATE operators SET status = 'disabled' WHERE id = 'op-dist-ops'")
        .execute(gw.db.store.pool())
        .await
        .unwrap();
    let refused = || async {
        let status = as_session(&gw, &s, "GET", "/v2/customer/resources", None)
            .await
            .status;
        (status == 403).then_some(())
    };
    if backend == Backend::Sqlite {
        assert!(refused().await.is_some(), "refused at the next request");
    }
    poll("the disabled operator's session to fail", NOTIFIED, refused).await;
    gw.running.stop().await;
}

async fn assume_role_refusals(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let refused = |a: &Answer, code: &str| {
        assert_eq!(a.status, 403, "{}", text(a));
        assert_eq!(a.error_code(), code, "{}", text(a));
    };
    // pending, rejected, revoked, expired authorizations
    refused(
        &assume(&gw, "op-east-ops", "cust-birch", &["om"], None).await,
        "CBC.99005034",
    );
    refused(
        &assume(&gw, "op-east-ops", "cust-cedar", &["om"], None).await,
        "CBC.99005034",
    );
    refused(
        &assume(&gw, "op-east-ops", "cust-delta", &["order"], None).await,
        "CBC.99005034",
    );
    refused(
        &assume(&gw, "op-east-ops", "cust-ember", &["om"], None).await,
        "CBC.99005034",
    );
    // scope not covered: approve birch's om-only request, then ask for order too.
    assert_eq!(
        gw.call(
            "cust-birch",
            "POST",
            "/v2/customers/partner-authorizations/auth-birch/approve",
            None
        )
        .await
        .status,
        200
    );
    refused(
        &assume(&gw, "op-east-ops", "cust-birch", &["om", "order"], None).await,
        "CBC.99005035",
    );
    assert_eq!(
        assume(&gw, "op-east-ops", "cust-birch", &["om"], None)
            .await
            .status,
        201
    );
    // a reseller without on_behalf; a referral customer
    refused(
        &assume(&gw, "op-west-admin", "cust-harbor", &["om"], None).await,
        "CBC.99005033",
    );
    refused(
        &assume(&gw, "op-dist-ops", "cust-pixel", &["om"], None).await,
        "CBC.99005024",
    );
    // a finance-only operator may not switch in; another hierarchy looks unknown
    refused(
        &assume(&gw, "op-east-finance", "cust-acme", &["om"], None).await,
        "CBC.0151",
    );
    refused(
        &assume(&gw, "op-sp-admin", "cust-acme", &["om"], None).await,
        "CBC.0151",
    );
    refused(
        &assume(&gw, "op-sp-admin", "cust-nobody", &["om"], None).await,
        "CBC.0151",
    );
    // the distributor switches into its reseller's customer
    assert_eq!(
        assume(&gw, "op-dist-ops", "cust-acme", &["om", "order"], None)
            .await
            .status,
        201
    );
    // duration and scopes out of range
    for (scopes, duration) in [
        (vec!["om"], Some(899)),
        (vec!["om"], Some(43_201)),
        (vec![], None),
        (vec!["om", "om"], None),
        (vec!["admin"], None),
    ] {
        let a = assume(&gw, "op-east-ops", "cust-acme", &scopes, duration).await;
        assert_eq!(a.status, 400, "{scopes:?} {duration:?}: {}", text(&a));
    }
    // never past the authorization's expiry
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    sqlx::query("UPDATE customer_authorizations SET expires_at = $1 WHERE id = 'auth-kite'")
        .bind(soon.clone())
        .execute(gw.db.store.pool())
        .await
        .unwrap();
    let clamped = assume(&gw, "op-sp-admin", "cust-kite", &["order"], Some(43_200)).await;
    assert_eq!(clamped.status, 201, "{}", text(&clamped));
    assert_eq!(clamped.json()["expires_at"], soon.as_str());
    assert_eq!(clamped.json()["credential"]["expires_at"], soon.as_str());

    // Tampered tokens, and a token with another session's access key.
    let a = assume(&gw, "op-east-ops", "cust-acme", &["om"], None).await;
    let b = assume(&gw, "op-east-ops", "cust-acme", &["om"], None).await;
    let (ca, cb) = (credentials(&a), credentials(&b));
    assert_eq!(
        as_session(&gw, &ca, "GET", "/v2/customer/resources", None)
            .await
            .status,
        200
    );
    let mut tampered = ca.clone();
    let mut bytes = tampered.security_token.take().unwrap().into_bytes();
    bytes[6] = if bytes[6] == b'A' { b'B' } else { b'A' };
    tampered.security_token = Some(String::from_utf8(bytes).unwrap());
    assert_eq!(
        as_session(&gw, &tampered, "GET", "/v2/customer/resources", None)
            .await
            .status,
        401
    );
    let swapped = Credentials {
        security_token: cb.security_token.clone(),
        ..ca.clone()
    };
    assert_eq!(
        as_session(&gw, &swapped, "GET", "/v2/customer/resources", None)
            .await
            .status,
        401
    );
    let wrong_secret = Credentials {
        secret_key: cb.secret_key.clone(),
        ..ca.clone()
    };
    assert_eq!(
        as_session(&gw, &wrong_secret, "GET", "/v2/customer/resources", None)
            .await
            .status,
        401
    );
    // A session scoped om cannot order.
    let order = as_session(&gw, &ca, "POST", "/v2/customer/orders", Some(PAY_PER_USE())).await;
    assert_eq!(order.status, 403, "{}", text(&order));
    gw.running.stop().await;
}

test_on_backends! {
    session_lifecycle => consent_switch_in_act_and_switch_back;
    session_revocation => revocation_is_immediate;
    session_refusals => assume_role_refusals;
}
