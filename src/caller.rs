//! Who is calling: the principal a request authenticated as, how it proved
//! it, and, when it could not, why (a closed set of reasons). The gateway's
//! authentication makes these; the authorizer, the decision record and the
//! admin API read them.

use crate::assertion::Identity;
use crate::catalog::CallerRefs;
use crate::model::SessionFacts;
use crate::refs::EntityRef;

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Signature,
    /// An `X-Auth-Token`, issued at this Unix time.
    Token(i64),
}

impl AuthMethod {
    /// `signature` or `token`: the policies' `context.auth_method` and the
    /// decision record's `auth`.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Signature => "signature",
            AuthMethod::Token(_) => "token",
        }
    }
}

/// An authenticated caller: the Cedar principal and the identity asserted upstream.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: EntityRef,
    pub identity: Identity,
    pub method: AuthMethod,
    /// For an assume-role session: what the policies see of it.
    pub session: Option<SessionFacts>,
}

impl Caller {
    /// What the catalog needs to know of the caller to name targets.
    pub fn refs(&self) -> CallerRefs<'_> {
        CallerRefs {
            principal: &self.principal,
            own_customer: self.identity.customer.as_deref(),
            auth_method: self.method.name(),
        }
    }
}

/// Why authentication failed. The client always sees the same 401 (no
/// oracle); support finds this in the request's decision record and log line
/// by the `X-Request-Id` the client got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthFailure {
    pub reason: AuthReason,
    /// One sentence for the log, naming the failed check.
    pub detail: &'static str,
    /// The access key the request was signed with, when it named one (an
    /// identifier, not a secret; the signature and tokens are never kept).
    pub access_key: Option<String>,
}

/// The reason codes of a 401, a closed set (a metric label): see README.md
/// "Diagnosing a 401".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthReason {
    /// Neither a signature nor a token.
    NoCredentials,
    /// A signature and a token, or a credential header twice.
    AmbiguousCredentials,
    /// An `Authorization` header that is not `SDK-HMAC-SHA256`, or not text.
    MalformedCredentials,
    /// `host` or `x-sdk-date` not signed, or a credential header sent unsigned.
    UnsignedHeader,
    /// A header the signature names is absent.
    MissingHeader,
    /// `X-Sdk-Content-Sha256` (unsigned payloads) is not accepted.
    UnsignedPayload,
    /// `X-Sdk-Date` is not `YYYYMMDDTHHMMSSZ`.
    MalformedDate,
    /// `X-Sdk-Date` more than 15 minutes from the gateway's clock.
    ClockSkew,
    /// No credential has this access key (never had, or revoked).
    UnknownKey,
    /// The signature does not match (wrong secret, or the request changed).
    BadSignature,
    /// `X-Domain-Id` is not the caller's own account.
    DomainMismatch,
    /// An `X-Auth-Token` that is malformed or not ours.
    BadToken,
    /// An `X-Auth-Token` past its expiry.
    ExpiredToken,
    /// An `X-Auth-Token` issued before its principal's tokens were revoked.
    RevokedToken,
    /// A session's `X-Security-Token` that is invalid, expired or of another key.
    BadSecurityToken,
    /// A security token naming a session that does not exist.
    UnknownSession,
    /// A credential whose operator or customer no longer exists.
    UnknownPrincipal,
}

impl AuthReason {
    /// The code in decision records and the `reason` metric label.
    pub fn code(self) -> &'static str {
        match self {
            AuthReason::NoCredentials => "no_credentials",
            AuthReason::AmbiguousCredentials => "ambiguous_credentials",
            AuthReason::MalformedCredentials => "malformed_credentials",
            AuthReason::UnsignedHeader => "unsigned_header",
            AuthReason::MissingHeader => "missing_header",
            AuthReason::UnsignedPayload => "unsigned_payload",
            AuthReason::MalformedDate => "malformed_date",
            AuthReason::ClockSkew => "clock_skew",
            AuthReason::UnknownKey => "unknown_key",
            AuthReason::BadSignature => "bad_signature",
            AuthReason::DomainMismatch => "domain_mismatch",
            AuthReason::BadToken => "bad_token",
            AuthReason::ExpiredToken => "expired_token",
            AuthReason::RevokedToken => "revoked_token",
            AuthReason::BadSecurityToken => "bad_security_token",
            AuthReason::UnknownSession => "unknown_session",
            AuthReason::UnknownPrincipal => "unknown_principal",
        }
    }
}
