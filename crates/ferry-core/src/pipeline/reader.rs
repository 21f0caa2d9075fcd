//! The reading machinery of pipeline validation: `Cx` collects diagnostics, `Fields` checks a
//! mapping's keys (suggesting the closest known key for a typo), and typed readers for strings,
//! ids, durations, booleans, lists, environment maps and account aliases.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::keys::Keys;
use crate::ids::AccountId;
use crate::yaml::{Diagnostic, Kind, Node};

pub(super) struct Cx {
    pub(super) file: String,
    pub(super) diags: Vec<Diagnostic>,
    /// The pipeline's backend once known, for checks that depend on it.
    pub(super) backend: Option<super::Backend>,
    /// Names of the build's images, for checking `ecr` actions' references.
    pub(super) images: Vec<String>,
    /// Names of the pinned approvers, for checking stages' approval lists.
    pub(super) approvers: Vec<String>,
    /// Where each mapping and each of its values is written, by field path.
    pub(super) origins: BTreeMap<String, crate::Origin>,
    /// Every stage name the file declares, once `stages` is read — `None` if some stage has no
    /// readable name (checks against the list would only repeat that problem).
    pub(super) stage_names: Option<Vec<String>>,
}

/// The fields of one mapping, looked up by key.
pub(super) struct Fields<'a> {
    pub(super) path: String,
    pub(super) node: &'a Node,
    pub(super) map: HashMap<&'a str, &'a Node>,
}

impl<'a> Fields<'a> {
    pub(super) fn get(&self, key: &str) -> Option<&'a Node> {
        self.map.get(key).copied().filter(|n| n.kind != Kind::Null)
    }
    pub(super) fn path(&self, key: &str) -> String {
        if self.path.is_empty() { key.to_owned() } else { format!("{}.{key}", self.path) }
    }
}

impl Cx {
    pub(super) fn new(file: String, backend: Option<super::Backend>) -> Self {
        Cx { file, diags: Vec::new(), backend, images: Vec::new(), approvers: Vec::new(), origins: BTreeMap::new(), stage_names: None }
    }

