//! Recording an approval or a rejection: the release is verified first, the decider is
//! checked against the stage's policy (allowed approvers, separation of duties), and the
//! decision is bound to exactly one (release, stage) and audited before it is reported.

use serde_json::json;

use crate::approval::signed::{self, ApprovalPredicate, ApprovalRequest};
use crate::approval::{self, ApprovalState, Parties, Verdict};
use crate::attestation::Signer;
use crate::audit::{Draft, EventKind};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{Actor, ReleaseId, Sha256Digest, StageName};
use crate::keys::PublicKey;
use crate::pipeline::{NotifyEvent, Pipeline};
use crate::ports::Services;
use crate::release;
use crate::state::StageRecord;

/// A decision as recorded: signed by the approver's key, bound to one release, stage and
/// approval request.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    pub approver: String,
    pub keyid: String,
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub at: Timestamp,
    pub expires_at: Timestamp,
    /// When the stage's deployment window next opens, if it is closed now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_opens: Option<crate::window::Opens>,
    /// The digest of the approval request decided on.
    pub request: Sha256Digest,
    /// Where the signed decision (a DSSE envelope) is stored.
    pub location: String,
    /// Where the stage's approvals stand after this decision.
    pub state: ApprovalState,
}

/// One person's decision on one (release, stage).
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    pub release: ReleaseId,
    pub stage: StageName,
    pub actor: Actor,
    /// The pinned approver deciding (whose key signs); `None`: the one `actor` is.
    pub approver: Option<String>,
    pub verdict: Verdict,
    pub comment: Option<String>,
}

/// The stage and its approval policy; a stage without one has nothing to approve.
fn approval_stage<'p>(
    pipeline: &'p Pipeline,
    stage_name: &StageName,
) -> Result<(&'p crate::pipeline::Stage, &'p crate::pipeline::ApprovalPolicy)> {
    let stage = pipeline.stage_or_error(stage_name)?;
    let policy = stage
        .approval
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("stage `{stage_name}` has no approval policy; there is nothing to approve")))?;
    Ok((stage, policy))
}

/// The stage's record and the approval request it asks approvers to decide on, if any.
fn request_of(
    svc: &Services,
    pipeline: &Pipeline,
    release: &ReleaseId,
    stage: &StageName,
) -> Result<(Option<StageRecord>, Option<ApprovalRequest>)> {
    let record = svc.state.read_stage(&pipeline.name, release, stage)?.map(|r| r.value);
    let request = match record.as_ref().and_then(|r| r.request.clone()) {
        Some(digest) => svc.state.request(&pipeline.name, release, stage, &digest)?,
        None => None,
    };
    Ok((record, request))
}

/// Where the signed decisions on (release, stage) stand, against `request` (none yet: nothing
/// counts), and the records that do not count.
pub fn standing(
    svc: &Services,
    pipeline: &Pipeline,
    release: &ReleaseId,
    manifest_sha256: &Sha256Digest,
    stage: &StageName,
    request: Option<&Sha256Digest>,
    parties: &Parties,
) -> Result<(ApprovalState, Vec<signed::Refused>)> {
    let policy = pipeline.stage(stage).and_then(|s| s.approval.as_ref());
    let pinned = approval::pinned(pipeline)?;
    let decisions = svc.state.decisions(&pipeline.name, release, stage)?;
    let none = Sha256Digest::from_bytes([0; 32]);
    let expected = signed::Expected {
        pipeline: &pipeline.name,
        release,
        manifest: manifest_sha256,
        stage,
        request: request.unwrap_or(&none),
        now: svc.clock.now(),
    };
    Ok(approval::evaluate(policy, &pinned, &decisions, &expected, parties))
}

/// Audits that `req` (by `approver`, if known) was refused for `why`.
pub fn refused(svc: &Services, pipeline: &Pipeline, req: &DecisionRequest, approver: Option<&str>, why: &Error) -> Result<()> {
    let details = json!({"verdict": req.verdict, "approver": approver, "reason": why.message});
    let draft = Draft::new(EventKind::ApprovalRefused, &req.actor, &pipeline.name).release(&req.release).stage(&req.stage).details(details);
    svc.audit.append(draft).map(|_| ())
}

