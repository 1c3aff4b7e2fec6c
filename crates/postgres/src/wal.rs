//! The WAL archive of a component: push, fetch, and what is in it.
//!
//! `wal-push` is `archive_command`: it returns success only once the file is
//! durable in the repository (the backend's `create` fsyncs), succeeds again
//! for an identical file (PostgreSQL retries after crashes), and refuses a
//! different file under an existing name. `wal-fetch` is `restore_command`:
//! it answers from a local spool when it can and otherwise fetches the
//! requested segment together with the next few, in parallel, so replay does
//! not wait on storage segment by segment.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reprise_engine::Repository;
use reprise_engine::backends::{ErrorKind, ObjectKind};
use reprise_engine::format::wal::{self as walfmt, WalHeader};

use crate::error::{PgError, Result};
use crate::walname::{self, Lsn, Segment, WalFile};

/// zstd level for WAL: level 1 keeps `wal-push` ahead of a busy server.
const WAL_ZSTD_LEVEL: i32 = 1;

fn object_name(component: &str, file: &str) -> String {
    format!("{component}/{file}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PushOutcome {
    Archived,
    /// The same file was already archived (PostgreSQL retried).
    AlreadyArchived,
}

/// Archives one WAL file (`archive_command = 'reprise wal-push COMPONENT %p'`).
pub fn push(repo: &Repository, component: &str, path: &Path) -> Result<PushOutcome> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| PgError::BadWalName(path.display().to_string()))?;
    if walname::classify(name).is_none() {
        return Err(PgError::BadWalName(name.to_owned()));
    }
    let data = std::fs::read(path).map_err(|e| PgError::io(path, e))?;
    let modified = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    let system_identifier = walname::long_page_header(&data).map_or(0, |h| h.system_identifier);
    store(repo, component, name, &data, modified, system_identifier)
}

/// Seals `data` as the WAL object `name` of `component` and creates it.
/// Every WAL object reprise writes goes through here (archived files,
/// streamed byte ranges, segments the stream completes, history files), so
/// they all share one encoding (docs/FORMAT.md §10).
///
/// The same name with the same keyed hash is success (a retry, or a second
/// writer with the same bytes); another hash is a loud refusal.
pub fn store(repo: &Repository, component: &str, name: &str, data: &[u8], modified: jiff::Timestamp, system_identifier: u64) -> Result<PushOutcome> {
    let secrets = &repo.secrets().write;
    let hash = secrets.id_key.blob_id(data);
    let header = WalHeader {
        version: 1,
        name: name.to_owned(),
        size: data.len() as u64,
        hash,
        modified,
        pushed: jiff::Timestamp::now(),
        host: reprise_engine::repository::hostname(),
        system_identifier,
    };
    let sealed = walfmt::seal(&header, data, WAL_ZSTD_LEVEL, &secrets.catalog_key, &secrets.recovery_public);
    let object = object_name(component, name);
    match repo.backend().create(ObjectKind::Wal, &object, &sealed) {
        Ok(()) => Ok(PushOutcome::Archived),
        Err(e) if e.kind == ErrorKind::AlreadyExists => {
            let existing = repo.backend().read(ObjectKind::Wal, &object).map_err(reprise_engine::Error::from)?;
            let old = walfmt::open_header(&existing, &secrets.catalog_key)
                .map_err(|e| reprise_engine::Error::Damaged { object: ObjectKind::Wal.path(&object), source: e })?;
            if old.hash == hash && old.size == header.size {
                Ok(PushOutcome::AlreadyArchived)
            } else {
                Err(PgError::WalConflict { name: name.to_owned() })
            }
        }
        Err(e) => Err(reprise_engine::Error::from(e).into()),
    }
}

