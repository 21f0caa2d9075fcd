//! Deciding from a page: the summary `ferry approve` shows (what the release is, that its
//! signature verifies, who asked, where the approvals stand, what the stage will do), who the
//! viewer is as an approver, and the form — the stage's name typed for a protected stage, an
//! optional comment, approve or reject — carrying the server's per-launch CSRF token. Then the
//! outcome, or why nothing was recorded.

use std::fmt::Write as _;

use ferry_core::approval::{ApprovalState, Verdict};
use ferry_core::decide::{Decision, Summary};
use ferry_core::ids::Actor;
use ferry_core::pipeline::Pipeline;

use crate::html::esc;
use crate::pages::Links;

/// A decision about to be made: the summary (verified now, nothing written), who is looking,
/// and the approver they are — or why they are none.
#[derive(Debug, Clone)]
pub struct Asking {
    pub pipeline: Pipeline,
    pub summary: Summary,
    pub viewer: Actor,
    pub approver: Result<String, String>,
}

/// What the form sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionForm {
    pub verdict: Verdict,
    /// What was typed to confirm (a protected stage's name).
    pub typed: Option<String>,
    pub comment: Option<String>,
}

impl DecisionForm {
    /// From the form's fields (`verdict`, `confirm`, `comment`); `None` if `verdict` is not
    /// `approve` or `reject`.
    pub(crate) fn from_fields(fields: &[(String, String)]) -> Option<DecisionForm> {
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_owned()).filter(|v| !v.is_empty());
        let verdict = match get("verdict")?.as_str() {
            "approve" => Verdict::Approve,
            "reject" => Verdict::Reject,
            _ => return None,
        };
        Some(DecisionForm { verdict, typed: get("confirm"), comment: get("comment") })
    }
}

fn names(v: &[Actor]) -> String {
    v.iter().map(|a| esc(a.as_str())).collect::<Vec<_>>().join(", ")
}

fn standing(a: &ApprovalState, required: u32) -> String {
    match a {
        ApprovalState::Pending { have, need, .. } if have.is_empty() => format!("0 of {need} so far"),
        ApprovalState::Pending { have, need, .. } => format!("{} of {need} so far: {}", have.len(), names(have)),
        ApprovalState::Approved { by } => {
            format!("<span class=\"state s-approved\">approved</span> ({} of {required}): {}", by.len(), names(by))
        }
        ApprovalState::Rejected { by, .. } => format!("<span class=\"state s-rejected\">rejected</span> by {}", esc(by.as_str())),
        ApprovalState::NotRequired => "not required".into(),
    }
}

