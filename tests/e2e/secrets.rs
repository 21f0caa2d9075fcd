//! Secret hygiene: whatever a command prints and whatever fails, nothing ferry stores — audit
//! events, stage records, approvals, locks — holds a secret from its environment (inherited
//! AWS keys, CI tokens, webhook URLs), and commands never inherit the CI's means to mint an
//! identity (GitHub's OIDC token request).

use crate::support::{Project, TWO_APPROVERS, pipeline};

const SECRETS: [(&str, &str); 5] = [
    ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "request-token-0123456789abcdef"),
    ("GITHUB_TOKEN", "ghs_0123456789abcdefghijklmnopqrstuv"),
    // A webhook nobody listens at: its delivery fails, and the failure is recorded.
    ("HOOK_URL", "http://127.0.0.1:9/services/T0KEN/SECRET-PATH"),
];

#[test]
fn no_secret_of_the_environment_is_stored_and_commands_cannot_ask_for_an_oidc_token() {
    let yaml = format!("{}notifications:\n  - {{type: webhook, url_env: HOOK_URL}}\n", pipeline(TWO_APPROVERS)).replacen(
        r#"run: echo "$FERRY_STAGE $FERRY_RELEASE $FERRY_ACCOUNT_ID" >> deploys.log"#,
        r#"run: env; test -z "$ACTIONS_ID_TOKEN_REQUEST_TOKEN$ACTIONS_ID_TOKEN_REQUEST_URL" && echo "$FERRY_STAGE" >> deploys.log"#,
        1,
    );
    let p = Project::new(&yaml);
    let run = |args: &[&str]| {
        let mut c = p.command("deployer", args);
        for (k, v) in SECRETS {
            c.env(k, v);
        }
        c.env("ACTIONS_ID_TOKEN_REQUEST_URL", "http://127.0.0.1:9/token");
        crate::support::Run::from(c.output().unwrap())
    };
    let id = run(&["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    run(&["promote", "pipeline.yaml", "--release", &id, "--to", "staging"]).expect(0);
    assert_eq!(p.deploys(), ["staging"], "the deploy command ran without the OIDC token request");
    let end = p.audit_events().into_iter().find(|e| e["kind"] == "deploy_end").unwrap();
    let output = end["details"]["output"].as_str().unwrap().to_owned();
    assert!(output.contains("AWS_SECRET_ACCESS_KEY=***"), "the command printed its environment, redacted: {output}");
    assert!(p.audit_kinds().contains(&"notification_failed".to_owned()), "{:?}", p.audit_kinds());
    for file in crate::support::files_under(&p.home()) {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for (name, secret) in SECRETS {
            assert!(!text.contains(secret), "{name} is stored in {}", file.display());
        }
    }
}
