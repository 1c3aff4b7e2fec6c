//! Copying a repository to a mirror: the second and third copies of 3-2-1.
//!
//! A copy is **the same repository in another place**: same config, same
//! repository ID, same key files. Objects travel byte for byte under their
//! own names; nothing is decrypted to be re-encrypted, so a copy restores
//! with the same passphrases and the same recovery key, and the
//! independent restorer reads it like the original.
//!
//! **A copy is verified: an object reaches the destination only if its
//! bytes hash to its name** (packs, index files, snapshots, keys, holds),
//! and WAL files (not content-named) only if they decrypt and their keyed
//! hash matches. A damaged source object is reported, naming it, and
//! skipped, together with every snapshot that needs it: a copy never
//! propagates corruption and never writes a snapshot it cannot complete.
//!
//! Only what the destination lacks, and only what it needs, is sent:
//!
//! 1. Snapshots of the selected components that are not on the destination
//!    are candidates. The component's retention policy is applied to the
//!    destination's snapshots plus the candidates, and only candidates it
//!    keeps are copied: a snapshot `forget` removed from the copy is not
//!    brought back by the next `copy` (as with pgBackRest's per-repository
//!    retention, or `restic copy` followed by `forget`).
//! 2. Their trees are walked; blobs the destination's index already has are
//!    skipped, and each source pack holding a missing blob is copied whole.
//!
//! **Durability order on the destination: packs, then the index files
//! naming them, then WAL, then holds, then snapshots, then drill records.** An interrupted copy
//! leaves only unreferenced objects; running it again resumes (packs left
//! unindexed are adopted from their own directories and indexed, objects
//! already there are skipped by name).
//!
//! On the destination, a copy keeps the prune protocol of every writer
//! (`prune.rs`): marks are read before the index, condemned packs are not
//! deduplicated against, and snapshots are saved only while no mark that
//! condemns a pack they rely on is near its sweep (`prune::commit_guard`).
//!
//! Keys are copied only when the destination is initialised (keys first,
//! config last, like [`Repository::init`]). Afterwards each repository's
//! keys are its own: a key removed from one (a departed administrator, a
//! compromised passphrase) must never come back from the other. What a
//! writer signed stays believable on the destination all the same: the
//! administrator's trust records (revocations) travel with the data, and a
//! writer key the destination does not know gets a public record there
//! (endorsed, without secrets: it opens nothing).
//!
//! Only what the source trusts is copied (docs/FORMAT.md 2.5), each
//! snapshot with the blobs of its own domain, and index files on the
//! destination are written per domain, signed by the administrator.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use jiff::Timestamp;
use parking_lot::Mutex;
use reprise_backends::{Backend, ErrorKind, ObjectKind};
use reprise_format::config::RepositoryConfig;
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::keys::Domain;
use reprise_format::sign::KeyId;
use reprise_format::tree::NodeKind;
use reprise_format::{FormatError, Id, pack};
use serde::Serialize;

use crate::check::Problem;
use crate::error::{Error, Result};
use crate::index::MasterIndex;
use crate::packer::INDEX_FLUSH_PACKS;
use crate::progress::{CancelToken, Progress};
use crate::repository::{Repository, SnapshotInfo};
use crate::retention::{self, Candidate, Policy};

/// Transfers in flight by default: object stores reward parallel requests
/// (each costs tens of milliseconds), and the object backend allows 16.
pub const DEFAULT_THREADS: usize = 8;

/// The destination of a copy, as found.
pub enum Destination {
    /// Nothing there yet: the copy initialises it with the source's key
    /// files and config.
    Empty(Arc<dyn Backend>),
    /// A mirror of the source (same repository ID), opened with the
    /// source's secrets.
    Mirror(Box<Repository>),
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Empty(b) => write!(f, "Empty({})", b.location()),
            Destination::Mirror(r) => write!(f, "Mirror({r:?})"),
        }
    }
}

impl Destination {
    #[must_use]
    pub fn repository(&self) -> Option<&Repository> {
        match self {
            Destination::Empty(_) => None,
            Destination::Mirror(r) => Some(r),
        }
    }

    fn backend(&self) -> &Arc<dyn Backend> {
        match self {
            Destination::Empty(b) => b,
            Destination::Mirror(r) => r.backend(),
        }
    }
}

/// Looks at the destination: empty, a mirror of `src`, or (refused) another
/// repository.
pub fn open_destination(src: &Repository, backend: Arc<dyn Backend>) -> Result<Destination> {
    if backend.location() == src.backend().location() {
        return Err(Error::InvalidArgument(format!(
            "the destination {} is the source repository itself: copy to another repository (--to NAME)",
            backend.location()
        )));
    }
    let bytes = match backend.read(ObjectKind::Config, "") {
        Ok(b) => b,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(Destination::Empty(backend)),
        Err(e) => return Err(e.into()),
    };
    let config = RepositoryConfig::from_bytes(&bytes).map_err(|e| Error::damaged(format!("{}/config", backend.location()), e))?;
    if config.id != src.id() {
        return Err(Error::InvalidArgument(format!(
            "{} holds another repository ({}), not a copy of {} ({}): copy to an empty location, or to a repository made by `reprise copy` from this one",
            backend.location(),
            config.id.short(),
            src.backend().location(),
            src.id().short()
        )));
    }
    Ok(Destination::Mirror(Box::new(Repository::open_with_secrets(backend, src.secrets().clone())?)))
}

