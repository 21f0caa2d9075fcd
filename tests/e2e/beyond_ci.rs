//! What the automation cannot do on AWS (moto with IAM enforcement and the policies of
//! `bootstrap/*.yaml`): sign with an approver's KMS key (only the approver's session can; the
//! orchestrator and every role reachable from it cannot `kms:Sign` with it), or write the trust
//! root an administrator published with the trust-admin role.

use aws_config::SdkConfig;
use aws_credential_types::Credentials;

use crate::aws::{ARTIFACTS, DEV, SECURITY, STAGING, TOOLING};
use crate::enforced::{Enforced, base64_decode};
use crate::ui::{Ui, csrf_of};

/// `config` with static credentials.
pub(crate) fn with_creds(config: &SdkConfig, id: &str, secret: &str, token: Option<String>) -> SdkConfig {
    let creds = Credentials::new(id, secret, token, None, "test");
    config.to_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(creds)).build()
}

pub(crate) fn assume(rt: &tokio::runtime::Runtime, from: &SdkConfig, account: &str, role: &str) -> SdkConfig {
    let sts = aws_sdk_sts::Client::new(from);
    let out = rt
        .block_on(sts.assume_role().role_arn(format!("arn:aws:iam::{account}:role/{role}")).role_session_name("ci").send())
        .unwrap_or_else(|e| panic!("assume {role} in {account}: {e:?}"));
    let c = out.credentials.unwrap();
    with_creds(from, &c.access_key_id, &c.secret_access_key, Some(c.session_token))
}

/// Makes prod need alice's approval, signed with her KMS key (its exported public key pinned),
/// with `extra` appended to the pipeline file.
pub(crate) fn approved_by_alice(e: &Enforced, extra: &str) {
    let alice_key = e.setup["alice_kms_key"].as_str().unwrap();
    let der = base64_decode(e.setup["alice_public_key_der"].as_str().unwrap());
    std::fs::write(e.dir.path().join("keys/alice.pem"), ferry_core::keys::PublicKey::from_spki_der(&der).unwrap().to_pem().unwrap())
        .unwrap();
    let yaml = std::fs::read_to_string(e.dir.path().join("pipeline.yaml"))
        .unwrap()
        .replace("  - {name: prod, account: prod, deploy:", "  - {name: prod, account: prod, approval: {required: 1}, deploy:")
        + &format!(
            "approvers:\n  alice:\n    public_key: keys/alice.pem\n    kms_key: \"{alice_key}\"\n    identities: [\"arn:aws:sts::{TOOLING}:assumed-role/release-approvers/alice\"]\n{extra}"
        );
    std::fs::write(e.dir.path().join("pipeline.yaml"), yaml).unwrap();
}

/// The SDK's configuration for moto, with CI's credentials.
pub(crate) fn ci_config(e: &Enforced, rt: &tokio::runtime::Runtime) -> SdkConfig {
    let base = rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(e.moto.endpoint())
            .load(),
    );
    with_creds(&base, e.setup["access_key_id"].as_str().unwrap(), e.setup["secret_access_key"].as_str().unwrap(), None)
}

/// `e`'s environment with `creds` ({access_key_id, secret_access_key, session_token?}) instead of CI's.
pub(crate) fn as_identity(e: &Enforced, creds: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    let mut env = e.env.clone();
    env.insert("AWS_ACCESS_KEY_ID".into(), creds["access_key_id"].as_str().unwrap().into());
    env.insert("AWS_SECRET_ACCESS_KEY".into(), creds["secret_access_key"].as_str().unwrap().into());
    if let Some(t) = creds["session_token"].as_str() {
        env.insert("AWS_SESSION_TOKEN".into(), t.into());
    }
    env
}

