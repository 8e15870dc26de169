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
use crate::catalog::CallerRefs;
use crate::entities::{EntityLoader, PrincipalRow, SessionFacts};
use crate::ids::SessionId;
use crate::model::PrincipalKind;
use crate::policy::EntityRef;
use crate::sessions::SessionKeys;
use crate::signing::{self, AuthorizationHeader};
use crate::store::CredentialRecord;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::request::Parts;
use std::sync::Arc;
use std::time::Duration;

/// Requests dated further than this from the gateway's clock are refused.
pub const CLOCK_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

pub const TOKEN_HEADER: &str = "x-auth-token";
pub const SECURITY_TOKEN_HEADER: &str = "x-security-token";
pub const DOMAIN_ID_HEADER: &str = "x-domain-id";

/// How the caller proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Signature,
    Token,
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
            auth_method: match self.method {
                AuthMethod::Signature => "signature",
                AuthMethod::Token => "token",
            },
        }
    }
}

/// What [`Authenticator::begin`] learned from the request head.
pub enum HeadChecked {
    /// A token: the caller is known, the body plays no part.
    Caller(Caller),
    /// A signature whose key is known; it covers the body, not yet read.
    Signature(PendingSignature),
}

pub struct PendingSignature {
    auth: AuthorizationHeader,
    /// Without its last line, the body hash.
    canonical_request: String,
    date: String,
    domain_id: Option<String>,
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
    /// Unsealed credentials by access key: a signature check needs the
    /// secret, and unsealing on every request would cost a database read and
    /// a decryption. Entries live briefly; credentials change only by import.
    credentials: moka::sync::Cache<String, Arc<CredentialRecord>>,
}

fn unauthenticated(reason: &'static str) -> GatewayError {
    GatewayError::Unauthenticated(reason)
}

impl Authenticator {
    pub fn new(entities: Arc<EntityLoader>, tokens: TokenSigner, sessions: SessionKeys) -> Self {
        Authenticator {
            entities,
            tokens,
            sessions,
            credentials: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(60))
                .build(),
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
    pub async fn begin(
        &self,
        parts: &Parts,
        target: &CanonicalTarget,
        now: DateTime<Utc>,
    ) -> Result<HeadChecked, GatewayError> {
        let authorization = single_header(parts, "authorization")?;
        let token = single_header(parts, TOKEN_HEADER)?;
        match (authorization, token) {
            (Some(auth), None) => self
                .begin_signature(parts, target, auth, now)
                .await
                .map(HeadChecked::Signature),
            (None, Some(token)) => {
                let (kind, id) = self.tokens.verify(token, now)?;
                self.principal(kind, &id, AuthMethod::Token, None)
                    .await
                    .map(HeadChecked::Caller)
            }
            (Some(_), Some(_)) => Err(unauthenticated("both a signature and a token")),
            (None, None) => Err(unauthenticated("no credentials")),
        }
    }

    /// Completes [`Authenticator::begin`] once the body is read.
    pub async fn finish(&self, checked: HeadChecked, body: &[u8]) -> Result<Caller, GatewayError> {
        let pending = match checked {
            HeadChecked::Caller(caller) => return Ok(caller),
            HeadChecked::Signature(pending) => pending,
        };
        let creq = pending.canonical_request + &signing::sha256_hex(body);
        let string_to_sign = signing::string_to_sign(&pending.date, &creq);
        let secret = match &pending.key {
            SigningKey::Credential(credential) => credential.secret.clone(),
            SigningKey::Session(_) => self.sessions.secret_for(&pending.auth.access),
        };
        let expected = signing::signature(&secret, &string_to_sign);
        if !signing::signature_matches(&expected, &pending.auth.signature) {
            return Err(unauthenticated("signature mismatch"));
        }
        match pending.key {
            SigningKey::Credential(credential) => {
                self.principal(
                    credential.principal_kind,
                    &credential.principal_id,
                    AuthMethod::Signature,
                    pending.domain_id.as_deref(),
                )
                .await
            }
            SigningKey::Session(session_id) => {
                self.session_caller(&pending.auth, &session_id, pending.domain_id.as_deref())
                    .await
            }
        }
    }

    async fn begin_signature(
        &self,
        parts: &Parts,
        target: &CanonicalTarget,
        authorization: &str,
        now: DateTime<Utc>,
    ) -> Result<PendingSignature, GatewayError> {
        let auth = AuthorizationHeader::parse(authorization)
            .ok_or(unauthenticated("malformed Authorization header"))?;
        let signed = &auth.signed_headers;
        let is_signed = |name: &str| signed.iter().any(|h| h == name);
        if !is_signed("host") || !is_signed("x-sdk-date") {
            return Err(unauthenticated("host and x-sdk-date must be signed"));
        }
        // Headers the SDK always signs when it sends them: unsigned, they could be swapped.
        for name in [SECURITY_TOKEN_HEADER, DOMAIN_ID_HEADER] {
            if parts.headers.contains_key(name) && !is_signed(name) {
                return Err(unauthenticated(
                    "a credential header is present but not signed",
                ));
            }
        }
        if parts.headers.contains_key("x-sdk-content-sha256") {
            return Err(unauthenticated("unsigned payloads are not accepted"));
        }

        let mut values = Vec::with_capacity(signed.len());
        for name in signed {
            let value = match (name.as_str(), single_header(parts, name)?) {
                (_, Some(v)) => v.to_owned(),
                // HTTP/2 carries the host in :authority, which hyper puts in the URI.
                ("host", None) => parts
                    .uri
                    .authority()
                    .map(|a| a.as_str().to_owned())
                    .ok_or(unauthenticated("signed host header missing"))?,
                (_, None) => return Err(unauthenticated("a signed header is missing")),
            };
            values.push(value);
        }
        let date =
            single_header(parts, "x-sdk-date")?.ok_or(unauthenticated("x-sdk-date missing"))?;
        let signed_at = NaiveDateTime::parse_from_str(date, signing::DATE_FORMAT)
            .map_err(|_| unauthenticated("malformed x-sdk-date"))?
            .and_utc();
        if (now - signed_at).abs() > CLOCK_WINDOW {
            return Err(unauthenticated("x-sdk-date outside the clock window"));
        }
        let headers: Vec<(&str, &str)> = signed
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str))
            .collect();
        // All but the body hash, the canonical request's last line: `finish` appends it.
        let canonical_request = signing::canonical_request(
            parts.method.as_str(),
            &target.path,
            &target.query,
            &headers,
            "",
        );
        let domain_id = single_header(parts, DOMAIN_ID_HEADER)?.map(str::to_owned);

