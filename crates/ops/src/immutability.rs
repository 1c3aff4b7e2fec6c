//! Storage-level immutability: which lock a component's objects get (from
//! its objectives), and whether a lock is in force for it (for `status`,
//! and for a later `audit`). Both are decided here, below every
//! interface: a daemon writes with the same lock the CLI does.
//!
//! The lock: `immutable = true` → S3 COMPLIANCE (nobody, not even the
//! account's root user, can delete or shorten it); `retain_for` alone →
//! GOVERNANCE (held against every credential reprise uses, including the
//! operator's, but liftable by an account administrator granted
//! `s3:BypassGovernanceRetention`, e.g. for a court-ordered erasure). The
//! period is `retain_for`, else, for `immutable = true`, the longest the
//! retention policy can keep a snapshot. On Azure the same dates go in a
//! version-level immutability policy: COMPLIANCE → `Locked` (can only be
//! lengthened), GOVERNANCE → `Unlocked` (liftable with the `i` SAS
//! permission).

use std::time::Duration;

use reprise_engine::backends::{Lock, LockMode, ObjectKind};
use reprise_engine::{Repository, SnapshotInfo};
use reprise_plan::{ComponentPlan, RetentionPolicy};

/// The lock set on the objects written for `c`, if any.
#[must_use]
pub fn lock_for(c: &ComponentPlan) -> Option<Lock> {
    let o = &c.objectives;
    // A calendar period, measured from now: objects written by this
    // command are locked until the same date `retain_for` later.
    let now = jiff::Timestamp::now();
    let period = o.retain_for.map(|p| p.length_after(now)).or_else(|| if o.immutable { horizon(&o.retention, now) } else { None })?;
    Some(Lock { mode: if o.immutable { LockMode::Compliance } else { LockMode::Governance }, retain_for: period })
}

/// How long a retention policy can keep a snapshot at most.
pub(crate) fn horizon(r: &RetentionPolicy, now: jiff::Timestamp) -> Option<Duration> {
    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;
    [
        r.keep_within.map(|p| p.length_after(now)),
        r.hourly.map(|n| Duration::from_secs(u64::from(n) * HOUR)),
        r.daily.map(|n| Duration::from_secs(u64::from(n) * DAY)),
        r.weekly.map(|n| Duration::from_secs(u64::from(n) * 7 * DAY)),
        r.monthly.map(|n| Duration::from_secs(u64::from(n) * 31 * DAY)),
        r.yearly.map(|n| Duration::from_secs(u64::from(n) * 366 * DAY)),
    ]
    .into_iter()
    .flatten()
    .max()
}

#[derive(Debug, serde::Serialize)]
pub struct ImmutabilityStatus {
    /// The newest snapshot's object carries a storage-enforced
    /// retain-until date (or legal hold) in the future, and no earlier than
    /// its own `retain_until` label.
    pub in_force: bool,
    /// Why, in one line.
    pub reason: String,
    /// What the service says about the bucket or container (`None` when
    /// it could not be asked).
    pub service: Option<ServiceView>,
    /// The lock reprise sets on this component's new objects.
    pub lock: Option<LockView>,
    pub newest_snapshot: Option<SnapshotLock>,
}

#[derive(Debug, serde::Serialize)]
pub struct ServiceView {
    pub supported: bool,
    pub detail: String,
}

#[derive(Debug, serde::Serialize)]
pub struct LockView {
    pub mode: &'static str,
    pub retain_for_seconds: u64,
}

#[derive(Debug, serde::Serialize)]
pub struct SnapshotLock {
    pub id: String,
    /// The snapshot's own `retain_until` label (from `retain_for`).
    pub retain_until_label: Option<jiff::Timestamp>,
    /// What the storage reports on the snapshot object.
    pub object_mode: Option<String>,
    pub object_retain_until: Option<jiff::Timestamp>,
    pub object_legal_hold: bool,
}

/// Whether storage-level immutability is in force for `c` in `repo`.
pub fn status(repo: &Repository, c: &ComponentPlan, snapshots: &[SnapshotInfo]) -> ImmutabilityStatus {
    let lock = lock_for(c).map(|l| LockView { mode: l.mode.s3_name(), retain_for_seconds: l.retain_for.as_secs() });
    let mut st = ImmutabilityStatus { in_force: false, reason: String::new(), service: None, lock, newest_snapshot: None };
    let backend = repo.backend();
    match backend.immutability() {
        Ok(s) => st.service = Some(ServiceView { supported: s.supported, detail: s.detail }),
        Err(e) => {
            st.reason = format!("cannot tell: {}", e.message);
            return st;
        }
    }
    let service = st.service.as_ref().expect("set above");
    if !service.supported {
        st.reason = format!("not in force: {}", service.detail);
        return st;
    }
    let Some(newest) = snapshots.iter().rev().find(|s| s.header.component == c.name) else {
        st.reason = "not in force: no snapshot yet".into();
        return st;
    };
    let label = reprise_engine::retention::retain_until(&newest.header.labels);
    let found = match backend.object_lock(ObjectKind::Snapshot, &newest.id.to_hex()) {
        Ok(l) => l.unwrap_or_default(),
        Err(e) => {
            st.reason = format!("cannot tell: {}", e.message);
            return st;
        }
    };
    let now = jiff::Timestamp::now();
    st.reason = match (found.retain_until, label) {
        _ if found.legal_hold => "in force: legal hold on the newest snapshot's object".into(),
        (None, _) if st.lock.is_none() => "not in force: the newest snapshot's object has no retain-until date, and the plan asks for none (set retain_for or immutable = true)".into(),
        (None, _) => "not in force: the newest snapshot's object has no retain-until date (written before the lock was configured, or the storage refused it: see the backup's warning)".into(),
        (Some(u), _) if u <= now => format!("not in force: the newest snapshot's lock expired on {u}"),
        (Some(u), Some(l)) if u < l => format!("not in force: the newest snapshot's object is locked until {u}, before its retain_until label {l}"),
        (Some(u), _) => format!("in force: {} until {}", found.mode.as_deref().unwrap_or("locked"), u.strftime("%Y-%m-%d")),
    };
    st.in_force = st.reason.starts_with("in force");
    st.newest_snapshot = Some(SnapshotLock {
        id: newest.id.to_hex(),
        retain_until_label: label,
        object_mode: found.mode,
        object_retain_until: found.retain_until,
        object_legal_hold: found.legal_hold,
    });
    st
}
