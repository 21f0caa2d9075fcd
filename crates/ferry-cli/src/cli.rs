//! The command line: every subcommand, its arguments and their environment variables.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "ferry", version, about = "Build once, sign, and promote exactly those bytes through your AWS accounts.", long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Output format of results on stdout (logs always go to stderr).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human, env = "FERRY_OUTPUT")]
    pub output: OutputFormat,
    /// Where the local backend keeps its store, state, locks, audit log and keys.
    #[arg(long, global = true, env = "FERRY_HOME", default_value = ".ferry")]
    pub home: PathBuf,
    /// Also write a JUnit XML report of the checks made (verification, gates, approvals,
    /// deploy actions) to this file, e.g. for CodeBuild reports.
    #[arg(long, global = true, env = "FERRY_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, env = "FERRY_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("invalid duration `{s}`: {e} (write e.g. `30s`, `10m`)"))
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check pipeline files and report every problem with file:line:column.
    Validate {
        /// Pipeline files (default: pipelines/*.yaml).
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema (draft-07) of the pipeline format.
    Schema {
        /// Print the pipeline reference as a markdown table instead (what README.md shows).
        #[arg(long)]
        markdown: bool,
    },
    /// Print the stages, accounts, gates and actions a pipeline would run.
    Plan { pipeline: PathBuf },
    /// Preflight: every role hop (with the resulting ARN), buckets, the signing key.
    Doctor { pipeline: PathBuf },
    /// Print the CloudFormation stacks (bootstrap/) and parameters each account needs.
    Bootstrap { pipeline: PathBuf },
    /// Run the build, collect and hash artifacts, sign and store the release.
    Build { pipeline: PathBuf },
    /// Promote a stored release to one stage.
    Promote {
        pipeline: PathBuf,
        #[arg(long)]
        release: String,
        #[arg(long = "to")]
        to: String,
        #[command(flatten)]
        opts: PromoteOpts,
    },
    /// Build, then promote through every stage until one blocks.
    Run {
        pipeline: PathBuf,
        /// Carry this existing release on through the stages instead of building one (stages it
        /// already succeeded in are skipped).
        #[arg(long)]
        release: Option<String>,
        #[command(flatten)]
        opts: PromoteOpts,
    },
    /// Re-promote the previous (or named) release that once succeeded in a stage.
    Rollback {
        pipeline: PathBuf,
        #[arg(long)]
        stage: String,
        /// The release to restore (default: the last one that succeeded before the latest attempt).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        opts: PromoteOpts,
    },
    /// Approve a release for a stage.
    Approve(Decide),
    /// Reject a release for a stage (final for that release and stage).
    Reject(Decide),
    /// List what awaits your approval across pipelines (default: pipelines/*.yaml).
    Pending { pipelines: Vec<PathBuf> },
    /// Show where releases stand in each stage, pending approvals and locks.
    Status {
        pipeline: PathBuf,
        #[arg(long)]
        release: Option<String>,
    },
    /// Verify a release's digests and signature against the pinned key.
    Verify {
        pipeline: PathBuf,
        #[arg(long)]
        release: String,
    },
    /// Release a stage lock left by a promotion that is gone (audited).
    Unlock {
        pipeline: PathBuf,
        #[arg(long)]
        stage: String,
    },
    /// Inspect and verify the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Create a signing key in $FERRY_HOME/keys.
    Keygen {
        #[arg(long, default_value = "default")]
        name: String,
        /// ed25519 or ecdsa-p256.
        #[arg(long, default_value = "ed25519")]
        algorithm: String,
    },
    /// Work with signing keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// The pipeline's trust root: the release keys, approver keys, thresholds and protected
    /// stages an administrator publishes where the automation cannot write.
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    Completions { shell: clap_complete::Shell },
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Validate { .. } => "validate",
            Command::Schema { .. } => "schema",
            Command::Plan { .. } => "plan",
            Command::Doctor { .. } => "doctor",
            Command::Bootstrap { .. } => "bootstrap",
            Command::Build { .. } => "build",
            Command::Promote { .. } => "promote",
            Command::Run { .. } => "run",
            Command::Rollback { .. } => "rollback",
            Command::Approve(_) => "approve",
            Command::Reject(_) => "reject",
            Command::Pending { .. } => "pending",
            Command::Status { .. } => "status",
            Command::Verify { .. } => "verify",
            Command::Unlock { .. } => "unlock",
            Command::Audit(_) => "audit",
            Command::Keygen { .. } => "keygen",
            Command::Key(_) => "key",
            Command::Trust(_) => "trust",
            Command::Completions { .. } => "completions",
        }
    }
}

