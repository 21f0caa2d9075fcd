//! Reading the audit log: a segment as one chunk of lines (sealed: one object; unsealed: the
//! appends' objects, one line per event), scans of segments a batch at a time, the release
//! index, `events` and streamed, parallel verification.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;

use super::{Audit, BATCH, Head, Layout, with_retries};
use crate::audit::{AuditReport, ChainProblem, CheckpointCount, Event, EventFilter, Linker, Run, Summary, check_checkpoint, verify_run};
use crate::error::{Error, Result};
use crate::ids::{ReleaseId, Sha256Digest};
use crate::keys::PublicKey;

/// A segment's events as one buffer and the range of each line in it.
pub(super) struct Chunk {
    pub(super) seg: u64,
    pub(super) sealed: bool,
    pub(super) data: Vec<u8>,
    pub(super) lines: Vec<(u64, Range<usize>)>,
}

impl Chunk {
    pub(super) fn lines(&self) -> impl Iterator<Item = (u64, &[u8])> {
        self.lines.iter().map(|(pos, r)| (*pos, &self.data[r.clone()]))
    }
}

impl Audit {
    /// The events stored an append at a time in segment `seg`.
    pub(super) fn read_unsealed(&self, seg: u64) -> Result<Chunk> {
        let prefix = format!("events/{seg:08}/");
        let keys: Vec<String> = with_retries(self.clock.as_ref(), || self.objects.list(&prefix, None))?
            .into_iter()
            .filter(|k| k.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".json")).is_some_and(|n| n.parse::<u64>().is_ok()))
            .collect();
        let objects = with_retries(self.clock.as_ref(), || self.objects.get_many(&keys))?;
        let mut chunk = Chunk { seg, sealed: false, data: Vec::new(), lines: Vec::new() };
        for (key, o) in keys.iter().zip(objects) {
            let Some(o) = o else { continue };
            let first: u64 = key.strip_prefix(&prefix).and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse().ok()).unwrap_or(0);
            for (i, line) in o.bytes.split_inclusive(|b| *b == b'\n').enumerate() {
                let start = chunk.data.len();
                chunk.data.extend_from_slice(line);
                chunk.lines.push((first + i as u64, start..chunk.data.len()));
            }
        }
        Ok(chunk)
    }

    /// Sealed segments `segs` (fetched together) as chunks.
    fn read_sealed(&self, layout: Layout, segs: &[u64]) -> Result<Vec<Chunk>> {
        let keys: Vec<String> = segs.iter().map(|s| Self::segment_key(*s)).collect();
        let objects = with_retries(self.clock.as_ref(), || self.objects.get_many(&keys))?;
        let k = layout.segment_size;
        Ok(segs
            .iter()
            .zip(objects)
            .map(|(seg, o)| {
                let data = o.map(|o| o.bytes).unwrap_or_default();
                let mut lines = Vec::new();
                let mut start = 0;
                for (i, line) in data.split_inclusive(|b| *b == b'\n').enumerate() {
                    lines.push((seg * k + 1 + i as u64, start..start + line.len()));
                    start += line.len();
                }
                Chunk { seg: *seg, sealed: true, data, lines }
            })
            .collect())
    }

    fn sealed_segments(&self) -> Result<BTreeSet<u64>> {
        Ok(with_retries(self.clock.as_ref(), || self.objects.list("segments/", None))?
            .iter()
            .filter_map(|k| k.strip_prefix("segments/")?.strip_suffix(".jsonl")?.parse().ok())
            .collect())
    }

    /// Reads segments from `from` on, in order, a batch at a time, until the end of the log
    /// (an empty unsealed segment past the head and the last sealed segment); `visit` returns
    /// whether to go on.
    /// Returns the head as it was before reading (it never leads the events it names).
    fn scan(
        &self,
        layout: Layout,
        from: u64,
        only: Option<&BTreeSet<u64>>,
        mut visit: impl FnMut(Vec<Chunk>) -> Result<bool>,
    ) -> Result<Option<Head>> {
        let head = self.read_head()?.map(|(h, _)| h);
        let sealed = self.sealed_segments()?;
        let k = layout.segment_size;
        let last = sealed.last().copied().max(head.as_ref().filter(|h| h.seq > 0).map(|h| (h.seq - 1) / k)).unwrap_or(0);
        let mut seg = from;
        loop {
            let batch: Vec<u64> = (seg..seg + BATCH).collect();
            seg += BATCH;
            let wanted: Vec<u64> = batch.iter().copied().filter(|s| only.is_none_or(|o| o.contains(s) || !sealed.contains(s))).collect();
            let (in_seal, loose): (Vec<u64>, Vec<u64>) = wanted.iter().partition(|s| sealed.contains(s));
            let mut chunks = self.read_sealed(layout, &in_seal)?;
            let mut ended = false;
            for s in loose {
                let c = self.read_unsealed(s)?;
                if c.lines.is_empty() && s > last {
                    ended = true;
                    break;
                }
                chunks.push(c);
            }
            chunks.sort_by_key(|c| c.seg);
            if !visit(chunks)? || ended {
                return Ok(head);
            }
        }
    }

    /// The sealed segments holding events of `release`.
    fn index_of(&self, release: &ReleaseId) -> Result<BTreeSet<u64>> {
        let prefix = format!("index/releases/{release}/");
        Ok(with_retries(self.clock.as_ref(), || self.objects.list(&prefix, None))?
            .iter()
            .filter_map(|k| k.strip_prefix(&prefix)?.parse().ok())
            .collect())
    }

    pub(super) fn read_events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let Some(layout) = self.layout(false)? else { return Ok(Vec::new()) };
        let k = layout.segment_size;
        let from = filter.after.map_or(0, |a| a / k);
        let only: Option<BTreeSet<u64>> = match &filter.release {
            None => None,
            Some(r) => Some(self.index_of(r)?),
        };
        let mut out = Vec::new();
        let release = filter.release.as_ref().map(ReleaseId::as_str);
        let pipeline = filter.pipeline.as_ref().map(crate::ids::PipelineName::as_str);
        self.scan(layout, from, only.as_ref(), |chunks| {
            for c in &chunks {
                for (pos, line) in c.lines() {
                    if filter.after.is_some_and(|a| pos <= a) {
                        continue;
                    }
                    // Skipped unread when the summary says it is not wanted.
                    if release.is_some() || pipeline.is_some() {
                        let quick = serde_json::from_slice::<crate::audit::Line<'_>>(crate::audit::trim(line)).ok().and_then(|l| {
                            serde_json::from_str::<Summary<'_>>(l.body.get()).ok().map(|s| {
                                release.is_none_or(|r| s.release.as_deref() == Some(r))
                                    && pipeline.is_none_or(|p| s.pipeline.as_deref() == Some(p))
                            })
                        });
                        if quick == Some(false) {
                            continue;
                        }
                    }
                    let e = Event::from_bytes(line).map_err(|e| {
                        Error::failed(format!("audit event {pos} is unreadable: {}", e.message)).hint("run `ferry audit verify`")
                    })?;
                    if filter.matches(&e) {
                        out.push(e);
                    }
                }
            }
            Ok(true)
        })?;
        Ok(out)
    }

    pub(super) fn verify_log(&self, key: Option<&PublicKey>) -> Result<AuditReport> {
        let checkpoint_keys: Vec<String> = match key {
            Some(_) => with_retries(self.clock.as_ref(), || self.objects.list("checkpoints/", None))?,
            None => Vec::new(),
        };
        let checkpoints: Vec<(u64, String)> = checkpoint_keys
            .into_iter()
            .filter_map(|k| k.strip_prefix("checkpoints/")?.strip_suffix(".dsse.json")?.parse().ok().map(|s| (s, k.clone())))
            .collect();
        let count = CheckpointCount { count: checkpoints.len() as u64, verified: key.is_some(), newest: None };
        let mut report = AuditReport { events: 0, head: None, first_bad: None, checkpoints: count, sealed_segments: 0, unsealed_events: 0 };
        let Some(layout) = self.layout(false)? else { return Ok(report) };
        let k = layout.segment_size;
        let wanted: HashSet<u64> = checkpoints.iter().map(|(s, _)| *s).collect();
        let want = |seq: u64| wanted.contains(&seq);
        let mut hashes: HashMap<u64, Sha256Digest> = HashMap::new();
        let mut linker = Linker::default();
        let (mut sealed, mut loose) = (0u64, 0u64);
        let head = self.scan(layout, 0, None, |chunks| {
            for c in &chunks {
                if c.sealed {
                    sealed += 1;
                } else {
                    loose += c.lines.len() as u64;
                }
            }
            for run in verify_chunks(&chunks, k, &want) {
                hashes.extend(run.hashes.iter().cloned());
                if !linker.push(run) {
                    return Ok(false);
                }
            }
            Ok(true)
        })?;
        let chain = linker.finish();
        report.events = chain.events;
        report.head = chain.head;
        report.first_bad = chain.first_bad;
        report.sealed_segments = sealed;
        report.unsealed_events = loose;
        if report.first_bad.is_none()
            && let Some(head) = head
            && head.seq > report.events
        {
            let next = report.events + 1;
            report.first_bad = Some(ChainProblem {
                seq: next,
                problem: format!("the log's head says it holds {} events; event {next} on is gone: the log was truncated", head.seq),
            });
        }
        if let (None, Some(key)) = (&report.first_bad, key) {
            for batch in checkpoints.chunks(64) {
                let keys: Vec<String> = batch.iter().map(|(_, k)| k.clone()).collect();
                let envelopes = with_retries(self.clock.as_ref(), || self.objects.get_many(&keys))?;
                for ((seq, _), env) in batch.iter().zip(envelopes) {
                    let bytes = env.map(|o| o.bytes).unwrap_or_default();
                    match check_checkpoint(*seq, &bytes, key, hashes.get(seq)) {
                        Ok(c) if report.checkpoints.newest.as_ref().is_none_or(|n| n.seq < c.seq) => report.checkpoints.newest = Some(c),
                        Ok(_) => {}
                        Err(p) => {
                            report.first_bad = Some(p);
                            report.checkpoints.newest = None;
                            return Ok(report);
                        }
                    }
                }
            }
        }
        Ok(report)
    }
}

/// Verifies chunks in parallel (each on its own), returning their runs in order.
fn verify_chunks(chunks: &[Chunk], k: u64, want: &(dyn Fn(u64) -> bool + Sync)) -> Vec<Run> {
    let verify = |c: &Chunk| -> Run {
        let mut run = verify_run(c.seg * k + 1, c.lines(), want);
        if c.sealed && run.problem.is_none() && run.count != k {
            run.problem = Some(ChainProblem {
                seq: c.seg * k + 1,
                problem: format!("sealed segment {} holds {} events, not {k}: it was edited", c.seg, run.count),
            });
        }
        run
    };
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).clamp(1, 4);
    if threads == 1 || chunks.len() < 2 {
        return chunks.iter().map(verify).collect();
    }
    let per = chunks.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks.chunks(per).map(|part| s.spawn(move || part.iter().map(verify).collect::<Vec<_>>())).collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}
