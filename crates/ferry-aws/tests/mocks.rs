//! What the local AWS API (moto) cannot play, with scripted SDK responses (aws-smithy-mocks):
//! a CloudFormation stack that rolls back fails the action, naming the failed resource and its
//! reason, and a successful update returns the stack's outputs; a CodePipeline Manual approval
//! of ferry's execution is answered with `PutApprovalResult` (and one of another execution is
//! not); an image's layers are streamed between registries with their digests checked
//! (moto has no `GetDownloadUrlForLayer`; a local HTTP server plays the pre-signed URL); the
//! alarm gate reads CloudWatch alarm states (the SDK speaks CloudWatch's CBOR protocol, which
//! moto does not serve).

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
use ferry_aws::cloudformation::{Mode, Stack as StackAction, run};
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
            protected: None,
        },
        artifacts: vec![(
            ManifestArtifact { name: "template".into(), path: "t.yaml".into(), sha256: Sha256Digest::of(b"t"), size: 1 },
            template.to_owned(),
        )],
        images: Vec::new(),
        tags: BTreeMap::new(),
        stop: None,
    }
}

fn run_script(
    final_status: StackStatus,
    outputs: &'static [(&'static str, &'static str)],
) -> ferry_core::Result<ferry_core::ports::DeployReport> {
    run_script_stopped(final_status, outputs, None)
}

