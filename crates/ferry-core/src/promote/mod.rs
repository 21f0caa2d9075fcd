//! Promotion of one release to one stage: verify (before anything touches the target),
//! order, approvals, gates, the stage lock, deploy actions with per-action progress, outcome.
//! Every decision is audited before it is returned; the pipeline's notification channels hear
//! about approvals needed, promotions that succeeded or failed, and failed verifications.
//!
//! What a promotion decides is kept in its journal and written at commit points: before
//! anything happens outside ferry's records (a deploy action or a gate starts, the lock is
//! released) and when it returns — its events in one append, then its record in one write
//! (write-ahead: the log is never behind the state). A crash between commit points loses only
//! decisions nothing has acted on yet.

mod actions;
mod approvals;
mod gates;
mod journal;
mod lease;
mod order;
pub mod patience;
mod reconcile;

pub use lease::{MIN_LEASE, check_lease};

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::json;

use crate::audit::EventKind;
use crate::clock::{Timestamp, human};
use crate::error::{Error, ErrorKind, Result};
use crate::ids::{Actor, ReleaseId, StageName};
use crate::keys::PublicKey;
use crate::notify::{self, Message};
use crate::pipeline::{NotifyEvent, OnFailure, Pipeline, Stage};
use crate::plan::StageStep;
use crate::ports::{LockInfo, Services, Target};
use crate::release::{self, Verified};
use crate::state::{Cause, Phase, StageRecord, StageStatus, Step};

/// What to promote and how.
#[derive(Debug, Clone)]
pub struct Request {
    pub release: ReleaseId,
    pub stage: StageName,
    pub actor: Actor,
    /// Run the deploy actions again even if they ran (or may have run) before.
    pub redeploy: bool,
    /// Wait this long for a busy stage lock instead of failing at once.
    pub wait: Option<Duration>,
    /// How long a lock is valid before others may consider it abandoned.
    pub lease: Duration,
    /// A rollback: approvals are waived when the pipeline's policy allows rollback without them.
    pub rollback: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Deployed {
        release: ReleaseId,
        stage: StageName,
        actions: usize,
        skipped: usize,
    },
    AlreadyDeployed {
        release: ReleaseId,
        stage: StageName,
    },
    AwaitingApproval {
        release: ReleaseId,
        stage: StageName,
        have: Vec<Actor>,
        need: u32,
        eligible: Vec<Actor>,
        excluded: Vec<Actor>,
        approve_command: String,
    },
    /// Outside the stage's deployment window, or during a freeze.
    Blocked {
        release: ReleaseId,
        stage: StageName,
        reason: String,
        next_allowed: Option<Timestamp>,
    },
    /// Deployed, but a post-deploy gate failed (`rollback::promote` then rolls back a stage
    /// with `on_failure: rollback`).
    PostDeployGateFailed {
        release: ReleaseId,
        stage: StageName,
        gate: String,
        /// Where the gate is written.
        #[serde(skip_serializing_if = "Option::is_none")]
        origin: Option<crate::Origin>,
    },
}

/// The exact command that approves `release` for `stage`.
pub fn approve_command(pipeline: &Pipeline, release: &ReleaseId, stage: &StageName) -> String {
    format!("ferry approve {} --release {release} --stage {stage}", pipeline.file.display())
}

fn promote_command(pipeline: &Pipeline, release: &ReleaseId, stage: &StageName) -> String {
    format!("ferry promote {} --release {release} --to {stage}", pipeline.file.display())
}

