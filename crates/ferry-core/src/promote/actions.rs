//! Deploy actions of a promotion: the verified artifact copies they read, running each action
//! (commands through the executor, AWS actions through the deployer) with its progress recorded
//! before and after, so a crash is never followed by a silent second run.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::json;

use super::{Promotion, promote_command};
use crate::audit::EventKind;
use crate::error::{Error, Result};
use crate::pipeline::Action;
use crate::ports::{CommandSpec, DeployRequest};
use crate::state::Step;

/// The copies of a release's artifacts a promotion verified while it made them (one read of
/// each), where its deploy actions read them. Removed when the promotion is done with them, so
/// `work/` does not grow with every release and stage; one directory per promotion, so two
/// promotions never share copies.
#[derive(Debug)]
pub(super) struct WorkCopies(PathBuf);

impl WorkCopies {
    pub(super) fn new(work_dir: &std::path::Path, release: &crate::ids::ReleaseId, stage: &crate::ids::StageName) -> Self {
        let token = crate::storage::token();
        Self(work_dir.join(release.as_str()).join(format!("{stage}-{}", &token[..8])))
    }

    pub(super) fn dir(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for WorkCopies {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What deploy actions are handed: the verified copies and the variables naming them.
#[derive(Debug, Default)]
pub(super) struct Materialized {
    pub(super) env: BTreeMap<String, String>,
    pub(super) files: Vec<(crate::manifest::ManifestArtifact, PathBuf)>,
}

impl Promotion<'_> {
    /// The verified copies of the release's artifacts, and the variables that name them.
    pub(super) fn materialize(&self) -> Result<Materialized> {
        let dir = self.copies.to_path_buf();
        let mut m = Materialized { env: BTreeMap::new(), files: Vec::new() };
        m.env.insert("FERRY_ARTIFACTS_DIR".into(), dir.display().to_string());
        // Outputs of the stages this one requires (e.g. a stack's outputs), by stage name.
        let mut outputs = serde_json::Map::new();
        for req in &self.stage.requires {
            if let Some(r) = self.required(req)? {
                outputs.insert(req.to_string(), json!(r.outputs));
            }
        }
        m.env.insert("FERRY_OUTPUTS".into(), serde_json::Value::Object(outputs).to_string());
        for a in &self.verified.manifest.artifacts {
            // Verified as it was copied here (`release::verify`).
            let dest = dir.join(&a.path);
            let var: String = a.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
            m.env.insert(format!("FERRY_ARTIFACT_{var}"), dest.display().to_string());
            m.files.push((a.clone(), dest));
        }
        // Images are pinned by digest: `FERRY_IMAGE_WEB=REPO@sha256:…` (the central registry).
        for i in &self.verified.manifest.images {
            let var: String = i.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
            m.env.insert(format!("FERRY_IMAGE_{var}"), i.reference());
        }
        Ok(m)
    }

    /// Runs one action: a command through the executor, anything else through the deployer.
    /// Returns whether it succeeded, a one-line detail, and its recorded output.
    pub(super) fn execute(&self, i: usize, action: &Action, artifacts: &Materialized) -> (bool, String, String) {
        match action {
            Action::Command { run, env, timeout } => {
                let mut all = self.base_env();
                all.extend(artifacts.env.clone());
                all.extend(env.clone());
                let spec = CommandSpec {
                    run: run.clone(),
                    dir: self.pipeline.dir().to_owned(),
                    env: all,
                    timeout: *timeout,
                    label: format!("deploy {}[{i}]", self.stage.name),
                    target: Some(self.target()),
                    clear_env: Vec::new(),
                    stop: Some(self.stop.clone()),
                };
                match self.svc.exec.run(&spec) {
                    Ok(o) if o.interrupted => {
                        (false, format!("stopped after {} ms: {}", o.duration_ms, self.stop.reason().unwrap_or_default()), o.output_tail)
                    }
                    Ok(o) if o.success => (true, format!("exit code 0 in {} ms", o.duration_ms), o.output_tail),
                    Ok(o) if o.timed_out => (false, format!("timed out after {} ms", o.duration_ms), o.output_tail),
                    Ok(o) => (
                        false,
                        format!("exit code {}", o.exit_code.map_or("none (killed by a signal)".into(), |c| c.to_string())),
                        o.output_tail,
                    ),
                    Err(e) => (false, e.message, String::new()),
                }
            }
            other => match self.svc.deployer.deploy(&self.deploy_request(other, artifacts)) {
                Ok(r) => {
                    if !r.outputs.is_empty()
                        && let Err(e) = self.step(Step::RecordOutputs { outputs: r.outputs.clone() })
                    {
                        return (false, e.to_string(), r.output);
                    }
                    (true, r.detail, r.output)
                }
                Err(e) => (false, e.to_string(), String::new()),
            },
        }
    }

    fn deploy_request<'b>(&self, action: &'b Action, artifacts: &Materialized) -> DeployRequest<'b> {
        DeployRequest {
            action,
            pipeline: self.pipeline.name.clone(),
            release: self.req.release.clone(),
            stage: self.stage.name.clone(),
            target: self.target(),
            artifacts: artifacts.files.clone(),
            images: self.verified.manifest.images.clone(),
            tags: self.pipeline.tags_for(self.stage, &self.req.release),
            stop: Some(self.stop.clone()),
        }
    }

