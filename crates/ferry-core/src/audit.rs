//! The audit chain: each event carries a sequence number, the hash of the previous event and
//! its own hash (sha256 of its canonical JSON without `hash`). `verify_chain` proves a log and
//! names the first event that was edited, removed, inserted or reordered.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::Timestamp;
use crate::digest::canonical_json;
use crate::error::{Error, Result};
use crate::ids::{Actor, PipelineName, ReleaseId, Sha256Digest, StageName};

pub const AUDIT_VERSION: u32 = 1;
/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. Names are stable: they are what auditors grep for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Build,
    Sign,
    Store,
    VerifyOk,
    VerifyFailed,
    GatePassed,
    GateFailed,
    ApprovalPending,
    Approved,
    ApprovalRefused,
    Rejected,
    LockTaken,
    LockTakenOver,
    LockReleased,
    LockBusy,
    DeployStart,
    DeployEnd,
    DeployFailed,
    DeployInterrupted,
    PromotionSucceeded,
    PromotionFailed,
    RollbackStarted,
    NotificationSent,
    NotificationFailed,
}

/// An event before the log gives it a place in the chain.
#[derive(Debug, Clone)]
pub struct Draft {
    pub kind: EventKind,
    pub actor: Actor,
    pub pipeline: Option<PipelineName>,
    pub release: Option<ReleaseId>,
    pub stage: Option<StageName>,
    pub details: Value,
}

impl Draft {
    pub fn new(kind: EventKind, actor: &Actor, pipeline: &PipelineName) -> Self {
        Self { kind, actor: actor.clone(), pipeline: Some(pipeline.clone()), release: None, stage: None, details: Value::Null }
    }
    #[must_use]
    pub fn release(mut self, r: &ReleaseId) -> Self {
        self.release = Some(r.clone());
        self
    }
    #[must_use]
    pub fn stage(mut self, s: &StageName) -> Self {
        self.stage = Some(s.clone());
        self
    }
    #[must_use]
    pub fn details(mut self, d: Value) -> Self {
        self.details = d;
        self
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub version: u32,
    pub seq: u64,
    pub prev_hash: Sha256Digest,
    pub at: Timestamp,
    pub kind: EventKind,
    pub actor: Actor,
    pub pipeline: Option<PipelineName>,
    pub release: Option<ReleaseId>,
    pub stage: Option<StageName>,
    pub details: Value,
    pub hash: Sha256Digest,
}

/// Gives a draft its place after `prev` (None for the first event) and computes its hash.
pub fn seal(draft: Draft, prev: Option<&Event>) -> Result<Event> {
    let (seq, prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, GENESIS.parse().map_err(|_| Error::failed("bad genesis hash"))?),
    };
    let mut event = Event {
        version: AUDIT_VERSION,
        seq,
        prev_hash,
        at: Timestamp::now(),
        kind: draft.kind,
        actor: draft.actor,
        pipeline: draft.pipeline,
        release: draft.release,
        stage: draft.stage,
        details: draft.details,
        hash: Sha256Digest::of(b""),
    };
    let value = serde_json::to_value(&event).map_err(|e| Error::failed(format!("cannot encode audit event: {e}")))?;
    event.hash = content_hash(&value);
    Ok(event)
}

fn content_hash(value: &Value) -> Sha256Digest {
    let mut v = value.clone();
    if let Value::Object(m) = &mut v {
        m.remove("hash");
    }
    Sha256Digest::of(canonical_json(&v).as_bytes())
}

