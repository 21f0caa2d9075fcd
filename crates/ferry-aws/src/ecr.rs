//! Container images in ECR. The central registry is the artifacts account's: `ferry build`
//! resolves the tag a build pushed to the manifest's sha256 (checked against what ECR
//! reports) and that digest is signed with the release. The `ecr` action promotes the image
//! **by digest** into the stage account's repository: the manifest is read from the central
//! repository with the store role and must hash to the signed digest; missing blobs (config
//! and layers, and the child manifests of an index) are streamed across with their digests
//! checked before an upload is completed; the manifest is put as is with the stage's tags;
//! the copy is read back and re-hashed. A tag that already names another digest in an
//! IMMUTABLE repository is refused before anything is written.

use std::collections::BTreeMap;

use aws_sdk_ecr::Client;
use aws_sdk_ecr::primitives::Blob;
use aws_sdk_ecr::types::{ImageIdentifier, LayerAvailability};
use ferry_core::ids::Sha256Digest;
use ferry_core::manifest::ManifestImage;
use ferry_core::pipeline::ImageDecl;
use ferry_core::ports::{DeployReport, DeployRequest, ImageRegistry};
use ferry_core::{Error, Result};
use sha2::{Digest as _, Sha256};

use crate::error::{self, Attempt};

/// The manifest types ferry asks for (and so can copy as is).
const ACCEPTED: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// One repository, reached with one role's client.
pub struct Repo<'a> {
    pub client: &'a Client,
    /// The registry (account id) holding the repository.
    pub account: &'a str,
    pub region: &'a str,
    pub name: &'a str,
    /// The role acting, for error messages.
    pub role: &'a str,
}

impl Repo<'_> {
    pub fn uri(&self) -> String {
        format!("{}.dkr.ecr.{}.amazonaws.com/{}", self.account, self.region, self.name)
    }

    fn at<'b>(&'b self, action: &'b str, resource: &'b str) -> Attempt<'b> {
        Attempt { who: self.role, action, resource }
    }
}

