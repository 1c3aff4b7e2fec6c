//! Restore drills (`reprise drill run NAME`): the proof that the backups
//! restore, within the objectives, into something the application could
//! use.
//!
//! A drill is what an incident would be, done on purpose: the plan's
//! components are restored together, the database started privately and
//! recovered (exactly `restore --start`, so the measured time is the one a
//! real restore would have), then checked — the plan's SQL expectations,
//! the documents the database points to (present, with the hash the
//! database recorded), `pg_amcheck`, a full read of the packs the restore
//! used. Every step is timed with a monotonic clock. The scratch copy is
//! health data: it is removed whatever happens (success, failure, Ctrl-C
//! through the [`CancelToken`], a panic through [`Scratch`]'s drop), and the
//! record says it was.
//!
//! The record ([`record::DrillRecord`]) is stored encrypted and write-once
//! in the repository of the drill's first component, with the backups it
//! proves, and its ID is appended to the ledger; `copy` carries both
//! off-site, so the evidence survives the loss of the primary. Reports
//! (Markdown, HTML, PDF, JSON) are rendered from stored records
//! ([`document`]), never from memory: what `drill show` prints is what was
//! kept.
//!
//! A failed validation is a failed drill, recorded like a passed one; a
//! restore that fails is recorded too, with its reason. An interrupted
//! drill is not recorded (it measured nothing), but its scratch copy is
//! removed before it returns.

pub mod document;
pub mod record;
mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reprise_engine::format::Id;
use reprise_engine::restore::{RestoreOptions, restore as restore_files};
use reprise_plan::{ComponentKind, ComponentPlan, DrillPlan, DrillTarget, PostgresMode};
use reprise_postgres::cluster::Cluster;

use crate::error::{Category, OpsError, Result};
use crate::postgres::FetchCommand;
use crate::restore::{RestoreReport, RestoreRequest};
use crate::workspace::Workspace;
use crate::{CancelToken, Observer, Verdict};
use record::{ComponentResult, DrillRecord, DrillVerdict, ObjectiveResult, Phase, SCHEMA, ScratchResult, Validation};

/// A drill to run.
#[derive(Debug, Clone, Default)]
pub struct DrillRequest {
    pub name: String,
    /// Overrides the plan's `scratch`.
    pub scratch: Option<PathBuf>,
}

/// A drill that ran, and where its record is.
#[derive(Debug, serde::Serialize)]
pub struct DrillRun {
    /// The stored record's ID (`drills/<id>`).
    pub id: Id,
    #[serde(flatten)]
    pub record: DrillRecord,
    /// The ledger entry that holds the record's ID.
    pub ledger_index: Option<u64>,
}

impl Verdict for DrillRun {
    fn failure(&self) -> Option<OpsError> {
        (self.record.verdict == DrillVerdict::Failed).then(|| OpsError::new(Category::DrillFailed, failure_summary(&self.record, &self.id)))
    }
}

/// One line: why the drill failed.
fn failure_summary(r: &DrillRecord, id: &Id) -> String {
    let mut why: Vec<String> = Vec::new();
    if let Some(f) = &r.failure {
        why.push(f.clone());
    }
    why.extend(r.failed_validations().map(|v| format!("{} ({})", v.label, v.detail.as_deref().or(v.measured.as_deref()).unwrap_or("failed"))));
    why.extend(r.objectives.iter().filter(|o| !o.met).map(|o| format!("{} of {} not met", o.objective.to_uppercase(), o.component)));
    format!("drill '{}' failed: {}; record {} (`reprise drill show {}`)", r.drill, why.join("; "), id.short(), id.short())
}

/// The drill the plan declares under `name`.
pub fn plan_of<'a>(ws: &'a Workspace, name: &str) -> Result<&'a DrillPlan> {
    let plan = ws.plan()?;
    plan.drills.get(name).ok_or_else(|| {
        let known: Vec<&str> = plan.drills.keys().map(String::as_str).collect();
        OpsError::not_found(format!(
            "the plan declares no drill '{name}'; {}",
            if known.is_empty() { "add one under [drills.NAME] (docs/PLAN.md)".to_owned() } else { format!("drills: {}", known.join(", ")) }
        ))
    })
}

