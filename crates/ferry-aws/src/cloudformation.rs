//! The `cloudformation` deploy action: create or update a stack in the stage account through
//! a change set (its summary goes to the output and the audit log), execute it, wait for a
//! final state, and capture the stack's outputs. An empty change set is "no changes"; a stack
//! that fails or rolls back fails the promotion, naming the first failed resource and why.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudformation::types::{Capability, ChangeSetStatus, ChangeSetType, Parameter, StackStatus, Tag};
use ferry_core::ports::{DeployReport, DeployRequest};
use ferry_core::{Error, Result};

use crate::error::{self, Attempt};
use crate::exec::StageAccess;

/// The largest template CloudFormation takes inline.
const MAX_TEMPLATE_BODY: u64 = 51_200;
const POLL: Duration = Duration::from_secs(3);
const MAX_WAIT: Duration = Duration::from_secs(3 * 3600);

pub struct Stack<'a> {
    pub name: &'a str,
    pub template: &'a str,
    pub parameters: &'a BTreeMap<String, String>,
    pub capabilities: &'a [String],
}

fn failed(s: &StackStatus) -> bool {
    let s = s.as_str();
    s.ends_with("_FAILED") || s.contains("ROLLBACK")
}

/// Deploy executes the change set; Preview only reads its changes (for the approver) and
/// deletes it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Deploy,
    Preview,
}

pub fn deploy(access: &StageAccess, req: &DeployRequest<'_>, stack: &Stack<'_>, mode: Mode) -> Result<DeployReport> {
    let (config, role) = access.assume(&req.target)?;
    run(&aws_sdk_cloudformation::Client::new(&config), &access.aws.rt, role.as_str(), req, stack, mode)
}

/// Runs the action with `cfn`, acting as `role` (separate from `deploy` so tests can hand in a
/// client whose responses are scripted: the states moto cannot play).
pub fn run(
    cfn: &aws_sdk_cloudformation::Client,
    rt: &tokio::runtime::Runtime,
    role: &str,
    req: &DeployRequest<'_>,
    stack: &Stack<'_>,
    mode: Mode,
) -> Result<DeployReport> {
    let (_, file) = req.artifacts.iter().find(|(a, _)| a.name == stack.template).ok_or_else(|| {
        Error::invalid(format!("the release has no artifact `{}` to use as the template of stack `{}`", stack.template, stack.name))
    })?;
    let size = std::fs::metadata(file).map_err(|e| Error::io("read", file, &e))?.len();
    if size > MAX_TEMPLATE_BODY {
        return Err(Error::invalid(format!(
            "template `{}` is {size} bytes; CloudFormation takes at most {MAX_TEMPLATE_BODY} inline",
            stack.template
        )));
    }
    let body = std::fs::read_to_string(file).map_err(|e| Error::io("read", file, &e))?;
    let arn = format!("stack/{}", stack.name);
    let at = |action: &'static str| Attempt { who: role, action, resource: &arn };
    let mut params = Vec::new();
    for (k, v) in stack.parameters {
        params.push(Parameter::builder().parameter_key(k).parameter_value(req.expand(v)?).build());
    }
    let tags: Vec<Tag> = req.tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    let cfn = cfn.clone();
    rt.block_on(async {
        let existing = match cfn.describe_stacks().stack_name(stack.name).send().await {
            Ok(out) => out.stacks().first().and_then(|s| s.stack_status().cloned()),
            Err(e) if format!("{}", aws_smithy_types::error::display::DisplayErrorContext(&e)).contains("does not exist") => None,
            Err(e) => return Err(error::map(at("cloudformation:DescribeStacks"), &e)),
        };
        if existing.as_ref().is_some_and(|s| s.as_str() == "ROLLBACK_COMPLETE") {
            return Err(Error::failed(format!("stack `{}` is in ROLLBACK_COMPLETE from a failed creation", stack.name))
                .hint("delete the stack, then promote again with --redeploy"));
        }
        // A stack a preview left in REVIEW_IN_PROGRESS was never created: create it now.
        let created = existing.as_ref().is_some_and(|s| s.as_str() != "REVIEW_IN_PROGRESS");
        let kind = if created { ChangeSetType::Update } else { ChangeSetType::Create };
        let change_set = format!("ferry-{}-{}", req.release, ferry_core::ports::Clock::now(&ferry_core::clock::SystemClock).unix_seconds());
        let mut create = cfn
            .create_change_set()
            .stack_name(stack.name)
            .change_set_name(&change_set)
            .change_set_type(kind.clone())
            .template_body(&body)
            .set_parameters(Some(params))
            .set_tags(Some(tags));
        for c in stack.capabilities {
            create = create.capabilities(Capability::from(c.as_str()));
        }
        if let Err(e) = create.send().await {
            let err = error::map(at("cloudformation:CreateChangeSet"), &e);
            // Some endpoints refuse an empty update outright instead of failing the change set.
            if no_changes(&err.message) {
                return unchanged(&cfn, stack.name, mode).await;
            }
            return Err(err);
        }
        // Wait for the change set, then read its changes.
        let waited = std::time::Instant::now();
        let described = loop {
            let d = cfn
                .describe_change_set()
                .stack_name(stack.name)
                .change_set_name(&change_set)
                .send()
                .await
                .map_err(|e| error::map(at("cloudformation:DescribeChangeSet"), &e))?;
            match d.status() {
                Some(ChangeSetStatus::CreateComplete | ChangeSetStatus::Failed) => break d,
                _ if waited.elapsed() > MAX_WAIT => return Err(Error::failed(format!("change set `{change_set}` did not finish"))),
                _ => crate::wait::pause(req.stop.as_deref(), POLL, &format!("change set `{change_set}`")).await?,
            }
        };
        if described.status() == Some(&ChangeSetStatus::Failed) {
            let reason = described.status_reason().unwrap_or_default().to_owned();
            if no_changes(&reason) {
                let _ = cfn.delete_change_set().stack_name(stack.name).change_set_name(&change_set).send().await;
                return unchanged(&cfn, stack.name, mode).await;
            }
            return Err(Error::failed(format!("change set for stack `{}` failed: {reason}", stack.name)));
        }
        let summary: Vec<String> = described
            .changes()
            .iter()
            .filter_map(|c| c.resource_change())
            .map(|r| {
                let replace = r.replacement().map(|x| format!(" (replacement: {})", x.as_str())).unwrap_or_default();
                format!(
                    "{} {} {}{replace}",
                    r.action().map(|a| a.as_str()).unwrap_or("?"),
                    r.logical_resource_id().unwrap_or("?"),
                    r.resource_type().unwrap_or("?")
                )
            })
            .collect();
        if mode == Mode::Preview {
            let _ = cfn.delete_change_set().stack_name(stack.name).change_set_name(&change_set).send().await;
            // A preview of a new stack leaves it in REVIEW_IN_PROGRESS with no resources:
            // remove it, so the preview leaves nothing behind.
            if !created {
                let _ = cfn.delete_stack().stack_name(stack.name).send().await;
            }
            return Ok(DeployReport {
                detail: format!("stack `{}`: {} change(s)", stack.name, summary.len()),
                output: summary.join("\n"),
                outputs: BTreeMap::new(),
            });
        }
        tracing::info!(stack = stack.name, changes = summary.len(), "executing change set {change_set}");
        cfn.execute_change_set()
            .stack_name(stack.name)
            .change_set_name(&change_set)
            .send()
            .await
            .map_err(|e| error::map(at("cloudformation:ExecuteChangeSet"), &e))?;
        let waited = std::time::Instant::now();
        let status = loop {
            let out = cfn
                .describe_stacks()
                .stack_name(stack.name)
                .send()
                .await
                .map_err(|e| error::map(at("cloudformation:DescribeStacks"), &e))?;
            let status = out.stacks().first().and_then(|s| s.stack_status().cloned()).unwrap_or(StackStatus::from("UNKNOWN"));
            let s = status.as_str();
            if s.ends_with("_COMPLETE") || s.ends_with("_FAILED") {
                break status;
            }
            if waited.elapsed() > MAX_WAIT {
                return Err(Error::failed(format!("stack `{}` is still {s}", stack.name)));
            }
            tracing::info!(stack = stack.name, status = s, "waiting");
            crate::wait::pause(req.stop.as_deref(), POLL, &format!("stack `{}` ({s})", stack.name)).await?;
        };
        if failed(&status) {
            let cause = first_failure(&cfn, stack.name).await;
            return Err(Error::failed(format!("stack `{}` ended in {}{cause}", stack.name, status.as_str()))
                .hint(format!("see the stack's events in account {}", req.target.account)));
        }
        let outputs = stack_outputs(&cfn, stack.name).await?;
        let mut output = summary.join("\n");
        for (k, v) in &outputs {
            output.push_str(&format!("\noutput {k} = {v}"));
        }
        Ok(DeployReport { detail: format!("stack `{}` {}: {} change(s)", stack.name, status.as_str(), summary.len()), output, outputs })
    })
}

