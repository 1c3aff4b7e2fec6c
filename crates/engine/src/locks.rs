//! Lengthening storage locks on shared packs, run by `prune`.
//!
//! A pack gets its storage lock (S3 Object Lock, Azure immutability policy)
//! once, when the component that first writes it creates it. Deduplication
//! then shares it: a 30-day, `immutable` snapshot that reuses a blob first
//! written by a 1-day component relies on a pack locked for one day. The
//! writer cannot fix that (a write-only host may not touch existing
//! objects, and it does not know the pack's lock); the operator's prune,
//! which already walks every snapshot, can.
//!
//! For every snapshot whose `retain_until` label is in the future, every
//! stored pack holding one of its blobs (trees and content; every copy of
//! a blob stored twice) must be locked at least until that date. So:
//!
//! 1. Walk the trees of those snapshots, latest date first, giving each
//!    blob the first snapshot that reaches it (hence the latest date). A
//!    subtree already claimed was claimed by a snapshot kept at least as
//!    long, so it is skipped: each tree is read once. Memory: one map entry
//!    per blob those snapshots need, a 32-byte ID and a 4-byte snapshot
//!    number (about 40–80 bytes a blob with the hash table's slack; 40–80
//!    MiB for a million blobs), held after prune's own set of used blobs
//!    is dropped.
//! 2. Per pack, the requirement is that of its latest-kept blob
//!    ([`requirement_of`]); packs that a prune mark condemns are left
//!    alone (they are about to be deleted; a lock would forbid it).
//! 3. Read each such pack's lock (one HEAD) and, when it ends before the
//!    requirement (or is absent), set it ([`decide`]): the pack's own mode
//!    is kept; a pack without one gets COMPLIANCE when the snapshot that
//!    sets the date belongs to a component that the plan says is
//!    `immutable`, GOVERNANCE otherwise. Dates are rounded up to midnight
//!    UTC, as on creation. A lock is never shortened.
//!
//! Index files are left alone: they are not needed to restore (every pack
//! carries its own directory, from which `check` and `prune` rebuild what
//! an index says), and they are rewritten by prune, so locking them for
//! decades would only block that.
//!
//! Where the storage has no locks (a local directory, a bucket without
//! Object Lock, a container without version-level immutability, Azurite),
//! the job is skipped and the report says so in one line.

use std::collections::{BTreeMap, HashMap, HashSet};

use jiff::Timestamp;
use reprise_backends::{Lock, LockMode, ObjectKind, ObjectLock};
use reprise_format::Id;
use reprise_format::index::IndexedPack;
use reprise_format::keys::Domain;
use reprise_format::tree::NodeKind;

use crate::error::{Error, Result};
use crate::index::MasterIndex;
use crate::repository::Repository;
use crate::retention;
use crate::walk::{self, Visit};

/// What the lock job found and did (part of prune's report).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LockReport {
    /// The storage enforces locks here; when `false`, nothing was checked
    /// and `detail` says why.
    pub in_force: bool,
    /// The service's own words about its locks.
    pub detail: String,
    /// Snapshots with a `retain_until` label in the future.
    pub retained_snapshots: usize,
    /// Snapshots whose `retain_until` label cannot be read (left out: a
    /// garbled date must not become a lock for ever; `check` reports them).
    pub unreadable_labels: usize,
    /// Packs whose lock was read.
    pub packs_checked: usize,
    /// Packs whose lock was lengthened (dry run: would be).
    pub packs_extended: usize,
    /// Packs whose lock could not be read or set; `error` has the first
    /// reason.
    pub packs_failed: usize,
    pub error: Option<String>,
    /// The latest date set (dry run: that would be set).
    pub latest_until: Option<Timestamp>,
}

/// A retained snapshot's claim on what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Requirement {
    /// The snapshot's `retain_until` label.
    pub until: Timestamp,
    /// The mode for a pack that has no lock yet.
    pub mode: LockMode,
}

/// The date a lock needs to reach to cover `label`: rounded up to the
/// next midnight UTC, like the dates set on creation (never shorter).
#[must_use]
pub fn lock_date(label: Timestamp) -> Timestamp {
    Lock { mode: LockMode::Governance, retain_for: std::time::Duration::ZERO }.until(label)
}

