//! The gatekeeper function (issue #12): the one principal protected stages' deploy roles trust.
//! Asked for a protected stage's credentials, it finds out who asks (the caller's signed
//! `GetCallerIdentity`, sent to STS by the function itself: `ferry_aws::identity`), reads the
//! pipeline's published trust root and the central store — never anything the caller says
//! beyond which release and stage — and decides (`ferry_core::gatekeeper::decide`). Only an
//! admitted request gets a session: the stage's deploy role assumed with the root's external
//! id, for at most an hour, tagged with release, stage, caller and approvers, with a session
//! policy limited to the stage's declared actions where AWS allows it. Every decision, given
//! or refused, is appended to the gatekeeper's own audit log (`gatekeeper/` in the audit bucket,
//! which only its role may write).
//!
//! Configuration (the function's environment, set by `bootstrap/gatekeeper.yaml`):
//! `FERRY_STORE_BUCKET`, `FERRY_STORE_PREFIX`, `FERRY_STORE_ROLE` (the read-only role in the
//! artifacts account it reads the store through), `FERRY_AUDIT_BUCKET`, `FERRY_AUDIT_PREFIX`.

use std::sync::Arc;
use std::time::Duration;

use aws_credential_types::provider::ProvideCredentials as _;
use ferry_aws::chain::{Aws, Hop, caller_tag, source_identity, sts_name};
use ferry_aws::s3::Bucket;
use ferry_core::gatekeeper::{Answer, Ask, decide, record, wire};
use ferry_core::ids::Actor;
use ferry_core::ports::Clock;
use ferry_core::trust::{TrustRoot, TrustedStage};
use ferry_core::{Error, Result};
use serde_json::json;

/// Where the gatekeeper reads and writes, from its environment.
#[derive(Debug, Clone)]
pub struct Config {
    pub store_bucket: String,
    pub store_prefix: String,
    /// The store's reader role (its objects are encrypted with their account's S3 key, which
    /// another account cannot use directly); the execution role's own credentials without one.
    pub store_role: Option<ferry_core::ids::RoleArn>,
    pub audit_bucket: String,
    pub audit_prefix: String,
}

impl Config {
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| std::env::var(name).unwrap_or_default();
        let required = |name: &str| {
            let v = var(name);
            if v.is_empty() { Err(Error::invalid(format!("the gatekeeper needs `{name}` in its environment"))) } else { Ok(v) }
        };
        Ok(Self {
            store_bucket: required("FERRY_STORE_BUCKET")?,
            store_prefix: var("FERRY_STORE_PREFIX"),
            store_role: match var("FERRY_STORE_ROLE") {
                r if r.is_empty() => None,
                r => Some(r.parse().map_err(|e: ferry_core::ids::IdError| Error::invalid(format!("FERRY_STORE_ROLE: {e}")))?),
            },
            audit_bucket: required("FERRY_AUDIT_BUCKET")?,
            audit_prefix: var("FERRY_AUDIT_PREFIX"),
        })
    }
}

/// A session handed out, and whether a session policy bounds it.
type Session = (wire::Credentials, bool);

/// The function's state between invocations: its AWS clients, who it is, its records.
pub struct Gatekeeper {
    aws: Aws,
    /// Its own identity (its execution role's session): the actor of its audit events.
    me: Actor,
    records: ferry_core::storage::Records,
    clock: Arc<dyn Clock>,
    /// STS, where callers' identity proofs are checked.
    sts: String,
}

