//! The `ferry` binary: parses the command line, sets up logging on stderr, runs one command
//! and renders its result (human text or `--output json`) with a documented exit code.

mod cli;
mod commands;
mod env;
mod exit;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn init_tracing(format: cli::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG").unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.without_time().init(),
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.global.log_format);
    let format = cli.global.output;
    let code = match commands::dispatch(&cli) {
        Ok(report) => output::report(format, &report),
        Err(failure) => output::failure(format, &failure),
    };
    ExitCode::from(code as u8)
}