/// The summary as a definition list, the same facts `ferry approve` prints.
fn summary(s: &Summary) -> String {
    let mut h = String::from("<dl class=\"summary\">\n");
    let region = s.region.as_ref().map(|r| format!(", {}", esc(r.as_str()))).unwrap_or_default();
    let protected = if s.critical { " <strong>(protected stage)</strong>" } else { "" };
    let _ = writeln!(h, "<dt>account</dt><dd>{} ({}){region}{protected}</dd>", esc(&s.account_alias), esc(s.account.as_str()));
    let _ = writeln!(h, "<dt>manifest</dt><dd>sha256 <code>{}</code></dd>", esc(s.manifest_sha256.as_str()));
    let _ = writeln!(
        h,
        "<dt>signature</dt><dd><span class=\"state s-succeeded\">✓ verified</span> with the pinned key <code>{}</code></dd>",
        esc(&s.signed_by)
    );
    for a in &s.artifacts {
        let _ = writeln!(
            h,
            "<dt>artifact</dt><dd>{} sha256 <code>{}</code> ({})</dd>",
            esc(&a.name),
            esc(a.sha256.as_str()),
            ferry_core::human_size(a.size)
        );
    }
    for i in &s.images {
        let _ = writeln!(h, "<dt>image</dt><dd>{} <code>{}</code></dd>", esc(&i.name), esc(&i.reference()));
    }
    match &s.source {
        Some(src) => {
            let r = src.git_ref.as_deref().map(|r| format!(" ({})", esc(r))).unwrap_or_default();
            let dirty = if src.dirty { " <span class=\"state s-failed\">uncommitted changes</span>" } else { "" };
            let _ = writeln!(h, "<dt>source</dt><dd>commit <code>{}</code>{r}{dirty}</dd>", esc(&src.commit));
        }
        None => h.push_str("<dt>source</dt><dd>unknown (not built from a git checkout)</dd>\n"),
    }
    let _ = writeln!(h, "<dt>built by</dt><dd>{} on {}</dd>", esc(s.builder.actor.as_str()), esc(&s.builder.id));
    if let Some(ci) = &s.ci {
        let _ = writeln!(h, "<dt>CI run</dt><dd>{} {}</dd>", esc(&ci.provider), esc(&ci.run_id));
    }
    match (&s.requested_by, &s.requested_at) {
        (Some(by), Some(at)) => {
            let _ = writeln!(h, "<dt>requested by</dt><dd>{} at {}</dd>", esc(by.as_str()), esc(&at.to_string()));
        }
        _ => h.push_str("<dt>requested by</dt><dd>nobody yet (not promoted to this stage)</dd>\n"),
    }
    let _ = writeln!(h, "<dt>approvals</dt><dd>{}</dd>", standing(&s.approvals, s.required));
    let _ = writeln!(h, "<dt>expires</dt><dd>{} (an approval given now)</dd>", esc(&s.approval_expires_at.to_string()));
    for d in &s.deploy {
        let _ = writeln!(h, "<dt>deploy</dt><dd><code>{}</code></dd>", esc(d));
    }
    for c in &s.change_sets {
        let _ = writeln!(h, "<dt>change set</dt><dd><code>{}</code></dd>", esc(c));
    }
    h.push_str("</dl>\n");
    h
}

fn trail(p: &Pipeline, s: &Summary) -> Vec<(String, Option<String>)> {
    let (name, id) = (p.name.to_string(), s.release.to_string());
    vec![
        ("ferry".to_owned(), Some(Links::Live.index())),
        (name.clone(), Some(Links::Live.pipeline(&name))),
        (id.clone(), Some(Links::Live.release(&name, &id))),
        (s.stage.to_string(), None),
    ]
}

