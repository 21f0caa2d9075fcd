//! Approvals are signatures by pinned approver keys, bound to (release, stage) and the approval
//! request, need N distinct allowed approvers, expire, and exclude the builder and requester;
//! a rejection blocks.

use crate::support::{Project, TWO_APPROVERS, pipeline};

/// A project with a release already in staging, waiting for prod.
fn at_prod_gate(approval: &str) -> (Project, String) {
    at_prod_gate_by(approval, "builder", "deployer")
}

/// `at_prod_gate`, the release built by `builder` and its promotion to prod asked by `requester`.
fn at_prod_gate_by(approval: &str, builder: &str, requester: &str) -> (Project, String) {
    let p = Project::new(&pipeline(approval));
    let id = p.ferry(builder, &["build", "pipeline.yaml", "--output", "json"]).expect(0).json()["release"].as_str().unwrap().to_owned();
    p.promote("deployer", &id, "staging").expect(0);
    let waiting = p.promote(requester, &id, "prod").expect(3);
    assert!(
        waiting.stdout.contains(&format!("approve with: ferry approve pipeline.yaml --release {id} --stage prod")),
        "{}",
        waiting.stdout
    );
    (p, id)
}

#[test]
fn two_distinct_approvers_are_needed_when_the_policy_says_two() {
    let (p, id) = at_prod_gate(TWO_APPROVERS);
    p.approve("alice", &id, "prod").expect(0);
    // The same approval again is not a second one, and is not recorded twice.
    let again = p.approve("alice", &id, "prod").expect(2);
    assert!(
        again.stderr.contains(&format!("`alice` has already approved release `{id}` for `prod`: nothing new was recorded")),
        "{}",
        again.stderr
    );
    assert_eq!(p.audit_kinds().iter().filter(|k| *k == "approved").count(), 1);
    let still = p.promote("deployer", &id, "prod").expect(3);
    assert!(still.stdout.contains("(1 of 2 approvals: alice)"), "{}", still.stdout);
    let done = p.approve("bob", &id, "prod").expect(0);
    assert!(done.stdout.contains("approvals complete (alice, bob)"), "{}", done.stdout);
    p.promote("deployer", &id, "prod").expect(0);
    assert_eq!(p.deploys().len(), 2, "staging and prod each deployed once");
    let kinds = p.audit_kinds();
    for k in
        ["approval_pending", "approved", "gate_passed", "lock_taken", "deploy_start", "deploy_end", "promotion_succeeded", "lock_released"]
    {
        assert!(kinds.iter().any(|x| x == k), "missing audit event {k}: {kinds:?}");
    }
}

#[test]
fn the_builder_cannot_approve_and_the_refusal_is_audited() {
    let (p, id) = at_prod_gate_by("      required: 1", "alice", "deployer");
    let r = p.approve("alice", &id, "prod").expect(1);
    assert!(r.stderr.contains("`alice` built this release and cannot approve it"), "{}", r.stderr);
    assert_eq!(p.audit_kinds().last().map(String::as_str), Some("approval_refused"));
    p.promote("deployer", &id, "prod").expect(3);
}

#[test]
fn the_requester_cannot_approve_their_own_promotion() {
    let (p, id) = at_prod_gate_by("      required: 1", "builder", "carol");
    let r = p.approve("carol", &id, "prod").expect(1);
    assert!(r.stderr.contains("`carol` requested the promotion of this release"), "{}", r.stderr);
}

#[test]
fn self_approval_is_allowed_when_the_pipeline_says_so() {
    let (p, id) = at_prod_gate_by("      required: 1\n      allow_self_approval: true", "alice", "deployer");
    p.approve("alice", &id, "prod").expect(0);
    p.promote("deployer", &id, "prod").expect(0);
}

#[test]
fn only_pinned_and_listed_approvers_may_approve() {
    let (p, id) = at_prod_gate(TWO_APPROVERS);
    let r = p.approve("mallory", &id, "prod").expect(1);
    assert!(r.stderr.contains("`mallory` is none of the pipeline's approvers"), "{}", r.stderr);
    assert!(r.stderr.contains("pinned approvers: alice, bob, carol"), "{}", r.stderr);
    let (p, id) = at_prod_gate("      required: 1\n      approvers: [alice, bob]");
    let r = p.approve("carol", &id, "prod").expect(1);
    assert!(r.stderr.contains("`carol` is not an approver for stage `prod`"), "{}", r.stderr);
    assert!(r.stderr.contains("allowed approvers: alice, bob"), "{}", r.stderr);
    assert_eq!(p.audit_kinds().iter().filter(|k| *k == "approval_refused").count(), 1, "the refusal is audited");
}