/// One component to copy, with the retention policy the destination keeps
/// for it (`None`: keep everything, as with no policy `forget` does nothing).
#[derive(Debug, Clone)]
pub struct Selection {
    pub component: String,
    pub policy: Option<Policy>,
}

/// A snapshot the destination's retention policy would not keep: not copied.
#[derive(Debug, Clone, Serialize)]
pub struct NotKept {
    pub id: Id,
    pub component: String,
    pub time: Timestamp,
    pub reasons: Vec<String>,
}

/// WAL files of one component to copy (names `<component>/<file>`), chosen
/// by the caller (the engine does not know WAL naming). `conflicts` are
/// names already on the destination with other content: they are reported
/// and, like a failed WAL copy, keep the component's snapshots back.
#[derive(Debug, Clone, Default)]
pub struct WalBatch {
    pub component: String,
    pub names: Vec<(String, u64)>,
    pub present: usize,
    pub conflicts: Vec<Problem>,
}

/// What a copy will do, decided before anything is written.
#[derive(Debug)]
pub struct CopyPlan {
    /// When the copy started (the prune protocol needs it: packs written
    /// after this instant are in use by this copy).
    pub started: Timestamp,
    /// Snapshots to copy, oldest first.
    pub snapshots: Vec<SnapshotInfo>,
    /// Snapshots of the selected components already on the destination.
    pub snapshots_present: usize,
    pub not_kept: Vec<NotKept>,
    /// Source packs to copy, with their sizes.
    pub packs: Vec<(Id, u64)>,
    /// The domain each pack to copy is claimed in on the source.
    pack_domains: HashMap<Id, Domain>,
    /// Source packs whose name is already on the destination.
    pub packs_present: usize,
    /// Destination packs no index file names (an interrupted copy or
    /// backup): the copy indexes them.
    adopted: Vec<(Domain, IndexedPack)>,
    /// Source damage found while planning (the snapshots concerned are
    /// not in `snapshots`).
    pub damage: Vec<Problem>,
    /// Source snapshots no trusted key wrote (never copied; `check` on the
    /// source reports them).
    pub ignored: Vec<Problem>,
    /// Snapshots held back by that damage.
    pub held_back: Vec<Id>,
    /// Destination packs the snapshots to copy rely on (packs sent, and
    /// packs already there): the prune protocol's `commit_guard` needs them.
    pub depends: HashSet<Id>,
    /// Destination blob index per domain, without packs a prune has
    /// condemned (empty for an empty destination).
    dst_index: BTreeMap<Domain, MasterIndex>,
    /// Packs stored on the destination.
    dst_stored: HashSet<Id>,
    src_index: BTreeMap<Domain, MasterIndex>,
}

impl CopyPlan {
    /// Whether the destination holds a blob of `domain`: indexed there, in
    /// a pack that is really there (a pack lost from the destination is
    /// sent again).
    fn on_destination(&self, domain: &Domain, id: &Id) -> bool {
        self.dst_index.get(domain).and_then(|i| i.get(id)).is_some_and(|l| self.dst_stored.contains(&l.pack))
    }
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    pub source: String,
    pub destination: String,
    pub dry_run: bool,
    pub started: Option<Timestamp>,
    /// The destination was empty and was initialised (keys, then config).
    pub initialised: bool,
    pub keys_copied: usize,
    pub snapshots_copied: Vec<Id>,
    pub snapshots_present: usize,
    pub snapshots_not_kept: Vec<NotKept>,
    /// Snapshots not copied because something they need is damaged.
    pub snapshots_held_back: Vec<Id>,
    /// Destination packs written by this copy (the prune protocol needs them).
    pub packs_written: Vec<Id>,
    pub packs_present: usize,
    pub pack_bytes: u64,
    pub index_files: Vec<Id>,
    pub wal_copied: usize,
    pub wal_present: usize,
    pub wal_bytes: u64,
    pub holds_copied: usize,
    /// Drill records (`drills/`) sent, and already there.
    pub drills_copied: usize,
    pub drills_present: usize,
    /// Every object written, and the bytes they hold.
    pub objects_copied: usize,
    pub bytes_copied: u64,
    /// Objects of the selection already on the destination.
    pub objects_skipped: usize,
    /// Damaged source objects, not copied.
    pub damage: Vec<Problem>,
    /// Source snapshots no trusted key wrote: not copied, and not damage.
    pub ignored: Vec<Problem>,
    /// Names present on both sides with different content (WAL), left alone.
    pub conflicts: Vec<Problem>,
    pub duration_ms: u64,
}

impl CopyReport {
    /// Whether everything selected reached the destination intact.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.damage.is_empty() && self.conflicts.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct CopyOptions {
    pub threads: usize,
    pub cancel: CancelToken,
}

fn problem(object: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem { object: object.into(), message: message.into() }
}

