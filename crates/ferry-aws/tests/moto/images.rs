//! The central ECR registry on moto: tags resolved to digests at build, images promoted by
//! digest into stage accounts.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::primitives::Blob;
use aws_sdk_ecr::types::{ImageIdentifier, ImageTagMutability};
use ferry_aws::ecr::{EcrRegistry, Repo, promote};
use ferry_core::ErrorKind;
use ferry_core::pipeline::ImageDecl;
use ferry_core::ports::ImageRegistry;

use super::*;

const PROD: &str = "666666666666";

fn d(bytes: &[u8]) -> String {
    format!("sha256:{}", Sha256Digest::of(bytes))
}

/// An OCI image manifest over one config and one layer blob.
fn manifest(config: &[u8], layer: &[u8]) -> String {
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d(layer), "size": layer.len()}],
    })
    .to_string()
}

struct Registry<'a> {
    env: &'a Env,
    client: Client,
    account: &'static str,
    role: &'static str,
}

impl<'a> Registry<'a> {
    fn new(env: &'a Env, account: &'static str, role: &'static str) -> Self {
        Registry { env, client: Client::new(&env.as_role(account, role)), account, role }
    }

    fn create(&self, name: &str, mutability: ImageTagMutability) {
        self.env.aws.rt.block_on(self.client.create_repository().repository_name(name).image_tag_mutability(mutability).send()).unwrap();
    }

    fn repo<'b>(&'b self, name: &'b str) -> Repo<'b> {
        Repo { client: &self.client, account: self.account, region: "eu-west-1", name, role: self.role }
    }

    /// What `docker push` does: upload each blob, then put the manifest under a tag.
    /// ECR's digest is the sha256 of the manifest bytes (moto needs it given explicitly).
    fn push(&self, repo: &str, tag: &str, blobs: &[&[u8]], manifest: &str, digest: &str) {
        self.env.aws.rt.block_on(async {
            for blob in blobs {
                self.upload(repo, blob).await;
            }
            self.client
                .put_image()
                .repository_name(repo)
                .image_manifest(manifest)
                .image_digest(digest)
                .image_tag(tag)
                .send()
                .await
                .unwrap();
        });
    }

    async fn upload(&self, repo: &str, blob: &[u8]) {
        let up = self.client.initiate_layer_upload().repository_name(repo).send().await.unwrap();
        let id = up.upload_id().unwrap();
        let last = i64::try_from(blob.len()).unwrap() - 1;
        let part = self.client.upload_layer_part().repository_name(repo).upload_id(id).part_first_byte(0).part_last_byte(last);
        part.layer_part_blob(Blob::new(blob.to_vec())).send().await.unwrap();
        self.client.complete_layer_upload().repository_name(repo).upload_id(id).layer_digests(d(blob)).send().await.unwrap();
    }

    /// This registry as `ferry build` sees the central one (the artifacts account's).
    fn as_central_registry(&self) -> EcrRegistry {
        EcrRegistry {
            rt: self.env.aws.rt.clone(),
            client: self.client.clone(),
            account: self.account.into(),
            region: "eu-west-1".into(),
            role: self.role.into(),
        }
    }

    /// The manifest text and digest a tag names, if any.
    fn tagged(&self, repo: &str, tag: &str) -> Option<(String, String)> {
        let out = self
            .env
            .aws
            .rt
            .block_on(
                self.client.batch_get_image().repository_name(repo).image_ids(ImageIdentifier::builder().image_tag(tag).build()).send(),
            )
            .unwrap();
        out.images().first().map(|i| (i.image_manifest().unwrap().to_owned(), i.image_id().unwrap().image_digest().unwrap().to_owned()))
    }
}

/// The central repository (artifacts account) with `web:abc123` pushed, and a repository
/// of the same name in the prod account. moto cannot serve `GetDownloadUrlForLayer`, so
/// the prod repository already holds the blobs (shared base layers); streaming missing
/// blobs is covered with scripted responses in `mocks.rs`.
fn two_registries(env: &Env, mutability: ImageTagMutability) -> (Registry<'_>, Registry<'_>, String, String, String) {
    let name = unique("shop/web");
    let (config, layer) = (format!("{{\"id\":\"{name}\"}}").into_bytes(), vec![7u8; 4096]);
    let m = manifest(&config, &layer);
    let central = Registry::new(env, ARTIFACTS, "ferry-artifacts");
    let prod = Registry::new(env, PROD, "ferry-deploy");
    central.create(&name, ImageTagMutability::Immutable);
    prod.create(&name, mutability);
    central.push(&name, "abc123", &[&config, &layer], &m, &d(m.as_bytes()));
    env.aws.rt.block_on(async {
        prod.upload(&name, &config).await;
        prod.upload(&name, &layer).await;
    });
    (central, prod, name, m.clone(), d(m.as_bytes()))
}

