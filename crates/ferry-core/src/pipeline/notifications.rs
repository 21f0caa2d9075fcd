//! Validation of `notifications:` — channel type, where its secret URL, token or topic comes
//! from (never the file itself), what a dispatch starts (a GitHub workflow, a CodeBuild
//! project), events and stages.

use super::keys;
use super::reader::{Cx, Fields, env_name_ok};
use super::{Backend, Channel, ChannelTarget, Dispatch, GitHubDispatch, Notification, NotifyEvent, SecretSource};
use crate::ids::StageName;
use crate::yaml::Node;

const CHANNELS: [(&str, Channel); 6] = [
    ("slack", Channel::Slack),
    ("teams", Channel::Teams),
    ("webhook", Channel::Webhook),
    ("sns", Channel::Sns),
    ("github", Channel::Github),
    ("codebuild", Channel::Codebuild),
];

/// GitHub's API, unless `api_url` names a GitHub Enterprise Server.
pub const GITHUB_API: &str = "https://api.github.com";

impl Cx {
    pub(super) fn notifications(&mut self, list: &Node) -> Vec<Notification> {
        let mut out = Vec::new();
        for (i, item) in self.seq(list, "notifications").iter().enumerate() {
            let path = format!("notifications[{i}]");
            let Some(f) = self.fields(item, &path, keys::NOTIFICATION) else { continue };
            let channel = self.required(&f, "type").and_then(|n| self.one_of(n, &f.path("type"), "notification type", &CHANNELS));
            if let Some(n) = f.get("url") {
                self.error(
                    n,
                    &f.path("url"),
                    "a webhook URL is a secret and does not belong in the pipeline file".into(),
                    Some("put it in an environment variable (`url_env`) or an SSM SecureString (`url_ssm`)".into()),
                );
            }
            let target = match channel {
                Some(Channel::Github) => self.github(item, &f),
                Some(Channel::Codebuild) => self.codebuild(item, &f),
                Some(c) => self.webhook(item, &f, c),
                None => None,
            };
            let aws_only = match &target {
                Some(ChannelTarget::UrlSsm(_) | ChannelTarget::SnsTopic(_) | ChannelTarget::CodeBuild(_)) => true,
                Some(ChannelTarget::GitHub(g)) => matches!(g.token, SecretSource::Ssm(_)),
                _ => false,
            };
            if aws_only && self.backend != Some(Backend::Aws) {
                self.error(
                    item,
                    &path,
                    "SSM parameters, SNS topics and CodeBuild projects need `backend: aws`".into(),
                    Some("use `url_env` (or `token_env`) on the local backend".into()),
                );
            }
            let mut on = Vec::new();
            if let Some(list) = f.get("on") {
                for (j, e) in self.seq(list, &f.path("on")).iter().enumerate() {
                    on.extend(self.one_of(e, &format!("{}[{j}]", f.path("on")), "event", &NotifyEvent::ALL));
                }
            } else if matches!(channel, Some(Channel::Github | Channel::Codebuild)) {
                // A dispatch starts a promotion: by default once its approvals are complete.
                on.push(NotifyEvent::Approved);
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

    /// Refuses the keys of other channel types (`what` names this one).
    fn only(&mut self, f: &Fields<'_>, what: &str, allowed: &[&str]) {
        for (key, _) in keys::NOTIFICATION {
            if ["type", "url", "on", "stages"].contains(key) || allowed.contains(key) {
                continue;
            }
            if let Some(n) = f.get(key) {
                self.error(
                    n,
                    &f.path(key),
                    format!("`{key}` does not apply to a {what} notification"),
                    Some(format!("a {what} notification takes {}", allowed.join(", "))),
                );
            }
        }
    }

    fn webhook(&mut self, item: &Node, f: &Fields<'_>, channel: Channel) -> Option<ChannelTarget> {
        let path = &f.path;
        if channel == Channel::Sns {
            self.only(f, "sns", &["topic"]);
            let Some(t) = self.opt_string(f, "topic") else {
                self.error(item, path, "an sns notification needs `topic`".into(), Some("topic: arn:aws:sns:REGION:ACCOUNT:NAME".into()));
                return None;
            };
            let ok = t.starts_with("arn:aws") && t.split(':').count() == 6 && t.split(':').nth(2) == Some("sns");
            if !ok {
                self.error(item, &f.path("topic"), format!("invalid SNS topic ARN `{t}`"), Some("arn:aws:sns:REGION:ACCOUNT:NAME".into()));
            }
            return ok.then_some(ChannelTarget::SnsTopic(t));
        }
        self.only(f, "webhook", &["url_env", "url_ssm"]);
        let source = self.secret_source(item, f, ("url_env", "url_ssm"), "webhook", None)?;
        Some(match source {
            SecretSource::Env(v) => ChannelTarget::UrlEnv(v),
            SecretSource::Ssm(p) => ChannelTarget::UrlSsm(p),
        })
    }

    /// Exactly one of `keys` (`(ENV_KEY, SSM_KEY)`): a secret from an environment variable
    /// (a valid name) or an SSM parameter; `what` names the channel type in errors.
    fn secret_source(&mut self, item: &Node, f: &Fields<'_>, keys: (&str, &str), what: &str, hint: Option<String>) -> Option<SecretSource> {
        let (env_key, ssm_key) = keys;
        match (self.opt_string(f, env_key), self.opt_string(f, ssm_key)) {
            (Some(v), None) if env_name_ok(&v) => Some(SecretSource::Env(v)),
            (Some(v), None) => {
                self.error(
                    item,
                    &f.path(env_key),
                    format!("invalid environment variable name `{v}`"),
                    Some("use letters, digits and `_`".into()),
                );
                None
            }
            (None, Some(p)) => Some(SecretSource::Ssm(p)),
            _ => {
                self.error(item, &f.path, format!("a {what} notification needs exactly one of `{env_key}` or `{ssm_key}`"), hint);
                None
            }
        }
    }

    fn github(&mut self, item: &Node, f: &Fields<'_>) -> Option<ChannelTarget> {
        self.only(f, "github", &["repository", "workflow", "ref", "event_type", "token_env", "token_ssm", "api_url"]);
        let repository = self.required(f, "repository").and_then(|n| self.string(n, &f.path("repository")));
        let repository = repository.filter(|r| {
            let parts: Vec<&str> = r.split('/').collect();
            let ok = parts.len() == 2
                && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)));
            if !ok {
                self.error(
                    f.get("repository").unwrap_or(item),
                    &f.path("repository"),
                    format!("invalid repository `{r}`"),
                    Some("OWNER/REPO, e.g. acme/shop".into()),
                );
            }
            ok
        });
        let dispatch = match (self.opt_string(f, "workflow"), self.opt_string(f, "event_type"), self.opt_string(f, "ref")) {
            (Some(workflow), None, git_ref) => Some(Dispatch::Workflow { workflow, git_ref: git_ref.unwrap_or_else(|| "main".into()) }),
            (None, Some(event_type), None) => Some(Dispatch::Repository { event_type }),
            (None, Some(_), Some(_)) => {
                self.error(item, &f.path("ref"), "`ref` applies to a workflow_dispatch (`workflow`), not to `event_type`".into(), None);
                None
            }
            _ => {
                self.error(
                    item,
                    &f.path,
                    "a github notification needs exactly one of `workflow` (workflow_dispatch) or `event_type` (repository_dispatch)"
                        .into(),
                    Some("workflow: promote.yml — a workflow with `on: workflow_dispatch` and inputs `release` and `stage`".into()),
                );
                None
            }
        };
        let token = self.secret_source(
            item,
            f,
            ("token_env", "token_ssm"),
            "github",
            Some("a token allowed to dispatch workflows (actions: write), e.g. token_env: FERRY_DISPATCH_TOKEN".into()),
        );
        let api_url = match self.opt_string(f, "api_url") {
            None => Some(GITHUB_API.to_owned()),
            Some(u) => {
                let loopback = ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"].iter().any(|p| u.starts_with(p));
                let ok = (u.starts_with("https://") && u.len() > "https://".len()) || loopback;
                if !ok {
                    self.error(
                        item,
                        &f.path("api_url"),
                        format!("`{u}` is not an https URL"),
                        Some("https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server".into()),
                    );
                }
                ok.then(|| u.trim_end_matches('/').to_owned())
            }
        };
        Some(ChannelTarget::GitHub(GitHubDispatch { api_url: api_url?, repository: repository?, dispatch: dispatch?, token: token? }))
    }

