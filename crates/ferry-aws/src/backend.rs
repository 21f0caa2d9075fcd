//! Connecting a pipeline to AWS: find out who we are (`GetCallerIdentity`, never a name the
//! user types), assume the orchestrator role in the tooling account, and from it the store
//! role (artifacts account: store, state, locks, the central ECR registry) and the audit role
//! (security account); build every port on them.

use std::path::PathBuf;

use aws_config::SdkConfig;
use ferry_core::ids::{Actor, RoleArn};
use ferry_core::keys::PublicKey;
use ferry_core::pipeline::{AwsSettings, BucketRef, Pipeline, SigningKey};
use ferry_core::ports::{Executor, Services};
use ferry_core::{Error, Result};

use crate::chain::{Aws, Hop};
use crate::deploy::AwsDeployer;
use crate::ecr::EcrRegistry;
use crate::exec::{AwsExecutor, StageAccess};
use crate::kms::KmsSigner;
use crate::s3::Bucket;

/// What the caller supplies besides the pipeline.
pub struct Connect {
    /// What this process is doing, for session names: `build`, `promote`, `approve`…
    pub purpose: String,
    /// Where deploy actions get their artifact copies.
    pub work_dir: PathBuf,
    /// This machine's name, recorded in locks.
    pub host: String,
    /// Runs command processes (the shell executor).
    pub exec: Box<dyn Executor>,
    /// Probes URLs for http gates.
    pub http: Box<dyn ferry_core::ports::HttpProbe>,
    /// Delivers notifications (webhooks; the caller adds SSM and SNS from `secret_reader` and
    /// `topic_publisher` once connected).
    pub notifier: Box<dyn ferry_core::ports::Notifier>,
    /// Events per sealed audit segment, for a log created now.
    pub audit_segment_size: u64,
    /// Called after every durable write (crash tests).
    pub after_write: Option<ferry_core::storage::AfterWrite>,
    /// Time for every port (leases, retries, waits).
    pub clock: std::sync::Arc<dyn ferry_core::ports::Clock>,
    /// Raised when the process is asked to stop (SIGINT/SIGTERM).
    pub interrupt: std::sync::Arc<ferry_core::ports::Stop>,
    /// A CI's OpenID Connect token to start from (GitHub Actions), instead of ambient credentials.
    pub web_identity: Option<WebIdentity>,
    /// Session tags every hop carries (repository, workflow, run id, actor, commit of the CI run).
    pub ci_tags: Vec<(String, String)>,
}

/// Starting a chain from an OIDC token: `role` (default: the orchestrator) is assumed with it,
/// and again with a fresh token from `tokens` before the session expires.
pub struct WebIdentity {
    pub tokens: crate::chain::TokenSource,
    pub role: Option<RoleArn>,
    pub session_name: String,
}

pub struct AwsBackend {
    pub aws: Aws,
    /// The STS caller identity ferry runs as: the actor of every audit event and approval.
    pub actor: Actor,
    pub orchestrator: SdkConfig,
    pub settings: AwsSettings,
    pub services: Services,
    /// The gatekeeper's own log (read through the audit role), when the pipeline has one.
    pub gatekeeper_log: Option<Box<dyn ferry_core::ports::AuditLog>>,
    pipeline: String,
    ci_tags: Vec<(String, String)>,
}

impl std::fmt::Debug for AwsBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AwsBackend({} as {})", self.pipeline, self.actor)
    }
}

impl AwsBackend {
    fn hop(&self, role: &RoleArn, session: &str) -> Hop {
        hop(&self.settings, &self.actor, &self.pipeline, role, session, &self.ci_tags)
    }

    /// Credentials of `role`, assumed from the orchestrator.
    pub fn assume(&self, role: &RoleArn, session: &str) -> Result<SdkConfig> {
        self.aws.assume_chain(Some((&self.orchestrator, self.settings.orchestrator.as_str())), &[self.hop(role, session)])
    }

