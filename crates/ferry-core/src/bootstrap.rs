//! What to deploy in which account to set up the aws backend for a pipeline: one stack per
//! account from the templates in `bootstrap/`, with every parameter filled in from the
//! pipeline. `ferry bootstrap` prints it; nothing here calls AWS.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::ids::{AccountId, RoleArn};
use crate::pipeline::{Pipeline, SigningKey};

#[derive(Debug, Clone, Serialize)]
pub struct StackPlan {
    pub account: AccountId,
    pub account_alias: String,
    pub stack: String,
    pub template: String,
    pub parameters: BTreeMap<String, String>,
    /// What to run before deploying it (the gatekeeper's function zip: build and upload).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prepare: Vec<String>,
}

/// The gatekeeper's zip as `cargo lambda build` names it, and its key in the code bucket.
pub const GATEKEEPER_ZIP: &str = "target/lambda/ferry-gatekeeper/bootstrap.zip";
pub const GATEKEEPER_KEY: &str = "ferry-gatekeeper.zip";

impl StackPlan {
    /// The `aws cloudformation deploy` command that creates or updates the stack.
    pub fn command(&self, region: &str) -> String {
        let params: Vec<String> = self.parameters.iter().map(|(k, v)| format!("{k}={}", shell_quote(v))).collect();
        format!(
            "aws cloudformation deploy --region {region} --template-file {} --stack-name {} --capabilities CAPABILITY_NAMED_IAM --parameter-overrides {}",
            self.template,
            self.stack,
            params.join(" ")
        )
    }
}

fn shell_quote(v: &str) -> String {
    if !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/,=@+".contains(c)) {
        v.to_owned()
    } else {
        format!("'{}'", v.replace('\'', "'\\''"))
    }
}

fn alias_of(p: &Pipeline, account: &AccountId) -> String {
    p.accounts.iter().find(|(_, id)| *id == account).map(|(a, _)| a.clone()).unwrap_or_default()
}

fn role_name(role: &RoleArn) -> String {
    role.as_str().split_once(":role/").map(|(_, n)| n.to_owned()).unwrap_or_default()
}

