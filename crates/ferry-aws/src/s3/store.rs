//! The central release store in S3 (artifacts account): artifacts keyed by sha256 under
//! `artifacts/sha256/`, written only if absent and streamed (multipart above one part, so
//! memory stays bounded whatever the size); manifest and envelope under `releases/ID/`.
//! Reads re-hash while streaming.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use ferry_core::ids::{ReleaseId, Sha256Digest};
use ferry_core::ports::{ReleaseStore, StoredRelease};
use ferry_core::{Error, Result};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Bucket, Put, lost_race, not_found};

/// Size of one multipart part, and so the most of an artifact held in memory at once.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct S3Store {
    pub bucket: Bucket,
}

fn artifact_key(digest: &Sha256Digest) -> String {
    format!("artifacts/sha256/{digest}")
}

/// Reads up to `buf.len()` bytes, fewer only at the end of the file.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]).await? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

impl S3Store {
    pub fn new(bucket: Bucket) -> Self {
        Self { bucket }
    }

    fn exists(&self, rel: &str) -> Result<bool> {
        let b = &self.bucket;
        match b.rt.block_on(b.client.head_object().bucket(&b.name).key(b.key(rel)).send()) {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(b.fail("s3:GetObject", rel, &e)),
        }
    }

    async fn upload(&self, path: &Path, digest: &Sha256Digest, rel: &str) -> Result<()> {
        let b = &self.bucket;
        let key = b.key(rel);
        let mut file = tokio::fs::File::open(path).await.map_err(|e| Error::io("open", path, &e))?;
        let mut buf = vec![0u8; PART_SIZE];
        let mut hasher = Sha256::new();
        let n = read_full(&mut file, &mut buf).await.map_err(|e| Error::io("read", path, &e))?;
        hasher.update(&buf[..n]);
        if n < PART_SIZE {
            let actual = Sha256Digest::from_bytes(hasher.finalize().into());
            if &actual != digest {
                return Err(Error::verification(format!(
                    "`{}` hashes to `{actual}` now, not `{digest}`: it changed after the build",
                    path.display()
                )));
            }
            let req = b
                .client
                .put_object()
                .bucket(&b.name)
                .key(&key)
                .if_none_match("*")
                .metadata("sha256", digest.as_str())
                .body(ByteStream::from(buf[..n].to_vec()));
            return match req.send().await {
                Ok(_) => Ok(()),
                Err(e) if lost_race(&e) => Ok(()), // stored concurrently under its digest
                Err(e) => Err(b.fail("s3:PutObject", rel, &e)),
            };
        }
        let created = b
            .client
            .create_multipart_upload()
            .bucket(&b.name)
            .key(&key)
            .metadata("sha256", digest.as_str())
            .send()
            .await
            .map_err(|e| b.fail("s3:PutObject", rel, &e))?;
        let upload_id = created.upload_id.unwrap_or_default();
        let total = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let task = format!("uploading {rel}");
        let mut uploaded = 0u64;
        let result = async {
            let mut parts = Vec::new();
            let mut len = n;
            let mut number = 1;
            loop {
                let part = b
                    .client
                    .upload_part()
                    .bucket(&b.name)
                    .key(&key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(buf[..len].to_vec()));
                let out = part.send().await.map_err(|e| b.fail("s3:PutObject", rel, &e))?;
                parts.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build());
                uploaded += len as u64;
                ferry_core::hooks::progress(&task, uploaded, total, true);
                len = read_full(&mut file, &mut buf).await.map_err(|e| Error::io("read", path, &e))?;
                if len == 0 {
                    break;
                }
                hasher.update(&buf[..len]);
                number += 1;
            }
            ferry_core::hooks::progress_done(&task);
            let actual = Sha256Digest::from_bytes(hasher.finalize().into());
            if &actual != digest {
                return Err(Error::verification(format!(
                    "`{}` hashes to `{actual}` now, not `{digest}`: it changed after the build",
                    path.display()
                )));
            }
            let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
            match b
                .client
                .complete_multipart_upload()
                .bucket(&b.name)
                .key(&key)
                .upload_id(&upload_id)
                .if_none_match("*")
                .multipart_upload(done)
                .send()
                .await
            {
                Ok(_) => Ok(()),
                Err(e) if lost_race(&e) => Ok(()),
                Err(e) => Err(b.fail("s3:PutObject", rel, &e)),
            }
        }
        .await;
        if result.is_err() {
            let _ = b.client.abort_multipart_upload().bucket(&b.name).key(&key).upload_id(&upload_id).send().await;
        }
        result
    }

    /// Streams the object at `rel` through a hasher, and into `sink` when given.
    async fn stream(&self, rel: &str, mut sink: Option<&mut tokio::fs::File>) -> Result<(Sha256Digest, u64)> {
        let b = &self.bucket;
        let out = b.client.get_object().bucket(&b.name).key(b.key(rel)).send().await.map_err(|e| b.fail("s3:GetObject", rel, &e))?;
        let mut body = out.body;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| Error::failed(format!("reading `{}`: {e}", b.url(rel))))? {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            if let Some(f) = sink.as_mut() {
                f.write_all(&chunk).await.map_err(|e| Error::failed(format!("writing a copy of `{}`: {e}", b.url(rel))))?;
            }
        }
        Ok((Sha256Digest::from_bytes(hasher.finalize().into()), size))
    }

    fn put_doc(&self, rel: &str, bytes: &[u8], id: &ReleaseId) -> Result<()> {
        if self.bucket.put(rel, bytes.to_vec(), None)? == Put::PreconditionFailed {
            let existing = self.bucket.get(rel)?.map(|(b, _)| b);
            if existing.as_deref() != Some(bytes) {
                return Err(Error::failed(format!(
                    "release `{id}` already has a different `{}`; stored releases are never overwritten",
                    self.bucket.url(rel)
                )));
            }
        }
        Ok(())
    }
}

