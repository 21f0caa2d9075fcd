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

/// A size as people read it: `812 B`, `4.0 KiB`, `1.5 MiB`, `2.25 GiB` (JSON keeps the bytes); the command line and the web pages say it so.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let digits = if value < 10.0 {
        2
    } else if value < 100.0 {
        1
    } else {
        0
    };
    format!("{value:.digits$} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_are_read_in_binary_units() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.00 KiB");
        assert_eq!(human_size(1536 * 1024), "1.50 MiB");
        assert_eq!(human_size(500 * 1024 * 1024), "500 MiB");
        assert_eq!(human_size(3 * 1024 * 1024 * 1024 + 1024 * 1024 * 256), "3.25 GiB");
    }
}