/// Every stack the pipeline needs, tooling account first.
pub fn plan(p: &Pipeline) -> Result<Vec<StackPlan>> {
    let aws = p
        .aws
        .as_ref()
        .ok_or_else(|| Error::invalid(format!("pipeline `{}` does not use `backend: aws`; there is nothing to bootstrap", p.name)))?;
    let external_id = aws.external_id.clone().unwrap_or_else(|| format!("ferry-{}", p.name));
    let orchestrator = aws.orchestrator.to_string();
    let name = p.name.as_str();
    let mut members: Vec<RoleArn> = vec![aws.store.role.clone(), aws.audit.role.clone()];
    let mut stacks = Vec::new();
    // Protected stages' deploy roles trust the gatekeeper alone (when the pipeline has one).
    let gatekeeper_role = RoleArn::new(&aws.audit.role.account(), "ferry-gatekeeper").map_err(|e| Error::invalid(e.to_string()))?;
    let mut protected: Vec<RoleArn> = Vec::new();
    if aws.gatekeeper.is_some() {
        for s in p.stages.iter().filter(|s| p.policy.protected_stages.contains(&s.name)) {
            let role =
                RoleArn::new(&s.account, s.role.as_deref().unwrap_or(&aws.deploy_role)).map_err(|e| Error::invalid(e.to_string()))?;
            if !protected.contains(&role) {
                protected.push(role);
            }
        }
    }
    let common = |extra: &[(&str, String)]| -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        m.insert("OrchestratorRoleArn".into(), orchestrator.clone());
        m.insert("ExternalId".into(), external_id.clone());
        m
    };
    stacks.push(StackPlan {
        account: aws.store.role.account(),
        account_alias: aws.store.account_alias.clone(),
        stack: format!("ferry-{name}-artifacts"),
        template: "bootstrap/artifacts.yaml".into(),
        parameters: common(&[
            ("BucketName", aws.store.bucket.clone()),
            ("Prefix", aws.store.prefix.clone()),
            ("RoleName", role_name(&aws.store.role)),
        ])
        .into_iter()
        .chain(aws.gatekeeper.as_ref().map(|_| ("GatekeeperRoleArn".to_owned(), gatekeeper_role.to_string())))
        .collect(),
        prepare: Vec::new(),
    });
    let mut security = common(&[("AuditBucketName", aws.audit.bucket.clone()), ("AuditRoleName", role_name(&aws.audit.role))]);
    if let SigningKey::Kms { role, .. } = &p.signing.key {
        members.push(role.clone());
        security.insert("SignerRoleName".into(), role_name(role));
    }
    stacks.push(StackPlan {
        account: aws.audit.role.account(),
        account_alias: aws.audit.account_alias.clone(),
        stack: format!("ferry-{name}-security"),
        template: "bootstrap/security.yaml".into(),
        parameters: security,
        prepare: Vec::new(),
    });
    if let Some(function) = &aws.gatekeeper {
        let protected_arns: Vec<String> = protected.iter().map(ToString::to_string).collect();
        let reader = RoleArn::new(&aws.store.role.account(), "ferry-gatekeeper-reader").map_err(|e| Error::invalid(e.to_string()))?;
        let mut params = BTreeMap::new();
        params.insert("FunctionName".to_owned(), function.name().to_owned());
        params.insert("CodeBucket".to_owned(), "<a bucket of this account for the function's code>".to_owned());
        params.insert("CodeKey".to_owned(), GATEKEEPER_KEY.to_owned());
        params.insert("OrchestratorRoleArn".to_owned(), orchestrator.clone());
        params.insert("ProtectedDeployRoleArns".to_owned(), protected_arns.join(","));
        params.insert("StoreBucketName".to_owned(), aws.store.bucket.clone());
        params.insert("StorePrefix".to_owned(), aws.store.prefix.clone());
        params.insert("StoreReaderRoleArn".to_owned(), reader.to_string());
        params.insert("AuditBucketName".to_owned(), aws.audit.bucket.clone());
        params.insert("AuditPrefix".to_owned(), aws.audit.prefix.clone());
        stacks.push(StackPlan {
            account: aws.audit.role.account(),
            account_alias: aws.audit.account_alias.clone(),
            stack: format!("ferry-{name}-gatekeeper"),
            template: "bootstrap/gatekeeper.yaml".into(),
            parameters: params,
            prepare: vec![
                "cargo lambda build --release --arm64 --output-format zip -p ferry-gatekeeper".to_owned(),
                format!("aws s3 cp {GATEKEEPER_ZIP} s3://<CodeBucket>/{GATEKEEPER_KEY}"),
            ],
        });
    }
    let mut deploy_roles: Vec<(AccountId, String)> =
        vec![(p.build.account.clone(), p.build.role.clone().unwrap_or_else(|| aws.deploy_role.clone()))];
    for s in &p.stages {
        let r = (s.account.clone(), s.role.clone().unwrap_or_else(|| aws.deploy_role.clone()));
        if !deploy_roles.contains(&r) {
            deploy_roles.push(r);
        }
    }
    for (account, role) in &deploy_roles {
        let arn = RoleArn::new(account, role).map_err(|e| Error::invalid(e.to_string()))?;
        let mut parameters = common(&[("RoleName", role.clone()), ("ManagedPolicyArns", "<the workload's deploy policies>".into())]);
        if protected.contains(&arn) {
            parameters.insert("Protected".into(), "true".into());
            parameters.insert("GatekeeperRoleArn".into(), gatekeeper_role.to_string());
        } else {
            members.push(arn);
        }
        let alias = alias_of(p, account);
        stacks.push(StackPlan {
            account: account.clone(),
            account_alias: alias.clone(),
            stack: format!("ferry-{name}-{}-{alias}", role.replace('/', "-")),
            template: "bootstrap/member-role.yaml".into(),
            parameters,
            prepare: Vec::new(),
        });
    }
    let member_arns: Vec<String> = members.iter().map(ToString::to_string).collect();
    let mut orch = BTreeMap::new();
    orch.insert("RoleName".into(), role_name(&aws.orchestrator));
    orch.insert("MemberRoleArns".into(), member_arns.join(","));
    // CI's role, and the approvers' roles: they read what they approve through the orchestrator.
    let mut trusted = vec!["<your CI role ARN (e.g. the CodeBuild service role)>".to_owned()];
    for a in &p.approvers {
        for id in &a.identities {
            if let Ok(role) = id.as_str().parse::<RoleArn>()
                && !trusted.contains(&role.to_string())
            {
                trusted.push(role.to_string());
            }
        }
    }
    orch.insert("TrustedPrincipalArns".into(), trusted.join(","));
    let (mut parameters, mut topics, mut projects) = (Vec::new(), Vec::new(), Vec::new());
    let parameter =
        |name: &str| format!("arn:aws:ssm:{}:{}:parameter/{}", aws.region, aws.orchestrator.account(), name.trim_start_matches('/'));
    for n in &p.notifications {
        use crate::pipeline::{ChannelTarget, SecretSource};
        match &n.target {
            ChannelTarget::UrlSsm(name) => parameters.push(parameter(name)),
            ChannelTarget::GitHub(g) => {
                if let SecretSource::Ssm(name) = &g.token {
                    parameters.push(parameter(name));
                }
            }
            ChannelTarget::SnsTopic(arn) => topics.push(arn.clone()),
            ChannelTarget::CodeBuild(project) if project.starts_with("arn:") => projects.push(project.clone()),
            ChannelTarget::CodeBuild(project) => {
                projects.push(format!("arn:aws:codebuild:{}:{}:project/{project}", aws.region, aws.orchestrator.account()));
            }
            ChannelTarget::UrlEnv(_) => {}
        }
    }
    for (key, list) in [("NotificationParameterArns", parameters), ("NotificationTopicArns", topics), ("NotificationProjectArns", projects)]
    {
        if !list.is_empty() {
            orch.insert(key.into(), list.join(","));
        }
    }
    if let Some(function) = &aws.gatekeeper {
        let arn = match function.region() {
            Some(_) => function.to_string(),
            None => format!("arn:aws:lambda:{}:{}:function:{}", aws.region, aws.audit.role.account(), function.name()),
        };
        orch.insert("GatekeeperFunctionArn".into(), arn);
        orch.insert("ProtectedDeployRoleArns".into(), protected.iter().map(ToString::to_string).collect::<Vec<_>>().join(","));
    }
    stacks.insert(
        0,
        StackPlan {
            account: aws.orchestrator.account(),
            account_alias: alias_of(p, &aws.orchestrator.account()),
            stack: format!("ferry-{name}-orchestrator"),
            template: "bootstrap/orchestrator.yaml".into(),
            parameters: orch,
            prepare: Vec::new(),
        },
    );
    Ok(stacks)
}