/// Promotes `req.release` to `req.stage`.
pub fn promote(svc: &Services, pipeline: &Pipeline, pinned: &PublicKey, req: &Request) -> Result<Outcome> {
    let stage = pipeline.stage_or_error(&req.stage)?;
    check_lease(req.lease)?;
    // A guarded stage trusts the published root, not the pipeline file in CI's checkout.
    if let Err(e) = crate::trust::check(svc.trust.current(&pipeline.name)?.as_ref(), pipeline, pinned, Some(&stage.name)) {
        let draft = crate::audit::Draft::new(EventKind::GateFailed, &req.actor, &pipeline.name)
            .release(&req.release)
            .stage(&stage.name)
            .details(json!({"gate": "trust_root", "reason": e.message}));
        svc.audit.append(draft)?;
        return Err(e);
    }
    let message = |event, detail: String| Message::new(event, pipeline, &req.release, &stage.name, &req.actor, detail);
    // Verified while copied where the deploy actions will read it: one read of each artifact.
    let copies = actions::WorkCopies::new(&svc.work_dir, &req.release, &stage.name);
    let purpose = format!("promote to {}", stage.name);
    // Its event is written with the promotion's first decisions (a failure's at once).
    let (verified, verify_event) = release::verify_recorded(svc, pipeline, &req.release, pinned, &req.actor, &purpose, Some(copies.dir()));
    let verified = match verified {
        Ok(v) => v,
        Err(e) => {
            if let Some(d) = verify_event {
                svc.audit.append(d)?;
            }
            if e.kind == ErrorKind::Verification {
                notify::notify(svc, pipeline, &req.actor, &message(NotifyEvent::VerificationFailed, e.message.clone()));
            }
            return Err(e);
        }
    };
    let p = Promotion {
        svc,
        pipeline,
        stage,
        req,
        verified: &verified,
        pinned,
        copies: copies.dir(),
        last_seq: std::cell::Cell::new(0),
        lock_token: std::cell::RefCell::default(),
        stop: std::sync::Arc::new(crate::ports::Stop::under(svc.interrupt.clone())),
        lost: lease::Lost::default(),
        journal: std::cell::RefCell::new(journal::Journal { events: verify_event.into_iter().collect(), ..journal::Journal::default() }),
        required: std::cell::RefCell::default(),
    };
    let result = p.run();
    // What it decided last is written before it is reported.
    let result = match (result, p.commit()) {
        (Ok(outcome), Ok(())) => Ok(outcome),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(c)) => {
            tracing::warn!("could not record the end of the promotion: {}", c.message);
            Err(e)
        }
        (Err(e), Ok(())) => Err(e),
    };
    let before = p.journal.borrow().first_status;
    let with_manifest = |m: Message| m.with_manifest(&verified.manifest, &verified.manifest_sha256);
    let event = match &result {
        Ok(Outcome::Deployed { actions, .. }) => {
            Some(with_manifest(message(NotifyEvent::PromotionSucceeded, format!("deployed ({actions} action(s))"))))
        }
        Ok(Outcome::AwaitingApproval { have, need, approve_command, .. }) if before != Some(StageStatus::AwaitingApproval) => {
            let mut m = with_manifest(message(NotifyEvent::ApprovalNeeded, format!("needs {need} approval(s); {} so far", have.len())));
            m.approve_command = Some(approve_command.clone());
            m.approval_expires_at = stage.approval.as_ref().map(|a| svc.clock.now().plus(a.expires));
            Some(m)
        }
        Ok(Outcome::PostDeployGateFailed { gate, .. }) => {
            let then = if stage.on_failure == OnFailure::Rollback && !req.rollback { "; rolling back" } else { "" };
            Some(with_manifest(message(NotifyEvent::PromotionFailed, format!("post-deploy gate failed: {gate}{then}"))))
        }
        Err(e) if matches!(e.kind, ErrorKind::Failed | ErrorKind::Verification) => {
            Some(with_manifest(message(NotifyEvent::PromotionFailed, e.message.clone())))
        }
        _ => None,
    };
    if let Some(m) = event {
        notify::notify(svc, pipeline, &req.actor, &m);
    }
    result
}

struct Promotion<'a> {
    svc: &'a Services,
    pipeline: &'a Pipeline,
    stage: &'a Stage,
    req: &'a Request,
    verified: &'a Verified,
    /// The pipeline's pinned key: what deployment attestations of required stages verify with.
    pinned: &'a PublicKey,
    /// Where the verified copies of the artifacts are.
    copies: &'a std::path::Path,
    /// The position of the last event this promotion wrote; every state write records it.
    last_seq: std::cell::Cell<u64>,
    /// The token of the stage lock once held: handed to every command run under it.
    lock_token: std::cell::RefCell<Option<String>>,
    /// Raised when the stage lock is lost or the process is asked to stop: commands are
    /// stopped, waits (soaks, polls) end.
    stop: std::sync::Arc<crate::ports::Stop>,
    /// Why the stage lock was lost, once it was: no state is written after that.
    lost: lease::Lost,
    /// What it decided and has not written yet.
    journal: std::cell::RefCell<journal::Journal>,
    /// The records of the stages this one requires, as read for its order check.
    required: std::cell::RefCell<BTreeMap<StageName, Option<StageRecord>>>,
}

