//! The notification port: one delivery attempt to a webhook, an SNS topic, GitHub's dispatch
//! API or CodeBuild.

use crate::error::Result;

/// Delivers one notification, one attempt: resolves the channel's secret URL (environment,
/// SSM) and POSTs the payload, or publishes to SNS. Retries and auditing are the caller's.
pub trait Notifier {
    fn send(&self, channel: &crate::pipeline::Notification, payload: &serde_json::Value, subject: &str) -> Result<()>;
}

/// Reads a secret (an SSM parameter) by name.
pub type SecretReader = Box<dyn Fn(&str) -> Result<String>>;
/// Publishes `(topic, subject, message)`.
pub type TopicPublisher = Box<dyn Fn(&str, &str, &str) -> Result<()>>;
/// Starts a build of `(project, environment variables)` (CodeBuild's StartBuild).
pub type BuildStarter = Box<dyn Fn(&str, &[(String, String)]) -> Result<()>>;

/// Delivers nothing (a backend before its notifier is set up).
#[derive(Debug, Default)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn send(&self, channel: &crate::pipeline::Notification, _payload: &serde_json::Value, _subject: &str) -> Result<()> {
        Err(crate::error::Error::invalid(format!("no notifier is set up for {}", channel.describe())))
    }
}
