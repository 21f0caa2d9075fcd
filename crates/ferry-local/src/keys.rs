//! Local signing keys under `$FERRY_HOME/keys`: `NAME.key` (PKCS#8 PEM, owner-only) and
//! `NAME.pub.pem`. Keys are created once and never overwritten.

use std::io::Write;
use std::path::{Path, PathBuf};

use ferry_core::keys::{Algorithm, PrivateKey, PublicKey};
use ferry_core::{Error, Result};

pub struct KeyStore {
    dir: PathBuf,
}

impl KeyStore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn private_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.key"))
    }

    pub fn public_path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.pub.pem"))
    }

    fn check_name(name: &str) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(Error::invalid(format!("invalid key name `{name}`")).hint("use letters, digits, `-` and `_`"));
        }
        Ok(())
    }

    /// Creates a new key pair; refuses to replace an existing key.
    pub fn generate(&self, name: &str, algorithm: Algorithm) -> Result<PublicKey> {
        Self::check_name(name)?;
        crate::fsutil::ensure_dir(&self.dir)?;
        let key = PrivateKey::generate(algorithm);
        let path = self.private_path(name);
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid(format!("key `{name}` already exists at `{}`", path.display()))
                    .hint("keys are never overwritten; choose another `--name` or use the existing key")
            } else {
                Error::io("create", &path, &e)
            }
        })?;
        let pem = key.to_pkcs8_pem()?;
        f.write_all(pem.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| {
            let _ = std::fs::remove_file(&path);
            Error::io("write", &path, &e)
        })?;
        let public = key.public_key();
        crate::fsutil::write_replace(&self.public_path(name), public.to_pem()?.as_bytes())?;
        Ok(public)
    }

    pub fn load(&self, name: &str) -> Result<PrivateKey> {
        Self::check_name(name)?;
        let path = self.private_path(name);
        let pem = std::fs::read_to_string(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::invalid(format!("signing key `{name}` not found at `{}`", path.display()))
                    .hint(format!("create it with `ferry keygen --name {name}`, or set `FERRY_HOME` to where it lives"))
            } else {
                Error::io("read", &path, &e)
            }
        })?;
        PrivateKey::from_pkcs8_pem(&pem).map_err(|e| Error::invalid(format!("`{}`: {}", path.display(), e.message)))
    }
}

/// Reads a pinned public key (SPKI PEM) from `path`.
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        Error::invalid(format!("cannot read the pinned public key `{}`: {e}", path.display()))
            .hint("export it with `ferry key export --name NAME --out DIR`, then point `signing.public_key` at the `.pem`")
    })?;
    PublicKey::from_pem(&pem).map_err(|e| Error::invalid(format!("`{}`: {}", path.display(), e.message)))
}
