//! `ferry ui`: what the command line's `status` says, as pages people look at — a pipeline's
//! stages as cards (what is live, what waits for whom, until when, locks, windows), its
//! releases as rows with a cell per stage, each release in detail (verification, manifest,
//! provenance, the signed evidence per stage, its audit timeline), and the audit log (its
//! chain verified, its checkpoints, its events filtered) — served on 127.0.0.1 behind a
//! per-launch token, or written once as static HTML (`--export`). On the live server a viewer
//! who is an approver decides from the page: the same summary, confirmation and signed record
//! as `ferry approve`. Server-rendered: the pages read without JavaScript; a few lines of it
//! refresh them in place.
//!
//! The crate knows nothing of backends: the command line hands it a `Board` that loads a
//! pipeline's view through whichever backend the pipeline uses.

mod audit;
mod decision;
mod html;
mod pages;
mod release;
mod server;

pub use audit::{AuditQuery, AuditView};
pub use decision::{Asking, DecisionForm};
pub use pages::{Listed, ReleaseView, View};
pub use server::{Server, export};

/// Where the pages come from: the pipelines on show and, by name, one's current view.
pub trait Board {
    /// The pipelines on show, in order.
    fn pipelines(&self) -> Vec<Listed>;
    /// The pipeline named `name` as it stands now, or `None` if it is not on show.
    fn view(&mut self, name: &str) -> ferry_core::Result<Option<View>>;
    /// Release `id` of pipeline `name` in detail (verified now), or `None` if there is none.
    fn release(&mut self, name: &str, id: &str) -> ferry_core::Result<Option<ReleaseView>>;
    /// The pipeline's audit log, verified now, with its events; `None` if it is not on show.
    fn audit(&mut self, name: &str) -> ferry_core::Result<Option<AuditView>>;
    /// What deciding on release `id` for `stage` would be, verified now and writing nothing;
    /// `None` if there is no such pipeline, release or stage.
    fn asking(&mut self, name: &str, id: &str, stage: &str) -> ferry_core::Result<Option<Asking>>;
    /// Records the viewer's decision exactly as `ferry approve`/`reject` would (verified and
    /// audited, confirmed by what was typed, signed with the viewer's own approver key).
    fn decide(&mut self, name: &str, id: &str, stage: &str, form: &DecisionForm) -> ferry_core::Result<ferry_core::decide::Decision>;
}
