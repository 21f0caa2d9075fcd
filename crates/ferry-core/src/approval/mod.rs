//! Approval policy: who may approve a (release, stage), how many distinct approvers are
//! needed, when approvals expire, and separation of duties. Pure functions of the records.
//! `signed` holds approvals as signatures: the envelope an approver signs and the rule by
//! which signed approvals count.

pub mod signed;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{Actor, PipelineName, ReleaseId, StageName};
use crate::pipeline::ApprovalPolicy;

pub const APPROVAL_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approve,
    Reject,
}

/// One person's decision, bound to exactly one release and one stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecord {
    pub version: u32,
    pub pipeline: PipelineName,
    pub release: ReleaseId,
    pub stage: StageName,
    pub actor: Actor,
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub at: Timestamp,
    pub expires_at: Timestamp,
}

/// Who is excluded from approving under separation of duties.
#[derive(Debug, Clone, Default)]
pub struct Parties {
    pub builder: Option<Actor>,
    pub requester: Option<Actor>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    NotRequired,
    Approved { by: Vec<Actor> },
    Pending { have: Vec<Actor>, need: u32, eligible: Vec<Actor>, excluded: Vec<Actor>, expires: Option<Timestamp> },
    Rejected { by: Actor, comment: Option<String>, at: Timestamp },
}

fn excluded(policy: &ApprovalPolicy, parties: &Parties) -> Vec<Actor> {
    if policy.allow_self_approval {
        return Vec::new();
    }
    let mut out: Vec<Actor> = parties.builder.iter().chain(parties.requester.iter()).cloned().collect();
    out.dedup();
    out
}

/// Whether `actor` is who the approver entry names: the same identity, or, for an IAM role
/// ARN, any session of that role (`arn:aws:sts::ACCOUNT:assumed-role/NAME/SESSION`), which is
/// how people reach AWS through SSO or `assume-role`.
pub fn identity_matches(entry: &Actor, actor: &Actor) -> bool {
    entry == actor || entry.as_str().parse::<crate::ids::RoleArn>().is_ok_and(|role| role.is_session(actor.as_str()))
}

fn allowed(policy: &ApprovalPolicy, actor: &Actor) -> bool {
    policy.approvers.is_empty() || policy.approvers.iter().any(|e| identity_matches(e, actor))
}

/// Whether `actor` may decide on this stage at all; the error says why not.
pub fn check_approver(policy: &ApprovalPolicy, actor: &Actor, parties: &Parties, stage: &StageName) -> Result<()> {
    if excluded(policy, parties).contains(actor) {
        let role = if parties.builder.as_ref() == Some(actor) { "built" } else { "requested the promotion of" };
        return Err(Error::failed(format!(
            "`{actor}` {role} this release and cannot approve it for stage `{stage}` (separation of duties)"
        ))
        .hint("ask another approver, or set `allow_self_approval: true` in the stage's approval policy"));
    }
    if !allowed(policy, actor) {
        let names: Vec<&str> = policy.approvers.iter().map(Actor::as_str).collect();
        return Err(Error::failed(format!("`{actor}` is not an approver for stage `{stage}`"))
            .hint(format!("allowed approvers: {}", names.join(", "))));
    }
    Ok(())
}

