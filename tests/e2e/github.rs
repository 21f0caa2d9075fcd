//! ferry in GitHub Actions, simulated: the runner's files (`GITHUB_OUTPUT`,
//! `GITHUB_STEP_SUMMARY`), its OIDC token endpoint (a local HTTP server), and the AWS accounts
//! (moto). ferry starts its role chain from the OIDC token, masks every secret before anything
//! could print it, and leaves step outputs, a job summary and annotations behind.

use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::aws::{AwsWorld, SECURITY, TOOLING};
use crate::support::{FERRY, Project, Run, TWO_APPROVERS, pipeline};

const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmFjbWUvc2hvcDpyZWY6cmVmcy9oZWFkcy9tYWluIn0.c2lnbmF0dXJl";

/// `NAME<<DELIM` / value / `DELIM` blocks of a `$GITHUB_OUTPUT` file.
fn parse_outputs(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut lines = text.lines();
    while let Some(head) = lines.next() {
        let (name, delim) = head.split_once("<<").expect("NAME<<DELIMITER");
        assert!(delim.starts_with("ghadelimiter_") && delim.len() > 40, "a random delimiter: {delim}");
        let mut value = Vec::new();
        for l in lines.by_ref() {
            if l == delim {
                break;
            }
            value.push(l);
        }
        out.insert(name.to_owned(), value.join("\n"));
    }
    out
}

