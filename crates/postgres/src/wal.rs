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

use std::sync::atomic::{AtomicU64, Ordering};

use reprise_engine::Repository;
use reprise_engine::backends::{ErrorKind, ObjectKind};
use reprise_engine::format::wal::WalHeader;
use reprise_engine::walobj;

use crate::error::{PgError, Result};
use crate::walname::{self, Lsn, Segment, WalFile};

fn object_name(component: &str, file: &str) -> String {
    format!("{component}/{file}")
}

/// The system identifier of the server whose WAL is being read (from the
/// base backup a restore starts from, or the data directory `wal-fetch`
/// runs in): when a WAL name holds a file of another server, the copy a
/// trusted writer stored beside it is taken instead (docs/FORMAT.md 10.1).
/// 0: unknown.
static SYSTEM_IDENTIFIER: AtomicU64 = AtomicU64::new(0);

/// Sets the server whose WAL this process reads (see [`SYSTEM_IDENTIFIER`]).
pub fn expect_system_identifier(id: u64) {
    SYSTEM_IDENTIFIER.store(id, Ordering::Relaxed);
}

fn expected_system_identifier() -> Option<u64> {
    Some(SYSTEM_IDENTIFIER.load(Ordering::Relaxed)).filter(|&i| i != 0)
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

/// Seals `data` as the WAL object `name` of `component`, signed by this
/// key in its own domain, and creates it. Every WAL object reprise writes
/// goes through here (archived files, streamed byte ranges, segments the
/// stream completes, history files), so they all share one encoding and
/// one answer to a name another writer took first (docs/FORMAT.md §10).
///
/// The same name with the same keyed hash is success (a retry); a name
/// another writer took is no obstacle (stored beside it, and reported); a
/// different file of this key's own domain under the name is a loud
/// refusal.
pub fn store(repo: &Repository, component: &str, name: &str, data: &[u8], modified: jiff::Timestamp, system_identifier: u64) -> Result<PushOutcome> {
    let hash = walobj::hash(repo, data)?;
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
    // A name another writer took first does not block the genuine file:
    // it is stored beside it (walobj::create) and the squatting reported.
    match walobj::create(repo, &object_name(component, name), &header, data)? {
        Ok(walobj::Created::Stored | walobj::Created::Beside { .. }) => Ok(PushOutcome::Archived),
        Ok(walobj::Created::AlreadyThere) => Ok(PushOutcome::AlreadyArchived),
        Err(walobj::Conflict) => Err(PgError::WalConflict { name: name.to_owned() }),
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
        // A range stored beside a name another writer took (FORMAT.md
        // 10.1) is the same range: [`trusted`] picks the copy.
        let rest = rest.split_once('@').map_or(rest, |(r, _)| r);
        match walname::classify(&format!("{file}.{rest}")) {
            Some(WalFile::StreamPiece { from, to, .. }) => pieces.push((from, to)),
            Some(WalFile::StreamPartial { millis, .. }) => newest_copy = newest_copy.max(Some(millis)),
            _ => {}
        }
    }
    pieces.sort_unstable();
    pieces.dedup();
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

/// One stored range as read: its place among the chosen ranges, header,
/// bytes (when asked for).
type PieceRead = (usize, WalHeader, Option<Vec<u8>>);

/// Ranges read, and ranges left out (no trusted copy from this server).
type PiecesRead = (Vec<PieceRead>, Vec<(u32, u32)>);

/// Pieces read at once while assembling a streamed segment.
const ASSEMBLY_THREADS: usize = 8;

/// Assembles a streamed segment from its stored ranges; `None` if they do
/// not start at offset 0. Only ranges a trusted writer stored, from the
/// server being recovered, count ([`trusted`]): a range name no trusted
/// copy answers for (another writer's, forged) is left out and the covering
/// ranges are chosen again without it. Overlapping trusted ranges must
/// agree byte for byte (the same WAL received twice); a disagreement is
/// damage.
fn assemble_streamed(repo: &Repository, component: &str, segment: &str, pieces: &[(u32, u32)]) -> Result<Option<(WalHeader, Vec<u8>)>> {
    let size = walname::DEFAULT_SEGMENT_SIZE as usize;
    // Only a writer this reader does not trust names a range past the end.
    let mut candidates: Vec<(u32, u32)> = pieces.iter().copied().filter(|p| p.1 as usize <= size).collect();
    let (chosen, parts) = loop {
        let chosen = covering_pieces(&candidates);
        if chosen.is_empty() {
            return Ok(None);
        }
        let (parts, ignored) = read_pieces(repo, component, segment, &chosen, true)?;
        if ignored.is_empty() {
            break (chosen, parts);
        }
        for p in &ignored {
            tracing::warn!("{}: no trusted copy from this server: ignored", ObjectKind::Wal.path(&object_name(component, &walname::piece_name(segment, p.0, p.1))));
        }
        candidates.retain(|p| !ignored.contains(p));
    };
    let mut out = vec![0u8; size];
    let mut covered = 0usize;
    let mut newest: Option<WalHeader> = None;
    for (i, h, data) in parts {
        let data = data.expect("content asked for");
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

/// Reads the chosen ranges of `segment` in parallel (with their content,
/// or headers only): those that verify, in order, and the ranges of which
/// no trusted copy exists.
fn read_pieces(repo: &Repository, component: &str, segment: &str, chosen: &[(u32, u32)], content: bool) -> Result<PiecesRead> {
    let ignored = parking_lot::Mutex::new(Vec::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<PieceRead>>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..ASSEMBLY_THREADS.min(chosen.len()))
            .map(|_| {
                sc.spawn(|| {
                    let mut got = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(from, to)) = chosen.get(i) else { return Ok(got) };
                        let name = walname::piece_name(segment, from, to);
                        match trusted(repo, component, &name, content)? {
                            Some((h, data)) if data.as_ref().is_none_or(|d| d.len() == (to - from) as usize) && h.size == u64::from(to - from) => got.push((i, h, data)),
                            // A trusted copy whose length is not the range its
                            // name gives was not stored by a stream: ignored.
                            Some(_) => ignored.lock().push((from, to)),
                            None => match repo.backend().size(ObjectKind::Wal, &object_name(component, &name)) {
                                // Removed since the listing (forget): not there.
                                Err(e) if e.kind == ErrorKind::NotFound => {
                                    return Err(PgError::Invalid(format!("{name} disappeared while the segment was assembled: try again")));
                                }
                                Err(e) => return Err(reprise_engine::Error::from(e).into()),
                                // There, but no trusted copy: not this server's WAL.
                                Ok(_) => ignored.lock().push((from, to)),
                            },
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
    Ok((parts, ignored.into_inner()))
}

/// A WAL object as [`read`] or [`header`] find it, but only when a trusted
/// writer stored it and, the server being recovered known, it comes from
/// that server: what a streamed range must be to count. [`walobj::read`]
/// prefers a fitting copy beside the name; its fallback (a copy of another
/// server) is refused here.
pub fn trusted(repo: &Repository, component: &str, file: &str, content: bool) -> Result<Option<(WalHeader, Option<Vec<u8>>)>> {
    if content {
        repo.recovery("reading archived WAL")?;
    }
    let expected = expected_system_identifier();
    Ok(walobj::read(repo, &object_name(component, file), content, expected)?
        .filter(|r| expected.is_none_or(|want| r.header.system_identifier == want))
        .map(|r| (r.header, r.data)))
}

/// Reads and decrypts one archived file (a trusted copy: see
/// `walobj::read`); `None` if it is not archived.
pub fn read(repo: &Repository, component: &str, file: &str) -> Result<Option<(WalHeader, Vec<u8>)>> {
    repo.recovery("reading archived WAL")?;
    let found = walobj::read(repo, &object_name(component, file), true, expected_system_identifier())?;
    Ok(found.map(|r| (r.header, r.data.expect("content asked for"))))
}

/// Reads only the header of an archived file (this key's domain's secrets
/// suffice).
pub fn header(repo: &Repository, component: &str, file: &str) -> Result<Option<WalHeader>> {
    Ok(walobj::read(repo, &object_name(component, file), false, expected_system_identifier())?.map(|r| r.header))
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
    // PostgreSQL runs restore_command in the data directory it recovers:
    // its control file names the server whose WAL is wanted.
    if expected_system_identifier().is_none()
        && let Ok(control) = std::fs::read("global/pg_control")
        && let Some(id) = control.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    {
        expect_system_identifier(id);
    }
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
            // A file stored beside a name another writer took (FORMAT.md 10.1).
            let file = file.split_once('@').map_or(file, |(f, _)| f);
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

    /// Leaves out the streamed ranges that decide where the stored WAL of
    /// `timeline` ends ([`ArchiveView::stored_end`]) unless a trusted writer
    /// stored them from the server being read ([`trusted`], headers only:
    /// a write-only key can do it). A range name anyone else planted must
    /// not make a stream believe, and report to the server as flushed, WAL
    /// the repository does not hold.
    pub fn keep_trusted_tail(&mut self, repo: &Repository, component: &str, timeline: u32) -> Result<()> {
        let archived = self.segments.get(&timeline).and_then(|set| set.iter().next_back().copied());
        loop {
            let Some(s) = self.streamed_segments().filter(|s| s.timeline == timeline && archived.is_none_or(|a| s.number > a)).max_by_key(|s| s.number) else {
                return Ok(());
            };
            let name = s.name(walname::DEFAULT_SEGMENT_SIZE);
            let pieces = self.streamed.get_mut(&name).expect("listed");
            pieces.retain(|p| u64::from(p.1) <= walname::DEFAULT_SEGMENT_SIZE);
            let chosen = covering_pieces(pieces);
            let (_, ignored) = if chosen.is_empty() { (Vec::new(), Vec::new()) } else { read_pieces(repo, component, &name, &chosen, false)? };
            if ignored.is_empty() && !chosen.is_empty() {
                return Ok(());
            }
            for p in &ignored {
                tracing::warn!("{}: no trusted copy from this server: ignored", ObjectKind::Wal.path(&object_name(component, &walname::piece_name(&name, p.0, p.1))));
            }
            pieces.retain(|p| !ignored.contains(p));
            if covering_pieces(pieces).is_empty() {
                self.streamed.remove(&name);
            }
        }
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

/// WAL objects that come from another server than the component's base
/// backups (segments, streamed ranges, partial copies: every file that
/// names its server), with what `check` says of each. A trusted writer can
/// still store any name in its own domain; restores take only the copies
/// of the server being recovered (docs/FORMAT.md 10.1, 10.2), and this
/// names the others and their writer. Components without a base backup
/// are skipped (no server to compare with).
pub fn foreign_servers(repo: &Repository) -> Result<Vec<(String, String)>> {
    let mut servers: BTreeMap<String, Option<BTreeSet<u64>>> = BTreeMap::new();
    let mut out = Vec::new();
    for o in repo.backend().list(ObjectKind::Wal).map_err(reprise_engine::Error::from)? {
        let Some((component, file)) = o.name.rsplit_once('/') else { continue };
        let file = file.split_once('@').map_or(file, |(f, _)| f);
        if !matches!(walname::classify(file), Some(WalFile::Segment(_) | WalFile::StreamPiece { .. } | WalFile::StreamPartial { .. })) {
            continue;
        }
        if !servers.contains_key(component) {
            let ids: BTreeSet<u64> = crate::restore::base_backups(repo, component)?.iter().map(|b| b.system_identifier).filter(|&i| i != 0).collect();
            servers.insert(component.to_owned(), (!ids.is_empty()).then_some(ids));
        }
        let Some(known) = servers[component].clone() else { continue };
        let Some((h, who)) = walobj::trusted_header(repo, &o.name)? else { continue };
        if !known.contains(&h.system_identifier) {
            let ids: Vec<String> = known.iter().map(u64::to_string).collect();
            out.push((
                ObjectKind::Wal.path(&o.name),
                format!(
                    "written by {who} for another server (system identifier {}; the base backups of '{component}' are of {}): restores ignore it",
                    h.system_identifier,
                    ids.join(", ")
                ),
            ));
        }
    }
    Ok(out)
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
