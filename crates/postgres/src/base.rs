//! Physical base backups: the data directory (and tablespaces) read while
//! the server is in non-exclusive backup mode.
//!
//! The snapshot tree has up to three top-level folders:
//!
//! * `pgdata/` — the data directory, minus what PostgreSQL documents as
//!   safe to omit (WAL, temporary and runtime files, unlogged relations but
//!   their init forks), plus the `backup_label` and `tablespace_map` that
//!   `pg_backup_stop` returns;
//! * `tablespaces/<oid>/` — each tablespace's contents;
//! * `config/` — configuration files kept outside the data directory
//!   (Debian keeps `postgresql.conf` in `/etc/postgresql`).
//!
//! Relation files change in place in 8 KiB pages, so they are cut in fixed
//! page-aligned blocks: the backup after a busy day stores the blocks that
//! changed, not whole 1 GiB segments. Every file is read before
//! `pg_backup_stop` is called (a [`SourceEvent::Barrier`] waits for the
//! engine), as the backup protocol requires.

use std::collections::{HashSet, VecDeque};
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use reprise_engine::Repository;
use reprise_engine::format::chunker::ChunkPolicy;
use reprise_engine::format::tree::{Node, NodeKind};
use reprise_engine::source::{Content, SourceEvent};

use crate::conn;
use crate::error::{PgError, Result};
use crate::walname::{Lsn, Segment};

/// Fixed block size for files of a data directory: one 8 KiB page, so that
/// scattered updates store only the pages they touched. Larger blocks make
/// file lists and the index shorter but store up to 4x more after an
/// update-heavy day; docs/BENCHMARKS.md section 6 has the measurement.
pub const DEFAULT_BLOCK: u32 = 8 * 1024;

/// Top-level data-directory folders whose contents are not backed up
/// (PostgreSQL documentation, "Backing Up the Data Directory").
const SKIP_CONTENTS: &[&str] = &["pg_wal", "pg_dynshmem", "pg_notify", "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans", "pg_replslot"];

/// Files never backed up, wherever they are.
const SKIP_FILES: &[&str] = &[
    "postmaster.pid",
    "postmaster.opts",
    "pg_internal.init",
    "backup_label",
    "backup_label.old",
    "tablespace_map",
    "tablespace_map.old",
    "recovery.signal",
    "standby.signal",
    "postgresql.auto.conf.tmp",
];

#[derive(Debug, Clone)]
pub struct BaseBackupOptions {
    pub component: String,
    pub connection: String,
    pub password_env: Option<String>,
    /// The data directory the plan names; checked against the server's.
    pub data_directory: Option<PathBuf>,
    /// How long to wait for the last WAL file of the backup to be archived.
    pub archive_timeout: Duration,
    pub block_size: u32,
}

/// What the server said when the backup started.
#[derive(Debug, Clone)]
pub struct StartInfo {
    pub start_lsn: Lsn,
    pub timeline: u32,
    pub system_identifier: u64,
    pub version_num: u32,
    pub segment_size: u64,
    pub start_time: jiff::Timestamp,
    pub data_directory: PathBuf,
}

