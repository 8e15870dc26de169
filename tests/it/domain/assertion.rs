//! The store trusts only a valid identity assertion for the very request:
//! its operation, method, path with query, body, and the resources the
//! gateway decided on.

use crate::kit::DomainServer;
use crate::test_on_backends;
use partner_gateway::assertion::{AssertionKey, Claims, HEADER};
use partner_gateway::filter::{Filter, ListScope};
use partner_gateway::refs::EntityRef;
use partner_gateway::store::Backend;

use super::support::DEMO;

const BUDGET: &str = "/v2/partners/sub-customers/budget?customer_id=cust-acme";

async fn refuses_missing_forged_expired_and_misdirected(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let admin = s.operator("op-east-admin").await;
    let claims = Claims {
        identity: std::borrow::Cow::Owned(admin.clone()),
        operation: "ShowSubCustomerBudget".into(),
        method: "GET".into(),
        target: BUDGET.into(),
        body_sha256: partner_gateway::signing::sha256_hex(b"").into(),
        resources: vec![EntityRef::Customer("cust-acme".into())].into(),
        list: None,
        searchable: None,
        reveal: false,
        request_id: "r".into(),
        exp: chrono::Utc::now().timestamp() + 30,
    };
    let with = |claims: &Claims, key: &AssertionKey| vec![(HEADER, key.sign(claims))];
    let get = |target: &str, headers: Vec<(&'static str, String)>| {
        let target = target.to_owned();
        let s = &s;
        async move { s.store_raw("GET", &target, &headers, vec![]).await }
    };

    // The assertion as the gateway would make it is served.
    let served = get(BUDGET, with(&claims, &s.key)).await;
    assert_eq!(served.status, 200, "{:?}", served.body);

    let missing = get(BUDGET, vec![]).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.error_code(), "APIGW.0301");

    let forged = get(BUDGET, with(&claims, &AssertionKey::random())).await;
    assert_eq!(forged.status, 401);

    let expired = Claims {
        exp: chrono::Utc::now().timestamp() - 1,
        ..claims.clone()
    };
    assert_eq!(get(BUDGET, with(&expired, &s.key)).await.status, 401);

    // Replayed on another customer (query), route or operation: refused.
    let other_customer = "/v2/partners/sub-customers/budget?customer_id=cust-birch";
    assert_eq!(get(other_customer, with(&claims, &s.key)).await.status, 401);
    let relabelled = Claims {
        target: other_customer.into(),
        ..claims.clone()
    };
    assert_eq!(
        get(other_customer, with(&relabelled, &s.key)).await.status,
        401,
        "the resources decided are acme's, not birch's"
    );
    let other_operation = Claims {
        operation: "ListSubCustomerBudgetRecords".into(),
        ..claims.clone()
    };
    assert_eq!(
        get(BUDGET, with(&other_operation, &s.key)).await.status,
        401
    );
    let records = "/v2/partners/sub-customers/budget/records?customer_id=cust-acme";
    assert_eq!(get(records, with(&claims, &s.key)).await.status, 401);

    // A body other than the one decided on is refused.
    let list = "/v2/partners/sub-customers/query";
    let list_claims = Claims {
        operation: "ListSubCustomers".into(),
        method: "POST".into(),
        target: list.into(),
        body_sha256: partner_gateway::signing::sha256_hex(br#"{"limit": 1}"#).into(),
        resources: vec![].into(),
        list: Some(ListScope::Filter(Filter::True)),
        ..claims.clone()
    };
    let posted = s
        .store_raw(
            "POST",
            list,
            &with(&list_claims, &s.key),
            br#"{"limit": 100}"#.to_vec(),
        )
        .await;
    assert_eq!(posted.status, 401);
    let posted = s
        .store_raw(
            "POST",
            list,
            &with(&list_claims, &s.key),
            br#"{"limit": 1}"#.to_vec(),
        )
        .await;
    assert_eq!(posted.status, 200);

    let unknown = s.call("GET", "/v2/no/such/route", Some(&admin), None).await;
    assert_eq!(unknown.status, 404);
}

