//! What crosses the gateway and what does not: ambiguous requests (400),
//! oversize bodies (413), spoofed identity and forwarding headers (replaced),
//! and failing closed when the database or the upstream is gone.

use super::TestGateway;
use crate::test_on_backends;
use axum::http::HeaderMap;
use partner_gateway::assertion::AssertionKey;
use partner_gateway::config::Limits;
use partner_gateway::store::Backend;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes raw bytes over TLS and returns the status line's code.
async fn raw_status(gw: &TestGateway, request: &str) -> u16 {
    let mut tls = super::raw::tls(gw).await;
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

async fn ambiguous_requests_are_refused(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    for path in [
        "/v2/partners/../sub-customers/query",
        "/v2/partners/./sub-customers/query",
        "/v2//partners/sub-customers/query",
        "/v2/partners/sub-customers%2Fquery",
        "/v2/partners/sub-customers/%2e%2e/query",
        "/v2/partners/sub%5ccustomers/query",
        "/v2/partners/sub-customers/query%00",
        "/v2/partners/sub-customers/%ff",
        "/v2/orders/customer-orders?customer_id=a&customer_id=b",
    ] {
        let req =
            format!("POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\n\r\n{{}}");
        assert_eq!(raw_status(&gw, &req).await, 400, "{path}");
    }
    let smuggled = "POST /v2/partners/sub-customers/query HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n";
    assert_eq!(raw_status(&gw, smuggled).await, 400);
    // Two different lengths (hyper folds identical repeats into one, which is unambiguous).
    let twice = "POST /v2/partners/sub-customers/query HTTP/1.1\r\nhost: localhost\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}";
    assert_eq!(raw_status(&gw, twice).await, 400);

    // An unknown route is 404 (after authentication), and nothing is forwarded.
    let unknown = gw
        .call(
            "op-dist-admin",
            "GET",
            "/v2/partners/secret-admin-api",
            None,
        )
        .await;
    assert_eq!(unknown.status, 404);
    // A body with a duplicate key is refused before any decision.
    let dup = gw
        .call_raw(
            Some(&gw.credentials("op-east-finance")),
            "POST",
            "/v2/partners/sub-customers/budget",
            br#"{"customer_id": "cust-acme", "customer_id": "cust-harbor", "budget_amount": 1.00}"#,
            &[],
        )
        .await;
    assert_eq!(dup.status, 400);
    gw.running.stop().await;
}

async fn the_body_limit_is_413(backend: Backend) {
    let gw = TestGateway::start_with(backend, |cfg| {
        cfg.limits = Limits {
            max_body_bytes: 64,
            ..Limits::default()
        }
    })
    .await;
    let big = format!(r#"{{"limit": 1, "account_name": "{}"}}"#, "x".repeat(200));
    let answer = gw
        .call_raw(
            Some(&gw.credentials("op-dist-admin")),
            "POST",
            "/v2/partners/sub-customers/query",
            big.as_bytes(),
            &[],
        )
        .await;
    assert_eq!(answer.status, 413);
    assert_eq!(answer.error_code(), "APIGW.0201");
    let small = gw
        .call(
            "op-dist-admin",
            "POST",
            "/v2/partners/sub-customers/query",
            Some(serde_json::json!({"limit": 1})),
        )
        .await;
    assert_eq!(small.status, 200);
    gw.running.stop().await;
}

/// An upstream that records what reaches it and answers with the headers it got.
pub(super) async fn recording_upstream() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let record = record.clone();
        async move {
            let echo: serde_json::Map<String, serde_json::Value> = headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        serde_json::json!(v.to_str().unwrap_or_default()),
                    )
                })
                .collect();
            record.lock().unwrap().push(headers);
            axum::Json(serde_json::Value::Object(echo))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

