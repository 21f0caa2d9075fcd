//! Streaming artifacts to and from S3: uploads hash while they read (a single PUT below one
//! part, multipart above it, so memory stays bounded whatever the size), are created only if
//! absent, and are refused before completion if the file no longer hashes to its digest;
//! downloads stream into the caller's sink.

use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use ferry_core::ids::Sha256Digest;
use ferry_core::ports::{Version, Write};
use ferry_core::{Error, Result};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::{Bucket, lost_race, not_found};

/// Size of one multipart part, and so the most of an artifact held in memory at once.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

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

impl Bucket {
    /// Stores a small artifact's bytes under `rel` unless something is there (its digest names
    /// it: what is there is these bytes).
    pub(super) async fn put_artifact(&self, rel: &str, bytes: Vec<u8>, digest: &Sha256Digest) -> Result<Write> {
        let req = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(self.key(rel))
            .if_none_match("*")
            .metadata("sha256", digest.as_str())
            .body(ByteStream::from(bytes));
        match req.send().await {
            Ok(_) => Ok(Write::Done(Version(digest.to_string()))),
            Err(e) if lost_race(&e) => Ok(Write::Conflict), // stored concurrently under its digest
            Err(e) => Err(self.fail("s3:PutObject", rel, &e)),
        }
    }

    pub(super) async fn upload(&self, path: &Path, digest: &Sha256Digest, rel: &str) -> Result<Write> {
        let b = self;
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
            buf.truncate(n);
            return b.put_artifact(rel, buf, digest).await;
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
                Ok(_) => Ok(Write::Done(Version(digest.to_string()))),
                Err(e) if lost_race(&e) => Ok(Write::Conflict),
                Err(e) => Err(b.fail("s3:PutObject", rel, &e)),
            }
        }
        .await;
        if result.is_err() {
            let _ = b.client.abort_multipart_upload().bucket(&b.name).key(&key).upload_id(&upload_id).send().await;
        }
        result
    }

    /// Streams the object at `rel` into `sink`; its size, or `None` if there is none.
    pub(super) async fn download(&self, rel: &str, sink: &mut dyn std::io::Write) -> Result<Option<u64>> {
        let out = match self.client.get_object().bucket(&self.name).key(self.key(rel)).send().await {
            Ok(out) => out,
            Err(e) if not_found(&e) => return Ok(None),
            Err(e) => return Err(self.fail("s3:GetObject", rel, &e)),
        };
        let mut body = out.body;
        let mut size = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| Error::failed(format!("reading `{}`: {e}", self.url(rel))))? {
            sink.write_all(&chunk).map_err(|e| Error::failed(format!("writing a copy of `{}`: {e}", self.url(rel))))?;
            size += chunk.len() as u64;
        }
        Ok(Some(size))
    }

    pub(super) async fn exists(&self, rel: &str) -> Result<bool> {
        match self.client.head_object().bucket(&self.name).key(self.key(rel)).send().await {
            Ok(_) => Ok(true),
            Err(e) if not_found(&e) => Ok(false),
            Err(e) => Err(self.fail("s3:GetObject", rel, &e)),
        }
    }
}
