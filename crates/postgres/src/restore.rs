//! Point-in-time restore of a physical component.
//!
//! 1. pick the base backup that can reach the target;
//! 2. check, before writing anything, that every WAL segment from that
//!    backup to the target is archived (a gap is reported, not discovered
//!    half-way through recovery);
//! 3. restore the data directory (in parallel, every chunk verified; or in
//!    place with `delta`, writing only what differs) and the tablespaces,
//!    each into a folder of its own, never production's unless asked
//!    (`crate::tablespaces` says why the links and `tablespace_map` are
//!    rewritten);
//! 4. write the recovery settings;
//! 5. with `start`, run the server privately, feed it WAL from a spool that
//!    this process fills ahead of replay, wait until it reaches the target
//!    and promotes, and measure the time taken.
//!
//! While a started restore replays, `restore_command` only asks this
//! process for files through a spool folder, so no key is ever written to
//! disk for recovery. Both sides of that protocol are here: the server
//! side ([`SpoolServer`], in this process) and the client side
//! ([`fetch_from_spool`], in the `restore_command` PostgreSQL runs). The
//! command line of the client is the interface's business
//! ([`PitrOptions::spool_fetch`]).
//!
//! The protocol, in the spool folder: the client creates `NAME.want`; the
//! server answers with `NAME` (the file, renamed into place whole),
//! `NAME.missing` (not archived: the end of the archive) or `NAME.error`
//! (why it cannot be read), and removes `NAME.want`.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reprise_engine::format::Id;
use reprise_engine::restore::{RestoreOptions, restore as restore_files};
use reprise_engine::{CancelToken, Progress, Repository};

use crate::cluster::{self, Cluster, OnDrop, PgBin};
use crate::error::{PgError, Result};
use crate::tablespaces::{self, Placement, TablespaceMap};
use crate::wal::{self, ArchiveView};
use crate::walname::{self, Lsn, Segment};

/// Snapshot kind of physical base backups.
pub const KIND_BASE: &str = "postgres-base";

/// Where recovery should stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Replay everything archived.
    Latest,
    /// Stop as soon as the base backup is consistent.
    Immediate,
    Time(jiff::Timestamp),
    Lsn(Lsn),
    /// A restore point made with `pg_create_restore_point`.
    Name(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Latest => f.write_str("latest"),
            Target::Immediate => f.write_str("immediate"),
            Target::Time(t) => write!(f, "{t}"),
            Target::Lsn(l) => write!(f, "lsn {l}"),
            Target::Name(n) => write!(f, "restore point '{n}'"),
        }
    }
}

impl Target {
    /// `latest`, `immediate`, a time (RFC 3339, or `YYYY-MM-DD HH:MM[:SS]`
    /// in the local time zone), an LSN (`0/3000060`, or `lsn:0/3000060`),
    /// or `name:RESTORE_POINT`.
    pub fn parse(s: &str) -> std::result::Result<Target, String> {
        Target::parse_in(s, &jiff::tz::TimeZone::system())
    }

    /// [`Target::parse`], reading a time without offset in `zone`.
    pub fn parse_in(s: &str, zone: &jiff::tz::TimeZone) -> std::result::Result<Target, String> {
        let s = s.trim();
        match s {
            "latest" => return Ok(Target::Latest),
            "immediate" => return Ok(Target::Immediate),
            _ => {}
        }
        if let Some(n) = s.strip_prefix("name:") {
            return if n.is_empty() { Err("empty restore point name after 'name:'".into()) } else { Ok(Target::Name(n.to_owned())) };
        }
        if let Some(l) = s.strip_prefix("lsn:") {
            return l.parse().map(Target::Lsn);
        }
        if s.contains('/') && !s.contains(' ') && !s.contains('T') {
            return s.parse().map(Target::Lsn);
        }
        if let Ok(t) = s.parse::<jiff::Timestamp>() {
            return Ok(Target::Time(t));
        }
        if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
            if let Ok(z) = dt.to_zoned(zone.clone()) {
                return Ok(Target::Time(z.timestamp()));
            }
        }
        Err(format!(
            "'{s}' is not a recovery target: use latest, immediate, a time (2026-11-21T10:30:00Z or \"2026-11-21 11:30:00\"), an LSN (0/3000060) or name:RESTORE_POINT"
        ))
    }
}

/// A base backup, from its snapshot header.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseBackupInfo {
    pub id: Id,
    pub start_lsn: Lsn,
    pub stop_lsn: Lsn,
    pub timeline: u32,
    pub start_time: jiff::Timestamp,
    pub stop_time: jiff::Timestamp,
    pub system_identifier: u64,
    pub segment_size: u64,
    pub bytes: u64,
}

impl BaseBackupInfo {
    #[must_use]
    pub fn start_segment(&self) -> Segment {
        Segment::of_lsn(self.timeline, self.start_lsn, self.segment_size)
    }
    #[must_use]
    pub fn stop_segment(&self) -> Segment {
        Segment::of_lsn(self.timeline, self.stop_lsn, self.segment_size)
    }
}

