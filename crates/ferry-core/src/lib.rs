//! ferry's domain core: the pipeline model and its validation, release manifests and
//! digests, DSSE/in-toto/SLSA attestations, approval policy, the promotion state machine and
//! the audit chain, plus the ports (traits) that the local and AWS backends implement.
//! No AWS SDK, no async runtime, no CLI parsing, no HTTP client: `.ci/run` checks it.

pub mod approval;
pub mod attestation;
pub mod audit;
pub mod bootstrap;
pub mod clock;
pub mod decide;
pub mod detail;
pub mod digest;
pub mod error;
pub mod evidence;
pub mod gatekeeper;
pub mod health;
pub mod hooks;
pub mod ids;
pub mod keys;
pub mod manifest;
pub mod notify;
pub mod pipeline;
pub mod placeholders;
pub mod plan;
pub mod ports;
pub mod preflight;
pub mod promote;
pub mod release;
pub mod rollback;
pub mod state;
pub mod status;
pub mod storage;
pub mod trust;
pub mod window;
pub mod yaml;

pub use error::{Error, ErrorKind, Origin, Result};

/// The name a unit enum variant has in JSON (`StageStatus::AwaitingApproval` → `awaiting_approval`),
/// so human output uses the same words as `--output json`.
pub fn wire_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}