/// The page to decide on: the summary, then the form (or why there is none).
pub fn page(a: &Asking, csrf: &str) -> String {
    let s = &a.summary;
    let mut h = format!(
        "<h1>Approve or reject <span class=\"id\">{}</span> for <strong>{}</strong></h1>\n",
        esc(s.release.as_str()),
        esc(s.stage.as_str())
    );
    h.push_str(&summary(s));
    match (&a.approver, &s.request) {
        (_, None) => {
            let _ = writeln!(
                h,
                "<p>This release has not been put up for approval in <strong>{}</strong> yet: a promotion asks for approvals.</p>",
                esc(s.stage.as_str())
            );
        }
        (Err(why), _) => {
            let _ = writeln!(h, "<p>You are <strong>{}</strong>: {}</p>", esc(a.viewer.as_str()), esc(why));
        }
        (Ok(approver), Some(_)) => {
            let _ = writeln!(
                h,
                "<p>You are <strong>{}</strong>, deciding as approver <strong>{}</strong>: your decision is signed with your own key.</p>",
                esc(a.viewer.as_str()),
                esc(approver)
            );
            let action = format!("{}/s/{}", Links::Live.release(a.pipeline.name.as_str(), s.release.as_str()), s.stage.as_str());
            let _ = writeln!(h, "<form method=\"post\" action=\"{}\" class=\"decide\">", esc(&action));
            let _ = writeln!(h, "<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf));
            if s.critical {
                let _ = writeln!(
                    h,
                    "<p><label for=\"confirm\"><strong>{0}</strong> is a protected stage: type its name to confirm</label><br><input type=\"text\" id=\"confirm\" name=\"confirm\" required autocomplete=\"off\" spellcheck=\"false\" pattern=\"{0}\"></p>",
                    esc(s.stage.as_str())
                );
            }
            h.push_str("<p><label for=\"comment\">Comment (optional)</label><br><textarea id=\"comment\" name=\"comment\" rows=\"2\"></textarea></p>\n");
            h.push_str("<p><button type=\"submit\" name=\"verdict\" value=\"approve\">Approve</button> <button type=\"submit\" name=\"verdict\" value=\"reject\" class=\"reject\">Reject</button></p>\n</form>\n");
        }
    }
    crate::html::page(&format!("Decide on {} for {}", s.release, s.stage), &trail(&a.pipeline, s), &h, None, Links::Live.assets())
}

/// What was recorded, and where the stage's approvals stand now.
pub fn recorded(pipeline: &str, d: &Decision, release: &str, stage: &str) -> String {
    let verb = if d.verdict == Verdict::Approve { "approved" } else { "rejected" };
    let mut h =
        format!("<h1>{} {verb} <span class=\"id\">{}</span> for <strong>{}</strong></h1>\n", esc(&d.approver), esc(release), esc(stage));
    let _ = writeln!(
        h,
        "<p>Signed with key <code>{}</code>, valid until {}; stored as <code>{}</code>.</p>",
        esc(&d.keyid),
        esc(&d.expires_at.to_string()),
        esc(&d.location)
    );
    let now = match &d.state {
        ApprovalState::Approved { by } => {
            format!("<span class=\"state s-approved\">approved</span> by {}: the next promotion to {} goes ahead", names(by), esc(stage))
        }
        ApprovalState::Pending { have, need, .. } => format!("{} of {need} approvals so far ({})", have.len(), names(have)),
        ApprovalState::Rejected { .. } => format!("<span class=\"state s-rejected\">rejected</span> for {}", esc(stage)),
        ApprovalState::NotRequired => "no approvals required".into(),
    };
    let _ = writeln!(h, "<p>Approvals: {now}</p>");
    let name = pipeline.to_owned();
    let _ = writeln!(
        h,
        "<p><a href=\"{}\">Back to the release</a> · <a href=\"{}\">the pipeline</a></p>",
        esc(&Links::Live.release(&name, release)),
        esc(&Links::Live.pipeline(&name))
    );
    let trail =
        [("ferry".to_owned(), Some(Links::Live.index())), (name.clone(), Some(Links::Live.pipeline(&name))), (release.to_owned(), None)];
    crate::html::page(&format!("{verb} {release}"), &trail, &h, None, Links::Live.assets())
}

/// Why nothing was recorded.
pub fn not_recorded(e: &ferry_core::Error, back: &str) -> String {
    let mut h = String::from("<h1>Nothing was recorded</h1>\n");
    let _ = writeln!(h, "<p role=\"alert\">{}</p>", esc(&e.message));
    for hint in &e.hints {
        let _ = writeln!(h, "<p class=\"muted\">hint: {}</p>", esc(hint));
    }
    let _ = writeln!(h, "<p><a href=\"{}\">Back</a></p>", esc(back));
    crate::html::page(
        "Not recorded",
        &[("ferry".into(), Some(Links::Live.index())), ("not recorded".into(), None)],
        &h,
        None,
        Links::Live.assets(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_form_names_its_verdict_and_carries_what_was_typed() {
        let f = DecisionForm::from_fields(&fields(&[("verdict", "approve"), ("confirm", " prod "), ("comment", "")])).unwrap();
        assert_eq!(f, DecisionForm { verdict: Verdict::Approve, typed: Some("prod".into()), comment: None });
        let r = DecisionForm::from_fields(&fields(&[("verdict", "reject"), ("comment", "broken")])).unwrap();
        assert_eq!((r.verdict, r.comment.as_deref()), (Verdict::Reject, Some("broken")));
        assert_eq!(DecisionForm::from_fields(&fields(&[("verdict", "maybe")])), None);
        assert_eq!(DecisionForm::from_fields(&fields(&[])), None);
    }
}
