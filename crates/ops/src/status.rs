//! `status`: per component, the recovery point achieved now against its
//! objective, what a restore can reach, the 3-2-1 posture and whether
//! storage-level immutability is in force.
//!
//! These are the numbers a continuity monitor watches (SPEC C7): computed
//! here once, for the CLI's table and a daemon's metrics alike. Each
//! repository is opened once per workspace (the posture, the recovery
//! point and the immutability check share it), and its snapshots are
//! listed once per call.

use reprise_plan::{ComponentKind, ComponentPlan, Plan, PostgresMode, RepositoryPlan};

use crate::error::{OpsError, Result};
use crate::immutability::{self, ImmutabilityStatus};
use crate::postgres::pg_plan;
use reprise_postgres::status::{self as pgstatus, PgMeasure, ServerArchiver, StreamState, Unstored};
use crate::workspace::Workspace;

#[derive(Debug, serde::Serialize)]
pub struct ComponentStatus {
    pub component: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub last_backup: Option<jiff::Timestamp>,
    /// Seconds of data at risk now.
    pub rpo_seconds: Option<f64>,
    pub rpo_objective_seconds: Option<u64>,
    pub rpo_met: Option<bool>,
    pub newest_restorable: Option<jiff::Timestamp>,
    pub oldest_restorable: Option<jiff::Timestamp>,
    pub pitr_window_seconds: Option<f64>,
    pub pitr_objective_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PgStatus>,
    /// The 3-2-1 posture: where copies of the component are.
    pub copies: Posture,
    /// Storage-level immutability (S3 Object Lock, Azure immutability).
    pub immutability: Option<ImmutabilityStatus>,
    /// What needs attention now, whatever the RPO says (a WAL stream not
    /// running, an archiver failing).
    pub alerts: Vec<String>,
}

/// One repository that holds (or should hold) a component.
#[derive(Debug, serde::Serialize)]
pub struct RepositoryPosture {
    pub repository: String,
    /// `primary` (where backups go) or `copy` (its `copy_of` names the primary).
    pub role: &'static str,
    /// `local-disk`, `s3` or `azure-blob`, from the URL.
    pub media: &'static str,
    /// From the plan; `unspecified` when the plan does not say.
    pub site: String,
    /// Whether its site differs from the primary's; `null` when a site is
    /// missing (unknown, never guessed).
    pub off_site: Option<bool>,
    pub snapshots: Option<usize>,
    pub newest_snapshot: Option<jiff::Timestamp>,
    pub newest_age_seconds: Option<f64>,
    /// Whether it holds the newest snapshot of the component on the primary.
    pub holds_newest: Option<bool>,
    /// Why the repository could not be read (the other lines still are).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// 3-2-1, counted as: copies = the production data itself plus every
/// repository holding at least one snapshot of the component; media =
/// distinct media among those repositories (the production storage is not
/// counted: it is what fails); off-site = at least one of them is off-site.
#[derive(Debug, serde::Serialize)]
pub struct Posture {
    pub repositories: Vec<RepositoryPosture>,
    pub copies: usize,
    pub media: Vec<&'static str>,
    /// At least one repository holding the component is off-site (`true`),
    /// none is and every site is known (`false`), or a site is missing and
    /// none is known off-site (`null`: unknown, never guessed).
    pub off_site: Option<bool>,
    pub three_two_one: bool,
}

/// A physical PostgreSQL component, judged: the recovery point achieved,
/// what a restore can reach, and what needs attention.
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

/// Seconds from `then` to `now`, never negative (clocks of two hosts).
fn age(now: jiff::Timestamp, then: jiff::Timestamp) -> f64 {
    now.duration_since(then).as_secs_f64().max(0.0)
}

/// Judges a measured PostgreSQL component at `now`. The recovery point is
/// the age of the oldest commit the repository lacks, zero when it lacks
/// none; when that commit could not be looked for, an upper bound: the
/// age of the stored WAL's end (server ahead, its WAL unreadable) or of
/// the newest stored WAL (no server). Alerts: an archiver whose last
/// attempt failed, a stream slot with no stream connected.
#[must_use]
pub fn postgres_status(m: PgMeasure, now: jiff::Timestamp) -> PgStatus {
    let archive_bound = m.newest_wal_written.map(|t| age(now, t));
    let (rpo_basis, rpo_seconds, oldest_unstored_commit) = match m.unstored {
        Unstored::NotMeasured => ("archive", archive_bound, None),
        Unstored::NoCommit => ("server", Some(0.0), None),
        Unstored::Commit(t) => ("server", Some(age(now, t)), Some(t)),
        Unstored::Unreadable { stored_end_written } => ("server-bound", stored_end_written.map(|t| age(now, t)).or(archive_bound), None),
    };
    let chain_complete = m.oldest_restorable.is_some();
    let newest_restorable = match (chain_complete, rpo_basis) {
        (false, _) => None,
        // Everything committed up to `now - rpo` is stored.
        (true, "server") => rpo_seconds.map(|r| now - jiff::SignedDuration::from_secs_f64(r)),
        (true, _) => m.newest_wal_written,
    };
    let mut alerts = Vec::new();
    if let Some(srv) = &m.server
        && srv.archive_mode != "off"
        && let (Some(f), Some(ft)) = (&srv.last_failed_wal, srv.last_failed_time)
        && srv.last_archived_time.is_none_or(|a| ft > a)
    {
        alerts.push(format!("archive_command fails: {f} could not be archived (last attempt {}); see the server log", ft.strftime("%Y-%m-%d %H:%M:%S")));
    }
    if let Some(s) = m.stream.as_ref().filter(|s| !s.active) {
        let archiving = m.server.as_ref().is_some_and(|srv| srv.archive_mode != "off");
        alerts.push(format!(
            "wal-stream is not running: slot {} has no stream connected, so WAL does not reach the repository{}; start `reprise wal-stream {}`",
            s.slot,
            if archiving { "" } else { " (and with synchronous replication every commit waits)" },
            m.component
        ));
    }
    PgStatus {
        pitr_window_seconds: m.oldest_restorable.zip(newest_restorable).map(|(a, b)| b.duration_since(a).as_secs_f64().max(0.0)),
        component: m.component,
        base_backups: m.base_backups,
        last_base_backup: m.last_base_backup,
        last_base_backup_time: m.last_base_backup_time,
        newest_wal: m.newest_wal,
        newest_wal_written: m.newest_wal_written,
        wal_files: m.wal_files,
        wal_bytes: m.wal_bytes,
        stored_wal_end: m.stored_wal_end,
        rpo_seconds,
        rpo_basis: rpo_basis.to_owned(),
        oldest_unstored_commit,
        newest_restorable,
        oldest_restorable: m.oldest_restorable,
        gap: m.gap,
        server: m.server,
        stream: m.stream,
        alerts,
    }
}

fn media_of(url: &str) -> &'static str {
    if url.starts_with("s3://") {
        "s3"
    } else if url.starts_with("azure://") {
        "azure-blob"
    } else {
        "local-disk"
    }
}