/// The scratch folder of one drill: holds every restored component, and
/// the database running from it. Dropped without [`Scratch::remove`] (a
/// panic, an early return), it still stops the database and removes the
/// folder: health data must not linger.
struct Scratch {
    path: PathBuf,
    clusters: Vec<Cluster>,
    removed: bool,
}

/// The file in a scratch folder naming the process that owns it: `PID
/// START` (START: the process's start time in clock ticks since boot,
/// from `/proc/PID/stat`, so a reused PID is not taken for the owner).
const OWNER_FILE: &str = ".reprise-drill-owner";
/// What scratch folders are called: `reprise-drill-<drill>-<12 hex>`.
const SCRATCH_PREFIX: &str = "reprise-drill-";

/// Scratch folders of the drills running in this process: what a forced
/// exit (a second Ctrl-C, which runs no destructor) must still remove.
static LIVE: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Removes the scratch folders of the drills running in this process, now
/// (their servers must be stopped first: `reprise_postgres::cluster::stop_all`).
/// For an interface exiting at once on a second Ctrl-C; returns them.
pub fn remove_scratch_now() -> Vec<PathBuf> {
    let paths = std::mem::take(&mut *LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    for p in &paths {
        // The drill's own thread may still be writing into it: a few tries.
        for _ in 0..5 {
            if std::fs::remove_dir_all(p).is_ok() || !p.exists() {
                break;
            }
        }
    }
    paths
}

/// `pid`'s start time (field 22 of `/proc/PID/stat`), if it runs.
fn started_at(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

/// Removes the scratch folders under `root` whose owner no longer runs (a
/// drill killed with SIGKILL, a machine that lost power): their servers
/// stopped, their health data gone. A folder without an owner file, or
/// whose owner runs, is left alone. Says what it removed, or could not.
fn remove_leftovers(root: &Path) -> Vec<String> {
    let mut said = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return said };
    for e in entries.flatten() {
        let path = e.path();
        if !e.file_name().to_string_lossy().starts_with(SCRATCH_PREFIX) || !path.is_dir() {
            continue;
        }
        let Ok(owner) = std::fs::read_to_string(path.join(OWNER_FILE)) else { continue };
        let mut fields = owner.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(pid)), Some(Ok(start))) = (fields.next(), fields.next()) else { continue };
        let Ok(pid) = u32::try_from(pid) else { continue };
        if started_at(pid) == Some(start) {
            continue;
        }
        let mut running = false;
        for sub in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            running |= !reprise_postgres::cluster::stop_orphan(&sub.path(), Duration::from_secs(30));
        }
        let outcome = if running {
            Err("its server would not stop".to_owned())
        } else {
            std::fs::remove_dir_all(&path).map_err(|e| e.to_string())
        };
        said.push(match outcome {
            Ok(()) => format!("removed {}, the scratch copy of a drill (process {pid}) that was killed before it could", path.display()),
            Err(e) => format!("cannot remove {}, the scratch copy of a killed drill (process {pid}): {e}; remove it by hand, it holds restored health data", path.display()),
        });
    }
    said
}

impl Scratch {
    fn create(root: &Path, drill: &str) -> Result<Scratch> {
        std::fs::create_dir_all(root).map_err(|e| OpsError::new(Category::Usage, format!("cannot create the drill scratch folder {}: {e}; set [drills.{drill}] scratch to a writable folder", root.display())))?;
        let path = root.join(format!("{SCRATCH_PREFIX}{drill}-{}", hex::encode(reprise_engine::format::crypto::random::<6>())));
        std::fs::create_dir(&path).map_err(|e| OpsError::new(Category::Usage, format!("cannot create {}: {e}; set [drills.{drill}] scratch to a writable folder", path.display())))?;
        // Registered before anything is restored into it.
        LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(path.clone());
        let me = std::process::id();
        if let Err(e) = std::fs::write(path.join(OWNER_FILE), format!("{me} {}\n", started_at(me).unwrap_or(0))) {
            let _ = std::fs::remove_dir_all(&path);
            return Err(OpsError::new(Category::Usage, format!("cannot write in {}: {e}; set [drills.{drill}] scratch to a writable folder", path.display())));
        }
        // The restored server runs as the server account and needs this
        // folder; nobody else may enter it.
        reprise_postgres::cluster::hand_over(&path, 0o700)?;
        Ok(Scratch { path, clusters: Vec::new(), removed: false })
    }

