//! Test support shared by ferry-aws's tests and the end-to-end tests: a moto server (the local
//! AWS API, with S3 conditional writes made atomic as on S3: `tests/conformance/moto_server.py`)
//! started on a free 127.0.0.1 port, ready when `GET /moto-api/` answers, and killed
//! when the last handle drops. Tests get several accounts by assuming roles in them.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

pub mod conformance;
pub mod lambda;
pub mod proxy;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// The test venv's bin directory (created by `scripts/setup-test-env.sh`).
pub fn venv_bin(tool: &str) -> PathBuf {
    let dir = std::env::var_os("FERRY_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| repo_root().join(".venv"));
    let path = dir.join("bin").join(tool);
    assert!(
        path.exists(),
        "`{}` is missing: run `bash scripts/setup-test-env.sh` (or `bash scripts/test.sh`) to create the test venv",
        path.display()
    );
    path
}

/// A running moto server. Shared by the tests of one binary; stops when the last `Arc` drops.
pub struct Moto {
    child: Mutex<Child>,
    pub port: u16,
}

impl Moto {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The one server of this test binary, started on first use.
    pub fn shared() -> Arc<Moto> {
        static SHARED: Mutex<Weak<Moto>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = slot.upgrade() {
            return m;
        }
        let m = Arc::new(Moto::start());
        *slot = Arc::downgrade(&m);
        m
    }

    /// Starts a fresh server of its own (for tests that switch IAM enforcement on).
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        // moto's server with S3's atomic conditional writes (see the script).
        let child = Command::new(venv_bin("python"))
            .arg(repo_root().join("tests/conformance/moto_server.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env_remove("MOTO_ACCOUNT_ID")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let moto = Moto { child: Mutex::new(child), port };
        let start = Instant::now();
        while moto.get("/moto-api/").is_none() {
            assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not become ready on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    fn request(&self, method: &str, path: &str, content_type: &str, body: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        s.write_all(req.as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, out))
    }

    fn get(&self, path: &str) -> Option<u16> {
        self.request("GET", path, "text/plain", "").map(|(c, _)| c).filter(|c| *c == 200)
    }

    /// Turns IAM enforcement on (identity policies checked) or off.
    pub fn enforce_iam(&self, on: bool) {
        let (code, out) = self.request("POST", "/moto-api/reset-auth", "text/plain", if on { "0" } else { "inf" }).expect("reset-auth");
        assert_eq!(code, 200, "{out}");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}
