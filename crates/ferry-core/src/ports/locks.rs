//! The stage lock port: one promotion per stage at a time, with leases and the holder's
//! process, so an abandoned lock is recognised. Written once in `crate::storage::locks`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{Actor, PipelineName, ReleaseId, StageName};

/// A stage lock as stored: who holds it, for which release, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockInfo {
    pub version: u32,
    pub pipeline: PipelineName,
    pub stage: StageName,
    pub release: ReleaseId,
    pub holder: Actor,
    /// Process and host of the holder, so a dead holder on the same host is recognised.
    pub pid: u32,
    pub host: String,
    pub acquired_at: Timestamp,
    pub expires_at: Timestamp,
    /// Random token proving ownership when releasing.
    pub token: String,
    /// The version this process wrote it at (not stored): renewing and releasing start from
    /// it instead of reading the lock first.
    #[serde(skip)]
    pub written: Option<crate::ports::Version>,
}

impl LockInfo {
    /// A lock for `holder` (this process on `host`), valid for `lease` from `now`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        pipeline: &PipelineName,
        stage: &StageName,
        release: &ReleaseId,
        holder: &Actor,
        now: Timestamp,
        lease: Duration,
        host: &str,
        token: String,
    ) -> Self {
        LockInfo {
            version: 1,
            pipeline: pipeline.clone(),
            stage: stage.clone(),
            release: release.clone(),
            holder: holder.clone(),
            pid: std::process::id(),
            host: host.to_owned(),
            acquired_at: now,
            expires_at: now.plus(lease),
            token,
            written: None,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Acquired {
    Taken(LockInfo),
    /// Held by someone else; `stale` when the holder is gone (dead process or expired lease)
    /// and nothing it started still runs. `running`: processes on this host that a holder who
    /// is gone started under this lock and that still run (then the lock is not stale).
    Held {
        lock: LockInfo,
        stale: bool,
        running: Vec<u32>,
    },
}

pub trait Locks: Send + Sync {
    fn try_acquire(
        &self,
        pipeline: &PipelineName,
        stage: &StageName,
        release: &ReleaseId,
        holder: &Actor,
        lease: Duration,
    ) -> Result<Acquired>;
    /// Replaces a stale lock with ours; `None` if another process got there first.
    fn take_over(&self, stale: &LockInfo, holder: &Actor, lease: Duration) -> Result<Option<LockInfo>>;
    /// Extends the lease of a lock we hold; fails if it was taken over meanwhile.
    fn renew(&self, lock: &LockInfo, lease: Duration) -> Result<LockInfo>;
    /// Releases a lock we hold (checked by token).
    fn release(&self, lock: &LockInfo) -> Result<()>;
    /// Removes whatever lock is on the stage (an operator's decision; audited by the caller).
    fn force_release(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<LockInfo>>;
    fn inspect(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<(LockInfo, bool)>>;
}

/// Whether a lock's holder still runs: on the host that took it, its process is the truth
/// (a long deploy may outlive its lease); elsewhere the lease is.
pub trait Liveness: Send + Sync {
    /// This machine's name, recorded in locks.
    fn host(&self) -> String;
    /// Whether process `pid` on this host runs; `None` when this backend trusts leases only.
    fn alive(&self, pid: u32) -> Option<bool>;
    /// Processes on this host still running with `FERRY_LOCK_TOKEN=token` in their
    /// environment: commands a promotion started under that lock (and their children).
    fn running_with(&self, _token: &str) -> Vec<u32> {
        Vec::new()
    }
}

/// The variable every command run under a stage lock gets: the lock's token, so a command
/// that outlives its promotion is found and keeps the stage locked.
pub const LOCK_TOKEN_VAR: &str = "FERRY_LOCK_TOKEN";

/// Trusts leases only (runners on other machines cannot see each other's processes).
#[derive(Debug, Clone)]
pub struct LeasesOnly(pub String);

impl Liveness for LeasesOnly {
    fn host(&self) -> String {
        self.0.clone()
    }
    fn alive(&self, _pid: u32) -> Option<bool> {
        None
    }
}
