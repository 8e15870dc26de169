//! The admin listener's gate, run before every route:
//!
//! 1. the Host (or HTTP/2 authority) must name this listener: its own
//!    address, `localhost` when it binds loopback, any IP literal when it
//!    binds all addresses, or a configured name. A DNS-rebinding page sends
//!    its own domain name, so it is refused (421);
//! 2. the token, when configured: `Authorization: Bearer TOKEN`, or Basic
//!    with the token as password so a browser can open the console (401).
//!    What a platform probes before it holds any credential is open:
//!    liveness, readiness (its status only; the details need the token) and
//!    AuthZEN's discovery document ([`OPEN_PATHS`]);
//! 3. a request that can change or ask anything with a body (every method but
//!    GET and HEAD) must be `application/json` (415), and, when the browser
//!    says where it comes from (`Origin`), from this same host (403): the
//!    shapes a cross-site form or `fetch` can send without a preflight are
//!    refused;
//! 4. a body is read whole before any route sees it, up to
//!    [`MAX_BODY_BYTES`] (413 past it): no admin request can make the
//!    process hold more than that of one body.

use crate::api_error::{codes, ApiError};
use crate::config::AdminAccess;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The largest admin request body: a batch of 1 000 AuthZEN evaluations
/// with contexts fits well inside.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// GET paths that answer without the token.
pub const OPEN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/.well-known/authzen-configuration"];

/// Set on a request that presented the configured token (or when none is
/// configured): an open path shows its details only then.
#[derive(Clone, Copy, Debug)]
pub struct TokenPresented(pub bool);

/// What the gate checks against.
#[derive(Clone)]
pub struct Gate {
    access: AdminAccess,
    local: SocketAddr,
}

impl Gate {
    pub fn new(access: AdminAccess, local: SocketAddr) -> Arc<Gate> {
        Arc::new(Gate { access, local })
    }

    /// Whether `authority` (`host[:port]`) names this listener.
    fn host_allowed(&self, authority: &str) -> bool {
        let (host, port) = split_authority(authority);
        if self
            .access
            .hosts
            .iter()
            .any(|name| name.eq_ignore_ascii_case(host))
        {
            return true;
        }
        // Our own address is reached on our own port (none means 80).
        if port.unwrap_or(80) != self.local.port() {
            return false;
        }
        let bound = self.local.ip();
        match host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
        {
            Ok(ip) => {
                ip == bound || bound.is_unspecified() || (bound.is_loopback() && ip.is_loopback())
            }
            Err(_) => bound.is_loopback() && host.eq_ignore_ascii_case("localhost"),
        }
    }

    fn token_presented(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.access.token else {
            return true;
        };
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let presented = match value.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => {
                t.trim().as_bytes().to_vec()
            }
            Some((scheme, b)) if scheme.eq_ignore_ascii_case("basic") => {
                match base64::engine::general_purpose::STANDARD.decode(b.trim()) {
                    // Any user name; the token is the password.
                    Ok(pair) => match pair.iter().position(|&c| c == b':') {
                        Some(i) => pair[i + 1..].to_vec(),
                        None => return false,
                    },
                    Err(_) => return false,
                }
            }
            _ => return false,
        };
        presented.ct_eq(token.as_bytes()).into()
    }
}

/// `host` and `port` of `host[:port]` or `[v6][:port]`; an unreadable
/// port is 0, which matches no listener.
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => match rest.find(']') {
            Some(i) => {
                let (host, after) = authority.split_at(i + 2);
                match after {
                    "" => (host, None),
                    _ => (host, Some(after.strip_prefix(':').unwrap_or("x"))),
                }
            }
            None => (authority, Some("x")),
        },
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    (host, port.map(|p| p.parse().unwrap_or(0)))
}

fn error(status: StatusCode, code: &str, msg: &str) -> Response {
    ApiError::new(status, code, msg).into_response()
}

pub async fn check(gate: State<Arc<Gate>>, req: Request, next: Next) -> Response {
    let mut response = gated(gate, req, next).await;
    // Every answer, a refusal too, is what its Content-Type says, never
    // sniffed into a page.
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

async fn gated(State(gate): State<Arc<Gate>>, req: Request, next: Next) -> Response {
    // HTTP/2 carries the authority in the URI, HTTP/1.1 in Host.
    let authority = req
        .uri()
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    if !authority.as_deref().is_some_and(|a| gate.host_allowed(a)) {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            codes::PARAMETER_ERROR,
            "invalid parameter Host: the admin listener answers only to its own address or a configured --admin-host name",
        );
    }
    let presented = gate.token_presented(req.headers());
    let open = req.method() == Method::GET && OPEN_PATHS.contains(&req.uri().path());
    if !presented && !open {
        let mut response = ApiError::unauthenticated().into_response();
        let h = response.headers_mut();
        h.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"partner-gateway admin\""),
        );
        // Lets a browser opening the console ask for the token (as password).
        h.append(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"partner-gateway admin\", charset=\"UTF-8\""),
        );
        return response;
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::PARAMETER_ERROR,
                "invalid parameter Content-Type: the admin listener takes application/json only",
            );
        }
        if let Some(origin) = req.headers().get(header::ORIGIN) {
            let same = origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .is_some_and(|(_, rest)| Some(rest) == authority.as_deref());
            if !same {
                return error(
                    StatusCode::FORBIDDEN,
                    codes::ACCESS_DENIED,
                    "invalid parameter Origin: the admin listener takes no cross-origin requests",
                );
            }
        }
    }
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(TokenPresented(presented));
    let too_large = || {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            &format!(
                "The request body is larger than the admin listener's {MAX_BODY_BYTES} bytes."
            ),
        )
    };
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return too_large();
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return too_large();
    };
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(local: &str, hosts: &[&str]) -> Gate {
        Gate {
            access: AdminAccess {
                token: None,
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
                token_from_data_dir: false,
            },
            local: local.parse().unwrap(),
        }
    }

    #[test]
    fn hosts_name_this_listener_only() {
        let g = gate("127.0.0.1:9090", &["admin.internal"]);
        for ok in [
            "127.0.0.1:9090",
            "localhost:9090",
            "[::1]:9090",
            "admin.internal",
            "ADMIN.internal:443",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example:9090",
            "127.0.0.1:9091",
            "127.0.0.1",
            "localhost",
            "10.0.0.1:9090",
            "",
            "127.0.0.1:x",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let any = gate("0.0.0.0:9090", &[]);
        assert!(any.host_allowed("10.1.2.3:9090"));
        assert!(!any.host_allowed("localhost:9090"));
        assert!(!any.host_allowed("rebind.example:9090"));
        let v6 = gate("[::1]:9090", &[]);
        assert!(v6.host_allowed("[::1]:9090"));
        assert!(v6.host_allowed("localhost:9090"));
    }
}
