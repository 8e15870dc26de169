//! Faults end to end on the real server stack (`serve::start`): an upstream
//! that hangs or closes mid-answer, and shutdown under load.

use super::{poll, TestGateway};
use partner_gateway::client;
use partner_gateway::store::Backend;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BOUND: Duration = Duration::from_secs(20);
const BUDGET: &str = "/v2/partners/sub-customers/budget?customer_id=cust-acme";

/// What the fake upstream does once it has read a request.
#[derive(Clone, Copy)]
enum Upstream {
    /// Never answers.
    Hang,
    /// Starts a 200 with a body it never finishes, then closes.
    CloseMidBody,
    /// Answers 200 `{}` once released.
    AnswerWhenReleased,
}

struct Fake {
    url: String,
    received: Arc<AtomicUsize>,
    release: Arc<tokio::sync::Notify>,
}

async fn read_request(s: &mut TcpStream) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; length];
    let _ = s.read_exact(&mut body).await;
}

async fn fake_upstream(mode: Upstream) -> Fake {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let received = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(tokio::sync::Notify::new());
    let (count, gate) = (received.clone(), release.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (count, gate) = (count.clone(), gate.clone());
            tokio::spawn(async move {
                read_request(&mut s).await;
                count.fetch_add(1, Ordering::SeqCst);
                match mode {
                    Upstream::Hang => std::future::pending::<()>().await,
                    Upstream::CloseMidBody => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"budget\": ")
                            .await;
                    }
                    Upstream::AnswerWhenReleased => {
                        gate.notified().await;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                            .await;
                    }
                }
            });
        }
    });
    Fake {
        url,
        received,
        release,
    }
}

async fn gateway_before(fake: &Fake, upstream_timeout: Duration) -> TestGateway {
    let url = fake.url.clone();
    TestGateway::start_with(Backend::Sqlite, move |cfg| {
        cfg.upstream = Some(url);
        cfg.assertion_key = Some(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            [1u8; 32],
        ));
        cfg.limits.upstream_timeout = upstream_timeout;
    })
    .await
}

/// A hung upstream costs at most the upstream timeout: 504, in the API's format.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_upstream_is_504() {
    let fake = fake_upstream(Upstream::Hang).await;
    let gw = gateway_before(&fake, Duration::from_secs(1)).await;
    let call = gw.call("op-east-finance", "GET", BUDGET, None);
    let answer = tokio::time::timeout(BOUND, call).await.expect("bounded");
    assert_eq!(answer.status.as_u16(), 504);
    assert_eq!(answer.error_code(), "APIGW.0504");
    assert_eq!(fake.received.load(Ordering::SeqCst), 1);
    gw.running.stop().await;
}

/// An upstream closing in the middle of its answer is a 502 in the API's
/// format: nothing of the half answer reaches the client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_closing_mid_body_is_502() {
    let fake = fake_upstream(Upstream::CloseMidBody).await;
    let gw = gateway_before(&fake, Duration::from_secs(10)).await;
    let answer = gw.call("op-east-finance", "GET", BUDGET, None).await;
    assert_eq!(answer.status.as_u16(), 502);
    assert_eq!(answer.error_code(), "APIGW.0502");
    assert!(
        !String::from_utf8_lossy(&answer.body).contains("budget"),
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    gw.running.stop().await;
}

/// Shutdown under load: requests in flight finish (200), while new
/// connections are refused from the moment shutdown begins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_requests_in_flight_and_takes_no_new_ones() {
    const IN_FLIGHT: usize = 5;
    let fake = fake_upstream(Upstream::AnswerWhenReleased).await;
    let gw = gateway_before(&fake, Duration::from_secs(30)).await;
    let creds = gw.credentials("op-east-finance");
    let mut calls = Vec::new();
    for _ in 0..IN_FLIGHT {
        let (http, endpoint, creds) = (gw.client.clone(), gw.endpoint.clone(), creds.clone());
        calls.push(tokio::spawn(async move {
            client::call(&http, &endpoint, Some(&creds), "GET", BUDGET, b"", &[])
                .await
                .expect("an answer")
        }));
    }
    poll("every request at the upstream", BOUND, || async {
        (fake.received.load(Ordering::SeqCst) == IN_FLIGHT).then_some(())
    })
    .await;
    let addr = gw.running.addr;
    let stopping = tokio::spawn(gw.running.stop());
    poll("the listener closed", BOUND, || async {
        TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
    fake.release.notify_waiters();
    for call in calls {
        let answer = tokio::time::timeout(BOUND, call)
            .await
            .expect("bounded")
            .unwrap();
        assert_eq!(
            answer.status.as_u16(),
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    tokio::time::timeout(BOUND, stopping)
        .await
        .expect("shutdown completes")
        .unwrap();
}
