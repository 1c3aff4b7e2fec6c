//! `copy`: send snapshots, and the data and WAL they need, to the
//! repositories that mirror the one they were taken to (see
//! `reprise_engine::copy` for the protocol).
//!
//! Sources and destinations are plan repositories: the source of a
//! component is its repository (or the settings' repository), the
//! destinations are the one asked for or every repository whose `copy_of`
//! names the source. Only components declared in the plan are copied
//! (their retention policy is what the copy keeps).
//!
//! Components are grouped by (source, destination, storage lock): one
//! engine copy per group, so that each object gets on the copy the lock
//! it gets on the original. One unreachable destination does not stop the
//! others; each failure is kept with its group. Each repository is opened
//! with its own credentials (`credentials_*` in the plan): a copy between
//! two providers uses two identities in one process.

use std::collections::{BTreeMap, HashMap};

use reprise_engine::Repository;
use reprise_engine::backends::Lock;
use reprise_engine::copy::{self, CopyOptions, CopyReport, Selection};
use reprise_plan::{ComponentKind, ComponentPlan, Plan, PostgresMode};

use crate::error::{Category, OpsError, Result};
use crate::workspace::Workspace;
use crate::{CancelToken, Observer, Verdict, count, immutability::lock_for, retention::policy_of};

/// What `copy` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct CopyRequest {
    /// Components to copy; none: every component of the plan.
    pub components: Vec<String>,
    /// One destination; none: every copy of each source.
    pub to: Option<String>,
    /// Parallel transfers (default: the engine's).
    pub threads: Option<usize>,
    pub dry_run: bool,
}

/// One (source, destination) copy that was done.
#[derive(Debug, serde::Serialize)]
pub struct CopyOutput {
    pub from: String,
    pub to: String,
    pub components: Vec<String>,
    /// Snapshots in the source of components the plan does not declare:
    /// not copied (a copy keeps what the plan's retention says, and
    /// there is none for them), per component.
    pub not_in_plan: BTreeMap<String, usize>,
    #[serde(flatten)]
    pub report: CopyReport,
}

/// One (source, destination) copy that failed.
#[derive(Debug)]
pub struct CopyFailure {
    pub from: String,
    pub to: String,
    pub error: OpsError,
}

/// Every group's result.
#[derive(Debug)]
pub struct CopyRun {
    pub copies: Vec<CopyOutput>,
    pub failures: Vec<CopyFailure>,
    pub groups: usize,
}

impl Verdict for CopyRun {
    fn failure(&self) -> Option<OpsError> {
        if let Some(first) = self.failures.first() {
            if self.groups == 1 {
                return Some(OpsError::new(first.error.category(), first.error.message()));
            }
            return Some(OpsError::new(
                first.error.category(),
                format!("copy failed for {} of {}, each listed above; the others were copied", self.failures.len(), count(self.groups, "destination", "destinations")),
            ));
        }
        let damaged: usize = self.copies.iter().map(|o| o.report.damage.len() + o.report.conflicts.len()).sum();
        (damaged > 0).then(|| {
            OpsError::new(
                Category::Damaged,
                format!("copy left {} behind (damaged on the source, or different on the destination), each listed with its name; the rest was copied: `reprise check --read-data` on the source lists its damage, and what is repaired there is sent by the next copy", count(damaged, "object", "objects")),
            )
        })
    }
}

/// The components copied in one run, and the storage lock their objects get.
type Group<'a> = (Option<Lock>, Vec<&'a ComponentPlan>);

