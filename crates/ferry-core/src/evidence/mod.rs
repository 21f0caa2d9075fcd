//! What an auditor proves of a pipeline's log beyond its chain: every `approved` or `rejected`
//! event is backed by a signed decision that verifies with the approver's pinned key; every
//! approval gate that passed is backed by signed decisions that count (pinned keys, this
//! release's manifest, this stage and request, unexpired when the gate passed, once per key,
//! never the builder's or requester's) and that were recorded before it; every deploy to a
//! stage that requires approvals came after such a gate; every success carries a deployment
//! attestation signed with the pipeline's key. The result is reported per release, and every
//! problem names the event it is about.
//!
//! A chain that verifies proves only that nobody changed what was written; this proves that
//! what was written is backed by signatures the automation cannot make: a correctly chained
//! `approved` event appended by anyone with the audit role is found here, by its position.
//!
//! The rules read their inputs through `Sources` (the pipeline's backend online, an exported
//! bundle offline: `bundle`) and trust only a `TrustRoot` (the published one, or the pipeline
//! file's when none is published).

pub mod bundle;

use std::collections::HashMap;

use serde::Serialize;

use crate::approval::signed::ApprovalRequest;
use crate::approval::{self, ApprovalState, Parties, signed};
use crate::attestation::Envelope;
use crate::audit::{Event, EventFilter, EventKind};
use crate::error::Result;
use crate::ids::{Actor, PipelineName, ReleaseId, Sha256Digest, StageName};
use crate::keys::PublicKey;
use crate::manifest::ReleaseManifest;
use crate::ports::{DecisionRecord, Services, StoredRelease};
use crate::trust::TrustRoot;

/// Where the evidence of one pipeline is read from.
pub trait Sources {
    /// The pipeline's events, in order.
    fn events(&self) -> Result<Vec<Event>>;
    /// Every decision record of the pipeline (signed or not).
    fn decisions(&self) -> Result<Vec<DecisionRecord>>;
    fn release(&self, id: &ReleaseId) -> Result<Option<StoredRelease>>;
    fn request(&self, release: &ReleaseId, stage: &StageName, digest: &Sha256Digest) -> Result<Option<ApprovalRequest>>;
}

/// A pipeline's evidence in its backend.
pub struct Online<'a> {
    pub svc: &'a Services,
    pub pipeline: &'a PipelineName,
}

impl Sources for Online<'_> {
    fn events(&self) -> Result<Vec<Event>> {
        self.svc.audit.events(&EventFilter { pipeline: Some(self.pipeline.clone()), ..EventFilter::default() })
    }
    fn decisions(&self) -> Result<Vec<DecisionRecord>> {
        self.svc.state.all_decisions(self.pipeline)
    }
    fn release(&self, id: &ReleaseId) -> Result<Option<StoredRelease>> {
        Ok(self.svc.store.get_releases(std::slice::from_ref(id))?.pop().flatten())
    }
    fn request(&self, release: &ReleaseId, stage: &StageName, digest: &Sha256Digest) -> Result<Option<ApprovalRequest>> {
        self.svc.state.request(self.pipeline, release, stage, digest)
    }
}

/// An event the signed evidence does not back, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub seq: u64,
    pub kind: EventKind,
    pub release: Option<ReleaseId>,
    pub stage: Option<StageName>,
    pub problem: String,
}

/// What the evidence says of one release in one stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StageEvidence {
    pub stage: Option<StageName>,
    /// Approvals the stage requires (none: the stage needs none).
    pub required: Option<u32>,
    /// The approvers whose signed approvals counted when its approval gate passed.
    pub approved_by: Vec<String>,
    /// Whether the approval gate was waived (a rollback the pipeline's policy lets through).
    pub waived: bool,
    pub deployed: bool,
    /// Whether its success carries a valid deployment attestation.
    pub attested: bool,
}

/// The evidence of one release: per stage, and how many problems it has.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseEvidence {
    pub release: ReleaseId,
    pub stages: Vec<StageEvidence>,
    pub problems: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    /// The pipeline's events checked.
    pub events: u64,
    pub releases: Vec<ReleaseEvidence>,
    pub problems: Vec<Problem>,
}

