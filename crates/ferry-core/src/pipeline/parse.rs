//! Turns a pipeline file into a `Pipeline`, collecting every problem (with line, column,
//! field and value) instead of stopping at the first.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::guardrails;
use super::keys;
use super::reader::Cx;
use super::source::read_source;
use super::*;
use crate::yaml::{self, Diagnostic, Kind, Node};

/// Reads and validates a pipeline file; `Err` holds every diagnostic found.
pub fn load(path: &Path) -> Result<Pipeline, Vec<Diagnostic>> {
    parse_str(path, &read_source(path, "")?)
}

/// Reads an organization-wide freeze file: `freezes: [{from, to, reason}]`.
pub fn load_freeze_file(path: &Path) -> Result<Vec<Freeze>, Vec<Diagnostic>> {
    let source = read_source(path, "freeze file ")?;
    let file = path.display().to_string();
    let root = yaml::parse(&file, &source).map_err(|d| vec![d])?;
    let mut cx = Cx::new(file, None);
    const KEYS: keys::Keys = &[("freezes", "Freeze periods: [{from, to, reason}].")];
    let freezes = cx.fields(&root, "", KEYS).and_then(|f| f.get("freezes")).map(|n| cx.freezes(n, "freezes")).unwrap_or_default();
    if cx.diags.is_empty() { Ok(freezes) } else { Err(cx.diags) }
}

/// Validates pipeline source text read from `path`.
pub fn parse_str(path: &Path, source: &str) -> Result<Pipeline, Vec<Diagnostic>> {
    let file = path.display().to_string();
    let root = yaml::parse(&file, source).map_err(|d| vec![d])?;
    let mut cx = Cx::new(file, None);
    let pipeline = cx.pipeline(path, &root);
    match pipeline {
        Some(p) if cx.diags.is_empty() => Ok(p),
        _ => {
            cx.diags.sort_by_key(|d| (d.line, d.column));
            Err(cx.diags)
        }
    }
}

impl Cx {
    fn pipeline(&mut self, path: &Path, root: &Node) -> Option<Pipeline> {
        let f = self.fields(root, "", keys::TOP)?;
        if let Some(v) = self.required(&f, "version")
            && v.as_scalar() != Some("1")
        {
            self.error(v, "version", format!("unsupported version {}", v.describe()), Some("this ferry reads `version: 1`".into()));
        }
        let name = self.required(&f, "name").and_then(|n| self.parsed::<PipelineName>(n, "name"));
        let backend = match f.get("backend") {
            None => Some(Backend::Local),
            Some(n) => self.one_of(n, "backend", "backend", &[("local", Backend::Local), ("aws", Backend::Aws)]),
        };
        self.backend = backend;
        let (accounts, declared) = self.accounts(f.get("accounts"));
        let signing = self.required(&f, "signing").and_then(|n| self.signing(n));
        let build = self.required(&f, "build").and_then(|n| self.build(n, &accounts, &declared));
        let tags = self.tags(f.get("tags"), "tags");
        let notifications = f.get("notifications").map(|n| self.notifications(n)).unwrap_or_default();
        let mut approvers = f.get("approvers").map(|n| self.approver_keys(n)).unwrap_or_default();
        if let Some(n) = f.get("approvers_file")
            && let Some(rel) = self.string(n, "approvers_file")
        {
            self.shared_approvers(&mut approvers, path.parent().unwrap_or(Path::new(".")), &rel, n);
        }
        self.approvers = approvers.iter().map(|a| a.name.clone()).collect();
        let mut policy = f.get("policy").and_then(|n| self.policy(n, &accounts)).unwrap_or_default();
        if let Some(file) = policy.org_policy.clone() {
            let node = f.get("policy").and_then(|n| guardrails::child(n, "org_policy"));
            self.merge_org_policy(&mut policy, &path.parent().unwrap_or(Path::new(".")).join(file), node, &accounts);
        }
        let (stages, stage_nodes) = self.required(&f, "stages").map(|n| self.stages(n, &accounts, &declared)).unwrap_or_default();
        self.guardrails(&policy, &tags, &stages, &stage_nodes, f.get("build"), build.as_ref(), f.get("aws"), f.get("policy"));
        let audit_fields = f.get("audit").and_then(|n| self.fields(n, "audit", keys::AUDIT));
        let audit = Audit {
            account_alias: audit_fields
                .as_ref()
                .and_then(|a| a.get("account"))
                .and_then(|n| self.account_ref(n, "audit.account", &accounts, &declared))
                .map(|(alias, _)| alias),
        };
        let aws = self.aws(root, backend, f.get("aws"), audit_fields.as_ref(), &accounts, &declared);
        if let (Some(Signing { key: SigningKey::Kms { .. }, .. }), Some(Backend::Local), Some(n)) = (&signing, backend, f.get("signing")) {
            self.error(
                n,
                "signing.kms_key",
                "KMS signing needs `backend: aws`".into(),
                Some("use `key:` with a local key on the local backend".into()),
            );
        }
        Some(Pipeline {
            file: path.to_owned(),
            name: name?,
            backend: backend?,
            accounts,
            signing: signing?,
            build: build?,
            stages,
            audit,
            aws: aws?,
            tags,
            policy,
            notifications,
            approvers,
            origins: Origins { at: std::mem::take(&mut self.origins) },
        })
    }

