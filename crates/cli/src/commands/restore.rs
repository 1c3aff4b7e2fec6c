//! `restore`.

use anyhow::Result;
use reprise_engine::restore::{RestoreOptions, restore};

use crate::args::RestoreArgs;
use crate::commands::{bytes, find_snapshot, ledger};
use crate::context::Context;
use crate::exit;
use crate::output::count;

pub fn run(ctx: &Context, args: &RestoreArgs) -> Result<()> {
    let (spec, subpath) = match args.what.split_once(':') {
        Some((s, p)) => (s, p.trim_matches('/')),
        None => (args.what.as_str(), ""),
    };
    // A plan component name means its latest snapshot (or, for a
    // database, the state at --at).
    let component = ctx.plan.as_ref().and_then(|p| p.components.get(spec));
    if let Some((c, pg)) = component.and_then(|c| crate::commands::postgres::pg_plan(c).map(|p| (c, p))) {
        return crate::commands::postgres::restore_postgres(ctx, c, pg, args);
    }
    if args.at.is_some() || args.start || !args.tablespaces.is_empty() || args.into.is_some() {
        return Err(exit::usage("--at, --start, --tablespace and --into apply to PostgreSQL components: name one from the plan"));
    }
    let repo = ctx.open(component)?;
    let snap = match component {
        Some(c) => find_snapshot(&repo, "latest", Some(&c.name))?,
        None => find_snapshot(&repo, spec, None)?,
    };
    let mut opts = RestoreOptions::new(&args.to);
    opts.subpath = subpath.as_bytes().to_vec();
    opts.include = args.include.iter().map(|p| p.trim_matches('/').as_bytes().to_vec()).collect();
    opts.overwrite = args.overwrite;
    opts.delta = args.delta;
    opts.cancel = ctx.cancel.clone();
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    let progress = ctx.progress("restore");
    let out = restore(&repo, &snap.id, &opts, progress.as_ref())?;
    drop(progress);
    ledger::record(ctx, &repo, &ledger::restore(snap.id, &snap.header.component, &out))?;
    if ctx.json() {
        ctx.print_json(&serde_json::json!({ "snapshot": snap.id, "target": args.to, "outcome": out }))?;
    } else {
        ctx.say(format!(
            "restored snapshot {} to {}: {} files, {} dirs, {} in {:.1}s, every chunk verified",
            snap.id.short(),
            args.to.display(),
            out.files,
            out.dirs,
            bytes(out.bytes),
            out.duration_ms as f64 / 1000.0
        ));
    }
    if !out.damaged.is_empty() {
        for d in &out.damaged {
            errln!("reprise: damaged, not restored: {}: {}", d.path, d.reason);
        }
        return Err(exit::with_code(
            exit::DAMAGED,
            format!("{} could not be restored from damaged data (listed above); every other file was restored and verified", count(out.damaged.len(), "entry", "entries")),
        ));
    }
    Ok(())
}
