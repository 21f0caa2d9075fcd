//! Asking the gatekeeper (`bootstrap/gatekeeper.yaml`, the `ferry-gatekeeper` function) for a
//! protected stage's credentials: a Lambda `Invoke` as the orchestrator (the one principal its
//! resource policy lets invoke), carrying the caller's signed proof of who it is (`identity`).
//! It answers with the stage's session, or why not: approvals pending (exit 3), evidence
//! missing or wrong (exit 4). The session feeds the SDK's credentials chain like any role hop,
//! and is asked for again — so checked again — before it expires.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_config::SdkConfig;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future};
use ferry_core::gatekeeper::wire;
use ferry_core::ids::FunctionRef;
use ferry_core::ports::Protected;
use ferry_core::{Error, Result};

use crate::chain::{Aws, HopError, fresh};
use crate::error::{self, Attempt};

/// The gatekeeper as ferry reaches it.
#[derive(Clone)]
pub struct Gatekeeper {
    pub function: FunctionRef,
    /// Invokes it: acting as the orchestrator.
    lambda: aws_sdk_lambda::Client,
    /// The caller's own credentials, which the identity proof is signed with.
    caller: SdkConfig,
    /// Where STS is for the function's region (the host is part of the signature).
    sts: String,
    region: String,
}

impl std::fmt::Debug for Gatekeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatekeeper").field("function", &self.function).finish_non_exhaustive()
    }
}

impl Gatekeeper {
    /// `function`, invoked as `invoker` on behalf of `caller` (whose identity it checks).
    /// `region` is the pipeline's, where a function named without its ARN runs.
    pub fn new(function: &FunctionRef, region: &str, invoker: &SdkConfig, caller: &SdkConfig) -> Self {
        let region = function.region().unwrap_or(region).to_owned();
        let invoker = invoker.to_builder().region(aws_config::Region::new(region.clone())).build();
        Self::with_client(function, &region, aws_sdk_lambda::Client::new(&invoker), caller)
    }

    /// `function` in `region`, invoked with `lambda`.
    pub fn with_client(function: &FunctionRef, region: &str, lambda: aws_sdk_lambda::Client, caller: &SdkConfig) -> Self {
        Self {
            function: function.clone(),
            lambda,
            caller: caller.clone(),
            sts: crate::identity::sts_endpoint(caller, region),
            region: region.to_owned(),
        }
    }

    /// The stage session for `ask`, lasting `duration` (at most an hour), or the gatekeeper's
    /// reason for holding it back.
    pub async fn ask(&self, ask: &Protected, duration: Duration) -> Result<wire::Credentials> {
        let seconds = u32::try_from(duration.as_secs()).unwrap_or(wire::MAX_SECONDS).clamp(900, wire::MAX_SECONDS);
        let mut request = wire::Request {
            version: wire::VERSION,
            pipeline: ask.pipeline.clone(),
            release: ask.release.clone(),
            stage: ask.stage.clone(),
            duration_seconds: seconds,
            identity: BTreeMap::new(),
        };
        request.identity = crate::identity::prove(&self.caller, &self.region, &self.sts, wire::BINDING_HEADER, &request.binding()).await?;
        let payload = serde_json::to_vec(&request).map_err(|e| Error::failed(format!("cannot encode the gatekeeper request: {e}")))?;
        let function = self.function.as_str();
        let out = self.lambda.invoke().function_name(function).payload(aws_smithy_types::Blob::new(payload)).send().await.map_err(|e| {
            error::map(Attempt { who: "the orchestrator", action: "lambda:InvokeFunction", resource: function }, &e)
                .hint("bootstrap/gatekeeper.yaml lets the orchestrator role invoke the gatekeeper (and nothing else)")
        })?;
        let body = out.payload().map(aws_smithy_types::Blob::as_ref).unwrap_or_default();
        if let Some(kind) = out.function_error() {
            let detail = String::from_utf8_lossy(body);
            return Err(Error::failed(format!("the gatekeeper `{function}` failed ({kind}): {detail}"))
                .hint("its log (CloudWatch Logs, /aws/lambda/<name>) says why; nothing was handed out"));
        }
        let response: wire::Response = serde_json::from_slice(body)
            .map_err(|e| Error::failed(format!("the gatekeeper `{function}` answered something ferry cannot read: {e}")))?;
        if let Some(e) = response.answer.clone().into_error(&ask.stage) {
            return Err(e);
        }
        response
            .credentials
            .ok_or_else(|| Error::failed(format!("the gatekeeper `{function}` admitted the release but sent no credentials")))
    }

    /// A configuration acting as the stage session `ask` gets from the gatekeeper: asked for
    /// now, and again (checked again) when it nears expiry.
    pub fn session(
        &self,
        aws: &Aws,
        base: &SdkConfig,
        ask: &Protected,
        duration: Duration,
    ) -> Result<(SdkConfig, ferry_core::ids::RoleArn)> {
        let provider = GatekeeperHop {
            time: base.time_source().unwrap_or_default(),
            gatekeeper: self.clone(),
            ask: ask.clone(),
            duration,
            current: tokio::sync::Mutex::new(None),
        };
        let (_, role) = aws.rt.block_on(provider.credentials()).map_err(HopError::into_error)?;
        Ok((base.to_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build(), role))
    }
}

struct GatekeeperHop {
    time: aws_smithy_async::time::SharedTimeSource,
    gatekeeper: Gatekeeper,
    ask: Protected,
    duration: Duration,
    current: tokio::sync::Mutex<Option<(Credentials, ferry_core::ids::RoleArn)>>,
}

impl std::fmt::Debug for GatekeeperHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatekeeperHop").field("ask", &self.ask).finish_non_exhaustive()
    }
}

impl GatekeeperHop {
    async fn credentials(&self) -> std::result::Result<(Credentials, ferry_core::ids::RoleArn), HopError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref().filter(|(c, _)| fresh(c, self.time.now())) {
            return Ok(c.clone());
        }
        let c = self.gatekeeper.ask(&self.ask, self.duration).await.map_err(HopError)?;
        ferry_core::hooks::secret(&c.secret_access_key);
        ferry_core::hooks::secret(&c.session_token);
        let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(c.expiration.unix_seconds()).unwrap_or(0));
        let creds =
            Credentials::new(&c.access_key_id, &c.secret_access_key, Some(c.session_token.clone()), Some(expiry), "ferry-gatekeeper");
        *current = Some((creds.clone(), c.role.clone()));
        Ok((creds, c.role))
    }
}

impl ProvideCredentials for GatekeeperHop {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.credentials().await.map(|(c, _)| c).map_err(|e| CredentialsError::provider_error(e.0))
        })
    }
}
