//! The server on 127.0.0.1, and the static export. Every request is checked before it is
//! routed: its `Host` must be this server's own loopback address (no DNS rebinding), an
//! `Origin` if sent must be this server (no other site's page may ask), and it must carry the
//! per-launch token — in the URL the command printed (answered with a redirect that moves it
//! into a same-site, HTTP-only cookie) or in that cookie. A form sent to it (a decision) must
//! also come from this server's own page (an `Origin`, and the same one) and carry the
//! per-launch CSRF token the page's form holds. Anything else is refused with 403 and touches
//! nothing. Pages are sent with a content security policy that allows only this server's own
//! style sheet and script, and never cached.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_core::Error;
use ferry_core::clock::Stop;

use crate::Board;
use crate::pages::{self, Links};

const COOKIE: &str = "ferry_ui";
const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    // Not `no-referrer`: browsers then send `Origin: null` with a form, which the check refuses.
    ("Referrer-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
    ("X-Frame-Options", "DENY"),
];

/// A request as the handler sees it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The most a form may send.
const MAX_BODY: u64 = 16 * 1024;

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        self.url.split_once('?').map_or(self.url.as_str(), |(p, _)| p)
    }
    fn query(&self, key: &str) -> Option<&str> {
        let (_, q) = self.url.split_once('?')?;
        q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
    }
    /// The fields of the query string.
    fn query_fields(&self) -> Vec<(String, String)> {
        let q = self.url.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }
    /// The fields of a form sent as `application/x-www-form-urlencoded`.
    fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
    fn cookie(&self, name: &str) -> Option<&str> {
        self.header("Cookie")?.split(';').filter_map(|c| c.trim().split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// A response as the handler makes it.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    fn new(status: u16, content_type: &str, body: String) -> Self {
        let mut headers: Vec<(String, String)> = SECURITY_HEADERS.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        headers.push(("Content-Type".into(), content_type.to_owned()));
        Response { status, headers, body }
    }
    fn html(status: u16, body: String) -> Self {
        Self::new(status, "text/html; charset=utf-8", body)
    }
    fn refused(why: &str) -> Self {
        let body = crate::html::page(
            "Refused",
            &[("ferry".into(), None)],
            &format!(
                "<h1>Refused</h1>\n<p>{}</p>\n<p>Open the address <code>ferry ui</code> printed when it started.</p>\n",
                crate::html::esc(why)
            ),
            None,
            "/assets",
        );
        Self::html(403, body)
    }
    /// A short page: `heading`, then `text` (escaped) if any, with the way back to the index.
    fn message(status: u16, title: &str, heading: &str, text: Option<&str>) -> Self {
        let text = text.map(|t| format!("<p>{}</p>\n", crate::html::esc(t))).unwrap_or_default();
        let main = format!("<h1>{}</h1>\n{text}", crate::html::esc(heading));
        Self::html(status, crate::html::page(title, &[("ferry".into(), Some("/".into()))], &main, None, "/assets"))
    }
    fn not_found() -> Self {
        Self::message(404, "Not found", "Not found", None)
    }
}

/// Equal strings, compared in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_token() -> String {
    use rand_core::RngCore as _;
    let mut bytes = [0u8; 24];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub struct Server {
    http: tiny_http::Server,
    port: u16,
    token: String,
    /// Carried by every form this server's pages hold, required with every form sent.
    csrf: String,
}

impl Server {
    /// Listens on `addr` (a loopback address; port 0 picks a free one).
    pub fn bind(addr: std::net::SocketAddr) -> ferry_core::Result<Server> {
        if !addr.ip().is_loopback() {
            return Err(Error::invalid(format!("`ferry ui` listens on a loopback address only, not `{addr}`"))
                .hint("use --listen 127.0.0.1:PORT (reach it from elsewhere through an SSH tunnel)"));
        }
        let listener = std::net::TcpListener::bind(addr).map_err(|e| Error::failed(format!("cannot listen on `{addr}`: {e}")))?;
        let port = listener.local_addr().map_err(|e| Error::failed(e.to_string()))?.port();
        let http = tiny_http::Server::from_listener(listener, None).map_err(|e| Error::failed(format!("cannot serve on `{addr}`: {e}")))?;
        Ok(Server { http, port, token: random_token(), csrf: random_token() })
    }

