//! `promote --wait-for-approval`: a promotion that waits for its approvals is tried again when
//! there is news — a decision recorded since — checked with backoff (2 s, 4 s, 8 s … at most
//! 30 s apart) until the promotion no longer waits, the patience runs out (one last try then)
//! or the process is asked to stop. Checking for news is cheap (the release's recent events);
//! a try is not (it re-verifies the release and is audited), so only news earns one. For short
//! waits; a long one is better served by a dispatch notification that starts the run again.

use std::time::Duration;

use crate::clock::{Clock, Stop};
use crate::error::Result;

/// The first pause, and the longest.
pub const FIRST_PAUSE: Duration = Duration::from_secs(2);
pub const LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// What to do while waiting: whether a result still waits, whether there is news since the
/// last try, and what to say before each pause (its length, the patience left).
pub struct Waiting<W, N, S> {
    pub waits: W,
    pub news: N,
    pub before_pause: S,
}

/// Runs `attempt` until its result no longer waits for approvals, `patience` has passed (the
/// last result, still waiting, is returned) or `stop` is raised.
pub fn retry_while_waiting<T, W, N, S>(
    clock: &dyn Clock,
    stop: &Stop,
    patience: Duration,
    mut w: Waiting<W, N, S>,
    mut attempt: impl FnMut() -> Result<T>,
) -> Result<T>
where
    W: Fn(&T) -> bool,
    N: FnMut() -> Result<bool>,
    S: FnMut(Duration, Duration),
{
    let deadline = clock.monotonic() + patience;
    let mut pause = FIRST_PAUSE;
    loop {
        let result = attempt()?;
        if !(w.waits)(&result) {
            return Ok(result);
        }
        loop {
            let left = deadline.saturating_sub(clock.monotonic());
            if left.is_zero() {
                return Ok(result);
            }
            let this = pause.min(left);
            (w.before_pause)(this, left);
            if clock.wait(this, stop) {
                return Ok(result);
            }
            pause = (pause * 2).min(LONGEST_PAUSE);
            if (w.news)()? || clock.monotonic() >= deadline {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{FakeClock, Timestamp};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn clock() -> FakeClock {
        FakeClock::at(Timestamp::from_unix(1_800_000_000))
    }

    #[test]
    fn without_news_it_backs_off_and_tries_once_more_when_the_patience_is_spent() {
        let clock = clock();
        let (mut attempts, mut checks) = (0, 0);
        let w = Waiting {
            waits: |_: &u32| true,
            news: || {
                checks += 1;
                Ok(false)
            },
            before_pause: |_, _| {},
        };
        let r = retry_while_waiting(&clock, &Stop::default(), secs(120), w, || {
            attempts += 1;
            Ok(attempts)
        })
        .unwrap();
        let pauses: Vec<u64> = clock.sleeps().iter().map(Duration::as_secs).collect();
        assert_eq!(pauses, [2, 4, 8, 16, 30, 30, 30], "the last pause ends at the deadline");
        assert_eq!(checks, 7);
        assert_eq!(r, 2, "tried at the start and at the deadline only, that answer returned");
    }

    #[test]
    fn news_earns_a_try_and_it_stops_as_soon_as_the_approvals_are_in() {
        let clock = clock();
        let mut told = Vec::new();
        let mut attempts = 0;
        let mut checks = 0;
        let w = Waiting {
            waits: |n: &u32| *n < 3,
            news: || {
                checks += 1;
                Ok(checks % 2 == 0)
            },
            before_pause: |p, left| told.push((p, left)),
        };
        let r = retry_while_waiting(&clock, &Stop::default(), secs(600), w, || {
            attempts += 1;
            Ok(attempts)
        })
        .unwrap();
        assert_eq!(r, 3);
        assert_eq!(checks, 4, "a try after every second check, the one with news");
        assert_eq!(told, [(secs(2), secs(600)), (secs(4), secs(598)), (secs(8), secs(594)), (secs(16), secs(586))]);
    }

    #[test]
    fn a_stop_or_no_patience_returns_the_waiting_result_at_once() {
        let clock = clock();
        let stop = Stop::default();
        stop.raise();
        let quiet = || Waiting { waits: |_: &u32| true, news: || Ok(true), before_pause: |_, _| {} };
        assert_eq!(retry_while_waiting(&clock, &stop, secs(600), quiet(), || Ok(1)).unwrap(), 1);
        assert_eq!(retry_while_waiting(&clock, &Stop::default(), Duration::ZERO, quiet(), || Ok(2)).unwrap(), 2);
        assert!(clock.sleeps().is_empty());
    }
}