    fn accounts(&mut self, node: Option<&Node>) -> (BTreeMap<String, AccountId>, Vec<String>) {
        let mut out = BTreeMap::new();
        let mut declared = Vec::new();
        let Some(node) = node else {
            return (out, declared);
        };
        let Kind::Map(entries) = &node.kind else {
            self.error(node, "accounts", format!("expected a mapping of aliases to account ids, found {}", node.describe()), None);
            return (out, declared);
        };
        for (k, v) in entries {
            let Some(alias) = self.string(k, "accounts") else { continue };
            declared.push(alias.clone());
            let field = format!("accounts.{alias}");
            if let Some(id) = self.parsed::<AccountId>(v, &field) {
                out.insert(alias, id);
            }
        }
        (out, declared)
    }

    fn signing(&mut self, node: &Node) -> Option<Signing> {
        let f = self.fields(node, "signing", keys::SIGNING)?;
        let public_key = self.required(&f, "public_key").and_then(|n| self.string(n, "signing.public_key"));
        let role = self.opt_string(&f, "role");
        let key = match (f.get("key"), f.get("kms_key")) {
            (Some(n), None) => {
                if let (Some(_), Some(r)) = (&role, f.get("role")) {
                    self.error(r, "signing.role", "`role` applies to `kms_key` only".into(), None);
                }
                self.string(n, "signing.key").map(SigningKey::Local)
            }
            (None, Some(n)) => self.kms_key(n, role.as_deref()),
            _ => {
                self.error(node, "signing", "set exactly one of `key` (a local key) or `kms_key` (a KMS key ARN)".into(), None);
                None
            }
        };
        Some(Signing { key: key?, public_key: PathBuf::from(public_key?) })
    }