/// `ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME` → (account, region, name).
pub fn parse_uri(uri: &str) -> Result<(&str, &str, &str)> {
    let bad = || Error::invalid(format!("`{uri}` is not an ECR repository URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME)"));
    let (host, name) = uri.split_once('/').ok_or_else(bad)?;
    let mut parts = host.split('.');
    let (Some(account), Some("dkr"), Some("ecr"), Some(region)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    Ok((account, region, name))
}

fn sha256_of(manifest: &str) -> Sha256Digest {
    Sha256Digest::of(manifest.as_bytes())
}

fn ecr_digest(d: &Sha256Digest) -> String {
    format!("sha256:{d}")
}

fn parse_ecr_digest(s: &str) -> Result<Sha256Digest> {
    s.strip_prefix("sha256:")
        .and_then(|h| h.parse().ok())
        .ok_or_else(|| Error::invalid(format!("`{s}` is not a sha256 digest (sha256:64 hex)")))
}

/// A manifest as ECR stores it: the exact text, its media type and the digest ECR reports.
struct Fetched {
    text: String,
    media_type: Option<String>,
    reported: Option<String>,
}

async fn fetch(repo: &Repo<'_>, id: ImageIdentifier, what: &str) -> Result<Option<Fetched>> {
    let resource = format!("{}:{what}", repo.uri());
    let out = repo
        .client
        .batch_get_image()
        .registry_id(repo.account)
        .repository_name(repo.name)
        .image_ids(id)
        .set_accepted_media_types(Some(ACCEPTED.iter().map(|s| (*s).to_owned()).collect()))
        .send()
        .await
        .map_err(|e| error::map(repo.at("ecr:BatchGetImage", &resource), &e))?;
    if let Some(f) = out.failures().first() {
        let code = f.failure_code().map(|c| c.as_str().to_owned()).unwrap_or_default();
        if code == "ImageNotFound" || code == "ImageTagDoesNotMatchDigest" {
            return Ok(None);
        }
        return Err(Error::failed(format!("`ecr:BatchGetImage` on `{resource}`: {code} {}", f.failure_reason().unwrap_or(""))));
    }
    let Some(image) = out.images().first() else { return Ok(None) };
    let text = image.image_manifest().ok_or_else(|| Error::failed(format!("ECR returned no manifest for `{resource}`")))?.to_owned();
    Ok(Some(Fetched {
        text,
        media_type: image.image_manifest_media_type().map(str::to_owned),
        reported: image.image_id().and_then(|i| i.image_digest()).map(str::to_owned),
    }))
}

/// The manifest's media type: as ECR reports it, else the manifest's own `mediaType`.
fn media_type(f: &Fetched, json: &serde_json::Value) -> Result<String> {
    f.media_type
        .clone()
        .or_else(|| json["mediaType"].as_str().map(str::to_owned))
        .ok_or_else(|| Error::invalid("the image manifest names no media type"))
}

/// Reads `digest` from `repo` and checks the bytes hash to it (and that ECR agrees).
async fn fetch_verified(repo: &Repo<'_>, digest: &Sha256Digest) -> Result<(String, String, serde_json::Value)> {
    let d = ecr_digest(digest);
    let f = fetch(repo, ImageIdentifier::builder().image_digest(&d).build(), &d)
        .await?
        .ok_or_else(|| Error::verification(format!("image `{}@{d}` is not in the repository", repo.uri())))?;
    let actual = sha256_of(&f.text);
    if &actual != digest || f.reported.as_deref().is_some_and(|r| r != d) {
        return Err(Error::verification(format!(
            "the manifest of `{}@{d}` hashes to `sha256:{actual}` (ECR reports `{}`): it is not the signed image",
            repo.uri(),
            f.reported.as_deref().unwrap_or("nothing")
        )));
    }
    let json: serde_json::Value =
        serde_json::from_str(&f.text).map_err(|e| Error::verification(format!("the manifest of `{}@{d}` is not JSON: {e}", repo.uri())))?;
    let mt = media_type(&f, &json)?;
    Ok((f.text, mt, json))
}

/// Resolves `tag` in the central repository to its digest (sha256 of the manifest bytes,
/// which must equal the digest ECR reports).
pub async fn resolve(repo: &Repo<'_>, tag: &str) -> Result<(Sha256Digest, String)> {
    let f = fetch(repo, ImageIdentifier::builder().image_tag(tag).build(), tag).await?.ok_or_else(|| {
        Error::failed(format!("image `{}:{tag}` was not found", repo.uri()))
            .hint("the build command must push the image with that tag before ferry records it")
    })?;
    let digest = sha256_of(&f.text);
    if let Some(reported) = &f.reported
        && reported != &ecr_digest(&digest)
    {
        return Err(Error::verification(format!(
            "ECR reports `{reported}` for `{}:{tag}`, but its manifest hashes to `sha256:{digest}`",
            repo.uri()
        )));
    }
    let json: serde_json::Value =
        serde_json::from_str(&f.text).map_err(|e| Error::invalid(format!("manifest of `{}:{tag}`: {e}", repo.uri())))?;
    Ok((digest, media_type(&f, &json)?))
}

/// What a promotion of one image did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied {
    pub blobs_copied: usize,
    pub blobs_present: usize,
    pub manifests: usize,
    pub tags_written: Vec<String>,
    pub tags_present: Vec<String>,
}

/// Promotes `digest` from `src` to `dst` and tags it; see the module docs for the checks.
pub async fn promote(src: &Repo<'_>, dst: &Repo<'_>, digest: &Sha256Digest, tags: &[String], http: &reqwest::Client) -> Result<Copied> {
    let d = ecr_digest(digest);
    let (text, mt, json) = fetch_verified(src, digest).await?;
    // Tags first: nothing is written if a tag cannot be set.
    let immutable = tag_mutability(dst).await?.starts_with("IMMUTABLE");
    let mut copied = Copied::default();
    let mut to_write = Vec::new();
    for tag in tags {
        match tagged(dst, tag).await? {
            Some(current) if current == d => copied.tags_present.push(tag.clone()),
            Some(current) if immutable => {
                return Err(Error::failed(format!(
                    "tag `{tag}` of `{}` already names `{current}` and the repository's tags are IMMUTABLE",
                    dst.uri()
                ))
                .hint(
                    "list only release-unique tags (e.g. ${release}) in this ecr action's `tags`, or make the repository's tags mutable",
                ));
            }
            _ => to_write.push(tag.clone()),
        }
    }
    // Blobs, child manifests and the manifest itself (untagged), then each tag.
    copy_manifest(src, dst, digest, &text, &mt, &json, http, &mut copied).await?;
    for tag in &to_write {
        put(dst, &text, &mt, &d, Some(tag)).await?;
        copied.tags_written.push(tag.clone());
    }
    // Read back what the stage account now holds: it must be the signed bytes.
    fetch_verified(dst, digest).await.map_err(|e| Error::verification(format!("after the copy: {}", e.message)))?;
    Ok(copied)
}

