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

/// Runs an alarm gate: every alarm must be OK (INSUFFICIENT_DATA only if the gate allows it),
/// continuously for `soak`; any alarm in ALARM fails at once, naming it and CloudWatch's reason.
pub fn check_alarms(
    gate: &crate::pipeline::AlarmGate,
    target: &crate::ports::Target,
    probe: &dyn crate::ports::AlarmProbe,
) -> Result<String, String> {
    let start = Instant::now();
    let mut checks = 0u32;
    loop {
        checks += 1;
        let states = probe.states(target, &gate.alarms).map_err(|e| e.message)?;
        for name in &gate.alarms {
            let Some((_, state, reason)) = states.iter().find(|(n, _, _)| n == name) else {
                return Err(format!("alarm `{name}` does not exist in account {}", target.account));
            };
            let ok = state == "OK" || (state == "INSUFFICIENT_DATA" && gate.insufficient_data_ok);
            if !ok {
                return Err(format!("alarm `{name}` is {state}: {reason}"));
            }
        }
        if start.elapsed() >= gate.soak {
            let held = if gate.soak.is_zero() { String::new() } else { format!(" for {}", crate::clock::human(gate.soak)) };
            return Ok(format!("{} alarm(s) OK{held} ({checks} check(s))", gate.alarms.len()));
        }
        std::thread::sleep(gate.interval.min(gate.soak.saturating_sub(start.elapsed())).max(Duration::from_millis(10)));
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

    struct Alarms(std::cell::RefCell<Vec<Vec<(String, String, String)>>>);

    impl crate::ports::AlarmProbe for Alarms {
        fn states(&self, _: &crate::ports::Target, _: &[String]) -> crate::Result<Vec<(String, String, String)>> {
            let mut v = self.0.borrow_mut();
            Ok(if v.len() > 1 { v.remove(0) } else { v[0].clone() })
        }
    }

    fn state(name: &str, s: &str) -> (String, String, String) {
        (name.to_owned(), s.to_owned(), format!("because {s}"))
    }

    fn alarm_gate(soak_ms: u64, insufficient_data_ok: bool) -> crate::pipeline::AlarmGate {
        crate::pipeline::AlarmGate {
            alarms: vec!["a".into(), "b".into()],
            insufficient_data_ok,
            soak: Duration::from_millis(soak_ms),
            interval: Duration::from_millis(5),
            when: When::After,
        }
    }

    fn target() -> crate::ports::Target {
        crate::ports::Target {
            account: "555555555555".parse().unwrap(),
            role: None,
            region: None,
            session_name: "s".into(),
            actor: "a".parse().unwrap(),
            tags: Vec::new(),
        }
    }

    #[test]
    fn alarms_must_all_be_ok_and_stay_ok_for_the_soak() {
        let ok = Alarms(vec![vec![state("a", "OK"), state("b", "OK")]].into());
        assert!(check_alarms(&alarm_gate(30, false), &target(), &ok).unwrap().starts_with("2 alarm(s) OK for"));
        let flips = Alarms(vec![vec![state("a", "OK"), state("b", "OK")], vec![state("a", "OK"), state("b", "ALARM")]].into());
        assert_eq!(check_alarms(&alarm_gate(1000, false), &target(), &flips).unwrap_err(), "alarm `b` is ALARM: because ALARM");
    }

    #[test]
    fn insufficient_data_and_missing_alarms_fail_unless_allowed() {
        let unknown = Alarms(vec![vec![state("a", "OK"), state("b", "INSUFFICIENT_DATA")]].into());
        assert!(check_alarms(&alarm_gate(0, false), &target(), &unknown).unwrap_err().contains("`b` is INSUFFICIENT_DATA"));
        assert!(check_alarms(&alarm_gate(0, true), &target(), &unknown).is_ok());
        let missing = Alarms(vec![vec![state("a", "OK")]].into());
        assert_eq!(
            check_alarms(&alarm_gate(0, true), &target(), &missing).unwrap_err(),
            "alarm `b` does not exist in account 555555555555"
        );
    }
}
