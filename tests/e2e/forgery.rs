//! What the automation cannot forge. The identity that runs ferry can write the store (state,
//! approvals) — so a stage's success is proven by a deployment attestation signed with the
//! pipeline's pinned key, which a later stage verifies, never by a state file.

use serde_json::Value;

use crate::support::{Project, TWO_APPROVERS, pipeline};

fn state_file(p: &Project, release: &str, stage: &str) -> std::path::PathBuf {
    p.home().join(format!("store/state/shop/{release}/{stage}.json"))
}

#[test]
fn a_forged_staging_state_does_not_let_a_release_into_prod() {
    let p = Project::new(&pipeline(TWO_APPROVERS).replace(&format!("    approval:\n{TWO_APPROVERS}\n"), ""));
    // A real success in staging, of another release, to copy from.
    let genuine = p.build();
    p.promote("deployer", &genuine, "staging").expect(0);
    let record: Value = serde_json::from_slice(&std::fs::read(state_file(&p, &genuine, "staging")).unwrap()).unwrap();
    assert!(record["deployment"]["signatures"][0]["sig"].is_string(), "a success carries its signed attestation");
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    let id = p.build();
    let forge = |edit: &dyn Fn(&mut Value)| {
        let mut forged = record.clone();
        forged["release"] = Value::String(id.clone());
        edit(&mut forged);
        let path = state_file(&p, &id, "staging");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, serde_json::to_vec_pretty(&forged).unwrap()).unwrap();
        p.promote("deployer", &id, "prod").expect(1).stderr
    };
    // Said succeeded, without evidence.
    let err = forge(&|r| {
        r.as_object_mut().unwrap().remove("deployment");
    });
    assert!(
        err.contains("has not succeeded in stage `staging` (its record says succeeded but carries no signed deployment attestation)"),
        "{err}"
    );
    // With the other release's genuine attestation.
    let err = forge(&|_| {});
    assert!(err.contains(&format!("the deployment attestation is for `ferry-release:{genuine}`")), "{err}");
    // With an attestation whose signature was made by another key.
    let err = forge(&|r| r["deployment"]["signatures"][0]["keyid"] = Value::String("0".repeat(64)));
    assert!(err.contains("its deployment attestation is not valid"), "{err}");
    assert_eq!(p.deploys().iter().filter(|d| d.starts_with("prod")).count(), 0, "prod never deployed: {:?}", p.deploys());
    let refusals = p.audit_events().into_iter().filter(|e| e["kind"] == "gate_failed" && e["details"]["gate"] == "order").count();
    assert_eq!(refusals, 3, "each refusal is audited");
    // The genuine path still works: promoted to staging for real, it may go on.
    p.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--redeploy"]).expect(0);
    p.promote("deployer", &id, "prod").expect(0);
}

#[test]
fn on_s3_a_staging_state_written_with_the_store_role_does_not_let_a_release_into_prod() {
    use crate::aws::{ARTIFACTS, AwsWorld, TOOLING};
    let w = AwsWorld::new();
    w.write_project("");
    let stage = |name: &str, account: &str| {
        format!("  - name: {name}\n    account: {account}\n    deploy:\n      - type: command\n        run: echo {name} >> deploys.log\n")
    };
    w.set_stages(&format!("stages:\n{}{}", stage("staging", "staging"), stage("prod", "prod")));
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let genuine = w.release(&ci);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &genuine, "--to", "staging"]).expect(0);
    let key = |r: &str| format!("shop/state/shop/{r}/staging.json");
    let mut record: Value = serde_json::from_slice(&w.get(ARTIFACTS, "ferry-artifacts", &w.store_bucket, &key(&genuine))).unwrap();
    assert!(record["deployment"].is_object(), "a success on AWS carries its KMS-signed attestation");
    std::fs::write(w.path("app/src.txt"), "version two\n").unwrap();
    let id = w.ferry(&ci, &["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    // As the store role every promotion uses: a record that says the new release succeeded.
    record["release"] = Value::String(id.clone());
    let s3 = w.s3(&w.role(ARTIFACTS, "ferry-artifacts", "forger"));
    let body = serde_json::to_vec(&record).unwrap();
    w.rt.block_on(s3.put_object().bucket(&w.store_bucket).key(key(&id)).body(body.into()).send()).unwrap();
    let r = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(1);
    assert!(r.stderr.contains(&format!("the deployment attestation is for `ferry-release:{genuine}`")), "{}", r.stderr);
    assert_eq!(w.deploys(), ["staging"], "prod never deployed");
}
