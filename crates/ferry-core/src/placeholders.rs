//! Release values in action settings: `${release}`, `${stage}`, `${pipeline}`, `${account}`,
//! `${artifact.NAME.sha256}` and `${image.NAME.digest}` (CloudFormation parameters,
//! CodePipeline variables, image tags), expanded from a `DeployRequest`.

use crate::error::{Error, Result};
use crate::ports::DeployRequest;

const KNOWN: &str = "use ${release}, ${stage}, ${pipeline}, ${account}, ${artifact.NAME.sha256} or ${image.NAME.digest}";

impl DeployRequest<'_> {
    /// `value` with every placeholder replaced; an unknown one is an error naming it.
    pub fn expand(&self, value: &str) -> Result<String> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let end = rest[start..].find('}').ok_or_else(|| Error::invalid(format!("unclosed `${{` in `{value}`")).hint(KNOWN))? + start;
            out.push_str(&self.lookup(&rest[start + 2..end], value)?);
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup(&self, name: &str, value: &str) -> Result<String> {
        match name {
            "release" => return Ok(self.release.to_string()),
            "stage" => return Ok(self.stage.to_string()),
            "pipeline" => return Ok(self.pipeline.to_string()),
            "account" => return Ok(self.target.account.to_string()),
            _ => {}
        }
        if let Some(artifact) = name.strip_prefix("artifact.").and_then(|n| n.strip_suffix(".sha256")) {
            return self
                .artifacts
                .iter()
                .find(|(a, _)| a.name == artifact)
                .map(|(a, _)| a.sha256.to_string())
                .ok_or_else(|| Error::invalid(format!("`{value}` refers to unknown artifact `{artifact}`")));
        }
        if let Some(image) = name.strip_prefix("image.").and_then(|n| n.strip_suffix(".digest")) {
            return self
                .images
                .iter()
                .find(|i| i.name == image)
                .map(|i| format!("sha256:{}", i.digest))
                .ok_or_else(|| Error::invalid(format!("`{value}` refers to unknown image `{image}`")));
        }
        Err(Error::invalid(format!("unknown placeholder `${{{name}}}` in `{value}`")).hint(KNOWN))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::ids::{Actor, Sha256Digest};
    use crate::manifest::{ManifestArtifact, ManifestImage};
    use crate::pipeline::Action;
    use crate::ports::Target;

    use super::*;

    fn request(action: &Action) -> DeployRequest<'_> {
        DeployRequest {
            action,
            pipeline: "shop".parse().unwrap(),
            release: "r0123456789abcdef".parse().unwrap(),
            stage: "prod".parse().unwrap(),
            target: Target {
                account: "333333333333".parse().unwrap(),
                role: None,
                region: None,
                session_name: "s".into(),
                actor: "alice".parse::<Actor>().unwrap(),
                tags: Vec::new(),
                protected: None,
            },
            artifacts: vec![(
                ManifestArtifact { name: "site".into(), path: "site.tgz".into(), sha256: Sha256Digest::of(b"site"), size: 4 },
                PathBuf::from("/tmp/site.tgz"),
            )],
            images: vec![ManifestImage {
                name: "web".into(),
                repository: "111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/web".into(),
                digest: Sha256Digest::of(b"manifest"),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                tag: "abc".into(),
            }],
            tags: Default::default(),
            stop: None,
        }
    }

    #[test]
    fn release_values_are_expanded_in_place() {
        let action = Action::Ecr { image: "web".into(), repository: None, tags: Vec::new() };
        let req = request(&action);
        assert_eq!(req.expand("${pipeline}-${stage}-${release}@${account}").unwrap(), "shop-prod-r0123456789abcdef@333333333333");
        assert_eq!(req.expand("${artifact.site.sha256}").unwrap(), Sha256Digest::of(b"site").to_string());
        assert_eq!(req.expand("img@${image.web.digest}").unwrap(), format!("img@sha256:{}", Sha256Digest::of(b"manifest")));
    }

    #[test]
    fn unknown_names_and_unclosed_placeholders_are_errors_naming_them() {
        let action = Action::Ecr { image: "web".into(), repository: None, tags: Vec::new() };
        let req = request(&action);
        assert!(req.expand("${artifact.nope.sha256}").unwrap_err().message.contains("unknown artifact `nope`"));
        assert!(req.expand("${image.api.digest}").unwrap_err().message.contains("unknown image `api`"));
        assert!(req.expand("${colour}").unwrap_err().message.contains("unknown placeholder `${colour}`"));
        assert!(req.expand("x-${release").unwrap_err().message.contains("unclosed"));
    }
}
