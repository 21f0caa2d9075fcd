//! ferry's exit codes. They are part of the interface: scripts and CI branch on them.

/// Documented in README.md; each outcome has its own code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success = 0,
    Failure = 1,
    /// Bad input: an invalid pipeline file or argument.
    Invalid = 2,
    /// Waiting for a gate: an approval is pending.
    AwaitingApproval = 3,
    /// A digest or signature did not verify (also a broken audit chain).
    VerificationFailed = 4,
    /// The stage is locked by another promotion.
    Busy = 5,
}

impl From<ferry_core::ErrorKind> for Exit {
    fn from(k: ferry_core::ErrorKind) -> Self {
        match k {
            ferry_core::ErrorKind::Invalid => Exit::Invalid,
            ferry_core::ErrorKind::Verification => Exit::VerificationFailed,
            ferry_core::ErrorKind::Busy => Exit::Busy,
            ferry_core::ErrorKind::Pending => Exit::AwaitingApproval,
            ferry_core::ErrorKind::Failed => Exit::Failure,
        }
    }
}
