//! Attestations: an in-toto Statement v1 with a SLSA Provenance v1 predicate whose subjects
//! are the release's artifacts, signed in a DSSE envelope (one signature, padded base64,
//! signature over PAE). Verification uses only the pinned public key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::ids::{ReleaseId, Sha256Digest};
use crate::keys::PublicKey;
use crate::manifest::ReleaseManifest;

pub const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PROVENANCE_TYPE: &str = "https://slsa.dev/provenance/v1";
pub const BUILD_TYPE: &str = "https://ferry.invalid/build/command/v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    pub keyid: String,
    pub sig: String,
}

/// Something that signs bytes with a key identified by a securesystemslib key id: a local key,
/// or (issue #3) a KMS key.
pub trait Signer {
    fn keyid(&self) -> String;
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>>;
}

impl Signer for crate::keys::PrivateKey {
    fn keyid(&self) -> String {
        self.public_key().keyid()
    }
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        Ok(crate::keys::PrivateKey::sign(self, message))
    }
}

/// DSSE pre-authentication encoding.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// What a release's signature covers, as (name, sha256): each artifact by name, each image by
/// its repository (`ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO`, the usual subject name of an
/// OCI image in in-toto).
fn subjects(manifest: &ReleaseManifest) -> Vec<(String, String)> {
    let artifacts = manifest.artifacts.iter().map(|a| (a.name.clone(), a.sha256.to_string()));
    artifacts.chain(manifest.images.iter().map(|i| (i.repository.clone(), i.digest.to_string()))).collect()
}

/// The in-toto Statement for a release: subjects are the artifacts and images, the predicate is SLSA
/// Provenance v1 and binds the manifest digest.
pub fn statement(manifest: &ReleaseManifest, manifest_digest: &Sha256Digest) -> Value {
    let subjects: Vec<Value> =
        subjects(manifest).into_iter().map(|(name, sha256)| json!({"name": name, "digest": {"sha256": sha256}})).collect();
    let mut deps = Vec::new();
    if let Some(src) = &manifest.source {
        deps.push(json!({"name": "source", "digest": {"gitCommit": src.commit}, "annotations": {"ref": src.git_ref, "dirty": src.dirty}}));
    }
    json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PROVENANCE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "pipeline": manifest.pipeline,
                    "command": manifest.build_command,
                    "source": manifest.source.as_ref().map(|s| json!({"commit": s.commit, "ref": s.git_ref})),
                },
                "internalParameters": {
                    "buildAccount": manifest.build_account,
                    "manifestSha256": manifest_digest,
                    "release": ReleaseId::for_manifest(manifest_digest),
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": manifest.builder.id},
                "metadata": {
                    "invocationId": manifest.ci.as_ref().map_or_else(|| format!("ferry:{}", ReleaseId::for_manifest(manifest_digest)), |c| c.run_id.clone()),
                    "startedOn": manifest.started_at,
                    "finishedOn": manifest.finished_at,
                },
            },
        },
    })
}

/// Signs `statement` into a DSSE envelope.
pub fn sign(statement: &Value, signer: &dyn Signer) -> Result<Envelope> {
    sign_payload(PAYLOAD_TYPE, statement, signer)
}

/// Signs any JSON payload of the given type into a DSSE envelope.
pub fn sign_payload(payload_type: &str, payload: &Value, signer: &dyn Signer) -> Result<Envelope> {
    let body = serde_json::to_vec(payload).map_err(|e| Error::failed(format!("cannot encode the payload: {e}")))?;
    let sig = signer.sign(&pae(payload_type, &body))?;
    Ok(Envelope {
        payload: B64.encode(&body),
        payload_type: payload_type.into(),
        signatures: vec![EnvelopeSignature { keyid: signer.keyid(), sig: B64.encode(sig) }],
    })
}

