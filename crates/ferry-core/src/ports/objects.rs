//! The object port: the one thing a storage backend implements. Keys are `/`-separated paths
//! relative to the store's root (a directory, a bucket prefix); every write is conditional
//! (create-if-absent, replace-if-version, delete-if-version), so the records built on top —
//! releases, state, approvals, locks, the audit log — are written once, in `crate::storage`,
//! whatever keeps the bytes. A third backend (DynamoDB, GCS, Azure Blob) is one more
//! implementation of this trait: each of them has a create-only put and a compare-and-swap on
//! an opaque version (a generation number, an ETag, a conditional expression).

use std::path::Path;

use crate::error::Result;
use crate::ids::Sha256Digest;

/// Which stored version of an object was read: an ETag on S3, a content hash on the
/// filesystem. Opaque: it is only handed back as the precondition of a write.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(pub String);

/// An object's bytes and the version they were read at.
#[derive(Debug, Clone)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub version: Version,
}

/// Outcome of a conditional write (the only such enum in ferry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Written (or deleted); the new version.
    Done(Version),
    /// The precondition failed: the key exists (create), or holds another version (replace,
    /// delete), or is gone (replace, delete). Re-read and decide again.
    Conflict,
}

/// Conditional reads and writes of small objects, plus streamed artifacts.
///
/// A backend may lose an answer after the write happened (a dropped connection, a timeout
/// after S3 committed): a retry then reports `Conflict`. The storage layer resolves that by
/// re-reading and comparing with what it meant to write, so adapters stay simple.
pub trait ObjectStore: Send + Sync {
    /// The object at `key`, or `None` if there is none.
    fn get(&self, key: &str) -> Result<Option<Object>>;
    /// Several objects at once (the S3 adapter fetches them concurrently), in `keys` order.
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Object>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    /// Every key that starts with `prefix` (at any depth), in byte order, after `after` when given.
    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<String>>;
    /// Stores `bytes` at `key` only if no object is there.
    fn create(&self, key: &str, bytes: &[u8]) -> Result<Write>;
    /// Replaces the object at `key` only if it is still at `expected`.
    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<Write>;
    /// Deletes the object at `key` only if it is still at `expected`.
    fn delete(&self, key: &str, expected: &Version) -> Result<Write>;
    /// Streams the file at `path` to `key` if absent, checking on the way that it hashes to
    /// `digest` (a verification error if not; nothing is stored then).
    fn create_file(&self, key: &str, path: &Path, digest: &Sha256Digest) -> Result<Write>;
    /// Streams the file at `path` to the key `key_for` names after its digest, if absent;
    /// returns its digest and size. An adapter that can hash while it copies reads the file
    /// once (the directory adapter); this default hashes first, then copies.
    fn ingest_file(&self, path: &Path, key_for: &dyn Fn(&Sha256Digest) -> String) -> Result<(Sha256Digest, u64)> {
        let (digest, size) = crate::digest::hash_file(path)?;
        self.create_file(&key_for(&digest), path, &digest)?;
        Ok((digest, size))
    }
    /// Copies the object at `key` to a new file `dest`, hashing it on the way: its digest and
    /// size, or `None` if there is none. An adapter that can copy in the kernel meanwhile does
    /// (the directory adapter); this default streams it through `read_into`, the copy written
    /// on a thread of its own while the bytes are hashed.
    fn copy_to_file(&self, key: &str, dest: &Path) -> Result<Option<(Sha256Digest, u64)>> {
        let file = std::fs::File::create(dest).map_err(|e| crate::Error::io("create", dest, &e))?;
        let mut sink = crate::digest::Hashing::new(crate::digest::Background::new(file));
        if self.read_into(key, &mut sink)?.is_none() {
            return Ok(None);
        }
        let (digest, size, mut out) = sink.finish();
        std::io::Write::flush(&mut out).and_then(|()| out.finish()).map_err(|e| crate::Error::io("write", dest, &e))?;
        Ok(Some((digest, size)))
    }
    /// Streams the object at `key` into `sink`; its size, or `None` if there is none.
    fn read_into(&self, key: &str, sink: &mut dyn std::io::Write) -> Result<Option<u64>>;
    /// Where `key` is, for messages (a path or an `s3://` URL).
    fn location(&self, key: &str) -> String;
}
