//! `--junit FILE`: a JUnit XML report of the checks one ferry invocation made (release
//! verification, order, approvals, windows and gates, deploy actions, notifications), for
//! CodeBuild reports and any CI that reads JUnit. The checks are read off the audit events
//! as they are written (a decorator of the audit log port), so the report says exactly
//! what the audit log says.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use ferry_core::Result;
use ferry_core::audit::{AuditReport, Draft, Event, EventFilter, EventKind};
use ferry_core::keys::PublicKey;
use ferry_core::ports::AuditLog;

/// One test case: suite (the stage, or `release`), name, and a failure message if it failed.
#[derive(Debug, Clone)]
pub struct Check {
    pub suite: String,
    pub name: String,
    pub failure: Option<String>,
    pub skipped: Option<String>,
    pub seconds: f64,
}

pub type Checks = Arc<Mutex<Vec<Check>>>;

static ACTIVE: std::sync::OnceLock<Checks> = std::sync::OnceLock::new();

/// Starts recording checks for this process (`--junit`).
pub fn activate() -> Checks {
    ACTIVE.get_or_init(Checks::default).clone()
}

/// Makes the audit log in `slot` record checks, when `--junit` is active.
pub fn wrap(slot: &mut Box<dyn AuditLog>) {
    if let Some(checks) = ACTIVE.get() {
        let inner = std::mem::replace(slot, Box::new(Detached));
        *slot = Box::new(RecordingAudit { inner, checks: checks.clone(), started: Mutex::default() });
    }
}

/// Holds the place of the audit log for the moment it is being wrapped.
struct Detached;

impl AuditLog for Detached {
    fn append_all(&self, _: Vec<Draft>) -> Result<Vec<Event>> {
        Err(ferry_core::Error::failed("the audit log is detached"))
    }
    fn events(&self, _: &EventFilter) -> Result<Vec<Event>> {
        Err(ferry_core::Error::failed("the audit log is detached"))
    }
    fn verify(&self, _: Option<&PublicKey>) -> Result<AuditReport> {
        Err(ferry_core::Error::failed("the audit log is detached"))
    }
    fn put_checkpoint(&self, _: u64, _: &[u8]) -> Result<()> {
        Err(ferry_core::Error::failed("the audit log is detached"))
    }
    fn checkpoint_from(&self, _: u64) -> Result<Option<(u64, Vec<u8>)>> {
        Err(ferry_core::Error::failed("the audit log is detached"))
    }
    fn location(&self) -> String {
        String::new()
    }
}

