//! The evidence bundle of one release (`ferry audit export --release R DIR`): everything an
//! auditor needs to prove, offline and without ferry, what happened to it.
//!
//! ```text
//! bundle.json                    what is in it: release, pipeline, event range, checkpoint,
//!                                keys, and the sha256 of every other file
//! trust-root.json                the root the evidence was judged by (published, or the
//!                                pipeline file's when none is published)
//! manifest.json                  the release manifest, as stored
//! provenance.dsse.json           its signed SLSA provenance
//! approvals/STAGE/RECORD         every decision record of the release, as stored
//! requests/STAGE/DIGEST.json     each approval request (canonical JSON: it hashes to DIGEST)
//! attestations/STAGE-SEQ.dsse.json  each deployment attestation (from event SEQ)
//! events.jsonl                   the log's lines from the release's first event up to the
//!                                signed checkpoint after its last (other pipelines' events
//!                                included: the chain needs them); the same bodies and hashes
//!                                as stored, each with a fresh nonce (outside the hash)
//! checkpoint.dsse.json           that checkpoint
//! keys/release-N.{pem,json}, keys/approver-NAME.{pem,json}   the keys, PEM and
//!                                securesystemslib JSON
//! ```
//!
//! `verify` checks a bundle with the same rules as `ferry audit verify --pipeline`, reading
//! nothing but its files.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Evidence, Sources};
use crate::approval::signed::ApprovalRequest;
use crate::audit::{Event, EventFilter, EventKind};
use crate::digest::json_canonical;
use crate::error::{Error, Result};
use crate::ids::{PipelineName, ReleaseId, Sha256Digest, StageName};
use crate::keys::PublicKey;
use crate::ports::{DecisionRecord, Services, StoredRelease};
use crate::trust::TrustRoot;

pub const BUNDLE_VERSION: u32 = 1;

/// A bundle's files by relative path.
pub type Files = BTreeMap<String, Vec<u8>>;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    pub version: u32,
    pub pipeline: PipelineName,
    pub release: ReleaseId,
    pub manifest_sha256: Sha256Digest,
    /// The published root's serial; `None` when the pipeline file's was used.
    pub trust_root_serial: Option<u64>,
    /// The stored lines in `events.jsonl`: positions `first..=last`.
    pub first_event: u64,
    pub last_event: u64,
    /// The position `checkpoint.dsse.json` signs, if the log has a checkpoint after the
    /// release's last event.
    pub checkpoint: Option<u64>,
    /// Every other file and its sha256.
    pub files: BTreeMap<String, Sha256Digest>,
}

/// The last path component of a store key.
fn leaf(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

fn pretty<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(v).map_err(|e| Error::failed(format!("cannot encode: {e}")))?;
    out.push(b'\n');
    Ok(out)
}