/// Checks the server and puts it in backup mode; errors here change nothing.
pub fn start(opts: &BaseBackupOptions) -> Result<(postgres::Client, StartInfo, Vec<(u32, PathBuf)>, Vec<(String, PathBuf)>)> {
    let mut client = conn::connect(&opts.connection, opts.password_env.as_deref())?;
    let version_num: u32 = conn::query_text(&mut client, "SHOW server_version_num")?.parse().unwrap_or(0);
    if version_num < 150_000 {
        return Err(PgError::Invalid(format!("PostgreSQL {} is not supported: reprise needs PostgreSQL 15 or later", version_num / 10_000)));
    }
    let archive_mode = conn::query_text(&mut client, "SHOW archive_mode")?;
    if archive_mode == "off" {
        // Streaming (`reprise wal-stream`) replaces archiving: its slot must exist.
        let slot = crate::stream::slot_name(&opts.component);
        let streaming = client.query_opt("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", &[&slot]).map_err(|e| PgError::sql(&e))?.is_some();
        if !streaming {
            return Err(PgError::NotArchiving(archive_mode));
        }
    }
    let data_dir = PathBuf::from(conn::query_text(&mut client, "SHOW data_directory").map_err(|e| match e {
        PgError::Sql(m) if m.contains("42501") || m.contains("permission") => PgError::Privileges { what: "reading data_directory".into() },
        other => other,
    })?);
    if let Some(expected) = &opts.data_directory {
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        if canon(expected) != canon(&data_dir) {
            return Err(PgError::WrongDataDirectory { plan: expected.clone(), server: data_dir });
        }
    }
    match std::fs::metadata(data_dir.join("PG_VERSION")) {
        Ok(_) => {}
        Err(e) => return Err(PgError::NotADataDirectory { path: data_dir, reason: format!("PG_VERSION: {e}; reprise must run on the database host as root or postgres") }),
    }
    let segment_size: u64 = client
        .query_one("SELECT setting::bigint * CASE unit WHEN '8kB' THEN 8192 WHEN 'MB' THEN 1048576 ELSE 1 END FROM pg_settings WHERE name = 'wal_segment_size'", &[])
        .map_err(|e| PgError::sql(&e))?
        .get::<_, i64>(0) as u64;
    let system_identifier: i64 = client.query_one("SELECT system_identifier FROM pg_control_system()", &[]).map_err(|e| PgError::sql(&e))?.get(0);
    let tablespaces: Vec<(u32, PathBuf)> = client
        .query("SELECT oid::bigint, pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')", &[])
        .map_err(|e| PgError::sql(&e))?
        .iter()
        .map(|r| (r.get::<_, i64>(0) as u32, PathBuf::from(r.get::<_, String>(1))))
        .collect();
    let mut config_files = Vec::new();
    for (setting, name) in [("config_file", "postgresql.conf"), ("hba_file", "pg_hba.conf"), ("ident_file", "pg_ident.conf")] {
        if let Ok(v) = conn::query_text(&mut client, &format!("SHOW {setting}")) {
            let p = PathBuf::from(v);
            if !p.starts_with(&data_dir) && p.is_file() {
                config_files.push((name.to_owned(), p));
            }
        }
    }
    let start_time = jiff::Timestamp::now();
    let label = format!("reprise {} {}", opts.component, start_time);
    let row = client.query_one("SELECT pg_backup_start($1, true)::text", &[&label]).map_err(|e| {
        let err = PgError::sql(&e);
        match &err {
            PgError::Sql(m) if m.contains("42501") => PgError::Privileges { what: "pg_backup_start".into() },
            _ => err,
        }
    })?;
    let start_lsn: Lsn = row.get::<_, String>(0).parse().map_err(PgError::Invalid)?;
    let timeline: i32 = client.query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[]).map_err(|e| PgError::sql(&e))?.get(0);
    Ok((
        client,
        StartInfo { start_lsn, timeline: timeline as u32, system_identifier: system_identifier as u64, version_num, segment_size, start_time, data_directory: data_dir },
        tablespaces,
        config_files,
    ))
}

/// Walks one directory tree, emitting events, with PostgreSQL's exclusions.
struct Walker {
    /// (directory, remaining entry names, names of unlogged relations to skip)
    stack: Vec<(PathBuf, VecDeque<OsString>, HashSet<String>)>,
    /// Whether this tree is the data directory (top-level exclusions apply).
    is_data_dir: bool,
    block: u32,
}

fn meta_node(name: &[u8], md: &std::fs::Metadata) -> Node {
    let kind = if md.is_dir() {
        NodeKind::Dir
    } else if md.file_type().is_symlink() {
        NodeKind::Symlink
    } else if md.is_file() {
        NodeKind::File
    } else {
        NodeKind::Fifo
    };
    let mut n = Node::new(name.to_vec(), kind);
    n.mode = md.mode() & 0o7777;
    n.uid = md.uid();
    n.gid = md.gid();
    n.mtime_ns = md.mtime().saturating_mul(1_000_000_000).saturating_add(md.mtime_nsec());
    n.ctime_ns = md.ctime().saturating_mul(1_000_000_000).saturating_add(md.ctime_nsec());
    n.inode = md.ino();
    n.device = md.dev();
    n.links = md.nlink();
    if kind == NodeKind::File {
        n.size = md.size();
    }
    n
}

