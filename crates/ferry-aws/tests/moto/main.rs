//! The AWS backend against a real local AWS API (moto on 127.0.0.1) with several accounts:
//! role chains act in the right account, S3 writes never overwrite, state updates are never
//! lost, exactly one runner wins a lock, and the audit chain holds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use ferry_aws::chain::{Aws, Hop};
use ferry_aws::s3::Bucket;
use ferry_aws::s3::PART_SIZE;
use ferry_core::ids::{AccountId, Actor, ReleaseId, RoleArn, Sha256Digest};
use ferry_core::ports::{Acquired, LeasesOnly, ObjectStore, StoredRelease, Write};
use ferry_core::state::StageRecord;
use ferry_core::storage::{self, Backing, Records};
use ferry_testkit::Moto;

const TOOLING: &str = "111111111111";
const ARTIFACTS: &str = "222222222222";
const SECURITY: &str = "333333333333";
const STAGING: &str = "444444444444";

struct Env {
    _moto: Arc<Moto>,
    aws: Aws,
}

fn env() -> Env {
    let moto = Moto::shared();
    let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());
    let base = rt.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(moto.endpoint())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .load(),
    );
    Env { _moto: moto, aws: Aws { rt, base } }
}

/// ferry's records over two buckets, as the aws backend opens them.
fn records(store: Bucket, audit: Bucket, segment_size: u64) -> Records {
    records_at(store, audit, segment_size, Arc::new(ferry_core::clock::SystemClock))
}

/// `records`, on `clock`.
fn records_at(store: Bucket, audit: Bucket, segment_size: u64, clock: Arc<dyn ferry_core::ports::Clock>) -> Records {
    storage::open(Backing {
        trust: Arc::new(audit.under("trust")),
        objects: Arc::new(store),
        audit: Arc::new(audit),
        liveness: Arc::new(LeasesOnly("runner".into())),
        clock,
        segment_size,
        after_write: None,
        keep_copies: None,
    })
}

fn hop(account: &str, role: &str, session: &str) -> Hop {
    Hop {
        role: RoleArn::new(&account.parse::<AccountId>().unwrap(), role).unwrap(),
        session_name: session.into(),
        source_identity: Some("alice@example.com".into()),
        tags: vec![("pipeline".into(), "hello".into()), ("stage".into(), "staging".into())],
        external_id: Some("ferry-hello".into()),
        duration: Some(Duration::from_secs(900)),
        policy: None,
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        &Sha256Digest::of(format!("{:?}{:?}", std::time::SystemTime::now(), std::thread::current().id()).as_bytes()).as_str()[..10]
    )
}

impl Env {
    /// Credentials of `role` in `account`, reached through the tooling account's orchestrator.
    fn as_role(&self, account: &str, role: &str) -> SdkConfig {
        let orchestrator = self.aws.assume_chain(None, &[hop(TOOLING, "ferry-orchestrator", "ferry-test")]).unwrap();
        self.aws.assume_chain(Some((&orchestrator, "orchestrator")), &[hop(account, role, "ferry-test")]).unwrap()
    }

    /// A new bucket in `account`, used with that account's role.
    fn bucket(&self, account: &str, role: &str) -> Bucket {
        let config = self.as_role(account, role);
        let name = unique("ferry");
        let client = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build());
        let create = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
            .build();
        self.aws.rt.block_on(client.create_bucket().bucket(&name).create_bucket_configuration(create).send()).unwrap();
        Bucket::new(self.aws.rt.clone(), &config, &name, "ferry", &format!("arn:aws:iam::{account}:role/{role}"), true)
    }
}

