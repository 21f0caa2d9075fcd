//! The deploy ports: AWS deploy actions (CloudFormation, ECR, S3, CodePipeline) and the central
//! container registry, with the local backend's refusing stand-ins.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::Result;
use crate::ids::{PipelineName, ReleaseId, StageName};
use crate::ports::Target;

/// A deploy action other than `command` (which runs through the `Executor`): what to do, in
/// which account, with which verified artifact copies and tags.
#[derive(Debug, Clone)]
pub struct DeployRequest<'a> {
    pub action: &'a crate::pipeline::Action,
    pub pipeline: PipelineName,
    pub release: ReleaseId,
    pub stage: StageName,
    pub target: Target,
    /// Each artifact of the release and the path of its verified local copy.
    pub artifacts: Vec<(crate::manifest::ManifestArtifact, PathBuf)>,
    /// The release's images, by digest.
    pub images: Vec<crate::manifest::ManifestImage>,
    pub tags: BTreeMap<String, String>,
    /// Raised when the promotion must stop (SIGINT/SIGTERM, a lost lock): an action that waits
    /// (a stack update, a pipeline execution) stops waiting and fails, saying what goes on.
    pub stop: Option<std::sync::Arc<crate::ports::Stop>>,
}

/// What a deploy action did, for the state and the audit log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployReport {
    pub detail: String,
    pub output: String,
    /// Values later actions and stages can use (CloudFormation stack outputs).
    pub outputs: BTreeMap<String, String>,
}

/// Runs the AWS deploy actions (issue #4 adds CloudFormation, ECR and CodePipeline here).
pub trait Deployer {
    fn deploy(&self, req: &DeployRequest<'_>) -> Result<DeployReport>;

    /// What the action would change, one line a change, without changing anything (a
    /// CloudFormation change set's summary); empty when the action cannot tell.
    fn preview(&self, _req: &DeployRequest<'_>) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// The local backend's deployer: it has no AWS actions (validation already says so).
#[derive(Debug, Default)]
pub struct NoDeployer;

impl Deployer for NoDeployer {
    fn deploy(&self, req: &DeployRequest<'_>) -> Result<DeployReport> {
        Err(crate::error::Error::invalid(format!("the `{}` action needs `backend: aws`", req.action.kind())))
    }
}

/// The central container registry: resolves the tag a build pushed to the image's digest.
pub trait ImageRegistry {
    fn resolve(&self, image: &crate::pipeline::ImageDecl, tag: &str) -> Result<crate::manifest::ManifestImage>;
}

/// The local backend has no registry (validation already refuses images there).
#[derive(Debug, Default)]
pub struct NoRegistry;

impl ImageRegistry for NoRegistry {
    fn resolve(&self, image: &crate::pipeline::ImageDecl, _tag: &str) -> Result<crate::manifest::ManifestImage> {
        Err(crate::error::Error::invalid(format!("image `{}` needs `backend: aws`", image.name)))
    }
}