/// Relation file names in `names` whose relation has an init fork
/// (`NNNN_init`): unlogged, so their main, fsm and vm forks are skipped.
fn unlogged(names: &VecDeque<OsString>) -> HashSet<String> {
    let inits: HashSet<String> =
        names.iter().filter_map(|n| n.to_str()).filter_map(|n| n.strip_suffix("_init")).filter(|r| r.bytes().all(|b| b.is_ascii_digit())).map(str::to_owned).collect();
    if inits.is_empty() {
        return HashSet::new();
    }
    names
        .iter()
        .filter_map(|n| n.to_str())
        .filter(|n| {
            let rel = n.split(['_', '.']).next().unwrap_or("");
            inits.contains(rel) && !n.ends_with("_init") && !n.contains("_init.")
        })
        .map(str::to_owned)
        .collect()
}

fn list_dir(dir: &Path) -> std::io::Result<VecDeque<OsString>> {
    let mut names: Vec<OsString> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.file_name())).collect();
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names.into())
}

impl Walker {
    fn new(root: &Path, is_data_dir: bool, block: u32) -> std::io::Result<Walker> {
        let names = list_dir(root)?;
        let skip = unlogged(&names);
        Ok(Walker { stack: vec![(root.to_path_buf(), names, skip)], is_data_dir, block })
    }

    /// The next event of this tree, or `None` when it is exhausted (the
    /// caller emits the enclosing EnterDir/LeaveDir).
    fn next_event(&mut self) -> Option<SourceEvent> {
        loop {
            let depth = self.stack.len();
            let (dir, names, skip) = self.stack.last_mut()?;
            let Some(name) = names.pop_front() else {
                self.stack.pop();
                if depth > 1 {
                    return Some(SourceEvent::LeaveDir);
                }
                return None;
            };
            let name_str = name.to_string_lossy().into_owned();
            if SKIP_FILES.contains(&name_str.as_str()) || name_str.starts_with("pgsql_tmp") || skip.contains(&name_str) {
                continue;
            }
            let path = dir.join(&name);
            let md = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Dropped while we walk: normal for a running database.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Some(SourceEvent::Fatal(format!("{}: {e}", path.display()))),
            };
            let mut node = meta_node(name.as_bytes(), &md);
            match node.kind {
                NodeKind::Dir => {
                    let top_level = self.is_data_dir && depth == 1;
                    let children = if top_level && SKIP_CONTENTS.contains(&name_str.as_str()) {
                        VecDeque::new()
                    } else {
                        match list_dir(&path) {
                            Ok(c) => c,
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                            Err(e) => return Some(SourceEvent::Fatal(format!("{}: {e}", path.display()))),
                        }
                    };
                    let skip = unlogged(&children);
                    self.stack.push((path, children, skip));
                    return Some(SourceEvent::EnterDir(node));
                }
                NodeKind::Symlink => {
                    node.target = std::fs::read_link(&path).ok().map(|t| t.into_os_string().into_encoded_bytes());
                    if node.target.is_none() {
                        continue;
                    }
                    return Some(SourceEvent::Leaf(node, None));
                }
                NodeKind::File => {
                    return Some(SourceEvent::Leaf(node, Some(Content::File { path, policy: ChunkPolicy::Fixed(self.block), missing_ok: true })));
                }
                _ => continue,
            }
        }
    }
}

enum Phase {
    Tablespaces(usize),
    Config,
    DataDir,
    AwaitBarrier,
    Done,
}

/// The base backup as a source of events.
pub struct BaseBackup {
    client: Option<postgres::Client>,
    repo: Arc<Repository>,
    opts: BaseBackupOptions,
    pub info: StartInfo,
    tablespaces: Vec<(u32, PathBuf)>,
    config_files: Vec<(String, PathBuf)>,
    phase: Phase,
    walker: Option<Walker>,
    /// The data directory's walker, kept apart: its LeaveDir is emitted by
    /// `stop`, after `backup_label`.
    data_walker: Option<Walker>,
    queue: VecDeque<SourceEvent>,
    barrier: Option<mpsc::Receiver<()>>,
    /// Drill checks answered just before `pg_backup_stop` ([`crate::recorded`]).
    record: Vec<crate::recorded::RecordQuery>,
    recorded: Option<crate::recorded::Recorded>,
}

