//! Proving a log: runs of stored lines (a sealed segment, a directory of unsealed events) are
//! checked on their own — each line against its own hash, its position and its predecessor —
//! and then linked in order, so segments can be verified in parallel with bounded memory and
//! the first edited, removed, inserted or reordered event is still named exactly.

use serde::Serialize;

use super::{GENESIS, Line, Summary, trim};
use crate::ids::Sha256Digest;

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

/// What `ferry audit verify` reports.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub events: u64,
    pub head: Option<Sha256Digest>,
    pub first_bad: Option<ChainProblem>,
    pub checkpoints: CheckpointCount,
    /// Segments read whole (sealed), and unsealed events read one by one.
    pub sealed_segments: u64,
    pub unsealed_events: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckpointCount {
    pub count: u64,
    /// Whether they were checked (with the pipeline's pinned key).
    pub verified: bool,
    /// The newest checkpoint that verified (the furthest position of the log a signature
    /// vouches for); `None` when none was checked.
    pub newest: Option<super::Checkpoint>,
}

/// One run of consecutive positions, checked on its own.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// The position the run should start at.
    pub first: u64,
    pub count: u64,
    /// The `prev_hash` of its first event (linked to the previous run's last hash later).
    pub first_prev: Option<String>,
    pub last_hash: Option<Sha256Digest>,
    pub problem: Option<ChainProblem>,
    /// Hashes of the events at the positions the caller asked for (signed checkpoints).
    pub hashes: Vec<(u64, Sha256Digest)>,
}

/// Checks stored lines `(position, bytes)` that should hold positions `first, first + 1, …`.
/// Stops at the first problem.
pub fn verify_run<'a>(first: u64, lines: impl IntoIterator<Item = (u64, &'a [u8])>, want: &dyn Fn(u64) -> bool) -> Run {
    let mut run = Run { first, ..Run::default() };
    let mut prev: Option<String> = None;
    for (expected, (pos, bytes)) in (first..).zip(lines) {
        let bad = |problem: String| Some(ChainProblem { seq: expected, problem });
        if pos != expected {
            run.problem = bad(format!("event {expected} is missing (the next stored event is {pos}): an event was deleted"));
            return run;
        }
        let line: Line<'_> = match serde_json::from_slice(trim(bytes)) {
            Ok(l) => l,
            Err(e) => {
                run.problem = bad(format!("event {expected} is not a valid audit line ({e}): it was edited"));
                return run;
            }
        };
        let hash = Sha256Digest::of(line.body.get().as_bytes());
        if hash.as_str() != line.hash {
            run.problem = bad(format!("event {expected} does not match its own hash: its content was edited"));
            return run;
        }
        let summary: Summary<'_> = match serde_json::from_str(line.body.get()) {
            Ok(s) => s,
            Err(e) => {
                run.problem = bad(format!("event {expected} is malformed ({e}): it was edited"));
                return run;
            }
        };
        if summary.version != super::AUDIT_VERSION {
            run.problem = bad(format!("event {expected} has unsupported version {}", summary.version));
            return run;
        }
        if summary.seq != expected {
            // (An append stores several events in one object, positioned by their order in it.)
            let how = if summary.seq > expected { "events were deleted or reordered" } else { "events were inserted or reordered" };
            run.problem = bad(format!("position {expected} holds event {}: {how}", summary.seq));
            return run;
        }
        match &prev {
            None => run.first_prev = Some(summary.prev_hash.to_owned()),
            Some(p) if p != summary.prev_hash => {
                run.problem = bad(format!(
                    "event {expected} does not follow event {}: an event was inserted, removed or reordered before it",
                    expected - 1
                ));
                return run;
            }
            Some(_) => {}
        }
        if want(expected) {
            run.hashes.push((expected, hash.clone()));
        }
        prev = Some(hash.to_string());
        run.last_hash = Some(hash);
        run.count += 1;
    }
    run
}

/// Links runs, given in order, into the report of the whole log.
#[derive(Debug)]
pub struct Linker {
    prev: String,
    next: u64,
    head: Option<Sha256Digest>,
    problem: Option<ChainProblem>,
}

impl Default for Linker {
    fn default() -> Self {
        Self { prev: GENESIS.to_owned(), next: 1, head: None, problem: None }
    }
}

impl Linker {
    /// Adds the next run; false once a problem was found (later runs do not matter).
    pub fn push(&mut self, run: Run) -> bool {
        if self.problem.is_some() {
            return false;
        }
        if run.count == 0 && run.problem.is_none() {
            return true;
        }
        let next = self.next;
        let found = if run.first != next {
            Some(ChainProblem {
                seq: next,
                problem: format!("event {next} is missing (the next stored event is {}): events were deleted", run.first),
            })
        } else if let Some(p) = run.problem.clone().filter(|p| p.seq == run.first) {
            Some(p)
        } else if run.first_prev.as_deref() != Some(self.prev.as_str()) {
            Some(ChainProblem {
                seq: run.first,
                problem: format!(
                    "event {} does not follow event {}: an event was inserted, removed or reordered before it",
                    run.first,
                    run.first - 1
                ),
            })
        } else {
            run.problem.clone()
        };
        if let Some(p) = found {
            // Events before the problem are good.
            self.next = p.seq;
            self.problem = Some(p);
            return false;
        }
        self.next = run.first + run.count;
        if let Some(h) = run.last_hash {
            self.prev = h.to_string();
            self.head = Some(h);
        }
        true
    }

