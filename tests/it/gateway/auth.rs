//! Authentication through the real gateway: every failure is the same 401,
//! tokens work and die with their operator.

use super::{poll, TestGateway, NOTIFIED};
use crate::test_on_backends;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use partner_gateway::signing;
use partner_gateway::store::Backend;

const PATH: &str = "/v2/partners/sub-customers/query";

/// Sends a request signed over exactly `signed` headers (name, value) plus
/// `unsigned` ones, with the given date and secret.
async fn send(
    gw: &TestGateway,
    access_key: &str,
    secret: &str,
    signed: &[(&str, String)],
    unsigned: &[(&str, String)],
    body: &[u8],
) -> (u16, serde_json::Value, String) {
    let pairs: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let auth = signing::sign("POST", PATH, "", &pairs, body, access_key, secret);
    let mut req = http::Request::builder()
        .method("POST")
        .uri(format!("{}{PATH}", gw.endpoint));
    for (n, v) in signed.iter().chain(unsigned) {
        if !n.eq_ignore_ascii_case("host") {
            req = req.header(*n, v);
        }
    }
    req = req.header("authorization", auth);
    let resp = gw
        .client
        .request(req.body(Full::new(Bytes::copy_from_slice(body))).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let id = request_id(resp.headers());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or_default(),
        id,
    )
}

fn request_id(headers: &http::HeaderMap) -> String {
    headers
        .get("x-request-id")
        .expect("every answer carries X-Request-Id")
        .to_str()
        .unwrap()
        .to_owned()
}

fn now_date() -> String {
    chrono::Utc::now().format(signing::DATE_FORMAT).to_string()
}

