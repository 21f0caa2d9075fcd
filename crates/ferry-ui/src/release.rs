//! A release's page: whether it verifies, its manifest (artifacts and images with digests and
//! sizes), provenance (source, builder, CI run, build command), where it stands in each stage
//! — approvals that count, every signed record that does not and why, the change-set preview,
//! the deployment attestation — and its audit timeline.

use std::fmt::Write as _;

use ferry_core::approval::ApprovalState;
use ferry_core::detail::{Check, ReleaseDetail};
use ferry_core::pipeline::Pipeline;

use crate::html::esc;
use crate::pages::Links;

fn check(c: &Check) -> String {
    match c {
        Check::Valid { detail } => format!("<span class=\"state s-succeeded\">✓ valid</span> {}", esc(detail)),
        Check::Invalid { reason } => format!("<span class=\"state s-failed\">✗ invalid</span> {}", esc(reason)),
    }
}

fn approvals(a: &ApprovalState) -> String {
    let names = |v: &[ferry_core::ids::Actor]| v.iter().map(|a| esc(a.as_str())).collect::<Vec<_>>().join(", ");
    match a {
        ApprovalState::NotRequired => "not required".into(),
        ApprovalState::Approved { by } => format!("<span class=\"state s-approved\">approved</span> by {}", names(by)),
        ApprovalState::Pending { have, need, eligible, .. } => {
            format!(
                "{} of {need} approvals{}; may approve: {}",
                have.len(),
                if have.is_empty() { String::new() } else { format!(" ({})", names(have)) },
                names(eligible)
            )
        }
        ApprovalState::Rejected { by, comment, at } => format!(
            "<span class=\"state s-rejected\">rejected</span> by {} at {}{}",
            esc(by.as_str()),
            esc(&at.to_string()),
            comment.as_deref().map(|c| format!(": {}", esc(c))).unwrap_or_default()
        ),
    }
}

pub fn page(p: &Pipeline, d: &ReleaseDetail, links: Links) -> String {
    let name = p.name.to_string();
    let id = d.release.to_string();
    let trail = [("ferry".to_owned(), Some(links.index())), (name.clone(), Some(links.pipeline(&name))), (id.clone(), None)];
    let refresh = links.refresh(&links.release(&name, &id));
    crate::html::page(&format!("{id} of {name}"), &trail, &main(p, d, links), refresh.as_deref(), links.assets())
}