#[test]
fn no_role_the_orchestrator_reaches_can_sign_with_an_approver_key_and_the_approver_session_can() {
    let e = Enforced::new(false);
    let alice_key = e.setup["alice_kms_key"].as_str().unwrap().to_owned();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ci = ci_config(&e, &rt);
    let orchestrator = assume(&rt, &ci, TOOLING, "ferry-orchestrator");
    let mut reachable = vec![("ferry-orchestrator".to_owned(), orchestrator.clone())];
    for (account, role) in [
        (ARTIFACTS, "ferry-artifacts"),
        (SECURITY, "ferry-audit"),
        (SECURITY, "ferry-signer"),
        (DEV, "ferry-deploy"),
        (STAGING, "ferry-deploy"),
    ] {
        reachable.push((format!("{role} in {account}"), assume(&rt, &orchestrator, account, role)));
    }
    let sign = |config: &SdkConfig| {
        rt.block_on(
            aws_sdk_kms::Client::new(config)
                .sign()
                .key_id(&alice_key)
                .message(aws_sdk_kms::primitives::Blob::new(b"an approval CI wrote".to_vec()))
                .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
                .send(),
        )
        .map(|_| ())
        .map_err(|e| format!("{e:?}"))
    };
    for (who, config) in &reachable {
        let text = sign(config).expect_err(&format!("{who} signed with alice's key"));
        // Denied by the identity policy; the signer (which may sign, with its own key only:
        // on AWS its policy and alice's key policy say so) does not even find the key, which
        // is in another account.
        if who.starts_with("ferry-signer") {
            assert!(text.contains("NotFound") || text.contains("AccessDenied"), "{who}: {text}");
        } else {
            assert!(text.contains("AccessDenied"), "{who}: {text}");
        }
    }

    approved_by_alice(&e, "");
    let id = e.ferry(&["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    // CI names itself alice: her key is in KMS, and CI's identity may not use it.
    let forged = e.ferry(&["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--as", "alice", "--yes"]).expect(1);
    assert!(forged.stderr.contains("access denied") && forged.stderr.contains("kms:"), "{}", forged.stderr);
    let log = e.ferry(&["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let refused = log["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "approval_refused").cloned().expect("refusal audited");
    assert_eq!(refused["details"]["approver"], "alice");
    assert!(!log["events"].as_array().unwrap().iter().any(|e| e["kind"] == "approved"));
    // Alice, in her own session, signs with her KMS key: the approval counts.
    let alice = as_identity(&e, &e.setup["alice_session"]);
    let approved = e.ferry_with(&alice, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    assert!(approved.stdout.contains("approved"), "{}", approved.stdout);
    // The gate passes on her signature (the deploy then stops at prod's role, which the
    // orchestrator may not assume in this world).
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(1);
    let events = e.ferry(&["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let gate =
        events["events"].as_array().unwrap().iter().rfind(|e| e["kind"] == "gate_passed" && e["details"]["gate"] == "approval").cloned();
    assert_eq!(gate.expect("the approval gate passed")["details"]["approved_by"], serde_json::json!(["alice"]));
}

#[test]
fn only_the_trust_admin_publishes_a_trust_root_and_ci_can_neither_overwrite_it_nor_edit_around_it() {
    let e = Enforced::new(false);
    approved_by_alice(&e, "policy:\n  protected_stages: [prod]\n");
    let id = e.ferry(&["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    let none = e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(4);
    assert!(none.stderr.contains("no trust root is published"), "{}", none.stderr);
    // CI may not assume the trust-admin role; the administrator may.
    let ci_publish = e.ferry(&["trust", "publish", "pipeline.yaml"]).expect(1);
    assert!(
        ci_publish.stderr.contains(&format!("sts:AssumeRole` on `arn:aws:iam::{SECURITY}:role/ferry-trust-admin")),
        "{}",
        ci_publish.stderr
    );
    let admin = as_identity(&e, &e.setup["admin"]);
    let published = e.ferry_with(&admin, &["trust", "publish", "pipeline.yaml"]).expect(0);
    assert!(published.stdout.contains("published trust root 1 of `shop` to s3://"), "{}", published.stdout);
    // Through its chain CI reaches the audit role, whose policy never lets it write a root.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let audit = assume(&rt, &assume(&rt, &ci_config(&e, &rt), TOOLING, "ferry-orchestrator"), SECURITY, "ferry-audit");
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&audit).force_path_style(true).build());
    let bucket = e.setup["audit_bucket"].as_str().unwrap().to_owned();
    let forged = rt.block_on(s3.put_object().bucket(&bucket).key("shop/trust/shop/00000002.json").body(b"{}".to_vec().into()).send());
    assert!(format!("{forged:?}").contains("AccessDenied"), "{forged:?}");
    // CI pins a key it can sign with (the release key) as alice's: refused with the difference.
    let honest = std::fs::read_to_string(e.dir.path().join("pipeline.yaml")).unwrap();
    std::fs::write(e.dir.path().join("pipeline.yaml"), honest.replace("public_key: keys/alice.pem", "public_key: keys/shop.pem")).unwrap();
    let refused = e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(4);
    assert!(refused.stderr.contains("disagrees with the trust root published for `shop` (serial 1"), "{}", refused.stderr);
    assert!(refused.stderr.contains("- approver alice: key ") && refused.stderr.contains("+ approver alice: key "), "{}", refused.stderr);
    std::fs::write(e.dir.path().join("pipeline.yaml"), honest).unwrap();
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
}

#[test]
fn from_the_web_view_only_the_approver_session_signs_with_her_kms_key_even_where_ci_claims_her_identity() {
    let e = Enforced::new(false);
    approved_by_alice(&e, "");
    // CI controls the pipeline file in its own checkout: it adds its identity (a user of
    // moto's default account, as the set-up makes it) to alice's there; alice's checkout
    // keeps the reviewed file.
    let ci_arn = "arn:aws:iam::123456789012:user/ci";
    let yaml = std::fs::read_to_string(e.dir.path().join("pipeline.yaml"))
        .unwrap()
        .replace("assumed-role/release-approvers/alice\"]", &format!("assumed-role/release-approvers/alice\", \"{ci_arn}\"]"));
    std::fs::write(e.dir.path().join("ci.yaml"), yaml).unwrap();
    let id = e.ferry(&["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(3);
    let decide = format!("/p/shop/r/{id}/s/prod");

    // CI's own `ferry ui` offers it alice's form; submitting it cannot sign with her key.
    let ci_ui = Ui::attach(e.command_with(&e.env, &["ui", "ci.yaml"]));
    let (status, form) = ci_ui.fetch("GET", &decide, "");
    assert_eq!(status, 200, "{form}");
    assert!(form.contains(&format!("You are <strong>{ci_arn}</strong>, deciding as approver <strong>alice</strong>")), "{form}");
    let body = format!("csrf={}&verdict=approve&comment=ci", csrf_of(&form));
    let (status, refused) = ci_ui.fetch("POST", &decide, &body);
    assert_eq!(status, 422, "{refused}");
    assert!(refused.contains("access denied") && refused.contains("kms:"), "{refused}");
    drop(ci_ui);
    let log = e.ferry(&["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let events = log["events"].as_array().unwrap();
    assert!(events.iter().any(|e| e["kind"] == "approval_refused" && e["details"]["approver"] == "alice"), "{events:?}");
    assert!(!events.iter().any(|e| e["kind"] == "approved"), "{events:?}");

    // Alice's `ferry ui`, in her own session, signs the same form with her KMS key.
    let alice = as_identity(&e, &e.setup["alice_session"]);
    let her_ui = Ui::attach(e.command_with(&alice, &["ui", "pipeline.yaml"]));
    let (_, form) = her_ui.fetch("GET", &decide, "");
    let (status, done) = her_ui.fetch("POST", &decide, &format!("csrf={}&verdict=approve&comment=from+the+page", csrf_of(&form)));
    assert_eq!(status, 200, "{done}");
    drop(her_ui);
    // The gate passes on her signature (the deploy then stops at prod's role, which the
    // orchestrator may not assume in this world).
    e.ferry(&["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(1);
    let log = e.ferry(&["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let events = log["events"].as_array().unwrap();
    let approved: Vec<_> = events.iter().filter(|e| e["kind"] == "approved").collect();
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0]["details"]["comment"], "from the page");
    assert_eq!(
        approved[0]["details"]["keyid"],
        ferry_core::keys::PublicKey::from_spki_der(&base64_decode(e.setup["alice_public_key_der"].as_str().unwrap())).unwrap().keyid()
    );
    let gate = events.iter().rfind(|e| e["kind"] == "gate_passed" && e["details"]["gate"] == "approval").cloned();
    assert_eq!(gate.expect("the approval gate passed")["details"]["approved_by"], serde_json::json!(["alice"]));
}
