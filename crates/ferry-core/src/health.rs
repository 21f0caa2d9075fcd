//! The http gate: probe a URL every `interval` until the check has passed without
//! interruption for `soak`, or `timeout` runs out. A failure during the soak starts it over,
//! so a service that flaps never passes.

use std::time::Duration;

use serde_json::Value;

use crate::pipeline::HttpGate;
use crate::ports::{Clock, HttpProbe, Stop};

/// Why a gate was stopped before it could decide (the promotion lost its stage lock).
pub const STOPPED: &str = "stopped before it could decide: the promotion lost its stage lock";

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
/// Waits go through `clock` and end early when `stop` is raised.
pub fn check(gate: &HttpGate, probe: &dyn HttpProbe, clock: &dyn Clock, stop: &Stop) -> Result<String, String> {
    let start = clock.monotonic();
    let mut healthy_since: Option<Duration> = None;
    let mut probes = 0u32;
    let mut last_failure = String::from("no probe completed");
    loop {
        let per_probe = gate.interval.max(Duration::from_secs(1)).min(gate.timeout);
        probes += 1;
        let failure = match probe.get(&gate.url, per_probe) {
            Ok((status, body)) => judge(gate, status, &body),
            Err(e) => Some(e.message),
        };
        let now = clock.monotonic();
        match failure {
            None => {
                let since = *healthy_since.get_or_insert(now);
                if now - since >= gate.soak {
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
        let held = healthy_since.map_or(Duration::ZERO, |since| now - since);
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        crate::hooks::progress(&format!("soak {}", gate.url), ms(held), ms(gate.soak), false);
        if now - start + gate.interval > gate.timeout {
            crate::hooks::progress_done(&format!("soak {}", gate.url));
            return Err(format!("not healthy within {} ({probes} probes); last: {last_failure}", crate::clock::human(gate.timeout)));
        }
        if clock.wait(gate.interval, stop) {
            crate::hooks::progress_done(&format!("soak {}", gate.url));
            return Err(STOPPED.to_owned());
        }
    }
}

/// Runs an alarm gate: every alarm must be OK (INSUFFICIENT_DATA only if the gate allows it),
/// continuously for `soak`; any alarm in ALARM fails at once, naming it and CloudWatch's reason.
pub fn check_alarms(
    gate: &crate::pipeline::AlarmGate,
    target: &crate::ports::Target,
    probe: &dyn crate::ports::AlarmProbe,
    clock: &dyn Clock,
    stop: &Stop,
) -> Result<String, String> {
    let start = clock.monotonic();
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
        let elapsed = clock.monotonic() - start;
        if elapsed >= gate.soak {
            let held = if gate.soak.is_zero() { String::new() } else { format!(" for {}", crate::clock::human(gate.soak)) };
            return Ok(format!("{} alarm(s) OK{held} ({checks} check(s))", gate.alarms.len()));
        }
        if clock.wait(gate.interval.min(gate.soak - elapsed), stop) {
            return Err(STOPPED.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::clock::FakeClock;
    use crate::pipeline::When;

    fn clock() -> FakeClock {
        FakeClock::at(crate::clock::Timestamp::from_unix(1_772_445_600))
    }

    /// A probe that takes no time but reports each call's (fake) moment.
    struct Timed<'a>(&'a FakeClock, std::cell::RefCell<Vec<Duration>>, Vec<u16>);

    impl HttpProbe for Timed<'_> {
        fn get(&self, _: &str, _: Duration) -> crate::Result<(u16, String)> {
            let mut at = self.1.borrow_mut();
            at.push(self.0.monotonic());
            Ok((self.2[(at.len() - 1).min(self.2.len() - 1)], String::new()))
        }
    }

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
        // Probes every 10 ms; healthy, then one failure at 20 ms, then healthy: the 40 ms soak
        // counts from the first healthy probe after the flap (30 ms), so it passes at 70 ms.
        let c = clock();
        let probe = Timed(&c, Vec::new().into(), vec![200, 200, 500, 200]);
        assert_eq!(check(&gate(40, 2000), &probe, &c, &Stop::default()).unwrap(), "healthy for 0s (8 probes)");
        assert_eq!(probe.1.borrow().last(), Some(&Duration::from_millis(70)));
        assert!(c.sleeps().iter().all(|d| *d == Duration::from_millis(10)));
    }

    #[test]
    fn never_healthy_fails_at_the_timeout() {
        let c = clock();
        let probe = Script(vec![500], Cell::new(0));
        let err = check(&gate(0, 100), &probe, &c, &Stop::default()).unwrap_err();
        // Probed at 0, 10, …, 100 ms; another probe would end past the 100 ms timeout.
        assert_eq!(err, "not healthy within 0s (11 probes); last: status 500, expected 200");
        assert_eq!(c.monotonic(), Duration::from_millis(100));
    }

    #[test]
    fn a_stopped_soak_ends_without_a_verdict() {
        let c = clock();
        let stop = Stop::default();
        stop.raise();
        let probe = Script(vec![200], Cell::new(0));
        assert_eq!(check(&gate(40, 2000), &probe, &c, &stop).unwrap_err(), STOPPED);
        assert_eq!(probe.1.get(), 1);
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
            protected: None,
        }
    }

    #[test]
    fn alarms_must_all_be_ok_and_stay_ok_for_the_soak() {
        let (c, go) = (clock(), Stop::default());
        let ok = Alarms(vec![vec![state("a", "OK"), state("b", "OK")]].into());
        // Checked at 0, 5, …, 30 ms: seven checks for a 30 ms soak at a 5 ms interval.
        assert_eq!(check_alarms(&alarm_gate(30, false), &target(), &ok, &c, &go).unwrap(), "2 alarm(s) OK for 0s (7 check(s))");
        let flips = Alarms(vec![vec![state("a", "OK"), state("b", "OK")], vec![state("a", "OK"), state("b", "ALARM")]].into());
        assert_eq!(check_alarms(&alarm_gate(1000, false), &target(), &flips, &c, &go).unwrap_err(), "alarm `b` is ALARM: because ALARM");
    }

    #[test]
    fn insufficient_data_and_missing_alarms_fail_unless_allowed() {
        let (c, go) = (clock(), Stop::default());
        let unknown = Alarms(vec![vec![state("a", "OK"), state("b", "INSUFFICIENT_DATA")]].into());
        assert!(check_alarms(&alarm_gate(0, false), &target(), &unknown, &c, &go).unwrap_err().contains("`b` is INSUFFICIENT_DATA"));
        assert!(check_alarms(&alarm_gate(0, true), &target(), &unknown, &c, &go).is_ok());
        let missing = Alarms(vec![vec![state("a", "OK")]].into());
        assert_eq!(
            check_alarms(&alarm_gate(0, true), &target(), &missing, &c, &go).unwrap_err(),
            "alarm `b` does not exist in account 555555555555"
        );
    }
}