/// The requirement a pack must meet: that of its blob kept longest.
/// `needs` maps a blob to an index into `table`, which is sorted latest
/// date first, so the smallest index wins.
#[must_use]
pub fn requirement_of(pack: &IndexedPack, needs: &hashbrown::HashMap<Id, u32>, table: &[Requirement]) -> Option<Requirement> {
    need_of(pack, needs).map(|i| table[i as usize])
}

fn need_of(pack: &IndexedPack, needs: &hashbrown::HashMap<Id, u32>) -> Option<u32> {
    pack.blobs.iter().filter_map(|b| needs.get(&b.id)).min().copied()
}

/// What to set on a pack whose lock is `current` so that it holds `need`:
/// `None` when it already does (a lock is never shortened, nor its mode
/// changed: S3 refuses to weaken COMPLIANCE, and turning GOVERNANCE into
/// COMPLIANCE would take away the administrator's way out).
#[must_use]
pub fn decide(current: Option<&ObjectLock>, need: Requirement) -> Option<(LockMode, Timestamp)> {
    let until = lock_date(need.until);
    if current.and_then(|l| l.retain_until).is_some_and(|t| t >= until) {
        return None;
    }
    let mode = current.and_then(|l| l.mode.as_deref()).and_then(LockMode::from_service).unwrap_or(need.mode);
    Some((mode, until))
}

/// Walks the retained snapshots and lengthens the locks of the packs they
/// need. `packs` are the stored packs (from prune's catalog), `condemned`
/// those a mark condemns, `index` an index of the tree packs, `modes` the
/// lock mode of each component that asks for COMPLIANCE (others:
/// GOVERNANCE).
#[allow(clippy::implicit_hasher, reason = "prune's own maps are passed, never a caller's")]
pub fn extend(
    repo: &Repository,
    packs: &hashbrown::HashMap<(Domain, Id), IndexedPack>,
    stored: &HashMap<Id, u64>,
    condemned: &HashSet<Id>,
    trees: &BTreeMap<Domain, MasterIndex>,
    modes: &HashMap<String, LockMode>,
    dry_run: bool,
) -> Result<LockReport> {
    let backend = repo.backend();
    let service = match backend.immutability() {
        Ok(s) => s,
        // Not a failure of the prune: a credential that may not read the
        // bucket's configuration is reported, as `status` does.
        Err(e) => return Ok(LockReport { detail: format!("cannot tell whether the storage has locks: {}", e.message), ..LockReport::default() }),
    };
    let mut report = LockReport { in_force: service.supported, detail: service.detail, ..LockReport::default() };
    if !service.supported {
        return Ok(report);
    }

    // The retained snapshots, latest date first; at equal dates COMPLIANCE
    // first, so that it sets the mode of a pack with no lock.
    let now = Timestamp::now();
    let (snapshots, _) = repo.snapshots()?;
    let mut table: Vec<(Requirement, Id, Domain)> = Vec::new();
    for s in &snapshots {
        let Some(until) = retention::retain_until(&s.header.labels) else { continue };
        if until == Timestamp::MAX {
            report.unreadable_labels += 1;
            tracing::warn!(snapshot = %s.id.short(), "its retain_until label cannot be read: its packs' locks are not extended");
            continue;
        }
        if until > now {
            table.push((Requirement { until, mode: modes.get(&s.header.component).copied().unwrap_or(LockMode::Governance) }, s.id, s.domain));
        }
    }
    table.sort_by(|a, b| b.0.until.cmp(&a.0.until).then_with(|| (b.0.mode == LockMode::Compliance).cmp(&(a.0.mode == LockMode::Compliance))));
    report.retained_snapshots = table.len();
    if table.is_empty() {
        return Ok(report);
    }

    let mut needs: hashbrown::HashMap<Id, u32> = hashbrown::HashMap::new();
    for (i, (_, id, domain)) in table.iter().enumerate() {
        let i = u32::try_from(i).map_err(|_| Error::InvalidArgument("more than 4 billion retained snapshots".into()))?;
        let root = repo.snapshot_body(id)?.tree;
        if needs.try_insert(root, i).is_err() {
            continue;
        }
        let Some(index) = trees.get(domain) else { continue };
        walk::walk(repo, index, &root, &mut |_, node| {
            for c in &node.content {
                needs.entry(*c).or_insert(i);
            }
            if node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
                && needs.try_insert(sub, i).is_err()
            {
                // Claimed by a snapshot kept at least as long.
                return Ok(Visit::Skip);
            }
            Ok(Visit::Descend)
        })?;
    }
    let table: Vec<Requirement> = table.into_iter().map(|(r, ..)| r).collect();

    // A pack claimed in several domains needs the longest of their dates.
    let mut per_pack: BTreeMap<Id, u32> = BTreeMap::new();
    for ((_, id), p) in packs {
        if !stored.contains_key(id) || condemned.contains(id) {
            continue;
        }
        if let Some(i) = need_of(p, &needs) {
            let e = per_pack.entry(*id).or_insert(i);
            *e = (*e).min(i);
        }
    }
    for (id, i) in per_pack {
        let need = table[i as usize];
        let name = id.to_hex();
        report.packs_checked += 1;
        let current = match backend.object_lock(ObjectKind::Pack, &name) {
            Ok(l) => l,
            Err(e) => {
                fail(&mut report, &e);
                continue;
            }
        };
        let Some((mode, until)) = decide(current.as_ref(), need) else { continue };
        if !dry_run && let Err(e) = backend.extend_lock(ObjectKind::Pack, &name, mode, until) {
            fail(&mut report, &e);
            continue;
        }
        tracing::debug!(pack = %id.short(), mode = mode.s3_name(), until = %until, dry_run, "pack lock extended");
        report.packs_extended += 1;
        report.latest_until = report.latest_until.max(Some(until));
    }
    Ok(report)
}

