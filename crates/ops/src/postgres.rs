//! The PostgreSQL glue: `wal-push`, `wal-fetch`, `wal-stream` and
//! `recover-rows` from a plan component, and how a recovering server calls
//! back into this program.
//!
//! The server runs `archive_command` and `restore_command` as command
//! lines; which command line reaches *this* program is the interface's
//! knowledge (its executable, its flags), passed in as a [`FetchCommand`].
//! The spool protocol itself (a started restore feeding its server) lives
//! in `reprise_postgres::restore`, both sides together.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reprise_plan::{ComponentPlan, PostgresMode, PostgresPlan};
use reprise_postgres::restore::{SpoolFetch, Target};
use reprise_postgres::{rows, stream, wal};

use crate::CancelToken;
use crate::error::{OpsError, Result};
use crate::workspace::Workspace;

/// The component's PostgreSQL settings, if it is a PostgreSQL component.
#[must_use]
pub fn pg_plan(c: &ComponentPlan) -> Option<&PostgresPlan> {
    match &c.kind {
        reprise_plan::ComponentKind::Postgres(p) => Some(p),
        reprise_plan::ComponentKind::Files => None,
    }
}

/// The physical PostgreSQL settings `what` needs, or a usage error.
pub fn physical<'a>(c: &'a ComponentPlan, what: &str) -> Result<&'a PostgresPlan> {
    pg_plan(c).filter(|p| p.mode == PostgresMode::Physical).ok_or_else(|| OpsError::usage(format!("{what} needs a physical postgres component; '{}' is not one", c.name)))
}

/// The command lines a PostgreSQL server runs to get WAL back from this
/// program, `%f %p` included.
pub trait FetchCommand: Send + Sync {
    /// For a server the operator starts later: opens the repository itself.
    fn standalone(&self, component: &str) -> String;
    /// For a server this process starts: only asks this process, through
    /// `spool` (no key on disk).
    fn spool_only(&self, spool: &Path, component: &str) -> String;
}

pub(crate) fn spool_fetch(fetch: &Arc<dyn FetchCommand>, component: &str) -> SpoolFetch {
    let fetch = Arc::clone(fetch);
    let component = component.to_owned();
    SpoolFetch(Arc::new(move |spool: &Path| fetch.spool_only(spool, &component)))
}

/// One archived WAL file.
#[derive(Debug, serde::Serialize)]
pub struct WalPushed {
    pub file: PathBuf,
    pub outcome: wal::PushOutcome,
    pub ms: u64,
}

/// `archive_command`: stores one WAL file, durably, never over another.
pub fn wal_push(ws: &Workspace, component: &str, path: &Path) -> Result<WalPushed> {
    let repo = ws.open(ws.component_if_declared(component))?;
    let t = Instant::now();
    let outcome = wal::push(&repo, component, path)?;
    tracing::info!("{}: {:?} in {} ms", path.display(), outcome, t.elapsed().as_millis());
    Ok(WalPushed { file: path.to_owned(), outcome, ms: t.elapsed().as_millis() as u64 })
}

/// Where `wal-fetch` keeps what it prefetched: the folder given, else
/// `reprise-spool` beside the destination.
#[must_use]
pub fn spool_for(destination: &Path, spool: Option<&Path>) -> Option<PathBuf> {
    spool.map(Path::to_path_buf).or_else(|| destination.parent().map(|p| p.join("reprise-spool")))
}

/// `restore_command`, first step: a file an earlier call prefetched, taken
/// without the plan, the storage or a key (recovery goes on while the
/// storage is down).
pub fn wal_fetch_spooled(spool: &Path, file: &str, destination: &Path) -> Result<bool> {
    Ok(wal::take_from_spool(spool, file, destination)?)
}

