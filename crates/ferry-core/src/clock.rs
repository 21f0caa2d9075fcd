//! Time. UTC timestamps serialised as RFC 3339 (what SLSA, the audit log and approvals
//! store); the clock port (`Clock`: what time it is, how much has passed, waiting), through
//! which every part of ferry-core that reads or spends time goes (promotions, leases and their
//! heartbeat, windows, soaks, approval expiry, retries); and its two adapters, `SystemClock` —
//! the only code in ferry-core that reads the system's time or sleeps — and `FakeClock` for
//! tests. (`ports` re-exports the port with the others.)

use std::fmt;
use std::time::Duration;

use std::sync::{Arc, Condvar, Mutex};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// Truncated to milliseconds so a stored timestamp reads back equal.
    fn from_system(now: OffsetDateTime) -> Self {
        Self(now.replace_nanosecond(now.millisecond() as u32 * 1_000_000).unwrap_or(now))
    }
    pub fn parse(s: &str) -> Option<Self> {
        OffsetDateTime::parse(s, &Rfc3339).ok().map(|t| Self(t.to_offset(time::UtcOffset::UTC)))
    }
    pub fn from_unix(seconds: i64) -> Self {
        Self(OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH))
    }

    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self(self.0 + d)
    }
    /// How long ago `self` was, as seen at `now` (zero if in the future).
    pub fn age(self, now: Timestamp) -> Duration {
        Duration::try_from(now.0 - self.0).unwrap_or_default()
    }
    pub fn unix_seconds(self) -> i64 {
        self.0.unix_timestamp()
    }
    pub fn unix_millis(self) -> i128 {
        self.0.unix_timestamp_nanos() / 1_000_000
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.format(&Rfc3339) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp `{s}`")))
    }
}

/// Formats a duration for people: `3m 12s`, never sub-second noise.
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

pub trait Clock: Send + Sync {
    /// The wall-clock time, in milliseconds (what records store).
    fn now(&self) -> Timestamp;
    /// Time since a fixed origin that never goes back: for durations and deadlines.
    fn monotonic(&self) -> Duration;
    /// Waits `d`.
    fn sleep(&self, d: Duration);
    /// Waits `d` or until `stop` is raised, whichever comes first; `true` when stopped.
    fn wait(&self, d: Duration, stop: &Stop) -> bool;
    /// `wait` for a background thread (a lease heartbeat): the same on a real clock; on a
    /// fake one it follows the time the foreground lets pass instead of moving it.
    fn wait_in_background(&self, d: Duration, stop: &Stop) -> bool {
        self.wait(d, stop)
    }
}

/// A flag another thread raises to end waits early: a heartbeat told to stop, a promotion
/// that lost its stage lock, a process asked to stop (SIGINT/SIGTERM). A stop made `under`
/// another is raised when that one is.
#[derive(Debug, Default)]
pub struct Stop {
    raised: Mutex<Option<String>>,
    changed: Condvar,
    parent: Option<Arc<Stop>>,
}

impl Stop {
    /// A stop that is also raised whenever `parent` is.
    pub fn under(parent: Arc<Stop>) -> Self {
        Self { parent: Some(parent), ..Self::default() }
    }

    /// Raises the flag, saying why (the first reason is kept).
    pub fn raise_because(&self, why: &str) {
        self.raised.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get_or_insert_with(|| why.to_owned());
        self.changed.notify_all();
    }

    pub fn raise(&self) {
        self.raise_because("stopped");
    }

    pub fn is_raised(&self) -> bool {
        self.reason().is_some()
    }

    /// Why it was raised (its own reason first, then its parent's), if it was.
    pub fn reason(&self) -> Option<String> {
        let own = self.raised.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        own.or_else(|| self.parent.as_ref().and_then(|p| p.reason()))
    }

    /// Blocks the calling thread up to `d` of real time for the flag (clock adapters only).
    /// A parent's flag is looked at every 50 ms.
    pub(crate) fn block_for(&self, d: Duration) -> bool {
        let slice = if self.parent.is_some() { Duration::from_millis(50) } else { d };
        let until = std::time::Instant::now() + d;
        loop {
            if self.is_raised() {
                return true;
            }
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            let guard = self.raised.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = self
                .changed
                .wait_timeout_while(guard, left.min(slice), |raised| raised.is_none())
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

fn origin() -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system(OffsetDateTime::now_utc())
    }
    fn monotonic(&self) -> Duration {
        origin().elapsed()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
    fn wait(&self, d: Duration, stop: &Stop) -> bool {
        stop.block_for(d)
    }
}

/// The system's clock running `rate` times as fast and `ahead` of it, for tests of time
/// that passes (`FERRY_TIME_SCALE`: leases that must be at least 30 s long;
/// `FERRY_TIME_OFFSET`: an approval that expired, a lease that lapsed — told, not slept for).
/// Every process given the same rate agrees on the time, which runs faster from a fixed origin
/// (2026-01-01T00:00:00Z).
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    rate: u32,
    ahead: Duration,
}

impl ScaledClock {
    const ORIGIN: i64 = 1_767_225_600;

    pub fn new(rate: u32, ahead: Duration) -> Self {
        Self { rate: rate.max(1), ahead }
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> Timestamp {
        let real = SystemClock.now();
        let origin = Timestamp::from_unix(Self::ORIGIN);
        let since = Duration::try_from(real.0 - origin.0).unwrap_or_default();
        origin.plus(since * self.rate + self.ahead)
    }
    fn monotonic(&self) -> Duration {
        origin().elapsed() * self.rate
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d / self.rate);
    }
    fn wait(&self, d: Duration, stop: &Stop) -> bool {
        stop.block_for(d / self.rate)
    }
}

/// A clock for tests: time moves only when told (`advance`) or when the foreground sleeps or
/// waits (its time passes at once, unless the stop is already raised). A background wait
/// blocks until the stop is raised or the foreground has moved the clock far enough, so a
/// lease heartbeat runs exactly as often as the time the test lets pass allows.
#[derive(Debug)]
pub struct FakeClock {
    elapsed: Mutex<Duration>,
    start: Timestamp,
    moved: Condvar,
    sleeps: Mutex<Vec<Duration>>,
}

impl FakeClock {
    /// A clock reading `start`.
    pub fn at(start: Timestamp) -> Self {
        Self { elapsed: Mutex::new(Duration::ZERO), start, moved: Condvar::new(), sleeps: Mutex::new(Vec::new()) }
    }

    pub fn advance(&self, d: Duration) {
        *self.elapsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += d;
        self.moved.notify_all();
    }

    /// Every `sleep` so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn elapsed(&self) -> Duration {
        *self.elapsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Timestamp {
        self.start.plus(self.elapsed())
    }
    fn monotonic(&self) -> Duration {
        self.elapsed()
    }
    fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(d);
        self.advance(d);
    }
    fn wait(&self, d: Duration, stop: &Stop) -> bool {
        if stop.is_raised() {
            return true;
        }
        self.sleep(d);
        false
    }
    fn wait_in_background(&self, d: Duration, stop: &Stop) -> bool {
        let until = self.elapsed() + d;
        let mut elapsed = self.elapsed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        loop {
            if stop.is_raised() {
                return true;
            }
            if *elapsed >= until {
                return false;
            }
            // Re-checks the stop now and then: it is raised without touching this clock.
            elapsed = self.moved.wait_timeout(elapsed, Duration::from_millis(5)).unwrap_or_else(std::sync::PoisonError::into_inner).0;
        }
    }
}
