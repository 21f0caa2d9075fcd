//! One promotion per stage at a time; a crashed promotion is detected, never silently
//! re-run, and can be released or explicitly redeployed.

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Project, Run, TWO_APPROVERS, pipeline};

/// A pipeline whose staging deploy logs its start, then sleeps unless `fast` exists.
fn slow_pipeline(seconds: u32) -> String {
    pipeline(TWO_APPROVERS).replacen(
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        &format!(r#"run: echo "$FERRY_STAGE $FERRY_RELEASE" >> deploys.log; [ -f fast ] || sleep {seconds}"#),
        1,
    )
}

/// Starts `ferry promote` in its own process group so the whole tree can be killed.
fn spawn_promote(p: &Project, actor: &str, id: &str, extra: &[&str]) -> Child {
    let mut args = vec!["promote", "pipeline.yaml", "--release", id, "--to", "staging"];
    args.extend_from_slice(extra);
    p.command(actor, &args).process_group(0).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

fn wait_for_deploy_start(p: &Project, n: usize) {
    let start = Instant::now();
    while p.deploys().len() < n {
        assert!(start.elapsed() < Duration::from_secs(30), "deploy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What a crash of the machine leaves: ferry and every command it started (each runs in a
/// process group of its own) killed at once — every process of this project's `FERRY_HOME`.
fn kill_group(p: &Project, child: &mut Child) {
    let marker = format!("FERRY_HOME={}", p.home().display());
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if env.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
            let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
    }
    let _ = child.wait();
}

#[test]
fn two_concurrent_promotions_to_one_stage_deploy_exactly_once() {
    let p = Project::new(&slow_pipeline(6));
    let id = p.build();
    let first = spawn_promote(&p, "deployer-a", &id, &[]);
    wait_for_deploy_start(&p, 1);
    let second = p.promote("deployer-b", &id, "staging").expect(5);
    assert!(second.stderr.contains("stage `staging` is busy"), "{}", second.stderr);
    assert!(second.stderr.contains("being promoted by `deployer-a`"), "{}", second.stderr);
    assert!(second.stderr.contains("--wait"), "{}", second.stderr);
    let first: Run = first.wait_with_output().unwrap().into();
    let first = first.expect(0);
    assert!(first.stdout.contains("promoted"));
    assert_eq!(p.deploys().len(), 1);
    assert!(p.audit_kinds().iter().any(|k| k == "lock_busy"));
}

#[test]
fn a_waiting_promotion_finds_the_work_done_and_does_not_deploy_again() {
    let p = Project::new(&slow_pipeline(2));
    let id = p.build();
    let first = spawn_promote(&p, "deployer-a", &id, &[]);
    wait_for_deploy_start(&p, 1);
    let second = p.ferry("deployer-b", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--wait", "60s"]).expect(0);
    assert!(second.stdout.contains("already deployed"), "{}", second.stdout);
    Run::from(first.wait_with_output().unwrap()).expect(0);
    assert_eq!(p.deploys().len(), 1);
}

#[test]
fn a_sigkilled_promotion_is_detected_and_never_silently_deployed_twice() {
    let p = Project::new(&slow_pipeline(120));
    let id = p.build();
    let mut crashed = spawn_promote(&p, "deployer-a", &id, &[]);
    wait_for_deploy_start(&p, 1);
    kill_group(&p, &mut crashed);
    assert!(p.home().join("store/locks/shop/staging.lock").exists(), "the lock outlives the killed process");

    let status = p.ferry("anyone", &["status", "pipeline.yaml"]).expect(0).stdout;
    assert!(status.contains("lock on `staging` stale by deployer-a"), "{status}");

    let next = p.promote("deployer-b", &id, "staging").expect(1);
    assert!(next.stderr.contains("by `deployer-a` (pid "), "names the dead holder: {}", next.stderr);
    assert!(next.stderr.contains("that process is gone) and never finished: it may have partly run"), "{}", next.stderr);
    assert!(next.stderr.contains(&format!("ferry promote pipeline.yaml --release {id} --to staging --redeploy")), "{}", next.stderr);
    assert_eq!(p.deploys().len(), 1, "the interrupted action was not run again");
    let kinds = p.audit_kinds();
    assert!(kinds.iter().any(|k| k == "lock_taken_over"), "{kinds:?}");
    assert!(kinds.iter().any(|k| k == "deploy_interrupted"), "{kinds:?}");
    assert!(!p.home().join("store/locks/shop/staging.lock").exists(), "the refusal released the lock");

    // Asking again is refused again; only an explicit --redeploy runs the action once more.
    p.promote("deployer-b", &id, "staging").expect(1);
    std::fs::write(p.path("fast"), "").unwrap();
    p.ferry("deployer-b", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--redeploy"]).expect(0);
    assert_eq!(p.deploys().len(), 2);
    p.promote("deployer-b", &id, "staging").expect(0);
    assert_eq!(p.deploys().len(), 2);
}

#[test]
fn a_busy_stage_names_the_unlock_command_and_unlock_is_audited() {
    let p = Project::new(&slow_pipeline(120));
    let id = p.build();
    let mut holder = spawn_promote(&p, "deployer-a", &id, &[]);
    wait_for_deploy_start(&p, 1);
    let busy = p.promote("deployer-b", &id, "staging").expect(5);
    assert!(busy.stderr.contains("ferry unlock pipeline.yaml --stage staging"), "{}", busy.stderr);
    let unlocked = p.ferry("operator", &["unlock", "pipeline.yaml", "--stage", "staging"]).expect(0);
    assert!(unlocked.stdout.contains("held by `deployer-a`"), "{}", unlocked.stdout);
    kill_group(&p, &mut holder);
    let last = p.audit_events().last().cloned().unwrap();
    assert_eq!(last["kind"], "lock_released");
    assert_eq!(last["details"]["forced"], true);
    assert_eq!(last["actor"], "operator");
}

#[test]
fn a_failed_deploy_is_not_retried_without_redeploy() {
    let yaml = pipeline(TWO_APPROVERS).replacen(
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        r#"run: echo "$FERRY_STAGE" >> deploys.log; test -f fixed"#,
        1,
    );
    let p = Project::new(&yaml);
    let id = p.build();
    let failed = p.promote("deployer", &id, "staging").expect(1);
    assert!(failed.stderr.contains("deploy action 0"), "{}", failed.stderr);
    assert_eq!(p.audit_kinds().iter().filter(|k| *k == "deploy_failed").count(), 1);
    let again = p.promote("deployer", &id, "staging").expect(1);
    assert!(again.stderr.contains("--redeploy"), "{}", again.stderr);
    assert_eq!(p.deploys().len(), 1);
    std::fs::write(p.path("fixed"), "").unwrap();
    p.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--redeploy"]).expect(0);
    assert_eq!(p.deploys().len(), 2);
}

#[test]
fn a_command_that_outlives_its_killed_promotion_keeps_the_stage_busy_until_it_ends() {
    // The deploy logs its start and end; SIGKILL reaches ferry alone, not its command.
    let p = Project::new(&pipeline(TWO_APPROVERS).replacen(
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        r#"run: echo "start $FERRY_RELEASE" >> deploys.log; [ -f fast ] || sleep 4; echo "end $FERRY_RELEASE" >> deploys.log"#,
        1,
    ));
    let first = p.build();
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    let second = p.build();
    let mut crashed = spawn_promote(&p, "deployer-a", &first, &[]);
    wait_for_deploy_start(&p, 1);
    crashed.kill().unwrap();
    let _ = crashed.wait();
    let busy = p.promote("deployer-b", &second, "staging").expect(5);
    assert!(busy.stderr.contains("is gone, but what it started still runs (pid "), "{}", busy.stderr);
    assert!(busy.stderr.contains("ferry will not deploy beside it"), "{}", busy.stderr);
    // Waiting is allowed: the next release goes once the orphaned command has ended.
    std::fs::write(p.path("fast"), "").unwrap();
    p.ferry("deployer-b", &["promote", "pipeline.yaml", "--release", &second, "--to", "staging", "--wait", "60s"]).expect(0);
    assert_eq!(
        p.deploys(),
        [format!("start {first}"), format!("end {first}"), format!("start {second}"), format!("end {second}")],
        "never two deploys at once"
    );
}

#[test]
fn sigterm_to_ferry_mid_deploy_stops_the_command_and_everything_it_started_audits_it_and_frees_the_stage() {
    // The deploy starts a grandchild that clears its environment (no lock token on it), logs
    // its pid, and would log its end after a while.
    let p = Project::new(&pipeline(TWO_APPROVERS).replacen(
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        r#"run: echo "start $FERRY_RELEASE" >> deploys.log; env -i sh -c 'echo $$ > grandchild.pid; sleep 30' & [ -f fast ] || sleep 30; echo "end $FERRY_RELEASE" >> deploys.log"#,
        1,
    ));
    let first = p.build();
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    let second = p.build();
    let promoting = spawn_promote(&p, "deployer-a", &first, &[]);
    wait_for_deploy_start(&p, 1);
    let start = Instant::now();
    while !p.path("grandchild.pid").exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "the grandchild did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let grandchild = std::fs::read_to_string(p.path("grandchild.pid")).unwrap().trim().to_owned();
    // SIGTERM to ferry alone (not its process group).
    std::process::Command::new("kill").args(["-TERM", &promoting.id().to_string()]).status().unwrap();
    let stopped = Run::from(promoting.wait_with_output().unwrap()).expect(1);
    assert!(stopped.stderr.contains("ferry received SIGTERM"), "{}", stopped.stderr);
    assert!(
        !std::path::Path::new(&format!("/proc/{grandchild}")).exists()
            || std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default().contains(") Z "),
        "the grandchild {grandchild} was stopped with its group"
    );
    let events = p.audit_events();
    let failed = events.iter().rev().find(|e| e["kind"] == "deploy_failed").expect("the stopped action is audited");
    assert!(failed["details"]["detail"].as_str().unwrap().contains("stopped after"), "{failed}");
    assert!(failed["details"]["detail"].as_str().unwrap().contains("ferry received SIGTERM"), "{failed}");
    assert_eq!(events.last().unwrap()["kind"], "lock_released", "the lock was released on the way out");
    // The stage is free at once, and the stopped deploy never ran on beside the next one.
    std::fs::write(p.path("fast"), "").unwrap();
    p.promote("deployer-b", &second, "staging").expect(0);
    assert_eq!(p.deploys(), [format!("start {first}"), format!("start {second}"), format!("end {second}")]);
    // The stopped release needs an explicit redeploy: its action may have partly run.
    let again = p.promote("deployer-a", &first, "staging").expect(1);
    assert!(again.stderr.contains("--redeploy"), "{}", again.stderr);
}

#[test]
fn a_lease_shorter_than_thirty_seconds_is_refused_before_anything_happens() {
    let p = Project::new(&slow_pipeline(0));
    let id = p.build();
    let before = p.audit_kinds().len();
    let refused = p.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--lease", "10s"]).expect(2);
    assert!(refused.stderr.contains("a lease of 10s is too short") && refused.stderr.contains("at least 30s"), "{}", refused.stderr);
    assert_eq!(p.audit_kinds().len(), before, "nothing recorded");
    assert!(p.deploys().is_empty());
}
