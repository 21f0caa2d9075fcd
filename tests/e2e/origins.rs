//! Problems people read: a runtime failure that comes from a pipeline setting says where that
//! setting is written (`--> file:line:column (field)` with the source line and a caret, as
//! `error.origin` in JSON, on the line in GitHub's annotation); a misspelt value is answered with
//! the value meant; a problem is reported once, not again as the causes of others; an approval
//! that would expire before the stage's window opens is said to before anyone relies on it.

use crate::support::{Project, TWO_APPROVERS, pipeline};

const DEPLOY: &str = "run: echo \"$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID\" >> deploys.log";

/// The `line`-th line (1-based) of the project's pipeline file.
fn line_of(p: &Project, line: usize) -> String {
    std::fs::read_to_string(p.path("pipeline.yaml")).unwrap().lines().nth(line - 1).unwrap().to_owned()
}

#[test]
fn a_failing_deploy_action_points_at_where_the_action_is_written() {
    let p = Project::new(&pipeline(TWO_APPROVERS).replacen(DEPLOY, "run: exit 7", 1));
    let id = p.build();
    let r = p.promote("deployer", &id, "staging").expect(1);
    assert!(r.stderr.contains("deploy action 0 (`command: exit 7`) of stage `staging` failed: exit code 7"), "{}", r.stderr);
    assert!(r.stderr.contains("  --> pipeline.yaml:26:9 (stages[0].deploy[0])"), "{}", r.stderr);
    assert_eq!(line_of(&p, 26), "      - type: command");
    assert!(
        r.stderr.contains("26 |       - type: command\n   |         ^"),
        "the source line with a caret under the action:\n{}",
        r.stderr
    );
    assert!(r.stderr.contains("hint: fix the cause"), "{}", r.stderr);

    let r = p.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--redeploy", "--output", "json"]);
    let origin = &r.expect(1).json()["error"]["origin"];
    assert_eq!(origin, &serde_json::json!({"file": "pipeline.yaml", "line": 26, "column": 9, "field": "stages[0].deploy[0]"}));

    let r = p.in_github("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--redeploy"]).expect(1);
    assert!(
        r.stdout.contains("::error file=pipeline.yaml,line=26,col=9,title=ferry promote failed (exit 1)::deploy action 0"),
        "the annotation sits on the action's line:\n{}",
        r.stdout
    );
    let summary = std::fs::read_to_string(p.path("summary.md")).unwrap();
    assert!(summary.contains("from `stages[0].deploy[0]` at `pipeline.yaml:26`"), "{summary}");
}

#[test]
fn a_failing_build_command_and_a_missing_artifact_point_at_their_settings() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("app/build.sh"), "exit 3\n").unwrap();
    let r = p.ferry("builder", &["build", "pipeline.yaml"]).expect(1);
    assert!(r.stderr.contains("build command `sh build.sh` failed with exit code 3"), "{}", r.stderr);
    assert!(
        r.stderr.contains("  --> pipeline.yaml:17:12 (build.command)\n   |\n17 |   command: sh build.sh\n   |            ^^"),
        "{}",
        r.stderr
    );

    std::fs::write(p.path("app/build.sh"), "true\n").unwrap();
    let r = p.ferry("builder", &["build", "pipeline.yaml"]).expect(1);
    assert!(r.stderr.contains("artifact `app`: "), "{}", r.stderr);
    assert!(r.stderr.contains("  --> pipeline.yaml:19:7 (build.artifacts[0])"), "{}", r.stderr);
    assert_eq!(line_of(&p, 19), "    - name: app");
}

#[test]
fn a_failed_post_deploy_gate_and_a_missing_signing_key_say_where_they_are_set() {
    let yaml = pipeline(TWO_APPROVERS).replacen(
        "    region: eu-west-1\n    deploy:",
        "    region: eu-west-1\n    gates:\n      - type: command\n        when: after\n        run: exit 1\n    deploy:",
        1,
    );
    let p = Project::new(&yaml);
    let id = p.build();
    let r = p.promote("deployer", &id, "staging").expect(1);
    assert!(r.stdout.contains("a post-deploy gate failed"), "{}", r.stdout);
    assert!(r.stdout.contains("  --> pipeline.yaml:26:9 (stages[0].gates[0])"), "{}", r.stdout);
    assert_eq!(line_of(&p, 26), "      - type: command");

    let p = Project::new(&pipeline(TWO_APPROVERS).replace("  key: test\n", "  key: nobody\n"));
    let r = p.ferry("builder", &["build", "pipeline.yaml"]).expect(2);
    assert!(r.stderr.contains("signing key `nobody` not found"), "{}", r.stderr);
    assert!(r.stderr.contains("  --> pipeline.yaml:8:8 (signing.key)"), "{}", r.stderr);
}

