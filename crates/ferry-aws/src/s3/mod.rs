//! The object port on S3: a bucket and key prefix reached with one role's credentials.
//! Create-only writes carry `If-None-Match: *`, replacements and deletes `If-Match: ETAG`, so
//! nothing is overwritten unseen; the version is the ETag. Reads of several objects run
//! concurrently. Artifacts stream in and out (`stream.rs`). The SDK retries transient errors
//! (5xx, throttling, dropped connections) with backoff; a retry that finds its own earlier
//! write answers `Conflict`, which the storage layer in ferry-core recognises by content.

mod stream;

pub use stream::PART_SIZE;

use std::path::Path;
use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use ferry_core::ids::Sha256Digest;
use ferry_core::ports::{Object, ObjectStore, Version, Write};
use ferry_core::{Error, Result};
use tokio::runtime::Runtime;

use crate::error::{self, Attempt};

/// Requests in flight at once when reading many objects.
const CONCURRENT_GETS: usize = 32;

/// A bucket and key prefix, reached with one role's credentials.
#[derive(Clone)]
pub struct Bucket {
    pub(crate) rt: Arc<Runtime>,
    pub(crate) client: aws_sdk_s3::Client,
    pub name: String,
    pub prefix: String,
    /// The role these credentials belong to, for error messages.
    pub role: String,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Bucket(s3://{}/{})", self.name, self.prefix)
    }
}

/// 412 (precondition failed) and 409 (a concurrent conditional write won) both mean "lost the race".
fn lost_race<E, R: error::HasStatus>(e: &SdkError<E, R>) -> bool {
    matches!(error::http_status(e), Some(412 | 409))
}

fn not_found<E, R: error::HasStatus>(e: &SdkError<E, R>) -> bool {
    error::http_status(e) == Some(404)
}

impl Bucket {
    /// A bucket reached with `config` (the credentials of `role`); path-style with a custom endpoint.
    pub fn new(rt: Arc<Runtime>, config: &SdkConfig, name: &str, prefix: &str, role: &str, path_style: bool) -> Self {
        let retry = aws_config::retry::RetryConfig::standard().with_max_attempts(5);
        let conf = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).retry_config(retry).build();
        let prefix = prefix.trim_matches('/');
        Self { rt, client: aws_sdk_s3::Client::from_conf(conf), name: name.to_owned(), prefix: prefix.to_owned(), role: role.to_owned() }
    }

    /// The same bucket under `sub` (the audit log's keys under `PREFIX/audit`).
    #[must_use]
    pub fn under(&self, sub: &str) -> Self {
        Self { prefix: self.key(sub.trim_matches('/')), ..self.clone() }
    }

    pub fn key(&self, rel: &str) -> String {
        if self.prefix.is_empty() { rel.to_owned() } else { format!("{}/{rel}", self.prefix) }
    }

    pub fn url(&self, rel: &str) -> String {
        format!("s3://{}/{}", self.name, self.key(rel))
    }

    fn fail<E, R>(&self, action: &str, rel: &str, e: &SdkError<E, R>) -> Error
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
        R: error::HasStatus + std::fmt::Debug,
    {
        error::map(Attempt { who: &self.role, action, resource: &self.url(rel) }, e)
    }

    async fn get_async(&self, rel: &str) -> Result<Option<Object>> {
        match self.client.get_object().bucket(&self.name).key(self.key(rel)).send().await {
            Ok(out) => {
                let version = Version(out.e_tag.clone().unwrap_or_default());
                let body = out.body.collect().await.map_err(|e| Error::failed(format!("reading `{}`: {e}", self.url(rel))))?;
                Ok(Some(Object { bytes: body.into_bytes().to_vec(), version }))
            }
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(self.fail("s3:GetObject", rel, &e)),
        }
    }

    async fn put_async(&self, rel: &str, bytes: &[u8], expected: Option<&Version>) -> Result<Write> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.name)
            .key(self.key(rel))
            .content_type("application/json")
            .body(ByteStream::from(bytes.to_vec()));
        req = match expected {
            None => req.if_none_match("*"),
            Some(v) => req.if_match(&v.0),
        };
        match req.send().await {
            Ok(out) => Ok(Write::Done(Version(out.e_tag.unwrap_or_default()))),
            Err(e) if lost_race(&e) || (expected.is_some() && not_found(&e)) => Ok(Write::Conflict),
            Err(e) => Err(self.fail("s3:PutObject", rel, &e)),
        }
    }
}