/// Appends `draft` to a log kept as create-only entries numbered from 1, whatever stores them:
/// `last` returns the highest stored position and its bytes, `create` stores an entry only if
/// that position is still free (false when another writer took it; then ferry re-reads and
/// tries the next position). A damaged last event stops the log from being extended.
pub fn append_to(
    draft: Draft,
    location: &str,
    last: impl Fn() -> Result<Option<(u64, Vec<u8>)>>,
    create: impl Fn(u64, Vec<u8>) -> Result<bool>,
) -> Result<Event> {
    for _ in 0..100 {
        let previous = match last()? {
            None => None,
            Some((pos, bytes)) => {
                let event: Event = serde_json::from_slice(&bytes).map_err(|e| {
                    Error::failed(format!("the last audit event (position {pos} in `{location}`) is damaged: {e}"))
                        .hint("run `ferry audit verify`; ferry will not extend a damaged log")
                })?;
                if event.seq != pos {
                    return Err(Error::failed(format!("audit event at position {pos} claims sequence {}", event.seq))
                        .hint("run `ferry audit verify`"));
                }
                Some(event)
            }
        };
        let event = seal(draft.clone(), previous.as_ref())?;
        if create(event.seq, event.to_bytes()?)? {
            return Ok(event);
        }
    }
    Err(Error::failed(format!("could not append to the audit log at `{location}`: too much contention")))
}

impl Event {
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut b = serde_json::to_vec(self).map_err(|e| Error::failed(format!("cannot encode audit event: {e}")))?;
        b.push(b'\n');
        Ok(b)
    }
}

/// The first problem found in a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainProblem {
    /// The sequence number (position) of the first bad event.
    pub seq: u64,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainReport {
    pub events: u64,
    pub head: Option<Sha256Digest>,
    pub first_bad: Option<ChainProblem>,
}

/// Verifies a log given as `(position, stored bytes)` pairs in position order.
pub fn verify_chain(entries: &[(u64, Vec<u8>)]) -> ChainReport {
    let mut prev_hash = GENESIS.to_owned();
    let mut head = None;
    let bad = |seq: u64, problem: String, n: u64| ChainReport { events: n, head: None, first_bad: Some(ChainProblem { seq, problem }) };
    for (i, (pos, bytes)) in entries.iter().enumerate() {
        let expected = i as u64 + 1;
        let n = entries.len() as u64;
        if *pos != expected {
            return bad(expected, format!("event {expected} is missing (the next stored event is {pos}): an event was deleted"), n);
        }
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => return bad(expected, format!("event {expected} is not valid JSON ({e}): it was edited"), n),
        };
        let event: Event = match serde_json::from_value(value.clone()) {
            Ok(e) => e,
            Err(e) => return bad(expected, format!("event {expected} is malformed ({e}): it was edited"), n),
        };
        if event.version != AUDIT_VERSION {
            return bad(expected, format!("event {expected} has unsupported version {}", event.version), n);
        }
        if content_hash(&value) != event.hash {
            return bad(expected, format!("event {expected} does not match its own hash: its content was edited"), n);
        }
        if event.seq != expected {
            return bad(expected, format!("position {expected} holds event {}: events were reordered or inserted", event.seq), n);
        }
        if event.prev_hash.as_str() != prev_hash {
            return bad(
                expected,
                format!("event {expected} does not follow event {}: an event was inserted, removed or reordered before it", expected - 1),
                n,
            );
        }
        prev_hash = event.hash.to_string();
        head = Some(event.hash);
    }
    ChainReport { events: entries.len() as u64, head, first_bad: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: usize) -> Vec<(u64, Vec<u8>)> {
        let actor: Actor = "alice".parse().unwrap();
        let p: PipelineName = "p".parse().unwrap();
        let mut out = Vec::new();
        let mut prev: Option<Event> = None;
        for i in 0..n {
            let e = seal(Draft::new(EventKind::Build, &actor, &p).details(serde_json::json!({"i": i})), prev.as_ref()).unwrap();
            out.push((e.seq, e.to_bytes().unwrap()));
            prev = Some(e);
        }
        out
    }

    #[test]
    fn an_untouched_log_verifies() {
        let r = verify_chain(&log(5));
        assert_eq!(r.first_bad, None);
        assert_eq!(r.events, 5);
    }

    #[test]
    fn an_edit_is_pinpointed() {
        let mut l = log(5);
        l[2].1 = String::from_utf8(l[2].1.clone()).unwrap().replace("\"i\":2", "\"i\":9").into_bytes();
        assert_eq!(verify_chain(&l).first_bad.unwrap().seq, 3);
    }

    #[test]
    fn a_deletion_is_pinpointed() {
        let mut l = log(5);
        l.remove(1);
        assert_eq!(verify_chain(&l).first_bad.unwrap().seq, 2);
        // Renumbered after the deletion: the chain breaks at the same place.
        let mut l = log(5);
        l.remove(1);
        for (i, e) in l.iter_mut().enumerate() {
            e.0 = i as u64 + 1;
        }
        assert_eq!(verify_chain(&l).first_bad.unwrap().seq, 2);
    }

    #[test]
    fn a_reordering_is_pinpointed() {
        let mut l = log(5);
        let (a, b) = (l[1].1.clone(), l[3].1.clone());
        l[1].1 = b;
        l[3].1 = a;
        assert_eq!(verify_chain(&l).first_bad.unwrap().seq, 2);
    }
}

