//! Signing keys (ed25519 and ECDSA P-256): generation, PKCS#8/SPKI PEM, signatures in the
//! forms independent verifiers expect (raw 64 bytes for ed25519, DER for ECDSA), and the
//! securesystemslib key id and JSON form.

use std::fmt;

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use p256::pkcs8::LineEnding;
use serde_json::{Value, json};

use crate::digest::canonical_json;
use crate::error::{Error, Result};
use crate::ids::Sha256Digest;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Algorithm {
    Ed25519,
    EcdsaP256,
}

impl std::str::FromStr for Algorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ed25519" => Ok(Self::Ed25519),
            "ecdsa-p256" => Ok(Self::EcdsaP256),
            _ => Err(Error::invalid(format!("unknown key algorithm `{s}`")).hint("use `ed25519` or `ecdsa-p256`")),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ed25519 => "ed25519",
            Self::EcdsaP256 => "ecdsa-p256",
        })
    }
}

/// A private signing key. Its `Debug` output never shows key material.
pub enum PrivateKey {
    Ed25519(ed25519_dalek::SigningKey),
    EcdsaP256(p256::ecdsa::SigningKey),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, keyid {})", self.algorithm(), self.public_key().keyid())
    }
}

impl PrivateKey {
    pub fn generate(algorithm: Algorithm) -> Self {
        let mut rng = rand_core::OsRng;
        match algorithm {
            Algorithm::Ed25519 => Self::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
            Algorithm::EcdsaP256 => Self::EcdsaP256(p256::ecdsa::SigningKey::random(&mut rng)),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ed25519(_) => Algorithm::Ed25519,
            Self::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// Reads a PKCS#8 PEM private key of either algorithm.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::Ed25519(k));
        }
        if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::EcdsaP256(k));
        }
        Err(Error::invalid("not a PKCS#8 PEM ed25519 or ECDSA P-256 private key"))
    }

    /// The key as PKCS#8 PEM; the caller writes it with owner-only permissions.
    pub fn to_pkcs8_pem(&self) -> Result<String> {
        let pem = match self {
            Self::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF).map(|z| z.to_string()),
            Self::EcdsaP256(k) => k.to_pkcs8_pem(LineEnding::LF).map(|z| z.to_string()),
        };
        pem.map_err(|e| Error::failed(format!("cannot encode private key: {e}")))
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            Self::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            Self::EcdsaP256(k) => PublicKey::EcdsaP256(*k.verifying_key()),
        }
    }

    /// Signs `message`: raw 64 bytes for ed25519, ASN.1 DER for ECDSA (sha256).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use ed25519_dalek::Signer as _;
        match self {
            Self::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            Self::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// A public key that signatures are verified against; the pipeline pins one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

impl PublicKey {
    /// Reads an SPKI PEM (`-----BEGIN PUBLIC KEY-----`) of either algorithm.
    pub fn from_pem(pem: &str) -> Result<Self> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::Ed25519(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(Self::EcdsaP256(k));
        }
        Err(Error::invalid("not an SPKI PEM ed25519 or ECDSA P-256 public key"))
    }

    /// Reads a DER SubjectPublicKeyInfo (what KMS `GetPublicKey` returns).
    pub fn from_spki_der(der: &[u8]) -> Result<Self> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::Ed25519(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(Self::EcdsaP256(k));
        }
        Err(Error::invalid("not a DER ed25519 or ECDSA P-256 public key"))
    }

    /// SPKI PEM with 64-character lines, LF line ends and a trailing LF.
    pub fn to_pem(&self) -> Result<String> {
        let pem = match self {
            Self::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            Self::EcdsaP256(k) => k.to_public_key_pem(LineEnding::LF),
        };
        pem.map_err(|e| Error::failed(format!("cannot encode public key: {e}")))
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Ed25519(_) => Algorithm::Ed25519,
            Self::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// The securesystemslib key dictionary without the key id.
    fn sslib_dict(&self) -> Value {
        match self {
            Self::Ed25519(k) => json!({"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": hex::encode(k.as_bytes())}}),
            Self::EcdsaP256(_) => json!({
                "keytype": "ecdsa",
                "scheme": "ecdsa-sha2-nistp256",
                "keyval": {"public": self.to_pem().unwrap_or_default()},
            }),
        }
    }

    /// The securesystemslib key id: hex sha256 of the canonical JSON of the key dictionary.
    pub fn keyid(&self) -> String {
        Sha256Digest::of(canonical_json(&self.sslib_dict()).as_bytes()).to_string()
    }

    /// The securesystemslib JSON form (`KEY.json`), with the key id beside the dictionary.
    pub fn to_sslib_json(&self) -> Value {
        let mut d = self.sslib_dict();
        d["keyid"] = Value::String(self.keyid());
        d
    }

    /// Whether `signature` (raw ed25519, or DER ECDSA over sha256) signs `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        use ed25519_dalek::Verifier as _;
        match self {
            Self::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature).is_ok_and(|s| k.verify(message, &s).is_ok()),
            Self::EcdsaP256(k) => p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_verify_and_round_trip_pem() {
        for alg in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let key = PrivateKey::generate(alg);
            let sig = key.sign(b"hello");
            let public = key.public_key();
            assert!(public.verify(b"hello", &sig), "{alg}");
            assert!(!public.verify(b"hellp", &sig), "{alg}");
            let again = PrivateKey::from_pkcs8_pem(&key.to_pkcs8_pem().unwrap()).unwrap();
            assert_eq!(again.public_key(), public);
            let pem = public.to_pem().unwrap();
            assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
            assert_eq!(PublicKey::from_pem(&pem).unwrap(), public);
        }
    }

    #[test]
    fn ecdsa_signatures_are_der() {
        let key = PrivateKey::generate(Algorithm::EcdsaP256);
        let sig = key.sign(b"m");
        assert_eq!(sig[0], 0x30, "DER SEQUENCE");
    }

    #[test]
    fn keyid_matches_the_securesystemslib_definition() {
        // ed25519: hex public key, canonical dict with sorted keys.
        let key = PrivateKey::generate(Algorithm::Ed25519).public_key();
        let PublicKey::Ed25519(k) = &key else { unreachable!() };
        let canon =
            format!("{{\"keytype\":\"ed25519\",\"keyval\":{{\"public\":\"{}\"}},\"scheme\":\"ed25519\"}}", hex::encode(k.as_bytes()));
        assert_eq!(key.keyid(), Sha256Digest::of(canon.as_bytes()).to_string());
    }
}
