//! `ferry validate`, `ferry schema`, `ferry plan`: every mistake at once, with positions.

use std::process::Command;

use crate::support::{FERRY, Project, TWO_APPROVERS, pipeline, repo_root, venv_python};

const BROKEN: &str = r#"version: 2
name: Shop
acounts:
  dev: "111111111111"
accounts:
  dev: "12345"
  prod: "333333333333"
signing:
  key: test
  public_key: keys/test.pem
build:
  account: devv
  command: make
stages:
  - name: staging
    account: prod
    requires: [qa]
    approval:
      required: 3
      approvers: [alice, bob]
      expires: soon
    deploy:
      - type: command
  - name: staging
    account: prod
    requires: [prod]
  - name: prod
    account: prod
    region: moon
    requires: [staging]
    deploy:
      - type: cloudformation
      - type: teleport
"#;

#[test]
fn a_pipeline_with_many_mistakes_reports_all_of_them_with_positions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("broken.yaml"), BROKEN).unwrap();
    let r = p.ferry("dev", &["validate", "broken.yaml"]).expect(2);
    // Each with the source line and a caret under what it is about (no colour: not a terminal).
    assert!(!r.stderr.contains('\x1b'), "{}", r.stderr);
    insta::assert_snapshot!("validate_broken", r.stderr);
    // In colour when asked (as on a terminal), and never with NO_COLOR unless forced.
    let coloured: crate::support::Run =
        p.command("dev", &["validate", "broken.yaml"]).env("FERRY_COLOR", "always").output().unwrap().into();
    assert!(coloured.stderr.contains("\x1b[1;31merror:\x1b[0m broken.yaml:1:10:"), "{}", coloured.stderr);
    assert!(coloured.stderr.contains("\x1b[1;31m^^^^\x1b[0m"), "a red caret: {}", coloured.stderr);
}

#[test]
fn validate_json_lists_diagnostics_with_file_line_column_and_field() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("broken.yaml"), BROKEN).unwrap();
    let r = p.ferry("dev", &["validate", "broken.yaml", "--output", "json"]).expect(2);
    let v = r.json();
    let diags = v["diagnostics"].as_array().unwrap();
    assert!(diags.len() >= 12, "{diags:#?}");
    let bad_account = diags.iter().find(|d| d["field"] == "accounts.dev").expect("bad account id reported");
    assert_eq!((bad_account["line"].as_u64(), bad_account["column"].as_u64()), (Some(6), Some(8)));
    assert!(bad_account["message"].as_str().unwrap().contains("`12345`"));
    assert_eq!(v["exit_code"], 2);
}

#[test]
fn cycles_and_later_stages_are_named() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let yaml =
        pipeline(TWO_APPROVERS).replace("    region: eu-west-1\n    deploy:", "    region: eu-west-1\n    requires: [prod]\n    deploy:");
    std::fs::write(p.path("cycle.yaml"), yaml).unwrap();
    let r = p.ferry("dev", &["validate", "cycle.yaml"]).expect(2);
    assert!(r.stderr.contains("stage `staging` requires later stage `prod`"), "{}", r.stderr);
    assert!(r.stderr.contains("dependency cycle: staging → prod → staging"), "{}", r.stderr);
}

#[test]
fn every_pipeline_in_the_repository_is_valid() {
    let out = Command::new(FERRY).arg("validate").current_dir(repo_root()).env("FERRY_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: pipelines/hello.yaml"));
}

