//! Guardrails: what a pipeline may not do, whatever else it says. Allowed regions, never the
//! management account, required cost-allocation tags on every stage, and approvals on
//! protected (prod-class) stages. Checked when the pipeline is read, so `ferry validate`,
//! `ferry plan` and every promotion enforce them alike, with line and column.

use std::collections::BTreeMap;

use super::keys;
use super::reader::Cx;
use super::{Build, Policy, Stage};
use crate::ids::{AccountId, Region, StageName};
use crate::yaml::{Kind, Node};

/// The node of `key` in a mapping node, if present.
pub(super) fn child<'a>(node: &'a Node, key: &str) -> Option<&'a Node> {
    match &node.kind {
        Kind::Map(entries) => entries.iter().find(|(k, _)| k.as_scalar() == Some(key)).map(|(_, v)| v),
        _ => None,
    }
}

fn valid_tag_key(k: &str) -> bool {
    !k.is_empty() && k.len() <= 128 && !k.starts_with("aws:") && k.chars().all(|c| c.is_alphanumeric() || " _.:/=+-@".contains(c))
}

impl Cx {
    pub(super) fn tags(&mut self, node: Option<&Node>, field: &str) -> BTreeMap<String, String> {
        let tags = self.string_map(node, field, |key| {
            (!valid_tag_key(key) || key.starts_with("ferry:")).then(|| {
                (
                    format!("invalid tag key `{key}`"),
                    "1-128 letters, digits, spaces and `_.:/=+-@`; `aws:` and `ferry:` are reserved".to_owned(),
                )
            })
        });
        if let Some(Kind::Map(entries)) = node.map(|n| &n.kind) {
            for (k, v) in entries {
                if v.as_scalar().is_some_and(|value| value.chars().count() > 256) {
                    self.error(
                        v,
                        &format!("{field}.{}", k.as_scalar().unwrap_or_default()),
                        "a tag value has at most 256 characters".into(),
                        None,
                    );
                }
            }
        }
        tags
    }

    pub(super) fn policy(&mut self, node: &Node, accounts: &BTreeMap<String, AccountId>) -> Option<Policy> {
        let f = self.fields(node, "policy", keys::POLICY)?;
        let mut p = Policy::default();
        if let Some(list) = f.get("allowed_regions") {
            for (i, r) in self.seq(list, "policy.allowed_regions").iter().enumerate() {
                if let Some(region) = self.parsed::<Region>(r, &format!("policy.allowed_regions[{i}]")) {
                    p.allowed_regions.push(region);
                }
            }
        }
        if let Some(n) = f.get("management_account") {
            // An id, or an alias declared under `accounts:`.
            let raw = n.as_scalar().unwrap_or_default();
            p.management_account = match accounts.get(raw) {
                Some(id) => Some(id.clone()),
                None => self.parsed::<AccountId>(n, "policy.management_account"),
            };
        }
        if let Some(list) = f.get("required_tags") {
            for (i, t) in self.seq(list, "policy.required_tags").iter().enumerate() {
                if let Some(key) = self.string(t, &format!("policy.required_tags[{i}]")) {
                    p.required_tags.push(key);
                }
            }
        }
        if let Some(list) = f.get("protected_stages") {
            for (i, s) in self.seq(list, "policy.protected_stages").iter().enumerate() {
                if let Some(stage) = self.parsed::<StageName>(s, &format!("policy.protected_stages[{i}]")) {
                    p.protected_stages.push(stage);
                }
            }
        }
        if let Some(path) = self.opt_string(&f, "freeze_file") {
            p.freeze_file = Some(std::path::PathBuf::from(path));
        }
        if let Some(path) = self.opt_string(&f, "org_policy") {
            p.org_policy = Some(std::path::PathBuf::from(path));
        }
        if let Some(n) = f.get("allow_rollback_without_approval") {
            p.allow_rollback_without_approval = self.bool(n, "policy.allow_rollback_without_approval").unwrap_or(false);
        }
        Some(p)
    }