    /// Stops every database and removes the folder; says whether it is gone.
    fn remove(&mut self) -> ScratchResult {
        for c in &mut self.clusters {
            // Immediate: the files are deleted next, so a shutdown
            // checkpoint would write gigabytes for nothing (a fast stop
            // took 18 s of a 5 GB drill's cleanup, BENCHMARKS 6).
            c.stop("immediate");
        }
        self.clusters.clear();
        let error = match std::fs::remove_dir_all(&self.path) {
            Ok(()) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => Some(e.to_string()),
        };
        self.removed = !self.path.exists();
        if self.removed {
            LIVE.lock().unwrap_or_else(std::sync::PoisonError::into_inner).retain(|p| *p != self.path);
        }
        ScratchResult { path: self.path.display().to_string(), removed: self.removed, error }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.removed {
            let _ = self.remove();
        }
    }
}


fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The point in time a drill restores, decided once at its start. A
/// random point is drawn within the reach: after the oldest base backup
/// (`oldest`) and before the end of the unbroken WAL archive (`newest`),
/// since a point nothing restores would fail the drill for the draw, not
/// for the backups.
fn target_time(target: DrillTarget, now: jiff::Timestamp, oldest: Option<jiff::Timestamp>, newest: Option<jiff::Timestamp>) -> jiff::Timestamp {
    let back = |d: Duration| now - jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::ZERO);
    match target {
        DrillTarget::Latest => now,
        DrillTarget::Offset(d) => back(d),
        DrillTarget::Random(d) => {
            // Uniform over the window, never before the oldest base backup
            // (nothing could reach it).
            let from = oldest.map_or(back(d), |o| o.max(back(d)));
            let to = newest.map_or(now, |n| n.min(now));
            let span = (to.as_microsecond() - from.as_microsecond()).max(0);
            let r = u64::from_le_bytes(reprise_engine::format::crypto::random::<8>());
            let pick = if span == 0 { 0 } else { (r % span as u64) as i64 };
            jiff::Timestamp::from_microsecond(from.as_microsecond() + pick).unwrap_or(now)
        }
    }
}

/// What restoring the components left for the validations.
struct Restored {
    /// Component → its running database (index into `Scratch::clusters`).
    databases: Vec<(String, usize)>,
    /// Component → the folder its files were restored into.
    folders: Vec<(String, PathBuf)>,
    /// Snapshots restored, per repository of the components.
    snapshots: Vec<(String, Id)>,
    /// What the restored base backups recorded at backup time.
    recorded: Vec<RecordedAt>,
}

/// The values one restored base backup recorded at backup time
/// (`reprise_postgres::recorded`), and where its restore ended.
struct RecordedAt {
    component: String,
    /// The base backup, short ID, as the validation names it.
    backup: String,
    /// `Err`: the label could not be read (a newer schema, damage).
    values: std::result::Result<reprise_postgres::recorded::Recorded, String>,
    reached: Option<reprise_postgres::walname::Lsn>,
}

