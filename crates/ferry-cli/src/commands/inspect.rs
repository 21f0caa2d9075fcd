//! `ferry status`, `ferry pending`, `ferry audit verify` and `ferry audit show`.

use std::fmt::Write as _;
use std::path::Path;

use ferry_core::approval::ApprovalState;
use ferry_core::audit::EventFilter;
use ferry_core::ids::{Actor, ReleaseId};
use ferry_core::keys::PublicKey;
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

/// The audit log to read: the pipeline's backend's, or the local one; and the key that signs
/// its checkpoints when a pipeline says which.
fn audit_log(home: &Home, pipeline: Option<&Path>) -> Result<(Box<dyn AuditLog>, Option<PublicKey>), Failure> {
    match pipeline {
        None => Ok((home.services().audit, None)),
        Some(path) => {
            let p = load_pipeline(path)?;
            let key = pinned_key(&p)?;
            Ok((Ctx::connect(home, &p, "audit")?.into_services().audit, Some(key)))
        }
    }
}

pub fn audit_verify(home: &Home, pipeline: Option<&Path>) -> Result<Report, Failure> {
    let (log, key) = audit_log(home, pipeline)?;
    let report = log.verify(key.as_ref())?;
    let json = serde_json::to_value(&report).unwrap_or_default();
    let n = report.checkpoints.count;
    match &report.first_bad {
        // Nothing verified is not a verified log (a wrong bucket, prefix or FERRY_HOME looks
        // exactly like this).
        None if report.events == 0 => {
            Err(ferry_core::Error::failed(format!("the audit log at {} holds no events: nothing was verified", log.location()))
                .hint("to verify a pipeline's log (on AWS, in the security account's bucket) pass `--pipeline FILE`")
                .hint("check the pipeline's `audit:` bucket and prefix, or FERRY_HOME on the local backend")
                .into())
        }
        None => {
            let head = report.head.as_ref().map(ToString::to_string).unwrap_or_else(|| "(empty)".into());
            let cps = match key {
                Some(_) => format!("{n} signed checkpoints verified"),
                None => format!("{n} signed checkpoints not checked (pass --pipeline to check them with its pinned key)"),
            };
            Ok(Report::ok(format!("audit log at {} verified: {} events, head {head}; {cps}\n", log.location(), report.events), json))
        }
        Some(bad) => Ok(Report {
            human: format!("audit log at {} is NOT intact: first bad event is {}: {}\n", log.location(), bad.seq, bad.problem),
            json,
            exit: Exit::VerificationFailed,
        }),
    }
}

pub fn audit_show(home: &Home, release: Option<&str>, pipeline: Option<&Path>) -> Result<Report, Failure> {
    let only: Option<ReleaseId> = release.map(parse_id).transpose()?;
    let (log, _) = audit_log(home, pipeline)?;
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
