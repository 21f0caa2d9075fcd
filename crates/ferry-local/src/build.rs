//! Runs a pipeline's build command and collects the declared artifacts: each file is hashed
//! by streaming, and every declaration must match at least one file.

use std::path::Path;

use ferry_core::ids::Actor;
use ferry_core::pipeline::{ArtifactSource, Pipeline};
use ferry_core::ports::{CommandSpec, Services, Target};
use ferry_core::release::Found;
use ferry_core::{Error, Result};

/// Runs the build command (if any) in the working directory.
pub fn run_command(pipeline: &Pipeline, svc: &Services, actor: &Actor) -> Result<()> {
    let Some(command) = &pipeline.build.command else { return Ok(()) };
    let mut env = pipeline.build.env.clone();
    env.insert("FERRY_PIPELINE".into(), pipeline.name.to_string());
    env.insert("FERRY_ACCOUNT_ID".into(), pipeline.build.account.to_string());
    let target = Target {
        account: pipeline.build.account.clone(),
        role: pipeline.build.role.clone(),
        region: pipeline.aws.as_ref().map(|a| a.region.clone()),
        session_name: format!("ferry-{}-build", pipeline.name),
        actor: actor.clone(),
        tags: vec![("ferry:pipeline".into(), pipeline.name.to_string())],
        protected: None,
    };
    let spec = CommandSpec {
        run: command.clone(),
        dir: pipeline.working_dir(),
        env,
        timeout: None,
        label: "build".into(),
        target: Some(target),
        clear_env: Vec::new(),
        stop: Some(svc.interrupt.clone()),
    };
    let origin = || pipeline.origin("build.command");
    let out = svc.exec.run(&spec).map_err(|e| e.at(origin()))?;
    if out.interrupted {
        let why = svc.interrupt.reason().unwrap_or_default();
        return Err(Error::failed(format!("build command `{command}` was stopped: {why}")).hint("nothing was stored; build again"));
    }
    if !out.success {
        return Err(Error::failed(format!(
            "build command `{command}` failed with exit code {}",
            out.exit_code.map_or("none".into(), |c| c.to_string())
        ))
        .hint(format!("it ran in `{}`; see its output above", pipeline.working_dir().display()))
        .at(origin()));
    }
    Ok(())
}

fn relative(base: &Path, file: &Path) -> String {
    file.strip_prefix(base).unwrap_or(file).to_string_lossy().replace('\\', "/")
}

/// An artifact is a regular file inside the working directory: a symbolic link (which could
/// make `/etc/passwd` a signed artifact) or a path that resolves outside it is refused.
fn check_inside(name: &str, base: &Path, file: &Path) -> Result<()> {
    let meta = std::fs::symlink_metadata(file).map_err(|e| Error::io("read", file, &e))?;
    if meta.file_type().is_symlink() {
        return Err(Error::invalid(format!("artifact `{name}`: `{}` is a symbolic link; ferry signs regular files only", file.display()))
            .hint("have the build copy the file into its output instead of linking it"));
    }
    if !meta.is_file() {
        return Err(Error::invalid(format!("artifact `{name}`: `{}` is not a regular file", file.display())));
    }
    let root = base.canonicalize().map_err(|e| Error::io("read", base, &e))?;
    let real = file.canonicalize().map_err(|e| Error::io("read", file, &e))?;
    if !real.starts_with(&root) {
        return Err(Error::invalid(format!(
            "artifact `{name}`: `{}` resolves to `{}`, outside the build's working directory `{}`",
            file.display(),
            real.display(),
            root.display()
        ))
        .hint("artifacts must be files the build wrote under its working directory"));
    }
    Ok(())
}

/// Finds and checks every declared artifact (`release::store_artifacts` hashes them while it
/// stores them).
pub fn collect(pipeline: &Pipeline) -> Result<Vec<Found>> {
    let base = pipeline.working_dir();
    let mut out = Vec::new();
    for (i, decl) in pipeline.build.artifacts.iter().enumerate() {
        let files = files_of(&base, decl).map_err(|e| e.at(pipeline.origin(&format!("build.artifacts[{i}]"))))?;
        for (name, file) in files {
            out.push(Found { name, path: relative(&base, &file), file });
        }
    }
    Ok(out)
}

/// The files artifact `decl` names under `base`, each with its name in the release.
fn files_of(base: &Path, decl: &ferry_core::pipeline::ArtifactDecl) -> Result<Vec<(String, std::path::PathBuf)>> {
    Ok(match &decl.source {
        ArtifactSource::Path(p) => {
            let file = base.join(p);
            if std::fs::symlink_metadata(&file).is_err() {
                return Err(Error::failed(format!("artifact `{}`: `{}` was not found after the build", decl.name, file.display()))
                    .hint(format!("the build must write `{p}` under `{}`", base.display())));
            }
            check_inside(&decl.name, base, &file)?;
            vec![(decl.name.clone(), file)]
        }
        ArtifactSource::Glob(g) => {
            let pattern = base.join(g).to_string_lossy().into_owned();
            let paths = glob::glob(&pattern).map_err(|e| Error::invalid(format!("artifact `{}`: bad glob `{g}`: {e}", decl.name)))?;
            // Names are relative to the pattern's literal directory: `dist/config/*.json`
            // yields `config/app.json` for an artifact named `config`.
            let literal: std::path::PathBuf =
                Path::new(g).components().take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '['])).collect();
            let literal = base.join(literal);
            let mut files = Vec::new();
            for p in paths {
                let p = p.map_err(|e| Error::failed(format!("artifact `{}`: {e}", decl.name)))?;
                let link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
                if link || p.is_file() {
                    check_inside(&decl.name, base, &p)?;
                    files.push((format!("{}/{}", decl.name, relative(&literal, &p)), p));
                }
            }
            if files.is_empty() {
                return Err(Error::failed(format!("artifact `{}`: glob `{g}` matched no files in `{}`", decl.name, base.display())));
            }
            files
        }
    })
}
