//! `ferry approve` and `ferry reject`: show what is being decided (the release, its digests,
//! signature, source, builder, requester, approvals so far, the stage's change-set preview),
//! ask for confirmation on a terminal (the stage's name for a protected stage) or require
//! `--yes` without one, then record the decision.

use std::fmt::Write as _;

use ferry_core::Error;
use ferry_core::approval::{ApprovalState, Verdict};
use ferry_core::clock::Timestamp;
use ferry_core::decide::{Decision, DecisionRequest, Summary};
use ferry_core::ids::{Actor, ReleaseId, StageName};
use ferry_core::keys::PublicKey;
use ferry_core::pipeline::Pipeline;
use ferry_core::release::Verified;
use ferry_core::window::Opens;
use ferry_local::Home;
use serde_json::json;

use super::{Ctx, load_pipeline, parse_id, pinned_key};
use crate::cli::Decide;
use crate::output::{self, Failure, Report};

fn names(v: &[Actor]) -> String {
    v.iter().map(Actor::as_str).collect::<Vec<_>>().join(", ")
}

/// The summary as people read it.
pub fn render(s: &Summary, verdict: Verdict) -> String {
    let verb = if verdict == Verdict::Approve { "Approving" } else { "Rejecting" };
    let mut h = format!("{verb} release {} for stage `{}` of pipeline `{}`\n", s.release, s.stage, s.pipeline);
    let region = s.region.as_ref().map(|r| format!(", {r}")).unwrap_or_default();
    let critical = if s.critical { "  (protected stage)" } else { "" };
    let _ = writeln!(h, "  account       {} ({}){region}{critical}", s.account_alias, s.account);
    let _ = writeln!(h, "  manifest      sha256 {}", s.manifest_sha256);
    let _ = writeln!(h, "  signature     verified with the pinned key {}", s.signed_by);
    for a in &s.artifacts {
        let _ = writeln!(h, "  artifact      {}  sha256 {}  ({})", a.name, a.sha256, ferry_core::human_size(a.size));
    }
    for i in &s.images {
        let _ = writeln!(h, "  image         {}  {}", i.name, i.reference());
    }
    match &s.source {
        Some(src) => {
            let r = src.git_ref.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            let dirty = if src.dirty { "  [uncommitted changes]" } else { "" };
            let _ = writeln!(h, "  source        commit {}{r}{dirty}", src.commit);
        }
        None => h.push_str("  source        unknown (not built from a git checkout)\n"),
    }
    let _ = writeln!(h, "  built by      {} on {}", s.builder.actor, s.builder.id);
    if let Some(ci) = &s.ci {
        let _ =
            writeln!(h, "  CI run        {} {}{}", ci.provider, ci.run_id, ci.url.as_deref().map(|u| format!(" {u}")).unwrap_or_default());
    }
    match (&s.requested_by, &s.requested_at) {
        (Some(by), Some(at)) => {
            let _ = writeln!(h, "  requested by  {by} at {at}");
        }
        _ => h.push_str("  requested by  nobody yet (not promoted to this stage)\n"),
    }
    let approvals = match &s.approvals {
        ApprovalState::Pending { have, need, .. } if have.is_empty() => format!("0 of {need} so far"),
        ApprovalState::Pending { have, need, .. } => format!("{} of {need} so far: {}", have.len(), names(have)),
        ApprovalState::Approved { by } => format!("complete ({} of {}): {}", by.len(), s.required, names(by)),
        ApprovalState::Rejected { by, .. } => format!("rejected by {by}"),
        ApprovalState::NotRequired => "not required".into(),
    };
    let _ = writeln!(h, "  approvals     {approvals}");
    let _ = writeln!(h, "  expires       {} (an approval given now)", s.approval_expires_at);
    if let Some(w) = expires_before_window(s.approval_expires_at, s.window_opens, &s.stage) {
        let _ = writeln!(h, "  warning       {w}");
    }
    for d in &s.deploy {
        let _ = writeln!(h, "  deploy        {d}");
    }
    for c in &s.change_sets {
        let _ = writeln!(h, "  change set    {c}");
    }
    h
}

/// Says so when an approval that expires at `expires` would be gone before `stage`'s
/// deployment window next opens: it could never be used.
fn expires_before_window(expires: Timestamp, opens: Option<Opens>, stage: &StageName) -> Option<String> {
    let opens = opens.filter(|o| o.after(expires))?;
    let when = match opens {
        Opens::At(t) => format!("opens at {t}"),
        _ => "does not open within two weeks".to_owned(),
    };
    Some(format!(
        "an approval given now expires at {expires}, but the deployment window of `{stage}` {when}: it would expire unused; approve closer to the window (or lengthen `approval.expires`)"
    ))
}

