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
//!
//! Writers are untrusted (docs/STORAGE.md, threat model), so prune believes
//! nothing it has not checked:
//!
//! * only marks the administrator signed condemn anything; a mark a writer
//!   forged (or an unsigned one) is ignored, by prune and by writers;
//! * blobs are counted per domain (docs/FORMAT.md 2.3): a pack claimed by
//!   an index file of one domain never stands in for a blob of another;
//! * **prune never deletes or repacks away the last verified copy of a
//!   blob a snapshot needs** ([`Verifier`]): when a used blob has several
//!   copies, the one kept is the first whose pack decrypts and whose blob
//!   hashes to its ID with the recovery key, and a pack is deleted only
//!   when every used blob it holds has such a copy elsewhere. A decoy (a
//!   pack of garbage under real blob IDs, from a compromised writer of the
//!   same domain) is then an unused pack like any other: reported, and
//!   removed after the grace period;
//! * packs no trusted index file or signature vouches for (planted, or
//!   written by a revoked key after its revocation) hold nothing anybody
//!   needs: they are condemned like unused packs.

use std::collections::{BTreeMap, HashMap, HashSet};

/// The blobs in use in one domain: a million IDs and more, already random,
/// so hashed with hashbrown's fast default hasher rather than SipHash.
type UsedSet = hashbrown::HashSet<Id>;
/// The blobs in use, per domain.
type Used = HashMap<Domain, UsedSet>;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use parking_lot::Mutex;
use reprise_backends::{ErrorKind, ObjectKind};
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::keys::Domain;
use reprise_format::mark::{self, PruneMark};
use reprise_format::tree::NodeKind;
use reprise_format::{BlobKind, Id};

use crate::error::{Error, Result};
use crate::index::{BlobLocation, MasterIndex, Scan};
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

/// The marks that count, and those ignored (with why).
#[derive(Debug, Default)]
pub struct MarkSet {
    pub marks: Vec<Mark>,
    pub ignored: Vec<(String, String)>,
}

/// Every prune mark the administrator signed. A mark that cannot be read
/// is an error, never skipped: a writer that ignored it could deduplicate
/// against a pack about to go. A mark nobody may have written (another
/// signer, unsigned after the upgrade) condemns nothing: it is ignored,
/// and listed in [`MarkSet::ignored`].
pub fn read_marks(repo: &Repository) -> Result<MarkSet> {
    let mut out = MarkSet::default();
    for obj in repo.backend().list(ObjectKind::PruneMark)? {
        match read_mark(repo, &obj.name)? {
            MarkRead::Counted(m) => out.marks.push(m),
            MarkRead::Ignored(why) => out.ignored.push((ObjectKind::PruneMark.path(&obj.name), why)),
            MarkRead::Gone => {}
        }
    }
    out.marks.sort_by_key(|m| m.mark.time);
    Ok(out)
}

/// What one prune mark object is.
pub(crate) enum MarkRead {
    Counted(Mark),
    /// Nobody who may condemn packs wrote it (why).
    Ignored(String),
    /// Swept since it was listed.
    Gone,
}

