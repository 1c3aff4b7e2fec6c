//! What a physical component can be restored to, and the data at risk now.

use reprise_engine::Repository;

use crate::conn;
use crate::error::Result;
use crate::restore::{BaseBackupInfo, base_backups};
use crate::wal::{self, ArchiveView};
use crate::walname::{self, Lsn, Segment};

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ServerArchiver {
    pub current_lsn: String,
    pub last_archived_wal: Option<String>,
    pub last_archived_time: Option<String>,
    pub last_failed_wal: Option<String>,
    pub last_failed_time: Option<String>,
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
    /// Data that would be lost if the server vanished now, in seconds.
    pub rpo_seconds: Option<f64>,
    /// `server` (measured against the live server) or `archive` (an upper
    /// bound from the newest archived file).
    pub rpo_basis: String,
    /// The most recent point a restore can reach.
    pub newest_restorable: Option<jiff::Timestamp>,
    /// The oldest point a restore can reach with continuous WAL.
    pub oldest_restorable: Option<jiff::Timestamp>,
    pub pitr_window_seconds: Option<f64>,
    /// The first missing WAL segment after the oldest base backup, if any.
    pub gap: Option<String>,
    pub server: Option<ServerArchiver>,
}

fn chain_complete(repo: &Repository, component: &str, view: &ArchiveView, base: &BaseBackupInfo, end: Segment) -> Result<Option<String>> {
    let needed = wal::required_segments(repo, component, base.start_segment(), end.timeline, end.number)?;
    Ok(needed.iter().find(|s| !view.contains(**s)).map(|s| s.name(base.segment_size)))
}

pub fn status(repo: &Repository, component: &str, live: Option<(&str, Option<&str>)>) -> Result<PgStatus> {
    let now = jiff::Timestamp::now();
    let bases = base_backups(repo, component)?;
    let view = ArchiveView::load(repo, component)?;
    let mut st = PgStatus { component: component.to_owned(), base_backups: bases.len(), wal_files: view.files, wal_bytes: view.total_bytes, ..PgStatus::default() };
    if let Some(b) = bases.last() {
        st.last_base_backup = Some(b.id.to_hex());
        st.last_base_backup_time = Some(b.stop_time);
    }
    let seg = bases.last().map_or(walname::DEFAULT_SEGMENT_SIZE, |b| b.segment_size);
    if let Some(newest) = view.newest() {
        let name = newest.name(seg);
        st.newest_wal_written = wal::header(repo, component, &name)?.map(|h| h.modified);
        st.newest_wal = Some(name);
        // The window opens at the oldest base backup with unbroken WAL to the newest segment.
        for b in &bases {
            match chain_complete(repo, component, &view, b, newest)? {
                None => {
                    st.oldest_restorable = Some(b.stop_time);
                    break;
                }
                Some(missing) => {
                    if st.gap.is_none() {
                        st.gap = Some(missing);
                    }
                }
            }
        }
        if st.oldest_restorable.is_some() {
            st.newest_restorable = st.newest_wal_written;
        }
    }
    if let (Some(a), Some(b)) = (st.oldest_restorable, st.newest_restorable) {
        st.pitr_window_seconds = Some(b.duration_since(a).as_secs_f64().max(0.0));
    }
    st.rpo_basis = "archive".into();
    st.rpo_seconds = st.newest_wal_written.map(|t| now.duration_since(t).as_secs_f64().max(0.0));
    if let Some((conn_str, pw)) = live {
        if let Ok(mut client) = conn::connect(conn_str, pw) {
            if let Ok(row) = client.query_one(
                "SELECT pg_current_wal_lsn()::text, last_archived_wal, last_archived_time::text, last_failed_wal, last_failed_time::text FROM pg_stat_archiver",
                &[],
            ) {
                let server = ServerArchiver {
                    current_lsn: row.get(0),
                    last_archived_wal: row.get(1),
                    last_archived_time: row.get(2),
                    last_failed_wal: row.get(3),
                    last_failed_time: row.get(4),
                };
                let current: Option<Lsn> = server.current_lsn.parse().ok();
                let archived_end = server
                    .last_archived_wal
                    .as_deref()
                    .and_then(|w| Segment::parse(w, seg))
                    .map(|s| s.next().start_lsn(seg));
                let archived_time = server.last_archived_time.as_deref().and_then(|t| jiff::fmt::strtime::parse("%Y-%m-%d %H:%M:%S%.f%#z", t).ok()).and_then(|t| t.to_timestamp().ok());
                st.rpo_basis = "server".into();
                st.rpo_seconds = match (current, archived_end, archived_time) {
                    // Nothing written since the last archived segment ended.
                    (Some(c), Some(end), _) if c <= end => Some(0.0),
                    (_, _, Some(t)) => Some(now.duration_since(t).as_secs_f64().max(0.0)),
                    _ => st.rpo_seconds,
                };
                st.server = Some(server);
            }
        }
    }
    Ok(st)
}
