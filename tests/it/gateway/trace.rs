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

/// `--otlp-endpoint`, in a build with the `otlp` feature.
#[cfg(feature = "otlp")]
mod export {
    use super::{CLIENT, PATH};

    /// What the stand-in collector got: one POST each.
    #[derive(Debug)]
    struct Export {
        method: String,
        path: String,
        content_type: String,
        body: Vec<u8>,
    }

    /// An OTLP/HTTP collector on a loopback port: records every request and
    /// answers 200 with an empty `ExportTraceServiceResponse`.
    async fn collector() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Export>>>) {
        use http_body_util::BodyExt;
        let got: std::sync::Arc<std::sync::Mutex<Vec<Export>>> = Default::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let keep = got.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keep = keep.clone();
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let keep = keep.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await?.to_bytes().to_vec();
                            keep.lock().unwrap().push(Export {
                                method: parts.method.to_string(),
                                path: parts.uri.path().to_owned(),
                                content_type: parts
                                    .headers
                                    .get("content-type")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned(),
                                body,
                            });
                            let mut answer =
                                http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
                            answer.headers_mut().insert(
                                "content-type",
                                http::HeaderValue::from_static("application/x-protobuf"),
                            );
                            Ok::<_, hyper::Error>(answer)
                        }
                    });
                tokio::spawn(async move {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        (format!("http://{addr}"), got)
    }

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    /// `--otlp-endpoint`: the real binary exports its spans to a collector as
    /// OTLP/HTTP protobuf, in the client's trace (its trace id, its span as the
    /// parent), with service.name, and without the request's credentials. The
    /// batch delay is set past the test's length, so what arrives is what the
    /// shutdown flush sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn spans_are_exported_over_otlp_in_the_clients_trace() {
        let (collector, got) = collector().await;
        let dir = tempfile::tempdir().unwrap();
        let server = crate::logs::serve_with(
            dir.path(),
            "text",
            // Without a path: /v1/traces is added.
            &["--otlp-endpoint", &collector],
            &[("OTEL_BSP_SCHEDULE_DELAY", "600000")],
        );
        let signature = "5e1f0c0ffee0dd5eca1ab1e0ba5eba11".repeat(2);
        let answer = crate::kit::send(
            &crate::kit::http_client(),
            "GET",
            &format!("{}{PATH}", server.endpoint),
            &[
                ("traceparent", CLIENT.to_owned()),
                ("x-sdk-date", "20250101T000000Z".to_owned()),
                (
                    "authorization",
                    format!("SDK-HMAC-SHA256 Access=AKNOSUCHKEY0000000000, SignedHeaders=host;x-sdk-date, Signature={signature}"),
                ),
            ],
            vec![],
        )
        .await;
        assert_eq!(answer.status, 401);
        assert!(
            got.lock().unwrap().is_empty(),
            "nothing before the batch is due"
        );

        // SIGTERM, as an orchestrator stops it; the process is ours, by its id.
        let pid = server.child.id().to_string();
        let mut server = server;
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while server.child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "did not stop");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(server
            .banner
            .lock()
            .unwrap()
            .iter()
            .any(|l| l == &format!("OTLP trace export: {collector}/v1/traces")));

        let got = got.lock().unwrap();
        assert!(!got.is_empty(), "no export reached the collector");
        let trace_id = hex::decode("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        let client_span = hex::decode("00f067aa0ba902b7").unwrap();
        let ours = got
            .iter()
            .find(|e| contains(&e.body, &trace_id))
            .unwrap_or_else(|| panic!("no export holds the client's trace id: {got:?}"));
        assert_eq!(ours.method, "POST");
        assert_eq!(ours.path, "/v1/traces");
        assert_eq!(ours.content_type, "application/x-protobuf");
        // The request span's parent is the client's span; the stages are there.
        assert!(contains(&ours.body, &client_span));
        for name in ["partner-gateway", "request", "authenticate"] {
            assert!(contains(&ours.body, name.as_bytes()), "{name}");
        }
        for export in got.iter() {
            for secret in [signature.as_str(), "Signature=", "SDK-HMAC-SHA256"] {
                assert!(!contains(&export.body, secret.as_bytes()), "{secret}");
            }
        }
    }
}