/// Every base backup of `component`, oldest first.
pub fn base_backups(repo: &Repository, component: &str) -> Result<Vec<BaseBackupInfo>> {
    let (snaps, _) = repo.snapshots()?;
    let mut out: Vec<BaseBackupInfo> = snaps.iter().filter(|s| s.header.component == component).filter_map(base_backup_info).collect();
    out.sort_by_key(|b| b.stop_lsn);
    Ok(out)
}

/// The base backup a snapshot records, if it is one (its header's labels).
#[must_use]
pub fn base_backup_info(s: &reprise_engine::SnapshotInfo) -> Option<BaseBackupInfo> {
    let h = &s.header;
    if h.kind != KIND_BASE {
        return None;
    }
    let l = |k: &str| h.labels.get(&format!("pg.{k}")).cloned().unwrap_or_default();
    let (Ok(start_lsn), Ok(stop_lsn)) = (l("start_lsn").parse::<Lsn>(), l("stop_lsn").parse::<Lsn>()) else { return None };
    Some(BaseBackupInfo {
        id: s.id,
        start_lsn,
        stop_lsn,
        timeline: l("timeline").parse().unwrap_or(1),
        start_time: l("start_time").parse().unwrap_or(h.time),
        stop_time: l("stop_time").parse().unwrap_or(h.time),
        system_identifier: l("system_identifier").parse().unwrap_or(0),
        segment_size: l("segment_size").parse().unwrap_or(walname::DEFAULT_SEGMENT_SIZE),
        bytes: h.summary.bytes,
    })
}

/// The component and base backup a snapshot records, if it is one.
#[must_use]
pub fn base_backup_info_with_component(s: &reprise_engine::SnapshotInfo) -> Option<(String, BaseBackupInfo)> {
    base_backup_info(s).map(|b| (s.header.component.clone(), b))
}

/// Base backups that may reach `target`, best first.
fn candidates(component: &str, bases: &[BaseBackupInfo], target: &Target) -> Result<Vec<BaseBackupInfo>> {
    let none = |reason: String| PgError::NoBaseBackup { component: component.to_owned(), target: target.to_string(), reason };
    if bases.is_empty() {
        return Err(none(format!("there is no base backup: take one with `reprise backup {component}`")));
    }
    let mut list: Vec<BaseBackupInfo> = match target {
        Target::Latest | Target::Immediate | Target::Name(_) => bases.to_vec(),
        Target::Time(t) => bases.iter().filter(|b| b.stop_time <= *t).cloned().collect(),
        Target::Lsn(l) => bases.iter().filter(|b| b.stop_lsn <= *l).cloned().collect(),
    };
    if list.is_empty() {
        let first = &bases[0];
        return Err(none(format!("the oldest base backup ended at {} (LSN {}), after the target", first.stop_time, first.stop_lsn)));
    }
    list.reverse();
    if !matches!(target, Target::Name(_)) {
        list.truncate(1);
    }
    Ok(list)
}

/// What one base backup can be restored to with the WAL the repository
/// holds: any point from its end (when it is consistent) to the end of
/// the WAL archived without a gap from its start.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reach {
    pub from_time: jiff::Timestamp,
    pub from_lsn: Lsn,
    /// When the server wrote the last segment of the unbroken run.
    pub to_time: Option<jiff::Timestamp>,
    /// The end of that segment: no LSN past it is archived without a gap.
    pub to_lsn: Lsn,
    pub to_segment: String,
}

impl std::fmt::Display for Reach {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to = self.to_time.map_or_else(|| "an unknown time".to_owned(), |t| t.to_string());
        write!(f, "{} (LSN {}, the backup's end) to {to} (LSN {}, the end of {})", self.from_time, self.from_lsn, self.to_lsn, self.to_segment)
    }
}

impl Reach {
    /// Whether a restore from this base backup can stop at `target`
    /// (a restore point cannot be placed without replaying: it is not
    /// refused here, recovery says whether it was found).
    #[must_use]
    pub fn holds(&self, target: &Target) -> bool {
        match target {
            Target::Latest | Target::Immediate | Target::Name(_) => true,
            Target::Time(t) => *t >= self.from_time && self.to_time.is_some_and(|end| *t <= end),
            Target::Lsn(l) => *l >= self.from_lsn && *l <= self.to_lsn,
        }
    }
}

/// How far `base` can be restored with the WAL the repository holds now,
/// or `None` when WAL it needs to become consistent is missing.
pub fn reach(repo: &Repository, component: &str, base: &BaseBackupInfo) -> Result<Option<Reach>> {
    wal::expect_system_identifier(base.system_identifier);
    let mut view = ArchiveView::load(repo, component)?;
    for timeline in view.timelines() {
        view.keep_trusted_tail(repo, component, timeline)?;
    }
    let start = base.start_segment();
    let latest_tli = view.timelines().into_iter().next_back().unwrap_or(base.timeline).max(base.timeline);
    let newest_on_latest = view.newest_on(latest_tli).map_or(start.number, |s| s.number);
    let path = wal::required_segments(repo, component, start, latest_tli, newest_on_latest)?;
    let Some(last) = path.iter().take_while(|s| view.contains(**s)).last().copied() else { return Ok(None) };
    if last.number < base.stop_segment().number {
        return Ok(None);
    }
    let seg = base.segment_size;
    Ok(Some(Reach {
        from_time: base.stop_time,
        from_lsn: base.stop_lsn,
        to_time: wal::written(repo, component, &view, last)?,
        to_lsn: Lsn((last.number + 1) * seg),
        to_segment: last.name(seg),
    }))
}

