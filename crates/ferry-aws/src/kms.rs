//! Signing with an asymmetric ECDSA P-256 key in AWS KMS (`ECDSA_SHA_256`). Messages up to
//! 4096 bytes are sent `RAW`; larger ones as their sha256 `DIGEST` (both are correct on AWS).
//! KMS returns DER signatures, which is what DSSE verifiers expect. Verification never asks
//! KMS: it uses the public key pinned in the repository, which `public_key` fetches once.

use aws_config::SdkConfig;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use ferry_core::attestation::Signer;
use ferry_core::keys::PublicKey;
use ferry_core::{Error, Result};
use sha2::{Digest as _, Sha256};

use crate::chain::Aws;
use crate::error::{self, Attempt};

/// The largest message KMS signs as `RAW`.
pub const RAW_LIMIT: usize = 4096;

pub struct KmsSigner {
    aws: Aws,
    client: aws_sdk_kms::Client,
    key_arn: String,
    /// Who signs (the role assumed in the key's account), for messages.
    role: String,
    public: PublicKey,
}

impl std::fmt::Debug for KmsSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KmsSigner({})", self.key_arn)
    }
}

/// Fetches the public key of `key_arn` (`kms:GetPublicKey`).
pub fn public_key(aws: &Aws, config: &SdkConfig, key_arn: &str, who: &str) -> Result<PublicKey> {
    let client = aws_sdk_kms::Client::new(config);
    let out = aws
        .rt
        .block_on(client.get_public_key().key_id(key_arn).send())
        .map_err(|e| error::map(Attempt { who, action: "kms:GetPublicKey", resource: key_arn }, &e))?;
    let der = out.public_key.ok_or_else(|| Error::failed(format!("KMS returned no public key for `{key_arn}`")))?;
    PublicKey::from_spki_der(der.as_ref()).map_err(|e| {
        Error::invalid(format!("`{key_arn}`: {}", e.message))
            .hint("ferry signs with ECC_NIST_P256 keys (key spec ECC_NIST_P256, usage SIGN_VERIFY)")
    })
}

impl KmsSigner {
    /// A signer for `key_arn` acting with `config`; refuses when the key is not the pinned one.
    pub fn new(aws: &Aws, config: &SdkConfig, key_arn: &str, role: &str, pinned: &PublicKey) -> Result<Self> {
        let public = public_key(aws, config, key_arn, role)?;
        if &public != pinned {
            return Err(Error::invalid(format!(
                "KMS key `{key_arn}` is not the pinned public key (keyid {} vs pinned {})",
                public.keyid(),
                pinned.keyid()
            ))
            .hint("export the key again with `ferry key export --kms ARN --out DIR` and commit it, or fix `signing.kms_key`"));
        }
        Ok(Self { aws: aws.clone(), client: aws_sdk_kms::Client::new(config), key_arn: key_arn.to_owned(), role: role.to_owned(), public })
    }
}

impl Signer for KmsSigner {
    fn keyid(&self) -> String {
        self.public.keyid()
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let (kind, body) = if message.len() <= RAW_LIMIT {
            (MessageType::Raw, message.to_vec())
        } else {
            (MessageType::Digest, Sha256::digest(message).to_vec())
        };
        let req = self
            .client
            .sign()
            .key_id(&self.key_arn)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .message_type(kind)
            .message(Blob::new(body));
        let out = self
            .aws
            .rt
            .block_on(req.send())
            .map_err(|e| error::map(Attempt { who: &self.role, action: "kms:Sign", resource: &self.key_arn }, &e))?;
        let sig = out.signature.ok_or_else(|| Error::failed(format!("KMS returned no signature for `{}`", self.key_arn)))?;
        Ok(sig.into_inner())
    }
}