/// The stored decision records (where, bytes) of each (release, stage).
type Records = HashMap<(ReleaseId, StageName), Vec<(String, Vec<u8>)>>;

/// A release's manifest as stored: its digest and builder (what approvals are bound to).
struct Built {
    manifest: Sha256Digest,
    builder: Actor,
}

/// A decision event backed by a signed record: approver name, verdict, request.
struct Backed {
    approver: String,
    verdict: approval::Verdict,
    request: Sha256Digest,
}

#[derive(Default)]
struct Stage {
    /// The request the stage last waited on (its `approval_pending` events say which).
    request: Option<Sha256Digest>,
    backed: Vec<Backed>,
    /// Whether an approval gate passed with a quorum the evidence backs (or was waived).
    quorum: bool,
    /// Whether a deploy without quorum was reported already.
    reported: bool,
    report: StageEvidence,
}

/// What `check` says with the first of `keys` it holds for (a root may pin two release keys
/// while one is rotated), else what the first key said.
pub(crate) fn any_key<T>(keys: &[PublicKey], check: impl Fn(&PublicKey) -> Result<T>) -> Result<T> {
    let mut first = None;
    for key in keys {
        match check(key) {
            Ok(v) => return Ok(v),
            Err(e) => {
                first.get_or_insert(e);
            }
        }
    }
    Err(first.unwrap_or_else(|| crate::Error::verification("the trust root pins no release key")))
}

/// Checks the pipeline's events against its signed evidence, trusting only `root` (its release
/// keys sign releases and deployment attestations; its approvers and policies say what counts).
pub fn check(sources: &dyn Sources, root: &TrustRoot) -> Result<Evidence> {
    let events = sources.events()?;
    let mut decisions: Records = HashMap::new();
    for d in sources.decisions()? {
        decisions.entry((d.release, d.stage)).or_default().push((d.location, d.bytes));
    }
    let mut checker = Checker {
        sources,
        root,
        keys: root.release_keys()?,
        pinned: root.approvers()?,
        decisions,
        built: HashMap::new(),
        stages: HashMap::new(),
        seen: Vec::new(),
        out: Evidence::default(),
    };
    let mut order: Vec<ReleaseId> = Vec::new();
    for e in &events {
        checker.out.events += 1;
        let Some(release) = &e.release else { continue };
        if !order.contains(release) {
            order.push(release.clone());
        }
        checker.event(e, release)?;
    }
    let Checker { stages, seen, mut out, .. } = checker;
    for release in order {
        let problems = out.problems.iter().filter(|p| p.release.as_ref() == Some(&release)).count();
        let stages: Vec<StageEvidence> =
            seen.iter().filter(|(r, _)| r == &release).filter_map(|k| stages.get(k)).map(|s| s.report.clone()).collect();
        out.releases.push(ReleaseEvidence { release, stages, problems });
    }
    Ok(out)
}

struct Checker<'a> {
    sources: &'a dyn Sources,
    root: &'a TrustRoot,
    keys: Vec<PublicKey>,
    pinned: Vec<signed::Approver>,
    decisions: Records,
    built: HashMap<ReleaseId, Option<Built>>,
    stages: HashMap<(ReleaseId, StageName), Stage>,
    /// The (release, stage) pairs in the order the log first names them.
    seen: Vec<(ReleaseId, StageName)>,
    out: Evidence,
}

