//! Retention: `forget` (the plan's policies, and for PostgreSQL the WAL
//! they no longer need), `prune` (delete what no snapshot needs) and legal
//! holds.
//!
//! The mapping from the plan's objectives to the engine's [`Policy`] lives
//! here, once: `forget` and `copy` (what a copy keeps) must read the same
//! policy, whichever interface runs them.

use std::collections::HashSet;
use std::time::Duration;

use reprise_engine::holds::{self, HoldEntry};
use reprise_engine::prune::{PruneOptions, PruneReport};
use reprise_engine::retention::{self, ForgetOutcome, Policy};
use reprise_engine::{Repository, format::Id};
use reprise_plan::{ComponentPlan, PostgresMode};
use reprise_postgres::expire::{self, WalExpiry, WalSweep};
use reprise_postgres::restore::BaseBackupInfo;

use crate::error::{Category, OpsError, Result};
use crate::workspace::Workspace;
use crate::{Verdict, count, find_snapshot, immutability, postgres::pg_plan};

/// The engine's form of a component's retention policy (also what `copy`
/// keeps on the destination).
#[must_use]
pub fn policy_of(c: &ComponentPlan) -> Policy {
    let r = &c.objectives.retention;
    // `keep_within = "1y"` is a calendar year behind now.
    let within = r.keep_within.map(|p| p.length_before(jiff::Timestamp::now()));
    Policy { last: r.keep_last, within, hourly: r.hourly, daily: r.daily, weekly: r.weekly, monthly: r.monthly, yearly: r.yearly }
}

/// One component's `forget`: its snapshots, and for PostgreSQL its WAL.
#[derive(Debug, serde::Serialize)]
pub struct ComponentForget {
    #[serde(flatten)]
    pub outcome: ForgetOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalExpiry>,
}

/// Which components to apply their policies to (none named: every
/// component that has one).
#[derive(Debug, Clone)]
pub struct ForgetRequest {
    pub components: Vec<String>,
    pub dry_run: bool,
    /// Between marking WAL for deletion and `prune` deleting it: the time
    /// left to undo a mistaken forget.
    pub grace: Duration,
}

impl Default for ForgetRequest {
    fn default() -> Self {
        ForgetRequest { components: Vec::new(), dry_run: false, grace: reprise_engine::prune::DEFAULT_GRACE }
    }
}

/// Applies each component's retention policy; `done` sees each
/// component's outcome as soon as it is final (removals are not undone by
/// a later component's failure, so they are reported as they happen).
pub fn forget(ws: &Workspace, request: &ForgetRequest, done: &mut dyn FnMut(&ComponentForget)) -> Result<Vec<ComponentForget>> {
    let plan = ws.plan()?;
    let components: Vec<&ComponentPlan> = if request.components.is_empty() {
        let with_policy: Vec<&ComponentPlan> = plan.components.values().filter(|c| !c.objectives.retention.is_empty()).collect();
        if with_policy.is_empty() {
            return Err(OpsError::usage(
                "no component of the plan has a retention policy: add retention = { keep_within = \"7d\", daily = 30, ... } to a component's objectives",
            ));
        }
        with_policy
    } else {
        request.components.iter().map(|n| ws.component(n)).collect::<Result<_>>()?
    };
    let mut outcomes = Vec::new();
    for c in components {
        let repo = ws.open(Some(c))?;
        let physical = pg_plan(c).is_some_and(|pg| pg.mode == PostgresMode::Physical);
        // Read before forget removes any: what restores reached before.
        let bases_before = if physical { reprise_postgres::restore::base_backups(&repo, &c.name)? } else { Vec::new() };
        let outcome = retention::forget(&repo, &c.name, &policy_of(c), request.dry_run)?;
        let wal = if physical { Some(expire_wal(&repo, c, &bases_before, &outcome, request.grace, request.dry_run)?) } else { None };
        if !request.dry_run {
            crate::ledger::record(ws, &repo, &crate::ledger::forget(&outcome, wal.as_ref()))?;
        }
        let one = ComponentForget { outcome, wal };
        done(&one);
        outcomes.push(one);
    }
    Ok(outcomes)
}