/// Reads the prune mark `name`; [`Error::Damaged`] when it cannot be read.
pub(crate) fn read_mark(repo: &Repository, name: &str) -> Result<MarkRead> {
    let object = ObjectKind::PruneMark.path(name);
    let id: Id = name.parse().map_err(|e| Error::damaged(&object, e))?;
    let bytes = match repo.read_object(ObjectKind::PruneMark, &id) {
        Ok(b) => b,
        Err(Error::Backend(e)) if e.kind == ErrorKind::NotFound => return Ok(MarkRead::Gone),
        Err(e) => return Err(e),
    };
    let key = if mark::is_v2(&bytes) {
        match mark::verify(&bytes, &repo.id()) {
            Ok(signer) if Some(signer) == repo.trust().admin() => repo.secrets().shared_key(),
            Ok(signer) => {
                return Ok(MarkRead::Ignored(format!("ignored: only the administrator may condemn packs; this mark is signed by {}", repo.trust().describe(Some(&signer)))));
            }
            Err(e) => return Ok(MarkRead::Ignored(format!("ignored: {e}"))),
        }
    } else if repo.trust().needs_upgrade() {
        repo.domain_keys(&reprise_format::keys::DomainId::LEGACY).ok().map(|k| k.catalog_key.clone())
    } else {
        return Ok(MarkRead::Ignored("ignored: an unsigned (format 1) mark, written after the repository stopped trusting unsigned objects".into()));
    };
    let Some(key) = key else {
        return Err(Error::LegacyKey);
    };
    let m = mark::open(&bytes, &key).map_err(|e| Error::damaged(&object, e))?;
    Ok(MarkRead::Counted(Mark { id, mark: m }))
}

/// Writes a mark condemning WAL objects (`<component>/<file>`), signed by
/// the administrator: `time` is kept when a later `forget` rewrites a mark
/// without the files it keeps again, so the grace period never restarts.
pub fn mark_wal(repo: &Repository, wal: Vec<String>, time: Timestamp, grace: Duration) -> Result<Mark> {
    let (host, user) = whoami();
    let m = PruneMark { time, grace_secs: grace.as_secs(), packs: Vec::new(), wal, host, user };
    let (signer, _) = repo.signer()?;
    let shared = repo.secrets().shared_key().ok_or(Error::WriteOnly { operation: "marking WAL for deletion" })?;
    let id = repo.save_object(ObjectKind::PruneMark, &mark::seal(&m, &shared, &signer, &repo.id()))?;
    Ok(Mark { id, mark: m })
}

/// Removes a mark (swept, or replaced by [`mark_wal`]); one already gone
/// is not an error.
pub fn remove_mark(repo: &Repository, id: &Id) -> Result<()> {
    remove(repo, ObjectKind::PruneMark, &id.to_hex())
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
        let marks = read_marks(repo)?.marks;
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
    for m in read_marks(repo)?.marks {
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

/// A copy prune found bad while choosing what to keep.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BadCopy {
    pub pack: Id,
    pub blob: Id,
    pub domain: Domain,
    /// Who signed the pack (or the index file naming it).
    pub writer: String,
    pub reason: String,
}

/// What `prune` found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    /// Snapshots ignored because their signer may not have written them.
    pub untrusted_snapshots: usize,
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
    /// Of the condemned packs, those no trusted signer vouches for.
    pub untrusted_packs: usize,
    pub repacked_packs: usize,
    pub repacked_bytes: u64,
    pub repack_written_bytes: u64,
    /// The repack stopped at `max_repack`.
    pub repack_limited: bool,
    /// Unused bytes left in partly used packs after this run.
    pub unused_bytes_left: u64,
    pub mark: Option<Id>,
    /// Marks ignored (not the administrator's).
    pub ignored_marks: usize,
    /// Copies of used blobs that did not verify: never kept in place of a
    /// good one.
    pub bad_copies: Vec<BadCopy>,
    /// Packs read whole to verify the copies kept.
    pub packs_verified: usize,
    // Still waiting.
    pub pending_marks: usize,
    pub pending_packs: usize,
    pub next_sweep: Option<Timestamp>,
    /// Storage locks of the packs retained snapshots need, lengthened.
    pub locks: crate::locks::LockReport,
    pub duration_ms: u64,
}