/// Decides what to copy. Reads the source's snapshots, holds and index,
/// the destination's snapshots, holds and index, and walks the trees of the
/// snapshots to copy.
pub fn plan(src: &Repository, dst: &Destination, selections: &[Selection]) -> Result<CopyPlan> {
    let started = Timestamp::now();
    src.require_full("copying (the snapshots' trees are read to find the data they need)")?;
    let mut damage = Vec::new();
    let (src_snaps, unreadable) = src.snapshots()?;
    let dst_repo = dst.repository();
    let dst_names: HashSet<String> = match dst_repo {
        Some(d) => d.backend().list(ObjectKind::Snapshot)?.into_iter().map(|o| o.name).collect(),
        None => HashSet::new(),
    };
    let mut ignored = Vec::new();
    for (object, e) in unreadable {
        if object.rsplit('/').next().is_some_and(|n| dst_names.contains(n)) {
            continue;
        }
        match e {
            // Not damage: a snapshot no trusted key wrote is never copied.
            Error::Untrusted { reason, .. } => ignored.push(problem(object, format!("not copied: {reason}"))),
            e => damage.push(problem(object, format!("not copied: {e}"))),
        }
    }
    let dst_snaps = match dst_repo {
        Some(d) => d.snapshots()?.0,
        None => Vec::new(),
    };
    let src_holds = crate::holds::list(src)?;
    let dst_holds = match dst_repo {
        Some(d) => crate::holds::list(d)?,
        None => Vec::new(),
    };
    let candidate = |s: &SnapshotInfo, holds: &[crate::holds::HoldEntry]| Candidate {
        id: s.id,
        time: s.header.time,
        retain_until: retention::retain_until(&s.header.labels),
        holds: holds.iter().filter(|h| h.hold.snapshot == s.id).map(|h| h.hold.reason.clone()).collect(),
    };
    let now = Timestamp::now();
    let mut to_copy: Vec<SnapshotInfo> = Vec::new();
    let mut present = 0;
    let mut not_kept = Vec::new();
    for sel in selections {
        let mine: Vec<&SnapshotInfo> = src_snaps.iter().filter(|s| s.header.component == sel.component).collect();
        let (there, missing): (Vec<&SnapshotInfo>, Vec<&SnapshotInfo>) = mine.into_iter().partition(|s| dst_names.contains(&s.id.to_hex()));
        present += there.len();
        let kept: HashSet<Id> = match &sel.policy {
            Some(policy) if !policy.is_empty() => {
                let mut all: Vec<Candidate> =
                    dst_snaps.iter().filter(|s| s.header.component == sel.component).map(|s| candidate(s, &dst_holds)).collect();
                all.extend(missing.iter().map(|s| candidate(s, &src_holds)));
                let verdicts = retention::decide(&all, policy, now);
                for v in &verdicts {
                    if !v.keep && missing.iter().any(|s| s.id == v.id) {
                        not_kept.push(NotKept { id: v.id, component: sel.component.clone(), time: v.time, reasons: v.reasons.clone() });
                    }
                }
                verdicts.into_iter().filter(|v| v.keep).map(|v| v.id).collect()
            }
            _ => missing.iter().map(|s| s.id).collect(),
        };
        to_copy.extend(missing.into_iter().filter(|s| kept.contains(&s.id)).cloned());
    }
    to_copy.sort_by(|a, b| a.header.time.cmp(&b.header.time).then(a.id.cmp(&b.id)));

    let (src_index, _src_load) = MasterIndex::load_all(src)?;
    let (dst_index, adopted, dst_unreadable, dst_stored) = match dst_repo {
        Some(d) => {
            // The prune protocol, as every writer keeps it: marks before the
            // index, and no deduplication against condemned packs.
            let marks = crate::prune::Marks::load(d)?;
            let (index, load) = MasterIndex::load_all_excluding(d, marks.condemned())?;
            let stored: HashSet<Id> = load.stored_packs.unwrap_or_default().iter().filter_map(|o| o.name.parse().ok()).collect();
            let unreadable: HashSet<String> = load.unreadable_packs.into_iter().map(|(o, _)| o).collect();
            (index, load.adopted, unreadable, stored)
        }
        None => (BTreeMap::new(), Vec::new(), HashSet::new(), HashSet::new()),
    };

    // Which source packs the snapshots need, and which snapshots cannot be
    // completed from the source.
    let mut needed: BTreeSet<Id> = BTreeSet::new();
    let mut pack_domains: HashMap<Id, Domain> = HashMap::new();
    let mut depends: HashSet<Id> = HashSet::new();
    let mut memo: HashMap<(Domain, Id), bool> = HashMap::new();
    let mut held_back = Vec::new();
    let mut snapshots = Vec::new();
    for s in to_copy {
        let snap_object = ObjectKind::Snapshot.path(&s.id.to_hex());
        let body = match src.snapshot_body(&s.id) {
            Ok(b) => b,
            Err(e) => {
                damage.push(problem(&snap_object, format!("not copied: {e}")));
                held_back.push(s.id);
                continue;
            }
        };
        let mut local = Vec::new();
        let domain = s.domain;
        let empty = MasterIndex::new(domain);
        let src_dom = src_index.get(&domain).unwrap_or(&empty);
        let dst_dom = dst_index.get(&domain);
        let ok = subtree_ok(
            src,
            src_dom,
            body.tree,
            &mut memo,
            &mut |id| {
                if let Some(l) = dst_dom.and_then(|i| i.get(id)).filter(|l| dst_stored.contains(&l.pack)) {
                    depends.insert(l.pack);
                    return Ok(());
                }
                let loc = src_dom.get(id).ok_or_else(|| format!("blob {id} is in no index of the source: its pack is missing"))?;
                let object = ObjectKind::Pack.path(&loc.pack.to_hex());
                if dst_unreadable.contains(&object) {
                    return Err(format!("{object} is damaged on the destination and cannot be replaced there (objects are write-once): remove it from the destination, then copy again"));
                }
                needed.insert(loc.pack);
                pack_domains.insert(loc.pack, domain);
                // Sent, or already there under the same name (a mirror's
                // condemned pack is the source's pack): relied upon either way.
                depends.insert(loc.pack);
                Ok(())
            },
            &mut local,
        );
        if ok {
            snapshots.push(s);
        } else {
            for p in local {
                damage.push(problem(p.object, format!("{} (snapshot {} not copied)", p.message, s.id.short())));
            }
            if !damage.iter().any(|p| p.object.contains(&s.id.to_hex())) {
                damage.push(problem(&snap_object, "not copied: data it needs is damaged (see the other problems)"));
            }
            held_back.push(s.id);
        }
    }
    let sizes: HashMap<Id, u64> = src_index.values().flat_map(MasterIndex::packs).collect();
    // A pack the destination's index names but its storage lost is sent
    // again (its blobs did not count as present above).
    let packs: Vec<(Id, u64)> = needed.into_iter().filter(|p| !dst_stored.contains(p)).map(|p| (p, sizes.get(&p).copied().unwrap_or(0))).collect();
    let packs_present = sizes.keys().filter(|p| dst_stored.contains(p)).count();
    damage.sort();
    damage.dedup();
    Ok(CopyPlan { started, snapshots, snapshots_present: present, not_kept, packs, pack_domains, packs_present, adopted, damage, ignored, held_back, depends, dst_index, dst_stored, src_index })
}