    /// Reads the organization's policy file and merges it into `policy`: lists are joined, a
    /// rollback without approval must be allowed by both, and the two may not name different
    /// management accounts. Problems in the file are reported with its own positions.
    pub(super) fn merge_org_policy(
        &mut self,
        policy: &mut Policy,
        path: &std::path::Path,
        at: Option<&Node>,
        accounts: &BTreeMap<String, AccountId>,
    ) {
        let Some((mut org_cx, root)) = self.side_file(path, at, "policy.org_policy", "organization policy") else { return };
        const TOP: keys::Keys = &[("policy", "The organization's guardrails (same keys as a pipeline's `policy:`).")];
        let org = org_cx.fields(&root, "", TOP).and_then(|f| f.get("policy")).and_then(|n| org_cx.policy(n, accounts));
        self.diags.append(&mut org_cx.diags);
        let Some(org) = org else { return };
        policy.allowed_regions = match (policy.allowed_regions.is_empty(), org.allowed_regions.is_empty()) {
            (_, true) => std::mem::take(&mut policy.allowed_regions),
            (true, false) => org.allowed_regions,
            (false, false) => {
                let both: Vec<Region> = policy.allowed_regions.iter().filter(|r| org.allowed_regions.contains(r)).cloned().collect();
                if both.is_empty()
                    && let Some(n) = at
                {
                    self.error(
                        n,
                        "policy.allowed_regions",
                        "the pipeline's allowed regions and the organization's have none in common".into(),
                        None,
                    );
                }
                if both.is_empty() { org.allowed_regions } else { both }
            }
        };
        match (&policy.management_account, org.management_account) {
            (Some(a), Some(b)) if a != &b => {
                if let Some(n) = at {
                    self.error(
                        n,
                        "policy.management_account",
                        format!("the pipeline names management account `{a}`, the organization policy `{b}`"),
                        None,
                    );
                }
            }
            (None, Some(b)) => policy.management_account = Some(b),
            _ => {}
        }
        for t in org.required_tags {
            if !policy.required_tags.contains(&t) {
                policy.required_tags.push(t);
            }
        }
        for s in org.protected_stages {
            if !policy.protected_stages.contains(&s) {
                policy.protected_stages.push(s);
            }
        }
        policy.allow_rollback_without_approval &= org.allow_rollback_without_approval;
        if policy.freeze_file.is_none() {
            // Relative to the organization's file, expressed relative to the pipeline's directory.
            let org_dir =
                policy.org_policy.as_deref().and_then(std::path::Path::parent).map(std::path::Path::to_path_buf).unwrap_or_default();
            policy.freeze_file = org.freeze_file.map(|f| org_dir.join(f));
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn guardrails(
        &mut self,
        policy: &Policy,
        tags: &BTreeMap<String, String>,
        stages: &[Stage],
        nodes: &[&Node],
        build_node: Option<&Node>,
        build: Option<&Build>,
        aws_node: Option<&Node>,
        policy_node: Option<&Node>,
    ) {
        let regions: Vec<&str> = policy.allowed_regions.iter().map(Region::as_str).collect();
        let region_hint = || Some(format!("allowed regions: {}", regions.join(", ")));
        if let (Some(mgmt), Some(b), Some(n)) = (&policy.management_account, build, build_node)
            && &b.account == mgmt
        {
            let at = child(n, "account").unwrap_or(n);
            self.error(at, "build.account", format!("the build may not run in the management account `{mgmt}`"), None);
        }
        if !regions.is_empty()
            && let Some(r) = aws_node.and_then(|n| child(n, "region"))
            && let Some(name) = r.as_scalar()
            && !regions.contains(&name)
        {
            self.error(r, "aws.region", format!("region `{name}` is not allowed by the policy"), region_hint());
        }
        // Checked against every declared stage, even one with problems of its own; not at all
        // when `stages` itself could not be read (that problem is reported already).
        if let Some(Kind::Seq(listed)) = policy_node.and_then(|n| child(n, "protected_stages")).map(|n| &n.kind)
            && let Some(declared) = self.stage_names.clone()
        {
            let known: Vec<&str> = declared.iter().map(String::as_str).collect();
            for (i, n) in listed.iter().enumerate() {
                if let Some(name) = n.as_scalar()
                    && !known.contains(&name)
                {
                    let hint = match super::reader::closest(name, &known) {
                        Some(s) => format!("did you mean `{s}`? stages: {}", known.join(", ")),
                        None => format!("stages: {}", known.join(", ")),
                    };
                    self.error(
                        n,
                        &format!("policy.protected_stages[{i}]"),
                        format!("protected stage `{name}` is not a stage of this pipeline"),
                        Some(hint),
                    );
                }
            }
        }
        for (i, (stage, node)) in stages.iter().zip(nodes).enumerate() {
            let path = format!("stages[{i}]");
            if !regions.is_empty() {
                match (&stage.region, child(node, "region")) {
                    (Some(r), Some(n)) if !regions.contains(&r.as_str()) => {
                        self.error(n, &format!("{path}.region"), format!("region `{r}` is not allowed by the policy"), region_hint());
                    }
                    (None, _) => self.error(
                        node,
                        &format!("{path}.region"),
                        format!("stage `{}` must name its region: the policy restricts regions", stage.name),
                        region_hint(),
                    ),
                    _ => {}
                }
            }
            if policy.management_account.as_ref() == Some(&stage.account) {
                let at = child(node, "account").unwrap_or(node);
                self.error(
                    at,
                    &format!("{path}.account"),
                    format!("stage `{}` may not deploy into the management account `{}`", stage.name, stage.account),
                    None,
                );
            }
            if policy.protected_stages.contains(&stage.name) && stage.approval.is_none() {
                self.error(
                    node,
                    &format!("{path}.approval"),
                    format!("stage `{}` is protected by the policy and must require approvals", stage.name),
                    Some("add `approval: {required: 2, approvers: [...]}`".into()),
                );
            }
            let missing: Vec<&str> = policy
                .required_tags
                .iter()
                .filter(|k| !tags.contains_key(*k) && !stage.tags.contains_key(*k))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                self.error(
                    node,
                    &format!("{path}.tags"),
                    format!(
                        "stage `{}` lacks the required tag(s) {}",
                        stage.name,
                        missing.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
                    ),
                    Some("set them under the pipeline's or the stage's `tags:`".into()),
                );
            }
        }
    }
}
