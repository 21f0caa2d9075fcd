//! The local audit log: `audit/SEQ.json`, one immutable file per event, each created only if
//! absent, so two writers racing for the same position cannot both win.

use std::path::PathBuf;

use ferry_core::audit::{self, Draft, Event};
use ferry_core::ports::AuditLog;
use ferry_core::{Error, Result};

use crate::fsutil::{self, Created};

pub struct LocalAudit {
    dir: PathBuf,
}

impl LocalAudit {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn checkpoint_dir(&self) -> PathBuf {
        self.dir.with_file_name("audit-checkpoints")
    }

    fn positions(&self) -> Result<Vec<(u64, String)>> {
        let mut out: Vec<(u64, String)> = fsutil::list(&self.dir)?
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").and_then(|s| s.parse().ok()).map(|p| (p, n)))
            .collect();
        out.sort();
        Ok(out)
    }
}

impl AuditLog for LocalAudit {
    fn append(&self, draft: Draft) -> Result<Event> {
        let last = || -> Result<Option<(u64, Vec<u8>)>> {
            match self.positions()?.pop() {
                None => Ok(None),
                Some((pos, name)) => Ok(Some((pos, fsutil::read_opt(&self.dir.join(name))?.unwrap_or_default()))),
            }
        };
        let create = |seq: u64, bytes: Vec<u8>| Ok(fsutil::write_new(&self.dir.join(format!("{seq:012}.json")), &bytes)? == Created::Yes);
        audit::append_to(draft, &self.location(), last, create)
    }

    fn entries(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for (pos, name) in self.positions()? {
            let path = self.dir.join(name);
            out.push((pos, fsutil::read_opt(&path)?.unwrap_or_default()));
        }
        Ok(out)
    }

    fn put_checkpoint(&self, seq: u64, envelope: &[u8]) -> Result<()> {
        let path = self.checkpoint_dir().join(format!("{seq:012}.dsse.json"));
        match fsutil::write_new(&path, envelope)? {
            Created::Yes => Ok(()),
            Created::AlreadyExists => Err(Error::failed(format!("a checkpoint at event {seq} already exists at `{}`", path.display()))),
        }
    }

    fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let dir = self.checkpoint_dir();
        let mut out = Vec::new();
        for name in fsutil::list(&dir)? {
            if let Some(seq) = name.strip_suffix(".dsse.json").and_then(|s| s.parse().ok()) {
                out.push((seq, fsutil::read_opt(&dir.join(&name))?.unwrap_or_default()));
            }
        }
        Ok(out)
    }

    fn location(&self) -> String {
        self.dir.display().to_string()
    }
}
