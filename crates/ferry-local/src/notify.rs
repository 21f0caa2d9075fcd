//! Delivering notifications: POST the payload as JSON to a webhook whose URL is a secret (from
//! the environment the CLI hands over, or an SSM parameter read by the aws backend), or
//! publish to SNS (aws backend). One attempt per call; the core retries and audits. A URL is
//! never printed: errors name the channel, not its address.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_core::pipeline::{ChannelTarget, Notification};
use ferry_core::ports::{Notifier, SecretReader, TopicPublisher};
use ferry_core::{Error, Result};

pub struct WebhookNotifier {
    /// The variables `url_env` may name (read by the CLI, the only reader of the environment).
    pub env: BTreeMap<String, String>,
    pub ssm: Option<SecretReader>,
    pub sns: Option<TopicPublisher>,
    pub timeout: Duration,
}

impl WebhookNotifier {
    pub fn new(env: BTreeMap<String, String>) -> Self {
        WebhookNotifier { env, ssm: None, sns: None, timeout: Duration::from_secs(10) }
    }

    fn url(&self, n: &Notification) -> Result<String> {
        match &n.target {
            ChannelTarget::UrlEnv(var) => self.env.get(var).filter(|v| !v.is_empty()).cloned().ok_or_else(|| {
                Error::invalid(format!("the webhook URL of {} is not set", n.describe())).hint(format!("export `{var}` where ferry runs"))
            }),
            ChannelTarget::UrlSsm(name) => match &self.ssm {
                Some(read) => read(name),
                None => Err(Error::invalid(format!("{} needs `backend: aws`", n.describe()))),
            },
            ChannelTarget::SnsTopic(_) => Err(Error::invalid("an SNS topic has no URL")),
        }
    }
}

impl Notifier for WebhookNotifier {
    fn send(&self, n: &Notification, payload: &serde_json::Value, subject: &str) -> Result<()> {
        if let ChannelTarget::SnsTopic(topic) = &n.target {
            let publish = self.sns.as_ref().ok_or_else(|| Error::invalid(format!("{} needs `backend: aws`", n.describe())))?;
            let message = serde_json::to_string(payload).map_err(|e| Error::failed(e.to_string()))?;
            return publish(topic, subject, &message);
        }
        let url = self.url(n)?;
        let client =
            reqwest::blocking::Client::builder().timeout(self.timeout).build().map_err(|e| Error::failed(format!("http client: {e}")))?;
        let resp = client.post(&url).json(payload).send().map_err(|e| Error::failed(format!("{}: {}", n.describe(), e.without_url())))?;
        let status = resp.status();
        if status.is_success() { Ok(()) } else { Err(Error::failed(format!("{} answered HTTP {}", n.describe(), status.as_u16()))) }
    }
}
