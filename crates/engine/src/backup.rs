//! Backing up a source into a new snapshot.
//!
//! Three kinds of thread cooperate:
//!
//! * the **walker** pulls events from the source, answers unchanged files
//!   from the files cache, and queues the others as jobs;
//! * **workers** read, chunk, hash and — for chunks nobody stored yet —
//!   compress and encrypt into their own pack;
//! * the **assembler** (the calling thread) consumes the walker's events in
//!   source order, waits for each file's chunk list, and writes one tree blob
//!   per directory as the directory closes.
//!
//! Order is kept by the walker handing the assembler a one-shot receiver per
//! file; parallelism comes from the walker running ahead by up to a bounded
//! number of files.
//!
//! Cancellation is seen between files by the walker and between chunks by
//! the workers, so a large file or a long stream stops within a chunk. A
//! stream (standard input) may also sit silent for hours with its writer
//! alive, and a blocked `read(2)` cannot be interrupted (Ctrl-C handlers
//! restart it): streams are read on a helper thread and the worker waits
//! for them in slices, checking the token ([`CancellableStream`]). What
//! the workers packed before the cancellation is flushed and indexed.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};
use parking_lot::Mutex;
use reprise_format::chunker::{ChunkPolicy, Chunker};
use reprise_format::snapshot::{SnapshotBody, SnapshotHeader, Summary};
use reprise_format::tree::{Node, NodeKind, Tree};
use reprise_format::{BlobKind, Id};

use crate::cache::{CachedFile, FilesCache, PathKey, path_key};
use crate::error::{Error, Result};
use crate::index::MasterIndex;
use crate::packer::{BlobPacker, PackSink, Uploads};
use crate::progress::{CancelToken, Progress};
use crate::repository::Repository;
use crate::source::{Content, Source, SourceEvent};

/// Files modified less than this before a backup started are not trusted
/// by the next backup's files cache (coarse file-system clocks; FAT has 2 s).
const RACY_MARGIN_NS: i64 = 2_000_000_000;

/// Files up to this size are read whole and cut in memory.
const WHOLE_READ_LIMIT: u64 = 8 * 1024 * 1024;

/// How long a worker waits for a silent stream before looking at the
/// cancel token again: Ctrl-C takes effect within this.
const STREAM_POLL: Duration = Duration::from_millis(100);

/// Block size of the stream helper thread; with [`STREAM_BLOCKS`] queued,
/// about 4 MiB are read ahead of the chunker.
const STREAM_BLOCK: usize = 1 << 20;
const STREAM_BLOCKS: usize = 3;

#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub component: String,
    /// What the snapshot holds: `files`, `stdin`, ...
    pub kind: String,
    pub host: String,
    pub tags: Vec<String>,
    /// The source paths, recorded in the (sealed) snapshot body.
    pub paths: Vec<Vec<u8>>,
    pub excludes: Vec<String>,
    pub header_labels: BTreeMap<String, String>,
    pub body_labels: BTreeMap<String, String>,
    /// Reader/chunker/encryptor threads.
    pub threads: usize,
    pub upload_threads: usize,
    pub compression_level: i32,
    /// Files cache location; `None` reads every file.
    pub files_cache: Option<PathBuf>,
    /// With a full-access key and no files cache, rebuild the cache from
    /// this snapshot (the parent).
    pub parent: Option<Id>,
    /// Snapshot time; now if `None`.
    pub time: Option<jiff::Timestamp>,
    pub cancel: CancelToken,
}

