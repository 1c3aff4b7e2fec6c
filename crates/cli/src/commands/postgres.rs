//! PostgreSQL commands: `wal-push`, `wal-fetch`, `wal-stream`,
//! `recover-rows`: flags → `reprise_ops::postgres` → render → exit code;
//! and the command lines PostgreSQL runs to call back into this binary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use reprise_ops::postgres::{FetchCommand, RecoverRowsRequest, StreamRequest};
use reprise_postgres::cluster::shell_quote;
use reprise_postgres::rows;

use crate::args::{ConflictChoiceArg, RecoverRowsArgs, WalFetchArgs, WalPushArgs, WalStreamArgs};
use crate::commands::bytes;
use crate::context::Context;
use crate::exit;

/// PostgreSQL's "file not archived" answer to restore_command.
pub const WAL_NOT_ARCHIVED: u8 = 1;
/// Any other failure: above 125, PostgreSQL stops recovery instead of
/// treating it as the end of the archive (which would lose data silently).
pub const WAL_FETCH_ERROR: u8 = 126;

/// `reprise wal-fetch ...` as PostgreSQL's `restore_command`: this
/// binary, with the flags that find the same plan, repository and key.
pub struct CliFetch {
    exe: String,
    /// `--plan`, `--repo`, `--key-file`, already quoted.
    globals: String,
}

impl CliFetch {
    pub fn new(ctx: &Context) -> CliFetch {
        use std::fmt::Write as _;
        let exe = std::env::current_exe().map_or_else(|_| "reprise".into(), |p| p.display().to_string());
        let mut globals = String::new();
        if let Some(p) = ctx.ws.plan_if_any().map(|p| std::fs::canonicalize(&p.file).unwrap_or_else(|_| p.file.clone())) {
            let _ = write!(globals, " --plan {}", shell_quote(&p.display().to_string()));
        }
        if let Some(r) = &ctx.global.repo {
            let _ = write!(globals, " --repo {}", shell_quote(r));
        }
        if let Some(k) = &ctx.global.key_file {
            let _ = write!(globals, " --key-file {}", shell_quote(&k.display().to_string()));
        }
        CliFetch { exe, globals }
    }
}

impl FetchCommand for CliFetch {
    fn standalone(&self, component: &str) -> String {
        format!("{}{} wal-fetch {} %f %p", shell_quote(&self.exe), self.globals, shell_quote(component))
    }

    fn spool_only(&self, spool: &Path, component: &str) -> String {
        format!("{} wal-fetch --spool {} --spool-only {} %f %p", shell_quote(&self.exe), shell_quote(&spool.display().to_string()), shell_quote(component))
    }
}

pub fn wal_push(ctx: &Context, args: &WalPushArgs) -> Result<()> {
    let pushed = reprise_ops::postgres::wal_push(&ctx.ws, &args.component, &args.path)?;
    if ctx.json() {
        ctx.print_json(&pushed)?;
    }
    Ok(())
}

/// `wal-fetch`: runs before a Context exists in spool-only mode (no plan,
/// no repository, no key). Every failure exits [`WAL_FETCH_ERROR`].
pub fn wal_fetch(global: &crate::args::Global, args: &WalFetchArgs, cancel: &reprise_engine::CancelToken) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| exit::with_code(WAL_FETCH_ERROR, e.to_string());
    if reprise_postgres::walname::classify(&args.file).is_none() {
        return Err(exit::with_code(WAL_FETCH_ERROR, format!("'{}' is not a WAL file name: restore_command must pass %f %p", args.file)));
    }
    let found = if args.spool_only {
        reprise_ops::postgres::wal_fetch_from_spool(args.spool.as_deref().expect("clap requires --spool"), &args.file, &args.destination).map_err(|e| fail(&e))?
    } else {
        let spool = reprise_ops::postgres::spool_for(&args.destination, args.spool.as_deref());
        // A prefetched file first, before the plan, the storage or the key:
        // recovery goes on while storage is down.
        let spooled = match &spool {
            Some(dir) => reprise_ops::postgres::wal_fetch_spooled(dir, &args.file, &args.destination).map_err(|e| fail(&e))?,
            None => false,
        };
        if spooled {
            true
        } else {
            let ctx = Context::new(global.clone(), cancel.clone()).map_err(|e| fail(&e))?;
            reprise_ops::postgres::wal_fetch(&ctx.ws, &args.component, &args.file, &args.destination, spool.as_deref()).map_err(|e| fail(&e))?
        }
    };
    if found {
        Ok(())
    } else {
        Err(exit::with_code(WAL_NOT_ARCHIVED, format!("{} is not archived (for recovery: the end of the archive)", args.file)))
    }
}

