//! The ports every backend implements: the central release store, promotion state and
//! approvals, stage locks, the audit log, and the command executor. The local backend keeps
//! them under `$FERRY_HOME`; the AWS backend (issue #3) in S3 across accounts. All methods
//! are synchronous: ferry performs one step at a time and an async backend blocks inside.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::approval::ApprovalRecord;
use crate::audit::{Draft, Event};
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{AccountId, Actor, PipelineName, Region, ReleaseId, Sha256Digest, StageName};
use crate::state::{Revision, StageRecord, Versioned};

/// A release as stored: the exact manifest bytes and DSSE envelope bytes.
#[derive(Debug, Clone)]
pub struct StoredRelease {
    pub id: ReleaseId,
    pub manifest: Vec<u8>,
    pub envelope: Vec<u8>,
}

/// The central, content-addressed store of artifacts and releases. Writes never overwrite.
pub trait ReleaseStore {
    /// Stores the file at `path` under `digest`, streaming it and checking it hashes to
    /// `digest`. Storing identical bytes again is a no-op.
    fn put_artifact(&self, path: &Path, digest: &Sha256Digest) -> Result<()>;
    /// Re-hashes the stored artifact by streaming it; returns what the bytes hash to.
    fn hash_artifact(&self, digest: &Sha256Digest) -> Result<(Sha256Digest, u64)>;
    /// Copies the stored artifact to `dest`, failing if the bytes do not hash to `digest`.
    fn fetch_artifact(&self, digest: &Sha256Digest, dest: &Path) -> Result<()>;
    fn put_release(&self, release: &StoredRelease) -> Result<()>;
    fn get_release(&self, id: &ReleaseId) -> Result<StoredRelease>;
    fn list_releases(&self) -> Result<Vec<ReleaseId>>;
    /// Where the store is, for messages (a directory or an `s3://` URL).
    fn location(&self) -> String;
}

/// Outcome of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    At(Revision),
    /// Someone else wrote first; re-read and decide again.
    Conflict,
}

/// Promotion state and approval records. Stage records are written with a precondition on
/// the revision read (create-if-absent, replace-if-unchanged), so no update is ever lost.
pub trait StateStore {
    fn read_stage(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Option<Versioned<StageRecord>>>;
    /// Writes `record` if the current revision is `expected` (`None`: no record yet).
    fn write_stage(&self, record: &StageRecord, expected: Option<&Revision>) -> Result<Written>;
    /// Every stage record of the pipeline (latest revision of each).
    fn list_stages(&self, pipeline: &PipelineName) -> Result<Vec<StageRecord>>;
    /// Adds an approval or rejection; records are never changed once written.
    fn add_approval(&self, record: &ApprovalRecord) -> Result<()>;
    fn approvals(&self, pipeline: &PipelineName, release: &ReleaseId, stage: &StageName) -> Result<Vec<ApprovalRecord>>;
}

/// A stage lock as stored: who holds it, for which release, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockInfo {
    pub version: u32,
    pub pipeline: PipelineName,
    pub stage: StageName,
    pub release: ReleaseId,
    pub holder: Actor,
    /// Process and host of the holder, so a dead holder on the same host is recognised.
    pub pid: u32,
    pub host: String,
    pub acquired_at: Timestamp,
    pub expires_at: Timestamp,
    /// Random token proving ownership when releasing.
    pub token: String,
}

