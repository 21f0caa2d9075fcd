//! Approvals as signatures. An approval or rejection is a DSSE envelope of an in-toto
//! Statement v1: its subject is the release (`ferry-release:RID`, digest the manifest's
//! sha256), its predicate (`APPROVAL_PREDICATE`) says pipeline, stage, verdict, approver, the
//! digest of the approval request the approver was shown (`ApprovalRequest`), when, until when,
//! and why. It verifies with securesystemslib like the release's own envelope.
//!
//! `count` is the rule by which they count: only an envelope that verifies against a pinned
//! approver key, names this release's manifest, this stage and the current request, and has
//! not expired, counts — once per key, whatever name the key is listed under; the keys of the
//! builder and the requester never count; a valid signed rejection blocks. Every other record
//! is refused, with the reason, and never counted: a file someone wrote into the store, a
//! signature by a key nobody pinned, one for another release, stage or an older request, an
//! expired one, one by the builder's key.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::Verdict;
use crate::attestation::{Envelope, PAYLOAD_TYPE, STATEMENT_TYPE, Signer};
use crate::clock::Timestamp;
use crate::digest::json_canonical;
use crate::error::Result;
use crate::ids::{Actor, PipelineName, ReleaseId, Sha256Digest, StageName};
use crate::keys::PublicKey;

/// The predicate type of a signed approval or rejection (versioned).
pub const APPROVAL_PREDICATE: &str = "https://ferry.invalid/approval/v1";
/// How a release is named as the subject of an approval.
pub const RELEASE_SUBJECT: &str = "ferry-release:";

/// What approvers are shown before they decide, written when the stage starts waiting; an
/// approval signs its digest, so it approves exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRequest {
    pub pipeline: PipelineName,
    pub release: ReleaseId,
    pub manifest_sha256: Sha256Digest,
    pub stage: StageName,
    pub requested_by: Actor,
    pub requested_at: Timestamp,
    /// The stage's deploy actions, one line each.
    pub deploy: Vec<String>,
    /// What they would change (a CloudFormation change set's summary).
    pub preview: Vec<String>,
}

impl ApprovalRequest {
    /// The sha256 of its canonical JSON.
    pub fn digest(&self) -> Sha256Digest {
        Sha256Digest::of(json_canonical(&serde_json::to_value(self).unwrap_or_default()).as_bytes())
    }
}

/// What an approver signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPredicate {
    pub pipeline: PipelineName,
    pub stage: StageName,
    pub verdict: Verdict,
    /// The approver's name (as the pinned keys list it).
    pub approver: String,
    /// The digest of the `ApprovalRequest` decided on.
    pub request: Sha256Digest,
    pub at: Timestamp,
    pub not_after: Timestamp,
    pub comment: Option<String>,
}

/// The in-toto Statement of a decision on `release` (whose manifest hashes to `manifest`).
pub fn statement(release: &ReleaseId, manifest: &Sha256Digest, predicate: &ApprovalPredicate) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": format!("{RELEASE_SUBJECT}{release}"), "digest": {"sha256": manifest}}],
        "predicateType": APPROVAL_PREDICATE,
        "predicate": predicate,
    })
}

/// Signs a decision into a DSSE envelope.
pub fn sign(release: &ReleaseId, manifest: &Sha256Digest, predicate: &ApprovalPredicate, signer: &dyn Signer) -> Result<Envelope> {
    crate::attestation::sign(&statement(release, manifest, predicate), signer)
}

/// A pinned approver: a name, its public key, and the identities that are this person (so the
/// builder's and requester's keys are known).
#[derive(Debug, Clone)]
pub struct Approver {
    pub name: String,
    pub key: PublicKey,
    pub identities: Vec<Actor>,
}

impl Approver {
    /// Whether `actor` is this person (their name, or one of their identities).
    pub fn is(&self, actor: &Actor) -> bool {
        crate::ids::is_person(&self.name, &self.identities, actor)
    }
}

/// What a decision must be about to count.
#[derive(Debug, Clone)]
pub struct Expected<'a> {
    pub pipeline: &'a PipelineName,
    pub release: &'a ReleaseId,
    pub manifest: &'a Sha256Digest,
    pub stage: &'a StageName,
    /// The digest of the stage's current approval request.
    pub request: &'a Sha256Digest,
    pub now: Timestamp,
}

/// A decision that counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The approver's name as the key lists it.
    pub approver: String,
    pub keyid: String,
    pub verdict: Verdict,
    pub at: Timestamp,
    pub not_after: Timestamp,
    pub comment: Option<String>,
}

/// A record that does not count, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Refused {
    /// Which record (its key in the store).
    pub record: String,
    pub reason: String,
}

