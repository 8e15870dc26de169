//! Signed claims, the one format of the assertion the store trusts, the
//! `X-Auth-Token` and a session's security token:
//! `VERSION.base64url(JSON).base64url(HMAC-SHA256(key, "VERSION.payload"))`.
//! The version names the kind of claims, so one kind never verifies as
//! another even under one key; each kind has a key of its own besides.

use crate::crypto::constant_time_eq;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::Sha256;
use std::fmt;

/// Why signed claims were not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// Not three parts, another version, not base64 or not the claims' JSON.
    #[error("malformed")]
    Malformed,
    /// Well formed, but not signed with this key.
    #[error("bad signature")]
    BadSignature,
}

/// Signs and opens one kind of claims. `Debug` hides the key.
#[derive(Clone)]
pub struct ClaimsCodec {
    /// HMAC already keyed: its inner and outer pads are hashed once, not
    /// per message.
    keyed: Hmac<Sha256>,
    version: &'static str,
}

impl fmt::Debug for ClaimsCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClaimsCodec({}, ..)", self.version)
    }
}

impl ClaimsCodec {
    /// Claims of kind `version` (`t1`, `s1`, `v1`: no dot) under `key`.
    pub fn new(key: impl Into<Vec<u8>>, version: &'static str) -> ClaimsCodec {
        debug_assert!(!version.contains('.'));
        ClaimsCodec {
            keyed: Hmac::new_from_slice(&key.into()).expect("HMAC takes any key length"),
            version,
        }
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = self.keyed.clone();
        mac.update(data);
        mac.finalize().into_bytes().into()
    }

    /// Written into one string: the version, the payload, the signature.
    /// The JSON and the string are allocated once each, the string at its
    /// exact length (a header value takes it as it is).
    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        let mut json = Vec::with_capacity(1024);
        serde_json::to_writer(&mut json, claims).expect("claims serialize");
        self.sign_json(&json)
    }

    /// Signs claims already written as JSON.
    pub fn sign_json(&self, json: &[u8]) -> String {
        let encoded = |len| base64::encoded_len(len, false).expect("a claim's length fits");
        let mut out =
            String::with_capacity(self.version.len() + 1 + encoded(json.len()) + 1 + encoded(32));
        out.push_str(self.version);
        out.push('.');
        B64.encode_string(json, &mut out);
        let sig = self.mac(out.as_bytes());
        out.push('.');
        B64.encode_string(sig, &mut out);
        out
    }

    /// The claims `text` carries, when this key signed them as this kind.
    /// The signature is checked before the payload is read.
    pub fn open<T: DeserializeOwned>(&self, text: &str) -> Result<T, ClaimsError> {
        let (signed, sig) = text.trim().rsplit_once('.').ok_or(ClaimsError::Malformed)?;
        let payload = signed
            .strip_prefix(self.version)
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or(ClaimsError::Malformed)?;
        let sig = B64.decode(sig).map_err(|_| ClaimsError::Malformed)?;
        if !constant_time_eq(&sig, &self.mac(signed.as_bytes())) {
            return Err(ClaimsError::BadSignature);
        }
        let json = B64.decode(payload).map_err(|_| ClaimsError::Malformed)?;
        serde_json::from_slice(&json).map_err(|_| ClaimsError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_open_only_under_their_key_and_kind() {
        let codec = ClaimsCodec::new([7u8; 32], "t1");
        let text = codec.sign(&serde_json::json!({"sub": "op-1"}));
        let opened: serde_json::Value = codec.open(&text).unwrap();
        assert_eq!(opened["sub"], "op-1");
        assert_eq!(
            ClaimsCodec::new([8u8; 32], "t1").open::<serde_json::Value>(&text),
            Err(ClaimsError::BadSignature)
        );
        assert_eq!(
            ClaimsCodec::new([7u8; 32], "s1").open::<serde_json::Value>(&text),
            Err(ClaimsError::Malformed)
        );
        // A changed payload under the old signature.
        let (head, sig) = text.rsplit_once('.').unwrap();
        let forged = format!("t1.{}.{sig}", B64.encode(br#"{"sub":"op-2"}"#));
        assert_ne!(forged, format!("{head}.{sig}"));
        assert_eq!(
            codec.open::<serde_json::Value>(&forged),
            Err(ClaimsError::BadSignature)
        );
        for bad in ["", "t1", "t1.x", "t1.!.!", "t1t1.e30.x"] {
            assert!(codec.open::<serde_json::Value>(bad).is_err(), "{bad}");
        }
    }
}