#[test]
fn misspelt_values_are_answered_with_the_value_meant() {
    let yaml = pipeline(TWO_APPROVERS)
        .replace("version: 1\n", "version: 1\nbackend: lcoal\n")
        .replacen(
            "    region: eu-west-1\n    deploy:",
            "    region: eu-west-1\n    on_failure: rolback\n    gates:\n      - type: window\n        days: [mon, tues]\n      - type: comand\n        run: true\n        when: afer\n    deploy:",
            1,
        );
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("pipeline.yaml"), yaml).unwrap();
    let r = p.ferry("builder", &["validate", "pipeline.yaml", "--output", "json"]).expect(2);
    let hints: Vec<(String, String)> = r.json()["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["field"].as_str().unwrap().to_owned(), d["hint"].as_str().unwrap_or("").to_owned()))
        .collect();
    for (field, meant) in [
        ("backend", "did you mean `local`?"),
        ("stages[0].on_failure", "did you mean `rollback`?"),
        ("stages[0].gates[0].days[1]", "did you mean `tue`?"),
        ("stages[0].gates[1].type", "did you mean `command`?"),
    ] {
        assert!(hints.iter().any(|(f, h)| f == field && h.starts_with(meant)), "{field}: {meant} in {hints:#?}");
    }
}

#[test]
fn a_broken_stages_list_is_reported_once_not_again_by_the_policy_that_names_a_stage() {
    let yaml = pipeline(TWO_APPROVERS).replace("stages:\n", "policy:\n  protected_stages: [prod]\nstagse:\n");
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("pipeline.yaml"), yaml).unwrap();
    let r = p.ferry("builder", &["validate", "pipeline.yaml", "--output", "json"]).expect(2);
    let messages: Vec<String> =
        r.json()["diagnostics"].as_array().unwrap().iter().map(|d| d["message"].as_str().unwrap().to_owned()).collect();
    assert!(messages.contains(&"unknown key `stagse`".to_owned()), "{messages:#?}");
    assert!(!messages.iter().any(|m| m.contains("protected stage")), "a follow-on of the typo: {messages:#?}");

    // With the stages there, a protected stage that is not one is still caught, with the one meant.
    let yaml = pipeline(TWO_APPROVERS).replace("stages:\n", "policy:\n  protected_stages: [prd]\nstages:\n");
    std::fs::write(p.path("pipeline.yaml"), yaml).unwrap();
    let r = p.ferry("builder", &["validate", "pipeline.yaml", "--output", "json"]).expect(2);
    let d = &r.json()["diagnostics"][0];
    assert_eq!(d["message"], "protected stage `prd` is not a stage of this pipeline");
    assert_eq!(d["hint"], "did you mean `prod`? stages: staging, prod");
}

#[test]
fn an_approval_that_would_expire_before_the_window_opens_is_warned_about() {
    // Prod deploys only on the day after tomorrow; approvals last an hour.
    let days = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400;
    let later = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][usize::try_from((days + 3 + 2) % 7).unwrap()];
    let yaml = pipeline(TWO_APPROVERS).replace(
        "      expires: 1h\n    deploy:",
        &format!("      expires: 1h\n    gates:\n      - type: window\n        days: [{later}]\n    deploy:"),
    );
    let p = Project::new(&yaml);
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    let r = p.ferry("alice", &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes", "--output", "json"]).expect(0);
    let decision = &r.json()["decision"];
    let opens = decision["window_opens"]["at"].as_str().expect("the window's next opening");
    assert!(opens.ends_with("T00:00:00Z"), "{decision}");

    let r = p.approve("bob", &id, "prod").expect(0);
    assert!(r.stdout.contains("  warning       an approval given now expires at "), "the summary warns before approving:\n{}", r.stdout);
    assert!(
        r.stdout.contains("warning: an approval given now expires at ")
            && r.stdout.contains(&format!("opens at {opens}: it would expire unused")),
        "{}",
        r.stdout
    );
}
