//! Everything ferry learns from the process environment and the working tree: the acting
//! identity, the CI run, the builder id, and the git commit. Nothing else reads the environment.

use std::path::Path;
use std::process::Command;

use ferry_core::Error;
use ferry_core::ids::Actor;
use ferry_core::manifest::{CiRun, SourceInfo};

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The values of `names` that are set (e.g. the webhook URLs a pipeline refers to).
pub fn vars(names: &[&str]) -> std::collections::BTreeMap<String, String> {
    names.iter().filter_map(|n| var(n).map(|v| ((*n).to_owned(), v))).collect()
}

/// Who is acting: `FERRY_ACTOR`, else the OS user. (The AWS backend uses the STS identity.)
/// `FERRY_AUDIT_SEGMENT_SIZE`: events per sealed segment of an audit log created now (tests
/// use small segments to exercise sealing; a log keeps the size it was created with).
pub fn audit_segment_size() -> Option<u64> {
    std::env::var("FERRY_AUDIT_SEGMENT_SIZE").ok()?.parse().ok().filter(|n| *n >= 2)
}

/// `FERRY_CRASH_AFTER_WRITES=N`: abort right after the N-th durable write (crash tests only).
pub fn crash_after_writes() -> Option<u64> {
    std::env::var("FERRY_CRASH_AFTER_WRITES").ok()?.parse().ok().filter(|n| *n >= 1)
}

/// `FERRY_TIME_SCALE=K`: ferry's clock runs K times as fast (lease and expiry tests only: a
/// 30 s lease then lasts 3 s of real time at K = 10).
pub fn time_scale() -> Option<u32> {
    std::env::var("FERRY_TIME_SCALE").ok()?.parse().ok().filter(|k| *k > 1)
}

/// `FERRY_TIME_OFFSET=DURATION`: ferry's clock runs that far ahead (tests of expiry: the time
/// that passed is told, not waited for).
pub fn time_offset() -> Option<std::time::Duration> {
    humantime::parse_duration(&std::env::var("FERRY_TIME_OFFSET").ok()?).ok()
}

pub fn actor() -> Result<Actor, Error> {
    let name = var("FERRY_ACTOR").or_else(|| var("USER")).or_else(|| var("LOGNAME")).or_else(|| {
        Command::new("id")
            .arg("-un")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    });
    let name = name.ok_or_else(|| Error::invalid("cannot tell who you are").hint("set `FERRY_ACTOR`"))?;
    name.parse().map_err(|e: ferry_core::ids::IdError| Error::invalid(e.to_string()))
}

/// The CI run this process belongs to, if any.
pub fn ci_run() -> Option<CiRun> {
    if let (Some(run), Some(repo)) = (var("GITHUB_RUN_ID"), var("GITHUB_REPOSITORY")) {
        let server = var("GITHUB_SERVER_URL").unwrap_or_else(|| "https://github.com".into());
        return Some(CiRun { provider: "github-actions".into(), url: Some(format!("{server}/{repo}/actions/runs/{run}")), run_id: run });
    }
    var("CODEBUILD_BUILD_ID").map(|id| CiRun { provider: "codebuild".into(), run_id: id, url: var("CODEBUILD_BUILD_URL") })
}

