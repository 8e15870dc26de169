//! Assume-role sessions: an operator switches into a customer account for
//! some scopes and a bounded time (docs/domain.md section 3, R8–R12), with the
//! guarantees of temporary-credential systems:
//!
//! - **Credentials** follow the cloud IAM convention: `access`, `secret`,
//!   `securitytoken`, `expires_at`. The secret is shown once and never
//!   stored: it is `HMAC(k_secret, access)` with a key derived from the master
//!   key, so the gateway recomputes it to verify a signature, and a copy of
//!   the database alone cannot sign.
//! - **The security token** is `s1.<claims>.<HMAC(k_token, claims)>`; its
//!   claims name the session and its access key, so it is tamper-evident and
//!   bound to that key: a token presented with another session's access key
//!   does not authenticate.
//! - **Revocation is immediate**: the session row is read on every request
//!   (ended or expired: 401), the operator behind it is reloaded (disabled:
//!   401), and the policies decide on fresh entities (authorization revoked
//!   or narrowed, customer frozen: 403). Writes through a gateway drop the
//!   entities they change; with PostgreSQL, triggers announce every change so
//!   that every gateway sharing the database drops its copies too
//!   ([`changes`]).

pub mod changes;

use crate::claims::ClaimsCodec;
use crate::crypto::constant_time_eq;
use crate::ids::SessionId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The keys sessions are derived and verified with. `Debug` hides them.
#[derive(Clone)]
pub struct SessionKeys {
    secret: [u8; 32],
    /// Security tokens are signed claims of kind `s1`, keyed once.
    token: ClaimsCodec,
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

#[derive(Serialize, Deserialize)]
struct TokenClaims {
    /// Session id.
    sid: String,
    /// The access key the token is bound to.
    ak: String,
    exp: i64,
}

fn mac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl SessionKeys {
    pub fn from_cipher(cipher: &crate::crypto::SecretCipher) -> SessionKeys {
        SessionKeys {
            secret: cipher.derive_key("session secret v1"),
            token: ClaimsCodec::new(cipher.derive_key("session token v1"), "s1"),
        }
    }

    /// A fresh session id and temporary access key (20 characters, as the
    /// cloud's temporary access keys).
    pub fn new_ids() -> (SessionId, String) {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        let mut rng = rand::rngs::OsRng;
        let tail: String = (0..17)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        (
            SessionId(format!("sess-{}", uuid::Uuid::new_v4().simple())),
            format!("STS{tail}"),
        )
    }

    /// The temporary secret of an access key (recomputed, never stored).
    pub fn secret_for(&self, access_key: &str) -> String {
        let raw = mac(
            &self.secret,
            format!("partner-gateway session secret\0{access_key}").as_bytes(),
        );
        B64.encode(&raw[..30])
    }

    pub fn security_token(&self, session: &SessionId, access_key: &str, expires_at: i64) -> String {
        let claims = TokenClaims {
            sid: session.0.clone(),
            ak: access_key.to_owned(),
            exp: expires_at,
        };
        self.token.sign(&claims)
    }

    /// The session a security token names, if genuine, unexpired at `now`
    /// (Unix seconds) and bound to `access_key`.
    pub fn verify_token(&self, token: &str, access_key: &str, now: i64) -> Option<SessionId> {
        let claims: TokenClaims = self.token.open(token).ok()?;
        if claims.exp <= now || !constant_time_eq(claims.ak.as_bytes(), access_key.as_bytes()) {
            return None;
        }
        Some(SessionId(claims.sid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> SessionKeys {
        SessionKeys::from_cipher(&crate::crypto::SecretCipher::from_bytes(&[5; 32]).unwrap())
    }

    #[test]
    fn tokens_are_bound_to_their_access_key_and_session() {
        let k = keys();
        let (sid, ak) = SessionKeys::new_ids();
        assert_eq!(ak.len(), 20);
        let token = k.security_token(&sid, &ak, 1_000);
        assert_eq!(k.verify_token(&token, &ak, 999), Some(sid.clone()));
        assert_eq!(k.verify_token(&token, &ak, 1_000), None, "expired");
        let (_, other_ak) = SessionKeys::new_ids();
        assert_eq!(
            k.verify_token(&token, &other_ak, 999),
            None,
            "bound to its access key"
        );
        let mut tampered = token.clone().into_bytes();
        tampered[4] ^= 1;
        assert_eq!(
            k.verify_token(&String::from_utf8_lossy(&tampered), &ak, 999),
            None
        );
        assert_eq!(
            keys().secret_for(&ak),
            k.secret_for(&ak),
            "derived, not stored"
        );
        assert_ne!(k.secret_for(&ak), k.secret_for(&other_ak));
    }
}
