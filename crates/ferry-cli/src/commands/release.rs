//! `ferry build`, `ferry promote`, `ferry run`, `ferry verify` and `ferry unlock`.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use ferry_core::audit::{Draft, EventFilter, EventKind};
use ferry_core::clock::human;
use ferry_core::ids::{Actor, ReleaseId, StageName};
use ferry_core::manifest::{BuilderInfo, MANIFEST_VERSION, ReleaseManifest};
use ferry_core::pipeline::Pipeline;
use ferry_core::promote::patience::{Waiting, retry_while_waiting};
use ferry_core::promote::{Outcome, Request};
use ferry_core::release::{self, CreatedRelease};
use ferry_core::rollback::{self, Guarded};
use ferry_local::Home;
use serde_json::json;

use super::{Ctx, load_pipeline, parse_id, pinned_key};
use crate::cli::PromoteOpts;
use crate::env;
use crate::exit::Exit;
use crate::output::{Failure, Report};

/// Ends a command that decided something with a signed checkpoint of the log where its
/// appends ended (whether it succeeded or not); a checkpoint that cannot be written is a
/// warning, not the command's failure.
pub(super) fn checkpointed<T>(svc: &ferry_core::ports::Services, signer: Option<&dyn ferry_core::attestation::Signer>, result: T) -> T {
    if let Some(signer) = signer
        && let Err(e) = release::checkpoint_log(svc, signer)
    {
        tracing::warn!("could not write a signed checkpoint of the audit log: {}", e.message);
    }
    result
}

/// Builds, stores and signs a release with `signer` (checked against the pinned key before
/// anything is built: a release nobody can verify is never made).
fn build_release(ctx: &Ctx, signer: &dyn ferry_core::attestation::Signer, p: &Pipeline) -> Result<CreatedRelease, Failure> {
    let (svc, actor) = (ctx.svc(), &ctx.actor);
    let started_at = svc.clock.now();
    // What the build starts from: read before it runs, so its own outputs do not count.
    let source = env::source(&p.working_dir());
    ferry_local::build::run_command(p, svc, actor)?;
    let collected = release::store_artifacts(svc, &ferry_local::build::collect(p)?)?;
    let images = release::resolve_images(svc, p, source.as_ref())?;
    let manifest = ReleaseManifest {
        version: MANIFEST_VERSION,
        pipeline: p.name.clone(),
        build_account: p.build.account.clone(),
        artifacts: collected.iter().map(|c| c.entry.clone()).collect(),
        images,
        source,
        builder: BuilderInfo { actor: actor.clone(), id: env::builder_id() },
        ci: env::ci_run(),
        build_command: p.build.command.clone(),
        started_at,
        finished_at: svc.clock.now(),
    };
    tracing::info!(keyid = %signer.keyid(), "signing the release");
    Ok(release::create(svc, p, manifest, signer)?)
}

fn built_text(r: &CreatedRelease) -> String {
    let mut h = format!("built release {} (manifest sha256 {})\n", r.release, r.manifest_sha256);
    for a in &r.manifest.artifacts {
        let _ = writeln!(h, "  {}  {}  {}", a.sha256, a.name, ferry_core::human_size(a.size));
    }
    for i in &r.manifest.images {
        let _ = writeln!(h, "  image {}  {}", i.name, i.reference());
    }
    let _ = writeln!(h, "signed with key {}", r.keyid);
    h
}

pub fn build(home: &Home, path: &Path) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let pinned = pinned_key(&p)?;
    let ctx = Ctx::connect(home, &p, "build")?;
    let signer = ctx.signer(home, &p, &pinned)?;
    let r = checkpointed(ctx.svc(), Some(signer.as_ref()), build_release(&ctx, signer.as_ref(), &p))?;
    Ok(Report::ok(
        built_text(&r),
        json!({"release": r.release, "manifest_sha256": r.manifest_sha256, "keyid": r.keyid, "manifest": r.manifest}),
    ))
}

