//! PostgreSQL commands: `wal-push`, `wal-fetch`, `recover-rows`, and the
//! PostgreSQL branches of `backup`, `restore` and `status`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use reprise_engine::backup::{BackupOptions, backup};
use reprise_engine::cache::FilesCache;
use reprise_plan::{ComponentPlan, PostgresMode, PostgresPlan};
use reprise_postgres::base::{BaseBackup, BaseBackupOptions};
use reprise_postgres::restore::{PitrOptions, Target};
use reprise_postgres::{logical, restore as pitr, rows, status as pgstatus, wal};

use crate::args::{ConflictChoiceArg, RecoverRowsArgs, RestoreArgs, WalFetchArgs, WalPushArgs, WalStreamArgs};
use crate::commands::bytes;
use crate::context::Context;
use crate::exit;

/// PostgreSQL's "file not archived" answer to restore_command.
pub const WAL_NOT_ARCHIVED: u8 = 1;
/// Any other failure: above 125, PostgreSQL stops recovery instead of
/// treating it as the end of the archive (which would lose data silently).
pub const WAL_FETCH_ERROR: u8 = 126;

pub fn pg_plan(c: &ComponentPlan) -> Option<&PostgresPlan> {
    match &c.kind {
        reprise_plan::ComponentKind::Postgres(p) => Some(p),
        reprise_plan::ComponentKind::Files => None,
    }
}

pub(crate) fn pg_error(e: reprise_postgres::PgError) -> anyhow::Error {
    use reprise_postgres::PgError as E;
    let code = match &e {
        E::Engine(inner) => exit::for_category(inner.category()),
        E::Connect { .. } | E::NotArchiving(_) | E::WrongDataDirectory { .. } | E::NotADataDirectory { .. } | E::BadWalName(_) | E::Invalid(_) => exit::USAGE,
        E::Privileges { .. } => exit::PERMISSION,
        E::Gap { .. } | E::WalConflict { .. } => exit::DAMAGED,
        E::NoBaseBackup { .. } | E::MissingBinary { .. } => exit::NOT_FOUND,
        E::Interrupted => exit::INTERRUPTED,
        E::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => exit::PERMISSION,
        _ => exit::ERROR,
    };
    exit::with_code(code, e.to_string())
}

pub fn wal_push(ctx: &Context, args: &WalPushArgs) -> Result<()> {
    let component = ctx.plan.as_ref().and_then(|p| p.components.get(&args.component));
    let repo = ctx.open(component)?;
    let t = Instant::now();
    let outcome = wal::push(&repo, &args.component, &args.path).map_err(pg_error)?;
    tracing::info!("{}: {:?} in {} ms", args.path.display(), outcome, t.elapsed().as_millis());
    if ctx.json() {
        ctx.print_json(&serde_json::json!({ "file": args.path, "outcome": outcome, "ms": t.elapsed().as_millis() as u64 }))?;
    }
    Ok(())
}

