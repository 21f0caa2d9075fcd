//! `ferry validate`, `ferry schema`, `ferry plan`: every mistake at once, with positions.

use std::process::Command;

use crate::support::{FERRY, Project, TWO_APPROVERS, pipeline, repo_root, venv_python};

const BROKEN: &str = r#"version: 2
name: Shop
acounts:
  dev: "111111111111"
accounts:
  dev: "12345"
  prod: "333333333333"
signing:
  key: test
  public_key: keys/test.pem
build:
  account: devv
  command: make
stages:
  - name: staging
    account: prod
    requires: [qa]
    approval:
      required: 3
      approvers: [alice, bob]
      expires: soon
    deploy:
      - type: command
  - name: staging
    account: prod
    requires: [prod]
  - name: prod
    account: prod
    region: moon
    requires: [staging]
    deploy:
      - type: cloudformation
      - type: teleport
"#;

#[test]
fn a_pipeline_with_many_mistakes_reports_all_of_them_with_positions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("broken.yaml"), BROKEN).unwrap();
    let r = p.ferry("dev", &["validate", "broken.yaml"]).expect(2);
    // Each with the source line and a caret under what it is about (no colour: not a terminal).
    assert!(!r.stderr.contains('\x1b'), "{}", r.stderr);
    insta::assert_snapshot!("validate_broken", r.stderr);
    // In colour when asked (as on a terminal), and never with NO_COLOR unless forced.
    let coloured: crate::support::Run =
        p.command("dev", &["validate", "broken.yaml"]).env("FERRY_COLOR", "always").output().unwrap().into();
    assert!(coloured.stderr.contains("\x1b[1;31merror:\x1b[0m broken.yaml:1:10:"), "{}", coloured.stderr);
    assert!(coloured.stderr.contains("\x1b[1;31m^^^^\x1b[0m"), "a red caret: {}", coloured.stderr);
}

#[test]
fn validate_json_lists_diagnostics_with_file_line_column_and_field() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(p.path("broken.yaml"), BROKEN).unwrap();
    let r = p.ferry("dev", &["validate", "broken.yaml", "--output", "json"]).expect(2);
    let v = r.json();
    let diags = v["diagnostics"].as_array().unwrap();
    assert!(diags.len() >= 12, "{diags:#?}");
    let bad_account = diags.iter().find(|d| d["field"] == "accounts.dev").expect("bad account id reported");
    assert_eq!((bad_account["line"].as_u64(), bad_account["column"].as_u64()), (Some(6), Some(8)));
    assert!(bad_account["message"].as_str().unwrap().contains("`12345`"));
    assert_eq!(v["exit_code"], 2);
}

#[test]
fn cycles_and_later_stages_are_named() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let yaml =
        pipeline(TWO_APPROVERS).replace("    region: eu-west-1\n    deploy:", "    region: eu-west-1\n    requires: [prod]\n    deploy:");
    std::fs::write(p.path("cycle.yaml"), yaml).unwrap();
    let r = p.ferry("dev", &["validate", "cycle.yaml"]).expect(2);
    assert!(r.stderr.contains("stage `staging` requires later stage `prod`"), "{}", r.stderr);
    assert!(r.stderr.contains("dependency cycle: staging → prod → staging"), "{}", r.stderr);
}

#[test]
fn every_pipeline_in_the_repository_is_valid() {
    let out = Command::new(FERRY).arg("validate").current_dir(repo_root()).env("FERRY_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok: pipelines/hello.yaml"));
}

#[test]
fn the_schema_is_draft_07_and_accepts_the_repository_pipelines_and_rejects_a_broken_one() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(FERRY).arg("schema").output().unwrap();
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    insta::assert_json_snapshot!("pipeline_schema", schema);
    let schema_file = tmp.path().join("schema.json");
    std::fs::write(&schema_file, &out.stdout).unwrap();
    let root = repo_root();
    let mut files: Vec<_> = std::fs::read_dir(root.join("pipelines"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let check = |args: &[&std::path::Path], extra: &[&str]| {
        Command::new(venv_python())
            .arg(root.join("tests/conformance/check_schema.py"))
            .args(extra)
            .arg(&schema_file)
            .args(args)
            .output()
            .unwrap()
    };
    let refs: Vec<&std::path::Path> = files.iter().map(|p| p.as_path()).collect();
    let ok = check(&refs, &[]);
    assert!(ok.status.success(), "{}{}", String::from_utf8_lossy(&ok.stdout), String::from_utf8_lossy(&ok.stderr));
    let broken = tmp.path().join("broken.yaml");
    std::fs::write(&broken, BROKEN).unwrap();
    let bad = check(&[broken.as_path()], &["--expect-invalid"]);
    assert!(bad.status.success(), "the schema must reject the broken pipeline: {}", String::from_utf8_lossy(&bad.stdout));
}

#[test]
fn the_repository_schema_file_is_what_ferry_schema_prints() {
    let out = Command::new(FERRY).arg("schema").output().unwrap();
    let committed = std::fs::read_to_string(repo_root().join("schema/pipeline-v1.json")).expect("schema/pipeline-v1.json");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        committed.trim_end(),
        "regenerate with `ferry schema > schema/pipeline-v1.json`"
    );
}

