//! The bare pass-through proxy of the benchmarks (`bench/run`): the physical
//! limit of the gateway's stack. Same runtime (tokio, multi-threaded), same
//! server (hyper-util's HTTP/1.1 + HTTP/2 `auto` builder), same TLS
//! configuration (`partner_gateway::listener::tls_acceptor`) and same pooled
//! upstream client (hyper-util's legacy client, TCP_NODELAY) as the gateway,
//! and nothing else: no normalization, authentication, decision, header
//! hygiene or audit. Bodies stream through in both directions.
//!
//! ```sh
//! cargo run --release --example bench_proxy -- --listen 127.0.0.1:18402 --upstream http://127.0.0.1:18401
//! cargo run --release --example bench_proxy -- --listen 127.0.0.1:18403 --upstream http://127.0.0.1:18401 \
//!     --tls-cert cert.pem --tls-key key.pem
//! ```

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use partner_gateway::config::TlsMode;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

type Body = http_body_util::Either<Incoming, http_body_util::Full<bytes::Bytes>>;

fn usage() -> ! {
    eprintln!("usage: bench_proxy --upstream http://HOST:PORT [--listen ADDR] [--tls-cert PEM --tls-key PEM]");
    std::process::exit(2);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut listen: SocketAddr = "127.0.0.1:0".parse()?;
    let (mut upstream, mut cert, mut key) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--listen" => listen = value().parse()?,
            "--upstream" => upstream = Some(value().trim_end_matches('/').to_owned()),
            "--tls-cert" => cert = Some(PathBuf::from(value())),
            "--tls-key" => key = Some(PathBuf::from(value())),
            _ => usage(),
        }
    }
    let upstream: Arc<str> = upstream.unwrap_or_else(|| usage()).into();
    let tls = match (cert, key) {
        (Some(cert), Some(key)) => partner_gateway::listener::tls_acceptor(
            &TlsMode::Files { cert, key },
            &PathBuf::new(),
            None,
        )?
        .map(|(acceptor, _)| acceptor),
        (None, None) => None,
        _ => usage(),
    };

    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "bench proxy listening on {scheme}://{} -> {upstream}",
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
        let (builder, client, upstream, tls) = (
            builder.clone(),
            client.clone(),
            upstream.clone(),
            tls.clone(),
        );
        tokio::spawn(async move {
            let service = service_fn(move |req: http::Request<Incoming>| {
                let (client, upstream) = (client.clone(), upstream.clone());
                async move { Ok::<_, Infallible>(forward(&client, &upstream, req).await) }
            });
            let _ = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Err(_) => return,
                },
                None => {
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                }
            };
        });
    }
}

/// The request as received, to `upstream` + its path and query; the answer as received.
async fn forward(
    client: &Client<HttpConnector, Incoming>,
    upstream: &str,
    req: http::Request<Incoming>,
) -> http::Response<Body> {
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    parts.uri = match format!("{upstream}{path}").parse() {
        Ok(uri) => uri,
        Err(_) => return bad_gateway(),
    };
    // HTTP/2 clients send no Host header; HTTP/1.1 upstreams need one (the client adds it from the URI).
    parts.version = http::Version::HTTP_11;
    match client.request(http::Request::from_parts(parts, body)).await {
        Ok(resp) => resp.map(Body::Left),
        Err(_) => bad_gateway(),
    }
}

fn bad_gateway() -> http::Response<Body> {
    let mut resp = http::Response::new(Body::Right(http_body_util::Full::new(
        bytes::Bytes::from_static(b"bad gateway"),
    )));
    *resp.status_mut() = http::StatusCode::BAD_GATEWAY;
    resp
}