/// Every trusted index file and every pack, as prune needs them: per
/// domain, which packs it claims and with which entries; what storage
/// holds.
struct Catalog {
    /// Index files by name, with their domain and the packs each names
    /// (entries live once, in `packs`: prune holds a million-blob index
    /// twice otherwise).
    files: Vec<(Id, Domain, Vec<Id>)>,
    /// (domain, pack) → its blobs in that domain: from trusted index files,
    /// else from the pack's own (signed) directory. A pack may be claimed
    /// in several domains (a writer may name any pack in its own index):
    /// each claim is judged on its own, and a pack goes only when no claim
    /// needs it.
    packs: hashbrown::HashMap<(Domain, Id), IndexedPack>,
    /// Packs in storage, with their sizes.
    stored: HashMap<Id, u64>,
    /// Stored packs whose content cannot be established (never deleted).
    unreadable: HashSet<Id>,
    /// Stored packs that no trusted signer vouches for.
    untrusted: HashSet<Id>,
}

impl Catalog {
    fn load(repo: &Repository) -> Result<Catalog> {
        let scan = Scan::run(repo, None)?;
        let mut files = Vec::new();
        let mut packs: hashbrown::HashMap<(Domain, Id), IndexedPack> = hashbrown::HashMap::new();
        // Two index files of a domain may list one pack (a prune rewriting
        // them, or a writer naming packs it did not write): their entries
        // are merged, so that no claim hides another.
        let mut claim = |d: Domain, p: IndexedPack| match packs.entry((d, p.id)) {
            hashbrown::hash_map::Entry::Vacant(v) => {
                v.insert(p);
            }
            hashbrown::hash_map::Entry::Occupied(mut o) => {
                let known = o.get_mut();
                for b in p.blobs {
                    if !known.blobs.iter().any(|k| k.id == b.id && k.offset == b.offset) {
                        known.blobs.push(b);
                    }
                }
            }
        };
        for f in scan.files {
            files.push((f.id, f.domain, f.file.packs.iter().map(|p| p.id).collect()));
            for p in f.file.packs {
                claim(f.domain, p);
            }
        }
        for (d, p) in scan.adopted {
            claim(d, p);
        }
        for (object, e) in &scan.damaged {
            // A damaged index file: its packs are adopted from their own
            // directories, so nothing is lost by going on.
            tracing::warn!("{object}: {e}");
        }
        let stored: HashMap<Id, u64> = scan.stored.iter().filter_map(|o| o.name.parse::<Id>().ok().map(|id| (id, o.size))).collect();
        let unreadable: HashSet<Id> = scan.unreadable_packs.iter().filter_map(|(o, _)| o.rsplit('/').next().and_then(|n| n.parse().ok())).collect();
        let claimed: HashSet<Id> = packs.keys().map(|(_, p)| *p).collect();
        let untrusted: HashSet<Id> = stored.keys().filter(|p| !claimed.contains(p) && !unreadable.contains(p)).copied().collect();
        for (object, reason) in &scan.untrusted {
            tracing::warn!("{object}: {reason}");
        }
        Ok(Catalog { files, packs, stored, unreadable, untrusted })
    }

    /// Per domain, an index of the stored packs not in `exclude` (and, with
    /// `trees_only`, of tree packs only: all that walking snapshots needs).
    fn index_without(&self, exclude: &HashSet<Id>, trees_only: bool) -> BTreeMap<Domain, MasterIndex> {
        let mut out: BTreeMap<Domain, MasterIndex> = BTreeMap::new();
        // Sorted, so that the copy chosen first for a blob stored twice
        // does not depend on hash-map order.
        let mut keys: Vec<&(Domain, Id)> = self
            .packs
            .iter()
            .filter(|((_, id), p)| self.stored.contains_key(id) && !exclude.contains(id) && (!trees_only || p.blobs.iter().any(|b| b.kind == BlobKind::Tree)))
            .map(|(k, _)| k)
            .collect();
        keys.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        for k in keys {
            out.entry(k.0).or_insert_with(|| MasterIndex::new(k.0)).add_pack(&self.packs[k]);
        }
        out
    }

