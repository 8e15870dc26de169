//! The identity assertion: how the gateway tells the domain store who is
//! calling and what was decided. The store trusts nothing else about the
//! caller, and decides nothing about who may do what: it serves exactly the
//! operation, the resources and the list filter the assertion names.
//!
//! Wire form, in the `X-Pgw-Identity` header:
//! `v1.<base64url(JSON claims)>.<base64url(HMAC-SHA256(key, "v1.<claims>"))>`.
//! The claims bind the assertion to one request (operation, method, path
//! with query, the body's SHA-256, request id) and expire after
//! [`ASSERTION_TTL_SECS`], so a captured assertion is useless for any other
//! call, route or resource. Every header in the `x-pgw-` namespace is
//! reserved: the gateway strips whatever a client sent there.

use crate::claims::{ClaimsCodec, ClaimsError};
use crate::filter::{Filter, ListScope};
use crate::json::JsonObject;
use crate::refs::EntityRef;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt;

/// The header carrying the assertion.
pub const HEADER: &str = "x-pgw-identity";
/// Headers with this prefix are the gateway's to set, never the client's.
pub const RESERVED_PREFIX: &str = "x-pgw-";
/// How long an assertion is valid after the gateway signs it.
pub const ASSERTION_TTL_SECS: i64 = 30;

const VERSION: &str = "v1";

/// What kind of principal made the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallerKind {
    /// A partner operator (person or API credential).
    Operator,
    /// A customer signing with its own credentials.
    Customer,
    /// An operator switched into a customer account (assume-role session).
    Session,
}

/// Who is calling, as the gateway established it: what the store records
/// (who set a budget, who acted in a session), never what it decides by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub kind: CallerKind,
    /// The operator id, customer id or session id.
    pub id: String,
    /// The partner the caller belongs to (an operator's, or a session operator's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    /// The customer acted upon as itself: the customer principal, or a session's customer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    /// The operator behind a session (its source identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_operator: Option<String>,
}

impl Identity {
    /// The operator responsible for the call: the operator itself or the one behind a session.
    pub fn acting_operator(&self) -> Option<&str> {
        match self.kind {
            CallerKind::Operator => Some(&self.id),
            CallerKind::Session => self.source_operator.as_deref(),
            CallerKind::Customer => None,
        }
    }

    /// The session id, when the caller is a session.
    pub fn session_id(&self) -> Option<&str> {
        (self.kind == CallerKind::Session).then_some(self.id.as_str())
    }

    /// The caller as a Cedar principal.
    pub fn principal(&self) -> EntityRef {
        match self.kind {
            CallerKind::Operator => EntityRef::Operator(self.id.as_str().into()),
            CallerKind::Customer => EntityRef::Customer(self.id.as_str().into()),
            CallerKind::Session => EntityRef::Session(self.id.as_str().into()),
        }
    }
}

/// The signed claims. The gateway signs them borrowing what the request
/// already holds ([`Claims::write_json`]); the store reads them owned
/// (`Claims<'static>`), as serde derives.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Claims<'a> {
    #[serde(flatten)]
    pub identity: Cow<'a, Identity>,
    /// The catalog operation decided (`UpdateSubCustomerBudget`).
    pub operation: Cow<'a, str>,
    /// The request this assertion is for.
    pub method: Cow<'a, str>,
    /// Path and query, exactly as forwarded.
    pub target: Cow<'a, str>,
    /// Hex SHA-256 of the body, exactly as forwarded.
    pub body_sha256: Cow<'a, str>,
    /// The resources every check of the operation allowed, in order.
    #[serde(default, skip_serializing_if = "<[_]>::is_empty")]
    pub resources: Cow<'a, [EntityRef]>,
    /// For a list: which items it may hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListScope>,
    /// For a list searched by a masked contact field: the items whose field
    /// the caller may reveal, the only ones the search may match (R2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub searchable: Option<Filter>,
    /// Answer contact fields in clear: the gateway masks again every item
    /// whose reveal the policies deny.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reveal: bool,
    pub request_id: Cow<'a, str>,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