    /// The address to open: the index, with the token.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/?token={}", self.port, self.token)
    }

    /// Answers requests until `stop` is raised (SIGINT/SIGTERM).
    pub fn serve(&self, board: &mut dyn Board, stop: &Stop) -> ferry_core::Result<()> {
        while !stop.is_raised() {
            let Some(mut rq) =
                self.http.recv_timeout(Duration::from_millis(200)).map_err(|e| Error::failed(format!("the web server failed: {e}")))?
            else {
                continue;
            };
            let mut body = Vec::new();
            let read = std::io::Read::read_to_end(&mut std::io::Read::take(rq.as_reader(), MAX_BODY + 1), &mut body);
            let req = Request {
                method: rq.method().as_str().to_owned(),
                url: rq.url().to_owned(),
                headers: rq.headers().iter().map(|h| (h.field.as_str().as_str().to_owned(), h.value.as_str().to_owned())).collect(),
                body,
            };
            let resp = match read {
                Ok(n) if n as u64 > MAX_BODY => Response::message(413, "Too large", "The form sent too much", None),
                Ok(_) => self.handle(&req, board),
                Err(e) => Response::message(400, "Bad request", "The request could not be read", Some(&e.to_string())),
            };
            tracing::debug!(method = %req.method, path = %req.path(), status = resp.status, "ui request");
            let mut out = tiny_http::Response::from_string(resp.body).with_status_code(resp.status);
            for (k, v) in &resp.headers {
                if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
                    out.add_header(h);
                }
            }
            if let Err(e) = rq.respond(out) {
                tracing::debug!("a ui response was not delivered: {e}");
            }
        }
        Ok(())
    }

    /// Why `req` may not be answered, if it may not.
    fn refusal(&self, req: &Request) -> Option<&'static str> {
        let port = self.port;
        let hosts = [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}")];
        let Some(host) = req.header("Host").filter(|h| hosts.iter().any(|ok| ok == h)) else {
            return Some("this server answers only requests addressed to its own loopback address (the Host header)");
        };
        if let Some(origin) = req.header("Origin")
            && origin != format!("http://{host}")
        {
            return Some("a page of another site may not use this server (the Origin header)");
        }
        None
    }

    pub(crate) fn handle(&self, req: &Request, board: &mut dyn Board) -> Response {
        if let Some(why) = self.refusal(req) {
            return Response::refused(why);
        }
        // The style sheet and the script are the same for everyone, and carry nothing.
        match (req.method.as_str(), req.path()) {
            ("GET", "/assets/ui.css") => return Response::new(200, "text/css; charset=utf-8", crate::html::CSS.to_owned()),
            ("GET", "/assets/live.js") => return Response::new(200, "text/javascript; charset=utf-8", crate::html::JS.to_owned()),
            ("GET", "/assets/icon.svg") => return Response::new(200, "image/svg+xml", crate::html::ICON.to_owned()),
            _ => {}
        }
        if let Some(t) = req.query("token") {
            if !same(t, &self.token) {
                return Response::refused("the token in this address is not this server's");
            }
            // Into a cookie, and out of the address bar and the browser's history.
            let mut r = Response::html(303, String::new());
            r.headers.push(("Location".into(), req.path().to_owned()));
            r.headers.push(("Set-Cookie".into(), format!("{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict", self.token)));
            return r;
        }
        if !req.cookie(COOKIE).is_some_and(|c| same(c, &self.token)) {
            return Response::refused("this request does not carry the token of this server");
        }
        match req.method.as_str() {
            "GET" | "HEAD" => route(req, board, &self.csrf),
            "POST" => self.post(req, board),
            _ => Response::message(405, "Not allowed", "Method not allowed", None),
        }
    }

    /// A form sent from one of this server's pages: a decision.
    fn post(&self, req: &Request, board: &mut dyn Board) -> Response {
        // `refusal` has checked an Origin sent is this server; a form must send one.
        if req.header("Origin").is_none() {
            return Response::refused("a form must come from this server's own page (the Origin header)");
        }
        let fields = req.form();
        if !fields.iter().any(|(k, v)| k == "csrf" && same(v, &self.csrf)) {
            return Response::refused("this form does not carry this server's CSRF token: open the page again and decide there");
        }
        let Some(rest) = req.path().strip_prefix("/p/") else { return Response::not_found() };
        let [name, "r", id, "s", stage] = rest.split('/').collect::<Vec<_>>()[..] else { return Response::not_found() };
        let Some(form) = crate::decision::DecisionForm::from_fields(&fields) else {
            return Response::message(400, "Bad request", "Say approve or reject", None);
        };
        match board.decide(name, id, stage, &form) {
            Ok(d) => Response::html(200, crate::decision::recorded(name, &d, id, stage)),
            Err(e) => Response::html(422, crate::decision::not_recorded(&e, req.path())),
        }
    }
}