    /// A KMS signer for the pipeline's key, checked against the pinned public key.
    pub fn signer(&self, pipeline: &Pipeline, pinned: &PublicKey) -> Result<KmsSigner> {
        let SigningKey::Kms { key_arn, role, region } = &pipeline.signing.key else {
            return Err(Error::invalid("the pipeline's signing key is not a KMS key"));
        };
        let config = self.assume(role, &format!("ferry-{}-sign", self.pipeline))?;
        let config = config.to_builder().region(aws_config::Region::new(region.to_string())).build();
        KmsSigner::new(&self.aws, &config, key_arn, role.as_str(), pinned)
    }
}

impl AwsBackend {
    /// A signer for an approver's own KMS key `key_arn`, with the caller's credentials as they
    /// are (no role is assumed: only the approver's principal may sign with it), checked
    /// against the pinned public key.
    pub fn approver_signer(&self, key_arn: &str, pinned: &PublicKey) -> Result<KmsSigner> {
        let region = key_arn.split(':').nth(3).unwrap_or_default().to_owned();
        let config = self.aws.base.to_builder().region(aws_config::Region::new(region)).build();
        KmsSigner::new(&self.aws, &config, key_arn, self.actor.as_str(), pinned)
    }

    /// Reads an SSM parameter (decrypted), acting as the orchestrator (tooling account).
    pub fn secret_reader(&self) -> ferry_core::ports::SecretReader {
        let (rt, ssm, who) = (self.aws.rt.clone(), aws_sdk_ssm::Client::new(&self.orchestrator), self.settings.orchestrator.to_string());
        Box::new(move |name: &str| {
            let out = rt
                .block_on(ssm.get_parameter().name(name).with_decryption(true).send())
                .map_err(|e| crate::error::map(crate::error::Attempt { who: &who, action: "ssm:GetParameter", resource: name }, &e))?;
            out.parameter()
                .and_then(|p| p.value())
                .map(str::to_owned)
                .ok_or_else(|| Error::failed(format!("SSM parameter `{name}` has no value")))
        })
    }

    /// Publishes to an SNS topic, acting as the orchestrator.
    pub fn topic_publisher(&self) -> ferry_core::ports::TopicPublisher {
        let (rt, sns, who) = (self.aws.rt.clone(), aws_sdk_sns::Client::new(&self.orchestrator), self.settings.orchestrator.to_string());
        Box::new(move |topic: &str, subject: &str, message: &str| {
            // SNS subjects are at most 100 characters.
            let subject: String = subject.chars().take(100).collect();
            rt.block_on(sns.publish().topic_arn(topic).subject(subject).message(message).send())
                .map(|_| ())
                .map_err(|e| crate::error::map(crate::error::Attempt { who: &who, action: "sns:Publish", resource: topic }, &e))
        })
    }

    /// Starts a CodeBuild build with environment overrides, acting as the orchestrator.
    pub fn build_starter(&self) -> ferry_core::ports::BuildStarter {
        let (rt, codebuild, who) =
            (self.aws.rt.clone(), aws_sdk_codebuild::Client::new(&self.orchestrator), self.settings.orchestrator.to_string());
        Box::new(move |project: &str, env: &[(String, String)]| {
            let mut start = codebuild.start_build().project_name(project);
            for (name, value) in env {
                let var = aws_sdk_codebuild::types::EnvironmentVariable::builder()
                    .name(name)
                    .value(value)
                    .r#type(aws_sdk_codebuild::types::EnvironmentVariableType::Plaintext)
                    .build()
                    .map_err(|e| Error::failed(format!("CodeBuild environment variable `{name}`: {e}")))?;
                start = start.environment_variables_override(var);
            }
            let out = rt.block_on(start.send()).map_err(|e| {
                crate::error::map(crate::error::Attempt { who: &who, action: "codebuild:StartBuild", resource: project }, &e)
            })?;
            tracing::info!("started CodeBuild build {}", out.build_value().and_then(|b| b.id()).unwrap_or(project));
            Ok(())
        })
    }
}

