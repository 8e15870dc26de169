//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): a request
//! joins the trace its client's `traceparent` names (or starts one), the
//! gateway is one span of it, and the domain store gets a `traceparent`
//! whose parent is the gateway's span. The trace id is on the request's log
//! span and in its decision record, so a trace found in Envoy, OPA or the
//! store's logs leads to the gateway's decision. With OTLP export on
//! (`crate::otlp`), the exported spans are of the same trace, and the
//! gateway's span id here is the exported `request` span's.

use http::HeaderMap;
use rand::RngCore;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";
/// The spec's limit on `tracestate` (32 list members of at most 256 bytes is
/// more; 512 is what it asks every participant to propagate at least).
const MAX_TRACESTATE: usize = 512;

/// The trace a request belongs to and the gateway's span in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lower-case hex digits.
    pub trace_id: String,
    /// The gateway's own span id (16 hex digits): the store's parent.
    pub span_id: String,
    /// `trace-flags` (bit 0: sampled), as the client sent them; 00 for a new trace.
    pub flags: u8,
    /// The client's `tracestate`, forwarded only with its valid `traceparent`.
    pub state: Option<String>,
    /// Whether the client's `traceparent` was joined (else a new trace).
    pub joined: bool,
    /// The client's span (its `traceparent`'s parent id), when joined: the
    /// parent of the gateway's exported span (`crate::otlp`).
    pub client_span_id: Option<String>,
}

/// From the thread's generator (a CSPRNG seeded by the OS): the OS's own
/// would be a system call per id.
fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    // All zeros is invalid for both ids; the chance is 2^-64 at worst, but free to exclude.
    while bytes.iter().all(|b| *b == 0) {
        rand::thread_rng().fill_bytes(&mut bytes);
    }
    hex::encode(bytes)
}

/// `len` lower-case hex digits, not all zero.
fn id_field(text: &str, len: usize) -> bool {
    text.len() == len
        && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && text.bytes().any(|b| b != b'0')
}

/// The (trace id, parent id, flags) of a `traceparent` value, if valid.
fn parse(value: &str) -> Option<(String, String, u8)> {
    let mut parts = value.trim().split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let rest = parts.next();
    let version_ok = version.len() == 2
        && version
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && version != "ff";
    // Version 00 has exactly four fields; a later version may add more.
    if !version_ok || (version == "00" && rest.is_some()) {
        return None;
    }
    if !id_field(trace, 32) || !id_field(parent, 16) || flags.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((trace.to_owned(), parent.to_owned(), flags))
}

impl TraceContext {
    /// The trace of a request with these headers: the client's, when it sent
    /// exactly one valid `traceparent`; a new one otherwise.
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        let mut all = headers.get_all(TRACEPARENT).iter();
        let client = match (all.next(), all.next()) {
            (Some(one), None) => one.to_str().ok().and_then(parse),
            _ => None,
        };
        match client {
            Some((trace_id, client_span_id, flags)) => {
                let state = headers
                    .get_all(TRACESTATE)
                    .iter()
                    .map(|v| v.to_str().map(str::trim))
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
                    .map(|parts| parts.join(","))
                    .filter(|s| !s.is_empty() && s.len() <= MAX_TRACESTATE);
                TraceContext {
                    trace_id,
                    span_id: random_hex::<8>(),
                    flags,
                    state,
                    joined: true,
                    client_span_id: Some(client_span_id),
                }
            }
            None => TraceContext {
                trace_id: random_hex::<16>(),
                span_id: random_hex::<8>(),
                flags: 0,
                state: None,
                joined: false,
                client_span_id: None,
            },
        }
    }

    /// The `traceparent` the domain store gets.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, self.flags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[(&'static str, &str)]) -> TraceContext {
        let mut headers = HeaderMap::new();
        for (n, v) in values {
            headers.append(*n, v.parse().unwrap());
        }
        TraceContext::from_headers(&headers)
    }

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_joined_with_a_new_parent() {
        let t = with(&[(TRACEPARENT, CLIENT), (TRACESTATE, "congo=t61rcWkgMzE")]);
        assert!(t.joined);
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.client_span_id.as_deref(), Some("00f067aa0ba902b7"));
        let sent = t.traceparent();
        assert!(sent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(sent.ends_with("-01"));
        assert_ne!(sent, CLIENT, "the gateway's span is the parent");
        assert!(parse(&sent).is_some());
        assert_eq!(t.state.as_deref(), Some("congo=t61rcWkgMzE"));
        // A later version may carry more fields.
        assert!(with(&[(TRACEPARENT, &format!("01{}-extra", &CLIENT[2..]))]).joined);
    }

    #[test]
    fn anything_else_starts_a_new_trace() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "garbage",
        ] {
            let t = with(&[(TRACEPARENT, bad), (TRACESTATE, "a=b")]);
            assert!(!t.joined, "{bad}");
            assert_eq!(t.state, None, "tracestate goes with its traceparent");
            assert!(parse(&t.traceparent()).is_some());
            assert_ne!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        }
        assert!(!with(&[(TRACEPARENT, CLIENT), (TRACEPARENT, CLIENT)]).joined);
        let fresh = with(&[]);
        assert_eq!(fresh.traceparent().len(), 55);
        assert_ne!(fresh.trace_id, with(&[]).trace_id);
    }
}
