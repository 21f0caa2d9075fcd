//! One release as `ferry ui`'s release page shows it: its manifest and provenance as stored;
//! whether it verifies against the pinned key (manifest digest, signature, binding, every
//! artifact re-hashed); per stage where it stands — the signed decisions that count and every
//! record that does not, with why (a forged approval file shows here), the change-set preview,
//! and whether a success carries a valid deployment attestation; and its audit timeline.
//! Reading only: nothing here is written or audited.

use serde::Serialize;

use crate::approval::signed::Refused;
use crate::approval::{ApprovalState, Parties};
use crate::audit::{Event, EventFilter};
use crate::error::{ErrorKind, Result};
use crate::ids::{Actor, ReleaseId, Sha256Digest, StageName};
use crate::keys::PublicKey;
use crate::manifest::ReleaseManifest;
use crate::pipeline::Pipeline;
use crate::ports::Services;

/// The outcome of a check: passed (with what it found) or failed (with why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Check {
    Valid { detail: String },
    Invalid { reason: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDetail {
    pub release: ReleaseId,
    /// The digest of the manifest as stored (its id is the start of it, when untouched).
    pub manifest_sha256: Sha256Digest,
    /// The manifest as stored, when it parses (shown even when it does not verify).
    pub manifest: Option<ReleaseManifest>,
    /// Digests, signature and binding against the pinned key; every artifact re-hashed.
    pub verification: Check,
    pub stages: Vec<StageDetail>,
    /// The release's audit events, oldest first.
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageDetail {
    pub stage: StageName,
    /// `not_started` when the release was never requested in this stage.
    pub status: String,
    pub message: Option<String>,
    pub requested_by: Option<Actor>,
    pub approvals: Option<ApprovalState>,
    /// Signed decision records that do not count, each with why.
    pub refused: Vec<Refused>,
    /// The change-set preview the approvers are shown.
    pub preview: Vec<String>,
    /// For a stage the release succeeded in: its signed deployment attestation, checked.
    pub attestation: Option<Check>,
}

/// `id` of `pipeline` in detail, or `None` if the store has no such release of it.
pub fn release_detail(svc: &Services, pipeline: &Pipeline, pinned: &PublicKey, id: &ReleaseId) -> Result<Option<ReleaseDetail>> {
    let stored = match svc.store.get_release(id) {
        Ok(s) => s,
        // No such release in the store.
        Err(e) if e.kind == ErrorKind::Invalid => return Ok(None),
        Err(e) => return Err(e),
    };
    let manifest_sha256 = ReleaseManifest::digest_of(&stored.manifest);
    let manifest = ReleaseManifest::from_bytes(&stored.manifest).ok();
    if manifest.as_ref().is_some_and(|m| m.pipeline != pipeline.name) {
        return Ok(None);
    }
    let verification = match crate::release::verify(svc, id, pinned, None) {
        Ok(v) => Check::Valid { detail: format!("signed with the pinned key {}; every artifact re-hashed", v.keyid) },
        Err(e) => Check::Invalid { reason: e.message },
    };
    let mut stages = Vec::new();
    for stage in &pipeline.stages {
        let record = svc.state.read_stage(&pipeline.name, id, &stage.name)?.map(|r| r.value);
        let (approvals, refused) = match (&stage.approval, &record) {
            (Some(_), Some(r)) => {
                let parties =
                    Parties { builder: manifest.as_ref().map(|m| m.builder.actor.clone()), requester: Some(r.requested_by.clone()) };
                let (state, refused) =
                    crate::decide::standing(svc, pipeline, id, &manifest_sha256, &stage.name, r.request.as_ref(), &parties)?;
                (Some(state), refused)
            }
            _ => (None, Vec::new()),
        };
        let attestation = record.as_ref().and_then(|r| r.deployment.as_ref()).map(|envelope| {
            match crate::attestation::check_deployment(envelope, pinned, &pipeline.name, id, &manifest_sha256, &stage.name) {
                Ok(()) => Check::Valid { detail: "signed with the pinned key for this release and stage".into() },
                Err(e) => Check::Invalid { reason: e.message },
            }
        });
        stages.push(StageDetail {
            stage: stage.name.clone(),
            status: record.as_ref().map_or("not_started".to_owned(), |r| crate::wire_name(&r.status())),
            message: record.as_ref().and_then(|r| r.message().map(str::to_owned)),
            requested_by: record.as_ref().map(|r| r.requested_by.clone()),
            approvals,
            refused,
            preview: record.as_ref().map(|r| r.preview.clone()).unwrap_or_default(),
            attestation,
        });
    }
    let filter = EventFilter { release: Some(id.clone()), after: None, stage: None, pipeline: Some(pipeline.name.clone()) };
    let events = svc.audit.events(&filter)?;
    Ok(Some(ReleaseDetail { release: id.clone(), manifest_sha256, manifest, verification, stages, events }))
}
