//! ferry's embedded backend. Everything lives under one directory (`$FERRY_HOME`, default
//! `.ferry/`): the content-addressed store, promotion state, approvals, locks, the audit log
//! and signing keys. Accounts are namespaces; `command` actions run on this machine.

pub mod audit;
pub mod build;
pub mod exec;
pub mod fsutil;
pub mod http;
pub mod keys;
pub mod locks;
pub mod notify;
pub mod state;
pub mod store;

use std::path::PathBuf;

use ferry_core::ports::Services;

/// The layout of a ferry home directory.
#[derive(Debug, Clone)]
pub struct Home {
    pub root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    pub fn store(&self) -> store::LocalStore {
        store::LocalStore::new(self.root.join("store"))
    }
    pub fn keys(&self) -> keys::KeyStore {
        keys::KeyStore::new(self.root.join("keys"))
    }
    pub fn audit_dir(&self) -> PathBuf {
        self.root.join("audit")
    }

    /// Every port, implemented on this directory.
    pub fn services(&self) -> Services {
        Services {
            store: Box::new(self.store()),
            state: Box::new(state::LocalState::new(self.root.join("pipelines"))),
            locks: Box::new(locks::LocalLocks::new(self.root.join("pipelines"))),
            audit: Box::new(audit::LocalAudit::new(self.audit_dir())),
            exec: Box::new(exec::ShellExecutor),
            deployer: Box::new(ferry_core::ports::NoDeployer),
            registry: Box::new(ferry_core::ports::NoRegistry),
            http: Box::new(http::ReqwestProbe),
            alarms: Box::new(ferry_core::ports::NoAlarms),
            notifier: Box::new(notify::WebhookNotifier::new(std::collections::BTreeMap::new())),
            notify_backoff: std::time::Duration::from_millis(500),
            work_dir: self.root.join("work"),
            account_root: Some(self.root.join("accounts")),
        }
    }
}
