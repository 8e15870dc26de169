//! Stage 5, forward: the allowed request goes to the domain store over a
//! pooled HTTP client. Header hygiene happens here and only here: hop-by-hop
//! headers, credentials and every client-sent header in the reserved
//! `x-pgw-` namespace or claiming a client address are dropped; the gateway
//! adds its signed identity assertion, its request id, the forwarding
//! headers from what it saw itself and the W3C trace context (`trace.rs`).

use super::forwarded::X_FORWARDED_FOR;
use super::normalize::CanonicalTarget;
use super::GatewayError;
use crate::assertion::{AssertionKey, Claims, HEADER as IDENTITY_HEADER, RESERVED_PREFIX};
use crate::trace::{TraceContext, TRACEPARENT, TRACESTATE};
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use smallvec::SmallVec;
use std::time::Duration;

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1), plus
/// the ones the gateway sets itself.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    // the trace context: replaced by the gateway's (`trace.rs`)
    "traceparent",
    "tracestate",
    // credentials: the upstream trusts the assertion, not these
    "authorization",
    "x-auth-token",
    "x-security-token",
    // client claims about addresses and ids: the gateway states its own
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-request-id",
];

const IDENTITY: HeaderName = HeaderName::from_static(IDENTITY_HEADER);
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Where the gateway sends allowed requests.
#[derive(Clone)]
pub struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `http://host:port`, without a trailing slash.
    base: String,
    /// `base` parsed once, so no request formats or parses it again.
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The path of `base` (empty, or `/prefix`), before every target.
    path_prefix: String,
    /// The `Host` the upstream gets, as the client would write it (which
    /// it would otherwise format on every request).
    host: HeaderValue,
    timeout: Duration,
    key: AssertionKey,
}