#[test]
fn an_image_is_promoted_by_digest_from_the_central_registry_to_a_stage_account() {
    let env = env();
    let (central, prod, name, manifest, digest) = two_registries(&env, ImageTagMutability::Mutable);
    // `ferry build` resolves the pushed tag to the manifest's digest with the store role.
    let registry = central.as_central_registry();
    let image = registry.resolve(&ImageDecl { name: "web".into(), repository: name.clone(), tag: "abc123".into() }, "abc123").unwrap();
    assert_eq!(format!("sha256:{}", image.digest), digest);
    assert_eq!(image.repository, format!("{ARTIFACTS}.dkr.ecr.eu-west-1.amazonaws.com/{name}"));
    assert_eq!(image.media_type, "application/vnd.oci.image.manifest.v1+json");

    let tags = ["r0123456789abcdef".to_owned(), "prod".to_owned()];
    let http = reqwest::Client::new();
    let copied = env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &image.digest, &tags, &http)).unwrap();
    assert_eq!((copied.blobs_copied, copied.blobs_present), (0, 2));
    assert_eq!(copied.tags_written, tags.to_vec());
    for tag in &tags {
        let (text, at) = prod.tagged(&name, tag).expect("tagged in the prod account");
        assert_eq!(text, manifest, "the manifest is copied byte for byte");
        assert_eq!(at, digest);
    }
    // Promoting again changes nothing and says so.
    let again = env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &image.digest, &tags, &http)).unwrap();
    assert_eq!(again.tags_present, tags.to_vec());
    assert!(again.tags_written.is_empty());
}

#[test]
fn a_tag_naming_another_image_in_an_immutable_repository_is_refused_before_anything_is_written() {
    let env = env();
    let (central, prod, name, _, digest) = two_registries(&env, ImageTagMutability::Immutable);
    let first: Sha256Digest = digest.trim_start_matches("sha256:").parse().unwrap();
    let http = reqwest::Client::new();
    env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &first, &["r1".into(), "prod".into()], &http)).unwrap();

    // A second release of the image.
    let (config, layer) = (b"{\"second\":true}".to_vec(), vec![9u8; 2048]);
    let m2 = manifest(&config, &layer);
    central.push(&name, "def456", &[&config, &layer], &m2, &d(m2.as_bytes()));
    env.aws.rt.block_on(async {
        prod.upload(&name, &config).await;
        prod.upload(&name, &layer).await;
    });
    let second = Sha256Digest::of(m2.as_bytes());
    let err =
        env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &second, &["r2".into(), "prod".into()], &http)).unwrap_err();
    assert!(err.message.contains("tag `prod`") && err.message.contains("IMMUTABLE"), "{}", err.message);
    assert!(err.hints.iter().any(|h| h.contains("${release}")), "{:?}", err.hints);
    assert!(prod.tagged(&name, "r2").is_none(), "nothing was written");
    assert_eq!(prod.tagged(&name, "prod").unwrap().1, digest, "the tag still names the first image");
    // With release-unique tags only, the promotion goes through.
    env.aws.rt.block_on(promote(&central.repo(&name), &prod.repo(&name), &second, &["r2".into()], &http)).unwrap();
    assert_eq!(prod.tagged(&name, "r2").unwrap().1, d(m2.as_bytes()));
}

#[test]
fn an_image_whose_manifest_does_not_hash_to_its_digest_is_refused() {
    let env = env();
    let (central, prod, name, _, _) = two_registries(&env, ImageTagMutability::Mutable);
    // A registry that answers with a digest its manifest does not have (tampering).
    let (config, layer) = (b"{\"evil\":true}".to_vec(), vec![1u8; 64]);
    let evil = manifest(&config, &layer);
    let claimed = d(b"something else");
    central.push(&name, "evil", &[&config, &layer], &evil, &claimed);
    let registry = central.as_central_registry();
    let err = registry.resolve(&ImageDecl { name: "web".into(), repository: name.clone(), tag: "evil".into() }, "evil").unwrap_err();
    assert_eq!(err.kind, ErrorKind::Verification, "{}", err.message);
    let claimed_digest: Sha256Digest = claimed.trim_start_matches("sha256:").parse().unwrap();
    let err = env
        .aws
        .rt
        .block_on(promote(&central.repo(&name), &prod.repo(&name), &claimed_digest, &["x".into()], &reqwest::Client::new()))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Verification, "{}", err.message);
    assert!(prod.tagged(&name, "x").is_none());
}
