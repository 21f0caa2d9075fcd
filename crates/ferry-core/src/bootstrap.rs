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
}

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
        ]),
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
    });
    let mut deploy_roles: Vec<(AccountId, String)> =
        vec![(p.build.account.clone(), p.build.role.clone().unwrap_or_else(|| aws.deploy_role.clone()))];
    for s in &p.stages {
        let r = (s.account.clone(), s.role.clone().unwrap_or_else(|| aws.deploy_role.clone()));
        if !deploy_roles.contains(&r) {
            deploy_roles.push(r);
        }
    }
    for (account, role) in &deploy_roles {
        members.push(RoleArn::new(account, role).map_err(|e| Error::invalid(e.to_string()))?);
        let alias = alias_of(p, account);
        stacks.push(StackPlan {
            account: account.clone(),
            account_alias: alias.clone(),
            stack: format!("ferry-{name}-{}-{alias}", role.replace('/', "-")),
            template: "bootstrap/member-role.yaml".into(),
            parameters: common(&[("RoleName", role.clone()), ("ManagedPolicyArns", "<the workload's deploy policies>".into())]),
        });
    }
    let member_arns: Vec<String> = members.iter().map(ToString::to_string).collect();
    let mut orch = BTreeMap::new();
    orch.insert("RoleName".into(), role_name(&aws.orchestrator));
    orch.insert("MemberRoleArns".into(), member_arns.join(","));
    orch.insert("TrustedPrincipalArn".into(), "<your CI or SSO role ARN>".into());
    stacks.insert(
        0,
        StackPlan {
            account: aws.orchestrator.account(),
            account_alias: alias_of(p, &aws.orchestrator.account()),
            stack: format!("ferry-{name}-orchestrator"),
            template: "bootstrap/orchestrator.yaml".into(),
            parameters: orch,
        },
    );
    Ok(stacks)
}