/// `restore_command` with the repository: `Ok(false)` when the file is not
/// archived (the end of the archive, for recovery).
pub fn wal_fetch(ws: &Workspace, component: &str, file: &str, destination: &Path, spool: Option<&Path>) -> Result<bool> {
    let repo = ws.open(ws.component_if_declared(component))?;
    Ok(wal::fetch(&repo, component, file, destination, spool)? == wal::FetchOutcome::Restored)
}

/// How long a spool-only `restore_command` waits for this process.
pub const SPOOL_TIMEOUT: Duration = Duration::from_mins(30);

/// `restore_command` through the spool: no plan, no repository, no key.
pub fn wal_fetch_from_spool(spool: &Path, file: &str, destination: &Path) -> Result<bool> {
    Ok(reprise_postgres::restore::fetch_from_spool(spool, file, destination, SPOOL_TIMEOUT)?)
}

/// What `wal-stream` is asked to do.
#[derive(Debug, Clone)]
pub struct StreamRequest {
    pub component: String,
    /// Where received WAL waits until the repository holds it (default:
    /// [`default_stream_spool`]).
    pub spool: Option<PathBuf>,
    /// Store every received byte before acknowledging it (RPO 0 with the
    /// server's `synchronous_standby_names`).
    pub synchronous: bool,
    /// Without `synchronous`: how often received WAL is stored.
    pub upload_interval: Duration,
    /// Stop after this long (tests, drills); none: until cancelled.
    pub duration: Option<Duration>,
}

/// Where the stream comes from, known before it starts (said to the
/// operator, who may have to configure the server).
#[derive(Debug)]
pub struct StreamStart {
    pub slot: String,
    pub application_name: String,
    pub spool: PathBuf,
}

/// The spool `wal-stream` uses for a component unless told otherwise: per
/// repository, so that WAL received for one repository is never stored
/// into another (and `restore` knows where to look for WAL left behind).
#[must_use]
pub fn default_stream_spool(ws: &Workspace, repo: &reprise_engine::Repository, component: &str) -> PathBuf {
    ws.cache_dir().join("wal-stream").join(repo.id().to_hex()).join(component)
}

/// Streams WAL into the repository until cancelled or `duration` ends;
/// `started` is told the slot before the loop begins. The loop itself is
/// the source's (`reprise_postgres::stream`); which component, spool and
/// credentials it runs with is decided here.
pub fn wal_stream(ws: &Workspace, request: &StreamRequest, cancel: &CancelToken, started: &mut dyn FnMut(&StreamStart)) -> Result<stream::StreamReport> {
    let c = ws.component(&request.component)?;
    let pg = physical(c, "wal-stream")?;
    let repo = ws.open(Some(c))?;
    let spool = request.spool.clone().unwrap_or_else(|| default_stream_spool(ws, &repo, &c.name));
    let opts = stream::StreamOptions {
        component: c.name.clone(),
        connection: pg.connection.clone(),
        password_env: pg.password_env.clone(),
        spool: spool.clone(),
        synchronous: request.synchronous,
        upload_interval: request.upload_interval,
        duration: request.duration,
    };
    started(&StreamStart { slot: stream::slot_name(&c.name), application_name: stream::application_name(&c.name), spool });
    Ok(stream::stream(&repo, &opts, cancel)?)
}

/// What `wal-stream --upload-only` stored, and from where.
#[derive(Debug, serde::Serialize)]
pub struct SpoolSaved {
    #[serde(flatten)]
    pub report: stream::SpoolReport,
    #[serde(skip)]
    pub spool: PathBuf,
}

/// Stores what a stream's spool holds beyond the repository, with no
/// server: the WAL a killed stream received but had not stored yet.
pub fn save_stream_spool(ws: &Workspace, component: &str, spool: Option<&Path>) -> Result<SpoolSaved> {
    let c = ws.component(component)?;
    physical(c, "wal-stream")?;
    let repo = ws.open(Some(c))?;
    let spool = spool.map_or_else(|| default_stream_spool(ws, &repo, &c.name), Path::to_path_buf);
    let report = stream::save_spool(&repo, &c.name, &spool)?;
    Ok(SpoolSaved { report, spool })
}

