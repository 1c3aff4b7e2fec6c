//! Restoring a snapshot (or part of it) into a directory.
//!
//! The tree is walked first: directories are created as they are met
//! (owner-writable until the end), files, links and special files are
//! queued. Files are then written by a pool of threads, each blob decrypted
//! and checked against its ID; adjacent blobs of one pack are fetched in a
//! single read. Directory metadata is applied last, deepest first, so that
//! writing into a directory does not disturb its restored mtime.
//!
//! A damaged blob or tree never stops the restore: the files it affects are
//! removed from the target and reported, every other file is restored.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use hashbrown::HashMap;
use parking_lot::Mutex;
use reprise_format::Id;
use reprise_format::tree::{Node, NodeKind};
use reprise_backends::ObjectKind;

use crate::error::{Error, Result};
use crate::index::MasterIndex;
use crate::progress::{CancelToken, Progress};
use crate::repository::Repository;
use crate::walk::{self, Visit};

/// Largest single read when fetching nearby blobs of one pack.
const MAX_READ_RUN: u64 = 8 * 1024 * 1024;
/// Bytes of unwanted blobs one read may carry to join two wanted ones: on
/// a local disk, reading 64 KiB more costs less than another system call.
const MAX_READ_GAP: u64 = 64 * 1024;
/// Plaintext of one file gathered before its blobs are read, pack by pack.
const READ_WINDOW: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Path inside the snapshot to restore (`/`-separated; empty = all).
    /// A directory's contents land directly in `target`.
    pub subpath: Vec<u8>,
    /// Restore only these paths (relative to `subpath`) and what is below them.
    pub include: Vec<Vec<u8>>,
    pub threads: usize,
    /// Allow a non-empty target: entries of the snapshot replace
    /// same-named ones; anything else there is left as it is (a merge;
    /// `delta` makes the target exactly the snapshot).
    pub overwrite: bool,
    /// Update an existing copy in place: only chunks whose bytes differ are
    /// written, and entries the snapshot does not have are removed.
    pub delta: bool,
    /// Restore file owners (only possible as root).
    pub owners: bool,
    /// Give every restored entry this owner instead (uid, gid): a database
    /// restored as root for a server that runs as `postgres`.
    pub owner_override: Option<(u32, u32)>,
    pub cancel: CancelToken,
}

