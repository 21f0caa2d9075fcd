//! The pipeline model (`pipelines/*.yaml`, `version: 1`): accounts, build, stages, approval
//! policies, gates and deploy actions. Values here are already validated; see `parse` for how
//! a file becomes a `Pipeline` and `schema` for the JSON Schema of the format.

mod actions;
mod approvers;
mod aws;
mod channels;
mod gates;
mod guardrails;
mod images;
mod keys;
mod notifications;
mod origins;
mod parse;
mod reader;
pub mod schema;
mod source;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::ids::{AccountId, Actor, FunctionRef, PipelineName, Region, RoleArn, StageName};
pub use crate::window::{Freeze, Window};
pub use channels::*;
pub use origins::Origins;
pub use parse::{load, load_freeze_file, parse_str};
pub use source::MAX_FILE_BYTES;

/// A validated pipeline definition.
#[derive(Debug, Clone, Serialize)]
pub struct Pipeline {
    /// The file it was read from (as given on the command line).
    pub file: PathBuf,
    pub name: PipelineName,
    pub backend: Backend,
    pub accounts: BTreeMap<String, AccountId>,
    pub signing: Signing,
    pub build: Build,
    pub stages: Vec<Stage>,
    pub audit: Audit,
    /// Present when `backend: aws`.
    pub aws: Option<AwsSettings>,
    /// Cost-allocation tags of everything deployed.
    pub tags: BTreeMap<String, String>,
    pub policy: Policy,
    pub notifications: Vec<Notification>,
    /// The people who may approve, each with the key their approvals are signed with.
    pub approvers: Vec<ApproverKey>,
    /// Where each setting is written, for the runtime errors that come from one.
    #[serde(skip)]
    pub origins: Origins,
}

/// A person who may approve: a name, the public key their approvals must verify with, and who
/// they are when they act.
#[derive(Debug, Clone, Serialize)]
pub struct ApproverKey {
    pub name: String,
    /// PEM file, relative to the pipeline file.
    pub public_key: String,
    /// Identities that are this person (the name itself if none are given).
    pub identities: Vec<Actor>,
    /// The KMS key (ECC_NIST_P256) the approver signs with on AWS, if not a local key; its
    /// public key is `public_key`.
    pub kms_key: Option<String>,
}

impl ApproverKey {
    /// Whether `actor` is this person.
    pub fn is(&self, actor: &Actor) -> bool {
        crate::ids::is_person(&self.name, &self.identities, actor)
    }
}

impl Pipeline {
    /// A stage's window gates, and the organization's freezes unless the stage opts out.
    pub fn windows_of<'a>(&self, stage: &'a Stage) -> crate::Result<(Vec<&'a Window>, Vec<Freeze>)> {
        let org = match (&self.policy.freeze_file, stage.ignore_org_freeze) {
            (Some(file), false) => load_freeze_file(&self.dir().join(file)).map_err(|d| {
                crate::Error::invalid(d.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
                    .hint("fix the organization's freeze file")
            })?,
            _ => Vec::new(),
        };
        Ok((stage.gates.iter().filter_map(|g| if let Gate::Window(w) = g { Some(w) } else { None }).collect(), org))
    }

    /// Where the setting `field` (`build.command`, `stages[1].gates[0]`) is written.
    pub fn origin(&self, field: &str) -> Option<crate::Origin> {
        self.origins.of(field)
    }

    /// Where stage `stage`'s setting `field` (`deploy[0]`, `gates[1]`) is written.
    pub fn stage_origin(&self, stage: &StageName, field: &str) -> Option<crate::Origin> {
        let i = self.stages.iter().position(|s| &s.name == stage)?;
        self.origins.of(&format!("stages[{i}].{field}"))
    }

    /// The approver named `name`, if the pipeline pins one.
    pub fn approver(&self, name: &str) -> Option<&ApproverKey> {
        self.approvers.iter().find(|a| a.name == name)
    }
}

