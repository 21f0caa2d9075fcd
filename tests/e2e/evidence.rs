//! `ferry audit verify --pipeline` proves more than the chain: every approval the log records is
//! backed by a signed decision, every approval gate that passed by a quorum of them recorded
//! before it, every deploy of a protected stage by that gate, and every success by a deployment
//! attestation — per release, naming each event that is not.

use serde_json::{Value, json};

use crate::support::{Project, TWO_APPROVERS, pipeline, repo_root, venv_python};

/// A release at prod's gate with alice's approval, and the request digest prod waits on.
fn at_prod_gate_with_one_approval() -> (Project, String, String) {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    p.approve("alice", &id, "prod").expect(0);
    let pending = p.audit_events().into_iter().rfind(|e| e["kind"] == "approval_pending").unwrap();
    let request = pending["details"]["request"].as_str().unwrap().to_owned();
    (p, id, request)
}

#[test]
fn a_release_approved_by_two_signed_decisions_is_proven_stage_by_stage() {
    let (p, id, _) = at_prod_gate_with_one_approval();
    // A decision is checkpointed at once (this machine holds the pipeline's key).
    let last = p.audit_events().last().unwrap()["seq"].as_u64().unwrap();
    assert!(p.home().join(format!("audit/checkpoints/{last:012}.dsse.json")).is_file(), "checkpoint at {last}");
    p.approve("bob", &id, "prod").expect(0);
    p.promote("deployer", &id, "prod").expect(0);
    let r = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(0);
    assert!(
        r.stdout.contains(&format!("{id}  staging: deployed, attested;  prod: deployed, attested (2/2 approvals: alice, bob); ok")),
        "{}",
        r.stdout
    );
    let ev =
        p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json()["evidence"].clone();
    assert_eq!(ev["problems"], json!([]));
    let prod = ev["releases"][0]["stages"].as_array().unwrap().iter().find(|s| s["stage"] == "prod").unwrap().clone();
    assert_eq!(
        prod,
        json!({"stage": "prod", "required": 2, "approved_by": ["alice", "bob"], "waived": false, "deployed": true, "attested": true})
    );
}

#[test]
fn correctly_chained_approved_gate_passed_and_success_events_appended_by_the_automation_are_named() {
    let (p, id, request) = at_prod_gate_with_one_approval();
    // What the audit role can write: bob's approval, the gate and a success, chained exactly.
    let bob = p.append_forged_event("approved", &id, "prod", json!({"approver": "bob", "keyid": "whatever", "request": request}));
    let gate = p.append_forged_event(
        "gate_passed",
        &id,
        "prod",
        json!({"gate": "approval", "approved_by": ["alice", "bob"], "required": 2, "request": request}),
    );
    let start = p.append_forged_event("deploy_start", &id, "prod", json!({"action": 0}));
    let done = p.append_forged_event("promotion_succeeded", &id, "prod", json!({"actions": 1}));
    // The chain holds: hashes and order are right.
    p.ferry("auditor", &["audit", "verify"]).expect(0);
    let r = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(4);
    for (seq, kind, says) in [
        (bob, "approved", "`approved` by `bob` is backed by no signed decision"),
        (gate, "gate_passed", "passed naming alice, bob, but the signed approvals recorded before it that count are alice (2 required)"),
        (start, "deploy_start", "was deployed to `prod` without a quorum of 2 signed approvals before it"),
        (done, "promotion_succeeded", "is not proven: it carries no signed deployment attestation"),
    ] {
        assert!(r.stdout.contains(&format!("event {seq} ({kind}): ")) && r.stdout.contains(says), "{seq} {kind}: {}", r.stdout);
    }
    let json = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(4).json();
    let named: Vec<u64> = json["evidence"]["problems"].as_array().unwrap().iter().map(|p| p["seq"].as_u64().unwrap()).collect();
    assert_eq!(named, [bob, gate, start, done]);
    assert_eq!(json["evidence"]["releases"][0]["problems"], 4);
}

#[test]
fn an_approval_signed_after_the_gate_passed_does_not_back_it() {
    let (p, id, request) = at_prod_gate_with_one_approval();
    // The gate claims bob before bob decided; bob's real approval comes later.
    let gate = p.append_forged_event(
        "gate_passed",
        &id,
        "prod",
        json!({"gate": "approval", "approved_by": ["alice", "bob"], "required": 2, "request": request}),
    );
    p.approve("bob", &id, "prod").expect(0);
    let r = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(4).json();
    let problems = r["evidence"]["problems"].as_array().unwrap().clone();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["seq"], gate);
    assert_eq!(problems[0]["kind"], "gate_passed");
}

