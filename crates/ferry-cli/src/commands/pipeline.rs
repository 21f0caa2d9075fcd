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
    for f in &files {
        match ferry_core::pipeline::load(f) {
            Ok(p) => ok.push(json!({"file": f, "pipeline": p.name, "stages": p.stages.len()})),
            Err(d) => diags.extend(d),
        }
    }
    if !diags.is_empty() {
        return Err(Failure::Diagnostics(diags));
    }
    let human = files.iter().map(|f| format!("ok: {}", f.display())).collect::<Vec<_>>().join("\n");
    Ok(Report::ok(human, json!({"valid": true, "files": ok})))
}

pub fn schema(markdown: bool) -> Report {
    let s = ferry_core::pipeline::schema::pipeline_schema();
    if markdown {
        let table = ferry_core::pipeline::schema::reference_markdown();
        return Report::ok(table.clone(), serde_json::json!({"markdown": table}));
    }
    Report::ok(serde_json::to_string_pretty(&s).unwrap_or_default(), s)
}

pub fn bootstrap(path: &Path) -> Result<Report, Failure> {
    let p = load_pipeline(path)?;
    let stacks = ferry_core::bootstrap::plan(&p)?;
    let region = p.aws.as_ref().map(|a| a.region.to_string()).unwrap_or_default();
    let mut h = format!("bootstrap `{}`: {} stacks; deploy each with credentials of its account\n", p.name, stacks.len());
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
