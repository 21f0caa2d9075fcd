//! Command handlers: each turns parsed arguments into calls on ferry-core and ferry-local and
//! returns a `Report`. Shared helpers load pipelines, keys and identifiers.

mod decide;
mod inspect;
mod keys;
mod pipeline;
mod release;

use std::path::Path;
use std::str::FromStr;

use ferry_core::Error;
use ferry_core::ids::IdError;
use ferry_core::keys::PublicKey;
use ferry_core::pipeline::{Backend, Pipeline};
use ferry_local::Home;

use crate::cli::{AuditCommand, Cli, Command, KeyCommand};
use crate::output::{Failure, Report};

pub fn dispatch(cli: &Cli) -> Result<Report, Failure> {
    // Absolute, because commands and actions run in other directories.
    let home = Home::new(std::path::absolute(&cli.global.home).unwrap_or_else(|_| cli.global.home.clone()));
    match &cli.command {
        Command::Validate { files } => pipeline::validate(files),
        Command::Schema => Ok(pipeline::schema()),
        Command::Plan { pipeline } => pipeline::plan(pipeline),
        Command::Build { pipeline } => release::build(&home, pipeline),
        Command::Promote { pipeline, release, to, opts } => release::promote(&home, pipeline, release, to, opts),
        Command::Run { pipeline, opts } => release::run(&home, pipeline, opts),
        Command::Verify { pipeline, release } => release::verify(&home, pipeline, release),
        Command::Unlock { pipeline, stage } => release::unlock(&home, pipeline, stage),
        Command::Approve(d) => decide::decide(&home, d, ferry_core::approval::Verdict::Approve),
        Command::Reject(d) => decide::decide(&home, d, ferry_core::approval::Verdict::Reject),
        Command::Status { pipeline, release } => inspect::status(&home, pipeline, release.as_deref()),
        Command::Audit(AuditCommand::Verify) => inspect::audit_verify(&home),
        Command::Audit(AuditCommand::Show { release }) => inspect::audit_show(&home, release.as_deref()),
        Command::Keygen { name, algorithm } => keys::keygen(&home, name, algorithm),
        Command::Key(KeyCommand::Export { name, out }) => keys::export(&home, name, out),
    }
}

/// Loads and validates a pipeline; every problem is reported at once.
pub fn load_pipeline(path: &Path) -> Result<Pipeline, Failure> {
    let p = ferry_core::pipeline::load(path).map_err(Failure::Diagnostics)?;
    if p.backend == Backend::Aws {
        return Err(Error::invalid(format!("`{}` uses `backend: aws`, which this build of ferry does not include yet", path.display()))
            .hint("use `backend: local` to run on the embedded backend")
            .into());
    }
    Ok(p)
}

pub fn pinned_key(p: &Pipeline) -> Result<PublicKey, Failure> {
    Ok(ferry_local::keys::read_public_key(&p.public_key_path())?)
}

pub fn parse_id<T: FromStr<Err = IdError>>(s: &str) -> Result<T, Failure> {
    s.parse().map_err(|e: IdError| Failure::Core(Error::invalid(e.to_string())))
}