#[test]
fn an_approval_for_release_a_does_not_count_for_release_b() {
    let (p, a) = at_prod_gate("      required: 1");
    std::fs::write(p.path("app/src.txt"), "version two\n").unwrap();
    let b = p.build();
    p.promote("deployer", &b, "staging").expect(0);
    p.approve("alice", &a, "prod").expect(0);
    p.promote("deployer", &b, "prod").expect(3);
    p.promote("deployer", &a, "prod").expect(0);
}

#[test]
fn an_expired_approval_does_not_count() {
    let (p, id) = at_prod_gate("      required: 1\n      expires: 1s");
    p.approve("alice", &id, "prod").expect(0);
    // Two seconds later (told to ferry's clock, not slept for).
    let r: crate::support::Run = p
        .command("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "prod"])
        .env("FERRY_TIME_OFFSET", "2s")
        .output()
        .unwrap()
        .into();
    let r = r.expect(3);
    assert!(r.stdout.contains("(0 of 1 approvals)"), "{}", r.stdout);
    assert_eq!(p.deploys().len(), 1, "only staging deployed");
}

#[test]
fn a_rejection_blocks_the_release_in_that_stage() {
    let (p, id) = at_prod_gate(TWO_APPROVERS);
    p.approve("alice", &id, "prod").expect(0);
    p.ferry("bob", &["reject", "pipeline.yaml", "--release", &id, "--stage", "prod", "--comment", "breaks checkout", "--yes"]).expect(0);
    p.approve("carol", &id, "prod").expect(0);
    let r = p.promote("deployer", &id, "prod").expect(1);
    assert!(r.stderr.contains("was rejected for stage `prod` by `bob`"), "{}", r.stderr);
    assert!(r.stderr.contains("breaks checkout"), "{}", r.stderr);
    assert_eq!(p.deploys().len(), 1);
    assert!(p.audit_kinds().iter().any(|k| k == "rejected"));
}

#[test]
fn status_shows_pending_approvals_who_may_approve_and_the_command() {
    let (p, id) = at_prod_gate_by(TWO_APPROVERS, "alice", "deployer");
    p.approve("carol", &id, "prod").expect(0);
    let s = p.ferry("anyone", &["status", "pipeline.yaml"]).expect(0).stdout;
    assert!(s.contains("staging      succeeded"), "{s}");
    assert!(s.contains("prod         awaiting_approval"), "{s}");
    assert!(s.contains("approvals 1/2 (carol)"), "{s}");
    assert!(s.contains("may approve: bob"), "{s}");
    assert!(s.contains("may not approve: alice"), "{s}");
    assert!(s.contains("earliest approval expires at"), "{s}");
    let v = p.ferry("anyone", &["status", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    assert_eq!(v["releases"][0]["stages"][1]["approvals"]["state"], "pending");
    assert_eq!(v["releases"][0]["stages"][1]["approvals"]["need"], 2);
}

#[test]
fn approving_without_a_terminal_needs_yes_and_shows_what_would_be_approved_first() {
    let (p, id) = at_prod_gate(TWO_APPROVERS);
    let manifest = p.manifest(&id);
    let refused = p.ferry("alice", &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod"]).expect(2);
    assert!(refused.stderr.contains("refusing to approve without confirmation: stdin is not a terminal"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--yes"), "{}", refused.stderr);
    // The summary came first: what, from where, signed by whom, asked by whom, how far along.
    for line in [
        format!("Approving release {id} for stage `prod` of pipeline `shop`"),
        "  account       prod (333333333333), eu-west-1".to_owned(),
        // "version one\n": its size as people read it.
        format!("  artifact      app  sha256 {}  (12 B)", manifest["artifacts"][0]["sha256"].as_str().unwrap()),
        "  signature     verified with the pinned key ".to_owned(),
        "  built by      builder on ".to_owned(),
        "  requested by  deployer at ".to_owned(),
        "  approvals     0 of 2 so far".to_owned(),
        "  deploy        command: ".to_owned(),
    ] {
        assert!(refused.stderr.contains(&line), "missing `{line}` in:\n{}", refused.stderr);
    }
    assert!(!p.audit_kinds().iter().any(|k| k == "approved"), "nothing was recorded");

    let ok = p.ferry("alice", &["approve", "pipeline.yaml", "--release", &id, "--stage", "prod", "--yes", "--output", "json"]).expect(0);
    let json = ok.json();
    assert_eq!(json["summary"]["release"], id.as_str());
    assert_eq!(json["summary"]["requested_by"], "deployer");
    assert_eq!(json["approvals"]["have"][0], "alice");
}

#[test]
fn pending_lists_what_awaits_the_callers_approval_and_nothing_for_others() {
    let (p, id) = at_prod_gate(TWO_APPROVERS);
    let alice = p.ferry("alice", &["pending", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert_eq!(alice["pending"].as_array().unwrap().len(), 1, "{alice:#}");
    assert_eq!(alice["pending"][0]["release"], id.as_str());
    assert_eq!(alice["pending"][0]["stage"], "prod");
    assert_eq!(alice["pending"][0]["requested_by"], "deployer");
    assert_eq!(alice["pending"][0]["approve_command"], format!("ferry approve pipeline.yaml --release {id} --stage prod"));
    // Not an allowed approver, the requester, or someone who already approved: nothing.
    for who in ["mallory", "deployer"] {
        let none = p.ferry(who, &["pending", "pipeline.yaml"]).expect(0);
        assert!(none.stdout.contains(&format!("nothing awaits an approval from {who}")), "{}", none.stdout);
    }
    p.approve("alice", &id, "prod").expect(0);
    let after = p.ferry("alice", &["pending", "pipeline.yaml", "--output", "json"]).expect(0).json();
    assert_eq!(after["pending"], serde_json::json!([]));
    let bob = p.ferry("bob", &["pending", "pipeline.yaml"]).expect(0);
    assert!(bob.stdout.contains(&format!("shop {id} → `prod`: 1 of 2 approvals, requested by deployer")), "{}", bob.stdout);
    // A broken pipeline file beside it is reported (exit 2) and hides nothing of the others.
    std::fs::write(p.path("broken.yaml"), "version: 1\nname: other\nstages: [\n").unwrap();
    let both = p.ferry("bob", &["pending", "pipeline.yaml", "broken.yaml", "--output", "json"]).expect(2).json();
    assert_eq!(both["pending"][0]["release"], id.as_str(), "{both:#}");
    assert_eq!(both["invalid"][0]["file"], "broken.yaml", "{both:#}");
    let human = p.ferry("bob", &["pending", "pipeline.yaml", "broken.yaml"]).expect(2);
    assert!(
        human.stdout.contains(&format!("shop {id} → `prod`")) && human.stdout.contains("not read (fix with `ferry validate`)"),
        "{}",
        human.stdout
    );
}

/// Runs `ferry ARGS` as `actor` on a pseudo-terminal (util-linux `script`), typing `answer`.
fn on_a_terminal(p: &Project, actor: &str, args: &[&str], answer: &str) -> crate::support::Run {
    use std::io::Write as _;
    let line = std::iter::once(crate::support::FERRY.to_owned()).chain(args.iter().map(|a| (*a).to_owned())).collect::<Vec<_>>().join(" ");
    let c = p.command(actor, &[]);
    let mut script = std::process::Command::new("script");
    script.args(["-qec", &line, "/dev/null"]).current_dir(p.path("."));
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => script.env(k, v),
            None => script.env_remove(k),
        };
    }
    let mut child = script
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{answer}\n").as_bytes()).unwrap();
    child.wait_with_output().unwrap().into()
}

#[test]
fn on_a_terminal_a_protected_stage_is_approved_only_by_typing_its_name() {
    let p = Project::new(&format!("{}policy:\n  protected_stages: [prod]\n", pipeline(TWO_APPROVERS)));
    p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    let args = ["approve", "pipeline.yaml", "--release", &id, "--stage", "prod"];
    let wrong = on_a_terminal(&p, "alice", &args, "y").expect(1);
    assert!(wrong.stdout.contains("`prod` is a protected stage: type its name to approve"), "{}", wrong.stdout);
    assert!(wrong.stdout.contains("(protected stage)"), "the summary came first: {}", wrong.stdout);
    assert!(wrong.stdout.contains("not confirmed; nothing was recorded"), "{}", wrong.stdout);
    assert!(!p.audit_kinds().iter().any(|k| k == "approved"));
    let right = on_a_terminal(&p, "alice", &args, "prod").expect(0);
    assert!(right.stdout.contains(&format!("alice (alice) approved {id} for `prod`, signed with key ")), "{}", right.stdout);
}

#[test]
fn approvers_can_come_from_a_file_several_pipelines_share() {
    let shared = pipeline(TWO_APPROVERS).replace(
        "approvers:\n  alice: {public_key: keys/alice.pem}\n  bob: {public_key: keys/bob.pem}\n  carol: {public_key: keys/carol.pem}\n",
        "approvers_file: org/approvers.yaml\n",
    );
    let p = Project::new(&shared);
    std::fs::create_dir_all(p.path("org/keys")).unwrap();
    for who in crate::support::APPROVERS {
        std::fs::copy(p.path(&format!("keys/{who}.pem")), p.path(&format!("org/keys/{who}.pem"))).unwrap();
    }
    // Key paths in the shared file are relative to it.
    let file =
        "approvers:\n  alice: {public_key: keys/alice.pem}\n  bob: {public_key: keys/bob.pem}\n  carol: {public_key: keys/carol.pem}\n";
    std::fs::write(p.path("org/approvers.yaml"), file).unwrap();
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    p.approve("alice", &id, "prod").expect(0);
    p.approve("bob", &id, "prod").expect(0);
    p.promote("deployer", &id, "prod").expect(0);
    // One name defined in both places is refused where the file is named.
    let twice = shared.replace(
        "approvers_file: org/approvers.yaml\n",
        "approvers_file: org/approvers.yaml\napprovers:\n  alice: {public_key: keys/alice.pem}\n",
    );
    std::fs::write(p.path("twice.yaml"), twice).unwrap();
    let r = p.ferry("dev", &["validate", "twice.yaml"]).expect(2);
    assert!(r.stderr.contains("approvers_file: approver `alice` is defined both here and in `org/approvers.yaml`"), "{}", r.stderr);
}

#[test]
fn run_with_a_release_carries_it_on_past_the_approval_without_building_or_redeploying_staging() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let waiting = p.ferry("ci", &["run", "pipeline.yaml", "--output", "json"]).expect(3).json();
    let id = waiting["release"].as_str().unwrap().to_owned();
    assert_eq!(p.deploys().len(), 1, "staging deployed, prod waits");
    p.approve("alice", &id, "prod").expect(0);
    p.approve("bob", &id, "prod").expect(0);
    let carried = p.ferry("ci", &["run", "pipeline.yaml", "--release", &id, "--output", "json"]).expect(0).json();
    assert_eq!(carried["release"], id.as_str(), "no new release was built");
    let outcomes: Vec<&str> = carried["stages"].as_array().unwrap().iter().map(|s| s["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["already_deployed", "deployed"], "{carried:#}");
    assert_eq!(
        p.deploys(),
        [format!("staging {id} 222222222222"), format!("prod {id} 333333333333")],
        "staging was not deployed again; prod was"
    );
    let human = p.ferry("ci", &["run", "pipeline.yaml", "--release", &id]).expect(0);
    assert!(human.stdout.starts_with(&format!("carrying release {id} on")), "{}", human.stdout);
    assert_eq!(p.deploys().len(), 2);
    // A release that is not in the store is named.
    let unknown = p.ferry("ci", &["run", "pipeline.yaml", "--release", "r0000000000000000"]).expect(2);
    assert!(unknown.stderr.contains("r0000000000000000"), "{}", unknown.stderr);
}

#[test]
fn status_shows_what_is_live_per_stage_partial_approvals_a_rejection_at_once_and_a_rollback() {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let promote = |id: &str, stage: &str| p.ferry("ci", &["promote", "pipeline.yaml", "--release", id, "--to", stage]);
    // R1 reaches prod with alice and bob; R3 replaces it; a rollback restores R1.
    let r1 = p.build();
    promote(&r1, "staging").expect(0);
    promote(&r1, "prod").expect(3);
    p.approve("alice", &r1, "prod").expect(0);
    p.approve("bob", &r1, "prod").expect(0);
    promote(&r1, "prod").expect(0);
    let r2 = p.build();
    promote(&r2, "staging").expect(0);
    promote(&r2, "prod").expect(3);
    p.approve("carol", &r2, "prod").expect(0);
    // (R2 stays at one of two approvals.)
    let r3 = p.build();
    promote(&r3, "staging").expect(0);
    promote(&r3, "prod").expect(3);
    p.approve("alice", &r3, "prod").expect(0);
    p.approve("bob", &r3, "prod").expect(0);
    promote(&r3, "prod").expect(0);
    p.ferry("ci", &["rollback", "pipeline.yaml", "--stage", "prod"]).expect(0);
    let r4 = p.build();
    promote(&r4, "staging").expect(0);
    promote(&r4, "prod").expect(3);
    p.approve("alice", &r4, "prod").expect(0);
    let r5 = p.build();
    promote(&r5, "staging").expect(0);
    promote(&r5, "prod").expect(3);
    p.ferry("carol", &["reject", "pipeline.yaml", "--release", &r5, "--stage", "prod", "--yes", "--comment", "fails the load test"])
        .expect(0);
    let text = p.ferry("ci", &["status", "pipeline.yaml"]).expect(0).stdout;
    let json = p.ferry("ci", &["status", "pipeline.yaml", "--output", "json", "--limit", "2"]).expect(0).json();
    let mut text = text;
    for (i, id) in [&r1, &r2, &r3, &r4, &r5].iter().enumerate() {
        text = text.replace(id.as_str(), &format!("R{}", i + 1));
    }
    insta::with_settings!({filters => vec![(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", "[time]")]}, {
        insta::assert_snapshot!("status_human", text);
    });
    assert_eq!(json["older"], 3);
    assert_eq!(json["releases"].as_array().unwrap().len(), 2);
    let prod = &json["stages"][1];
    assert_eq!((prod["stage"].as_str(), prod["live"].as_str()), (Some("prod"), Some(r1.as_str())), "the rollback restored R1: {json:#}");
    assert_eq!(prod["awaiting_approval"], serde_json::json!([r2, r4]), "R5 was rejected: it waits for nothing");
    assert_eq!(json["releases"][0]["stages"][1]["status"], "rejected");
}

#[test]
fn promote_can_wait_for_its_approvals_and_carries_on_when_they_land() {
    let (p, id) = at_prod_gate(TWO_APPROVERS);
    let waiting = p
        .command("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "prod", "--wait-for-approval", "2m"])
        .env("FERRY_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once it has tried and found prod waiting (its own `approval_pending`), the approvals land.
    let start = std::time::Instant::now();
    while p.audit_kinds().iter().filter(|k| *k == "approval_pending").count() < 2 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "the waiting promotion never tried");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    p.approve("alice", &id, "prod").expect(0);
    p.approve("bob", &id, "prod").expect(0);
    let r: crate::support::Run = waiting.wait_with_output().unwrap().into();
    let r = r.expect(0);
    assert!(r.stdout.contains(&format!("promoted {id} to `prod`")), "{}", r.stdout);
    assert!(r.stderr.contains("`prod` waits for approval; looking again in 2s"), "it says it waits, and how long:\n{}", r.stderr);
    assert!(p.deploys().iter().any(|d| d.starts_with("prod ")), "{:?}", p.deploys());
    // Tried again only when there was news: at most once per decision, not at every look.
    let asked = p.audit_kinds().iter().filter(|k| *k == "approval_pending").count();
    assert!(asked <= 3, "{asked} approval_pending events: {:?}", p.audit_kinds());

    // Without patience it answers at once; with too little it gives up, still waiting (exit 3).
    let (p, id) = at_prod_gate(TWO_APPROVERS);
    let r = p.ferry("deployer", &["promote", "pipeline.yaml", "--release", &id, "--to", "prod", "--wait-for-approval", "3s"]).expect(3);
    assert!(r.stdout.contains("needs approval to enter `prod` (0 of 2 approvals"), "{}", r.stdout);
}