fn fail(report: &mut LockReport, e: &reprise_backends::BackendError) {
    report.packs_failed += 1;
    if report.error.is_none() {
        report.error = Some(e.to_string());
    }
    tracing::warn!("{e}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use reprise_format::BlobKind;
    use reprise_format::pack::PackEntry;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn id(n: u8) -> Id {
        Id([n; 32])
    }

    #[test]
    fn a_pack_needs_the_date_of_its_blob_kept_longest() {
        let table = [Requirement { until: at("2046-01-01T12:00:00Z"), mode: LockMode::Governance }, Requirement { until: at("2026-12-21T10:00:00Z"), mode: LockMode::Compliance }];
        let needs: hashbrown::HashMap<Id, u32> = [(id(1), 1), (id(2), 0)].into_iter().collect();
        let blob = |n| PackEntry { id: id(n), kind: BlobKind::Data, offset: 0, length: 1, raw_length: 1 };
        let pack = |blobs: Vec<u8>| IndexedPack { id: id(9), length: 1, blobs: blobs.into_iter().map(blob).collect() };
        assert_eq!(requirement_of(&pack(vec![1, 3]), &needs, &table), Some(table[1]));
        assert_eq!(requirement_of(&pack(vec![1, 2, 3]), &needs, &table), Some(table[0]));
        assert_eq!(requirement_of(&pack(vec![3]), &needs, &table), None, "no retained snapshot needs it");
    }

    #[test]
    fn locks_are_lengthened_never_shortened_and_keep_their_mode() {
        let need = Requirement { until: at("2026-12-21T10:00:00Z"), mode: LockMode::Compliance };
        let midnight = at("2026-12-22T00:00:00Z");
        assert_eq!(lock_date(need.until), midnight, "rounded up to midnight UTC");
        assert_eq!(lock_date(midnight), midnight);
        let lock = |mode: &str, until: &str| ObjectLock { mode: Some(mode.into()), retain_until: Some(at(until)), legal_hold: false };
        // No lock: the snapshot's component decides the mode.
        assert_eq!(decide(None, need), Some((LockMode::Compliance, midnight)));
        assert_eq!(decide(None, Requirement { mode: LockMode::Governance, ..need }), Some((LockMode::Governance, midnight)));
        // A shorter lock keeps its own mode.
        assert_eq!(decide(Some(&lock("GOVERNANCE", "2026-11-23T00:00:00Z")), need), Some((LockMode::Governance, midnight)));
        assert_eq!(decide(Some(&lock("Locked", "2026-11-23T00:00:00Z")), Requirement { mode: LockMode::Governance, ..need }), Some((LockMode::Compliance, midnight)));
        // Long enough (or longer): nothing to do, never shortened.
        assert_eq!(decide(Some(&lock("GOVERNANCE", "2026-12-22T00:00:00Z")), need), None);
        assert_eq!(decide(Some(&lock("COMPLIANCE", "2046-01-01T00:00:00Z")), need), None);
        // A legal hold alone is no date.
        let hold = ObjectLock { mode: None, retain_until: None, legal_hold: true };
        assert_eq!(decide(Some(&hold), need), Some((LockMode::Compliance, midnight)));
    }
}
