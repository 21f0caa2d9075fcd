//! The README's promise: two set-up commands, the first of which runs the hello pipeline on
//! the local backend and stops at prod's approval with the approve command printed.

use std::process::Command;

use crate::support::{FERRY, repo_root};

/// The commands between the README's `setup-commands` markers, comments stripped.
fn readme_setup_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let start = readme.find("<!-- setup-commands -->").expect("README has a setup-commands block");
    let end = readme.find("<!-- /setup-commands -->").expect("README closes the setup-commands block");
    readme[start..end]
        .lines()
        .filter(|l| !l.starts_with("```") && !l.starts_with("<!--"))
        .map(|l| l.split('#').next().unwrap_or("").trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn readme_has_exactly_two_setup_commands_try_and_test() {
    assert_eq!(readme_setup_commands(), vec!["bash scripts/try-local.sh".to_owned(), "bash scripts/test.sh".to_owned()]);
    let ci = std::fs::read_to_string(repo_root().join(".ci/run")).expect(".ci/run");
    assert!(ci.contains("scripts/test.sh"), ".ci/run runs the README's test command");
}

#[test]
fn try_local_runs_hello_and_stops_at_prod_approval_with_the_command_printed() {
    let root = repo_root();
    let tmp = tempfile::tempdir().unwrap();
    for f in ["scripts/try-local.sh", "pipelines/hello.yaml", "examples/hello/build.sh", "examples/hello/deploy.sh"] {
        let dest = tmp.path().join(f);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(root.join(f), dest).unwrap();
    }
    let out = Command::new("bash")
        .arg("scripts/try-local.sh")
        .current_dir(tmp.path())
        .env("FERRY_BIN", FERRY)
        .env("FERRY_ACTOR", "newcomer")
        .env_remove("FERRY_HOME")
        .env("FERRY_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "try-local failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("promoted r"), "staging deployed:\n{stdout}");
    let approve = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("approve with: ferry approve pipelines/hello.yaml --release r"))
        .unwrap_or_else(|| panic!("no approve command in:\n{stdout}"));
    assert!(approve.ends_with("--stage prod"), "{approve}");
    // Everything it made lives in the project's .ferry and the exported pinned key.
    assert!(tmp.path().join(".ferry/audit").is_dir());
    assert!(tmp.path().join("pipelines/keys/hello.pem").is_file());
    let deployed = std::fs::read_dir(tmp.path().join(".ferry/accounts")).unwrap().count();
    assert_eq!(deployed, 1, "only the staging account received a deploy");
    // The three commands it prints, run as printed, take the release to prod.
    let next: Vec<&str> = stdout.lines().skip_while(|l| !l.starts_with("Approve it as two people")).skip(1).map(str::trim).collect();
    assert_eq!(next.len(), 3, "{stdout}");
    for line in &next {
        let run = Command::new("bash")
            .args(["-c", line])
            .current_dir(tmp.path())
            .env_remove("FERRY_HOME")
            .env("FERRY_LOG", "warn")
            .output()
            .unwrap();
        assert!(run.status.success(), "`{line}` failed:\n{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    }
    let deployed = std::fs::read_dir(tmp.path().join(".ferry/accounts")).unwrap().count();
    assert_eq!(deployed, 2, "prod received the release too");
}