/// Guardrails, checked by `ferry validate` and so on every command that loads the pipeline.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Policy {
    pub allowed_regions: Vec<Region>,
    pub management_account: Option<AccountId>,
    pub required_tags: Vec<String>,
    pub protected_stages: Vec<StageName>,
    pub allow_rollback_without_approval: bool,
    /// Organization-wide freezes, relative to the pipeline file; read at promotion time.
    pub freeze_file: Option<PathBuf>,
    /// The organization's policy file, already merged into this policy.
    pub org_policy: Option<PathBuf>,
}

/// Where the aws backend keeps things and which roles it assumes.
#[derive(Debug, Clone, Serialize)]
pub struct AwsSettings {
    pub region: Region,
    /// The entry role (tooling account) every chain starts from.
    pub orchestrator: RoleArn,
    pub external_id: Option<String>,
    #[serde(with = "humantime_serde_compat")]
    pub session_duration: Duration,
    /// Default role name in build and stage accounts.
    pub deploy_role: String,
    /// The gatekeeper function protected stages get their credentials from.
    pub gatekeeper: Option<FunctionRef>,
    pub store: BucketRef,
    pub audit: BucketRef,
}

/// A bucket in an account, reached by assuming `role` there.
#[derive(Debug, Clone, Serialize)]
pub struct BucketRef {
    pub account_alias: String,
    pub role: RoleArn,
    pub bucket: String,
    pub prefix: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Local,
    Aws,
}

