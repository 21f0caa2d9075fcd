//! Where each release of a pipeline stands in each stage: per stage first what is live there
//! (the release that succeeded there last, rollbacks included) and what waits, then each
//! release's state, approvals so far and who may still approve until when, and the stage locks.

use serde::Serialize;

use crate::approval::{self, ApprovalState, Parties};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{Actor, ReleaseId, StageName};
use crate::manifest::ReleaseManifest;
use crate::pipeline::Pipeline;
use crate::ports::{LockInfo, Services};
use crate::state::StageStatus;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub pipeline: String,
    /// One line per stage, in pipeline order: what is live and what waits there.
    pub stages: Vec<StageSummary>,
    /// The newest releases first (at most the limit asked for).
    pub releases: Vec<ReleaseStatus>,
    /// How many older releases the limit left out.
    pub older: usize,
    pub locks: Vec<LockStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    pub stage: StageName,
    /// The release that succeeded in the stage last (after a rollback, the one restored).
    pub live: Option<ReleaseId>,
    pub live_since: Option<Timestamp>,
    /// Releases waiting there for approvals, oldest request first.
    pub awaiting_approval: Vec<ReleaseId>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseStatus {
    pub release: ReleaseId,
    pub built_at: Timestamp,
    pub builder: Actor,
    pub commit: Option<String>,
    pub stages: Vec<StageStatusLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageStatusLine {
    pub stage: StageName,
    /// `not_started` when the release was never requested in this stage.
    pub status: String,
    pub message: Option<String>,
    pub approvals: Option<ApprovalState>,
    pub approve_command: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LockStatus {
    pub stage: StageName,
    pub lock: LockInfo,
    pub stale: bool,
}

/// The status of `pipeline`: one release (`only`), or the newest `limit` releases.
pub fn status(svc: &Services, pipeline: &Pipeline, only: Option<&ReleaseId>, limit: usize) -> Result<Status> {
    // Everything in a few batched reads: the stage records, the pipeline's releases (from its
    // index: no other pipeline's manifest), and its approvals in one listing.
    let records = svc.state.list_stages(&pipeline.name)?;
    let ids = match only {
        Some(id) => vec![id.clone()],
        None => svc.store.list_releases(&pipeline.name)?,
    };
    let stored = svc.store.get_releases(&ids)?;
    let with_approvals = pipeline.stages.iter().any(|s| s.approval.is_some());
    let approvals = if with_approvals { svc.state.all_decisions(&pipeline.name)? } else { Vec::new() };
    let pinned = if with_approvals { approval::pinned(pipeline)? } else { Vec::new() };
    let mut releases = Vec::new();
    for (id, stored) in ids.into_iter().zip(stored) {
        let Some(stored) = stored else {
            if only.is_some() {
                svc.store.get_release(&id)?;
            }
            continue;
        };
        let Ok(manifest) = ReleaseManifest::from_bytes(&stored.manifest) else { continue };
        if manifest.pipeline != pipeline.name {
            continue;
        }
        let manifest_sha256 = ReleaseManifest::digest_of(&stored.manifest);
        let mut stages = Vec::new();
        for stage in &pipeline.stages {
            let record = records.iter().find(|r| r.release == id && r.stage == stage.name);
            let mut status = record.map_or("not_started".to_owned(), |r| crate::wire_name(&r.status()));
            let pending = record.is_some_and(|r| r.status() == StageStatus::AwaitingApproval);
            let approvals = match (&stage.approval, record) {
                (Some(policy), Some(r)) => {
                    let parties = Parties { builder: Some(manifest.builder.actor.clone()), requester: Some(r.requested_by.clone()) };
                    let recs: Vec<(String, Vec<u8>)> = approvals
                        .iter()
                        .filter(|a| a.release == id && a.stage == stage.name)
                        .map(|a| (a.location.clone(), a.bytes.clone()))
                        .collect();
                    let none = crate::ids::Sha256Digest::from_bytes([0; 32]);
                    let expected = crate::approval::signed::Expected {
                        pipeline: &pipeline.name,
                        release: &id,
                        manifest: &manifest_sha256,
                        stage: &stage.name,
                        request: r.request.as_ref().unwrap_or(&none),
                        now: svc.clock.now(),
                    };
                    Some(approval::evaluate(Some(policy), &pinned, &recs, &expected, &parties).0)
                }
                _ => None,
            };
            // A rejection is final the moment it is signed, not when someone next promotes.
            let rejected = matches!(approvals, Some(ApprovalState::Rejected { .. }));
            if rejected && pending {
                status = "rejected".to_owned();
            }
            let approve_command = (pending && !rejected).then(|| crate::promote::approve_command(pipeline, &id, &stage.name));
            stages.push(StageStatusLine {
                stage: stage.name.clone(),
                status,
                message: record.and_then(|r| r.message().map(str::to_owned)),
                approvals,
                approve_command,
            });
        }
        releases.push(ReleaseStatus {
            release: id,
            built_at: manifest.finished_at,
            builder: manifest.builder.actor.clone(),
            commit: manifest.source.map(|s| s.commit),
            stages,
        });
    }
    releases.sort_by_key(|r| std::cmp::Reverse(r.built_at));
    let rejected: Vec<(&ReleaseId, &StageName)> =
        releases.iter().flat_map(|r| r.stages.iter().filter(|s| s.status == "rejected").map(move |s| (&r.release, &s.stage))).collect();
    let stages = pipeline
        .stages
        .iter()
        .map(|stage| {
            let here: Vec<_> = records.iter().filter(|r| r.stage == stage.name).collect();
            let live = here.iter().filter_map(|r| r.succeeded_at().map(|t| (t, r))).max_by_key(|(t, _)| *t);
            let mut waiting: Vec<_> = here
                .iter()
                .filter(|r| r.status() == StageStatus::AwaitingApproval && !rejected.contains(&(&r.release, &stage.name)))
                .collect();
            waiting.sort_by_key(|r| r.requested_at);
            StageSummary {
                stage: stage.name.clone(),
                live: live.map(|(_, r)| r.release.clone()),
                live_since: live.map(|(t, _)| t),
                awaiting_approval: waiting.iter().map(|r| r.release.clone()).collect(),
            }
        })
        .collect();
    let older = releases.len().saturating_sub(limit.max(1));
    releases.truncate(limit.max(1));
    let mut locks = Vec::new();
    for stage in &pipeline.stages {
        if let Some((lock, stale)) = svc.locks.inspect(&pipeline.name, &stage.name)? {
            locks.push(LockStatus { stage: stage.name.clone(), lock, stale });
        }
    }
    Ok(Status { pipeline: pipeline.name.to_string(), stages, releases, older, locks })
}

/// A release waiting in a stage for an approval `actor` may give.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub pipeline: String,
    pub release: ReleaseId,
    pub stage: StageName,
    pub requested_by: Actor,
    pub requested_at: Timestamp,
    pub have: Vec<Actor>,
    pub need: u32,
    pub approve_command: String,
}

/// Everything in `pipeline` awaiting an approval from `actor`: allowed by the stage's policy,
/// not the builder or requester (unless self-approval is allowed), and not yet approved by them.
pub fn pending_for(svc: &Services, pipeline: &Pipeline, actor: &Actor) -> Result<Vec<Pending>> {
    let mut out = Vec::new();
    let pinned = approval::pinned(pipeline)?;
    for r in svc.state.list_stages(&pipeline.name)? {
        if r.status() != StageStatus::AwaitingApproval {
            continue;
        }
        let Some(policy) = pipeline.stage(&r.stage).and_then(|s| s.approval.as_ref()) else { continue };
        let Ok(stored) = svc.store.get_release(&r.release) else { continue };
        let Ok(manifest) = ReleaseManifest::from_bytes(&stored.manifest) else { continue };
        let parties = Parties { builder: Some(manifest.builder.actor.clone()), requester: Some(r.requested_by.clone()) };
        let Ok(me) = approval::approver_for(pipeline, actor) else { continue };
        if approval::check_approver(policy, &pinned, &me.name, &parties, &r.stage).is_err() {
            continue;
        }
        let manifest_sha256 = ReleaseManifest::digest_of(&stored.manifest);
        let (state, _) = crate::decide::standing(svc, pipeline, &r.release, &manifest_sha256, &r.stage, r.request.as_ref(), &parties)?;
        if let ApprovalState::Pending { have, need, .. } = state
            && !have.iter().any(|h| h.as_str() == me.name)
        {
            out.push(Pending {
                pipeline: pipeline.name.to_string(),
                approve_command: crate::promote::approve_command(pipeline, &r.release, &r.stage),
                release: r.release,
                stage: r.stage,
                requested_by: r.requested_by,
                requested_at: r.requested_at,
                have,
                need,
            });
        }
    }
    out.sort_by_key(|p| p.requested_at);
    Ok(out)
}