fn route(req: &Request, board: &mut dyn Board, csrf: &str) -> Response {
    let path = req.path();
    if path == "/" {
        return Response::html(200, pages::index(&board.pipelines(), Links::Live));
    }
    let Some(rest) = path.strip_prefix("/p/") else { return Response::not_found() };
    let shown = match rest.split('/').collect::<Vec<_>>()[..] {
        [name, "r", id, "s", stage] if !name.is_empty() => {
            board.asking(name, id, stage).map(|a| a.map(|a| Response::html(200, crate::decision::page(&a, csrf))))
        }
        [name, "r", id] if !name.is_empty() && !id.is_empty() => board.release(name, id).map(|r| {
            r.map(|r| match req.query("part") {
                Some("main") => Response::html(200, crate::release::main(&r.pipeline, &r.detail, Links::Live)),
                _ => Response::html(200, crate::release::page(&r.pipeline, &r.detail, Links::Live)),
            })
        }),
        [name, "audit"] if !name.is_empty() => {
            let q = crate::audit::AuditQuery::from_fields(&req.query_fields());
            board.audit(name).map(|a| a.map(|a| Response::html(200, crate::audit::page(&a, &q, Links::Live))))
        }
        [name] if !name.is_empty() => board.view(name).map(|v| {
            v.map(|view| match req.query("part") {
                Some("main") => Response::html(200, pages::pipeline_main(&view, Links::Live)),
                _ => Response::html(200, pages::pipeline(&view, Links::Live)),
            })
        }),
        _ => return Response::not_found(),
    };
    let name = rest.split('/').next().unwrap_or_default();
    match shown {
        Ok(Some(r)) => r,
        Ok(None) => Response::not_found(),
        Err(e) => Response::message(
            if matches!(e.kind, ferry_core::ErrorKind::Verification | ferry_core::ErrorKind::Invalid) { 422 } else { 500 },
            "Error",
            &format!("Cannot show `{name}`"),
            Some(&e.to_string()),
        ),
    }
}