/// Reads one archived file, or — for a segment that was still being
/// streamed — the segment as far as the stream stored it (recovery reads it
/// up to the last record and ends there).
///
/// A streamed segment is assembled from its byte ranges
/// (`<segment>.stream.<FROM>-<TO>`): the bytes from offset 0 for as long as
/// the ranges are contiguous, zeros after (PostgreSQL wants a whole segment
/// and reads zeros as the end of the WAL). Segments streamed by older
/// versions are whole copies (`<segment>.partial.<millis>`): the newest.
pub fn read_or_partial(repo: &Repository, component: &str, file: &str) -> Result<Option<(WalHeader, Vec<u8>)>> {
    if let Some(found) = read(repo, component, file)? {
        return Ok(Some(found));
    }
    if !matches!(walname::classify(file), Some(WalFile::Segment(_))) {
        return Ok(None);
    }
    let prefix = format!("{component}/{file}.");
    let mut pieces = Vec::new();
    let mut newest_copy = None;
    for o in repo.backend().list(ObjectKind::Wal).map_err(reprise_engine::Error::from)? {
        let Some(rest) = o.name.strip_prefix(&prefix) else { continue };
        match walname::classify(&format!("{file}.{rest}")) {
            Some(WalFile::StreamPiece { from, to, .. }) => pieces.push((from, to)),
            Some(WalFile::StreamPartial { millis, .. }) => newest_copy = newest_copy.max(Some(millis)),
            _ => {}
        }
    }
    if let Some(assembled) = assemble_streamed(repo, component, file, &pieces)? {
        return Ok(Some(assembled));
    }
    match newest_copy {
        Some(m) => read(repo, component, &format!("{file}.partial.{m}")),
        None => Ok(None),
    }
}

/// The byte ranges that extend the contiguous prefix from offset 0, in
/// order: the ones a restore reads (a range inside another adds nothing).
#[must_use]
pub fn covering_pieces(pieces: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut sorted = pieces.to_vec();
    sorted.sort_unstable();
    let mut covered = 0;
    let mut out = Vec::new();
    for (from, to) in sorted {
        if from > covered {
            break;
        }
        if to > covered {
            out.push((from, to));
            covered = to;
        }
    }
    out
}

/// How far from offset 0 the stored ranges of one segment reach without a hole.
#[must_use]
pub fn contiguous_end(pieces: &[(u32, u32)]) -> u32 {
    covering_pieces(pieces).last().map_or(0, |p| p.1)
}

/// One stored range as read: its place among the chosen ranges, header, bytes.
type PieceRead = (usize, WalHeader, Vec<u8>);

/// Pieces read at once while assembling a streamed segment.
const ASSEMBLY_THREADS: usize = 8;

/// Assembles a streamed segment from its stored ranges; `None` if they do
/// not start at offset 0. Overlapping ranges must agree byte for byte
/// (they are the same WAL received twice); a disagreement is damage.
fn assemble_streamed(repo: &Repository, component: &str, segment: &str, pieces: &[(u32, u32)]) -> Result<Option<(WalHeader, Vec<u8>)>> {
    let chosen = covering_pieces(pieces);
    let Some(&(_, end)) = chosen.last() else { return Ok(None) };
    let size = walname::DEFAULT_SEGMENT_SIZE as usize;
    if end as usize > size {
        return Err(PgError::Invalid(format!("{segment}: a stored range ends at {end}, past the 16 MiB segment")));
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<PieceRead>>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..ASSEMBLY_THREADS.min(chosen.len()))
            .map(|_| {
                sc.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(from, to)) = chosen.get(i) else { return Ok(got) };
                        let name = walname::piece_name(segment, from, to);
                        match read(repo, component, &name)? {
                            Some((h, data)) if data.len() == (to - from) as usize => got.push((i, h, data)),
                            Some(_) => {
                                return Err(reprise_engine::Error::Damaged {
                                    object: ObjectKind::Wal.path(&object_name(component, &name)),
                                    source: reprise_engine::format::FormatError::Malformed("its length differs from the range its name gives".into()),
                                }
                                .into());
                            }
                            // Removed since the listing (forget): not there.
                            None => return Err(PgError::Invalid(format!("{name} disappeared while the segment was assembled: try again"))),
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("assembly thread panicked")).collect()
    });
    let mut parts = Vec::with_capacity(chosen.len());
    for r in results {
        parts.extend(r?);
    }
    parts.sort_by_key(|p| p.0);
    let mut out = vec![0u8; size];
    let mut covered = 0usize;
    let mut newest: Option<WalHeader> = None;
    for (i, h, data) in parts {
        let from = chosen[i].0 as usize;
        let overlap = covered - from;
        if out[from..covered] != data[..overlap] {
            return Err(reprise_engine::Error::Damaged {
                object: ObjectKind::Wal.path(&object_name(component, &walname::piece_name(segment, chosen[i].0, chosen[i].1))),
                source: reprise_engine::format::FormatError::Malformed("it disagrees with an overlapping range of the same segment".into()),
            }
            .into());
        }
        out[covered..from + data.len()].copy_from_slice(&data[overlap..]);
        covered = from + data.len();
        if newest.as_ref().is_none_or(|n| h.modified > n.modified) {
            newest = Some(h);
        }
    }
    let mut header = newest.expect("at least one range");
    segment.clone_into(&mut header.name);
    header.size = size as u64;
    Ok(Some((header, out)))
}

