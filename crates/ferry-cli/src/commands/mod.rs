//! Command handlers: each turns parsed arguments into calls on ferry-core and ferry-local and
//! returns a `Report`. Shared helpers load pipelines, keys and identifiers.

mod audit;
mod aws;
mod decide;
mod doctor;
mod inspect;
mod keys;
mod pipeline;
mod release;
mod trust;
mod ui;

use std::path::Path;
use std::str::FromStr;

use ferry_core::Error;
use ferry_core::attestation::Signer;
use ferry_core::ids::Actor;
use ferry_core::ids::IdError;
use ferry_core::keys::PublicKey;
use ferry_core::pipeline::{Backend, Pipeline, SigningKey};
use ferry_core::ports::Services;
use ferry_local::Home;

use crate::cli::{AuditCommand, Cli, Command, KeyCommand, TrustCommand};
use crate::env;
use crate::output::{Failure, Report};

pub fn dispatch(cli: &Cli) -> Result<Report, Failure> {
    // Absolute, because commands and actions run in other directories.
    let mut home = Home::new(std::path::absolute(&cli.global.home).unwrap_or_else(|_| cli.global.home.clone()));
    if let Some(n) = env::audit_segment_size() {
        home.audit_segment_size = n;
    }
    if let Some(n) = env::crash_after_writes() {
        home.after_write = Some(crash_after(n));
    }
    if env::time_scale().is_some() || env::time_offset().is_some() {
        let clock = ferry_core::clock::ScaledClock::new(env::time_scale().unwrap_or(1), env::time_offset().unwrap_or_default());
        home.clock = std::sync::Arc::new(clock);
    }
    // Commands that run other processes and hold locks stop cleanly on SIGINT/SIGTERM.
    if matches!(
        cli.command,
        Command::Build { .. } | Command::Promote { .. } | Command::Run { .. } | Command::Rollback { .. } | Command::Ui { .. }
    ) {
        home.interrupt = crate::signals::install();
    }
    match &cli.command {
        Command::Validate { files } => pipeline::validate(files),
        Command::Schema { markdown } => Ok(pipeline::schema(*markdown)),
        Command::Plan { pipeline } => pipeline::plan(pipeline),
        Command::Doctor { pipeline } => doctor::doctor(&home, pipeline),
        Command::Bootstrap { pipeline, write } => pipeline::bootstrap(pipeline, write.as_deref()),
        Command::Build { pipeline } => release::build(&home, pipeline),
        Command::Promote { pipeline, release, to, wait_for_approval, opts } => {
            release::promote(&home, pipeline, release, to, *wait_for_approval, opts)
        }
        Command::Run { pipeline, release: id, opts } => release::run(&home, pipeline, id.as_deref(), opts),
        Command::Rollback { pipeline, stage, to, opts } => release::rollback(&home, pipeline, stage, to.as_deref(), opts),
        Command::Verify { pipeline, release } => release::verify(&home, pipeline, release),
        Command::Unlock { pipeline, stage } => release::unlock(&home, pipeline, stage),
        Command::Approve(d) => decide::decide(&home, d, ferry_core::approval::Verdict::Approve),
        Command::Reject(d) => decide::decide(&home, d, ferry_core::approval::Verdict::Reject),
        Command::Pending { pipelines } => inspect::pending(&home, pipelines),
        Command::Ui { pipelines, listen, export, link, limit } => {
            ui::ui(&home, pipelines, *listen, export.as_deref().map(|dir| (dir, link.as_deref())), *limit)
        }
        Command::Status { pipeline, release, limit } => inspect::status(&home, pipeline, release.as_deref(), *limit),
        Command::Audit(AuditCommand::Verify { bundle: Some(dir), .. }) => audit::verify_bundle(dir),
        Command::Audit(AuditCommand::Verify { pipeline, bundle: None }) => audit::audit_verify(&home, pipeline.as_deref()),
        Command::Audit(AuditCommand::Show { release, pipeline }) => audit::audit_show(&home, release.as_deref(), pipeline.as_deref()),
        Command::Audit(AuditCommand::Export { release, pipeline, dir }) => audit::audit_export(&home, pipeline, release, dir),
        Command::Trust(TrustCommand::Publish { pipeline, role }) => trust::publish(&home, pipeline, role.as_deref()),
        Command::Trust(TrustCommand::Show { pipeline, history }) => trust::show(&home, pipeline, *history),
        Command::Trust(TrustCommand::Diff { pipeline }) => trust::diff(&home, pipeline),
        Command::Keygen { name, algorithm } => keys::keygen(&home, name, algorithm),
        Command::Key(KeyCommand::Export { name, out, kms }) => keys::export(&home, name, out, kms.as_deref()),
        Command::Completions { shell } => Ok(completions(*shell)),
    }
}

