//! The whole flow on the aws backend, against a local AWS API (moto) with six accounts:
//! build in dev, store in artifacts, audit in security, sign with KMS, promote through
//! staging to prod by role chains, two approvers from assumed-role sessions.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials as _;
use ferry_testkit::Moto;
use ferry_testkit::proxy::Proxy;

use crate::support::{FERRY, Run, repo_root, venv_python};

pub const TOOLING: &str = "111111111111";
pub const ARTIFACTS: &str = "222222222222";
pub const SECURITY: &str = "333333333333";
pub const DEV: &str = "444444444444";
pub const STAGING: &str = "555555555555";
const PROD: &str = "666666666666";

/// A moto server, SDK clients to set the accounts up, and a project directory.
pub struct AwsWorld {
    pub moto: Arc<Moto>,
    /// Between `ferry` (and its deploy commands) and moto: faults are injected here.
    pub proxy: Proxy,
    pub rt: tokio::runtime::Runtime,
    pub base: SdkConfig,
    pub dir: tempfile::TempDir,
    pub store_bucket: String,
    pub audit_bucket: String,
    pub kms_key: String,
    /// `FERRY_TIME_SCALE` for every ferry run (lease tests: 30 s leases in a few real seconds).
    pub time_scale: std::cell::Cell<Option<u32>>,
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{:x}-{:?}", nanos, std::thread::current().id()).to_lowercase().replace(['(', ')'], "").replace("threadid", "t")
}

