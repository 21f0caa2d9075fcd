//! A pipeline's trust root: what its protected stages trust, published by an administrator
//! where the automation cannot write (on AWS a prefix of the security account's bucket that
//! only the trust-admin role may write; locally `$FERRY_HOME/trust`), versioned and never
//! replaced. It holds the pinned release key(s), the approvers' keys and identities, and for
//! each guarded stage its approval policy, account, required stages and windows, and whether it
//! is protected.
//!
//! The pipeline file sits in CI's checkout, so CI can edit it: pin its own key as an approver,
//! lower a threshold, drop a stage from `protected_stages`. Promotions of guarded stages,
//! approvals and audit verification therefore compare the file with the published root, and
//! refuse a file that disagrees, showing the difference (`check`). A protected stage of a
//! pipeline that has no published root is refused too.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::approval::signed::Approver;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{AccountId, Actor, PipelineName, RoleArn, StageName};
use crate::keys::PublicKey;
use crate::pipeline::{ApprovalPolicy, Pipeline};

/// The stored format of a published root.
pub const TRUST_VERSION: u32 = 1;

/// A public key as the root pins it: its securesystemslib key id and PEM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    pub keyid: String,
    pub public_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedApprover {
    pub name: String,
    pub key: TrustedKey,
    /// The KMS key the approver signs with, if not a local one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
    pub identities: Vec<Actor>,
}

/// A stage whose approvals the root fixes (every stage with an approval policy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedStage {
    pub stage: StageName,
    /// Where it deploys.
    pub account: AccountId,
    pub protected: bool,
    /// The stages a release must have succeeded in first (proven by their attestations).
    pub requires: Vec<StageName>,
    /// Its deployment windows and freezes, as the pipeline declares them.
    pub windows: Vec<serde_json::Value>,
    /// Whether the organization's freeze file does not stop it.
    pub ignore_org_freeze: bool,
    pub required: u32,
    /// The approver names that count (empty: every pinned approver).
    pub approvers: Vec<String>,
    pub expires_seconds: u64,
    pub allow_self_approval: bool,
    /// The role the stage deploys with (aws backend): the one the gatekeeper assumes for a
    /// protected stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleArn>,
    /// The kinds of its deploy actions (`cloudformation`, `s3`, …): what the gatekeeper's
    /// session policy allows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<String>,
}

/// What a pipeline's guarded stages trust.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRoot {
    pub pipeline: PipelineName,
    pub release_keys: Vec<TrustedKey>,
    pub approvers: Vec<TrustedApprover>,
    pub stages: Vec<TrustedStage>,
    pub allow_rollback_without_approval: bool,
    /// The external id member roles require (aws backend), which the gatekeeper passes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// A root as published: which version, when, by whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Published {
    pub version: u32,
    /// 1 for the first root of the pipeline, one more for each publication.
    pub serial: u64,
    pub published_at: Timestamp,
    pub published_by: Actor,
    pub root: TrustRoot,
}

fn trusted(key: &PublicKey) -> Result<TrustedKey> {
    Ok(TrustedKey { keyid: key.keyid(), public_key: key.to_pem()? })
}

impl TrustRoot {
    /// The root `pipeline` describes (its keys read from the files it names).
    pub fn of(pipeline: &Pipeline, release_key: &PublicKey) -> Result<Self> {
        let approvers = crate::approval::pinned(pipeline)?
            .iter()
            .map(|a| {
                let kms_key = pipeline.approver(&a.name).and_then(|k| k.kms_key.clone());
                Ok(TrustedApprover { name: a.name.clone(), key: trusted(&a.key)?, kms_key, identities: a.identities.clone() })
            })
            .collect::<Result<Vec<_>>>()?;
        let stages = pipeline
            .stages
            .iter()
            .filter_map(|s| {
                let p = s.approval.as_ref()?;
                Some(TrustedStage {
                    stage: s.name.clone(),
                    account: s.account.clone(),
                    protected: pipeline.policy.protected_stages.contains(&s.name),
                    requires: s.requires.clone(),
                    windows: s
                        .gates
                        .iter()
                        .filter_map(|g| match g {
                            crate::pipeline::Gate::Window(w) => serde_json::to_value(w).ok(),
                            _ => None,
                        })
                        .collect(),
                    ignore_org_freeze: s.ignore_org_freeze,
                    required: p.required,
                    approvers: p.approvers.clone(),
                    expires_seconds: p.expires.as_secs(),
                    allow_self_approval: p.allow_self_approval,
                    role: pipeline
                        .aws
                        .as_ref()
                        .and_then(|aws| RoleArn::new(&s.account, s.role.as_deref().unwrap_or(&aws.deploy_role)).ok()),
                    actions: {
                        let mut kinds: Vec<String> = s.deploy.iter().map(|a| a.kind().to_owned()).collect();
                        kinds.sort();
                        kinds.dedup();
                        kinds
                    },
                })
            })
            .collect();
        Ok(Self {
            pipeline: pipeline.name.clone(),
            release_keys: vec![trusted(release_key)?],
            approvers,
            stages,
            allow_rollback_without_approval: pipeline.policy.allow_rollback_without_approval,
            external_id: pipeline.aws.as_ref().and_then(|aws| aws.external_id.clone()),
        })
    }

