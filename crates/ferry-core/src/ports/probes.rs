//! The probe ports of gates: CloudWatch alarm states in a target account, and HTTP checks of
//! the deployed service.

use std::time::Duration;

use crate::error::Result;
use crate::ports::Target;

/// Reads CloudWatch alarm states in a target account: `(name, state, reason)` for each alarm
/// found (`OK`, `ALARM`, `INSUFFICIENT_DATA`); a name that does not exist is left out.
pub trait AlarmProbe {
    fn states(&self, target: &Target, alarms: &[String]) -> Result<Vec<(String, String, String)>>;
}

/// The local backend has no alarms (validation already refuses the gate there).
#[derive(Debug, Default)]
pub struct NoAlarms;

impl AlarmProbe for NoAlarms {
    fn states(&self, _: &Target, _: &[String]) -> Result<Vec<(String, String, String)>> {
        Err(crate::error::Error::invalid("the `alarm` gate needs `backend: aws`"))
    }
}

/// Fetches a URL for an http gate: the status and body (bounded), or why it could not.
pub trait HttpProbe {
    fn get(&self, url: &str, timeout: Duration) -> Result<(u16, String)>;
}