impl BackupOptions {
    #[must_use]
    pub fn new(component: &str, kind: &str) -> Self {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        BackupOptions {
            component: component.to_owned(),
            kind: kind.to_owned(),
            host: crate::repository::hostname(),
            tags: Vec::new(),
            paths: Vec::new(),
            excludes: Vec::new(),
            header_labels: BTreeMap::new(),
            body_labels: BTreeMap::new(),
            threads,
            upload_threads: 2,
            compression_level: 3,
            files_cache: None,
            parent: None,
            time: None,
            cancel: CancelToken::new(),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupOutcome {
    pub id: Id,
    pub header: SnapshotHeader,
    /// Entries that could not be read (also recorded in the snapshot).
    pub errors: Vec<String>,
    /// Packs of an interrupted earlier backup that this one indexed.
    pub adopted_packs: usize,
    pub index_files: usize,
}

/// Blobs known to exist or claimed by a worker of this backup.
struct Known {
    index: Arc<MasterIndex>,
    claimed: Mutex<HashSet<Id>>,
}

impl Known {
    /// True if the caller must store the blob (nobody has it yet).
    fn claim(&self, id: Id) -> bool {
        !self.index.contains(&id) && self.claimed.lock().insert(id)
    }
}

#[derive(Default)]
struct Counters {
    files_read: AtomicU64,
    new_bytes: AtomicU64,
    new_blobs: AtomicU64,
}

/// What a worker returns for one file.
enum FileResult {
    Done { content: Vec<Id>, size: u64 },
    /// Could not be read: recorded and skipped.
    Unreadable(String),
    /// Gone before it was read, and allowed to be: left out silently.
    Vanished,
    /// A failure that ends the backup (storage, cancellation).
    Fatal(Error),
}

struct Job {
    content: Content,
    reply: Sender<FileResult>,
}

/// Walker → assembler.
enum Command {
    Enter(Node),
    Leave,
    Ready(Node, Option<(PathBuf, bool)>),
    Pending(Node, Option<PathBuf>, Receiver<FileResult>),
    Error(String),
    Barrier(std::sync::mpsc::Sender<()>),
    Label { key: String, value: String, sealed: bool },
    Fatal(String),
}

enum WorkError {
    Read(std::io::Error),
    Fatal(Error),
}

impl From<std::io::Error> for WorkError {
    fn from(e: std::io::Error) -> Self {
        WorkError::Read(e)
    }
}

/// A stream read on a helper thread, so that the worker waiting for it
/// notices cancellation even while no byte arrives (see the module doc).
/// Cancelled, it fails with [`STREAM_CANCELLED`]; the helper thread stays
/// blocked in its read until the stream ends or the process exits, and
/// then stops.
struct CancellableStream {
    blocks: Receiver<std::io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    ended: bool,
    cancel: CancelToken,
}

const STREAM_CANCELLED: &str = "backup cancelled while waiting for input";

impl CancellableStream {
    fn new(mut reader: Box<dyn Read + Send>, cancel: CancelToken) -> CancellableStream {
        let (tx, blocks) = bounded(STREAM_BLOCKS);
        std::thread::spawn(move || {
            loop {
                let mut block = vec![0u8; STREAM_BLOCK];
                let mut filled = 0;
                // Fill the block (pipes return 64 KiB at most per read).
                let end = loop {
                    match reader.read(&mut block[filled..]) {
                        Ok(0) => break Ok(true),
                        Ok(n) => {
                            filled += n;
                            if filled == block.len() {
                                break Ok(false);
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                block.truncate(filled);
                let last = !matches!(end, Ok(false));
                if !block.is_empty() && tx.send(Ok(block)).is_err() {
                    return;
                }
                if last {
                    // An empty block says the stream ended; an error says why it stopped.
                    let _ = tx.send(end.map(|_| Vec::new()));
                    return;
                }
            }
        });
        CancellableStream { blocks, current: Vec::new(), pos: 0, ended: false, cancel }
    }
}

impl Read for CancellableStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.pos < self.current.len() {
                let n = buf.len().min(self.current.len() - self.pos);
                buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.ended {
                return Ok(0);
            }
            if self.cancel.is_cancelled() {
                return Err(std::io::Error::other(STREAM_CANCELLED));
            }
            match self.blocks.recv_timeout(STREAM_POLL) {
                Ok(Ok(block)) if block.is_empty() => self.ended = true,
                Ok(Ok(block)) => {
                    self.current = block;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the stream reader stopped"));
                }
            }
        }
    }
}

struct Worker {
    chunker: Chunker,
    id_key: reprise_format::crypto::IdKey,
    known: Arc<Known>,
    packer: BlobPacker,
    counters: Arc<Counters>,
    progress: Arc<dyn Progress>,
    cancel: CancelToken,
    buf: Vec<u8>,
}

impl Worker {
    fn chunk(&mut self, data: &[u8], content: &mut Vec<Id>) -> Result<(), WorkError> {
        if self.cancel.is_cancelled() {
            return Err(WorkError::Fatal(Error::Interrupted));
        }
        let id = self.id_key.blob_id(data);
        if self.known.claim(id) {
            self.packer.add(id, data).map_err(WorkError::Fatal)?;
            self.counters.new_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            self.counters.new_blobs.fetch_add(1, Ordering::Relaxed);
        }
        content.push(id);
        self.progress.advance(data.len() as u64, 0);
        Ok(())
    }

    fn process(&mut self, content: Content) -> FileResult {
        let mut ids = Vec::new();
        let r = match content {
            Content::File { path, policy, missing_ok } => match self.read_file(&path, policy, &mut ids) {
                Err(WorkError::Read(e)) if missing_ok && e.kind() == std::io::ErrorKind::NotFound => return FileResult::Vanished,
                other => other,
            },
            Content::Stream { reader, policy } => self.read_stream(reader, policy, &mut ids),
            Content::Bytes { data, policy } => {
                let cuts = self.chunker.cut(&data, policy);
                cuts.into_iter().try_for_each(|(o, l)| self.chunk(&data[o..o + l], &mut ids)).map(|()| data.len() as u64)
            }
        };
        match r {
            Ok(size) => {
                self.counters.files_read.fetch_add(1, Ordering::Relaxed);
                FileResult::Done { content: ids, size }
            }
            // A read cut short by cancellation is not an unreadable file.
            Err(WorkError::Read(_)) if self.cancel.is_cancelled() => FileResult::Fatal(Error::Interrupted),
            Err(WorkError::Read(e)) => FileResult::Unreadable(e.to_string()),
            Err(WorkError::Fatal(e)) => FileResult::Fatal(e),
        }
    }

    fn read_stream(&mut self, reader: Box<dyn Read + Send>, policy: ChunkPolicy, ids: &mut Vec<Id>) -> Result<u64, WorkError> {
        let chunker = self.chunker;
        let reader = CancellableStream::new(reader, self.cancel.clone());
        chunker.stream(reader, policy, |c| self.chunk(c, ids))
    }

    fn read_file(&mut self, path: &std::path::Path, policy: ChunkPolicy, ids: &mut Vec<Id>) -> Result<u64, WorkError> {
        // O_NOATIME keeps a backup from touching access times; it is only
        // allowed to the file's owner, so fall back to a plain open.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOATIME)
            .open(path)
            .or_else(|_| File::open(path))?;
        let len = file.metadata()?.len();
        if len <= WHOLE_READ_LIMIT {
            let mut buf = std::mem::take(&mut self.buf);
            buf.clear();
            let r = file.read_to_end(&mut buf).map_err(WorkError::from).and_then(|_| {
                let cuts = self.chunker.cut(&buf, policy);
                cuts.into_iter().try_for_each(|(o, l)| self.chunk(&buf[o..o + l], ids))
            });
            let n = buf.len() as u64;
            self.buf = buf;
            r.map(|()| n)
        } else {
            let chunker = self.chunker;
            chunker.stream(std::io::BufReader::with_capacity(1 << 20, file), policy, |c| self.chunk(c, ids))
        }
    }
}

/// A directory being assembled.
struct OpenDir {
    node: Node,
    children: Vec<Node>,
}

/// Takes a snapshot of `source`.
pub fn backup(repo: &Arc<Repository>, source: impl Source + 'static, opts: &BackupOptions, progress: &Arc<dyn Progress>) -> Result<BackupOutcome> {
    let started = Instant::now();
    let time = opts.time.unwrap_or_else(jiff::Timestamp::now);
    // Nothing is read before we know this key may write here (a version 1
    // repository or key is refused).
    repo.signer()?;
    let domain = repo.home_domain();
    let id_key = repo.domain_keys(&domain)?.id_key.clone();
    // Prune marks first, then the index without the packs they condemn
    // (crate::prune explains the protocol). Only this key's own domain is
    // deduplicated against: nothing another writer stored can stand in for
    // a blob of ours.
    let marks = crate::prune::Marks::load(repo)?;
    let (mut index, report) = MasterIndex::load_excluding(repo, &domain, marks.condemned())?;
    index.track_reuse();
    if !report.adopted.is_empty() {
        tracing::info!("indexing {} packs left by an interrupted backup", report.adopted.len());
    }
    let index = Arc::new(index);

    let cache = match &opts.files_cache {
        Some(path) => {
            let c = FilesCache::load(path);
            if c.is_empty() && repo.recovery("").is_ok() {
                match opts.parent {
                    Some(parent) => match repo
                        .snapshot(&parent)
                        .and_then(|p| if p.domain == domain { Ok(()) } else { Err(Error::InvalidArgument(format!("it was written in another domain ({})", p.domain))) })
                        .and_then(|()| repo.snapshot_body(&parent))
                        .and_then(|b| FilesCache::from_snapshot(repo, &index, &b.tree))
                    {
                        Ok(c) => c,
                        Err(e) => {
                            tracing::warn!("cannot use parent snapshot {}: {e}; reading every file", parent.short());
                            FilesCache::default()
                        }
                    },
                    None => c,
                }
            } else {
                c
            }
        }
        None => FilesCache::default(),
    };

    let adopted_packs = report.adopted.len();
    let adopted_ids: Vec<Id> = report.adopted.iter().map(|(_, p)| p.id).collect();
    let uploads = Uploads::start(Arc::clone(repo), opts.upload_threads, 0);
    uploads.record_adopted(report.adopted);
    let known = Arc::new(Known { index: Arc::clone(&index), claimed: Mutex::default() });
    let counters = Arc::new(Counters::default());

    let threads = opts.threads.max(1);
    let (job_tx, job_rx) = bounded::<Job>(threads * 4);
    let (cmd_tx, cmd_rx) = bounded::<Command>(4096);

    let mut workers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let job_rx = job_rx.clone();
        let mut w = Worker {
            chunker: repo.chunker(),
            id_key: id_key.clone(),
            known: Arc::clone(&known),
            packer: BlobPacker::new(Arc::clone(repo), BlobKind::Data, uploads.sink(), opts.compression_level)?,
            counters: Arc::clone(&counters),
            progress: Arc::clone(progress),
            cancel: opts.cancel.clone(),
            buf: Vec::new(),
        };
        workers.push(std::thread::spawn(move || -> Result<()> {
            for job in job_rx {
                let r = w.process(job.content);
                let _ = job.reply.send(r);
            }
            w.packer.flush()
        }));
    }
    drop(job_rx);

    let walker = {
        let cancel = opts.cancel.clone();
        let index = Arc::clone(&index);
        let progress = Arc::clone(progress);
        std::thread::spawn(move || walk_source(source, &cache, &index, &job_tx, &cmd_tx, &cancel, progress.as_ref()))
    };

    let mut tree_packer = BlobPacker::new(Arc::clone(repo), BlobKind::Tree, uploads.sink(), opts.compression_level)?;
    let assembled = assemble(&id_key, &known, &mut tree_packer, &cmd_rx, &uploads.sink());
    drop(cmd_rx); // unblocks the walker if assembling stopped early
    let walker_ok = walker.join().expect("walker panicked");
    let mut worker_err = None;
    for w in workers {
        if let Err(e) = w.join().expect("backup worker panicked") {
            worker_err.get_or_insert(e);
        }
    }
    let flushed = tree_packer.flush();
    // Every pack sender must be gone before the uploaders can finish.
    drop(tree_packer);

    let (root, summary_counts, errors, new_cache, labels) = match (assembled, walker_ok, worker_err, flushed) {
        (Ok(a), Ok(()), None, Ok(())) => a,
        (a, w, we, f) => {
            let err = uploads.take_error().or(a.err()).or(w.err()).or(we).or(f.err()).unwrap_or(Error::Interrupted);
            if matches!(err, Error::Interrupted) {
                // Cancelled: keep what was uploaded indexed for the next run.
                let _ = uploads.finish();
            } else {
                uploads.abandon();
            }
            return Err(err);
        }
    };
    if opts.cancel.is_cancelled() {
        let _ = uploads.finish();
        return Err(Error::Interrupted);
    }
    let uploaded = uploads.finish()?;
    let summary = Summary {
        files: summary_counts.files,
        dirs: summary_counts.dirs,
        bytes: summary_counts.bytes,
        files_read: counters.files_read.load(Ordering::Relaxed),
        new_bytes: counters.new_bytes.load(Ordering::Relaxed),
        stored_bytes: uploaded.stored_bytes,
        new_blobs: counters.new_blobs.load(Ordering::Relaxed),
        duration_ms: started.elapsed().as_millis() as u64,
        errors: errors.len() as u64,
    };
    let header = SnapshotHeader {
        version: reprise_format::snapshot::SNAPSHOT_VERSION,
        time,
        host: opts.host.clone(),
        component: opts.component.clone(),
        kind: opts.kind.clone(),
        tags: opts.tags.clone(),
        summary,
        parent: opts.parent,
        labels: opts.header_labels.clone().into_iter().chain(labels.header).collect(),
    };
    let body = SnapshotBody {
        tree: root,
        paths: opts.paths.iter().cloned().map(serde_bytes::ByteBuf::from).collect(),
        excludes: opts.excludes.clone(),
        user: nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name).unwrap_or_default(),
        errors: errors.clone(),
        labels: opts.body_labels.clone().into_iter().chain(labels.body).collect(),
    };
    let depends: HashSet<Id> = index.touched_packs().into_iter().chain(uploaded.pack_ids.iter().copied()).chain(adopted_ids).collect();
    let at_risk = crate::prune::commit_guard(repo, &marks, &depends)?;
    let id = repo.save_snapshot(&header, &body)?;
    crate::prune::verify_after_commit(repo, &id, &at_risk)?;
    if let Some(path) = &opts.files_cache {
        // "Racily clean" entries (git's term): a file changed within the
        // clock granularity of the moment it was read could keep the same
        // mtime and ctime after another change. Such entries are not
        // trusted next time; the file is read again.
        let start_ns = time.as_nanosecond() as i64 - started.elapsed().as_nanos() as i64;
        let horizon = start_ns - RACY_MARGIN_NS;
        let new_cache = new_cache.into_iter().filter(|(_, c)| c.mtime_ns < horizon && c.ctime_ns < horizon).collect();
        if let Err(e) = FilesCache::save(path, new_cache) {
            tracing::warn!("could not save the files cache {}: {e}", path.display());
        }
    }
    Ok(BackupOutcome { id, header, errors, adopted_packs, index_files: uploaded.index_files.len() })
}

fn walk_source(
    source: impl Source,
    cache: &FilesCache,
    index: &MasterIndex,
    job_tx: &Sender<Job>,
    cmd_tx: &Sender<Command>,
    cancel: &CancelToken,
    progress: &dyn Progress,
) -> Result<()> {
    for event in source {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let cmd = match event {
            SourceEvent::EnterDir(node) => Command::Enter(node),
            SourceEvent::LeaveDir => Command::Leave,
            SourceEvent::Error { path, message } => Command::Error(format!("{path}: {message}")),
            SourceEvent::Barrier(done) => Command::Barrier(done),
            SourceEvent::Fatal(message) => Command::Fatal(message),
            SourceEvent::Label { key, value, sealed } => Command::Label { key, value, sealed },
            SourceEvent::Leaf(mut node, None) => {
                node.size = 0;
                Command::Ready(node, None)
            }
            SourceEvent::Leaf(mut node, Some(content)) => {
                let cache_path = match &content {
                    Content::File { path, .. } => Some(path.clone()),
                    _ => None,
                };
                if let Some(hit) = cache_path.as_ref().and_then(|p| cache.lookup(p, &node, index)) {
                    progress.advance(node.size, 1);
                    node.content = hit;
                    Command::Ready(node, cache_path.map(|p| (p, true)))
                } else {
                    let (reply, rx) = bounded(1);
                    if job_tx.send(Job { content, reply }).is_err() {
                        return Err(Error::Interrupted);
                    }
                    Command::Pending(node, cache_path, rx)
                }
            }
        };
        if cmd_tx.send(cmd).is_err() {
            // The assembler stopped; it reports why.
            return Ok(());
        }
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    files: u64,
    dirs: u64,
    bytes: u64,
}

#[derive(Default)]
struct Labels {
    header: BTreeMap<String, String>,
    body: BTreeMap<String, String>,
}

type Assembled = (Id, Totals, Vec<String>, Vec<(PathKey, CachedFile)>, Labels);

fn assemble(id_key: &reprise_format::crypto::IdKey, known: &Known, tree_packer: &mut BlobPacker, cmd_rx: &Receiver<Command>, sink: &PackSink) -> Result<Assembled> {
    use std::os::unix::ffi::OsStrExt;
    let mut stack = vec![OpenDir { node: Node::new(Vec::new(), NodeKind::Dir), children: Vec::new() }];
    let mut totals = Totals::default();
    let mut errors = Vec::new();
    let mut new_cache = Vec::new();
    let mut labels = Labels::default();
    let mut store_tree = |children: Vec<Node>| -> Result<Id> {
        let bytes = Tree { nodes: children }.encode();
        let id = id_key.blob_id(&bytes);
        if known.claim(id) {
            tree_packer.add(id, &bytes)?;
        }
        Ok(id)
    };
    for cmd in cmd_rx {
        if sink.failed() {
            return Err(Error::Interrupted);
        }
        match cmd {
            Command::Enter(node) => stack.push(OpenDir { node, children: Vec::new() }),
            Command::Leave => {
                let mut dir = stack.pop().filter(|_| !stack.is_empty()).ok_or_else(|| Error::InvalidArgument("source closed a directory it never opened".into()))?;
                dir.children.sort_by(|a, b| a.name.cmp(&b.name));
                dir.children.dedup_by(|a, b| a.name == b.name);
                let id = store_tree(dir.children)?;
                dir.node.subtree = Some(id);
                dir.node.kind = NodeKind::Dir;
                totals.dirs += 1;
                stack.last_mut().expect("root stays").children.push(dir.node);
            }
            Command::Error(e) => {
                tracing::warn!("{e}");
                errors.push(e);
            }
            Command::Ready(node, cached) => {
                if node.kind == NodeKind::File {
                    totals.files += 1;
                    totals.bytes += node.size;
                    if let Some((path, _)) = cached {
                        new_cache.push((path_key(path.as_os_str().as_bytes()), CachedFile::of(&node)));
                    }
                }
                stack.last_mut().expect("root stays").children.push(node);
            }
            Command::Pending(mut node, cache_path, rx) => match rx.recv().map_err(|_| Error::Interrupted)? {
                FileResult::Done { content, size } => {
                    node.content = content;
                    node.size = size;
                    totals.files += 1;
                    totals.bytes += size;
                    if let Some(path) = cache_path {
                        new_cache.push((path_key(path.as_os_str().as_bytes()), CachedFile::of(&node)));
                    }
                    stack.last_mut().expect("root stays").children.push(node);
                }
                FileResult::Unreadable(msg) => {
                    let e = format!("{}: {msg}", cache_path.map_or_else(|| node.name_lossy(), |p| p.display().to_string()));
                    tracing::warn!("{e}");
                    errors.push(e);
                }
                FileResult::Vanished => {}
                FileResult::Fatal(e) => return Err(e),
            },
            // Commands are handled in order and every earlier file's result
            // was awaited above: everything before the barrier is read.
            Command::Fatal(message) => return Err(Error::SourceFailed(message)),
            Command::Barrier(done) => {
                let _ = done.send(());
            }
            Command::Label { key, value, sealed } => {
                if sealed {
                    labels.body.insert(key, value);
                } else {
                    labels.header.insert(key, value);
                }
            }
        }
    }
    if stack.len() != 1 {
        // The source ended early (cancelled, or the assembler input closed).
        return Err(Error::Interrupted);
    }
    let mut root = stack.pop().expect("root");
    root.children.sort_by(|a, b| a.name.cmp(&b.name));
    root.children.dedup_by(|a, b| a.name == b.name);
    let id = store_tree(root.children)?;
    Ok((id, totals, errors, new_cache, labels))
}

#[cfg(test)]
#[allow(clippy::duration_suboptimal_units, reason = "from_mins is newer than the MSRV")]
mod tests {
    use super::*;
    use crate::progress::NoProgress;
    use crate::source::single_stream;
    use reprise_format::chunker::ChunkerParams;
    use reprise_format::keys::KdfParams;

    /// Gives `data`, then says so on `silent` and blocks until `hold` is
    /// dropped: a pipe whose writer stays alive and says nothing.
    struct OpenPipe {
        data: std::io::Cursor<Vec<u8>>,
        silent: Option<std::sync::mpsc::Sender<()>>,
        hold: std::sync::mpsc::Receiver<()>,
    }

    impl Read for OpenPipe {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.data.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            if let Some(s) = self.silent.take() {
                let _ = s.send(());
            }
            let _ = self.hold.recv();
            Ok(0)
        }
    }

    /// Bug (test audit, issue 13): Ctrl-C on `backup --stdin` was noticed
    /// only when the input ended, because the worker sat in a blocking read
    /// of the stream. Cancelled while its input is open and silent, a
    /// stream backup stops within a second, with what it read stored and
    /// indexed (no pack left to adopt), and saves no snapshot.
    #[test]
    fn a_stream_backup_stops_on_cancel_while_its_input_stays_open() {
        let backend = Arc::new(reprise_backends::MemoryBackend::new("memory"));
        let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
        let repo = Arc::new(Repository::init(backend, b"pw", kdf, ChunkerParams::default()).unwrap());
        let mut data = vec![0u8; 2 << 20];
        let mut x = 0x9E37_79B9_7F4A_7C15_u64;
        for b in &mut data {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let (silent_tx, silent) = std::sync::mpsc::channel();
        let (hold, hold_rx) = std::sync::mpsc::channel::<()>();
        let pipe = OpenPipe { data: std::io::Cursor::new(data), silent: Some(silent_tx), hold: hold_rx };
        let mut opts = BackupOptions::new("stdin", "stdin");
        let cancel = opts.cancel.clone();
        opts.threads = 2;
        let (done_tx, done) = std::sync::mpsc::channel();
        {
            let repo = Arc::clone(&repo);
            std::thread::spawn(move || {
                let progress: Arc<dyn Progress> = Arc::new(NoProgress);
                let r = backup(&repo, single_stream("dump", Box::new(pipe), ChunkPolicy::ContentDefined), &opts, &progress);
                let _ = done_tx.send(r);
            });
        }
        silent.recv_timeout(Duration::from_secs(60)).expect("the backup read its input");
        std::thread::sleep(Duration::from_millis(200));
        let cancelled = Instant::now();
        cancel.cancel();
        let r = done.recv_timeout(Duration::from_secs(10));
        // Unblocks the reader either way, so that a failure does not hang.
        drop(hold);
        let r = r.expect("the backup did not stop within 10 s of the cancel while its input stayed open");
        assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
        assert!(cancelled.elapsed() < Duration::from_secs(2), "stopped {:?} after the cancel", cancelled.elapsed());
        let (index, report) = MasterIndex::load(&repo, &repo.home_domain()).unwrap();
        assert!(index.blob_count() > 20, "what was read before the cancel is stored: {} blobs", index.blob_count());
        assert!(report.adopted.is_empty(), "{} pack(s) left unindexed", report.adopted.len());
        assert!(repo.snapshots().unwrap().0.is_empty());
    }

    /// Counts the bytes chunked and says once when `at` is passed.
    struct Counting {
        bytes: AtomicU64,
        at: u64,
        passed: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    }

    impl Progress for Counting {
        fn advance(&self, bytes: u64, _items: u64) {
            if self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes >= self.at
                && let Some(s) = self.passed.lock().take()
            {
                let _ = s.send(());
            }
        }
    }

    /// A large file is read in chunks, and cancellation is checked at each:
    /// cancelled a few megabytes into a 1 GiB file, the backup reads little
    /// more (before, it read the whole file first).
    #[test]
    fn a_large_file_stops_on_cancel_within_a_chunk() {
        const SIZE: u64 = 1 << 30;
        let backend = Arc::new(reprise_backends::MemoryBackend::new("memory"));
        let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
        let repo = Arc::new(Repository::init(backend, b"pw", kdf, ChunkerParams::default()).unwrap());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        // Sparse: reads as zeros without taking disk space.
        File::create(&path).unwrap().set_len(SIZE).unwrap();
        let mut node = Node::new(b"big".to_vec(), NodeKind::File);
        node.size = SIZE;
        let source = std::iter::once(SourceEvent::Leaf(node, Some(Content::File { path, policy: ChunkPolicy::Fixed(64 * 1024), missing_ok: false })));
        let (passed_tx, passed) = std::sync::mpsc::channel();
        let counting = Arc::new(Counting { bytes: AtomicU64::new(0), at: 8 << 20, passed: Mutex::new(Some(passed_tx)) });
        let mut opts = BackupOptions::new("files", "files");
        let cancel = opts.cancel.clone();
        let (done_tx, done) = std::sync::mpsc::channel();
        {
            let repo = Arc::clone(&repo);
            let progress: Arc<dyn Progress> = Arc::clone(&counting) as Arc<dyn Progress>;
            opts.threads = 1;
            std::thread::spawn(move || {
                let _ = done_tx.send(backup(&repo, source, &opts, &progress));
            });
        }
        passed.recv_timeout(Duration::from_secs(60)).expect("the backup read 8 MiB");
        cancel.cancel();
        let at_cancel = counting.bytes.load(Ordering::Relaxed);
        let r = done.recv_timeout(Duration::from_secs(120)).expect("the backup ended");
        assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
        let read = counting.bytes.load(Ordering::Relaxed);
        assert!(read < at_cancel + (64 << 20), "{read} bytes chunked, {at_cancel} when cancelled, of {SIZE}");
    }
}
