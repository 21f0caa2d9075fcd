//! The crash tests' view of the object port: every write that succeeded is followed by a call
//! to a hook, so a test can stop the process right after any durable step (`ferry` aborts
//! after the N-th write with `FERRY_CRASH_AFTER_WRITES=N`) and check what the next run sees.

use std::path::Path;
use std::sync::Arc;

use super::AfterWrite;
use crate::error::Result;
use crate::ids::Sha256Digest;
use crate::ports::{Object, ObjectStore, Version, Write};

pub(super) struct Watched {
    pub(super) inner: Arc<dyn ObjectStore>,
    pub(super) hook: AfterWrite,
}

impl Watched {
    fn after(&self, w: Result<Write>) -> Result<Write> {
        if let Ok(Write::Done(_)) = &w {
            (self.hook)();
        }
        w
    }
}

impl ObjectStore for Watched {
    fn get(&self, key: &str) -> Result<Option<Object>> {
        self.inner.get(key)
    }
    fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Object>>> {
        self.inner.get_many(keys)
    }
    fn list(&self, prefix: &str, after: Option<&str>) -> Result<Vec<String>> {
        self.inner.list(prefix, after)
    }
    fn create(&self, key: &str, bytes: &[u8]) -> Result<Write> {
        self.after(self.inner.create(key, bytes))
    }
    fn replace(&self, key: &str, bytes: &[u8], expected: &Version) -> Result<Write> {
        self.after(self.inner.replace(key, bytes, expected))
    }
    fn delete(&self, key: &str, expected: &Version) -> Result<Write> {
        self.after(self.inner.delete(key, expected))
    }
    fn create_file(&self, key: &str, path: &Path, digest: &Sha256Digest) -> Result<Write> {
        self.after(self.inner.create_file(key, path, digest))
    }
    fn read_into(&self, key: &str, sink: &mut dyn std::io::Write) -> Result<Option<u64>> {
        self.inner.read_into(key, sink)
    }
    fn location(&self, key: &str) -> String {
        self.inner.location(key)
    }
}
