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
    pub postgres: Option<reprise_postgres::status::PgStatus>,
    /// The 3-2-1 posture: where copies of the component are.
    pub copies: Posture,
    /// Storage-level immutability (S3 Object Lock, Azure immutability).
    pub immutability: Option<ImmutabilityStatus>,
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
        };
        let repo = ws.open(Some(c))?;
        match (&c.kind, pg_plan(c)) {
            (ComponentKind::Postgres(_), Some(pg)) if pg.mode == PostgresMode::Physical => {
                let s = reprise_postgres::status::status(&repo, &c.name, Some((&pg.connection, pg.password_env.as_deref())))?;
                st.last_backup = s.last_base_backup_time;
                st.rpo_seconds = s.rpo_seconds;
                st.newest_restorable = s.newest_restorable;
                st.oldest_restorable = s.oldest_restorable;
                st.pitr_window_seconds = s.pitr_window_seconds;
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