#[test]
fn a_role_chain_acts_in_each_account_hop_by_hop() {
    let e = env();
    let caller = e.aws.caller_arn(&e.aws.base).unwrap();
    let orchestrator = e.aws.assume_chain(None, &[hop(TOOLING, "ferry-orchestrator", "ferry-hello-r0123456789abcdef-staging")]).unwrap();
    let at_tooling = e.aws.caller_arn(&orchestrator).unwrap();
    assert_eq!(
        at_tooling,
        format!("arn:aws:sts::{TOOLING}:assumed-role/ferry-orchestrator/ferry-hello-r0123456789abcdef-staging"),
        "from {caller}"
    );
    let stage = e
        .aws
        .assume_chain(Some((&orchestrator, "orchestrator")), &[hop(STAGING, "ferry-deploy", "ferry-hello-r0123456789abcdef-staging")])
        .unwrap();
    assert_eq!(
        e.aws.caller_arn(&stage).unwrap(),
        format!("arn:aws:sts::{STAGING}:assumed-role/ferry-deploy/ferry-hello-r0123456789abcdef-staging")
    );
    // Buckets are per account: the stage role sees only its own account's buckets.
    let b = e.bucket(ARTIFACTS, "ferry-artifacts");
    let staging_s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&stage).force_path_style(true).build());
    let names: Vec<String> =
        e.aws.rt.block_on(staging_s3.list_buckets().send()).unwrap().buckets().iter().filter_map(|b| b.name().map(str::to_owned)).collect();
    assert!(!names.contains(&b.name), "{names:?}");
}

#[test]
fn session_names_and_source_identities_are_made_acceptable_to_sts() {
    assert_eq!(ferry_aws::chain::sts_name("arn:aws:sts::1:assumed-role/x/y"), "arn-aws-sts--1-assumed-role-x-y");
    assert_eq!(ferry_aws::chain::sts_name("a").len(), 2);
    assert_eq!(ferry_aws::chain::sts_name(&"x".repeat(100)).len(), 64);
}

fn write_file(dir: &std::path::Path, name: &str, len: usize, seed: u8) -> (std::path::PathBuf, Sha256Digest) {
    let bytes: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).unwrap();
    (path, Sha256Digest::of(&bytes))
}

#[test]
fn artifacts_are_content_addressed_never_overwritten_and_rehashed_on_read() {
    let e = env();
    let bucket = e.bucket(ARTIFACTS, "ferry-artifacts");
    let store = records(bucket.clone(), e.bucket(SECURITY, "ferry-audit"), 1000).store;
    let tmp = tempfile::tempdir().unwrap();
    let (path, digest) = write_file(tmp.path(), "small.bin", 1000, 1);
    store.put_artifact(&path, &digest).unwrap();
    store.put_artifact(&path, &digest).unwrap(); // identical bytes again: fine
    assert_eq!(store.hash_artifact(&digest).unwrap(), (digest.clone(), 1000));
    // A file that no longer matches its digest is refused before anything is written.
    let (other, _) = write_file(tmp.path(), "other.bin", 10, 2);
    let fake = Sha256Digest::of(b"not it");
    assert_eq!(store.put_artifact(&other, &fake).unwrap_err().kind, ferry_core::ErrorKind::Verification);
    // Overwritten behind ferry's back by another client: the re-hash on read tells.
    let key = bucket.key(&format!("artifacts/sha256/{digest}"));
    let raw =
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&e.as_role(ARTIFACTS, "intruder")).force_path_style(true).build());
    e.aws.rt.block_on(raw.put_object().bucket(&bucket.name).key(&key).body(b"evil".to_vec().into()).send()).unwrap();
    assert_ne!(store.hash_artifact(&digest).unwrap().0, digest);
    let dest = tmp.path().join("copy/small.bin");
    assert_ne!(store.fetch_artifact(&digest, &dest).unwrap().0, digest, "the copy says what the bytes hash to");
    assert!(!dest.exists(), "no copy of the wrong bytes is left behind");
}

#[test]
fn large_artifacts_stream_through_multipart_upload_and_download() {
    let e = env();
    let store = records(e.bucket(ARTIFACTS, "ferry-artifacts"), e.bucket(SECURITY, "ferry-audit"), 1000).store;
    let tmp = tempfile::tempdir().unwrap();
    let len = PART_SIZE * 2 + 12345;
    let (path, digest) = write_file(tmp.path(), "big.bin", len, 7);
    store.put_artifact(&path, &digest).unwrap();
    assert_eq!(store.hash_artifact(&digest).unwrap(), (digest.clone(), len as u64));
    let dest = tmp.path().join("out/big.bin");
    store.fetch_artifact(&digest, &dest).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), std::fs::read(&path).unwrap());
}