/// Records the decision, signed by `signer` (the approver's key, if this machine holds it), on
/// a release `summary` verified (and audited as verified) for it with `release_key`. Every
/// refusal is audited.
pub fn decide(
    svc: &Services,
    pipeline: &Pipeline,
    release_key: &crate::keys::PublicKey,
    verified: &release::Verified,
    req: &DecisionRequest,
    signer: Option<&dyn Signer>,
) -> Result<Decision> {
    let DecisionRequest { release: release_id, stage: stage_name, actor, approver, verdict, comment } = req;
    let (verdict, comment) = (*verdict, comment.clone());
    let (_, policy) = approval_stage(pipeline, stage_name)?;
    if &verified.release != release_id {
        return Err(Error::invalid(format!("release `{}` was verified, not `{release_id}`", verified.release)));
    }
    let (record, request) = request_of(svc, pipeline, release_id, stage_name)?;
    let parties =
        Parties { builder: Some(verified.manifest.builder.actor.clone()), requester: record.as_ref().map(|r| r.requested_by.clone()) };
    let audit = |kind: EventKind, details: serde_json::Value| {
        svc.audit.append(Draft::new(kind, actor, &pipeline.name).release(release_id).stage(stage_name).details(details))
    };
    let refuse = |e: Error| -> Result<Decision> {
        refused(svc, pipeline, req, approver.as_deref(), &e)?;
        Err(e)
    };
    let approver = match approver {
        Some(name) => name.clone(),
        None => match approval::approver_for(pipeline, actor) {
            Ok(a) => a.name.clone(),
            Err(e) => return refuse(e),
        },
    };
    let approver = &approver;
    // The approvers, keys and thresholds of the published root, not the file CI can edit.
    if let Err(e) = crate::trust::check(svc.trust.current(&pipeline.name)?.as_ref(), pipeline, release_key, Some(stage_name)) {
        return refuse(e);
    }
    let Some(request) = request else {
        return refuse(Error::failed(format!("release `{release_id}` has not been put up for approval in stage `{stage_name}` yet")).hint(
            format!("a promotion asks for approvals: `ferry promote {} --release {release_id} --to {stage_name}`", pipeline.file.display()),
        ));
    };
    let pinned = approval::pinned(pipeline)?;
    if let Err(e) = approval::check_approver(policy, &pinned, approver, &parties, stage_name) {
        return refuse(e);
    }
    let Some(key) = pinned.iter().find(|a| &a.name == approver) else {
        return refuse(Error::failed(format!("`{approver}` is not a pinned approver of pipeline `{}`", pipeline.name)));
    };
    let Some(signer) = signer else {
        return refuse(Error::failed(format!("this machine holds no key for approver `{approver}`")).hint(format!(
            "an approval is signed with the approver's own key: `ferry keygen --name {approver}` (then pin its public key)"
        )));
    };
    if signer.keyid() != key.key.keyid() {
        return refuse(
            Error::failed(format!(
                "the key this decision would be signed with ({}) is not approver `{approver}`'s pinned key ({})",
                signer.keyid(),
                key.key.keyid()
            ))
            .hint(format!(
                "sign with `{approver}`'s own key (`ferry keygen --name {approver}` made it), or correct the pinned key in the pipeline"
            )),
        );
    }
    let digest = request.digest();
    // The same decision twice is recorded once: the first still counts.
    let (standing_now, _) = standing(svc, pipeline, release_id, &verified.manifest_sha256, stage_name, Some(&digest), &parties)?;
    let already = match (&standing_now, verdict) {
        (ApprovalState::Pending { have, .. }, Verdict::Approve) | (ApprovalState::Approved { by: have }, Verdict::Approve) => {
            have.iter().any(|a| a.as_str() == approver.as_str())
        }
        (ApprovalState::Rejected { by, .. }, Verdict::Reject) => by.as_str() == approver.as_str(),
        _ => false,
    };
    if already {
        let what = if verdict == Verdict::Approve { "approved" } else { "rejected" };
        return refuse(
            Error::invalid(format!("`{approver}` has already {what} release `{release_id}` for `{stage_name}`: nothing new was recorded"))
                .hint(format!("their decision stands; `ferry status {} --release {release_id}` shows it", pipeline.file.display())),
        );
    }
    let now = svc.clock.now();
    let predicate = ApprovalPredicate {
        pipeline: pipeline.name.clone(),
        stage: stage_name.clone(),
        verdict,
        approver: approver.clone(),
        request: digest.clone(),
        at: now,
        not_after: now.plus(policy.expires),
        comment: comment.clone(),
    };
    let envelope = signed::sign(release_id, &verified.manifest_sha256, &predicate, signer)?;
    // The event first: the log is never behind the approvals that count.
    let kind = if verdict == Verdict::Approve { EventKind::Approved } else { EventKind::Rejected };
    audit(
        kind,
        json!({"approver": approver, "keyid": signer.keyid(), "request": digest, "comment": comment, "expires_at": predicate.not_after}),
    )?;
    let location = svc.state.add_decision(&pipeline.name, release_id, stage_name, approver, now, &envelope.to_bytes()?)?;
    let (state, _) = standing(svc, pipeline, release_id, &verified.manifest_sha256, stage_name, Some(&digest), &parties)?;
    // The decision that completes (or ends) the stage's approvals is news: a dispatch
    // notification starts the run that carries the promotion on.
    let news = match (&standing_now, &state) {
        (ApprovalState::Approved { .. }, _) => None,
        (_, ApprovalState::Approved { by }) => Some((
            NotifyEvent::Approved,
            format!(
                "approved by {}; continue with: ferry promote {} --release {release_id} --to {stage_name}",
                by.iter().map(Actor::as_str).collect::<Vec<_>>().join(", "),
                pipeline.file.display()
            ),
        )),
        (_, ApprovalState::Rejected { by, .. }) if verdict == Verdict::Reject => {
            Some((NotifyEvent::Rejected, format!("rejected by {by}{}", comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default())))
        }
        _ => None,
    };
    if let Some((event, detail)) = news {
        let message = crate::notify::Message::new(event, pipeline, release_id, stage_name, actor, detail)
            .with_manifest(&verified.manifest, &verified.manifest_sha256);
        crate::notify::notify(svc, pipeline, actor, &message);
    }
    Ok(Decision {
        approver: approver.clone(),
        keyid: signer.keyid(),
        verdict,
        comment,
        at: now,
        expires_at: predicate.not_after,
        window_opens: window_opens(pipeline, stage_name, now),
        request: digest,
        location,
        state,
    })
}