/// Copies the blobs (or, for an index, the child manifests) `json` refers to, then the
/// manifest itself without a tag.
#[allow(clippy::too_many_arguments)]
async fn copy_manifest(
    src: &Repo<'_>,
    dst: &Repo<'_>,
    digest: &Sha256Digest,
    text: &str,
    mt: &str,
    json: &serde_json::Value,
    http: &reqwest::Client,
    copied: &mut Copied,
) -> Result<()> {
    if let Some(children) = json["manifests"].as_array() {
        for child in children {
            let cd = parse_ecr_digest(child["digest"].as_str().unwrap_or(""))?;
            let (ct, cmt, cjson) = fetch_verified(src, &cd).await?;
            Box::pin(copy_manifest(src, dst, &cd, &ct, &cmt, &cjson, http, copied)).await?;
        }
    } else {
        let mut blobs = Vec::new();
        if let Some(c) = json["config"]["digest"].as_str() {
            blobs.push(c.to_owned());
        }
        for l in json["layers"].as_array().into_iter().flatten() {
            // Foreign layers (with `urls`) live elsewhere and are not copied by registries.
            if l.get("urls").is_none()
                && let Some(ld) = l["digest"].as_str()
            {
                blobs.push(ld.to_owned());
            }
        }
        let missing = missing_blobs(dst, &blobs).await?;
        copied.blobs_present += blobs.len() - missing.len();
        for blob in missing {
            copy_blob(src, dst, &parse_ecr_digest(&blob)?, http).await?;
            copied.blobs_copied += 1;
        }
    }
    put(dst, text, mt, &ecr_digest(digest), None).await?;
    copied.manifests += 1;
    Ok(())
}

async fn tag_mutability(repo: &Repo<'_>) -> Result<String> {
    let out = repo.client.describe_repositories().registry_id(repo.account).repository_names(repo.name).send().await.map_err(|e| {
        if e.as_service_error()
            .is_some_and(aws_sdk_ecr::operation::describe_repositories::DescribeRepositoriesError::is_repository_not_found_exception)
        {
            Error::failed(format!("repository `{}` does not exist", repo.uri()))
                .hint("create it in the stage account (with a policy letting the stage role push), then promote again")
        } else {
            error::map(repo.at("ecr:DescribeRepositories", &repo.uri()), &e)
        }
    })?;
    Ok(out.repositories().first().and_then(|r| r.image_tag_mutability()).map(|m| m.as_str().to_owned()).unwrap_or_else(|| "MUTABLE".into()))
}

/// The digest `tag` names in `repo`, if any.
async fn tagged(repo: &Repo<'_>, tag: &str) -> Result<Option<String>> {
    let resource = format!("{}:{tag}", repo.uri());
    match repo
        .client
        .describe_images()
        .registry_id(repo.account)
        .repository_name(repo.name)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await
    {
        Ok(out) => Ok(out.image_details().first().and_then(|i| i.image_digest()).map(str::to_owned)),
        Err(e)
            if e.as_service_error()
                .is_some_and(aws_sdk_ecr::operation::describe_images::DescribeImagesError::is_image_not_found_exception) =>
        {
            Ok(None)
        }
        Err(e) => Err(error::map(repo.at("ecr:DescribeImages", &resource), &e)),
    }
}

async fn missing_blobs(repo: &Repo<'_>, blobs: &[String]) -> Result<Vec<String>> {
    if blobs.is_empty() {
        return Ok(Vec::new());
    }
    let out = repo
        .client
        .batch_check_layer_availability()
        .registry_id(repo.account)
        .repository_name(repo.name)
        .set_layer_digests(Some(blobs.to_vec()))
        .send()
        .await
        .map_err(|e| error::map(repo.at("ecr:BatchCheckLayerAvailability", &repo.uri()), &e))?;
    let available: Vec<&str> = out
        .layers()
        .iter()
        .filter(|l| l.layer_availability() == Some(&LayerAvailability::Available))
        .filter_map(|l| l.layer_digest())
        .collect();
    Ok(blobs.iter().filter(|b| !available.contains(&b.as_str())).cloned().collect())
}

