//! Faults between ferry and S3 (a proxy in front of moto): for each kind of write, the answer
//! is lost after S3 did the write, and the retry must recognise its own write — no duplicate
//! event, no self-held lock, no orphan, the right exit code, and a log that verifies. Reads
//! that keep failing are I/O failures (exit 1), never "verification failed" (exit 4).

use aws_config::SdkConfig;
use ferry_testkit::proxy::{Fault, Rule};
use serde_json::Value;

use crate::aws::{ARTIFACTS, AwsWorld, SECURITY, TOOLING};

fn world() -> (AwsWorld, SdkConfig) {
    let w = AwsWorld::new();
    w.write_project("");
    let ci = w.role(TOOLING, "ci", "github-run-1");
    w.ferry(&w.role(SECURITY, "ferry-signer", "key-export"), &["key", "export", "--kms", &w.kms_key, "--name", "shop", "--out", "keys"])
        .expect(0);
    (w, ci)
}

fn build(w: &AwsWorld, ci: &SdkConfig) -> String {
    w.ferry(ci, &["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned()
}

fn events(w: &AwsWorld, ci: &SdkConfig) -> Vec<Value> {
    w.ferry(ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json()["events"]
        .as_array()
        .unwrap()
        .clone()
}

fn kinds(w: &AwsWorld, ci: &SdkConfig) -> Vec<String> {
    events(w, ci).iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

fn verifies(w: &AwsWorld, ci: &SdkConfig) -> Value {
    w.ferry(ci, &["audit", "verify", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json()
}

fn store_keys(w: &AwsWorld, part: &str) -> Vec<String> {
    w.keys(ARTIFACTS, "ferry-artifacts", &w.store_bucket).into_iter().filter(|k| k.contains(part)).collect()
}

const BUILD: [&str; 3] = ["build", "sign", "store"];
const STAGING: [&str; 6] = ["verify_ok", "lock_taken", "deploy_start", "deploy_end", "promotion_succeeded", "lock_released"];

fn build_then_staging() -> Vec<String> {
    BUILD.iter().chain(STAGING.iter()).map(|s| (*s).to_owned()).collect()
}

#[test]
fn a_lost_answer_to_an_audit_append_leaves_no_duplicate_event() {
    let (w, ci) = world();
    let rule = w.proxy.inject(Rule::once("PUT", "/audit/events/", Fault::LoseAnswer).skip(1));
    let id = build(&w, &ci);
    // The promotion's second append: its outcome.
    let rule2 = w.proxy.inject(Rule::once("PUT", "/audit/events/", Fault::LoseAnswer).skip(1));
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert_eq!((w.proxy.fired(rule), w.proxy.fired(rule2)), (1, 1));
    assert_eq!(kinds(&w, &ci), build_then_staging());
    assert_eq!(verifies(&w, &ci)["events"], 9);
}

#[test]
fn a_lost_answer_to_taking_the_lock_is_not_mistaken_for_someone_else_holding_it() {
    let (w, ci) = world();
    let id = build(&w, &ci);
    let rule = w.proxy.inject(Rule::once("PUT", "/locks/", Fault::LoseAnswer));
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert_eq!(w.proxy.fired(rule), 1);
    assert_eq!(w.deploys().len(), 1);
    assert!(store_keys(&w, "/locks/").is_empty(), "no lock left behind");
    assert_eq!(kinds(&w, &ci), build_then_staging());
    verifies(&w, &ci);
}

#[test]
fn a_lost_answer_to_releasing_the_lock_is_a_success() {
    let (w, ci) = world();
    let id = build(&w, &ci);
    let rule = w.proxy.inject(Rule::once("DELETE", "/locks/", Fault::LoseAnswer));
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert_eq!(w.proxy.fired(rule), 1);
    assert!(store_keys(&w, "/locks/").is_empty());
    assert_eq!(kinds(&w, &ci), build_then_staging());
}

#[test]
fn a_lost_answer_to_a_state_write_is_recognised() {
    let (w, ci) = world();
    let id = build(&w, &ci);
    let first = w.proxy.inject(Rule::once("PUT", "/state/", Fault::LoseAnswer));
    let later = w.proxy.inject(Rule::once("PUT", "/state/", Fault::LoseAnswer).skip(1));
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert_eq!((w.proxy.fired(first), w.proxy.fired(later)), (1, 1));
    let status = w.ferry(&ci, &["status", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"][0]["status"], "succeeded");
    assert_eq!(kinds(&w, &ci), build_then_staging());
}

#[test]
fn a_lost_answer_to_an_approval_records_it_once() {
    let (w, ci) = world();
    let id = build(&w, &ci);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    let rule = w.proxy.inject(Rule::once("PUT", "/approvals/", Fault::LoseAnswer));
    let alice = w.role(TOOLING, "release-approvers", "alice");
    w.ferry(&alice, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    assert_eq!(w.proxy.fired(rule), 1);
    assert_eq!(store_keys(&w, "/approvals/").len(), 1, "one approval object");
    assert_eq!(kinds(&w, &ci).iter().filter(|k| *k == "approved").count(), 1);
    verifies(&w, &ci);
}

#[test]
fn a_lost_answer_to_the_checkpoint_or_the_manifest_still_completes_the_build() {
    let (w, ci) = world();
    let cp = w.proxy.inject(Rule::once("PUT", "/audit/checkpoints/", Fault::LoseAnswer));
    let manifest = w.proxy.inject(Rule::once("PUT", "/manifest.json", Fault::LoseAnswer));
    build(&w, &ci);
    assert_eq!((w.proxy.fired(cp), w.proxy.fired(manifest)), (1, 1));
    assert_eq!(kinds(&w, &ci), BUILD);
    let verified = verifies(&w, &ci);
    let cps = &verified["checkpoints"];
    assert_eq!((cps["count"].as_u64(), cps["verified"].as_bool()), (Some(1), Some(true)), "{cps}");
    assert_eq!(cps["newest"]["seq"], verified["events"], "the checkpoint whose answer was lost is stored: {cps}");
}

#[test]
fn a_manifest_that_cannot_be_stored_is_audited_as_a_failed_build_and_no_release_exists() {
    let (w, ci) = world();
    let rule = w.proxy.inject(Rule::once("PUT", "/manifest.json", Fault::Status(500)).times(100));
    let r = w.ferry(&ci, &["build", "pipeline.yaml"]).expect(1);
    assert!(w.proxy.fired(rule) >= 2, "the SDK retried");
    assert!(r.stderr.contains("manifest.json"), "{}", r.stderr);
    assert_eq!(kinds(&w, &ci), ["build", "sign", "build_failed"]);
    assert!(store_keys(&w, "/manifest.json").is_empty() && store_keys(&w, "/pipelines/").is_empty(), "no release to promote");
    verifies(&w, &ci);
}

#[test]
fn an_artifact_that_cannot_be_read_is_an_io_failure_not_tampering() {
    let (w, ci) = world();
    let id = build(&w, &ci);
    // Once: the retry reads it, and the promotion goes through.
    let once = w.proxy.inject(Rule::once("GET", "/artifacts/sha256/", Fault::Status(503)));
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert_eq!(w.proxy.fired(once), 1);
    // Always: exit 1 with an I/O error, no `verify_failed`, nothing deployed.
    w.proxy.inject(Rule::once("GET", "/artifacts/sha256/", Fault::Status(503)).times(1000));
    let r = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--redeploy"]).expect(1);
    assert!(r.stderr.contains("could not be read from the store") && r.stderr.contains("not a verification failure"), "{}", r.stderr);
    assert!(!kinds(&w, &ci).contains(&"verify_failed".to_owned()));
    assert_eq!(w.deploys().len(), 1);
}

#[test]
fn dropped_connections_throttling_and_errors_on_every_kind_of_request_leave_one_intact_history() {
    let (w, ci) = world();
    // A short random run: one fault on each kind of request, at a random place.
    let mut seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    let mut next = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let faults = [Fault::Drop, Fault::Throttle, Fault::Status(500), Fault::Status(503), Fault::LoseAnswer];
    let mut plan = Vec::new();
    for (method, path) in [
        ("PUT", "/audit/"),
        ("GET", "/audit/"),
        ("PUT", "/state/"),
        ("PUT", "/locks/"),
        ("DELETE", "/locks/"),
        ("GET", "/releases/"),
        ("POST", "/"),
    ] {
        let fault = faults[next(faults.len() as u64) as usize];
        let skip = next(4) as usize;
        plan.push(format!("{method} {path} after {skip}: {fault:?}"));
        w.proxy.inject(Rule::once(method, path, fault).skip(skip));
    }
    let id = build(&w, &ci);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert_eq!(kinds(&w, &ci), build_then_staging(), "faults: {plan:?}");
    assert_eq!(w.deploys().len(), 1, "faults: {plan:?}");
    assert!(store_keys(&w, "/locks/").is_empty(), "faults: {plan:?}");
    verifies(&w, &ci);
}
