//! Reading the pipeline's pinned approvers (`approvers:`, and `approvers_file:` shared by several
//! pipelines): each a name, the public key their approvals must verify with, and the identities
//! that are them.

use super::ApproverKey;
use super::keys;
use super::reader::Cx;
use crate::ids::Actor;
use crate::yaml::{Kind, Node};

impl Cx {
    /// The top-level `approvers:` mapping: name → {public_key, identities}.
    pub(super) fn approver_keys(&mut self, node: &Node) -> Vec<ApproverKey> {
        let Kind::Map(entries) = &node.kind else {
            self.error(node, "approvers", format!("expected a mapping of approver names to their keys, found {}", node.describe()), None);
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in entries {
            let Some(name) = self.parsed::<Actor>(k, "approvers").map(|a| a.as_str().to_owned()) else { continue };
            let path = format!("approvers.{name}");
            let Some(f) = self.fields(v, &path, keys::APPROVER) else { continue };
            let public_key = self.required(&f, "public_key").and_then(|n| self.string(n, &f.path("public_key")));
            let mut identities = Vec::new();
            if let Some(list) = f.get("identities") {
                for (i, a) in self.seq(list, &f.path("identities")).iter().enumerate() {
                    if let Some(actor) = self.parsed::<Actor>(a, &format!("{}[{i}]", f.path("identities"))) {
                        identities.push(actor);
                    }
                }
            }
            let kms_key = f.get("kms_key").and_then(|n| self.kms_arn(n, &f.path("kms_key"))).map(|(arn, ..)| arn);
            if let Some(public_key) = public_key {
                out.push(ApproverKey { name, public_key, identities, kms_key });
            }
        }
        out
    }

    /// Adds the approvers of the shared file `rel` (relative to `dir`); a name defined twice is
    /// an error at the file's reference.
    pub(super) fn shared_approvers(&mut self, approvers: &mut Vec<ApproverKey>, dir: &std::path::Path, rel: &str, at: &Node) {
        let Some((mut shared_cx, root)) = self.side_file(&dir.join(rel), Some(at), "approvers_file", "approvers file") else { return };
        const TOP: keys::Keys = &[("approvers", "The approvers several pipelines share (same keys as a pipeline's `approvers:`).")];
        let shared =
            shared_cx.fields(&root, "", TOP).and_then(|f| f.get("approvers")).map(|n| shared_cx.approver_keys(n)).unwrap_or_default();
        self.diags.append(&mut shared_cx.diags);
        // Where each shared approver is written: in the shared file.
        self.origins.extend(shared_cx.origins.into_iter().filter(|(field, _)| field.starts_with("approvers.")));
        // Key paths in the shared file are relative to it.
        let base = std::path::Path::new(rel).parent().unwrap_or(std::path::Path::new(""));
        for mut a in shared {
            if approvers.iter().any(|b| b.name == a.name) {
                self.error(
                    at,
                    "approvers_file",
                    format!("approver `{}` is defined both here and in `{rel}`", a.name),
                    Some("define each approver once".into()),
                );
                continue;
            }
            a.public_key = base.join(&a.public_key).display().to_string();
            approvers.push(a);
        }
    }
}