/// Runs drill `request.name` of the plan (see the module docs).
pub fn run(ws: &Workspace, request: &DrillRequest, fetch: &Arc<dyn FetchCommand>, observer: &dyn Observer, cancel: &CancelToken) -> Result<DrillRun> {
    let drill = plan_of(ws, &request.name)?;
    let plan = ws.plan()?;
    let components: Vec<&ComponentPlan> = drill.components.iter().map(|c| ws.component(c)).collect::<Result<_>>()?;
    for c in &components {
        if let ComponentKind::Postgres(pg) = &c.kind
            && pg.mode == PostgresMode::Logical
        {
            return Err(OpsError::usage(format!("drill '{}': '{}' is a logical PostgreSQL component; drills restore physical ones (base backup + WAL) and files", drill.name, c.name)));
        }
    }
    // The record goes where the first component's backups are.
    let home = ws.open(components.first().copied())?;
    home.require_full("running a restore drill")?;
    let started = jiff::Timestamp::now();
    let clock = Instant::now();
    let (mut oldest, mut newest) = (None, None::<jiff::Timestamp>);
    if matches!(drill.target, DrillTarget::Random(_)) {
        for c in components.iter().filter(|c| matches!(c.kind, ComponentKind::Postgres(_))) {
            let repo = ws.open(Some(c))?;
            let bases = reprise_postgres::restore::base_backups(&repo, &c.name)?;
            oldest = oldest.max(bases.first().map(|b| b.stop_time));
            // The components are restored to one point: the earliest end.
            if let Some(last) = bases.last()
                && let Some(end) = reprise_postgres::restore::reach(&repo, &c.name, last)?.and_then(|r| r.to_time)
            {
                newest = Some(newest.map_or(end, |n| n.min(end)));
            }
        }
    }
    let target_time = target_time(drill.target, started, oldest, newest);
    let root = request.scratch.clone().or_else(|| drill.scratch.clone()).unwrap_or_else(std::env::temp_dir);
    let leftovers = remove_leftovers(&root);
    for l in &leftovers {
        tracing::warn!("{l}");
    }
    let mut scratch = Scratch::create(&root, &drill.name)?;
    let mut phases = Vec::new();
    let mut results: Vec<ComponentResult> = Vec::new();
    let mut validations = Vec::new();
    let mut failure = None;
    let restored = restore_all(ws, drill, &components, target_time, &mut scratch, fetch, observer, cancel, clock, &mut phases, &mut results);
    let rto_ms = ms(clock.elapsed());
    match restored {
        Ok(restored) => validations = validate::all(ws, drill, &restored, &mut scratch, observer, cancel, &mut phases),
        Err(e) if e.category() == Category::Interrupted => {
            // Nothing measured is worth keeping; the scratch copy goes.
            scratch.remove();
            return Err(e);
        }
        Err(e) => failure = Some(e.message().to_owned()),
    }
    if cancel.is_cancelled() {
        scratch.remove();
        return Err(OpsError::new(Category::Interrupted, format!("drill '{}' interrupted; its scratch copy was removed and nothing was recorded", drill.name)));
    }
    let t = Instant::now();
    let scratch_result = scratch.remove();
    phases.push(Phase { phase: "cleanup".into(), component: None, label: None, ms: ms(t.elapsed()) });
    let objectives = judge(&components, &results, rto_ms);
    let passed = failure.is_none() && scratch_result.removed && validations.iter().all(|v: &Validation| v.outcome != record::Outcome::Fail) && objectives.iter().all(|o| o.met);
    let (host, user) = reprise_engine::repository::whoami();
    let record = DrillRecord {
        schema: SCHEMA.to_owned(),
        drill: drill.name.clone(),
        plan: plan.name.clone(),
        started,
        finished: jiff::Timestamp::now(),
        host,
        user,
        owner: drill.owner.clone(),
        target: drill.target.to_string(),
        target_time,
        components: results,
        phases,
        validations,
        rto_ms,
        objectives,
        scratch: scratch_result,
        leftovers,
        verdict: if passed { DrillVerdict::Passed } else { DrillVerdict::Failed },
        failure,
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|e| OpsError::new(Category::Other, format!("drill record: {e}")))?;
    let id = reprise_engine::drills::save(&home, &json)?;
    let receipt = crate::ledger::record(ws, &home, &crate::ledger::drill(&record, id))?;
    Ok(DrillRun { id, record, ledger_index: receipt.map(|r| r.index) })
}