impl Promotion<'_> {
    fn now(&self) -> Timestamp {
        self.svc.clock.now()
    }

    /// The stage's record, created if new — or, when the release already succeeded there (and
    /// no redeploy was asked for), the outcome that says so.
    fn open_record(&self) -> Result<std::result::Result<StageRecord, Outcome>> {
        let record = self.read()?;
        if let Some(r) = &record
            && r.status() == StageStatus::Succeeded
            && !self.req.redeploy
        {
            self.clear_stale_lock()?;
            return Ok(Err(Outcome::AlreadyDeployed { release: self.req.release.clone(), stage: self.stage.name.clone() }));
        }
        Ok(Ok(match record {
            Some(r) => r,
            None => {
                // Created at the next commit point.
                let r = self.new_record();
                self.journal.borrow_mut().record = Some(r.clone());
                r
            }
        }))
    }

    /// Executes the stage's plan (`plan::stage_steps`, what `ferry plan` prints), step by step.
    fn run(&self) -> Result<Outcome> {
        let (release, stage) = (&self.req.release, &self.stage.name);
        let steps = crate::plan::stage_steps(self.pipeline, self.stage);
        let (before, after) = steps.split_at(steps.iter().position(|s| *s == StageStep::Lock).unwrap_or(steps.len()));
        let mut record = None;
        let (mut order_checked, mut windows_checked) = (false, false);
        for &step in before {
            if record.is_none() && !matches!(step, StageStep::Verify | StageStep::Require(_)) {
                match self.open_record()? {
                    Ok(r) => record = Some(r),
                    Err(done) => return Ok(done),
                }
            }
            match step {
                // `promote` verified the release before anything else.
                StageStep::Verify => {}
                // Every required stage at once (one audited decision).
                StageStep::Require(_) if !order_checked => {
                    order_checked = true;
                    self.check_order()?;
                }
                StageStep::Approval => {
                    // (The record was opened above: approvals follow the order check.)
                    if let Some(r) = &record
                        && let Some(waiting) = self.check_approvals(r)?
                    {
                        return Ok(waiting);
                    }
                }
                // The windows and the organization's freezes are judged together (the next
                // allowed instant must satisfy all of them).
                s if s.is_window(self.stage) && !windows_checked => {
                    windows_checked = true;
                    if let Some(blocked) = self.check_windows()? {
                        return Ok(blocked);
                    }
                }
                StageStep::Gate(i) => {
                    if let Some(why) = self.run_gate(i)? {
                        return Err(Error::failed(why).at(self.gate_origin(i)));
                    }
                }
                _ => {}
            }
        }
        // A stage with nothing to judge before its lock reads its record only under the lock;
        // a busy lock still finds a release that is there already.
        let (lock, previous) = match self.lock() {
            Err(e) if e.kind == ErrorKind::Busy && record.is_none() => {
                if let Err(done) = self.open_record()? {
                    return Ok(done);
                }
                return Err(e);
            }
            other => other?,
        };
        self.lock_token.replace(Some(lock.token.clone()));
        let heartbeat = lease::Heartbeat {
            locks: self.svc.locks.as_ref(),
            clock: self.svc.clock.as_ref(),
            lease: self.req.lease,
            stop: &self.stop,
            lost: &self.lost,
        };
        let (result, lock) = heartbeat.hold(&lock, || self.deploy_locked(after, previous.as_ref()));
        if let Some(why) = self.lost.get() {
            // Not ours any more: nothing to release; whoever holds it now owns the stage.
            self.audit(EventKind::LeaseLost, json!({"holder": lock.holder, "reason": why, "lease": human(self.req.lease)}))?;
            let during = result.err().map(|e| format!(" ({})", e.message)).unwrap_or_default();
            return Err(Error::failed(format!("{why}; the promotion of release `{release}` to stage `{stage}` stopped{during}"))
                .hint("a deploy action may have partly run; check the stage before promoting again")
                .hint(format!("`ferry status {}` shows what the stage records", self.pipeline.file.display())));
        }
        // The events and state first: a crash before the release leaves a lock the next run
        // takes over.
        self.audit(EventKind::LockReleased, json!({"holder": lock.holder}))?;
        let committed = self.commit();
        let released = self.svc.locks.release(&lock);
        let outcome = result?;
        committed?;
        released?;
        Ok(outcome)
    }

    fn base_env(&self) -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        env.insert("FERRY_PIPELINE".into(), self.pipeline.name.to_string());
        env.insert("FERRY_RELEASE".into(), self.req.release.to_string());
        env.insert("FERRY_STAGE".into(), self.stage.name.to_string());
        env.insert("FERRY_ACCOUNT_ID".into(), self.stage.account.to_string());
        env.insert("FERRY_ACCOUNT_ALIAS".into(), self.stage.account_alias.clone());
        if let Some(root) = &self.svc.account_root {
            env.insert("FERRY_ACCOUNT_DIR".into(), root.join(self.stage.account.as_str()).display().to_string());
        }
        let tags = self.pipeline.tags_for(self.stage, &self.req.release);
        env.insert("FERRY_TAGS".into(), serde_json::to_string(&tags).unwrap_or_default());
        if let Some(region) = &self.stage.region {
            env.insert("FERRY_REGION".into(), region.to_string());
        }
        // A command that outlives this promotion is recognised by it (see `Liveness`).
        if let Some(token) = self.lock_token.borrow().as_ref() {
            env.insert(crate::ports::LOCK_TOKEN_VAR.into(), token.clone());
        }
        env
    }

    /// The stage account and the session commands act under there.
    fn target(&self) -> Target {
        Target {
            account: self.stage.account.clone(),
            role: self.stage.role.clone(),
            region: self.stage.region.clone(),
            session_name: format!("ferry-{}-{}-{}", self.pipeline.name, self.req.release, self.stage.name),
            actor: self.req.actor.clone(),
            tags: vec![
                ("ferry:pipeline".into(), self.pipeline.name.to_string()),
                ("ferry:release".into(), self.req.release.to_string()),
                ("ferry:stage".into(), self.stage.name.to_string()),
            ],
            protected: self.pipeline.policy.protected_stages.contains(&self.stage.name).then(|| crate::ports::Protected {
                pipeline: self.pipeline.name.clone(),
                release: self.req.release.clone(),
                stage: self.stage.name.clone(),
            }),
        }
    }

    /// Fails the promotion before `next` starts if it was told to stop (SIGINT/SIGTERM, a lost
    /// lock), audited and recorded.
    fn check_stop(&self, next: &str) -> Result<()> {
        let Some(why) = self.stop.reason() else { return Ok(()) };
        self.audit(EventKind::PromotionFailed, json!({"reason": format!("stopped before {next}: {why}"), "interrupted": true}))?;
        if self.lost.get().is_none() {
            self.step(Step::Stop { before: next.to_owned(), reason: why.clone() })?;
        }
        Err(Error::failed(format!(
            "the promotion of release `{}` to stage `{}` stopped before {next}: {why}",
            self.req.release, self.stage.name
        ))
        .hint(format!("promote again when ready: `{} --redeploy`", promote_command(self.pipeline, &self.req.release, &self.stage.name))))
    }

    /// Runs the plan's steps after taking the lock (deploy actions, post-deploy gates, the
    /// outcome) while holding it.
    fn deploy_locked(&self, steps: &[StageStep], previous: Option<&LockInfo>) -> Result<Outcome> {
        let (release, stage) = (&self.req.release, &self.stage.name);
        // Read under the lock: another promotion may have finished while we waited.
        let mut current = self.read()?;
        match &current {
            Some(r) if r.phase().is_running() || r.interrupted_action().is_some() => current = Some(self.reconcile(r)?),
            // A holder that died between logging its decisions and writing its record may
            // have logged an action's start (the action never ran: it runs only once the record
            // says it started); the run that takes its lock over says so.
            None if previous.is_some() => {
                self.reconcile(&self.new_record())?;
            }
            _ => {}
        }
        if let Some(r) = &current {
            if r.status() == StageStatus::Succeeded && !self.req.redeploy {
                return Ok(Outcome::AlreadyDeployed { release: release.clone(), stage: stage.clone() });
            }
            if let (Some(a), false) = (r.interrupted_action(), self.req.redeploy) {
                self.audit(
                    EventKind::DeployInterrupted,
                    json!({"action": a.index, "summary": a.summary, "started_at": a.started_at, "previous_lock": previous}),
                )?;
                let who = previous.map_or(String::new(), |l| {
                    let age = human(l.acquired_at.age(self.now()));
                    format!(" by `{}` (pid {} on `{}`, lock taken {age} ago; that process is gone)", l.holder, l.pid, l.host)
                });
                return Err(Error::failed(format!(
                    "deploy action {} (`{}`) of release `{release}` to stage `{stage}` started at {}{who} and never finished: it may have partly run",
                    a.index, a.summary, a.started_at
                ))
                .hint("ferry will not run it again on its own; check the stage, then re-run every action with:")
                .hint(promote_command(self.pipeline, release, stage) + " --redeploy"));
            }
            if let (Phase::Failed { cause }, false, false) = (r.phase(), r.actions().is_empty(), self.req.redeploy) {
                let action = match &cause {
                    Cause::Action { index, .. } | Cause::ActionNotStarted { index, .. } => Some(*index),
                    _ => None,
                };
                let note = if matches!(cause, Cause::Gate { after_deploy: true, .. }) { " (its deploy actions succeeded)" } else { "" };
                self.audit(
                    EventKind::PromotionFailed,
                    json!({"reason": "the previous attempt failed; --redeploy required", "action": action, "previous": cause.to_string()}),
                )?;
                return Err(Error::failed(format!(
                    "the last promotion of release `{release}` to stage `{stage}` failed: {cause}{note}; ferry does not run deploy actions twice on its own"
                ))
                .hint(format!("after fixing the cause: `{} --redeploy`", promote_command(self.pipeline, release, stage))));
            }
        }
        let fresh = self.req.redeploy || current.as_ref().is_none_or(|r| !r.phase().is_running());
        let record = self.step(Step::BeginDeploy { fresh })?;
        let artifacts = self.materialize()?;
        let mut skipped = 0;
        for &step in steps {
            match step {
                StageStep::Deploy(i) => {
                    if record.action_succeeded(i) {
                        skipped += 1;
                        tracing::info!("deploy action {i} of stage `{stage}` already succeeded; skipping");
                        continue;
                    }
                    // Nothing more starts once the promotion is told to stop (its heartbeat
                    // keeps the lock meanwhile).
                    self.check_stop(&format!("deploy action {i}"))?;
                    self.run_action(i, &self.stage.deploy[i], &artifacts)?;
                }
                StageStep::Gate(i) => {
                    if let Some(why) = self.run_gate(i)? {
                        // Deployed, but not healthy: the promotion failed (the record names the
                        // gate, not an action); `rollback::promote` may roll back.
                        self.audit(EventKind::PromotionFailed, json!({"reason": why, "after_deploy": true}))?;
                        let origin = self.gate_origin(i);
                        return Ok(Outcome::PostDeployGateFailed { release: release.clone(), stage: stage.clone(), gate: why, origin });
                    }
                }
                StageStep::Record => {
                    let evidence = self.attest(record.attempt)?;
                    self.audit(
                        EventKind::PromotionSucceeded,
                        json!({"actions": self.stage.deploy.len(), "skipped": skipped, "manifest_sha256": self.verified.manifest_sha256,
                               "attestation": evidence}),
                    )?;
                    self.step(Step::Succeed { at: self.now(), evidence })?;
                }
                // The stage role is assumed by each action as it starts; a rollback wraps the
                // outcome (`rollback::promote`).
                StageStep::AssumeRole | StageStep::RollbackOnFailure | StageStep::Lock => {}
                StageStep::Verify | StageStep::Require(_) | StageStep::Approval | StageStep::OrgFreeze => {}
            }
        }
        Ok(Outcome::Deployed { release: release.clone(), stage: stage.clone(), actions: self.stage.deploy.len(), skipped })
    }
}
