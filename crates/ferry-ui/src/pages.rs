//! The pages, rendered from a pipeline and its status: the index of pipelines on show, and a
//! pipeline's page — its stages left to right as cards (the live release, what waits for whom
//! and until when, the lock holder, windows, what each requires) and its releases as rows with
//! a cell per stage. Links are made for the live server or for a static export.

use std::fmt::Write as _;

use ferry_core::approval::ApprovalState;
use ferry_core::ids::Actor;
use ferry_core::pipeline::{Gate, Pipeline};
use ferry_core::status::{ReleaseStatus, Status};

use crate::html::esc;

/// A pipeline on show, for the index.
#[derive(Debug, Clone)]
pub struct Listed {
    pub name: String,
    pub file: String,
    pub backend: String,
}

/// A pipeline as it stands: its definition and its status.
#[derive(Debug, Clone)]
pub struct View {
    pub pipeline: Pipeline,
    pub status: Status,
}

/// A release in detail, with the pipeline it belongs to.
#[derive(Debug, Clone)]
pub struct ReleaseView {
    pub pipeline: Pipeline,
    pub detail: ferry_core::detail::ReleaseDetail,
}

/// Where links point: the live server's routes, or the files of a static export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    Live,
    Static,
}

impl Links {
    pub fn index(self) -> String {
        match self {
            Links::Live => "/".into(),
            Links::Static => "index.html".into(),
        }
    }
    pub fn pipeline(self, name: &str) -> String {
        match self {
            Links::Live => format!("/p/{name}"),
            Links::Static => format!("p-{name}.html"),
        }
    }
    pub fn release(self, name: &str, id: &str) -> String {
        match self {
            Links::Live => format!("/p/{name}/r/{id}"),
            Links::Static => format!("p-{name}-{id}.html"),
        }
    }
    pub fn audit(self, name: &str) -> String {
        match self {
            Links::Live => format!("/p/{name}/audit"),
            Links::Static => format!("p-{name}-audit.html"),
        }
    }
    /// The page to approve or reject `id` for `stage` from (live only: an export decides nothing).
    pub fn decide(self, name: &str, id: &str, stage: &str) -> Option<String> {
        (self == Links::Live).then(|| format!("/p/{name}/r/{id}/s/{stage}"))
    }
    /// The part of a page at `page` (a pipeline's or a release's) that refreshes in place
    /// (live only).
    pub fn refresh(self, page: &str) -> Option<String> {
        (self == Links::Live).then(|| format!("{page}?part=main"))
    }
    pub fn assets(self) -> &'static str {
        match self {
            Links::Live => "/assets",
            Links::Static => "assets",
        }
    }
}

fn names(actors: &[Actor]) -> String {
    if actors.is_empty() { "nobody".into() } else { actors.iter().map(|a| esc(a.as_str())).collect::<Vec<_>>().join(", ") }
}

/// `awaiting_approval` → `awaiting approval`.
fn words(status: &str) -> String {
    status.replace('_', " ")
}

pub fn index(pipelines: &[Listed], links: Links) -> String {
    let mut main = String::from("<h1>Pipelines</h1>\n<ul>\n");
    for p in pipelines {
        let _ = writeln!(
            main,
            "<li><a href=\"{}\">{}</a> <span class=\"muted\">({} backend, <code>{}</code>)</span></li>",
            esc(&links.pipeline(&p.name)),
            esc(&p.name),
            esc(&p.backend),
            esc(&p.file)
        );
    }
    main.push_str("</ul>\n");
    crate::html::page("Pipelines", &[("ferry".into(), None)], &main, None, links.assets())
}

/// A pipeline's whole page.
pub fn pipeline(view: &View, links: Links) -> String {
    let name = view.pipeline.name.to_string();
    let trail = [("ferry".to_owned(), Some(links.index())), (name.clone(), None)];
    crate::html::page(&name, &trail, &pipeline_main(view, links), links.refresh(&links.pipeline(&name)).as_deref(), links.assets())
}

/// A release id linking to its page.
fn release_link(links: Links, pipeline: &str, id: &str) -> String {
    format!("<a class=\"id\" href=\"{}\">{}</a>", esc(&links.release(pipeline, id)), esc(id))
}

/// What a waiting release needs, from its stage line: `1 of 2 approvals (alice); may approve:
/// bob, carol; until …`.
fn waiting_text(r: &ReleaseStatus, stage: &str) -> Option<String> {
    let line = r.stages.iter().find(|s| s.stage.as_str() == stage)?;
    match &line.approvals {
        Some(ApprovalState::Pending { have, need, eligible, expires, .. }) => {
            let mut t = format!("{} of {need} approvals", have.len());
            if !have.is_empty() {
                let _ = write!(t, " ({})", names(have));
            }
            let _ = write!(t, "; may approve: {}", names(eligible));
            if let Some(e) = expires {
                let _ = write!(t, "; the first expires {}", esc(&e.to_string()));
            }
            Some(t)
        }
        Some(ApprovalState::Approved { by }) if line.status == "awaiting_approval" => {
            Some(format!("approved by {}; the next promotion carries it on", names(by)))
        }
        _ => None,
    }
}

/// Whether the approvals `r` waits for in `stage` are all there: it is approved, and only
/// the promotion is still to run.
fn approved(r: &ReleaseStatus, stage: &str) -> bool {
    r.stages.iter().any(|s| {
        s.stage.as_str() == stage && s.status == "awaiting_approval" && matches!(s.approvals, Some(ApprovalState::Approved { .. }))
    })
}

