//! Deployment windows, freezes and post-deploy gates (with automatic rollback).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::{Project, TWO_APPROVERS, pipeline};

/// Days since the epoch (UTC) and today's weekday, 0 = Monday.
fn today() -> (u64, u64) {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() / 86_400;
    (days, (days + 3) % 7)
}

const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn with_staging_gates(gates: &str) -> String {
    pipeline(TWO_APPROVERS).replacen(
        "    region: eu-west-1\n    deploy:",
        &format!("    region: eu-west-1\n    gates:\n{gates}\n    deploy:"),
        1,
    )
}

#[test]
fn a_promotion_outside_its_window_waits_and_names_the_next_allowed_time() {
    let (days, weekday) = today();
    let tomorrow = NAMES[((weekday + 1) % 7) as usize];
    let p = Project::new(&with_staging_gates(&format!("      - type: window\n        days: [{tomorrow}]\n        timezone: UTC")));
    let id = p.build();
    let r = p.promote("deployer", &id, "staging").expect(3);
    let midnight = ferry_core::clock::Timestamp::from_unix(i64::try_from((days + 1) * 86_400).unwrap());
    assert!(r.stdout.contains("is not a deployment day"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("next allowed: {midnight}")), "{}", r.stdout);
    assert!(p.deploys().is_empty());
    let last = p.audit_events().last().cloned().unwrap();
    assert_eq!((last["kind"].as_str(), last["details"]["gate"].as_str()), (Some("gate_failed"), Some("window")));
}

#[test]
fn an_open_window_lets_the_deploy_through() {
    let p = Project::new(&with_staging_gates(&format!(
        "      - type: window\n        days: [{}]\n        timezone: Europe/Berlin",
        NAMES.join(", ")
    )));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
}

#[test]
fn an_org_wide_freeze_stops_every_stage_that_does_not_opt_out() {
    let now = ferry_core::ports::Clock::now(&ferry_core::clock::SystemClock);
    // Whole seconds, one minute past a 5-minute boundary, so the next allowed time is exact.
    let aligned = now.unix_seconds() - now.unix_seconds() % 300;
    let (from, to) = (ferry_core::clock::Timestamp::from_unix(aligned - 3600), ferry_core::clock::Timestamp::from_unix(aligned + 7260));
    let yaml = pipeline(TWO_APPROVERS).replace("build:\n", "policy:\n  freeze_file: freezes.yaml\nbuild:\n");
    let p = Project::new(&yaml);
    std::fs::write(p.path("freezes.yaml"), format!("freezes:\n  - from: {from}\n    to: {to}\n    reason: incident 4711\n")).unwrap();
    let id = p.build();
    let r = p.promote("deployer", &id, "staging").expect(3);
    assert!(r.stdout.contains("a freeze is in force") && r.stdout.contains("incident 4711"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("next allowed: {}", ferry_core::clock::Timestamp::from_unix(aligned + 7500))), "{}", r.stdout);
    let opted_out =
        yaml.replacen("    region: eu-west-1\n    deploy:", "    region: eu-west-1\n    ignore_org_freeze: true\n    deploy:", 1);
    std::fs::write(p.path("pipeline.yaml"), opted_out).unwrap();
    p.promote("deployer", &id, "staging").expect(0);
}

#[test]
fn a_failed_post_deploy_gate_fails_the_promotion_and_on_failure_rollback_restores_the_previous_release() {
    // The smoke test after the deploy fails for any release listed in `broken`.
    let yaml =
        with_staging_gates("      - type: command\n        when: after\n        run: touch broken && ! grep -q \"$FERRY_RELEASE\" broken");
    let p =
        Project::new(&yaml.replacen("    region: eu-west-1\n    gates:", "    region: eu-west-1\n    on_failure: rollback\n    gates:", 1));
    let good = p.build();
    p.promote("deployer", &good, "staging").expect(0);
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    let bad = p.build();
    std::fs::write(p.path("broken"), &bad).unwrap();
    let r = p.promote("deployer", &bad, "staging").expect(1);
    assert!(r.stdout.contains("a post-deploy gate failed"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("rolled back automatically to {good}")), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("promoted {good} to `staging`")), "the rollback itself passed its gates: {}", r.stdout);
    let deploys = p.deploys();
    assert_eq!(deploys.len(), 3, "good, bad, good again: {deploys:?}");
    assert!(deploys[2].starts_with(&format!("staging {good} ")));
    let rollback = p.audit_events().into_iter().find(|e| e["kind"] == "rollback_started").expect("audited");
    assert!(rollback["details"]["why"].as_str().unwrap().starts_with("automatic: post-deploy gate"), "{rollback:#}");
}

