//! Build once, verify before deploying: manifests, release ids, tamper detection, order.

use sha2::Digest as _;

use crate::support::{Project, TWO_APPROVERS, pipeline};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

#[test]
fn build_writes_a_manifest_whose_digest_names_the_release() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    let bytes = std::fs::read(p.release_dir(&id).join("manifest.json")).unwrap();
    assert_eq!(format!("r{}", &sha256_hex(&bytes)[..16]), id);
    let m = p.manifest(&id);
    assert_eq!(m["version"], 1);
    assert_eq!(m["artifacts"][0]["name"], "app");
    assert_eq!(m["artifacts"][0]["sha256"], sha256_hex(b"version one\n"));
    assert_eq!(m["artifacts"][0]["size"], 12);
    assert_eq!(m["builder"]["actor"], "builder");
    assert_eq!(m["build_account"], "111111111111");
    // The blob is stored content-addressed.
    assert_eq!(std::fs::read(p.blob(&sha256_hex(b"version one\n"))).unwrap(), b"version one\n");
    let kinds = p.audit_kinds();
    assert_eq!(&kinds[kinds.len() - 3..], ["build", "sign", "store"]);
}

#[test]
fn rebuilding_identical_outputs_yields_the_same_artifact_digests() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let (a, b) = (p.build(), p.build());
    assert_eq!(p.manifest(&a)["artifacts"], p.manifest(&b)["artifacts"]);
}

#[test]
fn a_release_records_the_git_commit_it_was_built_from() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args(args)
            .current_dir(p.tmp.path())
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(ok.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&ok.stderr));
        String::from_utf8_lossy(&ok.stdout).trim().to_owned()
    };
    // ferry's home and the build's outputs are ignored, as a project's would be.
    std::fs::write(p.path(".gitignore"), "home/\napp/out/\n").unwrap();
    git(&["init", "-q", "-b", "main"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "init"]);
    let head = git(&["rev-parse", "HEAD"]);
    let id = p.build();
    let m = p.manifest(&id);
    assert_eq!(m["source"]["commit"], head);
    assert_eq!(m["source"]["ref"], "refs/heads/main");
    assert_eq!(m["source"]["dirty"], false, "{m}");
    // A new input committed: clean again.
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    git(&["commit", "-qam", "two"]);
    assert_eq!(p.manifest(&p.build())["source"]["dirty"], false);
    // A build script nobody committed: the commit does not hold what was built.
    std::fs::write(p.path("app/extra.sh"), "echo not in the commit\n").unwrap();
    std::fs::write(p.path("app/src.txt"), "version three\n").unwrap();
    git(&["commit", "-qam", "three"]);
    let dirty = p.manifest(&p.build());
    assert_eq!(dirty["source"]["dirty"], true, "an untracked file makes the tree dirty: {dirty}");
}

#[test]
fn a_failing_build_command_stores_nothing() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("app/build.sh"), "echo compiling; exit 7\n").unwrap();
    let r = p.ferry("builder", &["build", "pipeline.yaml"]).expect(1);
    assert!(r.stderr.contains("build command `sh build.sh` failed with exit code 7"), "{}", r.stderr);
    assert!(!p.home().join("store/releases").exists());
}

#[test]
fn verify_reports_digests_and_signature() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    let v = p.ferry("auditor", &["verify", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    assert_eq!(v["verified"], true);
    assert_eq!(v["artifacts"][0]["sha256"], sha256_hex(b"version one\n"));
}

fn flip_one_byte(path: &std::path::Path) {
    let mut perms = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    bytes[0] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn flipping_one_byte_of_a_stored_artifact_refuses_promotion_audits_and_deploys_nothing() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    flip_one_byte(&p.blob(&sha256_hex(b"version one\n")));
    let r = p.promote("deployer", &id, "staging").expect(4);
    assert!(r.stderr.contains("artifact `app` in the store hashes to"), "{}", r.stderr);
    assert!(p.deploys().is_empty(), "no deploy action ran");
    let kinds = p.audit_kinds();
    assert_eq!(kinds.last().map(String::as_str), Some("verify_failed"));
    assert!(!kinds.iter().any(|k| k == "lock_taken" || k == "deploy_start"));
    p.ferry("auditor", &["verify", "pipeline.yaml", "--release", &id]).expect(4);
}

#[test]
fn replacing_the_envelope_with_another_releases_refuses_promotion() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let a = p.build();
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    let b = p.build();
    let env = "provenance.dsse.json";
    std::fs::copy(p.release_dir(&b).join(env), p.release_dir(&a).join(env)).unwrap();
    let r = p.promote("deployer", &a, "staging").expect(4);
    assert!(r.stderr.contains("the signed statement is for manifest"), "{}", r.stderr);
    assert!(p.deploys().is_empty());
    assert_eq!(p.audit_kinds().last().map(String::as_str), Some("verify_failed"));
}

#[test]
fn an_envelope_signed_by_another_key_refuses_promotion() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let a = p.build();
    // Another project with its own key signs a release of the same bytes.
    let other = Project::new(&pipeline(TWO_APPROVERS));
    let b = other.build();
    let env = "provenance.dsse.json";
    std::fs::copy(other.release_dir(&b).join(env), p.release_dir(&a).join(env)).unwrap();
    let r = p.promote("deployer", &a, "staging").expect(4);
    assert!(r.stderr.contains("but the pipeline pins key"), "{}", r.stderr);
    assert!(p.deploys().is_empty());
}

