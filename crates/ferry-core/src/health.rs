//! The http gate: probe a URL every `interval` until the check has passed without
//! interruption for `soak`, or `timeout` runs out. A failure during the soak starts it over,
//! so a service that flaps never passes.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::pipeline::HttpGate;
use crate::ports::HttpProbe;

/// Why one probe failed, or `None` when it passed.
pub fn judge(gate: &HttpGate, status: u16, body: &str) -> Option<String> {
    if status != gate.status {
        return Some(format!("status {status}, expected {}", gate.status));
    }
    if let Some(text) = &gate.body_contains
        && !body.contains(text.as_str())
    {
        return Some(format!("the body does not contain `{text}`"));
    }
    if let Some((field, expected)) = &gate.json {
        let Ok(v) = serde_json::from_str::<Value>(body) else { return Some("the body is not JSON".into()) };
        let found = field.split('.').try_fold(&v, |v, key| v.get(key));
        let actual = match found {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => return Some(format!("the JSON body has no field `{field}`")),
        };
        if &actual != expected {
            return Some(format!("`{field}` is `{actual}`, expected `{expected}`"));
        }
    }
    None
}

/// Runs the gate to completion: `Ok(summary)` when it held for the soak, `Err(why)` otherwise.
pub fn check(gate: &HttpGate, probe: &dyn HttpProbe) -> Result<String, String> {
    let start = Instant::now();
    let mut healthy_since: Option<Instant> = None;
    let mut probes = 0u32;
    let mut last_failure = String::from("no probe completed");
    loop {
        let per_probe = gate.interval.max(Duration::from_secs(1)).min(gate.timeout);
        probes += 1;
        let failure = match probe.get(&gate.url, per_probe) {
            Ok((status, body)) => judge(gate, status, &body),
            Err(e) => Some(e.message),
        };
        let now = Instant::now();
        match failure {
            None => {
                let since = *healthy_since.get_or_insert(now);
                if now.duration_since(since) >= gate.soak {
                    crate::hooks::progress_done(&format!("soak {}", gate.url));
                    return Ok(format!("healthy for {} ({probes} probes)", crate::clock::human(gate.soak)));
                }
            }
            Some(why) => {
                if healthy_since.is_some() {
                    last_failure = format!("flapped during the soak: {why}");
                } else {
                    last_failure = why;
                }
                healthy_since = None;
            }
        }
        let held = healthy_since.map_or(Duration::ZERO, |since| now.duration_since(since));
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        crate::hooks::progress(&format!("soak {}", gate.url), ms(held), ms(gate.soak), false);
        if now.duration_since(start) + gate.interval > gate.timeout {
            crate::hooks::progress_done(&format!("soak {}", gate.url));
            return Err(format!("not healthy within {} ({probes} probes); last: {last_failure}", crate::clock::human(gate.timeout)));
        }
        std::thread::sleep(gate.interval);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::pipeline::When;

    struct Script(Vec<u16>, Cell<usize>);

    impl HttpProbe for Script {
        fn get(&self, _: &str, _: Duration) -> crate::Result<(u16, String)> {
            let i = self.1.get();
            self.1.set(i + 1);
            Ok((self.0[i.min(self.0.len() - 1)], r#"{"status": "ok", "checks": {"db": true}}"#.into()))
        }
    }

    fn gate(soak_ms: u64, timeout_ms: u64) -> HttpGate {
        HttpGate {
            url: "http://127.0.0.1/health".into(),
            status: 200,
            body_contains: None,
            json: None,
            interval: Duration::from_millis(10),
            soak: Duration::from_millis(soak_ms),
            timeout: Duration::from_millis(timeout_ms),
            when: When::After,
        }
    }

    #[test]
    fn body_and_json_expectations() {
        let mut g = gate(0, 100);
        g.json = Some(("checks.db".into(), "true".into()));
        assert_eq!(judge(&g, 200, r#"{"checks": {"db": true}}"#), None);
        assert!(judge(&g, 200, r#"{"checks": {"db": false}}"#).unwrap().contains("expected `true`"));
        assert!(judge(&g, 503, "").unwrap().contains("status 503"));
        g.body_contains = Some("ok".into());
        assert!(judge(&g, 200, r#"{"checks": {"db": true}}"#).unwrap().contains("does not contain"));
    }

    #[test]
    fn a_flap_restarts_the_soak() {
        // Healthy, then one failure, then healthy long enough.
        let probe = Script(vec![200, 200, 500, 200, 200, 200, 200, 200, 200, 200, 200], Cell::new(0));
        assert!(check(&gate(40, 2000), &probe).is_ok());
        assert!(probe.1.get() >= 7, "the soak started over after the flap: {} probes", probe.1.get());
    }

    #[test]
    fn never_healthy_fails_at_the_timeout() {
        let probe = Script(vec![500], Cell::new(0));
        let err = check(&gate(0, 100), &probe).unwrap_err();
        assert!(err.contains("not healthy within") && err.contains("status 500"), "{err}");
    }
}
