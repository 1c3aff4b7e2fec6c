//! `copy`: flags → `reprise_ops::copy` → one line per destination (or
//! one JSON document) → exit code.

use anyhow::Result;
use reprise_engine::copy::CopyReport;
use reprise_ops::Verdict;
use reprise_ops::copy::{self, CopyRequest};

use crate::args::CopyArgs;
use crate::commands::bytes;
use crate::context::Context;
use crate::exit;
use crate::output::count;

pub fn run(ctx: &Context, args: &CopyArgs) -> Result<()> {
    let request = CopyRequest { components: args.components.clone(), to: args.to.clone(), threads: args.threads, dry_run: args.dry_run };
    let run = copy::copy(&ctx.ws, &request, &ctx.observer(), &ctx.cancel)?;
    if ctx.json() {
        if !run.copies.is_empty() {
            ctx.print_json(&run.copies)?;
        }
    } else {
        for o in &run.copies {
            print_human(ctx, &o.from, &o.to, &o.components, &o.report);
            if !o.not_in_plan.is_empty() {
                let list: Vec<String> = o.not_in_plan.iter().map(|(c, n)| format!("{c} ({n})")).collect();
                ctx.say(format!("  not copied: snapshots of components the plan does not declare: {}; declare them to copy them", list.join(", ")));
            }
        }
    }
    if run.groups > 1 {
        for f in &run.failures {
            errln!("reprise: copy {} -> {}: {}", f.from, f.to, f.error);
        }
    }
    match run.failure() {
        Some(e) => Err(exit::from_ops(&e)),
        None => Ok(()),
    }
}

fn print_human(ctx: &Context, from: &str, to: &str, components: &[String], r: &CopyReport) {
    let verb = if r.dry_run { "would copy" } else { "copied" };
    ctx.say(format!(
        "{from} -> {to} ({}){}: {verb} {}, {} ({}), {} ({}), {}, {}; {} {}, {} already there; {:.1}s",
        components.join(", "),
        match (r.initialised, r.dry_run) {
            (true, true) => ", destination would be initialised",
            (true, false) => ", destination initialised",
            _ => "",
        },
        count(r.snapshots_copied.len(), "snapshot", "snapshots"),
        count(r.packs_written.len(), "pack", "packs"),
        bytes(r.pack_bytes),
        count(r.wal_copied, "WAL file", "WAL files"),
        bytes(r.wal_bytes),
        count(r.holds_copied, "hold", "holds"),
        count(r.drills_copied, "drill record", "drill records"),
        count(r.objects_copied, "object", "objects"),
        if r.dry_run { "to write" } else { "written" },
        r.objects_skipped,
        r.duration_ms as f64 / 1000.0,
    ));
    for n in &r.snapshots_not_kept {
        ctx.say(format!("  not kept by {to}'s retention: {} {} {}  ({})", n.id.short(), n.component, n.time.strftime("%Y-%m-%d %H:%M:%S"), n.reasons.join(", ")));
    }
    // Damage is printed even with --quiet: it is why the exit code is not 0.
    for p in &r.damage {
        outln!("DAMAGED {}: {}", p.object, p.message);
    }
    for p in &r.conflicts {
        outln!("CONFLICT {}: {}", p.object, p.message);
    }
}
