//! What a physical component can be restored to, and the data at risk now.
//!
//! The recovery point achieved is the age of the oldest *committed* change
//! the repository does not hold, zero when there is none. With the server
//! reachable it is measured (`rpo_basis: "server"`): the WAL past the end
//! of what the repository holds — archived segments and streamed ranges
//! alike ([`ArchiveView::stored_end`]) — is read from the server and walked
//! to its first commit record ([`crate::walrecord`]); records PostgreSQL
//! writes on its own (`RUNNING_XACTS`, checkpoints) are not data at risk.
//! When that WAL cannot be read, or without a server, the figure is an
//! upper bound: the time since the newest stored WAL was written
//! (`server-bound`, `archive`).
//!
//! A streamed component (its replication slot exists on the server) whose
//! stream is not connected is an alert: nothing reaches the repository, and
//! with synchronous replication every commit waits.

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

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PgStatus {
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
    /// Data that would be lost if the server vanished now, in seconds.
    pub rpo_seconds: Option<f64>,
    /// `server` (measured: the oldest commit the repository lacks, read
    /// from the server's WAL), `server-bound` (the server is ahead but its
    /// WAL could not be read: an upper bound), or `archive` (no server: an
    /// upper bound from the newest stored WAL).
    pub rpo_basis: String,
    /// The commit the RPO is measured from, when there is one at risk.
    pub oldest_unstored_commit: Option<jiff::Timestamp>,
    /// The most recent point a restore can reach.
    pub newest_restorable: Option<jiff::Timestamp>,
    /// The oldest point a restore can reach with continuous WAL.
    pub oldest_restorable: Option<jiff::Timestamp>,
    pub pitr_window_seconds: Option<f64>,
    /// The first missing WAL segment after the oldest base backup, if any.
    pub gap: Option<String>,
    pub server: Option<ServerArchiver>,
    pub stream: Option<StreamState>,
    /// What needs someone's attention now (a stream not running, an
    /// archiver failing).
    pub alerts: Vec<String>,
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

pub fn status(repo: &Repository, component: &str, live: Option<(&str, Option<&str>)>) -> Result<PgStatus> {
    status_at(repo, component, live.map(|(connection, password_env)| Live { connection, password_env, data_directory: None }).as_ref())
}

pub fn status_at(repo: &Repository, component: &str, live: Option<&Live<'_>>) -> Result<PgStatus> {
    let now = jiff::Timestamp::now();
    let bases = base_backups(repo, component)?;
    let mut view = ArchiveView::load(repo, component)?;
    // A range name nobody trusted stored must not count as stored WAL.
    if let Some(b) = bases.last() {
        wal::expect_system_identifier(b.system_identifier);
    }
    for timeline in view.timelines() {
        view.keep_trusted_tail(repo, component, timeline)?;
    }
    let mut st = PgStatus { component: component.to_owned(), base_backups: bases.len(), wal_files: view.files, wal_bytes: view.total_bytes, ..PgStatus::default() };
    if let Some(b) = bases.last() {
        st.last_base_backup = Some(b.id.to_hex());
        st.last_base_backup_time = Some(b.stop_time);
    }
    let seg = bases.last().map_or(walname::DEFAULT_SEGMENT_SIZE, |b| b.segment_size);
    let mut chain_ok = false;
    if let Some(newest) = view.newest() {
        st.newest_wal_written = wal::written(repo, component, &view, newest)?;
        st.newest_wal = Some(newest.name(seg));
        st.stored_wal_end = view.stored_end(newest.timeline).map(|l| l.to_string());
        // The window opens at the oldest base backup with unbroken WAL to the newest segment.
        for b in &bases {
            match chain_complete(repo, component, &view, b, newest)? {
                None => {
                    st.oldest_restorable = Some(b.stop_time);
                    chain_ok = true;
                    break;
                }
                Some(missing) => {
                    if st.gap.is_none() {
                        st.gap = Some(missing);
                    }
                }
            }
        }
        if chain_ok {
            st.newest_restorable = st.newest_wal_written;
        }
    }
    st.rpo_basis = "archive".into();
    st.rpo_seconds = st.newest_wal_written.map(|t| now.duration_since(t).as_secs_f64().max(0.0));
    if let Some(live) = live
        && let Ok(mut client) = conn::connect(live.connection, live.password_env)
    {
        measure(&mut client, repo, component, &view, live, now, &mut st);
        if chain_ok && st.rpo_basis == "server" {
            // Everything committed up to `now - rpo` is stored.
            st.newest_restorable = st.rpo_seconds.map(|r| now - jiff::SignedDuration::from_secs_f64(r));
        }
    }
    if let (Some(a), Some(b)) = (st.oldest_restorable, st.newest_restorable) {
        st.pitr_window_seconds = Some(b.duration_since(a).as_secs_f64().max(0.0));
    }
    Ok(st)
}

fn from_epoch(secs: Option<f64>) -> Option<jiff::Timestamp> {
    secs.and_then(|s| jiff::Timestamp::from_microsecond((s * 1e6).round() as i64).ok())
}

/// Measures against the live server: its archiver, the stream's slot, and
/// the oldest commit past what the repository holds.
fn measure(client: &mut postgres::Client, repo: &Repository, component: &str, view: &ArchiveView, live: &Live<'_>, now: jiff::Timestamp, st: &mut PgStatus) {
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
    };
    let archive_mode: String = row.get(6);
    if archive_mode != "off"
        && let (Some(f), Some(ft)) = (&server.last_failed_wal, server.last_failed_time)
        && server.last_archived_time.is_none_or(|a| ft > a)
    {
        st.alerts.push(format!("archive_command fails: {f} could not be archived (last attempt {}); see the server log", ft.strftime("%Y-%m-%d %H:%M:%S")));
    }
    let slot = stream::slot_name(component);
    if let Ok(Some(r)) = client.query_opt("SELECT active FROM pg_replication_slots WHERE slot_name = $1", &[&slot]) {
        let mut s = StreamState { slot: slot.clone(), active: r.get(0), ..StreamState::default() };
        if let Ok(Some(r)) = client.query_opt("SELECT sync_state, flush_lsn::text FROM pg_stat_replication WHERE application_name = $1", &[&stream::application_name(component)]) {
            s.sync_state = r.get(0);
            s.flush_lsn = r.get(1);
        }
        if !s.active {
            st.alerts.push(format!(
                "wal-stream is not running: slot {slot} has no stream connected, so WAL does not reach the repository{}; start `reprise wal-stream {component}`",
                if archive_mode == "off" { " (and with synchronous replication every commit waits)" } else { "" }
            ));
        }
        st.stream = Some(s);
    }
    let current: Option<Lsn> = server.current_lsn.parse().ok();
    let stored = view.stored_end(timeline);
    st.server = Some(server);
    let Some(current) = current else { return };
    let Some(stored) = stored else {
        // Nothing stored on this timeline: the archive bound stands.
        return;
    };
    if current <= stored {
        st.rpo_basis = "server".into();
        st.rpo_seconds = Some(0.0);
        return;
    }
    let mut source = ServerWal { client, data_directory: live.data_directory.map(Path::to_path_buf), timeline, cache: Vec::new() };
    match walrecord::first_commit(&mut |n| source.segment(n), walname::DEFAULT_SEGMENT_SIZE, stored, current) {
        Scan::NoCommit => {
            st.rpo_basis = "server".into();
            st.rpo_seconds = Some(0.0);
        }
        Scan::Commit { time, .. } => {
            st.rpo_basis = "server".into();
            st.oldest_unstored_commit = Some(time);
            st.rpo_seconds = Some(now.duration_since(time).as_secs_f64().max(0.0));
        }
        Scan::Unreadable(why) => {
            tracing::debug!("{component}: the WAL past {stored} cannot be read from the server ({why}): the RPO is an upper bound");
            st.rpo_basis = "server-bound".into();
            // The unstored WAL was written after the stored end was.
            let bound = stored_end_written(repo, component, view, stored);
            st.rpo_seconds = bound.map(|t| now.duration_since(t).as_secs_f64().max(0.0)).or(st.rpo_seconds);
        }
    }
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
