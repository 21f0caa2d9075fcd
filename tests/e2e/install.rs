//! Installing ferry in GitHub Actions, through the action's own "Install ferry" step: a pinned
//! release version is downloaded (here from a local "release": the built binary, archived as
//! the publish workflow archives it) and runs only if its sha256 matches the one pinned in
//! the action's `dist/releases.sha256`; without a version, a cached build is reused.

use std::path::Path;
use std::process::Command;

use ferry_core::yaml::{Kind, parse};

use crate::support::{FERRY, Run, repo_root, yaml_field as field};

/// The `run:` script of the action's step named `name`.
pub(crate) fn step_script(name: &str) -> String {
    let doc = parse("action.yml", &std::fs::read_to_string(repo_root().join("action.yml")).unwrap()).unwrap();
    let Kind::Seq(steps) = field(&field(&doc, "runs").unwrap(), "steps").unwrap().kind else { panic!("steps") };
    let step = steps.iter().find(|s| field(s, "name").and_then(|n| n.as_scalar().map(str::to_owned)).as_deref() == Some(name)).unwrap();
    field(step, "run").unwrap().as_scalar().unwrap().to_owned()
}

fn target() -> &'static str {
    match std::env::consts::ARCH {
        "aarch64" => "aarch64-unknown-linux-gnu",
        _ => "x86_64-unknown-linux-gnu",
    }
}

fn sha256(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A released version's downloads under `releases/v0.9.1/`, as publish.yml lays them out.
fn local_release(dir: &Path, version: &str) -> std::path::PathBuf {
    let at = dir.join(format!("releases/v{version}"));
    std::fs::create_dir_all(&at).unwrap();
    let staging = dir.join("staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::copy(FERRY, staging.join("ferry")).unwrap();
    let archive = at.join(format!("ferry-{}.tar.gz", target()));
    let ok = Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(&staging).arg("ferry").status().unwrap();
    assert!(ok.success());
    archive
}

/// The install step under bash, as the runner runs it, with this action checkout at
/// `action_path` (whose `dist/releases.sha256` pins `pins`).
fn install(dir: &Path, version: &str, pins: &str, extra: &[(&str, &str)]) -> Run {
    let action_path = dir.join("action");
    std::fs::create_dir_all(action_path.join("dist")).unwrap();
    std::fs::write(action_path.join("dist/releases.sha256"), pins).unwrap();
    let runner_temp = dir.join("runner-temp");
    std::fs::create_dir_all(&runner_temp).unwrap();
    let mut c = Command::new("bash");
    c.args(["-c", &step_script("Install ferry")])
        .env("RUNNER_TEMP", &runner_temp)
        .env("FERRY_ACTION_PATH", &action_path)
        .env("FERRY_VERSION", version)
        .env("FERRY_DOWNLOAD_BASE", format!("file://{}", dir.join("releases").display()))
        .current_dir(dir);
    for (k, v) in extra {
        c.env(k, v);
    }
    c.output().unwrap().into()
}

#[test]
fn a_pinned_release_is_downloaded_checked_against_its_sha256_and_installed() {
    let dir = tempfile::tempdir().unwrap();
    let archive = local_release(dir.path(), "0.9.1");
    let pins = format!("# comment\n0.9.0 {} {}\n0.9.1 {} {}\n", target(), "0".repeat(64), target(), sha256(&archive));
    let run = install(dir.path(), "0.9.1", &pins, &[]).expect(0);
    assert!(run.stdout.contains(&format!("ferry {}", env!("CARGO_PKG_VERSION"))), "the installed ferry runs: {}", run.stdout);
    let installed = dir.path().join("runner-temp/ferry-bin/ferry");
    assert_eq!(sha256(&installed), sha256(Path::new(FERRY)), "exactly the released binary");
}

#[test]
fn a_download_that_does_not_match_its_pinned_sha256_is_refused_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let archive = local_release(dir.path(), "0.9.1");
    let pinned = sha256(&archive);
    // The archive the mirror serves is not the one that was pinned.
    std::fs::write(&archive, b"#!/bin/sh\necho pwned > pwned.txt\n").unwrap();
    let run = install(dir.path(), "0.9.1", &format!("0.9.1 {} {pinned}\n", target()), &[]).expect(1);
    assert!(
        run.stdout.contains("::error title=ferry::the downloaded ferry 0.9.1") && run.stdout.contains("does not match its pinned sha256"),
        "{}",
        run.stdout
    );
    assert!(!dir.path().join("runner-temp/ferry-bin/ferry").exists(), "nothing was installed");
    assert!(!dir.path().join("pwned.txt").exists());
    // A version nobody pinned is refused before anything is downloaded.
    let unpinned = install(dir.path(), "0.9.2", "", &[]).expect(1);
    assert!(unpinned.stdout.contains("::error title=ferry::no pinned sha256 for ferry 0.9.2"), "{}", unpinned.stdout);
}

#[test]
fn without_a_version_a_cached_build_is_reused_and_cargo_is_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let cached = dir.path().join("runner-temp/ferry-cache/bin");
    std::fs::create_dir_all(&cached).unwrap();
    std::fs::copy(FERRY, cached.join("ferry")).unwrap();
    // No cargo on PATH: a cache hit must not need it.
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for tool in ["bash", "cp", "mkdir"] {
        let found = ["/usr/bin", "/bin"].iter().map(|d| Path::new(d).join(tool)).find(|p| p.exists()).unwrap();
        std::os::unix::fs::symlink(found, bin.join(tool)).unwrap();
    }
    let run = install(dir.path(), "", "", &[("PATH", bin.to_str().unwrap())]).expect(0);
    assert!(run.stdout.contains("ferry from the build cache"), "{}{}", run.stdout, run.stderr);
    assert!(dir.path().join("runner-temp/ferry-bin/ferry").exists());
}