#[derive(Debug, Args)]
pub struct PromoteOpts {
    /// Run the deploy actions again even if they ran (or may have run) before.
    #[arg(long)]
    pub redeploy: bool,
    /// Wait up to this long for a busy stage instead of failing at once.
    #[arg(long, value_parser = duration)]
    pub wait: Option<Duration>,
    /// How long the stage lock is valid before others may treat it as abandoned (at least
    /// 30s). A running promotion renews it every third of the lease, for as long as it runs.
    #[arg(long, value_parser = duration, default_value = "5m")]
    pub lease: Duration,
}

#[derive(Debug, Args)]
pub struct Decide {
    pub pipeline: PathBuf,
    #[arg(long)]
    pub release: String,
    #[arg(long)]
    pub stage: String,
    #[arg(long)]
    pub comment: Option<String>,
    /// Decide as this pinned approver (default: the one you are, by name or identity); the
    /// decision is signed with their key from your key store.
    #[arg(long = "as", value_name = "APPROVER")]
    pub approver: Option<String>,
    /// Record the decision without asking (required when stdin is not a terminal); the
    /// summary of what is being decided is printed either way.
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Prove the hash chain and name the first bad event; with --pipeline also its signed
    /// checkpoints and that every approval, gate, deploy and success is backed by signed
    /// evidence (reported per release); with --bundle an exported bundle, offline.
    Verify {
        /// Read the audit log of this pipeline's backend (default: the local one in $FERRY_HOME).
        #[arg(long, conflicts_with = "bundle")]
        pipeline: Option<PathBuf>,
        /// Verify an evidence bundle `ferry audit export` wrote, from its files alone.
        #[arg(long)]
        bundle: Option<PathBuf>,
    },
    /// Write a release's evidence bundle (manifest, provenance, approvals, requests,
    /// deployment attestations, its stretch of the log with the checkpoint after it, the trust
    /// root and keys) into a new directory, for an auditor to verify offline.
    Export {
        #[arg(long)]
        release: String,
        /// The pipeline whose backend holds the release (default: pipeline.yaml).
        #[arg(long, default_value = "pipeline.yaml")]
        pipeline: PathBuf,
        /// A directory that does not exist yet (or is empty).
        dir: PathBuf,
    },
    /// Print the history.
    Show {
        #[arg(long)]
        release: Option<String>,
        /// Read the audit log of this pipeline's backend (default: the local one in $FERRY_HOME).
        #[arg(long)]
        pipeline: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Publish the pipeline file's root as the next version (an administrator; on AWS with
    /// the security account's trust-admin role).
    Publish {
        pipeline: PathBuf,
        /// The role to publish with (default: ferry-trust-admin in the audit bucket's account).
        #[arg(long)]
        role: Option<String>,
    },
    /// Print the published root (and its history with --history).
    Show {
        pipeline: PathBuf,
        #[arg(long)]
        history: bool,
    },
    /// Compare the pipeline file with the published root; exit 4 if they differ.
    Diff { pipeline: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write the public key as NAME.pem (SPKI) and NAME.json (securesystemslib) into DIR.
    Export {
        /// The local key to export, and the base name of the files written.
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long)]
        out: PathBuf,
        /// Export the public key of this KMS key ARN instead (with the current AWS credentials).
        #[arg(long)]
        kms: Option<String>,
    },
}

/// The log format to use: the flag or `FERRY_LOG_FORMAT` as parsed.
pub fn global_log_format(cli: &Cli) -> LogFormat {
    cli.global.log_format
}
