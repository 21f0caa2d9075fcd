//! The least-privilege world (tests/conformance/moto_iam_setup.py): a fresh moto server whose
//! roles carry the policies of `bootstrap/*.yaml`, with IAM enforcement on, and a project acting
//! as the CI user — what a missing permission looks like, and what CI may not reach.

use std::collections::BTreeMap;

use ferry_testkit::Moto;

use crate::aws::{ARTIFACTS, DEV, PROD, SECURITY, STAGING, TOOLING, unique};
use crate::support::{FERRY, Run, repo_root, venv_python};

/// A fresh moto server with least-privilege roles and IAM enforcement on (see
/// tests/conformance/moto_iam_setup.py), and a project acting as the CI user.
pub(crate) struct Enforced {
    pub(crate) moto: Moto,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) store: String,
    /// What the set-up printed (keys, the approver's key and session).
    pub(crate) setup: serde_json::Value,
}

impl Enforced {
    pub(crate) fn new(deny_releases: bool) -> Self {
        Self::with_flags(if deny_releases { &["--deny-releases"] } else { &[] })
    }

    /// The world with the set-up's `flags` (`--deny-releases`, `--gatekeeper`).
    pub(crate) fn with_flags(flags: &[&str]) -> Self {
        let moto = Moto::start();
        let (store, audit) = (unique("store"), unique("audit"));
        let mut setup = std::process::Command::new(venv_python());
        setup
            .arg(repo_root().join("tests/conformance/moto_iam_setup.py"))
            .args([moto.endpoint(), store.clone(), audit.clone()])
            .args(flags);
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
        self.command_with(env, args).output().unwrap().into()
    }

    /// The command `ferry_with` runs, for one that keeps running (`ferry ui`).
    pub(crate) fn command_with(&self, env: &BTreeMap<String, String>, args: &[&str]) -> std::process::Command {
        let mut c = std::process::Command::new(FERRY);
        c.args(args).current_dir(self.dir.path()).env("FERRY_HOME", self.dir.path().join("home")).env("FERRY_LOG", "warn");
        for v in ["AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "FERRY_ACTOR", "FERRY_OUTPUT"] {
            c.env_remove(v);
        }
        c.envs(env);
        c
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