/// (source, destination, lock) → components.
fn groups<'p>(ws: &'p Workspace, plan: &'p Plan, request: &CopyRequest) -> Result<BTreeMap<(String, String, String), Group<'p>>> {
    // A source given in the settings must be a plan repository:
    // destinations are found through the plan's copy_of.
    let forced_source = match &ws.settings().repository {
        Some(r) if plan.repositories.contains_key(r) => Some(r.clone()),
        Some(r) => {
            return Err(OpsError::usage(format!(
                "copy works between repositories of the plan, and '{r}' is not one: pass --repo NAME (or leave it out), and declare the repository under [repositories.NAME]"
            )));
        }
        None => None,
    };
    let explicit = !request.components.is_empty();
    let components: Vec<&ComponentPlan> = if explicit { request.components.iter().map(|n| ws.component(n)).collect::<Result<_>>()? } else { plan.components.values().collect() };
    // Components whose objects get different storage locks (`immutable`,
    // `retain_for`) are copied in separate runs, so that each gets on the
    // copy the lock it gets on the original.
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    for c in components {
        let source = forced_source.clone().unwrap_or_else(|| c.repository.clone());
        let destinations: Vec<String> = match &request.to {
            Some(t) => vec![t.clone()],
            None => plan.copies_of(&source).into_iter().map(|r| r.name.clone()).collect(),
        };
        if destinations.is_empty() && explicit {
            return Err(OpsError::usage(format!(
                "component '{}' backs up to repository '{source}', which has no copy: add copy_of = \"{source}\" to the [repositories.NAME] that mirrors it, or pass --to NAME",
                c.name
            )));
        }
        for d in destinations {
            if d == source {
                return Err(OpsError::usage(format!("--to {d} is the repository component '{}' backs up to: copy to another repository", c.name)));
            }
            let lock = lock_for(c);
            groups.entry((source.clone(), d, format!("{lock:?}"))).or_insert_with(|| (lock, Vec::new())).1.push(c);
        }
    }
    if groups.is_empty() {
        return Err(OpsError::usage(
            "no repository of the plan is a copy of another: add copy_of = \"PRIMARY\" to the [repositories.NAME] that mirrors it, or pass --to NAME",
        ));
    }
    Ok(groups)
}

pub fn copy(ws: &Workspace, request: &CopyRequest, observer: &dyn Observer, cancel: &CancelToken) -> Result<CopyRun> {
    let plan = ws.plan()?;
    if let Some(to) = &request.to {
        ws.named_target(to)?;
    }
    if request.threads == Some(0) {
        return Err(OpsError::usage("--threads 0: give at least 1"));
    }
    let groups = groups(ws, plan, request)?;
    let explicit = !request.components.is_empty();
    let threads = request.threads.unwrap_or(copy::DEFAULT_THREADS);
    let mut run = CopyRun { copies: Vec::new(), failures: Vec::new(), groups: groups.len() };
    let mut undeclared: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    for ((from, to, _), (lock, comps)) in groups {
        let names: Vec<String> = comps.iter().map(|c| c.name.clone()).collect();
        let result = (|| -> Result<CopyReport> {
            let src = ws.open_named(&from)?;
            let backend = ws.backend(&ws.named_target(&to)?, lock)?;
            let dest = copy::open_destination(&src, std::sync::Arc::clone(&backend))?;
            let selections: Vec<Selection> =
                comps.iter().map(|c| Selection { component: c.name.clone(), policy: (!c.objectives.retention.is_empty()).then(|| policy_of(c)) }).collect();
            let copy_plan = copy::plan(&src, &dest, &selections)?;
            let mut wal = Vec::new();
            for c in &comps {
                if let ComponentKind::Postgres(pg) = &c.kind
                    && pg.mode == PostgresMode::Physical
                {
                    wal.push(reprise_postgres::copy::wal_batch(
                        &src,
                        dest.repository(),
                        &c.name,
                        &copy_plan.snapshots,
                        c.objectives.pitr.map(|p| p.length_before(jiff::Timestamp::now())),
                    )?);
                }
            }
            if request.dry_run {
                return Ok(copy::dry_run(&src, &dest, &copy_plan, &wal)?);
            }
            let progress = observer.phase("copy");
            let mut report = copy::execute(&src, dest, copy_plan, &wal, &CopyOptions { threads, cancel: cancel.clone() }, progress.as_ref())?;
            drop(progress);
            crate::ledger::record_copy(ws, &src, &to, backend.as_ref(), &mut report)?;
            Ok(report)
        })();
        match result {
            Ok(report) => {
                // Named components are a choice; with none named, what is
                // left out is said.
                let not_in_plan = if explicit {
                    BTreeMap::new()
                } else {
                    match ws.open_named(&from) {
                        Ok(src) => undeclared.entry(from.clone()).or_insert_with(|| not_declared(&src, plan)).clone(),
                        Err(_) => BTreeMap::new(),
                    }
                };
                run.copies.push(CopyOutput { from, to, components: names, not_in_plan, report });
            }
            Err(error) => run.failures.push(CopyFailure { from, to, error }),
        }
    }
    Ok(run)
}

/// Snapshots per component of the source that the plan does not declare.
fn not_declared(src: &Repository, plan: &Plan) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if let Ok((snapshots, _)) = src.snapshots() {
        for s in snapshots.iter().filter(|s| !plan.components.contains_key(&s.header.component)) {
            *out.entry(s.header.component.clone()).or_insert(0) += 1;
        }
    }
    out
}
