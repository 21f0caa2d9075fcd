//! Validation of `build.images` (container images the build pushes to the central ECR
//! registry) and of ECR repository names.

use super::keys;
use super::reader::Cx;
use super::{Backend, ImageDecl};
use crate::yaml::Node;

impl Cx {
    pub(super) fn images(&mut self, list: &Node) -> Vec<ImageDecl> {
        let mut out: Vec<ImageDecl> = Vec::new();
        let mut names = Vec::new();
        for (i, item) in self.seq(list, "build.images").iter().enumerate() {
            let path = format!("build.images[{i}]");
            let Some(f) = self.fields(item, &path, keys::IMAGE) else { continue };
            let name = self.required(&f, "name").and_then(|n| self.string(n, &f.path("name")));
            let repository = self.required(&f, "repository").and_then(|n| self.repository(n, &f.path("repository")));
            let tag = self.required(&f, "tag").and_then(|n| self.string(n, &f.path("tag")));
            if self.backend != Some(Backend::Aws) {
                self.error(item, &path, "images need `backend: aws` (they live in ECR)".into(), None);
            }
            if let Some(name) = &name {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                    self.error(
                        item,
                        &f.path("name"),
                        format!("invalid image name `{name}`"),
                        Some("letters, digits, `-`, `_` and `.`".into()),
                    );
                }
                if let Some(first) = names.iter().position(|n| n == name) {
                    self.error(item, &f.path("name"), format!("duplicate image name `{name}` (also build.images[{first}])"), None);
                }
            }
            // Actions may refer to a declared name even when the rest of it is wrong.
            names.extend(name.clone());
            if let (Some(name), Some(repository), Some(tag)) = (name, repository, tag) {
                out.push(ImageDecl { name, repository, tag });
            }
        }
        self.images = names;
        out
    }

    /// An ECR repository name: lowercase path components of letters and digits joined by
    /// `.`, `_` or `-`, 2 to 256 characters.
    pub(super) fn repository(&mut self, node: &Node, field: &str) -> Option<String> {
        let name = self.string(node, field)?;
        let component_ok = |c: &str| {
            !c.is_empty()
                && c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.ends_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
        };
        if (2..=256).contains(&name.len()) && name.split('/').all(component_ok) {
            Some(name)
        } else {
            self.error(
                node,
                field,
                format!("invalid ECR repository name `{name}`"),
                Some("lowercase letters, digits, `.`, `_`, `-` and `/`, e.g. shop/web".into()),
            );
            None
        }
    }
}
