//! Waiting for what runs in AWS (a stack update, a change set, a pipeline execution) between
//! two looks at it, for as long as the promotion is not told to stop.

use ferry_core::{Error, Result};

/// Waits `poll` between two looks at something that runs in AWS (a stack update, a pipeline
/// execution), unless the promotion is told to stop: then fails at once, saying that `what`
/// goes on without ferry.
pub(crate) async fn pause(stop: Option<&ferry_core::ports::Stop>, poll: std::time::Duration, what: &str) -> Result<()> {
    let until = tokio::time::Instant::now() + poll;
    loop {
        if let Some(why) = stop.and_then(ferry_core::ports::Stop::reason) {
            return Err(Error::failed(format!("stopped waiting for {what}: {why}"))
                .hint(format!("{what} goes on in the stage account; check it there before promoting again")));
        }
        let now = tokio::time::Instant::now();
        if now >= until {
            return Ok(());
        }
        tokio::time::sleep((until - now).min(std::time::Duration::from_millis(200))).await;
    }
}
