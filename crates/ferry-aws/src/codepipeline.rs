//! The `codepipeline` action: ferry in front of an existing CodePipeline pipeline in the stage
//! account. It starts an execution (with the release's values as pipeline variables), waits
//! for it to finish, and, when asked, answers one Manual approval action of **that**
//! execution with `PutApprovalResult` (ferry's own approvals and gates have passed by then).
//! A failed, stopped or superseded execution fails the promotion with CodePipeline's summary.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::types::{ActionExecutionStatus, ApprovalResult, ApprovalStatus, PipelineExecutionStatus, PipelineVariable};
use ferry_core::ports::{DeployReport, DeployRequest};
use ferry_core::{Error, Result};

use crate::error::{self, Attempt};

/// One run of the action, with values already expanded.
pub struct Run<'a> {
    pub pipeline: &'a str,
    pub variables: BTreeMap<String, String>,
    /// `(stage, action)` of the Manual approval to answer.
    pub approve: Option<(&'a str, &'a str)>,
    pub timeout: Duration,
    /// Time between polls (tests use a short one).
    pub poll: Duration,
    /// Shown in CodePipeline as the approval's summary.
    pub summary: String,
    /// The role acting, for error messages.
    pub role: &'a str,
    /// The promotion's stop: waiting ends when it is raised.
    pub stop: Option<&'a ferry_core::ports::Stop>,
}

pub fn deploy(access: &crate::exec::StageAccess, req: &DeployRequest<'_>) -> Result<DeployReport> {
    let ferry_core::pipeline::Action::CodePipeline { pipeline, variables, approve, timeout } = req.action else {
        return Err(Error::invalid("not a codepipeline action"));
    };
    let variables = variables.iter().map(|(k, v)| Ok((k.clone(), req.expand(v)?))).collect::<Result<BTreeMap<_, _>>>()?;
    let (config, role) = access.assume(&req.target)?;
    let run = Run {
        pipeline,
        variables,
        approve: approve.as_ref().map(|(s, a)| (s.as_str(), a.as_str())),
        timeout: *timeout,
        poll: Duration::from_secs(5),
        summary: format!(
            "Approved by ferry: release {} of `{}` passed its approvals and gates for `{}`",
            req.release, req.pipeline, req.stage
        ),
        role: role.as_str(),
        stop: req.stop.as_deref(),
    };
    access.aws.rt.block_on(execute(&Client::new(&config), &run))
}

/// Starts the execution and follows it to the end.
pub async fn execute(cp: &Client, run: &Run<'_>) -> Result<DeployReport> {
    let name = run.pipeline;
    let at = |action| Attempt { who: run.role, action, resource: name };
    let vars: Vec<PipelineVariable> = run
        .variables
        .iter()
        .map(|(k, v)| PipelineVariable::builder().name(k).value(v).build().map_err(|e| Error::invalid(format!("variable `{k}`: {e}"))))
        .collect::<Result<_>>()?;
    let started = cp
        .start_pipeline_execution()
        .name(name)
        .set_variables((!vars.is_empty()).then_some(vars))
        .send()
        .await
        .map_err(|e| error::map(at("codepipeline:StartPipelineExecution"), &e))?;
    let id =
        started.pipeline_execution_id().ok_or_else(|| Error::failed(format!("CodePipeline started `{name}` without an execution id")))?;
    tracing::info!(pipeline = name, execution = id, "started a CodePipeline execution");
    let deadline = Instant::now() + run.timeout;
    let mut approved = None;
    loop {
        let out = cp
            .get_pipeline_execution()
            .pipeline_name(name)
            .pipeline_execution_id(id)
            .send()
            .await
            .map_err(|e| error::map(at("codepipeline:GetPipelineExecution"), &e))?;
        let exec = out.pipeline_execution();
        let status = exec.and_then(|e| e.status()).cloned().unwrap_or(PipelineExecutionStatus::InProgress);
        let summary = exec.and_then(|e| e.status_summary()).unwrap_or("");
        match status {
            PipelineExecutionStatus::Succeeded => {
                let mut output = format!("execution {id} of `{name}` succeeded\n");
                if let Some((stage, action)) = &approved {
                    output.push_str(&format!("approved {stage}/{action} for this execution\n"));
                }
                return Ok(DeployReport {
                    detail: format!("CodePipeline `{name}` execution {id} succeeded"),
                    output,
                    outputs: BTreeMap::from([(format!("codepipeline.{name}.execution"), id.to_owned())]),
                });
            }
            PipelineExecutionStatus::InProgress | PipelineExecutionStatus::Stopping => {}
            other => {
                let why = if summary.is_empty() { String::new() } else { format!(": {summary}") };
                return Err(Error::failed(format!("CodePipeline `{name}` execution {id} ended {}{why}", other.as_str()))
                    .hint("see the execution in the CodePipeline console of the stage account"));
            }
        }
        if let (Some((stage, action)), None) = (run.approve, &approved)
            && answer_approval(cp, run, id, stage, action).await?
        {
            approved = Some((stage.to_owned(), action.to_owned()));
        }
        if Instant::now() >= deadline {
            return Err(Error::failed(format!(
                "CodePipeline `{name}` execution {id} is still {} after {}",
                status.as_str(),
                humantime::format_duration(run.timeout)
            ))
            .hint("it keeps running in the stage account; raise the action's `timeout` or stop the execution there"));
        }
        crate::wait::pause(run.stop, run.poll, &format!("CodePipeline `{name}` execution {id}")).await?;
    }
}

/// Approves `stage`/`action` if it is waiting for **this** execution; true once answered.
async fn answer_approval(cp: &Client, run: &Run<'_>, id: &str, stage: &str, action: &str) -> Result<bool> {
    let name = run.pipeline;
    let state = cp
        .get_pipeline_state()
        .name(name)
        .send()
        .await
        .map_err(|e| error::map(Attempt { who: run.role, action: "codepipeline:GetPipelineState", resource: name }, &e))?;
    let Some(s) = state.stage_states().iter().find(|s| s.stage_name() == Some(stage)) else {
        return Err(Error::invalid(format!("CodePipeline `{name}` has no stage `{stage}`")).hint("check the action's `approve.stage`"));
    };
    if s.latest_execution().map(|e| e.pipeline_execution_id()) != Some(id) {
        return Ok(false);
    }
    let Some(a) = s.action_states().iter().find(|a| a.action_name() == Some(action)) else {
        return Err(Error::invalid(format!("stage `{stage}` of CodePipeline `{name}` has no action `{action}`")));
    };
    let Some(latest) = a.latest_execution() else { return Ok(false) };
    let (Some(ActionExecutionStatus::InProgress), Some(token)) = (latest.status(), latest.token()) else { return Ok(false) };
    let result = ApprovalResult::builder()
        .summary(&run.summary)
        .status(ApprovalStatus::Approved)
        .build()
        .map_err(|e| Error::failed(format!("approval result: {e}")))?;
    let resource = format!("{name}/{stage}/{action}");
    cp.put_approval_result()
        .pipeline_name(name)
        .stage_name(stage)
        .action_name(action)
        .result(result)
        .token(token)
        .send()
        .await
        .map_err(|e| error::map(Attempt { who: run.role, action: "codepipeline:PutApprovalResult", resource: &resource }, &e))?;
    tracing::info!(pipeline = name, execution = id, "approved {stage}/{action}");
    Ok(true)
}