    /// What the stage's CloudFormation actions would change, for the approvers; a preview that
    /// cannot be made says why instead of failing the promotion.
    pub(super) fn preview(&self) -> Vec<String> {
        let stacks: Vec<(&Action, &str)> = self
            .stage
            .deploy
            .iter()
            .filter_map(|a| match a {
                Action::CloudFormation { stack, .. } => Some((a, stack.as_str())),
                _ => None,
            })
            .collect();
        if stacks.is_empty() {
            return Vec::new();
        }
        let artifacts = match self.materialize() {
            Ok(m) => m,
            Err(e) => return vec![format!("preview unavailable: {}", e.message)],
        };
        let mut lines = Vec::new();
        for (action, stack) in stacks {
            match self.svc.deployer.preview(&self.deploy_request(action, &artifacts)) {
                Ok(changes) if changes.is_empty() => lines.push(format!("stack `{stack}`: no changes")),
                Ok(changes) => lines.extend(changes.into_iter().map(|c| format!("stack `{stack}`: {c}"))),
                Err(e) => lines.push(format!("stack `{stack}`: preview unavailable: {}", e.message)),
            }
        }
        lines
    }

    pub(super) fn run_action(&self, i: usize, action: &Action, artifacts: &Materialized) -> Result<()> {
        let stage = &self.stage.name;
        let summary = action.summary();
        let origin = || self.pipeline.stage_origin(stage, &format!("deploy[{i}]"));
        // Reaching the target account is checked first: if that fails, the action never started.
        if let Err(e) = self.svc.exec.prepare(&self.target()) {
            self.audit(EventKind::DeployFailed, json!({"action": i, "summary": summary, "detail": e.message, "started": false}))?;
            self.audit(EventKind::PromotionFailed, json!({"reason": format!("deploy action {i} could not start")}))?;
            self.step(Step::ActionNotStarted { index: i, detail: e.message.clone() })?;
            return Err(e.at(origin()));
        }
        let started = self.now();
        self.audit(EventKind::DeployStart, json!({"action": i, "type": action.kind(), "summary": summary}))?;
        self.step(Step::ActionStarted { index: i, summary: summary.clone(), at: started })?;
        // On record before it runs: a crash from here on is never followed by a silent second run.
        self.commit()?;
        let (ok, detail, output) = self.execute(i, action, artifacts);
        if ok {
            self.audit(EventKind::DeployEnd, json!({"action": i, "summary": summary, "detail": detail, "output": output}))?;
        } else {
            self.audit(EventKind::DeployFailed, json!({"action": i, "summary": summary, "detail": detail, "output": output}))?;
            self.audit(EventKind::PromotionFailed, json!({"reason": format!("deploy action {i} failed")}))?;
        }
        self.step(Step::ActionEnded { index: i, succeeded: ok, detail: detail.clone(), at: self.now() })?;
        if ok {
            Ok(())
        } else {
            Err(Error::failed(format!("deploy action {i} (`{summary}`) of stage `{stage}` failed: {detail}"))
                .hint(format!("fix the cause, then retry with `{} --redeploy`", promote_command(self.pipeline, &self.req.release, stage)))
                .at(origin()))
        }
    }
}
