//! Validation of stage gates: command gates (before or after the deploy), http gates (status,
//! body, JSON field, interval, soak, timeout), CloudWatch alarm gates (aws backend) and
//! deployment windows with freezes.

use std::time::Duration;

use super::keys;
use super::reader::{Cx, Fields};
use super::{AlarmGate, Backend, Freeze, Gate, HttpGate, When, Window};
use crate::clock::Timestamp;
use crate::yaml::Node;

impl Cx {
    pub(super) fn gates(&mut self, node: &Node, path: &str) -> Vec<Gate> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path).iter().enumerate() {
            let p = format!("{path}[{i}]");
            match self.typed(item, &p, keys::PLANNED_GATES, &["command", "window", "http", "alarm"]) {
                Some("alarm") => {
                    if let Some(a) = self.alarm_gate(item, &p) {
                        out.push(Gate::Alarm(a));
                    }
                }
                Some("http") => {
                    if let Some(h) = self.http_gate(item, &p) {
                        out.push(Gate::Http(h));
                    }
                }
                Some("command") => {
                    let Some(f) = self.fields(item, &p, keys::COMMAND_GATE) else { continue };
                    let run = self.required(&f, "run").and_then(|n| self.string(n, &f.path("run")));
                    let timeout = f.get("timeout").and_then(|n| self.duration(n, &f.path("timeout")));
                    let Some(when) = self.when(&f) else { continue };
                    if let Some(run) = run {
                        out.push(Gate::Command { run, timeout, when });
                    }
                }
                Some(_) => {
                    if let Some(w) = self.window(item, &p) {
                        out.push(Gate::Window(w));
                    }
                }
                None => {}
            }
        }
        out
    }

    pub(super) fn when(&mut self, f: &Fields<'_>) -> Option<When> {
        match f.get("when") {
            None => Some(When::Before),
            Some(n) => self.one_of(n, &f.path("when"), "`when`", &[("before", When::Before), ("after", When::After)]),
        }
    }

    fn alarm_gate(&mut self, item: &Node, path: &str) -> Option<AlarmGate> {
        let f = self.fields(item, path, keys::ALARM_GATE)?;
        if self.backend != Some(Backend::Aws) {
            self.error(item, path, "the `alarm` gate needs `backend: aws` (CloudWatch)".into(), None);
        }
        let mut alarms = Vec::new();
        match f.get("alarms") {
            None => self.error(item, &f.path("alarms"), "missing required key `alarms`".into(), Some("list the alarm names".into())),
            Some(list) => {
                for (i, a) in self.seq(list, &f.path("alarms")).iter().enumerate() {
                    alarms.extend(self.string(a, &format!("{}[{i}]", f.path("alarms"))));
                }
                if alarms.is_empty() {
                    self.error(list, &f.path("alarms"), "an alarm gate needs at least one alarm".into(), None);
                }
            }
        }
        let insufficient_data_ok = match f.get("insufficient_data").map(|n| (n, n.as_scalar())) {
            None | Some((_, Some("fail"))) => Some(false),
            Some((_, Some("ok"))) => Some(true),
            Some((n, _)) => {
                self.error(n, &f.path("insufficient_data"), format!("expected `fail` or `ok`, found {}", n.describe()), None);
                None
            }
        };
        let soak = f.get("soak").map_or(Some(Duration::ZERO), |n| self.duration(n, &f.path("soak")));
        let interval = f.get("interval").map_or(Some(Duration::from_secs(30)), |n| self.duration(n, &f.path("interval")));
        let when = self.when(&f)?;
        Some(AlarmGate { alarms, insufficient_data_ok: insufficient_data_ok?, soak: soak?, interval: interval?, when })
    }

    fn http_gate(&mut self, item: &Node, path: &str) -> Option<HttpGate> {
        let f = self.fields(item, path, keys::HTTP_GATE)?;
        let url = self.required(&f, "url").and_then(|n| {
            let u = self.string(n, &f.path("url"))?;
            if u.starts_with("http://") || u.starts_with("https://") {
                Some(u)
            } else {
                self.error(n, &f.path("url"), format!("`{u}` is not an http(s) URL"), None);
                None
            }
        });
        let status = match f.get("status") {
            None => Some(200),
            Some(n) => match n.as_scalar().and_then(|s| s.parse::<u16>().ok()).filter(|s| (100..600).contains(s)) {
                Some(s) => Some(s),
                None => {
                    self.error(n, &f.path("status"), format!("invalid HTTP status {}", n.describe()), None);
                    None
                }
            },
        };
        let body_contains = self.opt_string(&f, "body_contains");
        let json = match (self.opt_string(&f, "json_field"), self.opt_string(&f, "json_equals")) {
            (Some(field), Some(value)) => Some((field, value)),
            (None, None) => None,
            _ => {
                self.error(item, path, "`json_field` and `json_equals` go together".into(), None);
                None
            }
        };
        let mut dur = |key: &str, default: u64| match f.get(key) {
            None => Some(Duration::from_secs(default)),
            Some(n) => self.duration(n, &f.path(key)),
        };
        let (interval, soak, timeout) = (dur("interval", 10), dur("soak", 0).or(Some(Duration::ZERO)), dur("timeout", 300));
        let when = self.when(&f);
        Some(HttpGate { url: url?, status: status?, body_contains, json, interval: interval?, soak: soak?, timeout: timeout?, when: when? })
    }

    fn window(&mut self, item: &Node, path: &str) -> Option<Window> {
        let f = self.fields(item, path, keys::WINDOW_GATE)?;
        let timezone = self.opt_string(&f, "timezone").unwrap_or_else(|| "UTC".into());
        if let (Err(e), Some(n)) = (crate::window::check_timezone(&timezone), f.get("timezone")) {
            self.error(n, &f.path("timezone"), e.message, Some("use an IANA name such as `Europe/Berlin` or `UTC`".into()));
        }
        let mut days = Vec::new();
        if let Some(list) = f.get("days") {
            for (i, d) in self.seq(list, &f.path("days")).iter().enumerate() {
                match d.as_scalar().and_then(|s| crate::window::DAYS.iter().position(|x| *x == s.to_lowercase())) {
                    Some(day) => days.push(u8::try_from(day).unwrap_or(0)),
                    None => {
                        let all = crate::window::DAYS.join(", ");
                        let hint = match d.as_scalar().and_then(|s| super::reader::closest(&s.to_lowercase(), &crate::window::DAYS)) {
                            Some(day) => format!("did you mean `{day}`? use {all}"),
                            None => format!("use {all}"),
                        };
                        self.error(d, &format!("{}[{i}]", f.path("days")), format!("unknown weekday {}", d.describe()), Some(hint));
                    }
                }
            }
        }
        let hours = match f.get("hours") {
            None => None,
            Some(n) => {
                let parsed = n.as_scalar().and_then(crate::window::parse_hours);
                if parsed.is_none() {
                    let hint = "write `HH:MM-HH:MM` with the start before the end, e.g. `09:00-16:00`";
                    self.error(n, &f.path("hours"), format!("invalid hours {}", n.describe()), Some(hint.into()));
                }
                parsed
            }
        };
        let freezes = f.get("freeze").map(|n| self.freezes(n, &f.path("freeze"))).unwrap_or_default();
        Some(Window { timezone, days, hours, freezes })
    }

    /// A list of `{from, to, reason}` freeze periods.
    pub(super) fn freezes(&mut self, node: &Node, path: &str) -> Vec<Freeze> {
        let mut out = Vec::new();
        for (i, item) in self.seq(node, path).iter().enumerate() {
            let p = format!("{path}[{i}]");
            let Some(f) = self.fields(item, &p, keys::FREEZE) else { continue };
            let mut time = |key: &str| -> Option<Timestamp> {
                let n = self.required(&f, key)?;
                let s = self.string(n, &f.path(key))?;
                let t = Timestamp::parse(&s);
                if t.is_none() {
                    self.error(n, &f.path(key), format!("invalid time `{s}`"), Some("write RFC 3339, e.g. `2026-12-20T00:00:00Z`".into()));
                }
                t
            };
            let (from, to) = (time("from"), time("to"));
            let reason = self.opt_string(&f, "reason");
            if let (Some(from), Some(to)) = (from, to) {
                if from < to {
                    out.push(Freeze { from, to, reason });
                } else {
                    self.error(item, &p, "a freeze must end after it starts".into(), None);
                }
            }
        }
        out
    }
}
