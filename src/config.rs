//! Configuration shared by every command: where the database is and how
//! credential secrets are sealed at rest.

use crate::crypto::{CryptoError, SecretCipher};
use crate::store::{data_dir_for, DEFAULT_DATABASE_URL};
use std::path::PathBuf;

/// Database and master-key options (flag > environment > default).
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseArgs {
    /// sqlite://PATH (embedded default, created on first use) or postgres://...
    #[arg(long, env = "PGW_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,

    /// Base64 of the 32-byte key that seals AK/SK secrets at rest. When neither
    /// this nor --master-key-file is given, a key is generated once into
    /// `<data dir>/master.key` (mode 0600).
    #[arg(long, env = "PGW_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,

    /// File holding the master key (base64).
    #[arg(long, env = "PGW_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
}

impl DatabaseArgs {
    pub fn for_url(url: &str) -> Self {
        Self {
            database_url: url.to_owned(),
            master_key: None,
            master_key_file: None,
        }
    }

    /// The directory for generated files (master key, development certificate).
    pub fn data_dir(&self) -> PathBuf {
        data_dir_for(&self.database_url)
    }

    pub fn secret_cipher(&self) -> Result<SecretCipher, CryptoError> {
        match (&self.master_key, &self.master_key_file) {
            (Some(key), _) => SecretCipher::from_base64(key),
            (None, Some(path)) => SecretCipher::load_or_create(path),
            (None, None) => SecretCipher::load_or_create(&self.data_dir().join("master.key")),
        }
    }

    pub async fn open_store(&self) -> anyhow::Result<crate::store::Store> {
        let cipher = self.secret_cipher()?;
        Ok(crate::store::Store::connect(&self.database_url, cipher).await?)
    }
}
