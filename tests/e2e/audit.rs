//! `ferry audit verify` proves the hash chain and pinpoints edits, deletions, insertions
//! and reorderings; `ferry audit show` prints the history.

use std::path::PathBuf;

use crate::support::{Project, Run, TWO_APPROVERS, pipeline};

/// A built release promoted to staging, its log stored one event per file (what the tamper
/// tests edit; the same log as the appends wrote it, which verifies alike).
fn project_with_history() -> (Project, String) {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.unbatch_audit();
    (p, id)
}

fn event_file(p: &Project, seq: u64) -> PathBuf {
    p.home().join("audit/events").join(format!("{:08}", (seq - 1) / 1000)).join(format!("{seq:012}.json"))
}

#[test]
fn an_untouched_log_verifies() {
    let (p, _) = project_with_history();
    let r = p.ferry("auditor", &["audit", "verify"]).expect(0);
    assert!(r.stdout.contains("verified:"), "{}", r.stdout);
    let n = p.audit_events().len();
    assert_eq!(n, 9, "build, sign, store, verify, lock, deploy start/end, success, unlock");
    assert_eq!(p.ferry("auditor", &["audit", "verify", "--output", "json"]).expect(0).json()["events"], n);
}

#[test]
fn a_promotion_writes_its_events_in_a_few_appends_and_an_edit_inside_one_is_pinpointed() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    // build + sign before the release is stored, store after; the promotion's decisions before
    // its deploy action runs, and its outcome before the lock is released.
    let lines: Vec<usize> = p.audit_event_files().iter().map(|f| std::fs::read_to_string(f).unwrap().lines().count()).collect();
    assert_eq!(lines, [2, 1, 3, 3], "{lines:?}");
    p.ferry("auditor", &["audit", "verify"]).expect(0);
    let second = &p.audit_event_files()[3];
    let text = std::fs::read_to_string(second).unwrap().replacen("\"action\":0", "\"action\":1", 1);
    std::fs::write(second, text).unwrap();
    let r = p.ferry("auditor", &["audit", "verify"]).expect(4);
    assert!(r.stdout.contains("first bad event is 7: event 7 does not match its own hash"), "{}", r.stdout);
}

#[test]
fn an_edited_event_is_pinpointed() {
    let (p, _) = project_with_history();
    let f = event_file(&p, 2);
    let text = std::fs::read_to_string(&f).unwrap().replace("\"actor\":\"builder\"", "\"actor\":\"someone\"");
    std::fs::write(&f, text).unwrap();
    let r = p.ferry("auditor", &["audit", "verify"]).expect(4);
    assert!(r.stdout.contains("first bad event is 2: event 2 does not match its own hash"), "{}", r.stdout);
}

#[test]
fn a_deleted_event_is_pinpointed() {
    let (p, _) = project_with_history();
    std::fs::remove_file(event_file(&p, 5)).unwrap();
    let r = p.ferry("auditor", &["audit", "verify"]).expect(4);
    assert!(r.stdout.contains("first bad event is 5: event 5 is missing"), "{}", r.stdout);
}

#[test]
fn an_inserted_event_is_pinpointed() {
    let (p, _) = project_with_history();
    let n = p.audit_events().len() as u64;
    // Shift events 3.. up by one and put a forged copy of event 2 at position 3.
    for seq in (3..=n).rev() {
        std::fs::rename(event_file(&p, seq), event_file(&p, seq + 1)).unwrap();
    }
    std::fs::copy(event_file(&p, 2), event_file(&p, 3)).unwrap();
    let r = p.ferry("auditor", &["audit", "verify"]).expect(4);
    assert!(r.stdout.contains("first bad event is 3:"), "{}", r.stdout);
}

#[test]
fn reordered_events_are_pinpointed() {
    let (p, _) = project_with_history();
    let (a, b) = (event_file(&p, 6), event_file(&p, 7));
    let tmp = a.with_extension("swap");
    std::fs::rename(&a, &tmp).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let r = p.ferry("auditor", &["audit", "verify"]).expect(4);
    assert!(r.stdout.contains("first bad event is 6: position 6 holds event 7"), "{}", r.stdout);
}

#[test]
fn audit_show_filters_by_release() {
    let (p, id) = project_with_history();
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    let other = p.build();
    let shown = p.ferry("auditor", &["audit", "show", "--release", &id]).expect(0).stdout;
    assert!(shown.contains(&id) && !shown.contains(&other), "{shown}");
    for kind in ["build", "sign", "store", "verify_ok", "lock_taken", "deploy_start", "deploy_end", "promotion_succeeded", "lock_released"]
    {
        assert!(shown.contains(kind), "missing {kind} in:\n{shown}");
    }
}

