//! `ferry approve` and `ferry reject`.

use std::fmt::Write as _;

use ferry_core::approval::{ApprovalState, Verdict};
use ferry_core::ids::{Actor, ReleaseId, StageName};
use ferry_local::Home;
use serde_json::json;

use super::{Ctx, load_pipeline, parse_id, pinned_key};
use crate::cli::Decide;
use crate::output::{Failure, Report};

pub fn decide(home: &Home, d: &Decide, verdict: Verdict) -> Result<Report, Failure> {
    let p = load_pipeline(&d.pipeline)?;
    let (release, stage): (ReleaseId, StageName) = (parse_id(&d.release)?, parse_id(&d.stage)?);
    let pinned = pinned_key(&p)?;
    let ctx = Ctx::connect(home, &p, if verdict == Verdict::Approve { "approve" } else { "reject" })?;
    let (svc, actor) = (ctx.svc(), ctx.actor.clone());
    let req = ferry_core::decide::DecisionRequest {
        release: release.clone(),
        stage: stage.clone(),
        actor: actor.clone(),
        verdict,
        comment: d.comment.clone(),
    };
    let decision = ferry_core::decide::decide(svc, &p, &pinned, &req)?;
    let verb = if verdict == Verdict::Approve { "approved" } else { "rejected" };
    let mut h = format!("{actor} {verb} {release} for `{stage}` (valid until {})\n", decision.record.expires_at);
    let names = |v: &[Actor]| v.iter().map(Actor::as_str).collect::<Vec<_>>().join(", ");
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
    Ok(Report::ok(h, json!({"decision": decision.record, "approvals": decision.state})))
}
