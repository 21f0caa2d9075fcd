//! Protected stages on AWS (issue #12): prod's deploy role trusts only the gatekeeper, which
//! runs as a real Lambda function binary under cargo-lambda's emulator, with its own execution
//! role's credentials, against moto with IAM enforcement (tests/conformance/moto_iam_setup.py
//! `--gatekeeper`). CI may invoke the function and may not assume prod's role; what it gets
//! from the function depends on the published trust root and the store alone.

use std::time::Duration;

use aws_config::SdkConfig;
use ferry_core::gatekeeper::wire;
use ferry_core::ports::Protected;
use ferry_testkit::lambda::Emulator;

use crate::aws::{ARTIFACTS, PROD, SECURITY, TOOLING};
use crate::beyond_ci::{approved_by_alice, as_identity, assume, ci_config};
use crate::enforced::Enforced;
use crate::support::{FERRY, venv_python};

/// The least-privilege world with prod protected, alice its approver, the root published by
/// the administrator, and the gatekeeper function running.
struct World {
    e: Enforced,
    gatekeeper: Emulator,
    rt: tokio::runtime::Runtime,
}

impl World {
    fn new() -> Self {
        let mut e = Enforced::with_flags(&["--gatekeeper"]);
        approved_by_alice(&e, "policy:\n  protected_stages: [prod]\n");
        let python = venv_python();
        let yaml = std::fs::read_to_string(e.dir.path().join("pipeline.yaml"))
            .unwrap()
            .replace("  orchestrator: {account: tooling}\n", "  orchestrator: {account: tooling}\n  gatekeeper: ferry-gatekeeper\n")
            // Prod's deploy says who it acts as there: the credentials the gatekeeper handed out.
            .replace(
                "run: echo prod >> deploys.log",
                &format!(
                    "run: \"{} -c 'import boto3; print(boto3.client(\\\"sts\\\").get_caller_identity()[\\\"Arn\\\"])' >> deploys.log\"",
                    python.display()
                ),
            );
        std::fs::write(e.dir.path().join("pipeline.yaml"), yaml).unwrap();
        let admin = as_identity(&e, &e.setup["admin"]);
        e.ferry_with(&admin, &["trust", "publish", "pipeline.yaml"]).expect(0);
        let session = &e.setup["gatekeeper_session"];
        let audit = e.setup["audit_bucket"].as_str().unwrap().to_owned();
        let env = [
            ("AWS_ACCESS_KEY_ID", session["access_key_id"].as_str().unwrap().to_owned()),
            ("AWS_SECRET_ACCESS_KEY", session["secret_access_key"].as_str().unwrap().to_owned()),
            ("AWS_SESSION_TOKEN", session["session_token"].as_str().unwrap().to_owned()),
            ("AWS_REGION", "eu-west-1".to_owned()),
            ("AWS_ENDPOINT_URL", e.moto.endpoint()),
            ("FERRY_STORE_BUCKET", e.store.clone()),
            ("FERRY_STORE_PREFIX", "shop".to_owned()),
            ("FERRY_STORE_ROLE", format!("arn:aws:iam::{ARTIFACTS}:role/ferry-gatekeeper-reader")),
            ("FERRY_AUDIT_BUCKET", audit),
            ("FERRY_AUDIT_PREFIX", "shop".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let binary = std::path::Path::new(FERRY).with_file_name("ferry-gatekeeper");
        let gatekeeper = Emulator::start(&binary, "ferry-gatekeeper", &env);
        e.env.insert("AWS_ENDPOINT_URL_LAMBDA".into(), gatekeeper.endpoint());
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        World { e, gatekeeper, rt }
    }

    fn built_and_in_staging(&self) -> String {
        let id = self.e.ferry(&["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
        self.e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
        id
    }

    fn approve_as_alice(&self, id: &str) {
        let alice = as_identity(&self.e, &self.e.setup["alice_session"]);
        self.e.ferry_with(&alice, &["approve", "pipeline.yaml", "--release", id, "--stage", "prod", "--yes"]).expect(0);
    }

    /// CI skipping ferry: asks the function itself, as the orchestrator, with its own proof.
    fn ask_directly(&self, release: &str) -> ferry_core::Error {
        let ci = self.ci();
        let orchestrator = assume(&self.rt, &ci, TOOLING, "ferry-orchestrator");
        let lambda = orchestrator.to_builder().endpoint_url(self.gatekeeper.endpoint()).build();
        let gk = ferry_aws::gatekeeper::Gatekeeper::new(&"ferry-gatekeeper".parse().unwrap(), "eu-west-1", &lambda, &ci);
        let ask = Protected { pipeline: "shop".parse().unwrap(), release: release.parse().unwrap(), stage: "prod".parse().unwrap() };
        self.rt.block_on(gk.ask(&ask, Duration::from_secs(900))).expect_err("the gatekeeper handed out prod's credentials")
    }

    /// `request` sent to the function as the orchestrator, as it is (CI crafting its own).
    fn invoke(&self, request: &wire::Request) -> serde_json::Value {
        let orchestrator = assume(&self.rt, &self.ci(), TOOLING, "ferry-orchestrator");
        let lambda = orchestrator.to_builder().endpoint_url(self.gatekeeper.endpoint()).build();
        let payload = aws_sdk_lambda::primitives::Blob::new(serde_json::to_vec(request).unwrap());
        let out = self
            .rt
            .block_on(aws_sdk_lambda::Client::new(&lambda).invoke().function_name("ferry-gatekeeper").payload(payload).send())
            .unwrap();
        assert!(out.function_error().is_none(), "{out:?}");
        serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap()
    }

    fn ci(&self) -> SdkConfig {
        ci_config(&self.e, &self.rt)
    }

    /// What CI reaches through its chain: the store role in the artifacts account.
    fn store_as_ci(&self) -> aws_sdk_s3::Client {
        let store = assume(&self.rt, &assume(&self.rt, &self.ci(), TOOLING, "ferry-orchestrator"), ARTIFACTS, "ferry-artifacts");
        aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&store).force_path_style(true).build())
    }

    fn deploys(&self) -> String {
        std::fs::read_to_string(self.e.dir.path().join("deploys.log")).unwrap_or_default()
    }

    /// The gatekeeper's own log (`shop/gatekeeper/` in the audit bucket), read as the setup
    /// identity with enforcement off for the read.
    fn gatekeeper_decisions(&self) -> Vec<serde_json::Value> {
        self.e.moto.enforce_iam(false);
        let out = std::process::Command::new(venv_python())
            .args(["-c", &format!(
                "import boto3,sys\nc=boto3.client('sts',endpoint_url='{e}',region_name='eu-west-1',aws_access_key_id='test',aws_secret_access_key='test').assume_role(RoleArn='arn:aws:iam::{SECURITY}:role/setup',RoleSessionName='look')['Credentials']\ns3=boto3.client('s3',endpoint_url='{e}',region_name='eu-west-1',aws_access_key_id=c['AccessKeyId'],aws_secret_access_key=c['SecretAccessKey'],aws_session_token=c['SessionToken'])\nfor o in s3.list_objects_v2(Bucket='{b}',Prefix='shop/gatekeeper/').get('Contents',[]):\n  sys.stdout.write(s3.get_object(Bucket='{b}',Key=o['Key'])['Body'].read().decode()+'\\n')",
                e = self.e.moto.endpoint(),
                b = self.e.setup["audit_bucket"].as_str().unwrap()
            )])
            .output()
            .unwrap();
        self.e.moto.enforce_iam(true);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| v["body"].clone())
            .filter(|v| v["kind"] == "gatekeeper_decision")
            .collect();
        events.sort_by_key(|v| v["seq"].as_u64());
        events.dedup_by_key(|v| v["seq"].as_u64());
        events
    }
}

#[test]
fn a_release_with_its_quorum_reaches_prod_only_through_the_gatekeeper_whose_credentials_act_there() {
    let w = World::new();
    // CI's own chain may not assume prod's deploy role (the orchestrator's policy denies it).
    let orchestrator = assume(&w.rt, &w.ci(), TOOLING, "ferry-orchestrator");
    let direct = w.rt.block_on(
        aws_sdk_sts::Client::new(&orchestrator)
            .assume_role()
            .role_arn(format!("arn:aws:iam::{PROD}:role/ferry-deploy"))
            .role_session_name("ci")
            .send(),
    );
    assert!(format!("{direct:?}").contains("AccessDenied"), "{direct:?}");

    let id = w.built_and_in_staging();
    w.e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    w.approve_as_alice(&id);
    // The approvals answer CI's request: alice, promoting it herself, passes ferry's own gate,
    // and the gatekeeper (which sees who asks) refuses her — exit 4, with its reason.
    let alice = as_identity(&w.e, &w.e.setup["alice_session"]);
    let refused = w.e.ferry_with(&alice, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(4);
    assert!(
        refused.stderr.contains("the gatekeeper refuses the credentials of `prod`: the approval request of `prod` was made by `arn:aws:iam::123456789012:user/ci`, not by the caller `arn:aws:sts::111111111111:assumed-role/release-approvers/alice`"),
        "{}",
        refused.stderr
    );
    assert!(!w.deploys().contains(PROD), "{}", w.deploys());
    w.e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(0);
    let deploys = w.deploys();
    assert!(
        deploys.contains(&format!("arn:aws:sts::{PROD}:assumed-role/ferry-deploy/")),
        "prod's deploy ran as prod's role, handed out by the gatekeeper: {deploys}"
    );
    let decisions = w.gatekeeper_decisions();
    let admitted = decisions
        .iter()
        .rfind(|d| d["details"]["answer"]["decision"] == "admit")
        .unwrap_or_else(|| panic!("the admission is in its log: {decisions:?}"));
    assert_eq!(admitted["actor"], format!("arn:aws:sts::{SECURITY}:assumed-role/ferry-gatekeeper/ferry-gatekeeper"));
    assert_eq!(admitted["details"]["caller"], "arn:aws:iam::123456789012:user/ci");
    assert_eq!(admitted["details"]["answer"]["approved_by"], serde_json::json!(["alice"]));
    assert_eq!(admitted["details"]["granted"]["role"], format!("arn:aws:iam::{PROD}:role/ferry-deploy"));
    // An auditor's `ferry audit verify` checks its chain too; CI, through the audit role it
    // reaches, can add nothing to it.
    let verified = w.e.ferry(&["audit", "verify", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let log = &verified["gatekeeper"];
    assert_eq!((log["admitted"].as_u64(), log["pending"].as_u64(), log["refused"].as_u64()), (Some(1), Some(0), Some(1)), "{verified:#}");
    assert!(log["problem"].is_null(), "{verified:#}");
    let audit = assume(&w.rt, &orchestrator, SECURITY, "ferry-audit");
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&audit).force_path_style(true).build());
    let bucket = w.e.setup["audit_bucket"].as_str().unwrap();
    let forged = w.rt.block_on(s3.put_object().bucket(bucket).key("shop/gatekeeper/events/99.json").body(b"{}".to_vec().into()).send());
    assert!(format!("{forged:?}").contains("AccessDenied"), "{forged:?}");
}

#[test]
fn the_gatekeeper_judges_by_the_published_root_and_the_store_alone_and_audits_each_refusal() {
    let w = World::new();
    let id = w.built_and_in_staging();
    w.e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);

    // CI pins another key as alice's in its checkout: ferry refuses the file, and skipping
    // ferry to ask the function itself gets nothing either — it never reads the file.
    let honest = std::fs::read_to_string(w.e.dir.path().join("pipeline.yaml")).unwrap();
    std::fs::write(w.e.dir.path().join("pipeline.yaml"), honest.replace("public_key: keys/alice.pem", "public_key: keys/shop.pem"))
        .unwrap();
    let edited = w.e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(4);
    assert!(edited.stderr.contains("disagrees with the trust root"), "{}", edited.stderr);
    std::fs::write(w.e.dir.path().join("pipeline.yaml"), &honest).unwrap();
    let pending = w.ask_directly(&id);
    assert_eq!(pending.kind, ferry_core::ErrorKind::Pending, "{pending}");
    assert!(pending.message.contains("0 of 1 approvals"), "{pending}");

    // A release that never reached staging: no attestation of it there.
    let skipped = w.e.ferry(&["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    let unproven = w.ask_directly(&skipped);
    assert_eq!(unproven.kind, ferry_core::ErrorKind::Verification, "{unproven}");
    assert!(unproven.message.contains("has not been proven to succeed in `staging`"), "{unproven}");

    // Alice's approval of `id`, copied by CI (which may write the store) onto another release
    // waiting in prod: it is bound to `id` and counts for nothing else.
    w.approve_as_alice(&id);
    std::fs::write(w.e.dir.path().join("app/src.txt"), "version two\n").unwrap();
    let other = w.built_and_in_staging();
    w.e.ferry(&["promote", "pipeline.yaml", "--release", &other, "--to", "prod"]).expect(3);
    let s3 = w.store_as_ci();
    let listed = w.rt.block_on(s3.list_objects_v2().bucket(&w.e.store).prefix(format!("shop/approvals/shop/{id}/prod/")).send()).unwrap();
    let copied = listed.contents().len();
    assert!(copied >= 1, "alice's decision is in the store");
    for o in listed.contents() {
        let key = o.key().unwrap();
        let body = w.rt.block_on(s3.get_object().bucket(&w.e.store).key(key).send()).unwrap().body.collect();
        let body = w.rt.block_on(body).unwrap().into_bytes();
        let to = key.replace(&id, &other);
        w.rt.block_on(s3.put_object().bucket(&w.e.store).key(to).body(body.into()).send()).unwrap();
    }
    let replayed = w.ask_directly(&other);
    assert_eq!(replayed.kind, ferry_core::ErrorKind::Pending, "{replayed}");

    // The approved release's manifest, rewritten in the store by CI.
    let key = format!("shop/releases/{id}/manifest.json");
    let manifest = w.rt.block_on(w.rt.block_on(s3.get_object().bucket(&w.e.store).key(&key).send()).unwrap().body.collect()).unwrap();
    let forged = String::from_utf8(manifest.into_bytes().to_vec()).unwrap().replace("\"shop\"", "\"shop\" ");
    w.rt.block_on(s3.put_object().bucket(&w.e.store).key(&key).body(forged.into_bytes().into()).send()).unwrap();
    let tampered = w.ask_directly(&id);
    assert_eq!(tampered.kind, ferry_core::ErrorKind::Verification, "{tampered}");
    assert!(tampered.message.contains("does not hash to release id"), "{tampered}");

    // The administrator freezes prod (root serial 2): closed for every release.
    let frozen = honest.replace(
        "approval: {required: 1}, deploy:",
        "approval: {required: 1}, gates: [{type: window, freeze: [{from: \"2000-01-01T00:00:00Z\", to: \"2100-01-01T00:00:00Z\", reason: year-end freeze}]}], deploy:",
    );
    std::fs::write(w.e.dir.path().join("pipeline.yaml"), frozen).unwrap();
    w.e.ferry_with(&as_identity(&w.e, &w.e.setup["admin"]), &["trust", "publish", "pipeline.yaml"]).expect(0);
    let closed = w.ask_directly(&other);
    assert_eq!(closed.kind, ferry_core::ErrorKind::Verification, "{closed}");
    assert!(closed.message.contains("year-end freeze"), "{closed}");

    assert!(!w.deploys().contains(PROD), "nothing ran in prod: {}", w.deploys());
    // A proof of who asks, made for one request, sent with another: STS does not accept it.
    let ci = w.ci();
    let request = |release: &str| wire::Request {
        version: wire::VERSION,
        pipeline: "shop".parse().unwrap(),
        release: release.parse().unwrap(),
        stage: "prod".parse().unwrap(),
        duration_seconds: 900,
        identity: Default::default(),
    };
    let sts = ferry_aws::identity::sts_endpoint(&ci, "eu-west-1");
    let proof = w.rt.block_on(ferry_aws::identity::prove(&ci, "eu-west-1", &sts, wire::BINDING_HEADER, &request(&id).binding())).unwrap();
    let replayed = w.invoke(&wire::Request { identity: proof, ..request(&other) });
    assert_eq!(replayed["decision"], "refuse", "{replayed}");
    assert!(replayed["reason"].as_str().unwrap().contains("SignatureDoesNotMatch"), "{replayed}");
    assert!(replayed["credentials"].is_null() && replayed["caller"].is_null(), "{replayed}");

    let decisions = w.gatekeeper_decisions();
    let answers: Vec<&str> = decisions.iter().map(|d| d["details"]["answer"]["decision"].as_str().unwrap()).collect();
    assert_eq!(answers, ["pending", "refuse", "pending", "refuse", "refuse", "refuse"], "{decisions:?}");
    let (proven, unproven) = decisions.split_at(5);
    assert!(proven.iter().all(|d| d["details"]["granted"].is_null() && d["details"]["caller"] == "arn:aws:iam::123456789012:user/ci"));
    assert!(unproven[0]["details"]["caller"].is_null() && unproven[0]["details"]["granted"].is_null(), "{:?}", unproven[0]);
    assert!(decisions.iter().all(|d| d["actor"] == format!("arn:aws:sts::{SECURITY}:assumed-role/ferry-gatekeeper/ferry-gatekeeper")));
}

#[test]
fn doctor_says_neither_the_orchestrator_nor_the_caller_reaches_prod_and_the_gatekeeper_answers() {
    let w = World::new();
    let v = w.e.ferry(&["doctor", "pipeline.yaml", "--output", "json"]).json();
    let checks = v["checks"].as_array().unwrap();
    let check = |name: &str| checks.iter().find(|c| c["check"] == name).unwrap_or_else(|| panic!("no check {name}: {checks:#?}")).clone();
    for who in ["the orchestrator", "the caller"] {
        let c = check(&format!("protected stage `prod`: not reachable by {who}"));
        assert_eq!(c["ok"], true, "{c:#?}");
        assert!(c["detail"].as_str().unwrap().starts_with("refused (access denied"), "{c:#?}");
        assert_eq!(c["target"], format!("arn:aws:iam::{PROD}:role/ferry-deploy"));
    }
    let gk = check("protected stage `prod`: gatekeeper");
    assert_eq!(gk["ok"], true, "{gk:#?}");
    assert_eq!(gk["detail"], "`ferry-gatekeeper` answers and judges who asks");
}