    fn codebuild(&mut self, item: &Node, f: &Fields<'_>) -> Option<ChannelTarget> {
        self.only(f, "codebuild", &["project"]);
        let project = self.required(f, "project").and_then(|n| self.string(n, &f.path("project")))?;
        let name = project.rsplit(":project/").next().unwrap_or_default();
        let ok = (2..=255).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c));
        if !ok {
            self.error(
                f.get("project").unwrap_or(item),
                &f.path("project"),
                format!("invalid CodeBuild project `{project}`"),
                Some("the project's name (letters, digits, - and _) or its ARN".into()),
            );
        }
        ok.then_some(ChannelTarget::CodeBuild(project))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse_str;
    use super::*;
    use crate::yaml::Diagnostic;

    const BASE: &str = r#"
version: 1
name: web
accounts: {dev: "011111111111", prod: "033333333333"}
signing: {key: k, public_key: k.pem}
build: {account: dev, artifacts: [{name: app, path: app.bin}]}
stages:
  - {name: prod, account: prod}
notifications:
"#;

    fn parse(notifications: &str) -> Result<crate::pipeline::Pipeline, Vec<Diagnostic>> {
        parse_str(Path::new("p.yaml"), &format!("{BASE}{notifications}"))
    }

    #[test]
    fn a_github_dispatch_defaults_to_main_the_public_api_and_the_approved_event() {
        let p = parse("  - {type: github, repository: acme/shop, workflow: promote.yml, token_env: GH_TOKEN}\n").unwrap();
        let n = &p.notifications[0];
        assert_eq!(n.on, [NotifyEvent::Approved], "a dispatch starts a promotion once approvals are complete");
        let ChannelTarget::GitHub(g) = &n.target else { panic!("{:?}", n.target) };
        assert_eq!(g.api_url, GITHUB_API);
        assert_eq!(g.dispatch, Dispatch::Workflow { workflow: "promote.yml".into(), git_ref: "main".into() });
        assert_eq!(g.token, SecretSource::Env("GH_TOKEN".into()));
        assert_eq!(n.describe(), "github (acme/shop workflow promote.yml)");
    }

    #[test]
    fn a_misspelt_type_or_event_gets_a_suggestion() {
        let d = parse("  - {type: slak, url_env: U}\n  - {type: webhook, url_env: U, on: [aproved]}\n").unwrap_err();
        assert_eq!(d[0].message, "unknown notification type `slak`");
        assert!(d[0].hint.as_deref().unwrap().starts_with("did you mean `slack`? one of slack, teams,"), "{:?}", d[0].hint);
        assert_eq!(d[1].field, "notifications[1].on[0]");
        assert!(d[1].hint.as_deref().unwrap().starts_with("did you mean `approved`?"), "{:?}", d[1].hint);
    }

    #[test]
    fn a_dispatch_needs_a_target_and_a_token_and_refuses_other_channels_keys() {
        let d = parse("  - {type: github, repository: acme, token_env: T, workflow: w.yml, url_env: U}\n").unwrap_err();
        let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
        assert!(messages.contains(&"invalid repository `acme`"), "{messages:?}");
        assert!(messages.contains(&"`url_env` does not apply to a github notification"), "{messages:?}");
        let d = parse("  - {type: github, repository: acme/shop, workflow: w.yml}\n").unwrap_err();
        assert_eq!(d[0].message, "a github notification needs exactly one of `token_env` or `token_ssm`");
        let d = parse("  - {type: github, repository: acme/shop, token_env: T}\n").unwrap_err();
        assert!(d[0].message.starts_with("a github notification needs exactly one of `workflow`"), "{:?}", d[0]);
        let d = parse("  - {type: github, repository: acme/shop, workflow: w.yml, token_env: T, api_url: \"http://github.example\"}\n")
            .unwrap_err();
        assert_eq!(d[0].message, "`http://github.example` is not an https URL");
    }

    #[test]
    fn codebuild_and_ssm_tokens_need_the_aws_backend() {
        for n in ["  - {type: codebuild, project: promote}\n", "  - {type: github, repository: a/b, workflow: w.yml, token_ssm: /t}\n"] {
            let d = parse(n).unwrap_err();
            assert_eq!(d[0].message, "SSM parameters, SNS topics and CodeBuild projects need `backend: aws`", "{n}");
        }
        let d = parse("  - {type: codebuild, project: \"no spaces\"}\n").unwrap_err();
        assert!(d.iter().any(|d| d.message == "invalid CodeBuild project `no spaces`"), "{d:?}");
    }
}