/// WAL the local stream spool of a component holds and the repository
/// lacks: a stream killed on this host left it behind, and a restore
/// without it misses those commits (never acknowledged in synchronous
/// mode, but written by the server).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SpoolAhead {
    pub component: String,
    pub spool: PathBuf,
    /// Bytes the spool holds beyond the repository, over all its files.
    pub bytes: u64,
    pub files: usize,
    /// The first segment the repository lacks part of, and how much of it
    /// the repository holds.
    pub first_segment: String,
    pub first_stored_bytes: u64,
}

/// [`SpoolAhead`] for the default spool of `component`, if it holds any.
pub(crate) fn stream_spool_ahead(ws: &Workspace, repo: &reprise_engine::Repository, component: &str) -> Result<Option<SpoolAhead>> {
    let spool = default_stream_spool(ws, repo, component);
    if !spool.exists() {
        return Ok(None);
    }
    let view = wal::ArchiveView::load(repo, component)?;
    let ahead = stream::spool_ahead(&view, &spool);
    Ok(ahead.first().map(|first| SpoolAhead {
        component: component.to_owned(),
        spool: spool.clone(),
        bytes: ahead.iter().map(|a| a.spool_bytes - a.stored_bytes).sum(),
        files: ahead.len(),
        first_segment: first.segment.clone(),
        first_stored_bytes: first.stored_bytes,
    }))
}

/// What `recover-rows` is asked to do (validated flags).
#[derive(Debug, Clone)]
pub struct RecoverRowsRequest {
    pub component: String,
    pub tables: Vec<String>,
    pub at: String,
    pub until: Option<String>,
    pub predicate: Option<String>,
    pub conflicts: rows::ConflictChoice,
    pub database: Option<String>,
    pub apply: bool,
    pub script: Option<PathBuf>,
}

/// The human-error scenario: rows of some tables as they were before an
/// accident, put back where nothing changed them since.
pub fn recover_rows(ws: &Workspace, request: &RecoverRowsRequest, fetch: &Arc<dyn FetchCommand>, cancel: &CancelToken) -> Result<rows::RowRecovery> {
    let c = ws.component(&request.component)?;
    let pg = physical(c, "recover-rows")?;
    let at = Target::parse(&request.at).map_err(|e| OpsError::usage(format!("--at: {e}")))?;
    let until = request.until.as_deref().map(Target::parse).transpose().map_err(|e| OpsError::usage(format!("--until: {e}")))?;
    let database = match &request.database {
        Some(d) => d.clone(),
        None => reprise_postgres::conn::config(&pg.connection, pg.password_env.as_deref())
            .ok()
            .and_then(|c| c.get_dbname().map(str::to_owned))
            .unwrap_or_else(|| "postgres".into()),
    };
    let repo = ws.open(Some(c))?;
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S").to_string();
    let script = request.script.clone().unwrap_or_else(|| PathBuf::from(format!("recover-{}-{stamp}.sql", request.tables[0].replace(['/', '"'], "_"))));
    let scratch = tempfile::Builder::new().prefix("reprise-scratch-").tempdir()?;
    let opts = rows::RowRecoveryOptions {
        component: c.name.clone(),
        tables: request.tables.clone(),
        at,
        until,
        predicate: request.predicate.clone(),
        conflicts: request.conflicts,
        live: pg.connection.clone(),
        password_env: pg.password_env.clone(),
        database,
        apply: request.apply,
        script,
        scratch: scratch.path().join("cluster"),
        spool_fetch: spool_fetch(fetch, &c.name),
        bin: pg.bin_dir.clone(),
        cancel: cancel.clone(),
    };
    let recovery = rows::recover_rows(&repo, &opts)?;
    // It read patient rows out of the backups and, with --apply, wrote
    // into the live database: recorded like every restore.
    crate::ledger::record(ws, &repo, &crate::ledger::recover_rows(&c.name, &recovery))?;
    Ok(recovery)
}