#[test]
fn a_success_with_another_stages_attestation_is_not_proven() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    let staging = p.audit_events().into_iter().rfind(|e| e["kind"] == "promotion_succeeded").unwrap();
    let attestation: Value = staging["details"]["attestation"].clone();
    let forged = p.append_forged_event("promotion_succeeded", &id, "prod", json!({"actions": 1, "attestation": attestation}));
    let r = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(4);
    assert!(r.stdout.contains(&format!("event {forged} (promotion_succeeded)")), "{}", r.stdout);
    assert!(r.stdout.contains("is for stage `staging` of pipeline `shop`, not stage `prod`"), "{}", r.stdout);
}

/// `python verify_bundle.py DIR` from the test venv: (exit code, stdout + stderr).
fn python_verifies(dir: &std::path::Path) -> (i32, String) {
    let out =
        std::process::Command::new(venv_python()).arg(repo_root().join("tests/conformance/verify_bundle.py")).arg(dir).output().unwrap();
    (out.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn an_exported_bundle_is_verified_offline_by_ferry_and_by_securesystemslib_alone() {
    let (p, id, _) = at_prod_gate_with_one_approval();
    p.approve("bob", &id, "prod").expect(0);
    p.promote("deployer", &id, "prod").expect(0);
    // Another release's events interleave in the log; the bundle carries them for the chain only.
    let other = {
        std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
        p.build()
    };
    p.promote("deployer", &other, "staging").expect(0);
    let r = p.ferry("auditor", &["audit", "export", "--release", &id, "bundle"]).expect(0);
    assert!(r.stdout.contains("judged by the pipeline file"), "{}", r.stdout);
    let dir = p.path("bundle");
    for f in [
        "bundle.json",
        "manifest.json",
        "provenance.dsse.json",
        "events.jsonl",
        "checkpoint.dsse.json",
        "trust-root.json",
        "keys/release-1.json",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    assert_eq!(std::fs::read_dir(dir.join("approvals/prod")).unwrap().count(), 2);
    // Offline: the project's store and log moved away, so nothing but the bundle is read.
    std::fs::rename(p.home(), p.path("home-elsewhere")).unwrap();
    let ferry = p.ferry("auditor", &["audit", "verify", "--bundle", "bundle"]).expect(0);
    assert!(ferry.stdout.contains("prod: deployed, attested (2/2 approvals: alice, bob); ok"), "{}", ferry.stdout);
    let (code, out) = python_verifies(&dir);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "ok staging prod(2)");
    // Exporting into a directory that is not empty is refused; nothing is written.
    std::fs::rename(p.path("home-elsewhere"), p.home()).unwrap();
    let again = p.ferry("auditor", &["audit", "export", "--release", &id, "bundle"]).expect(2);
    assert!(again.stderr.contains("exists and is not empty"), "{}", again.stderr);
}

#[test]
fn a_bundle_without_one_of_the_two_approvals_fails_both_verifiers_even_with_its_index_mended() {
    let (p, id, _) = at_prod_gate_with_one_approval();
    p.approve("bob", &id, "prod").expect(0);
    p.promote("deployer", &id, "prod").expect(0);
    p.ferry("auditor", &["audit", "export", "--release", &id, "bundle"]).expect(0);
    let dir = p.path("bundle");
    // A file changed: both say so.
    let evil = dir.join("manifest.json");
    let original = std::fs::read(&evil).unwrap();
    std::fs::write(&evil, [original.as_slice(), b" "].concat()).unwrap();
    let r = p.ferry("auditor", &["audit", "verify", "--bundle", "bundle"]).expect(4);
    assert!(r.stdout.contains("manifest.json does not match its sha256 in bundle.json"), "{}", r.stdout);
    assert_ne!(python_verifies(&dir).0, 0);
    std::fs::write(&evil, original).unwrap();
    // Bob's approval taken out and bundle.json mended to match: the quorum is missing.
    let bob = std::fs::read_dir(dir.join("approvals/prod"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("-bob-"))
        .unwrap();
    let rel = bob.strip_prefix(&dir).unwrap().to_string_lossy().into_owned();
    std::fs::remove_file(&bob).unwrap();
    let mut index: Value = serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
    index["files"].as_object_mut().unwrap().remove(&rel);
    std::fs::write(dir.join("bundle.json"), serde_json::to_vec_pretty(&index).unwrap()).unwrap();
    let r = p.ferry("auditor", &["audit", "verify", "--bundle", "bundle"]).expect(4);
    assert!(r.stdout.contains("`approved` by `bob` is backed by no signed decision"), "{}", r.stdout);
    assert!(r.stdout.contains("NOT verified"), "{}", r.stdout);
    let (code, out) = python_verifies(&dir);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("`approved` by bob is backed by no valid signed decision"), "{out}");
}