/// Streams one blob from `src` (its pre-signed download URL) into an upload to `dst`, hashing
/// as it goes; the upload is completed only if the bytes hash to `digest`.
async fn copy_blob(src: &Repo<'_>, dst: &Repo<'_>, digest: &Sha256Digest, http: &reqwest::Client) -> Result<()> {
    let d = ecr_digest(digest);
    let resource = format!("{}@{d}", src.uri());
    let url = src
        .client
        .get_download_url_for_layer()
        .registry_id(src.account)
        .repository_name(src.name)
        .layer_digest(&d)
        .send()
        .await
        .map_err(|e| error::map(src.at("ecr:GetDownloadUrlForLayer", &resource), &e))?
        .download_url()
        .map(str::to_owned)
        .ok_or_else(|| Error::failed(format!("ECR gave no download URL for `{resource}`")))?;
    // The URL is pre-signed: never print it.
    let mut response = http
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| Error::failed(format!("downloading blob `{d}` of `{}`: {}", src.uri(), e.without_url())))?;
    let target = format!("{}@{d}", dst.uri());
    let upload = dst
        .client
        .initiate_layer_upload()
        .registry_id(dst.account)
        .repository_name(dst.name)
        .send()
        .await
        .map_err(|e| error::map(dst.at("ecr:InitiateLayerUpload", &target), &e))?;
    let upload_id = upload.upload_id().ok_or_else(|| Error::failed("ECR started an upload without an id"))?.to_owned();
    let part_size = usize::try_from(upload.part_size().unwrap_or(10 << 20)).unwrap_or(10 << 20).clamp(1 << 20, 64 << 20);
    let mut hasher = Sha256::new();
    let mut part: Vec<u8> = Vec::with_capacity(part_size);
    let mut sent: i64 = 0;
    loop {
        let chunk = response.chunk().await.map_err(|e| Error::failed(format!("downloading blob `{d}`: {}", e.without_url())))?;
        let done = chunk.is_none();
        if let Some(c) = &chunk {
            hasher.update(c);
            part.extend_from_slice(c);
        }
        if part.len() >= part_size || (done && !part.is_empty()) {
            let len = i64::try_from(part.len()).map_err(|_| Error::failed("layer part too large"))?;
            dst.client
                .upload_layer_part()
                .registry_id(dst.account)
                .repository_name(dst.name)
                .upload_id(&upload_id)
                .part_first_byte(sent)
                .part_last_byte(sent + len - 1)
                .layer_part_blob(Blob::new(std::mem::take(&mut part)))
                .send()
                .await
                .map_err(|e| error::map(dst.at("ecr:UploadLayerPart", &target), &e))?;
            sent += len;
        }
        if done {
            break;
        }
    }
    let got = Sha256Digest::from_bytes(hasher.finalize().into());
    if &got != digest {
        return Err(Error::verification(format!(
            "blob `{d}` of `{}` downloaded as `sha256:{got}`; the upload was not completed",
            src.uri()
        )));
    }
    match dst
        .client
        .complete_layer_upload()
        .registry_id(dst.account)
        .repository_name(dst.name)
        .upload_id(&upload_id)
        .layer_digests(&d)
        .send()
        .await
    {
        Ok(out) if out.layer_digest().is_none_or(|l| l == d) => Ok(()),
        Ok(out) => Err(Error::verification(format!("ECR stored blob `{d}` as `{}`", out.layer_digest().unwrap_or("")))),
        Err(e)
            if e.as_service_error().is_some_and(
                aws_sdk_ecr::operation::complete_layer_upload::CompleteLayerUploadError::is_layer_already_exists_exception,
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(error::map(dst.at("ecr:CompleteLayerUpload", &target), &e)),
    }
}

async fn put(repo: &Repo<'_>, text: &str, mt: &str, digest: &str, tag: Option<&String>) -> Result<()> {
    let resource = format!("{}:{}", repo.uri(), tag.map_or(digest, String::as_str));
    let result = repo
        .client
        .put_image()
        .registry_id(repo.account)
        .repository_name(repo.name)
        .image_manifest(text)
        .image_manifest_media_type(mt)
        .image_digest(digest)
        .set_image_tag(tag.cloned())
        .send()
        .await;
    use aws_sdk_ecr::operation::put_image::PutImageError;
    match result {
        Ok(_) => Ok(()),
        // The same manifest (with the same tag) is already there: nothing to do.
        Err(e) if e.as_service_error().is_some_and(PutImageError::is_image_already_exists_exception) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(PutImageError::is_image_tag_already_exists_exception) => Err(Error::failed(format!(
            "tag `{}` of `{}` already names another image and the repository's tags are immutable",
            tag.map_or("", String::as_str),
            repo.uri()
        ))
        .hint("use release-unique tags (e.g. ${release}) for this repository")),
        Err(e) => Err(error::map(repo.at("ecr:PutImage", &resource), &e)),
    }
}

