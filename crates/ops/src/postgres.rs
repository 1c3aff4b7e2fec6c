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
    /// Where partial segments wait (default: under the cache directory).
    pub spool: Option<PathBuf>,
    pub synchronous: bool,
    pub partial_interval: Duration,
    /// Stop after this long (tests, drills); none: until cancelled.
    pub duration: Option<Duration>,
}

/// Where the stream comes from, known before it starts (said to the
/// operator, who may have to configure the server).
#[derive(Debug)]
pub struct StreamStart {
    pub slot: String,
    pub application_name: String,
}

/// Streams WAL into the repository until cancelled or `duration` ends;
/// `started` is told the slot before the loop begins.
pub fn wal_stream(ws: &Workspace, request: &StreamRequest, cancel: &CancelToken, started: &mut dyn FnMut(&StreamStart)) -> Result<stream::StreamReport> {
    let c = ws.component(&request.component)?;
    let pg = physical(c, "wal-stream")?;
    let repo = ws.open(Some(c))?;
    let opts = stream::StreamOptions {
        component: c.name.clone(),
        connection: pg.connection.clone(),
        password_env: pg.password_env.clone(),
        spool: request.spool.clone().unwrap_or_else(|| ws.cache_dir().join("wal-stream").join(&c.name)),
        synchronous: request.synchronous,
        partial_interval: request.partial_interval,
        bin: pg.bin_dir.clone(),
        duration: request.duration,
    };
    started(&StreamStart { slot: stream::slot_name(&c.name), application_name: stream::application_name(&c.name) });
    Ok(stream::stream(&repo, &opts, cancel)?)
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
    Ok(rows::recover_rows(&repo, &opts)?)
}
