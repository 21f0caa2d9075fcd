//! Runs shell commands (build commands, command gates, command deploy actions) with `sh -c`,
//! extra environment, an optional timeout, and their output sent to stderr so ferry's stdout
//! stays machine-readable.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ferry_core::ports::{CommandOutcome, CommandSpec, Executor};
use ferry_core::{Error, Result};

#[derive(Debug, Default)]
pub struct ShellExecutor;

fn stderr_stdio() -> Stdio {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            return Stdio::from(fd);
        }
    }
    Stdio::inherit()
}

impl Executor for ShellExecutor {
    fn run(&self, spec: &CommandSpec) -> Result<CommandOutcome> {
        tracing::info!(label = %spec.label, dir = %spec.dir.display(), "running `{}`", spec.run);
        let start = Instant::now();
        let mut command = Command::new("sh");
        for var in &spec.clear_env {
            command.env_remove(var);
        }
        let mut child = command
            .arg("-c")
            .arg(&spec.run)
            .current_dir(&spec.dir)
            .envs(&spec.env)
            .stdin(Stdio::null())
            .stdout(stderr_stdio())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::failed(format!("cannot start `{}` in `{}`: {e}", spec.run, spec.dir.display())))?;
        let mut timed_out = false;
        let status = loop {
            match child.try_wait().map_err(|e| Error::failed(format!("waiting for `{}`: {e}", spec.run)))? {
                Some(status) => break status,
                None if spec.timeout.is_some_and(|t| start.elapsed() >= t) => {
                    timed_out = true;
                    let _ = child.kill();
                    break child.wait().map_err(|e| Error::failed(format!("waiting for `{}`: {e}", spec.run)))?;
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let duration_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(CommandOutcome { success: status.success() && !timed_out, exit_code: status.code(), timed_out, duration_ms })
    }
}