/// The part of a pipeline's page that refreshes: stage cards, then the releases.
pub fn pipeline_main(view: &View, links: Links) -> String {
    let (p, st) = (&view.pipeline, &view.status);
    let name = p.name.to_string();
    let mut h = String::new();
    let _ =
        writeln!(h, "<h1>{} <span class=\"muted\">({} backend)</span></h1>", esc(p.name.as_str()), esc(&ferry_core::wire_name(&p.backend)));
    let _ = writeln!(h, "<p><a href=\"{}\">Audit log</a></p>", esc(&links.audit(&name)));
    h.push_str("<ol class=\"stages\" aria-label=\"Stages, in order\">\n");
    for (i, stage) in p.stages.iter().enumerate() {
        let summary = st.stages.iter().find(|s| s.stage == stage.name);
        let waiting: Vec<(String, Option<String>, bool)> = summary
            .map(|s| {
                s.awaiting_approval
                    .iter()
                    .map(|id| {
                        let r = st.releases.iter().find(|r| &r.release == id);
                        let need = r.and_then(|r| waiting_text(r, stage.name.as_str()));
                        (id.to_string(), need, r.is_some_and(|r| approved(r, stage.name.as_str())))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let class = if waiting.is_empty() { "card" } else { "card waiting" };
        h.push_str("<li>");
        if i > 0 {
            h.push_str("<span class=\"arrow\" aria-hidden=\"true\">→</span>");
        }
        let _ = write!(h, "<article class=\"{class}\" aria-labelledby=\"stage-{i}\">");
        let protected = if p.policy.protected_stages.contains(&stage.name) { " <span class=\"muted\">(protected)</span>" } else { "" };
        let _ = write!(h, "<h2 id=\"stage-{i}\">{}{protected}</h2>", esc(stage.name.as_str()));
        let region = stage.region.as_ref().map(|r| format!(", {}", esc(r.as_str()))).unwrap_or_default();
        let _ = write!(h, "<p class=\"muted\">account {} ({}){region}</p>", esc(&stage.account_alias), esc(stage.account.as_str()));
        match summary.and_then(|s| s.live.as_ref().map(|l| (l, s.live_since))) {
            Some((live, since)) => {
                let since = since.map(|t| format!(" <span class=\"muted\">since {}</span>", esc(&t.to_string()))).unwrap_or_default();
                let _ = write!(h, "<p>live: {}{since}</p>", release_link(links, &name, live.as_str()));
            }
            None => h.push_str("<p class=\"muted\">live: nothing deployed yet</p>"),
        }
        for (id, need, approved) in &waiting {
            let badge = if *approved {
                "<span class=\"state s-approved\">approved</span>"
            } else {
                "<span class=\"state s-awaiting_approval\">waiting</span>"
            };
            let _ = write!(h, "<p>{badge} {}", release_link(links, &name, id));
            if let Some(need) = need {
                let _ = write!(h, ": {need}");
            }
            if let Some(href) = links.decide(&name, id, stage.name.as_str()).filter(|_| !approved) {
                let _ = write!(h, " <a class=\"act\" href=\"{}\">review and decide</a>", esc(&href));
            }
            h.push_str("</p>");
        }
        if !stage.requires.is_empty() {
            let req: Vec<String> = stage.requires.iter().map(|r| esc(r.as_str())).collect();
            let _ = write!(h, "<p class=\"muted\">requires: {}</p>", req.join(", "));
        }
        for g in &stage.gates {
            if let Gate::Window(w) = g {
                let _ = write!(h, "<p class=\"muted\">{}</p>", esc(&w.describe()));
            }
        }
        for l in st.locks.iter().filter(|l| l.stage == stage.name) {
            let stale = if l.stale { " (stale: its holder is gone)" } else { "" };
            let _ = write!(
                h,
                "<p>locked by {} for <span class=\"id\">{}</span> until {}{stale}</p>",
                esc(l.lock.holder.as_str()),
                esc(l.lock.release.as_str()),
                esc(&l.lock.expires_at.to_string())
            );
        }
        h.push_str("</article></li>\n");
    }
    h.push_str("</ol>\n");
    if st.releases.is_empty() {
        let _ = writeln!(h, "<p>No releases yet: <code>ferry build {}</code> makes one.</p>", esc(&p.file.display().to_string()));
        return h;
    }
    h.push_str("<div class=\"table\"><table>\n<caption>Releases, newest first</caption>\n<thead><tr><th scope=\"col\">release</th><th scope=\"col\">built</th>");
    for stage in &p.stages {
        let _ = write!(h, "<th scope=\"col\">{}</th>", esc(stage.name.as_str()));
    }
    h.push_str("</tr></thead>\n<tbody>\n");
    for r in &st.releases {
        let commit = r
            .commit
            .as_deref()
            .map(|c| format!("<br><span class=\"muted\">commit <code>{}</code></span>", esc(&c[..c.len().min(12)])))
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><th scope=\"row\">{}</th><td>{} <span class=\"muted\">by {}</span>{commit}</td>",
            release_link(links, &name, r.release.as_str()),
            esc(&r.built_at.to_string()),
            esc(r.builder.as_str())
        );
        for stage in &p.stages {
            let line = r.stages.iter().find(|s| s.stage == stage.name);
            let status = match line.map_or("not_started", |l| l.status.as_str()) {
                "awaiting_approval" if approved(r, stage.name.as_str()) => "approved",
                s => s,
            };
            let _ = write!(h, "<td><span class=\"state s-{}\">{}</span>", esc(status), esc(&words(status)));
            if let Some(need) = waiting_text(r, stage.name.as_str()) {
                let _ = write!(h, "<br><span class=\"muted\">{need}</span>");
            }
            h.push_str("</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table></div>\n");
    if st.older > 0 {
        let _ = writeln!(h, "<p class=\"muted\">{} older release(s) not shown.</p>", st.older);
    }
    h
}