/// The bundle of `release` from the pipeline's backend, judged by `root` (`serial`: the
/// published root's, if it is one).
pub fn export(svc: &Services, root: &TrustRoot, serial: Option<u64>, release: &ReleaseId) -> Result<Files> {
    let pipeline = &root.pipeline;
    let mut files = Files::new();
    let stored = svc.store.get_release(release)?;
    let manifest_sha256 = crate::manifest::ReleaseManifest::digest_of(&stored.manifest);
    files.insert("manifest.json".into(), stored.manifest.clone());
    files.insert("provenance.dsse.json".into(), stored.envelope.clone());

    let own =
        svc.audit.events(&EventFilter { release: Some(release.clone()), pipeline: Some(pipeline.clone()), ..EventFilter::default() })?;
    let (Some(first), Some(last)) = (own.first().map(|e| e.seq), own.last().map(|e| e.seq)) else {
        return Err(Error::failed(format!("the audit log holds no events of release `{release}` of pipeline `{pipeline}`"))
            .hint("check the release id and `--pipeline`; `ferry audit show --release R` lists a release's events"));
    };
    let checkpoint = svc.audit.checkpoint_from(last)?;
    let end = checkpoint.as_ref().map_or(last, |(seq, _)| *seq);
    let mut lines = Vec::new();
    for e in svc.audit.events(&EventFilter { after: Some(first - 1), ..EventFilter::default() })? {
        if e.seq > end {
            break;
        }
        lines.extend(e.to_bytes()?);
    }
    files.insert("events.jsonl".into(), lines);
    if let Some((_, envelope)) = &checkpoint {
        files.insert("checkpoint.dsse.json".into(), envelope.clone());
    }

    for d in svc.state.all_decisions(pipeline)?.into_iter().filter(|d| &d.release == release) {
        files.insert(format!("approvals/{}/{}", d.stage, leaf(&d.location)), d.bytes);
    }
    for e in &own {
        let Some(stage) = &e.stage else { continue };
        if let Some(digest) = e.details["request"].as_str().and_then(|s| s.parse::<Sha256Digest>().ok()) {
            let path = format!("requests/{stage}/{digest}.json");
            if !files.contains_key(&path)
                && let Some(r) = svc.state.request(pipeline, release, stage, &digest)?
            {
                let value = serde_json::to_value(&r).map_err(|e| Error::failed(format!("cannot encode: {e}")))?;
                files.insert(path, json_canonical(&value).into_bytes());
            }
        }
        if e.kind == EventKind::PromotionSucceeded && e.details["attestation"].is_object() {
            files.insert(format!("attestations/{stage}-{}.dsse.json", e.seq), pretty(&e.details["attestation"])?);
        }
    }

    files.insert("trust-root.json".into(), pretty(root)?);
    for (i, key) in root.release_keys()?.iter().enumerate() {
        files.insert(format!("keys/release-{}.pem", i + 1), key.to_pem()?.into_bytes());
        files.insert(format!("keys/release-{}.json", i + 1), pretty(&key.to_sslib_json())?);
    }
    for a in root.approvers()? {
        files.insert(format!("keys/approver-{}.pem", a.name), a.key.to_pem()?.into_bytes());
        files.insert(format!("keys/approver-{}.json", a.name), pretty(&a.key.to_sslib_json())?);
    }

    let index = Index {
        version: BUNDLE_VERSION,
        pipeline: pipeline.clone(),
        release: release.clone(),
        manifest_sha256,
        trust_root_serial: serial,
        first_event: first,
        last_event: end,
        checkpoint: checkpoint.map(|(seq, _)| seq),
        files: files.iter().map(|(k, v)| (k.clone(), Sha256Digest::of(v))).collect(),
    };
    files.insert("bundle.json".into(), pretty(&index)?);
    Ok(files)
}

/// What verifying a bundle found.
#[derive(Debug, Clone, Serialize)]
pub struct BundleReport {
    pub pipeline: PipelineName,
    pub release: ReleaseId,
    pub manifest_sha256: Sha256Digest,
    pub trust_root_serial: Option<u64>,
    /// The key ids the evidence was judged by (compare them with the keys you trust).
    pub release_keys: Vec<String>,
    pub approver_keys: BTreeMap<String, String>,
    /// Events in the bundle's stretch of the chain, which verified.
    pub events: u64,
    pub checkpoint: Option<u64>,
    /// Problems with the bundle itself (files, chain, checkpoint); the evidence's are in it.
    pub problems: Vec<String>,
    pub evidence: Evidence,
}

/// The bundle's files, read as evidence.
struct Offline<'a> {
    files: &'a Files,
    index: &'a Index,
    events: Vec<Event>,
}

impl Sources for Offline<'_> {
    fn events(&self) -> Result<Vec<Event>> {
        // The release's own: the others in the stretch are there for the chain only.
        Ok(self
            .events
            .iter()
            .filter(|e| e.pipeline.as_ref() == Some(&self.index.pipeline) && e.release.as_ref() == Some(&self.index.release))
            .cloned()
            .collect())
    }
    fn decisions(&self) -> Result<Vec<DecisionRecord>> {
        Ok(self
            .files
            .iter()
            .filter_map(|(path, bytes)| {
                let (stage, name) = path.strip_prefix("approvals/")?.split_once('/')?;
                Some(DecisionRecord {
                    release: self.index.release.clone(),
                    stage: stage.parse().ok()?,
                    location: format!("approvals/{stage}/{name}"),
                    bytes: bytes.clone(),
                })
            })
            .collect())
    }
    fn release(&self, id: &ReleaseId) -> Result<Option<StoredRelease>> {
        if id != &self.index.release {
            return Ok(None);
        }
        match (self.files.get("manifest.json"), self.files.get("provenance.dsse.json")) {
            (Some(m), Some(e)) => Ok(Some(StoredRelease { id: id.clone(), manifest: m.clone(), envelope: e.clone() })),
            _ => Ok(None),
        }
    }
    fn request(&self, release: &ReleaseId, stage: &StageName, digest: &Sha256Digest) -> Result<Option<ApprovalRequest>> {
        let Some(bytes) = self.files.get(&format!("requests/{stage}/{digest}.json")) else { return Ok(None) };
        let r: ApprovalRequest = serde_json::from_slice(bytes).map_err(|e| Error::verification(format!("request {digest}: {e}")))?;
        Ok((&r.release == release && &r.digest() == digest).then_some(r))
    }
}