impl RestoreOptions {
    #[must_use]
    pub fn new(target: impl Into<PathBuf>) -> Self {
        RestoreOptions {
            target: target.into(),
            subpath: Vec::new(),
            include: Vec::new(),
            threads: std::thread::available_parallelism().map_or(2, std::num::NonZero::get).max(2) * 2,
            overwrite: false,
            delta: false,
            owners: nix::unistd::geteuid().is_root(),
            owner_override: None,
            cancel: CancelToken::new(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DamagedEntry {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreOutcome {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub bytes: u64,
    /// Bytes already right in the target (delta restores), not written.
    pub bytes_unchanged: u64,
    /// Entries removed from the target because the snapshot lacks them.
    pub removed: u64,
    pub duration_ms: u64,
    pub damaged: Vec<DamagedEntry>,
}

fn included(path: &[u8], include: &[Vec<u8>]) -> Visit {
    if include.is_empty() {
        return Visit::Descend;
    }
    for inc in include {
        let inc = inc.strip_prefix(b"/").unwrap_or(inc);
        // At or below an include, or on the way down to one.
        let under = path == inc || (path.starts_with(inc) && path.get(inc.len()) == Some(&b'/'));
        let above = inc.starts_with(path) && inc.get(path.len()) == Some(&b'/');
        if under || above {
            return Visit::Descend;
        }
    }
    Visit::Skip
}

struct Plan {
    dirs: Vec<(PathBuf, Node)>,
    files: Vec<(PathBuf, Node)>,
    /// Hard links to create once their first path is written: (link, first).
    links: Vec<(PathBuf, PathBuf)>,
    others: Vec<(PathBuf, Node)>,
}

/// Restores snapshot `id` according to `opts`. A restore that fails
/// leaves no target directory it created behind while it is empty (what
/// it asked for is checked before the directory is made).
pub fn restore(repo: &Repository, id: &Id, opts: &RestoreOptions, progress: &dyn Progress) -> Result<RestoreOutcome> {
    let existed = fs::symlink_metadata(&opts.target).is_ok();
    let result = restore_into(repo, id, opts, progress);
    if result.is_err() && !existed {
        // Removes only an empty directory: restored files are never lost.
        let _ = fs::remove_dir(&opts.target);
    }
    result
}

fn restore_into(repo: &Repository, id: &Id, opts: &RestoreOptions, progress: &dyn Progress) -> Result<RestoreOutcome> {
    let started = Instant::now();
    // The snapshot's own domain: its blobs are looked up and checked there
    // only (a blob another writer stored under the same ID never counts).
    let info = repo.snapshot(id)?;
    let body = repo.snapshot_body(id)?;
    let (index, _) = MasterIndex::load(repo, &info.domain)?;
    let target = &opts.target;
    let opts = &RestoreOptions { overwrite: opts.overwrite || opts.delta, ..opts.clone() };

    let mut outcome = RestoreOutcome::default();
    let damaged = Mutex::new(Vec::new());

    // Resolve the starting point.
    let start = walk::find(repo, &index, &body.tree, &opts.subpath).map_err(|e| match e {
        Error::PathNotInSnapshot { path, .. } => Error::PathNotInSnapshot { snapshot: id.short(), path },
        other => other,
    })?;
    // Every --include must name something, checked before anything is written.
    if let Some(root) = match &start {
        None => Some(body.tree),
        Some(n) => n.subtree,
    } {
        for inc in &opts.include {
            let inc = inc.strip_prefix(b"/").unwrap_or(inc);
            match walk::find(repo, &index, &root, inc) {
                Ok(_) => {}
                Err(Error::PathNotInSnapshot { path, .. }) => return Err(Error::PathNotInSnapshot { snapshot: id.short(), path }),
                Err(e) => return Err(e),
            }
        }
    }
    // Only now, with everything asked for known to exist, is the target
    // touched.
    prepare_target(target, opts.overwrite)?;
    let mut plan = Plan { dirs: Vec::new(), files: Vec::new(), links: Vec::new(), others: Vec::new() };
    let mut first_of_inode: HashMap<(u64, u64), PathBuf> = HashMap::new();
    // Names each restored directory should hold (delta restores remove the rest).
    let mut expected: HashMap<PathBuf, std::collections::HashSet<std::ffi::OsString>> = HashMap::new();
    let root_tree = match &start {
        None => Some(body.tree),
        Some(n) if n.kind == NodeKind::Dir => {
            plan.dirs.push((target.clone(), n.clone()));
            n.subtree
        }
        Some(n) => {
            queue_entry(&mut plan, &mut first_of_inode, target.join(OsStr::from_bytes(&n.name)), n.clone());
            None
        }
    };
    if let Some(root) = root_tree {
        walk::walk_tolerant(
            repo,
            &index,
            &root,
            &mut |rel, node| {
                let v = included(rel, &opts.include);
                if v == Visit::Skip {
                    return Ok(v);
                }
                let path = target.join(OsStr::from_bytes(rel));
                if opts.delta {
                    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
                    expected.entry(parent).or_default().insert(OsStr::from_bytes(&node.name).to_owned());
                }
                if node.kind == NodeKind::Dir {
                    make_dir(&path, opts.overwrite)?;
                    plan.dirs.push((path, node.clone()));
                } else {
                    queue_entry(&mut plan, &mut first_of_inode, path, node.clone());
                }
                Ok(Visit::Descend)
            },
            &mut |rel, e| {
                damaged.lock().push(DamagedEntry { path: String::from_utf8_lossy(rel).into_owned(), reason: format!("directory listing unreadable: {e}") });
                Ok(())
            },
        )?;
    }
    if opts.delta {
        expected.entry(target.clone()).or_default();
        for (dir, _) in &plan.dirs {
            expected.entry(dir.clone()).or_default();
        }
        outcome.removed = remove_unexpected(&expected)?;
    }
    let total: u64 = plan.files.iter().map(|(_, n)| n.size).sum();
    progress.set_total(total, plan.files.len() as u64);

    // Files, in parallel. Large files are cut into pieces written by extra
    // threads, at most `threads` of them at once across all workers.
    let spare_threads = AtomicUsize::new(opts.threads.max(1));
    let packs = PackReader::new(repo.backend().prefers_whole_objects(), opts.threads);
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let unchanged = AtomicU64::new(0);
    let failed_paths: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let fatal: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.threads.max(1) {
            s.spawn(|| {
                loop {
                    if opts.cancel.is_cancelled() || fatal.lock().is_some() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((path, node)) = plan.files.get(i) else { return };
                    let r = if opts.delta {
                        restore_file_delta(repo, &index, &packs, path, node, opts, &spare_threads, progress)
                    } else {
                        restore_file(repo, &index, &packs, path, node, opts, &spare_threads, progress).map(|n| (n, 0))
                    };
                    match r {
                        Ok((n, same)) => {
                            bytes.fetch_add(n, Ordering::Relaxed);
                            unchanged.fetch_add(same, Ordering::Relaxed);
                        }
                        Err(FileError::Damaged(reason)) => {
                            let _ = fs::remove_file(path);
                            failed_paths.lock().push(path.clone());
                            damaged.lock().push(DamagedEntry { path: display_rel(target, path), reason });
                        }
                        Err(FileError::Fatal(e)) => {
                            fatal.lock().get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = fatal.into_inner() {
        return Err(e);
    }
    if opts.cancel.is_cancelled() {
        return Err(Error::Interrupted);
    }
    outcome.files = plan.files.len() as u64 - failed_paths.lock().len() as u64;

    for (path, node) in &plan.others {
        restore_special(path, node, opts)?;
    }
    let failed: std::collections::HashSet<PathBuf> = failed_paths.into_inner().into_iter().collect();
    for (link, first) in &plan.links {
        if failed.contains(first) {
            damaged.lock().push(DamagedEntry { path: display_rel(target, link), reason: "hard link to a damaged file".into() });
            continue;
        }
        replace_existing(link, opts.overwrite)?;
        fs::hard_link(first, link).map_err(|e| Error::Target { path: link.clone(), source: e })?;
        outcome.links += 1;
    }
    for (path, node) in plan.dirs.iter().rev() {
        apply_metadata(path, node, opts)?;
    }
    // One syncfs instead of an fsync per file: the restore is durable when
    // this returns (a database started on it next must not lose files to a
    // power cut), at a fraction of the cost.
    let dir = fs::File::open(target).map_err(|e| Error::Target { path: target.clone(), source: e })?;
    nix::unistd::syncfs(&dir).map_err(|e| Error::Target { path: target.clone(), source: e.into() })?;
    outcome.dirs = plan.dirs.len() as u64;
    outcome.bytes = bytes.into_inner();
    outcome.bytes_unchanged = unchanged.into_inner();
    outcome.damaged = damaged.into_inner();
    outcome.duration_ms = started.elapsed().as_millis() as u64;
    Ok(outcome)
}

/// Files go to the writer pool, other entries are made afterwards; a second
/// path of a hard-linked inode (of any kind) becomes a link to the first.
fn queue_entry(plan: &mut Plan, first_of_inode: &mut HashMap<(u64, u64), PathBuf>, path: PathBuf, node: Node) {
    debug_assert!(node.kind != NodeKind::Dir, "directories are planned by the caller");
    if node.links > 1 && node.inode != 0 {
        match first_of_inode.entry((node.device, node.inode)) {
            hashbrown::hash_map::Entry::Occupied(first) => {
                plan.links.push((path, first.get().clone()));
                return;
            }
            hashbrown::hash_map::Entry::Vacant(v) => {
                v.insert(path.clone());
            }
        }
    }
    match node.kind {
        NodeKind::File => plan.files.push((path, node)),
        _ => plan.others.push((path, node)),
    }
}

fn display_rel(target: &Path, path: &Path) -> String {
    path.strip_prefix(target).unwrap_or(path).display().to_string()
}

fn prepare_target(target: &Path, overwrite: bool) -> Result<()> {
    match fs::symlink_metadata(target) {
        Ok(md) if !md.is_dir() => {
            return Err(Error::InvalidArgument(format!("restore target {} exists and is not a directory: choose a directory", target.display())));
        }
        Ok(_) => {
            let mut entries = fs::read_dir(target).map_err(|e| Error::Target { path: target.to_owned(), source: e })?;
            if !overwrite && entries.next().is_some() {
                return Err(Error::InvalidArgument(format!(
                    "restore target {} is not empty: choose an empty or new directory, pass --overwrite to write over same-named entries (others are kept), or --delta to make it exactly the snapshot",
                    target.display()
                )));
            }
        }
        Err(_) => fs::create_dir_all(target).map_err(|e| Error::Target { path: target.to_owned(), source: e })?,
    }
    // Probe that we can write there before touching anything else.
    let probe = target.join(format!(".reprise-probe-{}", std::process::id()));
    fs::write(&probe, b"").map_err(|e| Error::Target { path: target.to_owned(), source: e })?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

/// Removes whatever non-directory is at `path` (overwrite mode), so that
/// nothing is written through a pre-existing symlink.
fn replace_existing(path: &Path, overwrite: bool) -> Result<()> {
    if overwrite
        && let Ok(md) = fs::symlink_metadata(path) {
            if md.is_dir() {
                fs::remove_dir_all(path).map_err(|e| Error::Target { path: path.to_owned(), source: e })?;
            } else {
                fs::remove_file(path).map_err(|e| Error::Target { path: path.to_owned(), source: e })?;
            }
        }
    Ok(())
}

fn make_dir(path: &Path, overwrite: bool) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_dir() => {}
        Ok(_) => {
            replace_existing(path, overwrite)?;
            fs::create_dir(path).map_err(|e| Error::Target { path: path.to_owned(), source: e })?;
        }
        Err(_) => fs::create_dir(path).map_err(|e| Error::Target { path: path.to_owned(), source: e })?,
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(|e| Error::Target { path: path.to_owned(), source: e })
}

enum FileError {
    Damaged(String),
    Fatal(Error),
}

impl From<Error> for FileError {
    fn from(e: Error) -> Self {
        match e {
            Error::Damaged { .. } => FileError::Damaged(e.to_string()),
            Error::Backend(ref b) if matches!(b.kind, reprise_backends::ErrorKind::NotFound | reprise_backends::ErrorKind::Truncated) => {
                FileError::Damaged(e.to_string())
            }
            other => FileError::Fatal(other),
        }
    }
}

fn restore_file(repo: &Repository, index: &MasterIndex, packs: &PackReader, path: &Path, node: &Node, opts: &RestoreOptions, spare_threads: &AtomicUsize, progress: &dyn Progress) -> Result<u64, FileError> {
    replace_existing(path, opts.overwrite)?;
    let target_err = |e: std::io::Error| FileError::Fatal(Error::Target { path: path.to_owned(), source: e });
    let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(target_err)?;
    let content = &node.content;
    // A large file (a 1 GB relation segment) would otherwise be written by
    // one thread while the others idle: its blob list is cut into pieces
    // written in parallel at their offsets.
    let want = if node.size >= SPLIT_FILE_SIZE { opts.threads } else { 0 };
    let reserved = spare_threads.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| Some(n - n.min(want))).map_or(0, |n| n.min(want));
    // Given back however this function returns.
    let _reservation = Reservation(spare_threads, reserved);
    let pieces = reserved.max(1);
    let written = if reserved < 2 {
        write_blobs(repo, index, packs, content, &file, 0, path, progress)?
    } else {
        let mut bounds = vec![(0usize, 0u64)];
        let mut offset = 0u64;
        let step = node.size.div_ceil(pieces as u64);
        for (i, id) in content.iter().enumerate() {
            let loc = index.get(id).ok_or_else(|| FileError::Damaged(format!("data blob {id} is in no index (its pack is missing)")))?;
            if offset >= step * bounds.len() as u64 && bounds.last().is_some_and(|b| b.0 < i) {
                bounds.push((i, offset));
            }
            offset += u64::from(loc.entry.raw_length);
        }
        bounds.push((content.len(), offset));
        let results: Vec<Result<u64, FileError>> = std::thread::scope(|s| {
            let handles: Vec<_> = bounds
                .windows(2)
                .map(|w| {
                    let ((from, at), (to, _)) = (w[0], w[1]);
                    let file = &file;
                    s.spawn(move || write_blobs(repo, index, packs, &content[from..to], file, at, path, progress))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("restore piece panicked")).collect()
        });
        let mut total = 0;
        for r in results {
            total += r?;
        }
        total
    };
    if written != node.size {
        return Err(FileError::Damaged(format!("restored {written} bytes, the snapshot recorded {}", node.size)));
    }
    drop(file);
    progress.advance(0, 1);
    apply_metadata(path, node, opts)?;
    Ok(written)
}

/// Where restored blobs are read from. On local disks, each run of
/// adjacent blobs is one positioned read. On object stores, where a request
/// costs far more than the bytes it moves, each pack is fetched whole once
/// and kept while files still need it: files are restored in the order
/// they were backed up, which is the order their blobs went into packs, so
/// a few recent packs serve nearly every read. Bytes are verified by the
/// blob's authentication and hash either way.
struct PackReader {
    whole: bool,
    /// Recently fetched packs, newest last; at most `capacity`.
    cache: Mutex<Vec<(Id, Arc<OnceLock<Result<Arc<Vec<u8>>, reprise_backends::BackendError>>>)>>,
    capacity: usize,
}

impl PackReader {
    fn new(whole: bool, threads: usize) -> PackReader {
        // Two packs per thread: one being read, one being fetched.
        PackReader { whole, cache: Mutex::new(Vec::new()), capacity: 2 * threads.max(1) }
    }

    fn read(&self, repo: &Repository, pack: &Id, offset: u64, length: u64) -> Result<Vec<u8>, reprise_backends::BackendError> {
        let name = pack.to_hex();
        if !self.whole {
            return repo.backend().read_range(ObjectKind::Pack, &name, offset, length);
        }
        let cell = {
            let mut cache = self.cache.lock();
            if let Some(i) = cache.iter().position(|(id, _)| id == pack) {
                let entry = cache.remove(i);
                let cell = Arc::clone(&entry.1);
                cache.push(entry);
                cell
            } else {
                let cell = Arc::new(OnceLock::new());
                cache.push((*pack, Arc::clone(&cell)));
                if cache.len() > self.capacity {
                    cache.remove(0);
                }
                cell
            }
        };
        // One thread fetches; others wanting the same pack wait for it.
        let bytes = match cell.get_or_init(|| repo.backend().read(ObjectKind::Pack, &name).map(Arc::new)) {
            Ok(b) => Arc::clone(b),
            Err(e) => {
                let e = reprise_backends::BackendError::new(e.kind, &e.location, &e.object, e.message.clone());
                // A failed fetch is not kept: the next read tries again.
                self.cache.lock().retain(|(id, c)| !(id == pack && Arc::ptr_eq(c, &cell)));
                return Err(e);
            }
        };
        let (start, end) = (offset as usize, (offset + length) as usize);
        if end > bytes.len() {
            return Err(reprise_backends::BackendError::new(
                reprise_backends::ErrorKind::Truncated,
                repo.backend().location(),
                &ObjectKind::Pack.path(&name),
                format!("object is {} bytes, shorter than {end}: truncated", bytes.len()),
            ));
        }
        Ok(bytes[start..end].to_vec())
    }
}

/// Threads taken from the restore's budget of extra writer threads.
struct Reservation<'a>(&'a AtomicUsize, usize);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(self.1, Ordering::AcqRel);
    }
}

/// Files at least this large are written by several threads at once.
const SPLIT_FILE_SIZE: u64 = 64 * 1024 * 1024;
/// A thread that has written this much of one file since its last sync
/// waits for those bytes to reach the disk. Left alone, a large restore
/// piles up gigabytes in the page cache that reach the disk only when the
/// final `syncfs` asks for them: the disk idles while blobs are decrypted
/// and decompressed, then the CPU idles while the disk drains. Synced as
/// it goes, the disk works while the other threads decompress (what
/// pgBackRest gets from its `fsync` of each file). Small files never reach
/// it: one `fdatasync` each costs more than it overlaps (BENCHMARKS 6).
/// The final `syncfs` still makes the whole restore durable.
const SYNC_EVERY: usize = 32 * 1024 * 1024;
/// Restored bytes are gathered into writes of this size: 8 KiB blocks
/// written one by one cost a system call each.
const WRITE_BUFFER: usize = 1024 * 1024;

/// The plaintext of every distinct blob of `window`, read pack by pack in
/// offset order: blobs of one pack close to each other (at most
/// `MAX_READ_GAP` of other blobs between them) are one read. A file whose
/// blocks changed since its first backup alternates between the first
/// backup's pack and later ones; read in file order, it would cost a
/// read (and an open) for every two or three blocks.
fn read_window(repo: &Repository, index: &MasterIndex, packs: &PackReader, window: &[crate::index::BlobLocation]) -> Result<HashMap<Id, Vec<u8>>, FileError> {
    let mut order: Vec<&crate::index::BlobLocation> = window.iter().collect();
    order.sort_by_key(|l| (l.pack, l.entry.offset));
    order.dedup_by_key(|l| l.entry.id);
    let mut plain: HashMap<Id, Vec<u8>> = HashMap::with_capacity(order.len());
    let mut s = 0;
    while s < order.len() {
        let first = order[s];
        let begin = u64::from(first.entry.offset);
        let mut end = begin + u64::from(first.entry.length);
        let mut e = s + 1;
        while let Some(next) = order.get(e) {
            let (at, len) = (u64::from(next.entry.offset), u64::from(next.entry.length));
            if next.pack != first.pack || at < end || at - end > MAX_READ_GAP || at + len - begin > MAX_READ_RUN {
                break;
            }
            end = at + len;
            e += 1;
        }
        let run = &order[s..e];
        s = e;
        let buf = match packs.read(repo, &first.pack, begin, end - begin) {
            Ok(b) => b,
            // The pack is gone or short: each blob of the run is read from
            // wherever else it is stored.
            Err(e) if matches!(e.kind, reprise_backends::ErrorKind::NotFound | reprise_backends::ErrorKind::Truncated) => {
                for loc in run {
                    if !plain.contains_key(&loc.entry.id) {
                        plain.insert(loc.entry.id, repo.read_blob(index, loc.entry.kind, &loc.entry.id)?);
                    }
                }
                continue;
            }
            Err(e) => return Err(FileError::from(Error::Backend(e))),
        };
        for loc in run {
            if plain.contains_key(&loc.entry.id) {
                continue;
            }
            let off = (u64::from(loc.entry.offset) - begin) as usize;
            let data = match repo.open_blob(loc, &buf[off..off + loc.entry.length as usize]) {
                Ok(p) => p,
                // Not this copy: every other copy is tried before the file
                // is given up (a damaged pack, or a decoy stored first).
                Err(Error::Damaged { .. }) => repo.read_blob(index, loc.entry.kind, &loc.entry.id)?,
                Err(e) => return Err(e.into()),
            };
            plain.insert(loc.entry.id, data);
        }
    }
    Ok(plain)
}

/// Writes the plaintext of `content`, in order, into `file` from byte
/// `start`; returns the number of bytes written.
fn write_blobs(repo: &Repository, index: &MasterIndex, packs: &PackReader, content: &[Id], file: &fs::File, start: u64, path: &Path, progress: &dyn Progress) -> Result<u64, FileError> {
    use std::os::unix::fs::FileExt;
    let target_err = |e: std::io::Error| FileError::Fatal(Error::Target { path: path.to_owned(), source: e });
    let mut out: Vec<u8> = Vec::with_capacity(WRITE_BUFFER + 64 * 1024);
    let mut at = start;
    let mut unsynced = 0usize;
    let mut flush = |out: &mut Vec<u8>, at: &mut u64| -> Result<(), FileError> {
        file.write_all_at(out, *at).map_err(target_err)?;
        *at += out.len() as u64;
        unsynced += out.len();
        if unsynced >= SYNC_EVERY {
            file.sync_data().map_err(target_err)?;
            unsynced = 0;
        }
        out.clear();
        Ok(())
    };
    let mut written = 0u64;
    let mut i = 0;
    while i < content.len() {
        // The next window of the file: its blobs, wherever they are stored.
        let mut window = Vec::new();
        let mut raw = 0u64;
        while let Some(id) = content.get(i + window.len()) {
            if !window.is_empty() && raw >= READ_WINDOW {
                break;
            }
            let loc = index.get(id).ok_or_else(|| FileError::Damaged(format!("data blob {id} is in no index (its pack is missing)")))?;
            raw += u64::from(loc.entry.raw_length);
            window.push(loc);
        }
        let plain = read_window(repo, index, packs, &window)?;
        for loc in &window {
            let data = &plain[&loc.entry.id];
            out.extend_from_slice(data);
            written += data.len() as u64;
            progress.advance(data.len() as u64, 0);
            if out.len() >= WRITE_BUFFER {
                flush(&mut out, &mut at)?;
            }
        }
        i += window.len();
    }
    if !out.is_empty() {
        flush(&mut out, &mut at)?;
    }
    Ok(written)
}

/// Removes entries of restored directories that the snapshot does not list.
fn remove_unexpected(expected: &HashMap<PathBuf, std::collections::HashSet<std::ffi::OsString>>) -> Result<u64> {
    let mut removed = 0;
    for (dir, names) in expected {
        let Ok(entries) = fs::read_dir(dir) else { continue };
        for entry in entries.flatten() {
            if names.contains(&entry.file_name()) {
                continue;
            }
            let path = entry.path();
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            let r = if is_dir { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            r.map_err(|e| Error::Target { path: path.clone(), source: e })?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Brings an existing file to the snapshot's content, writing only chunks
/// whose bytes differ (each existing chunk is hashed with the repository's
/// ID key and compared with the snapshot's chunk ID). Returns (bytes
/// written, bytes already right).
fn restore_file_delta(repo: &Repository, index: &MasterIndex, packs: &PackReader, path: &Path, node: &Node, opts: &RestoreOptions, spare_threads: &AtomicUsize, progress: &dyn Progress) -> Result<(u64, u64), FileError> {
    use std::os::unix::fs::FileExt;
    let is_file = fs::symlink_metadata(path).is_ok_and(|m| m.is_file());
    if !is_file {
        return restore_file(repo, index, packs, path, node, opts, spare_threads, progress).map(|n| (n, 0));
    }
    let target_err = |e: std::io::Error| FileError::Fatal(Error::Target { path: path.to_owned(), source: e });
    let file = OpenOptions::new().read(true).write(true).open(path).map_err(target_err)?;
    let keys = repo.domain_keys(&index.domain())?;
    let id_key = &keys.id_key;
    let (mut offset, mut written, mut same) = (0u64, 0u64, 0u64);
    let mut buf = Vec::new();
    for id in &node.content {
        let loc = index.get(id).ok_or_else(|| FileError::Damaged(format!("data blob {id} is in no index (its pack is missing)")))?;
        let len = u64::from(loc.entry.raw_length);
        buf.resize(len as usize, 0);
        let matches = file.read_exact_at(&mut buf, offset).is_ok() && id_key.blob_id(&buf) == *id;
        if matches {
            same += len;
        } else {
            let plain = repo.read_blob(index, loc.entry.kind, id)?;
            file.write_all_at(&plain, offset).map_err(target_err)?;
            written += len;
        }
        progress.advance(len, 0);
        offset += len;
    }
    if offset != node.size {
        return Err(FileError::Damaged(format!("chunks add up to {offset} bytes, the snapshot recorded {}", node.size)));
    }
    file.set_len(node.size).map_err(target_err)?;
    drop(file);
    progress.advance(0, 1);
    apply_metadata(path, node, opts)?;
    Ok((written, same))
}

fn restore_special(path: &Path, node: &Node, opts: &RestoreOptions) -> Result<()> {
    replace_existing(path, opts.overwrite)?;
    let err = |e: std::io::Error| Error::Target { path: path.to_owned(), source: e };
    match node.kind {
        NodeKind::Symlink => {
            let target = node.target.as_deref().unwrap_or_default();
            std::os::unix::fs::symlink(OsStr::from_bytes(target), path).map_err(err)?;
        }
        NodeKind::Fifo => {
            nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| err(e.into()))?;
        }
        NodeKind::Char | NodeKind::Block => {
            if !nix::unistd::geteuid().is_root() {
                tracing::warn!("{}: device files can only be restored as root; skipped", path.display());
                return Ok(());
            }
            let kind = if node.kind == NodeKind::Char { nix::sys::stat::SFlag::S_IFCHR } else { nix::sys::stat::SFlag::S_IFBLK };
            nix::sys::stat::mknod(path, kind, nix::sys::stat::Mode::from_bits_truncate(0o600), node.rdev).map_err(|e| err(e.into()))?;
        }
        NodeKind::Socket => return Ok(()), // sockets are recreated by their servers
        NodeKind::File | NodeKind::Dir => unreachable!("handled elsewhere"),
    }
    apply_metadata(path, node, opts)
}

/// Owner, then mode (chown clears set-id bits), then times.
fn apply_metadata(path: &Path, node: &Node, opts: &RestoreOptions) -> Result<()> {
    let err = |e: std::io::Error| Error::Target { path: path.to_owned(), source: e };
    if let Some((uid, gid)) = opts.owner_override {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(err)?;
    } else if opts.owners {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(err)?;
    }
    // utimensat without following links, for every kind: it never opens
    // the path (opening a restored FIFO would block until a writer comes).
    let mtime = filetime::FileTime::from_unix_time(node.mtime_ns.div_euclid(1_000_000_000), node.mtime_ns.rem_euclid(1_000_000_000) as u32);
    if node.kind != NodeKind::Symlink {
        // Linux cannot change a symlink's own mode; chmod would follow it.
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode)).map_err(err)?;
    }
    filetime::set_symlink_file_times(path, mtime, mtime).map_err(err)
}