#[test]
fn plan_lists_stages_accounts_gates_and_actions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let human = p.ferry("dev", &["plan", "pipeline.yaml"]).expect(0);
    insta::assert_snapshot!("plan_human", human.stdout);
    let v = p.ferry("dev", &["plan", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert_eq!(v["stages"][1]["name"], "prod");
    assert_eq!(v["stages"][1]["account_id"], "333333333333");
    assert_eq!(v["stages"][1]["requires"][0], "staging");
    let steps: Vec<&str> = v["stages"][1]["steps"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(steps[0].starts_with("verify"), "verification comes first: {steps:?}");
    assert!(steps.iter().any(|s| s.starts_with("approval: 2 of alice, bob, carol")), "{steps:?}");
}

#[test]
fn the_readme_pipeline_reference_is_a_valid_pipeline() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("```yaml\nversion: 1\n").expect("README has a pipeline reference") + "```yaml\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("reference.yaml");
    std::fs::write(&file, &readme[start..end]).unwrap();
    let out = Command::new(FERRY).arg("validate").arg(&file).env("FERRY_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn aws_backend_settings_are_validated_with_positions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::copy(repo_root().join("tests/e2e/broken-aws.yaml"), p.path("broken-aws.yaml")).unwrap();
    let r = p.ferry("dev", &["validate", "broken-aws.yaml"]).expect(2);
    insta::assert_snapshot!("validate_broken_aws", r.stderr);
}

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

#[test]
fn guardrails_are_enforced_with_positions() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::copy(repo_root().join("tests/e2e/guardrails.yaml"), p.path("guarded.yaml")).unwrap();
    let r = p.ferry("dev", &["validate", "guarded.yaml"]).expect(2);
    insta::assert_snapshot!("validate_guardrails", r.stderr);
    // Every command that reads the pipeline enforces them too.
    p.ferry("dev", &["plan", "guarded.yaml"]).expect(2);
}

#[test]
fn aws_actions_on_the_local_backend_are_refused_at_validation() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let yaml = pipeline(TWO_APPROVERS).replacen(
        "      - type: command\n",
        "      - type: s3\n        bucket: site-bucket\n      - type: command\n",
        1,
    );
    std::fs::write(p.path("s3.yaml"), yaml).unwrap();
    let r = p.ferry("dev", &["validate", "s3.yaml"]).expect(2);
    assert!(r.stderr.contains("s3.yaml:26:15: stages[0].deploy[0].type: the `s3` action needs `backend: aws`"), "{}", r.stderr);
}

#[test]
fn the_organization_policy_file_adds_its_guardrails() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::create_dir_all(p.path("org")).unwrap();
    std::fs::write(p.path("org/policy.yaml"), "policy:\n  allowed_regions: [eu-west-1]\n  required_tags: [cost-centre]\n  protected_stages: [staging]\n  freeze_file: freezes.yaml\n").unwrap();
    std::fs::write(p.path("org/freezes.yaml"), "freezes: []\n").unwrap();
    let yaml = pipeline(TWO_APPROVERS).replace("build:\n", "policy:\n  org_policy: org/policy.yaml\nbuild:\n");
    std::fs::write(p.path("guarded.yaml"), &yaml).unwrap();
    let r = p.ferry("dev", &["validate", "guarded.yaml"]).expect(2);
    assert!(r.stderr.contains("stage `staging` is protected by the policy and must require approvals"), "{}", r.stderr);
    assert!(r.stderr.contains("stage `prod` lacks the required tag(s) `cost-centre`"), "{}", r.stderr);
    std::fs::write(p.path("org/policy.yaml"), "policy:\n  allowed_regions: [us-east-1]\n  bogus: 1\n").unwrap();
    let r = p.ferry("dev", &["validate", "guarded.yaml"]).expect(2);
    assert!(r.stderr.contains("org/policy.yaml:3:3: policy.bogus: unknown key `bogus`"), "{}", r.stderr);
    assert!(r.stderr.contains("region `eu-west-1` is not allowed by the policy"), "{}", r.stderr);
    let plan = p.ferry("dev", &["plan", "pipeline.yaml"]).expect(0);
    assert!(!plan.stdout.contains("freeze"), "the plain pipeline has no org policy");
}

