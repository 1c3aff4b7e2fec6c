//! `repair index`, `repair config`, `repair keys`, `repair marks`: clear the damage
//! `check` reports (see `reprise_engine::repair`).

use anyhow::Result;
use reprise_engine::repair::{self, ConfigRepair, IndexRepair, MarkRepair};

use crate::args::RepairCommand;
use crate::commands::ledger;
use crate::context::{Context, Key, Target};
use crate::exit;
use crate::output::count;

pub fn run(ctx: &Context, cmd: &RepairCommand) -> Result<()> {
    match cmd {
        RepairCommand::Index { dry_run } => {
            let repo = ctx.open(None)?;
            let r = repair::repair_index(&repo, *dry_run)?;
            if !r.dry_run {
                ledger::record(ctx, &repo, &ledger::repair_index(&r))?;
            }
            print_index(ctx, &r)?;
            if r.unreadable_packs.is_empty() {
                return Ok(());
            }
            Err(exit::with_code(
                exit::DAMAGED,
                format!(
                    "the index is repaired, but {} damaged themselves (listed): the files that need them cannot be restored from here; `reprise check --read-data` lists all damage",
                    count(r.unreadable_packs.len(), "pack is", "packs are")
                ),
            ))
        }
        RepairCommand::Keys { dry_run } => {
            let repo = ctx.open(None)?;
            let r = repair::repair_keys(&repo, *dry_run)?;
            if !r.dry_run {
                ledger::record(ctx, &repo, &ledger::repair("keys", r.keys, r.damaged_keys.len()))?;
            }
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
        RepairCommand::Marks { dry_run } => {
            let repo = ctx.open(None)?;
            let r = repair::repair_marks(&repo, *dry_run)?;
            if !r.dry_run {
                ledger::record(ctx, &repo, &ledger::repair("marks", r.marks, r.damaged_marks.len()))?;
            }
            print_marks(ctx, &r)
        }
        RepairCommand::Config { from, dry_run } => {
            let target = ctx.target(None)?;
            let backend = Context::backend(&target)?;
            let from = from
                .as_deref()
                .map(|f| {
                    let t = ctx.plan.as_ref().and_then(|p| p.repositories.get(f)).map_or_else(
                        || Target { url: f.to_owned(), password: reprise_plan::PasswordSource::Prompt },
                        |r| Target { url: r.url.clone(), password: r.password.clone() },
                    );
                    Context::backend(&t)
                })
                .transpose()?;
            let key = match ctx.key(&target)? {
                Key::Secrets(s) => repair::Key::Secrets(s),
                Key::Passphrase(p) => return finish_config(ctx, &repair::repair_config(&backend, repair::Key::Passphrase(&p), from.as_ref(), *dry_run)?),
            };
            finish_config(ctx, &repair::repair_config(&backend, key, from.as_ref(), *dry_run)?)
        }
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
