//! Budget periods on a fixed UTC schedule: a day starts at midnight, a week on Monday, a month on
//! its first day, and an `N`-long period at a multiple of `N` since the Unix epoch. Every process
//! computes the same window from the clock alone, so no one has to agree on when a budget resets.

use serde::{Serialize, Serializer};
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Every(Duration),
}

impl Period {
    /// `day`, `week`, `month`, or a duration such as `6h` or `30d`.
    pub fn parse(s: &str) -> Result<Period, String> {
        match s.trim() {
            "day" | "daily" => Ok(Period::Day),
            "week" | "weekly" => Ok(Period::Week),
            "month" | "monthly" => Ok(Period::Month),
            other => match humantime::parse_duration(other) {
                Ok(d) if d >= Duration::from_secs(1) => Ok(Period::Every(d)),
                _ => Err(format!(
                    "must be day, week, month or a duration of at least 1s such as 6h; got {other:?}"
                )),
            },
        }
    }

    pub fn label(&self) -> String {
        match self {
            Period::Day => "day".into(),
            Period::Week => "week".into(),
            Period::Month => "month".into(),
            Period::Every(d) => humantime::format_duration(*d).to_string(),
        }
    }

    /// The window holding `now_ms`: (start, next reset), both Unix milliseconds.
    pub fn window(&self, now_ms: i64) -> (i64, i64) {
        let day = now_ms.div_euclid(DAY_MS);
        match self {
            Period::Day => (day * DAY_MS, (day + 1) * DAY_MS),
            Period::Week => {
                // 1970-01-01 was a Thursday: Monday is three days earlier.
                let monday = (day + 3).div_euclid(7) * 7 - 3;
                (monday * DAY_MS, (monday + 7) * DAY_MS)
            }
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    days_from_civil(y, m, 1) * DAY_MS,
                    days_from_civil(ny, nm, 1) * DAY_MS,
                )
            }
            Period::Every(d) => {
                let len = i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1);
                let start = now_ms.div_euclid(len) * len;
                (start, start.saturating_add(len))
            }
        }
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.label())
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the well-known era-based conversion).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`]: (year, month 1–12, day 1–31).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(date: &str) -> i64 {
        let t = humantime::parse_rfc3339(date).unwrap();
        t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
    }

    #[test]
    fn windows_follow_the_calendar() {
        let now = ms("2026-12-02T06:15:00Z"); // a Wednesday
        assert_eq!(
            Period::Day.window(now),
            (ms("2026-12-02T00:00:00Z"), ms("2026-12-03T00:00:00Z"))
        );
        assert_eq!(
            Period::Week.window(now),
            (ms("2026-11-30T00:00:00Z"), ms("2026-12-07T00:00:00Z"))
        );
        assert_eq!(
            Period::Month.window(now),
            (ms("2026-12-01T00:00:00Z"), ms("2027-01-01T00:00:00Z"))
        );
        assert_eq!(
            Period::Month.window(ms("2028-02-29T23:59:59Z")),
            (ms("2028-02-01T00:00:00Z"), ms("2028-03-01T00:00:00Z"))
        );
        let six = Period::parse("6h").unwrap();
        assert_eq!(
            six.window(now),
            (ms("2026-12-02T06:00:00Z"), ms("2026-12-02T12:00:00Z"))
        );
        assert!(Period::parse("fortnight").is_err());
        assert!(Period::parse("0s").is_err());
    }
}
