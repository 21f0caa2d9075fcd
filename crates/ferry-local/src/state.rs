//! Local promotion state and approvals under `pipelines/NAME/`. A stage record is a series of
//! numbered revisions, each created only if absent, so concurrent writers cannot lose an
//! update; approvals are one immutable file each.

use std::path::PathBuf;

use ferry_core::approval::{APPROVAL_VERSION, ApprovalRecord};
use ferry_core::ids::{PipelineName, ReleaseId, StageName};
use ferry_core::ports::{StateStore, Written};
use ferry_core::state::{Revision, STATE_VERSION, StageRecord, Versioned};
use ferry_core::{Error, Result};

use crate::fsutil::{self, Created};

pub struct LocalState {
    root: PathBuf,
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], path: &std::path::Path, expected_version: u32) -> Result<T> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| Error::invalid(format!("`{}` is not valid JSON: {e}", path.display())))?;
    let version = v.get("version").and_then(serde_json::Value::as_u64);
    if version != Some(u64::from(expected_version)) {
        return Err(Error::invalid(format!(
            "`{}` has unsupported version `{}`",
            path.display(),
            version.map_or("none".into(), |v| v.to_string())
        ))
        .hint(format!("this ferry reads version {expected_version}")));
    }
    serde_json::from_value(v).map_err(|e| Error::invalid(format!("`{}` is malformed: {e}", path.display())))
}

impl LocalState {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn stage_dir(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> PathBuf {
        self.root.join(pipeline.as_str()).join("state").join(release.as_str()).join(stage.as_str())
    }

    fn approvals_dir(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> PathBuf {
        self.root.join(pipeline.as_str()).join("approvals").join(release.as_str()).join(stage.as_str())
    }

    fn latest(&self, dir: &std::path::Path) -> Result<Option<(u64, PathBuf)>> {
        Ok(fsutil::list(dir)?
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").and_then(|r| r.parse::<u64>().ok()))
            .max()
            .map(|r| (r, dir.join(format!("{r:08}.json")))))
    }
}

impl StateStore for LocalState {
    fn read_stage(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Option<Versioned<StageRecord>>> {
        let Some((revision, path)) = self.latest(&self.stage_dir(pipeline, release, stage))? else { return Ok(None) };
        let bytes = fsutil::read_opt(&path)?.ok_or_else(|| Error::failed(format!("`{}` disappeared while reading", path.display())))?;
        Ok(Some(Versioned { revision: Revision(revision.to_string()), value: parse(&bytes, &path, STATE_VERSION)? }))
    }

    fn write_stage(&self, record: &StageRecord, expected: Option<&Revision>) -> Result<Written> {
        let dir = self.stage_dir(&record.pipeline, &record.release, &record.stage);
        let current = self.latest(&dir)?.map(|(r, _)| r.to_string());
        if current.as_deref() != expected.map(|r| r.0.as_str()) {
            return Ok(Written::Conflict);
        }
        let next = current.and_then(|r| r.parse::<u64>().ok()).map_or(1, |r| r + 1);
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::failed(format!("cannot encode state: {e}")))?;
        bytes.push(b'\n');
        match fsutil::write_new(&dir.join(format!("{next:08}.json")), &bytes)? {
            Created::Yes => Ok(Written::At(Revision(next.to_string()))),
            Created::AlreadyExists => Ok(Written::Conflict),
        }
    }

    fn list_stages(&self, pipeline: &PipelineName) -> Result<Vec<StageRecord>> {
        let state = self.root.join(pipeline.as_str()).join("state");
        let mut out = Vec::new();
        for release in fsutil::list(&state)? {
            let (Ok(r), release_dir) = (release.parse::<ReleaseId>(), state.join(&release)) else { continue };
            for stage in fsutil::list(&release_dir)? {
                let Ok(s) = stage.parse::<StageName>() else { continue };
                if let Some(v) = self.read_stage(pipeline, &r, &s)? {
                    out.push(v.value);
                }
            }
        }
        Ok(out)
    }

    fn add_approval(&self, record: &ApprovalRecord) -> Result<()> {
        let dir = self.approvals_dir(&record.pipeline, &record.release, &record.stage);
        let actor: String =
            record.actor.as_str().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).take(64).collect();
        let name = format!("{:013}-{actor}-{}.json", record.at.unix_seconds() * 1000, &fsutil::random_token()[..8]);
        let mut bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::failed(format!("cannot encode approval: {e}")))?;
        bytes.push(b'\n');
        match fsutil::write_new(&dir.join(name), &bytes)? {
            Created::Yes => Ok(()),
            Created::AlreadyExists => Err(Error::failed("approval file name collision; try again")),
        }
    }

    fn approvals(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Vec<ApprovalRecord>> {
        let dir = self.approvals_dir(pipeline, release, stage);
        let mut out = Vec::new();
        for name in fsutil::list(&dir)? {
            let path = dir.join(&name);
            if let Some(bytes) = fsutil::read_opt(&path)? {
                out.push(parse(&bytes, &path, APPROVAL_VERSION)?);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use ferry_core::state::StageStatus;

    use super::*;

    #[test]
    fn a_write_based_on_a_stale_revision_conflicts_instead_of_losing_an_update() {
        let dir = tempfile::tempdir().unwrap();
        let state = LocalState::new(dir.path().to_owned());
        let r = ReleaseId::for_manifest(&ferry_core::ids::Sha256Digest::of(b"m"));
        let mut rec = StageRecord::new(&"p".parse().unwrap(), &r, &"prod".parse().unwrap(), &"a".parse().unwrap());
        let rev = |n: u64| Revision(n.to_string());
        assert_eq!(state.write_stage(&rec, None).unwrap(), Written::At(rev(1)));
        assert_eq!(state.write_stage(&rec, None).unwrap(), Written::Conflict, "create-if-absent");
        rec.status = StageStatus::InProgress;
        assert_eq!(state.write_stage(&rec, Some(&rev(1))).unwrap(), Written::At(rev(2)));
        rec.status = StageStatus::Failed;
        assert_eq!(state.write_stage(&rec, Some(&rev(1))).unwrap(), Written::Conflict, "replace-if-unchanged");
        let read = state.read_stage(&rec.pipeline, &r, &rec.stage).unwrap().unwrap();
        assert_eq!((read.revision, read.value.status), (rev(2), StageStatus::InProgress));
    }
}
