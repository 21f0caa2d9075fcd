//! Holding the stage lock while a promotion works: a heartbeat on a thread of its own renews
//! the lease every third of it during every action, gate, soak and wait. When the lock cannot
//! be kept — taken over, removed, or not renewable before the lease runs out — the heartbeat
//! raises the promotion's stop (commands are stopped, waits end) and says why; from then on
//! the promotion writes no state (the stage is someone else's) and fails, audited.

use std::sync::Mutex;
use std::time::Duration;

use crate::clock::{Clock, Stop};
use crate::error::{Error, ErrorKind, Result};
use crate::ports::{LockInfo, Locks};

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
