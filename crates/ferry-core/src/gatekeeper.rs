//! The gatekeeper's decision (issue #12): whether the credentials of a protected stage may be
//! handed out for a release, judged from the published trust root and the central store alone —
//! never from the caller's pipeline file, never from what the caller says but its identity.
//! The release must be signed with a release key of the root, every stage the root says it
//! requires must be proven by its deployment attestation, the stage's windows (as the root
//! fixes them) open, the approval request made by the caller, and the signed approvals must
//! reach the root's quorum. The AWS function (`ferry-gatekeeper`) runs this and only then
//! assumes the stage's deploy role; it is a pure function of the ports, so the same decision is
//! tested on the local backend.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::approval::{self, ApprovalState, Parties, signed};
use crate::attestation::Envelope;
use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{Actor, PipelineName, ReleaseId, Sha256Digest, StageName};
use crate::manifest::ReleaseManifest;
use crate::ports::{AuditLog, ReleaseStore, StateStore};
use crate::trust::TrustRoot;

/// What the gatekeeper is asked: credentials of `stage` for `release`, by `caller` (the
/// identity AWS says invoked it).
#[derive(Debug, Clone)]
pub struct Ask {
    pub release: ReleaseId,
    pub stage: StageName,
    pub caller: Actor,
}

/// Its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Answer {
    /// Hand out the stage's credentials.
    Admit { manifest_sha256: Sha256Digest, approved_by: Vec<String> },
    /// Not yet: the quorum is not reached.
    Pending { have: Vec<String>, need: u32 },
    /// Never for this ask: the evidence is missing or does not verify.
    Refuse { reason: String },
}

impl Answer {
    /// What a refusal or a pending quorum is to the caller: `Pending` (exit 3) while the
    /// quorum is not reached, `Verification` (exit 4) when the evidence is missing or wrong.
    pub fn into_error(self, stage: &StageName) -> Option<crate::Error> {
        match self {
            Answer::Admit { .. } => None,
            Answer::Pending { have, need } => Some(
                crate::Error::pending(format!(
                    "the gatekeeper holds back the credentials of `{stage}`: {} of {need} approvals{}",
                    have.len(),
                    if have.is_empty() { String::new() } else { format!(" ({})", have.join(", ")) }
                ))
                .hint("approvers sign with `ferry approve`; then run the promotion again"),
            ),
            Answer::Refuse { reason } => Some(
                crate::Error::verification(format!("the gatekeeper refuses the credentials of `{stage}`: {reason}"))
                    .hint("the gatekeeper judges by the published trust root and the store alone; `ferry audit show` lists its decisions"),
            ),
        }
    }
}

/// Appends the gatekeeper's decision on a request for `stage` of `release` to its own audit
/// log (`audit`, which only its role may write), acting as itself (`me`): who asked (`None`
/// when that could not be proven), the answer, and what it handed out (`granted`).
#[allow(clippy::too_many_arguments)]
pub fn record(
    audit: &dyn AuditLog,
    me: &Actor,
    pipeline: &PipelineName,
    release: &ReleaseId,
    stage: &StageName,
    caller: Option<&Actor>,
    answer: &Answer,
    granted: serde_json::Value,
) -> Result<crate::audit::Event> {
    let draft = crate::audit::Draft::new(crate::audit::EventKind::GatekeeperDecision, me, pipeline)
        .release(release)
        .stage(stage)
        .details(json!({"caller": caller, "answer": answer, "granted": granted}));
    let event = audit.append(draft)?;
    audit.flush()?;
    Ok(event)
}

/// The protocol between ferry and the gatekeeper function: one JSON request, one JSON answer.
pub mod wire {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Serialize};

    use super::Answer;
    use crate::clock::Timestamp;
    use crate::ids::{Actor, PipelineName, ReleaseId, RoleArn, StageName};

    pub const VERSION: u32 = 1;
    /// The header of the caller's signed `sts:GetCallerIdentity` that binds it to one request
    /// (`Request::binding`): the function sets it from the request it got, so a proof made for
    /// another release, stage or pipeline does not verify at STS.
    pub const BINDING_HEADER: &str = "x-ferry-gatekeeper-request";
    /// The longest session the function hands out (role chaining caps it at one hour anyway);
    /// a longer promotion asks again and is checked again.
    pub const MAX_SECONDS: u32 = 3600;

    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Request {
        pub version: u32,
        pub pipeline: PipelineName,
        pub release: ReleaseId,
        pub stage: StageName,
        /// How long the credentials should last, 900 to `MAX_SECONDS`.
        pub duration_seconds: u32,
        /// Who asks, proven: the signed headers of an `sts:GetCallerIdentity` request made
        /// with the caller's own credentials (`authorization`, `x-amz-date`, and
        /// `x-amz-security-token` for a session), which the function sends to STS itself.
        pub identity: BTreeMap<String, String>,
    }

    impl Request {
        /// The value of `BINDING_HEADER`: the request without its proof, hashed.
        pub fn binding(&self) -> String {
            let v = serde_json::json!({
                "version": self.version, "pipeline": self.pipeline, "release": self.release,
                "stage": self.stage, "duration_seconds": self.duration_seconds,
            });
            crate::ids::Sha256Digest::of(crate::digest::json_canonical(&v).as_bytes()).to_string()
        }
    }

    /// The function's answer; credentials only with `Admit`.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    pub struct Response {
        #[serde(flatten)]
        pub answer: Answer,
        /// Who the function found the caller to be.
        #[serde(default)]
        pub caller: Option<Actor>,
        #[serde(default)]
        pub credentials: Option<Credentials>,
        /// Where its decision is in its audit log.
        #[serde(default)]
        pub audit_seq: Option<u64>,
    }

    /// A protected stage's session.
    #[derive(Clone, Serialize, Deserialize)]
    pub struct Credentials {
        pub role: RoleArn,
        pub access_key_id: String,
        pub secret_access_key: String,
        pub session_token: String,
        pub expiration: Timestamp,
    }

    impl std::fmt::Debug for Credentials {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Credentials").field("role", &self.role).field("expiration", &self.expiration).finish_non_exhaustive()
        }
    }
}