    /// The claims on a pack, in domain order.
    fn claims(&self, pack: &Id) -> Vec<(Domain, &IndexedPack)> {
        let mut v: Vec<(Domain, &IndexedPack)> = self.packs.iter().filter(|((_, p), _)| p == pack).map(|((d, _), ip)| (*d, ip)).collect();
        v.sort_by_key(|(d, _)| *d);
        v
    }

    /// Claims grouped by pack (one pass over the catalog).
    fn claims_by_pack(&self) -> HashMap<Id, Vec<(Domain, &IndexedPack)>> {
        let mut by: HashMap<Id, Vec<(Domain, &IndexedPack)>> = HashMap::new();
        for ((d, p), ip) in &self.packs {
            by.entry(*p).or_default().push((*d, ip));
        }
        for v in by.values_mut() {
            v.sort_by_key(|(d, _)| *d);
        }
        by
    }
}

/// Reads keeper packs whole, once, and says which of their blobs decrypt
/// and hash to their IDs (and, for version 2 packs, whether the pack's
/// signature holds): the check that stands between a decoy and the
/// deletion of the genuine copy.
/// Per (domain, pack) claim, the blobs that verified.
type Verified = HashMap<(Domain, Id), Arc<HashSet<Id>>>;

struct Verifier<'a> {
    repo: &'a Repository,
    done: Mutex<Verified>,
    bad: Mutex<Vec<BadCopy>>,
    packs_read: std::sync::atomic::AtomicUsize,
}

impl<'a> Verifier<'a> {
    fn new(repo: &'a Repository) -> Verifier<'a> {
        Verifier { repo, done: Mutex::default(), bad: Mutex::default(), packs_read: std::sync::atomic::AtomicUsize::new(0) }
    }

    /// Whether the copy at `loc` is genuine.
    fn holds(&self, loc: &BlobLocation, claim: &IndexedPack) -> Result<bool> {
        let key = (loc.domain, loc.pack);
        if let Some(good) = self.done.lock().get(&key) {
            return Ok(good.contains(&loc.entry.id));
        }
        let good = Arc::new(self.check_pack(loc.domain, claim)?);
        self.done.lock().insert(key, Arc::clone(&good));
        Ok(good.contains(&loc.entry.id))
    }

    fn check_pack(&self, domain: Domain, claim: &IndexedPack) -> Result<HashSet<Id>> {
        self.packs_read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = claim.id.to_hex();
        let trust = self.repo.trust();
        let bytes = match self.repo.read_object(ObjectKind::Pack, &claim.id) {
            Ok(b) => b,
            Err(Error::Backend(e)) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Truncated) => return Ok(HashSet::new()),
            Err(Error::Damaged { .. }) => return Ok(HashSet::new()),
            Err(e) => return Err(e),
        };
        let tail = reprise_format::pack::tail_of(&bytes).ok();
        let writer = trust.describe(tail.and_then(|t| t.signer).as_ref());
        let mut good = HashSet::new();
        let key = match reprise_format::pack::open_pack_key(&bytes, self.repo.recovery("verifying copies")?) {
            Ok(k) => k,
            Err(e) => {
                self.bad.lock().push(BadCopy { pack: claim.id, blob: Id::default(), domain, writer, reason: format!("pack key: {e}") });
                return Ok(good);
            }
        };
        let keys = self.repo.domain_keys(&domain)?;
        for e in &claim.blobs {
            let ct = bytes.get(e.offset as usize..(e.offset as usize + e.length as usize));
            let r = ct.map_or(Err(reprise_format::FormatError::Truncated(format!("blob in {name}"))), |ct| reprise_format::pack::open_blob(&key, &keys.id_key, e, ct));
            match r {
                Ok(_) => {
                    good.insert(e.id);
                }
                Err(err) => self.bad.lock().push(BadCopy { pack: claim.id, blob: e.id, domain, writer: writer.clone(), reason: err.to_string() }),
            }
        }
        Ok(good)
    }

