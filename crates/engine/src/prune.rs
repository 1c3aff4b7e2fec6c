//! Garbage collection (`prune`), safe while backups run from other hosts.
//!
//! Backups take no lock (ARCHITECTURE.md), so a prune cannot know what a
//! running backup is about to reference: a backup that loaded the index an
//! hour ago may be deduplicating right now against a pack that no snapshot
//! references yet. Deleting at once would leave its snapshot dangling. So
//! deletion is split in two phases, separated by a grace period (the scheme
//! of Duplicacy's fossil collection and rustic's delayed deletion, adapted
//! to write-once storage where nothing can be renamed):
//!
//! 1. **Mark.** From every snapshot, compute the blobs in use. Packs none of
//!    whose blobs are used, and packs repacked because they were mostly
//!    unused, are *condemned*: a prune mark (`prune/`, sealed under the
//!    catalog key) lists them with the time and the grace period. Nothing is
//!    deleted.
//! 2. **Sweep**, in a later prune, once the grace period of a mark has
//!    passed: compute the blobs in use again, from the snapshots that exist
//!    *now*. A condemned pack holding a used blob found in no live pack is
//!    *rescued* (a backup that was running at marking time has since
//!    committed a snapshot that needs it); the others are deleted, after
//!    the index files naming them are rewritten without them.
//!
//! Writers keep their side of the protocol (`backup` does it through
//! [`Marks`] and [`commit_guard`]):
//!
//! * a writer reads the marks *before* loading the index and never
//!   deduplicates against a condemned pack (`MasterIndex::load_excluding`);
//! * before saving its snapshot, it reads the marks again. A mark written
//!   since it started that condemns a pack it relies on (one it wrote, or
//!   one it found a blob in) is harmless while the sweep cannot have started:
//!   the snapshot is saved, and the sweep will see it and rescue the pack.
//!   Past `grace − grace/4` after the mark, the writer refuses to commit
//!   (clear error: run the backup again) rather than risk a snapshot whose
//!   pack is deleted under it. After saving, it checks that the packs at
//!   risk still exist, so a violated assumption (clocks apart by more than
//!   a quarter of the grace period) is reported, never silent.
//!
//! The assumption is stated in ARCHITECTURE.md: host clocks agree within a
//! quarter of the grace period (24 hours by default).

use std::collections::{HashMap, HashSet};

/// The blobs in use: a million IDs and more, already random, so hashed with
/// hashbrown's fast default hasher rather than SipHash.
type UsedSet = hashbrown::HashSet<Id>;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reprise_backends::{ErrorKind, ObjectKind};
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::mark::{self, PruneMark};
use reprise_format::tree::NodeKind;
use reprise_format::{BlobKind, Id};

use crate::error::{Error, Result};
use crate::index::{MasterIndex, read_directory};
use crate::packer::{BlobPacker, Uploads};
use crate::repository::{Repository, whoami};
use crate::walk::{self, Visit};

/// Default grace period between marking and deleting.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);

/// A prune mark as stored.
#[derive(Debug, Clone)]
pub struct Mark {
    pub id: Id,
    pub mark: PruneMark,
}

impl Mark {
    fn grace(&self) -> jiff::SignedDuration {
        jiff::SignedDuration::from_secs(i64::try_from(self.mark.grace_secs).unwrap_or(i64::MAX / 2))
    }

    /// When the sweep may delete what this mark condemns.
    #[must_use]
    pub fn due(&self) -> Timestamp {
        self.mark.time.checked_add(self.grace()).unwrap_or(Timestamp::MAX)
    }

    /// Until when a writer that relies on a condemned pack may still commit.
    fn commit_deadline(&self) -> Timestamp {
        let grace = self.grace();
        self.mark.time.checked_add(grace - grace / 4).unwrap_or(Timestamp::MAX)
    }
}

