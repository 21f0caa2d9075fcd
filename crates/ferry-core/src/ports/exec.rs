//! The command executor port: shell commands (build commands, command gates, command deploy
//! actions), where they act, and what they did.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::error::Result;
use crate::ids::{AccountId, Actor, PipelineName, Region, ReleaseId, StageName};

/// A shell command to run (build command, command gate, command deploy action).
#[derive(Clone)]
pub struct CommandSpec {
    pub run: String,
    pub dir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub timeout: Option<Duration>,
    /// What is running, for logs: `build`, `gate prod[0]`, `deploy prod[1]`.
    pub label: String,
    /// The account the command acts in; the aws backend hands it that account's role
    /// credentials (as standard `AWS_*` variables), the local backend only its id.
    pub target: Option<Target>,
    /// Inherited variables to remove before running.
    pub clear_env: Vec<String>,
    /// When raised, the command is stopped — with everything it started (its process group) —
    /// and its outcome says `interrupted`.
    pub stop: Option<std::sync::Arc<crate::clock::Stop>>,
}

/// Shows variable names only: the environment may hold a role's credentials.
impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("run", &self.run)
            .field("dir", &self.dir)
            .field("env", &self.env.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("label", &self.label)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Where a command acts, and the session it acts under (named after pipeline, release, stage).
#[derive(Debug, Clone)]
pub struct Target {
    pub account: AccountId,
    /// Role name in that account; the backend's default when `None`.
    pub role: Option<String>,
    pub region: Option<Region>,
    pub session_name: String,
    pub actor: Actor,
    pub tags: Vec<(String, String)>,
    /// Set for a protected stage: its credentials come from the gatekeeper (aws backend),
    /// which checks the evidence for this release and stage, never from assuming its role.
    pub protected: Option<Protected>,
}

/// What the gatekeeper is asked for: one release in one protected stage of a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    pub pipeline: PipelineName,
    pub release: ReleaseId,
    pub stage: StageName,
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandOutcome {
    pub success: bool,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    /// Stopped because `CommandSpec::stop` was raised (a lost lock, SIGINT/SIGTERM to ferry).
    pub interrupted: bool,
    pub duration_ms: u64,
    /// The last few KiB of the command's output, secrets masked (recorded, never the whole).
    pub output_tail: String,
}

pub trait Executor {
    /// Gets ready to act in `target` (on AWS: assumes its role), so a failure there is known
    /// before the action is recorded as started.
    fn prepare(&self, _target: &Target) -> Result<()> {
        Ok(())
    }
    fn run(&self, spec: &CommandSpec) -> Result<CommandOutcome>;
}