/// Snapshots of each repository, read once per `status` run.
type SnapshotCache = std::collections::HashMap<String, std::result::Result<Vec<reprise_engine::SnapshotInfo>, String>>;

fn posture(ws: &Workspace, plan: &Plan, c: &ComponentPlan, cache: &mut SnapshotCache, now: jiff::Timestamp) -> Posture {
    let primary = plan.repositories.get(&c.repository);
    let mut repos: Vec<&RepositoryPlan> = primary.into_iter().collect();
    repos.extend(plan.copies_of(&c.repository));
    let primary_site = primary.and_then(|p| p.site.clone());
    let mut lines = Vec::new();
    let mut newest_on_primary: Option<Option<reprise_engine::format::Id>> = None;
    for (i, r) in repos.iter().enumerate() {
        let snaps = cache
            .entry(r.name.clone())
            .or_insert_with(|| ws.open_named(&r.name).and_then(|repo| Ok(repo.snapshots()?.0)).map_err(|e| e.to_string()))
            .as_ref()
            .map(|all| all.iter().filter(|s| s.header.component == c.name).cloned().collect::<Vec<_>>());
        let off_site = match (i, &primary_site, &r.site) {
            (0, Some(_), _) => Some(false),
            (_, Some(p), Some(s)) => Some(p != s),
            _ => None,
        };
        let mut line = RepositoryPosture {
            repository: r.name.clone(),
            role: if i == 0 { "primary" } else { "copy" },
            media: media_of(&r.url),
            site: r.site.clone().unwrap_or_else(|| "unspecified".to_owned()),
            off_site,
            snapshots: None,
            newest_snapshot: None,
            newest_age_seconds: None,
            holds_newest: None,
            error: None,
        };
        match snaps {
            Ok(snaps) => {
                let newest = snaps.last();
                if i == 0 {
                    newest_on_primary = Some(newest.map(|s| s.id));
                }
                line.snapshots = Some(snaps.len());
                line.newest_snapshot = newest.map(|s| s.header.time);
                line.newest_age_seconds = newest.map(|s| now.duration_since(s.header.time).as_secs_f64().max(0.0));
                line.holds_newest = match &newest_on_primary {
                    Some(Some(id)) => Some(snaps.iter().any(|s| s.id == *id)),
                    _ => None,
                };
            }
            Err(e) => line.error = Some(e.clone()),
        }
        lines.push(line);
    }
    let holding: Vec<&RepositoryPosture> = lines.iter().filter(|l| l.snapshots.unwrap_or(0) > 0).collect();
    let mut media: Vec<&'static str> = holding.iter().map(|l| l.media).collect();
    media.sort_unstable();
    media.dedup();
    let off_site = if holding.iter().any(|l| l.off_site == Some(true)) {
        Some(true)
    } else if holding.iter().all(|l| l.off_site.is_some()) {
        Some(false)
    } else {
        None
    };
    let copies = 1 + holding.len();
    Posture { copies, three_two_one: copies >= 3 && media.len() >= 2 && off_site == Some(true), media, off_site, repositories: lines }
}