/// Aborts the process right after its `n`-th durable write: what a crash (SIGKILL, power loss)
/// at that step leaves behind, for the crash tests. Only the main thread's writes count (a
/// lease heartbeat's renewals come at times of their own; a crash after one is the same as a
/// crash before the main thread's next write), so each `n` is one crash point.
fn crash_after(n: u64) -> ferry_core::storage::AfterWrite {
    let count = std::sync::atomic::AtomicU64::new(0);
    std::sync::Arc::new(move || {
        if std::thread::current().name() != Some("main") {
            return;
        }
        if count.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= n {
            std::process::abort();
        }
    })
}

/// `ferry completions SHELL`: the script on stdout (the same with `--output json`, as text).
fn completions(shell: clap_complete::Shell) -> Report {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "ferry", &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    Report::ok(script.clone(), serde_json::json!({"shell": shell.to_string(), "script": script}))
}

/// Loads and validates a pipeline; every problem is reported at once.
pub fn load_pipeline(path: &Path) -> Result<Pipeline, Failure> {
    ferry_core::pipeline::load(path).map_err(Failure::Diagnostics)
}

/// A pipeline's backend, connected, and who is acting: on the local backend `FERRY_ACTOR` or
/// the OS user; on AWS the STS caller identity.
pub struct Ctx {
    backend: Connected,
    pub actor: Actor,
}

enum Connected {
    Local(Box<Services>),
    #[cfg(feature = "aws")]
    Aws(Box<aws::AwsBackend>),
}

impl Ctx {
    pub fn connect(home: &Home, p: &Pipeline, purpose: &str) -> Result<Self, Failure> {
        // The webhook URLs and tokens the pipeline names by variable (secrets: only ever in memory).
        let url_vars: Vec<&str> = p
            .notifications
            .iter()
            .filter_map(|n| match &n.target {
                ferry_core::pipeline::ChannelTarget::UrlEnv(v) => Some(v.as_str()),
                ferry_core::pipeline::ChannelTarget::GitHub(g) => match &g.token {
                    ferry_core::pipeline::SecretSource::Env(v) => Some(v.as_str()),
                    ferry_core::pipeline::SecretSource::Ssm(_) => None,
                },
                _ => None,
            })
            .collect();
        let urls = env::vars(&url_vars);
        for url in urls.values() {
            ferry_core::hooks::secret(url);
        }
        let notifier = ferry_local::notify::WebhookNotifier::new(urls);
        Ok(match p.backend {
            Backend::Local => {
                let mut svc = home.services();
                svc.notifier = Box::new(notifier);
                crate::junit::wrap(&mut svc.audit);
                Ctx { backend: Connected::Local(Box::new(svc)), actor: env::actor()? }
            }
            Backend::Aws => aws::connect(home, p, purpose, notifier)?,
        })
    }

    pub fn into_services(self) -> Services {
        match self.backend {
            Connected::Local(s) => *s,
            #[cfg(feature = "aws")]
            Connected::Aws(b) => b.services,
        }
    }

