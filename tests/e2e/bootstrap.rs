//! `ferry bootstrap` and the CloudFormation templates it fills in: every parameter a template
//! requires is filled and none it does not declare; the roles they create grant exactly what
//! ferry needs (the audit bucket refuses rewrites, only the trust admin writes a trust root,
//! only the approver signs with their key, a protected stage's role trusts the gatekeeper
//! alone); and the templates are built into ferry (`--write DIR`).

use std::process::Command;

use crate::support::{FERRY, repo_root};

/// The `Parameters` a CloudFormation template declares: (name, has a default).
fn template_parameters(path: &std::path::Path) -> Vec<(String, bool)> {
    use ferry_core::yaml::{Kind, parse};
    let root = parse("t", &std::fs::read_to_string(path).unwrap()).unwrap();
    let Kind::Map(top) = root.kind else { panic!("not a mapping") };
    let (_, params) = top.iter().find(|(k, _)| k.as_scalar() == Some("Parameters")).expect("Parameters");
    let Kind::Map(params) = &params.kind else { panic!("Parameters is not a mapping") };
    params
        .iter()
        .map(|(k, v)| {
            let Kind::Map(fields) = &v.kind else { panic!("parameter is not a mapping") };
            (k.as_scalar().unwrap().to_owned(), fields.iter().any(|(f, _)| f.as_scalar() == Some("Default")))
        })
        .collect()
}

