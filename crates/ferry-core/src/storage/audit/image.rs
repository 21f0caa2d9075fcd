//! A log image: the objects appends would have left for a long history, written directly (for
//! tests and benchmarks that need a million events without a million appends).

use std::collections::BTreeSet;

use super::{Audit, HEAD, Head, LOG, Layout};
use crate::audit::{AUDIT_VERSION, Draft, Tail, seal};
use crate::clock::Timestamp;
use crate::error::Result;

/// The objects of a log holding `drafts` (in order), exactly as appends would have left them —
/// layout, one object per event, sealed segments with their release index, and the head —
/// handed to `put` one at a time, a segment's worth in memory at most. For tests and
/// benchmarks that need a long history without a million appends.
pub fn write_image(
    drafts: impl IntoIterator<Item = Draft>,
    segment_size: u64,
    at: Timestamp,
    put: &mut dyn FnMut(String, Vec<u8>) -> Result<()>,
) -> Result<u64> {
    let k = segment_size.max(2);
    put(LOG.to_owned(), crate::storage::to_json(&Layout { version: AUDIT_VERSION, segment_size: k })?)?;
    let mut tail: Option<Tail> = None;
    let mut segment: Vec<u8> = Vec::new();
    let mut releases: BTreeSet<String> = BTreeSet::new();
    let mut sealed = 0;
    for draft in drafts {
        let event = seal(draft, tail.as_ref(), at)?;
        let bytes = event.to_bytes()?;
        put(Audit::event_key(k, event.seq), bytes.clone())?;
        segment.extend_from_slice(&bytes);
        if let Some(r) = &event.release {
            releases.insert(r.to_string());
        }
        if event.seq % k == 0 {
            let seg = event.seq / k - 1;
            for r in std::mem::take(&mut releases) {
                put(format!("index/releases/{r}/{seg:08}"), Vec::new())?;
            }
            put(Audit::segment_key(seg), std::mem::take(&mut segment))?;
            sealed = seg + 1;
        }
        tail = Some(event.tail());
    }
    let n = tail.as_ref().map_or(0, |t| t.seq);
    if let Some(t) = tail {
        put(
            HEAD.to_owned(),
            crate::storage::to_json(&Head { version: AUDIT_VERSION, seq: t.seq, hash: t.hash, sealed, segment_size: Some(k) })?,
        )?;
    }
    Ok(n)
}
