//! Crashes at every recorded step: `ferry promote` is stopped right after each of its durable
//! writes in turn (`FERRY_CRASH_AFTER_WRITES=N` aborts the process there, as SIGKILL or a
//! power cut would). After each crash the log is never behind the state, the next run
//! completes (with `--redeploy` only when ferry cannot know whether an action ran), nothing
//! is deployed twice, and the log verifies.

use std::process::Stdio;

use serde_json::Value;

use crate::support::{Project, Run, TWO_APPROVERS, pipeline};

/// What the log must already say for the state on disk to be allowed.
fn assert_log_not_behind_state(p: &Project, id: &str, n: u64) {
    let events = p.audit_events();
    let has = |kind: &str, action: Option<u64>| {
        events.iter().any(|e| {
            e["kind"] == kind
                && e["release"] == id
                && e["stage"] == "staging"
                && action.is_none_or(|a| e["details"]["action"].as_u64() == Some(a))
        })
    };
    let state = p.home().join(format!("store/state/shop/{id}/staging.json"));
    if let Ok(bytes) = std::fs::read(&state) {
        let s: Value = serde_json::from_slice(&bytes).unwrap();
        if s["status"] == "succeeded" {
            assert!(has("promotion_succeeded", None), "crash after write {n}: state says succeeded, the log does not");
        }
        for a in s["actions"].as_array().unwrap() {
            let i = a["index"].as_u64();
            match a["status"].as_str().unwrap() {
                "started" => assert!(has("deploy_start", i), "crash after write {n}: action started in the state only"),
                "succeeded" => assert!(has("deploy_end", i), "crash after write {n}: action succeeded in the state only"),
                _ => {}
            }
        }
        let max = events.iter().filter_map(|e| e["seq"].as_u64()).max().unwrap_or(0);
        assert!(s["audit_seq"].as_u64().unwrap() <= max, "crash after write {n}: the state names an event the log lacks");
    }
}

/// Whether the first attempt's action was recorded as started and nothing after: only then
/// may ferry ask for `--redeploy` (it cannot know whether the action ran).
fn crashed_between_start_and_run(p: &Project) -> bool {
    let kinds = p.audit_kinds();
    let first_start = kinds.iter().position(|k| k == "deploy_start");
    first_start.is_some_and(|i| kinds[i + 1..].iter().take_while(|k| *k != "verify_ok").all(|k| k != "deploy_end" && k != "deploy_failed"))
}

/// Runs the promotion again until it is done, as an operator would.
fn recover(p: &Project, id: &str, n: u64) -> Vec<Run> {
    let mut runs = vec![p.promote("deployer", id, "staging")];
    if runs[0].code == 1 && runs[0].stderr.contains("--redeploy") {
        // ferry cannot know whether an action that started ran: it asks, and is told.
        runs.push(p.ferry("deployer", &["promote", "pipeline.yaml", "--release", id, "--to", "staging", "--redeploy"]));
    }
    let last = runs.last().unwrap();
    assert_eq!(last.code, 0, "crash after write {n}: the next run did not complete:\n{}\n{}", last.stdout, last.stderr);
    runs
}

#[test]
fn a_promotion_crashed_after_any_write_is_completed_by_the_next_run_without_a_double_deploy() {
    let mut reconciled = 0;
    let mut n = 1;
    loop {
        let p = Project::new(&pipeline(TWO_APPROVERS));
        let id = p.build();
        let crashed = Run::from(
            p.command("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"])
                .env("FERRY_CRASH_AFTER_WRITES", n.to_string())
                .output()
                .unwrap(),
        );
        if crashed.code == 0 {
            // Lock taken, decisions appended, record created, outcome appended, record written,
            // lock released, a signed checkpoint, the log's head moved.
            assert_eq!(n, 9, "a promotion of one action makes eight durable writes (this one made {})", n - 1);
            eprintln!("crashed after each of {} writes", n - 1);
            break;
        }
        assert_eq!(crashed.code, -1, "crash after write {n}: expected an abort, got exit {}:\n{}", crashed.code, crashed.stderr);
        assert_log_not_behind_state(&p, &id, n);
        // A lock is coordination, not an outcome: one left behind is taken over, audited.
        let left_a_lock = p.home().join("store/locks/shop/staging.lock").exists();
        let runs = recover(&p, &id, n);
        if left_a_lock {
            assert!(
                p.audit_kinds().contains(&"lock_taken_over".to_owned()),
                "crash after write {n}: the dead holder's lock was taken over"
            );
        }
        assert_eq!(p.deploys().len(), 1, "crash after write {n}: deployed {} times", p.deploys().len());
        reconciled += usize::from(p.audit_kinds().contains(&"reconciled".to_owned()));
        if runs.len() > 1 {
            assert!(
                crashed_between_start_and_run(&p),
                "crash after write {n}: --redeploy was needed although the log says how the action ended"
            );
        }
        assert!(!p.home().join("store/locks/shop/staging.lock").exists(), "crash after write {n}: a lock was left behind");
        p.ferry("auditor", &["audit", "verify"]).expect(0);
        let state: Value =
            serde_json::from_slice(&std::fs::read(p.home().join(format!("store/state/shop/{id}/staging.json"))).unwrap()).unwrap();
        assert_eq!(state["status"], "succeeded", "crash after write {n}");
        n += 1;
    }
    assert!(reconciled >= 2, "crashes between an event and its state were caught up by the next run ({reconciled} times)");
}

