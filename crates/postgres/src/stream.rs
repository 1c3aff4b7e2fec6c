//! Streaming WAL (`reprise wal-stream`): the repository as a standby.
//!
//! reprise connects to the server as a physical standby
//! ([`crate::replication`]) through a slot, and stores the WAL it receives
//! as write-once byte ranges of the segment being written
//! (`<segment>.stream.<FROM>-<TO>`, docs/FORMAT.md §10.2), then each
//! completed segment whole under its own name, as `wal-push` would. The
//! position it reports to the server as written, flushed and applied is
//! always the end of what the repository holds ([`Writer::store`] reports
//! only after `Backend::create` returned), so:
//!
//! * with `synchronous_standby_names` naming this stream, a commit is
//!   acknowledged to its client only once its WAL is durable in the
//!   repository: RPO 0 *in the repository*, whatever happens to the
//!   database host afterwards;
//! * the slot keeps every byte the repository lacks on the server;
//! * when the stream dies (`kill -9` included) the socket closes with it and
//!   the server gets no more acknowledgements: synchronous commits wait.
//!   There is no child process to orphan.
//!
//! **Group commit.** One thread receives, another stores. While a range is
//! being written, WAL keeps arriving; the next write takes all of it, so a
//! slow store (object storage: tens of milliseconds) makes ranges larger,
//! not commits slower one by one. Without `--synchronous` ranges are stored
//! every `upload_interval` instead (fewer objects; RPO of seconds).
//!
//! **Spool.** What is received is also written to a local spool
//! (`<segment>.spool`, the segment from offset 0, not synced). It is never
//! what is acknowledged; it holds what was received and not yet stored when
//! the stream stops without storing it (`kill -9`, storage down), and
//! [`save_spool`] (`wal-stream --upload-only`, and every start) stores it
//! without needing the server.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use reprise_engine::{CancelToken, Repository};

use crate::conn;
use crate::error::{PgError, Result};
use crate::replication::{ReplicationConnection, StatusSender, WalMessage};
use crate::wal::{self, ArchiveView};
use crate::walname::{self, Lsn, Segment, WalFile};

const SEGMENT: u64 = walname::DEFAULT_SEGMENT_SIZE;

/// Received WAL waiting to be stored beyond this makes the receiver stop
/// reading (the server then waits; memory stays bounded).
const MAX_PENDING: usize = 64 << 20;

/// How often the server hears from an idle stream (its `wal_sender_timeout`
/// is a minute by default).
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub component: String,
    pub connection: String,
    pub password_env: Option<String>,
    pub spool: PathBuf,
    /// Store every received byte at once (group commit) rather than every
    /// `upload_interval`.
    pub synchronous: bool,
    /// Without `synchronous`: how often received WAL is stored.
    pub upload_interval: Duration,
    /// Stop after this long (tests, demos); `None` runs until cancelled.
    pub duration: Option<Duration>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamReport {
    pub slot: String,
    /// Completed segments stored whole.
    pub segments_archived: u64,
    /// Byte ranges stored (one per group of commits in synchronous mode).
    pub ranges_stored: u64,
    pub bytes_received: u64,
    /// Where the WAL stored in the repository ends, as last reported to the server.
    pub stored_lsn: Option<Lsn>,
    pub reconnects: u64,
    /// What the spool held that the repository lacked, stored at start.
    pub spool_saved: SpoolReport,
    pub warnings: Vec<String>,
}

/// The replication slot a component streams from.
#[must_use]
pub fn slot_name(component: &str) -> String {
    let clean: String = component.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    format!("reprise_{clean}")
}

/// The application name the stream connects with (for
/// `synchronous_standby_names`).
#[must_use]
pub fn application_name(component: &str) -> String {
    slot_name(component)
}

fn segment_start(lsn: Lsn) -> Lsn {
    Lsn(lsn.0 - lsn.0 % SEGMENT)
}

