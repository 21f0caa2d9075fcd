//! `ferry ui` in a real browser (Debian's chromium, headless, driven by playwright-core from
//! tests/browser/ui.mjs): what a release manager sees and clicks — the stage cards and what is
//! live in each, a release's evidence, approving as alice then bob with the page turning to
//! "approved" by itself — an export that loads without an error, and every kind of page valid
//! HTML by an independent validator (html-validate, tests/browser/validate.mjs). Screenshots of
//! every page go to `target/tmp/browser/<test>/`.

use std::path::PathBuf;
use std::process::Command;

use crate::support::{Project, TWO_APPROVERS, pipeline, repo_root};
use crate::ui::{Ui, csrf_of};

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

/// html-validate's verdict on each file (tests/browser/validate.mjs, its recommended rules):
/// whether all are valid, and its report, a JSON line a file.
fn validate(files: &[PathBuf]) -> (bool, String) {
    let out = Command::new("node").arg(repo_root().join("tests/browser/validate.mjs")).args(files).output().expect("run node");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(report.lines().count(), files.len(), "a verdict a file:\n{report}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
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
fn every_kind_of_page_is_valid_html_by_an_independent_validator() {
    let (p, [_, waiting, _]) = three_releases();
    p.ferry("viewer", &["ui", "pipeline.yaml", "--export", "site"]).expect(0);
    let mut files: Vec<PathBuf> = std::fs::read_dir(p.path("site"))
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|f| f.extension().is_some_and(|e| e == "html"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "index, pipeline, audit and a page a release: {files:?}");
    // The pages only the live server shows: the decision form, what it says after a decision
    // that was refused and one that was recorded, a filtered audit log, and its short answers.
    let ui = Ui::start_as(&p, "alice");
    let decide = format!("/p/shop/r/{waiting}/s/prod");
    let (_, form) = ui.fetch("GET", &decide, "");
    let csrf = csrf_of(&form);
    let live = [
        ("pipeline", 200, ui.fetch("GET", "/p/shop", "")),
        ("release", 200, ui.fetch("GET", &format!("/p/shop/r/{waiting}"), "")),
        ("decide", 200, (200, form)),
        ("not-recorded", 422, ui.fetch("POST", &decide, &format!("csrf={csrf}&verdict=approve&confirm=staging"))),
        ("recorded", 200, ui.fetch("POST", &decide, &format!("csrf={csrf}&verdict=approve&confirm=prod&comment=ok"))),
        ("audit-filtered", 200, ui.fetch("GET", "/p/shop/audit?actor=alice&kind=approved", "")),
        ("not-found", 404, ui.fetch("GET", "/p/shop/r/r0000000000000000", "")),
        ("refused", 403, ui.fetch("POST", &decide, "verdict=approve&confirm=prod")),
    ];
    for (name, want, (status, body)) in live {
        assert_eq!(status, want, "{name}: {body}");
        let f = p.path(&format!("site/live-{name}.html"));
        std::fs::write(&f, body).unwrap();
        files.push(f);
    }
    let (valid, report) = validate(&files);
    assert!(valid, "html-validate found problems:\n{report}");

    // The validator does refuse what is not valid: an image without its text, a duplicate id.
    let bad = p.path("bad.html");
    std::fs::write(
        &bad,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><title>x</title></head><body><main><h1 id=\"a\">x</h1><p id=\"a\">y</p><img src=\"a.png\"></main></body></html>\n",
    )
    .unwrap();
    let (valid, report) = validate(&[bad]);
    assert!(!valid && report.contains("no-dup-id") && report.contains("wcag/h37"), "{report}");
}

#[test]
fn the_pipeline_page_renders_against_the_aws_backend_and_an_approver_approves_from_it_through_her_own_session() {
    use crate::aws::{AwsWorld, TOOLING};
    let w = AwsWorld::new();
    w.write_project("");
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let id = w.at_prod_gate(&ci);
    // Alice's own session: the pages read through it, and she signs as herself.
    let alice = w.role(TOOLING, "release-approvers", "alice");
    let ui = Ui::attach(w.command(&alice, &["ui", "pipeline.yaml"]));
    let root = ui.url.split("/?token=").next().unwrap().to_owned();
    let decide = format!("/p/shop/r/{id}/s/prod");
    let seen = browser("aws", &["look", &ui.url, &format!("{root}/p/shop"), &format!("{root}{decide}")], &[]);
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

    // Approving from the page records, through her session and with her own key, the
    // record `ferry approve` writes; bob's from the command line completes it.
    let (_, form) = ui.fetch("GET", &decide, "");
    let (status, done) = ui.fetch("POST", &decide, &format!("csrf={}&verdict=approve&comment=from+the+page", csrf_of(&form)));
    assert_eq!(status, 200, "{done}");
    assert!(done.contains("1 of 2 approvals so far (alice)"), "{done}");
    let bob = w.role(TOOLING, "release-approvers", "bob");
    let second = w.ferry(&bob, &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes"]).expect(0);
    assert!(second.stdout.contains("approvals complete"), "{}", second.stdout);
    w.ferry(&ci, &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"]).expect(0);
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let approved: Vec<&serde_json::Value> = shown["events"].as_array().unwrap().iter().filter(|e| e["kind"] == "approved").collect();
    assert_eq!(approved.len(), 2, "{approved:?}");
    let first = approved[0];
    assert_eq!(first["actor"].as_str(), Some(format!("arn:aws:sts::{TOOLING}:assumed-role/release-approvers/alice").as_str()), "{first}");
    assert_eq!((first["details"]["approver"].as_str(), first["details"]["comment"].as_str()), (Some("alice"), Some("from the page")));
    assert_eq!(approved[1]["details"]["approver"].as_str(), Some("bob"), "{approved:?}");
    // The two were signed with the approvers' own keys, not one shared key.
    assert_ne!(approved[0]["details"]["keyid"], approved[1]["details"]["keyid"], "{approved:?}");
    w.ferry(&ci, &["audit", "verify", "--pipeline", "pipeline.yaml"]).expect(0);
}