/// On S3, every crash point at once: stage `sN` is promoted by a process that aborts after
/// its N-th write (a promotion of one action makes eight; the ninth run completes). Locks there are leases: the crashed runs take the shortest (30 s), on a
/// clock running ten times as fast.
#[test]
fn on_s3_a_promotion_crashed_after_any_write_is_completed_without_a_double_deploy() {
    use crate::aws::{AwsWorld, TOOLING};
    const POINTS: u64 = 9;
    let w = AwsWorld::new();
    w.time_scale.set(Some(10));
    w.write_project("");
    w.set_stages(&crate::support::independent_stages((1..=POINTS).map(|n| format!("s{n:02}")), "staging"));
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let id = w.release(&ci);
    let promote = |n: u64, extra: &[&str]| {
        let stage = format!("s{n:02}");
        let mut args = vec!["promote", "pipeline.yaml", "--release", &id, "--to", &stage];
        args.extend_from_slice(extra);
        w.command(&ci, &args)
    };
    let crashed: Vec<(u64, Run)> = (1..=POINTS)
        .map(|n| {
            (
                n,
                promote(n, &["--lease", "30s"])
                    .env("FERRY_CRASH_AFTER_WRITES", n.to_string())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|(n, c)| (n, Run::from(c.wait_with_output().unwrap())))
        .collect();
    let codes: Vec<(u64, i32)> = crashed.iter().map(|(n, r)| (*n, r.code)).collect();
    assert!(codes.iter().all(|(n, code)| *code == if *n < POINTS { -1 } else { 0 }), "every run but the last crashed: {codes:?}");
    // The log is never behind the state.
    let events =
        w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json()["events"]
            .as_array()
            .unwrap()
            .clone();
    let has = |kind: &str, stage: &str, action: Option<u64>| {
        events.iter().any(|e| e["kind"] == kind && e["stage"] == stage && action.is_none_or(|a| e["details"]["action"].as_u64() == Some(a)))
    };
    let store = crate::aws::ARTIFACTS;
    for (n, _) in &crashed {
        let stage = format!("s{n:02}");
        let key = format!("shop/state/shop/{id}/{stage}.json");
        if !w.keys(store, "ferry-artifacts", &w.store_bucket).contains(&key) {
            continue;
        }
        let s: Value = serde_json::from_slice(&w.get(store, "ferry-artifacts", &w.store_bucket, &key)).unwrap();
        if s["status"] == "succeeded" {
            assert!(has("promotion_succeeded", &stage, None), "crash after write {n}: state says succeeded, the log does not");
        }
        for a in s["actions"].as_array().unwrap() {
            let i = a["index"].as_u64();
            match a["status"].as_str().unwrap() {
                "started" => assert!(has("deploy_start", &stage, i), "crash after write {n}: action started in the state only"),
                "succeeded" => assert!(has("deploy_end", &stage, i), "crash after write {n}: action succeeded in the state only"),
                _ => {}
            }
        }
    }
    // The next runs wait for the crashed runs' leases to lapse, then complete every stage.
    let mut redeployed = 0;
    for (n, _) in &crashed {
        let mut r = Run::from(promote(*n, &["--wait", "300s"]).output().unwrap());
        if r.code == 1 && r.stderr.contains("--redeploy") {
            redeployed += 1;
            r = Run::from(promote(*n, &["--redeploy"]).output().unwrap());
        }
        assert_eq!(r.code, 0, "crash after write {n}: the next run did not complete:\n{}", r.stderr);
    }
    assert!(redeployed <= 2, "only a crash between recording an action's start and running it needs --redeploy ({redeployed})");
    let mut deploys = w.deploys();
    deploys.sort();
    assert_eq!(deploys, (1..=POINTS).map(|n| format!("s{n:02}")).collect::<Vec<_>>(), "every stage deployed exactly once");
    assert!(!w.keys(store, "ferry-artifacts", &w.store_bucket).iter().any(|k| k.contains("/locks/")), "no lock left");
    w.ferry(&ci, &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(0);
}
