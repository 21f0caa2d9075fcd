//! A fault-injecting HTTP proxy between ferry and moto, on 127.0.0.1. It forwards requests one
//! at a time and, for a request matching a rule (method, a path substring, optionally a body
//! substring), can lose the answer after the upstream handled it, drop the connection before
//! forwarding, answer 500/503 itself, or throttle (S3's `SlowDown`). It also counts what went
//! through, so a benchmark can print HTTP request and AssumeRole counts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What to do to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it, let the upstream act, then close the client's connection without an answer.
    LoseAnswer,
    /// Close the client's connection without forwarding.
    Drop,
    /// Answer this HTTP status (with an S3-style `InternalError` body) without forwarding.
    Status(u16),
    /// Answer 503 `SlowDown` without forwarding.
    Throttle,
}

/// Which requests a fault applies to, and how often.
#[derive(Debug, Clone)]
pub struct Rule {
    pub method: String,
    /// A substring of the request path (with its query).
    pub path: String,
    /// A substring the body must contain, if any.
    pub body: Option<String>,
    pub fault: Fault,
    /// Matching requests to let through first.
    pub skip: usize,
    /// How many matching requests get the fault.
    pub times: usize,
}

impl Rule {
    /// The first `method` request whose path contains `path` gets `fault`, once.
    pub fn once(method: &str, path: &str, fault: Fault) -> Self {
        Rule { method: method.to_owned(), path: path.to_owned(), body: None, fault, skip: 0, times: 1 }
    }
    #[must_use]
    pub fn times(mut self, n: usize) -> Self {
        self.times = n;
        self
    }
    #[must_use]
    pub fn skip(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }
}

/// One request that went through.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The STS or other query-protocol action (`Action=...` in the body), if any.
    pub action: Option<String>,
    /// The JSON-protocol operation (`X-Amz-Target`, e.g. `CodeBuild_20161006.StartBuild`), if any.
    pub target: Option<String>,
    /// The body of a JSON-protocol request (empty for others, which may be large uploads).
    pub body: String,
    pub fault: Option<Fault>,
}

#[derive(Default)]
struct Shared {
    rules: Vec<(Rule, usize)>,
    seen: Vec<Seen>,
    /// Client connections accepted.
    connections: usize,
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (a `127.0.0.1` port).
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                s.lock().unwrap().connections += 1;
                let s = s.clone();
                std::thread::spawn(move || serve(conn, upstream, &s));
            }
        });
        Proxy { port, shared, stop }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Adds a rule; returns its index for `fired`.
    pub fn inject(&self, rule: Rule) -> usize {
        let mut s = self.shared.lock().unwrap();
        s.rules.push((rule, 0));
        s.rules.len() - 1
    }

    /// How many requests rule `id` hit.
    pub fn fired(&self, id: usize) -> usize {
        self.shared.lock().unwrap().rules[id].1
    }

    /// Removes every rule (the counts of requests stay).
    pub fn clear_rules(&self) {
        self.shared.lock().unwrap().rules.clear();
    }

    /// The client connections accepted so far, and forgets them.
    pub fn take_connections(&self) -> usize {
        std::mem::take(&mut self.shared.lock().unwrap().connections)
    }

    /// The requests seen so far, and forgets them.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut self.shared.lock().unwrap().seen)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// A request or response head and its body, as raw bytes to forward unchanged.
struct Message {
    head: Vec<u8>,
    body: Vec<u8>,
    first_line: String,
    headers: Vec<(String, String)>,
}

impl Message {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The raw head, its first line and its headers.
type Head = (Vec<u8>, String, Vec<(String, String)>);

fn read_head(r: &mut BufReader<TcpStream>) -> Option<Head> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if r.read_until(b'\n', &mut line).ok()? == 0 {
            return None;
        }
        head.extend_from_slice(&line);
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let first = lines.next()?.to_owned();
    let headers = lines.filter_map(|l| l.split_once(':').map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))).collect();
    Some((head, first, headers))
}

