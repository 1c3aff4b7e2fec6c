//! `backup`: a plan component (files, or a PostgreSQL base backup or
//! dump), paths, or a stream.
//!
//! What a scheduled backup must decide the same way whoever starts it
//! lives here: the `retain_until` label (legal retention, written into the
//! write-once snapshot header so that nothing later can shorten it), the
//! parent snapshot (the files cache's partner), the storage lock (from the
//! component's objectives), and the refusal to back up into a copy.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use reprise_engine::backup::{BackupOptions, BackupOutcome, backup as engine_backup};
use reprise_engine::cache::FilesCache;
use reprise_engine::format::chunker::ChunkPolicy;
use reprise_engine::source::single_stream;
use reprise_plan::{ComponentPlan, PostgresMode, PostgresPlan};
use reprise_postgres::base::{BaseBackup, BaseBackupOptions};
use reprise_postgres::{logical, restore as pitr};
use reprise_source_files::{FilesOptions, FilesSource, scan_totals};

use crate::error::{Category, OpsError, Result};
use crate::workspace::Workspace;
use crate::{CancelToken, Observer, Verdict, count, postgres::pg_plan};

/// A stream to back up (standard input for the CLI).
pub struct Stream {
    /// The name the stream gets in the snapshot.
    pub name: String,
    pub reader: Box<dyn Read + Send>,
    /// Record an empty stream rather than refuse it.
    pub allow_empty: bool,
}

/// What to back up, and how.
#[derive(Default)]
pub struct BackupRequest {
    /// A plan component (files or PostgreSQL).
    pub component: Option<String>,
    /// Paths, without a component.
    pub paths: Vec<PathBuf>,
    /// A stream, without a component.
    pub stream: Option<Stream>,
    /// The component name for paths or a stream (default `files`/`stdin`).
    pub as_component: Option<String>,
    pub host: Option<String>,
    pub tags: Vec<String>,
    pub excludes: Vec<String>,
    pub threads: Option<usize>,
    /// Read every file again (no files cache, no parent).
    pub no_cache: bool,
    /// Back up into a repository that is a copy of another.
    pub into_copy: bool,
}