    pub fn finish(self) -> ChainReport {
        match self.problem {
            Some(p) => ChainReport { events: self.next.saturating_sub(1), head: None, first_bad: Some(p) },
            None => ChainReport { events: self.next - 1, head: self.head, first_bad: None },
        }
    }
}

/// Links runs given in order into the report of the whole log.
pub fn link_runs(runs: impl IntoIterator<Item = Run>) -> ChainReport {
    let mut linker = Linker::default();
    for run in runs {
        if !linker.push(run) {
            break;
        }
    }
    linker.finish()
}

/// Verifies a whole log given as `(position, stored bytes)` pairs in position order.
pub fn verify_chain(entries: &[(u64, Vec<u8>)]) -> ChainReport {
    link_runs([verify_run(1, entries.iter().map(|(p, b)| (*p, b.as_slice())), &|_| false)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Draft, EventKind, Tail, seal};
    use crate::ids::{Actor, PipelineName};

    fn log(n: usize) -> Vec<(u64, Vec<u8>)> {
        log_by("alice", n)
    }

    fn log_by(actor: &str, n: usize) -> Vec<(u64, Vec<u8>)> {
        let actor: Actor = actor.parse().unwrap();
        let p: PipelineName = "p".parse().unwrap();
        let mut out = Vec::new();
        let mut prev: Option<Tail> = None;
        for i in 0..n {
            let e = seal(
                Draft::new(EventKind::Build, &actor, &p).details(serde_json::json!({"i": i, "out": "a\nb"})),
                prev.as_ref(),
                crate::clock::Timestamp::from_unix(1_767_000_000),
            )
            .unwrap();
            out.push((e.seq, e.to_bytes().unwrap()));
            prev = Some(e.tail());
        }
        out
    }

    #[test]
    fn an_untouched_log_verifies_and_each_line_is_one_line() {
        let l = log(5);
        let r = verify_chain(&l);
        assert_eq!(r.first_bad, None);
        assert_eq!(r.events, 5);
        assert!(l.iter().all(|(_, b)| b.iter().filter(|c| **c == b'\n').count() == 1));
        assert_eq!(crate::audit::Event::from_bytes(&l[2].1).unwrap().seq, 3);
    }

    #[test]
    fn two_writes_of_one_event_differ_in_their_bytes_and_both_verify() {
        // What lets a writer after a lost answer tell its own line from another writer's
        // identical event (same actor, details and millisecond) at the same position.
        let l = log(1);
        let e = crate::audit::Event::from_bytes(&l[0].1).unwrap();
        let (a, b) = (e.to_bytes().unwrap(), e.to_bytes().unwrap());
        assert_ne!(a, b);
        for line in [a, b] {
            assert_eq!(verify_chain(&[(1, line)]).first_bad, None);
        }
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
        // Renumbered after the deletion (a line removed from an append's object): the chain
        // breaks at the same place, and says what happened.
        let mut l = log(5);
        l.remove(1);
        for (i, e) in l.iter_mut().enumerate() {
            e.0 = i as u64 + 1;
        }
        let bad = verify_chain(&l).first_bad.unwrap();
        assert_eq!((bad.seq, bad.problem.as_str()), (2, "position 2 holds event 3: events were deleted or reordered"));
    }

    #[test]
    fn a_reordering_is_pinpointed() {
        let mut l = log(5);
        let (a, b) = (l[1].1.clone(), l[3].1.clone());
        l[1].1 = b;
        l[3].1 = a;
        assert_eq!(verify_chain(&l).first_bad.unwrap().seq, 2);
    }

    #[test]
    fn runs_verified_apart_link_like_one_and_a_broken_link_is_named() {
        let l = log(9);
        let run = |from: usize, to: usize| verify_run(from as u64 + 1, l[from..to].iter().map(|(p, b)| (*p, b.as_slice())), &|s| s == 5);
        let whole = link_runs([run(0, 3), run(3, 6), run(6, 9)]);
        assert_eq!((whole.events, whole.first_bad.clone()), (9, None));
        assert_eq!(whole.head, verify_chain(&l).head);
        assert_eq!(run(3, 6).hashes.len(), 1, "the hash at a wanted position is kept");
        // A run missing entirely: the events of the gap are named.
        let gap = link_runs([run(0, 3), run(6, 9)]);
        assert_eq!(gap.first_bad.unwrap().seq, 4);
        // A run whose first event was replaced by a validly hashed forgery does not link.
        let other = log_by("mallory", 9);
        let forged = verify_run(4, other[3..6].iter().map(|(p, b)| (*p, b.as_slice())), &|_| false);
        let broken = link_runs([run(0, 3), forged, run(6, 9)]);
        assert_eq!(broken.first_bad.unwrap().seq, 4);
    }
}
