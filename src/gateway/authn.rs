//! Stage 2, authenticate: who is calling, and nothing more. `SDK-HMAC-SHA256`
//! AK/SK signatures (docs/wire-format.md §1.5), `X-Auth-Token` tokens, or a
//! session's temporary credentials. A valid credential of a disabled
//! operator, or of an ended or expired session, still says who is calling:
//! whether it may act is R12, decided by its policy (and visible in the
//! decision record as the determining policy). Every failure is the same 401
//! to the client; the reason goes to the log.

use super::normalize::CanonicalTarget;
use super::tokens::TokenSigner;
use super::GatewayError;
use crate::assertion::{CallerKind, Identity};
use crate::caller::{AuthMethod, AuthReason, Caller};
use crate::entities::{EntityLoader, PrincipalRow};
use crate::ids::SessionId;
use crate::model::PrincipalKind;
use crate::refs::EntityRef;
use crate::sessions::SessionKeys;
use crate::signing::{self, AuthorizationHeader};
use crate::store::CredentialRecord;
use chrono::{DateTime, Utc};
use http::header::{AsHeaderName, HeaderName};
use http::request::Parts;
use smallvec::SmallVec;
use std::sync::Arc;

/// Requests dated further than this from the gateway's clock are refused.
pub const CLOCK_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

// Header names built once: a lookup by `&str` parses the name first.
pub const TOKEN_HEADER: HeaderName = HeaderName::from_static("x-auth-token");
pub const SECURITY_TOKEN_HEADER: HeaderName = HeaderName::from_static("x-security-token");
pub const DOMAIN_ID_HEADER: HeaderName = HeaderName::from_static("x-domain-id");
const CONTENT_SHA256_HEADER: HeaderName = HeaderName::from_static("x-sdk-content-sha256");

/// What [`Authenticator::begin`] learned from the request head (whose
/// headers it borrows).
pub enum HeadChecked<'a> {
    /// A token: the caller is known, the body plays no part.
    Caller(Caller),
    /// A signature whose key is known; it covers the body, not yet read.
    Signature(PendingSignature<'a>),
}

pub struct PendingSignature<'a> {
    auth: AuthorizationHeader<'a>,
    /// The canonical request but its last line, the body hash.
    canonical_head: signing::CanonicalHash,
    date: &'a str,
    domain_id: Option<&'a str>,
    key: SigningKey,
}

enum SigningKey {
    Credential(Arc<CredentialRecord>),
    /// A session's temporary access key, its security token verified.
    Session(SessionId),
}

pub struct Authenticator {
    /// The store, and principals' rows cached while a change would be heard at once.
    entities: Arc<EntityLoader>,
    tokens: TokenSigner,
    sessions: SessionKeys,
}

fn unauthenticated(reason: AuthReason, detail: &'static str) -> GatewayError {
    GatewayError::unauthenticated(reason, detail)
}

impl Authenticator {
    pub fn new(entities: Arc<EntityLoader>, tokens: TokenSigner, sessions: SessionKeys) -> Self {
        Authenticator {
            entities,
            tokens,
            sessions,
        }
    }

    pub fn tokens(&self) -> &TokenSigner {
        &self.tokens
    }

    pub fn sessions(&self) -> &SessionKeys {
        &self.sessions
    }

