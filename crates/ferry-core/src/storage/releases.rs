//! The release store over objects: artifacts content-addressed at `artifacts/sha256/DIGEST`
//! (streamed, checked on the way in and on every read), each release's manifest and DSSE
//! envelope at `releases/ID/`, and an index of each pipeline's releases at
//! `pipelines/NAME/releases/ID` so `ferry status` never reads another pipeline's manifests.
//! Release documents are never overwritten, so a process keeps those it wrote or read and
//! reads each from the store once (every use still verifies them). An artifact copy a
//! promotion fetched and verified is kept, as a hard link, for the process's next promotion of
//! the same release (`ferry run`): re-hashed there instead of read from the store again, and
//! fetched again if a deploy command changed it. The kept links go when the process does.

use std::path::Path;
use std::sync::Arc;

use super::{Created, create, with_retries};
use crate::error::{Error, Result};
use crate::ids::{PipelineName, ReleaseId, Sha256Digest};
use crate::ports::{ObjectStore, ReleaseStore, StoredRelease};

pub struct Releases {
    objects: Arc<dyn ObjectStore>,
    clock: Arc<dyn crate::ports::Clock>,
    /// The release documents this process wrote or read.
    known: std::sync::Mutex<std::collections::HashMap<ReleaseId, StoredRelease>>,
    /// Verified artifact copies kept for the next promotion.
    kept: Kept,
}

/// Hard links to the artifact copies this process verified, in a directory of its own under
/// the work directory (same filesystem as the copies); removed when the store is dropped.
struct Kept {
    root: Option<std::path::PathBuf>,
    dir: std::sync::OnceLock<std::path::PathBuf>,
}

impl Kept {
    fn path(&self, digest: &Sha256Digest) -> Option<std::path::PathBuf> {
        let root = self.root.as_ref()?;
        let dir = self.dir.get_or_init(|| root.join(format!(".verified-{}", &super::token()[..12])));
        Some(dir.join(digest.as_str()))
    }

    /// Links the verified copy at `copy` (best effort: without it, the next promotion reads
    /// the store).
    fn keep(&self, digest: &Sha256Digest, copy: &Path) {
        let Some(link) = self.path(digest) else { return };
        let _ = std::fs::create_dir_all(link.parent().unwrap_or(Path::new(".")));
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::hard_link(copy, &link);
    }

