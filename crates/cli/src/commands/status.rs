//! `status`: per component, the recovery point achieved now against its
//! objective, and what a restore can reach.

use anyhow::Result;
use reprise_plan::{ComponentKind, PostgresMode};

use crate::args::StatusArgs;
use crate::commands::immutability::{self, ImmutabilityStatus};
use crate::commands::postgres::{pg_plan, status_postgres};
use crate::context::Context;
use crate::exit;

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
    /// Storage-level immutability (S3 Object Lock, Azure immutability).
    immutability: Option<ImmutabilityStatus>,
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
            pitr_objective_seconds: c.objectives.pitr.map(|d| d.as_secs()),
            postgres: None,
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
