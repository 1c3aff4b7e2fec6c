//! What a physical component's repository and live server say, measured:
//! the facts `status` is judged from (the judging — what the recovery
//! point is, when to alert — is the operations layer's,
//! `reprise_ops::status`).
//!
//! The data at risk starts at the oldest *committed* change the repository
//! does not hold. With the server reachable it is looked for: the WAL past
//! the end of what the repository holds — archived segments and streamed
//! ranges alike ([`ArchiveView::stored_end`]) — is read from the server
//! and walked to its first commit record ([`crate::walrecord`]); records
//! PostgreSQL writes on its own (`RUNNING_XACTS`, checkpoints) are not data
//! at risk. When that WAL cannot be read, what is known is when the stored
//! WAL ends ([`Unstored::Unreadable`]). The server's archiver and the
//! stream's replication slot are read as they are.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use reprise_engine::Repository;

use crate::conn;
use crate::error::Result;
use crate::restore::{BaseBackupInfo, base_backups};
use crate::stream;
use crate::wal::{self, ArchiveView};
use crate::walname::{self, Lsn, Segment};
use crate::walrecord::{self, Scan};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServerArchiver {
    pub current_lsn: String,
    pub timeline: u32,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<jiff::Timestamp>,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<jiff::Timestamp>,
    /// The server's `archive_mode` (`off` when only a stream takes WAL).
    pub archive_mode: String,
}

/// The replication slot and connection of `wal-stream`, seen from the server.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StreamState {
    pub slot: String,
    /// Whether a stream is connected to the slot now.
    pub active: bool,
    /// `sync` when the server waits for it, `async` otherwise.
    pub sync_state: Option<String>,
    /// What the stream last reported as stored.
    pub flush_lsn: Option<String>,
}

/// What the repository lacks of the server's committed WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unstored {
    /// No server was read (none given, unreachable, or nothing stored on
    /// its timeline to measure from).
    #[default]
    NotMeasured,
    /// The repository holds every commit the server wrote.
    NoCommit,
    /// The oldest commit the repository lacks.
    Commit(jiff::Timestamp),
    /// The server is ahead but its WAL could not be read; the unstored WAL
    /// was written after the stored WAL ending at `stored_end_written`.
    Unreadable { stored_end_written: Option<jiff::Timestamp> },
}

/// One physical component, measured: what the repository holds, what a
/// restore can reach by the WAL chain, and what the live server says.
#[derive(Debug, Clone, Default)]
pub struct PgMeasure {
    pub component: String,
    pub base_backups: usize,
    pub last_base_backup: Option<String>,
    pub last_base_backup_time: Option<jiff::Timestamp>,
    pub newest_wal: Option<String>,
    pub newest_wal_written: Option<jiff::Timestamp>,
    pub wal_files: usize,
    pub wal_bytes: u64,
    /// Where the WAL the repository holds ends (archived segments and
    /// streamed ranges), on the newest timeline.
    pub stored_wal_end: Option<String>,
    /// The end of the oldest base backup with unbroken WAL to the newest
    /// stored segment (none: no such base backup).
    pub oldest_restorable: Option<jiff::Timestamp>,
    /// The first missing WAL segment after the oldest base backup, if any.
    pub gap: Option<String>,
    pub server: Option<ServerArchiver>,
    /// Present when the stream's replication slot exists on the server.
    pub stream: Option<StreamState>,
    pub unstored: Unstored,
}

fn chain_complete(repo: &Repository, component: &str, view: &ArchiveView, base: &BaseBackupInfo, end: Segment) -> Result<Option<String>> {
    let needed = wal::required_segments(repo, component, base.start_segment(), end.timeline, end.number)?;
    Ok(needed.iter().find(|s| !view.contains(**s)).map(|s| s.name(base.segment_size)))
}

/// The live server of a component, for measuring against it.
#[derive(Debug, Clone, Copy)]
pub struct Live<'a> {
    pub connection: &'a str,
    pub password_env: Option<&'a str>,
    /// The server's data directory when it is on this host (its `pg_wal`
    /// is read directly; otherwise through `pg_read_binary_file`).
    pub data_directory: Option<&'a Path>,
}

/// Measures `component`: its repository, and its server when `live` is
/// given and reachable.
pub fn measure(repo: &Repository, component: &str, live: Option<&Live<'_>>) -> Result<PgMeasure> {
    let bases = base_backups(repo, component)?;
    let mut view = ArchiveView::load(repo, component)?;
    // A range name nobody trusted stored must not count as stored WAL.
    if let Some(b) = bases.last() {
        wal::expect_system_identifier(b.system_identifier);
    }
    for timeline in view.timelines() {
        view.keep_trusted_tail(repo, component, timeline)?;
    }
    let mut m = PgMeasure { component: component.to_owned(), base_backups: bases.len(), wal_files: view.files, wal_bytes: view.total_bytes, ..PgMeasure::default() };
    if let Some(b) = bases.last() {
        m.last_base_backup = Some(b.id.to_hex());
        m.last_base_backup_time = Some(b.stop_time);
    }
    let seg = bases.last().map_or(walname::DEFAULT_SEGMENT_SIZE, |b| b.segment_size);
    if let Some(newest) = view.newest() {
        m.newest_wal_written = wal::written(repo, component, &view, newest)?;
        m.newest_wal = Some(newest.name(seg));
        m.stored_wal_end = view.stored_end(newest.timeline).map(|l| l.to_string());
        // The window opens at the oldest base backup with unbroken WAL to the newest segment.
        for b in &bases {
            match chain_complete(repo, component, &view, b, newest)? {
                None => {
                    m.oldest_restorable = Some(b.stop_time);
                    break;
                }
                Some(missing) => {
                    if m.gap.is_none() {
                        m.gap = Some(missing);
                    }
                }
            }
        }
    }
    if let Some(live) = live
        && let Ok(mut client) = conn::connect(live.connection, live.password_env)
    {
        read_server(&mut client, repo, component, &view, live, &mut m);
    }
    Ok(m)
}