impl AwsWorld {
    pub fn new() -> Self {
        let moto = Moto::shared();
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let base = rt.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .endpoint_url(moto.endpoint())
                .region(Region::new("eu-west-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .load(),
        );
        let proxy = Proxy::start(moto.port);
        let mut w = AwsWorld {
            moto,
            proxy,
            rt,
            base,
            dir: tempfile::tempdir().unwrap(),
            store_bucket: unique("store"),
            audit_bucket: unique("audit"),
            kms_key: String::new(),
            time_scale: std::cell::Cell::new(None),
        };
        w.create_bucket(ARTIFACTS, "ferry-artifacts", &w.store_bucket.clone());
        w.create_bucket(SECURITY, "ferry-audit", &w.audit_bucket.clone());
        let kms = aws_sdk_kms::Client::new(&w.role(SECURITY, "ferry-signer", "setup"));
        let key =
            w.rt.block_on(
                kms.create_key()
                    .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
                    .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
                    .send(),
            )
            .unwrap();
        w.kms_key = key.key_metadata.unwrap().arn.unwrap();
        w
    }

    /// Credentials of `role` in `account` with session name `session`, assumed from the base.
    pub fn role(&self, account: &str, role: &str, session: &str) -> SdkConfig {
        let sts = aws_sdk_sts::Client::new(&self.base);
        let out = self
            .rt
            .block_on(sts.assume_role().role_arn(format!("arn:aws:iam::{account}:role/{role}")).role_session_name(session).send())
            .unwrap();
        let c = out.credentials.unwrap();
        let creds = Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), None, "test-role");
        self.base.to_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds)).build()
    }

    pub fn s3(&self, config: &SdkConfig) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(true).build())
    }

    pub fn create_bucket(&self, account: &str, role: &str, name: &str) {
        let s3 = self.s3(&self.role(account, role, "setup"));
        let cfg = aws_sdk_s3::types::CreateBucketConfiguration::builder()
            .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::EuWest1)
            .build();
        self.rt.block_on(s3.create_bucket().bucket(name).create_bucket_configuration(cfg).send()).unwrap();
    }

    /// Keys of every object in `bucket` of `account`.
    pub fn keys(&self, account: &str, role: &str, bucket: &str) -> Vec<String> {
        let s3 = self.s3(&self.role(account, role, "inspect"));
        let out = self.rt.block_on(s3.list_objects_v2().bucket(bucket).send()).unwrap();
        out.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect()
    }

    pub fn get(&self, account: &str, role: &str, bucket: &str, key: &str) -> Vec<u8> {
        let s3 = self.s3(&self.role(account, role, "inspect"));
        let out = self.rt.block_on(s3.get_object().bucket(bucket).key(key).send()).unwrap();
        self.rt.block_on(out.body.collect()).unwrap().into_bytes().to_vec()
    }

    pub fn path(&self, rel: &str) -> std::path::PathBuf {
        self.dir.path().join(rel)
    }

    /// Writes the project; each deploy action records the identity it runs as in `deploys.log`,
    /// then runs `then` (e.g. a sleep).
    pub fn write_project(&self, then: &str) {
        std::fs::create_dir_all(self.path("app")).unwrap();
        std::fs::write(self.path("app/build.sh"), "mkdir -p out && cp src.txt out/app.bin\n").unwrap();
        std::fs::write(self.path("app/src.txt"), "version one\n").unwrap();
        let py = venv_python();
        let whoami =
            format!("{} -c 'import boto3; print(boto3.client(\"sts\").get_caller_identity()[\"Arn\"])' >> deploys.log{then}", py.display());
        let pipeline = format!(
            r#"version: 1
name: shop
backend: aws
accounts:
  tooling: "{TOOLING}"
  artifacts: "{ARTIFACTS}"
  security: "{SECURITY}"
  dev: "{DEV}"
  staging: "{STAGING}"
  prod: "{PROD}"
aws:
  region: eu-west-1
  orchestrator: {{account: tooling, role: ferry-orchestrator}}
  external_id: ferry-shop
  store: {{account: artifacts, bucket: {store}, prefix: shop}}
signing:
  kms_key: {key}
  public_key: keys/shop.pem
approvers:
  alice:
    public_key: keys/alice.pem
    identities: ["arn:aws:sts::{TOOLING}:assumed-role/release-approvers/alice"]
  bob:
    public_key: keys/bob.pem
    identities: ["arn:aws:sts::{TOOLING}:assumed-role/release-approvers/bob"]
build:
  account: dev
  working_dir: app
  command: sh build.sh
  artifacts:
    - name: app
      path: out/app.bin
stages:
  - name: staging
    account: staging
    deploy:
      - type: command
        run: {whoami}
  - name: prod
    account: prod
    approval:
      required: 2
      approvers: [alice, bob]
    deploy:
      - type: command
        run: {whoami}
audit:
  account: security
  bucket: {audit}
  prefix: shop
"#,
            store = self.store_bucket,
            audit = self.audit_bucket,
            key = self.kms_key,
        );
        std::fs::write(self.path("pipeline.yaml"), pipeline).unwrap();
        // The approvers' own signing keys (local ones: each person's machine holds theirs).
        if !self.path("keys/alice.pem").exists() {
            for who in ["alice", "bob"] {
                self.ferry(&self.base, &["keygen", "--name", who]).expect(0);
                self.ferry(&self.base, &["key", "export", "--name", who, "--out", "keys"]).expect(0);
            }
        }
    }

    /// Replaces the project's `stages:` block (up to `audit:`) with `stages`.
    pub fn set_stages(&self, stages: &str) {
        let yaml = std::fs::read_to_string(self.path("pipeline.yaml")).unwrap();
        let (head, tail) = yaml.split_once("stages:\n").unwrap();
        let audit = &tail[tail.find("audit:\n").unwrap()..];
        std::fs::write(self.path("pipeline.yaml"), format!("{head}{stages}{audit}")).unwrap();
    }

    /// Replaces the `deploy:` block of `stage` (up to the next stage, or `audit:`) with `block`.
    pub fn set_deploy(&self, stage: &str, block: &str) {
        let yaml = std::fs::read_to_string(self.path("pipeline.yaml")).unwrap();
        let at = yaml.find(&format!("  - name: {stage}\n")).unwrap();
        let deploy_at = at + yaml[at..].find("    deploy:\n").unwrap();
        let rest = &yaml[deploy_at..];
        let end = deploy_at + rest.find("  - name: ").or_else(|| rest.find("audit:")).unwrap();
        std::fs::write(self.path("pipeline.yaml"), format!("{}{block}{}", &yaml[..deploy_at], &yaml[end..])).unwrap();
    }

    /// Adds `TEMPLATE` as the release artifact `template` and deploys it as a new stack from
    /// `stage`; returns the stack's name.
    pub fn deploy_template(&self, stage: &str) -> String {
        std::fs::write(self.path("app/template.yaml"), TEMPLATE).unwrap();
        let yaml = std::fs::read_to_string(self.path("pipeline.yaml")).unwrap();
        let yaml = yaml.replace("      path: out/app.bin\n", "      path: out/app.bin\n    - name: template\n      path: template.yaml\n");
        std::fs::write(self.path("pipeline.yaml"), yaml).unwrap();
        let stack = unique("shop").replace('_', "-");
        self.set_deploy(
            stage,
            &format!(
                "    deploy:\n      - type: cloudformation\n        stack: {stack}\n        template: template\n        parameters:\n          Release: \"${{release}}\"\n"
            ),
        );
        stack
    }

    /// Environment that makes `ferry` act as the given credentials against moto.
    pub fn env_for(&self, config: &SdkConfig) -> BTreeMap<String, String> {
        let creds = self.rt.block_on(config.credentials_provider().unwrap().provide_credentials()).unwrap();
        let mut env = BTreeMap::new();
        env.insert("AWS_ENDPOINT_URL".into(), self.proxy.endpoint());
        env.insert("AWS_REGION".into(), "eu-west-1".into());
        env.insert("AWS_ACCESS_KEY_ID".into(), creds.access_key_id().to_owned());
        env.insert("AWS_SECRET_ACCESS_KEY".into(), creds.secret_access_key().to_owned());
        if let Some(t) = creds.session_token() {
            env.insert("AWS_SESSION_TOKEN".into(), t.to_owned());
        }
        env
    }

    /// Runs `ferry ARGS` in the project directory with the identity `config`.
    pub fn ferry(&self, config: &SdkConfig, args: &[&str]) -> Run {
        self.command(config, args).output().unwrap().into()
    }

    pub fn command(&self, config: &SdkConfig, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(FERRY);
        c.args(args).current_dir(self.dir.path()).env("FERRY_HOME", self.path("home")).env("FERRY_LOG", "warn");
        for v in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "FERRY_ACTOR", "FERRY_OUTPUT"] {
            c.env_remove(v);
        }
        c.envs(self.env_for(config));
        if let Some(k) = self.time_scale.get() {
            c.env("FERRY_TIME_SCALE", k.to_string());
        }
        c
    }

    pub fn deploys(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("deploys.log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// Exports the KMS public key and builds a release as `ci`; returns its id.
    pub fn release(&self, ci: &SdkConfig) -> String {
        self.ferry(
            &self.role(SECURITY, "ferry-signer", "key-export"),
            &["key", "export", "--kms", &self.kms_key, "--name", "shop", "--out", "keys"],
        )
        .expect(0);
        self.ferry(ci, &["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned()
    }

    /// A release built as `ci`, promoted to staging and waiting for prod's approvals; its id.
    pub fn at_prod_gate(&self, ci: &SdkConfig) -> String {
        let id = self.release(ci);
        self.ferry(ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
        self.ferry(ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
        id
    }

    fn wait_for_deploys(&self, n: usize) {
        let start = std::time::Instant::now();
        while self.deploys().len() < n {
            assert!(start.elapsed() < std::time::Duration::from_secs(60), "deploy did not start");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

#[test]
fn build_staging_prod_across_six_accounts_with_kms_signing_and_two_assumed_role_approvers() {
    let w = AwsWorld::new();
    w.write_project("");
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let security_reader = w.role(SECURITY, "ferry-signer", "key-export");
    w.ferry(&security_reader, &["key", "export", "--kms", &w.kms_key, "--name", "shop", "--out", "keys"]).expect(0);

    // Build as the CI identity: artifacts land in the artifacts account, audit in security.
    let built = w.ferry(&ci, &["build", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let id = built["release"].as_str().unwrap().to_owned();
    let ci_arn = format!("arn:aws:sts::{TOOLING}:assumed-role/ci/github-run-1");
    assert_eq!(built["manifest"]["builder"]["actor"], ci_arn.as_str(), "the actor is the STS caller identity");
    let store_keys = w.keys(ARTIFACTS, "ferry-artifacts", &w.store_bucket);
    let digest = built["manifest"]["artifacts"][0]["sha256"].as_str().unwrap();
    assert!(store_keys.contains(&format!("shop/artifacts/sha256/{digest}")), "{store_keys:?}");
    assert!(store_keys.contains(&format!("shop/releases/{id}/manifest.json")));
    let audit_keys = w.keys(SECURITY, "ferry-audit", &w.audit_bucket);
    let events: Vec<&String> = audit_keys.iter().filter(|k| k.starts_with("shop/audit/events/")).collect();
    assert_eq!(events.len(), 2, "build and sign in one append, store in the next: {audit_keys:?}");
    assert_eq!(audit_keys.len(), 5, "the log's layout and head, and the KMS-signed checkpoint: {audit_keys:?}");
    assert!(audit_keys.contains(&"shop/audit/checkpoints/000000000003.dsse.json".to_owned()), "{audit_keys:?}");

    // The KMS-signed envelope verifies with securesystemslib and in-toto from the exported key.
    let envelope = w.get(ARTIFACTS, "ferry-artifacts", &w.store_bucket, &format!("shop/releases/{id}/provenance.dsse.json"));
    std::fs::write(w.path("envelope.json"), envelope).unwrap();
    let out = std::process::Command::new(venv_python())
        .arg(repo_root().join("tests/conformance/verify_attestation.py"))
        .arg(w.path("envelope.json"))
        .arg(w.path("keys/shop.json"))
        .arg(format!("app={digest}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // Staging: the deploy action runs as the staging account's deploy role.
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    let deploys = std::fs::read_to_string(w.path("deploys.log")).unwrap();
    assert_eq!(deploys.trim(), format!("arn:aws:sts::{STAGING}:assumed-role/ferry-deploy/ferry-shop-{id}-staging"));

    // Prod waits for two approvers; the builder's identity is refused.
    let waiting = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    assert!(waiting.stdout.contains("approve with: ferry approve pipeline.yaml"), "{}", waiting.stdout);
    let refused = w.ferry(&ci, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(1);
    assert!(refused.stderr.contains("is none of the pipeline's approvers"), "{}", refused.stderr);
    let alice = w.role(TOOLING, "release-approvers", "alice");
    let bob = w.role(TOOLING, "release-approvers", "bob");
    w.ferry(&alice, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    let second = w.ferry(&bob, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    assert!(second.stdout.contains("approvals complete"), "{}", second.stdout);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(0);
    let deploys = std::fs::read_to_string(w.path("deploys.log")).unwrap();
    assert_eq!(deploys.lines().nth(1), Some(format!("arn:aws:sts::{PROD}:assumed-role/ferry-deploy/ferry-shop-{id}-prod").as_str()));

    // The audit log verifies from the security account's bucket alone, and says who did what.
    let verified = w.ferry(&ci, &["audit", "verify", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert!(verified["events"].as_u64().unwrap() > 20);
    // A KMS-signed checkpoint after each command that decided something: the build, four
    // promotions and three decisions (the builder's refused one included).
    assert_eq!(verified["checkpoints"], serde_json::json!({"count": 8, "verified": true}));
    assert_eq!(verified["evidence"]["problems"], serde_json::json!([]));
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let approvers: Vec<&str> =
        shown["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "approved").map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(
        approvers,
        [
            format!("arn:aws:sts::{TOOLING}:assumed-role/release-approvers/alice"),
            format!("arn:aws:sts::{TOOLING}:assumed-role/release-approvers/bob")
        ]
    );
}

#[test]
fn an_artifact_overwritten_in_s3_behind_ferrys_back_is_refused_and_audited() {
    let w = AwsWorld::new();
    w.write_project("");
    let ci = w.role(TOOLING, "ci", "github-run-2");
    w.ferry(&w.role(SECURITY, "ferry-signer", "key-export"), &["key", "export", "--kms", &w.kms_key, "--name", "shop", "--out", "keys"])
        .expect(0);
    let built = w.ferry(&ci, &["build", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let id = built["release"].as_str().unwrap().to_owned();
    let digest = built["manifest"]["artifacts"][0]["sha256"].as_str().unwrap();
    let intruder = w.s3(&w.role(ARTIFACTS, "someone-else", "oops"));
    w.rt.block_on(
        intruder
            .put_object()
            .bucket(&w.store_bucket)
            .key(format!("shop/artifacts/sha256/{digest}"))
            .body(b"version evil\n".to_vec().into())
            .send(),
    )
    .unwrap();
    let r = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(4);
    assert!(r.stderr.contains("artifact `app` in the store hashes to"), "{}", r.stderr);
    assert!(!w.path("deploys.log").exists(), "nothing deployed");
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert_eq!(shown["events"].as_array().unwrap().last().unwrap()["kind"], "verify_failed");
}

#[test]
fn two_runners_promoting_at_once_deploy_exactly_once_and_the_other_names_the_holder() {
    let w = AwsWorld::new();
    w.write_project("; sleep 10");
    let ci = w.role(TOOLING, "ci", "github-run-3");
    let id = w.release(&ci);
    let other = w.role(TOOLING, "ci", "codebuild-7");
    let first = w
        .command(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    w.wait_for_deploys(1);
    let busy = w.ferry(&other, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(5);
    assert!(busy.stderr.contains(&format!("being promoted by `arn:aws:sts::{TOOLING}:assumed-role/ci/github-run-3`")), "{}", busy.stderr);
    Run::from(first.wait_with_output().unwrap()).expect(0);
    assert_eq!(w.deploys().len(), 1);
    let again = w.ferry(&other, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert!(again.stdout.contains("already deployed"), "{}", again.stdout);
    assert_eq!(w.deploys().len(), 1);
}

#[test]
fn a_lease_left_by_a_killed_runner_is_taken_over_only_after_it_expires() {
    use std::os::unix::process::CommandExt as _;
    let w = AwsWorld::new();
    // ferry's clock runs 5 times as fast: the 30 s lease lasts 6 s.
    w.time_scale.set(Some(5));
    w.write_project("; [ -f fast ] || sleep 120");
    let ci = w.role(TOOLING, "ci", "github-run-4");
    let id = w.release(&ci);
    let mut crashed = w
        .command(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--lease", "30s"])
        .process_group(0)
        .spawn()
        .unwrap();
    w.wait_for_deploys(1);
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", crashed.id())]).status();
    let _ = crashed.wait();
    // Another machine cannot see the process; until the lease runs out the stage is busy.
    let busy = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(5);
    assert!(busy.stderr.contains("is busy"), "{}", busy.stderr);
    // Once the lease has run out (a minute later, told to ferry's clock rather than waited for).
    let later: Run = w
        .command(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"])
        .env("FERRY_TIME_OFFSET", "60s")
        .output()
        .unwrap()
        .into();
    let refused = later.expect(1);
    assert!(refused.stderr.contains("never finished: it may have partly run"), "{}", refused.stderr);
    assert_eq!(w.deploys().len(), 1, "the interrupted deploy was not run again");
    let kinds: Vec<String> = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect();
    assert!(kinds.iter().any(|k| k == "lock_taken_over"), "{kinds:?}");
    std::fs::write(w.path("fast"), "").unwrap();
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--redeploy"]).expect(0);
    assert_eq!(w.deploys().len(), 2);
}

/// A fresh moto server with least-privilege roles and IAM enforcement on (see
/// tests/conformance/moto_iam_setup.py), and a project acting as the CI user.
pub(crate) struct Enforced {
    pub(crate) moto: Moto,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) env: BTreeMap<String, String>,
    store: String,
    /// What the set-up printed (keys, the approver's key and session).
    pub(crate) setup: serde_json::Value,
}

impl Enforced {
    pub(crate) fn new(deny_releases: bool) -> Self {
        let moto = Moto::start();
        let (store, audit) = (unique("store"), unique("audit"));
        let mut setup = std::process::Command::new(venv_python());
        setup.arg(repo_root().join("tests/conformance/moto_iam_setup.py")).args([moto.endpoint(), store.clone(), audit.clone()]);
        if deny_releases {
            setup.arg("--deny-releases");
        }
        let out = setup.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let der = base64_decode(v["public_key_der"].as_str().unwrap());
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/shop.pem"), ferry_core::keys::PublicKey::from_spki_der(&der).unwrap().to_pem().unwrap())
            .unwrap();
        std::fs::create_dir_all(dir.path().join("app")).unwrap();
        std::fs::write(dir.path().join("app/build.sh"), "mkdir -p out && cp src.txt out/app.bin\n").unwrap();
        std::fs::write(dir.path().join("app/src.txt"), "version one\n").unwrap();
        let pipeline = format!(
            r#"version: 1
name: shop
backend: aws
accounts: {{tooling: "{TOOLING}", artifacts: "{ARTIFACTS}", security: "{SECURITY}", dev: "{DEV}", staging: "{STAGING}", prod: "{PROD}"}}
aws:
  region: eu-west-1
  orchestrator: {{account: tooling}}
  store: {{account: artifacts, bucket: {store}, prefix: shop}}
signing: {{kms_key: "{key}", public_key: keys/shop.pem}}
build: {{account: dev, working_dir: app, command: sh build.sh, artifacts: [{{name: app, path: out/app.bin}}]}}
stages:
  - {{name: staging, account: staging, deploy: [{{type: command, run: echo staging >> deploys.log}}]}}
  - {{name: prod, account: prod, deploy: [{{type: command, run: echo prod >> deploys.log}}]}}
audit: {{account: security, bucket: {audit}, prefix: shop}}
"#,
            key = v["kms_key"].as_str().unwrap()
        );
        std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();
        let mut env = BTreeMap::new();
        env.insert("AWS_ENDPOINT_URL".to_owned(), moto.endpoint());
        env.insert("AWS_REGION".to_owned(), "eu-west-1".to_owned());
        env.insert("AWS_ACCESS_KEY_ID".to_owned(), v["access_key_id"].as_str().unwrap().to_owned());
        env.insert("AWS_SECRET_ACCESS_KEY".to_owned(), v["secret_access_key"].as_str().unwrap().to_owned());
        Enforced { moto, dir, env, store, setup: v }
    }

    pub(crate) fn ferry(&self, args: &[&str]) -> Run {
        self.ferry_with(&self.env, args)
    }

    /// `ferry ARGS` with `env` (another identity's credentials) instead of CI's.
    pub(crate) fn ferry_with(&self, env: &BTreeMap<String, String>, args: &[&str]) -> Run {
        let mut c = std::process::Command::new(FERRY);
        c.args(args).current_dir(self.dir.path()).env("FERRY_HOME", self.dir.path().join("home")).env("FERRY_LOG", "warn");
        for v in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "FERRY_ACTOR", "FERRY_OUTPUT"] {
            c.env_remove(v);
        }
        c.envs(env).output().unwrap().into()
    }

    /// Keys in the store bucket, read with the (unrestricted) setup identity after switching
    /// enforcement off.
    fn store_keys(&self) -> Vec<String> {
        self.moto.enforce_iam(false);
        let out = std::process::Command::new(venv_python())
            .args(["-c", &format!(
                "import boto3\nc=boto3.client('sts',endpoint_url='{e}',region_name='eu-west-1',aws_access_key_id='test',aws_secret_access_key='test').assume_role(RoleArn='arn:aws:iam::{ARTIFACTS}:role/setup',RoleSessionName='look')['Credentials']\ns3=boto3.client('s3',endpoint_url='{e}',region_name='eu-west-1',aws_access_key_id=c['AccessKeyId'],aws_secret_access_key=c['SecretAccessKey'],aws_session_token=c['SessionToken'])\nfor o in s3.list_objects_v2(Bucket='{b}').get('Contents',[]): print(o['Key'])",
                e = self.moto.endpoint(),
                b = self.store
            )])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
    }
}

pub(crate) fn base64_decode(s: &str) -> Vec<u8> {
    let table = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(table).collect();
    bytes
        .chunks(4)
        .flat_map(|c| {
            let n = c.iter().enumerate().fold(0u32, |acc, (i, v)| acc | (u32::from(*v) << (18 - 6 * i)));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out[..c.len() - 1].to_vec()
        })
        .collect()
}

#[test]
fn a_store_role_without_a_permission_is_named_with_action_and_resource_and_no_release_is_half_written() {
    let e = Enforced::new(true);
    let r = e.ferry(&["build", "pipeline.yaml"]).expect(1);
    assert!(
        r.stderr.contains(&format!(
            "access denied: `arn:aws:iam::{ARTIFACTS}:role/ferry-artifacts` is not allowed to `s3:PutObject` on `s3://{}/shop/releases/",
            e.store
        )),
        "{}",
        r.stderr
    );
    let keys = e.store_keys();
    assert!(!keys.iter().any(|k| k.contains("/releases/")), "no half-written release: {keys:?}");
}

#[test]
fn a_stage_role_the_orchestrator_may_not_assume_fails_the_deploy_names_the_role_and_releases_the_lock() {
    let e = Enforced::new(false);
    let built = e.ferry(&["build", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let id = built["release"].as_str().unwrap().to_owned();
    assert_eq!(built["manifest"]["builder"]["actor"], "arn:aws:iam::123456789012:user/ci");
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    let denied = e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(1);
    assert!(
        denied.stderr.contains(&format!("access denied: `arn:aws:iam::{TOOLING}:role/ferry-orchestrator` is not allowed to `sts:AssumeRole` on `arn:aws:iam::{PROD}:role/ferry-deploy`")),
        "{}",
        denied.stderr
    );
    assert_eq!(std::fs::read_to_string(e.dir.path().join("deploys.log")).unwrap(), "staging\n", "nothing ran in prod");
    let keys = e.store_keys();
    assert!(!keys.iter().any(|k| k.contains("/locks/")), "the lock was released: {keys:?}");
    assert!(keys.contains(&format!("shop/state/shop/{id}/prod.json")), "{keys:?}");
    // Nothing ran in prod, so once the role can be assumed (enforcement off here) the same
    // promotion goes through without `--redeploy`.
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(0);
    assert_eq!(std::fs::read_to_string(e.dir.path().join("deploys.log")).unwrap(), "staging\nprod\n");
}

#[test]
fn doctor_on_the_example_pipeline_prints_every_hop_with_its_resulting_arn() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("pipelines/shop-aws.yaml"), dir.path().join("shop-aws.yaml")).unwrap();
    let base = |c: &mut std::process::Command| {
        c.current_dir(dir.path())
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_DEFAULT_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .env("FERRY_LOG", "warn");
    };
    // The example's buckets exist in their accounts; its KMS key and pinned key do not.
    for (account, bucket) in [(ARTIFACTS, "acme-ferry-artifacts"), (SECURITY, "acme-ferry-audit")] {
        let script = format!(
            "import boto3\nc=boto3.client('sts').assume_role(RoleArn='arn:aws:iam::{account}:role/setup',RoleSessionName='setup')['Credentials']\nboto3.client('s3',aws_access_key_id=c['AccessKeyId'],aws_secret_access_key=c['SecretAccessKey'],aws_session_token=c['SessionToken']).create_bucket(Bucket='{bucket}',CreateBucketConfiguration={{'LocationConstraint':'eu-west-1'}})"
        );
        let mut c = std::process::Command::new(venv_python());
        base(&mut c);
        let out = c.args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut c = std::process::Command::new(FERRY);
    base(&mut c);
    let r: Run = c.args(["doctor", "shop-aws.yaml", "--output", "json"]).output().unwrap().into();
    let v = r.expect(1).json();
    let checks = v["checks"].as_array().unwrap();
    let detail = |name: &str| checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no check {name}: {checks:#?}"));
    for (name, arn) in [
        ("orchestrator", format!("arn:aws:sts::{TOOLING}:assumed-role/ferry-orchestrator/ferry-shop-doctor")),
        ("store role", format!("arn:aws:sts::{ARTIFACTS}:assumed-role/ferry-artifacts/ferry-shop-doctor")),
        ("audit role", format!("arn:aws:sts::{SECURITY}:assumed-role/ferry-audit/ferry-shop-doctor")),
        ("build role (dev)", format!("arn:aws:sts::{DEV}:assumed-role/ferry-build/ferry-shop-doctor")),
        ("stage `staging` role", format!("arn:aws:sts::{STAGING}:assumed-role/ferry-deploy/ferry-shop-doctor")),
        ("stage `prod` role", format!("arn:aws:sts::{PROD}:assumed-role/ferry-deploy/ferry-shop-doctor")),
        ("signer role", format!("arn:aws:sts::{SECURITY}:assumed-role/ferry-signer/ferry-shop-doctor")),
    ] {
        assert_eq!(detail(name)["ok"], true, "{name}: {:#?}", detail(name));
        assert_eq!(detail(name)["detail"], arn.as_str());
    }
    assert_eq!(detail("store bucket")["ok"], true);
    assert_eq!(detail("audit bucket")["ok"], true);
    let kms = detail("KMS signing key");
    assert_eq!(kms["ok"], false);
    assert!(!kms["hints"].as_array().unwrap().is_empty(), "{kms:#?}");
    let human: Run = {
        let mut c = std::process::Command::new(FERRY);
        base(&mut c);
        c.args(["doctor", "shop-aws.yaml"]).output().unwrap().into()
    };
    assert!(human.stdout.contains(&format!("→  arn:aws:sts::{PROD}:assumed-role/ferry-deploy/ferry-shop-doctor")), "{}", human.stdout);
}

#[test]
fn the_s3_action_copies_the_release_into_the_stage_account_tagged_and_verified() {
    let w = AwsWorld::new();
    w.write_project("");
    let site = unique("site");
    w.create_bucket(STAGING, "ferry-deploy", &site);
    w.set_deploy(
        "staging",
        &format!("    tags: {{environment: staging}}\n    deploy:\n      - type: s3\n        bucket: {site}\n        prefix: web\n"),
    );
    let yaml = std::fs::read_to_string(w.path("pipeline.yaml")).unwrap().replace("aws:\n", "tags: {team: shop}\naws:\n");
    std::fs::write(w.path("pipeline.yaml"), yaml).unwrap();
    let ci = w.role(TOOLING, "ci", "github-run-5");
    let id = w.release(&ci);
    let r = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert!(r.stdout.contains("promoted"), "{}", r.stdout);
    let s3 = w.s3(&w.role(STAGING, "ferry-deploy", "inspect"));
    let body = w.rt.block_on(s3.get_object().bucket(&site).key("web/out/app.bin").send()).unwrap();
    assert_eq!(w.rt.block_on(body.body.collect()).unwrap().into_bytes().as_ref(), b"version one\n");
    let tags = w.rt.block_on(s3.get_object_tagging().bucket(&site).key("web/out/app.bin").send()).unwrap();
    let tags: BTreeMap<String, String> = tags.tag_set().iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    assert_eq!(tags.get("ferry:release"), Some(&id));
    assert_eq!(tags.get("ferry:stage").map(String::as_str), Some("staging"));
    assert_eq!(tags.get("team").map(String::as_str), Some("shop"));
    assert_eq!(tags.get("environment").map(String::as_str), Some("staging"));
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let end = shown["events"].as_array().unwrap().iter().find(|e| e["kind"] == "deploy_end").unwrap().clone();
    assert!(end["details"]["detail"].as_str().unwrap().contains("digests verified"), "{end:#}");
}

const TEMPLATE: &str = r#"Parameters:
  Release:
    Type: String
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: shop-orders
Outputs:
  QueueArn:
    Value: !GetAtt Queue.Arn
  Release:
    Value: !Ref Release
"#;

#[test]
fn the_cloudformation_action_creates_then_updates_a_stack_through_change_sets_tagged_with_the_changes_recorded() {
    let w = AwsWorld::new();
    w.write_project("");
    let stack = w.deploy_template("staging");
    let ci = w.role(TOOLING, "ci", "github-run-6");
    let a = w.release(&ci);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &a, "--to", "staging"]).expect(0);
    let cfn = aws_sdk_cloudformation::Client::new(&w.role(STAGING, "ferry-deploy", "inspect"));
    let describe = |w: &AwsWorld| w.rt.block_on(cfn.describe_stacks().stack_name(&stack).send()).unwrap().stacks()[0].clone();
    let s = describe(&w);
    assert_eq!(s.stack_status().unwrap().as_str(), "CREATE_COMPLETE");
    // (moto does not fill a stack's outputs after a change set runs; AWS does, and ferry
    // records them: see `DeployReport::outputs`.)
    let created = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &a, "--output", "json"]).expect(0).json();
    let end = created["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "deploy_end").unwrap().clone();
    assert_eq!(end["details"]["output"], "Add Queue AWS::SQS::Queue", "the change set's summary is recorded: {end:#}");
    let tags: BTreeMap<String, String> = s.tags().iter().map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned())).collect();
    assert_eq!(tags.get("ferry:release"), Some(&a));
    assert_eq!(tags.get("ferry:stage").map(String::as_str), Some("staging"));

    // A new release updates the stack through a change set; its outputs are captured.
    std::fs::write(w.path("app/src.txt"), "version two\n").unwrap();
    let b = w.ferry(&ci, &["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &b, "--to", "staging"]).expect(0);
    let s = describe(&w);
    assert_eq!(s.stack_status().unwrap().as_str(), "UPDATE_COMPLETE");
    assert!(s.parameters().iter().any(|p| p.parameter_key() == Some("Release") && p.parameter_value() == Some(b.as_str())));
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &b, "--output", "json"]).expect(0).json();
    let end = shown["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "deploy_end").unwrap().clone();
    assert!(end["details"]["detail"].as_str().unwrap().starts_with(&format!("stack `{stack}` UPDATE_COMPLETE")), "{end:#}");

    // The same release again changes nothing: that is not a failure.
    let again = w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &b, "--to", "staging", "--redeploy"]).expect(0);
    assert!(again.stdout.contains("promoted"), "{}", again.stdout);
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &b, "--output", "json"]).expect(0).json();
    let end = shown["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "deploy_end").unwrap().clone();
    assert_eq!(end["details"]["detail"], format!("stack `{stack}`: no changes"));
}

/// What a build's `docker push` does, with boto3: upload the config and layer blobs to the
/// central repository (artifacts account, through a role the build may assume there), then
/// put the manifest under a tag. ECR's digest is the manifest's sha256.
const PUSH: &str = r#"import boto3, hashlib, json, sys
account, repo, tag = sys.argv[1:4]
c = boto3.client('sts').assume_role(RoleArn=f'arn:aws:iam::{account}:role/ci-push', RoleSessionName='push')['Credentials']
ecr = boto3.client('ecr', aws_access_key_id=c['AccessKeyId'], aws_secret_access_key=c['SecretAccessKey'], aws_session_token=c['SessionToken'])
config, layer = b'{"architecture":"amd64","os":"linux"}', open('out/app.bin', 'rb').read()
d = lambda b: 'sha256:' + hashlib.sha256(b).hexdigest()
for blob in (config, layer):
    u = ecr.initiate_layer_upload(repositoryName=repo)['uploadId']
    ecr.upload_layer_part(repositoryName=repo, uploadId=u, partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob)
    ecr.complete_layer_upload(repositoryName=repo, uploadId=u, layerDigests=[d(blob)])
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(layer), "size": len(layer)}]})
ecr.put_image(repositoryName=repo, imageManifest=manifest, imageDigest=d(manifest.encode()), imageTag=tag)
"#;

#[test]
fn an_image_built_once_is_signed_by_digest_and_promoted_with_a_codepipeline_run_in_the_stage_account() {
    use aws_sdk_ecr::primitives::Blob;
    use aws_sdk_ecr::types::ImageIdentifier;

    let w = AwsWorld::new();
    w.write_project("");
    let repo = unique("shop/web");
    let legacy = unique("legacy");
    let central = aws_sdk_ecr::Client::new(&w.role(ARTIFACTS, "setup", "setup"));
    let staging = aws_sdk_ecr::Client::new(&w.role(STAGING, "setup", "setup"));
    w.rt.block_on(central.create_repository().repository_name(&repo).send()).unwrap();
    w.rt.block_on(staging.create_repository().repository_name(&repo).send()).unwrap();
    // moto cannot hand out layer downloads (`GetDownloadUrlForLayer`): the stage repository
    // holds the blobs already, so the promotion copies the manifest (see mocks.rs for blobs).
    for blob in [b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec(), b"version one\n".to_vec()] {
        let up = w.rt.block_on(staging.initiate_layer_upload().repository_name(&repo).send()).unwrap();
        let id = up.upload_id().unwrap();
        let part = staging.upload_layer_part().repository_name(&repo).upload_id(id).part_first_byte(0);
        let part = part.part_last_byte(i64::try_from(blob.len()).unwrap() - 1).layer_part_blob(Blob::new(blob.clone()));
        w.rt.block_on(part.send()).unwrap();
        let digest = format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&blob)));
        w.rt.block_on(staging.complete_layer_upload().repository_name(&repo).upload_id(id).layer_digests(digest).send()).unwrap();
    }
    create_codepipeline(&w, STAGING, &legacy);

    std::fs::write(w.path("app/push.py"), PUSH).unwrap();
    let py = venv_python();
    let yaml = std::fs::read_to_string(w.path("pipeline.yaml")).unwrap();
    let yaml = yaml
        .replace("  command: sh build.sh\n", &format!("  command: sh build.sh && {} push.py {ARTIFACTS} {repo} build-7\n", py.display()))
        .replace(
            "      path: out/app.bin\n",
            &format!("      path: out/app.bin\n  images:\n    - name: web\n      repository: {repo}\n      tag: build-7\n"),
        );
    std::fs::write(w.path("pipeline.yaml"), yaml).unwrap();
    let actions = format!(
        "    deploy:\n      - type: ecr\n        image: web\n      - type: codepipeline\n        pipeline: {legacy}\n        variables:\n          IMAGE: \"${{image.web.digest}}\"\n          RELEASE: \"${{release}}\"\n        timeout: 1m\n      - type: command\n        run: echo \"$FERRY_IMAGE_WEB\" >> deploys.log\n"
    );
    w.set_deploy("staging", &actions);

    let ci = w.role(TOOLING, "ci", "github-run-8");
    w.ferry(&ci, &["validate", "pipeline.yaml"]).expect(0);
    let id = w.release(&ci);
    let pushed =
        w.rt.block_on(
            central.batch_get_image().repository_name(&repo).image_ids(ImageIdentifier::builder().image_tag("build-7").build()).send(),
        )
        .unwrap();
    let manifest = pushed.images()[0].image_manifest().unwrap().to_owned();
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(manifest.as_bytes()));

    // The release records the image by digest and the signature covers it.
    let verified = w.ferry(&ci, &["verify", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let image = &verified["images"][0];
    assert_eq!(image["digest"], digest.as_str(), "{verified:#}");
    assert_eq!(image["repository"], format!("{ARTIFACTS}.dkr.ecr.eu-west-1.amazonaws.com/{repo}"));
    assert_eq!(image["tag"], "build-7");

    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    // The stage account's repository has exactly those bytes under the release and stage tags.
    for tag in [id.as_str(), "staging"] {
        let got = w
            .rt
            .block_on(staging.batch_get_image().repository_name(&repo).image_ids(ImageIdentifier::builder().image_tag(tag).build()).send())
            .unwrap();
        assert_eq!(got.images().len(), 1, "tag {tag}");
        assert_eq!(got.images()[0].image_manifest(), Some(manifest.as_str()));
    }
    // Later actions see the image pinned by digest.
    assert_eq!(w.deploys(), vec![format!("{ARTIFACTS}.dkr.ecr.eu-west-1.amazonaws.com/{repo}@sha256:{digest}")]);
    // The CodePipeline execution ran in the staging account with the release's values.
    let cp = aws_sdk_codepipeline::Client::new(&w.role(STAGING, "setup", "inspect"));
    let runs = w.rt.block_on(cp.list_pipeline_executions().pipeline_name(&legacy).send()).unwrap();
    let run = runs.pipeline_execution_summaries()[0].pipeline_execution_id().unwrap().to_owned();
    let exec = w.rt.block_on(cp.get_pipeline_execution().pipeline_name(&legacy).pipeline_execution_id(&run).send()).unwrap();
    let vars: BTreeMap<String, String> = exec
        .pipeline_execution()
        .unwrap()
        .variables()
        .iter()
        .map(|v| (v.name().unwrap().to_owned(), v.resolved_value().unwrap().to_owned()))
        .collect();
    assert_eq!(vars["RELEASE"], id);
    assert_eq!(vars["IMAGE"], format!("sha256:{digest}"));
    // Both outcomes are in the audit log.
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let ends: Vec<String> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "deploy_end")
        .map(|e| e["details"]["detail"].as_str().unwrap().to_owned())
        .collect();
    assert!(ends[0].contains(&format!("sha256:{digest} promoted to {STAGING}.dkr.ecr.eu-west-1.amazonaws.com/{repo}")), "{ends:?}");
    assert!(ends[0].contains("digest re-checked"), "{ends:?}");
    assert!(ends[1].contains(&format!("CodePipeline `{legacy}` execution {run} succeeded")), "{ends:?}");
}

/// A two-stage CodePipeline pipeline (V2, so it takes variables) in `account`, with the
/// service role moto checks for.
fn create_codepipeline(w: &AwsWorld, account: &str, name: &str) {
    boto(
        w,
        account,
        &format!(
            "trust={{'Version':'2012-10-17','Statement':[{{'Effect':'Allow','Principal':{{'Service':'codepipeline.amazonaws.com'}},'Action':'sts:AssumeRole'}}]}}\n\
             arn=boto3.client('iam',**kw).create_role(RoleName='{name}-role',AssumeRolePolicyDocument=json.dumps(trust))['Role']['Arn']\n\
             act=lambda n,c:{{'name':n,'actionTypeId':{{'category':c,'owner':'AWS','provider':'S3','version':'1'}}}}\n\
             boto3.client('codepipeline',**kw).create_pipeline(pipeline={{'name':'{name}','roleArn':arn,'pipelineType':'V2',\
             'artifactStore':{{'type':'S3','location':'artifacts'}},\
             'stages':[{{'name':'Source','actions':[act('Source','Source')]}},{{'name':'Deploy','actions':[act('Deploy','Deploy')]}}]}})\n"
        ),
    );
}

#[test]
fn the_approver_of_a_cloudformation_stage_sees_the_change_set_before_approving() {
    let w = AwsWorld::new();
    w.write_project("");
    let stack = w.deploy_template("prod");
    let ci = w.role(TOOLING, "ci", "github-run-9");
    // Waiting for approval, ferry has CloudFormation prepare (and discard) the change set.
    let id = w.at_prod_gate(&ci);
    let alice = w.role(TOOLING, "release-approvers", "alice");
    let refused = w.ferry(&alice, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod"]).expect(2);
    assert!(refused.stderr.contains(&format!("  change set    stack `{stack}`: Add Queue AWS::SQS::Queue")), "{}", refused.stderr);
    let approved =
        w.ferry(&alice, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes", "--output", "json"]).expect(0);
    assert_eq!(approved.json()["summary"]["change_sets"], serde_json::json!([format!("stack `{stack}`: Add Queue AWS::SQS::Queue")]));
    // Nothing was deployed by the preview: the stack is created only after approval.
    let bob = w.role(TOOLING, "release-approvers", "bob");
    w.ferry(&bob, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(0);
    let cfn = aws_sdk_cloudformation::Client::new(&w.role(PROD, "ferry-deploy", "inspect"));
    let s = w.rt.block_on(cfn.describe_stacks().stack_name(&stack).send()).unwrap().stacks()[0].clone();
    assert_eq!(s.stack_status().unwrap().as_str(), "CREATE_COMPLETE");
}

/// Runs a Python snippet with boto3 as `setup` in `account` (clients get `kw`).
fn boto(w: &AwsWorld, account: &str, body: &str) -> String {
    let script = format!(
        "import boto3, json\nc=boto3.client('sts').assume_role(RoleArn='arn:aws:iam::{account}:role/setup',RoleSessionName='setup')['Credentials']\nkw=dict(aws_access_key_id=c['AccessKeyId'],aws_secret_access_key=c['SecretAccessKey'],aws_session_token=c['SessionToken'])\n{body}"
    );
    let out = std::process::Command::new(venv_python())
        .arg("-c")
        .arg(script)
        .envs(w.env_for(&w.base))
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn notifications_reach_a_webhook_whose_url_is_in_ssm_and_an_sns_topic() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let hook = rt.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("POST")).respond_with(wiremock::ResponseTemplate::new(200)).mount(&server).await;
        server
    });
    let w = AwsWorld::new();
    w.write_project("");
    let (param, topic_name) = (format!("/ferry/{}", unique("hook")), unique("ferry-shop"));
    // In the tooling account, where the orchestrator reads and publishes: the secret URL, a
    // topic, and a queue subscribed to it (to see what was published).
    let topic = boto(
        &w,
        TOOLING,
        &format!(
            "ssm=boto3.client('ssm',**kw); sns=boto3.client('sns',**kw); sqs=boto3.client('sqs',**kw)\n\
             ssm.put_parameter(Name='{param}',Value='{url}/teams',Type='SecureString')\n\
             t=sns.create_topic(Name='{topic_name}')['TopicArn']\n\
             q=sqs.create_queue(QueueName='{topic_name}')['QueueUrl']\n\
             qa=sqs.get_queue_attributes(QueueUrl=q,AttributeNames=['QueueArn'])['Attributes']['QueueArn']\n\
             sns.subscribe(TopicArn=t,Protocol='sqs',Endpoint=qa)\n\
             print(t)",
            url = hook.uri()
        ),
    );
    let topic = topic.trim();
    let yaml = std::fs::read_to_string(w.path("pipeline.yaml")).unwrap();
    let yaml = yaml.replace(
        "audit:\n",
        &format!("notifications:\n  - {{type: teams, url_ssm: \"{param}\", on: [approval_needed]}}\n  - {{type: sns, topic: \"{topic}\"}}\naudit:\n"),
    );
    std::fs::write(w.path("pipeline.yaml"), yaml).unwrap();
    let ci = w.role(TOOLING, "ci", "github-run-10");
    let id = w.at_prod_gate(&ci);

    let received = rt.block_on(hook.received_requests()).unwrap();
    assert_eq!(received.len(), 1, "the Teams webhook from SSM heard of the approval once");
    let card: serde_json::Value = serde_json::from_slice(&received[0].body).unwrap();
    assert!(card.to_string().contains(&format!("ferry approve pipeline.yaml --release {id} --stage prod")), "{card:#}");

    let messages = boto(
        &w,
        TOOLING,
        &format!(
            "sqs=boto3.client('sqs',**kw); q=sqs.get_queue_url(QueueName='{topic_name}')['QueueUrl']\n\
             out=[]\n\
             for _ in range(5):\n    out+=sqs.receive_message(QueueUrl=q,MaxNumberOfMessages=10).get('Messages',[])\n\
             print(json.dumps([json.loads(json.loads(m['Body'])['Message'])['event'] for m in out]))"
        ),
    );
    let events: Vec<String> = serde_json::from_str(messages.trim()).unwrap();
    let mut events = events;
    events.sort();
    assert_eq!(events, ["approval_needed", "promotion_succeeded"], "SNS got staging's success and prod's approval request");
}

#[test]
fn an_approval_verifies_the_release_once_and_audits_that_it_did() {
    let w = AwsWorld::new();
    w.write_project("");
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let id = w.at_prod_gate(&ci);
    w.proxy.take_seen();
    let alice = w.role(TOOLING, "release-approvers", "alice");
    w.ferry(&alice, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    let reads = w.proxy.take_seen().iter().filter(|s| s.method == "GET" && s.path.contains("/artifacts/sha256/")).count();
    assert_eq!(reads, 1, "the one artifact is read (and re-hashed) once per approval");
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let verified_for_approval = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "verify_ok" && e["details"]["purpose"] == "approval for prod")
        .count();
    assert_eq!(verified_for_approval, 1);
}