    /// A copy of the kept bytes of `digest` at `tmp`, if they still hash to it.
    fn reuse(&self, digest: &Sha256Digest, tmp: &Path) -> Option<(Sha256Digest, u64)> {
        let link = self.path(digest)?;
        std::fs::hard_link(&link, tmp).ok()?;
        match crate::digest::hash_file(tmp) {
            Ok((d, size)) if &d == digest => Some((d, size)),
            _ => {
                // Changed since (a deploy command wrote to its copy): fetched again.
                let _ = std::fs::remove_file(tmp);
                let _ = std::fs::remove_file(&link);
                None
            }
        }
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(dir) = self.dir.get() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn artifact_key(digest: &Sha256Digest) -> String {
    format!("artifacts/sha256/{digest}")
}

fn manifest_key(id: &ReleaseId) -> String {
    format!("releases/{id}/manifest.json")
}

fn envelope_key(id: &ReleaseId) -> String {
    format!("releases/{id}/provenance.dsse.json")
}

impl Releases {
    pub fn new(objects: Arc<dyn ObjectStore>, clock: Arc<dyn crate::ports::Clock>, keep_copies: Option<std::path::PathBuf>) -> Self {
        Self { objects, clock, known: std::sync::Mutex::default(), kept: Kept { root: keep_copies, dir: std::sync::OnceLock::new() } }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<ReleaseId, StoredRelease>> {
        self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stores a release document unless the same bytes are there; different bytes are refused.
    fn put_doc(&self, key: &str, bytes: &[u8], id: &ReleaseId) -> Result<()> {
        match create(self.objects.as_ref(), key, bytes)? {
            Created::Ours(_) => Ok(()),
            Created::Theirs(_) => Err(Error::failed(format!(
                "release `{id}` already has a different `{}`; stored releases are never overwritten",
                self.objects.location(key)
            ))),
        }
    }

    fn missing(&self, digest: &Sha256Digest) -> Error {
        Error::verification(format!("artifact `{digest}` is missing from the store at `{}`", self.objects.location(&artifact_key(digest))))
    }
}

impl ReleaseStore for Releases {
    fn put_artifact(&self, path: &Path, digest: &Sha256Digest) -> Result<()> {
        // Content-addressed: bytes already stored under this digest are these bytes (every read re-hashes them).
        self.objects.create_file(&artifact_key(digest), path, digest).map(|_| ())
    }

    fn ingest_artifact(&self, path: &Path) -> Result<(Sha256Digest, u64)> {
        self.objects.ingest_file(path, &artifact_key)
    }

    fn hash_artifact(&self, digest: &Sha256Digest) -> Result<(Sha256Digest, u64)> {
        with_retries(self.clock.as_ref(), || {
            let mut sink = crate::digest::Hashing::new(std::io::sink());
            match self.objects.read_into(&artifact_key(digest), &mut sink)? {
                None => Err(self.missing(digest)),
                Some(_) => {
                    let (d, size, _) = sink.finish();
                    Ok((d, size))
                }
            }
        })
    }

    fn fetch_artifact(&self, digest: &Sha256Digest, dest: &Path) -> Result<(Sha256Digest, u64)> {
        let parent = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, &e))?;
        let tmp = dest.with_extension("ferry-partial");
        let _ = std::fs::remove_file(&tmp);
        if let Some(found) = self.kept.reuse(digest, &tmp) {
            std::fs::rename(&tmp, dest).map_err(|e| Error::io("write", dest, &e))?;
            return Ok(found);
        }
        let result = with_retries(self.clock.as_ref(), || {
            self.objects.copy_to_file(&artifact_key(digest), &tmp)?.ok_or_else(|| self.missing(digest))
        });
        match result {
            Ok((actual, size)) if &actual == digest => {
                std::fs::rename(&tmp, dest).map_err(|e| Error::io("write", dest, &e))?;
                self.kept.keep(digest, dest);
                Ok((actual, size))
            }
            Ok(other) => {
                let _ = std::fs::remove_file(&tmp);
                Ok(other)
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(e)
            }
        }
    }

    fn put_release(&self, pipeline: &PipelineName, release: &StoredRelease) -> Result<()> {
        self.put_doc(&envelope_key(&release.id), &release.envelope, &release.id)?;
        // The manifest last: a release is visible only once both documents are in place.
        self.put_doc(&manifest_key(&release.id), &release.manifest, &release.id)?;
        self.put_doc(&format!("pipelines/{}/releases/{}", pipeline, release.id), b"", &release.id)?;
        self.known().insert(release.id.clone(), release.clone());
        Ok(())
    }

    fn get_release(&self, id: &ReleaseId) -> Result<StoredRelease> {
        if let Some(r) = self.known().get(id) {
            return Ok(r.clone());
        }
        let docs = with_retries(self.clock.as_ref(), || self.objects.get_many(&[manifest_key(id), envelope_key(id)]))?;
        let mut docs = docs.into_iter();
        let manifest = docs.next().flatten().ok_or_else(|| {
            Error::invalid(format!("no release `{id}` in the store at `{}`", self.location()))
                .hint("`ferry status PIPELINE` lists the releases; check `FERRY_HOME` or the pipeline's store")
        })?;
        let envelope =
            docs.next().flatten().ok_or_else(|| Error::verification(format!("release `{id}` has no signed envelope in the store")))?;
        let release = StoredRelease { id: id.clone(), manifest: manifest.bytes, envelope: envelope.bytes };
        self.known().insert(id.clone(), release.clone());
        Ok(release)
    }

    fn get_releases(&self, ids: &[ReleaseId]) -> Result<Vec<Option<StoredRelease>>> {
        let keys: Vec<String> = ids.iter().flat_map(|id| [manifest_key(id), envelope_key(id)]).collect();
        let mut docs = with_retries(self.clock.as_ref(), || self.objects.get_many(&keys))?.into_iter();
        Ok(ids
            .iter()
            .map(|id| match (docs.next().flatten(), docs.next().flatten()) {
                (Some(m), Some(e)) => Some(StoredRelease { id: id.clone(), manifest: m.bytes, envelope: e.bytes }),
                _ => None,
            })
            .collect())
    }

    fn list_releases(&self, pipeline: &PipelineName) -> Result<Vec<ReleaseId>> {
        let prefix = format!("pipelines/{pipeline}/releases/");
        Ok(self.objects.list(&prefix, None)?.iter().filter_map(|k| k.strip_prefix(&prefix)?.parse().ok()).collect())
    }

    fn location(&self) -> String {
        self.objects.location("")
    }
}
