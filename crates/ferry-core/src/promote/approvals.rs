//! The approval gate of a promotion: the approval request approvers decide on (written when the
//! stage first waits), where the stage's signed decisions stand (`decide::standing`), and the
//! records that do not count, each audited with why.

use serde_json::json;

use super::{Outcome, Promotion, approve_command};
use crate::approval::{ApprovalState, Parties};
use crate::audit::EventKind;
use crate::error::{Error, Result};
use crate::state::{Phase, StageRecord, Step};

impl Promotion<'_> {
    pub(super) fn check_approvals(&self, record: &StageRecord) -> Result<Option<Outcome>> {
        let Some(policy) = &self.stage.approval else { return Ok(None) };
        if self.req.rollback && self.pipeline.policy.allow_rollback_without_approval {
            self.audit(
                EventKind::GatePassed,
                json!({"gate": "approval", "waived": "rollback without approval is allowed by the pipeline's policy"}),
            )?;
            return Ok(None);
        }
        let parties = Parties { builder: Some(self.verified.manifest.builder.actor.clone()), requester: Some(record.requested_by.clone()) };
        // What approvers decide on: written once, when the stage first waits for them (with
        // what the stage would change, prepared then).
        let (digest, new_request) = match &record.request {
            Some(d) => (d.clone(), None),
            None => {
                let preview = if record.preview.is_empty() { self.preview() } else { record.preview.clone() };
                let request = crate::approval::signed::ApprovalRequest {
                    pipeline: self.pipeline.name.clone(),
                    release: self.req.release.clone(),
                    manifest_sha256: self.verified.manifest_sha256.clone(),
                    stage: self.stage.name.clone(),
                    requested_by: record.requested_by.clone(),
                    requested_at: record.requested_at,
                    deploy: self.stage.deploy.iter().map(crate::pipeline::Action::summary).collect(),
                    preview,
                };
                (request.digest(), Some(request))
            }
        };
        let (state, refused) = crate::decide::standing(
            self.svc,
            self.pipeline,
            &self.req.release,
            &self.verified.manifest_sha256,
            &self.stage.name,
            Some(&digest),
            &parties,
        )?;
        // A record that does not count is said so, with why (a forged file, a signature by
        // a key nobody pinned, one for another release, stage or request, an expired one…).
        for r in &refused {
            self.audit(EventKind::ApprovalRefused, json!({"record": r.record, "reason": r.reason, "request": digest}))?;
        }
        match state {
            ApprovalState::NotRequired => Ok(None),
            ApprovalState::Approved { by } => {
                self.audit(
                    EventKind::GatePassed,
                    json!({"gate": "approval", "approved_by": by, "required": policy.required, "request": digest}),
                )?;
                Ok(None)
            }
            ApprovalState::Rejected { by, comment, at } => {
                self.audit(EventKind::GateFailed, json!({"gate": "approval", "rejected_by": by, "comment": comment}))?;
                if !matches!(record.phase(), Phase::Rejected { .. }) {
                    self.step(Step::Reject { by: by.clone() })?;
                }
                let why = comment.map(|c| format!(": {c}")).unwrap_or_default();
                Err(Error::failed(format!(
                    "release `{}` was rejected for stage `{}` by `{by}` at {at}{why}",
                    self.req.release, self.stage.name
                ))
                .hint("a rejection is final for this release and stage; fix the problem and build a new release"))
            }
            ApprovalState::Pending { have, need, eligible, excluded, .. } => {
                let preview = match &new_request {
                    Some(r) => {
                        self.svc.state.put_request(r)?;
                        r.preview.clone()
                    }
                    None => record.preview.clone(),
                };
                let cmd = approve_command(self.pipeline, &self.req.release, &self.stage.name);
                self.audit(
                    EventKind::ApprovalPending,
                    json!({"have": have, "need": need, "eligible": eligible, "excluded": excluded, "approve_command": cmd, "preview": preview,
                           "request": digest}),
                )?;
                self.step(Step::AwaitApproval { preview, request: Some(digest) })?;
                Ok(Some(Outcome::AwaitingApproval {
                    release: self.req.release.clone(),
                    stage: self.stage.name.clone(),
                    have,
                    need,
                    eligible,
                    excluded,
                    approve_command: cmd,
                }))
            }
        }
    }
}
