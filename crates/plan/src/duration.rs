//! Durations as written in plans: `30s`, `15m`, `1h30m`, `7d`, `12w`, and,
//! for dates, `6mo` and `20y`.
//!
//! Two kinds, because the plan asks two kinds of question:
//!
//! * A **fixed length** ([`parse`]): an RPO, an RTO, a timeout, a grace
//!   period. Seconds, minutes, hours, days (86 400 s: the plan is in UTC)
//!   and weeks. Months and years have no fixed length, so they are refused
//!   here rather than approximated.
//! * A **calendar period** ([`Period`]): a legal retention, a window kept
//!   behind now. `20y` means twenty calendar years: retention that starts
//!   on 2026-11-26 ends on 2046-11-26, not five leap days earlier (which a
//!   365-day year would give). Months are `mo` (`m` is minutes).
//!
//! Hand-written because the error must name the accepted units, and the
//! two kinds must not be confused.

use std::fmt;
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};

/// One `<number><unit>` term.
enum Term {
    Seconds(u64),
    Months(u64),
}

const UNITS: &str = "s, m, h, d, w, mo or y";

fn terms(text: &str) -> Result<Vec<Term>, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration: write e.g. \"15m\", \"1h\", \"7d\" or \"20y\"".into());
    }
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("'{text}' is not a duration: write a number then a unit ({UNITS}), e.g. \"1h30m\""));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| format!("'{text}': number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = rest[unit_len..].trim_start();
        let seconds = |per: u64| n.checked_mul(per).map(Term::Seconds).ok_or_else(|| format!("'{text}' is too long"));
        out.push(match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => seconds(1)?,
            "m" | "min" | "mins" | "minute" | "minutes" => seconds(60)?,
            "h" | "hour" | "hours" => seconds(3600)?,
            "d" | "day" | "days" => seconds(86_400)?,
            "w" | "week" | "weeks" => seconds(7 * 86_400)?,
            "mo" | "month" | "months" => Term::Months(n),
            "y" | "year" | "years" => Term::Months(n.checked_mul(12).ok_or_else(|| format!("'{text}' is too long"))?),
            "" => return Err(format!("'{text}' has a number without a unit: add one of {UNITS}")),
            other => return Err(format!("'{text}': unknown unit '{other}': use {UNITS}")),
        });
    }
    Ok(out)
}

/// Parses a fixed length; the error says what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let mut total: u64 = 0;
    for t in terms(text)? {
        match t {
            Term::Seconds(s) => total = total.checked_add(s).ok_or_else(|| format!("'{text}' is too long"))?,
            Term::Months(_) => {
                return Err(format!("'{text}': months and years have no fixed length; write this one in s, m, h, d or w (e.g. \"30d\")"));
            }
        }
    }
    Ok(Duration::from_secs(total))
}

/// A calendar period: whole months (years are twelve) and then seconds,
/// counted in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Period {
    pub months: u32,
    pub seconds: u64,
}

/// Far enough: a period this long is "forever" for any date reprise keeps.
const MAX_MONTHS: u64 = 12 * 9000;