/// Every prune mark. A mark that cannot be read is an error, never skipped:
/// a writer that ignored it could deduplicate against a pack about to go.
pub fn read_marks(repo: &Repository) -> Result<Vec<Mark>> {
    let mut out = Vec::new();
    for obj in repo.backend().list(ObjectKind::PruneMark)? {
        let id: Id = obj.name.parse().map_err(|e| Error::damaged(ObjectKind::PruneMark.path(&obj.name), e))?;
        let bytes = match repo.read_object(ObjectKind::PruneMark, &id) {
            Ok(b) => b,
            // Swept since it was listed.
            Err(Error::Backend(e)) if e.kind == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let m = mark::open(&bytes, repo.catalog_key()).map_err(|e| Error::damaged(ObjectKind::PruneMark.path(&obj.name), e))?;
        out.push(Mark { id, mark: m });
    }
    out.sort_by_key(|m| m.mark.time);
    Ok(out)
}

/// The prune marks a writer saw when it started.
#[derive(Debug, Default, Clone)]
pub struct Marks {
    seen: HashSet<Id>,
    condemned: HashSet<Id>,
}

impl Marks {
    /// Reads the marks; call before loading the index.
    pub fn load(repo: &Repository) -> Result<Marks> {
        let marks = read_marks(repo)?;
        Ok(Marks { seen: marks.iter().map(|m| m.id).collect(), condemned: marks.iter().flat_map(|m| m.mark.packs.iter().copied()).collect() })
    }

    /// Packs a writer must not deduplicate against.
    #[must_use]
    pub fn condemned(&self) -> &HashSet<Id> {
        &self.condemned
    }
}

/// Called by a writer just before it saves a snapshot that relies on
/// `depends` (packs it wrote or found blobs in). Returns the packs a newer
/// mark condemns, to check again with [`verify_after_commit`]; fails when
/// committing could race the sweep.
pub fn commit_guard(repo: &Repository, start: &Marks, depends: &HashSet<Id>) -> Result<Vec<Id>> {
    let now = Timestamp::now();
    let mut at_risk = Vec::new();
    for m in read_marks(repo)? {
        if start.seen.contains(&m.id) {
            continue;
        }
        let hit: Vec<Id> = m.mark.packs.iter().filter(|p| depends.contains(p)).copied().collect();
        if hit.is_empty() {
            continue;
        }
        if now >= m.commit_deadline() {
            return Err(Error::ConcurrentPrune(format!(
                "a prune from {} at {} condemned {} pack(s) this backup relies on, and its grace period ({}s) is too far gone to commit safely; nothing was lost: run the backup again (or give prune a longer --grace than your longest backup)",
                m.mark.host,
                m.mark.time.strftime("%Y-%m-%d %H:%M:%S"),
                hit.len(),
                m.mark.grace_secs
            )));
        }
        at_risk.extend(hit);
    }
    Ok(at_risk)
}

/// After saving `snapshot`, checks that the packs [`commit_guard`] found at
/// risk still exist.
pub fn verify_after_commit(repo: &Repository, snapshot: &Id, at_risk: &[Id]) -> Result<()> {
    for p in at_risk {
        match repo.backend().size(ObjectKind::Pack, &p.to_hex()) {
            Ok(_) => {}
            Err(e) if e.kind == ErrorKind::NotFound => {
                return Err(Error::ConcurrentPrune(format!(
                    "snapshot {} was saved, but a concurrent prune deleted pack {} it needs (host clocks further apart than a quarter of the grace period?): forget that snapshot and run the backup again",
                    snapshot.short(),
                    p.short()
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// How `prune` runs.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Between marking a pack and deleting it. Must exceed the longest
    /// backup that can run concurrently (see the module docs).
    pub grace: Duration,
    /// Repack partly used packs until unused bytes are at most this
    /// fraction of used bytes (0.05: 5 %).
    pub max_unused: f64,
    /// At most this many bytes of packs are repacked in one run.
    pub max_repack: Option<u64>,
    pub dry_run: bool,
    /// Upload threads for repacked packs.
    pub threads: usize,
    /// Components whose snapshots' packs get COMPLIANCE (`immutable = true`
    /// in the plan) when prune lengthens a pack that has no lock yet; the
    /// others get GOVERNANCE (see [`crate::locks`]).
    pub lock_modes: HashMap<String, reprise_backends::LockMode>,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { grace: DEFAULT_GRACE, max_unused: 0.05, max_repack: None, dry_run: false, threads: 4, lock_modes: HashMap::new() }
    }
}

/// What `prune` found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub used_blobs: usize,
    pub packs: usize,
    pub pack_bytes: u64,
    // Sweep.
    pub swept_marks: usize,
    pub deleted_packs: usize,
    pub deleted_bytes: u64,
    pub rescued_packs: usize,
    pub index_files_rewritten: usize,
    /// Index entries of packs already gone from storage that were dropped.
    pub stale_index_packs: usize,
    // Mark.
    pub condemned_packs: usize,
    pub condemned_bytes: u64,
    pub repacked_packs: usize,
    pub repacked_bytes: u64,
    pub repack_written_bytes: u64,
    /// The repack stopped at `max_repack`.
    pub repack_limited: bool,
    /// Unused bytes left in partly used packs after this run.
    pub unused_bytes_left: u64,
    pub mark: Option<Id>,
    // Still waiting.
    pub pending_marks: usize,
    pub pending_packs: usize,
    pub next_sweep: Option<Timestamp>,
    /// Storage locks of the packs retained snapshots need, lengthened.
    pub locks: crate::locks::LockReport,
    pub duration_ms: u64,
}

/// Every index file and every pack, as prune needs them: entries per pack,
/// which index file names which pack, what storage holds.
struct Catalog {
    /// Index files by name, with the packs each names (their entries live
    /// once, in `packs`: prune holds a million-blob index twice otherwise).
    files: Vec<(Id, Vec<Id>)>,
    /// Pack → its blobs and length (from index files, else its directory).
    packs: hashbrown::HashMap<Id, IndexedPack>,
    /// Packs in storage, with their sizes.
    stored: HashMap<Id, u64>,
    /// Stored packs whose directory could not be read (never deleted).
    unreadable: HashSet<Id>,
}

impl Catalog {
    fn load(repo: &Repository) -> Result<Catalog> {
        let backend = repo.backend();
        let mut files = Vec::new();
        let mut packs: hashbrown::HashMap<Id, IndexedPack> = hashbrown::HashMap::new();
        for (name, r) in crate::index::read_index_files(repo)? {
            match r {
                Ok(file) => {
                    let id = name.parse::<Id>().map_err(|e| Error::damaged(ObjectKind::Index.path(&name), e))?;
                    files.push((id, file.packs.iter().map(|p| p.id).collect()));
                    for p in file.packs {
                        packs.entry(p.id).or_insert(p);
                    }
                }
                Err(Error::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                // A damaged index file: its packs are adopted from their
                // own directories below, so nothing is lost by going on.
                Err(e) => tracing::warn!("{e}"),
            }
        }
        let mut stored = HashMap::new();
        let mut unreadable = HashSet::new();
        for obj in backend.list(ObjectKind::Pack)? {
            let Ok(id) = obj.name.parse::<Id>() else { continue };
            stored.insert(id, obj.size);
            if packs.contains_key(&id) {
                continue;
            }
            match read_directory(repo, &id, obj.size) {
                Ok(blobs) => {
                    packs.insert(id, IndexedPack { id, length: obj.size, blobs });
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    unreadable.insert(id);
                }
            }
        }
        Ok(Catalog { files, packs, stored, unreadable })
    }

    /// An index of the stored packs not in `exclude` (and, with
    /// `trees_only`, of tree packs only: all that walking snapshots needs).
    fn index_without(&self, exclude: &HashSet<Id>, trees_only: bool) -> MasterIndex {
        let mut index = MasterIndex::default();
        // Sorted, so that the copy chosen for a blob stored twice does not
        // depend on hash-map order.
        let mut ids: Vec<&Id> = self
            .packs
            .iter()
            .filter(|(id, p)| self.stored.contains_key(id) && !exclude.contains(id) && (!trees_only || p.blobs.first().is_some_and(|b| b.kind == BlobKind::Tree)))
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        for id in ids {
            index.add_pack(&self.packs[id]);
        }
        index
    }
}

/// Every blob the snapshots use (trees and content). Fails if a snapshot
/// or one of its trees cannot be read: prune never deletes on partial
/// knowledge.
fn used_blobs(repo: &Repository, index: &MasterIndex) -> Result<(usize, UsedSet)> {
    let (snapshots, unreadable) = repo.snapshots()?;
    if let Some((object, e)) = unreadable.into_iter().next() {
        return Err(Error::InvalidArgument(format!(
            "prune stops: snapshot {object} cannot be read ({e}), so what it needs is unknown; run `reprise check`, then restore the object from a copy or remove it"
        )));
    }
    let mut used = UsedSet::new();
    for s in &snapshots {
        let body = repo.snapshot_body(&s.id)?;
        if !used.insert(body.tree) {
            continue;
        }
        walk::walk(repo, index, &body.tree, &mut |_, node| {
            used.extend(node.content.iter().copied());
            if node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
                && !used.insert(sub)
            {
                // Identical subtrees are walked once.
                return Ok(Visit::Skip);
            }
            Ok(Visit::Descend)
        })?;
    }
    Ok((snapshots.len(), used))
}

/// Runs a prune: sweeps the marks whose grace period is over, then marks
/// what is unused now (repacking within the limits).
pub fn prune(repo: &Arc<Repository>, opts: &PruneOptions) -> Result<PruneReport> {
    repo.require_full("pruning")?;
    if !(0.0..=1.0).contains(&opts.max_unused) {
        return Err(Error::InvalidArgument("--max-unused must be between 0% and 100%".into()));
    }
    let started = Instant::now();
    // Marks are due by this time, taken before the snapshots are listed:
    // a writer may commit until three quarters of a grace period, so every
    // snapshot that can rely on a due mark's packs is in the listing.
    let now = Timestamp::now();
    let mut report = PruneReport { dry_run: opts.dry_run, ..PruneReport::default() };
    let marks = read_marks(repo)?;
    let mut catalog = Catalog::load(repo)?;
    // Trees are read from any stored pack, condemned or not.
    let all = catalog.index_without(&HashSet::new(), true);
    let (snapshots, used) = used_blobs(repo, &all)?;
    drop(all);
    report.snapshots = snapshots;
    report.used_blobs = used.len();

    let (due, pending): (Vec<Mark>, Vec<Mark>) = marks.into_iter().partition(|m| m.due() <= now);
    sweep(repo, &mut catalog, &used, &due, &pending, opts.dry_run, &mut report)?;
    let mut pending = pending;
    if let Some(m) = mark(repo, &mut catalog, &used, &pending, opts, &mut report)? {
        pending.push(m);
    }
    // Without a grace period the new mark is due at once (single-host use,
    // nothing running): sweep it now rather than at the next prune.
    if opts.grace.is_zero() && !opts.dry_run {
        let now = Timestamp::now();
        let (due, rest): (Vec<Mark>, Vec<Mark>) = pending.into_iter().partition(|m| m.due() <= now);
        if !due.is_empty() {
            // Listed again: a snapshot committed while this prune ran keeps
            // its packs (writers that see the mark refuse to commit).
            let trees = catalog.index_without(&HashSet::new(), true);
            let (_, used_now) = used_blobs(repo, &trees)?;
            drop(trees);
            sweep(repo, &mut catalog, &used_now, &due, &rest, false, &mut report)?;
        }
        pending = rest;
    }
    report.pending_marks = pending.len();
    let condemned: HashSet<Id> = pending.iter().flat_map(|m| m.mark.packs.iter().copied()).collect();
    report.pending_packs = condemned.len();
    // Last, on what storage now holds (repacked packs included): packs a
    // retained snapshot needs are locked at least until its date. The set
    // of used blobs is dropped first: the job holds its own map.
    drop(used);
    let trees = catalog.index_without(&HashSet::new(), true);
    report.locks = crate::locks::extend(repo, &catalog.packs, &catalog.stored, &condemned, &trees, &opts.lock_modes, opts.dry_run)?;
    drop(trees);
    report.next_sweep = pending.iter().map(Mark::due).min();
    report.packs = catalog.stored.len();
    report.pack_bytes = catalog.stored.values().sum();
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Phase 2: deletes what due marks condemn, except what a snapshot written
/// since needs.
fn sweep(repo: &Repository, catalog: &mut Catalog, used: &UsedSet, due: &[Mark], pending: &[Mark], dry_run: bool, report: &mut PruneReport) -> Result<()> {
    let condemned_due: HashSet<Id> = due.iter().flat_map(|m| m.mark.packs.iter().copied()).collect();
    let condemned_all: HashSet<Id> = condemned_due.iter().copied().chain(pending.iter().flat_map(|m| m.mark.packs.iter().copied())).collect();
    let mut live = catalog.index_without(&condemned_all, false);
    let mut doomed: HashSet<Id> = HashSet::new();
    let mut ordered: Vec<&Id> = condemned_due.iter().collect();
    ordered.sort();
    for p in ordered {
        if !catalog.stored.contains_key(p) {
            continue; // deleted by an earlier, interrupted sweep
        }
        let Some(pack) = catalog.packs.get(p) else {
            // Stored, but its content cannot be established: keep it.
            report.rescued_packs += 1;
            continue;
        };
        if pack.blobs.iter().any(|b| used.contains(&b.id) && !live.contains(&b.id)) {
            // A snapshot written since the mark needs it: it lives on.
            live.add_pack(pack);
            report.rescued_packs += 1;
        } else {
            doomed.insert(*p);
        }
    }
    // Index entries for packs storage no longer has (a sweep interrupted
    // between deleting packs and rewriting index files, or a writer's pack
    // condemned before its index file was written) are dropped when no
    // snapshot needs them; if one does, that is damage and stays visible.
    let mut stale: HashSet<Id> = HashSet::new();
    for (_, names) in &catalog.files {
        for id in names {
            if catalog.stored.contains_key(id) || stale.contains(id) {
                continue;
            }
            if !catalog.packs.get(id).is_some_and(|p| p.blobs.iter().any(|b| used.contains(&b.id) && !live.contains(&b.id))) {
                stale.insert(*id);
            }
        }
    }
    report.stale_index_packs += stale.len();
    report.swept_marks += due.len();
    report.deleted_packs += doomed.len();
    report.deleted_bytes += doomed.iter().map(|p| catalog.stored[p]).sum::<u64>();
    let gone: HashSet<Id> = doomed.union(&stale).copied().collect();
    let rewrite: Vec<usize> = (0..catalog.files.len()).filter(|&i| catalog.files[i].1.iter().any(|p| gone.contains(p))).collect();
    report.index_files_rewritten += rewrite.len();
    if dry_run {
        return Ok(());
    }
    // Order: replacement index files, then packs, then old index files,
    // then marks. Interrupted anywhere, the next prune finishes the job.
    let mut replaced = Vec::new();
    for &i in &rewrite {
        let (old_id, old) = &catalog.files[i];
        let kept: Vec<Id> = old.iter().filter(|p| !gone.contains(p)).copied().collect();
        let new = if kept.is_empty() {
            None
        } else {
            let packs = kept.iter().filter_map(|p| catalog.packs.get(p).cloned()).collect();
            let file = IndexFile { supersedes: vec![*old_id], packs };
            Some((repo.save_object(ObjectKind::Index, &file.seal(repo.catalog_key()))?, kept))
        };
        replaced.push((*old_id, new));
    }
    let mut doomed_sorted: Vec<&Id> = doomed.iter().collect();
    doomed_sorted.sort();
    for p in doomed_sorted {
        remove(repo, ObjectKind::Pack, &p.to_hex())?;
        catalog.stored.remove(p);
        catalog.packs.remove(p);
    }
    for (old_id, _) in &replaced {
        remove(repo, ObjectKind::Index, &old_id.to_hex())?;
    }
    for m in due {
        remove(repo, ObjectKind::PruneMark, &m.id.to_hex())?;
    }
    catalog.files.retain(|(id, _)| !replaced.iter().any(|(old, _)| old == id));
    catalog.files.extend(replaced.into_iter().filter_map(|(_, new)| new));
    Ok(())
}

fn remove(repo: &Repository, kind: ObjectKind, name: &str) -> Result<()> {
    match repo.backend().remove(kind, name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Phase 1: condemns unused packs and repacks mostly unused ones; writes
/// one mark for both.
fn mark(repo: &Arc<Repository>, catalog: &mut Catalog, used: &UsedSet, pending: &[Mark], opts: &PruneOptions, report: &mut PruneReport) -> Result<Option<Mark>> {
    let condemned: HashSet<Id> = pending.iter().flat_map(|m| m.mark.packs.iter().copied()).collect();
    let live = catalog.index_without(&condemned, false);
    // A blob counts as used in one pack only (the copy the index chose);
    // other copies of it are unused.
    let mut unused_packs = Vec::new();
    let mut partial: Vec<(Id, u64, u64)> = Vec::new(); // pack, used bytes, unused bytes
    let mut used_bytes_total = 0u64;
    let mut ids: Vec<&Id> = catalog.packs.keys().filter(|id| catalog.stored.contains_key(id) && !condemned.contains(id) && !catalog.unreadable.contains(id)).collect();
    ids.sort();
    for id in ids {
        let pack = &catalog.packs[id];
        let (mut u, mut n) = (0u64, 0u64);
        for b in &pack.blobs {
            let keeper = used.contains(&b.id) && live.get(&b.id).is_some_and(|l| l.pack == *id);
            if keeper {
                u += u64::from(b.length);
            } else {
                n += u64::from(b.length);
            }
        }
        used_bytes_total += u;
        if u == 0 {
            unused_packs.push(*id);
        } else if n > 0 {
            partial.push((*id, u, n));
        }
    }
    report.condemned_packs = unused_packs.len();
    report.condemned_bytes = unused_packs.iter().map(|p| catalog.stored[p]).sum();

    // Repack the most wasteful packs first, until what stays unused is
    // within `max_unused` of what is used, or the repack budget is spent.
    partial.sort_by(|a, b| (b.2 * (a.1 + a.2)).cmp(&(a.2 * (b.1 + b.2))));
    let mut unused_left: u64 = partial.iter().map(|p| p.2).sum();
    let allowed = (used_bytes_total as f64 * opts.max_unused) as u64;
    let mut to_repack = Vec::new();
    let mut budget = opts.max_repack.unwrap_or(u64::MAX);
    for (id, _, n) in &partial {
        if unused_left <= allowed {
            break;
        }
        let len = catalog.stored[id];
        if len > budget {
            report.repack_limited = true;
            break;
        }
        budget -= len;
        unused_left -= n;
        to_repack.push(*id);
    }
    report.unused_bytes_left = unused_left;
    report.repacked_packs = to_repack.len();
    report.repacked_bytes = to_repack.iter().map(|p| catalog.stored[p]).sum();
    if opts.dry_run || (unused_packs.is_empty() && to_repack.is_empty()) {
        return Ok(None);
    }
    if !to_repack.is_empty() {
        report.repack_written_bytes = repack(repo, catalog, &live, used, &to_repack, opts)?;
    }
    let (host, user) = whoami();
    let m = PruneMark {
        time: Timestamp::now(),
        grace_secs: opts.grace.as_secs(),
        packs: unused_packs.into_iter().chain(to_repack).collect(),
        host,
        user,
    };
    let id = repo.save_object(ObjectKind::PruneMark, &mark::seal(&m, repo.catalog_key()))?;
    report.mark = Some(id);
    Ok(Some(Mark { id, mark: m }))
}

/// Copies the used blobs of `packs` into new packs (durable and indexed
/// before the old ones are condemned). Returns the bytes written.
fn repack(repo: &Arc<Repository>, catalog: &mut Catalog, live: &MasterIndex, used: &UsedSet, packs: &[Id], opts: &PruneOptions) -> Result<u64> {
    let uploads = Uploads::start(Arc::clone(repo), opts.threads, 0);
    // Blobs are added as stored (`add_stored`): the packers never compress.
    let mut data = BlobPacker::new(Arc::clone(repo), BlobKind::Data, uploads.sink(), 0);
    let mut trees = BlobPacker::new(Arc::clone(repo), BlobKind::Tree, uploads.sink(), 0);
    let result = (|| -> Result<()> {
        for id in packs {
            let pack = &catalog.packs[id];
            let bytes = repo.backend().read(ObjectKind::Pack, &id.to_hex())?;
            for b in &pack.blobs {
                if !(used.contains(&b.id) && live.get(&b.id).is_some_and(|l| l.pack == *id)) {
                    continue;
                }
                let (start, end) = (b.offset as usize, b.offset as usize + b.length as usize);
                let ct = bytes.get(start..end).ok_or_else(|| {
                    Error::damaged(ObjectKind::Pack.path(&id.to_hex()), reprise_format::FormatError::Truncated("blob beyond the end of the pack".into()))
                })?;
                // Verified on the way (a damaged blob is never copied
                // forward), and moved as stored: no second compression.
                let (compression, payload) = repo.open_blob_stored(id, b, ct)?;
                match b.kind {
                    BlobKind::Data => data.add_stored(b.id, b.raw_length, compression, &payload)?,
                    BlobKind::Tree => trees.add_stored(b.id, b.raw_length, compression, &payload)?,
                }
            }
        }
        data.flush()?;
        trees.flush()
    })();
    drop(data);
    drop(trees);
    if let Err(e) = result {
        uploads.abandon();
        return Err(e);
    }
    let uploaded = uploads.finish()?;
    for (id, f) in crate::index::read_files(repo, &uploaded.index_files)? {
        catalog.files.push((id, f.packs.iter().map(|p| p.id).collect()));
        for p in f.packs {
            catalog.stored.insert(p.id, p.length);
            catalog.packs.insert(p.id, p);
        }
    }
    Ok(uploaded.stored_bytes)
}
