//! `ferry ui`: a pipeline's stages and releases as pages on 127.0.0.1, opened only with the
//! per-launch token it prints, refused (403, nothing recorded) to requests without it, from
//! another Host or Origin; and the same pages exported as static files.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Stdio};

use crate::support::{Project, TWO_APPROVERS, pipeline};

/// A running `ferry ui`, stopped when dropped.
pub struct Ui {
    child: Child,
    port: u16,
    token: String,
    /// The address it printed, token included.
    pub url: String,
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Ui {
    fn start(p: &Project) -> Ui {
        Ui::start_as(p, "viewer")
    }

    /// `ferry ui` as `actor` (an approver decides as themselves).
    pub fn start_as(p: &Project, actor: &str) -> Ui {
        Ui::attach(p.command(actor, &["ui", "pipeline.yaml"]))
    }

    /// Starts `ferry ui` as `command` says (a backend, an identity) and reads its address.
    pub fn attach(mut command: std::process::Command) -> Ui {
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let url = line.trim().strip_prefix("ferry ui: open ").unwrap_or_else(|| panic!("no address printed: {line:?}")).to_owned();
        let rest = url.strip_prefix("http://127.0.0.1:").unwrap();
        let (port, token) = rest.split_once("/?token=").unwrap();
        Ui { child, port: port.parse().unwrap(), token: token.to_owned(), url }
    }

    /// One HTTP/1.1 request, `extra` header lines included (each ending in `\r\n`).
    fn request(&self, method: &str, path: &str, extra: &str) -> Answer {
        self.send(method, path, extra, "")
    }

    /// A request with a body (a form: `application/x-www-form-urlencoded`).
    fn send(&self, method: &str, path: &str, extra: &str, body: &str) -> Answer {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{extra}\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        Answer { status, head: head.to_owned(), body: body.to_owned() }
    }

    fn host(&self) -> String {
        format!("Host: 127.0.0.1:{}\r\n", self.port)
    }

    fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &format!("{}Cookie: ferry_ui={}\r\n", self.host(), self.token))
    }

    /// What a browser holding the token gets for `method path` (a form `body` for POST): the
    /// status and the page.
    pub fn fetch(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let headers = format!("{}Cookie: ferry_ui={}\r\nOrigin: http://127.0.0.1:{}\r\n", self.host(), self.token, self.port);
        let a = self.send(method, path, &headers, body);
        (a.status, a.body)
    }
}

/// A project with one release live in staging and waiting for prod's two approvals.
fn waiting_for_prod() -> (Project, String) {
    let p = Project::new(&pipeline(TWO_APPROVERS));
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    (p, id)
}

