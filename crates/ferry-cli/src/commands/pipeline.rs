//! `ferry validate`, `ferry schema` and `ferry plan`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ferry_core::Error;
use serde_json::json;

use super::load_pipeline;
use crate::output::{Failure, Report};

/// The files given, or every `pipelines/*.yaml` (sorted).
pub(super) fn pipeline_files(files: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    Ok(if files.is_empty() {
        let mut found: Vec<PathBuf> = std::fs::read_dir("pipelines")
            .map_err(|e| {
                Error::invalid(format!("no files given and cannot read `pipelines/`: {e}")).hint("pass the pipeline files to check")
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        found.sort();
        found
    } else {
        files.to_vec()
    })
}

pub fn validate(files: &[PathBuf]) -> Result<Report, Failure> {
    let files = pipeline_files(files)?;
    let mut diags = Vec::new();
    let mut ok = Vec::new();
    let mut warnings = Vec::new();
    for f in &files {
        match ferry_core::pipeline::load(f) {
            Ok(p) => match pinned_key_problem(&p) {
                Some(PinnedKey::Unreadable(d)) => diags.push(d),
                Some(PinnedKey::Missing(d)) => {
                    warnings.push(d);
                    ok.push(json!({"file": f, "pipeline": p.name, "stages": p.stages.len()}));
                }
                None => ok.push(json!({"file": f, "pipeline": p.name, "stages": p.stages.len()})),
            },
            Err(d) => diags.extend(d),
        }
    }
    for w in &warnings {
        crate::output::note(&format!("warning: {w}"));
    }
    if !diags.is_empty() {
        return Err(Failure::Diagnostics(diags));
    }
    let human = files.iter().map(|f| format!("ok: {}", f.display())).collect::<Vec<_>>().join("\n");
    Ok(Report::ok(human, json!({"valid": true, "files": ok, "warnings": warnings})))
}

/// What is wrong with the public key a valid pipeline pins, if anything.
enum PinnedKey {
    /// Not there yet (a new pipeline, before `ferry key export`): a warning.
    Missing(ferry_core::yaml::Diagnostic),
    /// There, but not a public key ferry can read: an error, nothing would ever verify.
    Unreadable(ferry_core::yaml::Diagnostic),
}

fn pinned_key_problem(p: &ferry_core::pipeline::Pipeline) -> Option<PinnedKey> {
    let path = p.public_key_path();
    let at = p.origin("signing.public_key");
    let diag = |message: String, hint: String| ferry_core::yaml::Diagnostic {
        file: p.file.display().to_string(),
        line: at.as_ref().map_or(0, |o| o.line),
        column: at.as_ref().map_or(0, |o| o.column),
        field: "signing.public_key".into(),
        message,
        hint: Some(hint),
    };
    let shown = p.signing.public_key.display();
    match std::fs::read_to_string(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(PinnedKey::Missing(diag(
            format!("the pinned public key `{shown}` does not exist yet: no release can be verified until it does"),
            format!("write it with `{}` and commit it", p.key_export_command()),
        ))),
        Err(e) => Some(PinnedKey::Unreadable(diag(
            format!("the pinned public key `{shown}` cannot be read: {e}"),
            "check the path and its permissions".into(),
        ))),
        Ok(pem) => ferry_core::keys::PublicKey::from_pem(&pem).err().map(|e| {
            PinnedKey::Unreadable(diag(
                format!("`{shown}` is not a public key ferry can read: {}", e.message),
                format!("export it again with `{}`", p.key_export_command()),
            ))
        }),
    }
}

pub fn schema(markdown: bool) -> Report {
    let s = ferry_core::pipeline::schema::pipeline_schema();
    if markdown {
        let table = ferry_core::pipeline::schema::reference_markdown();
        return Report::ok(table.clone(), serde_json::json!({"markdown": table}));
    }
    Report::ok(serde_json::to_string_pretty(&s).unwrap_or_default(), s)
}

/// The CloudFormation templates, built into the binary so `ferry bootstrap` works anywhere.
pub const TEMPLATES: [(&str, &str); 6] = [
    ("artifacts.yaml", include_str!("../../../../bootstrap/artifacts.yaml")),
    ("security.yaml", include_str!("../../../../bootstrap/security.yaml")),
    ("gatekeeper.yaml", include_str!("../../../../bootstrap/gatekeeper.yaml")),
    ("member-role.yaml", include_str!("../../../../bootstrap/member-role.yaml")),
    ("orchestrator.yaml", include_str!("../../../../bootstrap/orchestrator.yaml")),
    ("approver-key.yaml", include_str!("../../../../bootstrap/approver-key.yaml")),
];

/// Writes every template into `dir` (each through a temporary file, so none is half-written).
fn write_templates(dir: &Path) -> Result<(), Failure> {
    let failed = |e: std::io::Error| -> Failure {
        ferry_core::Error::invalid(format!("cannot write the templates into `{}`: {e}", dir.display()))
            .hint("pick a directory you can write, e.g. `--write bootstrap`")
            .into()
    };
    std::fs::create_dir_all(dir).map_err(failed)?;
    for (name, text) in TEMPLATES {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, dir.join(name))).map_err(failed)?;
    }
    Ok(())
}