impl Checker<'_> {
    fn problem(&mut self, e: &Event, problem: String) {
        self.out.problems.push(Problem { seq: e.seq, kind: e.kind, release: e.release.clone(), stage: e.stage.clone(), problem });
    }

    /// The release's stored manifest (read once), if it is there and its envelope verifies.
    fn built(&mut self, release: &ReleaseId) -> Result<Option<&Built>> {
        if !self.built.contains_key(release) {
            let found = match self.sources.release(release)? {
                None => None,
                Some(stored) => {
                    let digest = ReleaseManifest::digest_of(&stored.manifest);
                    let envelope = Envelope::from_bytes(&stored.envelope).ok();
                    let sound = ReleaseManifest::from_bytes(&stored.manifest).ok().filter(|m| {
                        envelope.as_ref().is_some_and(|env| {
                            self.keys
                                .iter()
                                .any(|key| env.verify(key).and_then(|st| crate::attestation::check_binding(&st, m, &digest)).is_ok())
                        })
                    });
                    sound.map(|m| Built { manifest: digest, builder: m.builder.actor })
                }
            };
            self.built.insert(release.clone(), found);
        }
        Ok(self.built.get(release).and_then(Option::as_ref))
    }

    fn event(&mut self, e: &Event, release: &ReleaseId) -> Result<()> {
        let Some(stage) = e.stage.clone() else { return Ok(()) };
        let policy = self.root.policy(&stage);
        let at = (release.clone(), stage.clone());
        if !self.stages.contains_key(&at) {
            self.seen.push(at.clone());
        }
        let entry = self.stages.entry(at.clone()).or_default();
        entry.report.stage = Some(stage.clone());
        entry.report.required = policy.as_ref().map(|p| p.required);
        let digest = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<Sha256Digest>().ok());
        match e.kind {
            EventKind::ApprovalPending => {
                if let Some(d) = digest(&e.details["request"]) {
                    entry.request = Some(d);
                }
            }
            EventKind::Approved | EventKind::Rejected => self.decision(e, release, &stage)?,
            EventKind::GatePassed if e.details["gate"] == "approval" => self.gate(e, release, &stage, policy.as_ref())?,
            EventKind::DeployStart | EventKind::PromotionSucceeded => {
                let quorum = entry.quorum;
                if policy.is_some() && !quorum && !entry.reported {
                    entry.reported = true;
                    let need = policy.as_ref().map_or(0, |p| p.required);
                    self.problem(
                        e,
                        format!("release `{release}` was deployed to `{stage}` without a quorum of {need} signed approvals before it"),
                    );
                }
                if e.kind == EventKind::PromotionSucceeded {
                    self.success(e, release, &stage)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// An `approved` or `rejected` event: a stored decision signed by the approver it names,
    /// with the key pinned for them, on this release, stage and request, must be behind it.
    fn decision(&mut self, e: &Event, release: &ReleaseId, stage: &StageName) -> Result<()> {
        let name = e.details["approver"].as_str().unwrap_or("").to_owned();
        let verdict = if e.kind == EventKind::Approved { approval::Verdict::Approve } else { approval::Verdict::Reject };
        let Some(request) = e.details["request"].as_str().and_then(|s| s.parse::<Sha256Digest>().ok()) else {
            self.problem(
                e,
                format!("`{}` by `{name}` names no approval request: no signed decision can back it", crate::wire_name(&e.kind)),
            );
            return Ok(());
        };
        let Some(manifest) = self.built(release)?.map(|b| b.manifest.clone()) else {
            self.problem(
                e,
                format!("`{}` by `{name}` is for release `{release}`, which the store does not hold", crate::wire_name(&e.kind)),
            );
            return Ok(());
        };
        let expected =
            signed::Expected { pipeline: &self.root.pipeline, release, manifest: &manifest, stage, request: &request, now: e.at };
        let records = self.decisions.get(&(release.clone(), stage.clone())).map(Vec::as_slice).unwrap_or_default();
        let found = records.iter().any(|r| {
            let c = signed::count(std::slice::from_ref(r), &self.pinned, &[], &[], &expected);
            c.approvals.iter().chain(c.rejection.iter()).any(|d| d.approver == name && d.verdict == verdict)
        });
        if found {
            let entry = self.stages.entry((release.clone(), stage.clone())).or_default();
            entry.backed.push(Backed { approver: name, verdict, request });
        } else {
            self.problem(
                e,
                format!(
                    "`{}` by `{name}` is backed by no signed decision: no record of `{release}` in `{stage}` verifies with `{name}`'s pinned key for request {request}",
                    crate::wire_name(&e.kind)
                ),
            );
        }
        Ok(())
    }

    /// An approval gate that passed: the signed decisions recorded before it must count to the
    /// stage's quorum, and name everyone the event says approved.
    fn gate(&mut self, e: &Event, release: &ReleaseId, stage: &StageName, policy: Option<&crate::pipeline::ApprovalPolicy>) -> Result<()> {
        let key = (release.clone(), stage.clone());
        if e.details.get("waived").is_some() {
            if self.root.allow_rollback_without_approval {
                let entry = self.stages.entry(key).or_default();
                entry.quorum = true;
                entry.report.waived = true;
            } else {
                self.problem(e, format!("the approval gate of `{stage}` was waived, which the pipeline's policy does not allow"));
            }
            return Ok(());
        }
        let Some(policy) = policy else { return Ok(()) };
        let claimed: Vec<String> = e.details["approved_by"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let entry = self.stages.entry(key.clone()).or_default();
        let request = e.details["request"].as_str().and_then(|s| s.parse::<Sha256Digest>().ok()).or_else(|| entry.request.clone());
        let Some(request) = request else {
            self.problem(e, format!("the approval gate of `{stage}` passed with no approval request: nothing signed can back it"));
            return Ok(());
        };
        let Some(built) = self.built(release)? else {
            self.problem(e, format!("the approval gate of `{stage}` passed for release `{release}`, which the store does not hold"));
            return Ok(());
        };
        let (manifest, builder) = (built.manifest.clone(), built.builder.clone());
        let requester = self.sources.request(release, stage, &request)?.map(|r| r.requested_by);
        let parties = Parties { builder: Some(builder), requester };
        let expected =
            signed::Expected { pipeline: &self.root.pipeline, release, manifest: &manifest, stage, request: &request, now: e.at };
        let records = self.decisions.get(&key).map(Vec::as_slice).unwrap_or_default();
        let (state, _) = approval::evaluate(Some(policy), &self.pinned, records, &expected, &parties);
        let counted: Vec<String> = match state {
            ApprovalState::Approved { by } => by.iter().map(ToString::to_string).collect(),
            ApprovalState::Pending { have, .. } => have.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        };
        let entry = self.stages.entry(key).or_default();
        // Counted, and recorded in the log before the gate (an approval signed later did not
        // open it).
        let (backed, unlogged): (Vec<String>, Vec<String>) = counted.into_iter().partition(|n| {
            entry.backed.iter().any(|b| &b.approver == n && b.verdict == approval::Verdict::Approve && b.request == request)
        });
        let unbacked: Vec<&String> = claimed.iter().filter(|c| !backed.contains(c)).collect();
        entry.report.approved_by = backed.clone();
        if backed.len() >= policy.required as usize && unbacked.is_empty() {
            entry.quorum = true;
            return Ok(());
        }
        let list = |v: &[String]| if v.is_empty() { "nobody".to_owned() } else { v.join(", ") };
        let claimed = list(&claimed);
        let unlogged = if unlogged.is_empty() {
            String::new()
        } else {
            format!("; signed by {} too, but the log does not record it before the gate (not made with `ferry approve`)", list(&unlogged))
        };
        self.problem(
            e,
            format!(
                "the approval gate of `{stage}` passed naming {claimed}, but the signed approvals recorded before it that count are {} ({} required){unlogged}",
                list(&backed),
                policy.required
            ),
        );
        Ok(())
    }

    /// A success: its deployment attestation must verify with the pipeline's key.
    fn success(&mut self, e: &Event, release: &ReleaseId, stage: &StageName) -> Result<()> {
        let Some(manifest) = self.built(release)?.map(|b| b.manifest.clone()) else {
            self.problem(
                e,
                format!("release `{release}` succeeded in `{stage}` but is not in the store with an envelope the pinned key signs"),
            );
            return Ok(());
        };
        let attested = match serde_json::from_value::<Envelope>(e.details["attestation"].clone()) {
            Err(_) => Err("it carries no signed deployment attestation".to_owned()),
            Ok(env) => {
                any_key(&self.keys, |key| crate::attestation::check_deployment(&env, key, &self.root.pipeline, release, &manifest, stage))
                    .map_err(|err| format!("its deployment attestation is not valid: {}", err.message))
            }
        };
        let entry = self.stages.entry((release.clone(), stage.clone())).or_default();
        entry.report.deployed = true;
        match attested {
            Ok(()) => entry.report.attested = true,
            Err(why) => self.problem(e, format!("the success of `{release}` in `{stage}` is not proven: {why}")),
        }
        Ok(())
    }
}
