//! A client that signs exactly as the official SDK does: used by
//! `partner-gateway call` and by the end-to-end tests.

use crate::signing;
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The identifying User-Agent this client sends (and signs, as the SDK does).
pub const USER_AGENT: &str = concat!("partner-gateway-call/", env!("CARGO_PKG_VERSION"));

/// How to trust the server's certificate.
#[derive(Debug, Clone, Default)]
pub enum Trust {
    /// The system's roots.
    #[default]
    System,
    /// Exactly the certificates in this PEM file (e.g. the development certificate).
    CaFile(std::path::PathBuf),
    /// Nothing is verified (development only).
    Insecure,
}

pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

pub fn https_client(trust: &Trust) -> anyhow::Result<HttpsClient> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(trust, None)?)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// How the gateway reaches an `https://` store.
#[derive(Clone, Debug, Default)]
pub struct UpstreamTls {
    /// What the store's certificate is verified against.
    pub trust: Trust,
    /// Our certificate chain and key, for a store that asks for one
    /// (`--upstream-cert/--upstream-key`).
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// A client certificate chain and its key, both PEM files.
pub type ClientIdentity<'a> = (&'a Path, &'a Path);

/// A TLS client configuration that trusts as `trust` says, presenting
/// `identity` when given (a store that asks for client certificates).
pub fn tls_config(
    trust: &Trust,
    identity: Option<ClientIdentity>,
) -> anyhow::Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match trust {
        Trust::System => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            builder.with_root_certificates(roots)
        }
        Trust::CaFile(path) => {
            let (roots, pinned) = roots_from(path)?;
            let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .with_context(|| format!("no usable certificate in {}", path.display()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(RootsOrPinned {
                    verifier,
                    pinned,
                    provider: provider.clone(),
                }))
        }
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider.clone()))),
    };
    let Some((cert, key)) = identity else {
        return Ok(builder.with_no_client_auth());
    };
    use rustls::pki_types::pem::PemObject;
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in {}", cert.display()))?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the private key {}", key.display()))?;
    builder
        .with_client_auth_cert(chain, key)
        .context("the client certificate and key do not match")
}

/// The certificates of a PEM file, as roots and as the certificates
/// themselves (the `--cacert` pins; the store's `--client-ca` roots).
pub(crate) fn roots_from(
    path: &Path,
) -> anyhow::Result<(rustls::RootCertStore, Vec<CertificateDer<'static>>)> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let mut pinned = Vec::new();
    for cert in CertificateDer::pem_file_iter(path)
        .with_context(|| format!("cannot read {}", path.display()))?
    {
        let cert = cert.with_context(|| format!("invalid PEM in {}", path.display()))?;
        roots.add(cert.clone())?;
        pinned.push(cert);
    }
    Ok((roots, pinned))
}

/// `--cacert FILE`: the server's chain verified against the file's
/// certificates as roots (name, dates, chain), or else the server's own
/// certificate being exactly one of them. The second is how curl and the
/// SDK accept a plain `openssl req -x509` self-signed certificate, which is
/// marked as a CA and so refused by WebPKI as a server's certificate
/// (`CaUsedAsEndEntity`); an exact, byte-for-byte pin is at least as strict,
/// and the handshake signature still proves the server holds its key.
#[derive(Debug)]
struct RootsOrPinned {
    verifier: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for RootsOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .verifier
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(verified) => Ok(verified),
            Err(_)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Credentials to sign with.
#[derive(Clone)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    /// For assume-role session credentials.
    pub security_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// An answer, fully read.
#[derive(Debug)]
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub fn error_code(&self) -> String {
        self.json()["error_code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Sends `method endpoint+path_and_query` signed with `credentials` (or, when
/// `None`, unsigned), with the SDK's headers plus `extra` (which are signed too).
pub async fn call(
    client: &HttpsClient,
    endpoint: &str,
    credentials: Option<&Credentials>,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    extra: &[(&str, &str)],
) -> anyhow::Result<Answer> {
    let url: http::Uri = format!("{}{}", endpoint.trim_end_matches('/'), path_and_query)
        .parse()
        .with_context(|| format!("invalid URL {endpoint}{path_and_query}"))?;
    let host = url
        .authority()
        .context("the endpoint needs a host")?
        .as_str()
        .to_owned();
    let date = chrono::Utc::now().format(signing::DATE_FORMAT).to_string();
    let mut headers: Vec<(&str, &str)> = vec![
        ("Content-Type", "application/json"),
        ("Host", &host),
        ("User-Agent", USER_AGENT),
        ("X-Sdk-Date", &date),
    ];
    if let Some(token) = credentials.and_then(|c| c.security_token.as_deref()) {
        headers.push(("X-Security-Token", token));
    }
    headers.extend_from_slice(extra);
    let authorization = credentials.map(|c| {
        signing::sign(
            method,
            url.path(),
            url.query().unwrap_or_default(),
            &headers,
            body,
            &c.access_key,
            &c.secret_key,
        )
    });
    let mut req = http::Request::builder().method(method).uri(url.clone());
    for (name, value) in &headers {
        // hyper sets Host from the URI itself.
        if !name.eq_ignore_ascii_case("host") {
            req = req.header(*name, *value);
        }
    }
    if let Some(auth) = &authorization {
        req = req.header("Authorization", auth);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::copy_from_slice(body)))?)
        .await
        .with_context(|| format!("cannot reach {endpoint}"))?;
    let (parts, body) = resp.into_parts();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await?.to_bytes(),
    })
}

/// Accepts any server certificate: `--insecure`, for development certificates.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
