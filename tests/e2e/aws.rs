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
pub const PROD: &str = "666666666666";

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

pub(crate) fn unique(prefix: &str) -> String {
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
    let cps = &verified["checkpoints"];
    assert_eq!((cps["count"].as_u64(), cps["verified"].as_bool()), (Some(8), Some(true)), "{cps}");
    assert_eq!(cps["newest"]["seq"], verified["events"], "the last promotion's checkpoint vouches for the whole log: {cps}");
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
    // Prod is protected, but nothing here stops the orchestrator (no protected templates, no
    // enforcement) and no gatekeeper runs: doctor says so, with what to deploy.
    let direct = detail("protected stage `prod`: not reachable by the orchestrator");
    assert_eq!(direct["ok"], false);
    assert_eq!(
        direct["detail"],
        "the orchestrator assumed `arn:aws:iam::666666666666:role/ferry-deploy` directly: its gates hold only inside the ferry binary"
    );
    assert!(direct["hints"][0].as_str().unwrap().contains("Protected=true"), "{direct:#?}");
    assert_eq!(detail("protected stage `prod`: gatekeeper")["ok"], false);
    let human: Run = {
        let mut c = std::process::Command::new(FERRY);
        base(&mut c);
        c.args(["doctor", "shop-aws.yaml"]).output().unwrap().into()
    };
    assert!(human.stdout.contains(&format!("→  arn:aws:sts::{STAGING}:assumed-role/ferry-deploy/ferry-shop-doctor")), "{}", human.stdout);
}

/// Runs a Python snippet with boto3 as `setup` in `account` (clients get `kw`).
pub(crate) fn boto(w: &AwsWorld, account: &str, body: &str) -> String {
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

/// The stack the cloudformation tests deploy (an artifact of the release).
pub(crate) const TEMPLATE: &str = r#"Parameters:
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
