//! File primitives the local backend is built on: create-only writes (temp file, then a hard
//! link that fails if the target exists: the filesystem's `If-None-Match: *`) and atomic
//! replace (temp file, then rename). A reader never sees a half-written file. The object port
//! on a directory (`objects.rs`) is built on these.

use std::io::Write;
use std::path::{Path, PathBuf};

use ferry_core::{Error, Result};

pub fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, &e))
}

fn temp_path(target: &Path) -> PathBuf {
    let mut raw = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    target.with_file_name(format!(".{name}.tmp-{}", hex::encode(raw)))
}

/// Writes `bytes` to a temp file beside `target` (flushed to disk) and returns its path.
pub fn write_temp(target: &Path, bytes: &[u8]) -> Result<PathBuf> {
    if let Some(parent) = target.parent() {
        ensure_dir(parent)?;
    }
    let tmp = temp_path(target);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("write", &tmp, &e)
    })?;
    Ok(tmp)
}

/// Moves a finished temp file to `target` unless `target` exists (then `false`); never overwrites.
pub fn link_new(tmp: &Path, target: &Path) -> Result<bool> {
    let result = std::fs::hard_link(tmp, target);
    let _ = std::fs::remove_file(tmp);
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("create", target, &e)),
    }
}

/// Creates `target` with `bytes`, atomically, unless it already exists (then `false`).
pub fn write_new(target: &Path, bytes: &[u8]) -> Result<bool> {
    let tmp = write_temp(target, bytes)?;
    link_new(&tmp, target)
}

/// Replaces `target` atomically (for files that are not part of any history, like keys).
pub fn write_replace(target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(target, bytes)?;
    std::fs::rename(&tmp, target).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io("replace", target, &e)
    })
}

/// Reads a file, `None` if it does not exist.
pub fn read_opt(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("read", path, &e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_new_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b.json");
        assert!(write_new(&p, b"one").unwrap());
        assert!(!write_new(&p, b"two").unwrap(), "never overwrites");
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("a")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["b.json"], "no temp files left");
    }
}
