//! Promotion state of one (release, stage) and the state machine that changes it. What a
//! promotion is doing is a `Phase` with the data that phase needs (deploying action i,
//! checking post-deploy gate j, failed with its `Cause`, rejected by whom); every change is a
//! `Step` applied by the one transition function, `StageRecord::apply`, which refuses illegal
//! transitions. The coarse `status` (what `ferry status` shows and scripts read) and the
//! message are derived from the phase there and nowhere else. Per-action progress is kept so a
//! crash is never followed by a silent second deploy. Stored versioned: every write names the
//! revision it replaces.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::ids::{Actor, PipelineName, ReleaseId, StageName};

pub const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageStatus {
    /// Requested; gates not yet passed.
    Requested,
    /// Requested and waiting for approvals.
    AwaitingApproval,
    InProgress,
    Succeeded,
    Failed,
    Rejected,
}

/// What a promotion of one release to one stage is doing, or how it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Requested; gates not yet passed.
    Requested,
    /// Waiting for approvals.
    AwaitingApproval,
    /// Rejected by an approver: final for this release and stage.
    Rejected {
        by: Actor,
    },
    /// Holding the stage lock, at deploy action `action` (started, or next to start).
    Deploying {
        action: usize,
    },
    /// Deployed; checking post-deploy gate `gate`.
    CheckingGate {
        gate: usize,
    },
    Succeeded,
    Failed {
        cause: Cause,
    },
}

/// Why a promotion failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cause {
    /// Deploy action `index` ran and failed.
    Action { index: usize, detail: String },
    /// Deploy action `index` could not start (its target could not be reached).
    ActionNotStarted { index: usize, detail: String },
    /// Gate `index` failed, before the deploy actions or after them.
    Gate { index: usize, after_deploy: bool, detail: String },
    /// Told to stop (SIGINT/SIGTERM, a lost lock) before `before` started.
    Stopped { before: String, reason: String },
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Action { index, detail } => write!(f, "deploy action {index} failed: {detail}"),
            Cause::ActionNotStarted { index, detail } => write!(f, "deploy action {index} could not start: {detail}"),
            Cause::Gate { index, after_deploy: true, detail } => {
                write!(f, "deployed, then a post-deploy gate failed (gate {index}, {detail})")
            }
            Cause::Gate { index, after_deploy: false, detail } => write!(f, "gate {index} failed ({detail})"),
            Cause::Stopped { before, reason } => write!(f, "stopped before {before}: {reason}"),
        }
    }
}

impl Phase {
    pub fn status(&self) -> StageStatus {
        match self {
            Phase::Requested => StageStatus::Requested,
            Phase::AwaitingApproval => StageStatus::AwaitingApproval,
            Phase::Rejected { .. } => StageStatus::Rejected,
            Phase::Deploying { .. } | Phase::CheckingGate { .. } => StageStatus::InProgress,
            Phase::Succeeded => StageStatus::Succeeded,
            Phase::Failed { .. } => StageStatus::Failed,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Phase::Requested => "requested",
            Phase::AwaitingApproval => "awaiting approval",
            Phase::Rejected { .. } => "rejected",
            Phase::Deploying { .. } => "deploying",
            Phase::CheckingGate { .. } => "checking a post-deploy gate",
            Phase::Succeeded => "succeeded",
            Phase::Failed { .. } => "failed",
        }
    }

    /// Holding the lock and working (deploying or checking a post-deploy gate).
    pub fn is_running(&self) -> bool {
        matches!(self, Phase::Deploying { .. } | Phase::CheckingGate { .. })
    }
}

