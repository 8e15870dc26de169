//! A front door under pressure: each principal's rate limit (one bucket per
//! principal, debited only after its signature is verified), retries that
//! do not write twice (`X-Client-Token`), and the client's address behind a
//! trusted proxy only.

use super::TestGateway;
use partner_gateway::client::{self, Answer, Credentials};
use partner_gateway::store::limits::PartnerLimit;
use partner_gateway::store::Backend;
use std::time::Instant;

const OVERVIEW: &str = "/v2/partners/sub-customers/cust-acme/overview";

async fn limited(rate: u32, burst: u32) -> TestGateway {
    TestGateway::start_with(Backend::Sqlite, move |cfg| {
        cfg.limits.rate_limit = PartnerLimit { rate, burst };
    })
    .await
}

/// `n` calls of `creds`: one, then the rest at once, over the gateway's one
/// client (the first call opens the HTTP/2 connection and learns how many
/// streams it may open; the others are streams of it).
async fn flood(gw: &TestGateway, creds: &Credentials, n: usize) -> Vec<Answer> {
    let call = || {
        client::call(
            &gw.client,
            &gw.endpoint,
            Some(creds),
            "GET",
            OVERVIEW,
            b"",
            &[],
        )
    };
    let mut answers = vec![call().await.expect("an answer")];
    let mut calls = tokio::task::JoinSet::new();
    for _ in 1..n {
        let (http, endpoint, creds) = (gw.client.clone(), gw.endpoint.clone(), creds.clone());
        calls.spawn(async move {
            client::call(&http, &endpoint, Some(&creds), "GET", OVERVIEW, b"", &[])
                .await
                .expect("an answer")
        });
    }
    answers.extend(calls.join_all().await);
    answers
}

fn count(answers: &[Answer], status: u16) -> usize {
    answers
        .iter()
        .filter(|a| a.status.as_u16() == status)
        .count()
}

/// A principal flooding at many times its rate gets its burst and its rate,
/// no more, each refusal a 429 with `Retry-After`; another partner's
/// principal is served all the while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_principal_is_held_to_its_rate_and_others_are_served() {
    const RATE: u32 = 5;
    const BURST: u32 = 10;
    let gw = limited(RATE, BURST).await;
    let flooder = gw.credentials("op-dist-admin");
    let polite = gw.credentials("op-east-admin");
    let started = Instant::now();
    let (flooded, served) = tokio::join!(flood(&gw, &flooder, 80), flood(&gw, &polite, 5));
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = count(&flooded, 200);
    let allowed = f64::from(BURST) + f64::from(RATE) * elapsed;
    assert!(
        admitted as f64 <= allowed + 1.0 && admitted >= BURST as usize,
        "{admitted} admitted in {elapsed:.2} s at {RATE}/s, burst {BURST}"
    );
    assert_eq!(count(&flooded, 429) + count(&flooded, 200), flooded.len());
    for refused in flooded.iter().filter(|a| a.status.as_u16() == 429) {
        assert_eq!(refused.error_code(), "APIGW.0308");
        let after: u64 = refused.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(after >= 1, "Retry-After {after}");
    }
    assert_eq!(
        count(&served, 200),
        served.len(),
        "the other partner was served"
    );
    let records = gw.running.gateway.recent_decisions.newest_first();
    assert!(records
        .iter()
        .any(|r| r["refused"] == "rate_limit" && r["status"] == 429));
    gw.running.stop().await;
}

/// Requests naming a victim's access key that it did not sign (a wrong
/// secret) are refused before the bucket: the victim's burst is intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_requests_naming_a_victims_key_do_not_spend_its_bucket() {
    const BURST: u32 = 3;
    let gw = limited(1, BURST).await;
    let victim = gw.credentials("op-dist-admin");
    let forged = Credentials {
        secret_key: "not-the-secret-0000000000000000".into(),
        ..victim.clone()
    };
    let refused = flood(&gw, &forged, 30).await;
    assert_eq!(count(&refused, 401), refused.len());
    let own = flood(&gw, &victim, BURST as usize).await;
    assert_eq!(
        count(&own, 200),
        BURST as usize,
        "the victim's burst was spent"
    );
    assert_eq!(flood(&gw, &victim, 1).await[0].status.as_u16(), 429);
    gw.running.stop().await;
}