fn run_script_stopped(
    final_status: StackStatus,
    outputs: &'static [(&'static str, &'static str)],
    stop: Option<std::sync::Arc<ferry_core::ports::Stop>>,
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
    let req = DeployRequest { stop, ..request(&action, &template) };
    let spec = StackAction { name: "shop", template: "template", parameters: &params, capabilities: &[] };
    run(&scripted(final_status, outputs), &rt, "arn:aws:iam::666666666666:role/ferry-deploy", &req, &spec, Mode::Deploy)
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

#[test]
fn a_promotion_told_to_stop_stops_waiting_for_its_stack_and_says_the_update_goes_on() {
    let stop = std::sync::Arc::new(ferry_core::ports::Stop::default());
    stop.raise_because("ferry received SIGTERM");
    let err = run_script_stopped(StackStatus::UpdateInProgress, &[], Some(stop)).unwrap_err();
    assert_eq!(err.message, "stopped waiting for stack `shop` (UPDATE_IN_PROGRESS): ferry received SIGTERM");
    assert!(err.hints.iter().any(|h| h.contains("goes on in the stage account")), "{:?}", err.hints);
}

mod codepipeline {
    use std::time::Duration;

    use aws_sdk_codepipeline::Client;
    use aws_sdk_codepipeline::operation::get_pipeline_execution::GetPipelineExecutionOutput;
    use aws_sdk_codepipeline::operation::get_pipeline_state::GetPipelineStateOutput;
    use aws_sdk_codepipeline::operation::put_approval_result::PutApprovalResultOutput;
    use aws_sdk_codepipeline::operation::start_pipeline_execution::StartPipelineExecutionOutput;
    use aws_sdk_codepipeline::types::{
        ActionExecution, ActionExecutionStatus, ActionState, ApprovalStatus, PipelineExecution, PipelineExecutionStatus, StageExecution,
        StageExecutionStatus, StageState,
    };
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use ferry_aws::codepipeline::{Run, execute};

    use super::BTreeMap;

    fn execution(status: PipelineExecutionStatus, summary: Option<&str>) -> GetPipelineExecutionOutput {
        GetPipelineExecutionOutput::builder()
            .pipeline_execution(
                PipelineExecution::builder()
                    .pipeline_execution_id("exec-1")
                    .status(status)
                    .set_status_summary(summary.map(str::to_owned))
                    .build(),
            )
            .build()
    }

    /// The pipeline's state while its `Approve` stage waits in `exec_id`'s Manual approval.
    fn waiting_for_approval(exec_id: &'static str) -> Rule {
        mock!(Client::get_pipeline_state).then_output(move || {
            GetPipelineStateOutput::builder()
                .pipeline_name("legacy")
                .stage_states(StageState::builder().stage_name("Build").build())
                .stage_states(
                    StageState::builder()
                        .stage_name("Approve")
                        .latest_execution(
                            StageExecution::builder()
                                .pipeline_execution_id(exec_id)
                                .status(StageExecutionStatus::InProgress)
                                .build()
                                .unwrap(),
                        )
                        .action_states(
                            ActionState::builder()
                                .action_name("ManualApproval")
                                .latest_execution(
                                    ActionExecution::builder().status(ActionExecutionStatus::InProgress).token("token-42").build(),
                                )
                                .build(),
                        )
                        .build(),
                )
                .build()
        })
    }

    fn run(approve: bool) -> Run<'static> {
        Run {
            pipeline: "legacy",
            variables: BTreeMap::from([("RELEASE".to_owned(), "r0123456789abcdef".to_owned())]),
            approve: approve.then_some(("Approve", "ManualApproval")),
            timeout: Duration::from_secs(30),
            poll: Duration::from_millis(10),
            summary: "Approved by ferry: release r0123456789abcdef passed its gates".into(),
            role: "arn:aws:iam::666666666666:role/ferry-deploy",
            stop: None,
        }
    }

    fn start() -> Rule {
        mock!(Client::start_pipeline_execution)
            .match_requests(|r| {
                r.name() == Some("legacy") && r.variables().iter().any(|v| v.name() == "RELEASE" && v.value() == "r0123456789abcdef")
            })
            .then_output(|| StartPipelineExecutionOutput::builder().pipeline_execution_id("exec-1").build())
    }

    fn in_progress_then(end: PipelineExecutionStatus, summary: Option<&'static str>) -> Rule {
        mock!(Client::get_pipeline_execution)
            .match_requests(|r| r.pipeline_execution_id() == Some("exec-1"))
            .sequence()
            .output(|| execution(PipelineExecutionStatus::InProgress, None))
            .times(2)
            .output(move || execution(end.clone(), summary))
            .build()
    }

    #[tokio::test]
    async fn a_manual_approval_of_ferrys_execution_is_answered_with_put_approval_result() {
        let approval = mock!(Client::put_approval_result)
            .match_requests(|r| {
                let result = r.result().unwrap();
                r.pipeline_name() == Some("legacy")
                    && r.stage_name() == Some("Approve")
                    && r.action_name() == Some("ManualApproval")
                    && r.token() == Some("token-42")
                    && result.status() == &ApprovalStatus::Approved
                    && result.summary().contains("r0123456789abcdef")
            })
            .then_output(|| PutApprovalResultOutput::builder().build());
        let rules = [start(), in_progress_then(PipelineExecutionStatus::Succeeded, None), waiting_for_approval("exec-1"), approval.clone()];
        let client = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, &rules);
        let report = execute(&client, &run(true)).await.unwrap();
        assert_eq!(approval.num_calls(), 1, "the approval is answered exactly once");
        assert!(report.output.contains("approved Approve/ManualApproval"), "{}", report.output);
        assert_eq!(report.outputs["codepipeline.legacy.execution"], "exec-1");
    }

    #[tokio::test]
    async fn an_approval_waiting_for_another_execution_is_left_alone() {
        let approval = mock!(Client::put_approval_result).then_output(|| PutApprovalResultOutput::builder().build());
        let rules = [start(), in_progress_then(PipelineExecutionStatus::Succeeded, None), waiting_for_approval("exec-0"), approval.clone()];
        let client = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, &rules);
        let report = execute(&client, &run(true)).await.unwrap();
        assert_eq!(approval.num_calls(), 0);
        assert!(!report.output.contains("approved"), "{}", report.output);
    }

    #[tokio::test]
    async fn a_failed_execution_fails_the_action_with_codepipelines_summary() {
        let rules = [start(), in_progress_then(PipelineExecutionStatus::Failed, Some("Deploy action failed: health check"))];
        let client = mock_client!(aws_sdk_codepipeline, RuleMode::MatchAny, &rules);
        let err = execute(&client, &run(false)).await.unwrap_err();
        assert!(err.message.contains("`legacy` execution exec-1 ended Failed: Deploy action failed: health check"), "{}", err.message);
    }
}

mod ecr_layers {
    use std::sync::{Arc, Mutex};

