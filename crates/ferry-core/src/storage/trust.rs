//! Published trust roots over objects: `PIPELINE/SERIAL.json` (serial zero-padded to 8 digits)
//! under the trust prefix, each created once and never replaced; the latest is the highest
//! serial. Two administrators publishing at once: the second finds the serial taken and is
//! told to look again.

use std::sync::Arc;

use super::{Created, create, parse, to_json, with_retries};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{Actor, PipelineName};
use crate::ports::{Clock, ObjectStore, TrustStore};
use crate::trust::{Published, TRUST_VERSION, TrustRoot};

pub struct Trust {
    objects: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    /// Each pipeline's latest root, read once per process (every promotion of a `ferry run`
    /// checks it; an administrator's publication takes effect from the next command on).
    current: std::sync::Mutex<std::collections::HashMap<PipelineName, Option<Published>>>,
    /// Whether `current` is kept (a command) or read each time (a long-lived reader).
    cache: bool,
}

impl Trust {
    pub fn new(objects: Arc<dyn ObjectStore>, clock: Arc<dyn Clock>) -> Self {
        Self { objects, clock, current: std::sync::Mutex::default(), cache: true }
    }

    /// For a process that outlives publications (the gatekeeper): the latest root is read on
    /// every `current`, so a new root — a revoked approver, a freeze — counts at once.
    pub fn uncached(objects: Arc<dyn ObjectStore>, clock: Arc<dyn Clock>) -> Self {
        Self { cache: false, ..Self::new(objects, clock) }
    }

    fn read_current(&self, pipeline: &PipelineName) -> Result<Option<Published>> {
        match self.serials(pipeline)?.last() {
            None => Ok(None),
            Some((_, key)) => self.read(key),
        }
    }

    fn serials(&self, pipeline: &PipelineName) -> Result<Vec<(u64, String)>> {
        let prefix = format!("{pipeline}/");
        let mut found: Vec<(u64, String)> = with_retries(self.clock.as_ref(), || self.objects.list(&prefix, None))?
            .into_iter()
            .filter_map(|k| Some((k.strip_prefix(&prefix)?.strip_suffix(".json")?.parse().ok()?, k.clone())))
            .collect();
        found.sort();
        Ok(found)
    }

    fn read(&self, key: &str) -> Result<Option<Published>> {
        let Some(o) = with_retries(self.clock.as_ref(), || self.objects.get(key))? else { return Ok(None) };
        parse(&o.bytes, &self.objects.location(key), TRUST_VERSION).map(Some)
    }
}

impl TrustStore for Trust {
    fn current(&self, pipeline: &PipelineName) -> Result<Option<Published>> {
        if !self.cache {
            return self.read_current(pipeline);
        }
        if let Some(c) = self.current.lock().ok().and_then(|m| m.get(pipeline).cloned()) {
            return Ok(c);
        }
        let found = self.read_current(pipeline)?;
        if let Ok(mut m) = self.current.lock() {
            m.insert(pipeline.clone(), found.clone());
        }
        Ok(found)
    }

    fn pipelines(&self) -> Result<Vec<PipelineName>> {
        let mut names: Vec<PipelineName> = with_retries(self.clock.as_ref(), || self.objects.list("", None))?
            .iter()
            .filter_map(|k| k.split_once('/').and_then(|(name, _)| name.parse().ok()))
            .collect();
        names.dedup();
        Ok(names)
    }

    fn history(&self, pipeline: &PipelineName) -> Result<Vec<Published>> {
        let mut out = Vec::new();
        for (_, key) in self.serials(pipeline)? {
            out.extend(self.read(&key)?);
        }
        Ok(out)
    }

    fn publish(&self, root: &TrustRoot, by: &Actor, at: Timestamp) -> Result<(Published, bool)> {
        let current = self.read_current(&root.pipeline)?;
        if let Some(c) = current.as_ref().filter(|c| &c.root == root) {
            return Ok((c.clone(), false));
        }
        let serial = current.map_or(1, |c| c.serial + 1);
        let published = Published { version: TRUST_VERSION, serial, published_at: at, published_by: by.clone(), root: root.clone() };
        let key = format!("{}/{serial:08}.json", root.pipeline);
        match create(self.objects.as_ref(), &key, &to_json(&published)?)? {
            Created::Ours(_) => {
                if let Ok(mut m) = self.current.lock() {
                    m.insert(root.pipeline.clone(), Some(published.clone()));
                }
                Ok((published, true))
            }
            Created::Theirs(_) => Err(Error::failed(format!(
                "trust root {serial} of `{}` was published by someone else meanwhile ({})",
                root.pipeline,
                self.objects.location(&key)
            ))
            .hint("look at it with `ferry trust show`, then publish again if yours is still meant")),
        }
    }

    fn location(&self) -> String {
        self.objects.location("")
    }
}
