//! The object port on a directory: a key is a path under the root. Create-if-absent is a
//! finished temp file hard-linked into place (the link fails if the target exists: the
//! filesystem's `If-None-Match: *`); replace-if-version and delete-if-version hold an
//! exclusive `flock` on a sidecar `.NAME.lock` while they compare and rename or remove. A
//! version is the sha256 of the content. Readers never see a half-written file.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use ferry_core::digest::hash_copy;
use ferry_core::ids::Sha256Digest;
use ferry_core::ports::{Object, ObjectStore, Version, Write};
use ferry_core::{Error, Result};

use crate::fsutil;

#[derive(Debug, Clone)]
pub struct FsObjects {
    root: PathBuf,
}

fn version_of(bytes: &[u8]) -> Version {
    Version(Sha256Digest::of(bytes).to_string())
}

impl FsObjects {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        if key.split('/').any(|part| part == ".." || part == ".") || key.starts_with('/') {
            return Err(Error::invalid(format!("object key `{key}` leaves the store")));
        }
        Ok(self.root.join(key))
    }

    /// Runs `f` holding the exclusive lock of `path`'s sidecar file.
    fn locked<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let lock_path = path.with_file_name(format!(".{name}.lock"));
        if let Some(dir) = path.parent() {
            fsutil::ensure_dir(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("open", &lock_path, &e))?;
        file.lock().map_err(|e| Error::io("lock", &lock_path, &e))?;
        let result = f();
        let _ = file.unlock();
        result
    }

    fn walk(dir: &Path, key_dir: &str, out: &mut Vec<String>) -> Result<()> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("list", dir, &e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", dir, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let key = format!("{key_dir}{name}");
            if entry.file_type().map_err(|e| Error::io("list", dir, &e))?.is_dir() {
                Self::walk(&entry.path(), &format!("{key}/"), out)?;
            } else {
                out.push(key);
            }
        }
        Ok(())
    }
}