    use aws_sdk_ecr::Client;
    use aws_sdk_ecr::operation::batch_check_layer_availability::BatchCheckLayerAvailabilityOutput;
    use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
    use aws_sdk_ecr::operation::complete_layer_upload::CompleteLayerUploadOutput;
    use aws_sdk_ecr::operation::describe_images::DescribeImagesError;
    use aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesOutput;
    use aws_sdk_ecr::operation::get_download_url_for_layer::GetDownloadUrlForLayerOutput;
    use aws_sdk_ecr::operation::initiate_layer_upload::InitiateLayerUploadOutput;
    use aws_sdk_ecr::operation::put_image::PutImageOutput;
    use aws_sdk_ecr::operation::upload_layer_part::UploadLayerPartOutput;
    use aws_sdk_ecr::types::{Image, ImageIdentifier, ImageTagMutability, LayerFailure, LayerFailureCode, Repository};
    use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
    use ferry_aws::ecr::{Repo, promote};
    use ferry_core::ids::Sha256Digest;
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const CONFIG: &[u8] = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}";

    /// Larger than one upload part (1 MiB here), so it crosses in several.
    fn layer() -> Vec<u8> {
        (0..2_500_000u32).map(|i| (i % 251) as u8).collect()
    }

    fn d(bytes: &[u8]) -> String {
        format!("sha256:{}", Sha256Digest::of(bytes))
    }

    fn manifest() -> String {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(CONFIG), "size": CONFIG.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(&layer()), "size": layer().len()}],
        })
        .to_string()
    }

    fn get_image() -> Rule {
        mock!(Client::batch_get_image).then_output(|| {
            let m = manifest();
            BatchGetImageOutput::builder()
                .images(
                    Image::builder()
                        .image_manifest(&m)
                        .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                        .image_id(ImageIdentifier::builder().image_digest(d(m.as_bytes())).build())
                        .build(),
                )
                .build()
        })
    }

    struct Script {
        src: Client,
        dst: Client,
        uploaded: Arc<Mutex<Vec<u8>>>,
        completed: Rule,
        tagged: Rule,
        _server: MockServer,
    }

    /// A source registry whose blobs download from a local server (`layer_body` for the layer),
    /// and a stage registry holding none of them yet.
    async fn script(layer_body: Vec<u8>) -> Script {
        let server = MockServer::start().await;
        Mock::given(path(format!("/blobs/{}", Sha256Digest::of(CONFIG))))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(CONFIG))
            .mount(&server)
            .await;
        Mock::given(path(format!("/blobs/{}", Sha256Digest::of(&layer()))))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(layer_body))
            .mount(&server)
            .await;
        let base = server.uri();
        let url = mock!(Client::get_download_url_for_layer).then_compute_output(move |r| {
            let hex = r.layer_digest().unwrap().trim_start_matches("sha256:");
            GetDownloadUrlForLayerOutput::builder()
                .download_url(format!("{base}/blobs/{hex}"))
                .layer_digest(r.layer_digest().unwrap())
                .build()
        });
        let src = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, &[get_image(), url]);

        let uploaded = Arc::new(Mutex::new(Vec::new()));
        let sink = uploaded.clone();
        let completed = mock!(Client::complete_layer_upload).then_compute_output(|r| {
            CompleteLayerUploadOutput::builder().layer_digest(r.layer_digests()[0].clone()).upload_id("u").build()
        });
        let tagged = mock!(Client::put_image).match_requests(|r| r.image_tag().is_some()).then_output(|| PutImageOutput::builder().build());
        let rules = [
            mock!(Client::describe_repositories).then_output(|| {
                DescribeRepositoriesOutput::builder()
                    .repositories(
                        Repository::builder().repository_name("shop/web").image_tag_mutability(ImageTagMutability::Mutable).build(),
                    )
                    .build()
            }),
            mock!(Client::describe_images).then_error(|| {
                DescribeImagesError::ImageNotFoundException(
                    aws_sdk_ecr::types::error::ImageNotFoundException::builder().message("none").build(),
                )
            }),
            mock!(Client::batch_check_layer_availability).then_compute_output(|r| {
                let mut out = BatchCheckLayerAvailabilityOutput::builder();
                for digest in r.layer_digests() {
                    out = out
                        .failures(LayerFailure::builder().layer_digest(digest).failure_code(LayerFailureCode::MissingLayerDigest).build());
                }
                out.build()
            }),
            mock!(Client::initiate_layer_upload)
                .then_output(|| InitiateLayerUploadOutput::builder().upload_id("u").part_size(1 << 20).build()),
            mock!(Client::upload_layer_part).then_compute_output(move |r| {
                sink.lock().unwrap().extend_from_slice(r.layer_part_blob().unwrap().as_ref());
                UploadLayerPartOutput::builder().upload_id("u").last_byte_received(r.part_last_byte().unwrap()).build()
            }),
            completed.clone(),
            tagged.clone(),
            mock!(Client::put_image).then_output(|| PutImageOutput::builder().build()),
            get_image(),
        ];
        let dst = mock_client!(aws_sdk_ecr, RuleMode::MatchAny, &rules);
        Script { src, dst, uploaded, completed, tagged, _server: server }
    }

    fn repos<'a>(s: &'a Script) -> (Repo<'a>, Repo<'a>) {
        let repo = |client, account| Repo { client, account, region: "eu-west-1", name: "shop/web", role: "arn:aws:iam::1:role/r" };
        (repo(&s.src, "222222222222"), repo(&s.dst, "666666666666"))
    }

    #[tokio::test]
    async fn missing_blobs_are_streamed_across_and_checked_before_the_upload_completes() {
        let s = script(layer()).await;
        let (src, dst) = repos(&s);
        let digest = Sha256Digest::of(manifest().as_bytes());
        let copied = promote(&src, &dst, &digest, &["r1".into(), "prod".into()], &reqwest::Client::new()).await.unwrap();
        assert_eq!((copied.blobs_copied, copied.blobs_present), (2, 0));
        assert_eq!(copied.tags_written, vec!["r1".to_owned(), "prod".to_owned()]);
        assert_eq!(s.completed.num_calls(), 2);
        assert_eq!(s.tagged.num_calls(), 2);
        let mut expected = CONFIG.to_vec();
        expected.extend(layer());
        assert_eq!(*s.uploaded.lock().unwrap(), expected, "the stage registry received exactly the source's bytes");
    }

    #[tokio::test]
    async fn a_blob_that_downloads_with_other_bytes_is_never_completed_and_nothing_is_tagged() {
        let mut tampered = layer();
        tampered[1000] ^= 0xff;
        let s = script(tampered).await;
        let (src, dst) = repos(&s);
        let digest = Sha256Digest::of(manifest().as_bytes());
        let err = promote(&src, &dst, &digest, &["r1".into()], &reqwest::Client::new()).await.unwrap_err();
        assert_eq!(err.kind, ferry_core::ErrorKind::Verification, "{}", err.message);
        assert!(err.message.contains(&format!("blob `{}`", d(&layer()))), "{}", err.message);
        assert_eq!(s.completed.num_calls(), 1, "only the config blob, which was intact, was completed");
        assert_eq!(s.tagged.num_calls(), 0);
    }
}