    /// Reads a YAML file the pipeline names (`field`: the org policy, shared approvers) into a
    /// context of its own, whose problems the caller appends: `None` (with the problem said)
    /// if it cannot be read or parsed.
    pub(super) fn side_file(&mut self, path: &std::path::Path, at: Option<&Node>, field: &str, what: &str) -> Option<(Cx, Node)> {
        let file = path.display().to_string();
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                if let Some(n) = at {
                    self.error(n, field, format!("cannot read the {what} `{file}`: {e}"), None);
                }
                return None;
            }
        };
        match crate::yaml::parse(&file, &source) {
            Ok(root) => Some((Cx::new(file, self.backend), root)),
            Err(d) => {
                self.diags.push(d);
                None
            }
        }
    }

    pub(super) fn error(&mut self, node: &Node, field: &str, message: String, hint: Option<String>) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line: node.pos.line,
            column: node.pos.column,
            field: field.to_owned(),
            message,
            hint,
        });
    }

    /// Remembers where the setting `field` is written (`node`).
    fn record(&mut self, field: String, node: &Node) {
        let origin = crate::Origin { file: self.file.clone(), line: node.pos.line, column: node.pos.column, field: field.clone() };
        self.origins.insert(field, origin);
    }

    /// Checks `node` is a mapping with only `allowed` keys.
    pub(super) fn fields<'a>(&mut self, node: &'a Node, path: &str, allowed: Keys) -> Option<Fields<'a>> {
        let Kind::Map(entries) = &node.kind else {
            self.error(node, path, format!("expected a mapping, found {}", node.describe()), None);
            return None;
        };
        let mut map = HashMap::new();
        self.record(path.to_owned(), node);
        for (k, v) in entries {
            let Some(key) = k.as_scalar() else {
                self.error(k, path, format!("expected a string key, found {}", k.describe()), None);
                continue;
            };
            if allowed.iter().any(|(a, _)| *a == key) {
                self.record(if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") }, v);
                map.insert(key, v);
            } else {
                let known: Vec<&str> = allowed.iter().map(|(a, _)| *a).collect();
                let hint = match closest(key, &known) {
                    Some(s) => format!("did you mean `{s}`? known keys: {}", known.join(", ")),
                    None => format!("known keys: {}", known.join(", ")),
                };
                let field = if path.is_empty() { key.to_owned() } else { format!("{path}.{key}") };
                self.error(k, &field, format!("unknown key `{key}`"), Some(hint));
            }
        }
        Some(Fields { path: path.to_owned(), node, map })
    }

    pub(super) fn required<'a>(&mut self, f: &Fields<'a>, key: &str) -> Option<&'a Node> {
        let n = f.get(key);
        if n.is_none() {
            self.error(f.node, &f.path(key), format!("missing required key `{key}`"), None);
        }
        n
    }

    pub(super) fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.as_scalar() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.error(node, field, format!("expected a string, found {}", node.describe()), None);
                None
            }
        }
    }

    /// One of `options` (`(name, value)`), by name; anything else is an error naming `what`,
    /// with the closest name as a suggestion and every name as the hint.
    pub(super) fn one_of<T: Copy>(&mut self, node: &Node, field: &str, what: &str, options: &[(&str, T)]) -> Option<T> {
        let name = self.string(node, field)?;
        if let Some((_, v)) = options.iter().find(|(n, _)| *n == name) {
            return Some(*v);
        }
        let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        let all = match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.join(""),
        };
        let hint = match closest(&name, &names) {
            Some(s) => format!("did you mean `{s}`? one of {all}"),
            None => format!("one of {all}"),
        };
        self.error(node, field, format!("unknown {what} `{name}`"), Some(hint));
        None
    }

    pub(super) fn opt_string(&mut self, f: &Fields<'_>, key: &str) -> Option<String> {
        f.get(key).and_then(|n| self.string(n, &f.path(key)))
    }

    pub(super) fn parsed<T: std::str::FromStr<Err = crate::ids::IdError>>(&mut self, node: &Node, field: &str) -> Option<T> {
        let s = self.string(node, field)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(node, field, format!("{} `{}` is invalid", e.kind, e.value), Some(e.rule.to_owned()));
                None
            }
        }
    }

    pub(super) fn duration(&mut self, node: &Node, field: &str) -> Option<Duration> {
        let s = self.string(node, field)?;
        match humantime::parse_duration(&s) {
            Ok(d) if !d.is_zero() => Some(d),
            _ => {
                self.error(node, field, format!("invalid duration `{s}`"), Some("write a duration such as `30s`, `15m` or `24h`".into()));
                None
            }
        }
    }

    pub(super) fn bool(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.as_scalar() {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => {
                self.error(node, field, format!("expected true or false, found {}", node.describe()), None);
                None
            }
        }
    }

    pub(super) fn seq<'a>(&mut self, node: &'a Node, field: &str) -> &'a [Node] {
        match &node.kind {
            Kind::Seq(items) => items,
            _ => {
                self.error(node, field, format!("expected a list, found {}", node.describe()), None);
                &[]
            }
        }
    }

    /// A mapping of strings to strings; `valid_key` says why a key is bad, if it is.
    pub(super) fn string_map(
        &mut self,
        node: Option<&Node>,
        field: &str,
        valid_key: fn(&str) -> Option<(String, String)>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(node) = node else { return out };
        let Kind::Map(entries) = &node.kind else {
            self.error(node, field, format!("expected a mapping of names to values, found {}", node.describe()), None);
            return out;
        };
        for (k, v) in entries {
            let Some(name) = self.string(k, field) else { continue };
            let path = format!("{field}.{name}");
            if let Some((message, hint)) = valid_key(&name) {
                self.error(k, &path, message, Some(hint));
            }
            if let Some(value) = self.string(v, &path) {
                out.insert(name, value);
            }
        }
        out
    }

    pub(super) fn env(&mut self, node: Option<&Node>, field: &str) -> BTreeMap<String, String> {
        self.string_map(node, field, |name| {
            (!env_name_ok(name)).then(|| (format!("invalid environment variable name `{name}`"), "use letters, digits and `_`".to_owned()))
        })
    }

    pub(super) fn account_ref(
        &mut self,
        node: &Node,
        field: &str,
        accounts: &BTreeMap<String, AccountId>,
        declared: &[String],
    ) -> Option<(String, AccountId)> {
        let alias = self.string(node, field)?;
        match accounts.get(&alias) {
            Some(id) => Some((alias, id.clone())),
            None if declared.contains(&alias) => None,
            None => {
                let hint = format!("declare it under `accounts:` (known aliases: {})", declared.join(", "));
                self.error(node, field, format!("unknown account alias `{alias}`"), Some(hint));
                None
            }
        }
    }
}

/// Letters, digits and `_`, not starting with a digit.
pub(super) fn env_name_ok(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !name.starts_with(|c: char| c.is_ascii_digit())
}

/// The known key closest to a misspelt one, if it is close enough to suggest.
pub(super) fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    pub(super) fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    known.iter().map(|k| (distance(key, k), *k)).filter(|(d, k)| *d <= 2.max(k.len() / 3)).min().map(|(_, k)| k)
}
