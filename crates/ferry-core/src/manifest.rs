//! The release manifest: what a build produced (artifacts with sha256 and size), where from
//! (source commit and ref), who and what built it, and when. Its digest names the release.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{AccountId, Actor, PipelineName, Sha256Digest};

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseManifest {
    pub version: u32,
    pub pipeline: PipelineName,
    pub build_account: AccountId,
    pub artifacts: Vec<ManifestArtifact>,
    /// Container images, by digest (absent when the build declares none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ManifestImage>,
    pub source: Option<SourceInfo>,
    pub builder: BuilderInfo,
    pub ci: Option<CiRun>,
    pub build_command: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestArtifact {
    pub name: String,
    /// The file's path relative to the build's working directory when it was collected.
    pub path: String,
    pub sha256: Sha256Digest,
    pub size: u64,
}

/// A container image of the release: its manifest's sha256 in the central repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestImage {
    pub name: String,
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPOSITORY` of the central registry.
    pub repository: String,
    /// sha256 of the image manifest's bytes (ECR's `imageDigest` without `sha256:`).
    pub digest: Sha256Digest,
    pub media_type: String,
    /// The tag the build pushed; informational, the digest is what is promoted.
    pub tag: String,
}

impl ManifestImage {
    /// `REPOSITORY@sha256:DIGEST`, the reference that pins these exact bytes.
    pub fn reference(&self) -> String {
        format!("{}@sha256:{}", self.repository, self.digest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    pub commit: String,
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Uncommitted changes were present when the build ran.
    pub dirty: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuilderInfo {
    /// The identity that ran the build; excluded from approving its own release.
    pub actor: Actor,
    /// The SLSA builder id (a URI naming the build platform).
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CiRun {
    pub provider: String,
    pub run_id: String,
    pub url: Option<String>,
}

impl ReleaseManifest {
    /// The exact bytes stored and hashed.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut bytes = serde_json::to_vec_pretty(self).map_err(|e| Error::failed(format!("cannot encode manifest: {e}")))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Parses stored manifest bytes, rejecting unknown versions.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("release manifest is not valid JSON: {e}")))?;
        match v.get("version").and_then(serde_json::Value::as_u64) {
            Some(1) => {}
            other => {
                return Err(Error::invalid(format!(
                    "release manifest has unsupported version `{}`",
                    other.map_or("none".into(), |v| v.to_string())
                ))
                .hint("this ferry reads manifest version 1; upgrade ferry"));
            }
        }
        serde_json::from_value(v).map_err(|e| Error::invalid(format!("release manifest is malformed: {e}")))
    }

    pub fn digest_of(bytes: &[u8]) -> Sha256Digest {
        Sha256Digest::of(bytes)
    }
}