impl std::fmt::Debug for BaseBackup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BaseBackup").field("component", &self.opts.component).field("start", &self.info.start_lsn.to_string()).finish_non_exhaustive()
    }
}

fn virtual_dir(name: &str) -> Node {
    let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::Dir);
    n.mode = 0o700;
    n.uid = nix::unistd::geteuid().as_raw();
    n.gid = nix::unistd::getegid().as_raw();
    n.mtime_ns = jiff::Timestamp::now().as_nanosecond() as i64;
    n
}

impl BaseBackup {
    /// Connects, checks and starts backup mode.
    pub fn begin(repo: Arc<Repository>, opts: BaseBackupOptions) -> Result<BaseBackup> {
        let (client, info, tablespaces, config_files) = start(&opts)?;
        let mut queue = VecDeque::new();
        if !tablespaces.is_empty() {
            queue.push_back(SourceEvent::EnterDir(virtual_dir("tablespaces")));
        }
        Ok(BaseBackup { client: Some(client), repo, opts, info, tablespaces, config_files, phase: Phase::Tablespaces(0), walker: None, data_walker: None, queue, barrier: None, record: Vec::new(), recorded: None })
    }

    /// Answers these drill checks' queries at backup time, into the
    /// snapshot's sealed body ([`crate::recorded`]).
    pub fn record_values(&mut self, queries: Vec<crate::recorded::RecordQuery>) {
        self.record = queries;
    }

    fn label(&mut self, key: &str, value: impl ToString) {
        self.queue.push_back(SourceEvent::Label { key: format!("pg.{key}"), value: value.to_string(), sealed: false });
    }

    /// Ends backup mode and queues the files and labels it produces.
    fn stop(&mut self) -> Result<()> {
        let mut client = self.client.take().expect("stop runs once");
        let row = client
            .query_one("SELECT lsn::text, labelfile, spcmapfile FROM pg_backup_stop(false)", &[])
            .map_err(|e| PgError::sql(&e))?;
        let stop_lsn: Lsn = row.get::<_, String>(0).parse().map_err(PgError::Invalid)?;
        let labelfile: String = row.get(1);
        let spcmapfile: Option<String> = row.get(2);
        let stop_time = jiff::Timestamp::now();
        let now_ns = stop_time.as_nanosecond() as i64;
        for (name, text) in [("backup_label", Some(labelfile)), ("tablespace_map", spcmapfile.filter(|s| !s.is_empty()))] {
            if let Some(text) = text {
                let mut n = Node::new(name.as_bytes().to_vec(), NodeKind::File);
                n.mode = 0o600;
                n.mtime_ns = now_ns;
                n.uid = std::fs::metadata(&self.info.data_directory).map(|m| m.uid()).unwrap_or(0);
                n.gid = std::fs::metadata(&self.info.data_directory).map(|m| m.gid()).unwrap_or(0);
                self.queue.push_back(SourceEvent::Leaf(n, Some(Content::Bytes { data: text.into_bytes(), policy: ChunkPolicy::Fixed(self.opts.block_size) })));
            }
        }
        self.queue.push_back(SourceEvent::LeaveDir);
        let seg = self.info.segment_size;
        let stop_wal = Segment::of_lsn(self.info.timeline, stop_lsn, seg).name(seg);
        // The backup is restorable only once its last WAL file is archived.
        crate::wal::wait_archived(&self.repo, &self.opts.component, &stop_wal, self.opts.archive_timeout)?;
        let start_wal = Segment::of_lsn(self.info.timeline, self.info.start_lsn, seg).name(seg);
        let info = self.info.clone();
        self.label("start_lsn", info.start_lsn);
        self.label("stop_lsn", stop_lsn);
        self.label("timeline", info.timeline);
        self.label("start_wal", start_wal);
        self.label("stop_wal", stop_wal);
        self.label("start_time", info.start_time);
        self.label("stop_time", stop_time);
        self.label("system_identifier", info.system_identifier);
        self.label("version_num", info.version_num);
        self.label("segment_size", seg);
        self.label("data_directory", info.data_directory.display());
        self.label("tablespaces", self.tablespaces.iter().map(|(oid, _)| oid.to_string()).collect::<Vec<_>>().join(","));
        if let Some(r) = self.recorded.take() {
            // Query answers can be health data: sealed to the recovery key.
            let value = serde_json::to_string(&r).map_err(|e| PgError::Invalid(e.to_string()))?;
            self.queue.push_back(SourceEvent::Label { key: crate::recorded::LABEL.to_owned(), value, sealed: true });
        }
        Ok(())
    }
}

