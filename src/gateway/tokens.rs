//! `X-Auth-Token` tokens, as the cloud's IAM issues them: `POST /v3/auth/tokens`
//! (itself AK/SK-signed) answers 201 with the token in `X-Subject-Token`.
//!
//! A token is `t1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`, keyed
//! with a key derived from the master key (so every gateway sharing the
//! database accepts it). It is tamper-evident and expires after at most 24 h;
//! it is not stored. It says who is calling; a disabled operator's token
//! is denied everything by R12 (its policy), like the operator's own key.
//! Disabling an operator also revokes every token issued until then (its
//! `tokens_not_before`, migration 0012), so enabling it again revives none;
//! `partner-gateway tokens revoke` does the same for any principal. A token
//! also names the generation of its principal's row (migration 0015): a
//! principal deleted and created again under the same id is another one,
//! and the old tokens are refused. (Tokens issued before that migration
//! name none and are refused: their holders ask for new ones.)

use super::GatewayError;
use crate::caller::AuthReason;
use crate::claims::{ClaimsCodec, ClaimsError};
use crate::model::PrincipalKind;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::catalog::TOKEN_SECS;

#[derive(Serialize, Deserialize)]
struct TokenClaims {
    kind: PrincipalKind,
    sub: String,
    /// The generation of the principal's row it was issued to.
    #[serde(rename = "gen")]
    generation: String,
    iat: i64,
    exp: i64,
    jti: String,
}

/// Issues and verifies tokens (signed claims of kind `t1`). `Debug` hides
/// the key.
#[derive(Clone, Debug)]
pub struct TokenSigner {
    claims: ClaimsCodec,
}

impl TokenSigner {
    pub fn new(key: [u8; 32]) -> Self {
        TokenSigner {
            claims: ClaimsCodec::new(key, "t1"),
        }
    }

    /// A token for the principal, valid `lifetime_secs` from `now`.
    pub fn issue(
        &self,
        kind: PrincipalKind,
        id: &str,
        generation: &str,
        now: DateTime<Utc>,
        lifetime_secs: i64,
    ) -> (String, DateTime<Utc>) {
        let exp = now
            + chrono::Duration::seconds(
                lifetime_secs.clamp(*TOKEN_SECS.start(), *TOKEN_SECS.end()),
            );
        let claims = TokenClaims {
            kind,
            sub: id.to_owned(),
            generation: generation.to_owned(),
            iat: now.timestamp(),
            exp: exp.timestamp(),
            jti: uuid::Uuid::new_v4().simple().to_string(),
        };
        (self.claims.sign(&claims), exp)
    }

    /// The principal a token names, if it is genuine and unexpired. Whether
    /// it is still the principal's is the caller's check (the row's
    /// generation and `tokens_not_before`).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Token, GatewayError> {
        let claims: TokenClaims = self.claims.open(token).map_err(|e| {
            GatewayError::unauthenticated(
                AuthReason::BadToken,
                match e {
                    ClaimsError::Malformed => "malformed token",
                    ClaimsError::BadSignature => "token signature mismatch",
                },
            )
        })?;
        if claims.exp <= now.timestamp() || claims.exp - claims.iat > *TOKEN_SECS.end() {
            return Err(GatewayError::unauthenticated(
                AuthReason::ExpiredToken,
                "token expired",
            ));
        }
        Ok(Token {
            kind: claims.kind,
            id: claims.sub,
            generation: claims.generation,
            issued_at: claims.iat,
        })
    }
}

/// What a genuine, unexpired token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub kind: PrincipalKind,
    pub id: String,
    pub generation: String,
    pub issued_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;

    #[test]
    fn tokens_verify_until_they_expire_and_resist_tampering() {
        let signer = TokenSigner::new([3; 32]);
        let now = Utc::now();
        let (token, exp) = signer.issue(PrincipalKind::Operator, "op-1", "g1", now, 999_999);
        assert_eq!(
            exp,
            now + chrono::Duration::seconds(*TOKEN_SECS.end()),
            "capped at 24 h"
        );
        assert_eq!(
            signer.verify(&token, now).unwrap(),
            Token {
                kind: PrincipalKind::Operator,
                id: "op-1".into(),
                generation: "g1".into(),
                issued_at: now.timestamp()
            }
        );
        assert!(signer.verify(&token, exp).is_err());
        let other = TokenSigner::new([4; 32]);
        assert!(other.verify(&token, now).is_err());
        let (prefix, sig) = token.rsplit_once('.').unwrap();
        let forged_claims = B64
            .encode(br#"{"kind":"operator","sub":"op-admin","iat":0,"exp":99999999999,"jti":"x"}"#);
        assert!(signer
            .verify(&format!("t1.{forged_claims}.{sig}"), now)
            .is_err());
        assert!(signer.verify(prefix, now).is_err());
    }
}
