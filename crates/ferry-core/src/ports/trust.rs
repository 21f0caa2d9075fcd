//! The trust-root port: each pipeline's published roots, versioned, create-only. Written once,
//! over the object port, in `crate::storage::trust`.

use crate::clock::Timestamp;
use crate::error::Result;
use crate::ids::{Actor, PipelineName};
use crate::trust::{Published, TrustRoot};

pub trait TrustStore: Send + Sync {
    /// The pipeline's latest published root, if any.
    fn current(&self, pipeline: &PipelineName) -> Result<Option<Published>>;
    /// The pipelines with a published root.
    fn pipelines(&self) -> Result<Vec<PipelineName>>;
    /// Every published root of the pipeline, oldest first.
    fn history(&self, pipeline: &PipelineName) -> Result<Vec<Published>>;
    /// Publishes `root` as the next version (never replacing one); returns it, and whether it
    /// is new (`false`: the latest root is already exactly this one).
    fn publish(&self, root: &TrustRoot, by: &Actor, at: Timestamp) -> Result<(Published, bool)>;
    /// Where the roots are, for messages.
    fn location(&self) -> String;
}
