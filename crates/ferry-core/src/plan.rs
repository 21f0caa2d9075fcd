//! The plan of a pipeline: every stage with its account, requirements, gates and actions, in
//! the order `ferry run` would take them. `ferry plan` prints it; promotion follows it.

use serde::Serialize;

use crate::ids::{AccountId, PipelineName, StageName};
use crate::pipeline::{Backend, OnFailure, Pipeline, When};

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
        .map(|s| {
            let mut steps = vec!["verify artifact digests and the release signature with the pinned key".to_owned()];
            for r in &s.requires {
                steps.push(format!("require: release succeeded in `{r}`"));
            }
            if let Some(a) = &s.approval {
                let who = if a.approvers.is_empty() {
                    "anyone".to_owned()
                } else {
                    a.approvers.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(", ")
                };
                let sod = if a.allow_self_approval { "" } else { "; not the builder or requester" };
                steps.push(format!("approval: {} of {who}, valid {}{sod}", a.required, humantime::format_duration(a.expires)));
            }
            if let (Some(_), false) = (&p.policy.freeze_file, s.ignore_org_freeze) {
                steps.push("gate: no organization-wide freeze in force".into());
            }
            for g in s.gates.iter().filter(|g| g.when() == When::Before) {
                steps.push(format!("gate: {}", g.summary()));
            }
            steps.push(format!("lock stage `{}`", s.name));
            if let Some(aws) = &p.aws {
                let role = s.role.as_deref().unwrap_or(&aws.deploy_role);
                steps.push(format!(
                    "assume `{role}` in {} through `{}` (session ferry-{}-RELEASE-{})",
                    s.account, aws.orchestrator, p.name, s.name
                ));
            }
            for a in &s.deploy {
                steps.push(format!("deploy: {}", a.summary()));
            }
            for g in s.gates.iter().filter(|g| g.when() == When::After) {
                steps.push(format!("gate: {}", g.summary()));
            }
            if s.on_failure == OnFailure::Rollback {
                steps.push("on a failed post-deploy gate: roll back to the previous good release".into());
            }
            steps.push("record outcome and release lock".into());
            StagePlan {
                name: s.name.clone(),
                account: s.account_alias.clone(),
                account_id: s.account.clone(),
                region: s.region.as_ref().map(ToString::to_string),
                requires: s.requires.clone(),
                steps,
            }
        })
        .collect();
    Plan { version: 1, pipeline: p.name.clone(), backend: p.backend, build, stages }
}
