//! `backup`: flags → `reprise_ops::backup` → one line (or JSON) → exit code.

use anyhow::Result;
use reprise_ops::Verdict;
use reprise_ops::backup::{BackupReport, BackupRequest, Stream};

use crate::args::BackupArgs;
use crate::commands::bytes;
use crate::context::Context;
use crate::exit;
use crate::output::count;

pub fn run(ctx: &Context, args: &BackupArgs) -> Result<()> {
    let request = BackupRequest {
        component: args.component.clone(),
        paths: args.paths.clone(),
        stream: args.stdin.then(|| Stream { name: args.stdin_name.clone(), reader: Box::new(std::io::stdin()), allow_empty: args.allow_empty }),
        as_component: args.as_component.clone(),
        host: args.host.clone(),
        tags: args.tags.clone(),
        excludes: args.excludes.clone(),
        threads: args.threads,
        no_cache: args.no_cache,
        into_copy: args.into_copy,
    };
    let report = reprise_ops::backup::backup(&ctx.ws, request, &ctx.observer(), &ctx.cancel)?;
    render(ctx, &report)
}

fn render(ctx: &Context, report: &BackupReport) -> Result<()> {
    for w in &report.warnings {
        errln!("reprise: {w}");
    }
    let outcome = &report.outcome;
    let s = &outcome.header.summary;
    if ctx.json() {
        ctx.print_json(report)?;
    } else {
        ctx.say(format!(
            "snapshot {} of {} saved: {} files, {} in {:.1}s ({} files read, {} new, {} stored)",
            outcome.id.short(),
            outcome.header.component,
            s.files,
            bytes(s.bytes),
            s.duration_ms as f64 / 1000.0,
            s.files_read,
            bytes(s.new_bytes),
            bytes(s.stored_bytes),
        ));
        if outcome.adopted_packs > 0 {
            ctx.say(format!("indexed {} left by an interrupted backup", count(outcome.adopted_packs, "pack", "packs")));
        }
    }
    for e in &outcome.errors {
        errln!("reprise: not backed up: {e}");
    }
    match report.failure() {
        Some(e) => Err(exit::from_ops(&e)),
        None => Ok(()),
    }
}
