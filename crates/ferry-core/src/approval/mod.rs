//! Approval policy: who may approve a (release, stage), how many distinct approvers are
//! needed, when approvals expire, and separation of duties. Pure functions of the records.
//! `signed` holds approvals as signatures: the envelope an approver signs and the rule by
//! which signed approvals count.

pub mod signed;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::{Actor, StageName};
use crate::keys::PublicKey;
use crate::pipeline::{ApprovalPolicy, Pipeline};

/// The signed decisions of one person, bound to exactly one release, stage and approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Approve,
    Reject,
}

/// Who is excluded from approving under separation of duties.
#[derive(Debug, Clone, Default)]
pub struct Parties {
    pub builder: Option<Actor>,
    pub requester: Option<Actor>,
}

/// Where the approvals of (release, stage) stand. Names are the pinned approvers' names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    NotRequired,
    Approved { by: Vec<Actor> },
    Pending { have: Vec<Actor>, need: u32, eligible: Vec<Actor>, excluded: Vec<Actor>, expires: Option<Timestamp> },
    Rejected { by: Actor, comment: Option<String>, at: Timestamp },
}

pub use crate::ids::identity_matches;

/// The pipeline's pinned approvers with their public keys (read from the files it names).
pub fn pinned(pipeline: &Pipeline) -> Result<Vec<signed::Approver>> {
    pipeline
        .approvers
        .iter()
        .map(|a| {
            let origin = || pipeline.origin(&format!("approvers.{}.public_key", a.name));
            let path = pipeline.dir().join(&a.public_key);
            let pem = std::fs::read_to_string(&path).map_err(|e| {
                Error::invalid(format!("approver `{}`: cannot read their public key `{}`: {e}", a.name, path.display()))
                    .hint(format!(
                        "export it with `ferry key export --name {} --out {}`",
                        a.name,
                        path.parent().map_or(".".into(), |d| d.display().to_string())
                    ))
                    .at(origin())
            })?;
            let key = PublicKey::from_pem(&pem)
                .map_err(|e| Error::invalid(format!("approver `{}`: `{}`: {}", a.name, path.display(), e.message)).at(origin()))?;
            Ok(signed::Approver { name: a.name.clone(), key, identities: a.identities.clone() })
        })
        .collect()
}

/// The approvers who are the release's builder or the promotion's requester (none when the
/// policy allows self-approval).
fn excluded(policy: &ApprovalPolicy, pinned: &[signed::Approver], parties: &Parties) -> Vec<String> {
    if policy.allow_self_approval {
        return Vec::new();
    }
    let who: Vec<&Actor> = parties.builder.iter().chain(parties.requester.iter()).collect();
    pinned.iter().filter(|a| who.iter().any(|w| a.is(w))).map(|a| a.name.clone()).collect()
}

/// The approver `actor` is (by name or one of their identities), for `ferry approve`.
pub fn approver_for<'p>(pipeline: &'p Pipeline, actor: &Actor) -> Result<&'p crate::pipeline::ApproverKey> {
    let found: Vec<&crate::pipeline::ApproverKey> = pipeline.approvers.iter().filter(|a| a.is(actor)).collect();
    match found.as_slice() {
        [one] => Ok(one),
        [] => {
            let names: Vec<&str> = pipeline.approvers.iter().map(|a| a.name.as_str()).collect();
            Err(Error::failed(format!("`{actor}` is none of the pipeline's approvers"))
                .hint(format!("pinned approvers: {}; an approver's `identities` say who they are", names.join(", ")))
                .hint("or name yourself with `--as NAME` (your key must be that approver's)"))
        }
        many => {
            let names: Vec<&str> = many.iter().map(|a| a.name.as_str()).collect();
            Err(Error::failed(format!("`{actor}` is several approvers ({})", names.join(", "))).hint("say which with `--as NAME`"))
        }
    }
}

/// Whether approver `name` may decide on this stage at all; the error says why not.
pub fn check_approver(
    policy: &ApprovalPolicy,
    pinned: &[signed::Approver],
    name: &str,
    parties: &Parties,
    stage: &StageName,
) -> Result<()> {
    if excluded(policy, pinned, parties).iter().any(|n| n == name) {
        let built = parties.builder.as_ref().is_some_and(|b| pinned.iter().any(|a| a.name == name && a.is(b)));
        let role = if built { "built" } else { "requested the promotion of" };
        return Err(Error::failed(format!(
            "`{name}` {role} this release and cannot approve it for stage `{stage}` (separation of duties)"
        ))
        .hint("ask another approver, or set `allow_self_approval: true` in the stage's approval policy"));
    }
    if !policy.approvers.is_empty() && !policy.approvers.iter().any(|a| a == name) {
        return Err(Error::failed(format!("`{name}` is not an approver for stage `{stage}`"))
            .hint(format!("allowed approvers: {}", policy.approvers.join(", "))));
    }
    Ok(())
}

/// Approver names as actors (pinned names are valid actors: the pipeline parsed them so).
fn actors<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<Actor> {
    names.into_iter().filter_map(|n| n.parse().ok()).collect()
}

/// Where the signed decisions on (release, stage) stand at `expected.now`, and the records
/// that do not count (with why): `signed::count` over the pinned approvers.
pub fn evaluate(
    policy: Option<&ApprovalPolicy>,
    pinned: &[signed::Approver],
    decisions: &[(String, Vec<u8>)],
    expected: &signed::Expected<'_>,
    parties: &Parties,
) -> (ApprovalState, Vec<signed::Refused>) {
    let Some(policy) = policy else { return (ApprovalState::NotRequired, Vec::new()) };
    let excluded = excluded(policy, pinned, parties);
    let counted = signed::count(decisions, pinned, &policy.approvers, &excluded, expected);
    if let Some(r) = &counted.rejection
        && let Ok(by) = r.approver.parse()
    {
        return (ApprovalState::Rejected { by, comment: r.comment.clone(), at: r.at }, counted.refused);
    }
    let have: Vec<String> = counted.approvers();
    if have.len() >= policy.required as usize {
        return (ApprovalState::Approved { by: actors(&have) }, counted.refused);
    }
    let pool: Vec<String> =
        if policy.approvers.is_empty() { pinned.iter().map(|a| a.name.clone()).collect() } else { policy.approvers.clone() };
    let eligible = actors(pool.iter().filter(|a| !excluded.contains(a) && !have.contains(a)));
    let state = ApprovalState::Pending {
        have: actors(&have),
        need: policy.required,
        eligible,
        excluded: actors(&excluded),
        expires: counted.expires(),
    };
    (state, counted.refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_arn_identity_matches_every_session_of_that_role_and_nothing_else() {
        let entry: Actor = "arn:aws:iam::111111111111:role/team/release-managers".parse().unwrap();
        let m = |a: &str| identity_matches(&entry, &a.parse().unwrap());
        assert!(m("arn:aws:sts::111111111111:assumed-role/release-managers/alice"));
        assert!(!m("arn:aws:sts::222222222222:assumed-role/release-managers/alice"), "other account");
        assert!(!m("arn:aws:sts::111111111111:assumed-role/release-managers-2/alice"), "other role");
        assert!(!m("arn:aws:sts::111111111111:assumed-role/release-managers/"), "no session");
        assert!(!m("release-managers"));
    }
}