/// The snapshot saved, and what the operator should know.
#[derive(Debug, serde::Serialize)]
pub struct BackupReport {
    #[serde(flatten)]
    pub outcome: BackupOutcome,
    /// Said before anything else (a backup into a copy).
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl Verdict for BackupReport {
    fn failure(&self) -> Option<OpsError> {
        let errors = &self.outcome.errors;
        (!errors.is_empty()).then(|| {
            OpsError::new(
                Category::Incomplete,
                format!(
                    "snapshot {} saved without {} listed above: fix their permissions and run the backup again",
                    self.outcome.id.short(),
                    count(errors.len(), "unreadable entry", "unreadable entries")
                ),
            )
        })
    }
}

/// Writes the component's legal retention into the snapshot header
/// (`retain_until`): the header is write-once, so no later plan, `forget`
/// or `--force` can shorten it.
pub fn retain_label(c: &ComponentPlan, opts: &mut BackupOptions) {
    if let Some(period) = c.objectives.retain_for {
        // Calendar years: twenty years of legal retention end on the same
        // date twenty years on, never days early. Counted from the
        // snapshot's own time, which is fixed here.
        let now = jiff::Timestamp::now();
        opts.time = Some(now);
        let until = period.after(now);
        opts.header_labels.insert(reprise_engine::retention::RETAIN_UNTIL.to_owned(), until.to_string());
    }
}

/// Backups go to an original repository; its copies are filled by `copy`
/// (a snapshot written into a copy exists nowhere else, and 3-2-1 counts
/// it twice). Refused unless asked for; the warning when asked for.
fn refuse_copy_target(ws: &Workspace, component: Option<&ComponentPlan>, into_copy: bool) -> Result<Option<String>> {
    let target = ws.target(component)?;
    let Some(plan) = ws.plan_if_any() else { return Ok(None) };
    if let Some((name, original)) = plan.repositories.values().find(|r| r.url == target.url).and_then(|r| r.copy_of.as_ref().map(|o| (&r.name, o))) {
        if !into_copy {
            return Err(OpsError::usage(format!(
                "repository '{name}' is a copy of '{original}' (copy_of): back up to '{original}' and let `reprise copy` fill the copy, or pass --into-copy to back up into the copy anyway (while '{original}' is lost)"
            )));
        }
        return Ok(Some(format!("warning: backing up into '{name}', a copy of '{original}': this snapshot will not be in '{original}'")));
    }
    Ok(None)
}

/// The newest snapshot of the same component from the same host: the
/// files cache is only trusted against it (a full key is needed to read it).
fn parent(repo: &reprise_engine::Repository, component: &str, host: &str) -> Result<Option<reprise_engine::format::Id>> {
    if repo.role() != reprise_engine::format::keys::Role::Full {
        return Ok(None);
    }
    Ok(repo.snapshots()?.0.into_iter().rev().find(|s| s.header.component == component && s.header.host == host).map(|s| s.id))
}

pub fn backup(ws: &Workspace, mut request: BackupRequest, observer: &dyn Observer, cancel: &CancelToken) -> Result<BackupReport> {
    let component = request.component.as_deref().map(|c| ws.component(c)).transpose()?;
    let stdin = request.stream.is_some();
    if component.is_some() && (!request.paths.is_empty() || stdin) {
        return Err(OpsError::usage("give either a component or --path/--stdin, not both"));
    }
    let mut warnings = Vec::new();
    if component.is_some() || !request.paths.is_empty() || stdin {
        warnings.extend(refuse_copy_target(ws, component, request.into_copy)?);
    }
    if let Some((c, pg)) = component.and_then(|c| pg_plan(c).map(|p| (c, p))) {
        let mut opts = BackupOptions::new(&c.name, "postgres");
        if let Some(h) = &request.host {
            opts.host.clone_from(h);
        }
        opts.tags = c.tags.iter().chain(&request.tags).cloned().collect();
        if let Some(t) = request.threads {
            opts.threads = t.max(1);
        }
        retain_label(c, &mut opts);
        let outcome = backup_postgres(ws, c, pg, opts, observer, cancel)?;
        crate::ledger::record(ws, &*ws.open(Some(c))?, &crate::ledger::backup(&outcome))?;
        return Ok(BackupReport { outcome, warnings });
    }
    if component.is_none() && request.paths.is_empty() && !stdin {
        return Err(OpsError::usage("what to back up? name a plan component (reprise backup NAME), or give --path PATH or --stdin"));
    }
    let name = match (component, &request.as_component) {
        (Some(c), _) => c.name.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => if stdin { "stdin" } else { "files" }.to_owned(),
    };
    let (paths, mut excludes, mut tags, one_fs) = match component {
        Some(c) => (c.paths.clone(), c.excludes.clone(), c.tags.clone(), c.one_file_system),
        None => (request.paths.clone(), Vec::new(), Vec::new(), false),
    };
    excludes.extend(request.excludes.iter().cloned());
    tags.extend(request.tags.iter().cloned());
    let files_opts = FilesOptions { excludes: excludes.clone(), one_file_system: one_fs };
    // Validate the source before opening the repository: bad paths change nothing.
    let source = if stdin { None } else { Some(FilesSource::new(&paths, &files_opts)?) };
    let stream = match request.stream.take() {
        Some(s) => Some((s.name.clone(), with_content(s)?)),
        None => None,
    };

    let repo = ws.open(component)?;
    let mut opts = BackupOptions::new(&name, if stdin { "stdin" } else { "files" });
    if let Some(h) = &request.host {
        opts.host.clone_from(h);
    }
    opts.tags = tags;
    opts.excludes = excludes;
    opts.cancel = cancel.clone();
    if let Some(c) = component {
        retain_label(c, &mut opts);
    }
    if let Some(t) = request.threads {
        opts.threads = t.max(1);
    }
    if let Some((stream_name, _)) = &stream {
        opts.paths = vec![stream_name.as_bytes().to_vec()];
    } else {
        opts.paths = paths.iter().map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec()).collect();
        if !request.no_cache {
            opts.files_cache = Some(FilesCache::path_for(&ws.cache_dir(), repo.id(), &opts.host, &name));
            opts.parent = parent(&repo, &name, &opts.host)?;
        }
    }

