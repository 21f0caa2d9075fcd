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
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = OutputFormat::Human, env = "FERRY_OUTPUT")]
    pub output: OutputFormat,
    /// Where the local backend keeps its store, state, locks, audit log and keys.
    #[arg(long, global = true, help_heading = "Global options", env = "FERRY_HOME", default_value = ".ferry")]
    pub home: PathBuf,
    /// Also write a JUnit XML report of the checks made (verification, gates, approvals,
    /// deploy actions) to this file, e.g. for CodeBuild reports.
    #[arg(long, global = true, help_heading = "Global options", env = "FERRY_JUNIT")]
    pub junit: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, help_heading = "Global options", value_enum, env = "FERRY_LOG_FORMAT", default_value_t = LogFormat::Text)]
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
    #[command(after_help = "Examples:\n  ferry validate\n  ferry validate pipelines/shop.yaml --output json")]
    Validate {
        /// Pipeline files (default: pipelines/*.yaml).
        files: Vec<PathBuf>,
    },
    /// Print the JSON Schema (draft-07) of the pipeline format.
    #[command(after_help = "Examples:\n  ferry schema > schema/pipeline-v1.json\n  ferry schema --markdown")]
    Schema {
        /// Print the pipeline reference as a markdown table instead (what README.md shows).
        #[arg(long)]
        markdown: bool,
    },
    /// Print the stages, accounts, gates and actions a pipeline would run.
    #[command(after_help = "Example:\n  ferry plan pipelines/shop.yaml")]
    Plan {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Preflight: every role hop (with the resulting ARN), buckets, the signing key.
    #[command(after_help = "Example:\n  ferry doctor pipelines/shop-aws.yaml --output json")]
    Doctor {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Print the CloudFormation stacks and parameters each account needs (the templates are
    /// built into ferry: `--write DIR` writes them).
    #[command(
        after_help = "Examples:\n  ferry bootstrap pipelines/shop-aws.yaml --write bootstrap\n  ferry bootstrap pipelines/shop-aws.yaml --output json > bootstrap.json"
    )]
    Bootstrap {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Write the CloudFormation templates the stacks use into this directory (made if
        /// missing); the printed commands deploy them from there.
        #[arg(long, value_name = "DIR")]
        write: Option<PathBuf>,
    },
    /// Run the build, collect and hash artifacts, sign and store the release.
    #[command(after_help = "Example:\n  ferry build pipelines/shop.yaml --output json")]
    Build {
        /// The pipeline file.
        pipeline: PathBuf,
    },
    /// Promote a stored release to one stage.
    #[command(
        after_help = "Examples:\n  ferry promote pipelines/shop.yaml --release r1a2b3c4d5e6f7a8b --to staging\n  ferry promote pipelines/shop.yaml --release r1a2b3c4d5e6f7a8b --to prod --wait 10m\n  ferry promote pipelines/shop.yaml --release r1a2b3c4d5e6f7a8b --to prod --wait-for-approval 15m"
    )]
    Promote {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The release id (`ferry build` prints it).
        #[arg(long)]
        release: String,
        /// The stage to promote to.
        #[arg(long = "to")]
        to: String,
        /// Wait up to this long for the stage's approvals instead of exiting 3 at once: looks
        /// for new decisions with backoff (2s, 4s, … at most 30s apart) and tries again when
        /// one lands; for short waits.
        #[arg(long, value_parser = duration, value_name = "DURATION")]
        wait_for_approval: Option<Duration>,
        #[command(flatten)]
        opts: PromoteOpts,
    },
    /// Build, then promote through every stage until one blocks.
    #[command(
        after_help = "Examples:\n  ferry run pipelines/shop.yaml\n  ferry run pipelines/shop.yaml --release r1a2b3c4d5e6f7a8b   # after the approvals"
    )]
    Run {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Carry this existing release on through the stages instead of building one (stages it
        /// already succeeded in are skipped).
        #[arg(long)]
        release: Option<String>,
        #[command(flatten)]
        opts: PromoteOpts,
    },
    /// Re-promote the previous (or named) release that once succeeded in a stage.
    #[command(
        after_help = "Examples:\n  ferry rollback pipelines/shop.yaml --stage prod\n  ferry rollback pipelines/shop.yaml --stage prod --to r1a2b3c4d5e6f7a8b"
    )]
    Rollback {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The stage to roll back.
        #[arg(long)]
        stage: String,
        /// The release to restore (default: the last one that succeeded before the latest attempt).
        #[arg(long)]
        to: Option<String>,
        #[command(flatten)]
        opts: PromoteOpts,
    },
    /// Approve a release for a stage.
    #[command(
        after_help = "Example:\n  ferry approve pipelines/shop.yaml --release r1a2b3c4d5e6f7a8b --stage prod --comment 'change CHG-42 reviewed'"
    )]
    Approve(Decide),
    /// Reject a release for a stage (final for that release and stage).
    #[command(
        after_help = "Example:\n  ferry reject pipelines/shop.yaml --release r1a2b3c4d5e6f7a8b --stage prod --comment 'fails the load test'"
    )]
    Reject(Decide),
    /// List what awaits your approval across pipelines (default: pipelines/*.yaml).
    #[command(after_help = "Examples:\n  ferry pending\n  ferry pending pipelines/shop.yaml --output json")]
    Pending {
        /// Pipeline files to look at (default: pipelines/*.yaml).
        pipelines: Vec<PathBuf>,
    },
    /// Show where releases stand in each stage, pending approvals and locks.
    #[command(
        after_help = "Examples:\n  ferry status pipelines/shop.yaml\n  ferry status pipelines/shop.yaml --release r1a2b3c4d5e6f7a8b --output json"
    )]
    Status {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Only this release.
        #[arg(long)]
        release: Option<String>,
        /// Show the newest N releases (the per-stage summary covers them all).
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
    /// Verify a release's digests and signature against the pinned key.
    #[command(after_help = "Example:\n  ferry verify pipelines/shop.yaml --release r1a2b3c4d5e6f7a8b")]
    Verify {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The release id to verify.
        #[arg(long)]
        release: String,
    },
    /// Release a stage lock left by a promotion that is gone (audited).
    #[command(after_help = "Example:\n  ferry unlock pipelines/shop.yaml --stage prod")]
    Unlock {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The stage whose lock to release.
        #[arg(long)]
        stage: String,
    },
    /// Inspect and verify the audit log.
    #[command(subcommand)]
    #[command(
        after_help = "Examples:\n  ferry audit verify --pipeline pipelines/shop-aws.yaml\n  ferry audit show --release r1a2b3c4d5e6f7a8b"
    )]
    Audit(AuditCommand),
    /// Create a signing key in $FERRY_HOME/keys.
    #[command(after_help = "Example:\n  ferry keygen --name alice --algorithm ecdsa-p256")]
    Keygen {
        /// The key's name in the key store (what `signing.key` or an approver names).
        #[arg(long, default_value = "default")]
        name: String,
        /// ed25519 or ecdsa-p256.
        #[arg(long, default_value = "ed25519")]
        algorithm: String,
    },
    /// Work with signing keys.
    #[command(subcommand)]
    #[command(after_help = "Example:\n  ferry key export --name alice --out pipelines/keys")]
    Key(KeyCommand),
    /// The pipeline's trust root: the release keys, approver keys, thresholds and protected
    /// stages an administrator publishes where the automation cannot write.
    #[command(
        subcommand,
        after_help = "Examples:\n  ferry trust publish pipelines/shop-aws.yaml\n  ferry trust diff pipelines/shop-aws.yaml"
    )]
    Trust(TrustCommand),
    /// Show pipelines, stages, releases and the audit log as web pages on 127.0.0.1, where an
    /// approver also approves or rejects (signed with their own key); or export them.
    #[command(
        after_help = "Examples:\n  ferry ui\n  ferry ui pipelines/shop.yaml --listen 127.0.0.1:8470\n  ferry ui --export site --link https://releases.example.com/shop/"
    )]
    Ui {
        /// Pipeline files to show (default: pipelines/*.yaml).
        pipelines: Vec<PathBuf>,
        /// The loopback address and port to serve on (port 0: any free one).
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Write the pages as static HTML into this new directory instead of serving them.
        #[arg(long, value_name = "DIR")]
        export: Option<PathBuf>,
        /// Where the export will be published (an S3 static site, say): linked from the GitHub
        /// job summary. With --export only; an https:// address.
        #[arg(long, value_name = "URL", requires = "export")]
        link: Option<String>,
        /// How many of each pipeline's newest releases to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to stdout.
    #[command(after_help = "Example:\n  ferry completions bash > /etc/bash_completion.d/ferry")]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
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
            Command::Ui { .. } => "ui",
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
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// The release id (`ferry pending` and `ferry status` list them).
    #[arg(long)]
    pub release: String,
    /// The stage the decision is for.
    #[arg(long)]
    pub stage: String,
    /// Why, in a sentence; signed with the decision and shown to everyone after.
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
    #[command(
        after_help = "Examples:\n  ferry audit verify --pipeline pipelines/shop-aws.yaml\n  ferry audit verify --bundle evidence/r1a2b3c4d5e6f7a8b"
    )]
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
    #[command(
        after_help = "Example:\n  ferry audit export --release r1a2b3c4d5e6f7a8b --pipeline pipelines/shop.yaml evidence/r1a2b3c4d5e6f7a8b"
    )]
    Export {
        /// The release whose evidence to write.
        #[arg(long)]
        release: String,
        /// The pipeline whose backend holds the release (default: pipeline.yaml).
        #[arg(long, default_value = "pipeline.yaml")]
        /// The pipeline file.
        pipeline: PathBuf,
        /// A directory that does not exist yet (or is empty).
        dir: PathBuf,
    },
    /// Print the history.
    #[command(after_help = "Example:\n  ferry audit show --pipeline pipelines/shop-aws.yaml --release r1a2b3c4d5e6f7a8b --output json")]
    Show {
        /// Only the events of this release.
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
    #[command(after_help = "Example:\n  ferry trust publish pipelines/shop-aws.yaml   # with the administrator's own credentials")]
    Publish {
        /// The pipeline file.
        pipeline: PathBuf,
        /// The role to publish with (default: ferry-trust-admin in the audit bucket's account).
        #[arg(long)]
        role: Option<String>,
    },
    /// Print the published root (and its history with --history).
    #[command(after_help = "Example:\n  ferry trust show pipelines/shop-aws.yaml --history")]
    Show {
        /// The pipeline file.
        pipeline: PathBuf,
        /// Every published version, oldest first, with what changed.
        #[arg(long)]
        history: bool,
    },
    /// Compare the pipeline file with the published root; exit 4 if they differ.
    #[command(after_help = "Example:\n  ferry trust diff pipelines/shop.yaml")]
    Diff {
        /// The pipeline file.
        pipeline: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Write the public key as NAME.pem (SPKI) and NAME.json (securesystemslib) into DIR.
    #[command(
        after_help = "Examples:\n  ferry key export --name alice --out pipelines/keys\n  ferry key export --kms arn:aws:kms:eu-west-1:333333333333:key/… --name shop-kms --out pipelines/keys"
    )]
    Export {
        /// The local key to export, and the base name of the files written.
        #[arg(long, default_value = "default")]
        name: String,
        /// The directory to write into.
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    /// Every subcommand, at any depth, with its path (`audit verify`).
    fn all(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let name = if path.is_empty() { sub.get_name().to_owned() } else { format!("{path} {}", sub.get_name()) };
            out.push((name.clone(), sub.clone()));
            all(sub, &name, out);
        }
    }

    #[test]
    fn every_subcommand_shows_an_example_and_every_argument_says_what_it_is() {
        super::Cli::command().debug_assert();
        let mut subs = Vec::new();
        all(&super::Cli::command(), "", &mut subs);
        assert!(subs.len() >= 25, "{}", subs.len());
        for (name, cmd) in &subs {
            let example = cmd.get_after_help().map(ToString::to_string).unwrap_or_default();
            assert!(example.starts_with("Example") && example.contains("ferry "), "`ferry {name}` has no example");
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                assert!(!help.trim().is_empty(), "`ferry {name}`: argument `{id}` has no help");
            }
        }
    }
}