impl Gatekeeper {
    /// Connects with the execution role's credentials (the environment's).
    pub fn connect(config: &Config) -> Result<Self> {
        let aws = Aws::load(None)?;
        let me: Actor = aws.caller_arn(&aws.base)?.parse().map_err(|e: ferry_core::ids::IdError| Error::failed(e.to_string()))?;
        let region = aws.base.region().map(ToString::to_string).unwrap_or_default();
        let sts = ferry_aws::identity::sts_endpoint(&aws.base, &region);
        let bucket = |config: &aws_config::SdkConfig, who: &str, name: &str, prefix: &str| {
            Bucket::new(aws.rt.clone(), config, name, prefix.trim_matches('/'), who, aws.custom_endpoint())
        };
        let audit = bucket(&aws.base, me.as_str(), &config.audit_bucket, &config.audit_prefix);
        let store = match &config.store_role {
            None => bucket(&aws.base, me.as_str(), &config.store_bucket, &config.store_prefix),
            Some(role) => {
                let hop = Hop {
                    role: role.clone(),
                    session_name: "ferry-gatekeeper".into(),
                    source_identity: None,
                    tags: Vec::new(),
                    external_id: None,
                    duration: None,
                    policy: None,
                };
                let reader = aws.assume_chain(Some((&aws.base, me.as_str())), &[hop])?;
                bucket(&reader, role.as_str(), &config.store_bucket, &config.store_prefix)
            }
        };
        let clock: Arc<dyn Clock> = Arc::new(ferry_core::clock::SystemClock);
        let mut records = ferry_core::storage::open(ferry_core::storage::Backing {
            objects: Arc::new(store),
            audit: Arc::new(audit.under(ferry_aws::backend::GATEKEEPER_PREFIX)),
            trust: Arc::new(audit.under(ferry_aws::backend::TRUST_PREFIX)),
            liveness: Arc::new(ferry_core::ports::LeasesOnly("ferry-gatekeeper".into())),
            clock: clock.clone(),
            segment_size: ferry_core::storage::audit::DEFAULT_SEGMENT_SIZE,
            after_write: None,
            keep_copies: None,
        });
        // It outlives publications: every ask reads the latest root.
        records.trust =
            Box::new(ferry_core::storage::trust::Trust::uncached(Arc::new(audit.under(ferry_aws::backend::TRUST_PREFIX)), clock.clone()));
        Ok(Self { aws, me, records, clock, sts })
    }

    /// Answers one request. `Err` only when the gatekeeper itself cannot work (its store or
    /// log unreachable); every decision about the request is an answer, and is audited.
    pub fn handle(&self, request: &wire::Request) -> Result<wire::Response> {
        let (caller, answer, session) = self.judge(request)?;
        let granted = session
            .as_ref()
            .map_or(serde_json::Value::Null, |(c, bounded)| json!({"role": c.role, "expires_at": c.expiration, "session_policy": bounded}));
        let (pipeline, release, stage) = (&request.pipeline, &request.release, &request.stage);
        let event = record(self.records.audit.as_ref(), &self.me, pipeline, release, stage, caller.as_ref(), &answer, granted)?;
        if session.is_none() {
            tracing::info!(%pipeline, %release, %stage, "no credentials: {answer:?}");
        }
        Ok(wire::Response { answer, caller, credentials: session.map(|(c, _)| c), audit_seq: Some(event.seq) })
    }

    /// Who asks (if that could be proven), the answer, and with an admission the session
    /// handed out (and whether a session policy bounds it).
    fn judge(&self, request: &wire::Request) -> Result<(Option<Actor>, Answer, Option<Session>)> {
        let refuse = |reason: String| Answer::Refuse { reason };
        if request.version != wire::VERSION {
            return Ok((None, refuse(format!("request version {} is not {}", request.version, wire::VERSION)), None));
        }
        let binding = request.binding();
        let proof = ferry_aws::identity::verify(&self.sts, &request.identity, wire::BINDING_HEADER, &binding);
        let caller = match self.aws.rt.block_on(proof) {
            Ok(caller) => caller,
            Err(e) => return Ok((None, refuse(format!("who is asking could not be proven: {}", e.message)), None)),
        };
        let Some(root) = self.records.trust.current(&request.pipeline)?.map(|p| p.root) else {
            return Ok((Some(caller), refuse(format!("no trust root is published for pipeline `{}`", request.pipeline)), None));
        };
        let stage = root.stages.iter().find(|s| s.stage == request.stage);
        if stage.is_some_and(|s| !s.protected) {
            return Ok((Some(caller), refuse(format!("stage `{}` is not protected by the trust root", request.stage)), None));
        }
        let seconds = request.duration_seconds;
        if !(900..=wire::MAX_SECONDS).contains(&seconds) {
            return Ok((Some(caller), refuse(format!("a session lasts 900 to {} seconds, not {seconds}", wire::MAX_SECONDS)), None));
        }
        let ask = Ask { release: request.release.clone(), stage: request.stage.clone(), caller: caller.clone() };
        let answer = decide(self.records.store.as_ref(), self.records.state.as_ref(), self.clock.now(), &root, &ask)?;
        let (Answer::Admit { approved_by, .. }, Some(stage)) = (&answer, stage) else { return Ok((Some(caller), answer, None)) };
        Ok(match self.session(&root, stage, &ask, approved_by, seconds) {
            Ok(c) => (Some(caller), answer.clone(), Some((c, session_policy(&stage.actions).is_some()))),
            Err(e) => (Some(caller), refuse(format!("the evidence holds, but the deploy role could not be assumed: {}", e.message)), None),
        })
    }