pub fn recover_rows(ctx: &Context, args: &RecoverRowsArgs) -> Result<()> {
    // Conflicts shown per table; the script and --json have them all.
    const SHOWN: usize = 10;
    let request = RecoverRowsRequest {
        component: args.component.clone(),
        tables: args.tables.clone(),
        at: args.at.clone(),
        until: args.until.clone(),
        predicate: args.predicate.clone(),
        conflicts: match args.conflicts {
            ConflictChoiceArg::Keep => rows::ConflictChoice::Keep,
            ConflictChoiceArg::Before => rows::ConflictChoice::Before,
        },
        database: args.database.clone(),
        apply: args.apply,
        script: args.script.clone(),
    };
    let fetch: Arc<dyn FetchCommand> = Arc::new(CliFetch::new(ctx));
    let r = reprise_ops::postgres::recover_rows(&ctx.ws, &request, &fetch, &ctx.cancel)?;
    if ctx.json() {
        return ctx.print_json(&r);
    }
    ctx.say(format!("before the accident: --at {} (replayed up to LSN {})", r.at, r.before_lsn));
    let changes = |t: &rows::Transaction| {
        t.tables
            .iter()
            .map(|c| if c.truncated { format!("{} truncated", c.table) } else { format!("{}: {} inserted, {} updated, {} deleted", c.table, c.inserted, c.updated, c.deleted) })
            .collect::<Vec<_>>()
            .join("; ")
    };
    if let Some(a) = &r.accident {
        ctx.say(format!("the accident: transaction {} committed {} (commit record at LSN {}): {}", a.xid, a.committed_at, a.commit_lsn, changes(a)));
        ctx.say("  found in the archived WAL as the first transaction after --at that changed these tables; if it is not the accident, name its end with --until LSN");
        for t in &r.later {
            ctx.say(format!("  later: transaction {} committed {} (--until {}): {}", t.xid, t.committed_at, t.commit_lsn, changes(t)));
        }
    } else if let Some(u) = &r.until {
        ctx.say(format!("right after the accident: --until {u} (replayed up to LSN {})", r.after_lsn));
        for t in &r.between {
            ctx.say(format!("  transaction {} committed {} (LSN {}): {}", t.xid, t.committed_at, t.commit_lsn, changes(t)));
        }
    }
    let repaired = if r.applied { "repaired" } else { "to repair" };
    for t in &r.tables {
        ctx.say(format!(
            "{}: the accident deleted {}, updated {}, inserted {}, moved {} to another key; {} {repaired}, {} conflict(s) ({}), {} already as before, {} left out by --where, {} untouched",
            t.table,
            t.deleted,
            t.updated,
            t.inserted,
            t.keys_changed,
            t.repaired,
            t.conflicts,
            if r.conflicts == rows::ConflictChoice::Before { "put back as before" } else { "left as they are" },
            t.already_as_before,
            t.filtered_out,
            t.untouched
        ));
        for n in &t.not_compared {
            ctx.say(format!("  column {} not compared: {}", n.column, n.reason));
        }
        for c in t.conflict_rows.iter().take(SHOWN) {
            let version = |v: &Option<std::collections::BTreeMap<String, Option<String>>>| match v {
                None => "(no row)".to_owned(),
                Some(m) => {
                    let differing: Vec<String> = m
                        .iter()
                        .filter(|(k, val)| [&c.before, &c.after, &c.now].iter().any(|o| o.as_ref().and_then(|x| x.get(*k)) != Some(*val)))
                        .map(|(k, val)| format!("{k}={}", val.as_deref().map_or_else(|| "NULL".to_owned(), shorten)))
                        .collect();
                    if differing.is_empty() { "(same)".to_owned() } else { differing.join(" ") }
                }
            };
            ctx.say(format!("  conflict {}: before {} | after the accident {} | now {}", c.key, version(&c.before), version(&c.after), version(&c.now)));
        }
        if t.conflict_rows.len() > SHOWN {
            ctx.say(format!("  ... {} more conflict(s), each with its three versions in the script", t.conflict_rows.len() - SHOWN));
        }
    }
    for n in &r.notes {
        ctx.say(format!("note: {n}"));
    }
    ctx.say(format!("scratch restores {:.1}s, total {:.1}s", r.scratch_restore_ms as f64 / 1000.0, r.total_ms as f64 / 1000.0));
    ctx.say(if r.applied {
        format!(
            "applied in one transaction: {} row(s) written, {} statement(s) found their row changed since and did nothing; script kept in {}",
            r.rows_written,
            r.statements_skipped,
            r.script.display()
        )
    } else {
        format!("script written to {} (review it, then run it, or use --apply)", r.script.display())
    });
    Ok(())
}