#[test]
fn window_settings_are_validated() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    std::fs::write(
        p.path("bad.yaml"),
        with_staging_gates("      - type: window\n        timezone: Mars/Olympus\n        days: [funday]\n        hours: 17:00-09:00\n        freeze: [{from: yesterday, to: 2026-01-01T00:00:00Z}]"),
    )
    .unwrap();
    let r = p.ferry("dev", &["validate", "bad.yaml"]).expect(2);
    for expected in
        ["unknown time zone `Mars/Olympus`", "unknown weekday `funday`", "invalid hours `17:00-09:00`", "invalid time `yesterday`"]
    {
        assert!(r.stderr.contains(expected), "{expected}: {}", r.stderr);
    }
}

/// A local HTTP server (wiremock on 127.0.0.1) answering `/health` with `respond`.
fn health_server(respond: impl wiremock::Respond + 'static) -> (tokio::runtime::Runtime, wiremock::MockServer) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let server = rt.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path("/health"))
            .respond_with(respond)
            .mount(&server)
            .await;
        server
    });
    (rt, server)
}

fn http_gate(url: &str, soak: &str, timeout: &str) -> String {
    with_staging_gates(&format!(
        "      - type: http\n        when: after\n        url: {url}/health\n        json_field: status\n        json_equals: ok\n        interval: 100ms\n        soak: {soak}\n        timeout: {timeout}"
    ))
}

/// Healthy except every `n`th request.
struct Flapping(std::sync::atomic::AtomicUsize, usize);

impl wiremock::Respond for Flapping {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        let i = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if i.is_multiple_of(self.1) {
            wiremock::ResponseTemplate::new(500)
        } else {
            wiremock::ResponseTemplate::new(200).set_body_string(r#"{"status":"ok"}"#)
        }
    }
}

#[test]
fn an_http_gate_that_stays_healthy_through_the_soak_passes() {
    let (_rt, server) = health_server(wiremock::ResponseTemplate::new(200).set_body_string(r#"{"status":"ok"}"#));
    let p = Project::new(&http_gate(&server.uri(), "1s", "20s"));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    let passed = p.audit_events().into_iter().rfind(|e| e["kind"] == "gate_passed").unwrap();
    assert!(passed["details"]["result"].as_str().unwrap().starts_with("healthy for 1s"), "{passed:#}");
}

#[test]
fn an_http_gate_that_flaps_during_the_soak_fails() {
    let (_rt, server) = health_server(Flapping(Default::default(), 4));
    let p = Project::new(&http_gate(&server.uri(), "1s", "3s"));
    let id = p.build();
    let r = p.promote("deployer", &id, "staging").expect(1);
    assert!(r.stdout.contains("a post-deploy gate failed") && r.stdout.contains("flapped during the soak"), "{}{}", r.stdout, r.stderr);
}

#[test]
fn an_http_gate_gives_up_at_its_timeout() {
    let (_rt, server) = health_server(wiremock::ResponseTemplate::new(503));
    let p = Project::new(&http_gate(&server.uri(), "0s", "1s").replace("        soak: 0s\n", ""));
    let id = p.build();
    let start = std::time::Instant::now();
    let r = p.promote("deployer", &id, "staging").expect(1);
    assert!(r.stdout.contains("not healthy within 1s") && r.stdout.contains("status 503"), "{}", r.stdout);
    assert!(start.elapsed() < std::time::Duration::from_secs(30), "the timeout was not honoured");
}

#[test]
fn after_a_failed_post_deploy_gate_the_next_run_names_the_gate_and_deploys_again_only_when_told() {
    let yaml = with_staging_gates("      - type: command\n        when: after\n        run: test ! -f broken");
    let p = Project::new(&yaml);
    let id = p.build();
    std::fs::write(p.path("broken"), "").unwrap();
    let r = p.promote("deployer", &id, "staging").expect(1);
    assert!(r.stdout.contains("a post-deploy gate failed"), "{}", r.stdout);
    let again = p.promote("deployer", &id, "staging").expect(1);
    assert!(
        again.stderr.contains("deployed, then a post-deploy gate failed") && again.stderr.contains("its deploy actions succeeded"),
        "{}",
        again.stderr
    );
    assert!(!again.stderr.contains("action 0"), "the gate failed, not an action: {}", again.stderr);
    assert!(again.stderr.contains("--redeploy"), "{}", again.stderr);
    assert_eq!(p.deploys().len(), 1, "nothing deployed twice on its own");
    let status = p.ferry("anyone", &["status", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert_eq!(status["releases"][0]["stages"][0]["status"], "failed");
    std::fs::remove_file(p.path("broken")).unwrap();
    p.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "staging", "--redeploy"]).expect(0);
    assert_eq!(p.deploys().len(), 2);
}
