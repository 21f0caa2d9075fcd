//! Deployment windows and freezes: the types a pipeline declares them with, and whether a
//! deploy may start at a given instant (allowed weekdays and hours in a named time zone, no
//! freeze in force), and if not, why and the next instant it may. Pure functions; the time
//! zone database is bundled (jiff).

use crate::clock::Timestamp;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Window {
    /// IANA name; `UTC` by default.
    pub timezone: String,
    /// Allowed weekdays, 0 = Monday; empty means every day.
    pub days: Vec<u8>,
    /// Allowed minutes of the day, `[start, end)`; `None` means all day.
    pub hours: Option<(u16, u16)>,
    pub freezes: Vec<Freeze>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Freeze {
    pub from: Timestamp,
    pub to: Timestamp,
    pub reason: Option<String>,
}

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why a deploy may not start now, and when it next may (if within two weeks).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Closed {
    pub reason: String,
    pub next_allowed: Option<Timestamp>,
}

/// Parses `HH:MM-HH:MM` into minutes of the day.
pub fn parse_hours(s: &str) -> Option<(u16, u16)> {
    let (a, b) = s.split_once('-')?;
    let minutes = |t: &str| -> Option<u16> {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h <= 24 && m < 60 && h * 60 + m <= 24 * 60).then_some(h * 60 + m)
    };
    let (start, end) = (minutes(a)?, minutes(b)?);
    (start < end).then_some((start, end))
}

/// Checks an IANA time zone name against the bundled database.
pub fn check_timezone(name: &str) -> Result<()> {
    jiff::tz::TimeZone::get(name).map(|_| ()).map_err(|e| Error::invalid(format!("unknown time zone `{name}`: {e}")))
}

impl Window {
    pub fn describe(&self) -> String {
        let days = if self.days.is_empty() {
            "any day".to_owned()
        } else {
            self.days.iter().map(|d| DAYS[usize::from(*d)]).collect::<Vec<_>>().join(",")
        };
        let hours = self.hours.map_or("any time".to_owned(), |(a, b)| format!("{:02}:{:02}-{:02}:{:02}", a / 60, a % 60, b / 60, b % 60));
        let freezes = if self.freezes.is_empty() { String::new() } else { format!(", {} freeze(s)", self.freezes.len()) };
        format!("window: {days} {hours} {}{freezes}", self.timezone)
    }
}

/// Why `at` is outside the window or inside a freeze; `None` when a deploy may start.
fn closed_reason(w: &Window, extra: &[Freeze], at: Timestamp) -> Result<Option<String>> {
    for f in w.freezes.iter().chain(extra) {
        if f.from <= at && at < f.to {
            let why = f.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default();
            return Ok(Some(format!("a freeze is in force from {} to {}{why}", f.from, f.to)));
        }
    }
    let tz = jiff::tz::TimeZone::get(&w.timezone).map_err(|e| Error::invalid(format!("unknown time zone `{}`: {e}", w.timezone)))?;
    let zoned = jiff::Timestamp::from_second(at.unix_seconds()).map_err(|e| Error::failed(e.to_string()))?.to_zoned_datetime(tz);
    let day = u8::try_from(zoned.weekday().to_monday_zero_offset()).unwrap_or(0);
    if !w.days.is_empty() && !w.days.contains(&day) {
        return Ok(Some(format!("{} is not a deployment day ({})", DAYS[usize::from(day)], w.describe())));
    }
    let minute = u16::try_from(i32::from(zoned.hour()) * 60 + i32::from(zoned.minute())).unwrap_or(0);
    if let Some((start, end)) = w.hours
        && !(start <= minute && minute < end)
    {
        return Ok(Some(format!(
            "{:02}:{:02} {} is outside the deployment hours ({})",
            minute / 60,
            minute % 60,
            w.timezone,
            w.describe()
        )));
    }
    Ok(None)
}

/// Whether a deploy may start at `now` under `w` and the organization's `freezes`.
pub fn check(w: &Window, freezes: &[Freeze], now: Timestamp) -> Result<Option<Closed>> {
    let Some(reason) = closed_reason(w, freezes, now)? else { return Ok(None) };
    let next_allowed = first_open(std::slice::from_ref(&w), freezes, now)?;
    Ok(Some(Closed { reason, next_allowed }))
}

/// The first 5-minute mark after `now`, within two weeks, at which every one of `windows`
/// is open and no freeze is in force.
fn first_open(windows: &[&Window], freezes: &[Freeze], now: Timestamp) -> Result<Option<Timestamp>> {
    let step = std::time::Duration::from_secs(300);
    let aligned = Timestamp::from_unix(now.unix_seconds() - now.unix_seconds().rem_euclid(300));
    let mut t = aligned.plus(step);
    for _ in 0..(14 * 24 * 12) {
        if open_at(windows, freezes, t)? {
            return Ok(Some(t));
        }
        t = t.plus(step);
    }
    Ok(None)
}