#[test]
fn releases_are_stored_once_and_never_replaced() {
    let e = env();
    let store = records(e.bucket(ARTIFACTS, "ferry-artifacts"), e.bucket(SECURITY, "ferry-audit"), 1000).store;
    let id = ReleaseId::for_manifest(&Sha256Digest::of(b"manifest"));
    let p = "hello".parse().unwrap();
    let rel = StoredRelease { id: id.clone(), manifest: b"manifest".to_vec(), envelope: b"envelope".to_vec() };
    store.put_release(&p, &rel).unwrap();
    store.put_release(&p, &rel).unwrap();
    let evil = StoredRelease { envelope: b"other".to_vec(), ..rel.clone() };
    assert!(store.put_release(&p, &evil).unwrap_err().message.contains("never overwritten"));
    assert_eq!(store.get_release(&id).unwrap().envelope, b"envelope");
    assert_eq!(store.list_releases(&p).unwrap(), vec![id]);
    assert!(store.list_releases(&"other".parse().unwrap()).unwrap().is_empty(), "the index is per pipeline");
}

#[test]
fn conditional_writes_never_lose_a_state_update() {
    let e = env();
    let bucket = e.bucket(ARTIFACTS, "ferry-artifacts");
    let state = records(bucket, e.bucket(SECURITY, "ferry-audit"), 1000).state;
    let id = ReleaseId::for_manifest(&Sha256Digest::of(b"m"));
    let mut rec = StageRecord::new(
        &"hello".parse().unwrap(),
        &id,
        &"prod".parse().unwrap(),
        &"alice".parse().unwrap(),
        ferry_core::clock::Timestamp::from_unix(1_767_000_000),
    );
    let Write::Done(first) = state.write_stage(&rec, None).unwrap() else { panic!("not written") };
    assert_eq!(state.write_stage(&rec, None).unwrap(), Write::Done(first.clone()), "the same bytes again: our own write");
    rec.attempt = 1;
    let Write::Done(second) = state.write_stage(&rec, Some(&first)).unwrap() else { panic!("not written") };
    rec.attempt = 2;
    assert_eq!(state.write_stage(&rec, Some(&first)).unwrap(), Write::Conflict, "If-Match on an old ETag");
    let read = state.read_stage(&rec.pipeline, &id, &rec.stage).unwrap().unwrap();
    assert_eq!((read.revision, read.value.attempt), (second, 1));
    assert_eq!(state.list_stages(&rec.pipeline).unwrap().len(), 1);
}