    /// The first copy of `blob` (domain `d`) outside `except`, among the
    /// live ones, that verifies.
    fn verified_elsewhere(&self, catalog: &Catalog, live: &MasterIndex, blob: &Id, except: &Id) -> Result<Option<Id>> {
        for loc in live.locations(blob) {
            if loc.pack == *except {
                continue;
            }
            let Some(claim) = catalog.packs.get(&(loc.domain, loc.pack)) else { continue };
            if self.holds(&loc, claim)? {
                return Ok(Some(loc.pack));
            }
        }
        Ok(None)
    }
}

/// Every blob the trusted snapshots use (trees and content), per domain.
/// Fails if a trusted snapshot or one of its trees cannot be read: prune
/// never deletes on partial knowledge. Snapshots no trusted key wrote are
/// not counted (their blobs are nobody's).
fn used_blobs(repo: &Repository, trees: &BTreeMap<Domain, MasterIndex>) -> Result<(usize, usize, Used)> {
    let (snapshots, unreadable) = repo.snapshots()?;
    let mut untrusted = 0;
    for (object, e) in unreadable {
        if let Error::Untrusted { reason, .. } = &e {
            tracing::warn!("{object}: ignored: {reason}");
            untrusted += 1;
            continue;
        }
        return Err(Error::InvalidArgument(format!(
            "prune stops: snapshot {object} cannot be read ({e}), so what it needs is unknown; run `reprise check`, then restore the object from a copy or remove it"
        )));
    }
    let mut used: Used = HashMap::new();
    for s in &snapshots {
        let body = repo.snapshot_body(&s.id)?;
        let set = used.entry(s.domain).or_default();
        if !set.insert(body.tree) {
            continue;
        }
        let none = MasterIndex::new(s.domain);
        let index = trees.get(&s.domain).unwrap_or(&none);
        walk::walk(repo, index, &body.tree, &mut |_, node| {
            set.extend(node.content.iter().copied());
            if node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
                && !set.insert(sub)
            {
                // Identical subtrees are walked once.
                return Ok(Visit::Skip);
            }
            Ok(Visit::Descend)
        })?;
    }
    Ok((snapshots.len(), untrusted, used))
}

fn is_used(used: &Used, domain: &Domain, blob: &Id) -> bool {
    used.get(domain).is_some_and(|s| s.contains(blob))
}