async fn spoofed_headers_are_replaced(backend: Backend) {
    use base64::Engine;
    let (upstream, seen) = recording_upstream().await;
    let key_bytes = [9u8; 32];
    let key_text = base64::engine::general_purpose::STANDARD.encode(key_bytes);
    let gw = TestGateway::start_with(backend, |cfg| {
        cfg.upstream = Some(upstream.clone());
        cfg.assertion_key = Some(key_text.clone().into());
    })
    .await;
    let target = "/v2/partners/sub-customers/budget?customer_id=cust-acme";
    let forged = AssertionKey::random().sign(&partner_gateway::assertion::Claims {
        identity: std::borrow::Cow::Owned(partner_gateway::assertion::Identity {
            kind: partner_gateway::assertion::CallerKind::Operator,
            id: "op-dist-admin".into(),
            partner: Some("dist-north".into()),
            customer: None,
            source_operator: None,
        }),
        operation: "ShowSubCustomerBudget".into(),
        method: "GET".into(),
        target: target.into(),
        body_sha256: partner_gateway::signing::sha256_hex(b"").into(),
        resources: vec![].into(),
        list: None,
        searchable: None,
        reveal: true,
        request_id: "forged".into(),
        exp: i64::MAX,
    });
    let answer = gw
        .call_raw(
            Some(&gw.credentials("op-east-finance")),
            "GET",
            "/v2/partners/sub-customers/budget?customer_id=cust-acme",
            b"",
            &[
                ("X-Pgw-Identity", &forged),
                ("X-Pgw-Reveal", "contact"),
                ("X-Forwarded-For", "203.0.113.9"),
                ("Forwarded", "for=203.0.113.9"),
                ("X-Real-IP", "203.0.113.9"),
                ("X-Request-Id", "client-chosen"),
            ],
        )
        .await;
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let headers = seen.lock().unwrap().pop().expect("the call was forwarded");
    let identity = headers.get("x-pgw-identity").unwrap().to_str().unwrap();
    assert_ne!(identity, forged);
    let key = AssertionKey::new(key_bytes.to_vec()).unwrap();
    let claims = key
        .verify(
            Some(identity),
            partner_gateway::assertion::Bound {
                method: "GET",
                target,
                body: b"",
            },
            chrono::Utc::now().timestamp(),
        )
        .expect("the gateway's own assertion");
    assert_eq!(
        claims.identity.id, "op-east-finance",
        "the caller, not the forged admin"
    );
    assert_eq!(claims.operation, "ShowSubCustomerBudget");
    assert_eq!(
        claims.resources,
        vec![partner_gateway::refs::EntityRef::Customer(
            "cust-acme".into()
        )]
    );
    assert!(headers.get("x-pgw-reveal").is_none());
    assert_eq!(headers.get("x-forwarded-for").unwrap(), "127.0.0.1");
    assert_eq!(
        headers.get("forwarded").unwrap(),
        "for=127.0.0.1;proto=https"
    );
    assert!(headers.get("x-real-ip").is_none());
    assert!(
        headers.get("authorization").is_none(),
        "credentials stay at the gateway"
    );
    assert_ne!(headers.get("x-request-id").unwrap(), "client-chosen");
    assert_eq!(
        answer.headers.get("x-request-id"),
        headers.get("x-request-id")
    );

    // Denied calls never reach the upstream.
    let before = seen.lock().unwrap().len();
    let denied = gw
        .call(
            "op-west-admin",
            "GET",
            "/v2/partners/sub-customers/budget?customer_id=cust-acme",
            None,
        )
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(seen.lock().unwrap().len(), before);

    // Database unreachable: 503, and nothing forwarded (fail closed). The
    // caller has not called before, so nothing about it is cached.
    gw.running.store.close().await;
    let down = gw
        .call(
            "op-east-admin",
            "GET",
            "/v2/partners/sub-customers/budget?customer_id=cust-acme",
            None,
        )
        .await;
    assert_eq!(down.status, 503, "{}", String::from_utf8_lossy(&down.body));
    assert_eq!(seen.lock().unwrap().len(), before);
    gw.running.stop().await;
}

async fn a_dead_upstream_is_502(backend: Backend) {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = TestGateway::start_with(backend, |cfg| {
        cfg.upstream = Some(format!("http://127.0.0.1:{port}"));
        cfg.assertion_key = Some(
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [1u8; 32]).into(),
        );
    })
    .await;
    let answer = gw
        .call(
            "op-east-finance",
            "GET",
            "/v2/partners/sub-customers/budget?customer_id=cust-acme",
            None,
        )
        .await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.error_code(), "APIGW.0502");
    // Readiness says so too.
    let ready = crate::kit::send(
        &crate::kit::http_client(),
        "GET",
        &format!("http://{}/readyz", gw.running.admin_addr),
        &[],
        vec![],
    )
    .await;
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["upstream"]["reachable"], false);
    let alive = crate::kit::send(
        &crate::kit::http_client(),
        "GET",
        &format!("http://{}/healthz", gw.running.admin_addr),
        &[],
        vec![],
    )
    .await;
    assert_eq!(alive.status, 200);
    gw.running.stop().await;
}

test_on_backends! {
    normalization => ambiguous_requests_are_refused;
    body_limit => the_body_limit_is_413;
    header_hygiene => spoofed_headers_are_replaced;
    upstream_down => a_dead_upstream_is_502;
}
