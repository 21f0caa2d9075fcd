//! Native behaviour in GitHub Actions (`GITHUB_ACTIONS=true`): every secret is masked with
//! `::add-mask::` the moment ferry learns it (before anything could print it), a child's output
//! sits in a `::group::`, validation errors become `::error file=…,line=…,col=…::` annotations,
//! step outputs go to `$GITHUB_OUTPUT` (with random multi-line delimiters), and a markdown job
//! summary to `$GITHUB_STEP_SUMMARY`. Workflow commands are written to stdout, where the
//! runner reads them — except with `--output json`, where stdout is the JSON alone and the
//! commands go to stderr (the runner reads those too).

#![allow(clippy::print_stdout)]

use std::fmt::Write as _;
use std::hash::{BuildHasher as _, Hasher as _};
use std::io::Write as _;

use ferry_core::hooks::Announce;
use ferry_core::yaml::Diagnostic;
use serde_json::Value;

use crate::env::GitHub;
use crate::exit::Exit;
use crate::output::{Failure, Report};

/// `%`, CR and LF escaped, as workflow command data must be.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A")
}

/// Property values additionally escape `:` and `,`.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

static TO_STDERR: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sends workflow commands to stderr (`--output json`: stdout holds the result alone).
pub fn commands_to_stderr(on: bool) {
    TO_STDERR.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Writes workflow commands where the runner reads them (a closed stream is not an error).
fn emit(text: &str) {
    if TO_STDERR.load(std::sync::atomic::Ordering::Relaxed) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
    } else {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    }
}

/// Masks and groups: the workflow command for an announcement, written at once.
pub fn announce(a: &Announce<'_>) {
    let line = match a {
        // A multi-line secret is masked line by line (GitHub masks single lines).
        Announce::Secret(s) => s.lines().filter(|l| !l.trim().is_empty()).map(|l| format!("::add-mask::{l}\n")).collect::<String>(),
        Announce::BeginGroup(label) => format!("::group::{}\n", escape_data(label)),
        Announce::EndGroup => "::endgroup::\n".to_owned(),
        Announce::Progress { .. } | Announce::ProgressDone { .. } => return,
    };
    emit(&line);
}

/// One `::error` annotation per validation problem, pointing at the file, line and column.
pub fn annotate(diags: &[Diagnostic]) {
    for d in diags {
        let message = match &d.hint {
            Some(h) => format!("{}: {} ({h})", d.field, d.message),
            None => format!("{}: {}", d.field, d.message),
        };
        emit(&format!(
            "::error file={},line={},col={},title=ferry validate::{}\n",
            escape_property(&d.file),
            d.line,
            d.column,
            escape_data(&message)
        ));
    }
}

/// A delimiter no value contains: 128 random bits (the standard library's per-process keys).
fn delimiter(value: &str) -> String {
    loop {
        let random = || std::collections::hash_map::RandomState::new().build_hasher().finish();
        let d = format!("ghadelimiter_{:016x}{:016x}", random(), random());
        if !value.contains(&d) {
            return d;
        }
    }
}

fn append(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(text.as_bytes())
}

/// The step outputs of a result: release, stage, status, approval-needed (and the approve
/// command when one is needed).
pub fn outputs(result: &Result<Report, Failure>, exit: Exit) -> Vec<(&'static str, String)> {
    let json = match result {
        Ok(r) => r.json.clone(),
        Err(_) => Value::Null,
    };
    // `ferry run` reports every stage it reached; the last one is where it stopped.
    let last = json["stages"].as_array().and_then(|s| s.last()).cloned().unwrap_or(Value::Null);
    let outcome = if json["outcome"].is_string() { &json } else { &last };
    let mut out = Vec::new();
    if let Some(r) = json["release"].as_str().or_else(|| outcome["release"].as_str()) {
        out.push(("release", r.to_owned()));
    }
    if let Some(s) = outcome["stage"].as_str() {
        out.push(("stage", s.to_owned()));
    }
    let status = match (exit, outcome["outcome"].as_str()) {
        (_, Some(o)) => o.to_owned(),
        (Exit::Success, None) => "ok".to_owned(),
        (Exit::Invalid, None) => "invalid".to_owned(),
        (Exit::VerificationFailed, None) => "verification_failed".to_owned(),
        (Exit::Busy, None) => "busy".to_owned(),
        (_, None) => "failed".to_owned(),
    };
    out.push(("status", status));
    let waiting = outcome["outcome"] == "awaiting_approval";
    out.push(("approval-needed", waiting.to_string()));
    if let Some(cmd) = outcome["approve_command"].as_str() {
        out.push(("approve-command", cmd.to_owned()));
    }
    out
}