#[test]
fn the_schema_is_draft_07_and_accepts_the_repository_pipelines_and_rejects_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(FERRY).arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    insta::assert_json_snapshot!("pipeline_schema", schema);
    let schema_file = tmp.path().join("schema.json");
    std::fs::write(&schema_file, &out.stdout).unwrap();
    let root = repo_root();
    let mut files: Vec<_> = std::fs::read_dir(root.join("pipelines"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let check = |args: &[&std::path::Path], extra: &[&str]| {
        Command::new(venv_python())
            .arg(root.join("tests/conformance/check_schema.py"))
            .args(extra)
            .arg(&schema_file)
            .args(args)
            .output()
            .unwrap()
    };
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let ok = check(&refs, &[]);
    assert!(ok.status.success(), "{}{}", String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    let broken = tmp.path().join("broken.yaml");
    std::fs::write(&broken, BROKEN).unwrap();
    let bad = check(&[broken.as_path()], &["--expect-invalid"]);
    assert!(bad.status.success(), "the schema must reject the broken pipeline: {}", String::from_utf8_lossy(&bad.stdout));
}

#[test]
fn the_repository_schema_file_is_what_ferry_schema_prints() {
    let out = Command::new(FERRY).arg("schema").output().unwrap();
    let committed = std::fs::read_to_string(repo_root().join("schema/pipeline-v1.json")).expect("schema/pipeline-v1.json");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        committed.trim_end(),
        "regenerate with `ferry schema > schema/pipeline-v1.json`"
    );
}

#[test]
fn plan_lists_stages_accounts_gates_and_actions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let human = p.ferry("dev", &["plan", "pipeline.yaml"]).expect(0);
    insta::assert_snapshot!("plan_human", human.stdout);
    let v = p.ferry("dev", &["plan", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert_eq!(v["stages"][1]["name"], "prod");
    assert_eq!(v["stages"][1]["account_id"], "333333333333");
    assert_eq!(v["stages"][1]["requires"][0], "staging");
    let steps: Vec<&str> = v["stages"][1]["steps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(steps[0].starts_with("verify"), "verification comes first: {steps:?}");
    assert!(steps.iter().any(|s| s.starts_with("approval: 2 of alice, bob, carol")), "{steps:?}");
}

#[test]
fn the_readme_pipeline_reference_is_a_valid_pipeline() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("```yaml\nversion: 1\n").expect("README has a pipeline reference") + "```yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("reference.yaml");
    std::fs::write(&file, &readme[start..end]).unwrap();
    let out = Command::new(FERRY).arg("validate").arg(&file).env("FERRY_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn aws_backend_settings_are_validated_with_positions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::copy(repo_root().join("tests/e2e/broken-aws.yaml"), p.path("broken-aws.yaml")).unwrap();
    let r = p.ferry("dev", &["validate", "broken-aws.yaml"]).expect(2);
    insta::assert_snapshot!("validate_broken_aws", r.stderr);
}

#[test]
fn guardrails_are_enforced_with_positions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::copy(repo_root().join("tests/e2e/guardrails.yaml"), p.path("guarded.yaml")).unwrap();
    let r = p.ferry("dev", &["validate", "guarded.yaml"]).expect(2);
    insta::assert_snapshot!("validate_guardrails", r.stderr);
    // Every command that reads the pipeline enforces them too.
    p.ferry("dev", &["plan", "guarded.yaml"]).expect(2);
}

#[test]
fn aws_actions_on_the_local_backend_are_refused_at_validation() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let yaml = pipeline(TWO_APPROVERS).replacen(
        "      - type: command\n",
        "      - type: s3\n        bucket: site-bucket\n      - type: command\n",
        1,
    );
    std::fs::write(p.path("s3.yaml"), yaml).unwrap();
    let r = p.ferry("dev", &["validate", "s3.yaml"]).expect(2);
    assert!(r.stderr.contains("s3.yaml:26:15: stages[0].deploy[0].type: the `s3` action needs `backend: aws`"), "{}", r.stderr);
}

#[test]
fn the_organization_policy_file_adds_its_guardrails() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::create_dir_all(p.path("org")).unwrap();
    std::fs::write(p.path("org/policy.yaml"), "policy:\n  allowed_regions: [eu-west-1]\n  required_tags: [cost-centre]\n  protected_stages: [staging]\n  freeze_file: freezes.yaml\n").unwrap();
    std::fs::write(p.path("org/freezes.yaml"), "freezes: []\n").unwrap();
    let yaml = pipeline(TWO_APPROVERS).replace("build:\n", "policy:\n  org_policy: org/policy.yaml\nbuild:\n");
    std::fs::write(p.path("guarded.yaml"), &yaml).unwrap();
    let r = p.ferry("dev", &["validate", "guarded.yaml"]).expect(2);
    assert!(r.stderr.contains("stage `staging` is protected by the policy and must require approvals"), "{}", r.stderr);
    assert!(r.stderr.contains("stage `prod` lacks the required tag(s) `cost-centre`"), "{}", r.stderr);
    std::fs::write(p.path("org/policy.yaml"), "policy:\n  allowed_regions: [us-east-1]\n  bogus: 1\n").unwrap();
    let r = p.ferry("dev", &["validate", "guarded.yaml"]).expect(2);
    assert!(r.stderr.contains("org/policy.yaml:3:3: policy.bogus: unknown key `bogus`"), "{}", r.stderr);
    assert!(r.stderr.contains("region `eu-west-1` is not allowed by the policy"), "{}", r.stderr);
    let plan = p.ferry("dev", &["plan", "pipeline.yaml"]).expect(0);
    assert!(!plan.stdout.contains("freeze"), "the plain pipeline has no org policy");
}

#[test]
fn the_readme_pipeline_reference_is_what_ferry_schema_markdown_prints() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("<!-- reference:start -->\n").expect("reference start marker") + "<!-- reference:start -->\n".len();
    let end = readme.find("<!-- reference:end -->").expect("reference end marker");
    let out = Command::new(FERRY).args(["schema", "--markdown"]).output().unwrap();
    assert_eq!(&readme[start..end], String::from_utf8(out.stdout).unwrap(), "regenerate the README table with `ferry schema --markdown`");
}

