//! Promotion state and approvals in S3. A stage record is one object replaced with
//! `If-Match: ETAG` (created with `If-None-Match: *`): a writer that read an old version loses
//! with 412 and the engine re-reads, so no update is lost. Approvals are create-only objects.

use ferry_core::approval::{APPROVAL_VERSION, ApprovalRecord};
use ferry_core::ids::{PipelineName, ReleaseId, StageName};
use ferry_core::ports::{StateStore, Written};
use ferry_core::state::{Revision, STATE_VERSION, StageRecord, Versioned};
use ferry_core::{Error, Result};

use super::{Bucket, Put};

#[derive(Debug, Clone)]
pub struct S3State {
    pub bucket: Bucket,
}

/// Parses a stored document, rejecting unknown versions.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], url: &str, expected: u32) -> Result<T> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("`{url}` is not valid JSON: {e}")))?;
    let version = v.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(expected)) {
        return Err(Error::invalid(format!("`{url}` has unsupported version `{}`", version.map_or("none".into(), |v| v.to_string())))
            .hint(format!("this ferry reads version {expected}")));
    }
    serde_json::from_value(v).map_err(|e| Error::invalid(format!("`{url}` is malformed: {e}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::failed(format!("cannot encode: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn stage_key(pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> String {
    format!("state/{pipeline}/{release}/{stage}.json")
}

impl StateStore for S3State {
    fn read_stage(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Option<Versioned<StageRecord>>> {
        let rel = stage_key(pipeline, release, stage);
        let Some((bytes, etag)) = self.bucket.get(&rel)? else { return Ok(None) };
        Ok(Some(Versioned { revision: Revision(etag), value: parse(&bytes, &self.bucket.url(&rel), STATE_VERSION)? }))
    }

    fn write_stage(&self, record: &StageRecord, expected: Option<&Revision>) -> Result<Written> {
        let rel = stage_key(&record.pipeline, &record.release, &record.stage);
        Ok(match self.bucket.put(&rel, to_json(record)?, expected.map(|r| r.0.as_str()))? {
            Put::Done(etag) => Written::At(Revision(etag)),
            Put::PreconditionFailed => Written::Conflict,
        })
    }

    fn list_stages(&self, pipeline: &PipelineName) -> Result<Vec<StageRecord>> {
        let mut out = Vec::new();
        for key in self.bucket.list(&format!("state/{pipeline}/"))? {
            if let Some((bytes, _)) = self.bucket.get(&key)? {
                out.push(parse(&bytes, &self.bucket.url(&key), STATE_VERSION)?);
            }
        }
        Ok(out)
    }

    fn add_approval(&self, record: &ApprovalRecord) -> Result<()> {
        let actor: String =
            record.actor.as_str().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(80).collect();
        let rel = format!(
            "approvals/{}/{}/{}/{:013}-{actor}.json",
            record.pipeline,
            record.release,
            record.stage,
            record.at.unix_seconds() * 1000
        );
        match self.bucket.put(&rel, to_json(record)?, None)? {
            Put::Done(_) => Ok(()),
            Put::PreconditionFailed => {
                Err(Error::failed(format!("an approval by `{}` was recorded at the same moment; try again", record.actor)))
            }
        }
    }

    fn approvals(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Vec<ApprovalRecord>> {
        let mut out = Vec::new();
        for key in self.bucket.list(&format!("approvals/{pipeline}/{release}/{stage}/"))? {
            if let Some((bytes, _)) = self.bucket.get(&key)? {
                out.push(parse(&bytes, &self.bucket.url(&key), APPROVAL_VERSION)?);
            }
        }
        Ok(out)
    }
}
