//! Creating a release (store artifacts, sign, store manifest and envelope, audit each step)
//! and verifying one (manifest digest, signature with the pinned key, statement binding,
//! every artifact re-hashed from the store).

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::json;

use crate::attestation::{self, Envelope, Signer};
use crate::audit::{Draft, EventKind};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{Actor, ReleaseId, Sha256Digest};
use crate::keys::PublicKey;
use crate::manifest::{ManifestImage, ReleaseManifest};
use crate::pipeline::Pipeline;
use crate::ports::{Services, StoredRelease};

/// A collected build output: its manifest entry and where the file is now.
#[derive(Debug, Clone)]
pub struct Collected {
    pub entry: crate::manifest::ManifestArtifact,
    pub file: PathBuf,
}

/// An artifact file the build produced, not yet stored.
#[derive(Debug, Clone)]
pub struct Found {
    /// The artifact's name in the manifest.
    pub name: String,
    /// Relative to the build's working directory.
    pub path: String,
    pub file: PathBuf,
}

/// Stores each artifact in the central store, hashing it on the way (one read of each file
/// where the backend allows); what the manifest lists.
pub fn store_artifacts(svc: &Services, found: &[Found]) -> Result<Vec<Collected>> {
    found
        .iter()
        .map(|f| {
            let (sha256, size) = svc.store.ingest_artifact(&f.file)?;
            Ok(Collected {
                entry: crate::manifest::ManifestArtifact { name: f.name.clone(), path: f.path.clone(), sha256, size },
                file: f.file.clone(),
            })
        })
        .collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct CreatedRelease {
    pub release: ReleaseId,
    pub manifest_sha256: Sha256Digest,
    pub keyid: String,
    pub manifest: ReleaseManifest,
}

/// Stores the artifacts, signs the statement and stores the release; audits build, sign, store.
pub fn create(svc: &Services, pipeline: &Pipeline, manifest: ReleaseManifest, signer: &dyn Signer) -> Result<CreatedRelease> {
    // The manifest's artifacts are in the store already (`store_artifacts`).
    let actor = manifest.builder.actor.clone();
    let bytes = manifest.to_bytes()?;
    let digest = ReleaseManifest::digest_of(&bytes);
    let id = ReleaseId::for_manifest(&digest);
    let artifacts: Vec<_> = manifest.artifacts.iter().map(|a| json!({"name": a.name, "sha256": a.sha256, "size": a.size})).collect();
    let built = Draft::new(EventKind::Build, &actor, &pipeline.name).release(&id).at(svc.clock.now()).details(json!({
        "manifest_sha256": digest, "artifacts": artifacts, "images": manifest.images, "source": manifest.source, "ci": manifest.ci,
    }));
    let statement = attestation::statement(&manifest, &digest);
    let envelope = attestation::sign(&statement, signer)?;
    let signed = Draft::new(EventKind::Sign, &actor, &pipeline.name)
        .release(&id)
        .details(json!({"keyid": signer.keyid(), "predicate_type": attestation::PROVENANCE_TYPE}));
    // On record before the release lands in the store (one append).
    svc.audit.append_all(vec![built, signed])?;
    let stored = StoredRelease { id: id.clone(), manifest: bytes, envelope: envelope.to_bytes()? };
    if let Err(e) = svc.store.put_release(&pipeline.name, &stored) {
        // The log already says `build` and `sign`: it must also say the release never existed.
        let d = json!({"reason": e.message, "location": svc.store.location()});
        svc.audit.append(Draft::new(EventKind::BuildFailed, &actor, &pipeline.name).release(&id).details(d))?;
        return Err(e);
    }
    let store = Draft::new(EventKind::Store, &actor, &pipeline.name).release(&id).details(json!({"location": svc.store.location()}));
    svc.audit.append(store)?;
    Ok(CreatedRelease { release: id, manifest_sha256: digest, keyid: signer.keyid(), manifest })
}

/// A signed checkpoint of the log where this process's appends ended (none if it appended
/// nothing): written by every command that decided something and holds the pipeline's key —
/// build, promote, run, rollback — so a later cut or rewrite of the log shows.
pub fn checkpoint_log(svc: &Services, signer: &dyn Signer) -> Result<Option<u64>> {
    let Some(tail) = svc.audit.tail() else { return Ok(None) };
    let envelope = crate::audit::checkpoint(&tail, signer, svc.clock.now())?;
    svc.audit.put_checkpoint(tail.seq, &envelope.to_bytes()?)?;
    Ok(Some(tail.seq))
}

/// Resolves each image the build declares to its digest in the central registry. `${commit}`
/// in a tag is the source commit, which must then be known.
pub fn resolve_images(svc: &Services, pipeline: &Pipeline, source: Option<&crate::manifest::SourceInfo>) -> Result<Vec<ManifestImage>> {
    let mut out = Vec::new();
    for decl in &pipeline.build.images {
        let tag = if decl.tag.contains("${commit}") {
            let commit = source.map(|s| s.commit.as_str()).ok_or_else(|| {
                Error::invalid(format!("image `{}`: its tag `{}` uses ${{commit}}, but the source commit is unknown", decl.name, decl.tag))
                    .hint("build from a git checkout, or give a literal tag")
            })?;
            decl.tag.replace("${commit}", commit)
        } else {
            decl.tag.clone()
        };
        let image = svc.registry.resolve(decl, &tag)?;
        tracing::info!(image = %decl.name, digest = %image.digest, "resolved {}:{tag}", decl.repository);
        out.push(image);
    }
    Ok(out)
}

/// A release whose digests and signature checked out.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub release: ReleaseId,
    pub manifest_sha256: Sha256Digest,
    pub keyid: String,
    pub manifest: ReleaseManifest,
}

