//! Delivering notifications: POST the payload as JSON to a webhook whose URL is a secret (from
//! the environment the CLI hands over, or an SSM parameter read by the aws backend), publish
//! to SNS (aws backend), dispatch a GitHub Actions workflow with a token from the same places,
//! or start a CodeBuild build (aws backend). One attempt per call; the core retries and audits.
//! A URL or token is never printed: errors name the channel, not its address.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_core::pipeline::{ChannelTarget, Dispatch, GitHubDispatch, Notification, SecretSource};
use ferry_core::ports::{BuildStarter, Notifier, SecretReader, TopicPublisher};
use ferry_core::{Error, Result};

pub struct WebhookNotifier {
    /// The variables `url_env` and `token_env` may name (read by the CLI, the only reader of
    /// the environment).
    pub env: BTreeMap<String, String>,
    pub ssm: Option<SecretReader>,
    pub sns: Option<TopicPublisher>,
    pub codebuild: Option<BuildStarter>,
    pub timeout: Duration,
}

impl WebhookNotifier {
    pub fn new(env: BTreeMap<String, String>) -> Self {
        WebhookNotifier { env, ssm: None, sns: None, codebuild: None, timeout: Duration::from_secs(10) }
    }

    fn secret(&self, n: &Notification, source: &SecretSource, what: &str) -> Result<String> {
        let value = match source {
            SecretSource::Env(var) => self.env.get(var).filter(|v| !v.is_empty()).cloned().ok_or_else(|| {
                Error::invalid(format!("the {what} of {} is not set", n.describe())).hint(format!("export `{var}` where ferry runs"))
            })?,
            SecretSource::Ssm(name) => match &self.ssm {
                Some(read) => read(name)?,
                None => return Err(Error::invalid(format!("{} needs `backend: aws`", n.describe()))),
            },
        };
        ferry_core::hooks::secret(&value);
        Ok(value)
    }

    fn client(&self) -> Result<reqwest::blocking::Client> {
        reqwest::blocking::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("ferry/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::failed(format!("http client: {e}")))
    }

    /// `POST /repos/OWNER/REPO/actions/workflows/WORKFLOW/dispatches` (or `/dispatches`).
    fn dispatch(&self, n: &Notification, g: &GitHubDispatch, payload: &serde_json::Value) -> Result<()> {
        let token = self.secret(n, &g.token, "GitHub token")?;
        let url = match &g.dispatch {
            Dispatch::Workflow { workflow, .. } => format!("{}/repos/{}/actions/workflows/{workflow}/dispatches", g.api_url, g.repository),
            Dispatch::Repository { .. } => format!("{}/repos/{}/dispatches", g.api_url, g.repository),
        };
        let resp = self
            .client()?
            .post(&url)
            .bearer_auth(token)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .json(payload)
            .send()
            .map_err(|e| Error::failed(format!("{}: {}", n.describe(), e.without_url())))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // GitHub explains a refusal in `message` (e.g. an undeclared input, a missing workflow).
        let why = resp.json::<serde_json::Value>().ok().and_then(|v| v["message"].as_str().map(str::to_owned)).unwrap_or_default();
        let hint = match status.as_u16() {
            401 | 403 => "the token needs `actions: write` on the repository (`contents: write` for repository_dispatch)",
            404 => "check `repository` and `workflow`, and that the token can see the repository",
            422 => "the workflow needs `on: workflow_dispatch` with inputs `release` and `stage`, on that `ref`",
            _ => "",
        };
        let e = Error::failed(format!(
            "{} answered HTTP {}{}",
            n.describe(),
            status.as_u16(),
            if why.is_empty() { String::new() } else { format!(": {why}") }
        ));
        Err(if hint.is_empty() { e } else { e.hint(hint) })
    }
}

impl Notifier for WebhookNotifier {
    fn send(&self, n: &Notification, payload: &serde_json::Value, subject: &str) -> Result<()> {
        let url = match &n.target {
            ChannelTarget::SnsTopic(topic) => {
                let publish = self.sns.as_ref().ok_or_else(|| Error::invalid(format!("{} needs `backend: aws`", n.describe())))?;
                let message = serde_json::to_string(payload).map_err(|e| Error::failed(e.to_string()))?;
                return publish(topic, subject, &message);
            }
            ChannelTarget::CodeBuild(project) => {
                let start = self.codebuild.as_ref().ok_or_else(|| Error::invalid(format!("{} needs `backend: aws`", n.describe())))?;
                let env: Vec<(String, String)> = payload["environmentVariablesOverride"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| Some((v["name"].as_str()?.to_owned(), v["value"].as_str()?.to_owned())))
                    .collect();
                return start(project, &env);
            }
            ChannelTarget::GitHub(g) => return self.dispatch(n, g, payload),
            ChannelTarget::UrlEnv(var) => self.secret(n, &SecretSource::Env(var.clone()), "webhook URL")?,
            ChannelTarget::UrlSsm(name) => self.secret(n, &SecretSource::Ssm(name.clone()), "webhook URL")?,
        };
        let resp =
            self.client()?.post(&url).json(payload).send().map_err(|e| Error::failed(format!("{}: {}", n.describe(), e.without_url())))?;
        let status = resp.status();
        if status.is_success() { Ok(()) } else { Err(Error::failed(format!("{} answered HTTP {}", n.describe(), status.as_u16()))) }
    }
}