/// The decisions on one (release, stage) that count, and the records refused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counted {
    /// Valid approvals, one per key, in the order given.
    pub approvals: Vec<Decision>,
    /// The first valid rejection.
    pub rejection: Option<Decision>,
    pub refused: Vec<Refused>,
}

impl Counted {
    /// The names of the approvers whose approvals count.
    pub fn approvers(&self) -> Vec<String> {
        self.approvals.iter().map(|d| d.approver.clone()).collect()
    }

    /// When the first counted approval expires.
    pub fn expires(&self) -> Option<Timestamp> {
        self.approvals.iter().map(|d| d.not_after).min()
    }
}

/// Counts the signed decisions `records` (store key, bytes) on `expected`'s release and stage:
/// `approvers` are the pinned keys, `allowed` the names the stage lists (empty: every pinned
/// approver), `excluded` the names of the builder and the requester (separation of duties).
pub fn count(
    records: &[(String, Vec<u8>)],
    approvers: &[Approver],
    allowed: &[String],
    excluded: &[String],
    expected: &Expected<'_>,
) -> Counted {
    let mut out = Counted::default();
    let mut seen: Vec<String> = Vec::new();
    for (record, bytes) in records {
        match judge(bytes, approvers, allowed, excluded, expected) {
            Err(reason) => out.refused.push(Refused { record: record.clone(), reason }),
            Ok(d) if d.verdict == Verdict::Reject => {
                if out.rejection.is_none() {
                    out.rejection = Some(d);
                }
            }
            Ok(d) => {
                // Once per key, whatever name it is listed under.
                if seen.contains(&d.keyid) {
                    out.refused.push(Refused {
                        record: record.clone(),
                        reason: format!("approver `{}`'s key has approved already; a key counts once", d.approver),
                    });
                } else {
                    seen.push(d.keyid.clone());
                    out.approvals.push(d);
                }
            }
        }
    }
    out
}