/// DSSE payload type of a signed audit checkpoint.
pub const CHECKPOINT_TYPE: &str = "application/vnd.ferry.audit-checkpoint+json";

/// A signed statement that the log had `seq` events ending in `head`: a later log that is
/// shorter, or whose event `seq` has another hash, was truncated or rewritten.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    pub seq: u64,
    pub head: Sha256Digest,
    pub at: Timestamp,
}

/// Signs a checkpoint of the log whose last event is `last`.
pub fn checkpoint(last: &Event, signer: &dyn crate::attestation::Signer) -> Result<crate::attestation::Envelope> {
    let c = Checkpoint { version: AUDIT_VERSION, seq: last.seq, head: last.hash.clone(), at: Timestamp::now() };
    let v = serde_json::to_value(&c).map_err(|e| Error::failed(format!("cannot encode checkpoint: {e}")))?;
    crate::attestation::sign_payload(CHECKPOINT_TYPE, &v, signer)
}

/// Checks signed checkpoints against the log: each must verify with `key` and name an event
/// that is still there with the same hash. Returns the first problem, if any.
pub fn verify_checkpoints(
    entries: &[(u64, Vec<u8>)],
    checkpoints: &[(u64, Vec<u8>)],
    key: &crate::keys::PublicKey,
) -> Option<ChainProblem> {
    let hash_at = |seq: u64| -> Option<String> {
        let (_, bytes) = entries.iter().find(|(p, _)| *p == seq)?;
        serde_json::from_slice::<Value>(bytes).ok()?.get("hash")?.as_str().map(str::to_owned)
    };
    for (seq, bytes) in checkpoints {
        let verified = crate::attestation::Envelope::from_bytes(bytes)
            .and_then(|env| env.verify_payload(key, CHECKPOINT_TYPE))
            .and_then(|v| serde_json::from_value::<Checkpoint>(v).map_err(|e| Error::verification(format!("malformed checkpoint: {e}"))));
        let c = match verified {
            Ok(c) if c.seq == *seq => c,
            Ok(c) => return Some(ChainProblem { seq: *seq, problem: format!("the checkpoint stored at {seq} is for event {}", c.seq) }),
            Err(e) => {
                return Some(ChainProblem { seq: *seq, problem: format!("checkpoint at event {seq} does not verify: {}", e.message) });
            }
        };
        match hash_at(c.seq) {
            None => {
                return Some(ChainProblem {
                    seq: c.seq,
                    problem: format!(
                        "a signed checkpoint says the log had {} events; event {} is gone: the log was truncated",
                        c.seq, c.seq
                    ),
                });
            }
            Some(h) if h != c.head.as_str() => {
                return Some(ChainProblem {
                    seq: c.seq,
                    problem: format!("event {} differs from the signed checkpoint: the log was rewritten", c.seq),
                });
            }
            Some(_) => {}
        }
    }
    None
}
