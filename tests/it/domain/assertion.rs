//! The store trusts only a valid identity assertion for the very request.

use partner_gateway::assertion::{AssertionKey, Claims, HEADER};
use partner_gateway::store::Backend;
use partner_gateway::test_on_backends;
use partner_gateway::testkit::DomainServer;

use super::support::DEMO;
const ROUTE: &str = "/v2/partners/sub-customers/query";

async fn refuses_missing_forged_expired_and_misdirected(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let admin = s.operator("op-dist-admin").await;
    let body = Some(serde_json::json!({"offset": 0, "limit": 10}));

    let missing = s.call("POST", ROUTE, None, body.clone()).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error_code(), "APIGW.0301");

    let forged_key = AssertionKey::random();
    let claims = Claims {
        identity: admin.clone(),
        method: "POST".into(),
        path: ROUTE.into(),
        request_id: "r".into(),
        exp: chrono::Utc::now().timestamp() + 30,
    };
    let bytes = serde_json::to_vec(&body).unwrap();
    let forged = s
        .call_raw(
            "POST",
            ROUTE,
            &[(HEADER, forged_key.sign(&claims))],
            bytes.clone(),
        )
        .await;
    assert_eq!(forged.status, 401);

    let expired = Claims {
        exp: chrono::Utc::now().timestamp() - 1,
        ..claims.clone()
    };
    let resp = s
        .call_raw(
            "POST",
            ROUTE,
            &[(HEADER, s.key.sign(&expired))],
            bytes.clone(),
        )
        .await;
    assert_eq!(resp.status, 401);

    // An assertion for another route does not open this one.
    let elsewhere = Claims {
        path: "/v2/orders/customer-orders".into(),
        ..claims.clone()
    };
    let resp = s
        .call_raw(
            "POST",
            ROUTE,
            &[(HEADER, s.key.sign(&elsewhere))],
            bytes.clone(),
        )
        .await;
    assert_eq!(resp.status, 401);

    let unknown = s.call("GET", "/v2/no/such/route", Some(&admin), None).await;
    assert_eq!(unknown.status, 404);
}

test_on_backends! {
    assertion_refusals => refuses_missing_forged_expired_and_misdirected;
}
