//! Local stage locks: `pipelines/NAME/locks/STAGE.lock`, created only if absent. A lock is
//! stale when its holder process on this host is gone, or a holder elsewhere let its lease expire; a take-over is
//! won by exactly one process (it must create a marker named after the stale lock's token).

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::clock::Timestamp;
use ferry_core::ids::{Actor, PipelineName, ReleaseId, StageName};
use ferry_core::ports::{Acquired, LockInfo, Locks};
use ferry_core::{Error, Result};

use crate::fsutil::{self, Created};

pub struct LocalLocks {
    root: PathBuf,
}

/// This machine's host name, as recorded in locks.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether process `pid` is running (not gone, not a zombie). Without `/proc`, assume it is.
fn process_alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    if !proc_dir.join("self").exists() {
        return true;
    }
    match std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat")) {
        // The state follows the parenthesised command name: `123 (ferry) S ...`.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

impl LocalLocks {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, pipeline: &PipelineName, stage: &StageName) -> PathBuf {
        self.root.join(pipeline.as_str()).join("locks").join(format!("{stage}.lock"))
    }

    fn read(&self, path: &Path) -> Result<Option<LockInfo>> {
        match fsutil::read_opt(path)? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                Error::failed(format!("lock file `{}` is malformed: {e}", path.display()))
                    .hint("remove it with `ferry unlock PIPELINE --stage STAGE` once no promotion is running")
            }),
        }
    }

    /// On this host the holder's process is the truth (a long deploy may outlive its lease);
    /// a holder on another host is trusted until its lease expires.
    fn is_stale(lock: &LockInfo) -> bool {
        if lock.host == host_name() { !process_alive(lock.pid) } else { lock.expires_at < Timestamp::now() }
    }

    fn new_lock(pipeline: &PipelineName, stage: &StageName, release: &ReleaseId, holder: &Actor, lease: Duration) -> LockInfo {
        LockInfo::new(pipeline, stage, release, holder, lease, &host_name(), fsutil::random_token())
    }

    fn create(&self, lock: &LockInfo) -> Result<Created> {
        let bytes = serde_json::to_vec_pretty(lock).map_err(|e| Error::failed(format!("cannot encode lock: {e}")))?;
        fsutil::write_new(&self.path(&lock.pipeline, &lock.stage), &bytes)
    }
}

impl Locks for LocalLocks {
    fn try_acquire(
        &self,
        pipeline: &PipelineName,
        stage: &StageName,
        release: &ReleaseId,
        holder: &Actor,
        lease: Duration,
    ) -> Result<Acquired> {
        let lock = Self::new_lock(pipeline, stage, release, holder, lease);
        for _ in 0..5 {
            if self.create(&lock)? == Created::Yes {
                return Ok(Acquired::Taken(lock));
            }
            // Held: report who holds it (it may vanish between the two calls; then retry).
            if let Some(held) = self.read(&self.path(pipeline, stage))? {
                let stale = Self::is_stale(&held);
                return Ok(Acquired::Held { lock: held, stale });
            }
        }
        Err(Error::failed(format!("could not acquire the lock of stage `{stage}`: it keeps changing hands")))
    }

    fn take_over(&self, stale: &LockInfo, holder: &Actor, lease: Duration) -> Result<Option<LockInfo>> {
        let path = self.path(&stale.pipeline, &stale.stage);
        let marker = path.with_file_name(format!(".{}.takeover-{}", stale.stage, stale.token));
        if fsutil::write_new(&marker, b"")? == Created::AlreadyExists {
            return Ok(None);
        }
        let result = (|| {
            match self.read(&path)? {
                Some(current) if current.token == stale.token && Self::is_stale(&current) => {}
                _ => return Ok(None),
            }
            std::fs::remove_file(&path).map_err(|e| Error::io("remove stale lock", &path, &e))?;
            let ours = Self::new_lock(&stale.pipeline, &stale.stage, &stale.release, holder, lease);
            Ok((self.create(&ours)? == Created::Yes).then_some(ours))
        })();
        let _ = std::fs::remove_file(&marker);
        result
    }

