//! Everything the command line asks of the AWS backend, behind the `aws` cargo feature (on by
//! default). Built without it (`cargo build -p ferry-cli --no-default-features`: no AWS SDK, a
//! binary a fraction of the size that compiles in a fraction of the time) every entry point here
//! refuses with one error that says how to get a ferry that can.

use ferry_core::Error;
use ferry_core::ids::{Actor, RoleArn};
use ferry_core::keys::PublicKey;
use ferry_core::pipeline::Pipeline;
use ferry_core::ports::TrustStore;
use ferry_core::preflight::Check;
use ferry_local::Home;
use ferry_local::notify::WebhookNotifier;

use super::Ctx;
use crate::output::Failure;

#[cfg(feature = "aws")]
pub use ferry_aws::backend::AwsBackend;

/// The pipeline's AWS backend, connected (with the CI's OIDC identity if it has one), with
/// `notifier` reaching SSM, SNS and CodeBuild through it.
#[cfg(feature = "aws")]
pub fn connect(home: &Home, p: &Pipeline, purpose: &str, mut notifier: WebhookNotifier) -> Result<Ctx, Failure> {
    let c = ferry_aws::backend::Connect {
        purpose: purpose.to_owned(),
        work_dir: home.root.join("work"),
        host: ferry_local::liveness::host_name(),
        exec: Box::new(ferry_local::exec::ShellExecutor),
        http: Box::new(ferry_local::http::ReqwestProbe),
        notifier: Box::new(ferry_core::ports::NoNotifier),
        web_identity: web_identity()?,
        ci_tags: crate::env::ci_tags(),
        audit_segment_size: home.audit_segment_size,
        after_write: home.after_write.clone(),
        clock: home.clock.clone(),
        interrupt: home.interrupt.clone(),
    };
    let mut b = ferry_aws::backend::connect(p, c)?;
    notifier.ssm = Some(b.secret_reader());
    notifier.sns = Some(b.topic_publisher());
    notifier.codebuild = Some(b.build_starter());
    b.services.notifier = Box::new(notifier);
    crate::junit::wrap(&mut b.services.audit);
    Ok(Ctx { actor: b.actor.clone(), backend: super::Connected::Aws(Box::new(b)) })
}

/// In GitHub Actions with `id-token: write`: the OIDC token (audience `sts.amazonaws.com`, or
/// the action's `audience`) ferry starts its role chain from, unless credentials are already in
/// the environment.
#[cfg(feature = "aws")]
fn web_identity() -> Result<Option<ferry_aws::backend::WebIdentity>, Failure> {
    use crate::env;
    let Some((url, request_token)) = env::github_oidc_request() else { return Ok(None) };
    if env::has_static_aws_credentials() {
        return Ok(None);
    }
    ferry_core::hooks::secret(&request_token);
    // A new token each time the orchestrator session is renewed (GitHub's tokens are short-lived).
    let audience = env::oidc_audience();
    let tokens: ferry_aws::chain::TokenSource = std::sync::Arc::new(move || {
        let token = ferry_local::http::github_oidc_token(&url, &request_token, &audience)?;
        ferry_core::hooks::secret(&token);
        Ok(token)
    });
    let role = env::web_identity_role().map(|r| super::parse_id(&r)).transpose()?;
    Ok(Some(ferry_aws::backend::WebIdentity { tokens, role, session_name: env::ci_session_name() }))
}

/// The public key of a KMS key, fetched once with the current credentials (`kms:GetPublicKey`).
#[cfg(feature = "aws")]
pub fn kms_public_key(arn: &str) -> Result<PublicKey, Error> {
    let region =
        arn.split(':').nth(3).filter(|r| !r.is_empty()).ok_or_else(|| {
            Error::invalid(format!("`{arn}` is not a KMS key ARN")).hint("expected `arn:aws:kms:REGION:ACCOUNT:key/KEY_ID`")
        })?;
    let aws = ferry_aws::chain::Aws::load(Some(region))?;
    ferry_aws::kms::public_key(&aws, &aws.base, arn, "the current credentials")
}

/// `ferry doctor`'s checks of an aws pipeline: every hop of every role chain, the buckets, the
/// KMS key and who can reach each protected stage.
#[cfg(feature = "aws")]
pub fn doctor(p: &Pipeline, pinned: Option<&PublicKey>) -> Result<Vec<Check>, Error> {
    ferry_aws::doctor::doctor(p, pinned)
}

/// The security account's trust store, written as the trust admin (`role`, or the caller).
#[cfg(feature = "aws")]
pub fn trust_admin(
    p: &Pipeline,
    role: Option<&RoleArn>,
    clock: std::sync::Arc<dyn ferry_core::ports::Clock>,
) -> Result<(Box<dyn TrustStore>, Actor), Error> {
    ferry_aws::backend::trust_admin(p, role, clock)
}

/// What every entry point answers in a ferry built without the `aws` feature.
#[cfg(not(feature = "aws"))]
fn unavailable(what: &str) -> Error {
    Error::invalid(format!("{what} needs the AWS backend, and this ferry was built without it (no `aws` feature)"))
        .hint("use a release build of ferry (the GitHub action installs one), or build with the default features: `cargo install --locked --path crates/ferry-cli`")
}

#[cfg(not(feature = "aws"))]
pub fn connect(_: &Home, p: &Pipeline, _: &str, _: WebhookNotifier) -> Result<Ctx, Failure> {
    Err(unavailable(&format!("pipeline `{}` (`backend: aws`)", p.name)).into())
}

#[cfg(not(feature = "aws"))]
pub fn kms_public_key(_: &str) -> Result<PublicKey, Error> {
    Err(unavailable("`--kms`"))
}

#[cfg(not(feature = "aws"))]
pub fn doctor(p: &Pipeline, _: Option<&PublicKey>) -> Result<Vec<Check>, Error> {
    Err(unavailable(&format!("pipeline `{}` (`backend: aws`)", p.name)))
}

#[cfg(not(feature = "aws"))]
pub fn trust_admin(
    p: &Pipeline,
    _: Option<&RoleArn>,
    _: std::sync::Arc<dyn ferry_core::ports::Clock>,
) -> Result<(Box<dyn TrustStore>, Actor), Error> {
    Err(unavailable(&format!("pipeline `{}` (`backend: aws`)", p.name)))
}