impl Envelope {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut b = serde_json::to_vec_pretty(self).map_err(|e| Error::failed(format!("cannot encode envelope: {e}")))?;
        b.push(b'\n');
        Ok(b)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).map_err(|e| Error::verification(format!("the envelope is not a DSSE envelope: {e}")))
    }

    /// Checks the single signature against `key` and returns the statement it carries.
    pub fn verify(&self, key: &PublicKey) -> Result<Value> {
        self.verify_payload(key, PAYLOAD_TYPE)
    }

    /// Checks the envelope carries `payload_type`, signed once by `key`; returns the payload.
    pub fn verify_payload(&self, key: &PublicKey, payload_type: &str) -> Result<Value> {
        if self.payload_type != payload_type {
            return Err(Error::verification(format!("envelope payload type is `{}`, expected `{payload_type}`", self.payload_type)));
        }
        let [sig] = self.signatures.as_slice() else {
            return Err(Error::verification(format!("envelope has {} signatures; ferry requires exactly one", self.signatures.len())));
        };
        let pinned = key.keyid();
        if sig.keyid != pinned {
            return Err(Error::verification(format!("envelope is signed by key `{}`, but the pipeline pins key `{pinned}`", sig.keyid)));
        }
        let body = B64.decode(&self.payload).map_err(|e| Error::verification(format!("envelope payload is not base64: {e}")))?;
        let raw = B64.decode(&sig.sig).map_err(|e| Error::verification(format!("envelope signature is not base64: {e}")))?;
        if !key.verify(&pae(&self.payload_type, &body), &raw) {
            return Err(Error::verification(format!("envelope signature does not verify with the pinned key `{pinned}`")));
        }
        serde_json::from_slice(&body).map_err(|e| Error::verification(format!("signed payload is not JSON: {e}")))
    }
}

/// Checks a verified statement describes exactly this manifest: same digest, same subjects.
pub fn check_binding(statement: &Value, manifest: &ReleaseManifest, manifest_digest: &Sha256Digest) -> Result<()> {
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != PROVENANCE_TYPE {
        return Err(Error::verification("signed statement is not an in-toto v1 SLSA provenance statement"));
    }
    let bound = statement["predicate"]["buildDefinition"]["internalParameters"]["manifestSha256"].as_str().unwrap_or("");
    if bound != manifest_digest.as_str() {
        return Err(Error::verification(format!(
            "the signed statement is for manifest `{bound}`, but the stored manifest hashes to `{manifest_digest}`"
        )));
    }
    let mut signed: Vec<(String, String)> = statement["subject"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(|x| (x["name"].as_str().unwrap_or("").to_owned(), x["digest"]["sha256"].as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let mut listed = subjects(manifest);
    signed.sort();
    listed.sort();
    if signed != listed {
        return Err(Error::verification("the signed subjects differ from the artifacts and images in the manifest"));
    }
    Ok(())
}

/// The predicate type of a deployment attestation: a stage's success, signed with the
/// pipeline's key (in the manner of a SLSA verification summary), which later stages check
/// instead of trusting a state field.
pub const DEPLOYMENT_PREDICATE: &str = "https://ferry.invalid/deployment/v1";

/// What a release's success in `stage` says: the release (by manifest digest), the stage and
/// its actions, the attempt, when.
pub fn deployment_statement(
    pipeline: &crate::ids::PipelineName,
    release: &ReleaseId,
    manifest_digest: &Sha256Digest,
    stage: &crate::ids::StageName,
    actions: &[String],
    attempt: u32,
    at: crate::clock::Timestamp,
) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": format!("ferry-release:{release}"), "digest": {"sha256": manifest_digest}}],
        "predicateType": DEPLOYMENT_PREDICATE,
        "predicate": {"pipeline": pipeline, "stage": stage, "actions": actions, "attempt": attempt, "deployed_at": at},
    })
}

/// Checks that `envelope`, signed by `key`, says release `release` (manifest `manifest_digest`)
/// succeeded in `stage` of `pipeline`; the error says what does not hold.
pub fn check_deployment(
    envelope: &Envelope,
    key: &PublicKey,
    pipeline: &crate::ids::PipelineName,
    release: &ReleaseId,
    manifest_digest: &Sha256Digest,
    stage: &crate::ids::StageName,
) -> Result<()> {
    let statement = envelope.verify(key)?;
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != DEPLOYMENT_PREDICATE {
        return Err(Error::verification("the signed statement is not a ferry deployment attestation"));
    }
    let subject = &statement["subject"][0];
    let (name, digest) = (subject["name"].as_str().unwrap_or(""), subject["digest"]["sha256"].as_str().unwrap_or(""));
    if name != format!("ferry-release:{release}") || digest != manifest_digest.as_str() {
        return Err(Error::verification(format!("the deployment attestation is for `{name}` ({digest}), not release `{release}`")));
    }
    let p = &statement["predicate"];
    if p["pipeline"].as_str() != Some(pipeline.as_str()) || p["stage"].as_str() != Some(stage.as_str()) {
        return Err(Error::verification(format!(
            "the deployment attestation is for stage `{}` of pipeline `{}`, not stage `{stage}` of `{pipeline}`",
            p["stage"].as_str().unwrap_or("?"),
            p["pipeline"].as_str().unwrap_or("?")
        )));
    }
    Ok(())
}
