//! A promotion's journal: what it decided — events, and steps of its record's state machine —
//! kept until the next commit point, then written: the events in one append, the record in
//! one conditional write after them (write-ahead: the log is never behind the state).

use serde_json::Value;

use super::Promotion;
use crate::audit::{Draft, EventKind};
use crate::error::{Error, Result};
use crate::ports::{Versioned, Write};
use crate::state::{StageRecord, StageStatus, Step};

/// A promotion's decisions until its next commit point: events to append, and steps of its
/// record's state machine to write after them.
#[derive(Default)]
pub(super) struct Journal {
    pub(super) events: Vec<Draft>,
    /// The record as this process last read or wrote it (the base of its next write).
    pub(super) stored: Option<Versioned<StageRecord>>,
    /// Whether the record was read yet (it may not exist).
    pub(super) opened: bool,
    /// The stage's status when this promotion first read it.
    pub(super) first_status: Option<StageStatus>,
    /// Steps taken since the last write, and the record they lead to (`Some` while there is
    /// something to write, a new record included).
    pub(super) steps: Vec<Step>,
    pub(super) record: Option<StageRecord>,
}

impl Promotion<'_> {
    /// Records an event, written at the next commit point (before the state that reports it).
    pub(super) fn audit(&self, kind: EventKind, details: Value) -> Result<()> {
        let d = Draft::new(kind, &self.req.actor, &self.pipeline.name)
            .release(&self.req.release)
            .stage(&self.stage.name)
            .details(details)
            .at(self.now());
        self.journal.borrow_mut().events.push(d);
        Ok(())
    }

    /// Reads the record (the steps not yet written re-applied to it).
    pub(super) fn read(&self) -> Result<Option<StageRecord>> {
        let read = self.svc.state.read_stage(&self.pipeline.name, &self.req.release, &self.stage.name)?;
        let mut j = self.journal.borrow_mut();
        if !j.opened {
            j.first_status = read.as_ref().map(|r| r.value.status());
            j.opened = true;
        }
        j.stored = read;
        if j.steps.is_empty() {
            j.record = None;
            return Ok(j.stored.as_ref().map(|v| v.value.clone()));
        }
        let mut record = j.stored.as_ref().map_or_else(|| self.new_record(), |v| v.value.clone());
        for step in &j.steps {
            record.apply(step.clone()).map_err(|illegal| self.changed(&illegal))?;
        }
        j.record = Some(record.clone());
        Ok(Some(record))
    }

    pub(super) fn new_record(&self) -> StageRecord {
        StageRecord::new(&self.pipeline.name, &self.req.release, &self.stage.name, &self.req.actor, self.now())
    }

    pub(super) fn changed(&self, illegal: &crate::state::Illegal) -> Error {
        Error::failed(format!("the state of release `{}` in stage `{}` changed unexpectedly: {illegal}", self.req.release, self.stage.name))
            .hint("another promotion of this release to this stage may be running; `ferry status PIPELINE` shows it")
    }

    /// Takes one step of the state machine (`StageRecord::apply`); written at the next commit
    /// point. Returns the record as it is now.
    pub(super) fn step(&self, step: Step) -> Result<StageRecord> {
        let mut j = self.journal.borrow_mut();
        let mut record = match (&j.record, &j.stored) {
            (Some(r), _) => r.clone(),
            (None, Some(v)) => v.value.clone(),
            (None, None) => self.new_record(),
        };
        record.apply(step.clone()).map_err(|illegal| self.changed(&illegal))?;
        j.steps.push(step);
        j.record = Some(record.clone());
        Ok(record)
    }

    /// A commit point: the events decided so far in one append, then the record in one write
    /// (optimistic: at the version last read or written; on a conflict the record is read
    /// again and the steps re-applied to it).
    pub(super) fn commit(&self) -> Result<()> {
        let events = std::mem::take(&mut self.journal.borrow_mut().events);
        if !events.is_empty() {
            match self.svc.audit.append_all(events.clone()) {
                Ok(stored) => self.last_seq.set(self.last_seq.get().max(stored.last().map_or(0, |e| e.seq))),
                Err(e) => {
                    // Kept for the next commit point; the state waits for them.
                    let mut j = self.journal.borrow_mut();
                    let later = std::mem::replace(&mut j.events, events);
                    j.events.extend(later);
                    return Err(e);
                }
            }
        }
        if self.journal.borrow().record.is_none() {
            return Ok(());
        }
        if let Some(why) = self.lost.get() {
            // The stage is someone else's now: nothing more is written to its record.
            let mut j = self.journal.borrow_mut();
            j.steps.clear();
            j.record = None;
            return Err(Error::failed(why));
        }
        let steps = self.journal.borrow().steps.clone();
        for attempt in 0..20 {
            let current = if attempt == 0 { self.journal.borrow().stored.clone() } else { self.reread()? };
            let (mut record, expected) = match current {
                Some(v) => (v.value, Some(v.revision)),
                None => (self.new_record(), None),
            };
            for step in &steps {
                record.apply(step.clone()).map_err(|illegal| self.changed(&illegal))?;
            }
            record.updated_at = self.now();
            record.audit_seq = record.audit_seq.max(self.last_seq.get());
            if let Write::Done(revision) = self.svc.state.write_stage(&record, expected.as_ref())? {
                let mut j = self.journal.borrow_mut();
                j.stored = Some(Versioned { revision, value: record });
                j.steps.clear();
                j.record = None;
                return Ok(());
            }
        }
        Err(Error::failed(format!("could not update the state of stage `{}`: too many concurrent writers", self.stage.name)))
    }

    /// The stored record, read again after a conflicting write.
    pub(super) fn reread(&self) -> Result<Option<Versioned<StageRecord>>> {
        let read = self.svc.state.read_stage(&self.pipeline.name, &self.req.release, &self.stage.name)?;
        self.journal.borrow_mut().stored.clone_from(&read);
        Ok(read)
    }
}
