//! `ferry doctor` on the aws backend: a preflight of every hop of every role chain (assume,
//! then `GetCallerIdentity`, showing the resulting ARN), the store and audit buckets, and the
//! KMS key (it signs a probe that must verify with the pinned public key), and who can reach
//! each protected stage: neither the orchestrator nor the caller may assume its deploy role,
//! and the gatekeeper must answer (a probe for a release that does not exist, which it refuses
//! after proving who asks and reading the root). Every check runs even when an earlier one
//! fails, and each failure carries a hint.

use aws_config::SdkConfig;
use ferry_core::ids::RoleArn;
use ferry_core::keys::PublicKey;
use ferry_core::pipeline::{BucketRef, Pipeline, SigningKey};
use ferry_core::preflight::Check;
use ferry_core::{Error, Result};

use crate::chain::{Aws, Hop};
use crate::error;

struct Doctor<'a> {
    aws: &'a Aws,
    pipeline: &'a Pipeline,
    actor: String,
    checks: Vec<Check>,
}

impl Doctor<'_> {
    fn hop(&self, role: &RoleArn, external: bool) -> Hop {
        let settings = self.pipeline.aws.as_ref();
        Hop {
            role: role.clone(),
            session_name: format!("ferry-{}-doctor", self.pipeline.name),
            source_identity: Some(crate::chain::source_identity(&self.actor, &[])),
            tags: vec![("ferry-pipeline".into(), self.pipeline.name.to_string())],
            external_id: if external { settings.and_then(|s| s.external_id.clone()) } else { None },
            duration: None,
            policy: None,
        }
    }

    /// Assumes `role` from `from` and records the resulting identity.
    fn assume(&mut self, label: &str, from: (&SdkConfig, &str), role: &RoleArn, external: bool) -> Option<SdkConfig> {
        let r = self.aws.assume_chain(Some(from), &[self.hop(role, external)]).and_then(|c| self.aws.caller_arn(&c).map(|arn| (c, arn)));
        let (config, result) = match r {
            Ok((c, arn)) => (Some(c), Ok(arn)),
            Err(e) => (None, Err(e)),
        };
        self.checks.push(Check::of(label, role.as_str(), result));
        config
    }

    fn bucket(&mut self, label: &str, config: Option<&SdkConfig>, b: &BucketRef) {
        let url = format!("s3://{}/{}", b.bucket, b.prefix);
        let Some(config) = config else {
            self.checks.push(Check {
                check: label.into(),
                target: url,
                ok: false,
                detail: format!("skipped: `{}` could not be assumed", b.role),
                hints: Vec::new(),
            });
            return;
        };
        let s3 =
            aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(self.aws.custom_endpoint()).build());
        let req = s3.list_objects_v2().bucket(&b.bucket).prefix(&b.prefix).max_keys(1);
        let r = self.aws.rt.block_on(req.send()).map(|_| "listable".to_owned()).map_err(|e| {
            error::map(error::Attempt { who: b.role.as_str(), action: "s3:ListBucket", resource: &url }, &e)
                .hint("does the bucket exist in that account (see bootstrap/)?")
        });
        self.checks.push(Check::of(label, &url, r));
    }
}