/// One change to a stage record: the only way a record's phase changes (`StageRecord::apply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Approvals are pending; approvers are shown `preview`, and decide on `request` (the digest
    /// of the approval request written for them).
    AwaitApproval {
        preview: Vec<String>,
        request: Option<crate::ids::Sha256Digest>,
    },
    Reject {
        by: Actor,
    },
    /// A gate before the deploy actions failed.
    GateFailedBeforeDeploy {
        index: usize,
        detail: String,
    },
    /// The stage lock is held and deploying begins (`fresh`: a new attempt, forgetting the
    /// progress of the last one; otherwise an interrupted attempt is resumed).
    BeginDeploy {
        fresh: bool,
    },
    ActionStarted {
        index: usize,
        summary: String,
        at: Timestamp,
    },
    ActionEnded {
        index: usize,
        succeeded: bool,
        detail: String,
        at: Timestamp,
    },
    ActionNotStarted {
        index: usize,
        detail: String,
    },
    CheckGate {
        index: usize,
    },
    GateFailedAfterDeploy {
        index: usize,
        detail: String,
    },
    /// Deployed and healthy; `evidence` is the deployment attestation signed for it.
    Succeed {
        at: Timestamp,
        evidence: Option<crate::attestation::Envelope>,
    },
    Stop {
        before: String,
        reason: String,
    },
    /// A deploy action's outputs (a stack's), offered to later actions and stages.
    RecordOutputs {
        outputs: std::collections::BTreeMap<String, String>,
    },
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Step::AwaitApproval { .. } => "await approval",
            Step::Reject { .. } => "reject",
            Step::GateFailedBeforeDeploy { .. } => "fail a gate before deploying",
            Step::BeginDeploy { .. } => "begin deploying",
            Step::ActionStarted { .. } => "start a deploy action",
            Step::ActionEnded { .. } => "end a deploy action",
            Step::ActionNotStarted { .. } => "fail a deploy action that could not start",
            Step::CheckGate { .. } => "check a post-deploy gate",
            Step::GateFailedAfterDeploy { .. } => "fail a post-deploy gate",
            Step::Succeed { .. } => "succeed",
            Step::Stop { .. } => "stop",
            Step::RecordOutputs { .. } => "record outputs",
        }
    }
}

/// A step the record's phase does not allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Illegal {
    pub from: Phase,
    pub step: &'static str,
}