/// The upstream's answer, fully read.
pub struct UpstreamResponse {
    pub status: http::StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Upstream {
    /// The store at `base`: `http://` on a private network, or `https://`
    /// with its certificate verified as `tls` says (`--upstream-ca`), and a
    /// client certificate of ours when one is configured.
    pub fn new(
        base: &str,
        timeout: Duration,
        key: AssertionKey,
        tls: &crate::client::UpstreamTls,
    ) -> anyhow::Result<Upstream> {
        let base = base.trim_end_matches('/');
        let uri: http::Uri = base
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid upstream URL {base:?}: {e}"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            anyhow::bail!("the upstream URL must be http://host:port or https://host:port");
        };
        anyhow::ensure!(
            matches!(scheme.as_str(), "http" | "https"),
            "the upstream URL must be http://host:port or https://host:port"
        );
        // Written once; each request's clone only counts a reference.
        let host =
            HeaderValue::from_maybe_shared(Bytes::from_owner(host_header(scheme, authority)))?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(Duration::from_secs(3)));
        http.set_nodelay(true);
        http.enforce_http(false);
        // HTTP/1.1 only (and so offered by ALPN): the store speaks nothing else.
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(crate::client::tls_config(
                &tls.trust,
                tls.client_cert
                    .as_ref()
                    .map(|(c, k)| (c.as_path(), k.as_path())),
            )?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Upstream {
            client,
            base: base.to_owned(),
            scheme: scheme.clone(),
            authority: authority.clone(),
            path_prefix: uri.path().trim_end_matches('/').to_owned(),
            host,
            timeout,
            key,
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends the request upstream with the signed `claims` (which name this
    /// very request: method, target, body hash).
    pub async fn forward(
        &self,
        parts: &Parts,
        target: &CanonicalTarget,
        body: Bytes,
        claims: &Claims<'_>,
        origin: Origin<'_>,
    ) -> Result<UpstreamResponse, GatewayError> {
        let Origin { client, tls, trace } = origin;
        let mut req = http::Request::new(Full::new(body));
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = self.uri_of(target)?;
        // Sized once: the client's headers that cross, and the gateway's.
        let headers = req.headers_mut();
        headers.reserve(parts.headers.len() + 8);
        copy_end_to_end_headers(&parts.headers, headers);
        headers.insert(header::HOST, self.host.clone());
        // Signed into a string of the exact length, taken as it is.
        let identity = HeaderValue::try_from(self.key.sign(claims))
            .map_err(|e| GatewayError::Internal(e.to_string()))?;
        headers.insert(IDENTITY, identity);
        headers.insert(X_REQUEST_ID, header_bytes(claims.request_id.as_bytes())?);
        let proto = if tls { "https" } else { "http" };
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
        let (address, forwarded) = client_headers(client, proto)?;
        headers.insert(X_FORWARDED_FOR, address);
        headers.insert(header::FORWARDED, forwarded);
        // The trace continues with the gateway's span as the store's parent.
        headers.insert(
            TRACEPARENT,
            header_bytes(trace.traceparent().as_str().as_bytes())?,
        );
        if let Some(state) = &trace.state {
            headers.insert(TRACESTATE, header_bytes(state.as_bytes())?);
        }

        let exchange = async {
            let resp =
                self.client.request(req).await.map_err(|e| {
                    GatewayError::UpstreamUnreachable(format!("{}: {e}", self.base))
                })?;
            let (parts, body) = resp.into_parts();
            let body = read_whole(body).await.map_err(|e| {
                GatewayError::UpstreamUnreachable(format!("reading the upstream body: {e}"))
            })?;
            Ok(UpstreamResponse {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| GatewayError::UpstreamTimeout)?
    }

    /// The upstream's URI for `target`: its scheme and authority (parsed
    /// once) and the target under its own path, the request's own bytes
    /// when it has none.
    fn uri_of(&self, target: &CanonicalTarget) -> Result<http::Uri, GatewayError> {
        let path_and_query = if self.path_prefix.is_empty() {
            target.to_path_and_query()
        } else {
            let text = [self.path_prefix.as_str(), target.path_and_query()].concat();
            http::uri::PathAndQuery::from_maybe_shared(Bytes::from(text))
                .map_err(|e| GatewayError::Internal(format!("the upstream target: {e}")))?
        };
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(self.scheme.clone());
        uri.authority = Some(self.authority.clone());
        uri.path_and_query = Some(path_and_query);
        http::Uri::from_parts(uri)
            .map_err(|e| GatewayError::Internal(format!("the upstream URI: {e}")))
    }

    /// Whether the upstream's health endpoint answers 200 (readiness).
    pub async fn reachable(&self) -> bool {
        let Ok(req) = http::Request::builder()
            .method("GET")
            .uri(format!("{}/healthz", self.base))
            .body(Full::new(Bytes::new()))
        else {
            return false;
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(2), self.client.request(req)).await,
            Ok(Ok(resp)) if resp.status().is_success()
        )
    }
}

/// What the gateway saw of the request's origin, for the forwarding headers.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    /// The client's address (behind a trusted proxy, the one it names).
    pub client: std::net::IpAddr,
    /// Whether the client connected over TLS.
    pub tls: bool,
    pub trace: &'a TraceContext,
}

/// The host of `authority`, and its port unless it is the scheme's own
/// (userinfo never).
fn host_header(scheme: &http::uri::Scheme, authority: &http::uri::Authority) -> String {
    let default_port = if scheme.as_str() == "https" { 443 } else { 80 };
    match authority.port_u16() {
        Some(port) if port != default_port => format!("{}:{port}", authority.host()),
        _ => authority.host().to_owned(),
    }
}

/// A header value of bytes the gateway put together (its own ids, the
/// client's address, a trace context already read as text): only a bug
/// makes one invalid.
fn header_bytes(bytes: &[u8]) -> Result<HeaderValue, GatewayError> {
    HeaderValue::from_bytes(bytes).map_err(|e| GatewayError::Internal(e.to_string()))
}

/// The `X-Forwarded-For` and `Forwarded` values naming `client`: its
/// address formatted once, on the stack, for both.
fn client_headers(
    client: std::net::IpAddr,
    proto: &str,
) -> Result<(HeaderValue, HeaderValue), GatewayError> {
    use std::io::Write as _;
    let mut text = [0u8; 64]; // an IPv6 address is at most 45 characters
    let mut cursor = std::io::Cursor::new(&mut text[..]);
    write!(cursor, "{client}").map_err(|e| GatewayError::Internal(e.to_string()))?;
    let written = cursor.position() as usize;
    let address = &text[..written];
    let (before, after): (&[u8], &[u8]) = match client {
        std::net::IpAddr::V4(_) => (b"for=", b";proto="),
        std::net::IpAddr::V6(_) => (b"for=\"[", b"]\";proto="),
    };
    let mut forwarded: SmallVec<[u8; 96]> = SmallVec::new();
    for part in [before, address, after, proto.as_bytes()] {
        forwarded.extend_from_slice(part);
    }
    Ok((header_bytes(address)?, header_bytes(&forwarded)?))
}

/// The whole body, without a list of frames when there is one.
async fn read_whole(mut body: hyper::body::Incoming) -> Result<Bytes, hyper::Error> {
    let mut whole: Option<Bytes> = None;
    let mut more: Option<bytes::BytesMut> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        match (&mut whole, &mut more) {
            (None, _) => whole = Some(data),
            (Some(first), None) => {
                let mut joined = bytes::BytesMut::with_capacity(first.len() + data.len());
                joined.extend_from_slice(first);
                joined.extend_from_slice(&data);
                more = Some(joined);
            }
            (Some(_), Some(joined)) => joined.extend_from_slice(&data),
        }
    }
    Ok(match more {
        Some(joined) => joined.freeze(),
        None => whole.unwrap_or_default(),
    })
}

/// Copies the headers that may cross: not hop-by-hop, not named by
/// `Connection`, not credentials, not in the reserved namespace.
fn copy_end_to_end_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named_by_connection: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in from {
        let n = name.as_str();
        if DROPPED.contains(&n)
            || n.starts_with(RESERVED_PREFIX)
            || named_by_connection.iter().any(|c| c == n)
        {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// Response headers from the upstream that describe its hop only.
pub fn strip_response_hop_headers(headers: &mut HeaderMap) {
    use http::header::{CONNECTION, CONTENT_LENGTH, TRAILER, TRANSFER_ENCODING, UPGRADE};
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    for name in [
        CONNECTION,
        KEEP_ALIVE,
        TRANSFER_ENCODING,
        TRAILER,
        UPGRADE,
        CONTENT_LENGTH,
    ] {
        headers.remove(name);
    }
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with(RESERVED_PREFIX))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7239 quotes an IPv6 address in brackets; `X-Forwarded-For` has
    /// it bare.
    #[test]
    fn the_client_is_named_in_both_forms() {
        for (client, proto, bare, forwarded) in [
            (
                "203.0.113.7",
                "https",
                "203.0.113.7",
                "for=203.0.113.7;proto=https",
            ),
            (
                "2001:db8::1",
                "http",
                "2001:db8::1",
                "for=\"[2001:db8::1]\";proto=http",
            ),
        ] {
            let (address, named) = client_headers(client.parse().unwrap(), proto).unwrap();
            assert_eq!(address, bare);
            assert_eq!(named, forwarded);
        }
    }

    #[test]
    fn only_end_to_end_headers_cross() {
        let mut from = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("x-pgw-identity", "forged"),
            ("X-PGW-Reveal", "contact"),
            ("authorization", "SDK-HMAC-SHA256 ..."),
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=1.2.3.4"),
            ("connection", "x-custom"),
            ("x-custom", "hop"),
            ("user-agent", "sdk"),
            ("x-request-id", "mine"),
        ] {
            from.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_static(v),
            );
        }
        let mut to = HeaderMap::new();
        copy_end_to_end_headers(&from, &mut to);
        let mut names: Vec<&str> = to.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["content-type", "user-agent"]);
    }

    #[test]
    fn the_host_is_the_upstreams_without_its_default_port() {
        let host = |url: &str| {
            let uri: http::Uri = url.parse().unwrap();
            host_header(uri.scheme().unwrap(), uri.authority().unwrap())
        };
        assert_eq!(host("http://store:80"), "store");
        assert_eq!(host("https://store:443"), "store");
        assert_eq!(host("https://store:80"), "store:80");
        assert_eq!(host("http://127.0.0.1:18501"), "127.0.0.1:18501");
        assert_eq!(host("http://[::1]:8080"), "[::1]:8080");
        assert_eq!(host("http://user:pw@store:8080"), "store:8080");
    }
}
