//! Stage 5, forward: the allowed request goes to the domain store over a
//! pooled HTTP client. Header hygiene happens here and only here: hop-by-hop
//! headers, credentials and every client-sent header in the reserved
//! `x-pgw-` namespace or claiming a client address are dropped; the gateway
//! adds its signed identity assertion, its request id, the forwarding
//! headers from what it saw itself and the W3C trace context (`trace.rs`).

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

/// Where the gateway sends allowed requests.
#[derive(Clone)]
pub struct Upstream {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    /// `http://host:port`, without a trailing slash.
    base: String,
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
        let uri: http::Uri = base
            .parse()
            .map_err(|e| anyhow::anyhow!("invalid upstream URL {base:?}: {e}"))?;
        anyhow::ensure!(
            matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some(),
            "the upstream URL must be http://host:port or https://host:port"
        );
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
            base: base.trim_end_matches('/').to_owned(),
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
        claims: &Claims,
        origin: Origin<'_>,
    ) -> Result<UpstreamResponse, GatewayError> {
        let Origin { client, tls, trace } = origin;
        let uri = format!("{}{}", self.base, target.path_and_query());
        let mut req = http::Request::builder()
            .method(parts.method.clone())
            .uri(uri);
        let headers = req.headers_mut().expect("builder is valid");
        copy_end_to_end_headers(&parts.headers, headers);
        let request_id = &claims.request_id;
        // Takes the text's buffer as it is, without a copy.
        let header_value =
            |s: String| HeaderValue::try_from(s).map_err(|e| GatewayError::Internal(e.to_string()));
        headers.insert(IDENTITY_HEADER, header_value(self.key.sign(claims))?);
        headers.insert("x-request-id", header_value(request_id.to_owned())?);
        headers.insert("x-forwarded-for", header_value(client.to_string())?);
        let proto = if tls { "https" } else { "http" };
        headers.insert("x-forwarded-proto", HeaderValue::from_static(proto));
        let forwarded = match client {
            std::net::IpAddr::V4(ip) => format!("for={ip};proto={proto}"),
            std::net::IpAddr::V6(ip) => format!("for=\"[{ip}]\";proto={proto}"),
        };
        headers.insert(header::FORWARDED, header_value(forwarded)?);
        // The trace continues with the gateway's span as the store's parent.
        headers.insert(TRACEPARENT, header_value(trace.traceparent())?);
        if let Some(state) = &trace.state {
            headers.insert(TRACESTATE, header_value(state.clone())?);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| GatewayError::Internal(format!("building the upstream request: {e}")))?;

        let exchange = async {
            let resp =
                self.client.request(req).await.map_err(|e| {
                    GatewayError::UpstreamUnreachable(format!("{}: {e}", self.base))
                })?;
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| {
                    GatewayError::UpstreamUnreachable(format!("reading the upstream body: {e}"))
                })?
                .to_bytes();
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
    for name in [
        "connection",
        "keep-alive",
        "transfer-encoding",
        "trailer",
        "upgrade",
        "content-length",
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
}