/// Where the approvals of (release, stage) stand at `now`.
pub fn evaluate(
    policy: Option<&ApprovalPolicy>,
    records: &[ApprovalRecord],
    release: &ReleaseId,
    stage: &StageName,
    parties: &Parties,
    now: Timestamp,
) -> ApprovalState {
    let Some(policy) = policy else { return ApprovalState::NotRequired };
    let bound = records.iter().filter(|r| &r.release == release && &r.stage == stage);
    let excluded = excluded(policy, parties);
    let counts = |r: &&ApprovalRecord| !excluded.contains(&r.actor) && allowed(policy, &r.actor);
    if let Some(r) = bound.clone().filter(counts).find(|r| r.verdict == Verdict::Reject) {
        return ApprovalState::Rejected { by: r.actor.clone(), comment: r.comment.clone(), at: r.at };
    }
    let mut have: Vec<Actor> = Vec::new();
    let mut expires: Option<Timestamp> = None;
    for r in bound.filter(counts).filter(|r| r.verdict == Verdict::Approve && r.expires_at > now) {
        if !have.contains(&r.actor) {
            have.push(r.actor.clone());
        }
        expires = Some(expires.map_or(r.expires_at, |e| e.min(r.expires_at)));
    }
    if have.len() >= policy.required as usize {
        return ApprovalState::Approved { by: have };
    }
    let eligible = policy.approvers.iter().filter(|a| !excluded.contains(a) && !have.contains(a)).cloned().collect();
    ApprovalState::Pending { have, need: policy.required, eligible, excluded, expires }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn policy(required: u32, approvers: &[&str]) -> ApprovalPolicy {
        ApprovalPolicy {
            required,
            approvers: approvers.iter().map(|a| a.parse().unwrap()).collect(),
            expires: Duration::from_secs(3600),
            allow_self_approval: false,
        }
    }
    fn rec(actor: &str, release: &ReleaseId, verdict: Verdict, at: Timestamp) -> ApprovalRecord {
        ApprovalRecord {
            version: 1,
            pipeline: "p".parse().unwrap(),
            release: release.clone(),
            stage: "prod".parse().unwrap(),
            actor: actor.parse().unwrap(),
            verdict,
            comment: None,
            at,
            expires_at: at.plus(Duration::from_secs(3600)),
        }
    }
    fn ids() -> (ReleaseId, ReleaseId, StageName, Parties) {
        let a = ReleaseId::for_manifest(&crate::ids::Sha256Digest::of(b"a"));
        let b = ReleaseId::for_manifest(&crate::ids::Sha256Digest::of(b"b"));
        (a, b, "prod".parse().unwrap(), Parties { builder: Some("builder".parse().unwrap()), requester: None })
    }

    #[test]
    fn two_distinct_approvers_are_needed_when_the_policy_says_two() {
        let (a, _, prod, parties) = ids();
        let now = Timestamp::from_unix(1_767_000_000);
        let p = policy(2, &["alice", "bob", "carol"]);
        let one = vec![rec("alice", &a, Verdict::Approve, now), rec("alice", &a, Verdict::Approve, now)];
        assert!(matches!(evaluate(Some(&p), &one, &a, &prod, &parties, now), ApprovalState::Pending { .. }));
        let two = vec![rec("alice", &a, Verdict::Approve, now), rec("bob", &a, Verdict::Approve, now)];
        assert!(matches!(evaluate(Some(&p), &two, &a, &prod, &parties, now), ApprovalState::Approved { .. }));
    }

    #[test]
    fn an_approval_for_one_release_does_not_count_for_another() {
        let (a, b, prod, parties) = ids();
        let now = Timestamp::from_unix(1_767_000_000);
        let recs = vec![rec("alice", &a, Verdict::Approve, now)];
        assert!(matches!(evaluate(Some(&policy(1, &[])), &recs, &b, &prod, &parties, now), ApprovalState::Pending { .. }));
    }

    #[test]
    fn an_expired_approval_does_not_count() {
        let (a, _, prod, parties) = ids();
        let then = Timestamp::from_unix(1_767_000_000);
        let recs = vec![rec("alice", &a, Verdict::Approve, then)];
        let later = then.plus(Duration::from_secs(3601));
        assert!(matches!(evaluate(Some(&policy(1, &[])), &recs, &a, &prod, &parties, later), ApprovalState::Pending { .. }));
    }

    #[test]
    fn the_builder_cannot_approve_and_does_not_count() {
        let (a, _, prod, parties) = ids();
        let p = policy(1, &[]);
        let builder: Actor = "builder".parse().unwrap();
        assert!(check_approver(&p, &builder, &parties, &prod).is_err());
        let now = Timestamp::from_unix(1_767_000_000);
        let recs = vec![rec("builder", &a, Verdict::Approve, now)];
        assert!(matches!(evaluate(Some(&p), &recs, &a, &prod, &parties, now), ApprovalState::Pending { .. }));
        let mut selfish = p.clone();
        selfish.allow_self_approval = true;
        assert!(check_approver(&selfish, &builder, &parties, &prod).is_ok());
    }

    #[test]
    fn a_rejection_blocks_even_with_enough_approvals() {
        let (a, _, prod, parties) = ids();
        let now = Timestamp::from_unix(1_767_000_000);
        let recs = vec![rec("alice", &a, Verdict::Approve, now), rec("bob", &a, Verdict::Reject, now)];
        assert!(matches!(evaluate(Some(&policy(1, &[])), &recs, &a, &prod, &parties, now), ApprovalState::Rejected { .. }));
    }

    #[test]
    fn a_role_arn_approver_matches_every_session_of_that_role_and_nothing_else() {
        let entry: Actor = "arn:aws:iam::111111111111:role/team/release-managers".parse().unwrap();
        let m = |a: &str| identity_matches(&entry, &a.parse().unwrap());
        assert!(m("arn:aws:sts::111111111111:assumed-role/release-managers/alice"));
        assert!(!m("arn:aws:sts::222222222222:assumed-role/release-managers/alice"), "other account");
        assert!(!m("arn:aws:sts::111111111111:assumed-role/release-managers-2/alice"), "other role");
        assert!(!m("arn:aws:sts::111111111111:assumed-role/release-managers/"), "no session");
        assert!(!m("release-managers"));
    }

    #[test]
    fn two_sessions_of_one_approver_role_are_two_approvers() {
        let (a, _, prod, parties) = ids();
        let now = Timestamp::from_unix(1_767_000_000);
        let p = policy(2, &["arn:aws:iam::111111111111:role/approvers"]);
        let recs = vec![
            rec("arn:aws:sts::111111111111:assumed-role/approvers/alice", &a, Verdict::Approve, now),
            rec("arn:aws:sts::111111111111:assumed-role/approvers/bob", &a, Verdict::Approve, now),
        ];
        assert!(matches!(evaluate(Some(&p), &recs, &a, &prod, &parties, now), ApprovalState::Approved { .. }));
    }

    #[test]
    fn only_listed_approvers_may_approve() {
        let (_, _, prod, parties) = ids();
        let mallory: Actor = "mallory".parse().unwrap();
        assert!(check_approver(&policy(1, &["alice"]), &mallory, &parties, &prod).is_err());
    }
}
