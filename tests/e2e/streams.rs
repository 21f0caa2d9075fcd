//! What ferry writes where: the result alone on stdout (JSON that parses, also in GitHub
//! Actions, whose workflow commands then go to stderr), and a reader that goes away early
//! (`ferry … | head`) is no failure of the command.

use std::io::Read as _;
use std::process::{Command, Stdio};

use crate::support::{FERRY, Project, TWO_APPROVERS, pipeline, repo_root};

#[test]
fn a_reader_that_stops_early_ends_ferry_quietly_with_the_commands_own_exit_code() {
    for args in [
        &["bootstrap", "pipelines/shop-aws.yaml"][..],
        &["bootstrap", "pipelines/shop-aws.yaml", "--output", "json"],
        &["plan", "pipelines/shop-aws.yaml"],
        &["schema"],
        &["--help"],
    ] {
        let mut child = Command::new(FERRY)
            .args(args)
            .current_dir(repo_root())
            .env("FERRY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Like `| head -0`: the reader is gone before ferry writes.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn in_github_actions_json_output_is_only_json_and_the_workflow_commands_go_to_stderr() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let r = p.in_github("dev", &["run", "pipeline.yaml", "--output", "json"]).expect(3);
    let v = r.json();
    assert_eq!(v["output_version"], 1, "{v}");
    assert!(!r.stdout.contains("::"), "{}", r.stdout);
    assert!(r.stderr.contains("::group::deploy staging[0]") && r.stderr.contains("::endgroup::"), "{}", r.stderr);
    // Human output keeps them on stdout, where the runner reads them.
    let human = p.in_github("dev", &["run", "pipeline.yaml"]);
    assert!(human.stdout.contains("::group::deploy staging[0]"), "{}", human.stdout);
}

#[test]
fn text_log_lines_on_stderr_say_when() {
    let out = Command::new(FERRY)
        .args(["validate", "pipelines/hello.yaml", "--junit", "README.md/report.xml"])
        .current_dir(repo_root())
        .env("FERRY_LOG", "warn")
        .env_remove("FERRY_LOG_FORMAT")
        .env_remove("CODEBUILD_BUILD_ID")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr.lines().find(|l| l.contains("cannot write the JUnit report")).unwrap_or_else(|| panic!("{stderr}"));
    // `2026-12-02T08:04:11.997340Z  WARN …`
    let stamp = line.split_whitespace().next().unwrap();
    assert!(stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[4] == b'-' && stamp.as_bytes()[10] == b'T', "{line}");
}