fn from_epoch(secs: Option<f64>) -> Option<jiff::Timestamp> {
    secs.and_then(|s| jiff::Timestamp::from_microsecond((s * 1e6).round() as i64).ok())
}

/// Reads the live server: its archiver, the stream's slot, and the
/// oldest commit past what the repository holds.
fn read_server(client: &mut postgres::Client, repo: &Repository, component: &str, view: &ArchiveView, live: &Live<'_>, m: &mut PgMeasure) {
    // Times as epoch seconds: PostgreSQL's text form ("+00") is not RFC 3339.
    let Ok(row) = client.query_one(
        "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn()), last_archived_wal, extract(epoch FROM last_archived_time)::float8, \
         last_failed_wal, extract(epoch FROM last_failed_time)::float8, current_setting('archive_mode') FROM pg_stat_archiver",
        &[],
    ) else {
        return;
    };
    let current_name: String = row.get(1);
    let timeline = u32::from_str_radix(current_name.get(..8).unwrap_or("1"), 16).unwrap_or(1);
    let server = ServerArchiver {
        current_lsn: row.get(0),
        timeline,
        last_archived_wal: row.get(2),
        last_archived_time: from_epoch(row.get(3)),
        last_failed_wal: row.get(4),
        last_failed_time: from_epoch(row.get(5)),
        archive_mode: row.get(6),
    };
    let slot = stream::slot_name(component);
    if let Ok(Some(r)) = client.query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&slot]) {
        let mut s = StreamState { slot, active: r.get(0), ..StreamState::default() };
        if let Ok(Some(r)) = client.query_opt("SELECT sync_state, flush_lsn::text FROM pg_stat_replication WHERE application_name = $1", &[&stream::application_name(component)]) {
            s.sync_state = r.get(0);
            s.flush_lsn = r.get(1);
        }
        m.stream = Some(s);
    }
    let current: Option<Lsn> = server.current_lsn.parse().ok();
    let stored = view.stored_end(timeline);
    m.server = Some(server);
    let (Some(current), Some(stored)) = (current, stored) else {
        // Nothing stored on this timeline: nothing to measure from.
        return;
    };
    if current <= stored {
        m.unstored = Unstored::NoCommit;
        return;
    }
    let mut source = ServerWal { client, data_directory: live.data_directory.map(Path::to_path_buf), timeline, cache: Vec::new() };
    m.unstored = match walrecord::first_commit(&mut |n| source.segment(n), walname::DEFAULT_SEGMENT_SIZE, stored, current) {
        Scan::NoCommit => Unstored::NoCommit,
        Scan::Commit { time, .. } => Unstored::Commit(time),
        Scan::Unreadable(why) => {
            tracing::debug!("{component}: the WAL past {stored} cannot be read from the server ({why})");
            Unstored::Unreadable { stored_end_written: stored_end_written(repo, component, view, stored) }
        }
    };
}

/// When the WAL ending at `stored` was written (its segment or range).
fn stored_end_written(repo: &Repository, component: &str, view: &ArchiveView, stored: Lsn) -> Option<jiff::Timestamp> {
    let seg = walname::DEFAULT_SEGMENT_SIZE;
    let timeline = view.timelines().into_iter().next_back()?;
    // The segment holding the last stored byte.
    let s = Segment::of_lsn(timeline, Lsn(stored.0.saturating_sub(1)), seg);
    wal::written(repo, component, view, s).ok().flatten()
}

/// The server's WAL segments: read from its data directory when it is on
/// this host, else with `pg_read_binary_file` (superuser or
/// `pg_read_server_files`).
struct ServerWal<'a> {
    client: &'a mut postgres::Client,
    data_directory: Option<PathBuf>,
    timeline: u32,
    cache: Vec<(u64, Arc<Vec<u8>>)>,
}

impl ServerWal<'_> {
    fn segment(&mut self, number: u64) -> Option<Arc<Vec<u8>>> {
        if let Some((_, d)) = self.cache.iter().find(|(n, _)| *n == number) {
            return Some(Arc::clone(d));
        }
        let name = Segment { timeline: self.timeline, number }.name(walname::DEFAULT_SEGMENT_SIZE);
        let local = self.data_directory.as_ref().and_then(|d| std::fs::read(d.join("pg_wal").join(&name)).ok());
        let data = match local {
            Some(d) => d,
            None => self.client.query_one("SELECT pg_read_binary_file('pg_wal/' || $1)", &[&name]).ok()?.get::<_, Vec<u8>>(0),
        };
        let data = Arc::new(data);
        self.cache.push((number, Arc::clone(&data)));
        Some(data)
    }
}
