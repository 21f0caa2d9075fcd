//! `ferry status`, `ferry pending`, `ferry audit verify` and `ferry audit show`.

use std::fmt::Write as _;
use std::path::Path;

use ferry_core::approval::ApprovalState;
use ferry_core::audit::EventFilter;
use ferry_core::ids::{Actor, ReleaseId};
use ferry_core::ports::AuditLog;
use ferry_local::Home;
use serde_json::json;

use super::{Ctx, load_pipeline, parse_id, pinned_key};
use crate::exit::Exit;
use crate::output::{Failure, Report};

pub fn status(home: &Home, path: &Path, release: Option<&str>) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let only: Option<ReleaseId> = release.map(parse_id).transpose()?;
    let ctx = Ctx::connect(home, &p, "status")?;
    let st = ferry_core::status::status(ctx.svc(), &p, only.as_ref())?;
    let mut h = String::new();
    if st.releases.is_empty() {
        let _ = writeln!(h, "no releases of `{}` yet; build one with `ferry build {}`", p.name, p.file.display());
    }
    let names = |v: &[Actor]| v.iter().map(Actor::as_str).collect::<Vec<_>>().join(", ");
    for r in &st.releases {
        let commit = r.commit.as_deref().map(|c| format!(" commit {}", &c[..c.len().min(12)])).unwrap_or_default();
        let _ = writeln!(h, "{}  built {} by {}{commit}", r.release, r.built_at, r.builder);
        for s in &r.stages {
            let _ = write!(h, "  {:<12} {}", s.stage.as_str(), s.status);
            if let Some(m) = &s.message {
                let _ = write!(h, " ({m})");
            }
            h.push('\n');
            if let (Some(ApprovalState::Pending { have, need, eligible, excluded, expires }), Some(cmd)) =
                (&s.approvals, &s.approve_command)
            {
                let _ = writeln!(
                    h,
                    "      approvals {}/{need}{}",
                    have.len(),
                    if have.is_empty() { String::new() } else { format!(" ({})", names(have)) }
                );
                if !eligible.is_empty() {
                    let _ = writeln!(h, "      may approve: {}", names(eligible));
                }
                if !excluded.is_empty() {
                    let _ = writeln!(h, "      may not approve: {}", names(excluded));
                }
                if let Some(e) = expires {
                    let _ = writeln!(h, "      earliest approval expires at {e}");
                }
                let _ = writeln!(h, "      approve with: {cmd}");
            }
        }
    }
    for l in &st.locks {
        let state = if l.stale { "stale" } else { "held" };
        let _ = writeln!(
            h,
            "lock on `{}` {state} by {} (pid {} on {}) for {} since {}",
            l.stage, l.lock.holder, l.lock.pid, l.lock.host, l.lock.release, l.lock.acquired_at
        );
    }
    Ok(Report::ok(h, serde_json::to_value(&st).unwrap_or_default()))
}

/// The audit log to read: the pipeline's backend's, or the local one.
fn audit_log(home: &Home, pipeline: Option<&Path>) -> Result<Box<dyn AuditLog>, Failure> {
    match pipeline {
        None => Ok(home.services().audit),
        Some(path) => Ok(Ctx::connect(home, &load_pipeline(path)?, "audit")?.into_services().audit),
    }
}

