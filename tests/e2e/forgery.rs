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

/// Approval records an attacker can write into the store, each with the reason it must be
/// refused for (as `approval_refused` says).
#[test]
fn approvals_nobody_signed_or_signed_wrongly_are_refused_audited_and_never_deploy() {
    use ferry_core::approval::Verdict;
    use ferry_core::approval::signed::{ApprovalPredicate, sign};
    use ferry_core::clock::Timestamp;
    use ferry_core::ids::{ReleaseId, Sha256Digest};
    // Built by carol (so her key is the builder's); `dave` is pinned with alice's key.
    let yaml = pipeline(TWO_APPROVERS)
        .replace("  carol: {public_key: keys/carol.pem}\n", "  carol: {public_key: keys/carol.pem}\n  dave: {public_key: keys/alice.pem}\n")
        .replace("approvers: [alice, bob, carol]", "approvers: [alice, bob, carol, dave]");
    let p = Project::new(&yaml);
    let id = p.ferry("carol", &["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    let record: Value = serde_json::from_slice(&std::fs::read(state_file(&p, &id, "prod")).unwrap()).unwrap();
    let request: Sha256Digest = record["request"].as_str().unwrap().parse().unwrap();
    let manifest = Sha256Digest::of(&std::fs::read(p.release_dir(&id).join("manifest.json")).unwrap());
    let release: ReleaseId = id.parse().unwrap();
    let key = |name: &str| ferry_local::keys::KeyStore::new(p.home().join("keys")).load(name).unwrap();
    let now = Timestamp::from_unix(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64);
    let predicate = |approver: &str| ApprovalPredicate {
        pipeline: "shop".parse().unwrap(),
        stage: "prod".parse().unwrap(),
        verdict: Verdict::Approve,
        approver: approver.to_owned(),
        request: request.clone(),
        at: now,
        not_after: now.plus(std::time::Duration::from_secs(3600)),
        comment: None,
    };
    let dir = p.home().join(format!("store/approvals/shop/{id}/prod"));
    std::fs::create_dir_all(&dir).unwrap();
    let put = |name: &str, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
    // Two plain records naming alice and bob, as the store role can write them.
    for who in ["alice", "bob"] {
        put(
            &format!("0-{who}-forged.json"),
            serde_json::to_vec(&serde_json::json!({"actor": who, "verdict": "approve", "release": id})).unwrap(),
        );
    }
    let signed = |approver: &str, signer: &str, edit: &dyn Fn(&mut ApprovalPredicate) -> Option<ReleaseId>| {
        let mut pr = predicate(approver);
        let r = edit(&mut pr).unwrap_or_else(|| release.clone());
        sign(&r, &manifest, &pr, &key(signer)).unwrap().to_bytes().unwrap()
    };
    let mallory = ferry_core::keys::PrivateKey::generate(ferry_core::keys::Algorithm::Ed25519);
    put("1-unpinned.dsse.json", sign(&release, &manifest, &predicate("alice"), &mallory).unwrap().to_bytes().unwrap());
    let other: ReleaseId = ReleaseId::for_manifest(&Sha256Digest::of(b"another release"));
    put("2-other-release.dsse.json", signed("alice", "alice", &|_| Some(other.clone())));
    put(
        "3-other-stage.dsse.json",
        signed("alice", "alice", &|pr| {
            pr.stage = "staging".parse().unwrap();
            None
        }),
    );
    put(
        "4-older-request.dsse.json",
        signed("alice", "alice", &|pr| {
            pr.request = Sha256Digest::of(b"an older request");
            None
        }),
    );
    put(
        "5-expired.dsse.json",
        signed("alice", "alice", &|pr| {
            pr.not_after = Timestamp::from_unix(1);
            None
        }),
    );
    put("6-builder.dsse.json", signed("carol", "carol", &|_| None));
    put("7-alice.dsse.json", signed("alice", "alice", &|_| None));
    put("8-alice-as-dave.dsse.json", signed("dave", "alice", &|_| None));
    let r = p.promote("deployer", &id, "prod").expect(3);
    assert!(r.stdout.contains("(1 of 2 approvals: alice)"), "only alice's genuine approval counts: {}", r.stdout);
    let refused: Vec<(String, String)> = p
        .audit_events()
        .into_iter()
        .filter(|e| e["kind"] == "approval_refused")
        .map(|e| {
            (
                e["details"]["record"].as_str().unwrap().rsplit('/').next().unwrap().to_owned(),
                e["details"]["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let reason = |file: &str| {
        refused.iter().find(|(f, _)| f == file).map(|(_, r)| r.clone()).unwrap_or_else(|| panic!("{file} not refused: {refused:?}"))
    };
    assert_eq!(reason("0-alice-forged.json"), "it is not a signed approval (a DSSE envelope)");
    assert_eq!(reason("0-bob-forged.json"), "it is not a signed approval (a DSSE envelope)");
    assert!(reason("1-unpinned.dsse.json").contains("which is no pinned approver's"));
    assert!(reason("2-other-release.dsse.json").contains(&format!("it approves release `{other}`")));
    assert_eq!(reason("3-other-stage.dsse.json"), "it is for stage `staging`, not `prod`");
    assert!(reason("4-older-request.dsse.json").contains("another approval request"));
    assert!(reason("5-expired.dsse.json").starts_with("it expired at"));
    assert!(reason("6-builder.dsse.json").contains("`carol`, who built or requested this release"));
    assert!(reason("8-alice-as-dave.dsse.json").contains("a key counts once"));
    assert_eq!(refused.len(), 9, "{refused:?}");
    assert_eq!(p.deploys().iter().filter(|d| d.starts_with("prod")).count(), 0, "prod never deployed");
    // A second real approver: prod deploys.
    p.approve("bob", &id, "prod").expect(0);
    p.promote("deployer", &id, "prod").expect(0);
    // The refused records are on the log as refused; alice's signature counted, but it reached
    // the store without `ferry approve` recording it first, which the auditor is told.
    let r = p.ferry("auditor", &["audit", "verify", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(4).json();
    let problems = r["evidence"]["problems"].as_array().unwrap().clone();
    let kinds: Vec<&str> = problems.iter().map(|p| p["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["gate_passed", "deploy_start"], "{problems:?}");
    assert!(
        problems[0]["problem"]
            .as_str()
            .unwrap()
            .contains("that count are bob (2 required); signed by alice too, but the log does not record it"),
        "{problems:?}"
    );
}

#[test]
fn on_s3_approval_files_written_with_the_store_role_are_refused_audited_and_prod_waits() {
    use crate::aws::{ARTIFACTS, AwsWorld, TOOLING};
    let w = AwsWorld::new();
    w.write_project("");
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let id = w.at_prod_gate(&ci);
    // As the store role every promotion uses: two approvals naming the two approvers.
    let s3 = w.s3(&w.role(ARTIFACTS, "ferry-artifacts", "forger"));
    for who in ["alice", "bob"] {
        let arn = format!("arn:aws:sts::{TOOLING}:assumed-role/release-approvers/{who}");
        let body =
            serde_json::to_vec(&serde_json::json!({"version": 1, "actor": arn, "verdict": "approve", "release": id, "stage": "prod"}))
                .unwrap();
        let key = format!("shop/approvals/shop/{id}/prod/0-{who}.json");
        w.rt.block_on(s3.put_object().bucket(&w.store_bucket).key(key).body(body.into()).send()).unwrap();
    }
    let r = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    assert!(r.stdout.contains("(0 of 2 approvals)"), "{}", r.stdout);
    let events = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let refused: Vec<&Value> = events["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "approval_refused").collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|e| e["details"]["reason"] == "it is not a signed approval (a DSSE envelope)"), "{refused:?}");
    assert_eq!(w.deploys().len(), 1, "only staging deployed");
}
