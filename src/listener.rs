//! The API listener: TCP accept with a connection limit, TLS (rustls, TLS 1.2
//! and 1.3, ALPN h2 and http/1.1) or plain HTTP, and hyper's HTTP/1.1 + HTTP/2
//! server with header size/count limits and timeouts. Each request goes to
//! [`crate::gateway::Gateway::handle`].

use crate::config::{Limits, TlsMode};
use anyhow::Context;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Builds the TLS acceptor for `mode`; `None` for plaintext. The development
/// certificate is generated once into `data_dir` and reused afterwards.
pub fn tls_acceptor(
    mode: &TlsMode,
    data_dir: &Path,
) -> anyhow::Result<Option<(TlsAcceptor, PathBuf)>> {
    let (cert_path, key_path) = match mode {
        TlsMode::Plaintext => return Ok(None),
        TlsMode::Files { cert, key } => (cert.clone(), key.clone()),
        TlsMode::Development => development_certificate(data_dir)?,
    };
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("cannot read certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("invalid certificate PEM {}", cert_path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "no certificate in {}",
        cert_path.display()
    );
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("certificate and key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some((TlsAcceptor::from(Arc::new(config)), cert_path)))
}

/// `data_dir/dev-cert.pem` and `dev-key.pem`, created (rcgen, for
/// `localhost` and `127.0.0.1`) when missing.
pub fn development_certificate(data_dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    let cert_path = data_dir.join("dev-cert.pem");
    let key_path = data_dir.join("dev-key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok((cert_path, key_path));
    }
    std::fs::create_dir_all(data_dir)?;
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .context("cannot generate a development certificate")?;
    std::fs::write(&cert_path, certified.cert.pem())?;
    write_private(&key_path, &certified.key_pair.serialize_pem())?;
    Ok((cert_path, key_path))
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// What serves each request of a connection.
pub trait RequestHandler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        req: http::Request<Incoming>,
        peer: SocketAddr,
    ) -> impl Future<Output = http::Response<crate::gateway::Body>> + Send;
}

/// Accepts connections until `shutdown` resolves; each connection is served
/// on its own task. At most `limits.max_connections` are open at once: past
/// that, accepting waits (the kernel backlog holds new clients).
///
/// Shutdown is graceful: the listening socket is closed (new clients are
/// refused), every connection is told to finish (HTTP/1.1: the request in
/// flight is answered, then the connection closes; HTTP/2: GOAWAY, streams in
/// flight complete), and this returns once they all have, or after `grace`,
/// when those still open are dropped.
pub async fn serve<H: RequestHandler>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.idle_timeout / 2);
    let builder = Arc::new(builder);
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => permit.expect("semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (handler, builder, tls) = (handler.clone(), builder.clone(), tls.clone());
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| {
                let handler = handler.clone();
                async move { Ok::<_, std::convert::Infallible>(handler.handle(req, peer).await) }
            });
            let result = match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream));
                    let tls_stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(tls_stream)) => tls_stream,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        },
                        _ = closing.wait_for(|c| *c) => return,
                    };
                    until_closed(
                        builder.serve_connection(TokioIo::new(tls_stream), service),
                        &mut closing,
                    )
                    .await
                }
                None => {
                    until_closed(
                        builder.serve_connection(TokioIo::new(stream), service),
                        &mut closing,
                    )
                    .await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    if !connections.is_empty() {
        tracing::info!(
            open = connections.len(),
            grace_secs = grace.as_secs_f64(),
            "no longer accepting; finishing requests in flight"
        );
    }
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "shutdown grace period over; dropping connections with requests in flight"
        );
        connections.shutdown().await;
    }
}

/// Serves one connection; once `closing` turns true, tells it to finish
/// what is in flight and accept nothing more, and waits for that.
async fn until_closed<C: GracefulConnection>(
    conn: C,
    closing: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<(), C::Error> {
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => return result,
        _ = closing.wait_for(|c| *c) => {}
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}
