//! Whether a lock's holder still runs, on this machine: its host name, `/proc` for the
//! process (a zombie counts as gone), and for commands it started under the lock that outlived
//! it `/proc/*/environ` (the lock's token) and `/proc/*/stat` (every process in the process
//! group of a command carrying it, even one that cleared its environment).

use std::path::Path;

use ferry_core::ports::Liveness;

/// This machine's host name, as recorded in locks.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The state and process group of `pid` from `/proc/PID/stat`: `123 (sh) S PPID PGRP ...`
/// (the command name, in parentheses, may hold spaces).
fn stat(pid: u32) -> Option<(String, u32)> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let state = fields.next()?.to_owned();
    let pgrp = fields.nth(1)?.parse().ok()?;
    Some((state, pgrp))
}

/// Whether process `pid` is running (not gone, not a zombie). Without `/proc`, assume it is.
fn process_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    stat(pid).is_some_and(|(s, _)| s != "Z" && s != "X")
}

/// On this host, the holder's process decides whether a lock is stale.
#[derive(Debug, Clone)]
pub struct ProcessLiveness {
    host: String,
}

impl Default for ProcessLiveness {
    fn default() -> Self {
        Self { host: host_name() }
    }
}

impl Liveness for ProcessLiveness {
    fn host(&self) -> String {
        self.host.clone()
    }
    fn alive(&self, pid: u32) -> Option<bool> {
        Some(process_alive(pid))
    }

    fn running_with(&self, token: &str) -> Vec<u32> {
        let marker = format!("{}={token}", ferry_core::ports::LOCK_TOKEN_VAR);
        let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
        let live: Vec<(u32, u32)> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| stat(pid).filter(|(s, _)| s != "Z" && s != "X").map(|(_, pgrp)| (pid, pgrp)))
            .collect();
        // Processes of other users cannot be read: they are not ours to find.
        let carries = |pid: u32| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
        };
        let carriers: Vec<(u32, u32)> = live.iter().copied().filter(|(pid, _)| carries(*pid)).collect();
        // A command runs in a process group of its own, led by the shell ferry started (which
        // carries the token): every member of such a group keeps the stage locked.
        let groups: std::collections::BTreeSet<u32> = carriers.iter().filter(|(pid, g)| pid == g).map(|(_, g)| *g).collect();
        let mut pids: Vec<u32> =
            carriers.iter().map(|(p, _)| *p).chain(live.iter().filter(|(_, g)| groups.contains(g)).map(|(p, _)| *p)).collect();
        pids.sort_unstable();
        pids.dedup();
        pids
    }
}