#[test]
fn exactly_one_runner_takes_a_lock_and_an_expired_lease_is_taken_over_once() {
    let e = env();
    let clock = Arc::new(ferry_core::clock::FakeClock::at(ferry_core::clock::Timestamp::from_unix(1_767_000_000)));
    let locks = records_at(e.bucket(ARTIFACTS, "ferry-artifacts"), e.bucket(SECURITY, "ferry-audit"), 1000, clock.clone()).locks;
    let (p, s) = ("hello".parse().unwrap(), "prod".parse().unwrap());
    let id = ReleaseId::for_manifest(&Sha256Digest::of(b"m"));
    let actors: Vec<Actor> = (0..6).map(|i| format!("runner-{i}").parse().unwrap()).collect();
    let taken: Vec<bool> = std::thread::scope(|scope| {
        let hs: Vec<_> = actors
            .iter()
            .map(|a| scope.spawn(|| matches!(locks.try_acquire(&p, &s, &id, a, Duration::from_secs(1)).unwrap(), Acquired::Taken(_))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(taken.iter().filter(|t| **t).count(), 1, "{taken:?}");
    let (held, stale) = locks.inspect(&p, &s).unwrap().unwrap();
    assert!(!stale);
    assert!(locks.take_over(&held, &actors[0], Duration::from_secs(60)).unwrap().is_none(), "a live lease is not taken over");
    clock.advance(Duration::from_millis(1200));
    let winners: Vec<Option<_>> = std::thread::scope(|scope| {
        let hs: Vec<_> = actors.iter().map(|a| scope.spawn(|| locks.take_over(&held, a, Duration::from_secs(60)).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let won: Vec<_> = winners.into_iter().flatten().collect();
    assert_eq!(won.len(), 1);
    assert!(locks.release(&held).is_err(), "the old holder cannot release the new lock");
    let renewed = locks.renew(&won[0], Duration::from_secs(120)).unwrap();
    assert!(renewed.expires_at > won[0].expires_at);
    locks.release(&won[0]).unwrap();
    assert!(locks.inspect(&p, &s).unwrap().is_none());
}

#[test]
fn the_s3_adapter_passes_the_object_store_conformance_tests_and_the_log_holds_under_concurrency() {
    let e = env();
    ferry_testkit::conformance::object_store(&e.bucket(ARTIFACTS, "ferry-artifacts"), "c/");
    // Segments of 4 events: the 12 events end up in three sealed segments in the security account.
    let (store, bucket) = (e.bucket(ARTIFACTS, "ferry-artifacts"), e.bucket(SECURITY, "ferry-audit"));
    let open = || records(store.clone(), bucket.clone(), 4).audit;
    assert!(open().location().starts_with("s3://ferry-"));
    ferry_testkit::conformance::concurrent_appends(&open, 3, 4, 4);
    assert_eq!(bucket.list("segments/", None).unwrap().len(), 3);
}

mod images;

mod pipelines;

/// A clock the test moves (the SDK signs and caches by it; ferry's role chain refreshes by it).
#[derive(Debug, Clone)]
struct Manual(Arc<std::sync::Mutex<std::time::SystemTime>>);

impl aws_smithy_async::time::TimeSource for Manual {
    fn now(&self) -> std::time::SystemTime {
        *self.0.lock().unwrap()
    }
}

fn get(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::blocking::Client::new().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", t);
    }
    let res = req.send().unwrap();
    (res.status().as_u16(), res.json().unwrap_or_default())
}

#[test]
fn a_command_running_past_its_session_gets_fresh_credentials_from_the_endpoint_and_each_role_is_assumed_once() {
    let moto = Moto::shared();
    let proxy = ferry_testkit::proxy::Proxy::start(moto.port);
    let rt = Arc::new(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap());
    let clock = Manual(Arc::new(std::sync::Mutex::new(std::time::SystemTime::now())));
    let base = rt.block_on(
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(proxy.endpoint())
            .region(Region::new("eu-west-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .time_source(clock.clone())
            .load(),
    );
    let aws = Aws { rt, base };
    let orchestrator = aws.assume_chain(None, &[hop(TOOLING, "ferry-orchestrator", "ferry-test")]).unwrap();
    // 15-minute sessions (STS's shortest).
    let stage = aws.assume_chain(Some((&orchestrator, "orchestrator")), &[hop(STAGING, "ferry-deploy", "ferry-test")]).unwrap();
    let assumed = |p: &ferry_testkit::proxy::Proxy| p.take_seen().iter().filter(|s| s.action.as_deref() == Some("AssumeRole")).count();
    assert_eq!(assumed(&proxy), 2, "each hop assumed once");
    // Using the chain does not assume it again while its credentials are fresh.
    assert_eq!(aws.caller_arn(&stage).unwrap(), format!("arn:aws:sts::{STAGING}:assumed-role/ferry-deploy/ferry-test"));
    assert_eq!(assumed(&proxy), 0, "the SDK got the first assumption's credentials");

    let endpoint = ferry_aws::creds::serve(&aws, stage.credentials_provider().unwrap(), "stage".to_owned()).unwrap();
    let (status, first) = get(&endpoint.url, Some(&endpoint.token));
    assert_eq!(status, 200);
    assert!(first["AccessKeyId"].as_str().is_some_and(|k| !k.is_empty()) && first["Token"].is_string(), "{first}");
    assert_eq!(get(&endpoint.url, None).0, 403, "no token, no credentials");
    assert_eq!(get(&endpoint.url, Some("guess")).0, 403);
    // Five minutes on: the same session.
    *clock.0.lock().unwrap() += Duration::from_secs(300);
    assert_eq!(get(&endpoint.url, Some(&endpoint.token)).1["AccessKeyId"], first["AccessKeyId"]);
    assert_eq!(assumed(&proxy), 0);
    // Eleven minutes on, four before the session ends: a new one, assumed once.
    *clock.0.lock().unwrap() += Duration::from_secs(360);
    let (_, renewed) = get(&endpoint.url, Some(&endpoint.token));
    assert_ne!(renewed["AccessKeyId"], first["AccessKeyId"], "refreshed before expiry");
    assert_eq!(assumed(&proxy), 1, "only the stage hop (the orchestrator's session is still good)");
    let url = endpoint.url.clone();
    drop(endpoint);
    std::thread::sleep(Duration::from_millis(50));
    assert!(reqwest::blocking::get(&url).is_err(), "the endpoint stops with its command");
}
