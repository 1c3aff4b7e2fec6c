//! `status`: per component, the recovery point achieved now against its
//! objective, and what a restore can reach.

use anyhow::Result;
use reprise_plan::{ComponentKind, ComponentPlan, Plan, PostgresMode, RepositoryPlan};

use crate::args::StatusArgs;
use crate::commands::immutability::{self, ImmutabilityStatus};
use crate::commands::postgres::{pg_plan, status_postgres};
use crate::context::Context;
use crate::exit;
use crate::output::count;

#[derive(Debug, serde::Serialize)]
struct ComponentStatus {
    component: String,
    #[serde(rename = "type")]
    kind: String,
    last_backup: Option<jiff::Timestamp>,
    /// Seconds of data at risk now.
    rpo_seconds: Option<f64>,
    rpo_objective_seconds: Option<u64>,
    rpo_met: Option<bool>,
    newest_restorable: Option<jiff::Timestamp>,
    oldest_restorable: Option<jiff::Timestamp>,
    pitr_window_seconds: Option<f64>,
    pitr_objective_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    postgres: Option<reprise_postgres::status::PgStatus>,
    /// The 3-2-1 posture: where copies of the component are.
    copies: Posture,
    /// Storage-level immutability (S3 Object Lock, Azure immutability).
    immutability: Option<ImmutabilityStatus>,
}

