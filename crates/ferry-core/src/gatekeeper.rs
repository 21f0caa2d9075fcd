//! The gatekeeper's decision (issue #12): whether the credentials of a protected stage may be
//! handed out for a release, judged from the published trust root and the central store alone —
//! never from the caller's pipeline file, never from what the caller says but its identity.
//! The release must be signed with a release key of the root, every stage the root says it
//! requires must be proven by its deployment attestation, the stage's windows (as the root
//! fixes them) open, the approval request made by the caller, and the signed approvals must
//! reach the root's quorum. The AWS function (`ferry-gatekeeper`) runs this and only then
//! assumes the stage's deploy role; it is a pure function of the ports, so the same decision is
//! tested on the local backend.

use serde::Serialize;

use crate::approval::{self, ApprovalState, Parties, signed};
use crate::attestation::Envelope;
use crate::error::Result;
use crate::ids::{Actor, ReleaseId, Sha256Digest, StageName};
use crate::manifest::ReleaseManifest;
use crate::ports::Services;
use crate::trust::TrustRoot;

/// What the gatekeeper is asked: credentials of `stage` for `release`, by `caller` (the
/// identity AWS says invoked it).
#[derive(Debug, Clone)]
pub struct Ask {
    pub release: ReleaseId,
    pub stage: StageName,
    pub caller: Actor,
}

/// Its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Answer {
    /// Hand out the stage's credentials.
    Admit { manifest_sha256: Sha256Digest, approved_by: Vec<String> },
    /// Not yet: the quorum is not reached.
    Pending { have: Vec<String>, need: u32 },
    /// Never for this ask: the evidence is missing or does not verify.
    Refuse { reason: String },
}

fn refuse(reason: String) -> Result<Answer> {
    Ok(Answer::Refuse { reason })
}

/// Decides `ask` under `root`, reading the release, stage records, approval requests and signed
/// decisions through `svc`.
pub fn decide(svc: &Services, root: &TrustRoot, ask: &Ask) -> Result<Answer> {
    let (release, stage) = (&ask.release, &ask.stage);
    let Some(guarded) = root.stages.iter().find(|s| &s.stage == stage) else {
        return refuse(format!("stage `{stage}` is not guarded by the trust root of `{}`", root.pipeline));
    };
    let keys = root.release_keys()?;
    // The release: signed with a key of the root, for this pipeline.
    let Some(stored) = svc.store.get_releases(std::slice::from_ref(release))?.pop().flatten() else {
        return refuse(format!("release `{release}` is not in the store"));
    };
    let manifest_sha256 = ReleaseManifest::digest_of(&stored.manifest);
    let manifest = match ReleaseManifest::from_bytes(&stored.manifest) {
        Ok(m) if m.pipeline == root.pipeline => m,
        Ok(m) => return refuse(format!("release `{release}` was built by pipeline `{}`, not `{}`", m.pipeline, root.pipeline)),
        Err(e) => return refuse(format!("the manifest of `{release}` is unreadable: {}", e.message)),
    };
    if &ReleaseId::for_manifest(&manifest_sha256) != release {
        return refuse(format!("the stored manifest does not hash to release id `{release}`"));
    }
    let signed = Envelope::from_bytes(&stored.envelope).and_then(|env| {
        crate::evidence::any_key(&keys, |k| {
            env.verify(k).and_then(|st| crate::attestation::check_binding(&st, &manifest, &manifest_sha256))
        })
    });
    if let Err(e) = signed {
        return refuse(format!("release `{release}` is not signed by a release key of the trust root: {}", e.message));
    }
    // Order: each required stage proven by its signed deployment attestation.
    for req in &guarded.requires {
        let record = svc.state.read_stage(&root.pipeline, release, req)?.map(|v| v.value);
        let proven = match record.as_ref().and_then(|r| r.deployment.as_ref()) {
            None => Err(crate::Error::verification("no signed deployment attestation")),
            Some(env) => crate::evidence::any_key(&keys, |k| {
                crate::attestation::check_deployment(env, k, &root.pipeline, release, &manifest_sha256, req)
            }),
        };
        if let Err(e) = proven {
            return refuse(format!(
                "release `{release}` has not been proven to succeed in `{req}`, which `{stage}` requires: {}",
                e.message
            ));
        }
    }
    // Windows, as the root fixes them.
    let now = svc.clock.now();
    for w in &guarded.windows {
        let window: crate::window::Window = serde_json::from_value(w.clone())
            .map_err(|e| crate::Error::invalid(format!("trust root of `{}`: a window of `{stage}` is malformed: {e}", root.pipeline)))?;
        if let Some(closed) = crate::window::check(&window, &[], now)? {
            return refuse(format!("`{stage}` is closed: {}", closed.reason));
        }
    }
    // Approvals: on the request the caller made, counted by the root's rule.
    let record = svc.state.read_stage(&root.pipeline, release, stage)?.map(|v| v.value);
    let Some(digest) = record.as_ref().and_then(|r| r.request.clone()) else {
        return refuse(format!("release `{release}` has not been put up for approval in `{stage}`"));
    };
    let Some(request) = svc.state.request(&root.pipeline, release, stage, &digest)? else {
        return refuse(format!("the approval request {digest} of `{stage}` is not in the store"));
    };
    if request.requested_by != ask.caller {
        return refuse(format!(
            "the approval request of `{stage}` was made by `{}`, not by the caller `{}`",
            request.requested_by, ask.caller
        ));
    }
    let policy = root.policy(stage);
    let pinned = root.approvers()?;
    let decisions = svc.state.decisions(&root.pipeline, release, stage)?;
    let expected = signed::Expected { pipeline: &root.pipeline, release, manifest: &manifest_sha256, stage, request: &digest, now };
    let parties = Parties { builder: Some(manifest.builder.actor.clone()), requester: Some(request.requested_by.clone()) };
    let (state, _) = approval::evaluate(policy.as_ref(), &pinned, &decisions, &expected, &parties);
    let names = |v: &[Actor]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    Ok(match state {
        ApprovalState::Approved { by } => Answer::Admit { manifest_sha256, approved_by: names(&by) },
        ApprovalState::Pending { have, need, .. } => Answer::Pending { have: names(&have), need },
        ApprovalState::Rejected { by, .. } => Answer::Refuse { reason: format!("`{by}` rejected release `{release}` for `{stage}`") },
        ApprovalState::NotRequired => Answer::Admit { manifest_sha256, approved_by: Vec::new() },
    })
}
