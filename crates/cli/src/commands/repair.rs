//! `repair index`, `repair config`, `repair keys`, `repair marks`: clear the damage
//! `check` reports (see `reprise_engine::repair`).

use anyhow::Result;
use reprise_engine::repair::{ConfigRepair, IndexRepair, MarkRepair};
use reprise_ops::{Verdict, repair};

use crate::args::RepairCommand;
use crate::context::Context;
use crate::exit;
use crate::output::count;

pub fn run(ctx: &Context, cmd: &RepairCommand) -> Result<()> {
    match cmd {
        RepairCommand::Index { dry_run } => {
            let r = repair::index(&ctx.ws, *dry_run)?;
            print_index(ctx, &r.0)?;
            r.failure().map_or(Ok(()), |e| Err(exit::from_ops(&e)))
        }
        RepairCommand::Keys { dry_run } => {
            let r = repair::keys(&ctx.ws, *dry_run)?;
            if ctx.json() {
                return ctx.print_json(&r);
            }
            let remove = if r.dry_run { "would remove" } else { "removed" };
            for p in &r.damaged_keys {
                ctx.say(format!("damaged {}: {}: {remove} it", p.object, p.message));
            }
            ctx.say(format!("keys: {} read, {remove} {}", r.keys, count(r.damaged_keys.len(), "damaged key file", "damaged key files")));
            Ok(())
        }
        RepairCommand::Marks { dry_run } => print_marks(ctx, &repair::marks(&ctx.ws, *dry_run)?),
        RepairCommand::Config { from, dry_run } => finish_config(ctx, &repair::config(&ctx.ws, from.as_deref(), *dry_run)?),
    }
}

fn print_index(ctx: &Context, r: &IndexRepair) -> Result<()> {
    if ctx.json() {
        return ctx.print_json(r);
    }
    let (remove, write) = if r.dry_run { ("would remove", "would write") } else { ("removed", "wrote") };
    for p in &r.damaged_index_files {
        ctx.say(format!("damaged {}: {remove} it", p.object));
    }
    for p in &r.unreadable_packs {
        outln!("DAMAGED {}: {} (its directory cannot be read: not indexed)", p.object, p.message);
    }
    ctx.say(format!(
        "index: {} indexed from their own directories, {write} {}; {remove} {}{}",
        count(r.packs_indexed, "pack", "packs"),
        count(r.index_files_written.len(), "index file", "index files"),
        count(r.damaged_index_files.len(), "damaged index file", "damaged index files"),
        if r.condemned_packs_left > 0 { format!("; {} condemned by a prune left to its sweep", count(r.condemned_packs_left, "pack", "packs")) } else { String::new() }
    ));
    Ok(())
}

fn print_marks(ctx: &Context, r: &MarkRepair) -> Result<()> {
    if ctx.json() {
        return ctx.print_json(r);
    }
    let remove = if r.dry_run { "would remove" } else { "removed" };
    for p in &r.damaged_marks {
        ctx.say(format!("damaged {}: {}: {remove} it", p.object, p.message));
    }
    ctx.say(format!(
        "prune marks: {} read, {remove} {} (the next prune marks what is unused again)",
        r.marks,
        count(r.damaged_marks.len(), "damaged mark", "damaged marks")
    ));
    Ok(())
}

fn finish_config(ctx: &Context, r: &ConfigRepair) -> Result<()> {
    if ctx.json() {
        return ctx.print_json(r);
    }
    if !r.repaired {
        ctx.say(format!("config of repository {} is intact: nothing to repair", r.config.id.short()));
        return Ok(());
    }
    let verb = if r.dry_run { "would write" } else { "wrote" };
    ctx.say(format!("config was damaged ({}): {verb} it for repository {} from {}", r.problem.as_deref().unwrap_or("?"), r.config.id.short(), r.source));
    if !r.defaults.is_empty() {
        ctx.say(format!("  not recoverable, set to the defaults: {} (restores are unaffected)", r.defaults.join(", ")));
    }
    Ok(())
}