impl LockInfo {
    /// A lock for `holder` (this process on `host`), valid for `lease` from now.
    pub fn new(
        pipeline: &PipelineName,
        stage: &StageName,
        release: &ReleaseId,
        holder: &Actor,
        lease: Duration,
        host: &str,
        token: String,
    ) -> Self {
        let now = Timestamp::now();
        LockInfo {
            version: 1,
            pipeline: pipeline.clone(),
            stage: stage.clone(),
            release: release.clone(),
            holder: holder.clone(),
            pid: std::process::id(),
            host: host.to_owned(),
            acquired_at: now,
            expires_at: now.plus(lease),
            token,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Acquired {
    Taken(LockInfo),
    /// Held by someone else; `stale` when the holder is gone (dead process or expired lease).
    Held {
        lock: LockInfo,
        stale: bool,
    },
}

pub trait Locks {
    fn try_acquire(
        &self,
        pipeline: &PipelineName,
        stage: &StageName,
        release: &ReleaseId,
        holder: &Actor,
        lease: Duration,
    ) -> Result<Acquired>;
    /// Replaces a stale lock with ours; `None` if another process got there first.
    fn take_over(&self, stale: &LockInfo, holder: &Actor, lease: Duration) -> Result<Option<LockInfo>>;
    /// Extends the lease of a lock we hold; fails if it was taken over meanwhile.
    fn renew(&self, lock: &LockInfo, lease: Duration) -> Result<LockInfo>;
    /// Releases a lock we hold (checked by token).
    fn release(&self, lock: &LockInfo) -> Result<()>;
    /// Removes whatever lock is on the stage (an operator's decision; audited by the caller).
    fn force_release(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<LockInfo>>;
    fn inspect(&self, pipeline: &PipelineName, stage: &StageName) -> Result<Option<(LockInfo, bool)>>;
}

/// The append-only, hash-chained audit log.
pub trait AuditLog {
    /// Seals `draft` after the current last event and stores it without overwriting anything.
    fn append(&self, draft: Draft) -> Result<Event>;
    /// Every stored event as `(position, bytes)`, in position order, for verification.
    fn entries(&self) -> Result<Vec<(u64, Vec<u8>)>>;
    /// Stores a signed checkpoint (a DSSE envelope) of the log at event `seq`; never overwrites.
    fn put_checkpoint(&self, seq: u64, envelope: &[u8]) -> Result<()>;
    /// Every stored checkpoint as `(seq, envelope bytes)`, in order.
    fn checkpoints(&self) -> Result<Vec<(u64, Vec<u8>)>>;
    fn location(&self) -> String;
}

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
}

#[derive(Debug, Clone, Serialize)]
pub struct CommandOutcome {
    pub success: bool,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
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

/// A deploy action other than `command` (which runs through the `Executor`): what to do, in
/// which account, with which verified artifact copies and tags.
#[derive(Debug, Clone)]
pub struct DeployRequest<'a> {
    pub action: &'a crate::pipeline::Action,
    pub pipeline: PipelineName,
    pub release: ReleaseId,
    pub stage: StageName,
    pub target: Target,
    /// Each artifact of the release and the path of its verified local copy.
    pub artifacts: Vec<(crate::manifest::ManifestArtifact, PathBuf)>,
    /// The release's images, by digest.
    pub images: Vec<crate::manifest::ManifestImage>,
    pub tags: BTreeMap<String, String>,
}

/// What a deploy action did, for the state and the audit log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployReport {
    pub detail: String,
    pub output: String,
    /// Values later actions and stages can use (CloudFormation stack outputs).
    pub outputs: BTreeMap<String, String>,
}

/// Runs the AWS deploy actions (issue #4 adds CloudFormation, ECR and CodePipeline here).
pub trait Deployer {
    fn deploy(&self, req: &DeployRequest<'_>) -> Result<DeployReport>;

    /// What the action would change, one line a change, without changing anything (a
    /// CloudFormation change set's summary); empty when the action cannot tell.
    fn preview(&self, _req: &DeployRequest<'_>) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// The local backend's deployer: it has no AWS actions (validation already says so).
#[derive(Debug, Default)]
pub struct NoDeployer;

impl Deployer for NoDeployer {
    fn deploy(&self, req: &DeployRequest<'_>) -> Result<DeployReport> {
        Err(crate::error::Error::invalid(format!("the `{}` action needs `backend: aws`", req.action.kind())))
    }
}

/// The central container registry: resolves the tag a build pushed to the image's digest.
pub trait ImageRegistry {
    fn resolve(&self, image: &crate::pipeline::ImageDecl, tag: &str) -> Result<crate::manifest::ManifestImage>;
}

/// The local backend has no registry (validation already refuses images there).
#[derive(Debug, Default)]
pub struct NoRegistry;

impl ImageRegistry for NoRegistry {
    fn resolve(&self, image: &crate::pipeline::ImageDecl, _tag: &str) -> Result<crate::manifest::ManifestImage> {
        Err(crate::error::Error::invalid(format!("image `{}` needs `backend: aws`", image.name)))
    }
}

/// Delivers one notification, one attempt: resolves the channel's secret URL (environment,
/// SSM) and POSTs the payload, or publishes to SNS. Retries and auditing are the caller's.
pub trait Notifier {
    fn send(&self, channel: &crate::pipeline::Notification, payload: &serde_json::Value, subject: &str) -> Result<()>;
}

/// Reads a secret (an SSM parameter) by name.
pub type SecretReader = Box<dyn Fn(&str) -> Result<String>>;
/// Publishes `(topic, subject, message)`.
pub type TopicPublisher = Box<dyn Fn(&str, &str, &str) -> Result<()>>;

/// Delivers nothing (a backend before its notifier is set up).
#[derive(Debug, Default)]
pub struct NoNotifier;

impl Notifier for NoNotifier {
    fn send(&self, channel: &crate::pipeline::Notification, _payload: &serde_json::Value, _subject: &str) -> Result<()> {
        Err(crate::error::Error::invalid(format!("no notifier is set up for {}", channel.describe())))
    }
}

/// Reads CloudWatch alarm states in a target account: `(name, state, reason)` for each alarm
/// found (`OK`, `ALARM`, `INSUFFICIENT_DATA`); a name that does not exist is left out.
pub trait AlarmProbe {
    fn states(&self, target: &Target, alarms: &[String]) -> Result<Vec<(String, String, String)>>;
}

/// The local backend has no alarms (validation already refuses the gate there).
#[derive(Debug, Default)]
pub struct NoAlarms;

impl AlarmProbe for NoAlarms {
    fn states(&self, _: &Target, _: &[String]) -> Result<Vec<(String, String, String)>> {
        Err(crate::error::Error::invalid("the `alarm` gate needs `backend: aws`"))
    }
}

/// Fetches a URL for an http gate: the status and body (bounded), or why it could not.
pub trait HttpProbe {
    fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String)>;
}

/// One backend's implementations of every port.
pub struct Services {
    pub store: Box<dyn ReleaseStore>,
    pub state: Box<dyn StateStore>,
    pub locks: Box<dyn Locks>,
    pub audit: Box<dyn AuditLog>,
    pub exec: Box<dyn Executor>,
    pub deployer: Box<dyn Deployer>,
    pub registry: Box<dyn ImageRegistry>,
    pub http: Box<dyn HttpProbe>,
    pub alarms: Box<dyn AlarmProbe>,
    pub notifier: Box<dyn Notifier>,
    /// The first wait between delivery attempts (doubled each time).
    pub notify_backoff: Duration,
    /// Where deploy actions get their copies of the artifacts.
    pub work_dir: PathBuf,
    /// On the local backend, accounts are namespaces: `ROOT/ACCOUNT_ID` is handed to actions
    /// as `FERRY_ACCOUNT_DIR`.
    pub account_root: Option<PathBuf>,
}