/// Why one record does not count, or the decision it is.
fn judge(
    bytes: &[u8],
    approvers: &[Approver],
    allowed: &[String],
    excluded: &[String],
    e: &Expected<'_>,
) -> std::result::Result<Decision, String> {
    let envelope = Envelope::from_bytes(bytes).map_err(|_| "it is not a signed approval (a DSSE envelope)".to_owned())?;
    let [signature] = envelope.signatures.as_slice() else {
        return Err(format!("it carries {} signatures; a decision is signed once", envelope.signatures.len()));
    };
    let named: Vec<&Approver> = approvers.iter().filter(|a| a.key.keyid() == signature.keyid).collect();
    let Some(first) = named.first() else {
        return Err(format!("it is signed by key `{}`, which is no pinned approver's", signature.keyid));
    };
    let statement = envelope
        .verify_payload(&first.key, PAYLOAD_TYPE)
        .map_err(|err| format!("its signature does not verify with approver `{}`'s key: {}", first.name, err.message))?;
    if statement["_type"] != STATEMENT_TYPE || statement["predicateType"] != APPROVAL_PREDICATE {
        return Err(format!("it is not an approval (predicate type `{}`)", statement["predicateType"].as_str().unwrap_or("none")));
    }
    let subject = &statement["subject"][0];
    let release = subject["name"].as_str().and_then(|n| n.strip_prefix(RELEASE_SUBJECT)).unwrap_or("?");
    if release != e.release.as_str() {
        return Err(format!("it approves release `{release}`, not `{}`", e.release));
    }
    if subject["digest"]["sha256"].as_str() != Some(e.manifest.as_str()) {
        return Err(format!("it names another manifest than release `{}`'s", e.release));
    }
    let p: ApprovalPredicate =
        serde_json::from_value(statement["predicate"].clone()).map_err(|err| format!("its approval predicate is malformed: {err}"))?;
    if &p.pipeline != e.pipeline {
        return Err(format!("it is for pipeline `{}`, not `{}`", p.pipeline, e.pipeline));
    }
    if &p.stage != e.stage {
        return Err(format!("it is for stage `{}`, not `{}`", p.stage, e.stage));
    }
    // The key's holder: the name the decision gives, if the key is listed under it.
    let Some(approver) = named.iter().find(|a| a.name == p.approver) else {
        let names: Vec<&str> = named.iter().map(|a| a.name.as_str()).collect();
        return Err(format!("it names approver `{}` but is signed with the key of `{}`", p.approver, names.join("`, `")));
    };
    if &p.request != e.request {
        return Err(format!("it decides on another approval request ({}) than the stage's current one ({})", p.request, e.request));
    }
    if p.not_after <= e.now {
        return Err(format!("it expired at {}", p.not_after));
    }
    if let Some(x) = named.iter().find(|a| excluded.contains(&a.name)) {
        return Err(format!("it is signed with the key of `{}`, who built or requested this release (separation of duties)", x.name));
    }
    if !allowed.is_empty() && !named.iter().any(|a| allowed.contains(&a.name)) {
        return Err(format!("`{}` is not an approver of stage `{}`", approver.name, e.stage));
    }
    Ok(Decision {
        approver: approver.name.clone(),
        keyid: signature.keyid.clone(),
        verdict: p.verdict,
        at: p.at,
        not_after: p.not_after,
        comment: p.comment,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::keys::{Algorithm, PrivateKey};

    struct World {
        keys: Vec<(String, PrivateKey)>,
        approvers: Vec<Approver>,
        pipeline: PipelineName,
        release: ReleaseId,
        manifest: Sha256Digest,
        stage: StageName,
        request: Sha256Digest,
        now: Timestamp,
    }

    fn world() -> World {
        let keys: Vec<(String, PrivateKey)> =
            ["alice", "bob", "carol", "builder"].iter().map(|n| ((*n).to_owned(), PrivateKey::generate(Algorithm::Ed25519))).collect();
        let approvers = keys.iter().map(|(n, k)| Approver { name: n.clone(), key: k.public_key(), identities: Vec::new() }).collect();
        let manifest = Sha256Digest::of(b"manifest");
        World {
            keys,
            approvers,
            pipeline: "shop".parse().unwrap(),
            release: ReleaseId::for_manifest(&manifest),
            manifest,
            stage: "prod".parse().unwrap(),
            request: Sha256Digest::of(b"request"),
            now: Timestamp::from_unix(1_767_000_000),
        }
    }

    impl World {
        fn key(&self, name: &str) -> &PrivateKey {
            &self.keys.iter().find(|(n, _)| n == name).unwrap().1
        }
        fn predicate(&self, approver: &str, verdict: Verdict) -> ApprovalPredicate {
            ApprovalPredicate {
                pipeline: self.pipeline.clone(),
                stage: self.stage.clone(),
                verdict,
                approver: approver.to_owned(),
                request: self.request.clone(),
                at: self.now,
                not_after: self.now.plus(Duration::from_secs(3600)),
                comment: None,
            }
        }
        /// `approver`'s decision, changed by `edit`, signed with `signer`'s key.
        fn signed(&self, approver: &str, signer: &str, edit: impl FnOnce(&mut ApprovalPredicate, &mut ReleaseId)) -> Vec<u8> {
            let mut p = self.predicate(approver, Verdict::Approve);
            let mut release = self.release.clone();
            edit(&mut p, &mut release);
            sign(&release, &self.manifest, &p, self.key(signer)).unwrap().to_bytes().unwrap()
        }
        fn count(&self, records: Vec<Vec<u8>>) -> Counted {
            let records: Vec<(String, Vec<u8>)> = records.into_iter().enumerate().map(|(i, b)| (format!("r{i}"), b)).collect();
            let expected = Expected {
                pipeline: &self.pipeline,
                release: &self.release,
                manifest: &self.manifest,
                stage: &self.stage,
                request: &self.request,
                now: self.now,
            };
            count(&records, &self.approvers, &["alice".into(), "bob".into(), "carol".into()], &["builder".into()], &expected)
        }
        fn refused(&self, record: Vec<u8>) -> String {
            let c = self.count(vec![record]);
            assert!(c.approvals.is_empty() && c.rejection.is_none(), "{c:?}");
            c.refused[0].reason.clone()
        }
    }

    #[test]
    fn approvals_signed_by_pinned_keys_for_this_release_stage_and_request_count_once_each() {
        let w = world();
        let c = w.count(vec![w.signed("alice", "alice", |_, _| {}), w.signed("bob", "bob", |_, _| {})]);
        assert_eq!(c.approvers(), ["alice", "bob"]);
        assert!(c.refused.is_empty(), "{c:?}");
        assert_eq!(c.expires(), Some(w.now.plus(Duration::from_secs(3600))));
        // The same approver twice is one approval.
        let c = w.count(vec![w.signed("alice", "alice", |_, _| {}), w.signed("alice", "alice", |_, _| {})]);
        assert_eq!(c.approvers(), ["alice"]);
        assert!(c.refused[0].reason.contains("a key counts once"), "{c:?}");
    }

    #[test]
    fn a_record_nobody_signed_or_signed_by_an_unpinned_key_is_refused() {
        let w = world();
        let forged = serde_json::to_vec(&json!({"actor": "alice", "verdict": "approve", "release": w.release})).unwrap();
        assert_eq!(w.refused(forged), "it is not a signed approval (a DSSE envelope)");
        let mallory = PrivateKey::generate(Algorithm::Ed25519);
        let by_mallory = sign(&w.release, &w.manifest, &w.predicate("alice", Verdict::Approve), &mallory).unwrap().to_bytes().unwrap();
        assert!(w.refused(by_mallory).contains("which is no pinned approver's"));
        // Alice's envelope with its payload swapped for another one does not verify.
        let mut env: Envelope = Envelope::from_bytes(&w.signed("alice", "alice", |_, _| {})).unwrap();
        let other: Envelope = Envelope::from_bytes(&w.signed("alice", "alice", |p, _| p.comment = Some("x".into()))).unwrap();
        env.payload = other.payload;
        assert!(w.refused(env.to_bytes().unwrap()).contains("does not verify with approver `alice`'s key"));
    }

    #[test]
    fn a_decision_for_another_release_stage_pipeline_or_request_or_an_expired_one_is_refused() {
        let w = world();
        let other = ReleaseId::for_manifest(&Sha256Digest::of(b"other"));
        assert!(w.refused(w.signed("alice", "alice", |_, r| *r = other.clone())).contains(&format!("approves release `{other}`")));
        assert_eq!(
            w.refused(w.signed("alice", "alice", |p, _| p.stage = "staging".parse().unwrap())),
            "it is for stage `staging`, not `prod`"
        );
        assert!(w.refused(w.signed("alice", "alice", |p, _| p.pipeline = "other".parse().unwrap())).contains("pipeline `other`"));
        let older = w.signed("alice", "alice", |p, _| p.request = Sha256Digest::of(b"an older request"));
        assert!(w.refused(older).contains("another approval request"));
        let expired = w.signed("alice", "alice", |p, _| p.not_after = w.now);
        assert_eq!(w.refused(expired), format!("it expired at {}", w.now));
    }

    #[test]
    fn the_builders_key_a_key_named_for_someone_else_and_an_unlisted_approver_never_count() {
        let w = world();
        assert!(w.refused(w.signed("builder", "builder", |_, _| {})).contains("who built or requested this release"));
        // Alice's key signing a decision that says it is Bob's.
        assert!(w.refused(w.signed("bob", "alice", |_, _| {})).contains("names approver `bob` but is signed with the key of `alice`"));
        // Dave's key is pinned, but the stage does not list him.
        let mut w2 = world();
        let dave = PrivateKey::generate(Algorithm::Ed25519);
        w2.approvers.push(Approver { name: "dave".into(), key: dave.public_key(), identities: vec![] });
        w2.keys.push(("dave".into(), dave));
        assert_eq!(w2.refused(w2.signed("dave", "dave", |_, _| {})), "`dave` is not an approver of stage `prod`");
    }

    #[test]
    fn one_key_listed_under_two_names_counts_once() {
        let mut w = world();
        let alice = w.key("alice").public_key();
        w.approvers.push(Approver { name: "carol".into(), key: alice, identities: vec![] });
        let c = w.count(vec![w.signed("alice", "alice", |_, _| {}), w.signed("carol", "alice", |_, _| {})]);
        assert_eq!(c.approvers(), ["alice"]);
        assert!(c.refused[0].reason.contains("a key counts once"), "{c:?}");
    }

    #[test]
    fn a_valid_signed_rejection_blocks_and_a_forged_one_does_not() {
        let w = world();
        let reject = w.signed("carol", "carol", |p, _| {
            p.verdict = Verdict::Reject;
            p.comment = Some("not today".into());
        });
        let c = w.count(vec![w.signed("alice", "alice", |_, _| {}), reject]);
        assert_eq!(c.rejection.as_ref().map(|d| (d.approver.as_str(), d.comment.as_deref())), Some(("carol", Some("not today"))));
        let forged = serde_json::to_vec(&json!({"actor": "carol", "verdict": "reject"})).unwrap();
        assert!(w.count(vec![forged]).rejection.is_none());
    }

    #[test]
    fn the_request_digest_covers_what_the_approver_was_shown() {
        let w = world();
        let request = ApprovalRequest {
            pipeline: w.pipeline.clone(),
            release: w.release.clone(),
            manifest_sha256: w.manifest.clone(),
            stage: w.stage.clone(),
            requested_by: "deployer".parse().unwrap(),
            requested_at: w.now,
            deploy: vec!["cloudformation: stack shop".into()],
            preview: vec!["stack `shop`: Modify Queue AWS::SQS::Queue".into()],
        };
        let mut changed = request.clone();
        changed.preview.push("stack `shop`: Remove Table AWS::DynamoDB::Table".into());
        assert_ne!(request.digest(), changed.digest());
        assert_eq!(request.digest(), request.clone().digest());
    }
}
