//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): a request
//! joins the trace its client's `traceparent` names (or starts one), the
//! gateway is one span of it, and the domain store gets a `traceparent`
//! whose parent is the gateway's span. The trace id is on the request's log
//! span and in its decision record, so a trace found in Envoy, OPA or the
//! store's logs leads to the gateway's decision. With OTLP export on
//! (`crate::otlp`), the exported spans are of the same trace, and the
//! gateway's span id here is the exported `request` span's.

use http::header::HeaderName;
use http::HeaderMap;
use rand::RngCore;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// The spec's limit on `tracestate` (32 list members of at most 256 bytes is
/// more; 512 is what it asks every participant to propagate at least).
const MAX_TRACESTATE: usize = 512;

/// An id as its lower-case hex digits, on the stack: a trace id (32 digits)
/// or a span id (16), never all zeros.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct HexId<const DIGITS: usize>([u8; DIGITS]);

pub type TraceId = HexId<32>;
pub type SpanId = HexId<16>;

impl<const DIGITS: usize> HexId<DIGITS> {
    /// From the thread's generator (a CSPRNG seeded by the OS): the OS's own
    /// would be a system call per id.
    fn random() -> Self {
        let mut bytes = [0u8; 16];
        let bytes = &mut bytes[..DIGITS / 2];
        // All zeros is invalid for both ids; the chance is 2^-64 at worst, but free to exclude.
        while bytes.iter().all(|b| *b == 0) {
            rand::thread_rng().fill_bytes(bytes);
        }
        HexId::of(bytes).expect("DIGITS / 2 bytes")
    }

    /// The id of these bytes (`DIGITS / 2` of them).
    pub fn of(bytes: &[u8]) -> Option<Self> {
        let mut hex = [0u8; DIGITS];
        hex::encode_to_slice(bytes, &mut hex).ok()?;
        Some(HexId(hex))
    }

    /// `DIGITS` lower-case hex digits, not all zero.
    fn parse(text: &str) -> Option<Self> {
        let valid = text.len() == DIGITS
            && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            && text.bytes().any(|b| b != b'0');
        valid.then(|| HexId(text.as_bytes().try_into().expect("DIGITS bytes")))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex is ASCII")
    }
}

impl<const DIGITS: usize> std::fmt::Display for HexId<DIGITS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const DIGITS: usize> std::fmt::Debug for HexId<DIGITS> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The trace a request belongs to and the gateway's span in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceContext {
    pub trace_id: TraceId,
    /// The gateway's own span id: the store's parent.
    pub span_id: SpanId,
    /// `trace-flags` (bit 0: sampled), as the client sent them; 00 for a new trace.
    pub flags: u8,
    /// The client's `tracestate`, forwarded only with its valid `traceparent`.
    pub state: Option<String>,
    /// Whether the client's `traceparent` was joined (else a new trace).
    pub joined: bool,
    /// The client's span (its `traceparent`'s parent id), when joined: the
    /// parent of the gateway's exported span (`crate::otlp`).
    pub client_span_id: Option<SpanId>,
}

/// The (trace id, parent id, flags) of a `traceparent` value, if valid.
fn parse(value: &str) -> Option<(TraceId, SpanId, u8)> {
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
    if flags.len() != 2 {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()?;
    Some((HexId::parse(trace)?, HexId::parse(parent)?, flags))
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
                    span_id: HexId::random(),
                    flags,
                    state,
                    joined: true,
                    client_span_id: Some(client_span_id),
                }
            }
            None => TraceContext {
                trace_id: HexId::random(),
                span_id: HexId::random(),
                flags: 0,
                state: None,
                joined: false,
                client_span_id: None,
            },
        }
    }

    /// The `traceparent` the domain store gets.
    pub fn traceparent(&self) -> Traceparent {
        let mut text = [b'-'; Traceparent::LENGTH];
        text[..2].copy_from_slice(b"00");
        text[3..35].copy_from_slice(&self.trace_id.0);
        text[36..52].copy_from_slice(&self.span_id.0);
        hex::encode_to_slice([self.flags], &mut text[53..]).expect("two digits");
        Traceparent(text)
    }
}

/// A `traceparent` value, `00-<trace id>-<span id>-<flags>`, on the stack.
pub struct Traceparent([u8; Traceparent::LENGTH]);

impl Traceparent {
    const LENGTH: usize = 55;

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits and dashes")
    }
}

impl std::fmt::Display for Traceparent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[(HeaderName, &str)]) -> TraceContext {
        let mut headers = HeaderMap::new();
        for (n, v) in values {
            headers.append(n.clone(), v.parse().unwrap());
        }
        TraceContext::from_headers(&headers)
    }

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_is_joined_with_a_new_parent() {
        let t = with(&[(TRACEPARENT, CLIENT), (TRACESTATE, "congo=t61rcWkgMzE")]);
        assert!(t.joined);
        assert_eq!(t.trace_id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            t.client_span_id.map(|s| s.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        let sent = t.traceparent().to_string();
        assert_eq!(sent, format!("00-{}-{}-01", t.trace_id, t.span_id));
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
            assert!(parse(&t.traceparent().to_string()).is_some());
            assert_ne!(t.trace_id.as_str(), "4bf92f3577b34da6a3ce929d0e0e4736");
        }
        assert!(!with(&[(TRACEPARENT, CLIENT), (TRACEPARENT, CLIENT)]).joined);
        let fresh = with(&[]);
        assert_eq!(fresh.traceparent().to_string().len(), 55);
        assert_ne!(fresh.trace_id, with(&[]).trace_id);
    }
}
