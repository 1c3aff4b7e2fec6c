//! `restore`: a snapshot (or part of it) into a directory, or a
//! PostgreSQL component at a point in time (physical: base backup + WAL,
//! optionally started, recovered and promoted, its recovery time
//! measured; logical: a dump loaded into a server).
//!
//! A restore drill runs exactly this, then its validation queries: the
//! measured RTO is the one a real restore would have.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use reprise_engine::format::Id;
use reprise_engine::restore::{RestoreOptions, RestoreOutcome, restore as restore_files};
use reprise_plan::{ComponentPlan, PostgresMode, PostgresPlan};
use reprise_postgres::cluster::Cluster;
use reprise_postgres::restore::{PitrOptions, PitrOutcome, Target};
use reprise_postgres::tablespaces::TablespaceMap;
use reprise_postgres::{logical, restore as pitr};

use crate::error::{Category, OpsError, Result};
use crate::postgres::{FetchCommand, SpoolAhead, pg_plan, spool_fetch, stream_spool_ahead};
use crate::workspace::Workspace;
use crate::{CancelToken, Observer, Verdict, Warning, count, find_snapshot};

/// What to restore, where, and how.
#[derive(Debug, Clone, Default)]
#[allow(clippy::struct_excessive_bools, reason = "independent choices of one request, as the operator states them")]
pub struct RestoreRequest {
    /// A snapshot (`latest`, an ID prefix) with an optional `:SUBPATH`, or
    /// a plan component.
    pub what: String,
    pub to: PathBuf,
    /// Only these paths of the snapshot.
    pub include: Vec<String>,
    pub overwrite: bool,
    /// Update an existing copy in place, writing only what differs.
    pub delta: bool,
    pub threads: Option<usize>,
    /// PostgreSQL: the point in time (`latest`, a time, an LSN, a restore point).
    pub at: Option<String>,
    /// PostgreSQL: start the server, recover, promote.
    pub start: bool,
    pub keep_running: bool,
    /// PostgreSQL: where each tablespace goes (by OID, or under a folder);
    /// by default beside the restored data directory, never the original.
    pub tablespaces: TablespaceMap,
    /// PostgreSQL logical: load into this server (a connection string).
    pub into: Option<String>,
    pub database: Option<String>,
    pub table: Option<String>,
}

/// A restored snapshot of files.
#[derive(Debug, serde::Serialize)]
pub struct FilesRestored {
    pub snapshot: Id,
    pub target: PathBuf,
    pub outcome: RestoreOutcome,
}

/// A restored logical dump.
#[derive(Debug, serde::Serialize)]
pub struct DumpRestored {
    pub snapshot: Id,
    pub to: PathBuf,
    #[serde(flatten)]
    pub outcome: logical::LogicalRestored,
    pub ms: u64,
}

/// A point-in-time restore, and the server when it was started (stopped
/// when dropped, unless asked to keep running).
#[derive(Debug, serde::Serialize)]
pub struct PitrRestored {
    #[serde(flatten)]
    pub outcome: PitrOutcome,
    /// WAL the local stream spool holds and the repository lacks (told
    /// to the observer before the restore began): left out of this restore.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_ahead: Option<SpoolAhead>,
    #[serde(skip)]
    pub cluster: Option<Cluster>,
    #[serde(skip)]
    pub to: PathBuf,
    #[serde(skip)]
    pub delta: bool,
    #[serde(skip)]
    pub keep_running: bool,
}

#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum RestoreReport {
    Files(FilesRestored),
    Dump(DumpRestored),
    Pitr(Box<PitrRestored>),
}

impl Verdict for RestoreReport {
    fn failure(&self) -> Option<OpsError> {
        let RestoreReport::Files(f) = self else { return None };
        let damaged = &f.outcome.damaged;
        (!damaged.is_empty()).then(|| {
            OpsError::new(
                Category::Damaged,
                format!("{} could not be restored from damaged data (listed above); every other file was restored and verified", count(damaged.len(), "entry", "entries")),
            )
        })
    }
}