/// `NAME<<DELIM` … `DELIM` for each output.
pub fn output_file_text(outputs: &[(&str, String)]) -> String {
    let mut text = String::new();
    for (name, value) in outputs {
        let d = delimiter(value);
        let _ = write!(text, "{name}<<{d}\n{value}\n{d}\n");
    }
    text
}

fn stage_line(s: &Value) -> String {
    let stage = s["stage"].as_str().unwrap_or("?");
    let detail = match s["outcome"].as_str().unwrap_or("?") {
        "deployed" => format!("✅ deployed ({} action(s))", s["actions"]),
        "already_deployed" => "✅ already deployed".to_owned(),
        "awaiting_approval" => {
            let have = s["have"].as_array().map(Vec::len).unwrap_or(0);
            let who = s["have"].as_array().map(|h| h.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default();
            let who = if who.is_empty() { String::new() } else { format!(": {who}") };
            format!("⏳ awaiting approval ({have}/{}{who})", s["need"])
        }
        "blocked" => format!("⏸ blocked: {}", s["reason"].as_str().unwrap_or("")),
        "post_deploy_gate_failed" => format!("❌ post-deploy gate failed: {}", s["gate"].as_str().unwrap_or("")),
        other => other.to_owned(),
    };
    format!("| `{stage}` | {} |\n", detail.replace('|', "\\|"))
}

/// The job summary: release, digests, signature, stages, approvals, how to approve.
pub fn summary(command: &str, result: &Result<Report, Failure>) -> String {
    let mut md = String::new();
    let json = match result {
        Ok(r) => &r.json,
        Err(Failure::Core(e)) => {
            let _ = writeln!(md, "### ❌ ferry {command} failed\n\n{}\n", e.message.replace('\n', " "));
            if let Some(o) = &e.origin {
                let _ = writeln!(md, "from `{}` at `{}:{}`\n", o.field, o.file, o.line);
            }
            for h in &e.hints {
                let _ = writeln!(md, "> {h}");
            }
            return md;
        }
        Err(Failure::Diagnostics(d)) => {
            let _ = writeln!(md, "### ❌ ferry {command}: {} problem(s) in the pipeline\n", d.len());
            for x in d {
                let _ = writeln!(md, "- `{}:{}:{}` {}: {}", x.file, x.line, x.column, x.field, x.message);
            }
            return md;
        }
    };
    // `ferry ui --export`: where the web view is, linked when it has an address.
    if let Some(dir) = json["exported"].as_str() {
        let _ = writeln!(md, "### ferry web view\n");
        match json["link"].as_str() {
            Some(url) => {
                let _ = writeln!(md, "[Open the web view]({url}) — {} pages exported from `{dir}`\n", json["pages"]);
            }
            None => {
                let _ = writeln!(md, "{} pages exported to `{dir}`: open `{dir}/index.html`\n", json["pages"]);
            }
        }
        return md;
    }
    let release = json["release"].as_str().or_else(|| json["outcome"].is_string().then(|| json["release"].as_str()).flatten());
    let _ = writeln!(md, "### ferry {command}{}\n", release.map(|r| format!(": release `{r}`")).unwrap_or_default());
    if let Some(d) = json["manifest_sha256"].as_str() {
        let _ = writeln!(md, "| | |\n|---|---|\n| Manifest sha256 | `{d}` |");
        let signature = json["keyid"]
            .as_str()
            .map_or_else(|| "✅ verified against the pinned key before promoting".to_owned(), |k| format!("✅ signed; key id `{k}`"));
        let _ = writeln!(md, "| Signature | {signature} |\n");
    }
    let artifacts = json["manifest"]["artifacts"].as_array().or_else(|| json["artifacts"].as_array());
    if let Some(a) = artifacts.filter(|a| !a.is_empty()) {
        md.push_str("| Artifact | sha256 | Size |\n|---|---|---|\n");
        for x in a {
            let _ = writeln!(md, "| `{}` | `{}` | {} |", x["name"].as_str().unwrap_or(""), x["sha256"].as_str().unwrap_or(""), x["size"]);
        }
        md.push('\n');
    }
    let images = json["manifest"]["images"].as_array().or_else(|| json["images"].as_array());
    if let Some(i) = images.filter(|i| !i.is_empty()) {
        md.push_str("| Image | Digest |\n|---|---|\n");
        for x in i {
            let _ = writeln!(
                md,
                "| `{}` | `{}@sha256:{}` |",
                x["name"].as_str().unwrap_or(""),
                x["repository"].as_str().unwrap_or(""),
                x["digest"].as_str().unwrap_or("")
            );
        }
        md.push('\n');
    }
    let stages: Vec<Value> = match (json["stages"].as_array(), json["outcome"].is_string()) {
        (Some(s), _) => s.clone(),
        (None, true) => vec![json.clone()],
        _ => Vec::new(),
    };
    if !stages.is_empty() {
        md.push_str("| Stage | Status |\n|---|---|\n");
        for s in &stages {
            md.push_str(&stage_line(s));
        }
        md.push('\n');
    }
    for s in &stages {
        if let Some(cmd) = s["approve_command"].as_str() {
            let _ = writeln!(
                md,
                "**Approval needed** for `{}` — each approver runs:\n\n```sh\n{cmd}\n```\n",
                s["stage"].as_str().unwrap_or("")
            );
        }
    }
    md
}

/// The annotation that says how the command ended, unless it simply succeeded: an error for
/// every failure exit code (with ferry's message and hints, on the pipeline's line when a
/// setting is what failed), a notice for a promotion that
/// waits (exit 3 is not a failure, but it must not look like a silent success either).
pub fn ending(command: &str, result: &Result<Report, Failure>, exit: Exit) -> Option<String> {
    let code = exit as u8;
    match result {
        Err(Failure::Diagnostics(_)) => None,
        Err(Failure::Core(e)) => {
            // On the pipeline's line in the PR's files view when a setting is what failed.
            let at =
                e.origin.as_ref().map_or(String::new(), |o| format!("file={},line={},col={},", escape_property(&o.file), o.line, o.column));
            Some(format!("::error {at}title=ferry {command} failed (exit {code})::{}\n", escape_data(&e.to_string())))
        }
        Ok(_) if exit == Exit::Success => None,
        Ok(r) if exit == Exit::AwaitingApproval => {
            let outs = outputs(result, exit);
            let get = |k: &str| outs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
            let what = match (get("stage"), get("status")) {
                (Some(stage), Some("awaiting_approval")) => format!("`{stage}` waits for approval"),
                (Some(stage), Some(status)) => format!("`{stage}` waits ({status})"),
                _ => "waiting".to_owned(),
            };
            let next = get("approve-command")
                .map(|c| format!(": {c}"))
                .unwrap_or_else(|| r.human.lines().last().map(|l| format!(": {}", l.trim())).unwrap_or_default());
            Some(format!("::notice title=ferry {command}: waiting::{}\n", escape_data(&format!("{what}{next}"))))
        }
        Ok(r) => {
            let first = r.human.lines().find(|l| !l.trim().is_empty()).unwrap_or("see the log");
            Some(format!("::error title=ferry {command} failed (exit {code})::{}\n", escape_data(first.trim())))
        }
    }
}

/// Writes the step outputs and the job summary of this run.
pub fn finish(gh: &GitHub, command: &str, result: &Result<Report, Failure>, exit: Exit) {
    if let (Err(Failure::Diagnostics(d)), _) = (result, exit) {
        annotate(d);
    }
    if let Some(line) = ending(command, result, exit) {
        emit(&line);
    }
    if let Some(path) = &gh.output
        && let Err(e) = append(path, &output_file_text(&outputs(result, exit)))
    {
        tracing::warn!("cannot write the step outputs to `{}`: {e}", path.display());
    }
    if let Some(path) = &gh.summary
        && let Err(e) = append(path, &summary(command, result))
    {
        tracing::warn!("cannot write the job summary to `{}`: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_command_values_are_escaped() {
        assert_eq!(escape_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn output_delimiters_are_random_and_never_inside_the_value() {
        let text = output_file_text(&[("release", "r1".into()), ("approve-command", "ferry approve p.yaml".into())]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("release<<ghadelimiter_") && lines[1] == "r1" && lines[2] == &lines[0]["release<<".len()..]);
        assert_ne!(&lines[0]["release<<".len()..], &lines[3]["approve-command<<".len()..], "each output has its own delimiter");
    }
}