    /// Whether the root fixes how `stage` is approved (or protects it).
    pub fn guards(&self, stage: &StageName) -> bool {
        self.stages.iter().any(|s| &s.stage == stage)
    }

    /// The approval policy of `stage`, as the root fixes it.
    pub fn policy(&self, stage: &StageName) -> Option<ApprovalPolicy> {
        self.stages.iter().find(|s| &s.stage == stage).map(|s| ApprovalPolicy {
            required: s.required,
            approvers: s.approvers.clone(),
            expires: Duration::from_secs(s.expires_seconds),
            allow_self_approval: s.allow_self_approval,
        })
    }

    /// The pinned approvers with their keys.
    pub fn approvers(&self) -> Result<Vec<Approver>> {
        self.approvers
            .iter()
            .map(|a| {
                let key = PublicKey::from_pem(&a.key.public_key)
                    .map_err(|e| Error::invalid(format!("trust root of `{}`: approver `{}`: {}", self.pipeline, a.name, e.message)))?;
                Ok(Approver { name: a.name.clone(), key, identities: a.identities.clone() })
            })
            .collect()
    }

    /// The release keys (a root may pin several while a key is rotated).
    pub fn release_keys(&self) -> Result<Vec<PublicKey>> {
        self.release_keys
            .iter()
            .map(|k| {
                PublicKey::from_pem(&k.public_key)
                    .map_err(|e| Error::invalid(format!("trust root of `{}`: release key {}: {}", self.pipeline, k.keyid, e.message)))
            })
            .collect()
    }

    /// One line per fact, in a stable order: what `diff` compares and `ferry trust show` prints.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for k in &self.release_keys {
            out.push(format!("release key {}", k.keyid));
        }
        for a in &self.approvers {
            let ids: Vec<&str> = a.identities.iter().map(Actor::as_str).collect();
            let kms = a.kms_key.as_ref().map(|k| format!(", kms {k}")).unwrap_or_default();
            out.push(format!("approver {}: key {}{kms}, identities [{}]", a.name, a.key.keyid, ids.join(", ")));
        }
        for s in &self.stages {
            let who = if s.approvers.is_empty() { "any approver".to_owned() } else { s.approvers.join(", ") };
            let protected = if s.protected { "protected stage" } else { "stage" };
            let own = if s.allow_self_approval { ", self-approval allowed" } else { "" };
            out.push(format!("{protected} {}: {} of {who}, approvals expire after {}s{own}", s.stage, s.required, s.expires_seconds));
            out.push(format!("{protected} {}: deploys to account {}", s.stage, s.account));
            let requires: Vec<&str> = s.requires.iter().map(StageName::as_str).collect();
            let requires = if requires.is_empty() { "nothing".to_owned() } else { requires.join(", ") };
            out.push(format!("{protected} {}: requires {requires}", s.stage));
            for w in &s.windows {
                out.push(format!("{protected} {}: window {}", s.stage, crate::digest::json_canonical(w)));
            }
            if s.ignore_org_freeze {
                out.push(format!("{protected} {}: ignores the organization's freezes", s.stage));
            }
            if let Some(role) = &s.role {
                out.push(format!("{protected} {}: deploys as {role}", s.stage));
            }
            if !s.actions.is_empty() {
                out.push(format!("{protected} {}: deploy actions {}", s.stage, s.actions.join(", ")));
            }
        }
        out.push(format!("rollback without approval: {}", if self.allow_rollback_without_approval { "allowed" } else { "not allowed" }));
        if let Some(id) = &self.external_id {
            out.push(format!("external id of member roles: {id}"));
        }
        out
    }
}