/// Whether every blob under `tree` passes `blob` (memoised per tree: shared
/// subtrees are read once). Problems are appended to `problems`.
fn subtree_ok(
    repo: &Repository,
    index: &MasterIndex,
    tree: Id,
    memo: &mut HashMap<(Domain, Id), bool>,
    blob: &mut dyn FnMut(&Id) -> std::result::Result<(), String>,
    problems: &mut Vec<Problem>,
) -> bool {
    if let Some(ok) = memo.get(&(index.domain(), tree)) {
        return *ok;
    }
    let ok = (|| {
        if let Err(m) = blob(&tree) {
            problems.push(problem(format!("tree blob {tree}"), m));
            return false;
        }
        let t = match repo.read_tree(index, &tree) {
            Ok(t) => t,
            Err(e) => {
                problems.push(problem(format!("tree blob {tree}"), e.to_string()));
                return false;
            }
        };
        let mut ok = true;
        for node in &t.nodes {
            for id in &node.content {
                if let Err(m) = blob(id) {
                    problems.push(problem(format!("data blob {id}"), m));
                    ok = false;
                }
            }
            if node.kind == NodeKind::Dir
                && let Some(sub) = node.subtree
            {
                ok &= subtree_ok(repo, index, sub, memo, blob, problems);
            }
        }
        ok
    })();
    memo.insert((index.domain(), tree), ok);
    ok
}

