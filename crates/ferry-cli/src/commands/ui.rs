//! `ferry ui`: the pipelines' pages served on 127.0.0.1 (ferry-ui), or exported as static
//! HTML. The board it hands ferry-ui reads each pipeline file afresh on every view (an edit
//! shows at once) and keeps one connection to each pipeline's backend for the whole session,
//! as the person who started it: their decisions are signed with their own approver key and
//! recorded exactly as `ferry approve` records them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ferry_core::decide::{Decision, DecisionRequest};
use ferry_core::ids::{ReleaseId, StageName};
use ferry_core::pipeline::Pipeline;
use ferry_core::{Error, ErrorKind};
use ferry_local::Home;
use ferry_ui::{Asking, AuditView, Board, DecisionForm, Listed, ReleaseView, View};
use serde_json::json;

use super::Ctx;
use super::pipeline::pipeline_files;
use crate::output::{Failure, Report};

struct CliBoard<'a> {
    home: &'a Home,
    files: Vec<PathBuf>,
    limit: usize,
    connected: HashMap<String, Ctx>,
}

fn core_error(f: Failure) -> ferry_core::Error {
    match f {
        Failure::Core(e) => e,
        Failure::Diagnostics(d) => ferry_core::Error::invalid(format!("{} problem(s) in the pipeline file", d.len())),
    }
}

impl CliBoard<'_> {
    /// The pipeline named `name`, read afresh from the first file that defines it, and its
    /// backend (connected once for the session).
    fn connect(&mut self, name: &str) -> ferry_core::Result<Option<(Pipeline, &Ctx)>> {
        let Some(pipeline) = self.files.iter().filter_map(|f| ferry_core::pipeline::load(f).ok()).find(|p| p.name.as_str() == name) else {
            return Ok(None);
        };
        if !self.connected.contains_key(name) {
            let ctx = Ctx::connect(self.home, &pipeline, "ui").map_err(core_error)?;
            self.connected.insert(name.to_owned(), ctx);
        }
        Ok(self.connected.get(name).map(|ctx| (pipeline, ctx)))
    }
}

