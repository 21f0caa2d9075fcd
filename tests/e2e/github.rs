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
    use ferry_core::yaml::{Kind, Node, parse};
    let root = crate::support::repo_root();
    let text = std::fs::read_to_string(root.join("action.yml")).unwrap();
    let doc = parse("action.yml", &text).unwrap();
    let get = |n: &Node, key: &str| -> Option<Node> {
        match &n.kind {
            Kind::Map(entries) => entries.iter().find(|(k, _)| k.as_scalar() == Some(key)).map(|(_, v)| v.clone()),
            _ => None,
        }
    };
    let keys = |n: &Node| -> Vec<String> {
        match &n.kind {
            Kind::Map(entries) => entries.iter().filter_map(|(k, _)| k.as_scalar().map(str::to_owned)).collect(),
            _ => Vec::new(),
        }
    };
    let inputs = keys(&get(&doc, "inputs").unwrap());
    for want in ["command", "pipeline", "stage", "release", "version", "role-to-assume", "working-directory"] {
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
