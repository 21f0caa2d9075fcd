//! `ferry ui`'s pipeline page for 1,000 releases × 5 stages (`bash bench/ui.sh`): the server
//! time of `GET /p/NAME` — routing, the token check, rendering and sending the page, measured
//! at a client on 127.0.0.1 — against a target of 200 ms, and as a ratio to a reference
//! measured in the same run: serializing the same status as JSON (what `ferry status --output
//! json` does with it). The status is made in memory, with pending, approved, rejected and
//! failed cells and a waiting release in every stage: the page's cost, not a backend's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::approval::ApprovalState;
use ferry_core::clock::{Stop, Timestamp};
use ferry_core::ids::{Actor, ReleaseId, Sha256Digest};
use ferry_core::status::{ReleaseStatus, StageStatusLine, StageSummary, Status};
use ferry_ui::{Board, Listed, View};

const RELEASES: usize = 1000;
const STAGES: [&str; 5] = ["dev", "test", "staging", "canary", "prod"];
const RUNS: usize = 20;

struct Fixed(View);

impl Board for Fixed {
    fn pipelines(&self) -> Vec<Listed> {
        vec![Listed { name: "shop".into(), file: "pipeline.yaml".into(), backend: "local".into() }]
    }
    fn view(&mut self, _: &str) -> ferry_core::Result<Option<View>> {
        Ok(Some(self.0.clone()))
    }
    fn release(&mut self, _: &str, _: &str) -> ferry_core::Result<Option<ferry_ui::ReleaseView>> {
        Ok(None)
    }
    fn audit(&mut self, _: &str) -> ferry_core::Result<Option<ferry_ui::AuditView>> {
        Ok(None)
    }
    fn asking(&mut self, _: &str, _: &str, _: &str) -> ferry_core::Result<Option<ferry_ui::Asking>> {
        Ok(None)
    }
    fn decide(&mut self, _: &str, _: &str, _: &str, _: &ferry_ui::DecisionForm) -> ferry_core::Result<ferry_core::decide::Decision> {
        Err(ferry_core::Error::invalid("the benchmark decides nothing"))
    }
}

fn pipeline() -> ferry_core::pipeline::Pipeline {
    let mut yaml = String::from(
        "version: 1\nname: shop\naccounts:\n  dev: \"111111111111\"\nsigning:\n  key: test\n  public_key: keys/test.pem\nbuild:\n  account: dev\n  command: sh build.sh\n  artifacts:\n    - name: app\n      path: out/app.bin\nstages:\n",
    );
    for s in STAGES {
        yaml.push_str(&format!("  - name: {s}\n    account: dev\n    deploy:\n      - type: command\n        run: echo {s}\n"));
    }
    ferry_core::pipeline::parse_str(std::path::Path::new("pipeline.yaml"), &yaml).unwrap_or_else(|d| panic!("{d:?}"))
}

fn status() -> Status {
    let actor = |s: &str| s.parse::<Actor>().unwrap();
    let t0 = Timestamp::from_unix(1_790_000_000);
    let releases: Vec<ReleaseStatus> = (0..RELEASES)
        .map(|i| {
            let id = ReleaseId::for_manifest(&Sha256Digest::of(i.to_string().as_bytes()));
            let stages = STAGES
                .iter()
                .enumerate()
                .map(|(j, s)| {
                    let (status, approvals) = match (i + j) % 6 {
                        0 => (
                            "awaiting_approval",
                            Some(ApprovalState::Pending {
                                have: vec![actor("alice")],
                                need: 2,
                                eligible: vec![actor("bob"), actor("carol")],
                                excluded: vec![actor("builder")],
                                expires: Some(t0.plus(Duration::from_secs(3600))),
                            }),
                        ),
                        1 => ("awaiting_approval", Some(ApprovalState::Approved { by: vec![actor("alice"), actor("bob")] })),
                        2 => ("rejected", Some(ApprovalState::Rejected { by: actor("carol"), comment: Some("not now".into()), at: t0 })),
                        3 => ("failed", None),
                        4 => ("not_started", None),
                        _ => ("succeeded", None),
                    };
                    StageStatusLine {
                        stage: s.parse().unwrap(),
                        status: status.into(),
                        message: (status == "failed").then(|| "deploy action 1 exited 1".into()),
                        approvals,
                        approve_command: None,
                    }
                })
                .collect();
            ReleaseStatus {
                release: id,
                built_at: t0.plus(Duration::from_secs(i as u64 * 60)),
                builder: actor("builder"),
                commit: Some(format!("{i:040x}")),
                stages,
            }
        })
        .collect();
    let stages = STAGES
        .iter()
        .enumerate()
        .map(|(j, s)| StageSummary {
            stage: s.parse().unwrap(),
            live: Some(releases[j * 7].release.clone()),
            live_since: Some(t0),
            awaiting_approval: releases.iter().skip(j).step_by(97).map(|r| r.release.clone()).collect(),
        })
        .collect();
    Status { pipeline: "shop".into(), stages, releases, older: 0, locks: Vec::new() }
}

/// One GET with the cookie; the whole answer read.
fn get(port: u16, path: &str, cookie: &str) -> (u16, usize) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head = String::from_utf8_lossy(&raw[..raw.len().min(64)]).into_owned();
    (head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0), raw.len())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let view = View { pipeline: pipeline(), status: status() };
    let server = Arc::new(ferry_ui::Server::bind("127.0.0.1:0".parse().unwrap()).unwrap());
    let url = server.url();
    let (port, token) = url.trim_start_matches("http://127.0.0.1:").split_once("/?token=").unwrap();
    let (port, cookie): (u16, String) = (port.parse().unwrap(), format!("ferry_ui={token}"));
    let stop = Arc::new(Stop::default());
    let serving = {
        let (server, stop, mut board) = (Arc::clone(&server), Arc::clone(&stop), Fixed(view.clone()));
        std::thread::spawn(move || server.serve(&mut board, &stop))
    };
    let (status, bytes) = get(port, "/p/shop", &cookie);
    assert_eq!(status, 200, "the page did not render");
    let mut page = Vec::new();
    let mut json = Vec::new();
    for _ in 0..RUNS {
        let t = Instant::now();
        let (code, _) = get(port, "/p/shop", &cookie);
        page.push(t.elapsed());
        assert_eq!(code, 200);
        let t = Instant::now();
        let text = serde_json::to_string(&view.status).unwrap();
        json.push(t.elapsed());
        assert!(text.len() > 1000);
    }
    stop.raise();
    serving.join().unwrap().unwrap();
    let (p, j) = (median(page), median(json));
    let ratio = p.as_secs_f64() / j.as_secs_f64();
    println!("pipeline page, {RELEASES} releases x {} stages ({} KiB of HTML):", STAGES.len(), bytes / 1024);
    println!("  GET /p/shop (server time, median of {RUNS}): {:.1} ms", p.as_secs_f64() * 1000.0);
    println!("  reference, the same status as JSON: {:.1} ms; the page takes {ratio:.1}x that", j.as_secs_f64() * 1000.0);
    let ok = p < Duration::from_millis(200);
    println!(
        "{}  pipeline page for {RELEASES} releases x 5 stages in < 200 ms ({:.1} ms)",
        if ok { "PASS" } else { "FAIL" },
        p.as_secs_f64() * 1000.0
    );
    if !ok {
        std::process::exit(1);
    }
}
