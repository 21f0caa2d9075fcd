//! Attestations verify with independent tools: Python securesystemslib and in-toto, from
//! the files `ferry key export` wrote, for ed25519 and ECDSA P-256 keys.

use std::process::Command;

use crate::support::{Project, TWO_APPROVERS, pipeline, repo_root, venv_python};

fn verify_with_python(algorithm: &str) {
    let p = Project::with_key(&pipeline(TWO_APPROVERS), algorithm);
    let id = p.build();
    let m = p.manifest(&id);
    let subjects: Vec<String> = m["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{}={}", a["name"].as_str().unwrap(), a["sha256"].as_str().unwrap()))
        .collect();
    let envelope = p.release_dir(&id).join("provenance.dsse.json");
    let out = Command::new(venv_python())
        .arg(repo_root().join("tests/conformance/verify_attestation.py"))
        .arg(&envelope)
        .arg(p.path("keys/test.json"))
        .args(&subjects)
        .output()
        .unwrap();
    assert!(out.status.success(), "{algorithm}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    // The exported PEM is what the pipeline pins, and verification uses only it.
    let pem = std::fs::read_to_string(p.path("keys/test.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n"));
}

#[test]
fn ed25519_envelopes_verify_with_securesystemslib_and_in_toto() {
    verify_with_python("ed25519");
}

#[test]
fn ecdsa_p256_envelopes_verify_with_securesystemslib_and_in_toto() {
    verify_with_python("ecdsa-p256");
}

#[test]
fn keygen_never_prints_the_private_key_and_keeps_it_owner_only() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let r = p.ferry("builder", &["keygen", "--name", "second", "--output", "json"]).expect(0);
    assert!(!r.stdout.contains("PRIVATE KEY") && !r.stderr.contains("PRIVATE KEY"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(p.home().join("keys/second.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "private key readable by others: {mode:o}");
    let again = p.ferry("builder", &["keygen", "--name", "second"]).expect(2);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
}

/// The public key PEM of a key no test project uses.
pub fn other_public_pem() -> String {
    let other = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::read_to_string(other.path("keys/test.pem")).unwrap()
}

#[test]
fn an_approval_and_a_deployment_attestation_verify_with_securesystemslib_and_in_toto() {
    let p = Project::new(&pipeline("      required: 1"));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    p.approve("alice", &id, "prod").expect(0);
    let manifest = ferry_core::ids::Sha256Digest::of(&std::fs::read(p.release_dir(&id).join("manifest.json")).unwrap());
    let subject = format!("ferry-release:{id}={manifest}");
    let dir = p.home().join(format!("store/approvals/shop/{id}/prod"));
    let approval = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
    // The deployment attestation of staging's success, as its record keeps it.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.home().join(format!("store/state/shop/{id}/staging.json"))).unwrap()).unwrap();
    let deployment = p.path("deployment.dsse.json");
    std::fs::write(&deployment, serde_json::to_vec(&record["deployment"]).unwrap()).unwrap();
    for (envelope, key, predicate) in [
        (approval, "keys/alice.json", "https://ferry.invalid/approval/v1"),
        (deployment, "keys/test.json", "https://ferry.invalid/deployment/v1"),
    ] {
        let out = Command::new(venv_python())
            .arg(repo_root().join("tests/conformance/verify_attestation.py"))
            .arg(&envelope)
            .arg(p.path(key))
            .arg(format!("predicateType={predicate}"))
            .arg(&subject)
            .output()
            .unwrap();
        assert!(out.status.success(), "{predicate}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
}
