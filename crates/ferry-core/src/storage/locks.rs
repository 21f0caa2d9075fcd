//! Stage locks over objects: `locks/PIPELINE/STAGE.lock` holds holder, release, process, host
//! and lease expiry. Taken with create-if-absent; renewed, taken over (only once stale) and
//! released at the version read, so of two runners racing exactly one wins. A lock is stale
//! when its holder's process on this host is gone, or — for a holder elsewhere, or a backend
//! that trusts leases only — when its lease expired.

use std::sync::Arc;
use std::time::Duration;

use super::{Created, create, replace, to_json, with_retries};
use crate::error::{Error, Result};
use crate::ids::{Actor, PipelineName, ReleaseId, StageName};
use crate::ports::{Acquired, Clock, Liveness, LockInfo, Locks, ObjectStore, Version, Write};

pub struct StageLocks {
    objects: Arc<dyn ObjectStore>,
    liveness: Arc<dyn Liveness>,
    clock: Arc<dyn Clock>,
}

fn key(pipeline: &PipelineName, stage: &StageName) -> String {
    format!("locks/{pipeline}/{stage}.lock")
}

impl StageLocks {
    pub fn new(objects: Arc<dyn ObjectStore>, liveness: Arc<dyn Liveness>, clock: Arc<dyn Clock>) -> Self {
        Self { objects, liveness, clock }
    }

    fn new_lock(&self, pipeline: &PipelineName, stage: &StageName, release: &ReleaseId, holder: &Actor, lease: Duration) -> LockInfo {
        LockInfo::new(pipeline, stage, release, holder, self.clock.now(), lease, &self.liveness.host(), super::token())
    }

    fn read(&self, key: &str) -> Result<Option<(LockInfo, Version)>> {
        match with_retries(self.clock.as_ref(), || self.objects.get(key))? {
            None => Ok(None),
            Some(o) => self.parse(key, &o.bytes).map(|l| Some((l, o.version))),
        }
    }

    fn parse(&self, key: &str, bytes: &[u8]) -> Result<LockInfo> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::failed(format!("lock `{}` is malformed: {e}", self.objects.location(key)))
                .hint("remove it with `ferry unlock PIPELINE --stage STAGE` once no promotion is running")
        })
    }

    fn is_stale(&self, lock: &LockInfo) -> bool {
        self.staleness(lock).0
    }

    /// Whether `lock` is stale, and the commands its gone holder left running (which keep it
    /// held: a second promotion must never deploy beside them).
    fn staleness(&self, lock: &LockInfo) -> (bool, Vec<u32>) {
        match (lock.host == self.liveness.host()).then(|| self.liveness.alive(lock.pid)).flatten() {
            Some(true) => (false, Vec::new()),
            Some(false) => {
                let running = self.liveness.running_with(&lock.token);
                (running.is_empty(), running)
            }
            None => (lock.expires_at < self.clock.now(), Vec::new()),
        }
    }

    fn lost(lock: &LockInfo, current: Option<&LockInfo>) -> Error {
        match current {
            Some(c) => Error::busy(format!("the lock of stage `{}` is now held by `{}`; ours was taken over", lock.stage, c.holder)),
            None => Error::busy(format!("the lock of stage `{}` was removed while we held it", lock.stage)),
        }
    }
}

impl Locks for StageLocks {
    fn try_acquire(
        &self,
        pipeline: &PipelineName,
        stage: &StageName,
        release: &ReleaseId,
        holder: &Actor,
        lease: Duration,
    ) -> Result<Acquired> {
        let lock = self.new_lock(pipeline, stage, release, holder, lease);
        let k = key(pipeline, stage);
        match create(self.objects.as_ref(), &k, &to_json(&lock)?)? {
            Created::Ours(v) => Ok(Acquired::Taken(LockInfo { written: Some(v), ..lock })),
            Created::Theirs(o) => {
                let held = self.parse(&k, &o.bytes)?;
                let (stale, running) = self.staleness(&held);
                Ok(Acquired::Held { lock: held, stale, running })
            }
        }
    }