pub struct RecordingAudit {
    pub inner: Box<dyn AuditLog>,
    pub checks: Checks,
    /// When each deploy action started, to time it.
    pub started: Mutex<Vec<(u64, ferry_core::clock::Timestamp)>>,
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The check an event records, if it is one.
fn check_of(e: &Event, started: &Mutex<Vec<(u64, ferry_core::clock::Timestamp)>>) -> Option<Check> {
    let suite = e.stage.as_ref().map_or_else(|| "release".to_owned(), |s| format!("stage {s}"));
    let d = &e.details;
    let (name, failure, skipped) = match e.kind {
        EventKind::VerifyOk => (format!("verify release ({})", text(&d["purpose"])), None, None),
        EventKind::VerifyFailed => (format!("verify release ({})", text(&d["purpose"])), Some(text(&d["reason"])), None),
        EventKind::GatePassed => (format!("gate {}", text(&d["gate"])), None, None),
        EventKind::GateFailed => {
            let exit = match (&d["timed_out"], &d["exit_code"]) {
                (serde_json::Value::Bool(true), _) => "timed out".to_owned(),
                (_, serde_json::Value::Number(n)) => format!("exit code {n}"),
                _ => String::new(),
            };
            let why = [exit, text(&d["reason"]), text(&d["detail"]), text(&d["status"]), text(&d["rejected_by"])]
                .into_iter()
                .find(|t| !t.is_empty());
            (format!("gate {}", text(&d["gate"])), Some(why.unwrap_or_else(|| d.to_string())), None)
        }
        EventKind::ApprovalPending => (
            "gate approval".to_owned(),
            None,
            Some(format!("awaiting approval ({} of {})", d["have"].as_array().map_or(0, Vec::len), d["need"])),
        ),
        EventKind::DeployStart => {
            if let Ok(mut s) = started.lock() {
                s.push((d["action"].as_u64().unwrap_or(0), e.at));
            }
            return None;
        }
        EventKind::DeployEnd | EventKind::DeployFailed => {
            let ok = e.kind == EventKind::DeployEnd;
            let name = format!("deploy action {}: {}", d["action"], text(&d["summary"]));
            (name, (!ok).then(|| text(&d["detail"])), None)
        }
        EventKind::NotificationFailed => (format!("notify {}", text(&d["channel"])), Some(text(&d["error"])), None),
        _ => return None,
    };
    let seconds = if matches!(e.kind, EventKind::DeployEnd | EventKind::DeployFailed) {
        let action = d["action"].as_u64().unwrap_or(0);
        started.lock().ok().and_then(|s| s.iter().rev().find(|(a, _)| *a == action).map(|(_, t)| t.age(e.at).as_secs_f64())).unwrap_or(0.0)
    } else {
        0.0
    };
    Some(Check { suite, name, failure, skipped, seconds })
}

impl AuditLog for RecordingAudit {
    fn append_all(&self, drafts: Vec<Draft>) -> Result<Vec<Event>> {
        let events = self.inner.append_all(drafts)?;
        if let Ok(mut checks) = self.checks.lock() {
            checks.extend(events.iter().filter_map(|e| check_of(e, &self.started)));
        }
        Ok(events)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn tail(&self) -> Option<ferry_core::audit::Tail> {
        self.inner.tail()
    }
    fn events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        self.inner.events(filter)
    }
    fn verify(&self, key: Option<&PublicKey>) -> Result<AuditReport> {
        self.inner.verify(key)
    }
    fn put_checkpoint(&self, seq: u64, envelope: &[u8]) -> Result<()> {
        self.inner.put_checkpoint(seq, envelope)
    }
    fn checkpoint_from(&self, seq: u64) -> Result<Option<(u64, Vec<u8>)>> {
        self.inner.checkpoint_from(seq)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The JUnit XML document of `checks`, grouped by suite in order of appearance. A command that
/// failed before any check (`error`) is one failed case.
pub fn render(command: &str, checks: &[Check], error: Option<&str>) -> String {
    let mut checks = checks.to_vec();
    if let Some(e) = error {
        checks.push(Check {
            suite: "ferry".into(),
            name: format!("ferry {command}"),
            failure: Some(e.to_owned()),
            skipped: None,
            seconds: 0.0,
        });
    }
    let mut suites: Vec<(String, Vec<&Check>)> = Vec::new();
    for c in &checks {
        match suites.iter_mut().find(|(s, _)| *s == c.suite) {
            Some((_, v)) => v.push(c),
            None => suites.push((c.suite.clone(), vec![c])),
        }
    }
    let failures = checks.iter().filter(|c| c.failure.is_some()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(out, "<testsuites name=\"ferry {}\" tests=\"{}\" failures=\"{failures}\">", xml(command), checks.len());
    for (suite, cases) in &suites {
        let f = cases.iter().filter(|c| c.failure.is_some()).count();
        let s = cases.iter().filter(|c| c.skipped.is_some()).count();
        let _ = writeln!(out, "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" skipped=\"{s}\">", xml(suite), cases.len());
        for c in cases {
            let _ = write!(out, "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"", xml(suite), xml(&c.name), c.seconds);
            match (&c.failure, &c.skipped) {
                (Some(f), _) => {
                    let _ = writeln!(out, ">\n      <failure message=\"{}\"/>\n    </testcase>", xml(f));
                }
                (None, Some(s)) => {
                    let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", xml(s));
                }
                (None, None) => out.push_str("/>\n"),
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_and_skips_are_counted_and_text_is_escaped() {
        let checks = vec![
            Check {
                suite: "stage prod".into(),
                name: "gate http".into(),
                failure: Some("got 500 <oops> & \"x\"".into()),
                skipped: None,
                seconds: 1.5,
            },
            Check {
                suite: "stage prod".into(),
                name: "gate approval".into(),
                failure: None,
                skipped: Some("awaiting".into()),
                seconds: 0.0,
            },
        ];
        let x = render("promote", &checks, None);
        assert!(x.contains("<testsuites name=\"ferry promote\" tests=\"2\" failures=\"1\">"), "{x}");
        assert!(x.contains("<testsuite name=\"stage prod\" tests=\"2\" failures=\"1\" skipped=\"1\">"), "{x}");
        assert!(x.contains("<failure message=\"got 500 &lt;oops&gt; &amp; &quot;x&quot;\"/>"), "{x}");
    }
}
