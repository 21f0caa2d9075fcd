//! `ferry audit verify` (the chain; with a pipeline its checkpoints and signed evidence; an
//! exported bundle offline), `ferry audit show` and `ferry audit export`.

use std::fmt::Write as _;
use std::path::Path;

use ferry_core::audit::EventFilter;
use ferry_core::ids::ReleaseId;
use ferry_core::pipeline::Pipeline;
use ferry_core::ports::{AuditLog, Services};
use ferry_core::trust::TrustRoot;
use ferry_local::Home;
use serde_json::json;

use super::{Ctx, load_pipeline, parse_id, pinned_key};
use crate::exit::Exit;
use crate::output::{Failure, Report};

/// The root a pipeline's evidence is judged by: the published one (what the automation cannot
/// change), else the pipeline file's; and which it is, in words.
pub(crate) fn trust_root(svc: &Services, p: &Pipeline) -> Result<(TrustRoot, String), Failure> {
    Ok(match svc.trust.current(&p.name)? {
        Some(published) => {
            let from_file = TrustRoot::of(p, &pinned_key(p)?)?;
            let differs = if from_file == published.root { "" } else { " (the pipeline file disagrees with it: `ferry trust diff`)" };
            (published.root.clone(), format!("{}{differs}", published_root(&published)))
        }
        None => (TrustRoot::of(p, &pinned_key(p)?)?, "the pipeline file (no trust root is published)".to_owned()),
    })
}

/// The key a pipeline's signed checkpoints are checked with: its root's release key.
pub(crate) fn checkpoint_key(root: &TrustRoot) -> ferry_core::Result<ferry_core::keys::PublicKey> {
    root.release_keys()?.into_iter().next().ok_or_else(|| ferry_core::Error::invalid("the trust root pins no release key"))
}

/// A published root, in words.
fn published_root(p: &ferry_core::trust::Published) -> String {
    format!("the trust root published by {} (serial {})", p.published_by, p.serial)
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
    // checked against the signed evidence in its store. Without: the local log, and the
    // evidence of each pipeline whose trust root is published here.
    let mut gatekeeper = None;
    let (report, location, evidence) = match pipeline {
        None => {
            let svc = home.services();
            let report = svc.audit.verify(None)?;
            let mut all = Vec::new();
            if report.first_bad.is_none() && report.events > 0 {
                for name in svc.trust.pipelines()? {
                    let Some(published) = svc.trust.current(&name)? else { continue };
                    let ev = ferry_core::evidence::check(&ferry_core::evidence::Online { svc: &svc, pipeline: &name }, &published.root)?;
                    all.push((name, ev, published_root(&published)));
                }
            }
            (report, svc.audit.location(), Evidence::Published(all))
        }
        Some(path) => {
            let p = load_pipeline(path)?;
            let ctx = Ctx::connect(home, &p, "audit")?;
            gatekeeper = ctx.gatekeeper_log().map(gatekeeper_summary).transpose()?;
            let svc = ctx.svc();
            let (root, judged_by) = trust_root(svc, &p)?;
            let key = checkpoint_key(&root)?;
            let report = svc.audit.verify(Some(&key))?;
            let evidence = match report.first_bad {
                None if report.events > 0 => Evidence::Pipeline(
                    p.name.clone(),
                    ferry_core::evidence::check(&ferry_core::evidence::Online { svc, pipeline: &p.name }, &root)?,
                    judged_by,
                ),
                _ => Evidence::Published(Vec::new()),
            };
            (report, svc.audit.location(), evidence)
        }
    };
    let mut json = serde_json::to_value(&report).unwrap_or_default();
    if let serde_json::Value::Object(m) = &mut json {
        match &evidence {
            Evidence::Pipeline(_, ev, judged_by) => {
                m.insert("evidence".into(), serde_json::to_value(ev).unwrap_or_default());
                m.insert("trust_root".into(), json!(judged_by));
            }
            Evidence::Published(all) => {
                let list: Vec<serde_json::Value> =
                    all.iter().map(|(name, ev, judged_by)| json!({"pipeline": name, "trust_root": judged_by, "evidence": ev})).collect();
                m.insert("published_pipelines".into(), json!(list));
            }
        }
        if let Some(g) = &gatekeeper {
            m.insert("gatekeeper".into(), serde_json::to_value(g).unwrap_or_default());
        }
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
        let newest = report.checkpoints.newest.as_ref().map(|c| format!(" (the newest vouches for events 1..={} as of {})", c.seq, c.at));
        format!("{n} signed checkpoints verified{}", newest.unwrap_or_default())
    } else {
        format!("{n} signed checkpoints not checked (pass --pipeline to check them with its pinned key)")
    };
    let mut h = format!("audit log at {location} verified: {} events, head {head}; {cps}\n", report.events);
    let all = match evidence {
        Evidence::Pipeline(name, ev, judged_by) => vec![(name, ev, judged_by)],
        Evidence::Published(all) => all,
    };
    let mut bad = false;
    for (name, ev, judged_by) in &all {
        let _ = writeln!(h, "signed evidence of {} events of pipeline `{name}`, judged by {judged_by}:", ev.events);
        h.push_str(&evidence_text(ev));
        bad |= !ev.problems.is_empty();
    }
    if let Some(g) = &gatekeeper {
        match &g.problem {
            None => {
                let _ = writeln!(
                    h,
                    "the gatekeeper's log at {} verified: {} decisions ({} admitted, {} pending, {} refused)",
                    g.location, g.events, g.admitted, g.pending, g.refused
                );
            }
            Some(problem) => {
                let _ = writeln!(h, "the gatekeeper's log at {} is NOT intact: {problem}", g.location);
                bad = true;
            }
        }
    }
    if pipeline.is_none() && all.is_empty() {
        let _ = writeln!(h, "no trust root is published here: signed evidence not checked (pass --pipeline to check a pipeline's)");
    }
    if !bad {
        return Ok(Report::ok(h, json));
    }
    Ok(Report { human: h, json, exit: Exit::VerificationFailed })
}

