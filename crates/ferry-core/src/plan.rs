//! The plan of a pipeline: every stage with its account, requirements, gates and actions, in
//! the order `ferry run` would take them. A stage's plan is a list of typed steps
//! (`stage_steps`): `promote` executes exactly that list, and `ferry plan` prints it, so the two
//! cannot drift apart.

use serde::Serialize;

use crate::ids::{AccountId, PipelineName, StageName};
use crate::pipeline::{Backend, Gate, OnFailure, Pipeline, Stage, When};

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub version: u32,
    pub pipeline: PipelineName,
    pub backend: Backend,
    pub build: BuildPlan,
    pub stages: Vec<StagePlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildPlan {
    pub account: String,
    pub account_id: AccountId,
    pub command: Option<String>,
    pub working_dir: String,
    pub artifacts: Vec<String>,
    pub signing_key: String,
    pub public_key: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StagePlan {
    pub name: StageName,
    pub account: String,
    pub account_id: AccountId,
    pub region: Option<String>,
    pub requires: Vec<StageName>,
    pub steps: Vec<String>,
}

pub fn plan(p: &Pipeline) -> Plan {
    let build = BuildPlan {
        account: p.build.account_alias.clone(),
        account_id: p.build.account.clone(),
        command: p.build.command.clone(),
        working_dir: p.working_dir().display().to_string(),
        artifacts: p
            .build
            .artifacts
            .iter()
            .map(|a| match &a.source {
                crate::pipeline::ArtifactSource::Path(s) => format!("{}: {s}", a.name),
                crate::pipeline::ArtifactSource::Glob(s) => format!("{}: glob {s}", a.name),
            })
            .collect(),
        signing_key: p.signing.key.describe(),
        public_key: p.public_key_path().display().to_string(),
    };
    let stages = p
        .stages
        .iter()
        .map(|s| StagePlan {
            name: s.name.clone(),
            account: s.account_alias.clone(),
            account_id: s.account.clone(),
            region: s.region.as_ref().map(ToString::to_string),
            requires: s.requires.clone(),
            steps: stage_steps(p, s).iter().map(|step| step.describe(p, s)).collect(),
        })
        .collect();
    Plan { version: 1, pipeline: p.name.clone(), backend: p.backend, build, stages }
}

/// One step of a stage's promotion, in the order `promote` takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStep {
    /// Artifact digests and the release signature, against the pinned key.
    Verify,
    /// The release succeeded in the stage `requires[i]` names.
    Require(usize),
    Approval,
    /// No organization-wide freeze in force (checked with the stage's windows).
    OrgFreeze,
    /// `gates[i]`: a window, or a command/http/alarm gate, before or after the deploy actions.
    Gate(usize),
    Lock,
    /// The stage role, through the orchestrator (aws backend).
    AssumeRole,
    /// `deploy[i]`.
    Deploy(usize),
    /// On a failed post-deploy gate, the previous good release is promoted again.
    RollbackOnFailure,
    /// The outcome is recorded and the lock released.
    Record,
}

/// The steps of promoting a release to `s`, in order.
pub fn stage_steps(p: &Pipeline, s: &Stage) -> Vec<StageStep> {
    let mut steps = vec![StageStep::Verify];
    steps.extend((0..s.requires.len()).map(StageStep::Require));
    if s.approval.is_some() {
        steps.push(StageStep::Approval);
    }
    if p.policy.freeze_file.is_some() && !s.ignore_org_freeze {
        steps.push(StageStep::OrgFreeze);
    }
    let gates = |when: When| s.gates.iter().enumerate().filter(move |(_, g)| g.when() == when).map(|(i, _)| StageStep::Gate(i));
    steps.extend(gates(When::Before));
    steps.push(StageStep::Lock);
    if p.aws.is_some() {
        steps.push(StageStep::AssumeRole);
    }
    steps.extend((0..s.deploy.len()).map(StageStep::Deploy));
    steps.extend(gates(When::After));
    if s.on_failure == OnFailure::Rollback {
        steps.push(StageStep::RollbackOnFailure);
    }
    steps.push(StageStep::Record);
    steps
}

impl StageStep {
    /// The step as `ferry plan` prints it.
    pub fn describe(self, p: &Pipeline, s: &Stage) -> String {
        match self {
            StageStep::Verify => "verify artifact digests and the release signature with the pinned key".to_owned(),
            StageStep::Require(i) => format!("require: release succeeded in `{}` (its signed deployment attestation)", s.requires[i]),
            StageStep::Approval => {
                let Some(a) = &s.approval else { return String::new() };
                let who = if a.approvers.is_empty() {
                    "anyone".to_owned()
                } else {
                    a.approvers.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
                };
                let sod = if a.allow_self_approval { "" } else { "; not the builder or requester" };
                format!("approval: {} of {who}, valid {}{sod}", a.required, humantime::format_duration(a.expires))
            }
            StageStep::OrgFreeze => "gate: no organization-wide freeze in force".into(),
            StageStep::Gate(i) => format!("gate: {}", s.gates[i].summary()),
            StageStep::Lock => format!("lock stage `{}`", s.name),
            StageStep::AssumeRole => match &p.aws {
                Some(aws) if p.policy.protected_stages.contains(&s.name) && aws.gatekeeper.is_some() => format!(
                    "get `{}` in {} from the gatekeeper `{}`, which checks the release, its attestations and approvals against the published trust root",
                    s.role.as_deref().unwrap_or(&aws.deploy_role),
                    s.account,
                    aws.gatekeeper.as_ref().map(ToString::to_string).unwrap_or_default(),
                ),
                Some(aws) => format!(
                    "assume `{}` in {} through `{}` (session ferry-{}-RELEASE-{})",
                    s.role.as_deref().unwrap_or(&aws.deploy_role),
                    s.account,
                    aws.orchestrator,
                    p.name,
                    s.name
                ),
                None => String::new(),
            },
            StageStep::Deploy(i) => format!("deploy: {}", s.deploy[i].summary()),
            StageStep::RollbackOnFailure => "on a failed post-deploy gate: roll back to the previous good release".into(),
            StageStep::Record => "record outcome and release lock".into(),
        }
    }

    /// Whether the step is a deployment window gate (checked with the organization's freezes).
    pub fn is_window(self, s: &Stage) -> bool {
        match self {
            StageStep::OrgFreeze => true,
            StageStep::Gate(i) => matches!(s.gates[i], Gate::Window(_)),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stages_steps_come_in_the_order_a_promotion_takes_them() {
        let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../pipelines/hello.yaml"));
        let source = std::fs::read_to_string(path).unwrap();
        let mut p = crate::pipeline::parse_str(path, &source).unwrap();
        let staging = p.stages[0].clone();
        assert_eq!(
            stage_steps(&p, &staging),
            [StageStep::Verify, StageStep::Gate(0), StageStep::Lock, StageStep::Deploy(0), StageStep::Record]
        );
        p.stages[1].on_failure = OnFailure::Rollback;
        let prod = p.stages[1].clone();
        let steps = stage_steps(&p, &prod);
        assert_eq!(
            steps,
            [
                StageStep::Verify,
                StageStep::Require(0),
                StageStep::Approval,
                StageStep::Lock,
                StageStep::Deploy(0),
                StageStep::RollbackOnFailure,
                StageStep::Record
            ]
        );
        // What `ferry plan` prints is these steps, described.
        let printed = &plan(&p).stages[1].steps;
        assert_eq!(printed.len(), steps.len());
        assert_eq!(printed[2], "approval: 2 of alice, bob, carol, valid 1day; not the builder or requester");
    }
}
