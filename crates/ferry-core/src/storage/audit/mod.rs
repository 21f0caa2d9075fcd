//! The audit log over objects. Design (and its failure cases) in ARCHITECTURE.md, "The audit
//! log"; in short:
//!
//! - `log.json` — created once: the format version and the segment size K.
//! - `events/SEGMENT/SEQ.json` — one create-only object per append, holding the events of that
//!   append from position SEQ on (one line each, never past the segment's end); the truth.
//!   Event SEQ is in segment (SEQ - 1) / K, so the unsealed tail is always one or two small
//!   listings away.
//! - `head.json` — a recent last event's position and hash, and how many segments are sealed:
//!   a hint, advanced by compare-and-swap after the events exist. It may lag, never lead. A
//!   writer reads it once, then remembers where its own appends ended: an append is one
//!   request while nobody else writes, and after losing a race it re-reads the head and walks
//!   forward over whatever others created since. The head is moved every
//!   `HEAD_EVERY` writes, when a segment is sealed, and when a command ends (`flush`), so it
//!   lags a working writer by a few objects at most.
//! - `segments/SEGMENT.jsonl` — the K events of a full segment, copied into one create-only
//!   object by the writer of its last event once it checked their chain (CloudTrail's digest
//!   files are the model). Verification and `ferry audit show` read these, not K objects.
//! - `index/releases/RELEASE/SEGMENT` — empty markers, written before a segment is sealed: the
//!   sealed segments holding a release's events. `audit show --release` reads only those, plus
//!   the unsealed tail.
//! - `checkpoints/SEQ.dsse.json` — signed checkpoints (create-only).
//!
//! Here: layout, head, appends and seals; `read` scans segments, the index and verification;
//! `image` writes a log's objects directly (tests, benchmarks).

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

mod image;
mod read;

pub use image::write_image;

use serde::{Deserialize, Serialize};

use super::{Backoff, Created, create, replace, with_retries};
use crate::audit::{AUDIT_VERSION, AuditReport, Draft, Event, EventFilter, Summary, Tail, seal, verify_run};
use crate::error::{Error, Result};
use crate::ids::Sha256Digest;
use crate::keys::PublicKey;
use crate::ports::{AuditLog, ObjectStore, Version, Write};

/// Events per sealed segment of a new log.
pub const DEFAULT_SEGMENT_SIZE: u64 = 1000;
/// Segments fetched (and verified in parallel) at a time: bounds memory to a few MiB.
const BATCH: u64 = 8;
/// A writer moves the head after this many writes of its own (and when it is flushed).
const HEAD_EVERY: u32 = 8;

