//! `backup`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use reprise_engine::backup::{BackupOptions, BackupOutcome, backup};
use reprise_engine::cache::FilesCache;
use reprise_engine::format::chunker::ChunkPolicy;
use reprise_engine::source::single_stream;
use reprise_source_files::{FilesOptions, FilesSource, scan_totals};

use crate::args::BackupArgs;
use crate::commands::{bytes, ledger};
use crate::context::Context;
use crate::exit;
use crate::output::count;

/// Writes the component's legal retention into the snapshot header
/// (`retain_until`): the header is write-once, so no later plan, `forget`
/// or `--force` can shorten it.
fn retain_label(c: &reprise_plan::ComponentPlan, opts: &mut BackupOptions) {
    if let Some(period) = c.objectives.retain_for {
        // Calendar years: twenty years of legal retention end on the same
        // date twenty years on, never days early.
        // Counted from the snapshot's own time, which is fixed here.
        let now = jiff::Timestamp::now();
        opts.time = Some(now);
        let until = period.after(now);
        opts.header_labels.insert(reprise_engine::retention::RETAIN_UNTIL.to_owned(), until.to_string());
    }
}

/// Backups go to an original repository; its copies are filled by `copy`
/// (a snapshot written into a copy exists nowhere else, and 3-2-1 counts
/// it twice). Refused unless asked for by name.
fn refuse_copy_target(ctx: &Context, component: Option<&reprise_plan::ComponentPlan>, into_copy: bool) -> Result<()> {
    let target = ctx.target(component)?;
    let Some(plan) = &ctx.plan else { return Ok(()) };
    if let Some((name, original)) = plan.repositories.values().find(|r| r.url == target.url).and_then(|r| r.copy_of.as_ref().map(|o| (&r.name, o))) {
        if !into_copy {
            return Err(exit::usage(format!(
                "repository '{name}' is a copy of '{original}' (copy_of): back up to '{original}' and let `reprise copy` fill the copy, or pass --into-copy to back up into the copy anyway (while '{original}' is lost)"
            )));
        }
        errln!("reprise: warning: backing up into '{name}', a copy of '{original}': this snapshot will not be in '{original}'");
    }
    Ok(())
}

