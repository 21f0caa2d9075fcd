//! Runs commands with a target account's role credentials: the role is assumed through the
//! orchestrator (session named after pipeline, release and stage, source identity = the
//! actor), and the command finds its credentials at a container-credentials endpoint on
//! 127.0.0.1 (`creds`), refreshed for as long as it runs. Inherited identity settings (static
//! keys, profiles, web identity, other endpoints) are cleared so the command acts only as that
//! role. Credentials are never logged, nor put in the child's environment.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use aws_credential_types::provider::ProvideCredentials as _;
use ferry_core::ids::RoleArn;
use ferry_core::pipeline::AwsSettings;
use ferry_core::ports::{CommandOutcome, CommandSpec, Executor, Target};
use ferry_core::{Error, Result};

use crate::chain::{Aws, Hop};

/// Variables that would let a child pick another identity than the one we hand it.
pub const CLEARED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
];

/// Sessions made so far, by role and session name (shared by every clone of a `StageAccess`),
/// and whether each was assumed yet.
pub type Sessions = std::sync::Arc<std::sync::Mutex<BTreeMap<(String, String), (SdkConfig, RoleArn, bool)>>>;

/// Assumes the role of a command's or action's target account, through the orchestrator —
/// once per role and session in a process (every action, gate and command of a promotion
/// shares it; its provider refreshes the credentials before they expire).
#[derive(Clone)]
pub struct StageAccess {
    pub aws: Aws,
    /// Acting as the orchestrator role.
    pub orchestrator: SdkConfig,
    pub settings: AwsSettings,
    /// Session tags of the CI run (repository, workflow, run id, actor, commit).
    pub ci_tags: Vec<(String, String)>,
    /// Sessions made so far, by role and session name.
    pub sessions: Sessions,
    /// Where protected stages' sessions come from (`aws.gatekeeper`); without it they are
    /// assumed like any other (and `ferry doctor` says the orchestrator can reach them).
    pub gatekeeper: Option<crate::gatekeeper::Gatekeeper>,
}

impl StageAccess {
    /// Credentials of the target's role, assumed now (so a failure is known before anything
    /// starts); the session is named after pipeline, release and stage, and carries the actor
    /// as source identity and the target's tags.
    pub fn assume(&self, t: &Target) -> Result<(SdkConfig, RoleArn)> {
        self.get(t, true)
    }

    /// The target role's session, assumed when its credentials are first asked for (by an
    /// SDK call, or a command at its credentials endpoint).
    pub fn session(&self, t: &Target) -> Result<(SdkConfig, RoleArn)> {
        self.get(t, false)
    }

    fn get(&self, t: &Target, now: bool) -> Result<(SdkConfig, RoleArn)> {
        let role =
            RoleArn::new(&t.account, t.role.as_deref().unwrap_or(&self.settings.deploy_role)).map_err(|e| Error::invalid(e.to_string()))?;
        let key = (role.to_string(), t.session_name.clone());
        let found = self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).cloned();
        match found {
            Some((config, role, assumed)) if assumed || !now => return Ok((config, role)),
            Some((config, role, _)) => {
                // Made lazily before, asked for now: assumed through its provider.
                let provider = config.credentials_provider().ok_or_else(|| Error::failed(format!("no credentials for `{role}`")))?;
                self.aws
                    .rt
                    .block_on(provider.provide_credentials())
                    .map_err(|e| Error::failed(std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string)))?;
                self.remember(key, &config, &role, true);
                return Ok((config, role));
            }
            None => {}
        }
        if let (Some(ask), Some(gatekeeper)) = (&t.protected, &self.gatekeeper) {
            // Never assumed by ferry: handed out by the gatekeeper once it has checked the
            // evidence (at once, so a refusal is known before anything starts).
            let (config, role) = gatekeeper.session(&self.aws, &self.orchestrator, ask, self.settings.session_duration)?;
            let region = t.region.as_ref().map_or_else(|| self.settings.region.to_string(), ToString::to_string);
            let config = config.to_builder().region(aws_config::Region::new(region)).build();
            tracing::info!(role = %role, stage = %ask.stage, "the gatekeeper handed out the session of protected stage `{}`", ask.stage);
            self.remember(key, &config, &role, true);
            return Ok((config, role));
        }
        let hop = Hop {
            role: role.clone(),
            session_name: t.session_name.clone(),
            source_identity: Some(crate::chain::source_identity(t.actor.as_str(), &self.ci_tags)),
            tags: t
                .tags
                .iter()
                .map(|(k, v)| (k.replace(':', "-"), v.clone()))
                .chain([crate::chain::caller_tag(t.actor.as_str())])
                .chain(self.ci_tags.iter().cloned())
                .collect(),
            external_id: self.settings.external_id.clone(),
            duration: Some(self.settings.session_duration),
            policy: None,
        };
        let from = Some((&self.orchestrator, self.settings.orchestrator.as_str()));
        let config = if now { self.aws.assume_chain(from, &[hop])? } else { self.aws.lazy_chain(from, &[hop])? };
        let region = t.region.as_ref().map_or_else(|| self.settings.region.to_string(), ToString::to_string);
        let config = config.to_builder().region(aws_config::Region::new(region)).build();
        self.remember(key, &config, &role, now);
        Ok((config, role))
    }

    fn remember(&self, key: (String, String), config: &SdkConfig, role: &RoleArn, assumed: bool) {
        self.sessions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, (config.clone(), role.clone(), assumed));
    }
}

pub struct AwsExecutor {
    pub access: StageAccess,
    /// Runs the process once the environment is ready.
    pub inner: Box<dyn Executor>,
}

impl AwsExecutor {
    /// The command's environment for its target, and the endpoint serving its credentials
    /// (kept running until the command ends).
    fn credentials_env(&self, spec: &CommandSpec) -> Result<(BTreeMap<String, String>, Option<crate::creds::Endpoint>)> {
        let mut env = BTreeMap::new();
        let Some(t) = &spec.target else { return Ok((env, None)) };
        // Assumed when the command first asks for credentials: one that never calls AWS (a
        // build that only compiles) never assumes the role.
        let (config, role) = self.access.session(t)?;
        let provider = config.credentials_provider().ok_or_else(|| Error::failed(format!("no credentials for `{role}`")))?;
        let endpoint = crate::creds::serve(&self.access.aws, provider, role.to_string())?;
        env.extend(endpoint.env());
        let region = config.region().map(ToString::to_string).unwrap_or_default();
        env.insert("AWS_REGION".into(), region.clone());
        env.insert("AWS_DEFAULT_REGION".into(), region);
        env.insert("FERRY_ROLE_ARN".into(), role.to_string());
        tracing::info!(role = %role, session = %t.session_name, "`{}` gets the credentials of the target role (assumed when first asked for)", spec.label);
        Ok((env, Some(endpoint)))
    }
}

impl Executor for AwsExecutor {
    fn prepare(&self, target: &Target) -> Result<()> {
        self.access.assume(target).map(|_| ())
    }

    fn run(&self, spec: &CommandSpec) -> Result<CommandOutcome> {
        let (creds, _endpoint) = self.credentials_env(spec)?;
        let mut spec = spec.clone();
        for var in CLEARED {
            spec.env.remove(*var);
        }
        spec.clear_env.extend(CLEARED.iter().map(|v| (*v).to_owned()));
        spec.env.extend(creds);
        self.inner.run(&spec)
    }
}
