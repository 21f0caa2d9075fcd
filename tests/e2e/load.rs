//! Load: fifty promotions to fifty distinct stages at once, over an audit log that already
//! holds ten thousand events, on both backends. Every one succeeds, no lock is left, every
//! succeeded stage has its `promotion_succeeded` event, and the log verifies as one chain.

use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::aws::{AwsWorld, SECURITY, TOOLING};
use crate::support::{Project, Run, independent_stages};

const STAGES: usize = 50;
const HISTORY: u64 = 10_000;

/// The fifty stage names.
fn names() -> impl Iterator<Item = String> {
    (0..STAGES).map(|i| format!("s{i:02}"))
}

/// Ten thousand events of another pipeline, as ferry would have stored them.
fn history(put: &mut dyn FnMut(String, Vec<u8>) -> ferry_core::Result<()>) {
    let actor: ferry_core::ids::Actor = "history".parse().unwrap();
    let other: ferry_core::ids::PipelineName = "other".parse().unwrap();
    let drafts = (0..HISTORY).map(|i| {
        ferry_core::audit::Draft::new(ferry_core::audit::EventKind::GatePassed, &actor, &other).details(serde_json::json!({"i": i}))
    });
    let n = ferry_core::storage::audit::write_image(
        drafts,
        ferry_core::storage::audit::DEFAULT_SEGMENT_SIZE,
        ferry_core::clock::Timestamp::from_unix(1_767_000_000),
        put,
    )
    .unwrap();
    assert_eq!(n, HISTORY);
}

/// Starts `ferry promote --release ID --to S` for every stage at once (`command` makes the
/// command for the arguments) and collects how each ended.
fn promote_all(id: &str, command: impl Fn(&[&str]) -> Command) -> Vec<(String, Run)> {
    let children: Vec<(String, Child)> = names()
        .map(|s| {
            let c = command(&["promote", "pipeline.yaml", "--release", id, "--to", &s])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (s, c)
        })
        .collect();
    children.into_iter().map(|(s, c)| (s, Run::from(c.wait_with_output().unwrap()))).collect()
}

/// What every load test checks once the promotions are done.
fn assert_all_done(runs: &[(String, Run)], shown: &Value, verified: &Value, deploys: Vec<String>, locks: Vec<String>) {
    let failed: Vec<String> =
        runs.iter().filter(|(_, r)| r.code != 0).map(|(s, r)| format!("{s}: exit {}: {}", r.code, r.stderr)).collect();
    assert!(failed.is_empty(), "{} of {STAGES} promotions failed:\n{}", failed.len(), failed.join("\n"));
    assert!(locks.is_empty(), "locks left behind: {locks:?}");
    let mut deployed = deploys;
    deployed.sort();
    assert_eq!(deployed, (0..STAGES).map(|i| format!("s{i:02}")).collect::<Vec<_>>(), "each stage deployed once");
    let events = shown["events"].as_array().unwrap();
    for i in 0..STAGES {
        let stage = format!("s{i:02}");
        let ok = events.iter().filter(|e| e["kind"] == "promotion_succeeded" && e["stage"] == stage.as_str()).count();
        assert_eq!(ok, 1, "stage {stage}: {ok} promotion_succeeded events");
    }
    assert_eq!(verified["first_bad"], Value::Null, "{verified}");
    assert_eq!(verified["events"].as_u64().unwrap(), HISTORY + 3 + 6 * STAGES as u64, "{verified}");
}

#[test]
fn fifty_concurrent_promotions_over_a_long_local_log_all_succeed() {
    let yaml = format!(
        "version: 1\nname: shop\naccounts:\n  dev: \"111111111111\"\n  staging: \"222222222222\"\nsigning:\n  key: test\n  public_key: keys/test.pem\nbuild:\n  account: dev\n  working_dir: app\n  command: sh build.sh\n  artifacts:\n    - name: app\n      path: out/app.bin\n{}",
        independent_stages(names(), "staging")
    );
    let p = Project::new(&yaml);
    let root = p.home().join("audit");
    history(&mut |key, bytes| {
        let path = root.join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
        Ok(())
    });
    let id = p.build();
    let runs = promote_all(&id, |args| p.command("deployer", args));
    let shown = p.ferry("auditor", &["audit", "show", "--release", &id, "--output", "json"]).expect(0).json();
    let verified = p.ferry("auditor", &["audit", "verify", "--output", "json"]).expect(0).json();
    let locks: Vec<String> = std::fs::read_dir(p.home().join("store/locks/shop"))
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| !n.starts_with('.')).collect())
        .unwrap_or_default();
    assert_all_done(&runs, &shown, &verified, p.deploys(), locks);
}

#[test]
fn fifty_concurrent_promotions_over_a_long_log_on_s3_all_succeed() {
    let w = AwsWorld::new();
    w.write_project("");
    w.set_stages(&independent_stages(names(), "staging"));
    // The history, put straight into the security account's bucket, many requests at a time.
    let s3 = w.s3(&w.role(SECURITY, "ferry-audit", "seed"));
    let mut objects = Vec::new();
    history(&mut |key, bytes| {
        objects.push((format!("shop/audit/{key}"), bytes));
        Ok(())
    });
    w.rt.block_on(async {
        for batch in objects.chunks(64) {
            let mut set = tokio::task::JoinSet::new();
            for (key, bytes) in batch.iter().cloned() {
                let (s3, bucket) = (s3.clone(), w.audit_bucket.clone());
                set.spawn(async move { s3.put_object().bucket(bucket).key(key).body(bytes.into()).send().await.unwrap() });
            }
            while set.join_next().await.is_some() {}
        }
    });
    let ci = w.role(TOOLING, "ci", "github-run-1");
    let id = w.release(&ci);
    let runs = promote_all(&id, |args| w.command(&ci, args));
    let shown = w.ferry(&ci, &["audit", "show", "--pipeline", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    let verified = w.ferry(&ci, &["audit", "verify", "--pipeline", "pipeline.yaml", "--output", "json"]).expect(0).json();
    let locks: Vec<String> =
        w.keys(crate::aws::ARTIFACTS, "ferry-artifacts", &w.store_bucket).into_iter().filter(|k| k.contains("/locks/")).collect();
    assert_all_done(&runs, &shown, &verified, w.deploys(), locks);
}
