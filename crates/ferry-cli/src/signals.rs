//! SIGINT and SIGTERM for the commands that run other processes and hold stage locks (build,
//! promote, run, rollback). The first raises the interrupt every port watches: the running
//! command is stopped with its process group, waits end, and a promotion records the
//! interruption and releases its lock before ferry exits. A second signal ends ferry at once
//! (exit 130), as a second Ctrl-C does elsewhere.

use std::sync::Arc;

use ferry_core::ports::Stop;
use signal_hook::consts::{SIGINT, SIGTERM};

pub fn install() -> Arc<Stop> {
    let stop = Arc::new(Stop::default());
    match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(mut signals) => {
            let raised = stop.clone();
            std::thread::spawn(move || {
                for (n, signal) in signals.forever().enumerate() {
                    let name = if signal == SIGINT { "SIGINT" } else { "SIGTERM" };
                    if n > 0 {
                        tracing::error!("{name} again: exiting now");
                        std::process::exit(130);
                    }
                    tracing::warn!("{name}: stopping what runs, recording the interruption and releasing locks (again to exit at once)");
                    raised.raise_because(&format!("ferry received {name}"));
                }
            });
        }
        Err(e) => tracing::warn!("cannot handle SIGINT/SIGTERM ({e}); an interrupted promotion leaves its lock to expire"),
    }
    stop
}
