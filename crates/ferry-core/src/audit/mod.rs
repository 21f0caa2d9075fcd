//! The audit chain's records: event kinds, drafts, sealed events and how they are stored.
//! Each event carries a sequence number, the hash of the previous event and its own hash.
//!
//! Stored form (version 2), one line per event:
//! `{"body":BODY,"hash":"HEX","nonce":"N"}` where BODY is the event without its hash as canonical JSON
//! (sorted keys, no whitespace, strings escaped as JSON requires) and HEX is the sha256 of
//! exactly those BODY bytes. An auditor needs nothing of ferry to check a line: hash the bytes
//! between `{"body":` and `,"hash":"`, or re-canonicalise the parsed body. ferry hashes the
//! stored bytes without re-encoding anything, so a million events verify in about a second.
//! The nonce, random per write and outside the hash, only tells two writers' lines apart.
//! `chain` proves a log; `checkpoint` signs and checks its length and head.

pub(crate) mod chain;
mod checkpoint;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use chain::{AuditReport, ChainProblem, ChainReport, CheckpointCount, Linker, Run, link_runs, verify_chain, verify_run};
pub use checkpoint::{CHECKPOINT_TYPE, Checkpoint, check_checkpoint, checkpoint};

use crate::clock::Timestamp;
use crate::digest::json_canonical;
use crate::error::{Error, Result};
use crate::ids::{Actor, PipelineName, ReleaseId, Sha256Digest, StageName};

pub const AUDIT_VERSION: u32 = 2;
/// The `prev_hash` of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened. Names are stable: they are what auditors grep for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Build,
    /// A build that signed but could not store its release: the release does not exist.
    BuildFailed,
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
    /// The stage lock could not be renewed (taken over, removed, or the store unreachable
    /// until the lease ran out): the promotion stopped.
    LeaseLost,
    DeployStart,
    DeployEnd,
    DeployFailed,
    DeployInterrupted,
    PromotionSucceeded,
    PromotionFailed,
    /// A run found the state behind the log (a crash between the two) and caught it up.
    Reconciled,
    RollbackStarted,
    NotificationSent,
    NotificationFailed,
    /// The gatekeeper's decision on a request for a protected stage's credentials (in its own
    /// log, which only its role writes).
    GatekeeperDecision,
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
    /// When it happened, if it is written later (a promotion writes what it decided in one
    /// append before its next step); the time of the append otherwise.
    pub at: Option<Timestamp>,
}

impl Draft {
    pub fn new(kind: EventKind, actor: &Actor, pipeline: &PipelineName) -> Self {
        Self { kind, actor: actor.clone(), pipeline: Some(pipeline.clone()), release: None, stage: None, details: Value::Null, at: None }
    }
    #[must_use]
    pub fn at(mut self, at: Timestamp) -> Self {
        self.at = Some(at);
        self
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

/// A stored line, its body kept as the exact bytes that were hashed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line<'a> {
    #[serde(borrow)]
    pub(crate) body: &'a serde_json::value::RawValue,
    pub(crate) hash: &'a str,
    /// Random per write: makes each stored line unique, so a writer that lost an answer
    /// recognises its own line and never another writer's identical event. Not hashed.
    #[serde(default, borrow)]
    #[allow(dead_code)]
    pub(crate) nonce: Option<&'a str>,
}

/// What verification and indexing read of a body: the rest is skipped, not decoded.
#[derive(Deserialize)]
pub(crate) struct Summary<'a> {
    pub(crate) version: u32,
    pub(crate) seq: u64,
    #[serde(borrow)]
    pub(crate) prev_hash: &'a str,
    #[serde(default, borrow)]
    pub(crate) release: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) pipeline: Option<std::borrow::Cow<'a, str>>,
}

/// The position and hash of the event a new one follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    pub seq: u64,
    pub hash: Sha256Digest,
}

/// Gives a draft its place after `prev` (None for the first event) and computes its hash; it
/// happened at the draft's own time, else at `at`.
pub fn seal(draft: Draft, prev: Option<&Tail>, at: Timestamp) -> Result<Event> {
    let at = draft.at.unwrap_or(at);
    // Nothing this process knows to be secret is ever stored (a command's output may hold one).
    let mut details = draft.details;
    crate::hooks::redact_json(&mut details);
    let (seq, prev_hash) = match prev {
        Some(p) => (p.seq + 1, p.hash.clone()),
        None => (1, Sha256Digest::from_bytes([0; 32])),
    };
    let mut event = Event {
        version: AUDIT_VERSION,
        seq,
        prev_hash,
        at,
        kind: draft.kind,
        actor: draft.actor,
        pipeline: draft.pipeline,
        release: draft.release,
        stage: draft.stage,
        details,
        hash: Sha256Digest::from_bytes([0; 32]),
    };
    event.hash = Sha256Digest::of(event.body()?.as_bytes());
    Ok(event)
}

impl Event {
    /// The event without its hash, as canonical JSON on one line: what the hash is over.
    fn body(&self) -> Result<String> {
        let mut value = serde_json::to_value(self).map_err(|e| Error::failed(format!("cannot encode audit event: {e}")))?;
        if let Value::Object(m) = &mut value {
            m.remove("hash");
        }
        Ok(json_canonical(&value))
    }

    /// The stored line (with its newline).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut nonce = [0u8; 8];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        Ok(format!("{{\"body\":{},\"hash\":\"{}\",\"nonce\":\"{}\"}}\n", self.body()?, self.hash, hex::encode(nonce)).into_bytes())
    }

    /// Reads a stored line, checking that its body hashes to its hash.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let line: Line<'_> = serde_json::from_slice(trim(bytes)).map_err(|e| Error::failed(format!("not an audit event: {e}")))?;
        if Sha256Digest::of(line.body.get().as_bytes()).as_str() != line.hash {
            return Err(Error::failed("the event does not match its own hash"));
        }
        let mut body: Value = serde_json::from_str(line.body.get()).map_err(|e| Error::failed(format!("malformed audit event: {e}")))?;
        let version = body.get("version").and_then(Value::as_u64);
        if version != Some(u64::from(AUDIT_VERSION)) {
            return Err(Error::invalid(format!(
                "audit event version `{}` is not supported",
                version.map_or("none".into(), |v| v.to_string())
            ))
            .hint(format!("this ferry reads version {AUDIT_VERSION}")));
        }
        match &mut body {
            Value::Object(m) if !m.contains_key("hash") => {
                m.insert("hash".into(), Value::String(line.hash.to_owned()));
            }
            _ => return Err(Error::failed("malformed audit event: its body is not an object without a hash")),
        }
        serde_json::from_value(body).map_err(|e| Error::failed(format!("malformed audit event: {e}")))
    }

    pub fn tail(&self) -> Tail {
        Tail { seq: self.seq, hash: self.hash.clone() }
    }
}

/// A line without its trailing newline.
pub(crate) fn trim(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

/// Which events `ferry audit show` (and reconciliation) wants.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub release: Option<ReleaseId>,
    /// Only events after this position.
    pub after: Option<u64>,
    pub stage: Option<StageName>,
    pub pipeline: Option<PipelineName>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        self.release.as_ref().is_none_or(|r| e.release.as_ref() == Some(r))
            && self.after.is_none_or(|a| e.seq > a)
            && self.stage.as_ref().is_none_or(|s| e.stage.as_ref() == Some(s))
            && self.pipeline.as_ref().is_none_or(|p| e.pipeline.as_ref() == Some(p))
    }
}
