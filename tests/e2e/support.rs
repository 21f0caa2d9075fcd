//! Test harness: a throwaway project (pipeline, build script, signing key) with its own
//! `$FERRY_HOME`, and helpers to run `ferry` as a given actor and read what it stored.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const FERRY: &str = env!("CARGO_BIN_EXE_ferry");

/// The value of `key` in YAML mapping `n` (workflow, action and buildspec files), if any.
pub fn yaml_field(n: &ferry_core::yaml::Node, key: &str) -> Option<ferry_core::yaml::Node> {
    match &n.kind {
        ferry_core::yaml::Kind::Map(entries) => entries.iter().find(|(k, _)| k.as_scalar() == Some(key)).map(|(_, v)| v.clone()),
        _ => None,
    }
}

/// The workspace root (where `pipelines/`, `scripts/` and `.venv/` live).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The default test pipeline: staging deploys at once; prod needs 2 of alice, bob, carol.
/// Every deploy appends `STAGE RELEASE` to `deploys.log`, so tests can count deploys.
pub fn pipeline(prod_approval: &str) -> String {
    format!(
        r#"version: 1
name: shop
accounts:
  dev: "111111111111"
  staging: "222222222222"
  prod: "333333333333"
signing:
  key: test
  public_key: keys/test.pem
approvers:
  alice: {{public_key: keys/alice.pem}}
  bob: {{public_key: keys/bob.pem}}
  carol: {{public_key: keys/carol.pem}}
build:
  account: dev
  working_dir: app
  command: sh build.sh
  artifacts:
    - name: app
      path: out/app.bin
stages:
  - name: staging
    account: staging
    region: eu-west-1
    deploy:
      - type: command
        run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log
  - name: prod
    account: prod
    region: eu-west-1
    approval:
{prod_approval}
    deploy:
      - type: command
        run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log
"#
    )
}

/// A `stages:` block of stages that require nothing, in `account`, each appending its name to
/// `deploys.log` (for tests that promote many stages at once).
pub fn independent_stages(names: impl IntoIterator<Item = String>, account: &str) -> String {
    let mut out = String::from("stages:\n");
    for name in names {
        out.push_str(&format!(
            "  - name: {name}\n    account: {account}\n    requires: []\n    deploy:\n      - type: command\n        run: echo \"$FERRY_STAGE\" >> deploys.log\n"
        ));
    }
    out
}

/// The pinned approvers of `pipeline`, each with a key in the project's key store.
pub const APPROVERS: [&str; 3] = ["alice", "bob", "carol"];

pub const TWO_APPROVERS: &str = "      required: 2\n      approvers: [alice, bob, carol]\n      expires: 1h";