    let progress = observer.phase("backup");
    let outcome: BackupOutcome = if let Some(source) = source {
        let scan_progress = Arc::clone(&progress);
        let scan_paths: Vec<PathBuf> = paths.clone();
        std::thread::spawn(move || {
            let (b, f) = scan_totals(&scan_paths, &files_opts);
            scan_progress.set_total(b, f);
        });
        engine_backup(&repo, source, &opts, &progress)?
    } else {
        let (stream_name, reader) = stream.expect("a stream when there is no source");
        engine_backup(&repo, single_stream(&stream_name, reader, ChunkPolicy::ContentDefined), &opts, &progress)?
    };
    drop(progress);
    crate::ledger::record(ws, &repo, &crate::ledger::backup(&outcome))?;
    Ok(BackupReport { outcome, warnings })
}

/// The stream, refused when it is empty (before anything is written):
/// `pg_dump ... | reprise backup --stdin` of a dump that failed at once
/// would otherwise record an empty snapshot as a success.
fn with_content(stream: Stream) -> Result<Box<dyn Read + Send>> {
    let mut reader = stream.reader;
    let mut first = Vec::new();
    (&mut reader).take(1).read_to_end(&mut first)?;
    if first.is_empty() && !stream.allow_empty {
        return Err(OpsError::usage(
            "standard input is empty: nothing was saved; check the command feeding it, or pass --allow-empty to record an empty snapshot",
        ));
    }
    Ok(Box::new(std::io::Cursor::new(first).chain(reader)))
}

fn base_options(name: &str, pg: &PostgresPlan) -> BaseBackupOptions {
    BaseBackupOptions {
        component: name.to_owned(),
        connection: pg.connection.clone(),
        password_env: pg.password_env.clone(),
        data_directory: pg.data_directory.clone(),
        archive_timeout: pg.archive_timeout,
        block_size: pg.block_size_kib * 1024,
    }
}

/// The queries of the drill checks that compare with a value recorded at
/// backup time (`recorded = ...`) on `component`, each once.
fn recorded_queries(ws: &Workspace, component: &str) -> Vec<reprise_postgres::recorded::RecordQuery> {
    let mut out: Vec<reprise_postgres::recorded::RecordQuery> = Vec::new();
    let Some(plan) = ws.plan_if_any() else { return out };
    for check in plan.drills.values().flat_map(|d| &d.sql) {
        if check.component == component && matches!(check.expect, reprise_plan::drill::Expectation::Recorded(_)) {
            let q = reprise_postgres::recorded::RecordQuery { database: check.database.clone(), query: check.query.clone() };
            if !out.contains(&q) {
                out.push(q);
            }
        }
    }
    out
}

/// `backup COMPONENT` for a PostgreSQL component: a base backup (physical)
/// or a dump (logical).
fn backup_postgres(ws: &Workspace, c: &ComponentPlan, pg: &PostgresPlan, mut opts: BackupOptions, observer: &dyn Observer, cancel: &CancelToken) -> Result<BackupOutcome> {
    let repo = ws.open(Some(c))?;
    let progress = observer.phase("backup");
    opts.cancel = cancel.clone();
    match pg.mode {
        PostgresMode::Physical => {
            let mut source = BaseBackup::begin(Arc::clone(&repo), base_options(&c.name, pg))?;
            source.record_values(recorded_queries(ws, &c.name));
            opts.kind = pitr::KIND_BASE.into();
            opts.paths = vec![source.info.data_directory.display().to_string().into_bytes()];
            opts.files_cache = Some(FilesCache::path_for(&ws.cache_dir(), repo.id(), &opts.host, &c.name));
            Ok(engine_backup(&repo, source, &opts, &progress)?)
        }
        PostgresMode::Logical => {
            let work = tempfile::Builder::new().prefix("reprise-dump-").tempdir_in(std::env::temp_dir())?;
            let dump = logical::DumpOptions {
                connection: pg.connection.clone(),
                password_env: pg.password_env.clone(),
                databases: pg.databases.clone(),
                jobs: std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u32,
                bin: pg.bin_dir.clone(),
                work: work.path().to_owned(),
            };
            Ok(logical::backup_logical(&repo, &dump, opts, &progress)?)
        }
    }
}