/// Verifies everything about a stored release against the pinned key. Any failure is a
/// `Verification` error; nothing here touches a target account. With `copies`, each artifact
/// is verified while it is copied to `copies/PATH` (one read of each: what a promotion's
/// deploy actions then read).
pub fn verify(svc: &Services, id: &ReleaseId, pinned: &PublicKey, copies: Option<&Path>) -> Result<Verified> {
    let stored = svc.store.get_release(id)?;
    let digest = ReleaseManifest::digest_of(&stored.manifest);
    if !id.matches(&digest) {
        return Err(Error::verification(format!("the stored manifest of release `{id}` hashes to `{digest}`: it was modified")));
    }
    let manifest = ReleaseManifest::from_bytes(&stored.manifest).map_err(|e| Error::verification(e.message))?;
    let envelope = Envelope::from_bytes(&stored.envelope)?;
    let statement = envelope.verify(pinned)?;
    attestation::check_binding(&statement, &manifest, &digest)?;
    for a in &manifest.artifacts {
        // Missing bytes are a verification failure; bytes that cannot be read (after retries)
        // are an I/O failure, not evidence of tampering.
        let checked = match copies {
            None => svc.store.hash_artifact(&a.sha256),
            Some(dir) => {
                let dest = dir.join(&a.path);
                svc.store.fetch_artifact(&a.sha256, &dest)
            }
        };
        let (actual, size) = checked.map_err(|e| match e.kind {
            ErrorKind::Verification => Error::verification(format!("artifact `{}`: {}", a.name, e.message)),
            _ => Error::failed(format!("artifact `{}` could not be read from the store: {}", a.name, e.message))
                .hint("nothing was verified or deployed; this is an I/O failure, not a verification failure: try again"),
        })?;
        if actual != a.sha256 || size != a.size {
            return Err(Error::verification(format!(
                "artifact `{}` in the store hashes to `{actual}` ({size} bytes), but the release lists `{}` ({} bytes)",
                a.name, a.sha256, a.size
            )));
        }
    }
    Ok(Verified { release: id.clone(), manifest_sha256: digest, keyid: pinned.keyid(), manifest })
}

/// `verify`, with the outcome written to the audit log before it is returned.
pub fn verify_audited(
    svc: &Services,
    pipeline: &Pipeline,
    id: &ReleaseId,
    pinned: &PublicKey,
    actor: &Actor,
    purpose: &str,
    copies: Option<&Path>,
) -> Result<Verified> {
    let (result, event) = verify_recorded(svc, pipeline, id, pinned, actor, purpose, copies);
    if let Some(d) = event {
        svc.audit.append(d)?;
    }
    result
}

/// `verify`, and the event that records its outcome, for the caller to write (a promotion
/// writes it with its next decisions): `verify_ok` or `verify_failed`, none for an I/O failure,
/// which verified nothing.
pub fn verify_recorded(
    svc: &Services,
    pipeline: &Pipeline,
    id: &ReleaseId,
    pinned: &PublicKey,
    actor: &Actor,
    purpose: &str,
    copies: Option<&Path>,
) -> (Result<Verified>, Option<Draft>) {
    let result = verify(svc, id, pinned, copies);
    let draft = |kind, d| Some(Draft::new(kind, actor, &pipeline.name).release(id).details(d).at(svc.clock.now()));
    let event = match &result {
        Ok(v) => draft(
            EventKind::VerifyOk,
            json!({"purpose": purpose, "manifest_sha256": v.manifest_sha256, "keyid": v.keyid, "artifacts": v.manifest.artifacts.len()}),
        ),
        Err(e) if e.kind != ErrorKind::Verification => None,
        Err(e) => draft(EventKind::VerifyFailed, json!({"purpose": purpose, "reason": e.message, "pinned_keyid": pinned.keyid()})),
    };
    (result, event)
}
