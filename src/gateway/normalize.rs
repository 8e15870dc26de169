//! Stage 1, normalize: one canonical request. Anything a proxy and a server
//! could read two ways is refused (400) before authentication, so the path
//! and query the policy sees are byte for byte what the upstream gets.

use super::GatewayError;
use http::request::Parts;
use http::{header, HeaderMap};

/// The request target after the checks: the raw path and query, unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalTarget {
    pub path: String,
    pub query: String,
}

impl CanonicalTarget {
    pub fn path_and_query(&self) -> String {
        if self.query.is_empty() {
            self.path.clone()
        } else {
            format!("{}?{}", self.path, self.query)
        }
    }
}

/// Checks the request line and framing headers.
pub fn check(parts: &Parts) -> Result<CanonicalTarget, GatewayError> {
    check_framing(&parts.headers)?;
    let path = parts.uri.path();
    check_path(path)?;
    let query = parts.uri.query().unwrap_or_default();
    check_query(query)?;
    Ok(CanonicalTarget {
        path: path.to_owned(),
        query: query.to_owned(),
    })
}

fn bad(why: &'static str) -> GatewayError {
    GatewayError::Malformed(why)
}

/// Request smuggling shapes: Content-Length with Transfer-Encoding, several
/// Content-Length headers, a Content-Length that is not a plain number.
///
/// hyper already resolves Content-Length + Transfer-Encoding by dropping the
/// Content-Length (RFC 9112 §6.3) before we see the request, so the pair
/// cannot be recognised here; instead every `Transfer-Encoding` request body
/// is refused. API calls are small JSON documents the official SDKs always
/// send with a Content-Length, and refusing chunked bodies outright leaves no
/// framing for a front proxy and the gateway to read differently.
fn check_framing(headers: &HeaderMap) -> Result<(), GatewayError> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return Err(bad(
            "Transfer-Encoding request bodies are not accepted; send Content-Length",
        ));
    }
    let lengths: Vec<_> = headers.get_all(header::CONTENT_LENGTH).iter().collect();
    // Identical repeats, which hyper folds, are renamed by the listener.
    if lengths.len() > 1 || headers.contains_key(crate::listener::REPEATED_CONTENT_LENGTH) {
        return Err(bad("several Content-Length headers"));
    }
    if let Some(len) = lengths.first() {
        if headers.contains_key(header::TRANSFER_ENCODING) {
            return Err(bad("Content-Length together with Transfer-Encoding"));
        }
        let text = len.to_str().map_err(|_| bad("invalid Content-Length"))?;
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("invalid Content-Length"));
        }
    }
    Ok(())
}

/// Percent-escapes that would change the path's meaning once decoded:
/// `/` `\` `.` and NUL.
const AMBIGUOUS_ESCAPES: &[&str] = &["%2f", "%5c", "%2e", "%00"];

fn check_path(path: &str) -> Result<(), GatewayError> {
    if !path.starts_with('/') {
        return Err(bad("the request target must be an absolute path"));
    }
    if path.contains('#') {
        return Err(bad("fragment in the request target"));
    }
    if path.contains("//") {
        return Err(bad("empty path segment"));
    }
    if path.contains('\\') {
        return Err(bad("backslash in the path"));
    }
    if path.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(bad("dot segment in the path"));
    }
    if AMBIGUOUS_ESCAPES
        .iter()
        .any(|e| contains_ignoring_case(path, e))
    {
        return Err(bad("encoded slash, backslash, dot or NUL in the path"));
    }
    check_escapes_decode_to_utf8(path)
}

fn check_query(query: &str) -> Result<(), GatewayError> {
    if query.contains('#') {
        return Err(bad("fragment in the request target"));
    }
    if contains_ignoring_case(query, "%00") {
        return Err(bad("encoded NUL in the query"));
    }
    check_escapes_decode_to_utf8(query)?;
    // A parameter given twice could be read as either value: refuse it.
    let mut seen = std::collections::HashSet::new();
    for (key, _) in form_urlencoded::parse(query.as_bytes()) {
        if !seen.insert(key) {
            return Err(bad("a query parameter is given twice"));
        }
    }
    Ok(())
}

/// Whether `text` contains `needle` (ASCII), in any case.
fn contains_ignoring_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Every `%XX` is a valid escape and the decoded bytes are UTF-8 without
/// control characters.
fn check_escapes_decode_to_utf8(text: &str) -> Result<(), GatewayError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(bad("truncated percent escape"))?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(bad("invalid percent escape"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map_err(|_| bad("the target does not decode to UTF-8"))?;
    if decoded.chars().any(char::is_control) {
        return Err(bad("control character in the target"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(t: &str) -> Result<CanonicalTarget, GatewayError> {
        let req = http::Request::builder().uri(t).body(()).unwrap();
        check(&req.into_parts().0)
    }

    #[test]
    fn accepts_ordinary_targets_unchanged() {
        let t = target("/v2/orders/customer-orders?customer_id=cust-1&limit=10&create_time_begin=2026-01-01T00%3A00%3A00Z").unwrap();
        assert_eq!(t.path, "/v2/orders/customer-orders");
        assert_eq!(t.path_and_query(), "/v2/orders/customer-orders?customer_id=cust-1&limit=10&create_time_begin=2026-01-01T00%3A00%3A00Z");
        assert!(target("/v2/orders/customer-orders/details/ord%201").is_ok());
    }

    #[test]
    fn refuses_ambiguous_paths() {
        for t in [
            "/v2/../admin",
            "/v2/./x",
            "/v2//x",
            "/v2/%2e%2e/x",
            "/v2/a%2Fb",
            "/v2/a%5cb",
            "/v2/a%00",
            "/v2/a%zz",
            "/v2/a%c3",
            "/v2/a%0a",
            "/v2/x?a=1&a=2",
            "/v2/x?a=%00",
        ] {
            assert!(target(t).is_err(), "{t}");
        }
    }

    #[test]
    fn refuses_smuggling_shapes() {
        let both = http::Request::builder()
            .uri("/x")
            .header("content-length", "5")
            .header("transfer-encoding", "chunked")
            .body(())
            .unwrap();
        assert!(check(&both.into_parts().0).is_err());
        let twice = http::Request::builder()
            .uri("/x")
            .header("content-length", "5")
            .header("content-length", "5")
            .body(())
            .unwrap();
        assert!(check(&twice.into_parts().0).is_err());
        let signed = http::Request::builder()
            .uri("/x")
            .header("content-length", "+5")
            .body(())
            .unwrap();
        assert!(check(&signed.into_parts().0).is_err());
    }
}
