//! Promotion state and approvals over objects. A stage record is one object at
//! `state/PIPELINE/RELEASE/STAGE.json`, created if absent and replaced only at the version
//! read, so no update is lost; approvals are create-only objects at
//! `approvals/PIPELINE/RELEASE/STAGE/MILLIS-ACTOR-TOKEN.json`, never changed once written.

use std::sync::Arc;

use super::{Created, create, parse, replace, to_json, with_retries};
use crate::approval::{APPROVAL_VERSION, ApprovalRecord};
use crate::error::{Error, Result};
use crate::ids::{PipelineName, ReleaseId, StageName};
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

    fn add_approval(&self, record: &ApprovalRecord) -> Result<()> {
        let key = format!(
            "{}{:013}-{}-{}.json",
            approvals_prefix(&record.pipeline, &record.release, &record.stage),
            record.at.unix_millis(),
            slug(record.actor.as_str()),
            &super::token()[..12]
        );
        match create(self.objects.as_ref(), &key, &to_json(record)?)? {
            Created::Ours(_) => Ok(()),
            Created::Theirs(_) => Err(Error::failed(format!("`{}` exists already", self.objects.location(&key)))
                .hint("two decisions drew the same random name; run the command again")),
        }
    }

    fn approvals(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Vec<ApprovalRecord>> {
        self.read_all(&approvals_prefix(pipeline, release, stage), APPROVAL_VERSION)
    }

    fn all_approvals(&self, pipeline: &PipelineName) -> Result<Vec<ApprovalRecord>> {
        self.read_all(&format!("approvals/{pipeline}/"), APPROVAL_VERSION)
    }
}