#[test]
fn a_release_reaches_a_stage_only_after_the_stages_it_requires() {
    let p = Project::new(&pipeline("      required: 1\n      allow_self_approval: true"));
    let id = p.build();
    let r = p.promote("deployer", &id, "prod").expect(1);
    assert!(r.stderr.contains("has not succeeded in stage `staging`"), "{}", r.stderr);
    assert!(r.stderr.contains(&format!("ferry promote pipeline.yaml --release {id} --to staging")), "{}", r.stderr);
    assert!(p.deploys().is_empty());
}

#[test]
fn staging_deploy_gets_the_stage_environment_and_verified_artifact_copies() {
    let yaml = pipeline(TWO_APPROVERS).replacen(
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID $FERRY_REGION $(cat "$FERRY_ARTIFACT_APP")" >> deploys.log"#,
        1,
    );
    let p = Project::new(&yaml);
    let id = p.build();
    let out = p.promote("deployer", &id, "staging").expect(0);
    assert!(out.stdout.contains(&format!("promoted {id} to `staging`")));
    assert_eq!(p.deploys(), vec![format!("staging {id} 222222222222 eu-west-1 version one")]);
    // Promoting again is a no-op, not a second deploy.
    let again = p.promote("deployer", &id, "staging").expect(0);
    assert!(again.stdout.contains("already deployed"));
    assert_eq!(p.deploys().len(), 1);
}

#[test]
fn doctor_checks_the_local_home_and_keys() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let ok = p.ferry("anyone", &["doctor", "pipeline.yaml"]).expect(0);
    assert!(ok.stdout.contains("3 checks, 0 failed"), "{}", ok.stdout);
    std::fs::write(p.path("keys/test.pem"), crate::conformance::other_public_pem()).unwrap();
    let bad = p.ferry("anyone", &["doctor", "pipeline.yaml"]).expect(1);
    assert!(bad.stdout.contains("does not match the pinned public key"), "{}", bad.stdout);
}

#[test]
fn a_deploy_actions_output_is_recorded_in_the_audit_log() {
    let yaml = pipeline(TWO_APPROVERS).replacen(
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        r#"run: echo "uploading to $FERRY_ACCOUNT_ID"; echo "done" >&2"#,
        1,
    );
    let p = Project::new(&yaml);
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    let end = p.audit_events().into_iter().find(|e| e["kind"] == "deploy_end").unwrap();
    let output = end["details"]["output"].as_str().unwrap();
    assert!(output.contains("uploading to 222222222222") && output.contains("done"), "{output}");
}

#[test]
fn a_promotion_deploys_from_verified_copies_and_removes_them_when_it_ends() {
    let yaml = pipeline(TWO_APPROVERS).replacen(
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        r#"run: cmp "$FERRY_ARTIFACT_APP" app/src.txt && echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        1,
    );
    let p = Project::new(&yaml);
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    assert_eq!(p.deploys().len(), 1, "the action read the verified copy of the artifact");
    assert!(!p.home().join("work").join(&id).join("staging").exists(), "the work copy is gone");
}

#[test]
fn a_run_hands_each_stage_the_signed_bytes_even_after_an_earlier_stage_changed_its_copy() {
    // Staging's command writes into its copy of the artifact; prod, promoted by the same
    // `ferry run`, still gets exactly the signed bytes (the kept copy is re-hashed, found
    // changed, and fetched again), and nothing is left in the work directory.
    let yaml = pipeline(TWO_APPROVERS)
        .replace(&format!("    approval:\n{TWO_APPROVERS}\n"), "")
        .replacen(
            r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
            r#"run: cmp "$FERRY_ARTIFACT_APP" app/src.txt && echo changed >> "$FERRY_ARTIFACT_APP" && echo staging >> deploys.log"#,
            1,
        )
        .replacen(
            r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
            r#"run: cmp "$FERRY_ARTIFACT_APP" app/src.txt && echo prod >> deploys.log"#,
            1,
        );
    let p = Project::new(&yaml);
    p.ferry("deployer", &["run", "pipeline.yaml"]).expect(0);
    assert_eq!(p.deploys(), ["staging", "prod"]);
    let left = crate::support::files_under(&p.home().join("work"));
    assert!(left.is_empty(), "the work directory is empty after the run: {left:?}");
}

#[test]
fn an_artifact_that_is_a_symlink_or_resolves_outside_the_working_directory_is_refused_and_nothing_is_stored() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("secret.txt"), "not for release\n").unwrap();
    // A symbolic link in the build output, to a file outside the working directory.
    std::fs::write(p.path("app/build.sh"), "mkdir -p out && ln -sf ../../secret.txt out/app.bin\n").unwrap();
    let r = p.ferry("builder", &["build", "pipeline.yaml"]).expect(2);
    assert!(r.stderr.contains("artifact `app`:") && r.stderr.contains("is a symbolic link"), "{}", r.stderr);
    // A path through a linked directory that leads out of it (`..` itself is refused when the
    // pipeline is read).
    std::fs::write(p.path("app/build.sh"), "mkdir -p ../outside && cp src.txt ../outside/app.bin && rm -rf out && ln -s ../outside out\n")
        .unwrap();
    let r = p.ferry("builder", &["build", "pipeline.yaml"]).expect(2);
    assert!(r.stderr.contains("outside the build's working directory"), "{}", r.stderr);
    assert!(!p.home().join("store/releases").exists(), "no release was stored");
    assert!(p.audit_events().is_empty(), "nothing was signed or audited");
}
