//! The `ferry` binary: parses the command line, sets up logging on stderr, runs one command
//! and renders its result (human text or `--output json`) with a documented exit code.

mod cli;
mod commands;
mod env;
mod exit;
mod github;
mod junit;
mod output;
mod progress;
mod signals;
mod snippet;

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
        // Each line with its UTC time (RFC 3339): a CI log read later says when, not only what.
        cli::LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let gh = env::github();
    // In CodeBuild, logs are JSON lines unless asked otherwise (CloudWatch Logs queries them).
    let log_format = if env::codebuild() && !env::log_format_chosen() { cli::LogFormat::Json } else { cli::global_log_format(&cli) };
    init_tracing(log_format);
    let in_github = gh.is_some();
    github::commands_to_stderr(cli.global.output == cli::OutputFormat::Json);
    let bars = (std::io::IsTerminal::is_terminal(&std::io::stderr()) && !env::in_ci()).then(progress::Bars::new);
    ferry_core::hooks::install(Box::new(move |a| {
        if in_github {
            github::announce(&a);
        }
        if let Some(b) = &bars {
            b.update(&a);
        }
    }));
    env::announce_secrets();
    let format = cli.global.output;
    let checks = cli.global.junit.as_ref().map(|_| junit::activate());
    let result = commands::dispatch(&cli);
    let exit = match &result {
        Ok(r) => r.exit,
        Err(output::Failure::Core(e)) => exit::Exit::from(e.kind),
        Err(output::Failure::Diagnostics(_)) => exit::Exit::Invalid,
    };
    if let Some(gh) = &gh {
        github::finish(gh, cli.command.name(), &result, exit);
    }
    if let (Some(path), Some(checks)) = (&cli.global.junit, checks) {
        let error = match &result {
            Err(output::Failure::Core(e)) => Some(e.message.clone()),
            Err(output::Failure::Diagnostics(d)) => Some(output::diagnostics_text(d)),
            Ok(_) => None,
        };
        let recorded = checks.lock().map(|c| c.clone()).unwrap_or_default();
        // The report's directory is made if missing (`--junit reports/ferry.xml` in a fresh checkout).
        let made = path.parent().filter(|d| !d.as_os_str().is_empty()).map_or(Ok(()), std::fs::create_dir_all);
        if let Err(e) = made.and_then(|()| std::fs::write(path, junit::render(cli.command.name(), &recorded, error.as_deref()))) {
            tracing::warn!("cannot write the JUnit report `{}`: {e}", path.display());
        }
    }
    let code = match &result {
        Ok(report) => output::report(format, report),
        Err(failure) => output::failure(format, failure),
    };
    ExitCode::from(code as u8)
}