    fn relative_path(&mut self, node: &Node, field: &str) -> Option<String> {
        let s = self.string(node, field)?;
        let p = Path::new(&s);
        if s.is_empty() || p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
            self.error(node, field, format!("path `{s}` must be relative and stay inside the working directory"), None);
            return None;
        }
        Some(s)
    }

    fn build(&mut self, node: &Node, accounts: &BTreeMap<String, AccountId>, declared: &[String]) -> Option<Build> {
        let f = self.fields(node, "build", keys::BUILD)?;
        let account = self.required(&f, "account").and_then(|n| self.account_ref(n, "build.account", accounts, declared));
        let role = self.role_name(&f, "role");
        let command = self.opt_string(&f, "command");
        let working_dir = self.opt_string(&f, "working_dir").unwrap_or_else(|| ".".into());
        let env = self.env(f.get("env"), "build.env");
        let mut artifacts = Vec::new();
        match f.get("artifacts") {
            None => self.error(
                node,
                "build.artifacts",
                "missing artifact declarations: a release needs at least one artifact".into(),
                Some("add `artifacts: [{name: app, path: dist/app.tar.gz}]`".into()),
            ),
            Some(list) => {
                let items = self.seq(list, "build.artifacts");
                if items.is_empty() && matches!(list.kind, Kind::Seq(_)) {
                    self.error(list, "build.artifacts", "missing artifact declarations: the list is empty".into(), None);
                }
                let mut seen: HashMap<String, usize> = HashMap::new();
                for (i, item) in items.iter().enumerate() {
                    let path = format!("build.artifacts[{i}]");
                    let Some(a) = self.fields(item, &path, keys::ARTIFACT) else { continue };
                    let name = self.required(&a, "name").and_then(|n| self.string(n, &a.path("name")));
                    let source = match (a.get("path"), a.get("glob")) {
                        (Some(p), None) => self.relative_path(p, &a.path("path")).map(ArtifactSource::Path),
                        (None, Some(g)) => self.relative_path(g, &a.path("glob")).map(ArtifactSource::Glob),
                        _ => {
                            self.error(item, &path, "an artifact needs exactly one of `path` or `glob`".into(), None);
                            None
                        }
                    };
                    if let Some(name) = &name {
                        if name.is_empty() || name.contains(['/', '\\']) || name.chars().any(char::is_whitespace) {
                            self.error(
                                item,
                                &a.path("name"),
                                format!("invalid artifact name `{name}`"),
                                Some("no slashes or spaces".into()),
                            );
                        }
                        if let Some(first) = seen.insert(name.clone(), i) {
                            self.error(
                                item,
                                &a.path("name"),
                                format!("duplicate artifact name `{name}` (also build.artifacts[{first}])"),
                                None,
                            );
                        }
                    }
                    if let (Some(name), Some(source)) = (name, source) {
                        artifacts.push(ArtifactDecl { name, source });
                    }
                }
            }
        }
        let images = f.get("images").map(|n| self.images(n)).unwrap_or_default();
        let (account_alias, account) = account?;
        Some(Build { account_alias, account, role, command, working_dir: PathBuf::from(working_dir), env, artifacts, images })
    }

    fn stages<'a>(&mut self, node: &'a Node, accounts: &BTreeMap<String, AccountId>, declared: &[String]) -> (Vec<Stage>, Vec<&'a Node>) {
        let items = self.seq(node, "stages");
        if items.is_empty() && matches!(node.kind, Kind::Seq(_)) {
            self.error(node, "stages", "a pipeline needs at least one stage".into(), None);
        }
        // Names first, so `requires` can tell an unknown stage from a later one.
        let names: Vec<Option<(StageName, &Node)>> = items
            .iter()
            .map(|item| match &item.kind {
                Kind::Map(entries) => entries
                    .iter()
                    .find(|(k, _)| k.as_scalar() == Some("name"))
                    .and_then(|(_, v)| v.as_scalar().and_then(|s| s.parse().ok()).map(|n| (n, v))),
                _ => None,
            })
            .collect();
        let complete = matches!(node.kind, Kind::Seq(_)) && names.iter().all(Option::is_some);
        self.stage_names = complete.then(|| names.iter().flatten().map(|(n, _)| n.to_string()).collect());
        let mut stages = Vec::new();
        let mut stage_nodes = Vec::new();
        let mut edges: Vec<(usize, usize, &Node)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("stages[{i}]");
            let Some(f) = self.fields(item, &path, keys::STAGE) else { continue };
            let name = self.required(&f, "name").and_then(|n| self.parsed::<StageName>(n, &f.path("name")));
            if let Some(name) = &name
                && let Some(j) = names[..i].iter().position(|n| n.as_ref().is_some_and(|(m, _)| m == name))
            {
                let n = f.get("name").unwrap_or(item);
                self.error(n, &f.path("name"), format!("duplicate stage name `{name}` (also stages[{j}])"), None);
            }
            let account = self.required(&f, "account").and_then(|n| self.account_ref(n, &f.path("account"), accounts, declared));
            let region = f.get("region").and_then(|n| self.parsed::<Region>(n, &f.path("region")));
            let role = self.role_name(&f, "role");
            let requires = match f.get("requires") {
                None if f.map.contains_key("requires") => Vec::new(),
                None => match (0..i).rev().find_map(|j| names[j].as_ref().map(|(n, _)| (j, n.clone()))) {
                    Some((j, prev)) => {
                        edges.push((i, j, item));
                        vec![prev]
                    }
                    None => Vec::new(),
                },
                Some(list) => {
                    let mut out = Vec::new();
                    for (j, r) in self.seq(list, &f.path("requires")).iter().enumerate() {
                        let field = format!("{}[{j}]", f.path("requires"));
                        let Some(req) = self.parsed::<StageName>(r, &field) else { continue };
                        match names.iter().position(|n| n.as_ref().is_some_and(|(m, _)| m == &req)) {
                            // A stage without a readable name is reported already.
                            None if !complete => {}
                            None => {
                                let mut known: Vec<String> = Vec::new();
                                for (n, _) in names.iter().flatten() {
                                    if !known.contains(&n.to_string()) {
                                        known.push(n.to_string());
                                    }
                                }
                                self.error(
                                    r,
                                    &field,
                                    format!("stage requires unknown stage `{req}`"),
                                    Some(format!("known stages: {}", known.join(", "))),
                                );
                            }
                            Some(k) => {
                                edges.push((i, k, r));
                                out.push(req);
                            }
                        }
                    }
                    out
                }
            };
            let approval = f.get("approval").and_then(|n| self.approval(n, &f.path("approval")));
            let gates = f.get("gates").map(|n| self.gates(n, &f.path("gates"))).unwrap_or_default();
            let deploy = match f.get("deploy") {
                Some(n) => self.actions(n, &f.path("deploy")),
                None => Vec::new(),
            };
            let tags = self.tags(f.get("tags"), &f.path("tags"));
            let on_failure = match f.get("on_failure") {
                None => OnFailure::Fail,
                Some(n) => self
                    .one_of(n, &f.path("on_failure"), "`on_failure`", &[("fail", OnFailure::Fail), ("rollback", OnFailure::Rollback)])
                    .unwrap_or_default(),
            };
            let ignore_org_freeze = f.get("ignore_org_freeze").and_then(|n| self.bool(n, &f.path("ignore_org_freeze"))).unwrap_or(false);
            if let (Some(name), Some((account_alias, account))) = (name, account) {
                stages.push(Stage {
                    name,
                    account_alias,
                    account,
                    role,
                    region,
                    requires,
                    approval,
                    gates,
                    deploy,
                    tags,
                    on_failure,
                    ignore_org_freeze,
                });
                stage_nodes.push(item);
            }
        }
        self.order(&names, &edges);
        (stages, stage_nodes)
    }

    /// Reports stages that require themselves or a later stage, and any dependency cycle.
    fn order(&mut self, names: &[Option<(StageName, &Node)>], edges: &[(usize, usize, &Node)]) {
        let name = |i: usize| names[i].as_ref().map(|(n, _)| n.to_string()).unwrap_or_default();
        for &(from, to, node) in edges {
            if to >= from {
                let what = if to == from { "itself".to_owned() } else { format!("later stage `{}`", name(to)) };
                self.error(
                    node,
                    &format!("stages[{from}].requires"),
                    format!("stage `{}` requires {what}", name(from)),
                    Some("a stage may only require stages listed before it; promotion runs in file order".into()),
                );
            }
        }
        // Cycles among the forward edges, reported once each, starting at the lowest index.
        let n = names.len();
        let mut adj = vec![Vec::new(); n];
        for &(from, to, _) in edges {
            if from != to {
                adj[from].push(to);
            }
        }
        let mut reported = Vec::new();
        #[allow(clippy::needless_range_loop)] // `start` indexes both `adj` (via find_cycle) and `names`
        for start in 0..n {
            if let Some(cycle) = find_cycle(&adj, start) {
                let mut key = cycle.clone();
                key.sort_unstable();
                if reported.contains(&key) {
                    continue;
                }
                reported.push(key);
                let path: Vec<String> = cycle.iter().chain(std::iter::once(&cycle[0])).map(|&i| name(i)).collect();
                if let Some((_, node)) = &names[start] {
                    let node = *node;
                    self.error(node, &format!("stages[{start}].requires"), format!("dependency cycle: {}", path.join(" → ")), None);
                }
            }
        }
    }

    fn approval(&mut self, node: &Node, path: &str) -> Option<ApprovalPolicy> {
        let f = self.fields(node, path, keys::APPROVAL)?;
        let required = match f.get("required") {
            None => Some(1),
            Some(n) => match n.as_scalar().and_then(|s| s.parse::<u32>().ok()) {
                Some(v) if v >= 1 => Some(v),
                _ => {
                    self.error(
                        n,
                        &f.path("required"),
                        format!("`required` must be a whole number of at least 1, found {}", n.describe()),
                        None,
                    );
                    None
                }
            },
        };
        if self.approvers.is_empty() {
            self.error(
                node,
                path,
                "this stage needs approvals, but the pipeline pins no approver keys".into(),
                Some("add `approvers: {alice: {public_key: keys/alice.pem}}` at the top (`ferry keygen --name alice`, then `ferry key export --name alice --out keys`)".into()),
            );
        }
        let mut approvers = Vec::new();
        if let Some(list) = f.get("approvers") {
            for (i, a) in self.seq(list, &f.path("approvers")).iter().enumerate() {
                let at = format!("{}[{i}]", f.path("approvers"));
                let Some(name) = self.string(a, &at) else { continue };
                if !self.approvers.is_empty() && !self.approvers.contains(&name) {
                    let hint = format!("pinned approvers: {}; add `{name}` under the top-level `approvers:`", self.approvers.join(", "));
                    self.error(a, &at, format!("approver `{name}` has no pinned key"), Some(hint));
                }
                approvers.push(name);
            }
        }
        let pool = if approvers.is_empty() { self.approvers.len() } else { approvers.len() };
        if let Some(r) = required
            && pool > 0
            && r as usize > pool
        {
            let n = f.get("required").unwrap_or(node);
            self.error(
                n,
                &f.path("required"),
                format!("approval count {r} is larger than the approvers who may give it ({pool})"),
                Some("lower `required` or pin more approvers".into()),
            );
        }
        let expires = match f.get("expires") {
            None => Some(Duration::from_secs(24 * 3600)),
            Some(n) => self.duration(n, &f.path("expires")),
        };
        let allow_self_approval = match f.get("allow_self_approval") {
            None => Some(false),
            Some(n) => self.bool(n, &f.path("allow_self_approval")),
        };
        Some(ApprovalPolicy { required: required?, approvers, expires: expires?, allow_self_approval: allow_self_approval? })
    }

    pub(super) fn typed<'a>(&mut self, item: &'a Node, path: &str, planned: &[&str], supported: &[&str]) -> Option<&'a str> {
        let list = supported.join(", ");
        let Kind::Map(entries) = &item.kind else {
            self.error(item, path, format!("expected a mapping with a `type`, found {}", item.describe()), None);
            return None;
        };
        let Some((_, t)) = entries.iter().find(|(k, _)| k.as_scalar() == Some("type")) else {
            self.error(item, &format!("{path}.type"), "missing required key `type`".into(), Some(format!("supported types: {list}")));
            return None;
        };
        let (message, hint) = match t.as_scalar() {
            Some(s) if supported.contains(&s) => return Some(s),
            Some(s) if planned.contains(&s) => {
                (format!("type `{s}` is not available in this version of ferry"), format!("supported types: {list}"))
            }
            s => match s.and_then(|s| super::reader::closest(s, supported)) {
                Some(close) => (format!("unknown type {}", t.describe()), format!("did you mean `{close}`? supported types: {list}")),
                None => (format!("unknown type {}", t.describe()), format!("supported types: {list}")),
            },
        };
        self.error(t, &format!("{path}.type"), message, Some(hint));
        None
    }
}