fn hop(settings: &AwsSettings, actor: &Actor, pipeline: &str, role: &RoleArn, session: &str, ci_tags: &[(String, String)]) -> Hop {
    let mut tags = vec![("ferry-pipeline".to_owned(), pipeline.to_owned()), crate::chain::caller_tag(actor.as_str())];
    tags.extend(ci_tags.iter().cloned());
    Hop {
        role: role.clone(),
        session_name: session.to_owned(),
        source_identity: Some(crate::chain::source_identity(actor.as_str(), ci_tags)),
        tags,
        external_id: if role == &settings.orchestrator { None } else { settings.external_id.clone() },
        duration: Some(settings.session_duration),
        policy: None,
    }
}

/// Connects `pipeline` (which must use `backend: aws`) and builds its ports.
pub fn connect(pipeline: &Pipeline, c: Connect) -> Result<AwsBackend> {
    let settings = pipeline.aws.clone().ok_or_else(|| Error::invalid(format!("pipeline `{}` has no `aws:` settings", pipeline.name)))?;
    let mut aws = Aws::load(Some(settings.region.as_str()))?;
    if let Some(w) = &c.web_identity {
        let role = w.role.as_ref().unwrap_or(&settings.orchestrator);
        let origin = if w.role.is_none() { pipeline.origin("aws.orchestrator") } else { None };
        aws.base =
            aws.assume_with_web_identity(role, &w.session_name, w.tokens.clone(), settings.session_duration).map_err(|e| e.at(origin))?;
    }
    let actor: Actor = aws.caller_arn(&aws.base)?.parse().map_err(|e: ferry_core::ids::IdError| Error::failed(e.to_string()))?;
    let name = pipeline.name.to_string();
    let session = format!("ferry-{name}-{}", c.purpose);
    // CI may already run as the orchestrator (GitHub OIDC with AWS_ROLE_ARN set to it).
    let orchestrator = if settings.orchestrator.is_session(actor.as_str()) {
        aws.base.clone()
    } else {
        aws.assume_chain(Some((&aws.base, actor.as_str())), &[hop(&settings, &actor, &name, &settings.orchestrator, &session, &c.ci_tags)])
            .map_err(|e| e.at(pipeline.origin("aws.orchestrator")))?
    };
    // `field`: where the bucket's role is set (`aws.store`; the audit bucket's is `audit`).
    let assume = |b: &BucketRef, field: &str| -> Result<SdkConfig> {
        aws.assume_chain(
            Some((&orchestrator, settings.orchestrator.as_str())),
            &[hop(&settings, &actor, &name, &b.role, &session, &c.ci_tags)],
        )
        .map_err(|e| e.at(pipeline.origin(&format!("{field}.role"))))
    };
    let bucket = |b: &BucketRef, config: &SdkConfig| {
        Bucket::new(aws.rt.clone(), config, &b.bucket, &b.prefix, b.role.as_str(), aws.custom_endpoint())
    };
    let store_config = assume(&settings.store, "aws.store")?;
    let (store, audit) = (bucket(&settings.store, &store_config), bucket(&settings.audit, &assume(&settings.audit, "audit")?));
    let trust = audit.under(TRUST_PREFIX);
    let gatekeeper_log = settings.gatekeeper.as_ref().map(|_| -> Box<dyn ferry_core::ports::AuditLog> {
        Box::new(ferry_core::storage::audit::Audit::new(
            std::sync::Arc::new(audit.under(GATEKEEPER_PREFIX)),
            ferry_core::storage::audit::DEFAULT_SEGMENT_SIZE,
            c.clock.clone(),
        ))
    });
    let registry = EcrRegistry {
        rt: aws.rt.clone(),
        client: aws_sdk_ecr::Client::new(&store_config),
        account: settings.store.role.account().to_string(),
        region: settings.region.to_string(),
        role: settings.store.role.to_string(),
    };
    let access = StageAccess {
        aws: aws.clone(),
        orchestrator: orchestrator.clone(),
        settings: settings.clone(),
        ci_tags: c.ci_tags.clone(),
        sessions: std::sync::Arc::default(),
        gatekeeper: settings
            .gatekeeper
            .as_ref()
            .map(|f| crate::gatekeeper::Gatekeeper::new(f, settings.region.as_str(), &orchestrator, &aws.base)),
    };
    let records = ferry_core::storage::open(ferry_core::storage::Backing {
        objects: std::sync::Arc::new(store),
        audit: std::sync::Arc::new(audit.under("audit")),
        trust: std::sync::Arc::new(trust),
        liveness: std::sync::Arc::new(ferry_core::ports::LeasesOnly(c.host)),
        clock: c.clock.clone(),
        segment_size: c.audit_segment_size,
        after_write: c.after_write,
        keep_copies: Some(c.work_dir.clone()),
    });
    let services = Services {
        store: records.store,
        state: records.state,
        locks: records.locks,
        audit: records.audit,
        trust: records.trust,
        exec: Box::new(AwsExecutor { access: access.clone(), inner: c.exec }),
        alarms: Box::new(crate::alarms::CloudWatchAlarms { access: access.clone() }),
        deployer: Box::new(AwsDeployer { access, store: store_config, store_role: settings.store.role.to_string() }),
        registry: Box::new(registry),
        http: c.http,
        notifier: c.notifier,
        notify_backoff: std::time::Duration::from_millis(500),
        clock: c.clock,
        interrupt: c.interrupt,
        work_dir: c.work_dir,
        account_root: None,
        attester: None,
    };
    Ok(AwsBackend { aws, actor, orchestrator, settings, services, gatekeeper_log, pipeline: name, ci_tags: c.ci_tags })
}

