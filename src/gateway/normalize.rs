//! Stage 1, normalize: one canonical request. Anything a proxy and a server
//! could read two ways is refused (400) before authentication, so the path
//! and query the policy sees are byte for byte what the upstream gets.

use super::GatewayError;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{header, HeaderMap};

/// The request target after the checks: the raw path and query, unchanged
/// (the request's own bytes, shared, not copied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalTarget(PathAndQuery);

impl CanonicalTarget {
    pub fn path(&self) -> &str {
        self.0.path()
    }

    pub fn query(&self) -> &str {
        self.0.query().unwrap_or_default()
    }

    /// The path, and `?` and the query when there is one: what is signed
    /// into the assertion and forwarded.
    pub fn path_and_query(&self) -> &str {
        let text = self.0.as_str();
        match self.0.query() {
            // The lone `?` of an empty query.
            Some("") => &text[..text.len() - 1],
            _ => text,
        }
    }

    /// [`CanonicalTarget::path_and_query`] for a URI, without a copy when
    /// it is the request's own.
    pub fn to_path_and_query(&self) -> PathAndQuery {
        let text = self.path_and_query();
        if text.len() == self.0.as_str().len() {
            return self.0.clone();
        }
        PathAndQuery::from_maybe_shared(bytes::Bytes::copy_from_slice(text.as_bytes()))
            .expect("a prefix of a valid target is one")
    }
}

/// Checks the request line and framing headers.
pub fn check(parts: &Parts) -> Result<CanonicalTarget, GatewayError> {
    check_framing(&parts.headers)?;
    let Some(target) = parts
        .uri
        .path_and_query()
        .filter(|t| t.as_str().starts_with('/'))
    else {
        return Err(bad("the request target must be an absolute path"));
    };
    check_path(target.path())?;
    check_query(target.query().unwrap_or_default())?;
    Ok(CanonicalTarget(target.clone()))
}