/// Reads a body framed by `Content-Length` or chunked encoding (kept as sent).
fn read_body(r: &mut BufReader<TcpStream>, headers: &[(String, String)], until_close: bool) -> Option<Vec<u8>> {
    let get = |n: &str| headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.clone());
    if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line).ok()?;
            body.extend_from_slice(&size_line);
            let size = usize::from_str_radix(String::from_utf8_lossy(&size_line).trim().split(';').next()?, 16).ok()?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut t = Vec::new();
                    r.read_until(b'\n', &mut t).ok()?;
                    body.extend_from_slice(&t);
                    if t == b"\r\n" || t.is_empty() {
                        return Some(body);
                    }
                }
            }
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).ok()?;
            body.extend_from_slice(&chunk);
        }
    }
    if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        let mut body = vec![0; len];
        r.read_exact(&mut body).ok()?;
        return Some(body);
    }
    let mut body = Vec::new();
    if until_close {
        r.read_to_end(&mut body).ok()?;
    }
    Some(body)
}

fn read_message(r: &mut BufReader<TcpStream>, response_to: Option<&str>) -> Option<Message> {
    let (head, first_line, headers) = read_head(r)?;
    let no_body = response_to.is_some_and(|m| m == "HEAD")
        || response_to.is_some() && ["204", "304"].iter().any(|c| first_line.split(' ').nth(1) == Some(c));
    let body = if no_body { Vec::new() } else { read_body(r, &headers, response_to.is_some())? };
    Some(Message { head, body, first_line, headers })
}

fn fault_for(shared: &Mutex<Shared>, method: &str, path: &str, body: &[u8]) -> Option<Fault> {
    let mut s = shared.lock().unwrap();
    let body = String::from_utf8_lossy(body);
    for (rule, fired) in &mut s.rules {
        if rule.method == method && path.contains(&rule.path) && rule.body.as_ref().is_none_or(|b| body.contains(b.as_str())) {
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            if *fired < rule.times {
                *fired += 1;
                return Some(rule.fault);
            }
        }
    }
    None
}

fn answer(client: &mut TcpStream, status: u16, code: &str) {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    );
    let reason = if status == 503 { "Service Unavailable" } else { "Internal Server Error" };
    let _ = write!(client, "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\n\r\n{body}", body.len());
}

fn serve(client: TcpStream, upstream: u16, shared: &Mutex<Shared>) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(120)));
    let Ok(write_half) = client.try_clone() else { return };
    let mut client_w = write_half;
    let mut reader = BufReader::new(client);
    while let Some(req) = read_message(&mut reader, None) {
        let mut parts = req.first_line.split(' ');
        let (method, path) = (parts.next().unwrap_or("").to_owned(), parts.next().unwrap_or("").to_owned());
        let text = String::from_utf8_lossy(&req.body).into_owned();
        let action = text.split('&').find_map(|kv| kv.strip_prefix("Action=")).map(str::to_owned);
        let fault = fault_for(shared, &method, &path, &req.body);
        let target = req.header("x-amz-target").map(str::to_owned);
        let body = if target.is_some() { text.clone() } else { String::new() };
        shared.lock().unwrap().seen.push(Seen { method: method.clone(), path: path.clone(), action, target, body, fault });
        match fault {
            Some(Fault::Drop) => {
                let _ = client_w.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::Status(code)) => {
                answer(&mut client_w, code, "InternalError");
                continue;
            }
            Some(Fault::Throttle) => {
                answer(&mut client_w, 503, "SlowDown");
                continue;
            }
            Some(Fault::LoseAnswer) | None => {}
        }
        let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else { return };
        let mut up_w = match up.try_clone() {
            Ok(u) => u,
            Err(_) => return,
        };
        // One request per upstream connection, so the response ends where it closes at the latest.
        let head = String::from_utf8_lossy(&req.head).replace("\r\nConnection: keep-alive", "\r\nConnection: close");
        if up_w.write_all(head.as_bytes()).and_then(|()| up_w.write_all(&req.body)).is_err() {
            return;
        }
        let mut up_r = BufReader::new(up);
        let Some(resp) = read_message(&mut up_r, Some(&method)) else { return };
        if fault == Some(Fault::LoseAnswer) {
            let _ = client_w.shutdown(Shutdown::Both);
            return;
        }
        let close = req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let mut head = String::from_utf8_lossy(&resp.head).into_owned();
        if resp.header("content-length").is_none() && resp.header("transfer-encoding").is_none() && !resp.body.is_empty() {
            // Read to the upstream's close: tell the client the length.
            head = head.replacen("\r\n\r\n", &format!("\r\nContent-Length: {}\r\n\r\n", resp.body.len()), 1);
        }
        let head = head.replace("\r\nConnection: close", "").replace("\r\nconnection: close", "");
        if client_w.write_all(head.as_bytes()).and_then(|()| client_w.write_all(&resp.body)).is_err() || close {
            return;
        }
    }
}
