//! Catching a stage record up with the audit log. Outcomes are written to the log before the
//! state that reports them, so a crash between the two leaves the record behind: an action
//! that ended still shows as started, a promotion that succeeded as in progress. The next run
//! (under the lock, before it decides anything) reads the stage's events after the record's
//! `audit_seq`, applies what they say, and records a `reconciled` event naming each change.

use serde_json::json;

use super::Promotion;
use crate::audit::{EventFilter, EventKind};
use crate::error::Result;
use crate::state::{ActionStatus, StageRecord, StageStatus, Step};

impl Promotion<'_> {
    pub(super) fn reconcile(&self, record: &StageRecord) -> Result<StageRecord> {
        let filter = EventFilter {
            release: Some(self.req.release.clone()),
            stage: Some(self.stage.name.clone()),
            pipeline: Some(self.pipeline.name.clone()),
            after: Some(record.audit_seq),
        };
        let events = self.svc.audit.events(&filter)?;
        let mut changes: Vec<String> = Vec::new();
        let mut steps: Vec<Step> = Vec::new();
        let started = |i: usize| record.actions().iter().any(|a| a.index == i && a.status == ActionStatus::Started);
        for e in &events {
            let action = e.details["action"].as_u64().and_then(|a| usize::try_from(a).ok());
            let detail = e.details["detail"].as_str().unwrap_or_default().to_owned();
            match (e.kind, action) {
                (EventKind::DeployStart, Some(i)) if !record.actions().iter().any(|a| a.index == i) => {
                    changes.push(format!("event {}: deploy action {i} was logged as starting but never started", e.seq));
                }
                (EventKind::DeployEnd, Some(i)) if started(i) => {
                    changes.push(format!("event {}: deploy action {i} succeeded", e.seq));
                    steps.push(Step::ActionEnded { index: i, succeeded: true, detail, at: e.at });
                }
                (EventKind::DeployFailed, Some(i)) if started(i) => {
                    changes.push(format!("event {}: deploy action {i} failed", e.seq));
                    steps.push(Step::ActionEnded { index: i, succeeded: false, detail, at: e.at });
                }
                (EventKind::DeployFailed, Some(i)) if e.details["started"] == false && record.status() != StageStatus::Failed => {
                    changes.push(format!("event {}: deploy action {i} could not start", e.seq));
                    steps.push(Step::ActionNotStarted { index: i, detail });
                }
                (EventKind::PromotionSucceeded, _) if record.status() != StageStatus::Succeeded => {
                    changes.push(format!("event {}: the promotion succeeded", e.seq));
                    // The attestation it signed is in the event.
                    let evidence = serde_json::from_value(e.details["attestation"].clone()).ok();
                    steps.push(Step::Succeed { at: e.at, evidence });
                }
                _ => {}
            }
        }
        if changes.is_empty() {
            return Ok(record.clone());
        }
        tracing::warn!("the state of stage `{}` was behind its audit log; caught up: {}", self.stage.name, changes.join("; "));
        let last = events.last().map_or(record.audit_seq, |e| e.seq);
        let mut caught_up = record.clone();
        for step in &steps {
            caught_up.apply(step.clone()).map_err(|illegal| {
                crate::Error::failed(format!("the audit log of stage `{}` says what its state cannot follow: {illegal}", self.stage.name))
                    .hint("`ferry audit show --release RELEASE` shows the events; `ferry status PIPELINE` the state")
            })?;
        }
        // Written with the promotion's next commit (the event first).
        self.audit(EventKind::Reconciled, json!({"from": record.audit_seq, "to": last, "changes": changes}))?;
        for step in steps {
            self.step(step)?;
        }
        Ok(caught_up)
    }
}