/// Streams until cancelled (or `duration`), reconnecting when the
/// connection drops. A storage error ends it: nothing more can be
/// acknowledged.
pub fn stream(repo: &Arc<Repository>, opts: &StreamOptions, cancel: &CancelToken) -> Result<StreamReport> {
    std::fs::create_dir_all(&opts.spool).map_err(|e| PgError::io(&opts.spool, e))?;
    let mut report = StreamReport { slot: slot_name(&opts.component), ..StreamReport::default() };
    // What an earlier run received and could not store goes first.
    report.spool_saved = save_spool(repo, &opts.component, &opts.spool)?;
    let started = Instant::now();
    let mut failures = 0u32;
    loop {
        let out = session(repo, opts, cancel, started, &mut report);
        match out {
            Ok(Ended::Stopped) => return Ok(report),
            Ok(Ended::TimelineEnded) => {}
            // A storage failure: stop, the server must not hear more.
            Err(e @ PgError::Engine(_)) => return Err(e),
            Err(e) if report.reconnects == 0 && report.bytes_received == 0 && failures == 0 => return Err(e),
            Err(e) => {
                failures += 1;
                let pause = Duration::from_secs(u64::from(failures.min(10)));
                tracing::warn!("{}: {e}; reconnecting in {}s", opts.component, pause.as_secs());
                let until = Instant::now() + pause;
                while Instant::now() < until {
                    if cancel.is_cancelled() || opts.duration.is_some_and(|d| started.elapsed() >= d) {
                        return Ok(report);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
        report.reconnects += 1;
    }
}

enum Ended {
    Stopped,
    TimelineEnded,
}

/// Where one connection starts: the timeline, the first byte asked for (a
/// segment start, so that the segment can be stored whole later), and what
/// the repository already holds.
fn start_point(view: &ArchiveView, timeline: u32, server_flushed: Lsn, slot: Option<(Lsn, u32)>) -> (u32, Lsn, Option<Lsn>) {
    if let Some(end) = view.stored_end(timeline) {
        return (timeline, segment_start(end), Some(end));
    }
    match slot {
        Some((restart, tli)) => {
            let stored = view.stored_end(tli).filter(|e| *e >= segment_start(restart));
            (tli, segment_start(stored.unwrap_or(restart)), stored)
        }
        None => (timeline, segment_start(server_flushed), None),
    }
}

fn session(repo: &Arc<Repository>, opts: &StreamOptions, cancel: &CancelToken, started: Instant, report: &mut StreamReport) -> Result<Ended> {
    let cfg = conn::config(&opts.connection, opts.password_env.as_deref())?;
    let slot = slot_name(&opts.component);
    let mut c = ReplicationConnection::connect(&cfg, &application_name(&opts.component))?;
    let id = c.identify_system()?;
    let segment_size = c.show("wal_segment_size")?;
    if segment_size != "16MB" {
        return Err(PgError::Invalid(format!("the server's WAL segments are {segment_size}; reprise stores 16MB segments only")));
    }
    if opts.synchronous {
        let names = c.show("synchronous_standby_names")?;
        let app = application_name(&opts.component);
        if !names.split(|ch: char| !ch.is_ascii_alphanumeric() && ch != '_' && ch != '*').any(|n| n == "*" || n.eq_ignore_ascii_case(&app)) {
            let w = format!("the server does not wait for this stream (synchronous_standby_names = '{names}'): commits are acknowledged before their WAL is stored; set synchronous_standby_names = '{app}' and reload");
            tracing::warn!("{w}");
            if !report.warnings.contains(&w) {
                report.warnings.push(w);
            }
        }
    }
    if id.timeline > 1 {
        let (name, content) = c.timeline_history(id.timeline)?;
        if walname::classify(&name).is_some() {
            wal::store(repo, &opts.component, &name, &content, jiff::Timestamp::now(), id.system_identifier)?;
        }
    }
    if c.create_slot(&slot)? {
        tracing::info!("created replication slot {slot}");
    }
    let slot_pos = c.slot_position(&slot)?;
    // Only ranges this server's trusted writers stored say what the
    // repository holds: a planted range name must not be acknowledged.
    wal::expect_system_identifier(id.system_identifier);
    let mut view = ArchiveView::load(repo, &opts.component)?;
    view.keep_trusted_tail(repo, &opts.component, id.timeline)?;
    if let Some((_, tli)) = slot_pos
        && tli != id.timeline
    {
        view.keep_trusted_tail(repo, &opts.component, tli)?;
    }
    let (timeline, start, stored) = start_point(&view, id.timeline, id.flushed, slot_pos);
    if stored.is_some_and(|s| timeline == id.timeline && s > id.flushed) {
        return Err(PgError::Invalid(format!(
            "the repository holds WAL of '{}' up to {} on timeline {timeline}, past this server's {}: it is not the server this component streamed from (a restored copy must be promoted onto a new timeline first)",
            opts.component,
            stored.unwrap_or_default(),
            id.flushed
        )));
    }
    let stored_in_segment = stored.map_or(0, |s| if segment_start(s) == start { (s.0 - start.0) as u32 } else { 0 });
    tracing::info!("{}: streaming from {start} on timeline {timeline} (the repository holds up to {})", opts.component, stored.unwrap_or(start));
    let mut wal = match c.start(&slot, start, timeline) {
        Ok(w) => w,
        Err(PgError::Server { code, message }) if code == "58P01" => {
            return Err(PgError::Invalid(format!(
                "{message}: the server no longer has the WAL after {} that the repository lacks (a gap: take a new base backup), and its slot {slot} does not reach back that far; drop the slot to start over from the server's current position",
                stored.unwrap_or(start)
            )));
        }
        Err(e) => return Err(e),
    };
    let status = wal.status();
    let durable = Arc::new(AtomicU64::new(stored.unwrap_or(start).0));
    status.report(Lsn(durable.load(Ordering::SeqCst)), false)?;
    let shared = Shared { state: Mutex::new(Pending::default()), cond: Condvar::new() };
    let mut writer = Writer {
        repo: Arc::clone(repo),
        component: opts.component.clone(),
        spool: opts.spool.clone(),
        system_identifier: id.system_identifier,
        segment: OpenSegment::new(Segment { timeline, number: start.0 / SEGMENT }, stored_in_segment, &opts.spool)?,
        durable: Arc::clone(&durable),
        status: Arc::clone(&status),
        synchronous: opts.synchronous,
        interval: opts.upload_interval,
        ranges: 0,
        segments: 0,
    };
    let (ended, writer_result) = std::thread::scope(|sc| {
        let w = sc.spawn(|| writer.run(&shared));
        let ended = receive(&mut wal, &shared, &status, &durable, start, opts, cancel, started, report);
        {
            let mut st = shared.state.lock();
            st.closed = true;
            shared.cond.notify_all();
        }
        let result = w.join().expect("writer thread panicked");
        (ended, result)
    });
    report.ranges_stored += writer.ranges;
    report.segments_archived += writer.segments;
    report.stored_lsn = Some(Lsn(durable.load(Ordering::SeqCst)));
    // A storage error explains a closed connection better than the connection does.
    writer_result?;
    // Everything received is stored: the server may as well know.
    let _ = status.report(Lsn(durable.load(Ordering::SeqCst)), false);
    ended
}

#[derive(Default)]
struct Pending {
    chunks: Vec<(Lsn, Bytes)>,
    bytes: usize,
    closed: bool,
    /// Set by the writer when it fails; the receiver stops.
    failed: bool,
}

struct Shared {
    state: Mutex<Pending>,
    cond: Condvar,
}

#[allow(clippy::too_many_arguments, reason = "one connection's receiving loop and everything it reports to")]
fn receive(
    wal: &mut crate::replication::WalStream,
    shared: &Shared,
    status: &StatusSender,
    durable: &AtomicU64,
    start: Lsn,
    opts: &StreamOptions,
    cancel: &CancelToken,
    started: Instant,
    report: &mut StreamReport,
) -> Result<Ended> {
    let mut expected = start;
    let mut last_status = Instant::now();
    loop {
        if cancel.is_cancelled() || opts.duration.is_some_and(|d| started.elapsed() >= d) {
            return Ok(Ended::Stopped);
        }
        if shared.state.lock().failed {
            return Ok(Ended::Stopped);
        }
        let msg = match wal.recv(Duration::from_millis(100)) {
            Ok(m) => m,
            // The writer closed the socket after a failure: its error is the one to report.
            Err(_) if shared.state.lock().failed => return Ok(Ended::Stopped),
            Err(e) => return Err(e),
        };
        match msg {
            Some(WalMessage::Data { start, data }) => {
                if start != expected {
                    return Err(PgError::Stream(format!("the server sent WAL from {start}, expected {expected}")));
                }
                expected = Lsn(start.0 + data.len() as u64);
                report.bytes_received += data.len() as u64;
                let mut st = shared.state.lock();
                while st.bytes >= MAX_PENDING && !st.failed {
                    shared.cond.wait_for(&mut st, Duration::from_millis(100));
                }
                st.bytes += data.len();
                st.chunks.push((start, data));
                shared.cond.notify_all();
            }
            Some(WalMessage::Keepalive { reply_requested: true, .. }) => {
                status.report(Lsn(durable.load(Ordering::SeqCst)), false)?;
                last_status = Instant::now();
            }
            Some(WalMessage::EndOfTimeline) => return Ok(Ended::TimelineEnded),
            Some(WalMessage::Keepalive { .. }) | None => {}
        }
        if last_status.elapsed() >= STATUS_INTERVAL {
            status.report(Lsn(durable.load(Ordering::SeqCst)), false)?;
            last_status = Instant::now();
        }
    }
}

/// The segment being received: its bytes from offset 0 (kept for storing
/// it whole once complete), how far the repository holds it, its spool file.
struct OpenSegment {
    segment: Segment,
    data: Vec<u8>,
    stored: u32,
    spool: std::fs::File,
}

impl OpenSegment {
    fn new(segment: Segment, stored: u32, spool_dir: &Path) -> Result<OpenSegment> {
        let path = spool_path(spool_dir, segment);
        // Rewritten from offset 0 by this run (an earlier run's bytes were
        // stored by save_spool before it connected).
        let spool = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path).map_err(|e| PgError::io(&path, e))?;
        Ok(OpenSegment { segment, data: Vec::with_capacity(SEGMENT as usize), stored, spool })
    }

    fn name(&self) -> String {
        self.segment.name(SEGMENT)
    }

    fn end(&self) -> Lsn {
        Lsn(self.segment.start_lsn(SEGMENT).0 + self.data.len() as u64)
    }
}

fn spool_path(dir: &Path, segment: Segment) -> PathBuf {
    dir.join(format!("{}.spool", segment.name(SEGMENT)))
}

struct Writer {
    repo: Arc<Repository>,
    component: String,
    spool: PathBuf,
    system_identifier: u64,
    segment: OpenSegment,
    durable: Arc<AtomicU64>,
    status: Arc<StatusSender>,
    synchronous: bool,
    interval: Duration,
    ranges: u64,
    segments: u64,
}

impl Writer {
    fn run(&mut self, shared: &Shared) -> Result<()> {
        let status = Arc::clone(&self.status);
        let fail = || {
            shared.state.lock().failed = true;
            shared.cond.notify_all();
            // No acknowledgement may follow a failed store: cut the connection.
            status.close();
        };
        // Completed segments are stored whole by a thread of their own, so
        // that the 16 MiB write does not hold up the next commits.
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Segment, Vec<u8>)>(2);
        let compactor = Compactor { repo: Arc::clone(&self.repo), component: self.component.clone(), spool: self.spool.clone(), system_identifier: self.system_identifier };
        let segments = AtomicU64::new(0);
        let r = std::thread::scope(|sc| {
            let done = sc.spawn(|| {
                for (segment, data) in rx {
                    match compactor.store(segment, &data) {
                        Ok(()) => {
                            segments.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            fail();
                            return Err(e);
                        }
                    }
                }
                Ok(())
            });
            let r = self.run_inner(shared, &tx);
            drop(tx);
            let c = done.join().expect("compactor thread panicked");
            r.and(c)
        });
        self.segments += segments.load(Ordering::Relaxed);
        if r.is_err() {
            fail();
        }
        r
    }

    fn run_inner(&mut self, shared: &Shared, completed: &std::sync::mpsc::SyncSender<(Segment, Vec<u8>)>) -> Result<()> {
        let mut last_store = Instant::now();
        loop {
            let (chunks, closed) = {
                let mut st = shared.state.lock();
                loop {
                    let unstored = self.segment.data.len() as u32 > self.segment.stored;
                    if st.closed || st.failed || !st.chunks.is_empty() || (unstored && last_store.elapsed() >= self.interval) {
                        break;
                    }
                    if self.synchronous || !unstored {
                        shared.cond.wait(&mut st);
                    } else {
                        shared.cond.wait_for(&mut st, self.interval.saturating_sub(last_store.elapsed()));
                    }
                }
                if st.failed {
                    return Ok(());
                }
                let chunks = std::mem::take(&mut st.chunks);
                st.bytes = 0;
                shared.cond.notify_all();
                (chunks, st.closed)
            };
            for (start, data) in chunks {
                self.append(start, &data, completed)?;
            }
            if self.synchronous || closed || last_store.elapsed() >= self.interval {
                self.store()?;
                last_store = Instant::now();
            }
            if closed {
                return Ok(());
            }
        }
    }

    /// Appends received bytes (in order) to the open segment and its spool
    /// file, storing and handing over segments as they complete.
    fn append(&mut self, start: Lsn, mut data: &[u8], completed: &std::sync::mpsc::SyncSender<(Segment, Vec<u8>)>) -> Result<()> {
        if start != self.segment.end() {
            return Err(PgError::Stream(format!("WAL from {start} does not follow {}", self.segment.end())));
        }
        while !data.is_empty() {
            let room = SEGMENT as usize - self.segment.data.len();
            let take = room.min(data.len());
            let offset = self.segment.data.len() as u64;
            self.segment.spool.write_all_at(&data[..take], offset).map_err(|e| PgError::io(spool_path(&self.spool, self.segment.segment), e))?;
            self.segment.data.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.segment.data.len() == SEGMENT as usize {
                // Its last range first: acknowledgements never wait for the whole segment.
                self.store()?;
                let next = Segment { timeline: self.segment.segment.timeline, number: self.segment.segment.number + 1 };
                let full = std::mem::replace(&mut self.segment, OpenSegment::new(next, 0, &self.spool)?);
                completed.send((full.segment, full.data)).map_err(|_| PgError::Stream("the segment store stopped".into()))?;
            }
        }
        Ok(())
    }

    /// Stores the bytes of the open segment the repository lacks as one
    /// range, then tells the server: the only place the reported position
    /// moves, and only after `Backend::create` returned.
    fn store(&mut self) -> Result<()> {
        let len = self.segment.data.len() as u32;
        if len > self.segment.stored {
            let from = self.segment.stored;
            let name = walname::piece_name(&self.segment.name(), from, len);
            wal::store(&self.repo, &self.component, &name, &self.segment.data[from as usize..], jiff::Timestamp::now(), self.system_identifier)?;
            self.ranges += 1;
            self.segment.stored = len;
            let to = self.segment.end();
            if to.0 > self.durable.load(Ordering::SeqCst) {
                self.durable.store(to.0, Ordering::SeqCst);
                self.status.report(to, false)?;
            }
        }
        Ok(())
    }
}

/// Stores completed segments whole.
struct Compactor {
    repo: Arc<Repository>,
    component: String,
    spool: PathBuf,
    system_identifier: u64,
}

impl Compactor {
    /// The segment under its own name (what `wal-push` would have
    /// archived); then its spool file goes.
    fn store(&self, segment: Segment, data: &[u8]) -> Result<()> {
        let name = segment.name(SEGMENT);
        match wal::store(&self.repo, &self.component, &name, data, jiff::Timestamp::now(), self.system_identifier) {
            Ok(_) => {}
            // archive_command archived it too, with other bytes after the
            // last record (a recycled file): the ranges keep this stream's.
            Err(PgError::WalConflict { .. }) => tracing::warn!("{}: {name} is archived with different bytes; the streamed ranges are kept beside it", self.component),
            Err(e) => return Err(e),
        }
        let _ = std::fs::remove_file(spool_path(&self.spool, segment));
        Ok(())
    }
}

/// What [`save_spool`] found and stored.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SpoolReport {
    /// Byte ranges stored from spool files.
    pub ranges_stored: u64,
    pub bytes_stored: u64,
    /// Segments found complete and stored whole.
    pub segments_archived: u64,
    /// Spool files removed because the repository holds them whole.
    pub files_removed: u64,
}

/// What a spool file holds beyond the repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpoolAhead {
    pub file: PathBuf,
    pub segment: String,
    /// Bytes from the segment's start in the spool, and in the repository.
    pub spool_bytes: u64,
    pub stored_bytes: u64,
}

