//! The ports of ferry-core on S3. `Bucket` is the one place that talks to S3: create-only
//! writes (`If-None-Match: *`), replace-if-unchanged writes (`If-Match: ETAG`), reads with
//! their ETag, listings, and streaming artifact uploads and downloads.

pub mod audit;
pub mod locks;
pub mod state;
pub mod store;

use std::sync::Arc;

use aws_config::SdkConfig;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use ferry_core::{Error, Result};
use tokio::runtime::Runtime;

use crate::error::{self, Attempt};

/// Whether a conditional write happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the new ETag.
    Done(String),
    /// The precondition failed: the object exists (create) or changed (replace).
    PreconditionFailed,
}

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
        let conf = aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build();
        let prefix = prefix.trim_matches('/');
        Self { rt, client: aws_sdk_s3::Client::from_conf(conf), name: name.to_owned(), prefix: prefix.to_owned(), role: role.to_owned() }
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

    /// Writes `bytes` at `rel` if `expected` matches: `None` creates only if absent, `Some(etag)`
    /// replaces only that version.
    pub fn put(&self, rel: &str, bytes: Vec<u8>, expected: Option<&str>) -> Result<Put> {
        let mut req =
            self.client.put_object().bucket(&self.name).key(self.key(rel)).content_type("application/json").body(ByteStream::from(bytes));
        req = match expected {
            None => req.if_none_match("*"),
            Some(etag) => req.if_match(etag),
        };
        match self.rt.block_on(req.send()) {
            Ok(out) => Ok(Put::Done(out.e_tag.unwrap_or_default())),
            Err(e) if lost_race(&e) => Ok(Put::PreconditionFailed),
            Err(e) => Err(self.fail("s3:PutObject", rel, &e)),
        }
    }

    /// Reads `rel` with its ETag; `None` if absent.
    pub fn get(&self, rel: &str) -> Result<Option<(Vec<u8>, String)>> {
        let req = self.client.get_object().bucket(&self.name).key(self.key(rel));
        self.rt.block_on(async {
            match req.send().await {
                Ok(out) => {
                    let etag = out.e_tag.clone().unwrap_or_default();
                    let body = out.body.collect().await.map_err(|e| Error::failed(format!("reading `{}`: {e}", self.url(rel))))?;
                    Ok(Some((body.into_bytes().to_vec(), etag)))
                }
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(self.fail("s3:GetObject", rel, &e)),
            }
        })
    }

    /// Deletes `rel`, only if it still has `etag` when one is given.
    pub fn delete(&self, rel: &str, etag: Option<&str>) -> Result<Put> {
        let mut req = self.client.delete_object().bucket(&self.name).key(self.key(rel));
        if let Some(etag) = etag {
            req = req.if_match(etag);
        }
        match self.rt.block_on(req.send()) {
            Ok(_) => Ok(Put::Done(String::new())),
            Err(e) if lost_race(&e) => Ok(Put::PreconditionFailed),
            Err(e) => Err(self.fail("s3:DeleteObject", rel, &e)),
        }
    }

    /// Every key under `rel_prefix`, relative to the bucket prefix, in key order.
    pub fn list(&self, rel_prefix: &str) -> Result<Vec<String>> {
        let full = self.key(rel_prefix);
        let strip = if self.prefix.is_empty() { 0 } else { self.prefix.len() + 1 };
        self.rt.block_on(async {
            let mut keys = Vec::new();
            let mut pages = self.client.list_objects_v2().bucket(&self.name).prefix(&full).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.fail("s3:ListBucket", rel_prefix, &e))?;
                keys.extend(page.contents().iter().filter_map(|o| o.key()).map(|k| k[strip.min(k.len())..].to_owned()));
            }
            keys.sort();
            Ok(keys)
        })
    }
}
