//! The order check of a promotion: a required stage's success is proven by the deployment
//! attestation signed with the pipeline's key (`attestation::check_deployment`), never by a
//! state file; and this promotion's own success is attested the same way.

use serde_json::json;

use super::{Promotion, promote_command};
use crate::audit::EventKind;
use crate::error::{Error, Result};
use crate::ids::StageName;
use crate::state::{StageRecord, StageStatus};

impl Promotion<'_> {
    /// The deployment attestation of this success, signed with the pipeline's key (what later
    /// stages check); none if this process cannot sign.
    pub(super) fn attest(&self, attempt: u32) -> Result<Option<crate::attestation::Envelope>> {
        let Some(signer) = &self.svc.attester else {
            tracing::warn!("no signing key for deployment attestations: the success of stage `{}` carries no evidence", self.stage.name);
            return Ok(None);
        };
        let actions: Vec<String> = self.stage.deploy.iter().map(crate::pipeline::Action::summary).collect();
        let statement = crate::attestation::deployment_statement(
            &self.pipeline.name,
            &self.req.release,
            &self.verified.manifest_sha256,
            &self.stage.name,
            &actions,
            attempt,
            self.now(),
        );
        Ok(Some(crate::attestation::sign(&statement, signer.as_ref())?))
    }

    /// Whether `record` (of required stage `stage`) proves the release succeeded there: its
    /// status, and a deployment attestation signed with the pinned key for this release and
    /// stage (a state file anyone with the store's role can write proves nothing by itself).
    pub(super) fn proves_success(&self, stage: &StageName, record: Option<&StageRecord>) -> std::result::Result<(), String> {
        let Some(r) = record else { return Err("never promoted".into()) };
        if r.status() != StageStatus::Succeeded {
            return Err(crate::wire_name(&r.status()));
        }
        let Some(evidence) = &r.deployment else {
            return Err("its record says succeeded but carries no signed deployment attestation".into());
        };
        crate::attestation::check_deployment(
            evidence,
            self.pinned,
            &self.pipeline.name,
            &self.req.release,
            &self.verified.manifest_sha256,
            stage,
        )
        .map_err(|e| format!("its deployment attestation is not valid: {}", e.message))
    }

    pub(super) fn check_order(&self) -> Result<()> {
        for req in &self.stage.requires {
            let record = self.required(req)?;
            if let Err(why) = self.proves_success(req, record.as_ref()) {
                self.audit(EventKind::GateFailed, json!({"gate": "order", "requires": req, "status": why}))?;
                return Err(Error::failed(format!(
                    "release `{}` has not succeeded in stage `{req}` ({why}), which stage `{}` requires",
                    self.req.release, self.stage.name
                ))
                .hint(format!("promote it there first: `{}`", promote_command(self.pipeline, &self.req.release, req))));
            }
        }
        if !self.stage.requires.is_empty() {
            self.audit(EventKind::GatePassed, json!({"gate": "order", "requires": self.stage.requires}))?;
        }
        Ok(())
    }

    /// The record of the release in stage `stage` (one this stage requires): as this process
    /// wrote it when it succeeded here (a `ferry run`), else read; once per promotion.
    pub(super) fn required(&self, stage: &StageName) -> Result<Option<StageRecord>> {
        if let Some(r) = self.required.borrow().get(stage) {
            return Ok(r.clone());
        }
        let record = match self.svc.state.written_here(&self.pipeline.name, &self.req.release, stage) {
            Some(r) if r.status() == StageStatus::Succeeded => Some(r),
            _ => self.svc.state.read_stage(&self.pipeline.name, &self.req.release, stage)?.map(|v| v.value),
        };
        self.required.borrow_mut().insert(stage.clone(), record.clone());
        Ok(record)
    }
}