async fn authentication_failures_are_one_401(backend: Backend) {
    // Installed before the first request: the records are read at the end.
    let captured = super::operations::captured();
    let gw = TestGateway::start(backend).await;
    let admin = gw.credentials("op-dist-admin");
    let host = format!("localhost:{}", gw.running.addr.port());
    let body = br#"{"limit": 1}"#;
    let base = |date: String| {
        vec![
            ("content-type", "application/json".to_owned()),
            ("host", host.clone()),
            ("x-sdk-date", date),
        ]
    };

    let (_, before) = super::operations::scrape(&gw).await;
    // The good request, to prove the harness signs correctly.
    let (status, _, _) = send(
        &gw,
        &admin.access_key,
        &admin.secret_key,
        &base(now_date()),
        &[],
        body,
    )
    .await;
    assert_eq!(status, 200);

    // Each failure with the reason code its decision record must carry and
    // whether it names the access key it was signed with.
    let mut failures = Vec::new();
    let mut expected: Vec<(&str, Option<&str>)> = Vec::new();
    // Bad signature: the wrong secret.
    expected.push(("bad_signature", Some(&admin.access_key)));
    failures.push(
        send(
            &gw,
            &admin.access_key,
            "not-the-secret-key-at-all-000000",
            &base(now_date()),
            &[],
            body,
        )
        .await,
    );
    // Stale date: 16 minutes ago, and 16 minutes ahead.
    for offset in [-16, 16] {
        expected.push(("clock_skew", Some(&admin.access_key)));
        let date = (chrono::Utc::now() + chrono::Duration::minutes(offset))
            .format(signing::DATE_FORMAT)
            .to_string();
        failures.push(
            send(
                &gw,
                &admin.access_key,
                &admin.secret_key,
                &base(date),
                &[],
                body,
            )
            .await,
        );
    }
    // Host not signed.
    let no_host = vec![
        ("content-type", "application/json".to_owned()),
        ("x-sdk-date", now_date()),
    ];
    expected.push(("unsigned_header", Some(&admin.access_key)));
    failures.push(
        send(
            &gw,
            &admin.access_key,
            &admin.secret_key,
            &no_host,
            &[("host", host.clone())],
            body,
        )
        .await,
    );
    // Date not signed.
    let no_date = vec![
        ("content-type", "application/json".to_owned()),
        ("host", host.clone()),
    ];
    expected.push(("unsigned_header", Some(&admin.access_key)));
    failures.push(
        send(
            &gw,
            &admin.access_key,
            &admin.secret_key,
            &no_date,
            &[("x-sdk-date", now_date())],
            body,
        )
        .await,
    );
    // Unknown access key.
    expected.push(("unknown_key", Some("AKNOBODY000000000000")));
    failures.push(
        send(
            &gw,
            "AKNOBODY000000000000",
            &admin.secret_key,
            &base(now_date()),
            &[],
            body,
        )
        .await,
    );
    // A disabled operator with its own valid signature is who it says it
    // is: authenticated, and denied by R12's policy (403, not 401).
    let former = gw.credentials("op-dist-former");
    let (status, json, _) = send(
        &gw,
        &former.access_key,
        &former.secret_key,
        &base(now_date()),
        &[],
        body,
    )
    .await;
    assert_eq!(
        (status, json["error_code"].as_str()),
        (403, Some("CBC.0151"))
    );
    // Body changed after signing.
    expected.push(("bad_signature", Some(&admin.access_key)));
    {
        let pairs: Vec<(&str, String)> = base(now_date());
        let refs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let auth = signing::sign(
            "POST",
            PATH,
            "",
            &refs,
            body,
            &admin.access_key,
            &admin.secret_key,
        );
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("{}{PATH}", gw.endpoint));
        for (n, v) in &pairs {
            if *n != "host" {
                req = req.header(*n, v);
            }
        }
        let resp = gw
            .client
            .request(
                req.header("authorization", auth)
                    .body(Full::new(Bytes::from_static(br#"{"limit": 100}"#)))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let id = request_id(resp.headers());
        let json = serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes())
            .unwrap_or_default();
        failures.push((status, json, id));
    }
    // A domain id that is not the caller's account.
    let mut with_domain = base(now_date());
    with_domain.push(("x-domain-id", "dist-other".to_owned()));
    expected.push(("domain_mismatch", Some(&admin.access_key)));
    failures.push(
        send(
            &gw,
            &admin.access_key,
            &admin.secret_key,
            &with_domain,
            &[],
            body,
        )
        .await,
    );
    // No credentials at all.
    let anonymous = gw.call_raw(None, "POST", PATH, body, &[]).await;
    expected.push(("no_credentials", None));
    failures.push((
        anonymous.status.as_u16(),
        anonymous.json(),
        request_id(&anonymous.headers),
    ));
    // A token that is not ours, and a credential header twice.
    expected.push(("bad_token", None));
    let forged = gw
        .call_raw(None, "POST", PATH, body, &[("x-auth-token", "t1.e30.AAAA")])
        .await;
    failures.push((
        forged.status.as_u16(),
        forged.json(),
        request_id(&forged.headers),
    ));
    expected.push(("ambiguous_credentials", None));
    let twice = gw
        .call_raw(
            None,
            "POST",
            PATH,
            body,
            &[
                ("x-auth-token", "t1.e30.AAAA"),
                ("x-auth-token", "t1.e30.BBBB"),
            ],
        )
        .await;
    failures.push((
        twice.status.as_u16(),
        twice.json(),
        request_id(&twice.headers),
    ));

    for (i, (status, json, _)) in failures.iter().enumerate() {
        assert_eq!(*status, 401, "failure #{i}: {json}");
        // Every failure reads the same: nothing says which part failed.
        assert_eq!(json, &failures[0].1, "failure #{i}");
    }
    assert_eq!(failures[0].1["error_code"], "APIGW.0301");

    // Support's view: the request id the client got leads to the reason,
    // the key and the route, in the decision record and the log line.
    let records = captured.decision_lines();
    let logs = captured.error_lines();
    for ((_, _, id), (reason, key)) in failures.iter().zip(&expected) {
        let record = records
            .iter()
            .find(|r| r["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no decision record for {reason} ({id})"));
        assert_eq!(record["auth_failure"], *reason, "{record}");
        assert_eq!(record["access_key"].as_str(), *key, "{record}");
        assert_eq!(record["status"], 401);
        assert_eq!(record["route"], PATH, "a 401 is counted under its route");
        let text = record.to_string();
        assert!(
            !text.contains(&admin.secret_key) && !text.contains("Signature="),
            "{text}"
        );
        let line = logs
            .iter()
            .find(|l| {
                l["fields"]["message"] == "authentication failed"
                    && l["spans"]
                        .as_array()
                        .is_some_and(|s| s.iter().any(|s| s["request_id"] == id.as_str()))
            })
            .unwrap_or_else(|| panic!("no log line with request id {id} ({reason})"));
        assert_eq!(line["fields"]["reason"], *reason, "{line}");
    }

    // The metric counts them under the route, by reason (the registry is
    // process-wide: at least this test's).
    let (_, after) = super::operations::scrape(&gw).await;
    let moved = |reason: &str| {
        let labels = [("route", PATH), ("status", "401"), ("reason", reason)];
        let name = "pgw_requests_total";
        super::operations::total(&after, name, &labels)
            - super::operations::total(&before, name, &labels)
    };
    assert!(moved("clock_skew") >= 2.0);
    assert!(moved("unknown_key") >= 1.0);

    // The caller's own domain id is accepted (the SDK signs it).
    let mut own = base(now_date());
    own.push(("x-domain-id", "dist-north".to_owned()));
    let (status, _, _) = send(&gw, &admin.access_key, &admin.secret_key, &own, &[], body).await;
    assert_eq!(status, 200);
    gw.running.stop().await;
}

async fn tokens_work_and_die_with_their_operator(backend: Backend) {
    let gw = TestGateway::start(backend).await;
    let issued = gw
        .call(
            "op-dist-finance",
            "POST",
            "/v3/auth/tokens",
            Some(serde_json::json!({"duration_seconds": 3600})),
        )
        .await;
    assert_eq!(issued.status, 201);
    let token = issued
        .headers
        .get("x-subject-token")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(issued.json()["token"]["expires_at"].is_string());

    let with_token = |token: String| {
        let gw = &gw;
        async move {
            let req = http::Request::builder()
                .method("GET")
                .uri(format!(
                    "{}/v2/partners/sub-customers/budget?customer_id=cust-nova",
                    gw.endpoint
                ))
                .header("x-auth-token", token)
                .body(Full::new(Bytes::new()))
                .unwrap();
            gw.client.request(req).await.unwrap().status().as_u16()
        }
    };
    assert_eq!(with_token(token.clone()).await, 200);
    // Tampered: one character of the claims changed.
    let mut tampered = token.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    assert_eq!(with_token(String::from_utf8(tampered).unwrap()).await, 401);
    // Out of range lifetimes are refused.
    let too_long = gw
        .call(
            "op-dist-finance",
            "POST",
            "/v3/auth/tokens",
            Some(serde_json::json!({"duration_seconds": 90000})),
        )
        .await;
    assert_eq!(too_long.status, 400);
    // A token does not mint tokens.
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("{}/v3/auth/tokens", gw.endpoint))
        .header("x-auth-token", token.clone())
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        gw.client.request(req).await.unwrap().status(),
        403,
        "S4-tokens-do-not-mint-tokens"
    );
    // Disabling the operator kills its token at once, for good (revoked,
    // 401; `dead.rs` shows it stays dead once enabled again): on SQLite the
    // next request sees the commit; on PostgreSQL its change notification does.
    sqlx::query("UPDATE operators SET status = 'disabled' WHERE id = 'op-dist-finance'")
        .execute(gw.db.store.pool())
        .await
        .unwrap();
    if backend == Backend::Sqlite {
        assert_eq!(with_token(token.clone()).await, 401);
    }
    poll("the disabled operator's token to fail", NOTIFIED, || {
        let token = token.clone();
        let with_token = &with_token;
        async move { (with_token(token).await == 401).then_some(()) }
    })
    .await;
    gw.running.stop().await;
}

test_on_backends! {
    authentication_failures => authentication_failures_are_one_401;
    tokens => tokens_work_and_die_with_their_operator;
}