/// What changed from `from` to `to`, one line per fact: `- ` removed, `+ ` added.
pub fn diff(from: &TrustRoot, to: &TrustRoot) -> Vec<String> {
    let (a, b) = (from.lines(), to.lines());
    let mut out: Vec<String> = a.iter().filter(|l| !b.contains(l)).map(|l| format!("- {l}")).collect();
    out.extend(b.iter().filter(|l| !a.contains(l)).map(|l| format!("+ {l}")));
    out
}

/// Whether `pipeline` may act on `stage` (every guarded stage when `None`) under its published
/// root: the root the pipeline's guarded stages trust, or why not. A pipeline file that
/// disagrees with the published root is refused with the difference; a protected stage of a
/// pipeline with no published root is refused.
pub fn check(published: Option<&Published>, pipeline: &Pipeline, release_key: &PublicKey, stage: Option<&StageName>) -> Result<TrustRoot> {
    let proposed = TrustRoot::of(pipeline, release_key)?;
    let publish = format!("an administrator publishes the pipeline's root with `ferry trust publish {}`", pipeline.file.display());
    let Some(published) = published else {
        let protected: Vec<&StageName> = pipeline.policy.protected_stages.iter().filter(|s| stage.is_none_or(|st| st == *s)).collect();
        if let Some(s) = protected.first() {
            return Err(Error::verification(format!(
                "stage `{s}` of pipeline `{}` is protected, but no trust root is published for the pipeline",
                pipeline.name
            ))
            .hint(format!("{publish} (its approvers, keys and thresholds are then fixed outside the pipeline file)")));
        }
        return Ok(proposed);
    };
    let guarded = stage.is_none_or(|s| published.root.guards(s));
    if published.root == proposed || !guarded {
        return Ok(published.root.clone());
    }
    let changes = diff(&published.root, &proposed);
    Err(Error::verification(format!(
        "pipeline file `{}` disagrees with the trust root published for `{}` (serial {}, by {} at {}):\n  {}",
        pipeline.file.display(),
        pipeline.name,
        published.serial,
        published.published_by,
        published.published_at,
        changes.join("\n  ")
    ))
    .hint("`-` is what the published root says, `+` what the pipeline file says")
    .hint(format!("restore the pipeline file, or if the change is meant, {publish}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> TrustRoot {
        TrustRoot {
            pipeline: "shop".parse().unwrap(),
            release_keys: vec![TrustedKey { keyid: "k1".into(), public_key: String::new() }],
            approvers: vec![TrustedApprover {
                name: "alice".into(),
                key: TrustedKey { keyid: "a1".into(), public_key: String::new() },
                kms_key: None,
                identities: vec![],
            }],
            stages: vec![TrustedStage {
                stage: "prod".parse().unwrap(),
                account: "333333333333".parse().unwrap(),
                protected: true,
                requires: vec!["staging".parse().unwrap()],
                windows: vec![],
                ignore_org_freeze: false,
                required: 2,
                approvers: vec![],
                expires_seconds: 3600,
                allow_self_approval: false,
                role: None,
                actions: vec![],
            }],
            allow_rollback_without_approval: false,
            external_id: None,
        }
    }

    #[test]
    fn the_diff_names_each_changed_fact_once_on_each_side() {
        let mut changed = root();
        changed.approvers[0].key.keyid = "mallory".into();
        changed.stages[0].required = 1;
        assert_eq!(diff(&root(), &root()), Vec::<String>::new());
        assert_eq!(
            diff(&root(), &changed),
            [
                "- approver alice: key a1, identities []",
                "- protected stage prod: 2 of any approver, approvals expire after 3600s",
                "+ approver alice: key mallory, identities []",
                "+ protected stage prod: 1 of any approver, approvals expire after 3600s",
            ]
        );
    }
}
