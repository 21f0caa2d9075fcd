//! Rolling a stage back: choose the release to restore (the named one, or the last one that
//! succeeded there before the latest attempt), audit the decision, and promote it again with
//! full verification. Approvals apply unless the pipeline's policy waives them for rollbacks.
//! `promote` wraps a promotion: when a post-deploy gate fails on a stage with
//! `on_failure: rollback`, the rollback follows once the failed promotion is over.

use serde::Serialize;
use serde_json::json;

use crate::audit::{Draft, EventKind};
use crate::error::{Error, Result};
use crate::ids::{ReleaseId, StageName};
use crate::keys::PublicKey;
use crate::pipeline::{OnFailure, Pipeline};
use crate::ports::Services;
use crate::promote::{self, Outcome, Request};
use crate::state::{StageRecord, StageStatus};

#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    /// The release of the latest attempt in the stage (what is being rolled back).
    pub from: Option<ReleaseId>,
    pub to: ReleaseId,
    pub outcome: Outcome,
}

/// A promotion's outcome and the automatic rollback that followed it, if any.
#[derive(Debug, Clone, Serialize)]
pub struct Guarded {
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Present when a post-deploy gate failed on a stage with `on_failure: rollback`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Box<Rollback>>,
}

/// Promotes `req.release` to `req.stage`; when a post-deploy gate fails there and the stage
/// says `on_failure: rollback`, rolls it back to the previous good release (after the failed
/// promotion released its lock).
pub fn promote(svc: &Services, pipeline: &Pipeline, pinned: &PublicKey, req: &Request) -> Result<Guarded> {
    let outcome = promote::promote(svc, pipeline, pinned, req)?;
    let rolls_back = pipeline.stage(&req.stage).is_some_and(|s| s.on_failure == OnFailure::Rollback) && !req.rollback;
    let Outcome::PostDeployGateFailed { release, stage, gate, .. } = &outcome else { return Ok(Guarded { outcome, rollback: None }) };
    if !rolls_back {
        return Ok(Guarded { outcome, rollback: None });
    }
    tracing::warn!("a post-deploy gate of `{stage}` failed; rolling back automatically");
    let back = RollbackRequest { stage: stage.clone(), to: None, actor: req.actor.clone(), wait: req.wait, lease: req.lease };
    let why = format!("automatic: post-deploy gate `{gate}` failed for {release}");
    let rolled = rollback_because(svc, pipeline, pinned, &back, &why)?;
    Ok(Guarded { outcome, rollback: Some(Box::new(rolled)) })
}

/// The release to restore in `stage`: `to` if it once succeeded there, else the most recent
/// success other than the release of the latest deploy attempt (a request still awaiting
/// approval or rejected is not an attempt).
pub fn target(records: &[StageRecord], stage: &StageName, to: Option<&ReleaseId>) -> Result<(Option<ReleaseId>, ReleaseId)> {
    let in_stage: Vec<&StageRecord> = records.iter().filter(|r| &r.stage == stage).collect();
    let latest = in_stage
        .iter()
        .filter(|r| !matches!(r.status(), StageStatus::Requested | StageStatus::AwaitingApproval | StageStatus::Rejected))
        .max_by_key(|r| r.updated_at)
        .map(|r| r.release.clone());
    let mut succeeded: Vec<&&StageRecord> = in_stage.iter().filter(|r| r.succeeded_at().is_some()).collect();
    succeeded.sort_by_key(|r| r.succeeded_at());
    let chosen = match to {
        Some(id) => succeeded.iter().find(|r| &r.release == id).map(|r| r.release.clone()).ok_or_else(|| {
            Error::invalid(format!("release `{id}` never succeeded in stage `{stage}`, so it cannot be rolled back to"))
                .hint("`ferry status PIPELINE` shows where each release succeeded")
        })?,
        None => succeeded
            .iter()
            .rev()
            .find(|r| Some(&r.release) != latest.as_ref())
            .map(|r| r.release.clone())
            .ok_or_else(|| Error::failed(format!("stage `{stage}` has no earlier successful release to roll back to")))?,
    };
    Ok((latest, chosen))
}