const LOG: &str = "log.json";
const HEAD: &str = "head.json";

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layout {
    version: u32,
    segment_size: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Head {
    version: u32,
    seq: u64,
    hash: Sha256Digest,
    /// Segments 0..sealed are sealed.
    sealed: u64,
    /// The log's segment size (a copy of `log.json`'s): a writer that read the head need not
    /// read the layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    segment_size: Option<u64>,
}

pub struct Audit {
    objects: Arc<dyn ObjectStore>,
    /// The segment size a new log gets.
    new_segment_size: u64,
    layout: OnceLock<Layout>,
    clock: Arc<dyn crate::ports::Clock>,
    /// Where this process's appends ended, and the head as it last read or wrote it. Held
    /// during an append: a process appends one batch at a time.
    writer: std::sync::Mutex<Writer>,
}

/// What a writer remembers between its appends.
#[derive(Default)]
struct Writer {
    /// Read the head yet?
    started: bool,
    /// The last event as far as this writer knows (None: the log is empty).
    tail: Option<Tail>,
    /// The head and its version as last read or written.
    head: Option<(Head, Version)>,
    /// Writes since the head was last moved.
    unheaded: u32,
    /// Whether this writer appended anything.
    appended: bool,
}

fn damaged(location: &str, why: &str) -> Error {
    Error::failed(format!("the audit log at `{location}` is damaged: {why}"))
        .hint("run `ferry audit verify`; ferry will not extend a damaged log")
}

impl Audit {
    pub fn new(objects: Arc<dyn ObjectStore>, new_segment_size: u64, clock: Arc<dyn crate::ports::Clock>) -> Self {
        Self { objects, new_segment_size: new_segment_size.max(2), layout: OnceLock::new(), clock, writer: std::sync::Mutex::default() }
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn event_key(k: u64, seq: u64) -> String {
        format!("events/{:08}/{seq:012}.json", (seq - 1) / k)
    }

    fn segment_key(seg: u64) -> String {
        format!("segments/{seg:08}.jsonl")
    }

    fn where_(&self) -> String {
        self.objects.location("")
    }

    fn segment_size(&self) -> Option<u64> {
        self.layout.get().map(|l| l.segment_size)
    }

    /// The log's layout; with `create`, a new log gets one (tried first with `likely_new`: a
    /// writer that found no head).
    fn layout(&self, create_new: bool) -> Result<Option<Layout>> {
        self.layout_of(create_new, false)
    }

    fn layout_of(&self, create_new: bool, likely_new: bool) -> Result<Option<Layout>> {
        if let Some(l) = self.layout.get() {
            return Ok(Some(*l));
        }
        let read = if likely_new && create_new { None } else { with_retries(self.clock.as_ref(), || self.objects.get(LOG))? };
        let found = match read {
            Some(o) => Some(o.bytes),
            None if create_new => {
                let fresh = Layout { version: AUDIT_VERSION, segment_size: self.new_segment_size };
                match create(self.objects.as_ref(), LOG, &super::to_json(&fresh)?)? {
                    Created::Ours(_) => return Ok(Some(*self.layout.get_or_init(|| fresh))),
                    Created::Theirs(o) => Some(o.bytes),
                }
            }
            None => None,
        };
        let Some(bytes) = found else { return Ok(None) };
        let layout: Layout = super::parse(&bytes, &self.objects.location(LOG), AUDIT_VERSION)?;
        if layout.segment_size < 2 {
            return Err(damaged(&self.where_(), "its segment size is below 2"));
        }
        Ok(Some(*self.layout.get_or_init(|| layout)))
    }

    fn read_head(&self) -> Result<Option<(Head, Version)>> {
        match with_retries(self.clock.as_ref(), || self.objects.get(HEAD))? {
            None => Ok(None),
            Some(o) => Ok(Some((super::parse(&o.bytes, &self.objects.location(HEAD), AUDIT_VERSION)?, o.version))),
        }
    }

    /// Moves the head forward with `change`, starting from the version `w` knows and
    /// re-reading on conflict; it is a hint, so a few lost races are left to the next writer.
    fn advance_head(&self, w: &mut Writer, change: impl Fn(&Head) -> Option<Head>, start: Head) -> Result<()> {
        for _ in 0..5 {
            let (written, next) = match &w.head {
                None => match create(self.objects.as_ref(), HEAD, &super::to_json(&start)?)? {
                    Created::Ours(v) => (Write::Done(v), start.clone()),
                    Created::Theirs(_) => (Write::Conflict, start.clone()),
                },
                Some((head, version)) => match change(head) {
                    None => return Ok(()),
                    Some(next) => (replace(self.objects.as_ref(), HEAD, &super::to_json(&next)?, version)?, next),
                },
            };
            if let Write::Done(v) = written {
                w.head = Some((next, v));
                return Ok(());
            }
            w.head = self.read_head()?;
        }
        Ok(())
    }

    /// Moves the head up to this writer's last event.
    fn move_head(&self, w: &mut Writer) -> Result<()> {
        let Some(tail) = w.tail.clone() else { return Ok(()) };
        let sealed = w.head.as_ref().map_or(0, |(h, _)| h.sealed);
        let k = self.segment_size();
        let ahead = |h: &Head| (h.seq < tail.seq).then(|| Head { seq: tail.seq, hash: tail.hash.clone(), segment_size: k, ..h.clone() });
        let start = Head { version: AUDIT_VERSION, seq: tail.seq, hash: tail.hash.clone(), sealed, segment_size: k };
        self.advance_head(w, ahead, start)?;
        w.unheaded = 0;
        Ok(())
    }

    /// Seals complete segments from the head's count on (at most two per call).
    fn seal_from(&self, w: &mut Writer, layout: Layout, upto: u64) {
        for _ in 0..2 {
            let result = (|| -> Result<bool> {
                w.head = self.read_head()?;
                let sealed = w.head.as_ref().map_or(0, |(h, _)| h.sealed);
                if sealed >= upto {
                    return Ok(false);
                }
                if !self.seal(layout, sealed)? {
                    return Ok(false);
                }
                // The head moves up to this writer's events too (it never leads them).
                let tail = w.tail.clone();
                let bump = |h: &Head| {
                    (h.sealed == sealed)
                        .then(|| match &tail {
                            Some(t) if t.seq > h.seq => Head { sealed: sealed + 1, seq: t.seq, hash: t.hash.clone(), ..h.clone() },
                            _ => Head { sealed: sealed + 1, ..h.clone() },
                        })
                        .map(|h| Head { segment_size: Some(layout.segment_size), ..h })
                };
                let start = match &tail {
                    Some(t) => Head {
                        version: AUDIT_VERSION,
                        seq: t.seq,
                        hash: t.hash.clone(),
                        sealed: sealed + 1,
                        segment_size: Some(layout.segment_size),
                    },
                    None => Head {
                        version: AUDIT_VERSION,
                        seq: 0,
                        hash: Sha256Digest::from_bytes([0; 32]),
                        sealed: sealed + 1,
                        segment_size: Some(layout.segment_size),
                    },
                };
                self.advance_head(w, bump, start)?;
                Ok(true)
            })();
            match result {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!("could not seal an audit segment (a later append will): {}", e.message);
                    return;
                }
            }
        }
    }

    /// Copies segment `seg`'s events into its sealed object once their chain checks out.
    fn seal(&self, layout: Layout, seg: u64) -> Result<bool> {
        let k = layout.segment_size;
        let chunk = self.read_unsealed(seg)?;
        let run = verify_run(seg * k + 1, chunk.lines(), &|_| false);
        if run.problem.is_some() || run.count != k {
            tracing::warn!(
                "audit segment {seg} is not sealed: {}",
                run.problem.map_or_else(|| format!("{} of {k} events", run.count), |p| p.problem)
            );
            return Ok(false);
        }
        if seg > 0 {
            // The object holding event seg * k: the last one of the previous segment.
            let prefix = format!("events/{:08}/", seg - 1);
            let keys = with_retries(self.clock.as_ref(), || self.objects.list(&prefix, None))?;
            let before = match keys.last() {
                Some(key) => with_retries(self.clock.as_ref(), || self.objects.get(key))?,
                None => None,
            };
            let last_line = |bytes: &[u8]| bytes.split_inclusive(|b| *b == b'\n').next_back().and_then(|l| Event::from_bytes(l).ok());
            let linked = before.and_then(|o| last_line(&o.bytes)).filter(|e| e.seq == seg * k).map(|e| e.hash.to_string());
            if linked.as_deref() != run.first_prev.as_deref() {
                tracing::warn!("audit segment {seg} is not sealed: it does not follow event {}", seg * k);
                return Ok(false);
            }
        }
        // The index first: a sealed segment's releases can always be found.
        let mut releases = BTreeSet::new();
        for (_, line) in chunk.lines() {
            if let Ok(l) = serde_json::from_slice::<crate::audit::Line<'_>>(crate::audit::trim(line))
                && let Ok(s) = serde_json::from_str::<Summary<'_>>(l.body.get())
                && let Some(r) = s.release
            {
                releases.insert(r.into_owned());
            }
        }
        for r in releases {
            create(self.objects.as_ref(), &format!("index/releases/{r}/{seg:08}"), b"")?;
        }
        let mut data = Vec::with_capacity(chunk.data.len());
        for (_, line) in chunk.lines() {
            data.extend_from_slice(line);
            if !line.ends_with(b"\n") {
                data.push(b'\n');
            }
        }
        if let Created::Theirs(_) = create(self.objects.as_ref(), &Self::segment_key(seg), &data)? {
            tracing::warn!("audit segment {seg} was sealed with other content; `ferry audit verify` will say which is right");
        }
        Ok(true)
    }

    /// Checks that another writer's object at `first` holds events that follow `tail`; the
    /// position and hash of its last one.
    fn follows(&self, bytes: &[u8], first: u64, tail: Option<&Tail>) -> Result<Tail> {
        let mut prev = tail.cloned();
        for (i, line) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
            let seq = first + i as u64;
            let there = Event::from_bytes(line).map_err(|e| damaged(&self.where_(), &format!("event {seq}: {}", e.message)))?;
            if there.seq != seq || prev.as_ref().is_some_and(|t| t.hash != there.prev_hash) {
                return Err(damaged(&self.where_(), &format!("event {seq} does not follow event {}", seq - 1)));
            }
            prev = Some(there.tail());
        }
        prev.filter(|t| t.seq >= first).ok_or_else(|| damaged(&self.where_(), &format!("the object of event {first} is empty")))
    }
}