/// The central registry of the aws backend: the artifacts account's ECR, with the store role.
pub struct EcrRegistry {
    pub rt: std::sync::Arc<tokio::runtime::Runtime>,
    pub client: Client,
    pub account: String,
    pub region: String,
    pub role: String,
}

impl ImageRegistry for EcrRegistry {
    fn resolve(&self, image: &ImageDecl, tag: &str) -> Result<ManifestImage> {
        let repo = Repo { client: &self.client, account: &self.account, region: &self.region, name: &image.repository, role: &self.role };
        let (digest, media_type) = self.rt.block_on(resolve(&repo, tag))?;
        Ok(ManifestImage { name: image.name.clone(), repository: repo.uri(), digest, media_type, tag: tag.to_owned() })
    }
}

/// The central registry's side of an `ecr` action: the store role's session (artifacts
/// account), which reads the release's image.
pub struct Central<'a> {
    pub config: &'a aws_config::SdkConfig,
    pub role: &'a str,
}

/// The `ecr` action: `image` of the release into `repository` of the stage account (written
/// with the stage role `access` assumes), read from the `central` registry.
pub fn deploy(
    access: &crate::exec::StageAccess,
    central: &Central<'_>,
    req: &DeployRequest<'_>,
    image: &str,
    repository: Option<&str>,
    tags: &[String],
) -> Result<DeployReport> {
    let img = req
        .images
        .iter()
        .find(|i| i.name == image)
        .ok_or_else(|| Error::invalid(format!("release {} has no image `{image}`", req.release)))?;
    let tags = tags.iter().map(|t| req.expand(t)).collect::<Result<Vec<_>>>()?;
    let (src_account, src_region, src_name) = parse_uri(&img.repository)?;
    let (stage_config, role) = access.assume(&req.target)?;
    let region = stage_config.region().map(ToString::to_string).unwrap_or_else(|| src_region.to_owned());
    let src_config = central.config.to_builder().region(aws_config::Region::new(src_region.to_owned())).build();
    let (src_client, dst_client) = (Client::new(&src_config), Client::new(&stage_config));
    let src = Repo { client: &src_client, account: src_account, region: src_region, name: src_name, role: central.role };
    let account = req.target.account.to_string();
    let dst = Repo { client: &dst_client, account: &account, region: &region, name: repository.unwrap_or(src_name), role: role.as_str() };
    let http = reqwest::Client::builder().build().map_err(|e| Error::failed(format!("HTTP client: {e}")))?;
    let c = access.aws.rt.block_on(promote(&src, &dst, &img.digest, &tags, &http))?;
    let mut tag_note = BTreeMap::new();
    for t in &c.tags_written {
        tag_note.insert(t.clone(), "set");
    }
    for t in &c.tags_present {
        tag_note.insert(t.clone(), "already there");
    }
    let tag_text = tag_note.iter().map(|(t, n)| format!("{t} ({n})")).collect::<Vec<_>>().join(", ");
    Ok(DeployReport {
        detail: format!(
            "image `{image}` sha256:{} promoted to {}; {} blob(s) copied, {} already present; digest re-checked",
            img.digest,
            dst.uri(),
            c.blobs_copied,
            c.blobs_present
        ),
        output: format!("{}@sha256:{}\ntags: {}\n", dst.uri(), img.digest, if tag_text.is_empty() { "none".into() } else { tag_text }),
        outputs: BTreeMap::from([(format!("image.{image}"), format!("{}@sha256:{}", dst.uri(), img.digest))]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_uris_split_into_account_region_and_name() {
        assert_eq!(parse_uri("111111111111.dkr.ecr.eu-west-1.amazonaws.com/shop/web").unwrap(), ("111111111111", "eu-west-1", "shop/web"));
        assert!(parse_uri("docker.io/library/nginx").is_err());
        assert!(parse_uri("111111111111.dkr.ecr.eu-west-1.amazonaws.com").is_err());
    }
}