/// Restores every component into the scratch folder, in the plan's order,
/// timing each phase.
#[allow(clippy::too_many_arguments, reason = "one call site; the pieces are the drill's state as it runs")]
fn restore_all(
    ws: &Workspace,
    drill: &DrillPlan,
    components: &[&ComponentPlan],
    target_time: jiff::Timestamp,
    scratch: &mut Scratch,
    fetch: &Arc<dyn FetchCommand>,
    observer: &dyn Observer,
    cancel: &CancelToken,
    clock: Instant,
    phases: &mut Vec<Phase>,
    results: &mut Vec<ComponentResult>,
) -> Result<Restored> {
    let mut restored = Restored { databases: Vec::new(), folders: Vec::new(), snapshots: Vec::new(), recorded: Vec::new() };
    let loss = |last: Option<jiff::Timestamp>| last.map(|l| (target_time.as_millisecond() - l.as_millisecond()).max(0) as u64);
    for c in components {
        if cancel.is_cancelled() {
            return Err(OpsError::new(Category::Interrupted, "interrupted"));
        }
        let to = scratch.path.join(&c.name);
        match &c.kind {
            ComponentKind::Postgres(_) => {
                let at = match drill.target {
                    DrillTarget::Latest => "latest".to_owned(),
                    _ => target_time.to_string(),
                };
                let request = RestoreRequest { what: c.name.clone(), to: to.clone(), at: Some(at), start: true, ..RestoreRequest::default() };
                let report = crate::restore::restore(ws, &request, fetch, observer, cancel).map_err(|e| e.context(format!("cannot restore '{}' at {target_time}", c.name)))?;
                let RestoreReport::Pitr(p) = report else { return Err(OpsError::new(Category::Other, format!("'{}' did not restore as a physical database", c.name))) };
                let p = *p;
                let o = &p.outcome;
                phases.push(Phase { phase: "restore-files".into(), component: Some(c.name.clone()), label: None, ms: o.restore_ms });
                phases.push(Phase { phase: "startup-consistent".into(), component: Some(c.name.clone()), label: None, ms: o.consistent_ms });
                phases.push(Phase { phase: "wal-replay".into(), component: Some(c.name.clone()), label: None, ms: o.recovery_ms.saturating_sub(o.consistent_ms) });
                let mut cluster = p.cluster.ok_or_else(|| OpsError::new(Category::Other, format!("'{}' was restored but not started", c.name)))?;
                // From here the scratch folder stops it, whatever happens.
                cluster.on_drop = reprise_postgres::cluster::OnDrop::Stop;
                let last_commit = last_replayed_commit(&cluster);
                let base_stop: Option<jiff::Timestamp> = o.base_stop_time.parse().ok();
                let last = last_commit.or(base_stop);
                let snapshot: Option<Id> = o.base_backup.parse().ok();
                if let Some(s) = snapshot {
                    restored.snapshots.push((c.name.clone(), s));
                    restored.recorded.push(RecordedAt {
                        component: c.name.clone(),
                        backup: s.short(),
                        values: recorded_by(ws, c, &s),
                        reached: o.reached_lsn.as_deref().and_then(|l| l.parse().ok()),
                    });
                }
                results.push(ComponentResult {
                    name: c.name.clone(),
                    kind: "postgres".into(),
                    snapshot: Some(o.base_backup.clone()),
                    snapshot_time: base_stop,
                    wal_segments: o.wal_segments as u64,
                    files: o.files,
                    bytes: o.bytes,
                    last_restored: last,
                    reached_lsn: o.reached_lsn.clone(),
                    data_loss_ms: loss(last),
                    ready_after_ms: Some(ms(clock.elapsed())),
                });
                scratch.clusters.push(cluster);
                restored.databases.push((c.name.clone(), scratch.clusters.len() - 1));
            }
            ComponentKind::Files => {
                let repo = ws.open(Some(c))?;
                let snap = repo
                    .newest_snapshot(&|h| h.component == c.name && h.time <= target_time)?
                    .ok_or_else(|| OpsError::not_found(format!("no snapshot of '{}' taken before {target_time}: back it up (`reprise backup {}`) before drilling it", c.name, c.name)))?;
                let mut opts = RestoreOptions::new(&to);
                opts.cancel = cancel.clone();
                let t = Instant::now();
                let progress = observer.phase("restore");
                let outcome = restore_files(&repo, &snap.id, &opts, progress.as_ref())?;
                drop(progress);
                phases.push(Phase { phase: "restore-files".into(), component: Some(c.name.clone()), label: None, ms: ms(t.elapsed()) });
                crate::ledger::record(ws, &repo, &crate::ledger::restore(snap.id, &c.name, &outcome))?;
                if let Some(d) = outcome.damaged.first() {
                    return Err(OpsError::new(Category::Damaged, format!("{} file(s) of '{}' could not be restored from damaged data, first {}: {}", outcome.damaged.len(), c.name, d.path, d.reason)));
                }
                restored.snapshots.push((c.name.clone(), snap.id));
                restored.folders.push((c.name.clone(), to.clone()));
                results.push(ComponentResult {
                    name: c.name.clone(),
                    kind: "files".into(),
                    snapshot: Some(snap.id.to_hex()),
                    snapshot_time: Some(snap.header.time),
                    wal_segments: 0,
                    files: outcome.files,
                    bytes: outcome.bytes,
                    last_restored: Some(snap.header.time),
                    reached_lsn: None,
                    data_loss_ms: loss(Some(snap.header.time)),
                    ready_after_ms: Some(ms(clock.elapsed())),
                });
            }
        }
    }
    Ok(restored)
}

