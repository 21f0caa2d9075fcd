//! The pipeline model (`pipelines/*.yaml`, `version: 1`): accounts, build, stages, approval
//! policies, gates and deploy actions. Values here are already validated; see `parse` for how
//! a file becomes a `Pipeline` and `schema` for the JSON Schema of the format.

mod keys;
mod parse;
pub mod schema;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::ids::{AccountId, Actor, PipelineName, Region, StageName};
pub use parse::{load, parse_str};

/// A validated pipeline definition.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    /// The file it was read from (as given on the command line).
    pub file: PathBuf,
    pub name: PipelineName,
    pub backend: Backend,
    pub accounts: BTreeMap<String, AccountId>,
    pub signing: Signing,
    pub build: Build,
    pub stages: Vec<Stage>,
    pub audit: Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    Aws,
}

#[derive(Debug, Clone, Serialize)]
pub struct Signing {
    /// The name of the private key in `$FERRY_HOME/keys` (local signing).
    pub key: String,
    /// The pinned public key, relative to the pipeline file; verification trusts only this.
    pub public_key: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub account_alias: String,
    pub account: AccountId,
    pub command: Option<String>,
    /// Relative to the pipeline file's directory.
    pub working_dir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub artifacts: Vec<ArtifactDecl>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactDecl {
    pub name: String,
    pub source: ArtifactSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactSource {
    /// One file, relative to the working directory.
    Path(String),
    /// Every file matching the pattern; each becomes `NAME/RELATIVE_PATH`.
    Glob(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub name: StageName,
    pub account_alias: String,
    pub account: AccountId,
    pub region: Option<Region>,
    /// Stages this one requires to have succeeded for the same release.
    pub requires: Vec<StageName>,
    pub approval: Option<ApprovalPolicy>,
    pub gates: Vec<Gate>,
    pub deploy: Vec<Action>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalPolicy {
    pub required: u32,
    /// Who may approve; empty means anyone except the excluded identities.
    pub approvers: Vec<Actor>,
    #[serde(with = "humantime_serde_compat")]
    pub expires: Duration,
    pub allow_self_approval: bool,
}

/// A check run before deploying; every gate must pass.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Gate {
    Command {
        run: String,
        #[serde(with = "humantime_serde_compat::option")]
        timeout: Option<Duration>,
    },
}

/// One deploy step of a stage. Issue #4 adds the AWS actions beside `command`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Action {
    Command {
        run: String,
        env: BTreeMap<String, String>,
        #[serde(with = "humantime_serde_compat::option")]
        timeout: Option<Duration>,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Command { .. } => "command",
        }
    }

    pub fn summary(&self) -> String {
        match self {
            Action::Command { run, .. } => format!("command: {run}"),
        }
    }
}

impl Gate {
    pub fn summary(&self) -> String {
        match self {
            Gate::Command { run, .. } => format!("command: {run}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// The account alias that holds the audit log (the security account).
    pub account_alias: Option<String>,
}

impl Pipeline {
    pub fn stage(&self, name: &StageName) -> Option<&Stage> {
        self.stages.iter().find(|s| &s.name == name)
    }

    /// The directory relative paths in the pipeline are resolved against.
    pub fn dir(&self) -> &Path {
        self.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    pub fn public_key_path(&self) -> PathBuf {
        self.dir().join(&self.signing.public_key)
    }

    pub fn working_dir(&self) -> PathBuf {
        self.dir().join(&self.build.working_dir)
    }
}

/// Serialises durations as humantime strings (`24h`) in plans and JSON output.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub mod option {
        use std::time::Duration;

        pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}