    /// On one host the holder's liveness decides, not the lease, so renewing only checks that
    /// the lock is still ours.
    fn renew(&self, lock: &LockInfo, _lease: Duration) -> Result<LockInfo> {
        match self.read(&self.path(&lock.pipeline, &lock.stage))? {
            Some(current) if current.token == lock.token => Ok(current),
            Some(current) => {
                Err(Error::failed(format!("the lock of stage `{}` is now held by `{}`; ours was taken over", lock.stage, current.holder)))
            }
            None => Err(Error::failed(format!("the lock of stage `{}` was removed while we held it", lock.stage))),
        }
    }

    fn release(&self, lock: &LockInfo) -> Result<()> {
        let path = self.path(&lock.pipeline, &lock.stage);
        match self.read(&path)? {
            Some(current) if current.token == lock.token => std::fs::remove_file(&path).map_err(|e| Error::io("remove lock", &path, &e)),
            Some(current) => {
                Err(Error::failed(format!("the lock of stage `{}` is now held by `{}`; ours was taken over", lock.stage, current.holder)))
            }
            None => Err(Error::failed(format!("the lock of stage `{}` was removed while we held it", lock.stage))),
        }
    }

    fn force_release(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<LockInfo>> {
        let path = self.path(pipeline, stage);
        let current = self.read(&path)?;
        if current.is_some() {
            std::fs::remove_file(&path).map_err(|e| Error::io("remove lock", &path, &e))?;
        }
        Ok(current)
    }

    fn inspect(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<(LockInfo, bool)>> {
        Ok(self.read(&self.path(pipeline, stage))?.map(|l| {
            let stale = Self::is_stale(&l);
            (l, stale)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (PipelineName, StageName, ReleaseId, Actor) {
        let r = ReleaseId::for_manifest(&ferry_core::ids::Sha256Digest::of(b"m"));
        ("p".parse().unwrap(), "prod".parse().unwrap(), r, "a".parse().unwrap())
    }

    #[test]
    fn a_held_lock_is_reported_with_its_holder_and_is_not_stale_while_we_live() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LocalLocks::new(dir.path().to_owned());
        let (p, s, r, a) = ids();
        let Acquired::Taken(ours) = locks.try_acquire(&p, &s, &r, &a, Duration::from_secs(60)).unwrap() else { panic!("not taken") };
        let b: Actor = "b".parse().unwrap();
        match locks.try_acquire(&p, &s, &r, &b, Duration::from_secs(60)).unwrap() {
            Acquired::Held { lock, stale } => {
                assert_eq!(lock.holder, a);
                assert!(!stale);
            }
            Acquired::Taken(_) => panic!("a second holder got the lock"),
        }
        assert!(locks.take_over(&ours, &b, Duration::from_secs(60)).unwrap().is_none(), "a live lock cannot be taken over");
        locks.release(&ours).unwrap();
        assert!(matches!(locks.try_acquire(&p, &s, &r, &b, Duration::from_secs(60)).unwrap(), Acquired::Taken(_)));
    }

    #[test]
    fn a_lock_of_a_dead_process_is_stale_and_only_one_process_takes_it_over() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LocalLocks::new(dir.path().to_owned());
        let (p, s, r, a) = ids();
        let mut dead = LocalLocks::new_lock(&p, &s, &r, &a, Duration::from_secs(3600));
        dead.pid = u32::MAX - 1; // no such process
        assert_eq!(locks.create(&dead).unwrap(), Created::Yes);
        let Some((_, stale)) = locks.inspect(&p, &s).unwrap() else { panic!("no lock") };
        assert!(stale);
        let winners: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (locks, dead) = (&locks, &dead);
                    scope
                        .spawn(move || locks.take_over(dead, &format!("t{i}").parse().unwrap(), Duration::from_secs(60)).unwrap().is_some())
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(winners.iter().filter(|w| **w).count(), 1, "{winners:?}");
    }
}