impl Period {
    /// Parses a period; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Period, String> {
        let mut p = Period::default();
        let mut months: u64 = 0;
        for t in terms(text)? {
            match t {
                Term::Seconds(s) => p.seconds = p.seconds.checked_add(s).ok_or_else(|| format!("'{text}' is too long"))?,
                Term::Months(m) => months = months.saturating_add(m),
            }
        }
        if months > MAX_MONTHS || p.seconds > MAX_MONTHS * 31 * 86_400 {
            return Err(format!("'{text}' is too long: at most 9000 years"));
        }
        p.months = u32::try_from(months).expect("bounded above");
        Ok(p)
    }

    #[must_use]
    pub fn from_duration(d: Duration) -> Period {
        Period { months: 0, seconds: d.as_secs() }
    }

    fn span(self, sign: i64) -> Span {
        Span::new().months(i64::from(self.months) * sign).seconds(i64::try_from(self.seconds).unwrap_or(i64::MAX / 2) * sign)
    }

    /// The instant this period after `t` (calendar months in UTC; the
    /// 31st plus a month is the last day of the next month). Saturates.
    #[must_use]
    pub fn after(self, t: Timestamp) -> Timestamp {
        t.to_zoned(TimeZone::UTC).checked_add(self.span(1)).map_or(Timestamp::MAX, |z| z.timestamp())
    }

    /// The instant this period before `t`. Saturates.
    #[must_use]
    pub fn before(self, t: Timestamp) -> Timestamp {
        t.to_zoned(TimeZone::UTC).checked_add(self.span(-1)).map_or(Timestamp::MIN, |z| z.timestamp())
    }

    /// Its exact length when it ends at `now` (a window kept behind now).
    #[must_use]
    pub fn length_before(self, now: Timestamp) -> Duration {
        Duration::try_from(now.duration_since(self.before(now))).unwrap_or(Duration::ZERO)
    }

    /// Its exact length when it starts at `now` (a date ahead of now).
    #[must_use]
    pub fn length_after(self, now: Timestamp) -> Duration {
        Duration::try_from(self.after(now).duration_since(now)).unwrap_or(Duration::MAX)
    }

    #[must_use]
    pub fn is_zero(self) -> bool {
        self.months == 0 && self.seconds == 0
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use std::fmt::Write as _;
        let (y, mo) = (self.months / 12, self.months % 12);
        let mut out = String::new();
        if y > 0 {
            let _ = write!(out, "{y}y");
        }
        if mo > 0 {
            let _ = write!(out, "{mo}mo");
        }
        if self.seconds > 0 || out.is_empty() {
            out += &format(Duration::from_secs(self.seconds));
        }
        f.write_str(&out)
    }
}

/// The shortest exact rendering of a fixed length in plan syntax.
#[must_use]
pub fn format(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out += &(s / len).to_string();
            out += unit;
            s %= len;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::duration_suboptimal_units, reason = "plans count in seconds; from_mins and from_hours are newer than the MSRV")]
mod tests {
    use super::*;

    #[test]
    fn parses_fixed_lengths() {
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse("2 hours").unwrap(), Duration::from_secs(7200));
        for bad in ["", "h", "10", "5x", "-1h", "1y", "6mo"] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        for d in [1, 59, 3600, 5400, 86_400 * 400] {
            assert_eq!(parse(&format(Duration::from_secs(d))).unwrap(), Duration::from_secs(d));
        }
    }

    /// The bug: `20y` counted 365-day years, so a legal retention of twenty
    /// years from 2026-11-26 ended on 2046-11-21.
    #[test]
    fn retain_for_20y_ends_twenty_calendar_years_later() {
        let start: Timestamp = "2026-11-26T10:00:00Z".parse().unwrap();
        let p = Period::parse("20y").unwrap();
        assert_eq!(p.after(start), "2046-11-26T10:00:00Z".parse::<Timestamp>().unwrap());
        assert_eq!(Period::parse("6mo").unwrap().after(start), "2027-05-26T10:00:00Z".parse::<Timestamp>().unwrap());
        // The last day of a shorter month, never the next month.
        let jan31: Timestamp = "2027-01-31T00:00:00Z".parse().unwrap();
        assert_eq!(Period::parse("1mo").unwrap().after(jan31), "2027-02-28T00:00:00Z".parse::<Timestamp>().unwrap());
        // Backwards: a one-year window on 2028-03-01 (after a leap day) is 366 days.
        let now: Timestamp = "2028-03-01T00:00:00Z".parse().unwrap();
        assert_eq!(Period::parse("1y").unwrap().length_before(now), Duration::from_secs(366 * 86_400));
        assert_eq!(Period::parse("7d").unwrap().length_before(now), Duration::from_secs(7 * 86_400));
        assert_eq!(Period::parse("1y2mo3d").unwrap().to_string(), "1y2mo3d");
        assert!(Period::parse("100000y").is_err());
    }
}
