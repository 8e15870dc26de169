//! The API listener: TCP accept with connection limits (total and per
//! address) that never stall accepting, TLS (rustls, TLS 1.2 and 1.3, ALPN h2
//! and http/1.1) or plain HTTP, and hyper's HTTP/1.1 + HTTP/2 server with
//! header size/count limits, stream limits and deadlines. Each request goes to the
//! handler it is given: the gateway's, in `serve`.

mod content_length;
mod lingering;
mod proxy_protocol;

pub use content_length::REPEATED_CONTENT_LENGTH;

use crate::config::{Limits, TlsMode, TrustedProxies};
use anyhow::Context;
use bytes::Bytes;
use content_length::OneContentLength;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use lingering::Lingering;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

/// Response bodies are always complete buffers.
pub type Body = Full<Bytes>;

/// An axum listener over TLS (the domain store, the admin listener):
/// accepts TCP connections and hands on those whose TLS handshake
/// completed; each handshake runs on its own, bounded in time, so a slow
/// client holds up no other.
pub struct TlsListener {
    handshaken: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::net::SocketAddr,
}

impl TlsListener {
    pub fn new(
        listener: tokio::net::TcpListener,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> std::io::Result<TlsListener> {
        let local = listener.local_addr()?;
        let (ready, handshaken) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            while !ready.is_closed() {
                let Ok((tcp, peer)) = listener.accept().await else {
                    // Out of descriptors, say: try again shortly.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let (acceptor, ready) = (acceptor.clone(), ready.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(tcp);
                    match tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await
                    {
                        Ok(Ok(tls)) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { handshaken, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accepting task ended: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Builds the TLS acceptor for `mode`; `None` for plaintext. The development
/// certificate is generated once into `data_dir` and reused afterwards.
/// With `client_ca`, a client must present a certificate that chains to one
/// of that PEM file's certificates (the store's `--client-ca`).
pub fn tls_acceptor(
    mode: &TlsMode,
    data_dir: &Path,
    client_ca: Option<&Path>,
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
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let (roots, _) = crate::client::roots_from(ca)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .with_context(|| format!("no usable CA certificate in {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
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
    ) -> impl Future<Output = http::Response<Body>> + Send;
}

/// Accepts connections until `shutdown` resolves; each connection is served
/// on its own task. The accept loop never waits on held connections:
///
/// - a connection must bring a complete request head within
///   `header_read_timeout` of its accept (TLS handshake included), and the
///   next one within `idle_timeout` of the last answer, or it is closed;
/// - at `max_connections`, an idle connection (no request in flight: still
///   handshaking or sending its first head, else kept alive; the former and
///   the longest idle first) is closed to make room, as nginx reuses
///   keep-alive connections; only when every connection has a request in
///   flight is the new one closed at once;
/// - past `max_connections_per_ip` from one address, new ones are closed.
///   A trusted proxy's connections count for the client its PROXY header
///   names (`proxy_protocol`), else for no address: they carry many clients.
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
    proxies: TrustedProxies,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let registry = Arc::new(Registry::new(&limits));
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
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        // Flow-control windows bound what one connection can make us hold
        // before the gateway reads (and first authenticates) a stream's body.
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .keep_alive_interval(limits.idle_timeout / 2)
        .keep_alive_timeout(limits.idle_timeout / 2);
    let builder = Arc::new(builder);
    let max_head = limits.max_header_bytes;
    let (closing, closing_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
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
        let from_proxy = proxies.contains(&peer.ip());
        // With the PROXY protocol, a proxy's connection is admitted once its
        // header named the client, on the connection's own task.
        let admitted = if from_proxy && proxies.proxy_protocol {
            None
        } else {
            let counted = (!from_proxy).then_some(peer.ip());
            match registry.admit(counted) {
                Ok(admitted) => Some(admitted),
                Err(refusal) => {
                    refused(peer, refusal);
                    continue; // dropping the stream closes it
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let (handler, builder, tls) = (handler.clone(), builder.clone(), tls.clone());
        let registry = registry.clone();
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let mut stream = stream;
            let (peer, read_ahead, admitted) = match admitted {
                Some(admitted) => (peer, Bytes::new(), admitted),
                None => {
                    let header = tokio::select! {
                        header = tokio::time::timeout(
                            limits.header_read_timeout,
                            proxy_protocol::read_header(&mut stream, peer),
                        ) => header,
                        _ = closing.wait_for(|c| *c) => return,
                    };
                    let (client, read_ahead) = match header {
                        Ok(Ok(header)) => header,
                        Ok(Err(why)) => return refused(peer, why),
                        Err(_) => return refused(peer, "no PROXY header in time"),
                    };
                    match registry.admit(Some(client.ip())) {
                        Ok(admitted) => (client, read_ahead, admitted),
                        Err(refusal) => return refused(client, refusal),
                    }
                }
            };
            // What the PROXY header's reads brought past it is read first.
            let (reader, writer) = stream.into_split();
            let stream = tokio::io::join(std::io::Cursor::new(read_ahead).chain(reader), writer);
            let activity = admitted.activity.clone();
            let service = service_fn(move |req| {
                let handler = handler.clone();
                let in_flight = activity.request_started();
                async move {
                    let response = handler.handle(req, peer).await;
                    drop(in_flight);
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
            let serving = async {
                match tls {
                    Some(acceptor) => {
                        let tls_stream = tokio::select! {
                            done = acceptor.accept(stream) => match done {
                                Ok(tls_stream) => tls_stream,
                                Err(e) => {
                                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                                    return Ok(());
                                }
                            },
                            _ = closing.wait_for(|c| *c) => return Ok(()),
                        };
                        until_closed(
                            builder.serve_connection(
                                TokioIo::new(OneContentLength::new(
                                    Lingering::new(tls_stream),
                                    max_head,
                                )),
                                service,
                            ),
                            &mut closing,
                        )
                        .await
                    }
                    None => {
                        until_closed(
                            builder.serve_connection(
                                TokioIo::new(OneContentLength::new(
                                    Lingering::new(stream),
                                    max_head,
                                )),
                                service,
                            ),
                            &mut closing,
                        )
                        .await
                    }
                }
            };
            // Dropping `serving` closes the connection.
            tokio::select! {
                result = serving => if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                },
                why = admitted.idle_deadline(limits.header_read_timeout, limits.idle_timeout) => {
                    tracing::debug!(%peer, why, "connection closed");
                }
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

fn refused(peer: SocketAddr, refusal: &'static str) {
    tracing::info!(%peer, refusal, "connection refused at accept");
    crate::metrics::connection_refused(refusal);
}

/// HTTP/2 flow-control windows (hyper's default is 1 MiB for both).
const H2_STREAM_WINDOW: u32 = 64 * 1024;
const H2_CONNECTION_WINDOW: u32 = 256 * 1024;

/// The open connections: how many from each address, and which are idle, so
/// that the accept loop can make room instead of waiting.
struct Registry {
    max_total: usize,
    max_per_ip: usize,
    open: std::sync::Mutex<Open>,
}

#[derive(Default)]
struct Open {
    next_id: u64,
    /// Each connection's address, `None` where it is not counted.
    by_id: HashMap<u64, (Option<IpAddr>, Arc<Activity>)>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Open {
    fn remove(&mut self, id: u64) -> Option<Arc<Activity>> {
        let (ip, activity) = self.by_id.remove(&id)?;
        if let Some(ip) = ip {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
        Some(activity)
    }
}

impl Registry {
    fn new(limits: &Limits) -> Self {
        Registry {
            max_total: limits.max_connections,
            max_per_ip: limits.max_connections_per_ip,
            open: Default::default(),
        }
    }

    /// Admits a new connection from `ip` (`None`: counted for no address),
    /// closing the longest-idle one when full; `Err` names why the new one
    /// is refused instead.
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Admitted, &'static str> {
        let mut open = self.open.lock().expect("registry lock");
        if let Some(ip) = ip {
            if open.per_ip.get(&ip).copied().unwrap_or(0) >= self.max_per_ip {
                return Err("max_connections_per_ip");
            }
        }
        if open.by_id.len() >= self.max_total {
            let idlest = open
                .by_id
                .iter()
                .filter_map(|(id, (_, a))| a.idle_key().map(|key| (key, *id)))
                .min();
            let Some((_, id)) = idlest else {
                return Err("max_connections, every connection busy");
            };
            if let Some(evicted) = open.remove(id) {
                evicted.evict.notify_one();
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let activity = Arc::new(Activity::new());
        open.by_id.insert(id, (ip, activity.clone()));
        if let Some(ip) = ip {
            *open.per_ip.entry(ip).or_insert(0) += 1;
        }
        Ok(Admitted {
            id,
            activity,
            registry: self.clone(),
        })
    }
}

/// A connection's place in the registry, given back when it ends.
struct Admitted {
    id: u64,
    activity: Arc<Activity>,
    registry: Arc<Registry>,
}

impl Admitted {
    /// Resolves (with the reason) when the connection must close: no
    /// request head within `head` of the accept, no new request within `idle`
    /// of the last answer, or evicted to make room.
    async fn idle_deadline(&self, head: Duration, idle: Duration) -> &'static str {
        let mut state = self.activity.state.subscribe();
        loop {
            let now = *state.borrow_and_update();
            let wait = match now.idle_since {
                None => None,
                Some(since) if now.served => Some((since + idle, "idle")),
                Some(since) => Some((since + head, "no request head in time")),
            };
            tokio::select! {
                _ = self.activity.evict.notified() => return "evicted to make room",
                _ = async {
                    match wait {
                        Some((deadline, _)) => tokio::time::sleep_until(deadline).await,
                        None => std::future::pending().await,
                    }
                } => return wait.map_or("", |(_, why)| why),
                _ = state.changed() => {}
            }
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.registry
            .open
            .lock()
            .expect("registry lock")
            .remove(self.id);
    }
}

/// Whether a connection has requests in flight, and since when it is idle.
struct Activity {
    state: tokio::sync::watch::Sender<ActivityState>,
    evict: tokio::sync::Notify,
}

#[derive(Clone, Copy)]
struct ActivityState {
    in_flight: usize,
    /// `None` while a request is in flight.
    idle_since: Option<Instant>,
    /// Whether a request was ever answered (then the idle timeout applies).
    served: bool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            state: tokio::sync::watch::Sender::new(ActivityState {
                in_flight: 0,
                idle_since: Some(Instant::now()),
                served: false,
            }),
            evict: tokio::sync::Notify::new(),
        }
    }

    /// Connections that never sent a request come first, then the longest idle;
    /// `None` while a request is in flight.
    fn idle_key(&self) -> Option<(bool, Instant)> {
        let state = self.state.borrow();
        state.idle_since.map(|since| (state.served, since))
    }

    /// Marks a request in flight until the returned guard drops.
    fn request_started(self: &Arc<Self>) -> InFlight {
        self.state.send_modify(|s| {
            s.in_flight += 1;
            s.idle_since = None;
        });
        InFlight(self.clone())
    }
}

struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state.send_modify(|s| {
            s.in_flight -= 1;
            s.served = true;
            if s.in_flight == 0 {
                s.idle_since = Some(Instant::now());
            }
        });
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
