//! Leases on S3 (moto): a promotion keeps its stage lock for as long as it runs, however long
//! its actions take, and one that loses the lock stops — its command, its waits — and fails,
//! audited. ferry's clock runs faster here (`FERRY_TIME_SCALE`), so a 30 s lease lasts seconds.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::aws::{AwsWorld, TOOLING};
use crate::support::Run;

fn events(w: &AwsWorld, ci: &aws_config::SdkConfig) -> Vec<serde_json::Value> {
    w.ferry(ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// Starts a promotion to staging with a 30 s lease and returns once its deploy has started.
fn promote_until_deploying(w: &AwsWorld, ci: &aws_config::SdkConfig, id: &str) -> (std::process::Child, Instant) {
    let first = w
        .command(ci, &["promote", "pipeline.yaml", "--release", id, "--to", "staging", "--lease", "30s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while w.deploys().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(60), "the deploy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (first, started)
}

#[test]
fn an_action_three_times_longer_than_the_lease_keeps_the_stage_and_a_second_runner_is_refused_the_whole_time() {
    let w = AwsWorld::new();
    // At 10× a 30 s lease lasts 3 s; the deploy runs 10 s: more than three leases.
    w.time_scale.set(Some(10));
    w.write_project("; sleep 10");
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let other = w.role(TOOLING, "ci", "github-run-2");
    let id = w.release(&ci);
    let (first, _) = promote_until_deploying(&w, &ci, &id);
    let deploying = Instant::now();
    let mut refusals = 0;
    while deploying.elapsed() < Duration::from_secs(8) {
        let busy = w.ferry(&other, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--lease", "30s"]).expect(5);
        assert!(busy.stderr.contains("is busy") && busy.stderr.contains("github-run-1"), "{}", busy.stderr);
        refusals += 1;
    }
    assert!(refusals >= 4, "asked {refusals} times during the deploy");
    Run::from(first.wait_with_output().unwrap()).expect(0);
    assert_eq!(w.deploys().len(), 1, "deployed once");
    let kinds: Vec<String> = events(&w, &ci).iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect();
    assert!(!kinds.iter().any(|k| k == "lock_taken_over" || k == "lease_lost"), "{kinds:?}");
}

#[test]
fn a_promotion_that_loses_its_lock_stops_its_command_and_fails_audited_and_is_never_silently_repeated() {
    let w = AwsWorld::new();
    w.time_scale.set(Some(10));
    w.write_project("; sleep 20; echo finished >> deploys.log");
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let id = w.release(&ci);
    let (first, started) = promote_until_deploying(&w, &ci, &id);
    // An operator removes the lock while the deploy runs.
    w.ferry(&ci, &["unlock", "pipeline.yaml", "--stage", "staging"]).expect(0);
    let lost = Run::from(first.wait_with_output().unwrap()).expect(1);
    assert!(started.elapsed() < Duration::from_secs(18), "stopped when the lock was lost, not when the deploy ended");
    assert!(lost.stderr.contains("lost the lock of stage `staging`") && lost.stderr.contains("stopped"), "{}", lost.stderr);
    assert_eq!(w.deploys().len(), 1, "the command was stopped before it finished: {:?}", w.deploys());
    let evs = events(&w, &ci);
    let kinds: Vec<&str> = evs.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"lease_lost"), "the loss is audited: {kinds:?}");
    // The operator's forced release is the only one: the promotion released nothing it no longer
    // held. (The two runs append concurrently, so the operator's event may come after the loss.)
    let released: Vec<&serde_json::Value> = evs.iter().filter(|e| e["kind"] == "lock_released").collect();
    assert_eq!(released.len(), 1, "a lock no longer ours is not released: {kinds:?}");
    assert_eq!(released[0]["details"]["forced"], true, "{:#}", released[0]);
    // The stopped action may have partly run: the next run repeats it only when told.
    let again = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(1);
    assert!(again.stderr.contains("deploy action 0") && again.stderr.contains("--redeploy"), "{}", again.stderr);
    assert_eq!(w.deploys().len(), 1);
}