/// Runs a prune: sweeps the marks whose grace period is over, then marks
/// what is unused now (repacking within the limits).
pub fn prune(repo: &Arc<Repository>, opts: &PruneOptions) -> Result<PruneReport> {
    repo.require_full("pruning")?;
    repo.signer()?;
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
    report.ignored_marks = marks.ignored.len();
    for (object, why) in &marks.ignored {
        tracing::warn!("{object}: {why}");
    }
    // Marks that condemn WAL only are `forget`'s: the PostgreSQL layer
    // sweeps them (`reprise_postgres::expire::sweep`), knowing which base
    // backups still need which segments.
    let marks: Vec<Mark> = marks.marks.into_iter().filter(|m| !m.mark.packs.is_empty() || m.mark.wal.is_empty()).collect();
    let mut catalog = Catalog::load(repo)?;
    let verifier = Verifier::new(repo);
    // Trees are read from any stored pack, condemned or not.
    let all = catalog.index_without(&HashSet::new(), true);
    let (snapshots, untrusted, used) = used_blobs(repo, &all)?;
    drop(all);
    report.snapshots = snapshots;
    report.untrusted_snapshots = untrusted;
    report.used_blobs = used.values().map(hashbrown::HashSet::len).sum();

    let (due, pending): (Vec<Mark>, Vec<Mark>) = marks.into_iter().partition(|m| m.due() <= now);
    sweep(repo, &mut catalog, &verifier, &used, &due, &pending, opts.dry_run, &mut report)?;
    let mut pending = pending;
    if let Some(m) = mark(repo, &mut catalog, &verifier, &used, &pending, opts, &mut report)? {
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
            let (_, _, used_now) = used_blobs(repo, &trees)?;
            drop(trees);
            sweep(repo, &mut catalog, &verifier, &used_now, &due, &rest, false, &mut report)?;
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
    let mut bad = std::mem::take(&mut *verifier.bad.lock());
    bad.sort_by(|a, b| a.pack.cmp(&b.pack).then(a.blob.cmp(&b.blob)));
    bad.dedup_by(|a, b| a.pack == b.pack && a.blob == b.blob);
    for b in &bad {
        tracing::warn!("a copy of blob {} in pack {} ({}) does not verify: {}; it was not kept in place of a good copy", b.blob.short(), b.pack.short(), b.writer, b.reason);
    }
    report.bad_copies = bad;
    report.packs_verified = verifier.packs_read.load(std::sync::atomic::Ordering::Relaxed);
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

/// Phase 2: deletes what due marks condemn, except what a snapshot written
/// since needs and has no verified copy of elsewhere.
#[allow(clippy::too_many_arguments, reason = "the phases share prune's state explicitly")]
fn sweep(repo: &Repository, catalog: &mut Catalog, verifier: &Verifier, used: &Used, due: &[Mark], pending: &[Mark], dry_run: bool, report: &mut PruneReport) -> Result<()> {
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
        if catalog.unreadable.contains(p) {
            // Stored, but its content cannot be established: keep it.
            report.rescued_packs += 1;
            continue;
        }
        let mut needed = false;
        for (d, claim) in catalog.claims(p) {
            let empty = MasterIndex::new(d);
            let index = live.get(&d).unwrap_or(&empty);
            for b in &claim.blobs {
                if is_used(used, &d, &b.id) && verifier.verified_elsewhere(catalog, index, &b.id, p)?.is_none() {
                    needed = true;
                    break;
                }
            }
            if needed {
                break;
            }
        }
        if needed {
            // A snapshot written since the mark needs it (or its only good
            // copy is here): it lives on.
            for (d, claim) in catalog.claims(p) {
                live.entry(d).or_insert_with(|| MasterIndex::new(d)).add_pack(claim);
            }
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
    for (_, d, names) in &catalog.files {
        for id in names {
            if catalog.stored.contains_key(id) || stale.contains(id) {
                continue;
            }
            let needed = catalog.packs.get(&(*d, *id)).is_some_and(|p| {
                p.blobs.iter().any(|b| is_used(used, d, &b.id) && !live.get(d).is_some_and(|l| l.contains(&b.id)))
            });
            if !needed {
                stale.insert(*id);
            }
        }
    }
    report.stale_index_packs += stale.len();
    report.swept_marks += due.len();
    report.deleted_packs += doomed.len();
    report.deleted_bytes += doomed.iter().map(|p| catalog.stored[p]).sum::<u64>();
    let gone: HashSet<Id> = doomed.union(&stale).copied().collect();
    let rewrite: Vec<usize> = (0..catalog.files.len()).filter(|&i| catalog.files[i].2.iter().any(|p| gone.contains(p))).collect();
    report.index_files_rewritten += rewrite.len();
    if dry_run {
        return Ok(());
    }
    // Order: replacement index files, then packs, then old index files,
    // then marks. Interrupted anywhere, the next prune finishes the job.
    let (signer, _) = repo.signer()?;
    let mut replaced = Vec::new();
    for &i in &rewrite {
        let (old_id, domain, old) = &catalog.files[i];
        let kept: Vec<Id> = old.iter().filter(|p| !gone.contains(p)).copied().collect();
        let new = if kept.is_empty() {
            None
        } else {
            let packs = kept.iter().filter_map(|p| catalog.packs.get(&(*domain, *p)).cloned()).collect();
            let file = IndexFile { supersedes: vec![*old_id], packs };
            let keys = repo.domain_keys(domain)?;
            Some((repo.save_object(ObjectKind::Index, &file.seal(domain, &keys.catalog_key, &signer, &repo.id()))?, *domain, kept))
        };
        replaced.push((*old_id, new));
    }
    let mut doomed_sorted: Vec<&Id> = doomed.iter().collect();
    doomed_sorted.sort();
    for p in doomed_sorted {
        remove(repo, ObjectKind::Pack, &p.to_hex())?;
        catalog.stored.remove(p);
        catalog.packs.retain(|(_, id), _| id != p);
        catalog.untrusted.remove(p);
    }
    for (old_id, _) in &replaced {
        remove(repo, ObjectKind::Index, &old_id.to_hex())?;
    }
    for m in due {
        remove(repo, ObjectKind::PruneMark, &m.id.to_hex())?;
    }
    catalog.files.retain(|(id, ..)| !replaced.iter().any(|(old, _)| old == id));
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

/// For every used blob with several live copies in its domain, the copy
/// to keep: the first (in pack order) that verifies. A blob with one copy
/// keeps it (nothing is deleted in its place).
fn keepers(catalog: &Catalog, live: &BTreeMap<Domain, MasterIndex>, verifier: &Verifier, used: &Used) -> Result<HashMap<(Domain, Id), Id>> {
    let mut out = HashMap::new();
    for (d, index) in live {
        let Some(set) = used.get(d) else { continue };
        for b in set {
            let mut locs = index.locations(b);
            if locs.len() < 2 {
                continue;
            }
            locs.sort_by_key(|l| l.pack);
            let mut chosen = None;
            for loc in &locs {
                let Some(claim) = catalog.packs.get(&(loc.domain, loc.pack)) else { continue };
                if verifier.holds(loc, claim)? {
                    chosen = Some(loc.pack);
                    break;
                }
            }
            // No copy verifies: keep them all (damage is check's to report).
            if let Some(p) = chosen {
                out.insert((*d, *b), p);
            }
        }
    }
    Ok(out)
}

/// Phase 1: condemns unused and untrusted packs and repacks mostly unused
/// ones; writes one mark for both.
fn mark(repo: &Arc<Repository>, catalog: &mut Catalog, verifier: &Verifier, used: &Used, pending: &[Mark], opts: &PruneOptions, report: &mut PruneReport) -> Result<Option<Mark>> {
    let condemned: HashSet<Id> = pending.iter().flat_map(|m| m.mark.packs.iter().copied()).collect();
    let live = catalog.index_without(&condemned, false);
    let chosen = keepers(catalog, &live, verifier, used)?;
    // A blob counts as used in one pack only (its keeper); other copies of
    // it are unused.
    let is_keeper = |d: &Domain, b: &Id, pack: &Id| -> bool {
        if !is_used(used, d, b) {
            return false;
        }
        match chosen.get(&(*d, *b)) {
            Some(k) => k == pack,
            None => live.get(d).is_some_and(|l| l.locations(b).iter().any(|x| x.pack == *pack)),
        }
    };
    let mut unused_packs = Vec::new();
    let mut partial: Vec<(Id, u64, u64)> = Vec::new(); // pack, used bytes, unused bytes
    let mut used_bytes_total = 0u64;
    let by_pack = catalog.claims_by_pack();
    let mut ids: Vec<&Id> = catalog.stored.keys().filter(|id| !condemned.contains(id) && !catalog.unreadable.contains(id)).collect();
    ids.sort();
    for id in ids {
        let (mut u, mut n) = (0u64, 0u64);
        for (d, claim) in by_pack.get(id).map_or(&[][..], Vec::as_slice) {
            for b in &claim.blobs {
                if is_keeper(d, &b.id, id) {
                    u += u64::from(b.length);
                } else {
                    n += u64::from(b.length);
                }
            }
        }
        used_bytes_total += u;
        if u == 0 {
            unused_packs.push(*id);
            if catalog.untrusted.contains(id) {
                report.untrusted_packs += 1;
            }
        } else if n > 0 && by_pack.get(id).is_some_and(|c| c.len() == 1) {
            // A pack claimed in several domains is not repacked (which
            // claim's entries would the new packs carry?): rare, and only
            // ever kept too long.
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
        let keep: Vec<(Domain, Id, Vec<reprise_format::pack::PackEntry>)> = to_repack
            .iter()
            .flat_map(|id| by_pack[id].iter().map(move |(d, claim)| (*d, *id, claim.blobs.iter().filter(|b| is_keeper(d, &b.id, id)).copied().collect())))
            .collect();
        drop(by_pack);
        report.repack_written_bytes = repack(repo, catalog, &keep, opts)?;
    }
    let (host, user) = whoami();
    let m = PruneMark {
        time: Timestamp::now(),
        grace_secs: opts.grace.as_secs(),
        packs: unused_packs.into_iter().chain(to_repack).collect(),
        wal: Vec::new(),
        host,
        user,
    };
    let (signer, _) = repo.signer()?;
    let shared = repo.secrets().shared_key().ok_or(Error::WriteOnly { operation: "pruning" })?;
    let id = repo.save_object(ObjectKind::PruneMark, &mark::seal(&m, &shared, &signer, &repo.id()))?;
    report.mark = Some(id);
    Ok(Some(Mark { id, mark: m }))
}

/// Copies the kept blobs of packs into new packs of their domain, signed by
/// the administrator (durable and indexed before the old ones are
/// condemned). Returns the bytes written.
fn repack(repo: &Arc<Repository>, catalog: &mut Catalog, keep: &[(Domain, Id, Vec<reprise_format::pack::PackEntry>)], opts: &PruneOptions) -> Result<u64> {
    let uploads = Uploads::start(Arc::clone(repo), opts.threads, 0);
    // Blobs are added as stored (`add_stored`): the packers never compress.
    let mut packers: BTreeMap<(Domain, BlobKind), BlobPacker> = BTreeMap::new();
    let result = (|| -> Result<()> {
        for (domain, id, blobs) in keep {
            if blobs.is_empty() {
                continue;
            }
            let bytes = repo.backend().read(ObjectKind::Pack, &id.to_hex())?;
            for b in blobs {
                let (start, end) = (b.offset as usize, b.offset as usize + b.length as usize);
                let ct = bytes.get(start..end).ok_or_else(|| {
                    Error::damaged(ObjectKind::Pack.path(&id.to_hex()), reprise_format::FormatError::Truncated("blob beyond the end of the pack".into()))
                })?;
                // Verified on the way (a damaged blob is never copied
                // forward), and moved as stored: no second compression.
                let loc = BlobLocation { pack: *id, entry: *b, domain: *domain };
                let (compression, payload) = repo.open_blob_stored(&loc, ct)?;
                let packer = match packers.entry((*domain, b.kind)) {
                    std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                    std::collections::btree_map::Entry::Vacant(v) => v.insert(BlobPacker::in_domain(Arc::clone(repo), *domain, b.kind, uploads.sink(), 0)?),
                };
                packer.add_stored(b.id, b.raw_length, compression, &payload)?;
            }
        }
        for p in packers.values_mut() {
            p.flush()?;
        }
        Ok(())
    })();
    drop(packers);
    if let Err(e) = result {
        uploads.abandon();
        return Err(e);
    }
    let uploaded = uploads.finish()?;
    for f in crate::index::read_files(repo, &uploaded.index_files)? {
        catalog.files.push((f.id, f.domain, f.file.packs.iter().map(|p| p.id).collect()));
        for p in f.file.packs {
            catalog.stored.insert(p.id, p.length);
            catalog.packs.insert((f.domain, p.id), p);
        }
    }
    Ok(uploaded.stored_bytes)
}
