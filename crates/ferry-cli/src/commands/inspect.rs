//! `ferry status` and `ferry pending`.

use std::fmt::Write as _;
use std::path::Path;

use ferry_core::approval::ApprovalState;
use ferry_core::ids::{Actor, ReleaseId};
use ferry_local::Home;
use serde_json::json;

use super::{Ctx, load_pipeline, parse_id};
use crate::output::{Failure, Report};

pub fn status(home: &Home, path: &Path, release: Option<&str>, limit: usize) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let only: Option<ReleaseId> = release.map(parse_id).transpose()?;
    let ctx = Ctx::connect(home, &p, "status")?;
    let st = ferry_core::status::status(ctx.svc(), &p, only.as_ref(), limit)?;
    let mut h = String::new();
    if st.releases.is_empty() {
        let _ = writeln!(h, "no releases of `{}` yet; build one with `ferry build {}`", p.name, p.file.display());
    } else if only.is_none() {
        // What is live where, before the history.
        let width = st.stages.iter().map(|s| s.stage.as_str().len()).max().unwrap_or(0).max(5);
        let _ = writeln!(h, "{:<width$}  live", "stage");
        for s in &st.stages {
            let live = match (&s.live, &s.live_since) {
                (Some(r), Some(t)) => format!("{r} since {t}"),
                _ => "nothing yet".to_owned(),
            };
            let waiting = match s.awaiting_approval.len() {
                0 => String::new(),
                1 => format!("; {} awaits approval", s.awaiting_approval[0]),
                n => format!("; {n} releases await approval"),
            };
            let _ = writeln!(h, "{:<width$}  {live}{waiting}", s.stage.as_str());
        }
        h.push('\n');
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
            if let Some(ApprovalState::Rejected { by, comment, at }) = &s.approvals {
                let why = comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
                let _ = writeln!(h, "      rejected by {by} at {at}{why}");
            }
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
    if st.older > 0 {
        let _ = writeln!(h, "… and {} older release(s) (`--limit {}` shows more)", st.older, st.releases.len() + st.older);
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

/// `ferry pending`: what awaits the caller's approval, across pipelines. A pipeline whose
/// backend cannot be reached is reported and skipped.
pub fn pending(home: &Home, files: &[std::path::PathBuf]) -> Result<Report, Failure> {
    let mut items = Vec::new();
    let mut unreachable = Vec::new();
    let mut actors = std::collections::BTreeSet::new();
    let mut invalid = Vec::new();
    for file in super::pipeline::pipeline_files(files)? {
        // One broken file hides nothing else: it is reported, the others are read.
        let p = match load_pipeline(&file) {
            Ok(p) => p,
            Err(Failure::Diagnostics(d)) => {
                invalid.extend(d);
                continue;
            }
            Err(e) => return Err(e),
        };
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
    if !invalid.is_empty() {
        let _ = write!(h, "not read (fix with `ferry validate`):\n{}", crate::output::diagnostics_text(&invalid));
    }
    let json = json!({"actor": who, "pending": items, "skipped": unreachable, "invalid": invalid});
    // Exit 2 says a file is broken; what the others hold is listed all the same.
    let exit = if invalid.is_empty() { crate::exit::Exit::Success } else { crate::exit::Exit::Invalid };
    Ok(Report { human: h, json, exit })
}