/// A partner's own limit, set with the CLI's store call, is heard without a
/// restart: here, no limit for one partner while the gateway's is tight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partners_own_limit_is_heard_without_a_restart() {
    let gw = limited(1, 1).await;
    let op = gw.credentials("op-east-admin");
    assert_eq!(count(&flood(&gw, &op, 4).await, 429), 3);
    gw.db
        .store
        .set_rate_limit("res-east", PartnerLimit { rate: 0, burst: 0 })
        .await
        .unwrap();
    super::poll(
        "the partner's limit heard",
        std::time::Duration::from_secs(20),
        || async { (count(&flood(&gw, &op, 4).await, 200) == 4).then_some(()) },
    )
    .await;
    gw.running.stop().await;
}

/// A retried order with the same `X-Client-Token` creates one order: the
/// retry gets the first answer; the token with another body is a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_order_with_the_same_client_token_creates_one_order() {
    let gw = TestGateway::start(Backend::Sqlite).await;
    let customer = gw.credentials("cust-acme");
    let order = |amount: u32| {
        serde_json::json!({
            "charging": "yearly_monthly", "service_type_code": "hws.service.type.ec2",
            "product_id": "ec2-small", "period_type": 2, "period_num": 1, "amount": amount,
        })
        .to_string()
    };
    let orders = || async {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE customer_id = 'cust-acme'")
                .fetch_one(gw.db.store.pool())
                .await
                .unwrap();
        n
    };
    let before = orders().await;
    let place = |body: String| {
        let customer = customer.clone();
        let gw = &gw;
        async move {
            gw.call_raw(
                Some(&customer),
                "POST",
                "/v2/customer/orders",
                body.as_bytes(),
                &[("x-client-token", "order-7f3a")],
            )
            .await
        }
    };
    let first = place(order(100)).await;
    assert_eq!(
        first.status.as_u16(),
        201,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let retry = place(order(100)).await;
    assert_eq!(retry.status.as_u16(), 201);
    assert_eq!(retry.body, first.body, "the retry gets the first answer");
    assert_eq!(retry.headers["x-client-token-replayed"], "true");
    assert_eq!(orders().await, before + 1, "one order");
    let other = place(order(200)).await;
    assert_eq!(
        other.status.as_u16(),
        409,
        "{}",
        String::from_utf8_lossy(&other.body)
    );
    assert_eq!(orders().await, before + 1);
    // A malformed token is refused, naming the header.
    let bad = gw
        .call_raw(
            Some(&customer),
            "POST",
            "/v2/customer/orders",
            order(100).as_bytes(),
            &[("x-client-token", "no spaces")],
        )
        .await;
    assert_eq!(bad.status.as_u16(), 400);
    assert!(bad.json()["error_msg"]
        .as_str()
        .unwrap()
        .contains("X-Client-Token"));
    gw.running.stop().await;
}

/// `X-Forwarded-For` names the client only when the connection comes from a
/// trusted proxy; from anyone else it is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    for (trusted, expected) in [(vec![], "127.0.0.1"), (vec!["127.0.0.0/8"], "198.51.100.7")] {
        let proxies = partner_gateway::config::TrustedProxies {
            nets: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            proxy_protocol: false,
        };
        let gw = TestGateway::start_with(Backend::Sqlite, move |cfg| {
            cfg.trusted_proxies = proxies;
        })
        .await;
        let creds = gw.credentials("op-dist-admin");
        let answer = gw
            .call_raw(
                Some(&creds),
                "GET",
                OVERVIEW,
                b"",
                &[("x-forwarded-for", "198.51.100.7")],
            )
            .await;
        assert_eq!(answer.status.as_u16(), 200);
        let record = &gw.running.gateway.recent_decisions.newest_first()[0];
        assert_eq!(
            record["client_ip"], expected,
            "trusted {trusted:?}: {record}"
        );
        gw.running.stop().await;
    }
}

