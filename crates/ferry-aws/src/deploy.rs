//! The AWS deploy actions, run with the stage role's credentials. `s3`: copy the release's
//! verified artifacts into a bucket of the stage account, tagged, then re-hash what landed.
//! `cloudformation`, `ecr` and `codepipeline` live in modules of their own.

use aws_sdk_s3::primitives::ByteStream;
use ferry_core::ids::Sha256Digest;
use ferry_core::pipeline::Action;
use ferry_core::ports::{DeployReport, DeployRequest, Deployer};
use ferry_core::{Error, Result};
use sha2::{Digest as _, Sha256};

use crate::error::{self, Attempt};
use crate::exec::StageAccess;

pub struct AwsDeployer {
    pub access: StageAccess,
    /// The store role's session (artifacts account): reads the central ECR repository.
    pub store: aws_config::SdkConfig,
    pub store_role: String,
}

/// `k=v&k2=v2`, percent-encoded as S3's `x-amz-tagging` wants.
fn tagging(tags: &std::collections::BTreeMap<String, String>) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect()
    };
    tags.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&")
}

/// The `Content-Type` a browser or CDN needs, from the key's extension (a static site served
/// from the bucket must not arrive as `application/octet-stream`).
pub fn content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/vnd.microsoft.icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" | "tgz" => "application/gzip",
        "yaml" | "yml" => "application/yaml",
        _ => "application/octet-stream",
    }
}

impl AwsDeployer {
    fn s3(&self, req: &DeployRequest<'_>, bucket: &str, prefix: &str, only: &[String]) -> Result<DeployReport> {
        let (config, role) = self.access.assume(&req.target)?;
        let aws = &self.access.aws;
        let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(aws.custom_endpoint()).build());
        let selected: Vec<_> = req
            .artifacts
            .iter()
            .filter(|(a, _)| only.is_empty() || only.iter().any(|n| a.name == *n || a.name.starts_with(&format!("{n}/"))))
            .collect();
        if selected.is_empty() {
            return Err(Error::invalid(format!("no artifact of the release matches {only:?}")));
        }
        let mut lines = Vec::new();
        for (artifact, file) in selected {
            let key = if prefix.is_empty() { artifact.path.clone() } else { format!("{prefix}/{}", artifact.path) };
            let url = format!("s3://{bucket}/{key}");
            let at = |action: &'static str| Attempt { who: role.as_str(), action, resource: &url };
            aws.rt.block_on(async {
                let body = ByteStream::from_path(file).await.map_err(|e| Error::failed(format!("reading `{}`: {e}", file.display())))?;
                s3.put_object()
                    .bucket(bucket)
                    .key(&key)
                    .content_type(content_type(&key))
                    .body(body)
                    .metadata("sha256", artifact.sha256.as_str())
                    .tagging(tagging(&req.tags))
                    .send()
                    .await
                    .map_err(|e| error::map(at("s3:PutObject"), &e))?;
                // Re-hash what landed: the copy must be exactly the release's bytes.
                let out = s3.get_object().bucket(bucket).key(&key).send().await.map_err(|e| error::map(at("s3:GetObject"), &e))?;
                let mut body = out.body;
                let mut hasher = Sha256::new();
                while let Some(chunk) = body.try_next().await.map_err(|e| Error::failed(format!("reading back `{url}`: {e}")))? {
                    hasher.update(&chunk);
                }
                let landed = Sha256Digest::from_bytes(hasher.finalize().into());
                if landed != artifact.sha256 {
                    return Err(Error::verification(format!("`{url}` hashes to `{landed}` after the copy, not `{}`", artifact.sha256)));
                }
                Ok::<_, Error>(())
            })?;
            lines.push(format!("{url} sha256:{}", artifact.sha256));
        }
        Ok(DeployReport {
            detail: format!("copied {} artifact(s) to s3://{bucket}/{prefix}, digests verified", lines.len()),
            output: lines.join("\n"),
            outputs: std::collections::BTreeMap::new(),
        })
    }
}

impl Deployer for AwsDeployer {
    fn preview(&self, req: &DeployRequest<'_>) -> Result<Vec<String>> {
        let Action::CloudFormation { stack, template, parameters, capabilities } = req.action else { return Ok(Vec::new()) };
        let stack = crate::cloudformation::Stack { name: stack, template, parameters, capabilities };
        let report = crate::cloudformation::deploy(&self.access, req, &stack, crate::cloudformation::Mode::Preview)?;
        Ok(report.output.lines().map(str::to_owned).collect())
    }

    fn deploy(&self, req: &DeployRequest<'_>) -> Result<DeployReport> {
        match req.action {
            Action::S3 { bucket, prefix, artifacts } => self.s3(req, bucket, prefix, artifacts),
            Action::CloudFormation { stack, template, parameters, capabilities } => crate::cloudformation::deploy(
                &self.access,
                req,
                &crate::cloudformation::Stack { name: stack, template, parameters, capabilities },
                crate::cloudformation::Mode::Deploy,
            ),
            Action::Ecr { image, repository, tags } => {
                let central = crate::ecr::Central { config: &self.store, role: &self.store_role };
                crate::ecr::deploy(&self.access, &central, req, image, repository.as_deref(), tags)
            }
            Action::CodePipeline { .. } => crate::codepipeline::deploy(&self.access, req),
            other => Err(Error::invalid(format!("the `{}` action does not run through the deployer", other.kind()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::content_type;

    #[test]
    fn a_static_site_lands_with_the_content_types_a_browser_needs() {
        assert_eq!(content_type("site/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("site/assets/app.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("site/logo.svg"), "image/svg+xml");
        assert_eq!(content_type("site/app.wasm"), "application/wasm");
        assert_eq!(content_type("out/app.bin"), "application/octet-stream");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }
}
