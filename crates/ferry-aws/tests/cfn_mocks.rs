//! CloudFormation outcomes the local AWS API cannot play (its stacks complete synchronously),
//! with scripted SDK responses (aws-smithy-mocks): a stack that rolls back fails the action,
//! naming the failed resource and its reason; a successful update returns the stack's outputs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
use aws_sdk_cloudformation::operation::describe_stack_events::DescribeStackEventsOutput;
use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
use aws_sdk_cloudformation::operation::execute_change_set::ExecuteChangeSetOutput;
use aws_sdk_cloudformation::types::{
    Change, ChangeAction, ChangeSetStatus, Output, ResourceChange, ResourceStatus, Stack, StackEvent, StackStatus,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use ferry_aws::cloudformation::{Stack as StackAction, run};
use ferry_core::ids::{ReleaseId, Sha256Digest};
use ferry_core::manifest::ManifestArtifact;
use ferry_core::ports::{DeployRequest, Target};

fn stack(status: StackStatus, outputs: &[(&str, &str)]) -> DescribeStacksOutput {
    let mut s = Stack::builder().stack_name("shop").stack_status(status).creation_time(aws_smithy_types::DateTime::from_secs(0));
    for (k, v) in outputs {
        s = s.outputs(Output::builder().output_key(*k).output_value(*v).build());
    }
    DescribeStacksOutput::builder().stacks(s.build()).build()
}

/// The calls of one update, in order: look up the stack, create, describe and execute the
/// change set, wait for the final status, then read either the failure events or the outputs.
fn scripted(final_status: StackStatus, outputs: &'static [(&'static str, &'static str)]) -> Client {
    let failed = final_status.as_str().contains("ROLLBACK");
    let last_status = final_status.clone();
    let mut rules = vec![
        mock!(Client::describe_stacks).then_output(|| stack(StackStatus::UpdateComplete, &[])),
        mock!(Client::create_change_set).then_output(|| CreateChangeSetOutput::builder().id("cs").build()),
        mock!(Client::describe_change_set).then_output(|| {
            DescribeChangeSetOutput::builder()
                .status(ChangeSetStatus::CreateComplete)
                .changes(
                    Change::builder()
                        .resource_change(
                            ResourceChange::builder()
                                .action(ChangeAction::Modify)
                                .logical_resource_id("Queue")
                                .resource_type("AWS::SQS::Queue")
                                .build(),
                        )
                        .build(),
                )
                .build()
        }),
        mock!(Client::execute_change_set).then_output(|| ExecuteChangeSetOutput::builder().build()),
        mock!(Client::describe_stacks).then_output(move || stack(final_status.clone(), &[])),
    ];
    if failed {
        rules.push(mock!(Client::describe_stack_events).then_output(|| {
            let event = |id: &str, secs: i64, resource: &str, kind: &str, status: ResourceStatus, reason: Option<&str>| {
                StackEvent::builder()
                    .stack_id("s")
                    .event_id(id)
                    .stack_name("shop")
                    .timestamp(aws_smithy_types::DateTime::from_secs(secs))
                    .logical_resource_id(resource)
                    .resource_type(kind)
                    .resource_status(status)
                    .set_resource_status_reason(reason.map(str::to_owned))
                    .build()
            };
            // Newest first, as CloudFormation lists them.
            DescribeStackEventsOutput::builder()
                .stack_events(event("2", 2, "shop", "AWS::CloudFormation::Stack", ResourceStatus::UpdateRollbackComplete, None))
                .stack_events(event(
                    "1",
                    1,
                    "Queue",
                    "AWS::SQS::Queue",
                    ResourceStatus::UpdateFailed,
                    Some("Resource handler returned message: \"Queue name already taken\""),
                ))
                .build()
        }));
    } else {
        rules.push(mock!(Client::describe_stacks).then_output(move || stack(last_status.clone(), outputs)));
    }
    mock_client!(aws_sdk_cloudformation, RuleMode::Sequential, &rules)
}

fn request<'a>(action: &'a ferry_core::pipeline::Action, template: &std::path::Path) -> DeployRequest<'a> {
    let release = ReleaseId::for_manifest(&Sha256Digest::of(b"m"));
    DeployRequest {
        action,
        pipeline: "shop".parse().unwrap(),
        release: release.clone(),
        stage: "prod".parse().unwrap(),
        target: Target {
            account: "666666666666".parse().unwrap(),
            role: None,
            region: None,
            session_name: "s".into(),
            actor: "a".parse().unwrap(),
            tags: Vec::new(),
        },
        artifacts: vec![(
            ManifestArtifact { name: "template".into(), path: "t.yaml".into(), sha256: Sha256Digest::of(b"t"), size: 1 },
            template.to_owned(),
        )],
        tags: BTreeMap::new(),
    }
}

fn run_script(
    final_status: StackStatus,
    outputs: &'static [(&'static str, &'static str)],
) -> ferry_core::Result<ferry_core::ports::DeployReport> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let template = tmp.path().join("t.yaml");
    std::fs::write(&template, "Resources: {}\n").unwrap();
    let params = BTreeMap::from([("Release".to_owned(), "${release}".to_owned())]);
    let action = ferry_core::pipeline::Action::CloudFormation {
        stack: "shop".into(),
        template: "template".into(),
        parameters: params.clone(),
        capabilities: Vec::new(),
    };
    let req = request(&action, &template);
    let spec = StackAction { name: "shop", template: "template", parameters: &params, capabilities: &[] };
    run(&scripted(final_status, outputs), &rt, "arn:aws:iam::666666666666:role/ferry-deploy", &req, &spec)
}

#[test]
fn a_stack_that_rolls_back_fails_naming_the_resource_and_the_reason() {
    let err = run_script(StackStatus::UpdateRollbackComplete, &[]).unwrap_err();
    assert!(err.message.contains("stack `shop` ended in UPDATE_ROLLBACK_COMPLETE: Queue (AWS::SQS::Queue)"), "{}", err.message);
    assert!(err.message.contains("Queue name already taken"), "{}", err.message);
}

#[test]
fn a_successful_update_reports_its_changes_and_captures_the_outputs() {
    let report = run_script(StackStatus::UpdateComplete, &[("QueueUrl", "https://sqs/shop")]).unwrap();
    assert_eq!(report.detail, "stack `shop` UPDATE_COMPLETE: 1 change(s)");
    assert!(report.output.starts_with("Modify Queue AWS::SQS::Queue"), "{}", report.output);
    assert_eq!(report.outputs.get("QueueUrl").map(String::as_str), Some("https://sqs/shop"));
}
