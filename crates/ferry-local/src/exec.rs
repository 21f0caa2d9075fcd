//! Runs shell commands (build commands, command gates, command deploy actions) with `sh -c`,
//! extra environment and an optional timeout. Each runs in a process group of its own, so a
//! timeout or a stop (a lost lock, SIGINT/SIGTERM to ferry) ends it with everything it started
//! (SIGTERM to the group, SIGKILL after a grace period), and a signal meant for ferry alone
//! does not reach it. Output goes to stderr as it comes (ferry's stdout stays
//! machine-readable), and its last few KiB are kept for the record, with the values of secret
//! variables masked.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_core::ports::{CommandOutcome, CommandSpec, Executor};
use ferry_core::{Error, Result};

#[derive(Debug, Default)]
pub struct ShellExecutor;

/// How much of a command's output is kept for the audit log and state.
pub const OUTPUT_TAIL: usize = 4096;

/// Variables whose values never appear in recorded output.
const SECRET_VARS: &[&str] = &["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_CONTAINER_AUTHORIZATION_TOKEN"];

/// What a command never inherits: the CI's means to mint an identity (GitHub's OIDC token
/// request), with which a deploy command could assume roles ferry did not hand it.
pub const NEVER_INHERITED: &[&str] = &["ACTIONS_ID_TOKEN_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_TOKEN"];

type Tail = Arc<Mutex<VecDeque<u8>>>;

/// Copies `from` to stderr as it arrives, keeping the last `OUTPUT_TAIL` bytes in `tail`.
fn pump(mut from: impl Read + Send + 'static, tail: Tail) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = std::io::stderr().write_all(&buf[..n]);
            let mut t = tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            t.extend(&buf[..n]);
            let excess = t.len().saturating_sub(OUTPUT_TAIL);
            t.drain(..excess);
        }
    })
}

fn masked(tail: &Tail, spec: &CommandSpec) -> String {
    let bytes: Vec<u8> = tail.lock().unwrap_or_else(std::sync::PoisonError::into_inner).iter().copied().collect();
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    for var in SECRET_VARS {
        if let Some(value) = spec.env.get(*var).filter(|v| v.len() >= 4) {
            text = text.replace(value.as_str(), "***");
        }
    }
    // And every other secret the process knows (inherited keys, tokens, webhook URLs).
    ferry_core::hooks::redact(&text)
}

impl Executor for ShellExecutor {
    fn run(&self, spec: &CommandSpec) -> Result<CommandOutcome> {
        // Secrets handed to the child are announced (CI log masking) before it can print them.
        for var in SECRET_VARS {
            if let Some(value) = spec.env.get(*var) {
                ferry_core::hooks::secret(value);
            }
        }
        ferry_core::hooks::begin_group(&spec.label);
        let outcome = self.run_child(spec);
        ferry_core::hooks::end_group();
        outcome
    }
}

impl ShellExecutor {
    fn run_child(&self, spec: &CommandSpec) -> Result<CommandOutcome> {
        tracing::info!(label = %spec.label, dir = %spec.dir.display(), "running `{}`", spec.run);
        let start = Instant::now();
        let mut command = Command::new("sh");
        for var in spec.clear_env.iter().map(String::as_str).chain(NEVER_INHERITED.iter().copied()) {
            command.env_remove(var);
        }
        let mut child = command
            .process_group(0)
            .arg("-c")
            .arg(&spec.run)
            .current_dir(&spec.dir)
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::failed(format!("cannot start `{}` in `{}`: {e}", spec.run, spec.dir.display())))?;
        let tail: Tail = Arc::default();
        let pumps: Vec<_> = [child.stdout.take().map(|o| pump(o, tail.clone())), child.stderr.take().map(|e| pump(e, tail.clone()))]
            .into_iter()
            .flatten()
            .collect();
        let (mut timed_out, mut interrupted) = (false, false);
        let status = loop {
            match child.try_wait().map_err(|e| Error::failed(format!("waiting for `{}`: {e}", spec.run)))? {
                Some(status) => break status,
                None if spec.timeout.is_some_and(|t| start.elapsed() >= t) => {
                    timed_out = true;
                    break stop_group(&mut child, &spec.run)?;
                }
                None if spec.stop.as_ref().is_some_and(|s| s.is_raised()) => {
                    interrupted = true;
                    let why = spec.stop.as_ref().and_then(|s| s.reason()).unwrap_or_default();
                    tracing::warn!(label = %spec.label, "stopping `{}` and everything it started: {why}", spec.run);
                    break stop_group(&mut child, &spec.run)?;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        // Output may still be in flight; a background process that keeps the pipes open is not
        // waited for beyond a moment.
        let settle = Instant::now() + Duration::from_millis(500);
        while pumps.iter().any(|p| !p.is_finished()) && Instant::now() < settle {
            std::thread::sleep(Duration::from_millis(10));
        }
        let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let output_tail = masked(&tail, spec);
        Ok(CommandOutcome {
            success: status.success() && !timed_out && !interrupted,
            exit_code: status.code(),
            timed_out,
            interrupted,
            duration_ms,
            output_tail,
        })
    }
}

/// How long a stopped command's group has to exit after SIGTERM before it gets SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Stops the process group `child` leads: SIGTERM, then SIGKILL to whatever is left after
/// `GRACE` (members that outlive the leader included).
fn stop_group(child: &mut std::process::Child, run: &str) -> Result<std::process::ExitStatus> {
    let Some(group) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) else {
        let _ = child.kill();
        return child.wait().map_err(|e| Error::failed(format!("waiting for `{run}`: {e}")));
    };
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::TERM);
    let deadline = Instant::now() + GRACE;
    let status = loop {
        match child.try_wait().map_err(|e| Error::failed(format!("waiting for `{run}`: {e}")))? {
            Some(status) => break Some(status),
            None if Instant::now() >= deadline => break None,
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    // Whatever of the group is still there (the leader past its grace, or its children).
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    match status {
        Some(s) => Ok(s),
        None => child.wait().map_err(|e| Error::failed(format!("waiting for `{run}`: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(run: &str) -> CommandSpec {
        let mut env = std::collections::BTreeMap::new();
        env.insert("AWS_SECRET_ACCESS_KEY".to_owned(), "s3cr3t-value".to_owned());
        CommandSpec {
            run: run.into(),
            dir: ".".into(),
            env,
            timeout: Some(Duration::from_secs(5)),
            label: "t".into(),
            target: None,
            clear_env: Vec::new(),
            stop: None,
        }
    }

    #[test]
    fn the_tail_of_the_output_is_kept_with_secrets_masked() {
        let out = ShellExecutor.run(&spec("echo start; echo \"key=$AWS_SECRET_ACCESS_KEY\" >&2; exit 3")).unwrap();
        assert_eq!((out.success, out.exit_code), (false, Some(3)));
        assert!(out.output_tail.contains("start") && out.output_tail.contains("key=***"), "{}", out.output_tail);
        assert!(!out.output_tail.contains("s3cr3t"));
    }

    #[test]
    fn only_the_last_kib_are_kept_and_a_timeout_kills() {
        let out = ShellExecutor.run(&spec("yes line | head -n 100000; echo last")).unwrap();
        assert!(out.output_tail.len() <= OUTPUT_TAIL && out.output_tail.ends_with("last\n"));
        let mut slow = spec("sleep 30");
        slow.timeout = Some(Duration::from_millis(200));
        let out = ShellExecutor.run(&slow).unwrap();
        assert!(out.timed_out && !out.success);
    }
}