/// Each assertion is accepted once, within its lifetime too: a captured
/// budget write sent again is refused and writes no second record.
async fn refuses_a_replayed_assertion(backend: Backend) {
    let s = DomainServer::start(backend, DEMO).await;
    let finance = s.operator("op-east-finance").await;
    let set = "/v2/partners/sub-customers/budget";
    let body =
        br#"{"customer_id": "cust-acme", "budget_amount": 700.00, "budget_type": "MONTHLY"}"#;
    let claims = Claims {
        identity: std::borrow::Cow::Owned(finance),
        operation: "UpdateSubCustomerBudget".into(),
        method: "POST".into(),
        target: set.into(),
        body_sha256: partner_gateway::signing::sha256_hex(body).into(),
        resources: vec![EntityRef::Customer("cust-acme".into())].into(),
        list: None,
        searchable: None,
        reveal: false,
        request_id: "r-once".into(),
        exp: chrono::Utc::now().timestamp() + 30,
    };
    let headers = vec![(HEADER, s.key.sign(&claims))];
    let records = || async {
        let n: (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM budget_records WHERE customer_id = 'cust-acme'")
                .fetch_one(s.db.store.pool())
                .await
                .unwrap();
        n.0
    };
    let before = records().await;
    let first = s.store_raw("POST", set, &headers, body.to_vec()).await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(records().await, before + 1);
    let again = s.store_raw("POST", set, &headers, body.to_vec()).await;
    assert_eq!(again.status, 401);
    assert_eq!(again.error_code(), "APIGW.0301");
    assert_eq!(records().await, before + 1, "the replay wrote nothing");
}

test_on_backends! {
    assertion_refusals => refuses_missing_forged_expired_and_misdirected;
    assertion_replays => refuses_a_replayed_assertion;
}

/// The link to the store over TLS: a gateway with `--upstream https://...`
/// and `--upstream-ca` reaches a store serving `--tls-cert/--tls-key` and
/// checks its certificate: the same store under a certificate the gateway
/// does not trust is unreachable (502), nothing sent. A store with
/// `--client-ca` serves only a gateway presenting a certificate from that CA
/// (`--upstream-cert/--upstream-key`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_over_tls_is_verified() {
    use partner_gateway::config::{ServeConfig, TlsMode};
    use partner_gateway::domain::{serve_tls, DomainState};
    let s = DomainServer::start(Backend::Sqlite, DEMO).await;
    let certs = tempfile::tempdir().unwrap();
    let (ours, ours_key) =
        partner_gateway::listener::development_certificate(&certs.path().join("store")).unwrap();
    let (other, _) =
        partner_gateway::listener::development_certificate(&certs.path().join("other")).unwrap();
    let mode = TlsMode::Files {
        cert: ours.clone(),
        key: ours_key,
    };
    let client = client_certificate(certs.path());
    let mut ports = Vec::new();
    for client_ca in [None, Some(client.0.clone())] {
        let (acceptor, _) =
            partner_gateway::listener::tls_acceptor(&mode, certs.path(), client_ca.as_deref())
                .unwrap()
                .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        ports.push(listener.local_addr().unwrap().port());
        let (exports, _) = partner_gateway::domain::start_export_worker(
            s.db.store.clone(),
            tokio::sync::watch::channel(false).1,
        );
        let state = DomainState::new(s.db.store.clone(), s.key.clone(), exports);
        tokio::spawn(serve_tls(listener, state, acceptor));
    }
    let (open, mutual) = (ports[0], ports[1]);

    let admin = s.operator("op-east-finance").await;
    let creds = s.credentials(&admin).await;
    let ours_with_cert = Some((client.1.clone(), client.2.clone()));
    for (port, trusted, client_cert, want) in [
        (open, &ours, None, 200),
        (open, &other, None, 502),
        (mutual, &ours, None, 502),
        (mutual, &ours, ours_with_cert, 200),
    ] {
        let config = ServeConfig {
            upstream: Some(format!("https://localhost:{port}")),
            upstream_tls: partner_gateway::client::UpstreamTls {
                trust: partner_gateway::client::Trust::CaFile(trusted.clone()),
                client_cert,
            },
            assertion_key: Some(crate::kit::assertion_key_base64().into()),
            ..ServeConfig::local(
                crate::kit::test_database(&s.db),
                crate::kit::policies_dir(),
                crate::kit::schema_dir(),
            )
        };
        let gw = partner_gateway::serve::start(config).await.unwrap();
        let answer = partner_gateway::client::call(
            &crate::kit::http_client(),
            &format!("http://{}", gw.addr),
            Some(&creds),
            "GET",
            BUDGET,
            b"",
            &[],
        )
        .await
        .unwrap();
        assert_eq!(
            answer.status.as_u16(),
            want,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        gw.stop().await;
    }
}

/// A CA and a client certificate it signed, as PEM files in `dir`: (the
/// CA's certificate, the client's certificate, the client's key).
fn client_certificate(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["partner-gateway".to_owned()]).unwrap();
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let leaf = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let paths = (
        dir.join("client-ca.pem"),
        dir.join("client.pem"),
        dir.join("client-key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, leaf.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}