fn find_cycle(adj: &[Vec<usize>], start: usize) -> Option<Vec<usize>> {
    fn dfs(adj: &[Vec<usize>], start: usize, at: usize, path: &mut Vec<usize>, seen: &mut [bool]) -> bool {
        for &next in &adj[at] {
            if next == start {
                return true;
            }
            if !seen[next] {
                seen[next] = true;
                path.push(next);
                if dfs(adj, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start];
    let mut seen = vec![false; adj.len()];
    seen[start] = true;
    dfs(adj, start, start, &mut path, &mut seen).then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version: 1
name: web
accounts: {dev: "011111111111", staging: "022222222222", prod: "033333333333"}
signing: {key: k, public_key: k.pem}
approvers:
  alice: {public_key: keys/alice.pem}
  bob: {public_key: keys/bob.pem, identities: ["arn:aws:iam::011111111111:role/release-managers"]}
build:
  account: dev
  artifacts: [{name: app, path: app.bin}]
stages:
  - {name: staging, account: staging}
  - name: qa
    account: staging
    requires: []
  - name: prod
    account: prod
    requires: [staging, qa]
    approval: {required: 2}
"#;

    fn parse(src: &str) -> Result<Pipeline, Vec<Diagnostic>> {
        parse_str(Path::new("p.yaml"), src)
    }

    #[test]
    fn a_valid_pipeline_parses_with_defaults() {
        let p = parse(GOOD).unwrap();
        assert_eq!(p.backend, Backend::Local);
        assert_eq!(p.accounts["dev"].as_str(), "011111111111", "leading zeros survive");
        assert_eq!(p.build.working_dir, PathBuf::from("."));
        assert!(p.stages[0].requires.is_empty(), "the first stage requires nothing");
        assert!(p.stages[1].requires.is_empty(), "`requires: []` opts out of the default");
        assert_eq!(p.stages[2].requires.len(), 2);
        let a = p.stages[2].approval.as_ref().unwrap();
        assert_eq!((a.required, a.expires.as_secs(), a.allow_self_approval), (2, 24 * 3600, false));
        assert!(a.approvers.is_empty(), "no list: every pinned approver");
        let bob = p.approver("bob").unwrap();
        assert!(bob.is(&"bob".parse().unwrap()) && bob.is(&"arn:aws:sts::011111111111:assumed-role/release-managers/b".parse().unwrap()));
        assert!(!bob.is(&"alice".parse().unwrap()));
    }

    #[test]
    fn an_approval_names_only_pinned_approvers_and_needs_some() {
        let d = parse(&GOOD.replace("approval: {required: 2}", "approval: {required: 2, approvers: [alice, mallory]}")).unwrap_err();
        assert_eq!(
            (d.len(), d[0].field.as_str(), d[0].message.as_str()),
            (1, "stages[2].approval.approvers[1]", "approver `mallory` has no pinned key")
        );
        assert_eq!(d[0].hint.as_deref(), Some("pinned approvers: alice, bob; add `mallory` under the top-level `approvers:`"));
        let d = parse(&GOOD.replace("approval: {required: 2}", "approval: {required: 3}")).unwrap_err();
        assert_eq!(d[0].message, "approval count 3 is larger than the approvers who may give it (2)");
        let without = GOOD
            .replace("  alice: {public_key: keys/alice.pem}\n", "")
            .replace("  bob: {public_key: keys/bob.pem, identities: [\"arn:aws:iam::011111111111:role/release-managers\"]}\n", "")
            .replace("approvers:\n", "");
        let d = parse(&without).unwrap_err();
        assert_eq!(d[0].message, "this stage needs approvals, but the pipeline pins no approver keys");
    }

    #[test]
    fn by_default_a_stage_requires_the_previous_one() {
        let p = parse(&GOOD.replace("    requires: []\n", "")).unwrap();
        assert_eq!(p.stages[1].requires[0].as_str(), "staging");
    }

    #[test]
    fn an_unquoted_account_id_with_leading_zero_is_kept_as_written() {
        let p = parse(&GOOD.replace("\"011111111111\"", "011111111111")).unwrap();
        assert_eq!(p.accounts["dev"].as_str(), "011111111111");
    }

    #[test]
    fn misspelt_keys_get_a_suggestion() {
        let d = parse(&GOOD.replace("approval: {required: 2}", "aproval: {required: 2}")).unwrap_err();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].field, "stages[2].aproval");
        assert!(d[0].hint.as_deref().unwrap().starts_with("did you mean `approval`?"));
    }

    #[test]
    fn errors_are_sorted_by_position() {
        let src = GOOD.replace("name: web", "name: Web").replace("{name: staging, account: staging}", "{name: staging, account: nowhere}");
        let d = parse(&src).unwrap_err();
        assert_eq!(d.len(), 2);
        assert!(d[0].line < d[1].line);
    }
}