/// The part of a release's page that refreshes in place: everything below the trail.
pub fn main(p: &Pipeline, d: &ReleaseDetail, links: Links) -> String {
    let mut h = String::new();
    let _ = writeln!(h, "<h1>Release <span class=\"id\">{}</span></h1>", esc(d.release.as_str()));
    let _ = writeln!(h, "<p>signature and digests: {}</p>", check(&d.verification));
    let _ = writeln!(h, "<p class=\"muted\">manifest sha256 <code>{}</code></p>", esc(d.manifest_sha256.as_str()));
    if let Some(m) = &d.manifest {
        h.push_str("<div class=\"table\"><table>\n<caption>Artifacts</caption>\n<thead><tr><th scope=\"col\">name</th><th scope=\"col\">sha256</th><th scope=\"col\">size</th><th scope=\"col\">path</th></tr></thead>\n<tbody>\n");
        for a in &m.artifacts {
            let _ = writeln!(
                h,
                "<tr><th scope=\"row\">{}</th><td><code>{}</code></td><td>{}</td><td><code>{}</code></td></tr>",
                esc(&a.name),
                esc(a.sha256.as_str()),
                ferry_core::human_size(a.size),
                esc(&a.path)
            );
        }
        h.push_str("</tbody>\n</table></div>\n");
        if !m.images.is_empty() {
            h.push_str("<div class=\"table\"><table>\n<caption>Images</caption>\n<thead><tr><th scope=\"col\">name</th><th scope=\"col\">reference</th></tr></thead>\n<tbody>\n");
            for i in &m.images {
                let _ = writeln!(h, "<tr><th scope=\"row\">{}</th><td><code>{}</code></td></tr>", esc(&i.name), esc(&i.reference()));
            }
            h.push_str("</tbody>\n</table></div>\n");
        }
        h.push_str("<h2>Provenance</h2>\n<dl>\n");
        if let Some(s) = &m.source {
            let dirty = if s.dirty { " <span class=\"state s-failed\">dirty: uncommitted or untracked files</span>" } else { " (clean)" };
            let git_ref = s.git_ref.as_deref().map(|r| format!(" on {}", esc(r))).unwrap_or_default();
            let _ = writeln!(h, "<dt>source</dt><dd>commit <code>{}</code>{git_ref}{dirty}</dd>", esc(&s.commit));
        }
        let _ = writeln!(
            h,
            "<dt>built by</dt><dd>{} <span class=\"muted\">({})</span></dd>",
            esc(m.builder.actor.as_str()),
            esc(&m.builder.id)
        );
        if let Some(ci) = &m.ci {
            let run = match &ci.url {
                Some(url) if url.starts_with("https://") => format!("<a href=\"{}\">{}</a>", esc(url), esc(&ci.run_id)),
                _ => esc(&ci.run_id),
            };
            let _ = writeln!(h, "<dt>CI run</dt><dd>{} {run}</dd>", esc(&ci.provider));
        }
        if let Some(c) = &m.build_command {
            let _ = writeln!(h, "<dt>build command</dt><dd><code>{}</code></dd>", esc(c));
        }
        let _ = writeln!(h, "<dt>built</dt><dd>{} – {}</dd>", esc(&m.started_at.to_string()), esc(&m.finished_at.to_string()));
        h.push_str("</dl>\n");
    } else {
        h.push_str("<p><span class=\"state s-failed\">✗</span> the stored manifest cannot be read.</p>\n");
    }
    h.push_str("<div class=\"table\"><table>\n<caption>Stages</caption>\n<thead><tr><th scope=\"col\">stage</th><th scope=\"col\">state</th><th scope=\"col\">approvals</th><th scope=\"col\">evidence</th></tr></thead>\n<tbody>\n");
    for s in &d.stages {
        let _ = write!(
            h,
            "<tr><th scope=\"row\">{}</th><td><span class=\"state s-{}\">{}</span>",
            esc(s.stage.as_str()),
            esc(&s.status),
            esc(&s.status.replace('_', " "))
        );
        if let Some(m) = &s.message {
            let _ = write!(h, "<br><span class=\"muted\">{}</span>", esc(m));
        }
        if let Some(by) = &s.requested_by {
            let _ = write!(h, "<br><span class=\"muted\">requested by {}</span>", esc(by.as_str()));
        }
        h.push_str("</td><td>");
        match &s.approvals {
            Some(a) => h.push_str(&approvals(a)),
            None => h.push_str("<span class=\"muted\">—</span>"),
        }
        if let (Some(ApprovalState::Pending { .. }), Some(href)) =
            (&s.approvals, links.decide(p.name.as_str(), d.release.as_str(), s.stage.as_str()))
        {
            let _ = write!(h, "<br><a class=\"act\" href=\"{}\">review and decide</a>", esc(&href));
        }
        if !s.refused.is_empty() {
            h.push_str("<ul class=\"plain\">");
            for r in &s.refused {
                let _ = write!(
                    h,
                    "<li><span class=\"state s-failed\">✗ not counted</span> <code>{}</code>: {}</li>",
                    esc(&r.record),
                    esc(&r.reason)
                );
            }
            h.push_str("</ul>");
        }
        h.push_str("</td><td>");
        match &s.attestation {
            Some(c) => {
                let _ = write!(h, "deployment attestation: {}", check(c));
            }
            None => h.push_str("<span class=\"muted\">—</span>"),
        }
        for line in &s.preview {
            let _ = write!(h, "<br>change set: {}", esc(line));
        }
        h.push_str("</td></tr>\n");
    }
    h.push_str("</tbody>\n</table></div>\n");
    h.push_str("<h2>Audit timeline</h2>\n<ol class=\"timeline\">\n");
    for e in &d.events {
        let stage = e.stage.as_ref().map(|s| format!(" in <strong>{}</strong>", esc(s.as_str()))).unwrap_or_default();
        let _ = writeln!(
            h,
            "<li><span class=\"muted\">#{} {}</span> <code>{}</code>{stage} by {}</li>",
            e.seq,
            esc(&e.at.to_string()),
            esc(&ferry_core::wire_name(&e.kind)),
            esc(e.actor.as_str())
        );
    }
    h.push_str("</ol>\n");
    h
}