pub fn audit_verify(home: &Home, pipeline: Option<&Path>) -> Result<Report, Failure> {
    // With a pipeline: its log, its checkpoints checked with its pinned key, and its events
    // checked against the signed evidence in its store.
    let (report, location, evidence) = match pipeline {
        None => {
            let log = home.services().audit;
            (log.verify(None)?, log.location(), None)
        }
        Some(path) => {
            let p = load_pipeline(path)?;
            let key = pinned_key(&p)?;
            let ctx = Ctx::connect(home, &p, "audit")?;
            let svc = ctx.svc();
            let report = svc.audit.verify(Some(&key))?;
            let evidence = match report.first_bad {
                None if report.events > 0 => Some(ferry_core::evidence::check(svc, &p, &key)?),
                _ => None,
            };
            (report, svc.audit.location(), evidence)
        }
    };
    let mut json = serde_json::to_value(&report).unwrap_or_default();
    if let (Some(ev), serde_json::Value::Object(m)) = (&evidence, &mut json) {
        m.insert("evidence".into(), serde_json::to_value(ev).unwrap_or_default());
    }
    let n = report.checkpoints.count;
    let bad = match &report.first_bad {
        // Nothing verified is not a verified log (a wrong bucket, prefix or FERRY_HOME looks
        // exactly like this).
        None if report.events == 0 => {
            return Err(ferry_core::Error::failed(format!("the audit log at {location} holds no events: nothing was verified"))
                .hint("to verify a pipeline's log (on AWS, in the security account's bucket) pass `--pipeline FILE`")
                .hint("check the pipeline's `audit:` bucket and prefix, or FERRY_HOME on the local backend")
                .into());
        }
        None => None,
        Some(bad) => Some(format!("audit log at {location} is NOT intact: first bad event is {}: {}\n", bad.seq, bad.problem)),
    };
    if let Some(human) = bad {
        return Ok(Report { human, json, exit: Exit::VerificationFailed });
    }
    let head = report.head.as_ref().map(ToString::to_string).unwrap_or_else(|| "(empty)".into());
    let cps = if report.checkpoints.verified {
        format!("{n} signed checkpoints verified")
    } else {
        format!("{n} signed checkpoints not checked (pass --pipeline to check them with its pinned key)")
    };
    let mut h = format!("audit log at {location} verified: {} events, head {head}; {cps}\n", report.events);
    let Some(ev) = evidence else { return Ok(Report::ok(h, json)) };
    let _ = writeln!(h, "signed evidence of {} events of the pipeline:", ev.events);
    for r in &ev.releases {
        let _ = write!(h, "  {}", r.release);
        for s in &r.stages {
            let stage = s.stage.as_ref().map(ToString::to_string).unwrap_or_default();
            let approvals = match s.required {
                _ if s.waived => " (approval waived for a rollback)".to_owned(),
                Some(n) => format!(
                    " ({}/{n} approvals: {})",
                    s.approved_by.len(),
                    if s.approved_by.is_empty() { "none".into() } else { s.approved_by.join(", ") }
                ),
                None => String::new(),
            };
            let done = match (s.deployed, s.attested) {
                (true, true) => "deployed, attested",
                (true, false) => "deployed, NOT attested",
                (false, _) => "not deployed",
            };
            let _ = write!(h, "  {stage}: {done}{approvals};");
        }
        let _ = writeln!(h, "{}", if r.problems == 0 { " ok".to_owned() } else { format!(" {} PROBLEMS", r.problems) });
    }
    if ev.problems.is_empty() {
        return Ok(Report::ok(h, json));
    }
    let _ = writeln!(h, "NOT backed by signed evidence:");
    for p in &ev.problems {
        let _ = writeln!(h, "  event {} ({}): {}", p.seq, ferry_core::wire_name(&p.kind), p.problem);
    }
    Ok(Report { human: h, json, exit: Exit::VerificationFailed })
}

pub fn audit_show(home: &Home, release: Option<&str>, pipeline: Option<&Path>) -> Result<Report, Failure> {
    let only: Option<ReleaseId> = release.map(parse_id).transpose()?;
    let log = audit_log(home, pipeline)?;
    let events = log.events(&EventFilter { release: only, ..EventFilter::default() })?;
    let mut h = String::new();
    for e in &events {
        let kind = ferry_core::wire_name(&e.kind);
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let _ = writeln!(
            h,
            "{:>5}  {}  {:<20} {:<12} {} {} {}  {}",
            e.seq,
            e.at,
            kind,
            e.actor.as_str(),
            opt(e.pipeline.as_ref().map(ToString::to_string)),
            opt(e.release.as_ref().map(ToString::to_string)),
            opt(e.stage.as_ref().map(ToString::to_string)),
            if e.details.is_null() { String::new() } else { e.details.to_string() }
        );
    }
    Ok(Report::ok(h, json!({"events": events})))
}

/// `ferry pending`: what awaits the caller's approval, across pipelines. A pipeline whose
/// backend cannot be reached is reported and skipped.
pub fn pending(home: &Home, files: &[std::path::PathBuf]) -> Result<Report, Failure> {
    let mut items = Vec::new();
    let mut unreachable = Vec::new();
    let mut actors = std::collections::BTreeSet::new();
    for file in super::pipeline::pipeline_files(files)? {
        let p = load_pipeline(&file)?;
        let found = Ctx::connect(home, &p, "pending")
            .map_err(|f| match f {
                Failure::Core(e) => e.message,
                Failure::Diagnostics(d) => crate::output::diagnostics_text(&d),
            })
            .and_then(|ctx| {
                actors.insert(ctx.actor.to_string());
                ferry_core::status::pending_for(ctx.svc(), &p, &ctx.actor).map_err(|e| e.message)
            });
        match found {
            Ok(found) => items.extend(found),
            Err(why) => unreachable.push(json!({"pipeline": file.display().to_string(), "error": why})),
        }
    }
    let who = actors.into_iter().collect::<Vec<_>>().join(", ");
    let mut h = String::new();
    if items.is_empty() {
        let _ = writeln!(h, "nothing awaits an approval from {who}");
    }
    for i in &items {
        let _ = writeln!(
            h,
            "{} {} → `{}`: {} of {} approvals, requested by {} at {}\n  {}",
            i.pipeline,
            i.release,
            i.stage,
            i.have.len(),
            i.need,
            i.requested_by,
            i.requested_at,
            i.approve_command
        );
    }
    for u in &unreachable {
        let _ = writeln!(h, "skipped {}: {}", u["pipeline"].as_str().unwrap_or(""), u["error"].as_str().unwrap_or(""));
    }
    Ok(Report::ok(h, json!({"actor": who, "pending": items, "skipped": unreachable})))
}