#[test]
fn the_readme_pipeline_reference_is_what_ferry_schema_markdown_prints() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("<!-- reference:start -->\n").expect("reference start marker") + "<!-- reference:start -->\n".len();
    let end = readme.find("<!-- reference:end -->").expect("reference end marker");
    let out = Command::new(FERRY).args(["schema", "--markdown"]).output().unwrap();
    assert_eq!(&readme[start..end], String::from_utf8(out.stdout).unwrap(), "regenerate the README table with `ferry schema --markdown`");
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
fn plan_says_a_protected_stage_gets_its_credentials_from_the_gatekeeper_and_others_through_the_orchestrator() {
    let out =
        Command::new(FERRY).args(["plan", "pipelines/shop-aws.yaml"]).current_dir(repo_root()).env("FERRY_LOG", "warn").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "get `ferry-deploy` in 666666666666 from the gatekeeper `arn:aws:lambda:eu-west-1:333333333333:function:ferry-gatekeeper`"
        ),
        "{text}"
    );
    assert!(text.contains("assume `ferry-deploy` in 555555555555 through `arn:aws:iam::111111111111:role/ferry-orchestrator`"), "{text}");
}

#[test]
fn a_file_nested_thousands_deep_or_a_fifo_is_an_error_not_a_crash_or_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deep.yaml"), format!("version: 1\nname: x\nstages:\n{}a\n", "- ".repeat(15_000))).unwrap();
    let fifo = dir.path().join("pipe.yaml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for (file, message) in [
        ("deep.yaml", "deep.yaml:4:127: (yaml): sequences and mappings nest more than 64 deep here"),
        ("pipe.yaml", "(file): `pipe.yaml` is not a regular file"),
    ] {
        let mut child = Command::new(FERRY)
            .args(["validate", file])
            .current_dir(dir.path())
            .env("FERRY_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(20) {
                child.kill().unwrap();
                panic!("`ferry validate {file}` hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(stderr.contains(message), "{file}: {stderr}");
    }
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
fn help_of_every_subcommand_documents_each_argument_and_ends_with_an_example() {
    let subcommands = [
        "validate",
        "schema",
        "plan",
        "doctor",
        "bootstrap",
        "build",
        "promote",
        "run",
        "rollback",
        "approve",
        "reject",
        "pending",
        "status",
        "verify",
        "unlock",
        "audit",
        "audit verify",
        "audit export",
        "audit show",
        "keygen",
        "key",
        "key export",
        "trust",
        "trust publish",
        "trust show",
        "trust diff",
        "completions",
    ];
    let mut all = String::new();
    for sub in subcommands {
        let mut c = Command::new(FERRY);
        c.args(sub.split(' ')).arg("--help");
        for v in ["FERRY_OUTPUT", "FERRY_HOME", "FERRY_JUNIT", "FERRY_LOG_FORMAT", "FERRY_LOG"] {
            c.env_remove(v);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "ferry {sub} --help");
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(text.contains("\nExample"), "`ferry {sub} --help` shows no example:\n{text}");
        all.push_str(&format!("━━━ ferry {sub} --help\n{text}\n"));
    }
    insta::assert_snapshot!("help", all);
}

#[test]
fn validate_checks_the_pinned_public_key_file_a_missing_one_warns_and_a_broken_one_is_an_error() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    p.ferry("dev", &["validate", "pipeline.yaml"]).expect(0);
    std::fs::remove_file(p.path("keys/test.pem")).unwrap();
    let missing = p.ferry("dev", &["validate", "pipeline.yaml", "--output", "json"]).expect(0);
    assert!(
        missing
            .stderr
            .contains("warning: pipeline.yaml:9:15: signing.public_key: the pinned public key `keys/test.pem` does not exist yet"),
        "{}",
        missing.stderr
    );
    assert!(missing.stderr.contains("hint: write it with `ferry key export --name test --out keys`"), "{}", missing.stderr);
    assert_eq!(missing.json()["warnings"][0]["field"], "signing.public_key");
    std::fs::write(p.path("keys/test.pem"), "-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n").unwrap();
    let broken = p.ferry("dev", &["validate", "pipeline.yaml"]).expect(2);
    assert!(
        broken.stderr.contains("pipeline.yaml:9:15: signing.public_key: `keys/test.pem` is not a public key ferry can read"),
        "{}",
        broken.stderr
    );
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
    let out = Command::new(FERRY)
        .args(["bootstrap", "shop.yaml", "--output", "json"])
        .current_dir(dir.path())
        .env("FERRY_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