impl std::fmt::Display for Illegal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "a promotion that is {} cannot {}", self.from.name(), self.step)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionStatus {
    /// Started and not known to have finished: the action may have partly run.
    Started,
    Succeeded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionProgress {
    pub index: usize,
    pub summary: String,
    pub status: ActionStatus,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageRecord {
    pub version: u32,
    pub pipeline: PipelineName,
    pub release: ReleaseId,
    pub stage: StageName,
    /// Derived from `phase` by `apply` (stored for readers of the record).
    status: StageStatus,
    /// What the promotion is doing or how it ended. Records written before phases existed
    /// have none; `phase()` derives one from their status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phase: Option<Phase>,
    pub requested_by: Actor,
    pub requested_at: Timestamp,
    pub attempt: u32,
    /// Set by `apply` only.
    actions: Vec<ActionProgress>,
    pub updated_at: Timestamp,
    /// Derived from `phase` by `apply`: the cause of a failure, who rejected.
    message: Option<String>,
    /// When the release last succeeded in this stage: history, not the phase — kept when a
    /// later attempt (a redeploy, a rollback awaiting approval) changes it. Set by `apply`.
    #[serde(default)]
    succeeded_at: Option<Timestamp>,
    /// Outputs of this stage's actions (e.g. stack outputs), offered to later actions and stages.
    #[serde(default)]
    pub outputs: std::collections::BTreeMap<String, String>,
    /// What the stage's actions would change, prepared while it awaits approval (a
    /// CloudFormation change set's summary), shown by `ferry approve`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preview: Vec<String>,
    /// The digest of the approval request approvers decide on (`approval::signed::ApprovalRequest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<crate::ids::Sha256Digest>,
    /// The signed deployment attestation of the last success (`attestation::DEPLOYMENT_PREDICATE`):
    /// the evidence a later stage's order check verifies, not `status`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<crate::attestation::Envelope>,
    /// The position of the last audit event this record reflects. Events are written before
    /// the state that reports them, so a crash leaves the log ahead: the next run reads the
    /// events after this position and catches the record up (`reconciled`).
    #[serde(default)]
    pub audit_seq: u64,
}

impl StageRecord {
    pub fn new(pipeline: &PipelineName, release: &ReleaseId, stage: &StageName, requested_by: &Actor, now: Timestamp) -> Self {
        Self {
            version: STATE_VERSION,
            pipeline: pipeline.clone(),
            release: release.clone(),
            stage: stage.clone(),
            status: StageStatus::Requested,
            phase: Some(Phase::Requested),
            requested_by: requested_by.clone(),
            requested_at: now,
            attempt: 0,
            actions: Vec::new(),
            updated_at: now,
            message: None,
            succeeded_at: None,
            deployment: None,
            outputs: std::collections::BTreeMap::new(),
            preview: Vec::new(),
            request: None,
            audit_seq: 0,
        }
    }

    pub fn status(&self) -> StageStatus {
        self.status
    }

    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    pub fn succeeded_at(&self) -> Option<Timestamp> {
        self.succeeded_at
    }

    pub fn actions(&self) -> &[ActionProgress] {
        &self.actions
    }

    /// The phase (for an old record without one, the closest to its status).
    pub fn phase(&self) -> Phase {
        self.phase.clone().unwrap_or_else(|| match self.status {
            StageStatus::Requested => Phase::Requested,
            StageStatus::AwaitingApproval => Phase::AwaitingApproval,
            StageStatus::Rejected => Phase::Rejected { by: self.requested_by.clone() },
            StageStatus::InProgress => {
                Phase::Deploying { action: self.actions.iter().map(|a| a.index + 1).max().unwrap_or(0).saturating_sub(1) }
            }
            StageStatus::Succeeded => Phase::Succeeded,
            StageStatus::Failed => {
                let detail = self.message.clone().unwrap_or_else(|| "failed".into());
                match self.actions.iter().find(|a| a.status == ActionStatus::Failed) {
                    Some(a) => Phase::Failed { cause: Cause::Action { index: a.index, detail } },
                    None => Phase::Failed { cause: Cause::Stopped { before: "the end".into(), reason: detail } },
                }
            }
        })
    }

    /// The transition function: applies `step` if the current phase allows it, and derives
    /// status and message from the new phase. Nothing else changes a record's phase.
    pub fn apply(&mut self, step: Step) -> Result<(), Illegal> {
        let from = self.phase();
        let illegal = || Illegal { from: from.clone(), step: step.name() };
        let next = match (&from, &step) {
            // Before the lock: approvals, rejections, gates. Never while another run deploys,
            // and nothing undoes a rejection.
            (Phase::Rejected { .. }, _) => return Err(illegal()),
            (p, Step::AwaitApproval { .. } | Step::Reject { .. } | Step::GateFailedBeforeDeploy { .. }) if p.is_running() => {
                return Err(illegal());
            }
            (_, Step::AwaitApproval { .. }) => Phase::AwaitingApproval,
            (_, Step::Reject { by }) => Phase::Rejected { by: by.clone() },
            (_, Step::GateFailedBeforeDeploy { index, detail }) => {
                Phase::Failed { cause: Cause::Gate { index: *index, after_deploy: false, detail: detail.clone() } }
            }
            // Taking the stage: a new attempt from anywhere, or resuming an interrupted one.
            (_, Step::BeginDeploy { fresh: true }) => Phase::Deploying { action: 0 },
            (p, Step::BeginDeploy { fresh: false }) if p.is_running() => from.clone(),
            (_, Step::BeginDeploy { fresh: false }) => return Err(illegal()),
            // Deploying, one action after another.
            (Phase::Deploying { .. }, Step::ActionStarted { index, .. }) => Phase::Deploying { action: *index },
            (Phase::Deploying { action }, Step::ActionEnded { index, succeeded, detail, .. }) if action == index => {
                if *succeeded {
                    from.clone()
                } else {
                    Phase::Failed { cause: Cause::Action { index: *index, detail: detail.clone() } }
                }
            }
            (Phase::Deploying { .. }, Step::RecordOutputs { .. }) => from.clone(),
            (Phase::Deploying { .. }, Step::ActionNotStarted { index, detail }) => {
                Phase::Failed { cause: Cause::ActionNotStarted { index: *index, detail: detail.clone() } }
            }
            // Deployed: post-deploy gates, then the outcome.
            (Phase::Deploying { .. } | Phase::CheckingGate { .. }, Step::CheckGate { index }) => Phase::CheckingGate { gate: *index },
            (Phase::CheckingGate { gate }, Step::GateFailedAfterDeploy { index, detail }) if gate == index => {
                Phase::Failed { cause: Cause::Gate { index: *index, after_deploy: true, detail: detail.clone() } }
            }
            (Phase::Deploying { .. } | Phase::CheckingGate { .. }, Step::Succeed { .. }) => Phase::Succeeded,
            (_, Step::Stop { before, reason }) => {
                Phase::Failed { cause: Cause::Stopped { before: before.clone(), reason: reason.clone() } }
            }
            _ => return Err(illegal()),
        };
        match &step {
            Step::AwaitApproval { preview, request } => {
                self.preview.clone_from(preview);
                self.request.clone_from(request);
            }
            Step::BeginDeploy { fresh: true } => {
                self.attempt += 1;
                self.actions.clear();
                self.deployment = None;
            }
            Step::ActionStarted { index, summary, at } => {
                self.actions.retain(|a| a.index != *index);
                self.actions.push(ActionProgress {
                    index: *index,
                    summary: summary.clone(),
                    status: ActionStatus::Started,
                    started_at: *at,
                    finished_at: None,
                    detail: None,
                });
            }
            Step::ActionEnded { index, succeeded, detail, at } => {
                if let Some(a) = self.actions.iter_mut().find(|a| a.index == *index) {
                    a.status = if *succeeded { ActionStatus::Succeeded } else { ActionStatus::Failed };
                    a.finished_at = Some(*at);
                    a.detail = Some(detail.clone());
                }
            }
            Step::Succeed { at, evidence } => {
                self.succeeded_at = Some(*at);
                self.deployment.clone_from(evidence);
            }
            Step::RecordOutputs { outputs } => self.outputs.extend(outputs.clone()),
            _ => {}
        }
        self.status = next.status();
        self.message = match &next {
            Phase::Failed { cause } => Some(cause.to_string()),
            Phase::Rejected { by } => Some(format!("rejected by {by}")),
            _ => None,
        };
        self.phase = Some(next);
        Ok(())
    }

    /// The action that started and never recorded an end, if any: a crashed deploy.
    pub fn interrupted_action(&self) -> Option<&ActionProgress> {
        self.actions.iter().find(|a| a.status == ActionStatus::Started)
    }

    pub fn action_succeeded(&self, index: usize) -> bool {
        self.actions.iter().any(|a| a.index == index && a.status == ActionStatus::Succeeded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> Timestamp {
        Timestamp::from_unix(1_767_000_000)
    }

    fn record_in(phase: &Phase) -> StageRecord {
        let mut r = StageRecord::new(
            &"p".parse().unwrap(),
            &ReleaseId::for_manifest(&crate::ids::Sha256Digest::of(b"m")),
            &"prod".parse().unwrap(),
            &"a".parse().unwrap(),
            t(),
        );
        r.phase = Some(phase.clone());
        r.status = phase.status();
        r
    }

    fn failed(cause: Cause) -> Phase {
        Phase::Failed { cause }
    }

    #[test]
    fn the_transition_table() {
        let carol: Actor = "carol".parse().unwrap();
        let rejected = Phase::Rejected { by: carol.clone() };
        let action_failed = failed(Cause::Action { index: 1, detail: "exit 2".into() });
        let gate_failed = failed(Cause::Gate { index: 0, after_deploy: true, detail: "503".into() });
        let started = |index| Step::ActionStarted { index, summary: "s".into(), at: t() };
        let ended = |index, succeeded| Step::ActionEnded { index, succeeded, detail: "exit 2".into(), at: t() };
        let stop = Step::Stop { before: "deploy action 1".into(), reason: "ferry received SIGTERM".into() };
        let stopped = failed(Cause::Stopped { before: "deploy action 1".into(), reason: "ferry received SIGTERM".into() });
        let outputs = Step::RecordOutputs { outputs: [("BucketName".to_owned(), "site-prod".to_owned())].into() };
        use Phase::*;
        // (from, step, the phase after it; None: refused)
        let table: Vec<(Phase, Step, Option<Phase>)> = vec![
            (Requested, Step::AwaitApproval { preview: vec![], request: None }, Some(AwaitingApproval)),
            (AwaitingApproval, Step::AwaitApproval { preview: vec![], request: None }, Some(AwaitingApproval)),
            (Succeeded, Step::AwaitApproval { preview: vec![], request: None }, Some(AwaitingApproval)),
            (AwaitingApproval, Step::Reject { by: carol.clone() }, Some(rejected.clone())),
            (
                Requested,
                Step::GateFailedBeforeDeploy { index: 0, detail: "d".into() },
                Some(failed(Cause::Gate { index: 0, after_deploy: false, detail: "d".into() })),
            ),
            (Requested, Step::BeginDeploy { fresh: true }, Some(Deploying { action: 0 })),
            (AwaitingApproval, Step::BeginDeploy { fresh: true }, Some(Deploying { action: 0 })),
            (Succeeded, Step::BeginDeploy { fresh: true }, Some(Deploying { action: 0 })),
            (action_failed.clone(), Step::BeginDeploy { fresh: true }, Some(Deploying { action: 0 })),
            (Deploying { action: 2 }, Step::BeginDeploy { fresh: false }, Some(Deploying { action: 2 })),
            (CheckingGate { gate: 1 }, Step::BeginDeploy { fresh: false }, Some(CheckingGate { gate: 1 })),
            (Deploying { action: 0 }, started(1), Some(Deploying { action: 1 })),
            (Deploying { action: 1 }, ended(1, true), Some(Deploying { action: 1 })),
            (Deploying { action: 1 }, ended(1, false), Some(action_failed.clone())),
            (
                Deploying { action: 0 },
                Step::ActionNotStarted { index: 0, detail: "denied".into() },
                Some(failed(Cause::ActionNotStarted { index: 0, detail: "denied".into() })),
            ),
            (Deploying { action: 1 }, Step::CheckGate { index: 0 }, Some(CheckingGate { gate: 0 })),
            (CheckingGate { gate: 0 }, Step::CheckGate { index: 2 }, Some(CheckingGate { gate: 2 })),
            (CheckingGate { gate: 0 }, Step::GateFailedAfterDeploy { index: 0, detail: "503".into() }, Some(gate_failed.clone())),
            (CheckingGate { gate: 0 }, Step::Succeed { at: t(), evidence: None }, Some(Succeeded)),
            (Deploying { action: 1 }, Step::Succeed { at: t(), evidence: None }, Some(Succeeded)),
            (Deploying { action: 1 }, stop.clone(), Some(stopped.clone())),
            (Requested, stop.clone(), Some(stopped.clone())),
            // Refused: nothing follows a rejection; nothing decided before the lock while a run
            // deploys; no resuming what is not running; actions only while deploying, and in order.
            (rejected.clone(), Step::BeginDeploy { fresh: true }, None),
            (rejected.clone(), Step::AwaitApproval { preview: vec![], request: None }, None),
            (rejected.clone(), stop.clone(), None),
            (Deploying { action: 0 }, Step::Reject { by: carol.clone() }, None),
            (Deploying { action: 0 }, Step::AwaitApproval { preview: vec![], request: None }, None),
            (CheckingGate { gate: 0 }, Step::GateFailedBeforeDeploy { index: 0, detail: "d".into() }, None),
            (Succeeded, Step::BeginDeploy { fresh: false }, None),
            (Requested, started(0), None),
            (Succeeded, started(0), None),
            (Deploying { action: 0 }, ended(1, true), None),
            (CheckingGate { gate: 0 }, started(0), None),
            (CheckingGate { gate: 1 }, Step::GateFailedAfterDeploy { index: 0, detail: "503".into() }, None),
            (Deploying { action: 0 }, Step::GateFailedAfterDeploy { index: 0, detail: "503".into() }, None),
            (Requested, Step::Succeed { at: t(), evidence: None }, None),
            (action_failed.clone(), Step::Succeed { at: t(), evidence: None }, None),
            (AwaitingApproval, Step::CheckGate { index: 0 }, None),
            // Outputs come from deploy actions, so only while deploying.
            (Deploying { action: 1 }, outputs.clone(), Some(Deploying { action: 1 })),
            (CheckingGate { gate: 0 }, outputs.clone(), None),
            (Succeeded, outputs.clone(), None),
        ];
        for (from, step, expected) in table {
            let mut r = record_in(&from);
            let got = r.apply(step.clone());
            match expected {
                Some(to) => {
                    assert_eq!(got, Ok(()), "{from:?} --{step:?}-->");
                    assert_eq!(r.phase(), to, "{from:?} --{step:?}-->");
                    assert_eq!(r.status(), to.status(), "status follows the phase");
                }
                None => {
                    assert_eq!(got, Err(Illegal { from: from.clone(), step: step.name() }), "{from:?} --{step:?}--> must be refused");
                    assert_eq!(r.phase(), from, "a refused step changes nothing");
                }
            }
        }
    }

    #[test]
    fn a_post_deploy_gate_failure_names_the_gate_and_keeps_the_actions_that_succeeded() {
        let mut r = record_in(&Phase::Requested);
        r.apply(Step::BeginDeploy { fresh: true }).unwrap();
        r.apply(Step::ActionStarted { index: 0, summary: "deploy".into(), at: t() }).unwrap();
        r.apply(Step::ActionEnded { index: 0, succeeded: true, detail: "exit code 0".into(), at: t() }).unwrap();
        r.apply(Step::CheckGate { index: 1 }).unwrap();
        r.apply(Step::GateFailedAfterDeploy { index: 1, detail: "http: GET /health: status 503".into() }).unwrap();
        assert_eq!(r.status(), StageStatus::Failed);
        assert_eq!(r.message(), Some("deployed, then a post-deploy gate failed (gate 1, http: GET /health: status 503)"));
        assert!(r.action_succeeded(0));
        // A redeploy starts a new attempt: progress forgotten, the success history kept.
        r.apply(Step::BeginDeploy { fresh: true }).unwrap();
        assert_eq!((r.attempt, r.actions().len(), r.message()), (2, 0, None));
    }

    #[test]
    fn success_is_remembered_across_later_attempts() {
        let mut r = record_in(&Phase::Requested);
        r.apply(Step::BeginDeploy { fresh: true }).unwrap();
        r.apply(Step::Succeed { at: t(), evidence: None }).unwrap();
        r.apply(Step::AwaitApproval { preview: vec!["stack `web`: Modify Bucket".into()], request: None }).unwrap();
        assert_eq!((r.status(), r.succeeded_at(), r.preview.len()), (StageStatus::AwaitingApproval, Some(t()), 1));
    }

    #[test]
    fn a_record_from_before_phases_reads_as_the_phase_its_status_says() {
        let mut old = serde_json::to_value(record_in(&Phase::Requested)).unwrap();
        old.as_object_mut().unwrap().remove("phase");
        old["status"] = "succeeded".into();
        let r: StageRecord = serde_json::from_value(old).unwrap();
        assert_eq!(r.phase(), Phase::Succeeded);
    }
}