/// Writes every page, as it stands now, as static HTML into the new directory `dir` (with its
/// style sheet and script): `index.html`, one `p-NAME.html` per pipeline and one
/// `p-NAME-RELEASE.html` per release it shows. All or nothing: the pages are made first, then
/// written beside `dir` and moved into place, so a failure leaves no half-written export.
pub fn export(board: &mut dyn Board, dir: &Path) -> ferry_core::Result<Vec<PathBuf>> {
    if dir.exists() {
        return Err(Error::invalid(format!("`{}` already exists", dir.display())).hint("export into a new directory"));
    }
    let mut files: Vec<(String, String)> = vec![
        ("assets/ui.css".into(), crate::html::CSS.into()),
        ("assets/live.js".into(), crate::html::JS.into()),
        ("assets/icon.svg".into(), crate::html::ICON.into()),
    ];
    let listed = board.pipelines();
    files.push(("index.html".into(), pages::index(&listed, Links::Static)));
    for l in &listed {
        let Some(view) = board.view(&l.name)? else { continue };
        files.push((Links::Static.pipeline(&l.name), pages::pipeline(&view, Links::Static)));
        if let Some(a) = board.audit(&l.name)? {
            files.push((Links::Static.audit(&l.name), crate::audit::page(&a, &crate::audit::AuditQuery::default(), Links::Static)));
        }
        for r in &view.status.releases {
            if let Some(rv) = board.release(&l.name, r.release.as_str())? {
                files.push((
                    Links::Static.release(&l.name, r.release.as_str()),
                    crate::release::page(&rv.pipeline, &rv.detail, Links::Static),
                ));
            }
        }
    }
    let name = dir.file_name().map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let staging = dir.with_file_name(format!(".{name}.{}.partial", random_token()));
    let written = (|| -> ferry_core::Result<()> {
        let assets = staging.join("assets");
        std::fs::create_dir_all(&assets).map_err(|e| Error::io("create", &assets, &e))?;
        for (rel, text) in &files {
            let path = staging.join(rel);
            std::fs::write(&path, text).map_err(|e| Error::io("write", &path, &e))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| Error::io("move into place", dir, &e))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(files.iter().map(|(rel, _)| dir.join(rel)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No pipelines; a decision sent to it is counted, and refused.
    #[derive(Default)]
    struct Empty {
        decided: Vec<crate::DecisionForm>,
    }
    impl Board for Empty {
        fn pipelines(&self) -> Vec<crate::Listed> {
            Vec::new()
        }
        fn view(&mut self, _: &str) -> ferry_core::Result<Option<crate::View>> {
            Ok(None)
        }
        fn release(&mut self, _: &str, _: &str) -> ferry_core::Result<Option<crate::ReleaseView>> {
            Ok(None)
        }
        fn audit(&mut self, _: &str) -> ferry_core::Result<Option<crate::AuditView>> {
            Ok(None)
        }
        fn asking(&mut self, _: &str, _: &str, _: &str) -> ferry_core::Result<Option<crate::Asking>> {
            Ok(None)
        }
        fn decide(&mut self, _: &str, _: &str, _: &str, form: &crate::DecisionForm) -> ferry_core::Result<ferry_core::decide::Decision> {
            self.decided.push(form.clone());
            Err(Error::invalid("no such release").hint("try another"))
        }
    }

    fn server() -> Server {
        Server::bind("127.0.0.1:0".parse().unwrap()).unwrap()
    }

    fn get(s: &Server, url: &str, headers: &[(&str, &str)]) -> Response {
        let mut h: Vec<(String, String)> = vec![("Host".into(), format!("127.0.0.1:{}", s.port))];
        h.extend(headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        s.handle(&Request { method: "GET".into(), url: url.into(), headers: h, body: Vec::new() }, &mut Empty::default())
    }

    fn post(s: &Server, board: &mut Empty, url: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let mut h: Vec<(String, String)> = vec![("Host".into(), format!("127.0.0.1:{}", s.port))];
        h.extend(headers.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        s.handle(&Request { method: "POST".into(), url: url.into(), headers: h, body: body.as_bytes().to_vec() }, board)
    }

    #[test]
    fn the_token_moves_into_a_strict_cookie_and_then_opens_the_pages() {
        let s = server();
        let r = get(&s, &format!("/?token={}", s.token), &[]);
        assert_eq!(r.status, 303);
        let cookie = r.headers.iter().find(|(k, _)| k == "Set-Cookie").map(|(_, v)| v.clone()).unwrap();
        assert_eq!(cookie, format!("ferry_ui={}; Path=/; HttpOnly; SameSite=Strict", s.token));
        let ok = get(&s, "/", &[("Cookie", &format!("other=1; ferry_ui={}", s.token))]);
        assert_eq!(ok.status, 200, "{}", ok.body);
        assert!(ok.headers.iter().any(|(k, v)| k == "Content-Security-Policy" && v.starts_with("default-src 'none'")));
    }

    #[test]
    fn without_the_token_from_another_host_or_origin_it_is_refused() {
        let s = server();
        let cookie = format!("ferry_ui={}", s.token);
        assert_eq!(get(&s, "/", &[]).status, 403, "no token");
        assert_eq!(get(&s, "/?token=0123", &[]).status, 403, "a wrong token");
        assert_eq!(get(&s, "/", &[("Cookie", "ferry_ui=guess")]).status, 403, "a wrong cookie");
        assert_eq!(get(&s, "/", &[("Cookie", &cookie), ("Origin", "http://evil.example")]).status, 403, "a foreign origin");
        let rebound = s.handle(
            &Request {
                method: "GET".into(),
                url: "/".into(),
                headers: vec![("Host".into(), "evil.example".into()), ("Cookie".into(), cookie.clone())],
                body: Vec::new(),
            },
            &mut Empty::default(),
        );
        assert_eq!(rebound.status, 403, "a rebound DNS name");
    }

    #[test]
    fn a_decision_needs_the_token_this_servers_origin_and_its_csrf_token() {
        let s = server();
        let mut board = Empty::default();
        let (cookie, origin) = (format!("ferry_ui={}", s.token), format!("http://127.0.0.1:{}", s.port));
        let url = "/p/shop/r/r-1/s/prod";
        let good = format!("csrf={}&verdict=approve&confirm=prod", s.csrf);
        let refused = [
            ("no token", post(&s, &mut board, url, &[("Origin", &origin)], &good)),
            ("no Origin", post(&s, &mut board, url, &[("Cookie", &cookie)], &good)),
            ("a foreign Origin", post(&s, &mut board, url, &[("Cookie", &cookie), ("Origin", "http://evil.example")], &good)),
            ("Origin null", post(&s, &mut board, url, &[("Cookie", &cookie), ("Origin", "null")], &good)),
            ("no CSRF token", post(&s, &mut board, url, &[("Cookie", &cookie), ("Origin", &origin)], "verdict=approve&confirm=prod")),
            (
                "the session token as CSRF token",
                post(&s, &mut board, url, &[("Cookie", &cookie), ("Origin", &origin)], &format!("csrf={}&verdict=approve", s.token)),
            ),
        ];
        for (what, r) in refused {
            assert_eq!(r.status, 403, "{what}: {}", r.body);
        }
        assert!(board.decided.is_empty(), "a refused form reached the board: {:?}", board.decided);
        let sent = post(&s, &mut board, url, &[("Cookie", &cookie), ("Origin", &origin)], &good);
        assert_eq!(sent.status, 422, "the board's refusal is shown: {}", sent.body);
        assert!(
            sent.body.contains("Nothing was recorded") && sent.body.contains("no such release") && sent.body.contains("try another"),
            "{}",
            sent.body
        );
        assert_eq!(board.decided.len(), 1);
        assert_eq!(board.decided[0].typed.as_deref(), Some("prod"));
        let other = s.handle(
            &Request {
                method: "PUT".into(),
                url: url.into(),
                headers: vec![("Host".into(), format!("localhost:{}", s.port)), ("Cookie".into(), cookie)],
                body: Vec::new(),
            },
            &mut board,
        );
        assert_eq!(other.status, 405);
    }

    #[test]
    fn only_a_loopback_address_is_listened_on() {
        let e = Server::bind("0.0.0.0:0".parse().unwrap()).err().unwrap();
        assert!(e.message.contains("loopback address only"), "{e:?}");
    }
}
