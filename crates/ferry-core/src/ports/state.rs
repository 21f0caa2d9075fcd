//! The promotion state port: one record per (release, stage), written with a precondition on
//! the version read, and the approval records of each. Written once in `crate::storage::state`.

use crate::approval::signed::ApprovalRequest;
use crate::error::Result;
use crate::ids::{PipelineName, ReleaseId, Sha256Digest, StageName};
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
    /// Adds approver `approver`'s signed decision (a DSSE envelope) on (release, stage); never
    /// changed once written. Returns where it is.
    fn add_decision(
        &self,
        pipeline: &PipelineName,
        release: &ReleaseId,
        stage: &StageName,
        approver: &str,
        at: crate::clock::Timestamp,
        envelope: &[u8],
    ) -> Result<String>;
    /// Every record under the decisions of (release, stage), as (where, bytes) — whatever is
    /// there, signed or not: counting judges them.
    fn decisions(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Vec<(String, Vec<u8>)>>;
    /// Every decision record of the pipeline, with its release and stage, in one listing.
    fn all_decisions(&self, pipeline: &PipelineName) -> Result<Vec<DecisionRecord>>;
    /// Stores what approvers of (release, stage) are asked to decide on (content-addressed,
    /// create-only); returns its digest.
    fn put_request(&self, request: &ApprovalRequest) -> Result<Sha256Digest>;
    fn request(
        &self,
        pipeline: &PipelineName,
        release: &ReleaseId,
        stage: &StageName,
        digest: &Sha256Digest,
    ) -> Result<Option<ApprovalRequest>>;
}

/// A stored decision record of one (release, stage): where it is and its bytes (signed or not).
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    pub release: ReleaseId,
    pub stage: StageName,
    pub location: String,
    pub bytes: Vec<u8>,
}

/// A stored record and the revision it was read at (the precondition of the next write).
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    /// Opaque to the engine; it only hands it back as the precondition of a write.
    pub revision: super::Version,
    pub value: T,
}