impl ObjectStore for FsObjects {
    fn get(&self, key: &str) -> Result<Option<Object>> {
        Ok(fsutil::read_opt(&self.path(key)?)?.map(|bytes| Object { version: version_of(&bytes), bytes }))
    }

    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<String>> {
        // Walk the deepest directory the prefix names, then filter by the rest of it.
        let dir = prefix.rfind('/').map_or("", |i| &prefix[..=i]);
        let mut keys = Vec::new();
        Self::walk(&self.path(dir.trim_end_matches('/'))?, dir, &mut keys)?;
        keys.retain(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a));
        keys.sort();
        Ok(keys)
    }

    fn create(&self, key: &str, bytes: &[u8]) -> Result<Write> {
        Ok(if fsutil::write_new(&self.path(key)?, bytes)? { Write::Done(version_of(bytes)) } else { Write::Conflict })
    }

    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<Write> {
        let path = self.path(key)?;
        Self::locked(&path, || {
            match fsutil::read_opt(&path)? {
                Some(current) if &version_of(&current) == expected => {}
                _ => return Ok(Write::Conflict),
            }
            fsutil::write_replace(&path, bytes)?;
            Ok(Write::Done(version_of(bytes)))
        })
    }

    fn delete(&self, key: &str, expected: &Version) -> Result<Write> {
        let path = self.path(key)?;
        Self::locked(&path, || {
            match fsutil::read_opt(&path)? {
                Some(current) if &version_of(&current) == expected => {}
                _ => return Ok(Write::Conflict),
            }
            std::fs::remove_file(&path).map_err(|e| Error::io("remove", &path, &e))?;
            Ok(Write::Done(expected.clone()))
        })
    }

    fn create_file(&self, key: &str, from: &Path, digest: &Sha256Digest) -> Result<Write> {
        let target = self.path(key)?;
        if target.exists() {
            return Ok(Write::Conflict);
        }
        let src = std::fs::File::open(from).map_err(|e| Error::io("open", from, &e))?;
        let tmp = fsutil::write_temp(&target, b"")?;
        // Flushed to disk before it is linked into place: a stored blob survives a crash.
        let copied = std::fs::OpenOptions::new().write(true).truncate(true).open(&tmp).and_then(|sink| {
            let mut out = std::io::BufWriter::new(sink);
            let hashed = hash_copy(BufReader::new(src), &mut out)?;
            out.into_inner().map_err(std::io::IntoInnerError::into_error)?.sync_all()?;
            Ok(hashed)
        });
        let actual = match copied {
            Ok((actual, _)) => actual,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io("copy", from, &e));
            }
        };
        if &actual != digest {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::verification(format!("`{}` hashes to `{actual}`, expected `{digest}`", from.display())));
        }
        let created = fsutil::link_new(&tmp, &target)?;
        // Read-only as a reminder that stored artifacts are immutable (it does not stop root).
        let _ = std::fs::metadata(&target).map(|m| {
            let mut p = m.permissions();
            p.set_readonly(true);
            std::fs::set_permissions(&target, p)
        });
        Ok(if created { Write::Done(Version(digest.to_string())) } else { Write::Conflict })
    }

    /// One read of the file by ferry: it is hashed while the kernel copies it into a
    /// temporary file of the store (`copy_file_range`, a reflink where the file system has
    /// them) on a thread of its own; the copy is flushed to disk, then linked under the key its
    /// digest names (if that is new). A file that changes meanwhile (its size or modification
    /// time) is refused, so the stored bytes are the hashed ones; promotions re-hash them anyway.
    fn ingest_file(&self, from: &Path, key_for: &dyn Fn(&Sha256Digest) -> String) -> Result<(Sha256Digest, u64)> {
        let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| Ok((m.len(), m.modified()?))).map_err(|e| Error::io("read", p, &e));
        let before = stamp(from)?;
        let src = std::fs::File::open(from).map_err(|e| Error::io("open", from, &e))?;
        let tmp = fsutil::write_temp(&self.root.join(".incoming").join(ferry_core::storage::token()), b"")?;
        let copied = std::thread::scope(|s| {
            let copy = s.spawn(|| {
                std::fs::copy(from, &tmp)?;
                std::fs::File::open(&tmp)?.sync_all()
            });
            let hashed = hash_copy(std::io::BufReader::with_capacity(1 << 20, src), std::io::sink());
            let copied = copy.join().unwrap_or_else(|_| Err(std::io::Error::other("the copy thread panicked")));
            copied.and(hashed)
        });
        let (digest, size) = match copied {
            Ok(hashed) if stamp(from)? == before && stamp(&tmp)?.0 == before.0 => hashed,
            Ok(_) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::failed(format!("`{}` changed while it was stored", from.display()))
                    .hint("nothing was stored; make sure the build has finished writing its artifacts, then build again"));
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io("copy", from, &e));
            }
        };
        let target = self.path(&key_for(&digest))?;
        if let Some(parent) = target.parent() {
            fsutil::ensure_dir(parent)?;
        }
        if fsutil::link_new(&tmp, &target)? {
            let _ = std::fs::metadata(&target).map(|m| {
                let mut p = m.permissions();
                p.set_readonly(true);
                std::fs::set_permissions(&target, p)
            });
        }
        Ok((digest, size))
    }

    /// The kernel copies the object (`copy_file_range`, a reflink where the file system has
    /// them) while ferry hashes it; an object that changes meanwhile is reported as such.
    fn copy_to_file(&self, key: &str, dest: &Path) -> Result<Option<(Sha256Digest, u64)>> {
        let path = self.path(key)?;
        let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| Ok((m.len(), m.modified()?)));
        let before = match stamp(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read", &path, &e)),
        };
        let src = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, &e))?;
        let task = format!("verifying {}", dest.file_name().map_or_else(|| key.to_owned(), |n| n.to_string_lossy().into_owned()));
        let copied = std::thread::scope(|s| {
            let copy = s.spawn(|| std::fs::copy(&path, dest));
            let hashed = ferry_core::digest::hash_reporting(std::io::BufReader::with_capacity(1 << 20, src), &task, before.0);
            let copied = copy.join().unwrap_or_else(|_| Err(std::io::Error::other("the copy thread panicked")));
            copied.and(hashed)
        });
        let hashed = copied.map_err(|e| Error::io("copy", &path, &e))?;
        if stamp(&path).ok() != Some(before) || stamp(dest).map(|s| s.0).ok() != Some(before.0) {
            return Err(Error::verification(format!("`{}` changed while it was copied", path.display())));
        }
        Ok(Some(hashed))
    }

    fn read_into(&self, key: &str, sink: &mut dyn std::io::Write) -> Result<Option<u64>> {
        let path = self.path(key)?;
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &path, &e)),
        };
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match std::io::Read::read(&mut file, &mut buf) {
                Ok(0) => return Ok(Some(size)),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io("read", &path, &e)),
            };
            sink.write_all(&buf[..n]).map_err(|e| Error::io("copy", &path, &e))?;
            size += n as u64;
        }
    }

    fn location(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let o = FsObjects::new(dir.path().to_owned());
        assert!(o.get("../x").is_err() && o.create("a/../../x", b"").is_err() && o.get("/etc/passwd").is_err());
    }

    /// Each writer writes bytes that differ from the original: versions are content hashes, so
    /// a replacement by identical bytes leaves the version as it was (a no-op, harmlessly won).
    #[test]
    fn of_racing_replacements_of_one_version_exactly_one_wins() {
        let dir = tempfile::tempdir().unwrap();
        let o = FsObjects::new(dir.path().to_owned());
        let Write::Done(v) = o.create("k", b"0").unwrap() else { panic!("not created") };
        let wins: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let (o, v) = (&o, &v);
                    s.spawn(move || matches!(o.replace("k", format!("v{i}").as_bytes(), v).unwrap(), Write::Done(_)))
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(wins, 1);
    }
}
