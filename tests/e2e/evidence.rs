//! `ferry audit verify --pipeline` proves more than the chain: every approval the log records is
//! backed by a signed decision, every approval gate that passed by a quorum of them recorded
//! before it, every deploy of a protected stage by that gate, and every success by a deployment
//! attestation — per release, naming each event that is not.

use serde_json::{Value, json};

use crate::support::{Project, TWO_APPROVERS, pipeline};

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
