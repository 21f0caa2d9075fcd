//! Validation of deploy actions: `command`, and the aws backend's `s3`, `cloudformation`,
//! `ecr` and `codepipeline`.

use super::keys;
use super::reader::Cx;
use super::{Action, Backend};
use crate::yaml::{Kind, Node};

impl Cx {
    pub(super) fn actions(&mut self, node: &Node, path: &str) -> Vec<Action> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path).iter().enumerate() {
            let p = format!("{path}[{i}]");
            match self.typed(item, &p, keys::PLANNED_ACTIONS, &["command", "s3", "cloudformation", "ecr", "codepipeline"]) {
                Some("command") => {
                    let Some(f) = self.fields(item, &p, keys::COMMAND_ACTION) else { continue };
                    let run = self.required(&f, "run").and_then(|n| self.string(n, &f.path("run")));
                    let env = self.env(f.get("env"), &f.path("env"));
                    let timeout = f.get("timeout").and_then(|n| self.duration(n, &f.path("timeout")));
                    if let Some(run) = run {
                        out.push(Action::Command { run, env, timeout });
                    }
                }
                Some(kind) => {
                    if self.backend != Some(Backend::Aws) {
                        let at = match &item.kind {
                            Kind::Map(entries) => entries.iter().find(|(k, _)| k.as_scalar() == Some("type")).map_or(item, |(_, v)| v),
                            _ => item,
                        };
                        self.error(
                            at,
                            &format!("{p}.type"),
                            format!("the `{kind}` action needs `backend: aws`"),
                            Some("use a `command` action on the local backend".into()),
                        );
                    }
                    let parsed = match kind {
                        "cloudformation" => Some(self.cloudformation(item, &p)),
                        "ecr" => Some(self.ecr(item, &p)),
                        "codepipeline" => Some(self.codepipeline(item, &p)),
                        _ => None,
                    };
                    if let Some(parsed) = parsed {
                        out.extend(parsed);
                        continue;
                    }
                    let Some(f) = self.fields(item, &p, keys::S3_ACTION) else { continue };
                    let bucket = self.required(&f, "bucket").and_then(|n| self.string(n, &f.path("bucket")));
                    let prefix = self.opt_string(&f, "prefix").unwrap_or_default().trim_matches('/').to_owned();
                    let mut artifacts = Vec::new();
                    if let Some(list) = f.get("artifacts") {
                        for (j, a) in self.seq(list, &f.path("artifacts")).iter().enumerate() {
                            if let Some(name) = self.string(a, &format!("{}[{j}]", f.path("artifacts"))) {
                                artifacts.push(name);
                            }
                        }
                    }
                    if let Some(bucket) = bucket {
                        out.push(Action::S3 { bucket, prefix, artifacts });
                    }
                }
                None => {}
            }
        }
        out
    }

    fn ecr(&mut self, item: &Node, path: &str) -> Option<Action> {
        let f = self.fields(item, path, keys::ECR_ACTION)?;
        let image = self.required(&f, "image").and_then(|n| {
            let name = self.string(n, &f.path("image"))?;
            if self.images.contains(&name) {
                return Some(name);
            }
            let known = if self.images.is_empty() { "none".to_owned() } else { self.images.join(", ") };
            self.error(
                n,
                &f.path("image"),
                format!("unknown image `{name}`"),
                Some(format!("declare it in build.images (declared: {known})")),
            );
            None
        });
        let repository = match f.get("repository") {
            None => Some(None),
            Some(n) => self.repository(n, &f.path("repository")).map(Some),
        };
        let tags = match f.get("tags") {
            None => vec!["${release}".to_owned(), "${stage}".to_owned()],
            Some(list) => {
                let mut tags = Vec::new();
                for (i, t) in self.seq(list, &f.path("tags")).iter().enumerate() {
                    let field = format!("{}[{i}]", f.path("tags"));
                    let Some(tag) = self.string(t, &field) else { continue };
                    // Placeholders expand to tag-safe text; check the literal parts.
                    let literal = ["${release}", "${stage}", "${pipeline}"].iter().fold(tag.clone(), |acc, p| acc.replace(p, "x"));
                    let ok = (1..=128).contains(&literal.len())
                        && literal.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
                        && literal.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                    if ok {
                        tags.push(tag);
                    } else {
                        self.error(
                            t,
                            &field,
                            format!("invalid image tag `{tag}`"),
                            Some("letters, digits, `.`, `_`, `-` and ${release}, ${stage} or ${pipeline}; up to 128 characters".into()),
                        );
                    }
                }
                tags
            }
        };
        Some(Action::Ecr { image: image?, repository: repository?, tags })
    }

    fn codepipeline(&mut self, item: &Node, path: &str) -> Option<Action> {
        let f = self.fields(item, path, keys::CODEPIPELINE_ACTION)?;
        let pipeline = self.required(&f, "pipeline").and_then(|n| {
            let name = self.string(n, &f.path("pipeline"))?;
            let ok = (1..=100).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
            if !ok {
                self.error(
                    n,
                    &f.path("pipeline"),
                    format!("invalid CodePipeline name `{name}`"),
                    Some("letters, digits, `.`, `_` and `-`".into()),
                );
            }
            ok.then_some(name)
        });
        let variables = self.string_map(f.get("variables"), &f.path("variables"), |_| None);
        let approve = match f.get("approve") {
            None => Some(None),
            Some(n) => self.fields(n, &f.path("approve"), keys::APPROVE_REF).and_then(|a| {
                let stage = self.required(&a, "stage").and_then(|n| self.string(n, &a.path("stage")));
                let action = self.required(&a, "action").and_then(|n| self.string(n, &a.path("action")));
                Some(Some((stage?, action?)))
            }),
        };
        let timeout = match f.get("timeout") {
            None => Some(std::time::Duration::from_secs(3600)),
            Some(n) => self.duration(n, &f.path("timeout")),
        };
        Some(Action::CodePipeline { pipeline: pipeline?, variables, approve: approve?, timeout: timeout? })
    }

    fn cloudformation(&mut self, item: &Node, path: &str) -> Option<Action> {
        let f = self.fields(item, path, keys::CFN_ACTION)?;
        let stack = self.required(&f, "stack").and_then(|n| {
            let name = self.string(n, &f.path("stack"))?;
            let ok = !name.is_empty()
                && name.len() <= 128
                && name.starts_with(|c: char| c.is_ascii_alphabetic())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if !ok {
                self.error(
                    n,
                    &f.path("stack"),
                    format!("invalid stack name `{name}`"),
                    Some("letters, digits and `-`, starting with a letter".into()),
                );
            }
            ok.then_some(name)
        });
        let template = self.required(&f, "template").and_then(|n| self.string(n, &f.path("template")));
        let parameters = self.string_map(f.get("parameters"), &f.path("parameters"), |_| None);
        let mut capabilities = Vec::new();
        if let Some(list) = f.get("capabilities") {
            for (i, c) in self.seq(list, &f.path("capabilities")).iter().enumerate() {
                const CAPABILITIES: [(&str, &str); 3] = [
                    ("CAPABILITY_IAM", "CAPABILITY_IAM"),
                    ("CAPABILITY_NAMED_IAM", "CAPABILITY_NAMED_IAM"),
                    ("CAPABILITY_AUTO_EXPAND", "CAPABILITY_AUTO_EXPAND"),
                ];
                let field = format!("{}[{i}]", f.path("capabilities"));
                capabilities.extend(self.one_of(c, &field, "capability", &CAPABILITIES).map(str::to_owned));
            }
        }
        Some(Action::CloudFormation { stack: stack?, template: template?, parameters, capabilities })
    }
}
