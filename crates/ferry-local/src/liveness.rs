//! Whether a lock's holder still runs, on this machine: its host name, `/proc` for the
//! process (a zombie counts as gone), and `/proc/*/environ` for commands it started under the
//! lock that outlived it.

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

/// Whether process `pid` is running (not gone, not a zombie). Without `/proc`, assume it is.
fn process_alive(pid: u32) -> bool {
    let proc_dir = Path::new("/proc");
    if !proc_dir.join("self").exists() {
        return true;
    }
    match std::fs::read_to_string(proc_dir.join(pid.to_string()).join("stat")) {
        // The state follows the parenthesised command name: `123 (ferry) S ...`.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
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
        let mut pids: Vec<u32> = entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                // Processes of other users cannot be read: they are not ours to find.
                std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
                    && process_alive(*pid)
            })
            .collect();
        pids.sort_unstable();
        pids
    }
}