    fn take_over(&self, stale: &LockInfo, holder: &Actor, lease: Duration) -> Result<Option<LockInfo>> {
        let k = key(&stale.pipeline, &stale.stage);
        let Some((current, version)) = self.read(&k)? else { return Ok(None) };
        if current.token != stale.token || !self.is_stale(&current) {
            return Ok(None);
        }
        let ours = self.new_lock(&stale.pipeline, &stale.stage, &stale.release, holder, lease);
        Ok(match replace(self.objects.as_ref(), &k, &to_json(&ours)?, &version)? {
            Write::Done(v) => Some(LockInfo { written: Some(v), ..ours }),
            Write::Conflict => None,
        })
    }

    fn renew(&self, lock: &LockInfo, lease: Duration) -> Result<LockInfo> {
        let k = key(&lock.pipeline, &lock.stage);
        // From the version this process wrote: one request while nobody touched the lock.
        if let Some(written) = &lock.written {
            let renewed = LockInfo { expires_at: self.clock.now().plus(lease), written: None, ..lock.clone() };
            if let Write::Done(v) = replace(self.objects.as_ref(), &k, &to_json(&renewed)?, written)? {
                return Ok(LockInfo { written: Some(v), ..renewed });
            }
        }
        match self.read(&k)? {
            Some((current, version)) if current.token == lock.token => {
                let renewed = LockInfo { expires_at: self.clock.now().plus(lease), written: None, ..current };
                match replace(self.objects.as_ref(), &k, &to_json(&renewed)?, &version)? {
                    Write::Done(v) => Ok(LockInfo { written: Some(v), ..renewed }),
                    Write::Conflict => Err(Self::lost(lock, self.read(&k)?.map(|c| c.0).as_ref())),
                }
            }
            other => Err(Self::lost(lock, other.map(|c| c.0).as_ref())),
        }
    }

    fn release(&self, lock: &LockInfo) -> Result<()> {
        let k = key(&lock.pipeline, &lock.stage);
        // From the version this process wrote: one request while nobody touched the lock.
        if let Some(written) = &lock.written {
            match self.objects.delete(&k, written)? {
                Write::Done(_) => return Ok(()),
                // A lost answer (the retry finds it gone), or it changed: read and decide.
                Write::Conflict => match self.read(&k)? {
                    None => return Ok(()),
                    Some((c, _)) if c.token != lock.token => return Err(Self::lost(lock, Some(&c))),
                    Some(_) => {}
                },
            }
        }
        match self.read(&k)? {
            Some((current, version)) if current.token == lock.token => match self.objects.delete(&k, &version)? {
                Write::Done(_) => Ok(()),
                // A lost answer: the retry found our delete done (or our lock still there).
                Write::Conflict => match self.read(&k)? {
                    None => Ok(()),
                    Some((c, _)) if c.token == lock.token => {
                        Err(Error::failed(format!("could not release the lock of stage `{}`", lock.stage))
                            .hint(format!("release it with `ferry unlock PIPELINE --stage {}`", lock.stage)))
                    }
                    Some((c, _)) => Err(Self::lost(lock, Some(&c))),
                },
            },
            other => Err(Self::lost(lock, other.map(|c| c.0).as_ref())),
        }
    }

    fn force_release(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<LockInfo>> {
        let k = key(pipeline, stage);
        for _ in 0..5 {
            let Some((current, version)) = self.read(&k)? else { return Ok(None) };
            if let Write::Done(_) = self.objects.delete(&k, &version)? {
                return Ok(Some(current));
            }
            if self.read(&k)?.is_none() {
                return Ok(Some(current));
            }
        }
        Err(Error::failed(format!("the lock of stage `{stage}` keeps changing; try again")))
    }

    fn inspect(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<(LockInfo, bool)>> {
        Ok(self.read(&key(pipeline, stage))?.map(|(l, _)| {
            let stale = self.is_stale(&l);
            (l, stale)
        }))
    }
}
