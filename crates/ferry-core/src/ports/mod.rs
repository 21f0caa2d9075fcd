//! The ports: what ferry-core needs from the world, one file each. Backends implement the
//! object port (`objects`) and the edges (executor, deployer, registry, probes, notifier);
//! the record ports (release store, state, locks, audit log) are implemented once, over the
//! object port, in `crate::storage`. All methods are synchronous: ferry performs one step at
//! a time and an async backend blocks inside.

mod audit;
mod deploy;
mod exec;
mod locks;
mod notify;
mod objects;
mod probes;
mod state;
mod store;
mod trust;

use std::path::PathBuf;
use std::time::Duration;

pub use crate::clock::{Clock, Stop};
pub use audit::AuditLog;
pub use deploy::{DeployReport, DeployRequest, Deployer, ImageRegistry, NoDeployer, NoRegistry};
pub use exec::{CommandOutcome, CommandSpec, Executor, Protected, Target};
pub use locks::{Acquired, LOCK_TOKEN_VAR, LeasesOnly, Liveness, LockInfo, Locks};
pub use notify::{BuildStarter, NoNotifier, Notifier, SecretReader, TopicPublisher};
pub use objects::{Object, ObjectStore, Version, Write};
pub use probes::{AlarmProbe, HttpProbe, NoAlarms};
pub use state::{DecisionRecord, StateStore, Versioned};
pub use store::{ReleaseStore, StoredRelease};
pub use trust::TrustStore;

/// One backend's implementations of every port.
pub struct Services {
    pub store: Box<dyn ReleaseStore>,
    pub state: Box<dyn StateStore>,
    pub locks: Box<dyn Locks>,
    pub audit: Box<dyn AuditLog>,
    /// The pipelines' published trust roots (read; publishing needs the trust-admin role on AWS).
    pub trust: Box<dyn TrustStore>,
    pub exec: Box<dyn Executor>,
    pub deployer: Box<dyn Deployer>,
    pub registry: Box<dyn ImageRegistry>,
    pub http: Box<dyn HttpProbe>,
    pub alarms: Box<dyn AlarmProbe>,
    pub notifier: Box<dyn Notifier>,
    /// Time: every read of the clock and every wait goes through it.
    pub clock: std::sync::Arc<dyn Clock>,
    /// Raised when the process is asked to stop (SIGINT/SIGTERM): waits end, commands are
    /// stopped, and a promotion records the interruption and releases its lock.
    pub interrupt: std::sync::Arc<Stop>,
    /// The first wait between delivery attempts (doubled each time).
    pub notify_backoff: Duration,
    /// Where deploy actions get their copies of the artifacts.
    pub work_dir: PathBuf,
    /// On the local backend, accounts are namespaces: `ROOT/ACCOUNT_ID` is handed to actions
    /// as `FERRY_ACCOUNT_DIR`.
    pub account_root: Option<PathBuf>,
    /// Signs a stage's deployment attestation (the pipeline's release key) when a promotion
    /// succeeds; without one the success carries no evidence, and no later stage accepts it.
    pub attester: Option<Box<dyn crate::attestation::Signer + Send + Sync>>,
}
