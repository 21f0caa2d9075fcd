//! The release store port: content-addressed artifacts and each release's manifest and
//! envelope. Written once, over the object port, in `crate::storage::releases`.

use std::path::Path;

use crate::error::Result;
use crate::ids::{PipelineName, ReleaseId, Sha256Digest};

/// A release as stored: the exact manifest bytes and DSSE envelope bytes.
#[derive(Debug, Clone)]
pub struct StoredRelease {
    pub id: ReleaseId,
    pub manifest: Vec<u8>,
    pub envelope: Vec<u8>,
}

/// The central, content-addressed store of artifacts and releases. Writes never overwrite.
pub trait ReleaseStore: Send + Sync {
    /// Stores the file at `path` under `digest`, streaming it and checking it hashes to
    /// `digest`. Storing identical bytes again is a no-op.
    fn put_artifact(&self, path: &Path, digest: &Sha256Digest) -> Result<()>;
    /// Stores the file at `path` under the digest it hashes to (computed on the way, where the
    /// backend can: one read); returns digest and size.
    fn ingest_artifact(&self, path: &Path) -> Result<(Sha256Digest, u64)>;
    /// Re-hashes the stored artifact by streaming it; returns what the bytes hash to. A missing
    /// artifact is a verification error; one that cannot be read (after retries) an I/O failure.
    fn hash_artifact(&self, digest: &Sha256Digest) -> Result<(Sha256Digest, u64)>;
    /// Copies the stored artifact to `dest`, hashing it on the way, and returns what its bytes
    /// hash to and their size; `dest` is kept only if they hash to `digest` (on a mismatch
    /// nothing is left for the caller, who reports it). A missing artifact is a verification
    /// error; one that cannot be read (after retries) an I/O failure.
    fn fetch_artifact(&self, digest: &Sha256Digest, dest: &Path) -> Result<(Sha256Digest, u64)>;
    /// Stores the envelope, then the manifest (a release is visible once its manifest is),
    /// then the entry in `pipeline`'s index of releases.
    fn put_release(&self, pipeline: &PipelineName, release: &StoredRelease) -> Result<()>;
    fn get_release(&self, id: &ReleaseId) -> Result<StoredRelease>;
    /// Several releases at once (read concurrently where the backend can); a missing one is `None`.
    fn get_releases(&self, ids: &[ReleaseId]) -> Result<Vec<Option<StoredRelease>>>;
    /// The releases `pipeline` built, from its index (no other pipeline's manifest is read).
    fn list_releases(&self, pipeline: &PipelineName) -> Result<Vec<ReleaseId>>;
    /// Where the store is, for messages (a directory or an `s3://` URL).
    fn location(&self) -> String;
}
