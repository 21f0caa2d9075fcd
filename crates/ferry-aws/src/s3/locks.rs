//! Stage locks in S3: `locks/PIPELINE/STAGE.lock` holds holder, release and lease expiry.
//! Taken with `If-None-Match: *`; renewed, taken over (only after the lease expired) and
//! released with `If-Match: ETAG`, so of two runners racing exactly one wins. Runners on
//! different machines (GitHub jobs, CodeBuild builds, people) coordinate through this alone.

use std::time::Duration;

use ferry_core::clock::Timestamp;
use ferry_core::ids::{Actor, PipelineName, ReleaseId, StageName};
use ferry_core::ports::{Acquired, LockInfo, Locks};
use ferry_core::{Error, Result};

use super::state::to_json;
use super::{Bucket, Put};

#[derive(Debug, Clone)]
pub struct S3Locks {
    pub bucket: Bucket,
    /// Recorded in the lock so people can see where the holder runs.
    pub host: String,
}

fn key(pipeline: &PipelineName, stage: &StageName) -> String {
    format!("locks/{pipeline}/{stage}.lock")
}

fn token() -> String {
    let mut raw = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
    hex::encode(raw)
}

fn is_stale(lock: &LockInfo) -> bool {
    lock.expires_at < Timestamp::now()
}

impl S3Locks {
    fn new_lock(&self, pipeline: &PipelineName, stage: &StageName, release: &ReleaseId, holder: &Actor, lease: Duration) -> LockInfo {
        LockInfo::new(pipeline, stage, release, holder, lease, &self.host, token())
    }

    fn read(&self, rel: &str) -> Result<Option<(LockInfo, String)>> {
        match self.bucket.get(rel)? {
            None => Ok(None),
            Some((bytes, etag)) => serde_json::from_slice(&bytes).map(|l| Some((l, etag))).map_err(|e| {
                Error::failed(format!("lock `{}` is malformed: {e}", self.bucket.url(rel)))
                    .hint("remove it with `ferry unlock PIPELINE --stage STAGE` once no promotion is running")
            }),
        }
    }

    fn taken_over(lock: &LockInfo, current: Option<&LockInfo>) -> Error {
        match current {
            Some(c) => {
                Error::failed(format!("the lock of stage `{}` is now held by `{}`; ours expired and was taken over", lock.stage, c.holder))
            }
            None => Error::failed(format!("the lock of stage `{}` was removed while we held it", lock.stage)),
        }
    }
}

impl Locks for S3Locks {
    fn try_acquire(
        &self,
        pipeline: &PipelineName,
        stage: &StageName,
        release: &ReleaseId,
        holder: &Actor,
        lease: Duration,
    ) -> Result<Acquired> {
        let rel = key(pipeline, stage);
        for _ in 0..5 {
            let lock = self.new_lock(pipeline, stage, release, holder, lease);
            if let Put::Done(_) = self.bucket.put(&rel, to_json(&lock)?, None)? {
                return Ok(Acquired::Taken(lock));
            }
            if let Some((held, _)) = self.read(&rel)? {
                let stale = is_stale(&held);
                return Ok(Acquired::Held { lock: held, stale });
            }
        }
        Err(Error::failed(format!("could not acquire the lock of stage `{stage}`: it keeps changing hands")))
    }

    fn take_over(&self, stale: &LockInfo, holder: &Actor, lease: Duration) -> Result<Option<LockInfo>> {
        let rel = key(&stale.pipeline, &stale.stage);
        let Some((current, etag)) = self.read(&rel)? else { return Ok(None) };
        if current.token != stale.token || !is_stale(&current) {
            return Ok(None);
        }
        let ours = self.new_lock(&stale.pipeline, &stale.stage, &stale.release, holder, lease);
        Ok(match self.bucket.put(&rel, to_json(&ours)?, Some(&etag))? {
            Put::Done(_) => Some(ours),
            Put::PreconditionFailed => None,
        })
    }

    fn renew(&self, lock: &LockInfo, lease: Duration) -> Result<LockInfo> {
        let rel = key(&lock.pipeline, &lock.stage);
        match self.read(&rel)? {
            Some((current, etag)) if current.token == lock.token => {
                let renewed = LockInfo { expires_at: Timestamp::now().plus(lease), ..current };
                match self.bucket.put(&rel, to_json(&renewed)?, Some(&etag))? {
                    Put::Done(_) => Ok(renewed),
                    Put::PreconditionFailed => Err(Self::taken_over(lock, self.read(&rel)?.map(|c| c.0).as_ref())),
                }
            }
            other => Err(Self::taken_over(lock, other.map(|c| c.0).as_ref())),
        }
    }

    fn release(&self, lock: &LockInfo) -> Result<()> {
        let rel = key(&lock.pipeline, &lock.stage);
        match self.read(&rel)? {
            Some((current, etag)) if current.token == lock.token => match self.bucket.delete(&rel, Some(&etag))? {
                Put::Done(_) => Ok(()),
                Put::PreconditionFailed => Err(Self::taken_over(lock, self.read(&rel)?.map(|c| c.0).as_ref())),
            },
            other => Err(Self::taken_over(lock, other.map(|c| c.0).as_ref())),
        }
    }

    fn force_release(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<LockInfo>> {
        let rel = key(pipeline, stage);
        let Some((current, etag)) = self.read(&rel)? else { return Ok(None) };
        self.bucket.delete(&rel, Some(&etag))?;
        Ok(Some(current))
    }

    fn inspect(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<(LockInfo, bool)>> {
        Ok(self.read(&key(pipeline, stage))?.map(|(l, _)| {
            let stale = is_stale(&l);
            (l, stale)
        }))
    }
}
