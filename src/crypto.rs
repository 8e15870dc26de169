//! Secret keys at rest: AK/SK secrets are sealed with AES-256-GCM under a
//! master key from configuration, with the access key as associated data so a
//! sealed secret cannot be moved to another credential row.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use std::fmt;
use std::path::Path;

const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key must be 32 bytes, base64-encoded")]
    BadMasterKey,
    #[error("sealed secret is malformed or was not sealed with this master key")]
    Unseal,
    #[error("cannot read or write the master key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
}

/// Seals and unseals credential secrets. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretCipher {
    cipher: Aes256Gcm,
    master: [u8; 32],
}

impl fmt::Debug for SecretCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretCipher(..)")
    }
}

impl SecretCipher {
    /// From a base64-encoded 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = B64
            .decode(key.trim())
            .map_err(|_| CryptoError::BadMasterKey)?;
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(key: &[u8]) -> Result<Self, CryptoError> {
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| CryptoError::BadMasterKey)?;
        let master: [u8; 32] = key.try_into().map_err(|_| CryptoError::BadMasterKey)?;
        Ok(Self { cipher, master })
    }

    /// Reads the master key file, creating it (mode 0600) with a fresh random
    /// key when it does not exist yet: the embedded default for a first run.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let io = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        let text = read_or_create_secret(path, || {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            B64.encode(key)
        })
        .map_err(io)?;
        Self::from_base64(&text)
    }

    /// Seals `secret` for the credential `access_key`: base64(nonce ‖ ciphertext).
    pub fn seal(&self, access_key: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: access_key.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        B64.encode(out)
    }

    pub fn unseal(&self, access_key: &str, sealed: &str) -> Result<String, CryptoError> {
        let bytes = B64.decode(sealed).map_err(|_| CryptoError::Unseal)?;
        if bytes.len() <= NONCE_LEN {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: access_key.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Unseal)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Unseal)
    }
}

/// The secret in `path`, or a new one from `make` written there first (mode
/// 0600, never over an existing file: two processes starting at once agree
/// on the first one written).
pub fn read_or_create_secret(
    path: &Path,
    make: impl FnOnce() -> String,
) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let secret = make();
            match write_private_file(path, &secret) {
                Ok(()) => Ok(secret),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Ok(std::fs::read_to_string(path)?.trim().to_owned())
                }
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

#[cfg(not(unix))]
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Compares two byte strings in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl SecretCipher {
    /// A key for another purpose (e.g. signing tokens), derived from the
    /// master key with HKDF-SHA256, so every gateway sharing the database and
    /// master key agrees on it without storing it anywhere.
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let mut okm = [0u8; 32];
        hkdf::Hkdf::<sha2::Sha256>::new(Some(b"partner-gateway v1"), &self.master)
            .expand(label.as_bytes(), &mut okm)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        okm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_is_bound_to_the_access_key() {
        let c = SecretCipher::from_bytes(&[7u8; 32]).unwrap();
        let sealed = c.seal("AK1", "s3cret");
        assert!(!sealed.contains("s3cret"));
        assert_eq!(c.unseal("AK1", &sealed).unwrap(), "s3cret");
        assert!(c.unseal("AK2", &sealed).is_err());
        let other = SecretCipher::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.unseal("AK1", &sealed).is_err());
    }

    #[test]
    fn master_key_is_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let a = SecretCipher::load_or_create(&path).unwrap();
        let sealed = a.seal("AK", "x");
        let b = SecretCipher::load_or_create(&path).unwrap();
        assert_eq!(b.unseal("AK", &sealed).unwrap(), "x");
    }
}