pub fn restore(ws: &Workspace, request: &RestoreRequest, fetch: &Arc<dyn FetchCommand>, observer: &dyn Observer, cancel: &CancelToken) -> Result<RestoreReport> {
    let (spec, subpath) = match request.what.split_once(':') {
        Some((s, p)) => (s, p.trim_matches('/')),
        None => (request.what.as_str(), ""),
    };
    // A plan component name means its latest snapshot (or, for a
    // database, the state at `at`).
    let component = ws.component_if_declared(spec);
    if let Some((c, pg)) = component.and_then(|c| pg_plan(c).map(|p| (c, p))) {
        return restore_postgres(ws, c, pg, request, fetch, observer, cancel);
    }
    let pg_flags = request.at.is_some() || request.start || !request.tablespaces.by_oid.is_empty() || request.tablespaces.under.is_some() || request.into.is_some();
    if pg_flags && component.is_some() {
        return Err(OpsError::usage("--at, --start, --tablespace and --into apply to PostgreSQL components and snapshots: name one from the plan, or a snapshot ID"));
    }
    let repo = ws.open(component)?;
    // Refused before the snapshot is looked for: a write-only key sees its
    // own domain only, and another writer's snapshot must not read as "not
    // found".
    repo.require_full("restoring")?;
    let snap = match component {
        Some(c) => find_snapshot(&repo, "latest", Some(&c.name))?,
        None => find_snapshot(&repo, spec, None)?,
    };
    // A PostgreSQL snapshot named by its ID restores as what it is (a
    // held base backup exists so that this one can be produced); only a
    // path inside it is a plain file restore.
    if component.is_none() && subpath.is_empty() {
        if snap.header.kind == pitr::KIND_BASE {
            return restore_base_by_id(ws, &repo, &snap, request, fetch, observer, cancel);
        }
        if snap.header.kind == logical::KIND_LOGICAL {
            let pg = ws.component_if_declared(&snap.header.component).and_then(pg_plan);
            return restore_dump(ws, &repo, &snap, pg, request, observer);
        }
    }
    if pg_flags {
        return Err(OpsError::usage(format!(
            "--at, --start, --tablespace and --into apply to PostgreSQL components and snapshots: snapshot {} is a '{}' snapshot",
            snap.id.short(),
            snap.header.kind
        )));
    }
    let mut opts = RestoreOptions::new(&request.to);
    opts.subpath = subpath.as_bytes().to_vec();
    opts.include = request.include.iter().map(|p| p.trim_matches('/').as_bytes().to_vec()).collect();
    opts.overwrite = request.overwrite;
    opts.delta = request.delta;
    opts.cancel = cancel.clone();
    if let Some(t) = request.threads {
        opts.threads = t.max(1);
    }
    let progress = observer.phase("restore");
    let outcome = restore_files(&repo, &snap.id, &opts, progress.as_ref())?;
    drop(progress);
    crate::ledger::record(ws, &repo, &crate::ledger::restore(snap.id, &snap.header.component, &outcome))?;
    Ok(RestoreReport::Files(FilesRestored { snapshot: snap.id, target: request.to.clone(), outcome }))
}

fn restore_postgres(
    ws: &Workspace,
    c: &ComponentPlan,
    pg: &PostgresPlan,
    request: &RestoreRequest,
    fetch: &Arc<dyn FetchCommand>,
    observer: &dyn Observer,
    cancel: &CancelToken,
) -> Result<RestoreReport> {
    let repo = ws.open(Some(c))?;
    if pg.mode == PostgresMode::Logical {
        let at = match request.at.as_deref().map(Target::parse).transpose().map_err(OpsError::usage)? {
            None | Some(Target::Latest) => None,
            Some(Target::Time(t)) => Some(t),
            Some(other) => return Err(OpsError::usage(format!("{other}: a logical component restores a dump, choose latest or a time"))),
        };
        // The newest dump (before `at`), never an older one in place of a
        // damaged newer one (`Repository::newest_snapshot`).
        let snap = repo
            .newest_snapshot(&|h| h.component == c.name && h.kind == logical::KIND_LOGICAL && at.is_none_or(|t| h.time <= t))?
            .ok_or_else(|| OpsError::not_found(format!("no logical backup of '{}'{}", c.name, at.map(|t| format!(" before {t}")).unwrap_or_default())))?;
        return restore_dump(ws, &repo, &snap, Some(pg), request, observer);
    }
    restore_physical(ws, &repo, &c.name, pg.bin_dir.clone(), None, request, fetch, observer, cancel)
}

/// A base backup named by its snapshot ID: restored as itself, to its own
/// end point unless `--at` names a point its archived WAL reaches.
fn restore_base_by_id(
    ws: &Workspace,
    repo: &Arc<reprise_engine::Repository>,
    snap: &reprise_engine::SnapshotInfo,
    request: &RestoreRequest,
    fetch: &Arc<dyn FetchCommand>,
    observer: &dyn Observer,
    cancel: &CancelToken,
) -> Result<RestoreReport> {
    let component = snap.header.component.clone();
    let bin = ws.component_if_declared(&component).and_then(pg_plan).and_then(|pg| pg.bin_dir.clone());
    let mut request = request.clone();
    request.at.get_or_insert_with(|| "immediate".to_owned());
    restore_physical(ws, repo, &component, bin, Some(snap.id), &request, fetch, observer, cancel)
}