#[test]
fn truncating_the_log_is_caught_by_the_signed_checkpoint() {
    let (p, _) = project_with_history();
    let ok = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(0);
    // One checkpoint per command that decided something: the build's and the promotion's.
    let n = p.audit_events().len() as u64;
    assert!(ok.stdout.contains(&format!("2 signed checkpoints verified (the newest vouches for events 1..={n} as of ")), "{}", ok.stdout);
    for seq in 3..=n {
        std::fs::remove_file(event_file(&p, seq)).unwrap();
    }
    // The log's head record still names the last event: a cut is seen without any key…
    let r = p.ferry("auditor", &["audit", "verify"]).expect(4);
    assert!(r.stdout.contains(&format!("first bad event is 3: the log's head says it holds {n} events")), "{}", r.stdout);
    // …but whoever cuts the log can rewrite the head too: the chain alone cannot tell a
    // shorter log from a complete one…
    let head = p.home().join("audit/head.json");
    let mut h: serde_json::Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    h["seq"] = 2.into();
    h["hash"] = serde_json::from_slice::<serde_json::Value>(&std::fs::read(event_file(&p, 2)).unwrap()).unwrap()["hash"].clone();
    std::fs::write(&head, serde_json::to_vec(&h).unwrap()).unwrap();
    let chain_only = p.ferry("auditor", &["audit", "verify"]).expect(0);
    assert!(chain_only.stdout.contains("not checked"), "{}", chain_only.stdout);
    // …the checkpoint signed at release time can.
    let r = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(4);
    assert!(r.stdout.contains("first bad event is 3: a signed checkpoint says the log had 3 events; event 3 is gone"), "{}", r.stdout);
}

#[test]
fn a_forged_checkpoint_does_not_verify() {
    let (p, _) = project_with_history();
    let dir = p.home().join("audit/checkpoints");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let file = files[0].clone();
    let mut env: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    env["signatures"][0]["sig"] = serde_json::Value::String("AAAA".into());
    std::fs::write(&file, serde_json::to_vec(&env).unwrap()).unwrap();
    let r = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(4);
    assert!(r.stdout.contains("checkpoint at event 3 does not verify"), "{}", r.stdout);
}

#[test]
fn an_auditor_verifies_the_stored_log_with_the_python_standard_library_alone() {
    // A log created with segments of four events, so some are sealed; output with a newline
    // and non-ASCII text.
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let run = |args: &[&str]| Run::from(p.command("deployer", args).env("FERRY_AUDIT_SEGMENT_SIZE", "4").output().unwrap());
    for version in ["one", "two"] {
        std::fs::write(p.path("app/src.txt"), format!("version {version}\n")).unwrap();
        let id = run(&["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
        run(&["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
        run(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
        let reject =
            ["reject", "pipeline.yaml", "--release", &id, "--stage", "prod", "--comment", "går inte\n\"andra\" raden\t\u{1}", "--yes"];
        Run::from(p.command("bob", &reject).output().unwrap()).expect(0);
    }
    assert!(p.home().join("audit/segments/00000004.jsonl").exists(), "more than 20 events in segments of 4: five or more sealed");
    let out = std::process::Command::new(crate::support::venv_python())
        .arg(crate::support::repo_root().join("tests/conformance/verify_audit_log.py"))
        .arg(p.home().join("audit"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let n: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let ferry = p.ferry("auditor", &["audit", "verify", "--output", "json"]).expect(0).json();
    assert_eq!(ferry["events"], n, "the standard library counts what ferry counts");
    assert_eq!(ferry["sealed_segments"], n / 4);
}

#[test]
fn a_log_with_no_events_is_not_reported_as_verified() {
    // A wrong FERRY_HOME, bucket or prefix looks exactly like an empty log.
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let r = p.ferry("auditor", &["audit", "verify"]).expect(1);
    assert!(r.stderr.contains("holds no events: nothing was verified") && r.stderr.contains("--pipeline FILE"), "{}", r.stderr);
}

#[test]
fn a_cut_after_the_last_promotion_is_caught_by_its_checkpoint() {
    // Checkpoints follow every command that decided something, not only builds: cutting the
    // promotion's events off (and rewinding the head) is named.
    let (p, _) = project_with_history();
    let n = p.audit_events().len() as u64;
    for seq in 5..=n {
        std::fs::remove_file(event_file(&p, seq)).unwrap();
    }
    let head = p.home().join("audit/head.json");
    let mut h: serde_json::Value = serde_json::from_slice(&std::fs::read(&head).unwrap()).unwrap();
    h["seq"] = 4.into();
    h["hash"] = serde_json::from_slice::<serde_json::Value>(&std::fs::read(event_file(&p, 4)).unwrap()).unwrap()["hash"].clone();
    std::fs::write(&head, serde_json::to_vec(&h).unwrap()).unwrap();
    let r = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(4);
    assert!(r.stdout.contains(&format!("first bad event is {n}: a signed checkpoint says the log had {n} events")), "{}", r.stdout);
}
