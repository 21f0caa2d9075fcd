//! The trust root: an administrator publishes what a pipeline's guarded stages trust (release
//! key, approver keys, thresholds, protected stages); a pipeline file the automation edited to
//! disagree is refused with the difference, for promotions and approvals alike.

use crate::support::{Project, TWO_APPROVERS, pipeline};

fn protected() -> String {
    format!("{}policy:\n  protected_stages: [prod]\n", pipeline(TWO_APPROVERS))
}

fn keyid(p: &Project, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p.path(&format!("keys/{name}.json"))).unwrap()).unwrap();
    v["keyid"].as_str().unwrap().to_owned()
}

#[test]
fn a_protected_stage_waits_for_a_published_trust_root() {
    let p = Project::new(&protected());
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    let r = p.promote("deployer", &id, "prod").expect(4);
    assert!(r.stderr.contains("stage `prod` of pipeline `shop` is protected, but no trust root is published"), "{}", r.stderr);
    assert!(r.stderr.contains("ferry trust publish pipeline.yaml"), "{}", r.stderr);
    let refused = p.audit_events().into_iter().rfind(|e| e["kind"] == "gate_failed").unwrap();
    assert_eq!(refused["details"]["gate"], "trust_root");
    let published = p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    assert!(published.stdout.contains("published trust root 1 of `shop`"), "{}", published.stdout);
    assert!(published.stdout.contains(&format!("approver bob: key {}", keyid(&p, "bob"))), "{}", published.stdout);
    assert!(published.stdout.contains("protected stage prod: 2 of alice, bob, carol"), "{}", published.stdout);
    // Publishing the same root again changes nothing.
    let same = p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    assert!(same.stdout.contains("already says exactly this; nothing published"), "{}", same.stdout);
    p.ferry("ci", &["trust", "diff", "pipeline.yaml"]).expect(0);
    p.promote("deployer", &id, "prod").expect(3);
}

#[test]
fn a_pipeline_file_edited_to_pin_another_key_or_lower_the_threshold_is_refused_with_the_difference() {
    let p = Project::new(&protected());
    p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    // CI's edit: its own key pinned as bob's, one approval enough, prod no longer protected.
    p.ferry("ci", &["keygen", "--name", "mallory"]).expect(0);
    p.ferry("ci", &["key", "export", "--name", "mallory", "--out", "keys"]).expect(0);
    let honest = std::fs::read_to_string(p.path("pipeline.yaml")).unwrap();
    let edited = honest
        .replace("bob: {public_key: keys/bob.pem}", "bob: {public_key: keys/mallory.pem}")
        .replace("required: 2", "required: 1")
        .replace("policy:\n  protected_stages: [prod]\n", "");
    std::fs::write(p.path("pipeline.yaml"), edited).unwrap();
    let r = p.promote("deployer", &id, "prod").expect(4);
    assert!(r.stderr.contains("disagrees with the trust root published for `shop` (serial 1, by admin"), "{}", r.stderr);
    for line in [
        format!("- approver bob: key {}", keyid(&p, "bob")),
        format!("+ approver bob: key {}", keyid(&p, "mallory")),
        "- protected stage prod: 2 of alice, bob, carol".to_owned(),
        "+ stage prod: 1 of alice, bob, carol".to_owned(),
    ] {
        assert!(r.stderr.contains(&line), "{line}: {}", r.stderr);
    }
    // Signing as "bob" with mallory's key: refused before anything is signed, and audited.
    let sign = p.ferry("ci", &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--as", "bob", "--yes"]);
    assert_ne!(sign.code, 0, "{}", sign.stdout);
    assert!(sign.stderr.contains("disagrees with the trust root"), "{}", sign.stderr);
    assert!(!p.audit_kinds().iter().any(|k| k == "approved"));
    let diff = p.ferry("ci", &["trust", "diff", "pipeline.yaml"]).expect(4);
    assert!(diff.stdout.contains(&format!("+ approver bob: key {}", keyid(&p, "mallory"))), "{}", diff.stdout);
    // The honest file again: the promotion waits for two real approvers.
    std::fs::write(p.path("pipeline.yaml"), honest).unwrap();
    p.approve("alice", &id, "prod").expect(0);
    p.approve("bob", &id, "prod").expect(0);
    p.promote("deployer", &id, "prod").expect(0);
    let verified = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(0);
    assert!(verified.stdout.contains("judged by the trust root published by admin (serial 1)"), "{}", verified.stdout);
    // Without a pipeline file, the home's published roots are what the evidence is judged by.
    let plain = p.ferry("auditor", &["audit", "verify"]).expect(0);
    assert!(
        plain.stdout.contains("signed evidence of")
            && plain.stdout.contains("pipeline `shop`, judged by the trust root published by admin"),
        "{}",
        plain.stdout
    );
    assert!(plain.stdout.contains("prod: deployed, attested (2/2 approvals: alice, bob); ok"), "{}", plain.stdout);
}

#[test]
fn each_publication_is_a_new_version_and_the_history_keeps_them_all() {
    let p = Project::new(&protected());
    p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let raised = std::fs::read_to_string(p.path("pipeline.yaml")).unwrap().replace("required: 2", "required: 3");
    std::fs::write(p.path("pipeline.yaml"), raised).unwrap();
    let second = p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    assert!(second.stdout.contains("published trust root 2 of `shop`"), "{}", second.stdout);
    assert!(second.stdout.contains("changes from serial 1:"), "{}", second.stdout);
    assert!(second.stdout.contains("+ protected stage prod: 3 of alice, bob, carol"), "{}", second.stdout);
    let history = p.ferry("auditor", &["trust", "show", "pipeline.yaml", "--history", "--output", "json"]).expect(0).json();
    let serials: Vec<u64> = history["roots"].as_array().unwrap().iter().map(|r| r["serial"].as_u64().unwrap()).collect();
    assert_eq!(serials, [1, 2]);
    // Stored once each, never replaced.
    assert!(p.home().join("trust/shop/00000001.json").is_file() && p.home().join("trust/shop/00000002.json").is_file());
}

#[test]
fn a_pipeline_file_edited_to_skip_staging_or_drop_prods_window_is_refused_before_anything_runs() {
    let with_window = protected().replace(
        "  - name: prod\n    account: prod\n",
        "  - name: prod\n    account: prod\n    gates:\n      - type: window\n        days: [mon, tue, wed, thu, fri, sat, sun]\n",
    );
    let p = Project::new(&with_window);
    p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let id = p.build();
    // CI's edit: prod requires nothing (skip staging) and has no window.
    let edited = with_window.replace(
        "  - name: prod\n    account: prod\n    gates:\n      - type: window\n        days: [mon, tue, wed, thu, fri, sat, sun]\n",
        "  - name: prod\n    account: prod\n    requires: []\n",
    );
    std::fs::write(p.path("pipeline.yaml"), edited).unwrap();
    let r = p.promote("deployer", &id, "prod").expect(4);
    for line in ["- protected stage prod: requires staging", "+ protected stage prod: requires nothing", "- protected stage prod: window {"]
    {
        assert!(r.stderr.contains(line), "{line}: {}", r.stderr);
    }
    assert!(p.deploys().is_empty(), "nothing ran");
}