/// The SLSA builder id: the CI workflow or project when there is one, else this host.
pub fn builder_id() -> String {
    if let Some(wf) = var("GITHUB_WORKFLOW_REF") {
        return format!("https://github.com/{wf}");
    }
    if let Some(arn) = var("CODEBUILD_BUILD_ARN") {
        return arn;
    }
    format!("ferry-local://{}", ferry_local::liveness::host_name())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit and ref the build ran from, when `dir` is in a git work tree. Dirty counts
/// untracked files too (a new build script or pipeline is not in the commit), not ignored ones.
pub fn source(dir: &Path) -> Option<SourceInfo> {
    let commit = var("CODEBUILD_RESOLVED_SOURCE_VERSION").or_else(|| var("GITHUB_SHA")).or_else(|| git(dir, &["rev-parse", "HEAD"]))?;
    let git_ref = var("GITHUB_REF").or_else(|| git(dir, &["symbolic-ref", "-q", "HEAD"]));
    let dirty = git(dir, &["status", "--porcelain", "--untracked-files=all"]).is_some_and(|s| !s.is_empty());
    Some(SourceInfo { commit, git_ref, dirty })
}

/// GitHub Actions, when this process runs in it (`GITHUB_ACTIONS=true`).
pub struct GitHub {
    /// `$GITHUB_OUTPUT`: step outputs.
    pub output: Option<std::path::PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`: the job summary (markdown).
    pub summary: Option<std::path::PathBuf>,
}

pub fn github() -> Option<GitHub> {
    (var("GITHUB_ACTIONS").as_deref() == Some("true"))
        .then(|| GitHub { output: var("GITHUB_OUTPUT").map(Into::into), summary: var("GITHUB_STEP_SUMMARY").map(Into::into) })
}

/// Variables of ferry's own environment that hold secrets: announced (CI log masking) and
/// redacted from everything ferry stores, whatever prints them.
const SECRET_VARS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
];

/// Makes the secrets of ferry's environment known (before anything runs).
pub fn announce_secrets() {
    for name in SECRET_VARS {
        if let Some(v) = var(name) {
            ferry_core::hooks::secret(&v);
        }
    }
}

/// GitHub's OIDC token endpoint and its request token, when the job may ask for a token.
#[cfg(feature = "aws")]
pub fn github_oidc_request() -> Option<(String, String)> {
    Some((var("ACTIONS_ID_TOKEN_REQUEST_URL")?, var("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?))
}

/// The role to exchange the OIDC token for (the action's `role-to-assume`); default: the
/// pipeline's orchestrator.
#[cfg(feature = "aws")]
pub fn web_identity_role() -> Option<String> {
    var("FERRY_ROLE_TO_ASSUME")
}

/// The audience of the OIDC token ferry asks GitHub for (the action's `audience`; default
/// `sts.amazonaws.com`, what AWS's OIDC provider for GitHub expects).
#[cfg(feature = "aws")]
pub fn oidc_audience() -> String {
    var("FERRY_OIDC_AUDIENCE").unwrap_or_else(|| "sts.amazonaws.com".to_owned())
}

/// A session name for the CI run: the action's `role-session-name`, else `gh-RUN_ID-ATTEMPT`.
#[cfg(feature = "aws")]
pub fn ci_session_name() -> String {
    if let Some(name) = var("FERRY_ROLE_SESSION_NAME") {
        return name;
    }
    match (var("GITHUB_RUN_ID"), var("GITHUB_RUN_ATTEMPT")) {
        (Some(run), Some(attempt)) => format!("ferry-gh-{run}-{attempt}"),
        (Some(run), None) => format!("ferry-gh-{run}"),
        _ => "ferry-ci".into(),
    }
}

/// Session tags describing the CI run, for CloudTrail in every account ferry enters:
/// repository, workflow, run id, actor and commit (values reduced to what STS accepts).
#[cfg(feature = "aws")]
pub fn ci_tags() -> Vec<(String, String)> {
    let clean = |v: String| -> String {
        v.chars().map(|c| if c.is_alphanumeric() || " _.:/=+-@".contains(c) { c } else { '-' }).take(256).collect()
    };
    let pairs = [
        ("ferry-repository", "GITHUB_REPOSITORY"),
        ("ferry-workflow", "GITHUB_WORKFLOW"),
        ("ferry-run-id", "GITHUB_RUN_ID"),
        ("ferry-ci-actor", "GITHUB_ACTOR"),
        ("ferry-commit", "GITHUB_SHA"),
        ("ferry-codebuild-id", "CODEBUILD_BUILD_ID"),
    ];
    pairs.iter().filter_map(|(tag, v)| var(v).map(|value| ((*tag).to_owned(), clean(value)))).collect()
}

/// Credentials already in the environment (they win over an OIDC exchange).
#[cfg(feature = "aws")]
pub fn has_static_aws_credentials() -> bool {
    var("AWS_ACCESS_KEY_ID").is_some() || var("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() || var("AWS_PROFILE").is_some()
}

/// Running in AWS CodeBuild.
pub fn codebuild() -> bool {
    var("CODEBUILD_BUILD_ID").is_some()
}

/// Whether the log format was chosen explicitly (flag or `FERRY_LOG_FORMAT`).
pub fn log_format_chosen() -> bool {
    var("FERRY_LOG_FORMAT").is_some() || std::env::args().any(|a| a == "--log-format" || a.starts_with("--log-format="))
}

/// Running in a CI system (no progress bars there).
pub fn in_ci() -> bool {
    ["CI", "GITHUB_ACTIONS", "CODEBUILD_BUILD_ID", "BUILDKITE", "GITLAB_CI"].iter().any(|v| var(v).is_some())
}

/// Whether to colour what people read on stderr: `FERRY_COLOR=always|never`, else off with
/// `NO_COLOR` (no-color.org), else on a terminal.
pub fn colour(terminal: bool) -> bool {
    match std::env::var("FERRY_COLOR").as_deref() {
        Ok("always") => true,
        Ok("never") => false,
        _ => terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
    }
}
