//! Credentials and role chains. ferry starts from the standard default chain (profiles, env,
//! GitHub OIDC web identity, CodeBuild container credentials) and assumes roles hop by hop
//! (caller → orchestrator → stage role). Each hop carries a session name that says pipeline,
//! release and stage, the actor as `SourceIdentity` (so CloudTrail in every account shows who),
//! session tags and an optional external id. Each hop is assumed once: the credentials of that
//! first call are what the SDK's identity cache gets first, and the hop assumes its role again
//! only when they are within five minutes of expiring (so a promotion outlives any session).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, error::CredentialsError, future};
use aws_sdk_sts::types::Tag;
use ferry_core::ids::RoleArn;
use ferry_core::{Error, Result};
use tokio::runtime::Runtime;

use crate::error::{self, Attempt};

/// One role assumption.
#[derive(Debug, Clone)]
pub struct Hop {
    pub role: RoleArn,
    pub session_name: String,
    pub source_identity: Option<String>,
    pub tags: Vec<(String, String)>,
    pub external_id: Option<String>,
    pub duration: Option<Duration>,
    /// A session policy: the session may do only what both it and the role allow.
    pub policy: Option<String>,
}

/// Characters STS accepts in session names and source identities: `[\w+=,.@-]`, 2 to 64 long.
pub fn sts_name(raw: &str) -> String {
    let mut s: String = raw.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' }).take(64).collect();
    while s.len() < 2 {
        s.push('-');
    }
    s
}

/// Who acts, as STS `SourceIdentity` (CloudTrail shows it in every account the chain reaches,
/// and no later hop can change it): a readable, stable name within STS's 64 characters of
/// `[\w+=,.@-]`. In CI, the run: `gh.OWNER.REPO.RUN_ID` on GitHub Actions, `codebuild.BUILD`
/// on CodeBuild. Otherwise the person the caller ARN names: an IAM Identity Center user's name
/// (the session name AWS sets on `AWSReservedSSO_*` roles), `SESSION@ROLE` for another role
/// (whose session name the caller picks, so the role stays in it), an IAM user's name. The full
/// caller ARN rides along as the `ferry-caller` session tag.
pub fn source_identity(caller: &str, ci_tags: &[(String, String)]) -> String {
    let tag = |k: &str| ci_tags.iter().find(|(t, _)| t == k).map(|(_, v)| v.as_str());
    let clean =
        |s: &str| -> String { s.chars().map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '.' }).collect() };
    let fit = |keep_end: &str, head: String| -> String {
        // The end (a run id) is kept whole; the head is cut to make room.
        let room = 64usize.saturating_sub(keep_end.len());
        let mut s: String = head.chars().take(room).collect();
        s.push_str(keep_end);
        sts_name(&s)
    };
    if let (Some(repo), Some(run)) = (tag("ferry-repository"), tag("ferry-run-id")) {
        return fit(&format!(".{}", clean(run)), format!("gh.{}", clean(repo)));
    }
    if let Some(build) = tag("ferry-codebuild-id") {
        return sts_name(&format!("codebuild.{}", clean(build)));
    }
    let resource = caller.splitn(6, ':').nth(5).unwrap_or(caller);
    let parts: Vec<&str> = resource.split('/').collect();
    let who = match parts.as_slice() {
        ["assumed-role", role, session] if role.starts_with("AWSReservedSSO_") => clean(session),
        ["assumed-role", role, session] => {
            let role = clean(role);
            return fit(&format!("@{}", role.chars().take(40).collect::<String>()), clean(session));
        }
        ["user", .., name] => clean(name),
        ["root"] | [] => format!("root@{}", caller.split(':').nth(4).unwrap_or("")),
        _ => clean(resource),
    };
    sts_name(&who)
}

/// The full caller ARN as a session tag (values may hold `:` and `/`, up to 256 characters).
pub fn caller_tag(caller: &str) -> (String, String) {
    ("ferry-caller".to_owned(), caller.chars().take(256).collect())
}

/// The AWS side of a ferry process: a runtime to block on, and the base configuration.
#[derive(Clone)]
pub struct Aws {
    pub rt: Arc<Runtime>,
    pub base: SdkConfig,
}

impl std::fmt::Debug for Aws {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aws").field("region", &self.base.region()).finish_non_exhaustive()
    }
}