mod alarms {
    use aws_sdk_cloudwatch::Client;
    use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
    use aws_sdk_cloudwatch::types::{AlarmType, CompositeAlarm, MetricAlarm, StateValue};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use ferry_aws::alarms::describe;

    #[tokio::test]
    async fn metric_and_composite_alarm_states_are_read_with_their_reasons() {
        let rule = mock!(Client::describe_alarms)
            .match_requests(|r| {
                r.alarm_names() == ["shop-5xx".to_owned(), "shop-health".to_owned()]
                    && r.alarm_types().contains(&AlarmType::CompositeAlarm)
                    && r.alarm_types().contains(&AlarmType::MetricAlarm)
            })
            .then_output(|| {
                DescribeAlarmsOutput::builder()
                    .metric_alarms(
                        MetricAlarm::builder()
                            .alarm_name("shop-5xx")
                            .state_value(StateValue::Alarm)
                            .state_reason("Threshold Crossed: 12 errors")
                            .build(),
                    )
                    .composite_alarms(
                        CompositeAlarm::builder().alarm_name("shop-health").state_value(StateValue::Ok).state_reason("fine").build(),
                    )
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::MatchAny, &[&rule]);
        let states =
            describe(&client, "arn:aws:iam::555555555555:role/ferry-deploy", &["shop-5xx".into(), "shop-health".into()]).await.unwrap();
        assert_eq!(
            states,
            vec![
                ("shop-5xx".to_owned(), "ALARM".to_owned(), "Threshold Crossed: 12 errors".to_owned()),
                ("shop-health".to_owned(), "OK".to_owned(), "fine".to_owned()),
            ]
        );
    }
}

/// A protected stage's session from the gatekeeper (Lambda `Invoke` scripted): asked for once,
/// used while fresh, and asked for again — so judged again — before it expires; a gatekeeper
/// that then holds it back ends the session.
mod gatekeeper {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime};

    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::{ProvideCredentials as _, SharedCredentialsProvider};
    use aws_sdk_lambda::Client;
    use aws_sdk_lambda::operation::invoke::InvokeOutput;
    use aws_sdk_lambda::primitives::Blob;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use ferry_aws::gatekeeper::Gatekeeper;
    use ferry_core::ports::Protected;

