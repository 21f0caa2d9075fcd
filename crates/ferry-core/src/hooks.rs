//! Announcements for the CI system ferry runs in, made before the fact: every secret ferry is
//! about to hand to a process or hold (session credentials, tokens, webhook URLs), so the CI
//! log can redact it before anything could print it (GitHub's `::add-mask::`), and the start
//! and end of a child's output (a collapsible group). The binary installs the hook; without
//! one, announcements go nowhere. Secrets are handed to the hook only, never to a log.
//! Long steps (hashing, uploading, waiting for a soak) also report progress, which the binary
//! shows as progress bars on a terminal and ignores in CI.
//!
//! Every secret announced is also remembered for the life of the process, and `redact`
//! replaces each (8 characters or longer) with `***`: audit events and stage records are
//! redacted before they are stored, so a command that prints a token or a webhook URL leaves
//! it in nothing ferry keeps.

use std::sync::{Mutex, OnceLock};

/// What the CI system is told.
pub enum Announce<'a> {
    Secret(&'a str),
    BeginGroup(&'a str),
    EndGroup,
    /// `done` of `total` units (bytes, or milliseconds when waiting) of the task named `task`.
    Progress {
        task: &'a str,
        done: u64,
        total: u64,
        bytes: bool,
    },
    /// The task is over (finished or abandoned).
    ProgressDone {
        task: &'a str,
    },
}

type Hook = Box<dyn Fn(Announce<'_>) + Send + Sync>;

static HOOK: OnceLock<Hook> = OnceLock::new();

/// Installs the hook once for the process; later calls are ignored.
pub fn install(hook: Hook) {
    let _ = HOOK.set(hook);
}

fn announce(a: Announce<'_>) {
    if let Some(h) = HOOK.get() {
        h(a);
    }
}

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Secrets shorter than this are announced but not redacted from stored text (they would
/// match ordinary words).
pub const REDACT_MIN: usize = 8;

/// `value` is a secret from now on (empty values are ignored).
pub fn secret(value: &str) {
    if value.trim().is_empty() {
        return;
    }
    if value.len() >= REDACT_MIN {
        let mut known = SECRETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !known.iter().any(|s| s == value) {
            known.push(value.to_owned());
            // Longest first, so a secret containing another is replaced whole.
            known.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
    announce(Announce::Secret(value));
}

/// `text` with every secret this process knows replaced by `***`.
pub fn redact(text: &str) -> String {
    let known = SECRETS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut out = text.to_owned();
    for s in known.iter() {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "***");
        }
    }
    out
}

/// Every string in `value` (keys included) redacted.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            let r = redact(s);
            if r != *s {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => {
            let taken = std::mem::take(map);
            for (k, mut v) in taken {
                redact_json(&mut v);
                map.insert(redact(&k), v);
            }
        }
        _ => {}
    }
}

pub fn begin_group(label: &str) {
    announce(Announce::BeginGroup(label));
}

pub fn end_group() {
    announce(Announce::EndGroup);
}

pub fn progress(task: &str, done: u64, total: u64, bytes: bool) {
    announce(Announce::Progress { task, done, total, bytes });
}

pub fn progress_done(task: &str) {
    announce(Announce::ProgressDone { task });
}