/// Reads and decrypts one archived file; `None` if it is not archived.
pub fn read(repo: &Repository, component: &str, file: &str) -> Result<Option<(WalHeader, Vec<u8>)>> {
    let object = object_name(component, file);
    let bytes = match repo.backend().read(ObjectKind::Wal, &object) {
        Ok(b) => b,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(reprise_engine::Error::from(e).into()),
    };
    let recovery = repo.recovery("reading archived WAL")?;
    let s = &repo.secrets().write;
    let (h, data) = walfmt::open(&bytes, &s.catalog_key, &s.id_key, recovery)
        .map_err(|e| reprise_engine::Error::Damaged { object: ObjectKind::Wal.path(&object), source: e })?;
    Ok(Some((h, data)))
}

/// Reads only the header of an archived file (write secrets suffice).
pub fn header(repo: &Repository, component: &str, file: &str) -> Result<Option<WalHeader>> {
    let object = object_name(component, file);
    let bytes = match repo.backend().read(ObjectKind::Wal, &object) {
        Ok(b) => b,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(reprise_engine::Error::from(e).into()),
    };
    walfmt::open_header(&bytes, &repo.secrets().write.catalog_key)
        .map(Some)
        .map_err(|e| reprise_engine::Error::Damaged { object: ObjectKind::Wal.path(&object), source: e }.into())
}

/// When the newest stored WAL of segment `s` was written on the server: the
/// archived segment's time, else that of its last streamed range.
pub fn written(repo: &Repository, component: &str, view: &ArchiveView, s: Segment) -> Result<Option<jiff::Timestamp>> {
    let name = s.name(walname::DEFAULT_SEGMENT_SIZE);
    if view.segments.get(&s.timeline).is_some_and(|set| set.contains(&s.number)) {
        return Ok(header(repo, component, &name)?.map(|h| h.modified));
    }
    match view.streamed.get(&name).and_then(|p| covering_pieces(p).last().copied()) {
        Some((from, to)) => Ok(header(repo, component, &walname::piece_name(&name, from, to))?.map(|h| h.modified)),
        None => Ok(None),
    }
}

