//! Recording an approval or a rejection: the release is verified first, the decider is
//! checked against the stage's policy (allowed approvers, separation of duties), and the
//! decision is bound to exactly one (release, stage) and audited before it is reported.

use serde_json::json;

use crate::approval::{self, APPROVAL_VERSION, ApprovalRecord, ApprovalState, Parties, Verdict};
use crate::audit::{Draft, EventKind};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{Actor, ReleaseId, StageName};
use crate::keys::PublicKey;
use crate::pipeline::Pipeline;
use crate::ports::Services;
use crate::release;

#[derive(Debug, Clone, serde::Serialize)]
pub struct Decision {
    pub record: ApprovalRecord,
    /// Where the stage's approvals stand after this decision.
    pub state: ApprovalState,
}

/// One person's decision on one (release, stage).
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    pub release: ReleaseId,
    pub stage: StageName,
    pub actor: Actor,
    pub verdict: Verdict,
    pub comment: Option<String>,
}

/// The stage and its approval policy; a stage without one has nothing to approve.
fn approval_stage<'p>(
    pipeline: &'p Pipeline,
    stage_name: &StageName,
) -> Result<(&'p crate::pipeline::Stage, &'p crate::pipeline::ApprovalPolicy)> {
    let stage =
        pipeline.stage(stage_name).ok_or_else(|| Error::invalid(format!("pipeline `{}` has no stage `{stage_name}`", pipeline.name)))?;
    let policy = stage
        .approval
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("stage `{stage_name}` has no approval policy; there is nothing to approve")))?;
    Ok((stage, policy))
}

/// Records the decision on a release `summary` verified (and audited as verified) for it.
pub fn decide(svc: &Services, pipeline: &Pipeline, verified: &release::Verified, req: &DecisionRequest) -> Result<Decision> {
    let DecisionRequest { release: release_id, stage: stage_name, actor, verdict, comment } = req;
    let (verdict, comment) = (*verdict, comment.clone());
    let (_, policy) = approval_stage(pipeline, stage_name)?;
    if &verified.release != release_id {
        return Err(Error::invalid(format!("release `{}` was verified, not `{release_id}`", verified.release)));
    }
    let record = svc.state.read_stage(&pipeline.name, release_id, stage_name)?;
    let parties = Parties { builder: Some(verified.manifest.builder.actor.clone()), requester: record.map(|r| r.value.requested_by) };
    let audit = |kind: EventKind, details: serde_json::Value| {
        svc.audit.append(Draft::new(kind, actor, &pipeline.name).release(release_id).stage(stage_name).details(details))
    };
    if let Err(e) = approval::check_approver(policy, actor, &parties, stage_name) {
        audit(EventKind::ApprovalRefused, json!({"verdict": verdict, "reason": e.message}))?;
        return Err(e);
    }
    let now = svc.clock.now();
    let record = ApprovalRecord {
        version: APPROVAL_VERSION,
        pipeline: pipeline.name.clone(),
        release: release_id.clone(),
        stage: stage_name.clone(),
        actor: actor.clone(),
        verdict,
        comment: comment.clone(),
        at: now,
        expires_at: now.plus(policy.expires),
    };
    // The event first: the log is never behind the approvals that count.
    let kind = if verdict == Verdict::Approve { EventKind::Approved } else { EventKind::Rejected };
    audit(kind, json!({"comment": comment, "expires_at": record.expires_at}))?;
    svc.state.add_approval(&record)?;
    let all = svc.state.approvals(&pipeline.name, release_id, stage_name)?;
    let state = approval::evaluate(Some(policy), &all, release_id, stage_name, &parties, svc.clock.now());
    Ok(Decision { record, state })
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
    /// A protected stage: a person confirms by typing its name.
    pub critical: bool,
    pub deploy: Vec<String>,
    /// The change sets CloudFormation prepared for this release and stage (one line a change).
    pub change_sets: Vec<String>,
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
    let (stage, policy) = approval_stage(pipeline, stage_name)?;
    let verified = release::verify_audited(svc, pipeline, release_id, pinned, actor, &format!("approval for {stage_name}"), None)?;
    let record = svc.state.read_stage(&pipeline.name, release_id, stage_name)?.map(|r| r.value);
    let parties =
        Parties { builder: Some(verified.manifest.builder.actor.clone()), requester: record.as_ref().map(|r| r.requested_by.clone()) };
    let all = svc.state.approvals(&pipeline.name, release_id, stage_name)?;
    let now = svc.clock.now();
    let m = verified.manifest.clone();
    let summary = Summary {
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
        approvals: approval::evaluate(Some(policy), &all, release_id, stage_name, &parties, now),
        required: policy.required,
        approval_expires_at: now.plus(policy.expires),
        critical: pipeline.policy.protected_stages.contains(stage_name),
        deploy: stage.deploy.iter().map(crate::pipeline::Action::summary).collect(),
        change_sets: record.map(|r| r.preview).unwrap_or_default(),
    };
    Ok((summary, verified))
}