fn bad(why: impl Into<std::borrow::Cow<'static, str>>) -> GatewayError {
    GatewayError::Malformed(why.into())
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

/// What a path parameter may hold once decoded, as [`check_path`] reads
/// it (for the OpenAPI document): not `.` or `..`, no `/` or `\\`, no
/// control character.
pub const PATH_PARAMETER_PATTERN: &str = "^(?!\\.{1,2}$)[^/\\\\\\u0000-\\u001f\\u007f-\\u009f]+$";

/// What a query parameter's value may hold once decoded, as
/// [`check_query`] reads it: no control character.
pub const QUERY_VALUE_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$";

/// Each segment of the path must mean one thing. A refusal names the path
/// parameter the segment is, where a route's template says so.
fn check_path(path: &str) -> Result<(), GatewayError> {
    if !path.starts_with('/') {
        return Err(bad("the request target must be an absolute path"));
    }
    if path.contains('#') {
        return Err(bad("fragment in the request target"));
    }
    // No allocation: this runs for every request.
    let mut segments = path.split('/').enumerate().skip(1).peekable();
    while let Some((index, segment)) = segments.next() {
        let last = segments.peek().is_none();
        let why = if segment.is_empty() && !last {
            Some("an empty path segment")
        } else if segment.contains('\\') {
            Some("a backslash")
        } else if segment == "." || segment == ".." {
            Some("a dot segment")
        } else if AMBIGUOUS_ESCAPES
            .iter()
            .any(|e| contains_ignoring_case(segment, e))
        {
            Some("an encoded slash, backslash, dot or NUL")
        } else {
            decoding_problem(segment)
        };
        if let Some(why) = why {
            return Err(bad(match crate::catalog::path_parameter_at(path, index) {
                Some(name) => format!("invalid parameter {name}: {why}"),
                None => format!("{why} in the path"),
            }));
        }
    }
    Ok(())
}

/// Each parameter of the query must mean one thing, and be given once. A
/// refusal names the parameter.
fn check_query(query: &str) -> Result<(), GatewayError> {
    if query.contains('#') {
        return Err(bad("fragment in the request target"));
    }
    let mut seen = std::collections::HashSet::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if let Some(why) = decoding_problem(key) {
            return Err(bad(format!("invalid query parameter name: {why}")));
        }
        // The name as the parsers read it (`+` is a space); borrowed when
        // there is nothing to decode.
        let name = form_urlencoded::parse(pair.as_bytes())
            .next()
            .map(|(name, _)| name)
            .unwrap_or_default();
        if let Some(why) = decoding_problem(value) {
            return Err(bad(format!("invalid query parameter {name}: {why}")));
        }
        // A parameter given twice could be read as either value: refuse it.
        if !seen.insert(name.clone()) {
            return Err(bad(format!("query parameter {name} is given twice")));
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

/// Why `text` does not decode to one plain text: an escape that is not
/// `%XX`, bytes that are not UTF-8, or a control character (NUL included).
fn decoding_problem(text: &str) -> Option<&'static str> {
    let bytes = text.as_bytes();
    // Printable ASCII without an escape, as nearly every target is, is its
    // own plain text: nothing to decode.
    if bytes
        .iter()
        .all(|&b| (b' '..=b'~').contains(&b) && b != b'%')
    {
        return None;
    }
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            match bytes.get(i + 1..i + 3) {
                None => return Some("a truncated percent escape"),
                Some(hex) if !hex.iter().all(u8::is_ascii_hexdigit) => {
                    return Some("an invalid percent escape")
                }
                Some(_) => i += 3,
            }
        } else {
            i += 1;
        }
    }
    match percent_encoding::percent_decode_str(text).decode_utf8() {
        Err(_) => Some("it does not decode to UTF-8"),
        Ok(decoded) if decoded.chars().any(char::is_control) => Some("a control character"),
        Ok(_) => None,
    }
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
        assert_eq!(t.path(), "/v2/orders/customer-orders");
        assert_eq!(t.path_and_query(), "/v2/orders/customer-orders?customer_id=cust-1&limit=10&create_time_begin=2026-01-01T00%3A00%3A00Z");
        assert_eq!(t.to_path_and_query().as_str(), t.path_and_query());
        assert!(target("/v2/orders/customer-orders/details/ord%201").is_ok());
        // An empty query is no query, as signed and as forwarded.
        let t = target("/v2/orders/customer-orders?").unwrap();
        assert_eq!(t.path_and_query(), "/v2/orders/customer-orders");
        assert_eq!(t.to_path_and_query().as_str(), "/v2/orders/customer-orders");
        assert_eq!(t.query(), "");
        // A `?` inside a query is the query's own.
        let t = target("/v2/orders/customer-orders?customer_id=c-1?").unwrap();
        assert_eq!(t.query(), "customer_id=c-1?");
        assert_eq!(
            t.path_and_query(),
            "/v2/orders/customer-orders?customer_id=c-1?"
        );
        assert_eq!(t.to_path_and_query().as_str(), t.path_and_query());
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

    /// A refusal names the parameter it is about: the query parameter, or
    /// the path parameter a route's template has at that segment.
    #[test]
    fn refusals_name_the_parameter() {
        let refusal = |t: &str| match target(t) {
            Err(GatewayError::Malformed(why)) => why.into_owned(),
            other => panic!("{t}: {other:?}"),
        };
        for (t, names) in [
            (
                "/v2/customer/resources?status=%0D",
                "invalid query parameter status: ",
            ),
            (
                "/v2/customer/resources?limit=1&limit=2",
                "query parameter limit is given twice",
            ),
            (
                "/v2/customer/resources?st%FFatus=1",
                "invalid query parameter name: ",
            ),
            (
                "/v2/orders/customer-orders/details/%1A",
                "invalid parameter order_id: ",
            ),
            (
                "/v2/orders/customer-orders/details/a%2Fb",
                "invalid parameter order_id: ",
            ),
            (
                "/v2/partners/sub-customers//overview",
                "invalid parameter customer_id: ",
            ),
            ("/v2/nowhere/%0A", "a control character in the path"),
        ] {
            let why = refusal(t);
            assert!(why.starts_with(names) || why == names, "{t}: {why}");
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