fn request(release: &ReleaseId, stage: &StageName, actor: &Actor, opts: &PromoteOpts) -> Request {
    Request {
        rollback: false,
        release: release.clone(),
        stage: stage.clone(),
        actor: actor.clone(),
        redeploy: opts.redeploy,
        wait: opts.wait,
        lease: opts.lease,
    }
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Deployed { release, stage, actions, skipped } => {
            let skip = if *skipped > 0 { format!(", {skipped} already done before") } else { String::new() };
            format!("promoted {release} to `{stage}` ({actions} deploy action(s){skip})\n")
        }
        Outcome::AlreadyDeployed { release, stage } => {
            format!("{release} is already deployed in `{stage}`; nothing to do (use --redeploy to run the actions again)\n")
        }
        Outcome::Blocked { release, stage, reason, next_allowed } => {
            let next = next_allowed.map_or("not within the next two weeks".to_owned(), |t| t.to_string());
            format!("waiting: {release} may not enter `{stage}` now: {reason}\n  next allowed: {next}\n")
        }
        Outcome::PostDeployGateFailed { release, stage, gate, origin } => {
            let mut h = format!("failed: {release} was deployed to `{stage}` but a post-deploy gate failed: {gate}\n");
            if let Some(o) = origin {
                h.push_str(&crate::snippet::origin(o, crate::snippet::Style::new(false)));
            }
            h
        }
        Outcome::AwaitingApproval { release, stage, have, need, eligible, excluded, approve_command } => {
            let mut h = format!("waiting: {release} needs approval to enter `{stage}` ({} of {need} approvals", have.len());
            if !have.is_empty() {
                let _ = write!(h, ": {}", have.iter().map(Actor::as_str).collect::<Vec<_>>().join(", "));
            }
            h.push_str(")\n");
            if !eligible.is_empty() {
                let _ = writeln!(h, "  may approve: {}", eligible.iter().map(Actor::as_str).collect::<Vec<_>>().join(", "));
            }
            if !excluded.is_empty() {
                let _ = writeln!(
                    h,
                    "  may not approve (built or requested it): {}",
                    excluded.iter().map(Actor::as_str).collect::<Vec<_>>().join(", ")
                );
            }
            let _ = writeln!(h, "  approve with: {approve_command}");
            h
        }
    }
}

/// A promotion's outcome and the automatic rollback after it, if any.
fn guarded_text(g: &Guarded) -> String {
    let mut h = outcome_text(&g.outcome);
    if let Some(r) = &g.rollback {
        let _ = write!(h, "rolled back automatically to {}:\n  {}", r.to, outcome_text(&r.outcome));
    }
    h
}

fn outcome_exit(o: &Outcome) -> Exit {
    match o {
        Outcome::AwaitingApproval { .. } | Outcome::Blocked { .. } => Exit::AwaitingApproval,
        Outcome::PostDeployGateFailed { .. } => Exit::Failure,
        Outcome::Deployed { .. } | Outcome::AlreadyDeployed { .. } => Exit::Success,
    }
}

pub fn promote(
    home: &Home,
    path: &Path,
    release: &str,
    to: &str,
    wait_for_approval: Option<Duration>,
    opts: &PromoteOpts,
) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let (release, stage): (ReleaseId, StageName) = (parse_id(release)?, parse_id(to)?);
    let pinned = pinned_key(&p)?;
    let mut ctx = Ctx::connect(home, &p, "promote")?;
    // A success is recorded with a deployment attestation signed with the pipeline's key.
    let signer = ctx.signer(home, &p, &pinned)?;
    ctx.attest_with(signer);
    let svc = ctx.svc();
    let req = request(&release, &stage, &ctx.actor, opts);
    let attempt = || checkpointed(svc, svc.attester.as_deref().map(|s| s as _), rollback::promote(svc, &p, &pinned, &req));
    // News: a decision on (release, stage) recorded after this process's last event.
    let news = || -> ferry_core::Result<bool> {
        let filter = EventFilter {
            release: Some(release.clone()),
            stage: Some(stage.clone()),
            pipeline: Some(p.name.clone()),
            after: svc.audit.tail().map(|t| t.seq),
        };
        Ok(svc.audit.events(&filter)?.iter().any(|e| matches!(e.kind, EventKind::Approved | EventKind::Rejected)))
    };
    let waiting = Waiting {
        waits: |g: &Guarded| matches!(g.outcome, Outcome::AwaitingApproval { .. }),
        news,
        before_pause: |pause: Duration, left: Duration| {
            tracing::info!("`{stage}` waits for approval; looking again in {} ({} left)", human(pause), human(left));
        },
    };
    let g = retry_while_waiting(svc.clock.as_ref(), &svc.interrupt, wait_for_approval.unwrap_or_default(), waiting, attempt)?;
    Ok(Report { human: guarded_text(&g), json: serde_json::to_value(&g).unwrap_or_default(), exit: outcome_exit(&g.outcome) })
}

pub fn rollback(home: &Home, path: &Path, stage: &str, to: Option<&str>, opts: &PromoteOpts) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let stage: StageName = parse_id(stage)?;
    let to: Option<ReleaseId> = to.map(parse_id).transpose()?;
    let pinned = pinned_key(&p)?;
    let mut ctx = Ctx::connect(home, &p, "rollback")?;
    let signer = ctx.signer(home, &p, &pinned)?;
    ctx.attest_with(signer);
    let req = rollback::RollbackRequest { stage: stage.clone(), to, actor: ctx.actor.clone(), wait: opts.wait, lease: opts.lease };
    let svc = ctx.svc();
    let r = checkpointed(svc, svc.attester.as_deref().map(|s| s as _), rollback::rollback(svc, &p, &pinned, &req))?;
    let from = r.from.as_ref().map_or("(nothing)".to_owned(), ToString::to_string);
    let human = format!("rolling `{stage}` back from {from} to {}\n{}", r.to, outcome_text(&r.outcome));
    Ok(Report { human, json: serde_json::to_value(&r).unwrap_or_default(), exit: outcome_exit(&r.outcome) })
}

