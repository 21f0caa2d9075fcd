//! ferry in AWS CodeBuild: the build's ARN and resolved source version go into the release's
//! provenance, logs are JSON lines, and `--junit` leaves a report of every check for
//! CodeBuild's test reports.

use crate::support::{Project, Run, TWO_APPROVERS, pipeline};

#[test]
fn a_codebuild_build_is_recorded_in_the_provenance_and_logs_json_lines() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let mut c = p.command("codebuild", &["build", "pipeline.yaml", "--output", "json"]);
    c.env("FERRY_LOG", "info")
        .env("CODEBUILD_BUILD_ID", "shop-build:7f3c")
        .env("CODEBUILD_BUILD_ARN", "arn:aws:codebuild:eu-west-1:444444444444:build/shop-build:7f3c")
        .env("CODEBUILD_RESOLVED_SOURCE_VERSION", "9fceb02d0ae598e95dc970b74767f19372d61af8")
        .env("CODEBUILD_BUILD_URL", "https://console.aws.amazon.com/codesuite/codebuild/projects/shop-build/build/shop-build:7f3c");
    let r: Run = c.output().unwrap().into();
    let r = r.expect(0);
    let built = r.json();
    let m = &built["manifest"];
    assert_eq!(m["builder"]["id"], "arn:aws:codebuild:eu-west-1:444444444444:build/shop-build:7f3c");
    assert_eq!(m["source"]["commit"], "9fceb02d0ae598e95dc970b74767f19372d61af8");
    assert_eq!(m["ci"]["provider"], "codebuild");
    assert_eq!(m["ci"]["run_id"], "shop-build:7f3c");
    let logs: Vec<&str> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!logs.is_empty());
    for line in logs.iter().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{line}");
    }
    assert!(logs.iter().any(|l| l.starts_with('{') && l.contains("signing the release")), "{}", r.stderr);
}

#[test]
fn junit_reports_verification_gates_approvals_and_deploy_actions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    p.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--junit", "staging.xml"]).expect(0);
    let xml = std::fs::read_to_string(p.path("staging.xml")).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("<testsuites name=\"ferry promote\""), "{xml}");
    assert!(xml.contains("name=\"verify release (promote to staging)\""), "{xml}");
    assert!(xml.contains("<testsuite name=\"stage staging\""), "{xml}");
    assert!(xml.contains("name=\"deploy action 0: command: echo"), "{xml}");
    assert!(xml.contains("failures=\"0\""), "{xml}");

    p.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "prod", "--junit", "prod.xml"]).expect(3);
    let xml = std::fs::read_to_string(p.path("prod.xml")).unwrap();
    assert!(xml.contains("<skipped message=\"awaiting approval (0 of 2)\"/>"), "{xml}");

    // A failing pre-deploy gate is a failure with its reason.
    let failing = pipeline(TWO_APPROVERS).replace(
        "  - name: staging\n    account: staging\n    region: eu-west-1\n",
        "  - name: staging\n    account: staging\n    region: eu-west-1\n    gates:\n      - type: command\n        run: exit 7\n",
    );
    let q = Project::new(&failing);
    let id = q.build();
    q.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--junit", "fail.xml"]).expect(1);
    let xml = std::fs::read_to_string(q.path("fail.xml")).unwrap();
    assert!(xml.contains("name=\"gate command: exit 7\"") && xml.contains("<failure message=\"exit code 7\"/>"), "{xml}");
}

/// The example buildspec's build phase, run as CodeBuild would (each command in one shell,
/// `PIPELINE` from its env): prod waits (exit 3 is no failure) and the JUnit report lands where
/// the report group reads it, with nobody creating `reports/` first.
#[test]
fn the_example_buildspecs_build_phase_passes_and_leaves_the_report_for_the_report_group() {
    use crate::support::yaml_field as get;
    use ferry_core::yaml::{Kind, parse};
    let root = crate::support::repo_root();
    let doc = parse("buildspec.yml", &std::fs::read_to_string(root.join("examples/codebuild/buildspec.yml")).unwrap()).unwrap();
    let phases = get(&doc, "phases").unwrap();
    assert!(get(&get(&phases, "install").unwrap(), "runtime-versions").is_none(), "ferry needs no runtime");
    let Kind::Seq(cached) = get(&get(&doc, "cache").unwrap(), "paths").unwrap().kind else { panic!("cache paths") };
    assert!(cached.iter().any(|p| p.as_scalar().is_some_and(|s| s.starts_with("/opt/ferry"))), "the built ferry is cached");
    let report = get(&get(&get(&doc, "reports").unwrap(), "ferry-checks").unwrap(), "files").unwrap();
    let Kind::Seq(files) = report.kind else { panic!("report files") };
    let report_file = files[0].as_scalar().unwrap().to_owned();
    let Kind::Seq(commands) = get(&get(&phases, "build").unwrap(), "commands").unwrap().kind else { panic!("build commands") };

    let p = Project::new(&pipeline(TWO_APPROVERS));
    let bin = p.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(crate::support::FERRY, bin.join("ferry")).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let build_phase = |release: &str| {
        for c in &commands {
            let line = c.as_scalar().unwrap();
            // Under bash with the project's environment (FERRY_HOME, FERRY_ACTOR, …), as CodeBuild
            // runs it; FERRY_RELEASE as a `codebuild` notification's StartBuild overrides it.
            let out = p
                .bash("codebuild", line)
                .env("PATH", &path)
                .env("PIPELINE", "pipeline.yaml")
                .env("FERRY_RELEASE", release)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "`{line}` failed:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    build_phase("");
    let xml = std::fs::read_to_string(p.path(&report_file)).unwrap_or_else(|e| panic!("{report_file}: {e}"));
    assert!(xml.contains("<testsuites name=\"ferry run\""), "{xml}");
    assert!(xml.contains("awaiting approval"), "{xml}");

    // Approvals complete; the build a `codebuild` notification starts carries that release on
    // (nothing new is built) and deploys prod.
    let id = p.deploys()[0].split(' ').nth(1).unwrap().to_owned();
    p.approve("alice", &id, "prod").expect(0);
    p.approve("bob", &id, "prod").expect(0);
    build_phase(&id);
    let deploys = p.deploys();
    assert_eq!(deploys.len(), 2, "{deploys:?}");
    assert!(deploys[1].starts_with(&format!("prod {id} ")), "{deploys:?}");
    let releases = std::fs::read_dir(p.home().join("store/releases")).unwrap().count();
    assert_eq!(releases, 1, "the release was carried on, not rebuilt");
}
