//! One preflight check's outcome as `ferry doctor` shows it (a row of its table and an entry of
//! its JSON), whichever backend ran the check.

use serde::Serialize;

use crate::Result;

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub target: String,
    pub ok: bool,
    /// What was found (e.g. the resulting ARN), or what went wrong.
    pub detail: String,
    pub hints: Vec<String>,
}

impl Check {
    /// `check` of `target`: passed with what `r` found, or failed with its error and hints.
    pub fn of(check: &str, target: &str, r: Result<String>) -> Self {
        match r {
            Ok(detail) => Check { check: check.into(), target: target.into(), ok: true, detail, hints: Vec::new() },
            Err(e) => Check { check: check.into(), target: target.into(), ok: false, detail: e.message, hints: e.hints },
        }
    }
}