fn write_atomically(dest: &Path, data: &[u8]) -> Result<()> {
    let tmp = dest.with_extension("reprise-tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| PgError::io(&tmp, e))?;
    f.write_all(data).map_err(|e| PgError::io(&tmp, e))?;
    f.sync_all().map_err(|e| PgError::io(&tmp, e))?;
    std::fs::rename(&tmp, dest).map_err(|e| PgError::io(dest, e))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchOutcome {
    Restored,
    /// Not in the archive: for `restore_command`, the end of recovery.
    NotArchived,
}

/// How many segments one `wal-fetch` fetches ahead into the spool.
pub const PREFETCH: u64 = 8;

/// Moves `file` from the prefetch spool to `dest`, if an earlier
/// `wal-fetch` put it there. Needs no repository, key or network: a
/// spooled file was decrypted and checked against its keyed hash when it
/// was fetched, and lands there whole (written aside, then renamed), so
/// recovery goes on through the prefetched segments while storage is
/// unreachable. Callers look here before opening the repository.
pub fn take_from_spool(spool: &Path, file: &str, dest: &Path) -> Result<bool> {
    walname::classify(file).ok_or_else(|| PgError::BadWalName(file.to_owned()))?;
    let cached = spool.join(file);
    if !cached.exists() {
        return Ok(false);
    }
    std::fs::rename(&cached, dest).or_else(|_| std::fs::copy(&cached, dest).map(|_| ())).map_err(|e| PgError::io(dest, e))?;
    Ok(true)
}

/// `restore_command = 'reprise wal-fetch COMPONENT %f %p'`.
///
/// Looks in `spool` first ([`take_from_spool`]). On a miss, fetches `file`
/// and, for segments, the next [`PREFETCH`] - 1 segments of the same
/// timeline in parallel, keeping the extra ones in the spool for the
/// following calls.
pub fn fetch(repo: &Repository, component: &str, file: &str, dest: &Path, spool: Option<&Path>) -> Result<FetchOutcome> {
    let kind = walname::classify(file).ok_or_else(|| PgError::BadWalName(file.to_owned()))?;
    if let Some(spool) = spool {
        if take_from_spool(spool, file, dest)? {
            return Ok(FetchOutcome::Restored);
        }
    }
    let ahead: Vec<String> = match (&kind, spool) {
        (WalFile::Segment(_), Some(_)) => {
            let seg = Segment::parse(file, walname::DEFAULT_SEGMENT_SIZE).expect("classified as segment");
            let mut v = Vec::new();
            let mut s = seg;
            for _ in 1..PREFETCH {
                s = s.next();
                v.push(s.name(walname::DEFAULT_SEGMENT_SIZE));
            }
            v
        }
        _ => Vec::new(),
    };
    let results: Vec<(String, Result<Option<Vec<u8>>>)> = std::thread::scope(|sc| {
        let handles: Vec<_> = std::iter::once(file.to_owned())
            .chain(ahead)
            .map(|name| sc.spawn(move || { let r = read_or_partial(repo, component, &name).map(|o| o.map(|(_, d)| d)); (name, r) }))
            .collect();
        handles.into_iter().map(|h| h.join().expect("fetch thread panicked")).collect()
    });
    let mut outcome = FetchOutcome::NotArchived;
    for (name, r) in results {
        if name == file {
            match r? {
                Some(data) => {
                    write_atomically(dest, &data)?;
                    outcome = FetchOutcome::Restored;
                }
                None => return Ok(FetchOutcome::NotArchived),
            }
        } else if let (Ok(Some(data)), Some(spool)) = (r, spool) {
            std::fs::create_dir_all(spool).map_err(|e| PgError::io(spool, e))?;
            write_atomically(&spool.join(&name), &data)?;
        }
    }
    Ok(outcome)
}

/// What the archive of one component holds, by name.
#[derive(Debug, Default, Clone)]
pub struct ArchiveView {
    /// Segment numbers per timeline.
    pub segments: BTreeMap<u32, BTreeSet<u64>>,
    /// Timelines that have a history file.
    pub histories: BTreeSet<u32>,
    /// Partial segments (streaming, promotions).
    pub partials: BTreeSet<String>,
    /// Newest streamed copy of a segment still being written, by segment
    /// name (older versions of `wal-stream`).
    pub stream_partials: BTreeMap<String, u64>,
    /// Stored byte ranges of streamed segments, by segment name.
    pub streamed: BTreeMap<String, Vec<(u32, u32)>>,
    pub total_bytes: u64,
    pub files: usize,
}

impl ArchiveView {
    pub fn load(repo: &Repository, component: &str) -> Result<ArchiveView> {
        let prefix = format!("{component}/");
        let mut view = ArchiveView::default();
        for obj in repo.backend().list(ObjectKind::Wal).map_err(reprise_engine::Error::from)? {
            let Some(file) = obj.name.strip_prefix(&prefix) else { continue };
            view.files += 1;
            view.total_bytes += obj.size;
            match walname::classify(file) {
                Some(WalFile::Segment(_)) => {
                    let s = Segment::parse(file, walname::DEFAULT_SEGMENT_SIZE).expect("classified");
                    view.segments.entry(s.timeline).or_default().insert(s.number);
                }
                Some(WalFile::History(t)) => {
                    view.histories.insert(t);
                }
                Some(WalFile::Partial) => {
                    view.partials.insert(file.to_owned());
                }
                Some(WalFile::StreamPartial { segment, millis }) => {
                    let e = view.stream_partials.entry(segment).or_insert(0);
                    *e = (*e).max(millis);
                }
                Some(WalFile::StreamPiece { segment, from, to }) => view.streamed.entry(segment).or_default().push((from, to)),
                _ => {}
            }
        }
        Ok(view)
    }

    /// Whether recovery can read segment `s`: archived whole, or streamed
    /// from its first byte on.
    #[must_use]
    pub fn contains(&self, s: Segment) -> bool {
        self.segments.get(&s.timeline).is_some_and(|set| set.contains(&s.number)) || self.streamed_end(s) > 0
    }

    /// How far from its start segment `s` is stored as streamed ranges.
    #[must_use]
    pub fn streamed_end(&self, s: Segment) -> u32 {
        self.streamed.get(&s.name(walname::DEFAULT_SEGMENT_SIZE)).map_or(0, |p| contiguous_end(p))
    }

    /// The newest segment on the highest timeline, streamed ones included.
    #[must_use]
    pub fn newest(&self) -> Option<Segment> {
        let timeline = self.timelines().into_iter().next_back()?;
        self.newest_on(timeline)
    }

    /// Every timeline with a segment, archived or streamed.
    #[must_use]
    pub fn timelines(&self) -> BTreeSet<u32> {
        let mut t: BTreeSet<u32> = self.segments.keys().copied().collect();
        t.extend(self.streamed_segments().map(|s| s.timeline));
        t
    }

    /// The newest segment recovery can read on `timeline`.
    #[must_use]
    pub fn newest_on(&self, timeline: u32) -> Option<Segment> {
        let archived = self.segments.get(&timeline).and_then(|set| set.iter().next_back().copied());
        let streamed = self.streamed_segments().filter(|s| s.timeline == timeline && self.streamed_end(*s) > 0).map(|s| s.number).max();
        archived.max(streamed).map(|number| Segment { timeline, number })
    }

    fn streamed_segments(&self) -> impl Iterator<Item = Segment> + '_ {
        self.streamed.keys().filter_map(|n| Segment::parse(n, walname::DEFAULT_SEGMENT_SIZE))
    }

    /// Where the WAL stored for `timeline` ends: the end of the newest
    /// archived segment, or how far the newest streamed segment reaches,
    /// whichever is later. Everything before it that recovery needs is in
    /// the repository when the chain has no gap.
    #[must_use]
    pub fn stored_end(&self, timeline: u32) -> Option<Lsn> {
        let seg = walname::DEFAULT_SEGMENT_SIZE;
        let archived = self.segments.get(&timeline).and_then(|set| set.iter().next_back()).map(|n| Segment { timeline, number: *n }.next().start_lsn(seg).0);
        let streamed = self
            .streamed_segments()
            .filter(|s| s.timeline == timeline && self.streamed_end(*s) > 0)
            .map(|s| s.start_lsn(seg).0 + u64::from(self.streamed_end(s)))
            .max();
        archived.max(streamed).map(Lsn)
    }
}

/// The timeline path from `from` to `to`: `(timeline, first segment on it)`,
/// using history files. Segments before a switch come from the parent.
pub fn timeline_path(repo: &Repository, component: &str, from: Segment, to_timeline: u32) -> Result<Vec<(u32, Lsn0)>> {
    if to_timeline == from.timeline {
        return Ok(vec![(from.timeline, 0)]);
    }
    let Some((_, data)) = read(repo, component, &format!("{to_timeline:08X}.history"))? else {
        return Err(PgError::Recovery(format!("history file of timeline {to_timeline} is not archived")));
    };
    let entries = walname::parse_history(&String::from_utf8_lossy(&data));
    // Entries list ancestors oldest first: (parent, where it ended).
    let mut path = Vec::new();
    let mut start = 0u64;
    for e in &entries {
        if e.parent >= from.timeline {
            path.push((e.parent, start));
        }
        start = e.switch.0;
    }
    path.push((to_timeline, start));
    Ok(path)
}

/// An LSN as a plain number (history switch points).
pub type Lsn0 = u64;

/// Segments needed to replay from `start` (on its timeline) up to segment
/// `end_number` on timeline `end_timeline`, following timeline switches.
pub fn required_segments(repo: &Repository, component: &str, start: Segment, end_timeline: u32, end_number: u64) -> Result<Vec<Segment>> {
    let seg = walname::DEFAULT_SEGMENT_SIZE;
    let path = timeline_path(repo, component, start, end_timeline)?;
    let mut out = Vec::new();
    for (i, (tli, begins)) in path.iter().enumerate() {
        let first = if i == 0 { start.number } else { begins / seg };
        // Recovery reads the segment holding a switch point from the child
        // timeline (its copy has the parent's records up to the switch), so
        // a parent is needed up to the segment before.
        let last = match path.get(i + 1) {
            Some((_, switch)) => (switch / seg).checked_sub(1),
            None => Some(end_number),
        };
        if let Some(last) = last {
            for n in first..=last.min(end_number) {
                out.push(Segment { timeline: *tli, number: n });
            }
        }
    }
    Ok(out)
}

/// Checks that every segment from `start` to `end` is archived.
pub fn check_chain(view: &ArchiveView, component: &str, needed: &[Segment]) -> Result<()> {
    let seg = walname::DEFAULT_SEGMENT_SIZE;
    let missing: Vec<&Segment> = needed.iter().filter(|s| !view.contains(**s)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let first = missing[0];
    let last_good = needed.iter().take_while(|s| view.contains(**s)).last().map_or_else(|| "the base backup".to_owned(), |s| s.name(seg));
    Err(PgError::Gap {
        component: component.to_owned(),
        missing: missing.len(),
        first_missing: first.name(seg),
        more: if missing.len() > 1 { format!(" and {} more", missing.len() - 1) } else { String::new() },
        last_good,
    })
}

/// Waits until `file` is archived, polling, for at most `timeout`. A
/// segment whose streamed ranges cover it whole counts (a stream stopped
/// before it stored the segment under its own name).
pub fn wait_archived(repo: &Repository, component: &str, file: &str, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let object = object_name(component, file);
    let segment = Segment::parse(file, walname::DEFAULT_SEGMENT_SIZE);
    let mut last_listing = std::time::Instant::now();
    loop {
        match repo.backend().size(ObjectKind::Wal, &object) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(reprise_engine::Error::from(e).into()),
        }
        // Listing is dearer than a size request: every few seconds.
        if let Some(s) = segment
            && last_listing.elapsed() >= Duration::from_secs(2)
        {
            last_listing = std::time::Instant::now();
            if u64::from(ArchiveView::load(repo, component)?.streamed_end(s)) == walname::DEFAULT_SEGMENT_SIZE {
                return Ok(());
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(PgError::ArchiveTimeout { name: file.to_owned(), seconds: timeout.as_secs() });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The spool directory used by `wal-fetch` for a data directory.
#[must_use]
pub fn default_spool(data_dir: &Path) -> PathBuf {
    data_dir.join("pg_wal").join("reprise-spool")
}