/// Builds a release (or, with `existing`, takes that one) and promotes it through the stages in
/// order, until one waits or fails.
pub fn run(home: &Home, path: &Path, existing: Option<&str>, opts: &PromoteOpts) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let pinned = pinned_key(&p)?;
    let mut ctx = Ctx::connect(home, &p, "run")?;
    // One signer for the release and the deployment attestations of its stages.
    let signer = ctx.signer(home, &p, &pinned)?;
    let (built, heading) = match existing {
        None => match build_release(&ctx, signer.as_ref(), &p) {
            Ok(b) => {
                let text = built_text(&b);
                (b, text)
            }
            Err(e) => return checkpointed(ctx.svc(), Some(signer.as_ref()), Err(e)),
        },
        Some(id) => {
            let id: ReleaseId = parse_id(id)?;
            let v = release::verify_audited(ctx.svc(), &p, &id, &pinned, &ctx.actor, "ferry run --release", None)?;
            let text = format!("carrying release {} on (manifest sha256 {}, signed with key {})\n", v.release, v.manifest_sha256, v.keyid);
            (CreatedRelease { release: v.release, manifest_sha256: v.manifest_sha256, keyid: v.keyid, manifest: v.manifest }, text)
        }
    };
    ctx.attest_with(signer);
    let (svc, actor) = (ctx.svc(), &ctx.actor);
    let promoted = (|| -> Result<Report, Failure> {
        let mut human = heading;
        let mut stages = Vec::new();
        let mut exit = Exit::Success;
        for stage in &p.stages {
            let g = match rollback::promote(svc, &p, &pinned, &request(&built.release, &stage.name, actor, opts)) {
                Ok(g) => g,
                Err(e) => {
                    // Report what happened so far, then the error (with its own exit code).
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), human.as_bytes());
                    return Err(e.into());
                }
            };
            human.push_str(&guarded_text(&g));
            exit = outcome_exit(&g.outcome);
            stages.push(serde_json::to_value(&g).unwrap_or_default());
            if exit != Exit::Success {
                break;
            }
        }
        Ok(Report {
            human,
            json: json!({"release": built.release, "manifest_sha256": built.manifest_sha256, "keyid": built.keyid, "manifest": built.manifest, "stages": stages}),
            exit,
        })
    })();
    // One checkpoint for the whole run, the build's events included.
    checkpointed(svc, svc.attester.as_deref().map(|s| s as _), promoted)
}

pub fn verify(home: &Home, path: &Path, release: &str) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let id: ReleaseId = parse_id(release)?;
    let pinned = pinned_key(&p)?;
    let ctx = Ctx::connect(home, &p, "verify")?;
    let v = release::verify_audited(ctx.svc(), &p, &id, &pinned, &ctx.actor, "ferry verify", None)?;
    let mut h = format!("release {} verified: manifest sha256 {}, signature by pinned key {}\n", v.release, v.manifest_sha256, v.keyid);
    for a in &v.manifest.artifacts {
        let _ = writeln!(h, "  ok  {}  {}", a.sha256, a.name);
    }
    for i in &v.manifest.images {
        let _ = writeln!(h, "  signed  image {}  {} (its manifest is re-hashed when promoted)", i.name, i.reference());
    }
    Ok(Report::ok(
        h,
        json!({"verified": true, "release": v.release, "manifest_sha256": v.manifest_sha256, "keyid": v.keyid,
               "artifacts": v.manifest.artifacts, "images": v.manifest.images}),
    ))
}

pub fn unlock(home: &Home, path: &Path, stage: &str) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let stage: StageName = parse_id(stage)?;
    p.stage_or_error(&stage)?;
    let ctx = Ctx::connect(home, &p, "unlock")?;
    let (svc, actor) = (ctx.svc(), &ctx.actor);
    match svc.locks.force_release(&p.name, &stage)? {
        None => Ok(Report::ok(format!("stage `{stage}` is not locked\n"), json!({"unlocked": false}))),
        Some(lock) => {
            let d = Draft::new(EventKind::LockReleased, actor, &p.name)
                .stage(&stage)
                .release(&lock.release)
                .details(json!({"forced": true, "previous": lock}));
            svc.audit.append(d)?;
            let h = format!(
                "released the lock of stage `{stage}` held by `{}` (pid {} on `{}`) since {}\n",
                lock.holder, lock.pid, lock.host, lock.acquired_at
            );
            Ok(Report::ok(h, json!({"unlocked": true, "previous": lock})))
        }
    }
}