    /// Authenticates as far as the request head allows, before any body byte
    /// is read: a token is checked in full; a signature's header, date and
    /// key (an unknown access key or a bad security token is refused here),
    /// leaving only the body hash to [`Authenticator::finish`].
    pub async fn begin<'a>(
        &self,
        parts: &'a Parts,
        target: &CanonicalTarget,
        now: DateTime<Utc>,
    ) -> Result<HeadChecked<'a>, GatewayError> {
        let authorization = single_header(parts, http::header::AUTHORIZATION)?;
        let token = single_header(parts, &TOKEN_HEADER)?;
        match (authorization, token) {
            (Some(auth), None) => self
                .begin_signature(parts, target, auth, now)
                .await
                .map(HeadChecked::Signature),
            (None, Some(token)) => {
                let token = self.tokens.verify(token, now)?;
                self.principal(
                    token.kind,
                    &token.id,
                    AuthMethod::Token(token.issued_at),
                    None,
                    Some(&token.generation),
                )
                .await
                .map(HeadChecked::Caller)
            }
            (Some(_), Some(_)) => Err(unauthenticated(
                AuthReason::AmbiguousCredentials,
                "both a signature and a token",
            )),
            (None, None) => Err(unauthenticated(AuthReason::NoCredentials, "no credentials")),
        }
    }

    /// Completes [`Authenticator::begin`] once the body is read.
    pub async fn finish(
        &self,
        checked: HeadChecked<'_>,
        body: &[u8],
    ) -> Result<Caller, GatewayError> {
        let pending = match checked {
            HeadChecked::Caller(caller) => return Ok(caller),
            HeadChecked::Signature(pending) => pending,
        };
        // A failure names the key it was signed with, for support.
        let access = pending.auth.access;
        self.verify_signature(pending, body)
            .await
            .map_err(|e| e.with_access_key(access))
    }

    async fn verify_signature(
        &self,
        pending: PendingSignature<'_>,
        body: &[u8],
    ) -> Result<Caller, GatewayError> {
        let head = pending.canonical_head;
        let expected = |secret: &str| signing::expected_signature(secret, pending.date, head, body);
        let expected = match &pending.key {
            SigningKey::Credential(credential) => expected(&credential.secret),
            SigningKey::Session(_) => expected(&self.sessions.secret_for(pending.auth.access)),
        };
        if !signing::signature_matches(&expected, pending.auth.signature) {
            return Err(unauthenticated(
                AuthReason::BadSignature,
                "signature mismatch",
            ));
        }
        match pending.key {
            SigningKey::Credential(credential) => {
                self.principal(
                    credential.principal_kind,
                    &credential.principal_id,
                    AuthMethod::Signature,
                    pending.domain_id,
                    None,
                )
                .await
            }
            SigningKey::Session(session_id) => {
                self.session_caller(&pending.auth, &session_id, pending.domain_id)
                    .await
            }
        }
    }

    async fn begin_signature<'a>(
        &self,
        parts: &'a Parts,
        target: &CanonicalTarget,
        authorization: &'a str,
        now: DateTime<Utc>,
    ) -> Result<PendingSignature<'a>, GatewayError> {
        let auth = AuthorizationHeader::parse(authorization).ok_or(unauthenticated(
            AuthReason::MalformedCredentials,
            "malformed Authorization header",
        ))?;
        // A failure names the key it was signed with, for support.
        self.pending_signature(parts, target, auth, now)
            .await
            .map_err(|e| e.with_access_key(auth.access))
    }

    async fn pending_signature<'a>(
        &self,
        parts: &'a Parts,
        target: &CanonicalTarget,
        auth: AuthorizationHeader<'a>,
        now: DateTime<Utc>,
    ) -> Result<PendingSignature<'a>, GatewayError> {
        let is_signed = |name: &str| auth.signed_headers().any(|h| h == name);
        if !is_signed("host") || !is_signed("x-sdk-date") {
            return Err(unauthenticated(
                AuthReason::UnsignedHeader,
                "host and x-sdk-date must be signed",
            ));
        }
        // Headers the SDK always signs when it sends them: unsigned, they could be swapped.
        for name in [SECURITY_TOKEN_HEADER, DOMAIN_ID_HEADER] {
            if parts.headers.contains_key(&name) && !is_signed(name.as_str()) {
                return Err(unauthenticated(
                    AuthReason::UnsignedHeader,
                    "a credential header is present but not signed",
                ));
            }
        }
        if parts.headers.contains_key(CONTENT_SHA256_HEADER) {
            return Err(unauthenticated(
                AuthReason::UnsignedPayload,
                "unsigned payloads are not accepted",
            ));
        }

        let mut headers: SmallVec<[(&str, &str); 8]> = SmallVec::new();
        for name in auth.signed_headers() {
            let value = match (name, single_header(parts, name)?) {
                (_, Some(v)) => v,
                // HTTP/2 carries the host in :authority, which hyper puts in the URI.
                ("host", None) => {
                    parts
                        .uri
                        .authority()
                        .map(|a| a.as_str())
                        .ok_or(unauthenticated(
                            AuthReason::MissingHeader,
                            "signed host header missing",
                        ))?
                }
                (_, None) => {
                    return Err(unauthenticated(
                        AuthReason::MissingHeader,
                        "a signed header is missing",
                    ))
                }
            };
            headers.push((name, value));
        }
        let date = single_header(parts, "x-sdk-date")?.ok_or(unauthenticated(
            AuthReason::MissingHeader,
            "x-sdk-date missing",
        ))?;
        let signed_at = signing::parse_date(date).ok_or(unauthenticated(
            AuthReason::MalformedDate,
            "malformed x-sdk-date",
        ))?;
        if (now - signed_at).abs() > CLOCK_WINDOW {
            return Err(unauthenticated(
                AuthReason::ClockSkew,
                "x-sdk-date outside the clock window",
            ));
        }
        // All but the body hash, the canonical request's last line: `finish` adds it.
        let mut canonical_head = signing::CanonicalHash::default();
        signing::write_canonical_request(
            &mut canonical_head,
            parts.method.as_str(),
            target.path(),
            target.query(),
            &headers,
            "",
        )
        .expect("a hash takes any text");
        let domain_id = single_header(parts, &DOMAIN_ID_HEADER)?;

        let key = match single_header(parts, &SECURITY_TOKEN_HEADER)? {
            Some(token) => SigningKey::Session(
                self.sessions
                    .verify_token(token, auth.access, now.timestamp())
                    .ok_or(unauthenticated(
                        AuthReason::BadSecurityToken,
                        "invalid or expired security token",
                    ))?,
            ),
            None => SigningKey::Credential(self.credential(auth.access).await?),
        };
        Ok(PendingSignature {
            canonical_head,
            date,
            domain_id,
            key,
            auth,
        })
    }

    /// Temporary credentials of an assume-role session: the token (checked
    /// by `begin`) must be genuine, unexpired and bound to the signing access
    /// key, and the signature made with the session's secret. Whether the
    /// session may still act (ended, expired, its operator or authorization
    /// gone) is R12.
    async fn session_caller(
        &self,
        auth: &AuthorizationHeader<'_>,
        session_id: &SessionId,
        domain_id: Option<&str>,
    ) -> Result<Caller, GatewayError> {
        let lookup =
            |e: crate::store::StoreError| GatewayError::Unavailable(format!("session lookup: {e}"));
        let session = self
            .entities
            .store()
            .session(session_id)
            .await
            .map_err(lookup)?
            .ok_or(unauthenticated(
                AuthReason::UnknownSession,
                "unknown session",
            ))?;
        if session.access_key != auth.access {
            return Err(unauthenticated(
                AuthReason::BadSecurityToken,
                "security token of another session",
            ));
        }
        if let Some(domain) = domain_id {
            if domain.trim() != session.customer.as_str() {
                return Err(unauthenticated(
                    AuthReason::DomainMismatch,
                    "x-domain-id is not the session's customer account",
                ));
            }
        }
        Ok(Caller {
            principal: EntityRef::Session(session.id.0.as_str().into()),
            identity: Identity {
                kind: CallerKind::Session,
                id: session.id.0.clone(),
                partner: Some(session.partner.0.clone()),
                customer: Some(session.customer.0.clone()),
                source_operator: Some(session.operator.0.clone()),
            },
            method: AuthMethod::Signature,
            session: Some(session.facts()),
        })
    }

    async fn credential(&self, access_key: &str) -> Result<Arc<CredentialRecord>, GatewayError> {
        self.entities
            .credential(access_key)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("credential lookup: {e}")))?
            .ok_or(unauthenticated(
                AuthReason::UnknownKey,
                "unknown access key",
            ))
    }

    /// Resolves the principal behind a credential; a vanished principal does
    /// not authenticate (a disabled operator does: R12 denies it). `domain_id`,
    /// when the client sent one, must name the caller's own account (partner
    /// or customer). A token names the `generation` of the row it was
    /// issued to: a row created since under the same id is another principal.
    pub async fn principal(
        &self,
        kind: PrincipalKind,
        id: &str,
        method: AuthMethod,
        domain_id: Option<&str>,
        generation: Option<&str>,
    ) -> Result<Caller, GatewayError> {
        let lookup = |e: crate::store::StoreError| {
            GatewayError::Unavailable(format!("principal lookup: {e}"))
        };
        let entity = match kind {
            PrincipalKind::Operator => EntityRef::Operator(id.into()),
            PrincipalKind::Customer => EntityRef::Customer(id.into()),
        };
        let row = self
            .entities
            .principal(&entity)
            .await
            .map_err(lookup)?
            .ok_or(unauthenticated(
                AuthReason::UnknownPrincipal,
                "credential of a vanished principal",
            ))?;
        // A token issued at or before its principal's tokens were revoked
        // (the same second too: fail closed) stays dead.
        let (revoked, current) = match &*row {
            PrincipalRow::Operator(op) => (op.tokens_not_before, &op.generation),
            PrincipalRow::Customer(customer) => (customer.tokens_not_before, &customer.generation),
        };
        if generation.is_some_and(|g| g != current.as_str()) {
            return Err(unauthenticated(
                AuthReason::RevokedToken,
                "token of a deleted principal of the same id",
            ));
        }
        if let (AuthMethod::Token(issued_at), Some(revoked)) = (method, revoked) {
            if issued_at <= revoked.timestamp() {
                return Err(unauthenticated(
                    AuthReason::RevokedToken,
                    "token issued before its principal's tokens were revoked",
                ));
            }
        }
        let caller = match &*row {
            PrincipalRow::Operator(op) => Caller {
                principal: entity,
                identity: Identity {
                    kind: CallerKind::Operator,
                    id: op.id.0.clone(),
                    partner: Some(op.partner.0.clone()),
                    customer: None,
                    source_operator: None,
                },
                method,
                session: None,
            },
            PrincipalRow::Customer(customer) => Caller {
                principal: entity,
                identity: Identity {
                    kind: CallerKind::Customer,
                    id: customer.id.0.clone(),
                    partner: None,
                    customer: Some(customer.id.0.clone()),
                    source_operator: None,
                },
                method,
                session: None,
            },
        };
        if let Some(domain) = domain_id {
            let account = caller
                .identity
                .partner
                .as_deref()
                .or(caller.identity.customer.as_deref());
            if Some(domain.trim()) != account {
                return Err(unauthenticated(
                    AuthReason::DomainMismatch,
                    "x-domain-id is not the caller's account",
                ));
            }
        }
        Ok(caller)
    }
}

/// A header's value when it appears at most once; twice is ambiguous (401).
fn single_header(parts: &Parts, name: impl AsHeaderName) -> Result<Option<&str>, GatewayError> {
    let mut all = parts.headers.get_all(name).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(unauthenticated(
            AuthReason::AmbiguousCredentials,
            "a credential header appears twice",
        ));
    }
    first.to_str().map(Some).map_err(|_| {
        unauthenticated(
            AuthReason::MalformedCredentials,
            "a credential header is not text",
        )
    })
}
