//! The notification model of a pipeline: where ferry tells people about a promotion (Slack,
//! Teams, a webhook, SNS), what starts a run that carries it on (a GitHub dispatch, a CodeBuild
//! build), and which events each wants. `notifications.rs` reads them from the file.

use serde::Serialize;

use crate::ids::StageName;

/// One place ferry tells people about a promotion.
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub channel: Channel,
    pub target: ChannelTarget,
    /// Empty means every event.
    pub on: Vec<NotifyEvent>,
    /// Empty means every stage.
    pub stages: Vec<StageName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Slack,
    Teams,
    Webhook,
    Sns,
    /// Starts a GitHub Actions workflow (`workflow_dispatch` or `repository_dispatch`).
    Github,
    /// Starts an AWS CodeBuild build with the orchestrator role.
    Codebuild,
}

/// Where a channel's secret URL (or topic) comes from; never the pipeline file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelTarget {
    UrlEnv(String),
    UrlSsm(String),
    SnsTopic(String),
    GitHub(GitHubDispatch),
    /// The CodeBuild project (name or ARN) to start, in the pipeline's region.
    CodeBuild(String),
}

/// A secret (a token) that lives outside the pipeline file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// An environment variable where ferry runs.
    Env(String),
    /// An SSM SecureString, read with the orchestrator role (aws backend).
    Ssm(String),
}

impl SecretSource {
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Env(v) => format!("env {v}"),
            SecretSource::Ssm(p) => format!("ssm {p}"),
        }
    }
}

/// Which GitHub Actions workflow run a `github` notification starts, and with which token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GitHubDispatch {
    /// `https://api.github.com`, or a GitHub Enterprise Server's `https://HOST/api/v3`.
    pub api_url: String,
    /// `OWNER/REPO`.
    pub repository: String,
    pub dispatch: Dispatch,
    pub token: SecretSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dispatch {
    /// `workflow_dispatch` of this workflow file (or id) on `git_ref`, with inputs `release`
    /// and `stage`.
    Workflow { workflow: String, git_ref: String },
    /// `repository_dispatch` with this `event_type`; release and stage in `client_payload`.
    Repository { event_type: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    ApprovalNeeded,
    /// The last approval a stage needs landed: the promotion can carry on.
    Approved,
    Rejected,
    PromotionSucceeded,
    PromotionFailed,
    VerificationFailed,
}

impl NotifyEvent {
    pub const ALL: [(&'static str, NotifyEvent); 6] = [
        ("approval_needed", NotifyEvent::ApprovalNeeded),
        ("approved", NotifyEvent::Approved),
        ("rejected", NotifyEvent::Rejected),
        ("promotion_succeeded", NotifyEvent::PromotionSucceeded),
        ("promotion_failed", NotifyEvent::PromotionFailed),
        ("verification_failed", NotifyEvent::VerificationFailed),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, e)| *e == self).map_or("", |(n, _)| n)
    }
}

impl Notification {
    pub fn wants(&self, event: NotifyEvent, stage: &StageName) -> bool {
        (self.on.is_empty() || self.on.contains(&event)) && (self.stages.is_empty() || self.stages.contains(stage))
    }

    /// `slack (env SLACK_URL)`: names the channel without its secret.
    pub fn describe(&self) -> String {
        let kind = serde_json::to_value(self.channel).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        match &self.target {
            ChannelTarget::UrlEnv(v) => format!("{kind} (env {v})"),
            ChannelTarget::UrlSsm(p) => format!("{kind} (ssm {p})"),
            ChannelTarget::SnsTopic(t) => format!("{kind} ({t})"),
            ChannelTarget::GitHub(g) => match &g.dispatch {
                Dispatch::Workflow { workflow, .. } => format!("{kind} ({} workflow {workflow})", g.repository),
                Dispatch::Repository { event_type } => format!("{kind} ({} repository_dispatch {event_type})", g.repository),
            },
            ChannelTarget::CodeBuild(project) => format!("{kind} (project {project})"),
        }
    }
}
