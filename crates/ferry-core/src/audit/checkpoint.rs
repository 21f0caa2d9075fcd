//! Signed checkpoints: a DSSE-signed statement that the log had `seq` events ending in `head`.
//! A later log that is shorter, or whose event `seq` has another hash, was truncated or
//! rewritten — what a hash chain alone cannot show.

use serde::{Deserialize, Serialize};

use super::{AUDIT_VERSION, ChainProblem, Tail};
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::ids::Sha256Digest;

/// DSSE payload type of a signed audit checkpoint.
pub const CHECKPOINT_TYPE: &str = "application/vnd.ferry.audit-checkpoint+json";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub version: u32,
    pub seq: u64,
    pub head: Sha256Digest,
    pub at: Timestamp,
}

/// Signs a checkpoint of the log whose last event is `last`.
pub fn checkpoint(last: &Tail, signer: &dyn crate::attestation::Signer, at: Timestamp) -> Result<crate::attestation::Envelope> {
    let c = Checkpoint { version: AUDIT_VERSION, seq: last.seq, head: last.hash.clone(), at };
    let v = serde_json::to_value(&c).map_err(|e| Error::failed(format!("cannot encode checkpoint: {e}")))?;
    crate::attestation::sign_payload(CHECKPOINT_TYPE, &v, signer)
}

/// Checks the checkpoint stored for position `seq`: it must verify with `key` and name an
/// event that is still there (`hash_at`, the hash the log holds at `seq`) with the same hash.
/// Returns what it vouches for.
pub fn check_checkpoint(
    seq: u64,
    envelope: &[u8],
    key: &crate::keys::PublicKey,
    hash_at: Option<&Sha256Digest>,
) -> std::result::Result<Checkpoint, ChainProblem> {
    let verified = crate::attestation::Envelope::from_bytes(envelope)
        .and_then(|env| env.verify_payload(key, CHECKPOINT_TYPE))
        .and_then(|v| serde_json::from_value::<Checkpoint>(v).map_err(|e| Error::verification(format!("malformed checkpoint: {e}"))));
    let c = match verified {
        Ok(c) if c.seq == seq => c,
        Ok(c) => return Err(ChainProblem { seq, problem: format!("the checkpoint stored at {seq} is for event {}", c.seq) }),
        Err(e) => return Err(ChainProblem { seq, problem: format!("checkpoint at event {seq} does not verify: {}", e.message) }),
    };
    match hash_at {
        None => Err(ChainProblem {
            seq,
            problem: format!("a signed checkpoint says the log had {seq} events; event {seq} is gone: the log was truncated"),
        }),
        Some(h) if h != &c.head => {
            Err(ChainProblem { seq, problem: format!("event {seq} differs from the signed checkpoint: the log was rewritten") })
        }
        Some(_) => Ok(c),
    }
}
