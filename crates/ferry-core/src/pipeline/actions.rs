//! Validation of deploy actions: `command`, and the aws backend's `s3` and `cloudformation`.

use super::keys;
use super::reader::Cx;
use super::{Action, Backend};
use crate::yaml::{Kind, Node};

impl Cx {
    pub(super) fn actions(&mut self, node: &Node, path: &str) -> Vec<Action> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path).iter().enumerate() {
            let p = format!("{path}[{i}]");
            match self.typed(item, &p, keys::PLANNED_ACTIONS, &["command", "s3", "cloudformation"]) {
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
                    if kind == "cloudformation" {
                        if let Some(a) = self.cloudformation(item, &p) {
                            out.push(a);
                        }
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
                match c.as_scalar() {
                    Some(cap @ ("CAPABILITY_IAM" | "CAPABILITY_NAMED_IAM" | "CAPABILITY_AUTO_EXPAND")) => capabilities.push(cap.to_owned()),
                    _ => self.error(
                        c,
                        &format!("{}[{i}]", f.path("capabilities")),
                        format!("unknown capability {}", c.describe()),
                        Some("CAPABILITY_IAM, CAPABILITY_NAMED_IAM or CAPABILITY_AUTO_EXPAND".into()),
                    ),
                }
            }
        }
        Some(Action::CloudFormation { stack: stack?, template: template?, parameters, capabilities })
    }
}