/// A value cut for one terminal line (the script has it whole).
fn shorten(s: &str) -> String {
    let one_line = s.replace(['\n', '\r'], "\u{23ce}");
    if one_line.chars().count() > 40 { format!("{}…", one_line.chars().take(40).collect::<String>()) } else { one_line }
}

pub fn wal_stream(ctx: &Context, args: &WalStreamArgs) -> Result<()> {
    if args.upload_only {
        let saved = reprise_ops::postgres::save_stream_spool(&ctx.ws, &args.component, args.spool.as_deref())?;
        if ctx.json() {
            return ctx.print_json(&saved);
        }
        ctx.say(format!(
            "{}: stored {} range(s) ({}) and {} whole segment(s) from {}; the repository now holds everything the spool had",
            args.component,
            saved.report.ranges_stored,
            bytes(saved.report.bytes_stored),
            saved.report.segments_archived,
            saved.spool.display()
        ));
        return Ok(());
    }
    let request = StreamRequest {
        component: args.component.clone(),
        spool: args.spool.clone(),
        synchronous: args.synchronous,
        upload_interval: Duration::from_secs(args.partial_interval.max(1)),
        duration: args.duration.map(Duration::from_secs),
    };
    let report = reprise_ops::postgres::wal_stream(&ctx.ws, &request, &ctx.cancel, &mut |start| {
        if !ctx.json() {
            ctx.say(format!(
                "streaming {} through slot {} into the repository ({}){}; Ctrl-C to stop",
                args.component,
                start.slot,
                if args.synchronous { "each commit stored before it is acknowledged".to_owned() } else { format!("stored every {}s", args.partial_interval.max(1)) },
                if args.synchronous { format!("; the server waits for it with synchronous_standby_names = '{}'", start.application_name) } else { String::new() }
            ));
        }
    })?;
    if ctx.json() {
        ctx.print_json(&report)?;
    } else {
        ctx.say(format!(
            "stopped: {} received, {} range(s) and {} whole segment(s) stored{}",
            bytes(report.bytes_received),
            report.ranges_stored,
            report.segments_archived,
            report.stored_lsn.map(|l| format!("; the repository holds WAL up to {l}")).unwrap_or_default()
        ));
    }
    Ok(())
}