/// Behind a TCP load balancer that speaks the PROXY protocol, its header
/// names the client: the decision record and the per-address connection
/// limit use that address. A connection from the proxy without a header is
/// closed; from any other peer, a header is not read (the TLS handshake
/// fails on it), and the peer is the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_protocol_header_names_the_client_only_from_a_trusted_proxy() {
    use super::raw::{answer, tls_on};
    use partner_gateway::config::TrustedProxies;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpSocket, TcpStream};
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.trusted_proxies = TrustedProxies {
            nets: vec!["127.0.0.1/32".parse().unwrap()],
            proxy_protocol: true,
        };
        cfg.limits.max_connections_per_ip = 1;
    })
    .await;
    let from = |local: &'static str, header: Option<String>| {
        let gw = &gw;
        async move {
            let socket = TcpSocket::new_v4().unwrap();
            socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
            let mut tcp: TcpStream = socket.connect(gw.running.addr).await.unwrap();
            if let Some(header) = header {
                tcp.write_all(header.as_bytes()).await.unwrap();
            }
            tls_on(gw, tcp, b"http/1.1").await
        }
    };
    let naming = |client: &str| Some(format!("PROXY TCP4 {client} 127.0.0.1 51000 443\r\n"));
    /// The client address recorded for an (unsigned) call on `stream`.
    async fn client_of_call(gw: &TestGateway, stream: &mut Box<dyn super::raw::Stream>) -> String {
        let head = format!("GET {OVERVIEW} HTTP/1.1\r\nhost: localhost\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        assert_eq!(answer(stream).await, Some(401), "unsigned");
        let record = &gw.running.gateway.recent_decisions.newest_first()[0];
        record["client_ip"].as_str().unwrap().to_owned()
    }

    let mut first = from("127.0.0.1", naming("198.51.100.7")).await.unwrap();
    assert_eq!(client_of_call(&gw, &mut first).await, "198.51.100.7");
    assert!(
        from("127.0.0.1", naming("198.51.100.7")).await.is_err(),
        "a second connection of the same client, past its limit of one, is closed"
    );
    let mut other = from("127.0.0.1", naming("198.51.100.8")).await.unwrap();
    assert_eq!(client_of_call(&gw, &mut other).await, "198.51.100.8");
    assert!(
        from("127.0.0.1", None).await.is_err(),
        "the proxy's connection without a header is closed"
    );
    assert!(
        from("127.0.0.2", naming("198.51.100.9")).await.is_err(),
        "another peer's header is no header"
    );
    let mut direct = from("127.0.0.2", None).await.unwrap();
    assert_eq!(client_of_call(&gw, &mut direct).await, "127.0.0.2");
    gw.running.stop().await;
}

/// The limit holds across the streams of one HTTP/2 connection: a client
/// that speaks only HTTP/2 (prior knowledge, plaintext) sends one call, then
/// 40 at once as streams of the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_across_the_streams_of_one_http2_connection() {
    use crate::kit::DomainServer;
    const RATE: u32 = 2;
    const BURST: u32 = 4;
    let s = DomainServer::start_tuned(
        Backend::Sqlite,
        include_str!("../../../examples/demo.json"),
        &crate::kit::policies_dir(),
        |cfg| {
            cfg.limits.rate_limit = PartnerLimit {
                rate: RATE,
                burst: BURST,
            }
        },
    )
    .await;
    let op = s.operator("op-east-admin").await;
    let creds = s.credentials(&op).await;
    let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http2()
        .build();
    let h2: client::HttpsClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .http2_only(true)
            .build(connector);
    let call = |h2: client::HttpsClient, endpoint: String, creds: Credentials| async move {
        client::call(&h2, &endpoint, Some(&creds), "GET", OVERVIEW, b"", &[])
            .await
            .expect("an answer over HTTP/2")
    };
    let started = Instant::now();
    let mut answers = vec![call(h2.clone(), s.endpoint.clone(), creds.clone()).await];
    let mut streams = tokio::task::JoinSet::new();
    for _ in 0..40 {
        streams.spawn(call(h2.clone(), s.endpoint.clone(), creds.clone()));
    }
    answers.extend(streams.join_all().await);
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = count(&answers, 200);
    assert!(
        admitted as f64 <= f64::from(BURST) + f64::from(RATE) * elapsed + 1.0,
        "{admitted} admitted in {elapsed:.2} s"
    );
    assert_eq!(admitted + count(&answers, 429), answers.len());
    s.running.stop().await;
}