#[test]
fn plan_says_a_protected_stage_gets_its_credentials_from_the_gatekeeper_and_others_through_the_orchestrator() {
    let out =
        Command::new(FERRY).args(["plan", "pipelines/shop-aws.yaml"]).current_dir(repo_root()).env("FERRY_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "get `ferry-deploy` in 666666666666 from the gatekeeper `arn:aws:lambda:eu-west-1:333333333333:function:ferry-gatekeeper`"
        ),
        "{text}"
    );
    assert!(text.contains("assume `ferry-deploy` in 555555555555 through `arn:aws:iam::111111111111:role/ferry-orchestrator`"), "{text}");
}

#[test]
fn a_file_nested_thousands_deep_or_a_fifo_is_an_error_not_a_crash_or_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deep.yaml"), format!("version: 1\nname: x\nstages:\n{}a\n", "- ".repeat(15_000))).unwrap();
    let fifo = dir.path().join("pipe.yaml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for (file, message) in [
        ("deep.yaml", "deep.yaml:4:127: (yaml): sequences and mappings nest more than 64 deep here"),
        ("pipe.yaml", "(file): `pipe.yaml` is not a regular file"),
    ] {
        let mut child = Command::new(FERRY)
            .args(["validate", file])
            .current_dir(dir.path())
            .env("FERRY_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("`ferry validate {file}` hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(message), "{file}: {stderr}");
    }
}

#[test]
fn help_of_every_subcommand_documents_each_argument_and_ends_with_an_example() {
    // Every subcommand, at every depth, as `--help` lists them (a new one cannot be missed).
    fn listed(prefix: &str) -> Vec<String> {
        let out = Command::new(FERRY).args(prefix.split_whitespace()).arg("--help").output().unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let Some((_, commands)) = text.split_once("\nCommands:\n") else { return Vec::new() };
        let mut found = Vec::new();
        for line in commands.lines().take_while(|l| l.starts_with("  ")) {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                let sub = format!("{prefix} {name}").trim().to_owned();
                found.push(sub.clone());
                found.extend(listed(&sub));
            }
        }
        found
    }
    let subcommands = listed("");
    assert!(subcommands.len() > 25 && subcommands.contains(&"audit export".to_owned()), "{subcommands:?}");
    let mut all = String::new();
    for sub in &subcommands {
        let mut c = Command::new(FERRY);
        c.args(sub.split(' ')).arg("--help");
        for v in ["FERRY_OUTPUT", "FERRY_HOME", "FERRY_JUNIT", "FERRY_LOG_FORMAT", "FERRY_LOG"] {
            c.env_remove(v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "ferry {sub} --help");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("\nExample"), "`ferry {sub} --help` shows no example:\n{text}");
        all.push_str(&format!("━━━ ferry {sub} --help\n{text}\n"));
    }
    insta::assert_snapshot!("help", all);
}

#[test]
fn validate_checks_the_pinned_public_key_file_a_missing_one_warns_and_a_broken_one_is_an_error() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    p.ferry("dev", &["validate", "pipeline.yaml"]).expect(0);
    std::fs::remove_file(p.path("keys/test.pem")).unwrap();
    let missing = p.ferry("dev", &["validate", "pipeline.yaml", "--output", "json"]).expect(0);
    assert!(
        missing
            .stderr
            .contains("warning: pipeline.yaml:9:15: signing.public_key: the pinned public key `keys/test.pem` does not exist yet"),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("hint: write it with `ferry key export --name test --out keys`"), "{}", missing.stderr);
    assert_eq!(missing.json()["warnings"][0]["field"], "signing.public_key");
    std::fs::write(p.path("keys/test.pem"), "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n").unwrap();
    let broken = p.ferry("dev", &["validate", "pipeline.yaml"]).expect(2);
    assert!(
        broken.stderr.contains("pipeline.yaml:9:15: signing.public_key: `keys/test.pem` is not a public key ferry can read"),
        "{}",
        broken.stderr
    );
}

#[test]
fn a_misspelt_stage_on_the_command_line_is_refused_with_the_stage_meant() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    for (args, typo, meant) in [
        (vec!["promote", "pipeline.yaml", "--release", &id, "--to", "stagin"], "stagin", "staging"),
        (vec!["approve", "pipeline.yaml", "--release", &id, "--stage", "prdo", "--yes"], "prdo", "prod"),
        (vec!["unlock", "pipeline.yaml", "--stage", "stagign"], "stagign", "staging"),
    ] {
        let r = p.ferry("alice", &args).expect(2);
        assert!(r.stderr.contains(&format!("pipeline `shop` has no stage `{typo}`")), "{}", r.stderr);
        assert!(r.stderr.contains(&format!("hint: did you mean `{meant}`? stages: staging, prod")), "{}", r.stderr);
    }
    assert!(p.deploys().is_empty());
}