impl Claims<'_> {
    /// The claims as the JSON object the store reads: the identity's fields
    /// first, then the request's, optional ones only when there. Written
    /// field by field (`crate::json`): serde's path through the flattened
    /// identity, a map with every key escaped, was a visible part of each
    /// request's cost.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let mut o = JsonObject::new(out);
        let who = &*self.identity;
        o.value("kind", &who.kind)?;
        o.text("id", Some(&who.id));
        for (key, value) in [
            ("partner", &who.partner),
            ("customer", &who.customer),
            ("source_operator", &who.source_operator),
        ] {
            if let Some(value) = value {
                o.text(key, Some(value));
            }
        }
        o.text("operation", Some(&self.operation));
        o.text("method", Some(&self.method));
        o.text("target", Some(&self.target));
        o.text("body_sha256", Some(&self.body_sha256));
        if !self.resources.is_empty() {
            o.value("resources", &self.resources)?;
        }
        if let Some(list) = &self.list {
            o.value("list", list)?;
        }
        if let Some(searchable) = &self.searchable {
            o.value("searchable", searchable)?;
        }
        if self.reveal {
            o.value("reveal", &true)?;
        }
        o.text("request_id", Some(&self.request_id));
        o.value("exp", &self.exp)?;
        o.end();
        Ok(())
    }
}

/// The request an assertion is checked against.
#[derive(Clone, Copy, Debug)]
pub struct Bound<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub body: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AssertionError {
    #[error("no identity assertion")]
    Missing,
    #[error("malformed identity assertion")]
    Malformed,
    #[error("identity assertion signature does not verify")]
    BadSignature,
    #[error("identity assertion expired")]
    Expired,
    #[error("identity assertion is for another request")]
    WrongRequest,
}

/// The shared secret between gateway and domain store, as the codec of
/// assertions keyed with it once. `Debug` hides it.
#[derive(Clone)]
pub struct AssertionKey(ClaimsCodec);

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AssertionKey(..)")
    }
}

impl AssertionKey {
    /// At least 32 bytes, so the HMAC key has full strength.
    pub fn new(bytes: Vec<u8>) -> Result<Self, AssertionError> {
        if bytes.len() < 32 {
            return Err(AssertionError::Malformed);
        }
        Ok(Self(ClaimsCodec::new(bytes, VERSION)))
    }