/// Runs `f` over `items` on `threads` threads. The first error stops the
/// others (what is in flight finishes) and is returned.
fn parallel<T: Sync, R: Send>(items: &[T], threads: usize, cancel: &CancelToken, f: impl Fn(&T) -> Result<R> + Sync) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    let error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, 64).min(items.len().max(1)) {
            s.spawn(|| {
                loop {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if cancel.is_cancelled() {
                        error.lock().get_or_insert(Error::Interrupted);
                        stop.store(true, Ordering::SeqCst);
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { return };
                    match f(item) {
                        Ok(r) => results.lock().push(r),
                        Err(e) => {
                            error.lock().get_or_insert(e);
                            stop.store(true, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            });
        }
    });
    match error.into_inner() {
        Some(e) => Err(e),
        None => Ok(results.into_inner()),
    }
}

/// A create that treats "already there" as done: names are content hashes,
/// so the same name is the same bytes. Returns whether it wrote.
fn create_once(backend: &dyn Backend, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<bool> {
    match backend.create(kind, name, bytes) {
        Ok(()) => Ok(true),
        Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Reads an object by name and checks that its bytes hash to the name;
/// `Ok(Err(problem))` for damage (skipped), `Err` for storage failures.
fn read_verified(repo: &Repository, kind: ObjectKind, name: &str) -> Result<std::result::Result<Vec<u8>, Problem>> {
    let object = kind.path(name);
    let bytes = match repo.backend().read(kind, name) {
        Ok(b) => b,
        Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Truncated) => return Ok(Err(problem(object, format!("not copied: {}", e.message)))),
        Err(e) => return Err(e.into()),
    };
    if Id::of_object(&bytes).to_hex() != name {
        return Ok(Err(problem(object, "not copied: content does not match its name (bytes were altered)")));
    }
    Ok(Ok(bytes))
}

/// What happened to one pack.
enum PackResult {
    Written(Domain, IndexedPack),
    Present(Domain, IndexedPack),
    Damaged(Id, Problem),
}

/// Whether a source pack may be copied as a pack of `domain`: its
/// signature holds and its signer may write there (a version 1 pack: the
/// source trusts it, in the legacy domain).
fn pack_belongs(src: &Repository, bytes: &[u8], name: &str, domain: &Domain) -> std::result::Result<(), String> {
    let tail = pack::tail_of(bytes).map_err(|e| e.to_string())?;
    let signer = match tail.domain {
        Some(_) => Some(pack::verify(bytes, &src.id()).map_err(|e| e.to_string())?.1),
        None => None,
    };
    match src.trust().judge(ObjectKind::Pack, name, signer.as_ref(), tail.domain) {
        crate::trust::Verdict::Trusted { domain: d, .. } if d == *domain => Ok(()),
        crate::trust::Verdict::Trusted { domain: d, .. } => Err(format!("it belongs to domain {d}, not to domain {domain} that lists it")),
        crate::trust::Verdict::Untrusted { reason } => Err(reason),
    }
}

/// What happened to one WAL file (`Failed(problem, is_conflict)`).
enum WalResult {
    Written(u64),
    Present,
    Failed(Problem, bool),
}

/// Writes what `plan` decided. `wal` lists the WAL files to copy (see
/// [`WalBatch`]); they are written after packs and index files and before
/// any snapshot, so that a base backup on the destination always has its WAL.
pub fn execute(src: &Repository, dst: Destination, mut plan: CopyPlan, wal: &[WalBatch], opts: &CopyOptions, progress: &dyn Progress) -> Result<CopyReport> {
    let clock = Instant::now();
    let mut report = CopyReport {
        source: src.backend().location().to_owned(),
        destination: dst.backend().location().to_owned(),
        started: Some(plan.started),
        snapshots_present: plan.snapshots_present,
        snapshots_not_kept: plan.not_kept.clone(),
        snapshots_held_back: plan.held_back.clone(),
        packs_present: plan.packs_present,
        damage: plan.damage.clone(),
        ignored: plan.ignored.clone(),
        ..CopyReport::default()
    };
    let total_bytes: u64 = plan.packs.iter().map(|(_, s)| s).sum::<u64>() + wal.iter().flat_map(|w| &w.names).map(|(_, s)| s).sum::<u64>();
    let total_objects = plan.packs.len() + wal.iter().map(|w| w.names.len()).sum::<usize>() + plan.snapshots.len();
    progress.set_total(total_bytes, total_objects as u64);

    // 0. An empty destination becomes a mirror: keys first, config last.
    let dst = match dst {
        Destination::Mirror(r) => *r,
        Destination::Empty(backend) => {
            crate::repository::prepare_location(backend.as_ref())?;
            for k in src.backend().list(ObjectKind::Key)? {
                match read_verified(src, ObjectKind::Key, &k.name)? {
                    Ok(bytes) => {
                        if create_once(backend.as_ref(), ObjectKind::Key, &k.name, &bytes)? {
                            report.keys_copied += 1;
                            report.objects_copied += 1;
                            report.bytes_copied += bytes.len() as u64;
                        }
                    }
                    Err(p) => report.damage.push(p),
                }
            }
            let config = src.backend().read(ObjectKind::Config, "")?;
            // The config is the one object that is not content-named: check
            // it is the source's own before it makes the destination a mirror.
            let parsed = RepositoryConfig::from_bytes(&config).map_err(|e| Error::damaged("config", e))?;
            if parsed.id != src.id() {
                return Err(Error::damaged(format!("{}/config", src.backend().location()), FormatError::Malformed("its repository ID changed while copying".into())));
            }
            create_once(backend.as_ref(), ObjectKind::Config, "", &config)?;
            report.initialised = true;
            report.objects_copied += 1;
            report.bytes_copied += config.len() as u64;
            Repository::open_with_secrets(backend, src.secrets().clone())?
        }
    };
    let backend = dst.backend().as_ref();

    // 1. Packs, verified (name, signature, signer, domain), in parallel.
    let results = parallel(&plan.packs, opts.threads, &opts.cancel, |(id, _)| {
        let name = id.to_hex();
        let object = ObjectKind::Pack.path(&name);
        let domain = plan.pack_domains.get(id).copied().unwrap_or(Domain::LEGACY);
        let bytes = match read_verified(src, ObjectKind::Pack, &name)? {
            Ok(b) => b,
            Err(p) => return Ok(PackResult::Damaged(*id, p)),
        };
        if let Err(why) = pack_belongs(src, &bytes, &name, &domain) {
            return Ok(PackResult::Damaged(*id, problem(&object, format!("not copied: {why}"))));
        }
        let blobs = match src.domain_keys(&domain).map_err(|e| e.to_string()).and_then(|k| pack::directory_of(&bytes, &k.catalog_key).map_err(|e| e.to_string())) {
            Ok(d) => d,
            Err(e) => return Ok(PackResult::Damaged(*id, problem(&object, format!("not copied: directory unreadable: {e}")))),
        };
        let indexed = IndexedPack { id: *id, length: bytes.len() as u64, blobs };
        let wrote = create_once(backend, ObjectKind::Pack, &name, &bytes)?;
        progress.advance(bytes.len() as u64, 1);
        Ok(if wrote { PackResult::Written(domain, indexed) } else { PackResult::Present(domain, indexed) })
    })?;
    let mut to_index: Vec<(Domain, IndexedPack)> = std::mem::take(&mut plan.adopted);
    let mut bad_packs: HashSet<Id> = HashSet::new();
    for r in results {
        match r {
            PackResult::Written(d, p) => {
                report.packs_written.push(p.id);
                report.pack_bytes += p.length;
                report.objects_copied += 1;
                report.bytes_copied += p.length;
                to_index.push((d, p));
            }
            PackResult::Present(d, p) => {
                report.packs_present += 1;
                to_index.push((d, p));
            }
            PackResult::Damaged(id, p) => {
                bad_packs.insert(id);
                report.damage.push(p);
            }
        }
    }
    report.packs_written.sort();

    // 2. Index files for them (durable packs only), per domain, signed by
    // the administrator: the destination is the same repository.
    let (signer, _) = dst.signer()?;
    let mut by_domain: BTreeMap<Domain, Vec<IndexedPack>> = BTreeMap::new();
    for (d, p) in to_index {
        by_domain.entry(d).or_default().push(p);
    }
    for (domain, chunk) in by_domain.iter().flat_map(|(d, v)| v.chunks(INDEX_FLUSH_PACKS).map(move |c| (d, c))) {
        let file = IndexFile { supersedes: Vec::new(), packs: chunk.to_vec() };
        let sealed = file.seal(domain, &dst.domain_keys(domain)?.catalog_key, &signer, &dst.id());
        let id = Id::of_object(&sealed);
        if create_once(backend, ObjectKind::Index, &id.to_hex(), &sealed)? {
            report.objects_copied += 1;
            report.bytes_copied += sealed.len() as u64;
        }
        report.index_files.push(id);
    }

    // Snapshots that needed a damaged pack stay behind. (Rare: walk again,
    // this time against the packs that failed.)
    let mut snapshots = std::mem::take(&mut plan.snapshots);
    if !bad_packs.is_empty() {
        let mut memo = HashMap::new();
        let mut keep = Vec::new();
        for s in snapshots {
            let empty = MasterIndex::new(s.domain);
            let src_dom = plan.src_index.get(&s.domain).unwrap_or(&empty);
            let ok = match src.snapshot_body(&s.id) {
                Ok(body) => subtree_ok(
                    src,
                    src_dom,
                    body.tree,
                    &mut memo,
                    &mut |id| {
                        if plan.on_destination(&s.domain, id) {
                            return Ok(());
                        }
                        match src_dom.get(id) {
                            Some(loc) if bad_packs.contains(&loc.pack) => Err(format!("in damaged {}", ObjectKind::Pack.path(&loc.pack.to_hex()))),
                            _ => Ok(()),
                        }
                    },
                    &mut Vec::new(),
                ),
                Err(_) => false,
            };
            if ok {
                keep.push(s);
            } else {
                report.damage.push(problem(ObjectKind::Snapshot.path(&s.id.to_hex()), "not copied: a pack it needs is damaged on the source"));
                report.snapshots_held_back.push(s.id);
            }
        }
        snapshots = keep;
    }

    // 3. WAL, before the snapshots that need it. Verified by decryption:
    // its name is not a hash of its bytes.
    let mut wal_failed: BTreeSet<String> = BTreeSet::new();
    let recovery = src.recovery("copying WAL")?;
    for batch in wal {
        report.wal_present += batch.present;
        report.objects_skipped += batch.present;
        if !batch.conflicts.is_empty() {
            report.conflicts.extend(batch.conflicts.iter().cloned());
            wal_failed.insert(batch.component.clone());
        }
        let results = parallel(&batch.names, opts.threads, &opts.cancel, |(name, _)| {
            let object = ObjectKind::Wal.path(name);
            let bytes = match src.backend().read(ObjectKind::Wal, name) {
                Ok(b) => b,
                Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Truncated) => return Ok(WalResult::Failed(problem(object, format!("not copied: {}", e.message)), false)),
                Err(e) => return Err(e.into()),
            };
            let file = name.rsplit_once('/').map_or(name.as_str(), |(_, f)| f);
            let file = file.split_once('@').map_or(file, |(f, _)| f);
            let keys = match wal_domain(src, name, &bytes) {
                Ok(d) => src.domain_keys(&d)?,
                Err(why) => return Ok(WalResult::Failed(problem(object, format!("not copied: {why}")), false)),
            };
            let header = match reprise_format::wal::open(&bytes, &keys.catalog_key, &keys.id_key, recovery) {
                Ok((h, _)) if h.name == file => h,
                Ok((h, _)) => return Ok(WalResult::Failed(problem(object, format!("not copied: it holds {}", h.name)), false)),
                Err(e) => return Ok(WalResult::Failed(problem(object, format!("not copied: {e}")), false)),
            };
            match backend.create(ObjectKind::Wal, name, &bytes) {
                Ok(()) => {
                    progress.advance(bytes.len() as u64, 1);
                    Ok(WalResult::Written(bytes.len() as u64))
                }
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    // Written meanwhile (another copy, an archiver pointed at
                    // the copy): the same file is fine, another is a conflict.
                    let theirs = backend.read(ObjectKind::Wal, name)?;
                    match reprise_format::wal::open_header(&theirs, &keys.catalog_key) {
                        Ok(h) if h.hash == header.hash && h.size == header.size => Ok(WalResult::Present),
                        _ => Ok(WalResult::Failed(problem(object, "the destination holds a different file under this name: left as it is; find out which is right before restoring from the copy"), true)),
                    }
                }
                Err(e) => Err(e.into()),
            }
        })?;
        for r in results {
            match r {
                WalResult::Written(n) => {
                    report.wal_copied += 1;
                    report.wal_bytes += n;
                    report.objects_copied += 1;
                    report.bytes_copied += n;
                }
                WalResult::Present => {
                    report.wal_present += 1;
                    report.objects_skipped += 1;
                }
                WalResult::Failed(p, conflict) => {
                    wal_failed.insert(batch.component.clone());
                    if conflict { report.conflicts.push(p) } else { report.damage.push(p) }
                }
            }
        }
    }
    if !wal_failed.is_empty() {
        snapshots.retain(|s| {
            let keep = !wal_failed.contains(&s.header.component);
            if !keep {
                report.snapshots_held_back.push(s.id);
            }
            keep
        });
    }

    // The destination's prune protocol: a prune may have condemned packs
    // these snapshots rely on (a mirror cannot avoid them by writing the
    // blobs again elsewhere: the source's pack has the same name). Saving is
    // safe until three quarters of the mark's grace period, after which the
    // sweep may be deleting them; every mark counts, old or new.
    let at_risk = if snapshots.is_empty() {
        Vec::new()
    } else {
        crate::prune::commit_guard(&dst, &crate::prune::Marks::default(), &plan.depends).map_err(|e| match e {
            Error::ConcurrentPrune(_) => Error::ConcurrentPrune(format!(
                "a prune of {} condemned packs the snapshots being copied rely on, and its grace period is too far gone to save them safely; nothing was lost: let that prune finish (`prune` on the copy, after its grace period), then copy again (what it deletes is sent again)",
                dst.backend().location()
            )),
            e => e,
        })?
    };

    // The administrator's trust records (revocations, the legacy record),
    // and a public record of every writer key the destination does not
    // know that signed what is copied: before the snapshots, so that none
    // is ever there without what makes it believable.
    copy_trust(src, &dst, &snapshots, &mut report)?;

    // 4. Holds of the snapshots the destination has or is about to have,
    // before the snapshots, so that no held snapshot is ever there unheld.
    let on_dst: HashSet<Id> = dst.backend().list(ObjectKind::Snapshot)?.into_iter().filter_map(|o| o.name.parse().ok()).chain(snapshots.iter().map(|s| s.id)).collect();
    let dst_holds: HashSet<String> = backend.list(ObjectKind::Hold)?.into_iter().map(|o| o.name).collect();
    for h in crate::holds::list(src)? {
        let name = h.id.to_hex();
        if !on_dst.contains(&h.hold.snapshot) || dst_holds.contains(&name) {
            continue;
        }
        match read_verified(src, ObjectKind::Hold, &name)? {
            Ok(bytes) => {
                if create_once(backend, ObjectKind::Hold, &name, &bytes)? {
                    report.holds_copied += 1;
                    report.objects_copied += 1;
                    report.bytes_copied += bytes.len() as u64;
                }
            }
            Err(p) => report.damage.push(p),
        }
    }

    // 5. Snapshots, last, oldest first.
    for s in snapshots {
        if opts.cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let name = s.id.to_hex();
        match read_verified(src, ObjectKind::Snapshot, &name)? {
            Ok(bytes) => {
                if create_once(backend, ObjectKind::Snapshot, &name, &bytes)? {
                    report.objects_copied += 1;
                    report.bytes_copied += bytes.len() as u64;
                    report.snapshots_copied.push(s.id);
                } else {
                    report.snapshots_present += 1;
                }
                progress.advance(bytes.len() as u64, 1);
            }
            Err(p) => {
                report.damage.push(p);
                report.snapshots_held_back.push(s.id);
            }
        }
    }
    if let Some(last) = report.snapshots_copied.last() {
        crate::prune::verify_after_commit(&dst, last, &at_risk)?;
    }

    // 6. Drill records: the evidence that the backups restore goes
    // off-site with them. Only records the source's administrator signed,
    // byte for byte (write-once, content-named: a second copy skips them).
    copy_drills(src, backend, &mut report)?;
    report.objects_skipped += report.snapshots_present + report.packs_present;
    report.damage.sort();
    report.damage.dedup();
    report.snapshots_held_back.sort();
    report.snapshots_held_back.dedup();
    report.duration_ms = clock.elapsed().as_millis() as u64;
    Ok(report)
}

/// Sends the drill records the destination lacks (step 6 of [`execute`]).
fn copy_drills(src: &Repository, backend: &dyn Backend, report: &mut CopyReport) -> Result<()> {
    let there: HashSet<String> = backend.list(ObjectKind::Drill)?.into_iter().map(|o| o.name).collect();
    let (records, untrusted) = crate::drills::list(src)?;
    for (object, why) in untrusted {
        if !object.rsplit('/').next().is_some_and(|n| there.contains(n)) {
            report.ignored.push(problem(object, format!("not copied: {why}")));
        }
    }
    for (id, _) in records {
        let name = id.to_hex();
        if there.contains(&name) {
            report.drills_present += 1;
            report.objects_skipped += 1;
            continue;
        }
        match read_verified(src, ObjectKind::Drill, &name)? {
            Ok(bytes) => {
                if create_once(backend, ObjectKind::Drill, &name, &bytes)? {
                    report.drills_copied += 1;
                    report.objects_copied += 1;
                    report.bytes_copied += bytes.len() as u64;
                } else {
                    report.drills_present += 1;
                    report.objects_skipped += 1;
                }
            }
            Err(p) => report.damage.push(p),
        }
    }
    Ok(())
}

/// The domain of a source WAL object the source trusts, or why it is not
/// copied.
fn wal_domain(src: &Repository, name: &str, bytes: &[u8]) -> std::result::Result<Domain, String> {
    let domain = reprise_format::wal::domain_of(bytes).map_err(|e| e.to_string())?;
    let signer = match domain {
        Some(_) => Some(reprise_format::sign::verify_object(reprise_format::sign::ObjectType::Wal, &src.id(), bytes).map_err(|e| e.to_string())?.0),
        None => None,
    };
    match src.trust().judge(ObjectKind::Wal, name, signer.as_ref(), domain) {
        crate::trust::Verdict::Trusted { domain, .. } => Ok(domain),
        crate::trust::Verdict::Untrusted { reason } => Err(reason),
    }
}

/// Copies the trust records the destination lacks, and gives every writer
/// key that signed a snapshot being copied a public record there if the
/// destination knows it neither as a key nor as a revoked key.
fn copy_trust(src: &Repository, dst: &Repository, snapshots: &[SnapshotInfo], report: &mut CopyReport) -> Result<()> {
    let have: HashSet<String> = dst.backend().list(ObjectKind::Trust)?.into_iter().map(|o| o.name).collect();
    for o in src.backend().list(ObjectKind::Trust)? {
        if have.contains(&o.name) {
            continue;
        }
        match read_verified(src, ObjectKind::Trust, &o.name)? {
            Ok(bytes) => {
                if create_once(dst.backend().as_ref(), ObjectKind::Trust, &o.name, &bytes)? {
                    report.objects_copied += 1;
                    report.bytes_copied += bytes.len() as u64;
                }
            }
            Err(p) => report.damage.push(p),
        }
    }
    let signers: BTreeSet<KeyId> = snapshots.iter().filter_map(|s| s.writer.key_id.as_deref().and_then(|k| k.parse().ok())).collect();
    let dst_keys = dst.keys()?;
    let known: HashSet<String> = dst_keys.iter().filter_map(|k| k.key_id.clone()).collect();
    let src_files = crate::trust::read_key_files(src.backend().as_ref())?;
    for key in signers {
        if known.contains(&key.to_hex()) || dst.trust().writer(&key).is_some_and(|w| w.revoked.is_some()) {
            continue;
        }
        let Some(file) = src_files.iter().find(|f| f.file.key_id() == Some(key)) else { continue };
        let mut record = file.file.public_record();
        record.endorse(&dst.admin_key("copying")?, &dst.id()).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let bytes = record.to_bytes();
        if create_once(dst.backend().as_ref(), ObjectKind::Key, &Id::of_object(&bytes).to_hex(), &bytes)? {
            report.keys_copied += 1;
            report.objects_copied += 1;
            report.bytes_copied += bytes.len() as u64;
        }
    }
    Ok(())
}

/// What `execute` would do, without writing anything: the same objects,
/// counted the same way (keys and config of a new destination, index
/// files, holds of the snapshots it will have).
pub fn dry_run(src: &Repository, dst: &Destination, plan: &CopyPlan, wal: &[WalBatch]) -> Result<CopyReport> {
    let pack_bytes: u64 = plan.packs.iter().map(|(_, s)| s).sum();
    let wal_bytes: u64 = wal.iter().flat_map(|w| &w.names).map(|(_, s)| s).sum();
    let wal_copied: usize = wal.iter().map(|w| w.names.len()).sum();
    let wal_present: usize = wal.iter().map(|w| w.present).sum();
    // One index file per domain and per INDEX_FLUSH_PACKS packs, as `execute` writes them.
    let mut per_domain: BTreeMap<Domain, usize> = BTreeMap::new();
    for (p, _) in &plan.packs {
        *per_domain.entry(plan.pack_domains.get(p).copied().unwrap_or(Domain::LEGACY)).or_default() += 1;
    }
    for (d, _) in &plan.adopted {
        *per_domain.entry(*d).or_default() += 1;
    }
    let index_files: usize = per_domain.values().map(|n| n.div_ceil(INDEX_FLUSH_PACKS)).sum();
    let (keys, config) = match dst {
        Destination::Empty(_) => (src.backend().list(ObjectKind::Key)?.len(), 1),
        Destination::Mirror(_) => (0, 0),
    };
    let on_dst: HashSet<Id> = dst.backend().list(ObjectKind::Snapshot)?.into_iter().filter_map(|o| o.name.parse().ok()).chain(plan.snapshots.iter().map(|s| s.id)).collect();
    let dst_holds: HashSet<String> = dst.backend().list(ObjectKind::Hold)?.into_iter().map(|o| o.name).collect();
    let holds = crate::holds::list(src)?.into_iter().filter(|h| on_dst.contains(&h.hold.snapshot) && !dst_holds.contains(&h.id.to_hex())).count();
    Ok(CopyReport {
        source: src.backend().location().to_owned(),
        destination: dst.backend().location().to_owned(),
        dry_run: true,
        started: Some(plan.started),
        initialised: matches!(dst, Destination::Empty(_)),
        snapshots_copied: plan.snapshots.iter().map(|s| s.id).collect(),
        snapshots_present: plan.snapshots_present,
        snapshots_not_kept: plan.not_kept.clone(),
        snapshots_held_back: plan.held_back.clone(),
        packs_written: plan.packs.iter().map(|(p, _)| *p).collect(),
        packs_present: plan.packs_present,
        pack_bytes,
        wal_copied,
        wal_present,
        wal_bytes,
        keys_copied: keys,
        holds_copied: holds,
        objects_copied: keys + config + plan.snapshots.len() + plan.packs.len() + index_files + wal_copied + holds,
        bytes_copied: pack_bytes + wal_bytes,
        objects_skipped: plan.snapshots_present + plan.packs_present + wal_present,
        damage: plan.damage.clone(),
        ignored: plan.ignored.clone(),
        conflicts: wal.iter().flat_map(|w| w.conflicts.iter().cloned()).collect(),
        ..CopyReport::default()
    })
}