/// Verifies a bundle from its files alone: every file against `bundle.json`, the stretch of
/// the chain and its signed checkpoint, then the evidence by the bundle's trust root.
pub fn verify(files: &Files) -> Result<BundleReport> {
    let index: Index = files
        .get("bundle.json")
        .ok_or_else(|| Error::invalid("not an evidence bundle: there is no bundle.json").hint("export one with `ferry audit export`"))
        .and_then(|b| serde_json::from_slice(b).map_err(|e| Error::invalid(format!("bundle.json is malformed: {e}"))))?;
    if index.version != BUNDLE_VERSION {
        return Err(Error::invalid(format!("bundle version {} is not supported", index.version))
            .hint(format!("this ferry reads version {BUNDLE_VERSION}")));
    }
    let mut problems = Vec::new();
    for (path, digest) in &index.files {
        match files.get(path) {
            None => problems.push(format!("{path} is listed in bundle.json but missing")),
            Some(b) if &Sha256Digest::of(b) != digest => {
                problems.push(format!("{path} does not match its sha256 in bundle.json: it was changed"))
            }
            Some(_) => {}
        }
    }
    if files.get("manifest.json").map(|m| Sha256Digest::of(m)) != Some(index.manifest_sha256.clone()) {
        problems.push(format!("manifest.json is not the manifest bundle.json names ({})", index.manifest_sha256));
    }
    for path in files.keys().filter(|p| p.as_str() != "bundle.json" && !index.files.contains_key(*p)) {
        problems.push(format!("{path} is not listed in bundle.json: it was added"));
    }
    let root: TrustRoot = files
        .get("trust-root.json")
        .ok_or_else(|| Error::verification("the bundle has no trust-root.json"))
        .and_then(|b| serde_json::from_slice(b).map_err(|e| Error::verification(format!("trust-root.json is malformed: {e}"))))?;
    let keys = root.release_keys()?;

    // The stretch of the chain, and the checkpoint that signs its end.
    let text = files.get("events.jsonl").cloned().unwrap_or_default();
    let lines: Vec<(u64, &[u8])> = text.split_inclusive(|b| *b == b'\n').zip(index.first_event..).map(|(l, seq)| (seq, l)).collect();
    let want_at = index.checkpoint;
    let run = crate::audit::verify_run(index.first_event, lines.iter().copied(), &|s| Some(s) == want_at);
    if let Some(p) = &run.problem {
        problems.push(format!("event {}: {}", p.seq, p.problem));
    }
    if run.count != index.last_event + 1 - index.first_event && run.problem.is_none() {
        problems.push(format!("events.jsonl holds {} events, not {}..={}", run.count, index.first_event, index.last_event));
    }
    match (index.checkpoint, files.get("checkpoint.dsse.json")) {
        (Some(seq), Some(envelope)) => {
            let hash = run.hashes.iter().find(|(s, _)| *s == seq).map(|(_, h)| h.clone());
            let checked = super::any_key(&keys, |k| {
                crate::audit::check_checkpoint(seq, envelope, k, hash.as_ref()).map(|_| ()).map_err(|p| Error::verification(p.problem))
            });
            if let Err(e) = checked {
                problems.push(e.message);
            }
        }
        (Some(seq), None) => problems.push(format!("bundle.json names a checkpoint at event {seq}, but checkpoint.dsse.json is missing")),
        (None, _) => {}
    }
    let events = lines.iter().map(|(_, l)| Event::from_bytes(l)).collect::<Result<Vec<_>>>().unwrap_or_default();
    let offline = Offline { files, index: &index, events };
    let evidence = super::check(&offline, &root)?;
    Ok(BundleReport {
        pipeline: index.pipeline.clone(),
        release: index.release.clone(),
        manifest_sha256: index.manifest_sha256.clone(),
        trust_root_serial: index.trust_root_serial,
        release_keys: keys.iter().map(PublicKey::keyid).collect(),
        approver_keys: root.approvers.iter().map(|a| (a.name.clone(), a.key.keyid.clone())).collect(),
        events: run.count,
        checkpoint: index.checkpoint,
        problems,
        evidence,
    })
}