        let key = match single_header(parts, SECURITY_TOKEN_HEADER)? {
            Some(token) => SigningKey::Session(
                self.sessions
                    .verify_token(token, &auth.access, now.timestamp())
                    .ok_or(unauthenticated("invalid or expired security token"))?,
            ),
            None => SigningKey::Credential(self.credential(&auth.access).await?),
        };
        Ok(PendingSignature {
            canonical_request,
            date: date.to_owned(),
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
        auth: &AuthorizationHeader,
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
            .ok_or(unauthenticated("unknown session"))?;
        if session.access_key != auth.access {
            return Err(unauthenticated("security token of another session"));
        }
        if let Some(domain) = domain_id {
            if domain.trim() != session.customer.as_str() {
                return Err(unauthenticated(
                    "x-domain-id is not the session's customer account",
                ));
            }
        }
        Ok(Caller {
            principal: EntityRef::Session(session.id.0.clone()),
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
        if let Some(found) = self.credentials.get(access_key) {
            return Ok(found);
        }
        let record = self
            .entities
            .store()
            .credential(access_key)
            .await
            .map_err(|e| GatewayError::Unavailable(format!("credential lookup: {e}")))?
            .ok_or(unauthenticated("unknown access key"))?;
        let record = Arc::new(record);
        self.credentials
            .insert(access_key.to_owned(), record.clone());
        Ok(record)
    }

    /// Resolves the principal behind a credential; a vanished principal does
    /// not authenticate (a disabled operator does: R12 denies it). `domain_id`,
    /// when the client sent one, must name the caller's own account (partner
    /// or customer).
    pub async fn principal(
        &self,
        kind: PrincipalKind,
        id: &str,
        method: AuthMethod,
        domain_id: Option<&str>,
    ) -> Result<Caller, GatewayError> {
        let lookup = |e: crate::store::StoreError| {
            GatewayError::Unavailable(format!("principal lookup: {e}"))
        };
        let entity = match kind {
            PrincipalKind::Operator => EntityRef::Operator(id.to_owned()),
            PrincipalKind::Customer => EntityRef::Customer(id.to_owned()),
        };
        let row = self
            .entities
            .principal(&entity)
            .await
            .map_err(lookup)?
            .ok_or(unauthenticated("credential of a vanished principal"))?;
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
                return Err(unauthenticated("x-domain-id is not the caller's account"));
            }
        }
        Ok(caller)
    }
}

/// A header's value when it appears at most once; twice is ambiguous (401).
fn single_header<'a>(parts: &'a Parts, name: &str) -> Result<Option<&'a str>, GatewayError> {
    let mut all = parts.headers.get_all(name).iter();
    let Some(first) = all.next() else {
        return Ok(None);
    };
    if all.next().is_some() {
        return Err(unauthenticated("a credential header appears twice"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| unauthenticated("a credential header is not text"))
}