#[test]
fn bootstrap_fills_every_required_template_parameter_and_only_declared_ones() {
    let out = Command::new(FERRY)
        .args(["bootstrap", "pipelines/shop-aws.yaml", "--output", "json"])
        .current_dir(repo_root())
        .env("FERRY_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let stacks = v["stacks"].as_array().unwrap();
    let accounts: Vec<&str> = stacks.iter().map(|s| s["account_alias"].as_str().unwrap()).collect();
    // The security account holds the audit stack and the gatekeeper's.
    assert_eq!(accounts, ["tooling", "artifacts", "security", "security", "dev", "staging", "prod"]);
    for s in stacks {
        let declared = template_parameters(&repo_root().join(s["template"].as_str().unwrap()));
        let given: Vec<&String> = s["parameters"].as_object().unwrap().keys().collect();
        for g in &given {
            assert!(declared.iter().any(|(d, _)| d == *g), "{} does not declare {g}", s["template"]);
        }
        for (d, has_default) in &declared {
            assert!(*has_default || given.contains(&d), "{} needs {d}", s["template"]);
        }
    }
    let members = stacks[0]["parameters"]["MemberRoleArns"].as_str().unwrap();
    for role in [
        "222222222222:role/ferry-artifacts",
        "333333333333:role/ferry-audit",
        "333333333333:role/ferry-signer",
        "444444444444:role/ferry-build",
        "555555555555:role/ferry-deploy",
    ] {
        assert!(members.contains(role), "orchestrator may assume {role}: {members}");
    }
    // Prod is protected: its role trusts the gatekeeper alone, the orchestrator may not assume
    // it, and the function's zip is built and uploaded before its stack.
    // CI and the approvers' roles may assume the orchestrator; no account root.
    let trusted = stacks[0]["parameters"]["TrustedPrincipalArns"].as_str().unwrap();
    assert!(trusted.contains("arn:aws:iam::111111111111:role/release-managers") && !trusted.contains(":root"), "{trusted}");
    let prod_role = "arn:aws:iam::666666666666:role/ferry-deploy";
    assert!(!members.contains("666666666666"), "the orchestrator never reaches prod: {members}");
    assert_eq!(stacks[0]["parameters"]["ProtectedDeployRoleArns"], prod_role);
    assert_eq!(stacks[0]["parameters"]["GatekeeperFunctionArn"], "arn:aws:lambda:eu-west-1:333333333333:function:ferry-gatekeeper");
    let prod = &stacks[6]["parameters"];
    assert_eq!(
        (prod["Protected"].as_str(), prod["GatekeeperRoleArn"].as_str()),
        (Some("true"), Some("arn:aws:iam::333333333333:role/ferry-gatekeeper"))
    );
    let gatekeeper = &stacks[3];
    assert_eq!(gatekeeper["template"], "bootstrap/gatekeeper.yaml");
    assert_eq!(gatekeeper["parameters"]["ProtectedDeployRoleArns"], prod_role);
    assert_eq!(gatekeeper["parameters"]["StoreReaderRoleArn"], "arn:aws:iam::222222222222:role/ferry-gatekeeper-reader");
    assert_eq!(stacks[1]["parameters"]["GatekeeperRoleArn"], "arn:aws:iam::333333333333:role/ferry-gatekeeper");
    assert_eq!(gatekeeper["prepare"][0], "cargo lambda build --release --arm64 --output-format zip -p ferry-gatekeeper");
    assert!(gatekeeper["prepare"][1].as_str().unwrap().starts_with("aws s3 cp target/lambda/ferry-gatekeeper/bootstrap.zip s3://"));
}

/// A template as JSON (tags such as `!Sub` are kept as the parser gives them).
fn template_json(path: &std::path::Path) -> serde_json::Value {
    use ferry_core::yaml::{Kind, Node, parse};
    fn conv(n: &Node) -> serde_json::Value {
        match &n.kind {
            Kind::Null => serde_json::Value::Null,
            Kind::Scalar { text, .. } => serde_json::Value::String(text.clone()),
            Kind::Seq(items) => items.iter().map(conv).collect(),
            Kind::Map(fields) => fields.iter().map(|(k, v)| (k.as_scalar().unwrap_or_default().to_owned(), conv(v))).collect(),
        }
    }
    conv(&parse("t", &std::fs::read_to_string(path).unwrap()).unwrap())
}

#[test]
fn the_security_accounts_bucket_refuses_every_write_that_could_rewrite_the_audit_log() {
    // What moto cannot enforce (S3's conditional-write condition keys in a bucket policy,
    // object lock), checked on the template itself.
    let t = template_json(&repo_root().join("bootstrap/security.yaml"));
    let bucket = &t["Resources"]["AuditBucket"]["Properties"];
    assert_eq!(bucket["ObjectLockEnabled"], "true", "object lock is always on");
    assert_eq!(bucket["ObjectLockConfiguration"]["Rule"]["DefaultRetention"]["Mode"], "COMPLIANCE");
    let days: u64 = t["Parameters"]["AuditRetentionDays"]["Default"].as_str().unwrap().parse().unwrap();
    let min: u64 = t["Parameters"]["AuditRetentionDays"]["MinValue"].as_str().unwrap().parse().unwrap();
    assert!(days >= 365 && min >= 1, "retention {days} days by default, never off");
    let statements = t["Resources"]["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap().clone();
    let sid = |s: &str| statements.iter().find(|x| x["Sid"] == s).unwrap_or_else(|| panic!("no statement {s}")).clone();
    let create_only = sid("CreateOnly");
    assert_eq!((create_only["Effect"].as_str(), create_only["Principal"].as_str()), (Some("Deny"), Some("*")));
    assert_eq!(create_only["Action"], "s3:PutObject");
    assert_eq!(create_only["Condition"]["Null"]["s3:if-none-match"], "true", "a put without If-None-Match is refused");
    assert!(create_only["NotResource"].as_str().unwrap().ends_with("/*head.json"), "all but the head");
    let head = sid("HeadCompareAndSwap");
    assert_eq!(head["Effect"], "Deny");
    assert!(head["Resource"].as_str().unwrap().ends_with("/*head.json"));
    assert_eq!(
        (head["Condition"]["Null"]["s3:if-none-match"].as_str(), head["Condition"]["Null"]["s3:if-match"].as_str()),
        (Some("true"), Some("true"))
    );
    let deletes = sid("NoDeletes");
    assert_eq!(deletes["Effect"], "Deny");
    for action in ["s3:DeleteObject", "s3:DeleteObjectVersion"] {
        assert!(deletes["Action"].as_array().unwrap().iter().any(|a| a == action), "{action} is refused");
    }
    // The audit role itself may only read, list and add.
    let role = &t["Resources"]["AuditRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
    let actions: Vec<String> = role
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .flat_map(|s| match &s["Action"] {
            serde_json::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect::<Vec<_>>(),
            one => vec![one.as_str().unwrap().to_owned()],
        })
        .collect();
    assert_eq!(actions, ["s3:ListBucket", "s3:GetObject", "s3:PutObject"]);
}

#[test]
fn only_the_trust_admin_role_may_write_a_trust_root_and_the_audit_role_never() {
    let t = template_json(&repo_root().join("bootstrap/security.yaml"));
    let statements = t["Resources"]["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap().clone();
    let trust = statements.iter().find(|x| x["Sid"] == "TrustRootAdminOnly").expect("a statement for trust roots").clone();
    assert_eq!(
        (trust["Effect"].as_str(), trust["Principal"].as_str(), trust["Action"].as_str()),
        (Some("Deny"), Some("*"), Some("s3:PutObject"))
    );
    assert!(trust["Resource"].as_array().unwrap().iter().all(|r| r.as_str().unwrap().ends_with("trust/*")));
    assert!(trust["Condition"]["ArnNotLike"]["aws:PrincipalArn"].as_str().unwrap().ends_with(":role/ferry-trust-admin"));
    let audit = t["Resources"]["AuditRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].as_array().unwrap().clone();
    let never = audit.iter().find(|s| s["Sid"] == "NeverTheTrustRoot").expect("the audit role is denied trust roots");
    assert_eq!((never["Effect"].as_str(), never["Action"].as_str()), (Some("Deny"), Some("s3:PutObject")));
    // The trust-admin role is assumed by the administrators, not by the orchestrator.
    let admin = &t["Resources"]["TrustAdminRole"]["Properties"];
    assert_eq!(admin["RoleName"], "ferry-trust-admin");
    let trusted = admin["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"].to_string();
    assert!(trusted.contains("TrustAdminPrincipalArns") && !trusted.contains("Orchestrator"), "{trusted}");
}

#[test]
fn an_approver_key_lets_only_its_approver_sign() {
    let t = template_json(&repo_root().join("bootstrap/approver-key.yaml"));
    let key = &t["Resources"]["ApproverKey"]["Properties"];
    assert_eq!((key["KeySpec"].as_str(), key["KeyUsage"].as_str()), (Some("ECC_NIST_P256"), Some("SIGN_VERIFY")));
    let statements = key["KeyPolicy"]["Statement"].as_array().unwrap().clone();
    let actions = |s: &serde_json::Value| -> Vec<String> {
        match &s["Action"] {
            serde_json::Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_owned()).collect(),
            one => vec![one.as_str().unwrap().to_owned()],
        }
    };
    // IAM's wildcard match of an action pattern.
    fn covers(pattern: &str, action: &str) -> bool {
        match pattern.split_once('*') {
            None => pattern.eq_ignore_ascii_case(action),
            Some((head, rest)) => {
                action.len() >= head.len()
                    && action[..head.len()].eq_ignore_ascii_case(head)
                    && (head.len()..=action.len()).any(|i| covers(rest, &action[i..]))
            }
        }
    }
    assert!(covers("kms:S*", "kms:Sign") && covers("*", "kms:Sign") && !covers("kms:Schedule*", "kms:Sign"));
    // No allow that covers kms:Sign but the approver's own.
    for s in statements.iter().filter(|s| s["Effect"] == "Allow") {
        let signs = actions(s).iter().any(|a| covers(a, "kms:Sign"));
        if s["Sid"] == "ApproverSigns" {
            assert!(signs);
            assert!(s["Principal"]["AWS"].to_string().contains("ApproverPrincipalArn"));
        } else {
            assert!(!signs, "{} may sign: {:?}", s["Sid"], actions(s));
        }
    }
    let deny = statements.iter().find(|s| s["Sid"] == "NobodyElseSigns").expect("an explicit deny");
    assert_eq!((deny["Effect"].as_str(), deny["Principal"].as_str(), deny["Action"].as_str()), (Some("Deny"), Some("*"), Some("kms:Sign")));
    assert!(deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"].to_string().contains("ApproverPrincipalArn"));
}

#[test]
fn a_protected_stages_deploy_role_trusts_only_the_gatekeeper_and_the_orchestrator_may_never_assume_it() {
    // Tags (`!If`, `!Ref`) read as their arguments: `!If [C, A, B]` is [C, A, B].
    let member = template_json(&repo_root().join("bootstrap/member-role.yaml"));
    assert_eq!(member["Conditions"]["IsProtected"], serde_json::json!(["Protected", "true"]));
    let trust = member["Resources"]["DeployRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"].as_array().unwrap().clone();
    assert_eq!(trust.len(), 2, "{trust:?}");
    for s in &trust {
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(
            s["Principal"]["AWS"],
            serde_json::json!(["IsProtected", "GatekeeperRoleArn", "OrchestratorRoleArn"]),
            "protected: the gatekeeper alone"
        );
    }
    assert!(!serde_json::to_string(&trust).unwrap().contains(":root"), "no account root is trusted");
    assert_eq!(trust[0]["Condition"]["StringEquals"]["sts:ExternalId"], "ExternalId");

    let orchestrator = template_json(&repo_root().join("bootstrap/orchestrator.yaml"));
    let policy = orchestrator["Resources"]["OrchestratorRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    let deny = policy
        .iter()
        .filter_map(|s| s.as_array().and_then(|a| a.get(1)))
        .find(|s| s["Sid"] == "NeverAProtectedStagesRole")
        .expect("an explicit deny on protected stages' roles")
        .clone();
    assert_eq!(
        (deny["Effect"].as_str(), deny["Action"].as_str(), deny["Resource"].as_str()),
        (Some("Deny"), Some("sts:AssumeRole"), Some("ProtectedDeployRoleArns"))
    );

    let gatekeeper = template_json(&repo_root().join("bootstrap/gatekeeper.yaml"));
    let role = &gatekeeper["Resources"]["GatekeeperRole"]["Properties"];
    assert_eq!(role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"], serde_json::json!({"Service": "lambda.amazonaws.com"}));
    let statements = role["Policies"][0]["PolicyDocument"]["Statement"].as_array().unwrap().clone();
    let assumes: Vec<&serde_json::Value> = statements.iter().filter(|s| s["Action"].to_string().contains("sts:AssumeRole")).collect();
    let resources: Vec<&serde_json::Value> = assumes.iter().map(|s| &s["Resource"]).collect();
    assert_eq!(
        resources,
        ["ProtectedDeployRoleArns", "StoreReaderRoleArn"],
        "it assumes protected stages' roles and its store reader, nothing else"
    );
    assert_eq!(gatekeeper["Resources"]["Gatekeeper"]["Properties"]["Role"], "GatekeeperRole.Arn");
    // Its decisions are written by it alone.
    let security = template_json(&repo_root().join("bootstrap/security.yaml"));
    let bucket = security["Resources"]["AuditBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"].as_array().unwrap().clone();
    let only = bucket.iter().find(|s| s["Sid"] == "GatekeeperDecisionsOnlyByIt").expect("the gatekeeper's prefix").clone();
    assert!(only["Condition"]["ArnNotLike"]["aws:PrincipalArn"].as_str().unwrap().ends_with(":role/ferry-gatekeeper"));
}

#[test]
fn bootstrap_ends_with_the_key_export_that_writes_the_pinned_public_key() {
    let out = Command::new(FERRY)
        .args(["bootstrap", "pipelines/shop-aws.yaml"])
        .current_dir(repo_root())
        .env("FERRY_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    // shop-aws.yaml pins `keys/shop-kms.pem` beside itself.
    assert!(
        text.contains("ferry key export --kms arn:aws:kms:eu-west-1:333333333333:key/0b6f6c2e-6a5c-4c53-9d39-6bb1c0f3a1d2 --name shop-kms --out pipelines/keys"),
        "{text}"
    );
    let yaml = std::fs::read_to_string(repo_root().join("pipelines/shop-aws.yaml")).unwrap();
    assert!(yaml.contains("public_key: keys/shop-kms.pem"), "the command writes the file the pipeline pins");
}

#[test]
fn bootstrap_grants_the_orchestrator_exactly_the_notification_parameters_topics_and_projects_the_pipeline_uses() {
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo_root().join("pipelines/shop-aws.yaml")).unwrap();
    // The example's own channels (a Slack URL and a GitHub token in SSM), and more.
    let yaml = example.replace(
        "\nnotifications:\n",
        "\nnotifications:\n  - {type: sns, topic: \"arn:aws:sns:eu-west-1:111111111111:releases\"}\n  - {type: codebuild, project: shop-promote}\n",
    );
    assert_ne!(yaml, example, "the example has a `notifications:` section to add to");
    std::fs::write(dir.path().join("shop.yaml"), yaml).unwrap();
    let v = bootstrap_json(dir.path(), &[]);
    let orch = &v["stacks"][0]["parameters"];
    assert_eq!(
        orch["NotificationParameterArns"],
        "arn:aws:ssm:eu-west-1:111111111111:parameter/ferry/shop/slack-webhook,arn:aws:ssm:eu-west-1:111111111111:parameter/ferry/shop/github-dispatch-token"
    );
    assert_eq!(orch["NotificationTopicArns"], "arn:aws:sns:eu-west-1:111111111111:releases");
    assert_eq!(orch["NotificationProjectArns"], "arn:aws:codebuild:eu-west-1:111111111111:project/shop-promote");
    let declared = template_parameters(&repo_root().join("bootstrap/orchestrator.yaml"));
    for p in ["NotificationParameterArns", "NotificationTopicArns", "NotificationProjectArns"] {
        assert!(declared.iter().any(|(d, _)| d == p), "{p}");
    }
}

/// `ferry bootstrap shop.yaml ARGS --output json` in `dir`, which must succeed.
fn bootstrap_json(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(FERRY)
        .args(["bootstrap", "shop.yaml", "--output", "json"])
        .args(args)
        .current_dir(dir)
        .env("FERRY_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn bootstrap_writes_the_templates_it_carries_where_its_commands_deploy_them_from() {
    // Outside ferry's checkout: a pipeline and nothing else.
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(repo_root().join("pipelines/shop-aws.yaml"), dir.path().join("shop.yaml")).unwrap();
    let v = bootstrap_json(dir.path(), &["--write", "infra/ferry"]);
    for stack in v["stacks"].as_array().unwrap() {
        let template = stack["template"].as_str().unwrap();
        assert!(template.starts_with("infra/ferry/"), "{template}");
        let written = std::fs::read(dir.path().join(template)).unwrap_or_else(|e| panic!("{template}: {e}"));
        let name = template.rsplit('/').next().unwrap();
        assert_eq!(written, std::fs::read(repo_root().join("bootstrap").join(name)).unwrap(), "{name} is ferry's own template");
    }
    for name in ["approver-key.yaml", "member-role.yaml", "orchestrator.yaml"] {
        assert!(dir.path().join("infra/ferry").join(name).is_file(), "{name}");
    }
    let text = Command::new(FERRY).args(["bootstrap", "shop.yaml"]).current_dir(dir.path()).env("FERRY_LOG", "warn").output().unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("`ferry bootstrap shop.yaml --write bootstrap` writes them"), "{text}");
    // A directory that cannot be made is an error that says so, not a panic.
    std::fs::write(dir.path().join("file"), "").unwrap();
    let bad = Command::new(FERRY).args(["bootstrap", "shop.yaml", "--write", "file/sub"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot write the templates into `file/sub`"));
}
