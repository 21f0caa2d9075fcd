//! Validation of what only the aws backend needs: the `aws:` section (region, entry role,
//! external id, session length, central store), the audit bucket, KMS key ARNs and role names.

use std::collections::BTreeMap;
use std::time::Duration;

use super::keys;
use super::reader::{Cx, Fields};
use super::{AwsSettings, Backend, BucketRef, SigningKey};
use crate::ids::{AccountId, FunctionRef, Region, RoleArn};
use crate::yaml::Node;

fn is_role_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@_-/".contains(c))
}

fn is_bucket_name(s: &str) -> bool {
    (3..=63).contains(&s.len())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl Cx {
    pub(super) fn role_name(&mut self, f: &Fields<'_>, key: &str) -> Option<String> {
        let node = f.get(key)?;
        let name = self.string(node, &f.path(key))?;
        if is_role_name(&name) {
            Some(name)
        } else {
            self.error(
                node,
                &f.path(key),
                format!("invalid role name `{name}`"),
                Some("letters, digits and `+=,.@_-/`, at most 64".into()),
            );
            None
        }
    }

    /// `arn:aws:kms:REGION:ACCOUNT:key/ID` (or `alias/NAME`): signing assumes `role` in ACCOUNT.
    pub(super) fn kms_key(&mut self, node: &Node, role: Option<&str>) -> Option<SigningKey> {
        let (arn, region, account) = self.kms_arn(node, "signing.kms_key")?;
        let role = RoleArn::new(&account, role.unwrap_or("ferry-signer")).ok()?;
        Some(SigningKey::Kms { key_arn: arn, role, region })
    }

    /// A KMS key ARN, with the region and account it names.
    pub(super) fn kms_arn(&mut self, node: &Node, field: &str) -> Option<(String, Region, AccountId)> {
        let arn = self.string(node, field)?;
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let parsed = match parts.as_slice() {
            ["arn", "aws" | "aws-cn" | "aws-us-gov", "kms", region, account, resource]
                if resource.starts_with("key/") || resource.starts_with("alias/") =>
            {
                region.parse::<Region>().ok().zip(account.parse::<AccountId>().ok())
            }
            _ => None,
        };
        let Some((region, account)) = parsed else {
            self.error(
                node,
                field,
                format!("invalid KMS key ARN `{arn}`"),
                Some("expected `arn:aws:kms:REGION:ACCOUNT:key/KEY_ID`".into()),
            );
            return None;
        };
        Some((arn, region, account))
    }

    fn bucket_ref(
        &mut self,
        f: &Fields<'_>,
        default_role: &str,
        accounts: &BTreeMap<String, AccountId>,
        declared: &[String],
    ) -> Option<BucketRef> {
        let account = self.required(f, "account").and_then(|n| self.account_ref(n, &f.path("account"), accounts, declared));
        let bucket = self.required(f, "bucket").and_then(|n| self.string(n, &f.path("bucket")));
        if let (Some(b), Some(n)) = (&bucket, f.get("bucket"))
            && !is_bucket_name(b)
        {
            self.error(
                n,
                &f.path("bucket"),
                format!("invalid S3 bucket name `{b}`"),
                Some("3-63 lowercase letters, digits, `-` and `.`".into()),
            );
        }
        let prefix = self.opt_string(f, "prefix").unwrap_or_default();
        let role = self.role_name(f, "role").unwrap_or_else(|| default_role.to_owned());
        let (account_alias, account) = account?;
        Some(BucketRef {
            account_alias,
            role: RoleArn::new(&account, &role).ok()?,
            bucket: bucket?,
            prefix: prefix.trim_matches('/').to_owned(),
        })
    }

    /// The `aws:` section and the audit bucket; required with `backend: aws`. `Some(None)` when
    /// the backend is local; `None` when something was wrong (already reported).
    pub(super) fn aws(
        &mut self,
        root: &Node,
        backend: Option<Backend>,
        node: Option<&Node>,
        audit: Option<&Fields<'_>>,
        accounts: &BTreeMap<String, AccountId>,
        declared: &[String],
    ) -> Option<Option<AwsSettings>> {
        if backend != Some(Backend::Aws) {
            return Some(None);
        }
        let Some(node) = node else {
            self.error(
                root,
                "aws",
                "`backend: aws` needs an `aws:` section".into(),
                Some("set region, orchestrator and store (see README, AWS set-up)".into()),
            );
            return None;
        };
        let f = self.fields(node, "aws", keys::AWS)?;
        let region = self.required(&f, "region").and_then(|n| self.parsed::<Region>(n, "aws.region"));
        let orchestrator = self.required(&f, "orchestrator").and_then(|n| {
            let o = self.fields(n, "aws.orchestrator", keys::ROLE_REF)?;
            let account = self.required(&o, "account").and_then(|n| self.account_ref(n, "aws.orchestrator.account", accounts, declared));
            let role = self.role_name(&o, "role").unwrap_or_else(|| "ferry-orchestrator".into());
            RoleArn::new(&account?.1, &role).ok()
        });
        let external_id = self.opt_string(&f, "external_id");
        let session_duration = match f.get("session_duration") {
            None => Some(Duration::from_secs(3600)),
            Some(n) => self.duration(n, "aws.session_duration").filter(|d| {
                // Every hop after the first is role chaining, which AWS caps at one hour (it
                // refuses longer chained sessions although the role's maximum allows them).
                let ok = (900..=3600).contains(&d.as_secs());
                if !ok {
                    let why =
                        "a session lasts between 15m and 1h: ferry assumes its roles as a chain, and AWS limits chained sessions to 1h";
                    self.error(n, "aws.session_duration", why.into(), Some("use `1h` or less".into()));
                }
                ok
            }),
        };
        let deploy_role = self.role_name(&f, "deploy_role").unwrap_or_else(|| "ferry-deploy".into());
        let gatekeeper = match f.get("gatekeeper") {
            None => Some(None),
            Some(n) => self.parsed::<FunctionRef>(n, "aws.gatekeeper").map(Some),
        };
        let store = self.required(&f, "store").and_then(|n| {
            let s = self.fields(n, "aws.store", keys::STORE)?;
            self.bucket_ref(&s, "ferry-artifacts", accounts, declared)
        });
        let audit = match audit {
            Some(a) => self.bucket_ref(a, "ferry-audit", accounts, declared),
            None => {
                self.error(
                    root,
                    "audit",
                    "`backend: aws` needs `audit: {account, bucket}` (the security account's log bucket)".into(),
                    None,
                );
                None
            }
        };
        Some(Some(AwsSettings {
            region: region?,
            orchestrator: orchestrator?,
            external_id,
            session_duration: session_duration?,
            deploy_role,
            gatekeeper: gatekeeper?,
            store: store?,
            audit: audit?,
        }))
    }
}