fn open_at(windows: &[&Window], freezes: &[Freeze], at: Timestamp) -> Result<bool> {
    if freezes.iter().any(|f| f.from <= at && at < f.to) {
        return Ok(false);
    }
    for w in windows {
        if closed_reason(w, &[], at)?.is_some() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// When a deploy may next start under a stage's windows and freezes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Opens {
    Now,
    At(Timestamp),
    /// Not within the next two weeks.
    Later,
}

/// When a deploy may next start under all of `windows` and `freezes`.
pub fn next_open(windows: &[&Window], freezes: &[Freeze], now: Timestamp) -> Result<Opens> {
    if open_at(windows, freezes, now)? {
        return Ok(Opens::Now);
    }
    Ok(first_open(windows, freezes, now)?.map_or(Opens::Later, Opens::At))
}

impl Opens {
    /// Whether something that expires at `expires` is gone before the window opens.
    pub fn after(self, expires: Timestamp) -> bool {
        match self {
            Opens::Now => false,
            Opens::At(t) => expires <= t,
            Opens::Later => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse(s).unwrap()
    }

    fn weekdays_9_to_16(tz: &str) -> Window {
        Window { timezone: tz.into(), days: vec![0, 1, 2, 3], hours: parse_hours("09:00-16:00"), freezes: Vec::new() }
    }

    #[test]
    fn inside_the_window_is_open() {
        // 2026-11-30 is a Monday; 10:00 in Berlin is 09:00 UTC.
        assert_eq!(check(&weekdays_9_to_16("Europe/Berlin"), &[], at("2026-11-30T09:00:00Z")).unwrap(), None);
    }

    #[test]
    fn outside_the_hours_names_the_next_allowed_time_in_utc() {
        // Monday 17:30 Berlin → next: Tuesday 09:00 Berlin = 08:00 UTC.
        let c = check(&weekdays_9_to_16("Europe/Berlin"), &[], at("2026-11-30T16:30:00Z")).unwrap().unwrap();
        assert!(c.reason.contains("outside the deployment hours"), "{}", c.reason);
        assert_eq!(c.next_allowed, Some(at("2026-12-01T08:00:00Z")));
    }

    #[test]
    fn a_friday_waits_for_monday() {
        let c = check(&weekdays_9_to_16("UTC"), &[], at("2026-12-04T10:00:00Z")).unwrap().unwrap();
        assert!(c.reason.starts_with("fri is not a deployment day"), "{}", c.reason);
        assert_eq!(c.next_allowed, Some(at("2026-12-07T09:00:00Z")));
    }

    #[test]
    fn an_approval_given_on_friday_for_a_mon_to_thu_window_expires_before_it_opens_unless_it_lasts() {
        let w = weekdays_9_to_16("UTC");
        let friday = at("2026-12-04T18:00:00Z");
        let opens = next_open(&[&w], &[], friday).unwrap();
        assert_eq!(opens, Opens::At(at("2026-12-07T09:00:00Z")));
        let day = std::time::Duration::from_secs(24 * 3600);
        assert!(opens.after(friday.plus(day)), "a 24h approval is gone by Monday 09:00");
        assert!(!opens.after(friday.plus(day * 3)), "a 72h approval still stands then");
        assert_eq!(next_open(&[&w], &[], at("2026-12-07T10:00:00Z")).unwrap(), Opens::Now);
        assert!(!Opens::Now.after(friday), "an open window never outlives an approval");
    }

    #[test]
    fn every_window_and_freeze_must_be_open_at_once() {
        let mornings = Window { timezone: "UTC".into(), days: Vec::new(), hours: parse_hours("06:00-10:00"), freezes: Vec::new() };
        let freeze = Freeze { from: at("2026-12-07T00:00:00Z"), to: at("2026-12-08T00:00:00Z"), reason: None };
        // Friday 18:00: Mon–Thu 09–16 and every day 06–10 overlap 09–10 on Monday, frozen; Tuesday then.
        let opens = next_open(&[&weekdays_9_to_16("UTC"), &mornings], &[freeze], at("2026-12-04T18:00:00Z")).unwrap();
        assert_eq!(opens, Opens::At(at("2026-12-08T09:00:00Z")));
        let never = Window { timezone: "UTC".into(), days: vec![5], hours: None, freezes: Vec::new() };
        assert_eq!(next_open(&[&weekdays_9_to_16("UTC"), &never], &[], at("2026-12-04T18:00:00Z")).unwrap(), Opens::Later);
    }

    #[test]
    fn a_freeze_closes_an_open_window_until_it_ends() {
        let freeze = Freeze { from: at("2026-12-20T00:00:00Z"), to: at("2027-01-04T12:00:00Z"), reason: Some("year end".into()) };
        let always = Window { timezone: "UTC".into(), days: Vec::new(), hours: None, freezes: Vec::new() };
        let c = check(&always, &[freeze], at("2026-12-24T10:00:00Z")).unwrap().unwrap();
        assert!(c.reason.contains("year end"), "{}", c.reason);
        assert_eq!(c.next_allowed, Some(at("2027-01-04T12:00:00Z")));
    }

    #[test]
    fn hours_and_zones_are_parsed_strictly() {
        assert_eq!(parse_hours("09:00-16:30"), Some((540, 990)));
        assert_eq!(parse_hours("16:00-09:00"), None);
        assert_eq!(parse_hours("9-5"), None);
        assert!(check_timezone("Europe/Berlin").is_ok());
        assert!(check_timezone("Mars/Olympus").is_err());
    }
}