/// WAL retention after the snapshot decision: the window is the plan's
/// `pitr` objective, or else the retention's `keep_within` (the seed writes
/// "7 days of point-in-time recovery" as the latter).
fn expire_wal(repo: &Repository, c: &ComponentPlan, before: &[BaseBackupInfo], outcome: &ForgetOutcome, grace: Duration, dry_run: bool) -> Result<WalExpiry> {
    let going: HashSet<_> = outcome.snapshots.iter().filter(|v| !v.keep).map(|v| v.id).collect();
    let kept: Vec<_> = before.iter().filter(|b| !going.contains(&b.id)).cloned().collect();
    let window = c.objectives.pitr.or(c.objectives.retention.keep_within).map(|p| p.length_before(jiff::Timestamp::now()));
    Ok(expire::expire(repo, &c.name, before, &kept, window, grace, dry_run)?)
}

/// What `prune` is asked to do (the flags, validated).
#[derive(Debug, Clone, Default)]
pub struct PruneRequest {
    pub grace: Duration,
    /// Fraction (0 to 1) of unused space a pack may keep before repacking.
    pub max_unused: f64,
    pub max_repack: Option<u64>,
    pub dry_run: bool,
}

/// `prune`'s report, with its verdict: the garbage collection is done and
/// reported either way, and a lock that could not be lengthened makes the
/// run fail, so that a scheduler sees it.
#[derive(Debug, serde::Serialize)]
pub struct Prune {
    #[serde(flatten)]
    pub report: PruneReport,
    /// The sweep of the WAL `forget` marked.
    pub wal: WalSweep,
}

impl Verdict for Prune {
    fn failure(&self) -> Option<OpsError> {
        let l = &self.report.locks;
        l.error.as_ref().map(|e| OpsError::new(Category::Other, format!("{} could not be read or lengthened; first: {e}", count(l.packs_failed.max(1), "pack lock", "pack locks"))))
    }
}

pub fn prune(ws: &Workspace, request: &PruneRequest) -> Result<Prune> {
    let repo = ws.open(None)?;
    // The mode a pack with no lock gets when a retained snapshot needs it
    // locked longer: the plan knows which components are `immutable`
    // (without a plan, GOVERNANCE: the weaker mode, liftable by an
    // administrator, rather than an irrevocable guess).
    let lock_modes = ws
        .plan_if_any()
        .map(|p| p.components.values().filter_map(|c| immutability::lock_for(c).map(|l| (c.name.clone(), l.mode))).collect())
        .unwrap_or_default();
    let opts = PruneOptions {
        grace: request.grace,
        max_unused: request.max_unused,
        max_repack: request.max_repack,
        dry_run: request.dry_run,
        lock_modes,
        ..Default::default()
    };
    let r = reprise_engine::prune::prune(&repo, &opts)?;
    let wal = expire::sweep(&repo, request.dry_run)?;
    if !r.dry_run {
        crate::ledger::record(ws, &repo, &crate::ledger::prune(&r, &wal))?;
    }
    Ok(Prune { report: r, wal })
}

/// A hold placed: its ID and the snapshot's.
#[derive(Debug, serde::Serialize)]
pub struct HoldPlaced {
    pub hold: Id,
    pub snapshot: Id,
    #[serde(skip)]
    pub component: String,
    #[serde(skip)]
    pub reason: String,
}

pub fn hold_add(ws: &Workspace, snapshot: &str, reason: &str) -> Result<HoldPlaced> {
    let repo = ws.open(None)?;
    let snap = find_snapshot(&repo, snapshot, None)?;
    let id = holds::add(&repo, snap.id, reason)?;
    crate::ledger::record(ws, &repo, &crate::ledger::hold_add(id, snap.id, &snap.header.component, reason))?;
    Ok(HoldPlaced { hold: id, snapshot: snap.id, component: snap.header.component, reason: reason.to_owned() })
}

/// Every hold the administrator placed, and the hold objects that count
/// for nothing (a writer planted them, or nobody signed them) with why:
/// those are to be reported, never listed as holds.
pub fn hold_list(ws: &Workspace) -> Result<(Vec<HoldEntry>, holds::Ignored)> {
    let repo = ws.open(None)?;
    Ok(holds::list_all(&repo)?)
}

/// Lifts the hold `hold` names; a hold object nobody trusted signed is
/// removed the same way and returned as `None` (it protected nothing).
pub fn hold_remove(ws: &Workspace, hold: &str) -> Result<(Id, Option<HoldEntry>)> {
    let repo = ws.open(None)?;
    let (id, removed) = holds::remove(&repo, hold)?;
    crate::ledger::record(ws, &repo, &crate::ledger::hold_remove(id, removed.as_ref()))?;
    Ok((id, removed))
}