/// Runs every check for an aws pipeline; `pinned` is the pipeline's pinned public key, if readable.
pub fn doctor(pipeline: &Pipeline, pinned: Option<&PublicKey>) -> Result<Vec<Check>> {
    let settings = pipeline.aws.as_ref().ok_or_else(|| Error::invalid(format!("pipeline `{}` has no `aws:` settings", pipeline.name)))?;
    let aws = Aws::load(Some(settings.region.as_str()))?;
    let caller = aws.caller_arn(&aws.base);
    let mut d =
        Doctor { aws: &aws, pipeline, actor: caller.as_ref().map_or_else(|_| "unknown".to_owned(), Clone::clone), checks: Vec::new() };
    d.checks.push(Check::of("caller identity", "sts:GetCallerIdentity", caller.clone()));
    let Ok(caller) = caller else { return Ok(d.checks) };
    let Some(orch) = d.assume("orchestrator", (&aws.base, &caller), &settings.orchestrator, false) else { return Ok(d.checks) };
    let from = (&orch, settings.orchestrator.as_str());
    let store = d.assume("store role", from, &settings.store.role, true);
    d.bucket("store bucket", store.as_ref(), &settings.store);
    let audit = d.assume("audit role", from, &settings.audit.role, true);
    d.bucket("audit bucket", audit.as_ref(), &settings.audit);
    let role_in = |account: &ferry_core::ids::AccountId, role: &Option<String>| {
        RoleArn::new(account, role.as_deref().unwrap_or(&settings.deploy_role))
    };
    if let Ok(build) = role_in(&pipeline.build.account, &pipeline.build.role) {
        d.assume(&format!("build role ({})", pipeline.build.account_alias), from, &build, true);
    }
    for stage in &pipeline.stages {
        let Ok(role) = role_in(&stage.account, &stage.role) else { continue };
        if !pipeline.policy.protected_stages.contains(&stage.name) {
            d.assume(&format!("stage `{}` role", stage.name), from, &role, true);
            continue;
        }
        for (who, config) in [("the orchestrator", from), ("the caller", (&aws.base, caller.as_str()))] {
            let direct = aws.assume_chain(Some(config), &[d.hop(&role, true)]);
            d.checks.push(Check {
                check: format!("protected stage `{}`: not reachable by {who}", stage.name),
                target: role.to_string(),
                ok: direct.is_err(),
                detail: match &direct {
                    Ok(_) => format!("{who} assumed `{role}` directly: its gates hold only inside the ferry binary"),
                    Err(e) => format!("refused ({})", e.message),
                },
                hints: if direct.is_ok() {
                    vec![
                        "deploy the role with bootstrap/member-role.yaml `Protected=true` (it then trusts only the gatekeeper) and the orchestrator with `ProtectedDeployRoleArns`; `ferry bootstrap` prints both".into(),
                    ]
                } else {
                    Vec::new()
                },
            });
        }
        let probe = match &settings.gatekeeper {
            None => Err(Error::invalid(format!("stage `{}` is protected, but the pipeline names no gatekeeper", stage.name))
                .hint("set `aws.gatekeeper` to bootstrap/gatekeeper.yaml's function (`ferry bootstrap` prints its stack)")),
            Some(function) => {
                let gk = crate::gatekeeper::Gatekeeper::new(function, settings.region.as_str(), &orch, &aws.base);
                let ask = ferry_core::ports::Protected {
                    pipeline: pipeline.name.clone(),
                    release: "r0000000000000000".parse().map_err(|e: ferry_core::ids::IdError| Error::failed(e.to_string()))?,
                    stage: stage.name.clone(),
                };
                match aws.rt.block_on(gk.ask(&ask, std::time::Duration::from_secs(900))) {
                    Err(e) if e.message.contains("is not in the store") => Ok(format!("`{function}` answers and judges who asks")),
                    Err(e) => Err(e),
                    Ok(_) => Err(Error::failed(format!("`{function}` handed out credentials for a release that does not exist"))),
                }
            }
        };
        let target = settings.gatekeeper.as_ref().map_or_else(|| "aws.gatekeeper".to_owned(), ToString::to_string);
        d.checks.push(Check::of(&format!("protected stage `{}`: gatekeeper", stage.name), &target, probe));
    }
    if let SigningKey::Kms { key_arn, role, region } = &pipeline.signing.key
        && let Some(config) = d.assume("signer role", from, role, true)
    {
        let config = config.to_builder().region(aws_config::Region::new(region.to_string())).build();
        let r = match pinned {
            None => Err(Error::invalid(format!("the pinned public key `{}` cannot be read", pipeline.public_key_path().display()))
                .hint(format!("{} (the security stack's SigningKeyArn)", pipeline.key_export_command()))),
            Some(pinned) => crate::kms::KmsSigner::new(&aws, &config, key_arn, role.as_str(), pinned).and_then(|signer| {
                use ferry_core::attestation::Signer as _;
                let probe = b"ferry doctor probe";
                let sig = signer.sign(probe)?;
                if pinned.verify(probe, &sig) {
                    Ok(format!("signs; matches the pinned key {}", pinned.keyid()))
                } else {
                    Err(Error::failed("KMS signature does not verify with the pinned key"))
                }
            }),
        };
        d.checks.push(Check::of("KMS signing key", key_arn, r));
    }
    Ok(d.checks)
}