#[test]
fn a_run_in_github_actions_assumes_roles_from_the_oidc_token_masks_secrets_and_writes_outputs_and_a_summary() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let oidc = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/token"))
            .and(query_param("audience", "sts.amazonaws.com"))
            .and(header("authorization", "Bearer request-token-123"))
            .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({"value": JWT})))
            .mount(&server)
            .await;
        server
    });
    let w = AwsWorld::new();
    // The staging deploy writes the token of the credentials endpoint it was handed where the
    // test can read it.
    w.write_project(" && echo \"$AWS_CONTAINER_AUTHORIZATION_TOKEN\" > handed-token.txt");
    w.ferry(&w.role(SECURITY, "ferry-signer", "key-export"), &["key", "export", "--kms", &w.kms_key, "--name", "shop", "--out", "keys"])
        .expect(0);
    let (outputs, summary) = (w.path("github-output.txt"), w.path("github-summary.md"));

    let mut c = std::process::Command::new(FERRY);
    c.args(["run", "pipeline.yaml"]).current_dir(w.dir.path()).env("FERRY_HOME", w.path("home")).env("FERRY_LOG", "info");
    for v in
        ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"]
    {
        c.env_remove(v);
    }
    c.env("AWS_ENDPOINT_URL", w.moto.endpoint()).env("AWS_REGION", "eu-west-1").env("AWS_EC2_METADATA_DISABLED", "true");
    c.env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", &summary)
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", format!("{}/token?api-version=2.0", oidc.uri()))
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token-123")
        .env("GITHUB_REPOSITORY", "acme/shop")
        .env("GITHUB_WORKFLOW", "release")
        .env("GITHUB_RUN_ID", "4242")
        .env("GITHUB_RUN_ATTEMPT", "1")
        .env("GITHUB_ACTOR", "octocat")
        .env("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567");
    let run: Run = c.output().unwrap().into();
    let run = run.expect(3);

    // The chain started from the OIDC token: the orchestrator session is named after the run.
    let outs = parse_outputs(&std::fs::read_to_string(&outputs).unwrap());
    let id = outs["release"].clone();
    assert_eq!(outs["status"], "awaiting_approval");
    assert_eq!(outs["stage"], "prod");
    assert_eq!(outs["approval-needed"], "true");
    assert_eq!(outs["approve-command"], format!("ferry approve pipeline.yaml --release {id} --stage prod"));
    let status = w.ferry(&w.role(TOOLING, "ci", "inspect"), &["status", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert_eq!(status["releases"][0]["builder"], format!("arn:aws:sts::{TOOLING}:assumed-role/ferry-orchestrator/ferry-gh-4242-1"));
    assert_eq!(status["releases"][0]["commit"], "0123456789abcdef0123456789abcdef01234567");

    // Every secret was announced for masking; none appears anywhere else.
    let masks: Vec<&str> = run.stdout.lines().filter_map(|l| l.strip_prefix("::add-mask::")).collect();
    let handed = std::fs::read_to_string(w.path("handed-token.txt")).unwrap().trim().to_owned();
    for secret in [JWT, "request-token-123", handed.as_str()] {
        assert!(masks.contains(&secret), "not masked: {secret}");
    }
    let summary_md = std::fs::read_to_string(&summary).unwrap();
    let elsewhere = format!(
        "{}\n{}\n{}\n{}",
        run.stdout.lines().filter(|l| !l.starts_with("::add-mask::")).collect::<Vec<_>>().join("\n"),
        run.stderr,
        std::fs::read_to_string(&outputs).unwrap(),
        summary_md
    );
    for secret in &masks {
        assert!(!elsewhere.contains(secret), "a masked secret leaked: {secret}");
    }
    // The deploy command's output sat in a group.
    assert!(run.stdout.contains("::group::deploy staging[0]\n") && run.stdout.contains("::endgroup::"), "{}", run.stdout);

    // The job summary: release, digest, signature, stages, approvals, how to approve.
    for expected in [
        format!("### ferry run: release `{id}`"),
        "| Manifest sha256 |".to_owned(),
        "| Signature | ✅".to_owned(),
        "| `app` |".to_owned(),
        "| `staging` | ✅ deployed (1 action(s)) |".to_owned(),
        "| `prod` | ⏳ awaiting approval (0/2) |".to_owned(),
        format!("ferry approve pipeline.yaml --release {id} --stage prod"),
    ] {
        assert!(summary_md.contains(&expected), "missing `{expected}` in:\n{summary_md}");
    }
    // The token endpoint was asked once, for STS.
    assert_eq!(rt.block_on(oidc.received_requests()).unwrap().len(), 1);
}

#[test]
fn validation_errors_become_annotations_at_file_line_and_column() {
    let p = Project::new(&pipeline(TWO_APPROVERS).replace("  prod: \"333333333333\"\n", "  prod: \"3333\"\n"));
    let summary = p.path("summary.md");
    let r: Run = p
        .command("dev", &["validate", "pipeline.yaml"])
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_STEP_SUMMARY", &summary)
        .output()
        .unwrap()
        .into();
    let r = r.expect(2);
    let annotation = r.stdout.lines().find(|l| l.starts_with("::error ")).unwrap_or_else(|| panic!("no annotation in {}", r.stdout));
    assert!(annotation.starts_with("::error file=pipeline.yaml,line=6,col=9,title=ferry validate::accounts.prod: "), "{annotation}");
    assert!(std::fs::read_to_string(&summary).unwrap().contains("- `pipeline.yaml:6:9` accounts.prod:"));
}

/// The composite action is what the README and the issue promise: kebab-case inputs passed to
/// the shell only through `env:`, outputs with explicit values that are exactly the step
/// outputs ferry writes, and the example workflow uses it from this repository.
#[test]
fn the_action_passes_inputs_through_env_and_declares_the_outputs_ferry_writes() {
    use crate::support::yaml_field as get;
    use ferry_core::yaml::{Kind, Node, parse};
    let root = crate::support::repo_root();
    let text = std::fs::read_to_string(root.join("action.yml")).unwrap();
    let doc = parse("action.yml", &text).unwrap();
    let keys = |n: &Node| -> Vec<String> {
        match &n.kind {
            Kind::Map(entries) => entries.iter().filter_map(|(k, _)| k.as_scalar().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let inputs = keys(&get(&doc, "inputs").unwrap());
    for want in [
        "command",
        "pipeline",
        "stage",
        "release",
        "args",
        "aws-region",
        "audience",
        "role-session-name",
        "version",
        "role-to-assume",
        "working-directory",
    ] {
        assert!(inputs.iter().any(|i| i == want), "input {want} missing: {inputs:?}");
    }
    assert!(inputs.iter().all(|i| i.chars().all(|c| c.is_ascii_lowercase() || c == '-')), "kebab-case: {inputs:?}");
    let outputs = get(&doc, "outputs").unwrap();
    let mut names = keys(&outputs);
    for name in &names {
        let value = get(&get(&outputs, name).unwrap(), "value").and_then(|v| v.as_scalar().map(str::to_owned)).unwrap_or_default();
        assert_eq!(value, format!("${{{{ steps.ferry.outputs.{name} }}}}"), "output {name}");
    }
    names.sort();
    assert_eq!(names, ["approval-needed", "approve-command", "release", "stage", "status"]);
    let Kind::Seq(steps) = get(&get(&doc, "runs").unwrap(), "steps").unwrap().kind else { panic!("steps") };
    for step in &steps {
        let run = get(step, "run").and_then(|r| r.as_scalar().map(str::to_owned)).unwrap_or_default();
        assert!(!run.contains("${{"), "an expression inside run: {run}");
    }
    let workflow = std::fs::read_to_string(root.join(".github/workflows/release.yml")).unwrap();
    assert!(workflow.contains("uses: ./ "), "the example workflow uses this repository's action");
    assert!(workflow.contains("id-token: write"));
}

#[test]
fn a_waiting_promotion_is_a_notice_and_every_failure_exit_code_an_error_annotation() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let waiting = p.in_github("ci", &["run", "pipeline.yaml"]).expect(3);
    let id = p.step_output("release");
    let notice = waiting.stdout.lines().find(|l| l.starts_with("::notice ")).unwrap_or_else(|| panic!("no notice in {}", waiting.stdout));
    assert_eq!(
        notice,
        format!("::notice title=ferry run: waiting::`prod` waits for approval: ferry approve pipeline.yaml --release {id} --stage prod")
    );
    // Exit 2 (a release that does not exist), exit 4 (an artifact changed in the store):
    // each an error annotation with ferry's message.
    let invalid = p.in_github("ci", &["promote", "pipeline.yaml", "--release", "r0000000000000000", "--to", "prod"]).expect(2);
    let error = invalid.stdout.lines().find(|l| l.starts_with("::error ")).unwrap_or_else(|| panic!("no error in {}", invalid.stdout));
    assert!(error.starts_with("::error title=ferry promote failed (exit 2)::") && error.contains("r0000000000000000"), "{error}");
    let artifacts = p.home().join("store/artifacts/sha256");
    for f in std::fs::read_dir(&artifacts).unwrap() {
        std::fs::write(f.unwrap().path(), "tampered\n").unwrap();
    }
    let tampered = p.in_github("ci", &["verify", "pipeline.yaml", "--release", &id]).expect(4);
    let error = tampered.stdout.lines().find(|l| l.starts_with("::error ")).unwrap_or_else(|| panic!("no error in {}", tampered.stdout));
    assert!(error.starts_with("::error title=ferry verify failed (exit 4)::"), "{error}");
    // A plain success writes no annotation.
    let ok = p.in_github("ci", &["validate", "pipeline.yaml"]).expect(0);
    assert!(!ok.stdout.contains("::error") && !ok.stdout.contains("::notice"), "{}", ok.stdout);
}

/// The action's "Run ferry" step as the runner would run it: its `run:` script under bash,
/// with the inputs in the environment and the built ferry where the install step puts it.
pub(crate) fn action_step(p: &Project, inputs: &[(&str, &str)]) -> Run {
    use crate::support::yaml_field as field;
    use ferry_core::yaml::{Kind, parse};
    let root = crate::support::repo_root();
    let doc = parse("action.yml", &std::fs::read_to_string(root.join("action.yml")).unwrap()).unwrap();
    let Kind::Seq(steps) = field(&field(&doc, "runs").unwrap(), "steps").unwrap().kind else { panic!("steps") };
    let step = steps.iter().find(|s| field(s, "id").and_then(|i| i.as_scalar().map(str::to_owned)).as_deref() == Some("ferry")).unwrap();
    let script = field(step, "run").unwrap().as_scalar().unwrap().to_owned();
    let runner_temp = p.path("runner-temp");
    std::fs::create_dir_all(runner_temp.join("ferry-bin")).unwrap();
    let bin = runner_temp.join("ferry-bin/ferry");
    if !bin.exists() {
        std::os::unix::fs::symlink(FERRY, &bin).unwrap();
    }
    let mut bash = p.bash("ci", &script);
    bash.env("RUNNER_TEMP", &runner_temp).env("GITHUB_ACTIONS", "true").env("GITHUB_OUTPUT", p.path("outputs.txt"));
    for name in ["command", "pipeline", "stage", "release", "role-to-assume", "args", "aws-region", "audience", "role-session-name"] {
        let value = inputs.iter().find(|(k, _)| *k == name).map_or("", |(_, v)| *v);
        let var = match name {
            "audience" => "FERRY_OIDC_AUDIENCE".to_owned(),
            "aws-region" => "FERRY_AWS_REGION".to_owned(),
            other => format!("FERRY_{}", other.to_uppercase().replace('-', "_")),
        };
        bash.env(var, value);
    }
    bash.output().unwrap().into()
}

#[test]
fn the_actions_run_step_maps_every_command_input_to_ferry_and_a_wait_to_a_green_step_with_a_notice() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let run = action_step(&p, &[("command", "run"), ("pipeline", "pipeline.yaml")]).expect(0);
    assert!(run.stdout.contains("::notice title=ferry run: waiting::`prod` waits for approval"), "{}", run.stdout);
    let id = p.step_output("release");
    p.approve("alice", &id, "prod").expect(0);
    p.approve("bob", &id, "prod").expect(0);
    // `release` with `run`: the existing release carried on (nothing built); `args` passed on.
    let carried =
        action_step(&p, &[("command", "run"), ("pipeline", "pipeline.yaml"), ("release", &id), ("args", "--output json")]).expect(0);
    let v: serde_json::Value = serde_json::from_str(&carried.stdout).unwrap_or_else(|e| panic!("{e}: {}", carried.stdout));
    assert_eq!(v["release"], id.as_str());
    assert_eq!(p.deploys().len(), 2, "{:?}", p.deploys());
    let status =
        action_step(&p, &[("command", "status"), ("pipeline", "pipeline.yaml"), ("release", &id), ("args", "--output json")]).expect(0);
    assert!(status.stdout.contains(&id), "{}", status.stdout);
    // `rollback` reaches ferry (prod has no earlier release to restore: ferry says so).
    let rollback = action_step(&p, &[("command", "rollback"), ("pipeline", "pipeline.yaml"), ("stage", "prod")]).expect(1);
    assert!(
        rollback.stdout.contains("::error title=ferry rollback failed (exit 1)::")
            && rollback.stdout.contains("no earlier successful release"),
        "{}",
        rollback.stdout
    );
    action_step(&p, &[("command", "approve-status"), ("pipeline", "pipeline.yaml")]).expect(0);
    action_step(&p, &[("command", "validate"), ("pipeline", "pipeline.yaml")]).expect(0);
    let bogus = action_step(&p, &[("command", "deploy-everything"), ("pipeline", "pipeline.yaml")]).expect(2);
    assert!(bogus.stdout.contains("::error title=ferry::unsupported command 'deploy-everything'"), "{}", bogus.stdout);
}
