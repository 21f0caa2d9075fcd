//! The one error type of ferry's library crates: a kind (which decides the exit code), a
//! message with the values involved in backticks, `hint:` lines that say what to do, and —
//! when a pipeline setting is what failed — where that setting is written.

use std::fmt;

/// What went wrong, coarsely: the CLI maps each kind to a distinct exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad input: a pipeline file, an argument, a stored document of an unknown version.
    Invalid,
    /// A digest or signature did not verify; nothing was deployed.
    Verification,
    /// The stage is locked by another promotion.
    Busy,
    /// Not yet: the approvals something needs are not all there (the gatekeeper's "pending").
    Pending,
    /// Anything else: a failed deploy, a rejected release, an I/O error.
    Failed,
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    pub hints: Vec<String>,
    /// The pipeline setting the failure comes from (a deploy action, a gate, the build
    /// command, the signing key …), shown as `--> file:line:column` with the source line.
    pub origin: Option<Origin>,
}

/// Where a pipeline setting is written: its file, line and column (1-based) and field path
/// (`stages[1].deploy[0]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Origin {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{} ({})", self.file, self.line, self.column, self.field)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), hints: Vec::new(), origin: None }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed, message)
    }
    pub fn verification(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Verification, message)
    }
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Busy, message)
    }
    pub fn pending(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Pending, message)
    }
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
    /// Says the failure comes from the setting at `origin` (a cause's own origin, set
    /// closer to it, is kept).
    #[must_use]
    pub fn at(mut self, origin: Option<Origin>) -> Self {
        if self.origin.is_none() {
            self.origin = origin;
        }
        self
    }
    /// An I/O failure on `path`, worded as "failed to WHAT `PATH`: CAUSE".
    pub fn io(what: &str, path: &std::path::Path, e: &std::io::Error) -> Self {
        Self::failed(format!("failed to {what} `{}`: {e}", path.display()))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for h in &self.hints {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}
