//! A pipeline's audit page: whether the hash chain holds (the first bad event named if not),
//! its signed checkpoints and whether they were checked, and its events, filtered by release,
//! stage, actor and kind with a plain GET form (no JavaScript needed).

use std::fmt::Write as _;

use ferry_core::audit::{AuditReport, Event};
use ferry_core::pipeline::Pipeline;

use crate::html::esc;
use crate::pages::Links;

/// The most events one page lists (the newest that match).
const SHOWN: usize = 1000;

/// A pipeline's audit log as verified now, with its events.
#[derive(Debug, Clone)]
pub struct AuditView {
    pub pipeline: Pipeline,
    /// Where the log is kept (a directory, an S3 bucket and prefix).
    pub location: String,
    pub report: AuditReport,
    /// The pipeline's events, oldest first.
    pub events: Vec<Event>,
}

/// Which events to list; an empty field matches every event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub release: String,
    pub stage: String,
    pub actor: String,
    pub kind: String,
}

impl AuditQuery {
    pub(crate) fn from_fields(fields: &[(String, String)]) -> AuditQuery {
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim().to_owned()).unwrap_or_default();
        AuditQuery { release: get("release"), stage: get("stage"), actor: get("actor"), kind: get("kind") }
    }

    fn matches(&self, e: &Event) -> bool {
        let is = |want: &str, have: Option<&str>| want.is_empty() || have == Some(want);
        is(&self.release, e.release.as_ref().map(|r| r.as_str()))
            && is(&self.stage, e.stage.as_ref().map(|s| s.as_str()))
            && is(&self.actor, Some(e.actor.as_str()))
            && is(&self.kind, Some(&ferry_core::wire_name(&e.kind)))
    }
}

fn verdict(v: &AuditView) -> String {
    let r = &v.report;
    let mut h = String::new();
    match &r.first_bad {
        None if r.events == 0 => {
            h.push_str("<p><span class=\"state s-failed\">✗ empty</span> the log holds no events: nothing was verified.</p>\n")
        }
        None => {
            let head = r.head.as_ref().map(|d| d.to_string()).unwrap_or_default();
            let _ = writeln!(
                h,
                "<p><span class=\"state s-succeeded\">✓ intact</span> {} events, every one hashed and linked to the one before; head <code>{}</code></p>",
                r.events,
                esc(&head)
            );
        }
        Some(bad) => {
            let _ = writeln!(
                h,
                "<p role=\"alert\"><span class=\"state s-failed\">✗ NOT intact</span> the first bad event is #{}: {}</p>",
                bad.seq,
                esc(&bad.problem)
            );
        }
    }
    let checked = match (&r.checkpoints.newest, r.checkpoints.verified) {
        (Some(c), true) => format!(
            "{} signed checkpoints, each verified with the pipeline's pinned key; the newest vouches for events #1–#{}, signed {}",
            r.checkpoints.count,
            c.seq,
            esc(&c.at.to_string())
        ),
        (None, true) => format!("{} signed checkpoints, each verified with the pipeline's pinned key", r.checkpoints.count),
        (_, false) => format!("{} signed checkpoints, not checked", r.checkpoints.count),
    };
    let _ = writeln!(h, "<p>{checked}. <span class=\"muted\">Kept at <code>{}</code>.</span></p>", esc(&v.location));
    h
}

/// The filter form: text fields for release, stage and actor, the kinds the log holds.
fn filters(v: &AuditView, q: &AuditQuery, links: Links) -> String {
    let mut kinds: Vec<String> = v.events.iter().map(|e| ferry_core::wire_name(&e.kind)).collect();
    kinds.sort();
    kinds.dedup();
    let mut h = format!("<form method=\"get\" action=\"{}\" class=\"filters\">\n", esc(&links.audit(v.pipeline.name.as_str())));
    for (name, value) in [("release", &q.release), ("stage", &q.stage), ("actor", &q.actor)] {
        let _ = writeln!(
            h,
            "<p><label for=\"f-{name}\">{name}</label><br><input type=\"text\" id=\"f-{name}\" name=\"{name}\" value=\"{}\"></p>",
            esc(value)
        );
    }
    h.push_str("<p><label for=\"f-kind\">kind</label><br><select id=\"f-kind\" name=\"kind\"><option value=\"\">any</option>");
    for k in &kinds {
        let selected = if *k == q.kind { " selected" } else { "" };
        let _ = write!(h, "<option{selected}>{}</option>", esc(k));
    }
    h.push_str("</select></p>\n<p><button type=\"submit\">Filter</button></p>\n</form>\n");
    h
}

pub fn page(v: &AuditView, q: &AuditQuery, links: Links) -> String {
    let name = v.pipeline.name.to_string();
    let mut h = format!("<h1>Audit log of {}</h1>\n", esc(&name));
    h.push_str(&verdict(v));
    // A static export cannot filter: it lists everything.
    if links == Links::Live {
        h.push_str(&filters(v, q, links));
    }
    if v.report.first_bad.is_some() && v.events.is_empty() {
        h.push_str("<p>The events are not listed: they cannot be read while the chain does not verify.</p>\n");
        return around(&name, &h, links);
    }
    let matching: Vec<&Event> = v.events.iter().filter(|e| q.matches(e)).collect();
    let skipped = matching.len().saturating_sub(SHOWN);
    let _ = writeln!(h, "<div class=\"table\"><table>\n<caption>{} of {} events, newest first</caption>", matching.len(), v.events.len());
    h.push_str("<thead><tr><th scope=\"col\">#</th><th scope=\"col\">at</th><th scope=\"col\">kind</th><th scope=\"col\">actor</th><th scope=\"col\">release</th><th scope=\"col\">stage</th><th scope=\"col\">details</th></tr></thead>\n<tbody>\n");
    for e in matching.iter().rev().take(SHOWN) {
        let release = e
            .release
            .as_ref()
            .map(|r| format!("<a class=\"id\" href=\"{}\">{}</a>", esc(&links.release(&name, r.as_str())), esc(r.as_str())))
            .unwrap_or_default();
        let details = if e.details.is_null() { String::new() } else { e.details.to_string() };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{release}</td><td>{}</td><td class=\"details\"><code>{}</code></td></tr>",
            e.seq,
            esc(&e.at.to_string()),
            esc(&ferry_core::wire_name(&e.kind)),
            esc(e.actor.as_str()),
            e.stage.as_ref().map(|s| esc(s.as_str())).unwrap_or_default(),
            esc(&details)
        );
    }
    h.push_str("</tbody>\n</table></div>\n");
    if skipped > 0 {
        let _ = writeln!(h, "<p class=\"muted\">{skipped} older matching event(s) not shown: narrow the filter.</p>");
    }
    around(&name, &h, links)
}

/// The page around the audit page's `main`.
fn around(name: &str, main: &str, links: Links) -> String {
    let trail = [("ferry".to_owned(), Some(links.index())), (name.to_owned(), Some(links.pipeline(name))), ("audit".to_owned(), None)];
    crate::html::page(&format!("Audit log of {name}"), &trail, main, None, links.assets())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_reads_its_fields_and_blank_ones_match_everything() {
        let q =
            AuditQuery::from_fields(&[("actor".into(), " alice ".into()), ("kind".into(), "approved".into()), ("x".into(), "y".into())]);
        assert_eq!(q, AuditQuery { release: String::new(), stage: String::new(), actor: "alice".into(), kind: "approved".into() });
    }
}