/// Asks the person at the terminal; without one, `--yes` is required.
fn confirm(s: &Summary, verdict: Verdict, text: &str) -> Result<(), Failure> {
    let verb = if verdict == Verdict::Approve { "approve" } else { "reject" };
    let question = if s.critical {
        format!("`{}` is a protected stage: type its name to {verb} {}: ", s.stage, s.release)
    } else {
        format!("{} {} for `{}`? [y/N] ", if verdict == Verdict::Approve { "Approve" } else { "Reject" }, s.release, s.stage)
    };
    output::note(text);
    let Some(answer) = output::ask(&question) else {
        return Err(Error::invalid(format!("refusing to {verb} without confirmation: stdin is not a terminal"))
            .hint("review the summary above, then run the command again with --yes")
            .into());
    };
    let confirmed = if s.critical { answer == s.stage.as_str() } else { matches!(answer.as_str(), "y" | "Y" | "yes") };
    if confirmed {
        Ok(())
    } else {
        Err(Error::failed(format!("not confirmed; nothing was recorded for {} in `{}`", s.release, s.stage)).into())
    }
}

/// Signs `req` with the approver's own key and records it on the `verified` release (`ferry
/// approve`, and the web page's form): the key from this machine's key store, else the
/// approver's KMS key with the caller's own credentials. The log is checkpointed after it
/// where this machine holds the pipeline's key.
pub fn record(
    home: &Home,
    ctx: &Ctx,
    p: &Pipeline,
    pinned: &PublicKey,
    verified: &Verified,
    req: &DecisionRequest,
) -> Result<Decision, Failure> {
    let svc = ctx.svc();
    // The approver's own key signs: from this machine's key store, else their KMS key (with the
    // caller's own credentials, which only that person's key policy lets sign).
    let name = req.approver.clone().or_else(|| ferry_core::approval::approver_for(p, &req.actor).ok().map(|a| a.name.clone()));
    let signer: Option<Box<dyn ferry_core::attestation::Signer>> = match name.as_deref() {
        None => None,
        Some(n) => match home.keys().load(n) {
            Ok(k) => Some(Box::new(k)),
            // A KMS key this identity may not use is refused, and audited as such.
            Err(_) => ctx.approver_signer(p, n).inspect_err(|f| {
                if let Failure::Core(e) = f
                    && let Err(a) = ferry_core::decide::refused(svc, p, req, Some(n), e)
                {
                    tracing::warn!("could not audit the refusal: {}", a.message);
                }
            })?,
        },
    };
    let decided = ferry_core::decide::decide(svc, p, pinned, verified, req, signer.as_deref());
    // The log after the decision (or its refusal), checkpointed with the pipeline's key where
    // this machine can sign with it; otherwise the next promotion's checkpoint covers it.
    match ctx.signer(home, p, pinned) {
        Ok(s) => super::release::checkpointed(svc, Some(s.as_ref() as &dyn ferry_core::attestation::Signer), ()),
        Err(_) => tracing::info!("the pipeline's key is not at hand: the next promotion's checkpoint covers this decision"),
    }
    Ok(decided?)
}

pub fn decide(home: &Home, d: &Decide, verdict: Verdict) -> Result<Report, Failure> {
    let p = load_pipeline(&d.pipeline)?;
    let (release, stage): (ReleaseId, StageName) = (parse_id(&d.release)?, parse_id(&d.stage)?);
    let pinned = pinned_key(&p)?;
    let ctx = Ctx::connect(home, &p, if verdict == Verdict::Approve { "approve" } else { "reject" })?;
    let (svc, actor) = (ctx.svc(), ctx.actor.clone());
    // Verified once (and audited), shown, then decided on.
    let (summary, verified) = ferry_core::decide::summary(svc, &p, &pinned, &release, &stage, &actor)?;
    let shown = render(&summary, verdict);
    if !d.yes {
        confirm(&summary, verdict, &shown)?;
    }
    let req = DecisionRequest {
        release: release.clone(),
        stage: stage.clone(),
        actor: actor.clone(),
        approver: d.approver.clone(),
        verdict,
        comment: d.comment.clone(),
    };
    let decision = record(home, &ctx, &p, &pinned, &verified, &req)?;
    let verb = if verdict == Verdict::Approve { "approved" } else { "rejected" };
    let mut h = if d.yes { shown } else { String::new() };
    let _ = writeln!(
        h,
        "{} ({actor}) {verb} {release} for `{stage}`, signed with key {} (valid until {})",
        decision.approver, decision.keyid, decision.expires_at
    );
    if decision.verdict == Verdict::Approve
        && let Some(w) = expires_before_window(decision.expires_at, decision.window_opens, &stage)
    {
        let _ = writeln!(h, "warning: {w}");
    }
    match &decision.state {
        ApprovalState::Approved { by } => {
            let _ = writeln!(
                h,
                "approvals complete ({}); continue with: ferry promote {} --release {release} --to {stage}",
                names(by),
                p.file.display()
            );
        }
        ApprovalState::Pending { have, need, .. } => {
            let _ = writeln!(h, "{} of {need} approvals so far ({})", have.len(), names(have));
        }
        ApprovalState::Rejected { .. } => {
            let _ = writeln!(h, "the release is rejected for `{stage}`");
        }
        ApprovalState::NotRequired => {}
    }
    Ok(Report::ok(h, json!({"decision": decision, "approvals": decision.state, "summary": summary})))
}