pub fn run(ctx: &Context, args: &BackupArgs) -> Result<()> {
    let component = args.component.as_deref().map(|c| ctx.component(c)).transpose()?;
    if component.is_some() && (!args.paths.is_empty() || args.stdin) {
        return Err(exit::usage("give either a component or --path/--stdin, not both"));
    }
    if component.is_some() || !args.paths.is_empty() || args.stdin {
        refuse_copy_target(ctx, component, args.into_copy)?;
    }
    if let Some((c, pg)) = component.and_then(|c| crate::commands::postgres::pg_plan(c).map(|p| (c, p))) {
        let mut opts = BackupOptions::new(&c.name, "postgres");
        if let Some(h) = &args.host {
            opts.host.clone_from(h);
        }
        opts.tags = c.tags.iter().chain(&args.tags).cloned().collect();
        if let Some(t) = args.threads {
            opts.threads = t.max(1);
        }
        retain_label(c, &mut opts);
        let repo = ctx.open(Some(c))?;
        let outcome = crate::commands::postgres::backup_postgres(ctx, &repo, c, pg, opts)?;
        ledger::record(ctx, &repo, &ledger::backup(&outcome))?;
        return report(ctx, &outcome);
    }
    if component.is_none() && args.paths.is_empty() && !args.stdin {
        return Err(exit::usage("what to back up? name a plan component (reprise backup NAME), or give --path PATH or --stdin"));
    }
    let name = match (component, &args.as_component) {
        (Some(c), _) => c.name.clone(),
        (None, Some(n)) => n.clone(),
        (None, None) => if args.stdin { "stdin" } else { "files" }.to_owned(),
    };
    let (paths, mut excludes, mut tags, one_fs) = match component {
        Some(c) => (c.paths.clone(), c.excludes.clone(), c.tags.clone(), c.one_file_system),
        None => (args.paths.clone(), Vec::new(), Vec::new(), false),
    };
    excludes.extend(args.excludes.iter().cloned());
    tags.extend(args.tags.iter().cloned());
    let files_opts = FilesOptions { excludes: excludes.clone(), one_file_system: one_fs };
    // Validate the source before opening the repository: bad paths change nothing.
    let source = if args.stdin { None } else { Some(FilesSource::new(&paths, &files_opts)?) };
    let mut stdin = if args.stdin { Some(stdin_with_content(args.allow_empty)?) } else { None };

    let repo = ctx.open(component)?;
    let mut opts = BackupOptions::new(&name, if args.stdin { "stdin" } else { "files" });
    if let Some(h) = &args.host {
        opts.host.clone_from(h);
    }
    opts.tags = tags;
    opts.excludes = excludes;
    opts.cancel = ctx.cancel.clone();
    if let Some(c) = component {
        retain_label(c, &mut opts);
    }
    if let Some(t) = args.threads {
        opts.threads = t.max(1);
    }
    if args.stdin {
        opts.paths = vec![args.stdin_name.as_bytes().to_vec()];
    } else {
        opts.paths = paths.iter().map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec()).collect();
        if !args.no_cache {
            opts.files_cache = Some(FilesCache::path_for(&ctx.cache_dir(), repo.id(), &opts.host, &name));
            if repo.role() == reprise_engine::format::keys::Role::Full {
                let host = opts.host.clone();
                opts.parent = repo
                    .snapshots()?
                    .0
                    .into_iter()
                    .rev()
                    .find(|s| s.header.component == name && s.header.host == host)
                    .map(|s| s.id);
            }
        }
    }

    let progress = ctx.progress("backup");
    let outcome: BackupOutcome = if let Some(source) = source {
        let scan_progress = Arc::clone(&progress);
        let scan_paths: Vec<PathBuf> = paths.clone();
        std::thread::spawn(move || {
            let (b, f) = scan_totals(&scan_paths, &files_opts);
            scan_progress.set_total(b, f);
        });
        backup(&repo, source, &opts, &progress)?
    } else {
        let source = single_stream(&args.stdin_name, stdin.take().expect("read before the repository was opened"), ChunkPolicy::ContentDefined);
        backup(&repo, source, &opts, &progress)?
    };
    ledger::record(ctx, &repo, &ledger::backup(&outcome))?;
    report(ctx, &outcome)
}

/// Standard input, refused when it is empty (before anything is written):
/// `pg_dump ... | reprise backup --stdin` of a dump that failed at once
/// would otherwise record an empty snapshot as a success.
fn stdin_with_content(allow_empty: bool) -> Result<Box<dyn std::io::Read + Send>> {
    use std::io::Read;
    let mut first = Vec::new();
    std::io::stdin().lock().take(1).read_to_end(&mut first)?;
    if first.is_empty() && !allow_empty {
        return Err(exit::usage("standard input is empty: nothing was saved; check the command feeding it, or pass --allow-empty to record an empty snapshot"));
    }
    Ok(Box::new(std::io::Cursor::new(first).chain(std::io::stdin())))
}

fn report(ctx: &Context, outcome: &BackupOutcome) -> Result<()> {
    let s = &outcome.header.summary;
    if ctx.json() {
        ctx.print_json(outcome)?;
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
    if !outcome.errors.is_empty() {
        for e in &outcome.errors {
            errln!("reprise: not backed up: {e}");
        }
        return Err(exit::with_code(
            exit::INCOMPLETE,
            format!("snapshot {} saved without {} listed above: fix their permissions and run the backup again", outcome.id.short(), count(outcome.errors.len(), "unreadable entry", "unreadable entries")),
        ));
    }
    Ok(())
}
