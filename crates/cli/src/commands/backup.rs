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

/// Writes the component's legal retention into the snapshot header
/// (`retain_until`): the header is write-once, so no later plan, `forget`
/// or `--force` can shorten it.
fn retain_label(c: &reprise_plan::ComponentPlan, opts: &mut BackupOptions) {
    if let Some(d) = c.objectives.retain_for {
        let until = jiff::Timestamp::now().checked_add(jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX)).unwrap_or(jiff::Timestamp::MAX);
        opts.header_labels.insert(reprise_engine::retention::RETAIN_UNTIL.to_owned(), until.to_string());
    }
}

pub fn run(ctx: &Context, args: &BackupArgs) -> Result<()> {
    let component = args.component.as_deref().map(|c| ctx.component(c)).transpose()?;
    if component.is_some() && (!args.paths.is_empty() || args.stdin) {
        return Err(exit::usage("give either a component or --path/--stdin, not both"));
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
        let source = single_stream(&args.stdin_name, Box::new(std::io::stdin()), ChunkPolicy::ContentDefined);
        backup(&repo, source, &opts, &progress)?
    };
    ledger::record(ctx, &repo, &ledger::backup(&outcome))?;
    report(ctx, &outcome)
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
            ctx.say(format!("indexed {} pack(s) left by an interrupted backup", outcome.adopted_packs));
        }
    }
    if !outcome.errors.is_empty() {
        for e in &outcome.errors {
            eprintln!("reprise: not backed up: {e}");
        }
        return Err(exit::with_code(
            exit::INCOMPLETE,
            format!("snapshot {} saved without {} unreadable entr(y/ies) listed above: fix their permissions and run the backup again", outcome.id.short(), outcome.errors.len()),
        ));
    }
    Ok(())
}