/// One repository that holds (or should hold) a component.
#[derive(Debug, serde::Serialize)]
struct RepositoryPosture {
    repository: String,
    /// `primary` (where backups go) or `copy` (its `copy_of` names the primary).
    role: &'static str,
    /// `local-disk`, `s3` or `azure-blob`, from the URL.
    media: &'static str,
    /// From the plan; `unspecified` when the plan does not say.
    site: String,
    /// Whether its site differs from the primary's; `null` when a site is
    /// missing (unknown, never guessed).
    off_site: Option<bool>,
    snapshots: Option<usize>,
    newest_snapshot: Option<jiff::Timestamp>,
    newest_age_seconds: Option<f64>,
    /// Whether it holds the newest snapshot of the component on the primary.
    holds_newest: Option<bool>,
    /// Why the repository could not be read (the other lines still are).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// 3-2-1, counted as: copies = the production data itself plus every
/// repository holding at least one snapshot of the component; media =
/// distinct media among those repositories (the production storage is not
/// counted: it is what fails); off-site = at least one of them is off-site.
#[derive(Debug, serde::Serialize)]
struct Posture {
    repositories: Vec<RepositoryPosture>,
    copies: usize,
    media: Vec<&'static str>,
    /// At least one repository holding the component is off-site (`true`),
    /// none is and every site is known (`false`), or a site is missing and
    /// none is known off-site (`null`: unknown, never guessed).
    off_site: Option<bool>,
    three_two_one: bool,
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

fn posture(ctx: &Context, plan: &Plan, c: &ComponentPlan, cache: &mut SnapshotCache, now: jiff::Timestamp) -> Posture {
    let primary = plan.repositories.get(&c.repository);
    let mut repos: Vec<&RepositoryPlan> = primary.into_iter().collect();
    repos.extend(plan.copies_of(&c.repository));
    let primary_site = primary.and_then(|p| p.site.clone());
    let mut lines = Vec::new();
    let mut newest_on_primary: Option<Option<reprise_engine::format::Id>> = None;
    for (i, r) in repos.iter().enumerate() {
        let snaps = cache
            .entry(r.name.clone())
            .or_insert_with(|| ctx.open_named(&r.name).and_then(|repo| Ok(repo.snapshots()?.0)).map_err(|e| e.to_string()))
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

fn human(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

pub fn run(ctx: &Context, args: &StatusArgs) -> Result<()> {
    let plan = ctx.plan()?;
    let components: Vec<_> = match &args.component {
        Some(n) => vec![ctx.component(n)?],
        None => plan.components.values().collect(),
    };
    if components.is_empty() {
        return Err(exit::usage("the plan declares no component"));
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
            copies: posture(ctx, plan, c, &mut cache, now),
            immutability: None,
        };
        match (&c.kind, pg_plan(c)) {
            (ComponentKind::Postgres(_), Some(pg)) if pg.mode == PostgresMode::Physical => {
                let s = status_postgres(ctx, c, pg)?;
                st.last_backup = s.last_base_backup_time;
                st.rpo_seconds = s.rpo_seconds;
                st.newest_restorable = s.newest_restorable;
                st.oldest_restorable = s.oldest_restorable;
                st.pitr_window_seconds = s.pitr_window_seconds;
                st.postgres = Some(s);
                let repo = ctx.open(Some(c))?;
                st.immutability = Some(immutability::status(&repo, c, &repo.snapshots()?.0));
            }
            _ => {
                let repo = ctx.open(Some(c))?;
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
    if ctx.json() {
        return ctx.print_json(&out);
    }
    ctx.say(format!("{:<20} {:<9} {:<20} {:>12} {:>10} {:<20} {:>12}", "component", "type", "last backup (UTC)", "RPO now", "objective", "restorable until", "PITR window"));
    for s in &out {
        let f = |t: Option<jiff::Timestamp>| t.map_or_else(|| "-".to_owned(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string());
        ctx.say(format!(
            "{:<20} {:<9} {:<20} {:>12} {:>10} {:<20} {:>12}{}",
            s.component,
            s.kind,
            f(s.last_backup),
            s.rpo_seconds.map_or_else(|| "no backup".to_owned(), human),
            s.rpo_objective_seconds.map_or_else(|| "-".to_owned(), |o| human(o as f64)),
            f(s.newest_restorable),
            s.pitr_window_seconds.map_or_else(|| "-".to_owned(), human),
            match s.rpo_met {
                Some(true) => "  ok",
                Some(false) => "  OBJECTIVE MISSED",
                None => "",
            }
        ));
        let p = &s.copies;
        let yes_no = |o: Option<bool>| o.map_or("unknown (a site is missing)", |o| if o { "yes" } else { "no" });
        ctx.say(format!(
            "  copies: {} (production + {}), media: {}, off-site: {}: 3-2-1 {}",
            p.copies,
            count(p.copies - 1, "repository", "repositories"),
            if p.media.is_empty() { "none".to_owned() } else { format!("{} ({})", p.media.len(), p.media.join(", ")) },
            yes_no(p.off_site),
            if p.three_two_one { "holds" } else { "NOT MET" }
        ));
        for r in &p.repositories {
            let place = format!("    {} '{}': media {}, site {}", r.role, r.repository, r.media, r.site);
            match &r.error {
                Some(e) => ctx.say(format!("{place}: ERROR: {e}")),
                None => ctx.say(format!(
                    "{place}, off-site {}, newest snapshot {} ({} ago){}",
                    yes_no(r.off_site),
                    r.newest_snapshot.map_or_else(|| "none".to_owned(), |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string()),
                    r.newest_age_seconds.map_or_else(|| "-".to_owned(), human),
                    if r.holds_newest == Some(false) { ": BEHIND, lacks the newest snapshot" } else { "" }
                )),
            }
        }
        if let Some(i) = &s.immutability {
            ctx.say(format!("  immutability: {}", i.reason));
        }
        if let Some(pg) = &s.postgres {
            if let Some(g) = &pg.gap {
                ctx.say(format!("  WAL gap: {g} is missing; restores cannot cross it (take a new base backup)"));
            }
            if let Some(srv) = &pg.server {
                if let Some(f) = &srv.last_failed_wal {
                    ctx.say(format!("  archiver: last failure on {f} at {}", srv.last_failed_time.as_deref().unwrap_or("?")));
                }
            }
        }
    }
    Ok(())
}