pub fn bootstrap(path: &Path, write: Option<&Path>) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let mut stacks = ferry_core::bootstrap::plan(&p)?;
    let dir = write.map_or_else(|| "bootstrap".to_owned(), |d| d.display().to_string());
    for s in &mut stacks {
        let name = s.template.rsplit('/').next().unwrap_or_default().to_owned();
        s.template = format!("{}/{name}", dir.trim_end_matches('/'));
    }
    if let Some(d) = write {
        write_templates(d)?;
    }
    let region = p.aws.as_ref().map(|a| a.region.to_string()).unwrap_or_default();
    let mut h = format!("bootstrap `{}`: {} stacks; deploy each with credentials of its account\n", p.name, stacks.len());
    match write {
        Some(d) => {
            let _ = writeln!(h, "wrote the templates into `{}`", d.display());
        }
        None => {
            let _ = writeln!(
                h,
                "the templates: `ferry bootstrap {} --write bootstrap` writes them where these commands read them",
                p.file.display()
            );
        }
    }
    if p.aws.as_ref().is_some_and(|a| a.external_id.is_none()) {
        let _ = writeln!(h, "note: the pipeline sets no `aws.external_id`; these use `ferry-{}`. Set it in the pipeline too.", p.name);
    }
    for (i, s) in stacks.iter().enumerate() {
        let _ = writeln!(h, "\n{}. account `{}` ({}): stack `{}` from {}", i + 1, s.account_alias, s.account, s.stack, s.template);
        for (k, v) in &s.parameters {
            let _ = writeln!(h, "     {k} = {v}");
        }
        for c in &s.prepare {
            let _ = writeln!(h, "   {c}");
        }
        let _ = writeln!(h, "   {}", s.command(&region));
    }
    let _ = writeln!(
        h,
        "\nthen: {} (it writes the pinned `signing.public_key`), and `ferry doctor {}`",
        p.key_export_command(),
        p.file.display()
    );
    let json = json!({"pipeline": p.name, "region": region, "stacks": stacks});
    Ok(Report::ok(h, json))
}

pub fn plan(path: &Path) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let plan = ferry_core::plan::plan(&p);
    let mut h = String::new();
    let backend = ferry_core::wire_name(&plan.backend);
    let _ = writeln!(h, "pipeline `{}` (backend {backend})", plan.pipeline);
    let b = &plan.build;
    let _ = writeln!(h, "build in `{}` ({}), signed with {}, verified with `{}`", b.account, b.account_id, b.signing_key, b.public_key);
    if let Some(c) = &b.command {
        let _ = writeln!(h, "  run: {c}   (in {})", b.working_dir);
    }
    for a in &b.artifacts {
        let _ = writeln!(h, "  artifact {a}");
    }
    for (i, s) in plan.stages.iter().enumerate() {
        let region = s.region.as_deref().map(|r| format!(", {r}")).unwrap_or_default();
        let _ = writeln!(h, "{}. stage `{}` in `{}` ({}{region})", i + 1, s.name, s.account, s.account_id);
        for step in &s.steps {
            let _ = writeln!(h, "     - {step}");
        }
    }
    let json = serde_json::to_value(&plan).unwrap_or_default();
    Ok(Report::ok(h, json))
}