    /// The gatekeeper's own log, on AWS with `aws.gatekeeper`.
    pub fn gatekeeper_log(&self) -> Option<&dyn ferry_core::ports::AuditLog> {
        match &self.backend {
            #[cfg(feature = "aws")]
            Connected::Aws(b) => b.gatekeeper_log.as_deref(),
            Connected::Local(_) => None,
        }
    }

    pub fn svc(&self) -> &Services {
        match &self.backend {
            Connected::Local(s) => s,
            #[cfg(feature = "aws")]
            Connected::Aws(b) => &b.services,
        }
    }

    /// Signs deployment attestations with `signer` (the pipeline's key) from now on.
    pub fn attest_with(&mut self, signer: Box<dyn Signer + Send + Sync>) {
        match &mut self.backend {
            Connected::Local(s) => s.attester = Some(signer),
            #[cfg(feature = "aws")]
            Connected::Aws(b) => b.services.attester = Some(signer),
        }
    }

    /// Approver `name`'s KMS key as a signer, acting as the caller (never through the
    /// orchestrator), if the pipeline names one for them and the backend is AWS.
    #[cfg_attr(not(feature = "aws"), allow(unused_variables))]
    pub fn approver_signer(&self, p: &Pipeline, name: &str) -> Result<Option<Box<dyn Signer>>, Failure> {
        let Some(approver) = p.approver(name) else { return Ok(None) };
        match &self.backend {
            #[cfg(feature = "aws")]
            Connected::Aws(b) => {
                let Some(arn) = &approver.kms_key else { return Ok(None) };
                let pinned = ferry_local::keys::read_public_key(&p.dir().join(&approver.public_key))
                    .map_err(|e| e.at(p.origin(&format!("approvers.{name}.public_key"))))?;
                Ok(Some(Box::new(b.approver_signer(arn, &pinned)?)))
            }
            Connected::Local(_) => Ok(None),
        }
    }

    /// The pipeline's signer, checked against the pinned key so no unverifiable release is made.
    pub fn signer(&self, home: &Home, p: &Pipeline, pinned: &PublicKey) -> Result<Box<dyn Signer + Send + Sync>, Failure> {
        match (&p.signing.key, &self.backend) {
            (SigningKey::Local(name), _) => {
                let key = home.keys().load(name).map_err(|e| e.at(p.origin("signing.key")))?;
                if &key.public_key() != pinned {
                    return Err(Error::invalid(format!("signing key `{name}` does not match the pinned public key `{}`", p.public_key_path().display()))
                        .hint("releases signed with it would never verify; export the right key with `ferry key export` or fix `signing` in the pipeline")
                        .at(p.origin("signing.key"))
                        .into());
                }
                Ok(Box::new(key))
            }
            #[cfg(feature = "aws")]
            (SigningKey::Kms { .. }, Connected::Aws(b)) => Ok(Box::new(b.signer(p, pinned)?)),
            (SigningKey::Kms { .. }, Connected::Local(_)) => Err(Error::invalid("KMS signing needs `backend: aws`").into()),
        }
    }
}

/// Every regular file under `dir`, at any depth, in order.
pub fn files_under(dir: &Path) -> Result<Vec<std::path::PathBuf>, Failure> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io("read", &d, &e))? {
            let entry = entry.map_err(|e| Error::io("read", &d, &e))?;
            let kind = entry.file_type().map_err(|e| Error::io("read", &entry.path(), &e))?;
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

pub fn pinned_key(p: &Pipeline) -> Result<PublicKey, Failure> {
    Ok(ferry_local::keys::read_public_key(&p.public_key_path()).map_err(|e| e.at(p.origin("signing.public_key")))?)
}

pub fn parse_id<T: FromStr<Err = IdError>>(s: &str) -> Result<T, Failure> {
    s.parse().map_err(|e: IdError| Failure::Core(Error::invalid(e.to_string())))
}