/// The WAL segments recovery from `base` to `target` will ask for, checked
/// present in the archive. Returns them in replay order.
pub fn plan_wal(repo: &Repository, component: &str, base: &BaseBackupInfo, target: &Target) -> Result<Vec<Segment>> {
    wal::expect_system_identifier(base.system_identifier);
    let mut view = ArchiveView::load(repo, component)?;
    // Ranges no trusted writer stored from this server are not WAL to plan on.
    for timeline in view.timelines() {
        view.keep_trusted_tail(repo, component, timeline)?;
    }
    let seg = base.segment_size;
    let start = base.start_segment();
    if let Target::Immediate = target {
        let needed: Vec<Segment> = (start.number..=base.stop_segment().number).map(|n| Segment { timeline: base.timeline, number: n }).collect();
        wal::check_chain(&view, component, &needed)?;
        return Ok(needed);
    }
    let latest_tli = view.timelines().into_iter().next_back().unwrap_or(base.timeline).max(base.timeline);
    let newest_on_latest = view.newest_on(latest_tli).map_or(start.number, |s| s.number);
    let path = wal::required_segments(repo, component, start, latest_tli, newest_on_latest)?;
    let stop_number = base.stop_segment().number;
    let end = match target {
        Target::Lsn(l) => {
            let n = l.0 / seg;
            path.iter().position(|s| s.number == n).map_or(path.len(), |p| p + 1)
        }
        Target::Time(t) => {
            // The first segment last written at or after the target holds it.
            let good = path.iter().take_while(|s| view.contains(**s)).count();
            let (mut lo, mut hi) = (0usize, good);
            while lo < hi {
                let mid = usize::midpoint(lo, hi);
                let modified = wal::written(repo, component, &view, path[mid])?;
                if modified.is_some_and(|m| m >= *t) {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            if lo == good && good == path.len() {
                let newest = path.last().and_then(|s| wal::written(repo, component, &view, *s).ok().flatten());
                return Err(PgError::NoBaseBackup {
                    component: component.to_owned(),
                    target: target.to_string(),
                    reason: format!(
                        "the newest archived WAL was written at {}: changes after it are not archived yet (archive_timeout), restore --at latest to get everything archived",
                        newest.map_or_else(|| "an unknown time".to_owned(), |t| t.to_string())
                    ),
                });
            }
            (lo + 1).min(path.len())
        }
        Target::Latest | Target::Name(_) | Target::Immediate => path.len(),
    };
    // Recovery always needs at least the segments up to the backup's end.
    let min_end = path.iter().position(|s| s.number == stop_number).map_or(path.len(), |p| p + 1);
    let needed = &path[..end.max(min_end).min(path.len())];
    wal::check_chain(&view, component, needed)?;
    Ok(needed.to_vec())
}

/// The `restore_command` that asks this process for WAL through a spool
/// folder (given), with `%f %p` for PostgreSQL to fill in. The program
/// that runs the restore knows its own command line; this crate does not.
#[derive(Clone)]
pub struct SpoolFetch(pub Arc<dyn Fn(&Path) -> String + Send + Sync>);

impl std::fmt::Debug for SpoolFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpoolFetch")
    }
}

