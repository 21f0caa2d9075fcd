//! Promotions that carry on by themselves: a promotion waiting for approvals ends its CI job
//! as "waiting", and when the last required approval lands, a dispatch notification starts
//! the run that promotes — a GitHub workflow (`workflow_dispatch` against a local stand-in of
//! GitHub's API, then the example `promote.yml`'s step run with the inputs it was sent) or a
//! CodeBuild build (StartBuild, with the orchestrator role, against moto).

use ferry_core::yaml::{Kind, parse};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::aws::{AwsWorld, TOOLING, boto, unique};
use crate::github::action_step;
use crate::support::{Project, Run, TWO_APPROVERS, pipeline, repo_root, yaml_field as field};

const TOKEN: &str = "ghs_dispatchTokenForTests0123456789";

/// The `with:` of the ferry step in `.github/workflows/promote.yml`, each `${{ inputs.X }}`
/// replaced by the dispatch's input `X`.
fn promote_workflow_inputs(dispatched: &serde_json::Value) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join(".github/workflows/promote.yml")).unwrap();
    let doc = parse("promote.yml", &text).unwrap();
    let on = field(&doc, "on").unwrap();
    let declared = field(&field(&on, "workflow_dispatch").unwrap(), "inputs").unwrap();
    for input in ["release", "stage"] {
        assert!(field(&declared, input).is_some(), "promote.yml declares the `{input}` input ferry sends");
    }
    let Kind::Seq(steps) = field(&field(&field(&doc, "jobs").unwrap(), "promote").unwrap(), "steps").unwrap().kind else { panic!("steps") };
    let step = steps.iter().find(|s| field(s, "id").and_then(|i| i.as_scalar().map(str::to_owned)).as_deref() == Some("ferry")).unwrap();
    let Kind::Map(with) = field(step, "with").unwrap().kind else { panic!("with") };
    with.iter()
        .map(|(k, v)| {
            let mut value = v.as_scalar().unwrap().to_owned();
            for (name, sent) in dispatched["inputs"].as_object().unwrap() {
                value = value.replace(&format!("${{{{ inputs.{name} }}}}"), sent.as_str().unwrap());
            }
            assert!(!value.contains("${{"), "an input ferry does not send: {value}");
            (k.as_scalar().unwrap().to_owned(), value)
        })
        .collect()
}

#[test]
fn a_waiting_github_job_ends_waiting_and_the_last_approval_dispatches_the_workflow_that_promotes_prod() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let github = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/repos/acme/shop/actions/workflows/promote.yml/dispatches"))
            .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
            .and(header("x-github-api-version", "2022-11-28"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&server)
            .await;
        server
    });
    let notification = format!(
        "notifications:\n  - {{type: github, repository: acme/shop, workflow: promote.yml, token_env: DISPATCH_TOKEN, api_url: \"{}\", stages: [prod]}}\n",
        github.uri()
    );
    let p = Project::new(&format!("{}{notification}", pipeline(TWO_APPROVERS)));
    let dispatched = || rt.block_on(github.received_requests()).unwrap();

    // The release job: built, staging deployed, prod waits. The step is green and says so.
    let job = action_step(&p, &[("command", "run"), ("pipeline", "pipeline.yaml")]).expect(0);
    let id = p.step_output("release");
    assert!(
        job.stdout.contains(&format!(
            "::notice title=ferry run: waiting::`prod` waits for approval: ferry approve pipeline.yaml --release {id} --stage prod"
        )),
        "{}",
        job.stdout
    );
    assert_eq!((p.step_output("status").as_str(), p.step_output("approval-needed").as_str()), ("awaiting_approval", "true"));
    assert_eq!(p.deploys().len(), 1, "staging only: {:?}", p.deploys());
    assert!(dispatched().is_empty(), "nothing is dispatched while approvals are missing");

    let approve = |who: &str| -> Run {
        p.command(who, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"])
            .env("DISPATCH_TOKEN", TOKEN)
            .output()
            .unwrap()
            .into()
    };
    approve("alice").expect(0);
    assert!(dispatched().is_empty(), "1 of 2 approvals dispatches nothing");
    let last = approve("bob").expect(0);
    assert!(!last.stdout.contains(TOKEN) && !last.stderr.contains(TOKEN), "the token is never printed");

    // The second approval completed prod's: GitHub was asked, once, to run promote.yml.
    let requests = dispatched();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body, serde_json::json!({"ref": "main", "inputs": {"release": id, "stage": "prod"}}));
    let sent = p.audit_events().into_iter().find(|e| e["kind"] == "notification_sent").expect("the dispatch is audited");
    assert_eq!(sent["details"]["event"], "approved");
    assert_eq!(sent["details"]["channel"], "github (acme/shop workflow promote.yml)");
    assert!(!serde_json::to_string(&p.audit_events()).unwrap().contains(TOKEN), "the token is never stored");

    // The dispatched run: promote.yml's ferry step, with the inputs GitHub was sent.
    let inputs = promote_workflow_inputs(&body);
    let inputs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let pipeline_input = inputs.iter().find(|(k, _)| *k == "pipeline").map(|(_, v)| *v).unwrap().to_owned();
    assert_eq!(pipeline_input, "pipelines/shop-aws.yaml", "the example names the example pipeline");
    let here: Vec<(&str, &str)> = inputs.iter().map(|&(k, v)| if k == "pipeline" { (k, "pipeline.yaml") } else { (k, v) }).collect();
    action_step(&p, &here).expect(0);
    assert_eq!(p.step_output("status"), "deployed");
    assert_eq!(p.step_output("stage"), "prod");
    let deploys = p.deploys();
    assert_eq!(deploys.len(), 2, "{deploys:?}");
    assert!(deploys[1].starts_with(&format!("prod {id} ")), "{deploys:?}");
}