#[derive(Debug, Clone, Serialize)]
pub struct Signing {
    pub key: SigningKey,
    /// The pinned public key, relative to the pipeline file; verification trusts only this.
    pub public_key: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningKey {
    /// A private key in `$FERRY_HOME/keys`.
    Local(String),
    /// An asymmetric KMS key, used by assuming `role` in the key's account.
    Kms { key_arn: String, role: RoleArn, region: Region },
}

impl SigningKey {
    pub fn describe(&self) -> String {
        match self {
            SigningKey::Local(name) => format!("local key `{name}`"),
            SigningKey::Kms { key_arn, .. } => format!("KMS key `{key_arn}`"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Build {
    pub account_alias: String,
    pub account: AccountId,
    /// Role the build runs as (aws backend).
    pub role: Option<String>,
    pub command: Option<String>,
    /// Relative to the pipeline file's directory.
    pub working_dir: PathBuf,
    pub env: BTreeMap<String, String>,
    pub artifacts: Vec<ArtifactDecl>,
    pub images: Vec<ImageDecl>,
}

/// A container image the build command pushed to the central ECR registry (the artifacts
/// account, `aws.region`); `ferry build` resolves its tag to a digest once and records that.
#[derive(Debug, Clone, Serialize)]
pub struct ImageDecl {
    pub name: String,
    pub repository: String,
    /// May contain `${commit}`.
    pub tag: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ArtifactDecl {
    pub name: String,
    pub source: ArtifactSource,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactSource {
    /// One file, relative to the working directory.
    Path(String),
    /// Every file matching the pattern; each becomes `NAME/RELATIVE_PATH`.
    Glob(String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub name: StageName,
    pub account_alias: String,
    pub account: AccountId,
    /// Role assumed in the stage account (aws backend).
    pub role: Option<String>,
    pub region: Option<Region>,
    /// Stages this one requires to have succeeded for the same release.
    pub requires: Vec<StageName>,
    pub approval: Option<ApprovalPolicy>,
    pub gates: Vec<Gate>,
    pub deploy: Vec<Action>,
    pub tags: BTreeMap<String, String>,
    pub on_failure: OnFailure,
    pub ignore_org_freeze: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalPolicy {
    pub required: u32,
    /// The names (of the pipeline's `approvers`) whose approvals count; empty means all of them.
    pub approvers: Vec<String>,
    #[serde(with = "humantime_serde_compat")]
    pub expires: Duration,
    pub allow_self_approval: bool,
}

/// A check on a stage; every gate must pass.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Gate {
    Command {
        run: String,
        #[serde(with = "humantime_serde_compat::option")]
        timeout: Option<Duration>,
        when: When,
    },
    /// When deploys may start, and when they may not (freezes).
    Window(Window),
    /// An HTTP health check that must pass, continuously for `soak`, before `timeout`.
    Http(HttpGate),
    /// CloudWatch alarms of the stage account that must be OK (for `soak`).
    Alarm(AlarmGate),
}

#[derive(Debug, Clone, Serialize)]
pub struct AlarmGate {
    pub alarms: Vec<String>,
    pub insufficient_data_ok: bool,
    #[serde(with = "humantime_serde_compat")]
    pub soak: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    pub when: When,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpGate {
    pub url: String,
    pub status: u16,
    pub body_contains: Option<String>,
    /// Dotted path into a JSON body and the value it must have.
    pub json: Option<(String, String)>,
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub soak: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    pub when: When,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    Before,
    After,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    #[default]
    Fail,
    Rollback,
}

/// One deploy step of a stage. Issue #4 adds the AWS actions beside `command`.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Action {
    Command {
        run: String,
        env: BTreeMap<String, String>,
        #[serde(with = "humantime_serde_compat::option")]
        timeout: Option<Duration>,
    },
    /// Create or update a CloudFormation stack through a change set; the template is a
    /// release artifact (so it is pinned by digest like everything else).
    #[serde(rename = "cloudformation")]
    CloudFormation {
        stack: String,
        /// Name of the artifact holding the template.
        template: String,
        /// Values may use `${release}`, `${stage}`, `${pipeline}`, `${account}` and
        /// `${artifact.NAME.sha256}`.
        parameters: BTreeMap<String, String>,
        capabilities: Vec<String>,
    },
    /// Copy a release image by digest from the central repository to one in the stage
    /// account (manifest as is, missing layers copied), re-check the digest, and tag it.
    Ecr {
        /// Name of an image of the build.
        image: String,
        /// Repository in the stage account; `None` means the central repository's name.
        repository: Option<String>,
        /// Tags, with placeholders (`${release}`, `${stage}`, `${pipeline}`).
        tags: Vec<String>,
    },
    /// Start an execution of an existing CodePipeline pipeline in the stage account and wait
    /// for it; optionally answer one of its Manual approval actions for this execution.
    #[serde(rename = "codepipeline")]
    CodePipeline {
        pipeline: String,
        variables: BTreeMap<String, String>,
        /// `(stage, action)` of a Manual approval ferry approves once its own gates passed.
        approve: Option<(String, String)>,
        #[serde(with = "humantime_serde_compat")]
        timeout: Duration,
    },
    /// Copy release artifacts into a bucket of the stage account; what landed is re-hashed.
    S3 {
        bucket: String,
        prefix: String,
        /// Artifact names (a glob artifact's name covers all its files); empty means all.
        artifacts: Vec<String>,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Command { .. } => "command",
            Action::S3 { .. } => "s3",
            Action::CloudFormation { .. } => "cloudformation",
            Action::Ecr { .. } => "ecr",
            Action::CodePipeline { .. } => "codepipeline",
        }
    }

    pub fn summary(&self) -> String {
        match self {
            Action::Command { run, .. } => format!("command: {run}"),
            Action::S3 { bucket, prefix, .. } => format!("s3: copy artifacts to s3://{bucket}/{prefix}"),
            Action::CloudFormation { stack, template, .. } => format!("cloudformation: stack `{stack}` from artifact `{template}`"),
            Action::Ecr { image, repository, .. } => match repository {
                Some(r) => format!("ecr: image `{image}` by digest to repository `{r}`"),
                None => format!("ecr: image `{image}` by digest to the stage account"),
            },
            Action::CodePipeline { pipeline, approve, .. } => match approve {
                Some((stage, action)) => format!("codepipeline: run `{pipeline}` and approve {stage}/{action}"),
                None => format!("codepipeline: run `{pipeline}`"),
            },
        }
    }
}

impl Gate {
    pub fn summary(&self) -> String {
        match self {
            Gate::Command { run, when: When::Before, .. } => format!("command: {run}"),
            Gate::Command { run, when: When::After, .. } => format!("after deploy, command: {run}"),
            Gate::Window(w) => w.describe(),
            Gate::Http(h) => {
                let after = if h.when == When::After { "after deploy, " } else { "" };
                format!("{after}http: GET {} expects {}", h.url, h.status)
            }
            Gate::Alarm(a) => {
                let after = if a.when == When::After { "after deploy, " } else { "" };
                format!("{after}alarm: {} OK", a.alarms.join(", "))
            }
        }
    }

    /// The phase a gate runs in (windows are checked before anything else).
    pub fn when(&self) -> When {
        match self {
            Gate::Command { when, .. } => *when,
            Gate::Http(h) => h.when,
            Gate::Alarm(a) => a.when,
            Gate::Window(_) => When::Before,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    /// The account alias that holds the audit log (the security account).
    pub account_alias: Option<String>,
}

impl Pipeline {
    pub fn stage(&self, name: &StageName) -> Option<&Stage> {
        self.stages.iter().find(|s| &s.name == name)
    }

    /// The stage named `name`, or an error naming the closest stage (a typo) and every stage.
    pub fn stage_or_error(&self, name: &StageName) -> crate::error::Result<&Stage> {
        self.stage(name).ok_or_else(|| {
            let names: Vec<&str> = self.stages.iter().map(|s| s.name.as_str()).collect();
            let hint = match reader::closest(name.as_str(), &names) {
                Some(s) => format!("did you mean `{s}`? stages: {}", names.join(", ")),
                None => format!("stages: {}", names.join(", ")),
            };
            crate::error::Error::invalid(format!("pipeline `{}` has no stage `{name}`", self.name)).hint(hint)
        })
    }

    /// The directory relative paths in the pipeline are resolved against.
    pub fn dir(&self) -> &Path {
        self.file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
    }

    /// The tags of what `stage` deploys: the pipeline's, the stage's, and ferry's own.
    pub fn tags_for(&self, stage: &Stage, release: &crate::ids::ReleaseId) -> BTreeMap<String, String> {
        let mut tags = self.tags.clone();
        tags.extend(stage.tags.clone());
        tags.insert("ferry:pipeline".into(), self.name.to_string());
        tags.insert("ferry:release".into(), release.to_string());
        tags.insert("ferry:stage".into(), stage.name.to_string());
        tags
    }

    pub fn public_key_path(&self) -> PathBuf {
        self.dir().join(&self.signing.public_key)
    }

    /// The `ferry key export` that writes exactly the public key this pipeline pins.
    pub fn key_export_command(&self) -> String {
        let pinned = self.public_key_path();
        let name = pinned.file_stem().map_or_else(|| "release".into(), |s| s.to_string_lossy().into_owned());
        let out = match pinned.parent() {
            Some(d) if !d.as_os_str().is_empty() => {
                let d = d.strip_prefix(".").unwrap_or(d);
                if d.as_os_str().is_empty() { ".".to_owned() } else { d.display().to_string() }
            }
            _ => ".".to_owned(),
        };
        match &self.signing.key {
            SigningKey::Kms { key_arn, .. } => format!("ferry key export --kms {key_arn} --name {name} --out {out}"),
            SigningKey::Local(key) => format!("ferry key export --name {key} --out {out}"),
        }
    }

    pub fn working_dir(&self) -> PathBuf {
        self.dir().join(&self.build.working_dir)
    }
}

/// Serialises durations as humantime strings (`24h`) in plans and JSON output.
mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub mod option {
        use std::time::Duration;

        pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
            match d {
                Some(d) => super::serialize(d, s),
                None => s.serialize_none(),
            }
        }
    }
}
