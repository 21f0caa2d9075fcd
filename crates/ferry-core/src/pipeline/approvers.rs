//! Reading the pipeline's pinned approvers (`approvers:`): each a name, the public key their
//! approvals must verify with, and the identities that are them.

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
            if let Some(public_key) = public_key {
                out.push(ApproverKey { name, public_key, identities });
            }
        }
        out
    }
}
