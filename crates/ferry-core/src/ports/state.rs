//! The promotion state port: one record per (release, stage), written with a precondition on
//! the version read, and the approval records of each. Written once in `crate::storage::state`.

use crate::approval::ApprovalRecord;
use crate::error::Result;
use crate::ids::{PipelineName, ReleaseId, StageName};
use crate::ports::{Version, Write};
use crate::state::StageRecord;

/// Promotion state and approval records. Stage records are written with a precondition on
/// the version read (create-if-absent, replace-if-unchanged), so no update is ever lost.
pub trait StateStore: Send + Sync {
    fn read_stage(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Option<Versioned<StageRecord>>>;
    /// Writes `record` if the current version is `expected` (`None`: no record yet).
    fn write_stage(&self, record: &StageRecord, expected: Option<&Version>) -> Result<Write>;
    /// The record as this process last wrote it, if it wrote one (no request): what a later
    /// stage of the same `ferry run` checks its order against and takes outputs from.
    fn written_here(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Option<StageRecord>;
    /// Every stage record of the pipeline (read concurrently where the backend can).
    fn list_stages(&self, pipeline: &PipelineName) -> Result<Vec<StageRecord>>;
    /// Adds an approval or rejection; records are never changed once written.
    fn add_approval(&self, record: &ApprovalRecord) -> Result<()>;
    fn approvals(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Vec<ApprovalRecord>>;
    /// Every approval and rejection of the pipeline, in one listing.
    fn all_approvals(&self, pipeline: &PipelineName) -> Result<Vec<ApprovalRecord>>;
}

/// A stored record and the revision it was read at (the precondition of the next write).
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// Opaque to the engine; it only hands it back as the precondition of a write.
    pub revision: super::Version,
    pub value: T,
}