/// Waits for a file the restoring process puts in the spool.
fn fetch_from_spool(spool: &Path, file: &str, dest: &Path) -> Result<bool> {
    let want = spool.join(format!("{file}.want"));
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut asked = false;
    loop {
        let ready = spool.join(file);
        if ready.exists() {
            std::fs::rename(&ready, dest).map_err(|e| exit::with_code(WAL_FETCH_ERROR, format!("cannot move {} to {}: {e}", ready.display(), dest.display())))?;
            return Ok(true);
        }
        if spool.join(format!("{file}.missing")).exists() {
            return Ok(false);
        }
        if let Ok(msg) = std::fs::read_to_string(spool.join(format!("{file}.error"))) {
            return Err(exit::with_code(WAL_FETCH_ERROR, format!("{file}: {msg}")));
        }
        if !asked {
            std::fs::write(&want, b"").map_err(|e| exit::with_code(WAL_FETCH_ERROR, format!("cannot ask for {file} in {}: {e}", spool.display())))?;
            asked = true;
        }
        if Instant::now() > deadline {
            return Err(exit::with_code(WAL_FETCH_ERROR, format!("{file}: the restoring process did not answer within 30 minutes")));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `wal-fetch`: runs before a Context exists in spool-only mode (no plan,
/// no repository, no key).
pub fn wal_fetch(global: &crate::args::Global, args: &WalFetchArgs, cancel: &reprise_engine::CancelToken) -> Result<()> {
    if reprise_postgres::walname::classify(&args.file).is_none() {
        return Err(exit::with_code(WAL_FETCH_ERROR, format!("'{}' is not a WAL file name: restore_command must pass %f %p", args.file)));
    }
    let found = if args.spool_only {
        fetch_from_spool(args.spool.as_deref().expect("clap requires --spool"), &args.file, &args.destination)?
    } else {
        let spool = args.spool.clone().or_else(|| args.destination.parent().map(|p| p.join("reprise-spool")));
        // A prefetched file first: recovery goes on while storage is down.
        let spooled = match &spool {
            Some(dir) => wal::take_from_spool(dir, &args.file, &args.destination).map_err(|e| exit::with_code(WAL_FETCH_ERROR, e.to_string()))?,
            None => false,
        };
        if spooled {
            true
        } else {
            let ctx = Context::new(global.clone(), cancel.clone()).map_err(|e| exit::with_code(WAL_FETCH_ERROR, e.to_string()))?;
            let component = ctx.plan.as_ref().and_then(|p| p.components.get(&args.component));
            let repo = ctx.open(component).map_err(|e| exit::with_code(WAL_FETCH_ERROR, e.to_string()))?;
            let r = wal::fetch(&repo, &args.component, &args.file, &args.destination, spool.as_deref()).map_err(|e| exit::with_code(WAL_FETCH_ERROR, e.to_string()))?;
            r == wal::FetchOutcome::Restored
        }
    };
    if found {
        Ok(())
    } else {
        Err(exit::with_code(WAL_NOT_ARCHIVED, format!("{} is not archived (for recovery: the end of the archive)", args.file)))
    }
}

fn base_options(name: &str, pg: &PostgresPlan) -> BaseBackupOptions {
    BaseBackupOptions {
        component: name.to_owned(),
        connection: pg.connection.clone(),
        password_env: pg.password_env.clone(),
        data_directory: pg.data_directory.clone(),
        archive_timeout: pg.archive_timeout,
        block_size: pg.block_size_kib * 1024,
    }
}

/// `backup COMPONENT` for a PostgreSQL component.
pub fn backup_postgres(ctx: &Context, repo: &Arc<reprise_engine::Repository>, c: &ComponentPlan, pg: &PostgresPlan, mut opts: BackupOptions) -> Result<reprise_engine::backup::BackupOutcome> {
    let progress = ctx.progress("backup");
    opts.cancel = ctx.cancel.clone();
    match pg.mode {
        PostgresMode::Physical => {
            let source = BaseBackup::begin(Arc::clone(repo), base_options(&c.name, pg)).map_err(pg_error)?;
            opts.kind = pitr::KIND_BASE.into();
            opts.paths = vec![source.info.data_directory.display().to_string().into_bytes()];
            opts.files_cache = Some(FilesCache::path_for(&ctx.cache_dir(), repo.id(), &opts.host, &c.name));
            Ok(backup(repo, source, &opts, &progress)?)
        }
        PostgresMode::Logical => {
            let work = tempfile::Builder::new().prefix("reprise-dump-").tempdir_in(std::env::temp_dir())?;
            let dump = logical::DumpOptions {
                connection: pg.connection.clone(),
                password_env: pg.password_env.clone(),
                databases: pg.databases.clone(),
                jobs: std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u32,
                bin: pg.bin_dir.clone(),
                work: work.path().to_owned(),
            };
            logical::backup_logical(repo, &dump, opts, &progress).map_err(pg_error)
        }
    }
}

fn standalone_fetch(ctx: &Context, component: &str) -> String {
    let exe = std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_else(|_| "reprise".into());
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut cmd = q(&exe);
    if let Some(p) = ctx.plan.as_ref().map(|p| std::fs::canonicalize(&p.file).unwrap_or_else(|_| p.file.clone())) {
        cmd.push_str(&format!(" --plan {}", q(&p.display().to_string())));
    }
    if let Some(r) = &ctx.global.repo {
        cmd.push_str(&format!(" --repo {}", q(r)));
    }
    if let Some(k) = &ctx.global.key_file {
        cmd.push_str(&format!(" --key-file {}", q(&k.display().to_string())));
    }
    cmd.push_str(&format!(" wal-fetch {} %f %p", q(component)));
    cmd
}

/// `restore COMPONENT --at ... --to ...` for a PostgreSQL component.
pub fn restore_postgres(ctx: &Context, c: &ComponentPlan, pg: &PostgresPlan, args: &RestoreArgs) -> Result<()> {
    let repo = ctx.open(Some(c))?;
    let progress = ctx.progress("restore");
    if pg.mode == PostgresMode::Logical {
        let at = match args.at.as_deref().map(Target::parse).transpose().map_err(exit::usage)? {
            None | Some(Target::Latest) => None,
            Some(Target::Time(t)) => Some(t),
            Some(other) => return Err(exit::usage(format!("{other}: a logical component restores a dump, choose latest or a time"))),
        };
        // The newest dump (before --at), never an older one in place of a
        // damaged newer one (`Repository::newest_snapshot`).
        let snap = repo
            .newest_snapshot(&|h| h.component == c.name && h.kind == logical::KIND_LOGICAL && at.is_none_or(|t| h.time <= t))?
            .ok_or_else(|| exit::with_code(exit::NOT_FOUND, format!("no logical backup of '{}'{}", c.name, at.map(|t| format!(" before {t}")).unwrap_or_default())))?;
        let t = Instant::now();
        let restored = logical::restore_logical(
            &repo,
            &logical::LogicalRestoreOptions {
                snapshot: snap.id,
                to: args.to.clone(),
                into: args.into.clone(),
                password_env: pg.password_env.clone(),
                database: args.database.clone(),
                table: args.table.clone(),
                jobs: std::thread::available_parallelism().map_or(2, std::num::NonZero::get) as u32,
                bin: pg.bin_dir.clone(),
            },
            progress.as_ref(),
        )
        .map_err(pg_error)?;
        crate::commands::ledger::record(ctx, &repo, &crate::commands::ledger::restore_postgres(&c.name, Some(snap.id), None, "dump", 0))?;
        if ctx.json() {
            return ctx.print_json(&serde_json::json!({ "snapshot": snap.id, "to": args.to, "loaded": restored, "ms": t.elapsed().as_millis() as u64 }));
        }
        ctx.say(format!("restored dump {} to {} in {:.1}s{}", snap.id.short(), args.to.display(), t.elapsed().as_secs_f64(), if restored.is_empty() { String::new() } else { format!("; loaded {}", restored.join(", ")) }));
        return Ok(());
    }
    let target = Target::parse(args.at.as_deref().unwrap_or("latest")).map_err(exit::usage)?;
    let mut tablespace_map = reprise_postgres::tablespaces::TablespaceMap { by_oid: std::collections::BTreeMap::new(), under: args.tablespace_dir.as_deref().map(std::path::absolute).transpose()? };
    for t in &args.tablespaces {
        let (oid, dir) = t.split_once('=').filter(|(_, d)| !d.is_empty()).ok_or_else(|| exit::usage(format!("--tablespace {t}: write OID=DIR (`reprise ls -l SNAPSHOT pgdata/pg_tblspc` lists the OIDs)")))?;
        let oid: u32 = oid.parse().map_err(|_| exit::usage(format!("--tablespace {t}: OID must be a number (`reprise ls -l SNAPSHOT pgdata/pg_tblspc` lists the OIDs)")))?;
        if tablespace_map.by_oid.insert(oid, std::path::absolute(dir)?).is_some() {
            return Err(exit::usage(format!("--tablespace {oid}=... is given twice: give each tablespace one folder")));
        }
    }
    if args.to.exists() && !args.delta && std::fs::read_dir(&args.to).map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(exit::usage(format!("{} is not empty: restore into a new directory, or pass --delta to update an existing copy in place", args.to.display())));
    }
    let opts = PitrOptions {
        component: c.name.clone(),
        target,
        to: std::path::absolute(&args.to)?,
        start: args.start,
        delta: args.delta,
        tablespace_map,
        standalone_fetch: standalone_fetch(ctx, &c.name),
        exe: std::env::current_exe()?,
        bin: pg.bin_dir.clone(),
        threads: args.threads.unwrap_or(0),
        cancel: ctx.cancel.clone(),
        keep_running: args.keep_running,
        settings: Vec::new(),
    };
    let (out, cluster) = pitr::restore(&repo, &opts, progress.as_ref()).map_err(pg_error)?;
    drop(progress);
    crate::commands::ledger::record(ctx, &repo, &crate::commands::ledger::restore_postgres(&c.name, None, Some(&out.base_backup), &out.target, out.wal_segments as u64))?;
    if ctx.json() {
        ctx.print_json(&out)?;
    } else {
        ctx.say(format!(
            "restored base backup {} (ended {}) to {}: {} files, {}{}; {} WAL segment(s) to replay",
            &out.base_backup[..8],
            out.base_stop_time,
            args.to.display(),
            out.files,
            bytes(out.bytes),
            if args.delta { format!(" written, {} already right", bytes(out.bytes_unchanged)) } else { String::new() },
            out.wal_segments
        ));
        for t in &out.tablespaces {
            ctx.say(format!("tablespace {} restored to {}{}", t.oid, t.location.display(), t.original.as_ref().map(|o| format!(" (was {})", o.display())).unwrap_or_default()));
        }
        if let Some(c) = &cluster {
            ctx.say(format!(
                "recovered to {} and promoted: files {:.1}s + recovery {:.1}s = {:.1}s (measured recovery time)",
                out.target,
                out.restore_ms as f64 / 1000.0,
                out.recovery_ms as f64 / 1000.0,
                out.total_ms as f64 / 1000.0
            ));
            if args.keep_running {
                ctx.say(format!("running: psql \"{}\"   stop: pg_ctl -D {} stop", c.conn_string("postgres"), args.to.display()));
            } else {
                ctx.say("(stopped; pass --keep-running to keep it)");
            }
        } else {
            ctx.say("start it with pg_ctl; recovery fetches WAL with reprise wal-fetch, as the postgres account, which needs the passphrase (e.g. REPRISE_PASSWORD_FILE)");
        }
    }
    Ok(())
}

pub fn recover_rows(ctx: &Context, args: &RecoverRowsArgs) -> Result<()> {
    // Conflicts shown per table; the script and --json have them all.
    const SHOWN: usize = 10;
    let c = ctx.component(&args.component)?;
    let pg = pg_plan(c).filter(|p| p.mode == PostgresMode::Physical).ok_or_else(|| {
        exit::usage(format!("recover-rows needs a physical postgres component; '{}' is not one", c.name))
    })?;
    let at = Target::parse(&args.at).map_err(|e| exit::usage(format!("--at: {e}")))?;
    let until = args.until.as_deref().map(Target::parse).transpose().map_err(|e| exit::usage(format!("--until: {e}")))?;
    let database = match &args.database {
        Some(d) => d.clone(),
        None => reprise_postgres::conn::config(&pg.connection, pg.password_env.as_deref())
            .ok()
            .and_then(|c| c.get_dbname().map(str::to_owned))
            .unwrap_or_else(|| "postgres".into()),
    };
    let repo = ctx.open(Some(c))?;
    let stamp = jiff::Timestamp::now().strftime("%Y%m%dT%H%M%S").to_string();
    let script = args.script.clone().unwrap_or_else(|| PathBuf::from(format!("recover-{}-{stamp}.sql", args.tables[0].replace(['/', '"'], "_"))));
    let scratch = tempfile::Builder::new().prefix("reprise-scratch-").tempdir()?;
    let opts = rows::RowRecoveryOptions {
        component: c.name.clone(),
        tables: args.tables.clone(),
        at,
        until,
        predicate: args.predicate.clone(),
        conflicts: match args.conflicts {
            ConflictChoiceArg::Keep => rows::ConflictChoice::Keep,
            ConflictChoiceArg::Before => rows::ConflictChoice::Before,
        },
        live: pg.connection.clone(),
        password_env: pg.password_env.clone(),
        database,
        apply: args.apply,
        script,
        scratch: scratch.path().join("cluster"),
        exe: std::env::current_exe()?,
        bin: pg.bin_dir.clone(),
        cancel: ctx.cancel.clone(),
    };
    let r = rows::recover_rows(&repo, &opts).map_err(pg_error)?;
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

/// Status of one PostgreSQL component.
pub fn status_postgres(ctx: &Context, c: &ComponentPlan, pg: &PostgresPlan) -> Result<pgstatus::PgStatus> {
    let repo = ctx.open(Some(c))?;
    pgstatus::status(&repo, &c.name, Some((&pg.connection, pg.password_env.as_deref()))).map_err(pg_error)
}

pub fn wal_stream(ctx: &Context, args: &WalStreamArgs) -> Result<()> {
    let c = ctx.component(&args.component)?;
    let pg = pg_plan(c).filter(|p| p.mode == PostgresMode::Physical).ok_or_else(|| exit::usage(format!("wal-stream needs a physical postgres component; '{}' is not one", c.name)))?;
    let repo = ctx.open(Some(c))?;
    let opts = reprise_postgres::stream::StreamOptions {
        component: c.name.clone(),
        connection: pg.connection.clone(),
        password_env: pg.password_env.clone(),
        spool: args.spool.clone().unwrap_or_else(|| ctx.cache_dir().join("wal-stream").join(&c.name)),
        synchronous: args.synchronous,
        partial_interval: Duration::from_secs(args.partial_interval.max(1)),
        bin: pg.bin_dir.clone(),
        duration: args.duration.map(Duration::from_secs),
    };
    if !ctx.json() {
        ctx.say(format!(
            "streaming {} through slot {} into the repository (segment in progress uploaded every {}s){}; Ctrl-C to stop",
            c.name,
            reprise_postgres::stream::slot_name(&c.name),
            args.partial_interval,
            if args.synchronous { format!("; synchronous: set synchronous_standby_names = '{}' on the server for RPO 0", reprise_postgres::stream::application_name(&c.name)) } else { String::new() }
        ));
    }
    let report = reprise_postgres::stream::stream(&repo, &opts, &ctx.cancel).map_err(pg_error)?;
    if ctx.json() {
        ctx.print_json(&report)?;
    } else {
        ctx.say(format!("stopped: {} segment(s) archived, {} partial upload(s)", report.segments_archived, report.partial_uploads));
    }
    Ok(())
}
