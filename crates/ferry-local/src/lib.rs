//! ferry's embedded backend. Everything lives under one directory (`$FERRY_HOME`, default
//! `.ferry/`): the content-addressed store, promotion state, approvals, locks, the audit log
//! and signing keys. Accounts are namespaces; `command` actions run on this machine.

pub mod build;
pub mod exec;
pub mod fsutil;
pub mod http;
pub mod keys;
pub mod liveness;
pub mod notify;
pub mod objects;

use std::path::PathBuf;
use std::sync::Arc;

use ferry_core::ports::{Clock, Services};
use ferry_core::storage::{self, Backing};

/// The layout of a ferry home directory: `store/` (what the artifacts account holds on AWS:
/// artifacts, releases, state, approvals, locks), `audit/` (the security account's log),
/// `trust/` (published trust roots), `keys/`, `work/` and `accounts/`.
#[derive(Clone)]
pub struct Home {
    pub root: PathBuf,
    /// Events per sealed audit segment, for a log created now.
    pub audit_segment_size: u64,
    /// Called after every durable write (crash tests).
    pub after_write: Option<storage::AfterWrite>,
    /// Time for everything this home's services do (the system's, unless a test injects one).
    pub clock: Arc<dyn Clock>,
    /// Raised when the process is asked to stop (the CLI's SIGINT/SIGTERM handler).
    pub interrupt: Arc<ferry_core::ports::Stop>,
}

impl std::fmt::Debug for Home {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Home({})", self.root.display())
    }
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            audit_segment_size: storage::audit::DEFAULT_SEGMENT_SIZE,
            after_write: None,
            clock: Arc::new(ferry_core::clock::SystemClock),
            interrupt: Arc::default(),
        }
    }
    pub fn keys(&self) -> keys::KeyStore {
        keys::KeyStore::new(self.root.join("keys"))
    }

    /// The records of this home over its directories.
    pub fn backing(&self) -> Backing {
        Backing {
            objects: Arc::new(objects::FsObjects::new(self.root.join("store"))),
            audit: Arc::new(objects::FsObjects::new(self.root.join("audit"))),
            trust: Arc::new(objects::FsObjects::new(self.root.join("trust"))),
            liveness: Arc::new(liveness::ProcessLiveness::default()),
            clock: self.clock.clone(),
            segment_size: self.audit_segment_size,
            after_write: self.after_write.clone(),
            keep_copies: Some(self.root.join("work")),
        }
    }

    /// Every port, implemented on this directory.
    pub fn services(&self) -> Services {
        let records = storage::open(self.backing());
        Services {
            store: records.store,
            state: records.state,
            locks: records.locks,
            audit: records.audit,
            trust: records.trust,
            exec: Box::new(exec::ShellExecutor),
            deployer: Box::new(ferry_core::ports::NoDeployer),
            registry: Box::new(ferry_core::ports::NoRegistry),
            http: Box::new(http::ReqwestProbe),
            alarms: Box::new(ferry_core::ports::NoAlarms),
            notifier: Box::new(notify::WebhookNotifier::new(std::collections::BTreeMap::new())),
            notify_backoff: std::time::Duration::from_millis(500),
            clock: self.clock.clone(),
            interrupt: self.interrupt.clone(),
            work_dir: self.root.join("work"),
            account_root: Some(self.root.join("accounts")),
            attester: None,
        }
    }
}