#[allow(clippy::too_many_arguments, reason = "one request, told where it comes from")]
fn restore_physical(
    ws: &Workspace,
    repo: &Arc<reprise_engine::Repository>,
    component: &str,
    bin: Option<PathBuf>,
    base: Option<Id>,
    request: &RestoreRequest,
    fetch: &Arc<dyn FetchCommand>,
    observer: &dyn Observer,
    cancel: &CancelToken,
) -> Result<RestoreReport> {
    if request.into.is_some() || request.table.is_some() || request.database.is_some() {
        return Err(OpsError::usage("--into, --database and --table load a logical dump: this is a physical base backup (restore it with --at, --start)"));
    }
    let target = Target::parse(request.at.as_deref().unwrap_or("latest")).map_err(OpsError::usage)?;
    let spool_ahead = stream_spool_ahead(ws, repo, component)?;
    if let Some(a) = &spool_ahead {
        observer.warning(&Warning::SpoolAhead(a.clone()));
    }
    if request.to.exists() && !request.delta && std::fs::read_dir(&request.to).is_ok_and(|mut d| d.next().is_some()) {
        return Err(OpsError::usage(format!("{} is not empty: restore into a new directory, or pass --delta to update an existing copy in place", request.to.display())));
    }
    let opts = PitrOptions {
        component: component.to_owned(),
        target,
        to: std::path::absolute(&request.to)?,
        start: request.start,
        delta: request.delta,
        tablespace_map: request.tablespaces.clone(),
        standalone_fetch: fetch.standalone(component),
        spool_fetch: spool_fetch(fetch, component),
        bin,
        threads: request.threads.unwrap_or(0),
        cancel: cancel.clone(),
        keep_running: request.keep_running,
        settings: Vec::new(),
        base,
    };
    let progress = observer.phase("restore");
    let (outcome, cluster) = pitr::restore(repo, &opts, progress.as_ref())?;
    drop(progress);
    crate::ledger::record(ws, repo, &crate::ledger::restore_postgres(component, None, Some(&outcome.base_backup), &outcome.target, outcome.wal_segments as u64))?;
    Ok(RestoreReport::Pitr(Box::new(PitrRestored { outcome, spool_ahead, cluster, to: request.to.clone(), delta: request.delta, keep_running: request.keep_running })))
}

/// A logical dump: its files into `--to`, then, with `--into`, loaded.
fn restore_dump(ws: &Workspace, repo: &Arc<reprise_engine::Repository>, snap: &reprise_engine::SnapshotInfo, pg: Option<&PostgresPlan>, request: &RestoreRequest, observer: &dyn Observer) -> Result<RestoreReport> {
    if request.start || !request.tablespaces.by_oid.is_empty() || request.tablespaces.under.is_some() {
        return Err(OpsError::usage("--start and --tablespace restore a physical base backup: this is a logical dump (load it with --into)"));
    }
    if request.at.is_some() && !ws.component_if_declared(&snap.header.component).is_some_and(|c| pg_plan(c).is_some_and(|p| p.mode == PostgresMode::Logical)) {
        return Err(OpsError::usage("--at picks a dump of a logical component by time: a snapshot named by its ID is that dump, leave --at out"));
    }
    let progress = observer.phase("restore");
    let t = Instant::now();
    let outcome = logical::restore_logical(
        repo,
        &logical::LogicalRestoreOptions {
            snapshot: snap.id,
            to: request.to.clone(),
            into: request.into.clone(),
            password_env: pg.and_then(|p| p.password_env.clone()),
            database: request.database.clone(),
            table: request.table.clone(),
            jobs: std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u32,
            bin: pg.and_then(|p| p.bin_dir.clone()),
        },
        progress.as_ref(),
    )?;
    drop(progress);
    crate::ledger::record(ws, repo, &crate::ledger::restore_postgres(&snap.header.component, Some(snap.id), None, "dump", 0))?;
    Ok(RestoreReport::Dump(DumpRestored { snapshot: snap.id, to: request.to.clone(), outcome, ms: t.elapsed().as_millis() as u64 }))
}
