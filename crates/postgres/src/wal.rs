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
use crate::walname::{self, Segment, WalFile};

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
    let hash = walobj::hash(repo, &data)?;
    let header = WalHeader {
        version: 1,
        name: name.to_owned(),
        size: data.len() as u64,
        hash,
        modified,
        pushed: jiff::Timestamp::now(),
        host: reprise_engine::repository::hostname(),
        system_identifier: walname::long_page_header(&data).map_or(0, |h| h.system_identifier),
    };
    // A name another writer took first does not block the genuine file:
    // it is stored beside it (walobj::create) and the squatting reported.
    match walobj::create(repo, &object_name(component, name), &header, &data)? {
        Ok(walobj::Created::Stored | walobj::Created::Beside { .. }) => Ok(PushOutcome::Archived),
        Ok(walobj::Created::AlreadyThere) => Ok(PushOutcome::AlreadyArchived),
        Err(walobj::Conflict) => Err(PgError::WalConflict { name: name.to_owned() }),
    }
}

/// Reads one archived file, or — for a segment that was still being
/// streamed — its newest streamed copy (recovery reads it up to the last
/// record written and ends there).
pub fn read_or_partial(repo: &Repository, component: &str, file: &str) -> Result<Option<(WalHeader, Vec<u8>)>> {
    if let Some(found) = read(repo, component, file)? {
        return Ok(Some(found));
    }
    if !matches!(walname::classify(file), Some(WalFile::Segment(_))) {
        return Ok(None);
    }
    let prefix = format!("{component}/{file}.partial.");
    let newest = repo
        .backend()
        .list(ObjectKind::Wal)
        .map_err(reprise_engine::Error::from)?
        .into_iter()
        .filter_map(|o| o.name.strip_prefix(&prefix).and_then(|m| m.parse::<u64>().ok()))
        .max();
    match newest {
        Some(m) => read(repo, component, &format!("{file}.partial.{m}")),
        None => Ok(None),
    }
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
    /// Newest streamed copy of a segment still being written, by segment name.
    pub stream_partials: BTreeMap<String, u64>,
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
                _ => {}
            }
        }
        Ok(view)
    }

    #[must_use]
    pub fn contains(&self, s: Segment) -> bool {
        self.segments.get(&s.timeline).is_some_and(|set| set.contains(&s.number))
    }

    /// The newest segment on the highest timeline.
    #[must_use]
    pub fn newest(&self) -> Option<Segment> {
        self.segments.iter().next_back().and_then(|(t, set)| set.iter().next_back().map(|n| Segment { timeline: *t, number: *n }))
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

/// Waits until `file` is archived, polling, for at most `timeout`.
pub fn wait_archived(repo: &Repository, component: &str, file: &str, timeout: Duration) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    let object = object_name(component, file);
    loop {
        match repo.backend().size(ObjectKind::Wal, &object) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind == ErrorKind::NotFound => {}
            Err(e) => return Err(reprise_engine::Error::from(e).into()),
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
