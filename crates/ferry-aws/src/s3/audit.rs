//! The audit log in S3 (the security account's bucket): one object per event at
//! `audit/SEQ.json`, created with `If-None-Match: *`, so nothing is ever overwritten and two
//! writers racing for one position cannot both win. `ferry audit verify` works from the
//! bucket alone and reports gaps.

use ferry_core::audit::{self, Draft, Event};
use ferry_core::ports::AuditLog;
use ferry_core::{Error, Result};

use super::{Bucket, Put};

#[derive(Debug, Clone)]
pub struct S3Audit {
    pub bucket: Bucket,
}

impl S3Audit {
    fn positions(&self) -> Result<Vec<(u64, String)>> {
        let mut out: Vec<(u64, String)> = self
            .bucket
            .list("audit/")?
            .into_iter()
            .filter_map(|k| {
                k.strip_prefix("audit/").and_then(|n| n.strip_suffix(".json")).and_then(|n| n.parse().ok()).map(|p| (p, k.clone()))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

impl AuditLog for S3Audit {
    fn append(&self, draft: Draft) -> Result<Event> {
        let last = || -> Result<Option<(u64, Vec<u8>)>> {
            match self.positions()?.pop() {
                None => Ok(None),
                Some((pos, key)) => Ok(Some((pos, self.bucket.get(&key)?.map(|(b, _)| b).unwrap_or_default()))),
            }
        };
        let create = |seq: u64, bytes: Vec<u8>| Ok(matches!(self.bucket.put(&format!("audit/{seq:012}.json"), bytes, None)?, Put::Done(_)));
        audit::append_to(draft, &self.location(), last, create)
    }

    fn entries(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for (pos, key) in self.positions()? {
            out.push((pos, self.bucket.get(&key)?.map(|(b, _)| b).unwrap_or_default()));
        }
        Ok(out)
    }

    fn put_checkpoint(&self, seq: u64, envelope: &[u8]) -> Result<()> {
        match self.bucket.put(&format!("audit-checkpoints/{seq:012}.dsse.json"), envelope.to_vec(), None)? {
            Put::Done(_) => Ok(()),
            Put::PreconditionFailed => Err(Error::failed(format!("a checkpoint at event {seq} already exists"))),
        }
    }

    fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>> {
        let mut out = Vec::new();
        for key in self.bucket.list("audit-checkpoints/")? {
            if let Some(seq) =
                key.strip_prefix("audit-checkpoints/").and_then(|n| n.strip_suffix(".dsse.json")).and_then(|n| n.parse().ok())
            {
                out.push((seq, self.bucket.get(&key)?.map(|(b, _)| b).unwrap_or_default()));
            }
        }
        Ok(out)
    }

    fn location(&self) -> String {
        self.bucket.url("audit/")
    }
}