/// Spool files holding WAL the repository lacks (for `restore`'s warning
/// and `--upload-only`). Files of `pg_receivewal` (older versions of
/// wal-stream) count too: completed segments not archived, and `.partial`
/// segments.
pub fn spool_ahead(view: &ArchiveView, spool: &Path) -> Vec<SpoolAhead> {
    let Ok(dir) = std::fs::read_dir(spool) else { return Vec::new() };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(name) = e.file_name().to_str().map(str::to_owned) else { continue };
        let Ok(md) = e.metadata() else { continue };
        let (seg_name, legacy_whole) = if let Some(s) = name.strip_suffix(".spool") {
            (s.to_owned(), false)
        } else if let Some(s) = name.strip_suffix(".partial") {
            (s.to_owned(), false)
        } else if matches!(walname::classify(&name), Some(WalFile::Segment(_))) {
            (name.clone(), true)
        } else {
            continue;
        };
        let Some(seg) = Segment::parse(&seg_name, SEGMENT) else { continue };
        let archived = view.segments.get(&seg.timeline).is_some_and(|s| s.contains(&seg.number));
        if archived {
            continue;
        }
        let stored = u64::from(view.streamed_end(seg));
        let spool_bytes = if legacy_whole { SEGMENT } else { md.len() };
        // A pg_receivewal .partial file is zero-padded: any copy stored counts.
        let legacy_copy = name.ends_with(".partial") && view.stream_partials.contains_key(&seg_name);
        if spool_bytes > stored && !legacy_copy {
            out.push(SpoolAhead { file: e.path(), segment: seg_name, spool_bytes, stored_bytes: stored });
        }
    }
    out.sort_by(|a, b| a.segment.cmp(&b.segment));
    out
}

