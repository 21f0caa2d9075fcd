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
