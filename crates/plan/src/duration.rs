//! Durations as written in plans: `30s`, `15m`, `1h30m`, `7d`, `12w`, `20y`.
//!
//! Hand-written because objectives need fixed-length units with one obvious
//! meaning (a year is 365 days, a week 7), not calendar arithmetic, and the
//! error must name the accepted units.

use std::time::Duration;

/// Parses a duration; the error says what is accepted.
pub fn parse(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("empty duration: write e.g. \"15m\", \"1h\", \"7d\" or \"20y\"".into());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("'{text}' is not a duration: write a number then a unit (s, m, h, d, w, y), e.g. \"1h30m\""));
        }
        let n: u64 = rest[..digits].parse().map_err(|_| format!("'{text}': number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = rest[unit_len..].trim_start();
        let secs = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 7 * 86_400,
            "y" | "year" | "years" => 365 * 86_400,
            "" => return Err(format!("'{text}' has a number without a unit: add s, m, h, d, w or y")),
            other => return Err(format!("'{text}': unknown unit '{other}': use s, m, h, d, w or y")),
        };
        total = n.checked_mul(secs).and_then(|v| total.checked_add(v)).ok_or_else(|| format!("'{text}' is too long"))?;
    }
    Ok(Duration::from_secs(total))
}

/// The shortest exact rendering of a duration in plan syntax.
#[must_use]
pub fn format(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("y", 365 * 86_400), ("w", 7 * 86_400), ("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out += &(s / len).to_string();
            out += unit;
            s %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plan_durations() {
        assert_eq!(parse("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse("7d").unwrap(), Duration::from_secs(7 * 86_400));
        assert_eq!(parse("20y").unwrap(), Duration::from_secs(20 * 365 * 86_400));
        assert_eq!(parse("2 hours").unwrap(), Duration::from_secs(7200));
        for bad in ["", "h", "10", "5x", "-1h"] {
            assert!(parse(bad).is_err(), "{bad} accepted");
        }
        for d in [1, 59, 3600, 5400, 86_400 * 400] {
            assert_eq!(parse(&format(Duration::from_secs(d))).unwrap(), Duration::from_secs(d));
        }
    }
}
