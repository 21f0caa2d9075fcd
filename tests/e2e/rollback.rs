//! `ferry rollback`: the previous (or named) release that once succeeded in a stage is
//! promoted again, verified and audited; approvals apply unless the policy waives them.

use crate::support::{Project, Run, TWO_APPROVERS, pipeline};

/// Two releases, A then B, both deployed to staging; returns (project, A, B).
fn two_releases(yaml: &str) -> (Project, String, String) {
    let p = Project::new(yaml);
    let a = p.build();
    p.promote("deployer", &a, "staging").expect(0);
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    let b = p.build();
    p.promote("deployer", &b, "staging").expect(0);
    (p, a, b)
}

#[test]
fn rollback_restores_the_previous_release_verified_and_audited() {
    let (p, a, b) = two_releases(&pipeline(TWO_APPROVERS));
    let r = p.ferry("oncall", &["rollback", "pipeline.yaml", "--stage", "staging"]).expect(0);
    assert!(r.stdout.contains(&format!("rolling `staging` back from {b} to {a}")), "{}", r.stdout);
    let deploys = p.deploys();
    assert_eq!(deploys.len(), 3);
    assert!(deploys[2].starts_with(&format!("staging {a} ")), "{deploys:?}");
    let kinds = p.audit_kinds();
    let started = kinds.iter().rposition(|k| k == "rollback_started").expect("rollback audited");
    assert_eq!(kinds[started + 1], "verify_ok", "verified before anything else: {kinds:?}");
    // Rolling back again goes to B, the release before the latest attempt (A).
    p.ferry("oncall", &["rollback", "pipeline.yaml", "--stage", "staging"]).expect(0);
    assert!(p.deploys()[3].starts_with(&format!("staging {b} ")));
}

#[test]
fn rollback_to_a_named_release_requires_that_it_once_succeeded_there() {
    let (p, a, _) = two_releases(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("app/src.txt"), "version three\n").unwrap();
    let never = p.build();
    let r = p.ferry("oncall", &["rollback", "pipeline.yaml", "--stage", "staging", "--to", &never]).expect(2);
    assert!(r.stderr.contains("never succeeded in stage `staging`"), "{}", r.stderr);
    p.ferry("oncall", &["rollback", "pipeline.yaml", "--stage", "staging", "--to", &a]).expect(0);
}

#[test]
fn a_tampered_rollback_target_is_refused() {
    let (p, a, _) = two_releases(&pipeline(TWO_APPROVERS));
    let manifest = p.manifest(&a);
    let blob = p.blob(manifest["artifacts"][0]["sha256"].as_str().unwrap());
    let mut perms = std::fs::metadata(&blob).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&blob, perms).unwrap();
    std::fs::write(&blob, "version evil\n").unwrap();
    p.ferry("oncall", &["rollback", "pipeline.yaml", "--stage", "staging"]).expect(4);
    assert_eq!(p.deploys().len(), 2, "nothing deployed");
}

#[test]
fn rollback_in_an_approval_stage_needs_approvals_unless_the_policy_waives_them() {
    let approve_both = |p: &Project, id: &str| {
        p.promote("deployer", id, "prod").expect(3);
        p.approve("alice", id, "prod").expect(0);
        p.approve("bob", id, "prod").expect(0);
        p.promote("deployer", id, "prod").expect(0);
    };
    let (p, a, b) = two_releases(&pipeline("      required: 2\n      approvers: [alice, bob, carol]\n      expires: 4s"));
    approve_both(&p, &a);
    approve_both(&p, &b);
    // The approvals expire after 4 s: the rollback comes 5 s later (told to ferry's clock).
    let later = |args: &[&str]| -> Run { p.command("oncall", args).env("FERRY_TIME_OFFSET", "5s").output().unwrap().into() };
    let waiting = later(&["rollback", "pipeline.yaml", "--stage", "prod"]).expect(3);
    assert!(waiting.stdout.contains(&format!("ferry approve pipeline.yaml --release {a} --stage prod")), "{}", waiting.stdout);

    let waived = pipeline("      required: 2\n      approvers: [alice, bob, carol]\n      expires: 4s")
        .replace("build:\n", "policy:\n  allow_rollback_without_approval: true\nbuild:\n");
    std::fs::write(p.path("pipeline.yaml"), waived).unwrap();
    later(&["rollback", "pipeline.yaml", "--stage", "prod"]).expect(0);
    assert!(p.deploys().last().unwrap().starts_with(&format!("prod {a} ")));
    assert!(p.audit_events().iter().any(|e| e["kind"] == "gate_passed" && e["details"]["waived"].is_string()));
}