/// A writer that goes away (a command ending) moves the head up to its appends, so the next
/// writer starts right at the end.
impl Drop for Audit {
    fn drop(&mut self) {
        if let Err(e) = AuditLog::flush(self) {
            tracing::warn!("could not move the audit head forward (the next append will): {}", e.message);
        }
    }
}

impl AuditLog for Audit {
    fn append_all(&self, drafts: Vec<Draft>) -> Result<Vec<Event>> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let mut w = self.writer();
        if !w.started {
            w.head = self.read_head()?;
            w.tail = w.head.as_ref().filter(|(h, _)| h.seq > 0).map(|(h, _)| Tail { seq: h.seq, hash: h.hash.clone() });
            // The head carries the layout; without a head the log is most likely new.
            if let Some(k) = w.head.as_ref().and_then(|(h, _)| h.segment_size)
                && k >= 2
            {
                let _ = self.layout.set(Layout { version: AUDIT_VERSION, segment_size: k });
            }
            w.started = true;
        }
        let layout = self.layout_of(true, w.head.is_none())?.ok_or_else(|| Error::failed("the audit log has no layout"))?;
        let k = layout.segment_size;
        let mut stored: Vec<Event> = Vec::with_capacity(drafts.len());
        let mut lost = 0u32;
        let mut seals = Vec::new();
        // Never gives up on contention: each lost race moves on to the next free position.
        // Losers back off for a random time that grows with their losses, in units of the
        // store's own round trip (microseconds on a disk, milliseconds on S3), so many
        // writers take turns instead of all racing for every position.
        while stored.len() < drafts.len() {
            let first = w.tail.as_ref().map_or(1, |t| t.seq + 1);
            // One object per append, cut at the segment's end.
            let room = usize::try_from(k - (first - 1) % k).unwrap_or(usize::MAX);
            let part = &drafts[stored.len()..drafts.len().min(stored.len() + room)];
            let now = self.clock.now();
            let mut tail = w.tail.clone();
            let mut events = Vec::with_capacity(part.len());
            let mut bytes = Vec::new();
            for d in part {
                let event = seal(d.clone(), tail.as_ref(), now)?;
                bytes.extend_from_slice(&event.to_bytes()?);
                tail = Some(event.tail());
                events.push(event);
            }
            let started = self.clock.monotonic();
            let created = create(self.objects.as_ref(), &Self::event_key(k, first), &bytes)?;
            let rtt = self.clock.monotonic() - started;
            match created {
                Created::Ours(_) => {
                    let last = tail.as_ref().map_or(first, |t| t.seq);
                    w.tail = tail;
                    w.unheaded += 1;
                    w.appended = true;
                    stored.extend(events);
                    // The writer of a segment's last event seals it; halfway into a segment,
                    // a missed seal of an earlier one is made up.
                    let seg = (first - 1) / k;
                    let sealed = w.head.as_ref().map_or(0, |(h, _)| h.sealed);
                    if last.is_multiple_of(k) {
                        seals.push(seg + 1);
                    } else if (first..=last).contains(&(seg * k + k / 2)) && sealed < seg {
                        seals.push(seg);
                    }
                }
                Created::Theirs(o) => {
                    let there = self.follows(&o.bytes, first, w.tail.as_ref())?;
                    lost += 1;
                    let unit = rtt.max(Duration::from_micros(200));
                    Backoff::new(unit * 2u32.pow(lost.min(5)), unit * 32).wait(self.clock.as_ref());
                    // Meanwhile others moved on: start again from the head when it is ahead.
                    w.head = self.read_head()?;
                    w.tail = Some(match &w.head {
                        Some((h, _)) if h.seq > there.seq => Tail { seq: h.seq, hash: h.hash.clone() },
                        _ => there,
                    });
                }
            }
        }
        for upto in seals {
            self.seal_from(&mut w, layout, upto);
        }
        if w.unheaded >= HEAD_EVERY
            && let Err(e) = self.move_head(&mut w)
        {
            tracing::warn!("could not move the audit head forward (the next append will): {}", e.message);
        }
        Ok(stored)
    }

    fn tail(&self) -> Option<Tail> {
        let w = self.writer();
        w.appended.then(|| w.tail.clone()).flatten()
    }

    fn flush(&self) -> Result<()> {
        let mut w = self.writer();
        if w.unheaded == 0 {
            return Ok(());
        }
        self.move_head(&mut w)
    }

    fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        self.read_events(filter)
    }

    fn verify(&self, key: Option<&PublicKey>) -> Result<AuditReport> {
        self.verify_log(key)
    }

    fn put_checkpoint(&self, seq: u64, envelope: &[u8]) -> Result<()> {
        let key = format!("checkpoints/{seq:012}.dsse.json");
        match create(self.objects.as_ref(), &key, envelope)? {
            Created::Ours(_) => Ok(()),
            Created::Theirs(_) => {
                Err(Error::failed(format!("a checkpoint at event {seq} already exists at `{}`", self.objects.location(&key))))
            }
        }
    }

    fn checkpoint_from(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>> {
        let after = format!("checkpoints/{:012}", seq.saturating_sub(1));
        let keys = with_retries(self.clock.as_ref(), || self.objects.list("checkpoints/", Some(&format!("{after}.dsse.json"))))?;
        let Some((at, key)) = keys
            .iter()
            .filter_map(|k| Some((k.strip_prefix("checkpoints/")?.strip_suffix(".dsse.json")?.parse::<u64>().ok()?, k)))
            .find(|(s, _)| *s >= seq)
        else {
            return Ok(None);
        };
        Ok(with_retries(self.clock.as_ref(), || self.objects.get(key))?.map(|o| (at, o.bytes)))
    }

    fn location(&self) -> String {
        self.where_()
    }
}