/// Whether CloudFormation says the change set would change nothing.
fn no_changes(reason: &str) -> bool {
    reason.contains("didn't contain changes") || reason.contains("No updates are to be performed")
}

/// An empty change set is not a failure: the stack already is what the release describes.
async fn unchanged(cfn: &aws_sdk_cloudformation::Client, name: &str, mode: Mode) -> Result<DeployReport> {
    if mode == Mode::Preview {
        return Ok(DeployReport { detail: format!("stack `{name}`: no changes"), output: String::new(), outputs: BTreeMap::new() });
    }
    Ok(DeployReport {
        detail: format!("stack `{name}`: no changes"),
        output: String::new(),
        outputs: stack_outputs(cfn, name).await.unwrap_or_default(),
    })
}

async fn stack_outputs(cfn: &aws_sdk_cloudformation::Client, name: &str) -> Result<BTreeMap<String, String>> {
    let out = cfn.describe_stacks().stack_name(name).send().await.map_err(|e| {
        Error::failed(format!("reading the outputs of stack `{name}`: {}", aws_smithy_types::error::display::DisplayErrorContext(&e)))
    })?;
    Ok(out
        .stacks()
        .first()
        .map(|s| s.outputs().iter().filter_map(|o| Some((o.output_key()?.to_owned(), o.output_value()?.to_owned()))).collect())
        .unwrap_or_default())
}

/// `: RESOURCE (TYPE): REASON` of the earliest failed resource event, if any.
async fn first_failure(cfn: &aws_sdk_cloudformation::Client, name: &str) -> String {
    let Ok(events) = cfn.describe_stack_events().stack_name(name).send().await else { return String::new() };
    events
        .stack_events()
        .iter()
        .rev()
        .find(|e| e.resource_status().is_some_and(|s| s.as_str().ends_with("_FAILED")))
        .map(|e| {
            format!(
                ": {} ({}): {}",
                e.logical_resource_id().unwrap_or("?"),
                e.resource_type().unwrap_or("?"),
                e.resource_status_reason().unwrap_or("no reason given")
            )
        })
        .unwrap_or_default()
}