/// The values base backup `id` recorded at backup time (none if it
/// recorded nothing: the plan asked for none then).
fn recorded_by(ws: &Workspace, c: &ComponentPlan, id: &Id) -> std::result::Result<reprise_postgres::recorded::Recorded, String> {
    let repo = ws.open(Some(c)).map_err(|e| e.message().to_owned())?;
    let body = repo.snapshot_body(id).map_err(|e| e.to_string())?;
    body.labels.get(reprise_postgres::recorded::LABEL).map_or_else(|| Ok(reprise_postgres::recorded::Recorded::default()), |text| reprise_postgres::recorded::Recorded::from_label(text))
}

/// The commit time of the last transaction recovery replayed: the newest
/// data the restored database holds.
fn last_replayed_commit(c: &Cluster) -> Option<jiff::Timestamp> {
    let mut client = c.connect("postgres").ok()?;
    let text = reprise_postgres::conn::query_text(&mut client, "SELECT coalesce(to_char(pg_last_xact_replay_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), '')").ok()?;
    text.parse().ok()
}

/// Each component's objectives against what was measured: its RTO is the
/// time from the drill's start until it was usable (components restore one
/// after the other, as one operator would), its RPO the data-loss window.
fn judge(components: &[&ComponentPlan], results: &[ComponentResult], _rto_ms: u64) -> Vec<ObjectiveResult> {
    let mut out = Vec::new();
    for c in components {
        let r = results.iter().find(|r| r.name == c.name);
        if let Some(rto) = c.objectives.rto {
            let measured = r.and_then(|r| r.ready_after_ms);
            out.push(ObjectiveResult { component: c.name.clone(), objective: "rto".into(), target_ms: ms(rto), measured_ms: measured, met: measured.is_some_and(|m| m <= ms(rto)) });
        }
        if let Some(rpo) = c.objectives.rpo {
            let measured = r.and_then(|r| r.data_loss_ms);
            out.push(ObjectiveResult { component: c.name.clone(), objective: "rpo".into(), target_ms: ms(rpo), measured_ms: measured, met: measured.is_some_and(|m| m <= ms(rpo)) });
        }
    }
    out
}

/// A stored drill record and its ID.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredDrill {
    pub id: Id,
    #[serde(flatten)]
    pub record: DrillRecord,
}

/// Every drill record in the repository of the plan's drills (or the
/// default one), oldest first; `name` keeps one drill's.
pub fn list(ws: &Workspace, name: Option<&str>) -> Result<Vec<StoredDrill>> {
    let repo = records_repository(ws, name)?;
    let (records, ignored) = reprise_engine::drills::list(&repo)?;
    for (object, why) in &ignored {
        tracing::warn!("{object}: {why}");
    }
    let mut out = Vec::new();
    for (id, json) in records {
        let record = DrillRecord::from_json(&json).map_err(|e| OpsError::new(Category::Damaged, format!("drills/{}: {e}", id.to_hex())))?;
        if name.is_none_or(|n| record.drill == n) {
            out.push(StoredDrill { id, record });
        }
    }
    out.sort_by_key(|d| d.record.started);
    Ok(out)
}