    #[derive(Debug, Clone)]
    struct Manual(Arc<Mutex<SystemTime>>);

    impl aws_smithy_async::time::TimeSource for Manual {
        fn now(&self) -> SystemTime {
            *self.0.lock().unwrap()
        }
    }

    fn answer(body: &serde_json::Value) -> InvokeOutput {
        InvokeOutput::builder().status_code(200).payload(Blob::new(body.to_string())).build()
    }

    #[test]
    fn a_protected_stages_session_is_asked_for_again_before_it_expires_and_ends_when_the_gatekeeper_holds_it_back() {
        const START: u64 = 1_800_000_000;
        let clock = Manual(Arc::new(Mutex::new(SystemTime::UNIX_EPOCH + Duration::from_secs(START))));
        let admit = serde_json::json!({
            "decision": "admit", "manifest_sha256": "ab".repeat(32), "approved_by": ["alice"],
            "caller": "arn:aws:iam::111111111111:user/ci", "audit_seq": 7,
            "credentials": {
                "role": "arn:aws:iam::666666666666:role/ferry-deploy", "access_key_id": "AKPROD1",
                "secret_access_key": "prod-secret", "session_token": "prod-token",
                "expiration": ferry_core::clock::Timestamp::from_unix(i64::try_from(START).unwrap() + 600),
            },
        });
        let pending = serde_json::json!({"decision": "pending", "have": [], "need": 1});
        // Each ask carries the caller's signed identity proof and names the release and stage.
        let proven = |r: &aws_sdk_lambda::operation::invoke::InvokeInput| {
            let body = r.payload().map(|p| String::from_utf8_lossy(p.as_ref()).into_owned()).unwrap_or_default();
            r.function_name() == Some("ferry-gatekeeper")
                && body.contains("\"authorization\":\"AWS4-HMAC-SHA256 Credential=AKCALLER/")
                && body.contains("\"release\":\"r0123456789abcdef\"")
                && body.contains("\"stage\":\"prod\"")
        };
        let rules = [
            mock!(Client::invoke).match_requests(proven).then_output(move || answer(&admit)),
            mock!(Client::invoke).match_requests(proven).then_output(move || answer(&pending)),
        ];
        let lambda = mock_client!(aws_sdk_lambda, RuleMode::Sequential, &rules);
        let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap());
        let base = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .behavior_version(BehaviorVersion::latest())
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new("AKCALLER", "caller-secret", None, None, "test")))
            .time_source(clock.clone())
            .build();
        let aws = ferry_aws::chain::Aws { rt, base: base.clone() };
        let gatekeeper = Gatekeeper::with_client(&"ferry-gatekeeper".parse().unwrap(), "eu-west-1", lambda, &base);
        let ask =
            Protected { pipeline: "shop".parse().unwrap(), release: "r0123456789abcdef".parse().unwrap(), stage: "prod".parse().unwrap() };
        let (config, role) = gatekeeper.session(&aws, &base, &ask, Duration::from_secs(900)).unwrap();
        assert_eq!(role.as_str(), "arn:aws:iam::666666666666:role/ferry-deploy");
        let provider = config.credentials_provider().unwrap();
        // Fresh: the session it handed out, not a second ask.
        *clock.0.lock().unwrap() += Duration::from_secs(120);
        let creds = aws.rt.block_on(provider.provide_credentials()).unwrap();
        assert_eq!((creds.access_key_id(), creds.session_token()), ("AKPROD1", Some("prod-token")));
        // Four minutes before it ends: asked again, and this time held back.
        *clock.0.lock().unwrap() += Duration::from_secs(240);
        let err = aws.rt.block_on(provider.provide_credentials()).unwrap_err();
        let text = format!("{:?}", std::error::Error::source(&err).map(ToString::to_string));
        assert!(text.contains("the gatekeeper holds back the credentials of `prod`: 0 of 1 approvals"), "{text}");
    }
}
