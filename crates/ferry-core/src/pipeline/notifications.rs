//! Validation of `notifications:` — channel type, where its secret URL or topic comes from
//! (never the file itself), events and stages.

use super::keys;
use super::reader::Cx;
use super::{Backend, Channel, ChannelTarget, Notification, NotifyEvent};
use crate::ids::StageName;
use crate::yaml::Node;

impl Cx {
    pub(super) fn notifications(&mut self, list: &Node) -> Vec<Notification> {
        let mut out = Vec::new();
        for (i, item) in self.seq(list, "notifications").iter().enumerate() {
            let path = format!("notifications[{i}]");
            let Some(f) = self.fields(item, &path, keys::NOTIFICATION) else { continue };
            let channel = self.required(&f, "type").and_then(|n| match n.as_scalar() {
                Some("slack") => Some(Channel::Slack),
                Some("teams") => Some(Channel::Teams),
                Some("webhook") => Some(Channel::Webhook),
                Some("sns") => Some(Channel::Sns),
                _ => {
                    self.error(
                        n,
                        &f.path("type"),
                        format!("unknown notification type {}", n.describe()),
                        Some("slack, teams, webhook or sns".into()),
                    );
                    None
                }
            });
            if let Some(n) = f.get("url") {
                self.error(
                    n,
                    &f.path("url"),
                    "a webhook URL is a secret and does not belong in the pipeline file".into(),
                    Some("put it in an environment variable (`url_env`) or an SSM SecureString (`url_ssm`)".into()),
                );
            }
            let url_env = self.opt_string(&f, "url_env");
            let url_ssm = self.opt_string(&f, "url_ssm");
            let topic = self.opt_string(&f, "topic");
            let target = match (channel, url_env, url_ssm, topic) {
                (Some(Channel::Sns), None, None, Some(t)) => {
                    let ok = t.starts_with("arn:aws") && t.split(':').count() == 6 && t.split(':').nth(2) == Some("sns");
                    if !ok {
                        self.error(
                            item,
                            &f.path("topic"),
                            format!("invalid SNS topic ARN `{t}`"),
                            Some("arn:aws:sns:REGION:ACCOUNT:NAME".into()),
                        );
                    }
                    ok.then_some(ChannelTarget::SnsTopic(t))
                }
                (Some(Channel::Sns), ..) => {
                    self.error(item, &path, "an sns notification needs `topic` (and no url)".into(), None);
                    None
                }
                (Some(_), Some(v), None, None) => {
                    let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if !ok {
                        self.error(item, &f.path("url_env"), format!("invalid environment variable name `{v}`"), None);
                    }
                    ok.then_some(ChannelTarget::UrlEnv(v))
                }
                (Some(_), None, Some(p), None) => Some(ChannelTarget::UrlSsm(p)),
                (Some(_), ..) => {
                    self.error(item, &path, "a webhook notification needs exactly one of `url_env` or `url_ssm`".into(), None);
                    None
                }
                (None, ..) => None,
            };
            if matches!(target, Some(ChannelTarget::UrlSsm(_) | ChannelTarget::SnsTopic(_))) && self.backend != Some(Backend::Aws) {
                self.error(
                    item,
                    &path,
                    "SSM parameters and SNS topics need `backend: aws`".into(),
                    Some("use `url_env` on the local backend".into()),
                );
            }
            let mut on = Vec::new();
            if let Some(list) = f.get("on") {
                for (j, e) in self.seq(list, &f.path("on")).iter().enumerate() {
                    match NotifyEvent::ALL.iter().find(|(n, _)| Some(*n) == e.as_scalar()) {
                        Some((_, ev)) => on.push(*ev),
                        None => self.error(
                            e,
                            &format!("{}[{j}]", f.path("on")),
                            format!("unknown event {}", e.describe()),
                            Some("approval_needed, promotion_succeeded, promotion_failed or verification_failed".into()),
                        ),
                    }
                }
            }
            let mut stages = Vec::new();
            if let Some(list) = f.get("stages") {
                for (j, s) in self.seq(list, &f.path("stages")).iter().enumerate() {
                    stages.extend(self.parsed::<StageName>(s, &format!("{}[{j}]", f.path("stages"))));
                }
            }
            if let (Some(channel), Some(target)) = (channel, target) {
                out.push(Notification { channel, target, on, stages });
            }
        }
        out
    }
}