    /// From configuration text: base64 of at least 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, AssertionError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| AssertionError::Malformed)?;
        Self::new(bytes)
    }

    /// A fresh random key, for a gateway and store running in one process.
    pub fn random() -> Self {
        use rand::RngCore;
        let mut bytes = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(ClaimsCodec::new(bytes, VERSION))
    }

    /// Signs claims into the header value.
    pub fn sign(&self, claims: &Claims<'_>) -> String {
        let mut json = Vec::with_capacity(1024);
        claims
            .write_json(&mut json)
            .expect("claims serialize into memory");
        self.0.sign_json(&json)
    }

    /// Verifies a header value for the request `bound` at time `now` (Unix seconds).
    pub fn verify(
        &self,
        header: Option<&str>,
        bound: Bound,
        now: i64,
    ) -> Result<Claims<'static>, AssertionError> {
        let header = header.ok_or(AssertionError::Missing)?;
        let claims: Claims = self.0.open(header).map_err(|e| match e {
            ClaimsError::Malformed => AssertionError::Malformed,
            ClaimsError::BadSignature => AssertionError::BadSignature,
        })?;
        if claims.exp < now {
            return Err(AssertionError::Expired);
        }
        if claims.method != bound.method
            || claims.target != bound.target
            || claims.body_sha256 != crate::signing::sha256_hex(bound.body)
        {
            return Err(AssertionError::WrongRequest);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;

    const TARGET: &str = "/v2/partners/sub-customers/budget?customer_id=c-1";
    const BODY: &[u8] = b"{}";

    fn claims(exp: i64) -> Claims<'static> {
        Claims {
            identity: Cow::Owned(Identity {
                kind: CallerKind::Operator,
                id: "op-1".into(),
                partner: Some("dist-a".into()),
                customer: None,
                source_operator: None,
            }),
            operation: "ShowSubCustomerBudget".into(),
            method: "GET".into(),
            target: TARGET.into(),
            body_sha256: crate::signing::sha256_hex(BODY).into(),
            resources: vec![EntityRef::Customer("c-1".into())].into(),
            list: None,
            searchable: None,
            reveal: false,
            request_id: "req-1".into(),
            exp,
        }
    }

    fn bound<'a>(method: &'a str, target: &'a str, body: &'a [u8]) -> Bound<'a> {
        Bound {
            method,
            target,
            body,
        }
    }

    /// The hand-written claims read back as serde reads them, every
    /// optional field there or not, odd text escaped.
    #[test]
    fn claims_are_written_as_the_store_reads_them() {
        let bare = Claims {
            identity: Cow::Owned(Identity {
                kind: CallerKind::Customer,
                id: "c\"1\\".into(),
                partner: None,
                customer: Some("c\"1\\".into()),
                source_operator: None,
            }),
            resources: Vec::new().into(),
            ..claims(7)
        };
        let full = Claims {
            identity: Cow::Owned(Identity {
                kind: CallerKind::Session,
                id: "s-1".into(),
                partner: Some("dist-a".into()),
                customer: Some("c-1".into()),
                source_operator: Some("op-1".into()),
            }),
            target: "/v2/x?q=a\u{1}b\"c".into(),
            resources: vec![
                EntityRef::Customer("c-1".into()),
                EntityRef::Order("o\"2".into()),
            ]
            .into(),
            list: Some(ListScope::Decided {
                ids: vec!["c-1".into()],
                total: 3,
            }),
            searchable: Some(Filter::Contains {
                path: vec!["contacts".into()],
                value: "x".into(),
            }),
            reveal: true,
            ..claims(8)
        };
        for claims in [claims(6), bare, full] {
            let mut json = Vec::new();
            claims.write_json(&mut json).unwrap();
            let read: Claims = serde_json::from_slice(&json)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
            assert_eq!(read, claims);
        }
    }

    #[test]
    fn verifies_what_it_signed() {
        let key = AssertionKey::random();
        let header = key.sign(&claims(100));
        let got = key
            .verify(Some(&header), bound("GET", TARGET, BODY), 90)
            .unwrap();
        assert_eq!(got, claims(100));
    }

    #[test]
    fn refuses_missing_forged_expired_and_replayed() {
        let key = AssertionKey::random();
        let header = key.sign(&claims(100));
        let ok = bound("GET", TARGET, BODY);
        assert_eq!(key.verify(None, ok, 90), Err(AssertionError::Missing));
        assert_eq!(
            key.verify(Some("v1.e30"), ok, 90),
            Err(AssertionError::Malformed)
        );
        let other = AssertionKey::random();
        assert_eq!(
            other.verify(Some(&header), ok, 90),
            Err(AssertionError::BadSignature)
        );
        // Tampering with the claims breaks the signature.
        let (_, rest) = header.split_once('.').unwrap();
        let (_, sig) = rest.rsplit_once('.').unwrap();
        let mut forged = claims(100);
        forged.resources = vec![EntityRef::Customer("c-2".into())].into();
        let mut forged_json = Vec::new();
        forged.write_json(&mut forged_json).unwrap();
        let forged_payload = B64.encode(forged_json);
        let forged_header = format!("v1.{forged_payload}.{sig}");
        assert_eq!(
            key.verify(Some(&forged_header), ok, 90),
            Err(AssertionError::BadSignature)
        );
        assert_eq!(
            key.verify(Some(&header), ok, 101),
            Err(AssertionError::Expired)
        );
        // Replayed on another method, query, path or body.
        for wrong in [
            bound("POST", TARGET, BODY),
            bound(
                "GET",
                "/v2/partners/sub-customers/budget?customer_id=c-2",
                BODY,
            ),
            bound("GET", "/v2/partners/sub-customers/budget", BODY),
            bound("GET", TARGET, b"{\"x\": 1}"),
        ] {
            assert_eq!(
                key.verify(Some(&header), wrong, 90),
                Err(AssertionError::WrongRequest),
                "{wrong:?}"
            );
        }
    }

    #[test]
    fn short_keys_are_refused() {
        assert!(AssertionKey::new(vec![1; 16]).is_err());
    }
}
