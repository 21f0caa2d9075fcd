//! Rendering: results to stdout (human text or JSON), errors and diagnostics to stderr (and
//! as JSON on stdout with `--output json`), each mapped to its exit code.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use ferry_core::yaml::Diagnostic;
use serde_json::{Value, json};

use crate::cli::OutputFormat;
use crate::exit::Exit;

/// A command's result: what to print for people, what to print for machines, and the code.
pub struct Report {
    pub human: String,
    pub json: Value,
    pub exit: Exit,
}

impl Report {
    pub fn ok(human: impl Into<String>, json: Value) -> Self {
        Self { human: human.into(), json, exit: Exit::Success }
    }
}

pub enum Failure {
    Core(ferry_core::Error),
    Diagnostics(Vec<Diagnostic>),
}

impl From<ferry_core::Error> for Failure {
    fn from(e: ferry_core::Error) -> Self {
        Self::Core(e)
    }
}

/// Writes the result to stdout. A reader that went away (`ferry … | head`) is not a failure of
/// the command: the rest is dropped quietly.
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}").and_then(|()| out.flush());
}

pub fn report(format: OutputFormat, r: &Report) -> Exit {
    match format {
        OutputFormat::Human => {
            if !r.human.is_empty() {
                print_out(r.human.trim_end());
            }
        }
        OutputFormat::Json => print_out(&serde_json::to_string_pretty(&versioned(r.json.clone())).unwrap_or_default()),
    }
    r.exit
}

/// The version of `--output json` shapes: every object result carries it as `output_version`;
/// fields are only ever added within a version.
pub const OUTPUT_VERSION: u32 = 1;

fn versioned(mut v: Value) -> Value {
    if let Value::Object(m) = &mut v {
        m.insert("output_version".into(), json!(OUTPUT_VERSION));
    }
    v
}

/// Diagnostics with their source snippets, uncoloured (reports, summaries).
pub fn diagnostics_text(diags: &[Diagnostic]) -> String {
    crate::snippet::render(diags, crate::snippet::Style::new(false))
}

/// Colour on stderr when it is a terminal (and `NO_COLOR`/`FERRY_COLOR` allow).
fn stderr_style() -> crate::snippet::Style {
    crate::snippet::Style::new(crate::env::colour(std::io::IsTerminal::is_terminal(&std::io::stderr())))
}

pub fn failure(format: OutputFormat, f: &Failure) -> Exit {
    let (exit, text, value) = match f {
        Failure::Core(e) => {
            let mut error = json!({"kind": e.kind, "message": e.message, "hints": e.hints});
            if let Some(o) = &e.origin {
                error["origin"] = json!(o);
            }
            (Exit::from(e.kind), crate::snippet::error(e, stderr_style()), json!({ "error": error }))
        }
        Failure::Diagnostics(d) => (Exit::Invalid, crate::snippet::render(d, stderr_style()), json!({"valid": false, "diagnostics": d})),
    };
    eprintln!("{}", text.trim_end());
    if format == OutputFormat::Json {
        let mut value = versioned(value);
        value["exit_code"] = json!(exit as u8);
        print_out(&serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    exit
}

/// A line on stdout before the command's result, at once (`ferry ui`'s address).
pub fn announce(text: &str) {
    print_out(text.trim_end());
}

/// Text for the person at the terminal (stderr), outside the command's result.
pub fn note(text: &str) {
    eprintln!("{}", text.trim_end());
}

/// Asks a question on stderr and reads one line of the answer from stdin; `None` when stdin
/// is not a terminal (nobody can answer).
pub fn ask(question: &str) -> Option<String> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).ok()?;
    Some(line.trim().to_owned())
}
