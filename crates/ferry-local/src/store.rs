//! The local release store: artifacts content-addressed by sha256 under `store/blobs`, and
//! each release's manifest and DSSE envelope under `store/releases/ID`. Nothing is rewritten.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ferry_core::digest::hash_copy;
use ferry_core::ids::{ReleaseId, Sha256Digest};
use ferry_core::ports::{ReleaseStore, StoredRelease};
use ferry_core::{Error, Result};

use crate::fsutil::{self, Created};

pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    /// Where the bytes of `digest` live.
    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        let d = digest.as_str();
        self.root.join("blobs").join("sha256").join(&d[..2]).join(d)
    }

    fn release_dir(&self, id: &ReleaseId) -> PathBuf {
        self.root.join("releases").join(id.as_str())
    }

    pub fn manifest_path(&self, id: &ReleaseId) -> PathBuf {
        self.release_dir(id).join("manifest.json")
    }

    pub fn envelope_path(&self, id: &ReleaseId) -> PathBuf {
        self.release_dir(id).join("provenance.dsse.json")
    }

    /// Streams `from` into a temp file beside `target`, checking the digest on the way.
    fn copy_checked(from: &Path, target: &Path, expected: &Sha256Digest) -> Result<PathBuf> {
        let src = File::open(from).map_err(|e| Error::io("open", from, &e))?;
        let tmp = fsutil::write_temp(target, b"")?;
        let sink = std::fs::OpenOptions::new().write(true).truncate(true).open(&tmp).map_err(|e| Error::io("open", &tmp, &e))?;
        let (actual, _) = hash_copy(BufReader::new(src), std::io::BufWriter::new(sink)).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io("copy", from, &e)
        })?;
        if &actual != expected {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::verification(format!("`{}` hashes to `{actual}`, expected `{expected}`", from.display())));
        }
        Ok(tmp)
    }

    fn put_doc(&self, path: &Path, bytes: &[u8], what: &str, id: &ReleaseId) -> Result<()> {
        if fsutil::write_new(path, bytes)? == Created::AlreadyExists && fsutil::read_opt(path)?.as_deref() != Some(bytes) {
            return Err(Error::failed(format!(
                "release `{id}` already has a different {what} at `{}`; stored releases are never overwritten",
                path.display()
            )));
        }
        Ok(())
    }
}

impl ReleaseStore for LocalStore {
    fn put_artifact(&self, path: &Path, digest: &Sha256Digest) -> Result<()> {
        let target = self.blob_path(digest);
        if target.exists() {
            let (existing, _) = self.hash_artifact(digest)?;
            if &existing == digest {
                return Ok(());
            }
            return Err(Error::failed(format!("the store holds different bytes under `{digest}` at `{}`", target.display()))
                .hint("the store was modified behind ferry's back; run `ferry audit verify` and inspect it"));
        }
        let tmp = Self::copy_checked(path, &target, digest)?;
        fsutil::link_new(&tmp, &target)?;
        // Read-only as a reminder that blobs are immutable (it does not stop root).
        let _ = std::fs::metadata(&target).map(|m| {
            let mut p = m.permissions();
            p.set_readonly(true);
            std::fs::set_permissions(&target, p)
        });
        Ok(())
    }

    fn hash_artifact(&self, digest: &Sha256Digest) -> Result<(Sha256Digest, u64)> {
        let path = self.blob_path(digest);
        let f = File::open(&path).map_err(|e| Error::io("open stored artifact", &path, &e))?;
        hash_copy(BufReader::new(f), std::io::sink()).map_err(|e| Error::io("read", &path, &e))
    }

    fn fetch_artifact(&self, digest: &Sha256Digest, dest: &Path) -> Result<()> {
        let tmp = Self::copy_checked(&self.blob_path(digest), dest, digest)?;
        std::fs::rename(&tmp, dest).map_err(|e| Error::io("write", dest, &e))
    }

    fn put_release(&self, release: &StoredRelease) -> Result<()> {
        self.put_doc(&self.envelope_path(&release.id), &release.envelope, "envelope", &release.id)?;
        // The manifest last: a release is visible only once both documents are in place.
        self.put_doc(&self.manifest_path(&release.id), &release.manifest, "manifest", &release.id)
    }

    fn get_release(&self, id: &ReleaseId) -> Result<StoredRelease> {
        let manifest = fsutil::read_opt(&self.manifest_path(id))?.ok_or_else(|| {
            Error::invalid(format!("no release `{id}` in the store at `{}`", self.root.display()))
                .hint("`ferry status PIPELINE` lists the releases; check `FERRY_HOME`")
        })?;
        let envelope = fsutil::read_opt(&self.envelope_path(id))?
            .ok_or_else(|| Error::verification(format!("release `{id}` has no signed envelope in the store")))?;
        Ok(StoredRelease { id: id.clone(), manifest, envelope })
    }

    fn list_releases(&self) -> Result<Vec<ReleaseId>> {
        Ok(fsutil::list(&self.root.join("releases"))?.into_iter().filter_map(|n| n.parse().ok()).collect())
    }

    fn location(&self) -> String {
        self.root.display().to_string()
    }
}