#[derive(Debug, Clone)]
pub struct PitrOptions {
    pub component: String,
    pub target: Target,
    pub to: PathBuf,
    /// Start the server, wait for the target, promote.
    pub start: bool,
    /// Update an existing data directory in place.
    pub delta: bool,
    /// Where tablespaces go; by default `<to>.tablespaces/<oid>`.
    pub tablespace_map: TablespaceMap,
    /// `restore_command` for a restore the user starts later.
    pub standalone_fetch: String,
    /// `restore_command` for a restore this process starts: asks this
    /// process for each file through the spool (see [`SpoolServer`]).
    pub spool_fetch: SpoolFetch,
    pub bin: Option<PathBuf>,
    pub threads: usize,
    pub cancel: CancelToken,
    /// Keep the started server running after the command returns.
    pub keep_running: bool,
    /// Extra server settings for a started restore.
    pub settings: Vec<(String, String)>,
    /// Restore this base backup (a snapshot named by its ID) rather than
    /// the one reprise would pick for the target; a target outside its
    /// [`Reach`] is refused before anything is written.
    pub base: Option<Id>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PitrOutcome {
    pub base_backup: String,
    pub base_stop_time: String,
    pub target: String,
    pub wal_segments: usize,
    pub files: u64,
    pub bytes: u64,
    pub bytes_unchanged: u64,
    pub restore_ms: u64,
    pub recovery_ms: u64,
    /// Of `recovery_ms`: from the server's start until it accepted
    /// connections, i.e. reached a consistent state (hot standby).
    pub consistent_ms: u64,
    /// Files restored, recovery, promotion: the measured recovery time.
    pub total_ms: u64,
    pub port: Option<u16>,
    pub socket_dir: Option<PathBuf>,
    /// Where replay ended (LSN), for started restores.
    pub reached_lsn: Option<String>,
    /// Where each tablespace was restored.
    pub tablespaces: Vec<Placement>,
    /// What the restored base backup can reach with the archived WAL
    /// (a base backup restored by its ID).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reach: Option<Reach>,
}

const BLOCK_BEGIN: &str = "# --- reprise restore: recovery settings (removed after promotion) ---";
const BLOCK_END: &str = "# --- end of reprise recovery settings ---";

fn quote_conf(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn recovery_lines(target: &Target, restore_command: &str) -> String {
    let mut s = format!("\n{BLOCK_BEGIN}\nrestore_command = {}\nrecovery_target_timeline = 'latest'\n", quote_conf(restore_command));
    match target {
        Target::Latest => {}
        Target::Immediate => s.push_str("recovery_target = 'immediate'\n"),
        Target::Time(t) => s.push_str(&format!("recovery_target_time = {}\n", quote_conf(&t.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string()))),
        Target::Lsn(l) => s.push_str(&format!("recovery_target_lsn = {}\n", quote_conf(&l.to_string()))),
        Target::Name(n) => s.push_str(&format!("recovery_target_name = {}\n", quote_conf(n))),
    }
    if !matches!(target, Target::Latest) {
        s.push_str("recovery_target_action = 'promote'\n");
    }
    s.push_str(BLOCK_END);
    s.push('\n');
    s
}

/// Removes reprise's recovery block from `postgresql.auto.conf`.
fn remove_recovery_block(data_dir: &Path) -> Result<()> {
    let path = data_dir.join("postgresql.auto.conf");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line == BLOCK_BEGIN {
            inside = true;
        } else if line == BLOCK_END {
            inside = false;
        } else if !inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&path, out).map_err(|e| PgError::io(&path, e))
}

/// Comments out settings that would make a restored copy touch the
/// original server's files (Debian keeps them in /etc).
fn sanitize_config(data_dir: &Path) -> Result<()> {
    let path = data_dir.join("postgresql.conf");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let risky = ["data_directory", "hba_file", "ident_file", "external_pid_file", "include_dir", "include_if_exists", "include", "ssl_cert_file", "ssl_key_file", "ssl_ca_file"];
    let out: String = text
        .lines()
        .map(|l| {
            let key = l.trim_start().split(['=', ' ', '\t']).next().unwrap_or("");
            if risky.contains(&key) { format!("#reprise: {l}\n") } else { format!("{l}\n") }
        })
        .collect();
    std::fs::write(&path, out).map_err(|e| PgError::io(&path, e))
}

/// Where `base`'s tablespaces go for this restore, checked before anything
/// is written (see `crate::tablespaces`).
fn place_tablespaces(repo: &Repository, base: &BaseBackupInfo, opts: &PitrOptions) -> Result<Vec<Placement>> {
    let (index, _) = reprise_engine::MasterIndex::load(repo, &repo.snapshot(&base.id)?.domain)?;
    let body = repo.snapshot_body(&base.id)?;
    let stored = tablespaces::stored(repo, &index, &body.tree, &base.id)?;
    let placements = tablespaces::place(&stored, &opts.to, &opts.tablespace_map, &base.id)?;
    tablespaces::check_targets(&placements, opts.delta)?;
    Ok(placements)
}

/// Fails with the files of `what` a restore found damaged, if any.
fn refuse_damaged(out: &reprise_engine::restore::RestoreOutcome, what: &str, base: &BaseBackupInfo) -> Result<()> {
    let Some(first) = out.damaged.first() else { return Ok(()) };
    Err(PgError::Engine(reprise_engine::Error::Damaged {
        object: format!("{} file(s) of {what} in base backup {}, first {}", out.damaged.len(), base.id.short(), first.path),
        source: reprise_engine::format::FormatError::Malformed(first.reason.clone()),
    }))
}

/// Restores the files of `base` into `opts.to`, and its tablespaces where
/// `placements` say.
fn restore_base(
    repo: &Repository,
    base: &BaseBackupInfo,
    placements: &[Placement],
    opts: &PitrOptions,
    progress: &dyn Progress,
) -> Result<reprise_engine::restore::RestoreOutcome> {
    let owner = cluster::server_account();
    let mut ro = RestoreOptions::new(&opts.to);
    ro.subpath = b"pgdata".to_vec();
    ro.delta = opts.delta;
    ro.owner_override = owner;
    ro.cancel = opts.cancel.clone();
    if opts.threads > 0 {
        ro.threads = opts.threads;
    }
    let out = restore_files(repo, &base.id, &ro, progress)?;
    refuse_damaged(&out, "the data directory", base)?;
    // Configuration kept outside the data directory comes along if the
    // data directory has none (Debian layout), made safe to start here.
    if !opts.to.join("postgresql.conf").exists() {
        let (index, _) = reprise_engine::MasterIndex::load(repo, &repo.snapshot(&base.id)?.domain)?;
        let body = repo.snapshot_body(&base.id)?;
        if let Ok(Some(_)) = reprise_engine::walk::find(repo, &index, &body.tree, b"config") {
            let mut co = RestoreOptions::new(&opts.to);
            co.subpath = b"config".to_vec();
            co.overwrite = true;
            co.owner_override = owner;
            restore_files(repo, &base.id, &co, &reprise_engine::NoProgress)?;
            sanitize_config(&opts.to)?;
        }
    }
    let default_root = {
        let mut p = opts.to.clone().into_os_string();
        p.push(".tablespaces");
        PathBuf::from(p)
    };
    for p in placements {
        let mut to = RestoreOptions::new(&p.location);
        to.subpath = format!("tablespaces/{}", p.oid).into_bytes();
        to.owner_override = owner;
        to.delta = opts.delta;
        to.cancel = opts.cancel.clone();
        if opts.threads > 0 {
            to.threads = opts.threads;
        }
        let restored = restore_files(repo, &base.id, &to, progress)?;
        refuse_damaged(&restored, &format!("tablespace {}", p.oid), base)?;
        if p.location.parent() == Some(default_root.as_path()) {
            // Made by this restore, for the server account alone.
            cluster::hand_over(&default_root, 0o700)?;
        }
    }
    tablespaces::relink(&opts.to, placements)?;
    Ok(out)
}

/// The client side of the spool protocol: asks for `file`, waits for the
/// answer, and moves the file to `dest`. `Ok(false)`: not archived.
pub fn fetch_from_spool(spool: &Path, file: &str, dest: &Path, timeout: Duration) -> Result<bool> {
    let want = spool.join(format!("{file}.want"));
    let deadline = Instant::now() + timeout;
    let mut asked = false;
    let mut next_look = Instant::now();
    loop {
        let ready = spool.join(file);
        if ready.exists() {
            std::fs::rename(&ready, dest).map_err(|e| PgError::Invalid(format!("cannot move {} to {}: {e}", ready.display(), dest.display())))?;
            return Ok(true);
        }
        if spool.join(format!("{file}.missing")).exists() {
            return Ok(false);
        }
        if let Ok(msg) = std::fs::read_to_string(spool.join(format!("{file}.error"))) {
            return Err(PgError::Invalid(format!("{file}: {msg}")));
        }
        if !asked {
            std::fs::write(&want, b"").map_err(|e| PgError::Invalid(format!("cannot ask for {file} in {}: {e}", spool.display())))?;
            asked = true;
        }
        if Instant::now() > deadline {
            return Err(PgError::Invalid(format!("{file}: the restoring process did not answer within {} minutes", timeout.as_secs() / 60)));
        }
        // The restore was stopped and its folder removed (an interrupted
        // drill): nobody will answer, and waiting would outlive it.
        if asked && !spool.is_dir() {
            return Err(PgError::Invalid(format!("{file}: the spool {} is gone: the restore that asked for it was stopped", spool.display())));
        }
        // The restore was killed (SIGKILL, a crash) and its folder stayed:
        // nobody will answer either, and the server would wait for 30
        // minutes, then end recovery where it is.
        if asked && Instant::now() >= next_look {
            next_look = Instant::now() + Duration::from_secs(1);
            if let Some(pid) = spool_server_gone(spool) {
                return Err(PgError::Invalid(format!("{file}: the restoring process (PID {pid}) that served {} is gone", spool.display())));
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The file in a spool naming the process that serves it.
const SPOOL_SERVER_PID: &str = "server.pid";

/// The PID of the spool's server when that process no longer exists.
/// Another account's live process answers EPERM, which counts as alive.
fn spool_server_gone(spool: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(spool.join(SPOOL_SERVER_PID)).ok()?.trim().parse().ok()?;
    (nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) == Err(nix::errno::Errno::ESRCH)).then_some(pid)
}

/// Removes what `dir` holds, keeping the folder itself.
fn empty_folder(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let path = e.path();
        let r = if e.file_type().is_ok_and(|t| t.is_dir()) { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        r.map_err(|err| PgError::io(&path, err))?;
    }
    Ok(())
}

/// Fills the spool with WAL files PostgreSQL asks for (`NAME.want`) and
/// prefetches the segments after each, so that replay does not wait.
///
/// A file it cannot read (damaged, unreadable) is answered with an error,
/// which makes `wal-fetch` exit 126 and recovery stop; the errors are kept
/// (prefetched files too: recovery may ask for one after it failed), to
/// tell the operator which object stopped recovery.
struct SpoolServer {
    stop: Arc<AtomicBool>,
    failure: Arc<parking_lot::Mutex<BTreeMap<String, PgError>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl SpoolServer {
    fn start(repo: Arc<Repository>, component: String, spool: PathBuf) -> SpoolServer {
        // Who answers: `wal-fetch --spool-only` gives up when this process is gone.
        let _ = std::fs::write(spool.join(SPOOL_SERVER_PID), std::process::id().to_string());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let failure = Arc::new(parking_lot::Mutex::new(BTreeMap::new()));
        let first_failure = Arc::clone(&failure);
        let handle = std::thread::spawn(move || {
            let mut ahead: VecDeque<String> = VecDeque::new();
            let put = |name: &str| -> bool {
                let dest = spool.join(name);
                if dest.exists() {
                    return true;
                }
                match wal::read_or_partial(&repo, &component, name) {
                    Ok(Some((_, data))) => {
                        let tmp = spool.join(format!(".{name}.tmp"));
                        if std::fs::write(&tmp, &data).is_ok() {
                            if let Some((uid, gid)) = cluster::server_account() {
                                let _ = std::os::unix::fs::chown(&tmp, Some(uid), Some(gid));
                            }
                            let _ = std::fs::rename(&tmp, &dest);
                        }
                        true
                    }
                    Ok(None) => {
                        let _ = std::fs::write(spool.join(format!("{name}.missing")), b"");
                        false
                    }
                    Err(e) => {
                        let _ = std::fs::write(spool.join(format!("{name}.error")), e.to_string());
                        first_failure.lock().entry(name.to_owned()).or_insert(e);
                        false
                    }
                }
            };
            while !flag.load(Ordering::Relaxed) {
                let wants: Vec<String> = std::fs::read_dir(&spool)
                    .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".want").map(str::to_owned))).collect())
                    .unwrap_or_default();
                for name in &wants {
                    let found = put(name);
                    let _ = std::fs::remove_file(spool.join(format!("{name}.want")));
                    if found && let Some(s) = Segment::parse(name, walname::DEFAULT_SEGMENT_SIZE) {
                        ahead.clear();
                        let mut n = s;
                        for _ in 0..wal::PREFETCH {
                            n = n.next();
                            ahead.push_back(n.name(walname::DEFAULT_SEGMENT_SIZE));
                        }
                    }
                }
                if wants.is_empty() {
                    // Prefetch one segment at a time, checking for requests between.
                    match ahead.pop_front() {
                        Some(next) => {
                            if !put(&next) {
                                ahead.clear();
                            }
                        }
                        None => std::thread::sleep(Duration::from_millis(3)),
                    }
                }
            }
        });
        SpoolServer { stop, failure, handle: Some(handle) }
    }

    /// The first file (in replay order) it could not give recovery, if any.
    fn failure(&self) -> Option<PgError> {
        self.failure.lock().pop_first().map(|(_, e)| e)
    }
}

impl Drop for SpoolServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Restores `opts.component` at `opts.target`. With `opts.start`, returns
/// the running cluster (stopped when dropped unless `keep_running`).
pub fn restore(repo: &Arc<Repository>, opts: &PitrOptions, progress: &dyn Progress) -> Result<(PitrOutcome, Option<Cluster>)> {
    let started = Instant::now();
    repo.require_full("restoring a database")?;
    let bases = base_backups(repo, &opts.component)?;
    let mut pinned_reach = None;
    let list = match opts.base {
        None => candidates(&opts.component, &bases, &opts.target)?,
        Some(id) => {
            let base = bases.iter().find(|b| b.id == id).cloned().ok_or_else(|| PgError::Invalid(format!("snapshot {} is not a base backup of '{}'", id.short(), opts.component)))?;
            let reach = reach(repo, &opts.component, &base)?.ok_or_else(|| PgError::NoBaseBackup {
                component: opts.component.clone(),
                target: opts.target.to_string(),
                reason: format!("WAL base backup {} needs to become consistent is missing from the archive (`reprise check` lists what is there)", id.short()),
            })?;
            if !reach.holds(&opts.target) {
                return Err(PgError::OutOfReach { backup: id.short(), target: opts.target.to_string(), reach: reach.to_string() });
            }
            pinned_reach = Some(reach);
            vec![base]
        }
    };
    let mut last_err = None;
    // Tablespace folders written by earlier attempts.
    let mut written: Vec<PathBuf> = Vec::new();
    let mut attempted = false;
    for base in &list {
        // WAL from another server under this server's names is not taken
        // (docs/FORMAT.md 10.1).
        wal::expect_system_identifier(base.system_identifier);
        let needed = match plan_wal(repo, &opts.component, base, &opts.target) {
            Ok(n) => n,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        if attempted && !opts.delta {
            // A retry with an older base backup starts from empty folders
            // (each was checked empty or absent before the first attempt).
            for dir in std::iter::once(&opts.to).chain(&written) {
                empty_folder(dir)?;
            }
        }
        let placements = place_tablespaces(repo, base, opts)?;
        attempted = true;
        written.extend(placements.iter().map(|p| p.location.clone()));
        let files = restore_base(repo, base, &placements, opts, progress)?;
        let restore_ms = started.elapsed().as_millis() as u64;
        let mut outcome = PitrOutcome {
            base_backup: base.id.to_hex(),
            base_stop_time: base.stop_time.to_string(),
            target: opts.target.to_string(),
            wal_segments: needed.len(),
            files: files.files,
            bytes: files.bytes,
            bytes_unchanged: files.bytes_unchanged,
            restore_ms,
            tablespaces: placements,
            reach: pinned_reach.clone(),
            ..PitrOutcome::default()
        };
        let signal = opts.to.join("recovery.signal");
        std::fs::write(&signal, b"").map_err(|e| PgError::io(&signal, e))?;
        cluster::hand_over(&signal, 0o600)?;
        if !opts.start {
            cluster::append_file(&opts.to.join("postgresql.auto.conf"), &recovery_lines(&opts.target, &opts.standalone_fetch))?;
            outcome.total_ms = started.elapsed().as_millis() as u64;
            return Ok((outcome, None));
        }
        match start_and_recover(repo, opts, &mut outcome, started) {
            Ok(c) => return Ok((outcome, Some(c))),
            Err(e @ PgError::Recovery(_)) if matches!(opts.target, Target::Name(_)) => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| PgError::NoBaseBackup { component: opts.component.clone(), target: opts.target.to_string(), reason: "no base backup reached it".into() }))
}

/// Explains why recovery stopped, from the server log.
fn recovery_failure(c: &Cluster, target: &Target) -> String {
    let tail = c.log_tail(3);
    if tail.contains("recovery ended before configured recovery target was reached") {
        let hint = match target {
            Target::Time(_) => "the archive holds no transaction after that time yet (archiving may be behind: wait for the next WAL switch), or the time is before this base backup",
            Target::Name(_) => "no archived WAL after this base backup holds that restore point",
            Target::Lsn(_) => "the archived WAL does not reach that LSN yet",
            _ => "the archived WAL ends before it",
        };
        format!("recovery ended before reaching {target}: {hint}")
    } else {
        tail
    }
}

fn start_and_recover(repo: &Arc<Repository>, opts: &PitrOptions, outcome: &mut PitrOutcome, started: Instant) -> Result<Cluster> {
    let bin = PgBin::find(opts.bin.as_deref())?;
    let mut work = opts.to.clone().into_os_string();
    work.push(".run");
    let work = PathBuf::from(work);
    std::fs::create_dir_all(&work).map_err(|e| PgError::io(&work, e))?;
    cluster::hand_over(&work, 0o700)?;
    let spool = wal::default_spool(&opts.to);
    std::fs::create_dir_all(&spool).map_err(|e| PgError::io(&spool, e))?;
    cluster::hand_over(&spool, 0o700)?;
    let fetch = (opts.spool_fetch.0)(&spool);
    cluster::append_file(&opts.to.join("postgresql.auto.conf"), &recovery_lines(&opts.target, &fetch))?;
    let hba = work.join("pg_hba.conf");
    std::fs::write(&hba, "local all all trust\n").map_err(|e| PgError::io(&hba, e))?;
    let ident = work.join("pg_ident.conf");
    std::fs::write(&ident, "").map_err(|e| PgError::io(&ident, e))?;
    for f in [&hba, &ident] {
        cluster::hand_over(f, 0o600)?;
    }
    let on_drop = if opts.keep_running { OnDrop::Detach } else { OnDrop::Stop };
    let mut c = Cluster::existing(bin, &opts.to, &work, on_drop)?;
    let mut settings: Vec<(String, String)> = vec![
        ("archive_mode".into(), "off".into()),
        ("ssl".into(), "off".into()),
        ("hba_file".into(), hba.display().to_string()),
        ("ident_file".into(), ident.display().to_string()),
        ("external_pid_file".into(), String::new()),
        ("hot_standby".into(), "on".into()),
    ];
    settings.extend(opts.settings.iter().cloned());
    let server = SpoolServer::start(Arc::clone(repo), opts.component.clone(), spool.clone());
    let t0 = Instant::now();
    c.start(&settings)?;
    // Ready, then out of recovery (promoted at the target, or at the end of the archive).
    let deadline = Duration::from_secs(6 * 3600);
    // A WAL file recovery needed could not be read: that is the cause,
    // and it is damage, not a wrong target (also below).
    c.wait_ready(deadline).map_err(|e| server.failure().unwrap_or(e))?;
    outcome.consistent_ms = t0.elapsed().as_millis() as u64;
    let mut client = None;
    loop {
        if opts.cancel.is_cancelled() {
            return Err(PgError::Interrupted);
        }
        // A server that fails to reach the target shuts itself down: any
        // connection error is followed by a liveness check, not returned.
        if client.is_none() {
            client = c.connect("postgres").ok();
        }
        match client.as_mut().map(|cl| cl.query_one("SELECT pg_is_in_recovery()", &[])) {
            Some(Ok(row)) if !row.get::<_, bool>(0) => break,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => {
                client = None;
                std::thread::sleep(Duration::from_millis(100));
                if !c.alive() {
                    if let Some(e) = server.failure() {
                        return Err(e);
                    }
                    return Err(PgError::Recovery(recovery_failure(&c, &opts.target)));
                }
            }
        }
        if t0.elapsed() > deadline {
            return Err(PgError::Recovery("still in recovery after 6 hours".into()));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut client = client.expect("connected when recovery ended");
    drop(server);
    outcome.recovery_ms = t0.elapsed().as_millis() as u64;
    outcome.total_ms = started.elapsed().as_millis() as u64;
    outcome.port = Some(c.port);
    outcome.socket_dir = Some(c.socket_dir.clone());
    outcome.reached_lsn = client.query_one("SELECT pg_current_wal_lsn()::text", &[]).ok().map(|r| r.get(0));
    remove_recovery_block(&opts.to)?;
    let _ = std::fs::remove_dir_all(&spool);
    Ok(c)
}

#[cfg(test)]
mod target_tests {
    use super::{Target, recovery_lines};
    use jiff::tz::TimeZone;

    fn paris() -> TimeZone {
        TimeZone::get("Europe/Paris").expect("tzdata has Europe/Paris")
    }

    fn time(s: &str) -> Target {
        Target::Time(s.parse().expect("timestamp"))
    }

    #[test]
    fn local_time_as_the_readme_writes_it_is_read_in_the_local_zone() {
        // README: --at "2026-11-21 10:29:00": Paris is UTC+1 in November, +2 in July.
        assert_eq!(Target::parse_in("2026-11-21 10:29:00", &paris()), Ok(time("2026-11-21T09:29:00Z")));
        assert_eq!(Target::parse_in("2026-07-01 10:29:00", &paris()), Ok(time("2026-07-01T08:29:00Z")));
        assert_eq!(Target::parse_in("2026-11-21 10:29", &paris()), Ok(time("2026-11-21T09:29:00Z")));
        assert_eq!(Target::parse_in("2026-11-21 10:29:00.000250", &paris()), Ok(time("2026-11-21T09:29:00.00025Z")));
        // The same words in UTC: no shift.
        assert_eq!(Target::parse_in("2026-11-21 10:29:00", &TimeZone::UTC), Ok(time("2026-11-21T10:29:00Z")));
    }

    #[test]
    fn times_with_an_offset_ignore_the_local_zone() {
        assert_eq!(Target::parse_in("2026-11-21T10:30:00Z", &paris()), Ok(time("2026-11-21T10:30:00Z")));
        assert_eq!(Target::parse_in("2026-11-21T11:30:00+01:00", &paris()), Ok(time("2026-11-21T10:30:00Z")));
        assert_eq!(Target::parse_in(" 2026-11-21T10:30:00.123456Z ", &paris()), Ok(time("2026-11-21T10:30:00.123456Z")));
    }

    #[test]
    fn lsns_names_and_keywords() {
        let lsn = |s: &str| Target::Lsn(s.parse().expect("lsn"));
        assert_eq!(Target::parse("0/3000060"), Ok(lsn("0/3000060")));
        assert_eq!(Target::parse("lsn:16/B374D848"), Ok(lsn("16/B374D848")));
        assert_eq!(Target::parse("name:before-migration"), Ok(Target::Name("before-migration".into())));
        assert_eq!(Target::parse("latest"), Ok(Target::Latest));
        assert_eq!(Target::parse("immediate"), Ok(Target::Immediate));
        for bad in ["name:", "0/XYZ", "yesterday", "2026-13-01 10:00", "lsn:"] {
            assert!(Target::parse(bad).is_err(), "{bad} was accepted");
        }
        let e = Target::parse("yesterday").expect_err("refused");
        assert!(e.contains("2026-11-21T10:30:00Z") && e.contains("name:RESTORE_POINT"), "{e}");
    }

    #[test]
    fn recovery_target_time_keeps_microseconds_in_utc() {
        // PostgreSQL compares commit times to the microsecond: a target
        // rounded to the second, or written without its offset, moves it.
        let lines = recovery_lines(&time("2026-11-21T10:30:00.000001Z"), "true");
        assert!(lines.contains("recovery_target_time = '2026-11-21 10:30:00.000001+00'"), "{lines}");
        // Nanoseconds are cut, never rounded up past a commit.
        let lines = recovery_lines(&time("2026-11-21T10:30:00.0000019Z"), "true");
        assert!(lines.contains("recovery_target_time = '2026-11-21 10:30:00.000001+00'"), "{lines}");
        assert!(!lines.contains("recovery_target_inclusive"), "inclusive is PostgreSQL's default: a commit at the target time is replayed");
        let lines = recovery_lines(&Target::Lsn("0/3000060".parse().expect("lsn")), "true");
        assert!(lines.contains("recovery_target_lsn = '0/3000060'"), "{lines}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spool_whose_restoring_process_was_killed_is_given_up_a_killed_drill_left_its_server_waiting() {
        let spool = tempfile::tempdir().expect("tempdir");
        let mut child = std::process::Command::new("true").spawn().expect("spawn true");
        let dead = child.id();
        child.wait().expect("wait");
        std::fs::write(spool.path().join(SPOOL_SERVER_PID), dead.to_string()).expect("pid file");
        let t = Instant::now();
        let err = fetch_from_spool(spool.path(), "000000010000000000000001", &spool.path().join("out"), Duration::from_mins(1)).expect_err("nobody answers");
        assert!(err.to_string().contains(&format!("(PID {dead})")) && err.to_string().contains("is gone"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5), "gave up after {:?}", t.elapsed());
        // A live server (this process) is waited for.
        std::fs::write(spool.path().join(SPOOL_SERVER_PID), std::process::id().to_string()).expect("pid file");
        assert_eq!(spool_server_gone(spool.path()), None);
    }
}
