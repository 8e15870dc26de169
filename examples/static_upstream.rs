//! A static responder for the benchmarks (`bench/run`): answers every
//! request with `200` and one fixed JSON body, without reading the database,
//! so that a load test through a proxy measures the proxy and not the
//! upstream. `bench/run` gives it the exact body the domain store returns for
//! the benchmarked route (`--body-file`), so the gateway, which forwards a
//! non-list route's JSON as is, handles exactly what it would from the store.
//!
//! ```sh
//! cargo run --release --example static_upstream -- --listen 127.0.0.1:18401 --body-file body.json
//! ```
//!
//! Same stack as the gateway's listener: tokio's multi-threaded runtime and
//! hyper's HTTP/1.1 + HTTP/2 server.
//!
//! `GET /__served` answers how many requests it has answered (that one
//! aside): `bench/run` counts the requests a proxy forwarded under
//! valgrind by them, where the client's own count misses some.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// Requests answered with the body.
static SERVED: AtomicU64 = AtomicU64::new(0);

/// The body when none is given: the shape of `GET /v2/partners/sub-customers/budget`.
const DEFAULT_BODY: &str = r#"{"budget_amount":1000.00,"used_amount":250.40,"measure_id":1,"currency":"USD","budget_type":"MONTHLY","frozen_operate_type":null}"#;

fn usage() -> ! {
    eprintln!("usage: static_upstream [--listen ADDR] [--body-file FILE]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let mut body = Bytes::from_static(DEFAULT_BODY.as_bytes());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().unwrap_or_else(|| usage()).parse()?,
            "--body-file" => {
                body = Bytes::from(std::fs::read(args.next().unwrap_or_else(|| usage()))?)
            }
            _ => usage(),
        }
    }
    let listener = tokio::net::TcpListener::bind(listen).await?;
    println!(
        "static upstream listening on http://{}",
        listener.local_addr()?
    );
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (builder, body) = (builder.clone(), body.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<Incoming>| {
                let body = if req.uri().path() == "/__served" {
                    Bytes::from(SERVED.load(Ordering::Relaxed).to_string())
                } else {
                    SERVED.fetch_add(1, Ordering::Relaxed);
                    body.clone()
                };
                async move {
                    let mut resp = http::Response::new(Full::new(body));
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