impl Iterator for BaseBackup {
    type Item = SourceEvent;

    fn next(&mut self) -> Option<SourceEvent> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Some(ev);
            }
            if let Some(w) = &mut self.walker {
                if let Some(ev) = w.next_event() {
                    return Some(ev);
                }
                self.walker = None;
                self.queue.push_back(SourceEvent::LeaveDir);
                continue;
            }
            match self.phase {
                Phase::Tablespaces(i) => {
                    if let Some((oid, path)) = self.tablespaces.get(i).cloned() {
                        self.phase = Phase::Tablespaces(i + 1);
                        match Walker::new(&path, false, self.opts.block_size) {
                            Ok(w) => {
                                self.walker = Some(w);
                                return Some(SourceEvent::EnterDir(virtual_dir(&oid.to_string())));
                            }
                            Err(e) => return Some(SourceEvent::Fatal(format!("tablespace {oid} at {}: {e}", path.display()))),
                        }
                    }
                    if !self.tablespaces.is_empty() {
                        self.queue.push_back(SourceEvent::LeaveDir);
                    }
                    self.phase = Phase::Config;
                }
                Phase::Config => {
                    self.phase = Phase::DataDir;
                    if !self.config_files.is_empty() {
                        self.queue.push_back(SourceEvent::EnterDir(virtual_dir("config")));
                        for (name, path) in &self.config_files {
                            if let Ok(md) = std::fs::metadata(path) {
                                let node = meta_node(name.as_bytes(), &md);
                                self.queue.push_back(SourceEvent::Leaf(node, Some(Content::File { path: path.clone(), policy: ChunkPolicy::ContentDefined, missing_ok: true })));
                            }
                        }
                        self.queue.push_back(SourceEvent::LeaveDir);
                    }
                }
                Phase::DataDir => {
                    self.phase = Phase::AwaitBarrier;
                    let dir = self.info.data_directory.clone();
                    let md = match std::fs::metadata(&dir) {
                        Ok(m) => m,
                        Err(e) => return Some(SourceEvent::Fatal(format!("{}: {e}", dir.display()))),
                    };
                    match Walker::new(&dir, true, self.opts.block_size) {
                        Ok(w) => {
                            self.queue.push_back(SourceEvent::EnterDir(meta_node(b"pgdata", &md)));
                            self.data_walker = Some(w);
                        }
                        Err(e) => return Some(SourceEvent::Fatal(format!("{}: {e}", dir.display()))),
                    }
                }
                Phase::AwaitBarrier => {
                    if let Some(w) = &mut self.data_walker {
                        if let Some(ev) = w.next_event() {
                            return Some(ev);
                        }
                        self.data_walker = None;
                        let (tx, rx) = mpsc::channel();
                        self.barrier = Some(rx);
                        return Some(SourceEvent::Barrier(tx));
                    }
                    if let Some(rx) = self.barrier.take() {
                        if rx.recv().is_err() {
                            return None; // the backup stopped; nothing more to say
                        }
                        self.phase = Phase::Done;
                        // Before the stop LSN, so any restore of this
                        // backup contains what the values saw.
                        if !self.record.is_empty() {
                            self.recorded = Some(crate::recorded::capture(&self.opts.connection, self.opts.password_env.as_deref(), &self.record));
                        }
                        if let Err(e) = self.stop() {
                            return Some(SourceEvent::Fatal(e.to_string()));
                        }
                    }
                }
                Phase::Done => return None,
            }
        }
    }
}