impl Board for CliBoard<'_> {
    /// The files that load (a broken one is left out, and said in the log).
    fn pipelines(&self) -> Vec<Listed> {
        self.files
            .iter()
            .filter_map(|f| match ferry_core::pipeline::load(f) {
                Ok(p) => {
                    Some(Listed { name: p.name.to_string(), file: f.display().to_string(), backend: ferry_core::wire_name(&p.backend) })
                }
                Err(d) => {
                    tracing::warn!("`{}` is not shown: {} problem(s); `ferry validate {}` lists them", f.display(), d.len(), f.display());
                    None
                }
            })
            .collect()
    }

    fn view(&mut self, name: &str) -> ferry_core::Result<Option<View>> {
        let limit = self.limit;
        let Some((pipeline, ctx)) = self.connect(name)? else { return Ok(None) };
        let status = ferry_core::status::status(ctx.svc(), &pipeline, None, limit)?;
        Ok(Some(View { pipeline, status }))
    }

    fn release(&mut self, name: &str, id: &str) -> ferry_core::Result<Option<ReleaseView>> {
        let Ok(id) = id.parse::<ferry_core::ids::ReleaseId>() else { return Ok(None) };
        let Some((pipeline, ctx)) = self.connect(name)? else { return Ok(None) };
        let pinned = super::pinned_key(&pipeline).map_err(core_error)?;
        let detail = ferry_core::detail::release_detail(ctx.svc(), &pipeline, &pinned, &id)?;
        Ok(detail.map(|detail| ReleaseView { pipeline, detail }))
    }

    fn audit(&mut self, name: &str) -> ferry_core::Result<Option<AuditView>> {
        let Some((pipeline, ctx)) = self.connect(name)? else { return Ok(None) };
        let svc = ctx.svc();
        // Checkpoints checked with the key of the root the pipeline is judged by, as `ferry
        // audit verify --pipeline` does.
        let (root, _) = super::audit::trust_root(svc, &pipeline).map_err(core_error)?;
        let key = super::audit::checkpoint_key(&root)?;
        let report = svc.audit.verify(Some(&key))?;
        let filter = ferry_core::audit::EventFilter { pipeline: Some(pipeline.name.clone()), ..Default::default() };
        // A broken chain cannot be read as events; the page then shows only where it breaks.
        let events = match svc.audit.events(&filter) {
            Err(e) if report.first_bad.is_some() => {
                tracing::debug!("the events are not listed: {}", e.message);
                Vec::new()
            }
            events => events?,
        };
        Ok(Some(AuditView { location: svc.audit.location(), report, events, pipeline }))
    }

    fn asking(&mut self, name: &str, id: &str, stage: &str) -> ferry_core::Result<Option<Asking>> {
        let (Ok(id), Ok(stage)) = (id.parse::<ReleaseId>(), stage.parse::<StageName>()) else { return Ok(None) };
        let Some((pipeline, ctx)) = self.connect(name)? else { return Ok(None) };
        if pipeline.stage(&stage).and_then(|s| s.approval.as_ref()).is_none() {
            return Ok(None);
        }
        let pinned = super::pinned_key(&pipeline).map_err(core_error)?;
        // Verified, not audited: looking writes nothing; deciding verifies again, audited.
        let verified = match ferry_core::release::verify(ctx.svc(), &id, &pinned, None) {
            Err(e) if e.kind == ErrorKind::Invalid && ctx.svc().store.get_release(&id).is_err() => return Ok(None),
            v => v?,
        };
        let summary = ferry_core::decide::summary_of(ctx.svc(), &pipeline, &verified, &stage)?;
        let approver = ferry_core::approval::approver_for(&pipeline, &ctx.actor).map(|a| a.name.clone()).map_err(|e| e.message);
        Ok(Some(Asking { summary, viewer: ctx.actor.clone(), approver, pipeline }))
    }

    fn decide(&mut self, name: &str, id: &str, stage: &str, form: &DecisionForm) -> ferry_core::Result<Decision> {
        let release: ReleaseId = id.parse().map_err(|e: ferry_core::ids::IdError| Error::invalid(e.to_string()))?;
        let stage: StageName = stage.parse().map_err(|e: ferry_core::ids::IdError| Error::invalid(e.to_string()))?;
        let home = self.home;
        let Some((pipeline, ctx)) = self.connect(name)? else {
            return Err(Error::invalid(format!("no pipeline `{name}` is on show")));
        };
        let pinned = super::pinned_key(&pipeline).map_err(core_error)?;
        let actor = ctx.actor.clone();
        let (summary, verified) = ferry_core::decide::summary(ctx.svc(), &pipeline, &pinned, &release, &stage, &actor)?;
        if !ferry_core::decide::confirmed(&summary, form.typed.as_deref()) {
            return Err(Error::invalid(format!("`{stage}` is a protected stage and its name was not typed to confirm"))
                .hint(format!("type `{stage}` in the confirmation field")));
        }
        let req = DecisionRequest { release, stage, actor, approver: None, verdict: form.verdict, comment: form.comment.clone() };
        super::decide::record(home, ctx, &pipeline, &pinned, &verified, &req).map_err(core_error)
    }
}

/// An address the job summary may link to: https, and nothing that could end the link.
fn checked_link(link: &str) -> Result<&str, Failure> {
    if link.starts_with("https://") && !link.chars().any(|c| c.is_whitespace() || matches!(c, '(' | ')' | '[' | ']' | '<' | '>' | '"')) {
        return Ok(link);
    }
    Err(Error::invalid(format!("`--link {link}` is not an https:// address"))
        .hint("pass the address the export is published at, e.g. --link https://releases.example.com/shop/")
        .into())
}

/// `export`: the directory to write the pages into, and the address they will be published at.
pub fn ui(
    home: &Home,
    files: &[PathBuf],
    listen: std::net::SocketAddr,
    export: Option<(&Path, Option<&str>)>,
    limit: usize,
) -> Result<Report, Failure> {
    let mut board = CliBoard { home, files: pipeline_files(files)?, limit, connected: HashMap::new() };
    if let Some((dir, link)) = export {
        let link = link.map(checked_link).transpose()?;
        let written = ferry_ui::export(&mut board, dir)?;
        let h = format!("wrote {} file(s) into {}; open {}\n", written.len(), dir.display(), dir.join("index.html").display());
        let files: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        let pages = written.iter().filter(|p| p.extension().is_some_and(|e| e == "html")).count();
        return Ok(Report::ok(h, json!({"exported": dir.display().to_string(), "pages": pages, "files": files, "link": link})));
    }
    let server = ferry_ui::Server::bind(listen)?;
    // The address with its token, for the person who started it (as Jupyter prints its own).
    crate::output::announce(&format!("ferry ui: open {}\n(stop with Ctrl-C)", server.url()));
    server.serve(&mut board, &home.interrupt)?;
    Ok(Report::ok("ferry ui stopped\n".to_owned(), json!({"stopped": true})))
}
