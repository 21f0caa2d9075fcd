//! Announcements for the CI system ferry runs in, made before the fact: every secret ferry is
//! about to hand to a process or hold (session credentials, tokens, webhook URLs), so the CI
//! log can redact it before anything could print it (GitHub's `::add-mask::`), and the start
//! and end of a child's output (a collapsible group). The binary installs the hook; without
//! one, announcements go nowhere. Secrets are handed to the hook only, never to a log.
//! Long steps (hashing, uploading, waiting for a soak) also report progress, which the binary
//! shows as progress bars on a terminal and ignores in CI.

use std::sync::OnceLock;

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

/// `value` is a secret from now on (empty values are ignored).
pub fn secret(value: &str) {
    if !value.trim().is_empty() {
        announce(Announce::Secret(value));
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
