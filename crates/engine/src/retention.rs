//! Which snapshots a retention policy keeps, and why.
//!
//! Grandfather-father-son, as restic and borg count it: snapshots are
//! taken newest first; `last N` keeps the N newest; `within D` keeps those
//! taken less than D before the newest snapshot (not before now: if backups
//! stop, nothing ages out); `hourly`, `daily`, `weekly`, `monthly` and
//! `yearly N` keep the newest snapshot of each of the N most recent hours,
//! days, ISO weeks, months or years that have one (UTC calendar).
//!
//! Two protections stand above every policy and every `--force`:
//!
//! * **a legal hold** on a snapshot keeps it until the hold is removed;
//! * **a retain-until date**, written into the snapshot's header when it was
//!   taken (`retain_until` label, from the component's `retain_for`), keeps
//!   it until that date has passed. The header is write-once: a later plan
//!   with a shorter retention cannot shorten it.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use reprise_format::Id;

/// The label of a snapshot header that holds its retain-until date (RFC 3339).
pub const RETAIN_UNTIL: &str = "retain_until";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<u32>,
    pub within: Option<Duration>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
}

impl Policy {
    /// A policy that keeps nothing by itself would forget every snapshot:
    /// callers refuse it.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        let counts = [self.last, self.hourly, self.daily, self.weekly, self.monthly, self.yearly];
        counts.iter().all(|c| c.unwrap_or(0) == 0) && self.within.is_none_or(|d| d.is_zero())
    }
}

/// A snapshot as retention sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub id: Id,
    pub time: Timestamp,
    pub retain_until: Option<Timestamp>,
    /// Reasons of the legal holds on it (empty: none).
    pub holds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Verdict {
    pub id: Id,
    pub time: Timestamp,
    pub keep: bool,
    /// Every rule that keeps it, or why it goes.
    pub reasons: Vec<String>,
}

/// Decides, for each snapshot of one component, whether the policy keeps
/// it. Returned newest first.
#[must_use]
pub fn decide(candidates: &[Candidate], policy: &Policy, now: Timestamp) -> Vec<Verdict> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by(|a, b| b.time.cmp(&a.time).then(b.id.cmp(&a.id)));
    // A snapshot dated in the future (a host with a wrong clock) must not
    // push every real snapshot out of `within`.
    let newest = sorted.first().map(|c| c.time.min(now));
    let mut reasons: Vec<Vec<String>> = vec![Vec::new(); sorted.len()];

    if let Some(n) = policy.last {
        for (i, r) in reasons.iter_mut().enumerate().take(n as usize) {
            r.push(format!("last {}", i + 1));
        }
    }
    if let (Some(within), Some(newest)) = (policy.within, newest) {
        let from = newest.checked_sub(jiff::SignedDuration::try_from(within).unwrap_or(jiff::SignedDuration::MAX)).unwrap_or(Timestamp::MIN);
        for (c, r) in sorted.iter().zip(reasons.iter_mut()) {
            if c.time >= from {
                r.push(format!("within {}", humantime(within)));
            }
        }
    }
    let buckets: [(&str, Option<u32>, fn(&jiff::civil::DateTime) -> String); 5] = [
        ("hourly", policy.hourly, |t| format!("{:04}-{:02}-{:02} {:02}h", t.year(), t.month(), t.day(), t.hour())),
        ("daily", policy.daily, |t| format!("{:04}-{:02}-{:02}", t.year(), t.month(), t.day())),
        ("weekly", policy.weekly, |t| {
            let w = t.date().iso_week_date();
            format!("{:04}-W{:02}", w.year(), w.week())
        }),
        ("monthly", policy.monthly, |t| format!("{:04}-{:02}", t.year(), t.month())),
        ("yearly", policy.yearly, |t| format!("{:04}", t.year())),
    ];
    for (name, count, key) in buckets {
        let Some(count) = count else { continue };
        let mut kept = 0;
        let mut last_key: Option<String> = None;
        for (c, r) in sorted.iter().zip(reasons.iter_mut()) {
            if kept >= count {
                break;
            }
            let k = key(&c.time.to_zoned(TimeZone::UTC).datetime());
            if last_key.as_deref() != Some(k.as_str()) {
                kept += 1;
                r.push(format!("{name} {kept} ({k})"));
                last_key = Some(k);
            }
        }
    }
    for (c, r) in sorted.iter().zip(reasons.iter_mut()) {
        for h in &c.holds {
            r.push(format!("legal hold: {h}"));
        }
        if let Some(until) = c.retain_until
            && until > now
        {
            r.push(format!("retained until {}", until.strftime("%Y-%m-%d")));
        }
    }
    sorted
        .iter()
        .zip(reasons)
        .map(|(c, r)| {
            if r.is_empty() {
                Verdict { id: c.id, time: c.time, keep: false, reasons: vec!["no rule keeps it".into()] }
            } else {
                Verdict { id: c.id, time: c.time, keep: true, reasons: r }
            }
        })
        .collect()
}