/// When the stage's windows (and freezes) next let a deploy start, unless they do now. Only a
/// warning rides on it: a freeze file that cannot be read fails the promotion, not a decision.
fn window_opens(pipeline: &Pipeline, stage: &StageName, now: Timestamp) -> Option<crate::window::Opens> {
    let stage = pipeline.stage_or_error(stage).ok()?;
    let (windows, freezes) = pipeline.windows_of(stage).ok()?;
    let opens = crate::window::next_open(&windows, &freezes, now).ok()?;
    (opens != crate::window::Opens::Now).then_some(opens)
}

/// Everything a person should see before approving or rejecting: what the release is, where
/// it came from, whether its signature verifies, who asked, where the approvals stand, and
/// what the stage will do (with a CloudFormation stage's change-set preview).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub pipeline: crate::ids::PipelineName,
    pub stage: StageName,
    pub account: crate::ids::AccountId,
    pub account_alias: String,
    pub region: Option<crate::ids::Region>,
    pub release: ReleaseId,
    pub manifest_sha256: crate::ids::Sha256Digest,
    /// The key id of the pinned key the signature verified with.
    pub signed_by: String,
    pub artifacts: Vec<crate::manifest::ManifestArtifact>,
    pub images: Vec<crate::manifest::ManifestImage>,
    pub source: Option<crate::manifest::SourceInfo>,
    pub builder: crate::manifest::BuilderInfo,
    pub ci: Option<crate::manifest::CiRun>,
    pub requested_by: Option<Actor>,
    pub requested_at: Option<Timestamp>,
    pub approvals: ApprovalState,
    pub required: u32,
    /// When an approval given now would expire.
    pub approval_expires_at: Timestamp,
    /// When the stage's deployment window next opens, if it is closed now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_opens: Option<crate::window::Opens>,
    /// A protected stage: a person confirms by typing its name.
    pub critical: bool,
    pub deploy: Vec<String>,
    /// The change sets CloudFormation prepared for this release and stage (one line a change).
    pub change_sets: Vec<String>,
    /// The digest of the approval request a decision now signs (none: not put up for approval yet).
    pub request: Option<Sha256Digest>,
}