/// The record named by an ID prefix (or `latest`, or a drill name's latest).
pub fn show(ws: &Workspace, spec: &str) -> Result<(StoredDrill, Vec<StoredDrill>)> {
    let all = list(ws, None)?;
    let spec_l = spec.to_ascii_lowercase();
    let found: Vec<&StoredDrill> = if spec == "latest" {
        all.last().into_iter().collect()
    } else if all.iter().any(|d| d.record.drill == spec) {
        all.iter().rfind(|d| d.record.drill == spec).into_iter().collect()
    } else {
        all.iter().filter(|d| !spec_l.is_empty() && d.id.to_hex().starts_with(&spec_l)).collect()
    };
    let one = match found.as_slice() {
        [one] => (*one).clone(),
        [] => return Err(OpsError::not_found(format!("no drill record {spec}: `reprise drill list` shows them"))),
        _ => return Err(OpsError::usage(format!("drill record {spec} is ambiguous: give more of its ID"))),
    };
    let history = all.into_iter().filter(|d| d.record.drill == one.record.drill && d.record.started <= one.record.started).collect();
    Ok((one, history))
}

/// Where drill records are: the repository of the drill's first component,
/// else the workspace's default repository.
fn records_repository(ws: &Workspace, name: Option<&str>) -> Result<Arc<reprise_engine::Repository>> {
    let first = match (name, ws.plan_if_any()) {
        (Some(n), Some(plan)) => plan.drills.get(n).and_then(|d| d.components.first()).and_then(|c| plan.components.get(c)),
        (None, Some(plan)) => plan.drills.values().next().and_then(|d| d.components.first()).and_then(|c| plan.components.get(c)),
        _ => None,
    };
    ws.open(first)
}

/// The drill records as `plan render` and `plan lint` read them: the
/// stored, administrator-signed records of [`list`], so the rendered plan
/// and its findings cite exactly what `drill history` shows.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordedDrills;

impl crate::plan_doc::DrillRecords for RecordedDrills {
    fn drills(&self, ws: &Workspace) -> Result<Vec<crate::plan_doc::DrillEvidence>> {
        Ok(list(ws, None)?.iter().map(evidence_of).collect())
    }
}

fn evidence_of(d: &StoredDrill) -> crate::plan_doc::DrillEvidence {
    let r = &d.record;
    let ms = |m: u64| Duration::from_millis(m);
    crate::plan_doc::DrillEvidence {
        name: r.drill.clone(),
        id: d.id.to_hex(),
        finished_at: r.finished,
        passed: r.verdict == DrillVerdict::Passed,
        components: r.components.iter().map(|c| c.name.clone()).collect(),
        // A drill that failed before every component was usable measured
        // no RTO: carried as missing, never as the time it took to fail.
        measured_rto: (r.failure.is_none() && r.components.iter().all(|c| c.ready_after_ms.is_some())).then(|| ms(r.rto_ms)),
        // The drill's window is its worst component's.
        achieved_rpo: r.components.iter().filter_map(|c| c.data_loss_ms).max().map(ms),
        objectives: r
            .objectives
            .iter()
            .map(|o| crate::plan_doc::ObjectiveVerdict {
                component: o.component.clone(),
                objective: o.objective.clone(),
                target: Some(ms(o.target_ms)),
                measured: o.measured_ms.map(ms),
                met: o.met,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bug this pins: a random target was drawn up to "now", past the
    /// end of the archived WAL, so a drill failed for its draw (recovery
    /// cannot reach a point the archive does not hold yet).
    #[test]
    #[allow(clippy::duration_suboptimal_units, reason = "the plan's 7d and 60s, as written")]
    fn random_targets_stay_within_the_reach() {
        let now: jiff::Timestamp = "2026-11-26T12:00:00Z".parse().expect("time");
        let oldest: jiff::Timestamp = "2026-11-26T11:00:00Z".parse().expect("time");
        let newest: jiff::Timestamp = "2026-11-26T11:10:00Z".parse().expect("time");
        for _ in 0..1000 {
            let t = target_time(DrillTarget::Random(Duration::from_secs(7 * 86_400)), now, Some(oldest), Some(newest));
            assert!(oldest <= t && t <= newest, "{t} outside {oldest} .. {newest}");
        }
        // The window's own bound wins when it is tighter.
        let t = target_time(DrillTarget::Random(Duration::from_secs(60)), now, Some(oldest), None);
        assert!(t >= now - jiff::SignedDuration::from_secs(60) && t <= now, "{t}");
        assert_eq!(target_time(DrillTarget::Offset(Duration::from_secs(2)), now, None, None), now - jiff::SignedDuration::from_secs(2));
    }
}