fn refuse(reason: String) -> Result<Answer> {
    Ok(Answer::Refuse { reason })
}

/// Decides `ask` under `root` at `now`, reading the release from `store` and the stage
/// records, approval requests and signed decisions from `state`.
pub fn decide(store: &dyn ReleaseStore, state: &dyn StateStore, now: Timestamp, root: &TrustRoot, ask: &Ask) -> Result<Answer> {
    let (release, stage) = (&ask.release, &ask.stage);
    let Some(guarded) = root.stages.iter().find(|s| &s.stage == stage) else {
        return refuse(format!("stage `{stage}` is not guarded by the trust root of `{}`", root.pipeline));
    };
    let keys = root.release_keys()?;
    // The release: signed with a key of the root, for this pipeline.
    let Some(stored) = store.get_releases(std::slice::from_ref(release))?.pop().flatten() else {
        return refuse(format!("release `{release}` is not in the store"));
    };
    let manifest_sha256 = ReleaseManifest::digest_of(&stored.manifest);
    let manifest = match ReleaseManifest::from_bytes(&stored.manifest) {
        Ok(m) if m.pipeline == root.pipeline => m,
        Ok(m) => return refuse(format!("release `{release}` was built by pipeline `{}`, not `{}`", m.pipeline, root.pipeline)),
        Err(e) => return refuse(format!("the manifest of `{release}` is unreadable: {}", e.message)),
    };
    if &ReleaseId::for_manifest(&manifest_sha256) != release {
        return refuse(format!("the stored manifest does not hash to release id `{release}`"));
    }
    let signed = Envelope::from_bytes(&stored.envelope).and_then(|env| {
        crate::evidence::any_key(&keys, |k| {
            env.verify(k).and_then(|st| crate::attestation::check_binding(&st, &manifest, &manifest_sha256))
        })
    });
    if let Err(e) = signed {
        return refuse(format!("release `{release}` is not signed by a release key of the trust root: {}", e.message));
    }
    // Order: each required stage proven by its signed deployment attestation.
    for req in &guarded.requires {
        let record = state.read_stage(&root.pipeline, release, req)?.map(|v| v.value);
        let proven = match record.as_ref().and_then(|r| r.deployment.as_ref()) {
            None => Err(crate::Error::verification("no signed deployment attestation")),
            Some(env) => crate::evidence::any_key(&keys, |k| {
                crate::attestation::check_deployment(env, k, &root.pipeline, release, &manifest_sha256, req)
            }),
        };
        if let Err(e) = proven {
            return refuse(format!(
                "release `{release}` has not been proven to succeed in `{req}`, which `{stage}` requires: {}",
                e.message
            ));
        }
    }
    // Windows, as the root fixes them.
    for w in &guarded.windows {
        let window: crate::window::Window = serde_json::from_value(w.clone())
            .map_err(|e| crate::Error::invalid(format!("trust root of `{}`: a window of `{stage}` is malformed: {e}", root.pipeline)))?;
        if let Some(closed) = crate::window::check(&window, &[], now)? {
            return refuse(format!("`{stage}` is closed: {}", closed.reason));
        }
    }
    // Approvals: on the request the caller made, counted by the root's rule.
    let record = state.read_stage(&root.pipeline, release, stage)?.map(|v| v.value);
    let Some(digest) = record.as_ref().and_then(|r| r.request.clone()) else {
        return refuse(format!("release `{release}` has not been put up for approval in `{stage}`"));
    };
    let Some(request) = state.request(&root.pipeline, release, stage, &digest)? else {
        return refuse(format!("the approval request {digest} of `{stage}` is not in the store"));
    };
    if request.requested_by != ask.caller {
        return refuse(format!(
            "the approval request of `{stage}` was made by `{}`, not by the caller `{}`",
            request.requested_by, ask.caller
        ));
    }
    let policy = root.policy(stage);
    let pinned = root.approvers()?;
    let decisions = state.decisions(&root.pipeline, release, stage)?;
    let expected = signed::Expected { pipeline: &root.pipeline, release, manifest: &manifest_sha256, stage, request: &digest, now };
    let parties = Parties { builder: Some(manifest.builder.actor.clone()), requester: Some(request.requested_by.clone()) };
    let (state, _) = approval::evaluate(policy.as_ref(), &pinned, &decisions, &expected, &parties);
    let names = |v: &[Actor]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    Ok(match state {
        ApprovalState::Approved { by } => Answer::Admit { manifest_sha256, approved_by: names(&by) },
        ApprovalState::Pending { have, need, .. } => Answer::Pending { have: names(&have), need },
        ApprovalState::Rejected { by, .. } => Answer::Refuse { reason: format!("`{by}` rejected release `{release}` for `{stage}`") },
        ApprovalState::NotRequired => Answer::Admit { manifest_sha256, approved_by: Vec::new() },
    })
}