/// What `actor` is about to decide on, from the release verified once against the pinned key
/// (audited as verified for this approval); the verified release is handed on to `decide`.
pub fn summary(
    svc: &Services,
    pipeline: &Pipeline,
    pinned: &PublicKey,
    release_id: &ReleaseId,
    stage_name: &StageName,
    actor: &Actor,
) -> Result<(Summary, release::Verified)> {
    approval_stage(pipeline, stage_name)?;
    let verified = release::verify_audited(svc, pipeline, release_id, pinned, actor, &format!("approval for {stage_name}"), None)?;
    Ok((summary_of(svc, pipeline, &verified, stage_name)?, verified))
}

/// The summary of a release already verified (`release::verify`): for a page that shows it
/// before anyone decides, without writing to the audit log.
pub fn summary_of(svc: &Services, pipeline: &Pipeline, verified: &release::Verified, stage_name: &StageName) -> Result<Summary> {
    let (stage, policy) = approval_stage(pipeline, stage_name)?;
    let release_id = &verified.release;
    let (record, request) = request_of(svc, pipeline, release_id, stage_name)?;
    let parties =
        Parties { builder: Some(verified.manifest.builder.actor.clone()), requester: record.as_ref().map(|r| r.requested_by.clone()) };
    let digest = request.as_ref().map(ApprovalRequest::digest);
    let (approvals, _) = standing(svc, pipeline, release_id, &verified.manifest_sha256, stage_name, digest.as_ref(), &parties)?;
    let now = svc.clock.now();
    let m = verified.manifest.clone();
    Ok(Summary {
        pipeline: pipeline.name.clone(),
        stage: stage_name.clone(),
        account: stage.account.clone(),
        account_alias: stage.account_alias.clone(),
        region: stage.region.clone().or_else(|| pipeline.aws.as_ref().map(|a| a.region.clone())),
        release: release_id.clone(),
        manifest_sha256: verified.manifest_sha256.clone(),
        signed_by: verified.keyid.clone(),
        artifacts: m.artifacts,
        images: m.images,
        source: m.source,
        builder: m.builder,
        ci: m.ci,
        requested_by: record.as_ref().map(|r| r.requested_by.clone()),
        requested_at: record.as_ref().map(|r| r.requested_at),
        approvals,
        required: policy.required,
        approval_expires_at: now.plus(policy.expires),
        window_opens: window_opens(pipeline, stage_name, now),
        critical: pipeline.policy.protected_stages.contains(stage_name),
        deploy: request.as_ref().map_or_else(|| stage.deploy.iter().map(crate::pipeline::Action::summary).collect(), |r| r.deploy.clone()),
        change_sets: request.as_ref().map(|r| r.preview.clone()).unwrap_or_default(),
        request: digest,
    })
}

/// Whether what a person typed confirms `s`: a protected stage's name, exactly; for any other
/// stage the act of deciding is the confirmation.
pub fn confirmed(s: &Summary, typed: Option<&str>) -> bool {
    !s.critical || typed.is_some_and(|t| t.trim() == s.stage.as_str())
}
