//! `ferry ui` in a real browser (Debian's chromium, headless, driven by playwright-core from
//! tests/browser/ui.mjs): what a release manager sees and clicks — the stage cards and what is
//! live in each, a release's evidence, approving as alice then bob with the page turning to
//! "approved" by itself — and an export that loads without an error. Screenshots of every
//! page go to `target/tmp/browser/<test>/`.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Project, TWO_APPROVERS, pipeline, repo_root};
use crate::ui::Ui;

/// A pipeline of three stages, dev → staging → prod, prod protected and needing two approvals.
fn three_stages() -> String {
    pipeline(TWO_APPROVERS).replace(
        "stages:\n",
        "policy:\n  protected_stages: [prod]\nstages:\n  - name: dev\n    account: dev\n    region: eu-west-1\n    deploy:\n      - type: command\n        run: echo \"$FERRY_STAGE $FERRY_RELEASE\" >> deploys.log\n",
    )
}

/// `node tests/browser/ui.mjs ARGS`, its screenshots into a directory of their own; panics with
/// what the browser saw when an expectation fails.
fn browser(test: &str, args: &[&str], env: &[(&str, String)]) -> String {
    let script = repo_root().join("tests/browser/ui.mjs");
    assert!(
        repo_root().join("tests/browser/node_modules/playwright-core").is_dir(),
        "playwright-core is missing: run `bash scripts/setup-test-env.sh` (or `bash .ci/run`), which installs it and chromium"
    );
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser").join(test);
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let out = Command::new("node")
        .arg(&script)
        .args(args)
        .env("FERRY_SHOTS", &shots)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("run node");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser test failed (screenshots in {}):\n{stderr}\n{stdout}", shots.display());
    for shot in std::fs::read_dir(&shots).unwrap() {
        let shot = shot.unwrap().path();
        assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "an empty screenshot: {}", shot.display());
    }
    eprintln!("screenshots: {}", shots.display());
    stdout
}

/// Three releases: the oldest live in prod, the next live in staging and waiting for prod's
/// approvals, the newest live in dev; and a forged approval file for the waiting one.
fn three_releases() -> (Project, [String; 3]) {
    let p = Project::new(&three_stages());
    p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let oldest = p.build();
    for stage in ["dev", "staging"] {
        p.promote("deployer", &oldest, stage).expect(0);
    }
    p.promote("deployer", &oldest, "prod").expect(3);
    p.approve("alice", &oldest, "prod").expect(0);
    p.approve("carol", &oldest, "prod").expect(0);
    p.promote("deployer", &oldest, "prod").expect(0);
    let waiting = p.build();
    for stage in ["dev", "staging"] {
        p.promote("deployer", &waiting, stage).expect(0);
    }
    p.promote("deployer", &waiting, "prod").expect(3);
    let newest = p.build();
    p.promote("deployer", &newest, "dev").expect(0);
    let forged = p.home().join(format!("store/approvals/shop/{waiting}/prod"));
    std::fs::create_dir_all(&forged).unwrap();
    std::fs::write(forged.join("0-alice-forged.json"), format!(r#"{{"actor": "alice", "verdict": "approve", "release": "{waiting}"}}"#))
        .unwrap();
    (p, [oldest, waiting, newest])
}

#[test]
fn approvers_see_what_is_live_check_the_evidence_and_approve_until_the_page_says_approved() {
    let (p, [oldest, waiting, newest]) = three_releases();
    let (alice, bob) = (Ui::start_as(&p, "alice"), Ui::start_as(&p, "bob"));
    let releases = serde_json::json!({"dev": newest, "staging": waiting, "prod": oldest, "waiting": waiting});
    let sha = p.manifest(&waiting)["artifacts"][0]["sha256"].as_str().unwrap().to_owned();
    browser(
        "approve",
        &["decide"],
        &[
            ("FERRY_UI_ALICE", alice.url.clone()),
            ("FERRY_UI_BOB", bob.url.clone()),
            ("FERRY_RELEASES", releases.to_string()),
            ("FERRY_ARTIFACT_SHA256", sha),
        ],
    );
    // What the pages recorded is what `ferry approve` records: the promotion now goes ahead.
    let approved: Vec<String> = p
        .audit_events()
        .iter()
        .filter(|e| e["kind"] == "approved" && e["release"] == waiting.as_str())
        .map(|e| e["actor"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(approved, ["alice", "bob"]);
    assert!(!p.audit_kinds().iter().any(|k| k == "rejected" || k == "approval_refused"), "the other site's form recorded something");
    p.promote("deployer", &waiting, "prod").expect(0);
}

#[test]
fn an_exported_site_loads_in_the_browser_without_an_error() {
    let (p, [_, waiting, _]) = three_releases();
    p.ferry("viewer", &["ui", "pipeline.yaml", "--export", "site"]).expect(0);
    let url = |f: &str| format!("file://{}", p.path(&format!("site/{f}")).display());
    let seen = browser(
        "export",
        &["look", &url("index.html"), &url("p-shop.html"), &url(&format!("p-shop-{waiting}.html")), &url("p-shop-audit.html")],
        &[],
    );
    let pages: Vec<serde_json::Value> = seen.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(pages.len(), 4, "{seen}");
    assert!(pages[1]["text"].as_str().unwrap().contains("0 of 2 approvals"), "{seen}");
    let release = pages[2]["text"].as_str().unwrap();
    assert!(release.contains("✓ valid") && release.contains("✗ not counted"), "{release}");
    assert!(!release.contains("review and decide"), "an export decides nothing: {release}");
    assert!(pages[3]["text"].as_str().unwrap().contains("✓ intact"), "{seen}");
}

#[test]
fn the_pipeline_page_renders_against_the_aws_backend() {
    use crate::aws::{AwsWorld, TOOLING};
    use std::io::BufRead as _;
    let w = AwsWorld::new();
    w.write_project("");
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let id = w.at_prod_gate(&ci);
    // Alice's own session: the pages read through it, and she would sign as herself.
    let alice = w.role(TOOLING, "release-approvers", "alice");
    let mut child = w.command(&alice, &["ui", "pipeline.yaml"]).stdout(std::process::Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let url = line.trim().strip_prefix("ferry ui: open ").unwrap_or_else(|| panic!("no address printed: {line:?}")).to_owned();
    let root = url.split("/?token=").next().unwrap().to_owned();
    let seen = browser("aws", &["look", &url, &format!("{root}/p/shop"), &format!("{root}/p/shop/r/{id}/s/prod")], &[]);
    let _ = child.kill();
    let _ = child.wait();
    let pages: Vec<serde_json::Value> = seen.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let text = |i: usize| pages[i]["text"].as_str().unwrap().to_owned();
    assert!(text(0).contains("shop (aws backend"), "{seen}");
    let pipeline = text(1);
    assert!(pipeline.contains(&format!("live: {id}")), "staging's live release: {pipeline}");
    assert!(pipeline.contains(&format!("waiting {id}: 0 of 2 approvals")), "{pipeline}");
    let deciding = text(2);
    assert!(deciding.contains("✓ verified with the pinned key"), "{deciding}");
    assert!(
        deciding.contains(&format!("You are arn:aws:sts::{TOOLING}:assumed-role/release-approvers/alice, deciding as approver alice")),
        "{deciding}"
    );
}
