//! ferry's records, written once over the object port (`ports::ObjectStore`): the release
//! store (`releases`), promotion state and approvals (`state`), stage locks (`locks`) and the
//! audit log (`audit`). A backend supplies objects; everything about keys, formats,
//! preconditions, lost answers and retries lives here.
//!
//! Lost answers: a write may succeed while its answer is lost, and the retry then finds the
//! object already there (or changed). Every write here is idempotent by content: after a
//! `Conflict` the record is read back, and if it holds exactly the bytes this process meant to
//! write — which always include a fresh timestamp or token — the write was ours.

pub mod audit;
mod crash;
pub mod locks;
pub mod releases;
pub mod state;
pub mod trust;

use std::sync::Arc;
use std::time::Duration;

use crate::error::{ErrorKind, Result};
use crate::ports::{AuditLog, Clock, Liveness, Locks, Object, ObjectStore, ReleaseStore, StateStore, Version, Write};

/// The record ports of one backend.
pub struct Records {
    pub store: Box<dyn ReleaseStore>,
    pub state: Box<dyn StateStore>,
    pub locks: Box<dyn Locks>,
    pub audit: Box<dyn AuditLog>,
    pub trust: Box<dyn crate::ports::TrustStore>,
}

/// Where a backend keeps its records.
pub struct Backing {
    /// Artifacts, releases, state, approvals, locks (on AWS the artifacts account's bucket).
    pub objects: Arc<dyn ObjectStore>,
    /// The audit log and its checkpoints (on AWS the security account's bucket).
    pub audit: Arc<dyn ObjectStore>,
    /// The published trust roots (on AWS a prefix of the security account's bucket only its
    /// trust-admin role may write).
    pub trust: Arc<dyn ObjectStore>,
    pub liveness: Arc<dyn Liveness>,
    /// Lease expiry, event times and the waits between retries.
    pub clock: Arc<dyn Clock>,
    /// Events per sealed segment, for a log created now (`audit::DEFAULT_SEGMENT_SIZE`).
    pub segment_size: u64,
    /// Called after every durable write (crash tests abort the process there).
    pub after_write: Option<AfterWrite>,
    /// Where the artifact copies a promotion verified are kept (linked, not copied) for this
    /// process's next promotion of the same release: the work directory, or `None`.
    pub keep_copies: Option<std::path::PathBuf>,
}

/// A hook run after each durable write of either store.
pub type AfterWrite = Arc<dyn Fn() + Send + Sync>;

/// The records over a backend's objects.
pub fn open(backing: Backing) -> Records {
    let Backing { objects, audit, trust, liveness, clock, segment_size, after_write, keep_copies } = backing;
    let (objects, audit) = match after_write {
        None => (objects, audit),
        Some(hook) => (
            Arc::new(crash::Watched { inner: objects, hook: hook.clone() }) as Arc<dyn ObjectStore>,
            Arc::new(crash::Watched { inner: audit, hook }) as Arc<dyn ObjectStore>,
        ),
    };
    Records {
        store: Box::new(releases::Releases::new(objects.clone(), clock.clone(), keep_copies)),
        state: Box::new(state::State::new(objects.clone(), clock.clone())),
        locks: Box::new(locks::StageLocks::new(objects, liveness, clock.clone())),
        audit: Box::new(audit::Audit::new(audit, segment_size, clock.clone())),
        trust: Box::new(trust::Trust::new(trust, clock)),
    }
}

/// What a create-only write found.
#[derive(Debug)]
pub(crate) enum Created {
    /// Ours: written now, or by an earlier attempt whose answer was lost.
    Ours(Version),
    /// Someone else's object was there.
    Theirs(Object),
}

/// Creates `key` with `bytes`, recognising an earlier attempt of ours after a lost answer.
pub(crate) fn create(objects: &dyn ObjectStore, key: &str, bytes: &[u8]) -> Result<Created> {
    for _ in 0..3 {
        match objects.create(key, bytes)? {
            Write::Done(v) => return Ok(Created::Ours(v)),
            Write::Conflict => match objects.get(key)? {
                Some(o) if o.bytes == bytes => return Ok(Created::Ours(o.version)),
                Some(o) => return Ok(Created::Theirs(o)),
                // Deleted in between (a lock released): try again.
                None => continue,
            },
        }
    }
    Err(crate::Error::failed(format!("`{}` keeps appearing and disappearing", objects.location(key))))
}

/// Replaces `key` if still at `expected`; `Done` also when a lost answer hid our own write.
pub(crate) fn replace(objects: &dyn ObjectStore, key: &str, bytes: &[u8], expected: &Version) -> Result<Write> {
    match objects.replace(key, bytes, expected)? {
        Write::Done(v) => Ok(Write::Done(v)),
        Write::Conflict => Ok(match objects.get(key)? {
            Some(o) if o.bytes == bytes => Write::Done(o.version),
            _ => Write::Conflict,
        }),
    }
}

/// Runs a read again when it failed for a reason other than bad data (a dropped connection
/// mid-stream, a throttled request the SDK's own retries did not outlast).
pub(crate) fn with_retries<T>(clock: &dyn Clock, mut read: impl FnMut() -> Result<T>) -> Result<T> {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    let mut attempt = 0;
    loop {
        match read() {
            Err(e) if e.kind == ErrorKind::Failed && attempt < 3 => {
                attempt += 1;
                tracing::warn!("{} (attempt {attempt}; retrying)", e.message);
                backoff.wait(clock);
            }
            other => return other,
        }
    }
}

/// Exponential backoff with full jitter (AWS's recommendation for contended writers).
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    cap: Duration,
}

impl Backoff {
    pub(crate) fn new(first: Duration, cap: Duration) -> Self {
        Self { next: first, cap }
    }

    pub(crate) fn wait(&mut self, clock: &dyn Clock) {
        let mut raw = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let fraction = f64::from(u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]])) / f64::from(u32::MAX);
        clock.sleep(self.next.mul_f64(fraction));
        self.next = (self.next * 2).min(self.cap);
    }
}

/// A random hex token (lock ownership, unique record names).
pub fn token() -> String {
    let mut raw = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
    hex::encode(raw)
}

/// Parses a stored document, rejecting unknown versions.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], location: &str, expected: u32) -> Result<T> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| crate::Error::invalid(format!("`{location}` is not valid JSON: {e}")))?;
    let version = v.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(expected)) {
        return Err(crate::Error::invalid(format!(
            "`{location}` has unsupported version `{}`",
            version.map_or("none".into(), |v| v.to_string())
        ))
        .hint(format!("this ferry reads version {expected}")));
    }
    serde_json::from_value(v).map_err(|e| crate::Error::invalid(format!("`{location}` is malformed: {e}")))
}

/// A record as stored: JSON with every secret the process knows redacted (a stage record holds
/// command output and error messages).
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut value = serde_json::to_value(value).map_err(|e| crate::Error::failed(format!("cannot encode: {e}")))?;
    crate::hooks::redact_json(&mut value);
    let mut bytes = serde_json::to_vec_pretty(&value).map_err(|e| crate::Error::failed(format!("cannot encode: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}
