//! Promotion state of one (release, stage): requested, in progress (with per-action progress
//! so a crash is never followed by a silent second deploy), succeeded, failed or rejected.
//! Stored versioned: every write names the revision it replaces.

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
    pub status: StageStatus,
    pub requested_by: Actor,
    pub requested_at: Timestamp,
    pub attempt: u32,
    pub actions: Vec<ActionProgress>,
    pub updated_at: Timestamp,
    pub message: Option<String>,
    /// When the release last succeeded in this stage; kept when a later request (a redeploy,
    /// a rollback awaiting approval) changes `status`.
    #[serde(default)]
    pub succeeded_at: Option<Timestamp>,
    /// Outputs of this stage's actions (e.g. stack outputs), offered to later actions and stages.
    #[serde(default)]
    pub outputs: std::collections::BTreeMap<String, String>,
    /// What the stage's actions would change, prepared while it awaits approval (a
    /// CloudFormation change set's summary), shown by `ferry approve`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preview: Vec<String>,
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
            requested_by: requested_by.clone(),
            requested_at: now,
            attempt: 0,
            actions: Vec::new(),
            updated_at: now,
            message: None,
            succeeded_at: None,
            outputs: std::collections::BTreeMap::new(),
            preview: Vec::new(),
            audit_seq: 0,
        }
    }

    /// The action that started and never recorded an end, if any: a crashed deploy.
    pub fn interrupted_action(&self) -> Option<&ActionProgress> {
        self.actions.iter().find(|a| a.status == ActionStatus::Started)
    }

    pub fn action_succeeded(&self, index: usize) -> bool {
        self.actions.iter().any(|a| a.index == index && a.status == ActionStatus::Succeeded)
    }
}
