//! The audit log port: append-only and hash-chained, verified by streaming sealed segments,
//! searched by an index. Written once, over the object port, in `crate::storage::audit`.

use crate::audit::{AuditReport, Draft, Event, EventFilter};
use crate::error::Result;
use crate::keys::PublicKey;

/// The append-only, hash-chained audit log.
pub trait AuditLog: Send + Sync {
    /// Seals `drafts`, in order, after the current last event and stores them without
    /// overwriting anything: one write for all of them (two when they cross a segment's end).
    fn append_all(&self, drafts: Vec<Draft>) -> Result<Vec<Event>>;
    /// Seals and stores one event.
    fn append(&self, draft: Draft) -> Result<Event> {
        self.append_all(vec![draft])?.pop().ok_or_else(|| crate::Error::failed("the audit log stored no event"))
    }
    /// Makes what this process appended quick to find for the next writer (moves the log's
    /// head up to it); run when a command ends. Appends stay durable without it.
    fn flush(&self) -> Result<()> {
        Ok(())
    }
    /// Where this process's appends ended (what a checkpoint at the end of a command signs);
    /// `None` if it appended nothing.
    fn tail(&self) -> Option<crate::audit::Tail> {
        None
    }
    /// The events `filter` selects, in order (a release's events through the index).
    fn events(&self, filter: &EventFilter) -> Result<Vec<Event>>;
    /// Proves the chain from the first event to the last, and with `key` the signed checkpoints.
    fn verify(&self, key: Option<&PublicKey>) -> Result<AuditReport>;
    /// Stores a signed checkpoint (a DSSE envelope) of the log at event `seq`; never overwrites.
    fn put_checkpoint(&self, seq: u64, envelope: &[u8]) -> Result<()>;
    /// The first signed checkpoint at or after event `seq`: its position and envelope.
    fn checkpoint_from(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>>;
    fn location(&self) -> String;
}