/// What `forget` decided (and did) for one component.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ForgetOutcome {
    pub component: String,
    pub dry_run: bool,
    /// Newest first.
    pub snapshots: Vec<Verdict>,
    pub removed: usize,
}

/// Applies a policy to the snapshots of one component: decides, and unless
/// `dry_run`, removes the snapshot objects no rule keeps. (Their data goes
/// with `prune`.) Holds and retain-until dates are read from the
/// repository, never from the caller.
pub fn forget(repo: &crate::Repository, component: &str, policy: &Policy, dry_run: bool) -> crate::Result<ForgetOutcome> {
    if policy.is_empty() {
        return Err(crate::Error::InvalidArgument(format!(
            "component '{component}' has no retention policy, which would forget every snapshot: add retention = {{ keep_within = \"7d\", daily = 30, ... }} to its objectives"
        )));
    }
    if !dry_run {
        repo.require_full("forgetting snapshots")?;
    }
    let (snapshots, _unreadable) = repo.snapshots()?;
    let holds = crate::holds::list(repo)?;
    let candidates: Vec<Candidate> = snapshots
        .iter()
        .filter(|s| s.header.component == component)
        .map(|s| Candidate {
            id: s.id,
            time: s.header.time,
            retain_until: retain_until(&s.header.labels),
            holds: holds.iter().filter(|h| h.hold.snapshot == s.id).map(|h| h.hold.reason.clone()).collect(),
        })
        .collect();
    let verdicts = decide(&candidates, policy, Timestamp::now());
    let mut removed = 0;
    if !dry_run {
        for v in verdicts.iter().filter(|v| !v.keep) {
            // A hold placed since the decision wins (there is no lock:
            // `hold add` also checks, after writing, that its snapshot is
            // still there).
            if crate::holds::list(repo)?.iter().any(|h| h.hold.snapshot == v.id) {
                continue;
            }
            repo.backend().remove(reprise_backends::ObjectKind::Snapshot, &v.id.to_hex())?;
            removed += 1;
        }
    }
    Ok(ForgetOutcome { component: component.to_owned(), dry_run, snapshots: verdicts, removed })
}