#[test]
fn the_pipeline_page_shows_what_is_live_and_who_prod_waits_for() {
    let (p, id) = waiting_for_prod();
    let ui = Ui::start(&p);
    let first = ui.request("GET", &format!("/?token={}", ui.token), &ui.host());
    assert_eq!(first.status, 303, "{}", first.head);
    assert!(first.head.contains(&format!("Set-Cookie: ferry_ui={}; Path=/; HttpOnly; SameSite=Strict", ui.token)), "{}", first.head);

    let index = ui.get("/");
    assert_eq!(index.status, 200);
    assert!(index.body.contains("<a href=\"/p/shop\">shop</a>"), "{}", index.body);
    let page = ui.get("/p/shop");
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.head.contains("Content-Security-Policy: default-src 'none'"), "{}", page.head);
    assert!(
        page.body.contains(&format!("live: <a class=\"id\" href=\"/p/shop/r/{id}\">{id}</a>")),
        "staging's live release:\n{}",
        page.body
    );
    assert!(
        page.body.contains("<article class=\"card waiting\" aria-labelledby=\"stage-1\"><h2 id=\"stage-1\">prod</h2>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("0 of 2 approvals; may approve: alice, bob, carol"), "{}", page.body);
    let part = ui.get("/p/shop?part=main");
    assert!(part.body.starts_with("<h1>shop"), "the part that refreshes in place: {}", part.body);
    assert_eq!(ui.get("/p/nothing").status, 404);
    assert_eq!(ui.get("/assets/ui.css").status, 200);
}

#[test]
fn requests_without_the_token_or_from_elsewhere_are_refused_and_record_nothing() {
    let (p, _) = waiting_for_prod();
    let before = p.audit_events().len();
    let ui = Ui::start(&p);
    let cookie = format!("Cookie: ferry_ui={}\r\n", ui.token);
    for (what, method, path, headers) in [
        ("no token", "GET", "/p/shop".to_owned(), ui.host()),
        ("a wrong token", "GET", "/?token=00".to_owned(), ui.host()),
        ("another site's page", "GET", "/p/shop".to_owned(), format!("{}{cookie}Origin: http://evil.example\r\n", ui.host())),
        ("a rebound DNS name", "GET", "/p/shop".to_owned(), format!("Host: evil.example:{}\r\n{cookie}", ui.port)),
        ("a form from another site", "POST", "/p/shop".to_owned(), format!("{}{cookie}Origin: https://evil.example\r\n", ui.host())),
    ] {
        let a = ui.request(method, &path, &headers);
        assert_eq!(a.status, 403, "{what}: {}", a.head);
        assert!(!a.body.contains("shop"), "{what}: nothing of the pipeline is shown: {}", a.body);
    }
    assert_eq!(p.audit_events().len(), before, "nothing was recorded");

    // Stopped by SIGTERM, it exits by itself.
    let mut ui = ui;
    assert!(std::process::Command::new("kill").args(["-TERM", &ui.child.id().to_string()]).status().unwrap().success());
    let status = ui.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_pages_export_as_static_files_with_relative_links() {
    let (p, id) = waiting_for_prod();
    let r = p.ferry("viewer", &["ui", "pipeline.yaml", "--export", "site"]).expect(0);
    assert!(r.stdout.contains("wrote 7 file(s) into site"), "{}", r.stdout);
    assert!(p.path(&format!("site/p-shop-{id}.html")).is_file(), "each release shown has its page");
    let index = std::fs::read_to_string(p.path("site/index.html")).unwrap();
    assert!(index.contains("<a href=\"p-shop.html\">shop</a>"), "{index}");
    let page = std::fs::read_to_string(p.path("site/p-shop.html")).unwrap();
    assert!(page.contains(&format!("<a class=\"id\" href=\"p-shop-{id}.html\">{id}</a>")) && page.contains("0 of 2 approvals"), "{page}");
    assert!(page.contains("<link rel=\"stylesheet\" href=\"assets/ui.css\">") && !page.contains("live.js"), "static: no refresh");
    assert!(p.path("site/assets/ui.css").is_file());
    let release = std::fs::read_to_string(p.path(&format!("site/p-shop-{id}.html"))).unwrap();
    assert!(release.contains("<main>") && !release.contains("live.js"), "static: no refresh");
    // Never over an existing directory.
    let again = p.ferry("viewer", &["ui", "pipeline.yaml", "--export", "site"]).expect(2);
    assert!(again.stderr.contains("`site` already exists"), "{}", again.stderr);
}

#[test]
fn a_release_page_shows_digests_the_verified_signature_and_a_forged_approval_as_invalid() {
    let (p, id) = waiting_for_prod();
    let dir = p.home().join(format!("store/approvals/shop/{id}/prod"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("0-alice-forged.json"), format!(r#"{{"actor": "alice", "verdict": "approve", "release": "{id}"}}"#)).unwrap();
    let ui = Ui::start(&p);
    let page = ui.get("/p/shop");
    assert!(
        page.body.contains(&format!("<a class=\"id\" href=\"/p/shop/r/{id}\">{id}</a>")),
        "release ids link to their pages:\n{}",
        page.body
    );
    let r = ui.get(&format!("/p/shop/r/{id}"));
    assert_eq!(r.status, 200, "{}", r.body);
    let manifest = p.manifest(&id);
    let sha = manifest["artifacts"][0]["sha256"].as_str().unwrap();
    assert!(r.body.contains(&format!("<code>{sha}</code>")), "the artifact's digest:\n{}", r.body);
    assert!(
        r.body.contains("signature and digests: <span class=\"state s-succeeded\">✓ valid</span> signed with the pinned key"),
        "{}",
        r.body
    );
    assert!(r.body.contains("<span class=\"state s-failed\">✗ not counted</span>") && r.body.contains("0-alice-forged.json"), "{}", r.body);
    assert!(r.body.contains("0 of 2 approvals"), "the forgery counts for nothing:\n{}", r.body);
    assert!(
        r.body.contains("deployment attestation: <span class=\"state s-succeeded\">✓ valid</span>"),
        "staging's success is attested:\n{}",
        r.body
    );
    assert!(r.body.contains("<code>approval_pending</code> in <strong>prod</strong> by deployer"), "the audit timeline:\n{}", r.body);
    // Like the pipeline's page, it refreshes in place (an approver waits on it).
    assert!(r.body.contains(&format!("<main id=\"live\" data-refresh=\"/p/shop/r/{id}?part=main\"")), "{}", r.body);
    let part = ui.get(&format!("/p/shop/r/{id}?part=main"));
    assert!(part.body.starts_with("<h1>Release") && part.body.contains("0 of 2 approvals"), "{}", part.body);
    assert_eq!(ui.get("/p/shop/r/r0000000000000000").status, 404);
    assert_eq!(ui.get("/p/shop/r/not-an-id").status, 404);
}

/// The CSRF token the decision page's form carries.
pub fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").unwrap_or_else(|| panic!("no CSRF token in the form:\n{page}")) + 19;
    page[at..].split('"').next().unwrap().to_owned()
}

#[test]
fn an_approver_decides_from_the_page_only_with_its_csrf_token_and_the_protected_stage_typed() {
    let p = Project::new(&pipeline(TWO_APPROVERS).replace("stages:\n", "policy:\n  protected_stages: [prod]\nstages:\n"));
    p.ferry("admin", &["trust", "publish", "pipeline.yaml"]).expect(0);
    let id = p.build();
    p.promote("deployer", &id, "staging").expect(0);
    p.promote("deployer", &id, "prod").expect(3);
    let ui = Ui::start_as(&p, "alice");
    let path = format!("/p/shop/r/{id}/s/prod");
    let page = ui.get(&path);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("You are <strong>alice</strong>, deciding as approver <strong>alice</strong>"), "{}", page.body);
    assert!(
        page.body.contains("<label for=\"confirm\"><strong>prod</strong> is a protected stage: type its name to confirm</label>"),
        "{}",
        page.body
    );
    let csrf = csrf_of(&page.body);
    let (events, decisions) = (p.audit_events().len(), || p.home().join(format!("store/approvals/shop/{id}/prod")));
    let recorded = || std::fs::read_dir(decisions()).map(|d| d.count()).unwrap_or(0);

    let cookie = format!("Cookie: ferry_ui={}\r\n", ui.token);
    let origin = format!("Origin: http://127.0.0.1:{}\r\n", ui.port);
    let form = format!("csrf={csrf}&verdict=approve&confirm=prod");
    for (what, headers, body) in [
        ("no token", format!("{}{origin}", ui.host()), form.clone()),
        ("a foreign Origin", format!("{}{cookie}Origin: http://evil.example\r\n", ui.host()), form.clone()),
        ("no Origin", format!("{}{cookie}", ui.host()), form.clone()),
        ("no CSRF token", format!("{}{cookie}{origin}", ui.host()), "verdict=approve&confirm=prod".to_owned()),
        (
            "another launch's CSRF token",
            format!("{}{cookie}{origin}", ui.host()),
            format!("csrf={}&verdict=approve&confirm=prod", "0".repeat(48)),
        ),
    ] {
        let a = ui.send("POST", &path, &headers, &body);
        assert_eq!(a.status, 403, "{what}: {}", a.body);
    }
    assert_eq!((p.audit_events().len(), recorded()), (events, 0), "a refused form records nothing, not even in the audit log");

    // The protected stage's name not typed: nothing recorded.
    let sent = |body: &str| ui.send("POST", &path, &format!("{}{cookie}{origin}", ui.host()), body);
    let untyped = sent(&format!("csrf={csrf}&verdict=approve&confirm=staging"));
    assert_eq!(untyped.status, 422, "{}", untyped.body);
    assert!(untyped.body.contains("`prod` is a protected stage and its name was not typed to confirm"), "{}", untyped.body);
    assert_eq!(recorded(), 0);

    let done = sent(&format!("csrf={csrf}&verdict=approve&confirm=prod&comment=checked+the+change+set"));
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains(&format!("alice approved <span class=\"id\">{id}</span> for <strong>prod</strong>")), "{}", done.body);
    assert!(done.body.contains("1 of 2 approvals so far (alice)"), "{}", done.body);
    assert_eq!(recorded(), 1);
    // Exactly the record `ferry approve` writes: bob's from the command line completes it.
    let approved = p.audit_events().into_iter().find(|e| e["kind"] == "approved").expect("audited");
    assert_eq!((approved["actor"].as_str(), approved["details"]["comment"].as_str()), (Some("alice"), Some("checked the change set")));
    let again = sent(&form);
    assert_eq!(again.status, 422);
    assert!(again.body.contains("`alice` has already approved"), "{}", again.body);
    p.approve("bob", &id, "prod").expect(0);
    p.promote("deployer", &id, "prod").expect(0);
}

#[test]
fn the_audit_page_proves_the_chain_and_filters_events_by_release_stage_actor_and_kind() {
    let (p, id) = waiting_for_prod();
    let ui = Ui::start(&p);
    let all = ui.get("/p/shop/audit");
    assert_eq!(all.status, 200, "{}", all.body);
    let n = p.audit_events().len();
    assert!(all.body.contains(&format!("✓ intact</span> {n} events, every one hashed and linked")), "{}", all.body);
    assert!(
        all.body.contains(&format!(
            "signed checkpoints, each verified with the pipeline's pinned key; the newest vouches for events #1–#{n}, signed "
        )),
        "{}",
        all.body
    );
    assert!(all.body.contains(&format!("<caption>{n} of {n} events, newest first</caption>")), "{}", all.body);
    assert!(all.body.contains("<option>approval_pending</option>"), "the kinds the log holds: {}", all.body);

    let rows = |body: &str| body.matches("<tr><td>").count();
    let by_deployer_in_prod = ui.get("/p/shop/audit?actor=deployer&stage=prod&kind=approval_pending&release=");
    assert_eq!(rows(&by_deployer_in_prod.body), 1, "{}", by_deployer_in_prod.body);
    assert!(by_deployer_in_prod.body.contains("<option selected>approval_pending</option>"), "the filter stays filled in");
    let of_release = ui.get(&format!("/p/shop/audit?release={id}"));
    let with_release = p.audit_events().iter().filter(|e| e["release"] == id.as_str()).count();
    assert_eq!(rows(&of_release.body), with_release, "{}", of_release.body);
    assert_eq!(rows(&ui.get("/p/shop/audit?actor=nobody").body), 0);

    // An edited event: the page says where the chain breaks.
    p.unbatch_audit();
    let f = p.home().join("audit/events/00000000/000000000002.json");
    let text = std::fs::read_to_string(&f).unwrap().replace("\"actor\":\"builder\"", "\"actor\":\"someone\"");
    std::fs::write(&f, text).unwrap();
    let broken = ui.get("/p/shop/audit");
    assert!(broken.body.contains("✗ NOT intact</span> the first bad event is #2: event 2 does not match its own hash"), "{}", broken.body);
}

#[test]
fn the_actions_export_step_writes_the_web_view_and_links_it_from_the_job_summary() {
    let (p, id) = waiting_for_prod();
    let script = crate::install::step_script("Export the web view");
    let runner_temp = p.path("runner-temp");
    std::fs::create_dir_all(runner_temp.join("ferry-bin")).unwrap();
    std::os::unix::fs::symlink(crate::support::FERRY, runner_temp.join("ferry-bin/ferry")).unwrap();
    let step = |dir: &str, link: &str| -> crate::support::Run {
        let mut bash = p.bash("ci", &script);
        bash.env("RUNNER_TEMP", &runner_temp)
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", p.path("summary.md"))
            .env("FERRY_PIPELINE", "pipeline.yaml")
            .env("FERRY_UI_EXPORT", dir)
            .env("FERRY_UI_LINK", link);
        bash.output().unwrap().into()
    };
    step("web-view", "").expect(0);
    assert!(p.path(&format!("web-view/p-shop-{id}.html")).is_file());
    let summary = std::fs::read_to_string(p.path("summary.md")).unwrap();
    assert!(summary.contains("### ferry web view\n\n4 pages exported to `web-view`: open `web-view/index.html`"), "{summary}");

    step("published", "https://releases.example.com/shop/").expect(0);
    let summary = std::fs::read_to_string(p.path("summary.md")).unwrap();
    assert!(summary.contains("[Open the web view](https://releases.example.com/shop/) — 4 pages exported from `published`"), "{summary}");
    // Nothing that could end the link or run script is linked; nothing is written.
    let bad = step("evil", "javascript:alert(1)").expect(2);
    assert!(bad.stderr.contains("is not an https:// address"), "{}", bad.stderr);
    assert!(!p.path("evil").exists());
}

#[test]
fn a_rejection_from_the_page_is_signed_with_its_comment_and_ends_the_stage() {
    let (p, id) = waiting_for_prod();
    let ui = Ui::start_as(&p, "bob");
    let path = format!("/p/shop/r/{id}/s/prod");
    let csrf = csrf_of(&ui.get(&path).body);
    let headers = format!("{}Cookie: ferry_ui={}\r\nOrigin: http://127.0.0.1:{}\r\n", ui.host(), ui.token, ui.port);
    let done = ui.send("POST", &path, &headers, &format!("csrf={csrf}&verdict=reject&comment=the+migration+is+not+reversible"));
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains(&format!("bob rejected <span class=\"id\">{id}</span> for <strong>prod</strong>")), "{}", done.body);
    let rejected = p.audit_events().into_iter().find(|e| e["kind"] == "rejected").expect("audited");
    assert_eq!(
        (rejected["actor"].as_str(), rejected["details"]["comment"].as_str()),
        (Some("bob"), Some("the migration is not reversible"))
    );
    let page = ui.get("/p/shop");
    assert!(page.body.contains("<span class=\"state s-rejected\">rejected</span>"), "{}", page.body);
    p.promote("deployer", &id, "prod").expect(1);
}
