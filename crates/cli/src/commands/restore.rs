//! `restore`: flags → `reprise_ops::restore` → what was restored (or
//! JSON) → exit code.

use std::sync::Arc;

use anyhow::Result;
use reprise_ops::Verdict;
use reprise_ops::postgres::FetchCommand;
use reprise_ops::restore::{RestoreReport, RestoreRequest};
use reprise_postgres::tablespaces::TablespaceMap;

use crate::args::RestoreArgs;
use crate::commands::bytes;
use crate::commands::postgres::CliFetch;
use crate::context::Context;
use crate::exit;

pub fn run(ctx: &Context, args: &RestoreArgs) -> Result<()> {
    let mut tablespaces = TablespaceMap { by_oid: std::collections::BTreeMap::new(), under: args.tablespace_dir.as_deref().map(std::path::absolute).transpose()? };
    for t in &args.tablespaces {
        let (oid, dir) = t
            .split_once('=')
            .filter(|(_, d)| !d.is_empty())
            .ok_or_else(|| exit::usage(format!("--tablespace {t}: write OID=DIR (`reprise ls -l SNAPSHOT pgdata/pg_tblspc` lists the OIDs)")))?;
        let oid: u32 = oid.parse().map_err(|_| exit::usage(format!("--tablespace {t}: OID must be a number (`reprise ls -l SNAPSHOT pgdata/pg_tblspc` lists the OIDs)")))?;
        if tablespaces.by_oid.insert(oid, std::path::absolute(dir)?).is_some() {
            return Err(exit::usage(format!("--tablespace {oid}=... is given twice: give each tablespace one folder")));
        }
    }
    let request = RestoreRequest {
        what: args.what.clone(),
        to: args.to.clone(),
        include: args.include.clone(),
        overwrite: args.overwrite,
        delta: args.delta,
        threads: args.threads,
        at: args.at.clone(),
        start: args.start,
        keep_running: args.keep_running,
        tablespaces,
        into: args.into.clone(),
        database: args.database.clone(),
        table: args.table.clone(),
    };
    let fetch: Arc<dyn FetchCommand> = Arc::new(CliFetch::new(ctx));
    let report = reprise_ops::restore::restore(&ctx.ws, &request, &fetch, &ctx.observer(), &ctx.cancel)?;
    render(ctx, &report)?;
    match report.failure() {
        Some(e) => Err(exit::from_ops(&e)),
        None => Ok(()),
    }
}

fn render(ctx: &Context, report: &RestoreReport) -> Result<()> {
    if ctx.json() {
        return ctx.print_json(report);
    }
    match report {
        RestoreReport::Files(f) => {
            let out = &f.outcome;
            ctx.say(format!(
                "restored snapshot {} to {}: {} files, {} dirs, {} in {:.1}s, every chunk verified",
                f.snapshot.short(),
                f.target.display(),
                out.files,
                out.dirs,
                bytes(out.bytes),
                out.duration_ms as f64 / 1000.0
            ));
            for d in &out.damaged {
                errln!("reprise: damaged, not restored: {}: {}", d.path, d.reason);
            }
        }
        RestoreReport::Dump(d) => {
            ctx.say(format!(
                "restored dump {} to {} in {:.1}s{}",
                d.snapshot.short(),
                d.to.display(),
                d.ms as f64 / 1000.0,
                if d.outcome.loaded.is_empty() { String::new() } else { format!("; loaded {}", d.outcome.loaded.join(", ")) }
            ));
            for c in &d.outcome.created {
                ctx.say(format!("created database {c}"));
            }
            for p in &d.outcome.prerequisites {
                ctx.say(format!("restored with the table (the target lacked it): {p}"));
            }
            for l in &d.outcome.left_out {
                ctx.say(format!("left out: {l}"));
            }
        }
        RestoreReport::Pitr(p) => {
            let out = &p.outcome;
            ctx.say(format!(
                "restored base backup {} (ended {}) to {}: {} files, {}{}; {} WAL segment(s) to replay",
                &out.base_backup[..8],
                out.base_stop_time,
                p.to.display(),
                out.files,
                bytes(out.bytes),
                if p.delta { format!(" written, {} already right", bytes(out.bytes_unchanged)) } else { String::new() },
                out.wal_segments
            ));
            if let Some(r) = &out.reach {
                ctx.say(format!("this base backup restores to any point from {r}; restored to {}", out.target));
            }
            for t in &out.tablespaces {
                ctx.say(format!("tablespace {} restored to {}{}", t.oid, t.location.display(), t.original.as_ref().map(|o| format!(" (was {})", o.display())).unwrap_or_default()));
            }
            if let Some(c) = &p.cluster {
                ctx.say(format!(
                    "recovered to {} and promoted: files {:.1}s + recovery {:.1}s = {:.1}s (measured recovery time)",
                    out.target,
                    out.restore_ms as f64 / 1000.0,
                    out.recovery_ms as f64 / 1000.0,
                    out.total_ms as f64 / 1000.0
                ));
                if p.keep_running {
                    ctx.say(format!("running: psql \"{}\"   stop: pg_ctl -D {} stop", c.conn_string("postgres"), p.to.display()));
                } else {
                    ctx.say("(stopped; pass --keep-running to keep it)");
                }
            } else {
                ctx.say("start it with pg_ctl; recovery fetches WAL with reprise wal-fetch, as the postgres account, which needs the passphrase (e.g. REPRISE_PASSWORD_FILE)");
            }
        }
    }
    Ok(())
}
