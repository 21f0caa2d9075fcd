//! The stage lock of a promotion: taking it (waiting for a busy one if asked, taking over a
//! stale one, refusing beside a gone holder's commands that still run), and holding it while
//! the promotion works: a heartbeat on a thread of its own renews
//! the lease every third of it during every action, gate, soak and wait. When the lock cannot
//! be kept — taken over, removed, or not renewable before the lease runs out — the heartbeat
//! raises the promotion's stop (commands are stopped, waits end) and says why; from then on
//! the promotion writes no state (the stage is someone else's) and fails, audited.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::json;

use super::Promotion;
use crate::audit::EventKind;
use crate::clock::{Clock, Stop, human};
use crate::error::{Error, ErrorKind, Result};
use crate::ports::{Acquired, LockInfo, Locks};

/// The shortest lease ferry accepts: renewed at a third of it, a shorter one leaves too little
/// room for a slow store.
pub const MIN_LEASE: Duration = Duration::from_secs(30);

/// Refuses a lease the heartbeat could not keep.
pub fn check_lease(lease: Duration) -> Result<()> {
    if lease < MIN_LEASE {
        return Err(Error::invalid(format!(
            "a lease of {} is too short: the stage lock is renewed every third of its lease and must be at least {}",
            humantime::format_duration(lease),
            humantime::format_duration(MIN_LEASE)
        ))
        .hint("use `--lease 5m` (the default) or longer; a promotion's lock is kept for as long as it runs"));
    }
    Ok(())
}

/// Why the lock was lost, once it was.
#[derive(Debug, Default)]
pub(super) struct Lost(Mutex<Option<String>>);

impl Lost {
    pub(super) fn get(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
    fn set(&self, why: String) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert(why);
    }
}

/// What the heartbeat needs: the lock port, the clock and the promotion's stop.
pub(super) struct Heartbeat<'a> {
    pub locks: &'a dyn Locks,
    pub clock: &'a dyn Clock,
    pub lease: Duration,
    /// Raised when the lock is lost.
    pub stop: &'a Stop,
    pub lost: &'a Lost,
}

impl Heartbeat<'_> {
    /// Runs `work` while renewing `lock`; the lock as last renewed comes back with its result.
    pub(super) fn hold<T>(&self, lock: &LockInfo, work: impl FnOnce() -> T) -> (T, LockInfo) {
        let done = Stop::default();
        std::thread::scope(|s| {
            let beat = s.spawn(|| self.beat(lock.clone(), &done));
            let out = work();
            done.raise();
            let last = beat.join().unwrap_or_else(|_| lock.clone());
            (out, last)
        })
    }

    fn beat(&self, mut lock: LockInfo, done: &Stop) -> LockInfo {
        let every = self.lease / 3;
        let mut wait = every;
        loop {
            if self.clock.wait_in_background(wait, done) {
                return lock;
            }
            match self.locks.renew(&lock, self.lease) {
                Ok(renewed) => {
                    lock = renewed;
                    wait = every;
                }
                Err(e) if e.kind == ErrorKind::Busy || self.clock.now() >= lock.expires_at => {
                    let why = format!("the promotion lost the lock of stage `{}`: {}", lock.stage, e.message);
                    tracing::error!("{why}");
                    self.lost.set(why.clone());
                    self.stop.raise_because(&why);
                    return lock;
                }
                Err(e) => {
                    // The store did not answer: try again soon, while the lease still holds.
                    tracing::warn!("could not renew the lock of stage `{}` (retrying): {}", lock.stage, e.message);
                    wait = (every / 6).max(Duration::from_secs(1));
                }
            }
        }
    }
}

impl Promotion<'_> {
    /// A promotion that crashed after it finished (before it released its lock) leaves a stale
    /// lock: the next run, finding nothing to do, takes it over and releases it, audited.
    pub(super) fn clear_stale_lock(&self) -> Result<()> {
        let Some((lock, true)) = self.svc.locks.inspect(&self.pipeline.name, &self.stage.name)? else { return Ok(()) };
        if let Some(ours) = self.svc.locks.take_over(&lock, &self.req.actor, self.req.lease)? {
            let age = human(lock.acquired_at.age(self.now()));
            self.audit(EventKind::LockTakenOver, json!({"previous": lock, "age": age}))?;
            self.audit(EventKind::LockReleased, json!({"holder": ours.holder}))?;
            let committed = self.commit();
            self.svc.locks.release(&ours)?;
            committed?;
        }
        Ok(())
    }

    /// Takes the stage lock; also returns the stale lock it replaced, if any.
    pub(super) fn lock(&self) -> Result<(LockInfo, Option<LockInfo>)> {
        let clock = self.svc.clock.as_ref();
        let deadline = self.req.wait.map(|w| clock.monotonic() + w);
        loop {
            let attempt =
                self.svc.locks.try_acquire(&self.pipeline.name, &self.stage.name, &self.req.release, &self.req.actor, self.req.lease)?;
            match attempt {
                Acquired::Taken(lock) => {
                    let d = json!({"holder": lock.holder, "pid": lock.pid, "host": lock.host, "expires_at": lock.expires_at});
                    // On record with the promotion's next commit, before it deploys (if that
                    // fails, the promotion fails and releases the lock).
                    self.audit(EventKind::LockTaken, d)?;
                    return Ok((lock, None));
                }
                Acquired::Held { lock, stale: true, .. } => {
                    if let Some(ours) = self.svc.locks.take_over(&lock, &self.req.actor, self.req.lease)? {
                        let age = human(lock.acquired_at.age(self.now()));
                        self.audit(EventKind::LockTakenOver, json!({"previous": lock, "age": age}))?;
                        tracing::warn!(holder = %lock.holder, pid = lock.pid, host = %lock.host, %age, "took over the stale lock of stage `{}`", self.stage.name);
                        return Ok((ours, Some(lock)));
                    }
                }
                Acquired::Held { lock, stale: false, running } => {
                    if deadline.is_some_and(|d| clock.monotonic() < d) {
                        clock.sleep(Duration::from_millis(250));
                        continue;
                    }
                    let age = human(lock.acquired_at.age(self.now()));
                    self.audit(
                        EventKind::LockBusy,
                        json!({"holder": lock.holder, "release": lock.release, "pid": lock.pid, "host": lock.host, "age": age, "running": running}),
                    )?;
                    if !running.is_empty() {
                        let pids: Vec<String> = running.iter().map(u32::to_string).collect();
                        return Err(Error::busy(format!(
                            "stage `{}` is busy: the promotion of release `{}` by `{}` (pid {} on `{}`) is gone, but what it started still runs (pid {})",
                            self.stage.name,
                            lock.release,
                            lock.holder,
                            lock.pid,
                            lock.host,
                            pids.join(", ")
                        ))
                        .hint(format!("see what it is doing with `ps -o pid,args -p {}`; ferry will not deploy beside it", pids.join(",")))
                        .hint(format!("wait for it with `--wait 10m`, or stop it: `kill {}`", pids.join(" "))));
                    }
                    return Err(Error::busy(format!(
                        "stage `{}` is busy: release `{}` is being promoted by `{}` (pid {} on `{}`) since {} ({age} ago)",
                        self.stage.name, lock.release, lock.holder, lock.pid, lock.host, lock.acquired_at
                    ))
                    .hint("retry later, or wait for it with `--wait 10m`")
                    .hint(format!(
                        "if that promotion is gone for good: `ferry unlock {} --stage {}`",
                        self.pipeline.file.display(),
                        self.stage.name
                    )));
                }
            }
        }
    }
}