/// The status of `components` (none: every component of the plan).
pub fn status(ws: &Workspace, components: &[String]) -> Result<Vec<ComponentStatus>> {
    let plan = ws.plan()?;
    let components: Vec<&ComponentPlan> =
        if components.is_empty() { plan.components.values().collect() } else { components.iter().map(|n| ws.component(n)).collect::<Result<_>>()? };
    if components.is_empty() {
        return Err(OpsError::usage("the plan declares no component"));
    }
    let now = jiff::Timestamp::now();
    let mut out = Vec::new();
    let mut cache = SnapshotCache::new();
    for c in components {
        let rpo_obj = c.objectives.rpo.map(|d| d.as_secs());
        let mut st = ComponentStatus {
            component: c.name.clone(),
            kind: c.kind.to_string(),
            last_backup: None,
            rpo_seconds: None,
            rpo_objective_seconds: rpo_obj,
            rpo_met: None,
            newest_restorable: None,
            oldest_restorable: None,
            pitr_window_seconds: None,
            pitr_objective_seconds: c.objectives.pitr.map(|p| p.length_before(now).as_secs()),
            postgres: None,
            copies: posture(ws, plan, c, &mut cache, now),
            immutability: None,
            alerts: Vec::new(),
        };
        let repo = ws.open(Some(c))?;
        match (&c.kind, pg_plan(c)) {
            (ComponentKind::Postgres(_), Some(pg)) if pg.mode == PostgresMode::Physical => {
                let live = pgstatus::Live { connection: &pg.connection, password_env: pg.password_env.as_deref(), data_directory: pg.data_directory.as_deref() };
                let s = postgres_status(pgstatus::measure(&repo, &c.name, Some(&live))?, jiff::Timestamp::now());
                st.last_backup = s.last_base_backup_time;
                st.rpo_seconds = s.rpo_seconds;
                st.newest_restorable = s.newest_restorable;
                st.oldest_restorable = s.oldest_restorable;
                st.pitr_window_seconds = s.pitr_window_seconds;
                st.alerts.clone_from(&s.alerts);
                st.postgres = Some(s);
                st.immutability = Some(immutability::status(&repo, c, &repo.snapshots()?.0));
            }
            _ => {
                let snapshots = repo.snapshots()?.0;
                let latest = snapshots.iter().rev().find(|s| s.header.component == c.name);
                st.last_backup = latest.map(|s| s.header.time);
                st.newest_restorable = st.last_backup;
                st.oldest_restorable = snapshots.iter().find(|s| s.header.component == c.name).map(|s| s.header.time);
                st.rpo_seconds = st.last_backup.map(|t| now.duration_since(t).as_secs_f64().max(0.0));
                st.immutability = Some(immutability::status(&repo, c, &snapshots));
            }
        }
        st.rpo_met = match (st.rpo_seconds, rpo_obj) {
            (Some(a), Some(o)) => Some(a <= o as f64),
            (None, Some(_)) => Some(false),
            _ => None,
        };
        out.push(st);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().expect("time")
    }

    /// A component with a complete WAL chain, its server read.
    fn measured(unstored: Unstored) -> PgMeasure {
        PgMeasure {
            component: "db".into(),
            base_backups: 1,
            newest_wal_written: Some(at("2026-01-01T11:00:00Z")),
            oldest_restorable: Some(at("2026-01-01T10:00:00Z")),
            server: Some(ServerArchiver { archive_mode: "on".into(), ..ServerArchiver::default() }),
            unstored,
            ..PgMeasure::default()
        }
    }

    const NOW: &str = "2026-01-01T12:00:00Z";

    #[test]
    fn rpo_is_the_age_of_the_oldest_commit_the_repository_lacks() {
        let st = postgres_status(measured(Unstored::Commit(at("2026-01-01T11:59:30Z"))), at(NOW));
        assert_eq!((st.rpo_basis.as_str(), st.rpo_seconds), ("server", Some(30.0)));
        assert_eq!(st.oldest_unstored_commit, Some(at("2026-01-01T11:59:30Z")));
        // Everything before that commit is stored, so a restore reaches it.
        assert_eq!(st.newest_restorable, Some(at("2026-01-01T11:59:30Z")));
        assert_eq!(st.pitr_window_seconds, Some(2.0 * 3600.0 - 30.0));
    }

    #[test]
    fn rpo_is_zero_when_the_repository_lacks_no_commit_however_old_its_wal() {
        let st = postgres_status(measured(Unstored::NoCommit), at(NOW));
        assert_eq!((st.rpo_basis.as_str(), st.rpo_seconds), ("server", Some(0.0)));
        assert_eq!(st.newest_restorable, Some(at(NOW)));
    }

    #[test]
    fn rpo_is_a_bound_when_the_servers_wal_cannot_be_read_or_there_is_no_server() {
        let st = postgres_status(measured(Unstored::Unreadable { stored_end_written: Some(at("2026-01-01T11:50:00Z")) }), at(NOW));
        assert_eq!((st.rpo_basis.as_str(), st.rpo_seconds), ("server-bound", Some(600.0)));
        assert_eq!(st.newest_restorable, Some(at("2026-01-01T11:00:00Z")), "a bound is not a restore point");
        let st = postgres_status(measured(Unstored::NotMeasured), at(NOW));
        assert_eq!((st.rpo_basis.as_str(), st.rpo_seconds), ("archive", Some(3600.0)));
        let mut gap = measured(Unstored::NoCommit);
        gap.oldest_restorable = None;
        let st = postgres_status(gap, at(NOW));
        assert_eq!((st.newest_restorable, st.pitr_window_seconds), (None, None), "without an unbroken chain nothing is restorable");
    }

    #[test]
    fn a_stream_slot_with_no_stream_connected_is_an_alert() {
        let mut m = measured(Unstored::NoCommit);
        m.stream = Some(StreamState { slot: "reprise_db".into(), active: true, ..StreamState::default() });
        assert_eq!(postgres_status(m.clone(), at(NOW)).alerts, Vec::<String>::new());
        m.stream.as_mut().expect("stream").active = false;
        let alerts = postgres_status(m.clone(), at(NOW)).alerts;
        assert!(alerts.len() == 1 && alerts[0].contains("slot reprise_db has no stream connected") && alerts[0].contains("reprise wal-stream db"), "{alerts:?}");
        assert!(!alerts[0].contains("every commit waits"), "the server archives too: {alerts:?}");
        m.server.as_mut().expect("server").archive_mode = "off".into();
        let alerts = postgres_status(m, at(NOW)).alerts;
        assert!(alerts[0].contains("every commit waits"), "only the stream takes WAL: {alerts:?}");
    }

    #[test]
    fn an_archiver_whose_last_attempt_failed_is_an_alert_and_one_that_recovered_is_not() {
        let mut m = measured(Unstored::NoCommit);
        let srv = m.server.as_mut().expect("server");
        srv.last_failed_wal = Some("000000010000000000000007".into());
        srv.last_failed_time = Some(at("2026-01-01T11:30:00Z"));
        srv.last_archived_time = Some(at("2026-01-01T11:00:00Z"));
        let alerts = postgres_status(m.clone(), at(NOW)).alerts;
        assert!(alerts.len() == 1 && alerts[0].contains("archive_command fails: 000000010000000000000007"), "{alerts:?}");
        m.server.as_mut().expect("server").last_archived_time = Some(at("2026-01-01T11:40:00Z"));
        assert_eq!(postgres_status(m.clone(), at(NOW)).alerts, Vec::<String>::new(), "archived since the failure");
        let srv = m.server.as_mut().expect("server");
        srv.last_archived_time = None;
        srv.archive_mode = "off".into();
        assert_eq!(postgres_status(m, at(NOW)).alerts, Vec::<String>::new(), "an old failure of a server that no longer archives");
    }
}