/// The system identifier in the first page of a spool file, if any.
fn spool_system_identifier(spool: &Path) -> Option<u64> {
    std::fs::read_dir(spool).ok()?.flatten().find_map(|e| {
        let name = e.file_name();
        Segment::parse(name.to_str()?.strip_suffix(".spool")?, SEGMENT)?;
        let mut page = vec![0u8; 64];
        std::fs::File::open(e.path()).ok()?.read_exact_at(&mut page, 0).ok()?;
        walname::long_page_header(&page).map(|h| h.system_identifier)
    })
}

/// Stores what a spool holds beyond the repository, without any server:
/// `wal-stream --upload-only`, and the first thing every stream does.
pub fn save_spool(repo: &Repository, component: &str, spool: &Path) -> Result<SpoolReport> {
    let mut report = SpoolReport::default();
    if !spool.exists() {
        return Ok(report);
    }
    let mut view = ArchiveView::load(repo, component)?;
    // The spool's own first page names its server: only that server's
    // trusted ranges count as stored (a planted range name would otherwise
    // make the spool's WAL look saved).
    if let Some(id) = spool_system_identifier(spool) {
        wal::expect_system_identifier(id);
    }
    for timeline in view.timelines() {
        view.keep_trusted_tail(repo, component, timeline)?;
    }
    if let Ok(dir) = std::fs::read_dir(spool) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(seg) = name.strip_suffix(".spool").and_then(|s| Segment::parse(s, SEGMENT)) else { continue };
            if view.segments.get(&seg.timeline).is_some_and(|s| s.contains(&seg.number)) {
                // Held whole already: the spool file has nothing more.
                let _ = std::fs::remove_file(e.path());
                report.files_removed += 1;
            } else if u64::from(view.streamed_end(seg)) == SEGMENT && e.metadata().is_ok_and(|m| m.len() == SEGMENT) {
                // Stored as ranges, but the stream stopped before it stored
                // the segment whole: do it from the spool.
                let data = std::fs::read(e.path()).map_err(|err| PgError::io(e.path(), err))?;
                let system_identifier = walname::long_page_header(&data).map_or(0, |h| h.system_identifier);
                match wal::store(repo, component, &seg.name(SEGMENT), &data, jiff::Timestamp::now(), system_identifier) {
                    Ok(_) => report.segments_archived += 1,
                    Err(PgError::WalConflict { .. }) => {}
                    Err(err) => return Err(err),
                }
                let _ = std::fs::remove_file(e.path());
                report.files_removed += 1;
            }
        }
    }
    for ahead in spool_ahead(&view, spool) {
        let data = std::fs::read(&ahead.file).map_err(|e| PgError::io(&ahead.file, e))?;
        let file_name = ahead.file.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        let modified = std::fs::metadata(&ahead.file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| jiff::Timestamp::try_from(t).ok())
            .unwrap_or_else(jiff::Timestamp::now);
        if file_name.ends_with(".partial") {
            // pg_receivewal's zero-padded file: its end is unknown, so it
            // goes whole, as the copy older versions stored.
            let millis = modified.as_millisecond().max(0);
            wal::store(repo, component, &format!("{}.partial.{millis}", ahead.segment), &data, modified, 0)?;
            report.ranges_stored += 1;
            report.bytes_stored += data.len() as u64;
            let _ = std::fs::remove_file(&ahead.file);
            continue;
        }
        if walname::classify(&file_name) == Some(WalFile::Segment(file_name.clone())) {
            wal::push(repo, component, &ahead.file)?;
            report.segments_archived += 1;
            let _ = std::fs::remove_file(&ahead.file);
            continue;
        }
        let system_identifier = walname::long_page_header(&data).map_or(0, |h| h.system_identifier);
        let from = ahead.stored_bytes as u32;
        let to = (data.len() as u64).min(SEGMENT) as u32;
        wal::store(repo, component, &walname::piece_name(&ahead.segment, from, to), &data[from as usize..to as usize], modified, system_identifier)?;
        report.ranges_stored += 1;
        report.bytes_stored += u64::from(to - from);
        if u64::from(to) == SEGMENT {
            match wal::store(repo, component, &ahead.segment, &data[..SEGMENT as usize], modified, system_identifier) {
                Ok(_) => report.segments_archived += 1,
                Err(PgError::WalConflict { .. }) => {}
                Err(e) => return Err(e),
            }
            let _ = std::fs::remove_file(&ahead.file);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(n: u64) -> String {
        Segment { timeline: 1, number: n }.name(SEGMENT)
    }

    #[test]
    fn a_stream_resumes_at_the_start_of_the_segment_the_repository_holds_in_part() {
        let mut view = ArchiveView::default();
        view.segments.entry(1).or_default().extend([1, 2, 3]);
        // Resumes after the last whole segment.
        assert_eq!(start_point(&view, 1, Lsn(5 * SEGMENT), None), (1, Lsn(4 * SEGMENT), Some(Lsn(4 * SEGMENT))));
        view.streamed.insert(seg(4), vec![(0, 100), (100, 5000)]);
        // Ranges of segment 4 reach 5000: the segment is asked for from its
        // start again (to be stored whole later), and 5000 is what is held.
        assert_eq!(start_point(&view, 1, Lsn(5 * SEGMENT), None), (1, Lsn(4 * SEGMENT), Some(Lsn(4 * SEGMENT + 5000))));
        // Nothing in the repository: from the slot's position.
        let empty = ArchiveView::default();
        assert_eq!(start_point(&empty, 1, Lsn(9 * SEGMENT + 7), Some((Lsn(7 * SEGMENT + 12), 1))), (1, Lsn(7 * SEGMENT), None));
        assert_eq!(start_point(&empty, 1, Lsn(9 * SEGMENT + 7), None), (1, Lsn(9 * SEGMENT), None));
    }

    #[test]
    fn pieces_with_a_hole_count_only_up_to_the_hole() {
        assert_eq!(wal::contiguous_end(&[(0, 10), (20, 30)]), 10);
        assert_eq!(wal::contiguous_end(&[(10, 20)]), 0, "a segment must be held from its first byte");
        assert_eq!(wal::contiguous_end(&[(0, 10), (5, 30), (10, 20)]), 30, "overlaps (a range stored twice) extend");
        assert_eq!(wal::covering_pieces(&[(0, 10), (5, 30), (10, 20)]), vec![(0, 10), (5, 30)]);
    }
}