    /// The stage's session: its deploy role, assumed now.
    fn session(
        &self,
        root: &TrustRoot,
        stage: &TrustedStage,
        ask: &Ask,
        approved_by: &[String],
        seconds: u32,
    ) -> Result<wire::Credentials> {
        let role = stage.role.clone().ok_or_else(|| {
            Error::invalid(format!(
                "the trust root of `{}` names no deploy role for `{}` (publish it from an aws pipeline)",
                root.pipeline, stage.stage
            ))
        })?;
        let approvers = approved_by.join(" ");
        let hop = Hop {
            role: role.clone(),
            session_name: sts_name(&format!("ferry-gk-{}-{}", ask.stage, ask.release)),
            source_identity: Some(source_identity(ask.caller.as_str(), &[])),
            tags: vec![
                ("ferry-pipeline".into(), root.pipeline.to_string()),
                ("ferry-release".into(), ask.release.to_string()),
                ("ferry-stage".into(), ask.stage.to_string()),
                caller_tag(ask.caller.as_str()),
                ("ferry-approved-by".into(), if approvers.is_empty() { "-".into() } else { approvers.chars().take(256).collect() }),
            ],
            external_id: root.external_id.clone(),
            duration: Some(Duration::from_secs(u64::from(seconds))),
            policy: session_policy(&stage.actions),
        };
        let config = self.aws.assume_chain(None, &[hop])?;
        let provider = config.credentials_provider().ok_or_else(|| Error::failed(format!("no credentials for `{role}`")))?;
        let c = self
            .aws
            .rt
            .block_on(provider.provide_credentials())
            .map_err(|e| Error::failed(std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)))?;
        let expiration = c
            .expiry()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| ferry_core::clock::Timestamp::from_unix(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)))
            .ok_or_else(|| Error::failed(format!("the session of `{role}` has no expiry")))?;
        Ok(wire::Credentials {
            role,
            access_key_id: c.access_key_id().to_owned(),
            secret_access_key: c.secret_access_key().to_owned(),
            session_token: c.session_token().unwrap_or_default().to_owned(),
            expiration,
        })
    }
}

/// The session policy for a stage whose deploy actions are `kinds`: only their services, where
/// that bounds what they need. A command can do anything its role may, and a CloudFormation
/// stack creates whatever its template says with the caller's permissions, so a stage with
/// either gets no session policy (the role's own policy is the bound).
pub fn session_policy(kinds: &[String]) -> Option<String> {
    let mut actions = vec!["sts:GetCallerIdentity"];
    for kind in kinds {
        match kind.as_str() {
            "s3" => actions.extend(["s3:PutObject", "s3:GetObject", "s3:ListBucket", "s3:HeadObject", "s3:GetBucketLocation"]),
            "ecr" => actions.push("ecr:*"),
            "codepipeline" => actions.push("codepipeline:*"),
            _ => return None,
        }
    }
    if kinds.is_empty() {
        return None;
    }
    Some(json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}).to_string())
}

#[cfg(test)]
mod tests {
    use super::session_policy;

    fn kinds(k: &[&str]) -> Vec<String> {
        k.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_session_policy_bounds_a_stage_to_its_declared_services_where_that_is_enough() {
        let p: serde_json::Value = serde_json::from_str(&session_policy(&kinds(&["codepipeline", "s3"])).unwrap()).unwrap();
        let actions: Vec<&str> = p["Statement"][0]["Action"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(actions.contains(&"codepipeline:*") && actions.contains(&"s3:PutObject"), "{actions:?}");
        assert!(!actions.iter().any(|a| a.starts_with("iam:") || *a == "*"), "{actions:?}");
        // A command or a stack can need anything the role allows: no narrower bound exists.
        assert_eq!(session_policy(&kinds(&["command", "s3"])), None);
        assert_eq!(session_policy(&kinds(&["cloudformation"])), None);
        assert_eq!(session_policy(&[]), None);
    }
}