impl Aws {
    /// Loads the default credential chain and region (`region` overrides the environment's).
    pub fn load(region: Option<&str>) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::failed(format!("cannot start the async runtime: {e}")))?;
        // One HTTP client (and connection pool) for every SDK client of the process, whatever
        // account or service it calls: without it each client builds its own.
        let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(shared_http_client());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_owned()));
        }
        let base = rt.block_on(loader.load());
        Ok(Self { rt: Arc::new(rt), base })
    }

    /// Whether an endpoint override (`AWS_ENDPOINT_URL`) is set; S3 then uses path-style URLs.
    pub fn custom_endpoint(&self) -> bool {
        self.base.endpoint_url().is_some()
    }

    /// Assumes `hops` in order, starting from `from` (a config and who it acts as; the base
    /// credentials if `None`); the result acts as the last role. Each hop is tried at once, so
    /// a failure names both the role and who tried to assume it.
    pub fn assume_chain(&self, from: Option<(&SdkConfig, &str)>, hops: &[Hop]) -> Result<SdkConfig> {
        self.chain(from, hops, true)
    }

    /// `assume_chain`, but the last hop is assumed only when its credentials are first asked
    /// for (a command that never calls AWS never assumes its role).
    pub fn lazy_chain(&self, from: Option<(&SdkConfig, &str)>, hops: &[Hop]) -> Result<SdkConfig> {
        self.chain(from, hops, false)
    }

    fn chain(&self, from: Option<(&SdkConfig, &str)>, hops: &[Hop], eager_last: bool) -> Result<SdkConfig> {
        let (mut config, mut who) = match from {
            Some((c, w)) => (c.clone(), w.to_owned()),
            None => (self.base.clone(), "the caller".to_owned()),
        };
        for (i, hop) in hops.iter().enumerate() {
            let provider = AssumeHop {
                time: config.time_source().unwrap_or_default(),
                sts: aws_sdk_sts::Client::new(&config),
                hop: hop.clone(),
                who: who.clone(),
                current: tokio::sync::Mutex::new(None),
            };
            who = hop.role.to_string();
            if eager_last || i + 1 < hops.len() {
                self.rt.block_on(provider.credentials()).map_err(|e| e.into_error())?;
            }
            config = config.to_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build();
        }
        Ok(config)
    }

    /// Exchanges an OpenID Connect token (GitHub Actions') for `role`'s credentials
    /// (`AssumeRoleWithWebIdentity`, which needs no prior credentials). Before they expire, a
    /// new token is fetched from `tokens` and exchanged again, so a long promotion keeps its
    /// orchestrator session.
    pub fn assume_with_web_identity(
        &self,
        role: &RoleArn,
        session_name: &str,
        tokens: TokenSource,
        duration: Duration,
    ) -> Result<SdkConfig> {
        let provider = WebIdentityHop {
            time: self.base.time_source().unwrap_or_default(),
            sts: aws_sdk_sts::Client::new(&self.base),
            role: role.clone(),
            session_name: sts_name(session_name),
            seconds: i32::try_from(duration.as_secs()).unwrap_or(3600).clamp(900, 43_200),
            tokens,
            current: tokio::sync::Mutex::new(None),
        };
        self.rt.block_on(provider.credentials()).map_err(|e| e.into_error())?;
        Ok(self.base.to_builder().credentials_provider(SharedCredentialsProvider::new(provider)).build())
    }

    /// The ARN `config` acts as (`sts:GetCallerIdentity`).
    pub fn caller_arn(&self, config: &SdkConfig) -> Result<String> {
        let sts = aws_sdk_sts::Client::new(config);
        let out = self
            .rt
            .block_on(sts.get_caller_identity().send())
            .map_err(|e| error::map(Attempt { who: "the current credentials", action: "sts:GetCallerIdentity", resource: "*" }, &e))?;
        out.arn.ok_or_else(|| Error::failed("sts:GetCallerIdentity returned no ARN"))
    }
}

/// The SDK's default HTTPS client (rustls with aws-lc-rs, proxies from the environment), built
/// once so every client shares its connections.
fn shared_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig, tls};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut conn = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

/// Where a fresh OpenID Connect token comes from (GitHub's token endpoint); called on a
/// blocking thread each time the session needs renewing.
pub type TokenSource = Arc<dyn Fn() -> Result<String> + Send + Sync>;

struct WebIdentityHop {
    time: aws_smithy_async::time::SharedTimeSource,
    sts: aws_sdk_sts::Client,
    role: RoleArn,
    session_name: String,
    seconds: i32,
    tokens: TokenSource,
    current: tokio::sync::Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for WebIdentityHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebIdentityHop").field("role", &self.role).field("session_name", &self.session_name).finish_non_exhaustive()
    }
}

impl WebIdentityHop {
    async fn credentials(&self) -> std::result::Result<Credentials, HopError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref().filter(|c| fresh(c, self.time.now())) {
            return Ok(c.clone());
        }
        let tokens = self.tokens.clone();
        let token = tokio::task::spawn_blocking(move || tokens())
            .await
            .map_err(|e| HopError(Error::failed(format!("fetching an OIDC token: {e}"))))?
            .map_err(HopError)?;
        let role = &self.role;
        let out = self
            .sts
            .assume_role_with_web_identity()
            .role_arn(role.as_str())
            .role_session_name(&self.session_name)
            .web_identity_token(token)
            .duration_seconds(self.seconds)
            .send()
            .await
            .map_err(|e| {
                HopError(error::map(Attempt { who: "the CI's OIDC token", action: "sts:AssumeRoleWithWebIdentity", resource: role.as_str() }, &e)
                    .hint(format!("the role's trust policy must allow this repository's OIDC subject (token.actions.githubusercontent.com) to assume `{role}`")))
            })?;
        let c = out.credentials().ok_or_else(|| HopError(Error::failed(format!("STS returned no credentials for `{role}`"))))?;
        ferry_core::hooks::secret(c.secret_access_key());
        ferry_core::hooks::secret(c.session_token());
        let expiry = SystemTime::try_from(*c.expiration()).ok();
        let creds =
            Credentials::new(c.access_key_id(), c.secret_access_key(), Some(c.session_token().to_owned()), expiry, "ferry-web-identity");
        *current = Some(creds.clone());
        Ok(creds)
    }
}