impl ReleaseStore for S3Store {
    fn put_artifact(&self, path: &Path, digest: &Sha256Digest) -> Result<()> {
        let rel = artifact_key(digest);
        if self.exists(&rel)? {
            return Ok(());
        }
        self.bucket.rt.block_on(self.upload(path, digest, &rel))
    }

    fn hash_artifact(&self, digest: &Sha256Digest) -> Result<(Sha256Digest, u64)> {
        self.bucket.rt.block_on(self.stream(&artifact_key(digest), None))
    }

    fn fetch_artifact(&self, digest: &Sha256Digest, dest: &Path) -> Result<()> {
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, &e))?;
        let tmp = dest.with_extension("ferry-partial");
        let (actual, _) = self.bucket.rt.block_on(async {
            let mut f = tokio::fs::File::create(&tmp).await.map_err(|e| Error::io("create", &tmp, &e))?;
            let r = self.stream(&artifact_key(digest), Some(&mut f)).await?;
            f.sync_all().await.map_err(|e| Error::io("write", &tmp, &e))?;
            Ok::<_, Error>(r)
        })?;
        if &actual != digest {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::verification(format!(
                "`{}` hashes to `{actual}`, expected `{digest}`",
                self.bucket.url(&artifact_key(digest))
            )));
        }
        std::fs::rename(&tmp, dest).map_err(|e| Error::io("write", dest, &e))
    }

    fn put_release(&self, release: &StoredRelease) -> Result<()> {
        let dir = format!("releases/{}", release.id);
        self.put_doc(&format!("{dir}/provenance.dsse.json"), &release.envelope, &release.id)?;
        self.put_doc(&format!("{dir}/manifest.json"), &release.manifest, &release.id)
    }

    fn get_release(&self, id: &ReleaseId) -> Result<StoredRelease> {
        let manifest = self.bucket.get(&format!("releases/{id}/manifest.json"))?.ok_or_else(|| {
            Error::invalid(format!("no release `{id}` in `{}`", self.location())).hint("`ferry status PIPELINE` lists the releases")
        })?;
        let envelope = self
            .bucket
            .get(&format!("releases/{id}/provenance.dsse.json"))?
            .ok_or_else(|| Error::verification(format!("release `{id}` has no signed envelope in the store")))?;
        Ok(StoredRelease { id: id.clone(), manifest: manifest.0, envelope: envelope.0 })
    }

    fn list_releases(&self) -> Result<Vec<ReleaseId>> {
        Ok(self
            .bucket
            .list("releases/")?
            .iter()
            .filter_map(|k| k.strip_prefix("releases/")?.strip_suffix("/manifest.json")?.parse().ok())
            .collect())
    }

    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket.name, self.bucket.prefix)
    }
}