#[test]
fn a_github_dispatch_github_refuses_is_retried_audited_with_githubs_reason_and_changes_no_decision() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let github = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/repos/acme/shop/dispatches"))
            .respond_with(ResponseTemplate::new(422).set_body_json(serde_json::json!({"message": "Unexpected inputs provided"})))
            .mount(&server)
            .await;
        server
    });
    let notification = format!(
        "notifications:\n  - {{type: github, repository: acme/shop, event_type: ferry-approved, token_env: DISPATCH_TOKEN, api_url: \"{}\"}}\n",
        github.uri()
    );
    let p = Project::new(&format!("{}{notification}", pipeline("      required: 1\n      approvers: [alice]")));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    let approved: Run = p
        .command("alice", &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"])
        .env("DISPATCH_TOKEN", TOKEN)
        .output()
        .unwrap()
        .into();
    approved.expect(0);
    let requests = rt.block_on(github.received_requests()).unwrap();
    assert_eq!(requests.len(), 3, "tried three times");
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(body["event_type"], "ferry-approved");
    assert_eq!((body["client_payload"]["release"].as_str(), body["client_payload"]["stage"].as_str()), (Some(id.as_str()), Some("prod")));
    assert!(body["client_payload"].as_object().unwrap().len() <= 10, "GitHub takes at most 10 client_payload properties");
    let failed = p.audit_events().into_iter().find(|e| e["kind"] == "notification_failed").expect("audited");
    let error = failed["details"]["error"].as_str().unwrap();
    assert!(error.contains("HTTP 422: Unexpected inputs provided"), "{error}");
    // The approval stands: prod promotes by hand.
    p.promote("deployer", &id, "prod").expect(0);
}

#[test]
fn the_last_approval_starts_a_codebuild_build_with_the_release_and_stage_as_the_orchestrator() {
    let w = AwsWorld::new();
    w.write_project("");
    let project = unique("shop-promote");
    boto(
        &w,
        TOOLING,
        &format!(
            "cb=boto3.client('codebuild',**kw)\n\
             cb.create_project(name='{project}',source={{'type':'S3','location':'ferry-promote-source/source.zip'}},artifacts={{'type':'NO_ARTIFACTS'}},\
             environment={{'type':'LINUX_CONTAINER','image':'aws/codebuild/standard:7.0','computeType':'BUILD_GENERAL1_SMALL'}},\
             serviceRole='arn:aws:iam::{TOOLING}:role/codebuild')"
        ),
    );
    let yaml = std::fs::read_to_string(w.path("pipeline.yaml")).unwrap();
    let yaml = yaml.replace("audit:\n", &format!("notifications:\n  - {{type: codebuild, project: {project}, stages: [prod]}}\naudit:\n"));
    std::fs::write(w.path("pipeline.yaml"), yaml).unwrap();
    let ci = w.role(TOOLING, "ci", "github-run-11");
    let id = w.at_prod_gate(&ci);
    let starts = |seen: &[ferry_testkit::proxy::Seen]| -> Vec<serde_json::Value> {
        seen.iter()
            .filter(|s| s.target.as_deref() == Some("CodeBuild_20161006.StartBuild"))
            .map(|s| serde_json::from_str(&s.body).unwrap())
            .collect()
    };
    assert!(starts(&w.proxy.take_seen()).is_empty(), "no build while approvals are missing");

    for who in ["alice", "bob"] {
        let person = w.role(TOOLING, "release-approvers", who);
        w.ferry(&person, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    }
    let started = starts(&w.proxy.take_seen());
    assert_eq!(started.len(), 1, "one build, when the second approval landed: {started:?}");
    assert_eq!(started[0]["projectName"], project.as_str());
    let env: Vec<(String, String)> = started[0]["environmentVariablesOverride"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap().to_owned(), v["value"].as_str().unwrap().to_owned()))
        .collect();
    for (name, value) in [("FERRY_RELEASE", id.as_str()), ("FERRY_STAGE", "prod"), ("FERRY_PIPELINE", "shop"), ("FERRY_EVENT", "approved")]
    {
        assert!(env.contains(&(name.to_owned(), value.to_owned())), "{name}={value} in {env:?}");
    }
    // moto ran it in the tooling account: one build of the project.
    let builds =
        boto(&w, TOOLING, &format!("print(len(boto3.client('codebuild',**kw).list_builds_for_project(projectName='{project}')['ids']))"));
    assert_eq!(builds.trim(), "1");
}