impl ProvideCredentials for WebIdentityHop {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.credentials().await.map_err(|e| CredentialsError::provider_error(e.0)) })
    }
}

#[derive(Debug)]
struct AssumeHop {
    /// The configuration's time source (the system's, unless a test injects one).
    time: aws_smithy_async::time::SharedTimeSource,
    sts: aws_sdk_sts::Client,
    hop: Hop,
    /// Who assumes it, for error messages.
    who: String,
    /// The credentials of the last assumption, until they near expiry.
    current: tokio::sync::Mutex<Option<Credentials>>,
}

/// Credentials this close to expiry are replaced before use.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

/// Whether `c` is still good for a while (credentials without an expiry always are).
pub fn fresh(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_none_or(|e| e > now + REFRESH_BEFORE)
}

/// A failed hop: kept as a ferry error for ferry, and as a credentials error for the SDK.
#[derive(Debug)]
pub(crate) struct HopError(pub(crate) Error);

impl HopError {
    pub(crate) fn into_error(self) -> Error {
        self.0
    }
}

impl AssumeHop {
    /// The hop's credentials: the last ones while fresh, else a new assumption.
    async fn credentials(&self) -> std::result::Result<Credentials, HopError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref().filter(|c| fresh(c, self.time.now())) {
            return Ok(c.clone());
        }
        let c = self.assume().await?;
        *current = Some(c.clone());
        Ok(c)
    }

    async fn assume(&self) -> std::result::Result<Credentials, HopError> {
        let h = &self.hop;
        let mut req = self.sts.assume_role().role_arn(h.role.as_str()).role_session_name(sts_name(&h.session_name));
        if let Some(si) = &h.source_identity {
            req = req.source_identity(sts_name(si));
        }
        if let Some(x) = &h.external_id {
            req = req.external_id(x);
        }
        if let Some(d) = h.duration {
            req = req.duration_seconds(i32::try_from(d.as_secs()).unwrap_or(3600));
        }
        if let Some(p) = &h.policy {
            req = req.policy(p);
        }
        for (k, v) in &h.tags {
            let tag =
                Tag::builder().key(k).value(v).build().map_err(|e| HopError(Error::invalid(format!("bad session tag `{k}`: {e}"))))?;
            req = req.tags(tag);
        }
        let out = req.send().await.map_err(|e| {
            let mut err = error::map(Attempt { who: &self.who, action: "sts:AssumeRole", resource: h.role.as_str() }, &e);
            err = err.hint(format!("check the trust policy of `{}` (and its external id condition)", h.role));
            HopError(err)
        })?;
        let c =
            out.credentials.ok_or_else(|| HopError(Error::failed(format!("sts:AssumeRole of `{}` returned no credentials", h.role))))?;
        let expiry = SystemTime::try_from(c.expiration).ok();
        Ok(Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), expiry, "ferry-role-chain"))
    }
}

impl ProvideCredentials for AssumeHop {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move { self.credentials().await.map_err(|e| CredentialsError::provider_error(e.0)) })
    }
}

#[cfg(test)]
mod tests {
    use super::source_identity;

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_source_identity_names_the_person_or_the_run_readably_within_stss_limits() {
        let sso = "arn:aws:sts::111111111111:assumed-role/AWSReservedSSO_ReleaseManagers_0123456789abcdef/alice@example.com";
        assert_eq!(source_identity(sso, &[]), "alice@example.com");
        let role = "arn:aws:sts::111111111111:assumed-role/release-approvers/carol";
        assert_eq!(source_identity(role, &[]), "carol@release-approvers", "a session name the caller picks keeps its role");
        assert_eq!(source_identity("arn:aws:iam::111111111111:user/bob", &[]), "bob");
        let gh = tags(&[("ferry-repository", "acme/shop"), ("ferry-run-id", "9876543210")]);
        assert_eq!(source_identity("arn:aws:sts::111111111111:assumed-role/ferry-orchestrator/gh", &gh), "gh.acme.shop.9876543210");
        let long = tags(&[("ferry-repository", &format!("acme/{}", "x".repeat(80))), ("ferry-run-id", "9876543210")]);
        let id = source_identity("arn:aws:sts::1:assumed-role/r/s", &long);
        assert!(id.len() <= 64 && id.ends_with(".9876543210") && id.starts_with("gh.acme."), "{id}");
        let cb = tags(&[("ferry-codebuild-id", "shop-build:4f1c-9a")]);
        assert_eq!(source_identity("arn:aws:sts::1:assumed-role/cb/s", &cb), "codebuild.shop-build.4f1c-9a");
        for id in [source_identity(sso, &[]), source_identity(role, &gh)] {
            assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)), "{id}");
        }
    }
}
