//! The gatekeeper's decision (issue #12), on the local backend: from the published trust root
//! and the store alone, whether prod's credentials may be handed out — admitted with a quorum
//! of signed approvals, pending without, refused for a tampered release, a missing staging
//! attestation, a closed window or a caller who did not make the request; a caller-edited
//! pipeline file changes nothing.

use ferry_core::gatekeeper::{Answer, Ask, decide};

use crate::support::{Project, TWO_APPROVERS, pipeline};

fn protected(prod_gates: &str) -> String {
    format!("{}policy:\n  protected_stages: [prod]\n", pipeline(TWO_APPROVERS))
        .replace("  - name: prod\n    account: prod\n", &format!("  - name: prod\n    account: prod\n{prod_gates}"))
}

/// What the gatekeeper answers `caller` asking for prod's credentials for `release`.
fn ask(p: &Project, release: &str, caller: &str) -> Answer {
    let svc = ferry_local::Home::new(p.home()).services();
    let root = svc.trust.current(&"shop".parse().unwrap()).unwrap().expect("a published root").root;
    decide(
        svc.store.as_ref(),
        svc.state.as_ref(),
        svc.clock.now(),
        &root,
        &Ask { release: release.parse().unwrap(), stage: "prod".parse().unwrap(), caller: caller.parse().unwrap() },
    )
    .unwrap()
}

fn refused(answer: Answer) -> String {
    match answer {
        Answer::Refuse { reason } => reason,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn prods_credentials_wait_for_the_roots_quorum_whatever_the_pipeline_file_says() {
    let p = Project::new(&protected(""));
    p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    assert_eq!(ask(&p, &id, "deployer"), Answer::Pending { have: vec![], need: 2 });
    p.approve("alice", &id, "prod").expect(0);
    // CI lowers the threshold in its checkout and drops a plain "approval" into the store.
    let file = std::fs::read_to_string(p.path("pipeline.yaml")).unwrap();
    std::fs::write(p.path("pipeline.yaml"), file.replace("required: 2", "required: 1")).unwrap();
    let dir = p.home().join(format!("store/approvals/shop/{id}/prod"));
    std::fs::write(dir.join("0-bob-forged.json"), format!(r#"{{"actor":"bob","verdict":"approve","release":"{id}"}}"#)).unwrap();
    assert_eq!(ask(&p, &id, "deployer"), Answer::Pending { have: vec!["alice".into()], need: 2 });
    std::fs::write(p.path("pipeline.yaml"), file).unwrap();
    p.approve("bob", &id, "prod").expect(0);
    match ask(&p, &id, "deployer") {
        Answer::Admit { approved_by, .. } => assert_eq!(approved_by, ["alice", "bob"]),
        other => panic!("expected admission, got {other:?}"),
    }
    // Only for the caller who made the request.
    assert!(refused(ask(&p, &id, "mallory")).contains("was made by `deployer`, not by the caller `mallory`"));
    // A tampered manifest: refused.
    let manifest = p.release_dir(&id).join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(text.contains("sh build.sh"));
    std::fs::write(&manifest, text.replace("sh build.sh", "sh evil.sh")).unwrap();
    assert!(refused(ask(&p, &id, "deployer")).contains("does not hash to release id"));
}

#[test]
fn a_release_never_proven_in_staging_or_a_closed_window_is_refused() {
    let freeze = "    gates:\n      - type: window\n        freeze:\n          - {from: \"2000-01-01T00:00:00Z\", to: \"2100-01-01T00:00:00Z\", reason: year-end freeze}\n";
    let p = Project::new(&protected(""));
    p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let id = p.build();
    assert!(refused(ask(&p, &id, "deployer")).contains("has not been proven to succeed in `staging`, which `prod` requires"));
    // A forged staging record ("succeeded", no attestation) proves nothing either.
    p.promote("deployer", &id, "staging").expect(0);
    let state = p.home().join(format!("store/state/shop/{id}/staging.json"));
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    record["deployment"] = serde_json::Value::Null;
    std::fs::write(&state, serde_json::to_vec(&record).unwrap()).unwrap();
    assert!(refused(ask(&p, &id, "deployer")).contains("no signed deployment attestation"));

    let q = Project::new(&protected(freeze));
    q.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let id = q.build();
    q.promote("deployer", &id, "staging").expect(0);
    assert!(refused(ask(&q, &id, "deployer")).contains("year-end freeze"), "the root's window is closed");
}