/// What to roll back, and how to promote the release chosen.
#[derive(Debug, Clone)]
pub struct RollbackRequest {
    pub stage: StageName,
    /// The release to restore; the previous good one when `None`.
    pub to: Option<ReleaseId>,
    pub actor: crate::ids::Actor,
    pub wait: Option<std::time::Duration>,
    pub lease: std::time::Duration,
}

/// Rolls `req.stage` back to `req.to` (or the previous good release), as `req.actor`.
pub fn rollback(svc: &Services, pipeline: &Pipeline, pinned: &PublicKey, req: &RollbackRequest) -> Result<Rollback> {
    rollback_because(svc, pipeline, pinned, req, "requested")
}

/// `rollback`, with `why` recorded in the audit event (e.g. an automatic rollback).
pub fn rollback_because(svc: &Services, pipeline: &Pipeline, pinned: &PublicKey, req: &RollbackRequest, why: &str) -> Result<Rollback> {
    let records = svc.state.list_stages(&pipeline.name)?;
    let (from, chosen) = target(&records, &req.stage, req.to.as_ref())?;
    let choice = if req.to.is_some() { "named release" } else { "previous successful release" };
    let details = json!({"from": from, "to": chosen, "choice": choice, "why": why});
    let d = Draft::new(EventKind::RollbackStarted, &req.actor, &pipeline.name).release(&chosen).stage(&req.stage).details(details);
    svc.audit.append(d)?;
    let promote = Request {
        release: chosen.clone(),
        stage: req.stage.clone(),
        actor: req.actor.clone(),
        redeploy: true,
        wait: req.wait,
        lease: req.lease,
        rollback: true,
    };
    let outcome = promote::promote(svc, pipeline, pinned, &promote)?;
    Ok(Rollback { from, to: chosen, outcome })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;
    use crate::state::Step;

    fn rec(release: &str, status: StageStatus, at: i64) -> StageRecord {
        let id = ReleaseId::for_manifest(&crate::ids::Sha256Digest::of(release.as_bytes()));
        let t = Timestamp::from_unix(1_767_000_000).plus(std::time::Duration::from_secs(at as u64));
        let mut r = StageRecord::new(&"p".parse().unwrap(), &id, &"prod".parse().unwrap(), &"a".parse().unwrap(), t);
        r.apply(Step::BeginDeploy { fresh: true }).unwrap();
        r.apply(Step::ActionStarted { index: 0, summary: "deploy".into(), at: t }).unwrap();
        let succeeded = status == StageStatus::Succeeded;
        r.apply(Step::ActionEnded { index: 0, succeeded, detail: String::new(), at: t }).unwrap();
        if succeeded {
            r.apply(Step::Succeed { at: t, evidence: None }).unwrap();
        }
        assert_eq!(r.status(), status);
        r
    }

    #[test]
    fn the_previous_success_is_chosen_whether_the_latest_succeeded_or_failed() {
        let prod: StageName = "prod".parse().unwrap();
        let (a, b) = (rec("a", StageStatus::Succeeded, 1), rec("b", StageStatus::Succeeded, 2));
        assert_eq!(target(&[a.clone(), b.clone()], &prod, None).unwrap(), (Some(b.release.clone()), a.release.clone()));
        let failed = rec("b", StageStatus::Failed, 2);
        assert_eq!(target(&[a.clone(), failed.clone()], &prod, None).unwrap().1, a.release);
        assert!(target(std::slice::from_ref(&a), &prod, None).is_err(), "nothing earlier than the only release");
        assert!(target(&[a.clone(), failed.clone()], &prod, Some(&failed.release)).is_err(), "never succeeded");
        // A rollback to A that waits for approval is not the latest attempt: B still is.
        let mut pending_a = a.clone();
        pending_a.apply(Step::AwaitApproval { preview: Vec::new(), request: None }).unwrap();
        pending_a.updated_at = b.updated_at.plus(std::time::Duration::from_secs(5));
        assert_eq!(target(&[pending_a, b.clone()], &prod, None).unwrap(), (Some(b.release), a.release));
    }
}
