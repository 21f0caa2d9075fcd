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

mod images {
    use aws_sdk_ecr::Client;
    use aws_sdk_ecr::primitives::Blob;
    use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability};
    use ferry_aws::ecr::{EcrRegistry, Repo, promote};
    use ferry_core::ErrorKind;
    use ferry_core::pipeline::ImageDecl;
    use ferry_core::ports::ImageRegistry;

    use super::*;

    const PROD: &str = "666666666666";

    fn d(bytes: &[u8]) -> String {
        format!("sha256:{}", Sha256Digest::of(bytes))
    }

    /// An OCI image manifest over one config and one layer blob.
    fn manifest(config: &[u8], layer: &[u8]) -> String {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(layer), "size": layer.len()}],
        })
        .to_string()
    }

    struct Registry<'a> {
        env: &'a Env,
        client: Client,
        account: &'static str,
        role: &'static str,
    }

    impl<'a> Registry<'a> {
        fn new(env: &'a Env, account: &'static str, role: &'static str) -> Self {
            Registry { env, client: Client::new(&env.as_role(account, role)), account, role }
        }

        fn create(&self, name: &str, mutability: ImageTagMutability) {
            self.env
                .aws
                .rt
                .block_on(self.client.create_repository().repository_name(name).image_tag_mutability(mutability).send())
                .unwrap();
        }

        fn repo<'b>(&'b self, name: &'b str) -> Repo<'b> {
            Repo { client: &self.client, account: self.account, region: "eu-west-1", name, role: self.role }
        }

        /// What `docker push` does: upload each blob, then put the manifest under a tag.
        /// ECR's digest is the sha256 of the manifest bytes (moto needs it given explicitly).
        fn push(&self, repo: &str, tag: &str, blobs: &[&[u8]], manifest: &str, digest: &str) {
            self.env.aws.rt.block_on(async {
                for blob in blobs {
                    self.upload(repo, blob).await;
                }
                self.client
                    .put_image()
                    .repository_name(repo)
                    .image_manifest(manifest)
                    .image_digest(digest)
                    .image_tag(tag)
                    .send()
                    .await
                    .unwrap();
            });
        }

        async fn upload(&self, repo: &str, blob: &[u8]) {
            let up = self.client.initiate_layer_upload().repository_name(repo).send().await.unwrap();
            let id = up.upload_id().unwrap();
            let last = i64::try_from(blob.len()).unwrap() - 1;
            let part = self.client.upload_layer_part().repository_name(repo).upload_id(id).part_first_byte(0).part_last_byte(last);
            part.layer_part_blob(Blob::new(blob.to_vec())).send().await.unwrap();
            self.client.complete_layer_upload().repository_name(repo).upload_id(id).layer_digests(d(blob)).send().await.unwrap();
        }

        /// This registry as `ferry build` sees the central one (the artifacts account's).
        fn as_central_registry(&self) -> EcrRegistry {
            EcrRegistry {
                rt: self.env.aws.rt.clone(),
                client: self.client.clone(),
                account: self.account.into(),
                region: "eu-west-1".into(),
                role: self.role.into(),
            }
        }

        /// The manifest text and digest a tag names, if any.
        fn tagged(&self, repo: &str, tag: &str) -> Option<(String, String)> {
            let out = self
                .env
                .aws
                .rt
                .block_on(
                    self.client.batch_get_image().repository_name(repo).image_ids(ImageIdentifier::builder().image_tag(tag).build()).send(),
                )
                .unwrap();
            out.images().first().map(|i| (i.image_manifest().unwrap().to_owned(), i.image_id().unwrap().image_digest().unwrap().to_owned()))
        }
    }

    /// The central repository (artifacts account) with `web:abc123` pushed, and a repository
    /// of the same name in the prod account. moto cannot serve `GetDownloadUrlForLayer`, so
    /// the prod repository already holds the blobs (shared base layers); streaming missing
    /// blobs is covered with scripted responses in `mocks.rs`.
    fn two_registries(env: &Env, mutability: ImageTagMutability) -> (Registry<'_>, Registry<'_>, String, String, String) {
        let name = unique("shop/web");
        let (config, layer) = (format!("{{\"id\":\"{name}\"}}").into_bytes(), vec![7u8; 4096]);
        let m = manifest(&config, &layer);
        let central = Registry::new(env, ARTIFACTS, "ferry-artifacts");
        let prod = Registry::new(env, PROD, "ferry-deploy");
        central.create(&name, ImageTagMutability::Immutable);
        prod.create(&name, mutability);
        central.push(&name, "abc123", &[&config, &layer], &m, &d(m.as_bytes()));
        env.aws.rt.block_on(async {
            prod.upload(&name, &config).await;
            prod.upload(&name, &layer).await;
        });
        (central, prod, name, m.clone(), d(m.as_bytes()))
    }

    #[test]
    fn an_image_is_promoted_by_digest_from_the_central_registry_to_a_stage_account() {
        let env = env();
        let (central, prod, name, manifest, digest) = two_registries(&env, ImageTagMutability::Mutable);
        // `ferry build` resolves the pushed tag to the manifest's digest with the store role.
        let registry = central.as_central_registry();
        let image = registry.resolve(&ImageDecl { name: "web".into(), repository: name.clone(), tag: "abc123".into() }, "abc123").unwrap();
        assert_eq!(format!("sha256:{}", image.digest), digest);
        assert_eq!(image.repository, format!("{ARTIFACTS}.dkr.ecr.eu-west-1.amazonaws.com/{name}"));
        assert_eq!(image.media_type, "application/vnd.oci.image.manifest.v1+json");

        let tags = ["r0123456789abcdef".to_owned(), "prod".to_owned()];
        let http = reqwest::Client::new();
        let copied = env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &image.digest, &tags, &http)).unwrap();
        assert_eq!((copied.blobs_copied, copied.blobs_present), (0, 2));
        assert_eq!(copied.tags_written, tags.to_vec());
        for tag in &tags {
            let (text, at) = prod.tagged(&name, tag).expect("tagged in the prod account");
            assert_eq!(text, manifest, "the manifest is copied byte for byte");
            assert_eq!(at, digest);
        }
        // Promoting again changes nothing and says so.
        let again = env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &image.digest, &tags, &http)).unwrap();
        assert_eq!(again.tags_present, tags.to_vec());
        assert!(again.tags_written.is_empty());
    }

    #[test]
    fn a_tag_naming_another_image_in_an_immutable_repository_is_refused_before_anything_is_written() {
        let env = env();
        let (central, prod, name, _, digest) = two_registries(&env, ImageTagMutability::Immutable);
        let first: Sha256Digest = digest.trim_start_matches("sha256:").parse().unwrap();
        let http = reqwest::Client::new();
        env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &first, &["r1".into(), "prod".into()], &http)).unwrap();

        // A second release of the image.
        let (config, layer) = (b"{\"second\":true}".to_vec(), vec![9u8; 2048]);
        let m2 = manifest(&config, &layer);
        central.push(&name, "def456", &[&config, &layer], &m2, &d(m2.as_bytes()));
        env.aws.rt.block_on(async {
            prod.upload(&name, &config).await;
            prod.upload(&name, &layer).await;
        });
        let second = Sha256Digest::of(m2.as_bytes());
        let err = env
            .aws
            .rt
            .block_on(promote(&central.repo(&name), &prod.repo(&name), &second, &["r2".into(), "prod".into()], &http))
            .unwrap_err();
        assert!(err.message.contains("tag `prod`") && err.message.contains("IMMUTABLE"), "{}", err.message);
        assert!(err.hints.iter().any(|h| h.contains("${release}")), "{:?}", err.hints);
        assert!(prod.tagged(&name, "r2").is_none(), "nothing was written");
        assert_eq!(prod.tagged(&name, "prod").unwrap().1, digest, "the tag still names the first image");
        // With release-unique tags only, the promotion goes through.
        env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &second, &["r2".into()], &http)).unwrap();
        assert_eq!(prod.tagged(&name, "r2").unwrap().1, d(m2.as_bytes()));
    }

    #[test]
    fn an_image_whose_manifest_does_not_hash_to_its_digest_is_refused() {
        let env = env();
        let (central, prod, name, _, _) = two_registries(&env, ImageTagMutability::Mutable);
        // A registry that answers with a digest its manifest does not have (tampering).
        let (config, layer) = (b"{\"evil\":true}".to_vec(), vec![1u8; 64]);
        let evil = manifest(&config, &layer);
        let claimed = d(b"something else");
        central.push(&name, "evil", &[&config, &layer], &evil, &claimed);
        let registry = central.as_central_registry();
        let err = registry.resolve(&ImageDecl { name: "web".into(), repository: name.clone(), tag: "evil".into() }, "evil").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Verification, "{}", err.message);
        let claimed_digest: Sha256Digest = claimed.trim_start_matches("sha256:").parse().unwrap();
        let err = env
            .aws
            .rt
            .block_on(promote(&central.repo(&name), &prod.repo(&name), &claimed_digest, &["x".into()], &reqwest::Client::new()))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Verification, "{}", err.message);
        assert!(prod.tagged(&name, "x").is_none());
    }
}

