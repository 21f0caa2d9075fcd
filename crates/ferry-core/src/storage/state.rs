//! Promotion state and approvals over objects. A stage record is one object at
//! `state/PIPELINE/RELEASE/STAGE.json`, created if absent and replaced only at the version
//! read, so no update is lost; signed decisions (approvals, rejections) are create-only DSSE
//! envelopes at `approvals/PIPELINE/RELEASE/STAGE/MILLIS-APPROVER-TOKEN.dsse.json`, never
//! changed once written; approval requests are content-addressed at
//! `requests/PIPELINE/RELEASE/STAGE/DIGEST.json`.

use std::sync::Arc;

use super::{Created, create, parse, replace, to_json, with_retries};
use crate::approval::signed::ApprovalRequest;
use crate::error::{Error, Result};
use crate::ids::{PipelineName, ReleaseId, Sha256Digest, StageName};
use crate::ports::Versioned;
use crate::ports::{ObjectStore, StateStore, Version, Write};
use crate::state::{STATE_VERSION, StageRecord};

pub struct State {
    objects: Arc<dyn ObjectStore>,
    clock: Arc<dyn crate::ports::Clock>,
    /// The stage records this process wrote, by key, as it last wrote them.
    written: std::sync::Mutex<std::collections::HashMap<String, StageRecord>>,
}

fn stage_key(pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> String {
    format!("state/{pipeline}/{release}/{stage}.json")
}

fn approvals_prefix(pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> String {
    format!("approvals/{pipeline}/{release}/{stage}/")
}

/// An actor as part of a key: letters, digits and `-`, the rest `_`, at most 64 characters
/// (the token that follows keeps two names that read the same apart).
fn slug(actor: &str) -> String {
    actor.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(64).collect()
}

impl State {
    pub fn new(objects: Arc<dyn ObjectStore>, clock: Arc<dyn crate::ports::Clock>) -> Self {
        Self { objects, clock, written: std::sync::Mutex::default() }
    }

    fn read_all<T: serde::de::DeserializeOwned>(&self, prefix: &str, version: u32) -> Result<Vec<T>> {
        let keys = with_retries(self.clock.as_ref(), || self.objects.list(prefix, None))?;
        let objects = with_retries(self.clock.as_ref(), || self.objects.get_many(&keys))?;
        keys.iter().zip(objects).filter_map(|(k, o)| o.map(|o| parse(&o.bytes, &self.objects.location(k), version))).collect()
    }

    /// Every object under `prefix` as (key, bytes), read concurrently where the backend can.
    fn read_raw(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        let keys = with_retries(self.clock.as_ref(), || self.objects.list(prefix, None))?;
        let objects = with_retries(self.clock.as_ref(), || self.objects.get_many(&keys))?;
        Ok(keys.into_iter().zip(objects).filter_map(|(k, o)| o.map(|o| (k, o.bytes))).collect())
    }
}

impl StateStore for State {
    fn read_stage(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Option<Versioned<StageRecord>>> {
        let key = stage_key(pipeline, release, stage);
        let Some(o) = with_retries(self.clock.as_ref(), || self.objects.get(&key))? else { return Ok(None) };
        Ok(Some(Versioned { revision: o.version, value: parse(&o.bytes, &self.objects.location(&key), STATE_VERSION)? }))
    }

    fn write_stage(&self, record: &StageRecord, expected: Option<&Version>) -> Result<Write> {
        let key = stage_key(&record.pipeline, &record.release, &record.stage);
        let bytes = to_json(record)?;
        let written = match expected {
            None => match create(self.objects.as_ref(), &key, &bytes)? {
                Created::Ours(v) => Write::Done(v),
                Created::Theirs(_) => Write::Conflict,
            },
            Some(v) => replace(self.objects.as_ref(), &key, &bytes, v)?,
        };
        if let Write::Done(_) = written {
            self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(key, record.clone());
        }
        Ok(written)
    }

    fn written_here(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Option<StageRecord> {
        self.written.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&stage_key(pipeline, release, stage)).cloned()
    }

    fn list_stages(&self, pipeline: &PipelineName) -> Result<Vec<StageRecord>> {
        self.read_all(&format!("state/{pipeline}/"), STATE_VERSION)
    }

    fn add_decision(
        &self,
        pipeline: &PipelineName,
        release: &ReleaseId,
        stage: &StageName,
        approver: &str,
        at: crate::clock::Timestamp,
        envelope: &[u8],
    ) -> Result<String> {
        let key = format!(
            "{}{:013}-{}-{}.dsse.json",
            approvals_prefix(pipeline, release, stage),
            at.unix_millis(),
            slug(approver),
            &super::token()[..12]
        );
        match create(self.objects.as_ref(), &key, envelope)? {
            Created::Ours(_) => Ok(self.objects.location(&key)),
            Created::Theirs(_) => Err(Error::failed(format!("`{}` exists already", self.objects.location(&key)))
                .hint("two decisions drew the same random name; run the command again")),
        }
    }

    fn decisions(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Vec<(String, Vec<u8>)>> {
        self.read_raw(&approvals_prefix(pipeline, release, stage))
    }

    fn all_decisions(&self, pipeline: &PipelineName) -> Result<Vec<crate::ports::DecisionRecord>> {
        let prefix = format!("approvals/{pipeline}/");
        Ok(self
            .read_raw(&prefix)?
            .into_iter()
            .filter_map(|(key, bytes)| {
                let rel = key.rsplit_once(&prefix).map_or(key.as_str(), |(_, r)| r).to_owned();
                let mut parts = rel.split('/');
                let release = parts.next()?.parse().ok()?;
                let stage = parts.next()?.parse().ok()?;
                Some(crate::ports::DecisionRecord { release, stage, location: key, bytes })
            })
            .collect())
    }

    fn put_request(&self, request: &ApprovalRequest) -> Result<Sha256Digest> {
        let digest = request.digest();
        let key = format!("requests/{}/{}/{}/{digest}.json", request.pipeline, request.release, request.stage);
        // Content-addressed: what is there under this digest is this request.
        create(self.objects.as_ref(), &key, &to_json(request)?)?;
        Ok(digest)
    }

    fn request(
        &self,
        pipeline: &PipelineName,
        release: &ReleaseId,
        stage: &StageName,
        digest: &Sha256Digest,
    ) -> Result<Option<ApprovalRequest>> {
        let key = format!("requests/{pipeline}/{release}/{stage}/{digest}.json");
        let Some(o) = with_retries(self.clock.as_ref(), || self.objects.get(&key))? else { return Ok(None) };
        let request: ApprovalRequest = serde_json::from_slice(&o.bytes)
            .map_err(|e| Error::failed(format!("approval request `{}` is malformed: {e}", self.objects.location(&key))))?;
        // It is what its name says, or it is not the request approvers signed.
        if &request.digest() != digest {
            return Err(Error::verification(format!("approval request `{}` does not hash to its name", self.objects.location(&key))));
        }
        Ok(Some(request))
    }
}
