//! Raw connections to the gateway, for what a well-behaved client never sends.

use super::TestGateway;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

/// An upper bound for anything the gateway should do promptly, so that a
/// regression fails the test instead of hanging it. Not a timing assertion.
pub const BOUND: Duration = Duration::from_secs(20);

pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub async fn tcp(gw: &TestGateway) -> TcpStream {
    TcpStream::connect(gw.running.addr).await.unwrap()
}

/// A connection with the TLS handshake done and nothing sent, HTTP/1.1
/// (these tests write raw request heads).
pub async fn tls(gw: &TestGateway) -> Box<dyn Stream> {
    tls_speaking(gw, b"http/1.1").await
}

/// As [`tls`], offering only the ALPN protocol `alpn` (e.g. `h2`).
pub async fn tls_speaking(gw: &TestGateway, alpn: &[u8]) -> Box<dyn Stream> {
    tls_on(gw, tcp(gw).await, alpn)
        .await
        .expect("TLS handshake")
}

/// The TLS handshake (ALPN `alpn`) on a TCP connection to the gateway,
/// which may have sent something before (a PROXY header, say).
pub async fn tls_on(
    gw: &TestGateway,
    tcp: TcpStream,
    alpn: &[u8],
) -> std::io::Result<Box<dyn Stream>> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in
        rustls::pki_types::CertificateDer::pem_file_iter(gw.running.certificate.as_ref().unwrap())
            .unwrap()
    {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut config = config;
    config.alpn_protocols = vec![alpn.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = connector
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await?;
    Ok(Box::new(stream))
}

/// Reads until the server answers or closes (within [`BOUND`]): the status
/// code, or `None` when it closed without an answer.
pub async fn answer(stream: &mut (impl AsyncRead + Unpin)) -> Option<u16> {
    let mut buf = vec![0u8; 4096];
    let n = match tokio::time::timeout(BOUND, stream.read(&mut buf)).await {
        Err(_) => panic!("the gateway neither answered nor closed within {BOUND:?}"),
        Ok(Err(_)) | Ok(Ok(0)) => return None,
        Ok(Ok(n)) => n,
    };
    let head = String::from_utf8_lossy(&buf[..n]).to_string();
    head.split_whitespace().nth(1).and_then(|s| s.parse().ok())
}

/// Sends `head` (with `\r\n\r\n`) and `body` on a new TLS connection; the status.
pub async fn exchange(gw: &TestGateway, head: &str, body: &[u8]) -> Option<u16> {
    use tokio::io::AsyncWriteExt;
    let mut s = tls(gw).await;
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    answer(&mut s).await
}