mod pipelines {
    use std::collections::BTreeMap;

    use aws_sdk_codepipeline::types::{
        ActionCategory, ActionDeclaration, ActionOwner, ActionTypeId, ArtifactStore, ArtifactStoreType, PipelineDeclaration, PipelineType,
        StageDeclaration,
    };
    use ferry_aws::codepipeline::{Run, execute};

    use super::*;

    const PROD: &str = "666666666666";

    #[test]
    fn a_codepipeline_execution_is_started_in_the_target_account_with_the_release_as_a_variable() {
        let env = env();
        let config = env.as_role(PROD, "ferry-deploy");
        let name = unique("legacy");
        let iam = codepipeline_service_role(&env, PROD);
        let cp = aws_sdk_codepipeline::Client::new(&config);
        let action = |name: &str, category, provider: &str| {
            ActionDeclaration::builder()
                .name(name)
                .action_type_id(
                    ActionTypeId::builder().category(category).owner(ActionOwner::Aws).provider(provider).version("1").build().unwrap(),
                )
                .build()
                .unwrap()
        };
        let pipeline = PipelineDeclaration::builder()
            .name(&name)
            .role_arn(iam)
            .pipeline_type(PipelineType::V2)
            .artifact_store(ArtifactStore::builder().r#type(ArtifactStoreType::S3).location("artifacts").build().unwrap())
            .stages(StageDeclaration::builder().name("Source").actions(action("Source", ActionCategory::Source, "S3")).build().unwrap())
            .stages(StageDeclaration::builder().name("Deploy").actions(action("Deploy", ActionCategory::Deploy, "S3")).build().unwrap())
            .build()
            .unwrap();
        env.aws.rt.block_on(cp.create_pipeline().pipeline(pipeline).send()).unwrap();

        let run = Run {
            pipeline: &name,
            variables: BTreeMap::from([("RELEASE".to_owned(), "r0123456789abcdef".to_owned())]),
            approve: None,
            timeout: Duration::from_secs(60),
            poll: Duration::from_millis(50),
            summary: String::new(),
            role: "ferry-deploy",
            stop: None,
        };
        let report = env.aws.rt.block_on(execute(&cp, &run)).unwrap();
        let id = &report.outputs[&format!("codepipeline.{name}.execution")];
        // The execution is in the prod account, with the release's value.
        let exec = env.aws.rt.block_on(cp.get_pipeline_execution().pipeline_name(&name).pipeline_execution_id(id).send()).unwrap();
        let exec = exec.pipeline_execution().unwrap();
        assert_eq!(exec.variables()[0].name(), Some("RELEASE"));
        assert_eq!(exec.variables()[0].resolved_value(), Some("r0123456789abcdef"));
        // Not visible from another account.
        let staging = aws_sdk_codepipeline::Client::new(&env.as_role(STAGING, "ferry-deploy"));
        assert!(env.aws.rt.block_on(staging.get_pipeline().name(&name).send()).is_err());
    }

    /// A service role CodePipeline may assume in `account` (moto checks its trust policy).
    fn codepipeline_service_role(env: &Env, account: &str) -> String {
        let name = unique("codepipeline-service");
        let script = format!(
            "import boto3, json\n\
             c=boto3.client('sts',endpoint_url='{e}',region_name='eu-west-1',aws_access_key_id='test',aws_secret_access_key='test').assume_role(RoleArn='arn:aws:iam::{account}:role/setup',RoleSessionName='setup')['Credentials']\n\
             iam=boto3.client('iam',endpoint_url='{e}',region_name='eu-west-1',aws_access_key_id=c['AccessKeyId'],aws_secret_access_key=c['SecretAccessKey'],aws_session_token=c['SessionToken'])\n\
             trust={{'Version':'2012-10-17','Statement':[{{'Effect':'Allow','Principal':{{'Service':'codepipeline.amazonaws.com'}},'Action':'sts:AssumeRole'}}]}}\n\
             iam.create_role(RoleName='{name}',AssumeRolePolicyDocument=json.dumps(trust))\n",
            e = env._moto.endpoint()
        );
        let out = std::process::Command::new(ferry_testkit::venv_bin("python")).arg("-c").arg(script).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        format!("arn:aws:iam::{account}:role/{name}")
    }
}

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