/// Where the published trust roots are: under the audit bucket's prefix, beside `audit/`.
pub const TRUST_PREFIX: &str = "trust";
/// Where the gatekeeper's own log is, beside them (`bootstrap/security.yaml` lets only its role
/// write there).
pub const GATEKEEPER_PREFIX: &str = "gatekeeper";
/// The role an administrator publishes trust roots with (`bootstrap/security.yaml` creates it
/// in the security account; the bucket policy lets no other principal write under `trust/`).
pub const TRUST_ADMIN_ROLE: &str = "ferry-trust-admin";

/// The published trust roots of `pipeline`, writable: `role` (default: the trust-admin role in
/// the audit bucket's account) assumed with the caller's own credentials — never through the
/// orchestrator, whose chain must not reach it. Returns the store and who the caller is.
pub fn trust_admin(
    pipeline: &Pipeline,
    role: Option<&RoleArn>,
    clock: std::sync::Arc<dyn ferry_core::ports::Clock>,
) -> Result<(Box<dyn ferry_core::ports::TrustStore>, Actor)> {
    let settings = pipeline.aws.clone().ok_or_else(|| Error::invalid(format!("pipeline `{}` has no `aws:` settings", pipeline.name)))?;
    let aws = Aws::load(Some(settings.region.as_str()))?;
    let actor: Actor = aws.caller_arn(&aws.base)?.parse().map_err(|e: ferry_core::ids::IdError| Error::failed(e.to_string()))?;
    let default = RoleArn::new(&settings.audit.role.account(), TRUST_ADMIN_ROLE).map_err(|e| Error::invalid(e.to_string()))?;
    let role = role.unwrap_or(&default);
    let hop = Hop {
        role: role.clone(),
        session_name: crate::chain::sts_name(&format!("ferry-{}-trust", pipeline.name)),
        source_identity: Some(crate::chain::source_identity(actor.as_str(), &[])),
        tags: vec![crate::chain::caller_tag(actor.as_str())],
        external_id: None,
        duration: None,
        policy: None,
    };
    let config = aws.assume_chain(Some((&aws.base, actor.as_str())), &[hop])?;
    let b = &settings.audit;
    let bucket = Bucket::new(aws.rt.clone(), &config, &b.bucket, &b.prefix, role.as_str(), aws.custom_endpoint()).under(TRUST_PREFIX);
    Ok((Box::new(ferry_core::storage::trust::Trust::new(std::sync::Arc::new(bucket), clock)), actor))
}