pub struct Project {
    pub tmp: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }
    #[track_caller]
    pub fn expect(self, code: i32) -> Self {
        assert_eq!(self.code, code, "expected exit code {code}, got {}\nstdout:\n{}\nstderr:\n{}", self.code, self.stdout, self.stderr);
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Project {
    /// A project with `pipeline.yaml`, a build writing `app/out/app.bin` from `app/src.txt`,
    /// and an `algorithm` signing key named `test`, exported to `keys/`.
    pub fn new(pipeline_yaml: &str) -> Self {
        Self::with_key(pipeline_yaml, "ed25519")
    }

    pub fn with_key(pipeline_yaml: &str, algorithm: &str) -> Self {
        let p = Project { tmp: tempfile::tempdir().expect("tempdir") };
        std::fs::create_dir_all(p.path("app")).unwrap();
        std::fs::write(p.path("app/build.sh"), "mkdir -p out && cp src.txt out/app.bin\n").unwrap();
        std::fs::write(p.path("app/src.txt"), "version one\n").unwrap();
        std::fs::write(p.path("pipeline.yaml"), pipeline_yaml).unwrap();
        p.ferry("builder", &["keygen", "--name", "test", "--algorithm", algorithm]).expect(0);
        p.ferry("builder", &["key", "export", "--name", "test", "--out", "keys"]).expect(0);
        // The approvers' own keys (pinned by the pipeline), in the one key store the tests share.
        for approver in APPROVERS {
            p.ferry(approver, &["keygen", "--name", approver]).expect(0);
            p.ferry(approver, &["key", "export", "--name", approver, "--out", "keys"]).expect(0);
        }
        p
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    pub fn command(&self, actor: &str, args: &[&str]) -> Command {
        let mut c = Command::new(FERRY);
        c.args(args)
            .current_dir(self.tmp.path())
            .env("FERRY_HOME", self.home())
            .env("FERRY_ACTOR", actor)
            .env("FERRY_LOG", "warn")
            .env_remove("FERRY_OUTPUT")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("CODEBUILD_BUILD_ID");
        c
    }

    /// `ferry ARGS` as `actor` in a simulated GitHub Actions step (outputs and summary in the
    /// project directory).
    pub fn in_github(&self, actor: &str, args: &[&str]) -> Run {
        self.command(actor, args)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_OUTPUT", self.path("outputs.txt"))
            .env("GITHUB_STEP_SUMMARY", self.path("summary.md"))
            .output()
            .unwrap()
            .into()
    }

    /// The value of step output `name` that ferry last wrote to `outputs.txt`.
    pub fn step_output(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.path("outputs.txt")).unwrap();
        let start = format!("{name}<<");
        let lines: Vec<&str> = text.lines().collect();
        let at = lines.iter().rposition(|l| l.starts_with(&start)).unwrap_or_else(|| panic!("no output {name} in {text}"));
        lines[at + 1].to_owned()
    }

    /// `script` under bash in the project directory, with the environment `ferry` commands of
    /// this project get (a CI step's shell).
    pub fn bash(&self, actor: &str, script: &str) -> Command {
        let ferry = self.command(actor, &[]);
        let mut bash = Command::new("bash");
        for (k, v) in ferry.get_envs() {
            match v {
                Some(v) => bash.env(k, v),
                None => bash.env_remove(k),
            };
        }
        bash.args(["-c", script]).current_dir(self.tmp.path());
        bash
    }

    /// Runs `ferry ARGS` as `actor` in the project directory.
    pub fn ferry(&self, actor: &str, args: &[&str]) -> Run {
        self.command(actor, args).output().expect("run ferry").into()
    }

    /// Builds a release as `builder` and returns its id.
    pub fn build(&self) -> String {
        let r = self.ferry("builder", &["build", "pipeline.yaml", "--output", "json"]).expect(0);
        r.json()["release"].as_str().expect("release id").to_owned()
    }

    pub fn promote(&self, actor: &str, release: &str, stage: &str) -> Run {
        self.ferry(actor, &["promote", "pipeline.yaml", "--release", release, "--to", stage])
    }

    pub fn approve(&self, actor: &str, release: &str, stage: &str) -> Run {
        self.ferry(actor, &["approve", "pipeline.yaml", "--release", release, "--stage", stage, "--yes"])
    }

    /// Lines of `deploys.log`: one per deploy action that ran.
    pub fn deploys(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("deploys.log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// The kinds of all audit events, in order.
    pub fn audit_kinds(&self) -> Vec<String> {
        self.audit_events().iter().map(|e| e["kind"].as_str().unwrap_or_default().to_owned()).collect()
    }

    /// The stored audit events (an append's events in one file), in order, as their bodies.
    pub fn audit_events(&self) -> Vec<Value> {
        self.audit_event_files()
            .iter()
            .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(str::to_owned).collect::<Vec<_>>())
            .map(|line| serde_json::from_str::<Value>(&line).unwrap()["body"].clone())
            .collect()
    }

    /// Stores the audit log's events one file each (`events/SEGMENT/SEQ.json` for event SEQ):
    /// the same log, as appends of one event would have left it (what tamper tests edit).
    pub fn unbatch_audit(&self) {
        for file in self.audit_event_files() {
            let text = std::fs::read_to_string(&file).unwrap();
            let first: u64 = file.file_stem().unwrap().to_string_lossy().parse().unwrap();
            if text.lines().count() < 2 {
                continue;
            }
            for (i, line) in text.lines().enumerate() {
                std::fs::write(file.with_file_name(format!("{:012}.json", first + i as u64)), format!("{line}\n")).unwrap();
            }
        }
    }

    /// The files of the unsealed audit events (`audit/events/SEGMENT/SEQ.json`), in order.
    pub fn audit_event_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for seg in
            std::fs::read_dir(self.home().join("audit/events")).map(|d| d.filter_map(|e| e.ok()).collect::<Vec<_>>()).unwrap_or_default()
        {
            for f in std::fs::read_dir(seg.path()).unwrap().filter_map(|e| e.ok()) {
                if !f.file_name().to_string_lossy().starts_with('.') {
                    files.push(f.path());
                }
            }
        }
        files.sort();
        files
    }

    /// What anyone holding the audit role can do: append an event of `kind` after the last one,
    /// correctly chained (sequence, previous hash, own hash), as a file of its own. Returns its
    /// position.
    pub fn append_forged_event(&self, kind: &str, release: &str, stage: &str, details: Value) -> u64 {
        let files = self.audit_event_files();
        let last_file = files.last().expect("a log to append to");
        let text = std::fs::read_to_string(last_file).unwrap();
        let last = ferry_core::audit::Event::from_bytes(text.lines().last().unwrap().as_bytes()).unwrap();
        let kind: ferry_core::audit::EventKind = serde_json::from_value(Value::String(kind.into())).unwrap();
        let draft = ferry_core::audit::Draft::new(kind, &"deployer".parse().unwrap(), &"shop".parse().unwrap())
            .release(&release.parse().unwrap())
            .stage(&stage.parse().unwrap())
            .details(details);
        let event = ferry_core::audit::seal(draft, Some(&last.tail()), last.at).unwrap();
        let file = last_file.with_file_name(format!("{:012}.json", event.seq));
        std::fs::write(&file, event.to_bytes().unwrap()).unwrap();
        event.seq
    }

    pub fn release_dir(&self, release: &str) -> PathBuf {
        self.home().join("store/releases").join(release)
    }

    pub fn manifest(&self, release: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.release_dir(release).join("manifest.json")).unwrap()).unwrap()
    }

    pub fn blob(&self, sha256: &str) -> PathBuf {
        self.home().join("store/artifacts/sha256").join(sha256)
    }
}

/// The test venv's Python (created by `scripts/setup-test-env.sh`, which `.ci/run` runs).
/// Every file under `dir`, at any depth.
pub fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            out.extend(files_under(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

pub fn venv_python() -> PathBuf {
    let python = std::env::var_os("FERRY_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        python.exists(),
        "`{}` is missing: run `bash scripts/setup-test-env.sh` (or `bash .ci/run`) to create the test venv",
        python.display()
    );
    python
}