/// The gatekeeper's own log (its role alone writes it): whether its chain holds, and what it
/// decided.
#[derive(Debug, serde::Serialize)]
struct GatekeeperLog {
    location: String,
    events: u64,
    /// The first break in its chain, if any.
    problem: Option<String>,
    admitted: usize,
    pending: usize,
    refused: usize,
}

fn gatekeeper_summary(log: &dyn AuditLog) -> Result<GatekeeperLog, Failure> {
    let report = log.verify(None)?;
    let problem = report.first_bad.as_ref().map(|b| format!("first bad event is {}: {}", b.seq, b.problem));
    let decisions = if problem.is_none() { log.events(&EventFilter::default())? } else { Vec::new() };
    let count = |d: &str| decisions.iter().filter(|e| e.details["answer"]["decision"] == d).count();
    Ok(GatekeeperLog {
        location: log.location(),
        events: report.events,
        admitted: count("admit"),
        pending: count("pending"),
        refused: count("refuse"),
        problem,
    })
}

/// The signed evidence checked: one pipeline's (`--pipeline`), or every pipeline's whose trust
/// root is published in this home.
enum Evidence {
    Pipeline(ferry_core::ids::PipelineName, ferry_core::evidence::Evidence, String),
    Published(Vec<(ferry_core::ids::PipelineName, ferry_core::evidence::Evidence, String)>),
}

/// Per release, then every problem naming its event.
fn evidence_text(ev: &ferry_core::evidence::Evidence) -> String {
    let mut h = String::new();
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
    if !ev.problems.is_empty() {
        let _ = writeln!(h, "NOT backed by signed evidence:");
    }
    for p in &ev.problems {
        let _ = writeln!(h, "  event {} ({}): {}", p.seq, ferry_core::wire_name(&p.kind), p.problem);
    }
    h
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

/// `ferry audit export --release R DIR`: the release's evidence bundle, written into a new
/// directory (built beside it and renamed into place: never half-written).
pub fn audit_export(home: &Home, path: &Path, release: &str, dir: &Path) -> Result<Report, Failure> {
    let release: ReleaseId = parse_id(release)?;
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return Err(ferry_core::Error::invalid(format!("`{}` exists and is not empty", dir.display()))
            .hint("export into a new directory")
            .into());
    }
    let p = load_pipeline(path)?;
    let ctx = Ctx::connect(home, &p, "audit")?;
    let svc = ctx.svc();
    let serial = svc.trust.current(&p.name)?.map(|c| c.serial);
    let (root, judged_by) = trust_root(svc, &p)?;
    let files = ferry_core::evidence::bundle::export(svc, &root, serial, &release)?;
    let parent = dir.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let partial = parent.join(format!(
        ".{}.partial-{}",
        dir.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        ferry_core::storage::token()
    ));
    let written = (|| -> std::io::Result<()> {
        for (rel, bytes) in &files {
            let target = partial.join(rel);
            if let Some(d) = target.parent() {
                std::fs::create_dir_all(d)?;
            }
            std::fs::write(&target, bytes)?;
        }
        if dir.exists() {
            std::fs::remove_dir(dir)?;
        }
        std::fs::rename(&partial, dir)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(ferry_core::Error::io("write the bundle into", dir, &e).into());
    }
    let human = format!(
        "evidence bundle of {release} written to {} ({} files), judged by {judged_by}\nverify it offline with `ferry audit verify --bundle {}`\n",
        dir.display(),
        files.len(),
        dir.display()
    );
    Ok(Report::ok(human, json!({"release": release, "dir": dir.display().to_string(), "files": files.keys().collect::<Vec<_>>()})))
}

/// `ferry audit verify --bundle DIR`: a bundle, from its files alone.
pub fn verify_bundle(dir: &Path) -> Result<Report, Failure> {
    let mut files = ferry_core::evidence::bundle::Files::new();
    for path in crate::commands::files_under(dir)? {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let bytes = std::fs::read(&path).map_err(|e| ferry_core::Error::io("read", &path, &e))?;
        files.insert(rel, bytes);
    }
    let r = ferry_core::evidence::bundle::verify(&files)?;
    let json = serde_json::to_value(&r).unwrap_or_default();
    let mut h = format!(
        "bundle of {} ({}), manifest sha256 {}\n  release keys: {}\n  approver keys: {}\n  {} events of the log, {}\n",
        r.release,
        r.pipeline,
        r.manifest_sha256,
        r.release_keys.join(", "),
        r.approver_keys.iter().map(|(n, k)| format!("{n} {k}")).collect::<Vec<_>>().join(", "),
        r.events,
        r.checkpoint.map_or("no signed checkpoint after the release's last event".into(), |c| format!("signed checkpoint at event {c}")),
    );
    h.push_str(&evidence_text(&r.evidence));
    for p in &r.problems {
        let _ = writeln!(h, "  bundle: {p}");
    }
    if r.problems.is_empty() && r.evidence.problems.is_empty() {
        let _ = writeln!(h, "verified: compare the key ids above with the keys you trust");
        return Ok(Report::ok(h, json));
    }
    let _ = writeln!(h, "NOT verified");
    Ok(Report { human: h, json, exit: Exit::VerificationFailed })
}