impl ObjectStore for Bucket {
    fn get(&self, key: &str) -> Result<Option<Object>> {
        self.rt.block_on(self.get_async(key))
    }

    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Object>>> {
        self.rt.block_on(async {
            let mut out: Vec<Option<Object>> = Vec::with_capacity(keys.len());
            for group in keys.chunks(CONCURRENT_GETS) {
                let mut set = tokio::task::JoinSet::new();
                for (i, key) in group.iter().enumerate() {
                    let (b, key) = (self.clone(), key.clone());
                    set.spawn(async move { (i, b.get_async(&key).await) });
                }
                let mut got: Vec<Option<Option<Object>>> = (0..group.len()).map(|_| None).collect();
                while let Some(joined) = set.join_next().await {
                    let (i, result) = joined.map_err(|e| Error::failed(format!("a concurrent S3 read failed: {e}")))?;
                    got[i] = Some(result?);
                }
                out.extend(got.into_iter().map(Option::flatten));
            }
            Ok(out)
        })
    }

    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<String>> {
        let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        self.rt.block_on(async {
            let mut keys = Vec::new();
            let mut req = self.client.list_objects_v2().bucket(&self.name).prefix(self.key(prefix));
            if let Some(a) = after {
                req = req.start_after(self.key(a));
            }
            let mut pages = req.into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.fail("s3:ListBucket", prefix, &e))?;
                keys.extend(page.contents().iter().filter_map(|o| o.key()).map(|k| k[strip.min(k.len())..].to_owned()));
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn create(&self, key: &str, bytes: &[u8]) -> Result<Write> {
        self.rt.block_on(self.put_async(key, bytes, None))
    }

    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<Write> {
        self.rt.block_on(self.put_async(key, bytes, Some(expected)))
    }

    fn delete(&self, key: &str, expected: &Version) -> Result<Write> {
        let req = self.client.delete_object().bucket(&self.name).key(self.key(key)).if_match(&expected.0);
        match self.rt.block_on(req.send()) {
            Ok(_) => Ok(Write::Done(expected.clone())),
            Err(e) if lost_race(&e) || not_found(&e) => Ok(Write::Conflict),
            Err(e) => Err(self.fail("s3:DeleteObject", key, &e)),
        }
    }

    fn create_file(&self, key: &str, path: &Path, digest: &Sha256Digest) -> Result<Write> {
        // A small file is one conditional PUT (refused if present); a large one is looked for
        // first, so bytes already stored are not uploaded again.
        let size = std::fs::metadata(path).map_err(|e| Error::io("read", path, &e))?.len();
        if size >= PART_SIZE as u64 && self.rt.block_on(self.exists(key))? {
            return Ok(Write::Conflict);
        }
        self.rt.block_on(self.upload(path, digest, key))
    }

    /// A file smaller than one part is read once: hashed in memory, then stored under its
    /// digest. A larger one is hashed, then streamed in parts (the digest names the key the
    /// multipart upload starts with, so it is read twice: uploading to a temporary key and
    /// copying would cost a server-side copy of every large artifact instead).
    fn ingest_file(&self, path: &Path, key_for: &dyn Fn(&Sha256Digest) -> String) -> Result<(Sha256Digest, u64)> {
        let size = std::fs::metadata(path).map_err(|e| Error::io("read", path, &e))?.len();
        if size >= PART_SIZE as u64 {
            let (digest, size) = ferry_core::digest::hash_file(path)?;
            self.create_file(&key_for(&digest), path, &digest)?;
            return Ok((digest, size));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, &e))?;
        let (digest, size) = (Sha256Digest::of(&bytes), bytes.len() as u64);
        self.rt.block_on(self.put_artifact(&key_for(&digest), bytes, &digest))?;
        Ok((digest, size))
    }

    fn read_into(&self, key: &str, sink: &mut dyn std::io::Write) -> Result<Option<u64>> {
        self.rt.block_on(self.download(key, sink))
    }

    fn location(&self, key: &str) -> String {
        self.url(key)
    }
}
