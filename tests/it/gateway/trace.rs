//! W3C `traceparent` reaches the store: the client's trace joined with the
//! gateway's span as parent, or a new trace; the decision record carries it.

use super::hygiene::recording_upstream;
use super::operations::captured;
use super::TestGateway;
use partner_gateway::store::Backend;

const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PATH: &str = "/v2/partners/sub-customers/budget?customer_id=cust-acme";

/// (trace id, parent id, flags) of a well-formed version-00 `traceparent`.
fn fields(value: &str) -> (String, String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    assert_eq!(parts[0], "00");
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    assert!(
        hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2),
        "{value}"
    );
    (parts[1].into(), parts[2].into(), parts[3].into())
}

type Seen = std::sync::Arc<std::sync::Mutex<Vec<axum::http::HeaderMap>>>;

/// Calls through the gateway with `extra` headers; returns the request id and
/// the trace headers the store got.
async fn forwarded(
    gw: &TestGateway,
    seen: &Seen,
    extra: Vec<(&str, &str)>,
) -> (String, Option<String>, Option<String>) {
    let finance = gw.credentials("op-east-finance");
    let answer = gw.call_raw(Some(&finance), "GET", PATH, b"", &extra).await;
    assert_eq!(answer.status, 200);
    let id = answer.headers["x-request-id"].to_str().unwrap().to_owned();
    let headers = seen.lock().unwrap().pop().expect("forwarded");
    let get = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
    (id, get("traceparent"), get("tracestate"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traceparent_reaches_the_store() {
    let captured = captured();
    let (upstream, seen) = recording_upstream().await;
    let gw = TestGateway::start_with(Backend::Sqlite, |cfg| {
        cfg.upstream = Some(upstream.clone());
        cfg.assertion_key = Some(super::operations::assertion_key().into());
    })
    .await;
    // Joined: the client's trace and flags, the gateway's span as parent.
    let (id, sent, state) = forwarded(
        &gw,
        &seen,
        vec![("traceparent", CLIENT), ("tracestate", "congo=t61rcWkgMzE")],
    )
    .await;
    let (trace, parent, flags) = fields(&sent.expect("a traceparent"));
    assert_eq!(trace, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_ne!(parent, "00f067aa0ba902b7");
    assert_eq!(flags, "01");
    assert_eq!(state.as_deref(), Some("congo=t61rcWkgMzE"));
    let record = captured
        .decision_lines()
        .into_iter()
        .find(|r| r["request_id"] == id.as_str())
        .expect("a decision record");
    assert_eq!(record["trace_id"], trace.as_str());

    // Invalid (all-zero trace id): a new trace, and its tracestate dropped.
    let bad = "00-00000000000000000000000000000000-00f067aa0ba902b7-01";
    let (_, sent, state) = forwarded(
        &gw,
        &seen,
        vec![("traceparent", bad), ("tracestate", "a=b")],
    )
    .await;
    let (trace, _, _) = fields(&sent.expect("a traceparent"));
    assert_ne!(trace, "0".repeat(32));
    assert_eq!(state, None);

    // None sent: a new trace all the same.
    let (_, first, _) = forwarded(&gw, &seen, vec![]).await;
    let (_, second, _) = forwarded(&gw, &seen, vec![]).await;
    assert_ne!(fields(&first.unwrap()).0, fields(&second.unwrap()).0);
    gw.running.stop().await;
}