/// `7d`, `12h`, `90m`, `30s`: the largest unit that divides the duration.
#[must_use]
pub fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    for (unit, n) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if s >= n && s % n == 0 {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

/// The retain-until date a header records, if any (unreadable dates count
/// as "forever": a damaged label never makes a snapshot deletable).
#[must_use]
pub fn retain_until(labels: &BTreeMap<String, String>) -> Option<Timestamp> {
    labels.get(RETAIN_UNTIL).map(|v| v.parse().unwrap_or(Timestamp::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    fn kept(v: &[Verdict]) -> Vec<String> {
        v.iter().filter(|v| v.keep).map(|v| v.time.strftime("%Y-%m-%d %H:%M").to_string()).collect()
    }

    #[test]
    fn the_seed_schedule_keeps_what_it_says() {
        // One backup a day at 02:00 for three years.
        let start = at("2024-01-01T02:00:00Z");
        let cands: Vec<Candidate> = (0..3 * 365u32)
            .map(|d| Candidate { id: Id({ let mut b = [0u8; 32]; b[..4].copy_from_slice(&d.to_be_bytes()); b }), time: start + jiff::SignedDuration::from_hours(24 * i64::from(d)), retain_until: None, holds: vec![] })
            .collect();
        let policy = Policy { within: Some(Duration::from_secs(7 * 86_400)), daily: Some(30), weekly: Some(12), monthly: Some(12), yearly: Some(7), ..Policy::default() };
        let now = at("2026-12-31T03:00:00Z");
        let v = decide(&cands, &policy, now);
        let keep = v.iter().filter(|v| v.keep).count();
        // 30 daily (2026-12-01..30, covering the 7 days); 12 weekly add the
        // 7 Sundays before December; 12 monthly add the last days of
        // January..November; 7 yearly add 2025-12-31 and 2024-12-31.
        assert_eq!(keep, 30 + 7 + 11 + 2);
        // The 30 newest days are all kept.
        assert!(v[..30].iter().all(|v| v.keep));
        // The oldest snapshot is the newest of no period: it goes, but the
        // newest of 2024 (yearly) stays.
        assert!(!v.last().unwrap().keep);
        let y2024 = v.iter().find(|v| v.time.strftime("%Y-%m-%d").to_string() == "2024-12-31").unwrap();
        assert!(y2024.keep && y2024.reasons.iter().any(|r| r.starts_with("yearly")), "{y2024:?}");
        assert_eq!(v.len(), cands.len());
    }

    #[test]
    fn last_within_and_buckets() {
        let cands = vec![
            Candidate { id: id(1), time: at("2026-11-20T10:00:00Z"), retain_until: None, holds: vec![] },
            Candidate { id: id(2), time: at("2026-11-20T11:00:00Z"), retain_until: None, holds: vec![] },
            Candidate { id: id(3), time: at("2026-11-21T09:00:00Z"), retain_until: None, holds: vec![] },
            Candidate { id: id(4), time: at("2026-11-21T10:00:00Z"), retain_until: None, holds: vec![] },
        ];
        let now = at("2026-11-21T12:00:00Z");
        let v = decide(&cands, &Policy { daily: Some(2), ..Policy::default() }, now);
        assert_eq!(kept(&v), vec!["2026-11-21 10:00", "2026-11-20 11:00"]);
        let v = decide(&cands, &Policy { last: Some(1), ..Policy::default() }, now);
        assert_eq!(kept(&v), vec!["2026-11-21 10:00"]);
        // within counts back from the newest snapshot, not from now.
        let v = decide(&cands, &Policy { within: Some(Duration::from_secs(3600)), ..Policy::default() }, at("2030-01-01T00:00:00Z"));
        assert_eq!(kept(&v), vec!["2026-11-21 10:00", "2026-11-21 09:00"]);
        let gone = v.iter().find(|v| !v.keep).unwrap();
        assert_eq!(gone.reasons, vec!["no rule keeps it"]);
    }

    #[test]
    fn holds_and_retain_until_beat_every_policy() {
        let cands = vec![
            Candidate { id: id(1), time: at("2020-01-01T00:00:00Z"), retain_until: Some(at("2040-01-01T00:00:00Z")), holds: vec![] },
            Candidate { id: id(2), time: at("2020-01-02T00:00:00Z"), retain_until: None, holds: vec!["litigation 2026-117".into()] },
            Candidate { id: id(3), time: at("2020-01-03T00:00:00Z"), retain_until: Some(at("2021-01-01T00:00:00Z")), holds: vec![] },
            Candidate { id: id(4), time: at("2026-01-01T00:00:00Z"), retain_until: None, holds: vec![] },
        ];
        let v = decide(&cands, &Policy { last: Some(1), ..Policy::default() }, at("2026-11-21T00:00:00Z"));
        let by = |n: u8| v.iter().find(|x| x.id == id(n)).unwrap();
        assert!(by(1).keep && by(1).reasons == vec!["retained until 2040-01-01"]);
        assert!(by(2).keep && by(2).reasons == vec!["legal hold: litigation 2026-117"]);
        assert!(!by(3).keep, "an expired retain-until date protects nothing");
        assert!(by(4).keep);
    }

    #[test]
    fn unreadable_retain_until_means_forever() {
        let mut labels = BTreeMap::new();
        labels.insert(RETAIN_UNTIL.to_owned(), "garbage".to_owned());
        assert_eq!(retain_until(&labels), Some(Timestamp::MAX));
        assert_eq!(humantime(Duration::from_secs(7 * 86_400)), "7d");
        assert!(Policy { daily: Some(0), last: Some(0), ..Policy::default() }.is_empty(), "zero counts keep nothing: refused like no policy");
        assert!(!Policy { daily: Some(1), ..Policy::default() }.is_empty());
    }
}
