//! Logical backups for managed servers (no file access): `pg_dump` in
//! directory format with parallel jobs, stored as a snapshot, and
//! `pg_restore -j` (of a whole database or of one table).
//!
//! One table comes back whole: `pg_restore -t` restores a table's
//! definition and rows but not its primary key, foreign keys, indexes,
//! triggers, policies, owned sequences or comments (separate entries of
//! the archive's table of contents). So the table of contents is read
//! (`pg_restore -l -v`, which lists what each entry depends on) and the
//! entries that belong to the table are restored with `-L`
//! ([`table_entries`]); foreign keys of *other* tables pointing at it
//! belong to those tables and stay out, as in `pg_dump -t`.
//!
//! Dumps are written uncompressed (`-Z 0`) so that the repository's
//! content-defined chunking deduplicates one day's table data against the
//! previous day's; reprise compresses what it stores.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use reprise_engine::backup::{BackupOptions, BackupOutcome, backup};
use reprise_engine::restore::{RestoreOptions, restore as restore_files};
use reprise_engine::{Progress, Repository};
use reprise_source_files::{FilesOptions, FilesSource};

use crate::cluster::PgBin;
use crate::conn;
use crate::error::{PgError, Result};
use crate::rows::with_dbname;

pub const KIND_LOGICAL: &str = "postgres-logical";

#[derive(Debug, Clone)]
pub struct DumpOptions {
    pub connection: String,
    pub password_env: Option<String>,
    /// Databases to dump; empty means every connectable non-template one.
    pub databases: Vec<String>,
    pub jobs: u32,
    pub bin: Option<PathBuf>,
    /// Scratch folder for the dump (removed afterwards).
    pub work: PathBuf,
}

fn run(cmd: &mut std::process::Command, program: &str) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| PgError::io(program, e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PgError::Command { program: program.into(), message: String::from_utf8_lossy(&out.stderr).lines().find(|l| !l.trim().is_empty()).unwrap_or("failed").to_owned() })
    }
}

/// Sets libpq's environment from a connection string for the dump tools
/// (the password travels in the environment, never in arguments).
fn libpq_env(cmd: &mut std::process::Command, cfg: &postgres::Config) {
    if let Some(h) = cfg.get_hosts().first() {
        let host = match h {
            postgres::config::Host::Tcp(s) => s.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        };
        cmd.env("PGHOST", host);
    }
    if let Some(p) = cfg.get_ports().first() {
        cmd.env("PGPORT", p.to_string());
    }
    if let Some(u) = cfg.get_user() {
        cmd.env("PGUSER", u);
    }
    if let Some(pw) = cfg.get_password() {
        cmd.env("PGPASSWORD", String::from_utf8_lossy(pw).into_owned());
    }
}

/// Dumps the databases and backs the dump folder up as one snapshot.
pub fn backup_logical(repo: &Arc<Repository>, opts: &DumpOptions, mut bopts: BackupOptions, progress: &Arc<dyn Progress>) -> Result<BackupOutcome> {
    let bin = PgBin::find(opts.bin.as_deref())?;
    let cfg = conn::config(&opts.connection, opts.password_env.as_deref())?;
    let mut client = conn::connect(&opts.connection, opts.password_env.as_deref())?;
    let databases = if opts.databases.is_empty() {
        client
            .query("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1", &[])
            .map_err(|e| PgError::sql(&e))?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    } else {
        opts.databases.clone()
    };
    drop(client);
    let dump_root = opts.work.join("dump");
    let _ = std::fs::remove_dir_all(&dump_root);
    std::fs::create_dir_all(&dump_root).map_err(|e| PgError::io(&dump_root, e))?;
    let _cleanup = Cleanup(opts.work.clone());
    // Roles and tablespaces are global: dump them beside the databases.
    let mut globals = std::process::Command::new(bin.program("pg_dumpall")?);
    libpq_env(&mut globals, &cfg);
    run(globals.arg("--globals-only").arg("--no-role-passwords").arg("-f").arg(dump_root.join("globals.sql")), "pg_dumpall --globals-only")?;
    for db in &databases {
        let mut dump = std::process::Command::new(bin.program("pg_dump")?);
        libpq_env(&mut dump, &cfg);
        run(
            dump.args(["-Fd", "-Z", "0", "-j", &opts.jobs.max(1).to_string(), "-d", db, "-f"]).arg(dump_root.join(db)),
            "pg_dump",
        )?;
    }
    bopts.kind = KIND_LOGICAL.into();
    bopts.paths = vec![dump_root.display().to_string().into_bytes()];
    bopts.header_labels.insert("pg.databases".into(), databases.join(","));
    bopts.files_cache = None;
    let source = FilesSource::new(std::slice::from_ref(&dump_root), &FilesOptions::default()).map_err(|e| PgError::Invalid(e.to_string()))?;
    Ok(backup(repo, source, &bopts, progress)?)
}

#[derive(Debug, Clone)]
pub struct LogicalRestoreOptions {
    pub snapshot: reprise_engine::format::Id,
    /// Restore the dump files here (kept).
    pub to: PathBuf,
    /// Then load them into this server (connection string), if given.
    pub into: Option<String>,
    pub password_env: Option<String>,
    pub database: Option<String>,
    /// Restore only this table (`schema.table` or `table`).
    pub table: Option<String>,
    pub jobs: u32,
    pub bin: Option<PathBuf>,
}

/// What a logical restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LogicalRestored {
    /// Databases loaded, by their name on the target server.
    pub loaded: Vec<String>,
    /// Of those, the ones this restore created.
    pub created: Vec<String>,
    /// Objects of the dump a single-table restore left out, each with why
    /// (foreign keys to a table the target lacks, other tables' foreign
    /// keys to this one).
    pub left_out: Vec<String>,
    /// Objects the table needs that the target lacked, restored with it
    /// (a trigger's function, a column's type).
    pub prerequisites: Vec<String>,
}

/// One database to load: its dump, and its name on the target server.
struct Load {
    dumped: String,
    target: String,
    exists: bool,
}

/// Restores a logical snapshot's dump folder, then optionally `pg_restore`s
/// it. Everything that can be checked is checked before anything is
/// written: the server answers, the databases are in the dump, the table
/// is in the dump and not already in the target.
pub fn restore_logical(repo: &Repository, opts: &LogicalRestoreOptions, progress: &dyn Progress) -> Result<LogicalRestored> {
    let snap = repo.find_snapshot(&opts.snapshot.to_hex(), &|_| true)?;
    let body = repo.snapshot_body(&opts.snapshot)?;
    let dump_path = body.paths.first().map(|p| String::from_utf8_lossy(p).trim_start_matches('/').to_owned()).unwrap_or_default();
    let dumped: Vec<String> = snap.header.labels.get("pg.databases").map(|l| l.split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect()).unwrap_or_default();
    let mut out = LogicalRestored::default();
    let plan = match &opts.into {
        None => None,
        Some(into) => Some(plan_loads(repo, opts, into, &dump_path, &dumped)?),
    };
    let mut ro = RestoreOptions::new(&opts.to);
    ro.subpath = dump_path.into_bytes();
    let restored = restore_files(repo, &opts.snapshot, &ro, progress)?;
    if !restored.damaged.is_empty() {
        return Err(PgError::Invalid(format!("{} dump file(s) are damaged; run `reprise check --read-data`", restored.damaged.len())));
    }
    let (Some(into), Some((bin, loads))) = (&opts.into, plan) else { return Ok(out) };
    for load in loads {
        let dir = opts.to.join(&load.dumped);
        if !load.exists {
            let mut admin = conn::connect(into, opts.password_env.as_deref())?;
            admin.batch_execute(&format!("CREATE DATABASE {}", quote_ident(&load.target))).map_err(|e| PgError::sql(&e))?;
            out.created.push(load.target.clone());
        }
        let target = with_dbname(into, &load.target);
        let cfg = conn::config(&target, opts.password_env.as_deref())?;
        let mut cmd = std::process::Command::new(bin.program("pg_restore")?);
        libpq_env(&mut cmd, &cfg);
        cmd.args(["-j", &opts.jobs.max(1).to_string(), "--no-owner", "--exit-on-error", "-d", &load.target]);
        // Kept until pg_restore has read it.
        let mut list_file = None;
        if let Some(t) = &opts.table {
            let (schema, table) = split_table(t);
            let toc = toc_of(&bin, &dir)?;
            let mut client = conn::connect(&target, opts.password_env.as_deref())?;
            let mut exists = |what: &Absent<'_>| target_has(&mut client, what);
            let chosen = table_restore(&toc, schema, table, &mut exists).map_err(|e| PgError::Invalid(format!("database '{}': {e}", load.dumped)))?;
            out.left_out.extend(chosen.left_out);
            out.prerequisites.extend(chosen.prerequisites);
            let mut f = tempfile::NamedTempFile::new().map_err(|e| PgError::io(std::env::temp_dir(), e))?;
            for l in chosen.lines {
                writeln!(f, "{l}").map_err(|e| PgError::io(f.path(), e))?;
            }
            f.flush().map_err(|e| PgError::io(f.path(), e))?;
            cmd.arg("-L").arg(f.path());
            list_file = Some(f);
        }
        run(cmd.arg(&dir), "pg_restore")?;
        drop(list_file);
        out.loaded.push(load.target);
    }
    Ok(out)
}

fn split_table(t: &str) -> (Option<&str>, &str) {
    t.split_once('.').map_or((None, t), |(s, t)| (Some(s), t))
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Decides which dumped database goes to which target database, and
/// checks the server and the dump, before anything is written.
fn plan_loads(repo: &Repository, opts: &LogicalRestoreOptions, into: &str, dump_path: &str, dumped: &[String]) -> Result<(PgBin, Vec<Load>)> {
    let bin = PgBin::find(opts.bin.as_deref())?;
    let pairs: Vec<(String, String)> = match &opts.database {
        Some(d) if dumped.contains(d) => vec![(d.clone(), d.clone())],
        // A dump of one database loads under any name: `--database NEW`.
        Some(d) if dumped.len() == 1 => vec![(dumped[0].clone(), d.clone())],
        Some(d) => {
            return Err(PgError::Invalid(format!(
                "the snapshot has no dump of database '{d}' (it holds {}): name one of them with --database",
                if dumped.is_empty() { "none".to_owned() } else { dumped.join(", ") }
            )));
        }
        None if dumped.is_empty() => return Err(PgError::Invalid("the snapshot names no dumped database: name one with --database".into())),
        None => dumped.iter().map(|d| (d.clone(), d.clone())).collect(),
    };
    if opts.table.is_some() && pairs.len() > 1 {
        return Err(PgError::Invalid(format!("--table restores one table of one database: the dump holds {}, name one with --database", dumped.join(", "))));
    }
    let mut admin = conn::connect(into, opts.password_env.as_deref())?;
    let mut loads = Vec::new();
    for (from, to) in pairs {
        let exists = admin.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&to]).map_err(|e| PgError::sql(&e))?.is_some();
        if let Some(t) = &opts.table {
            let toc_dir = tempfile::tempdir().map_err(|e| PgError::io(std::env::temp_dir(), e))?;
            let mut ro = RestoreOptions::new(toc_dir.path());
            ro.subpath = format!("{dump_path}/{from}").into_bytes();
            ro.include = vec![b"toc.dat".to_vec()];
            restore_files(repo, &opts.snapshot, &ro, &reprise_engine::NoProgress)?;
            let toc = toc_of(&bin, toc_dir.path())?;
            let (schema, table) = split_table(t);
            table_owner(&parse_toc(&toc), schema, table).map_err(|e| PgError::Invalid(format!("database '{from}': {e}")))?;
            if exists {
                let mut client = conn::connect(&with_dbname(into, &to), opts.password_env.as_deref())?;
                let name = schema.map_or_else(|| quote_ident(table), |s| format!("{}.{}", quote_ident(s), quote_ident(table)));
                let present: Option<String> = client.query_one("SELECT to_regclass($1)::text", &[&name]).map_err(|e| PgError::sql(&e))?.get(0);
                if let Some(p) = present {
                    return Err(PgError::Invalid(format!("table {p} already exists in database '{to}': drop or rename it first, or restore into another database with --database NEW")));
                }
            }
        } else if exists {
            let mut client = conn::connect(&with_dbname(into, &to), opts.password_env.as_deref())?;
            let tables: i64 = client
                .query_one("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'", &[])
                .map_err(|e| PgError::sql(&e))?
                .get(0);
            if tables > 0 {
                return Err(PgError::Invalid(format!("database '{to}' on the target server is not empty ({tables} relations): restore into a new database with --database NEW, or drop it first")));
            }
        }
        loads.push(Load { dumped: from, target: to, exists });
    }
    Ok((bin, loads))
}

/// Something a single-table restore needs from the target, looked up there.
#[derive(Debug)]
enum Absent<'a> {
    Table { schema: &'a str, name: &'a str },
    Function { schema: &'a str, signature: &'a str },
    Type { schema: &'a str, name: &'a str },
    Schema(&'a str),
    Extension(&'a str),
}

fn target_has(client: &mut postgres::Client, what: &Absent<'_>) -> Result<bool> {
    let q = |client: &mut postgres::Client, sql: &str, arg: &str| -> Result<bool> {
        let row = client.query_one(sql, &[&arg]).map_err(|e| PgError::sql(&e))?;
        Ok(row.get::<_, bool>(0))
    };
    match what {
        Absent::Table { schema, name } => q(client, "SELECT to_regclass($1) IS NOT NULL", &format!("{}.{}", quote_ident(schema), quote_ident(name))),
        Absent::Function { schema, signature } => {
            // The TOC writes `name(argtypes)`: quote the name only.
            let (name, args) = signature.split_once('(').unwrap_or((signature, ")"));
            q(client, "SELECT to_regprocedure($1) IS NOT NULL", &format!("{}.{}({args}", quote_ident(schema), quote_ident(name)))
        }
        Absent::Type { schema, name } => q(client, "SELECT to_regtype($1) IS NOT NULL", &format!("{}.{}", quote_ident(schema), quote_ident(name))),
        Absent::Schema(s) => q(client, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", s),
        Absent::Extension(e) => q(client, "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = $1)", e),
    }
}

/// The table of contents of a dump, with each entry's dependencies.
fn toc_of(bin: &PgBin, dir: &Path) -> Result<String> {
    let out = std::process::Command::new(bin.program("pg_restore")?)
        .args(["-l", "-v"])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| PgError::io("pg_restore", e))?;
    if !out.status.success() {
        return Err(PgError::Command { program: "pg_restore -l".into(), message: String::from_utf8_lossy(&out.stderr).lines().find(|l| !l.trim().is_empty()).unwrap_or("failed").to_owned() });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Entry descriptions of more than one word (pg_dump's `te->desc`), longest
/// first, so that `TABLE DATA` is not read as `TABLE`.
const MULTI_WORD: &[&str] = &[
    "PUBLICATION TABLES IN SCHEMA",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "MATERIALIZED VIEW DATA",
    "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",
    "PROCEDURAL LANGUAGE",
    "DATABASE PROPERTIES",
    "TEXT SEARCH PARSER",
    "SEQUENCE OWNED BY",
    "PUBLICATION TABLE",
    "MATERIALIZED VIEW",
    "CHECK CONSTRAINT",
    "OPERATOR FAMILY",
    "OPERATOR CLASS",
    "SECURITY LABEL",
    "FOREIGN SERVER",
    "BLOB METADATA",
    "EVENT TRIGGER",
    "FOREIGN TABLE",
    "FK CONSTRAINT",
    "ACCESS METHOD",
    "LARGE OBJECT",
    "SEQUENCE SET",
    "ROW SECURITY",
    "INDEX ATTACH",
    "TABLE ATTACH",
    "USER MAPPING",
    "DEFAULT ACL",
    "SHELL TYPE",
    "TABLE DATA",
];

/// One line of `pg_restore -l -v`:
/// `ID; TABLEOID OID DESC SCHEMA TAG OWNER`, then `;\tdepends on: ID ...`.
#[derive(Debug)]
struct TocEntry<'a> {
    id: u32,
    line: &'a str,
    desc: &'a str,
    schema: &'a str,
    tag: &'a str,
    deps: Vec<u32>,
}

fn parse_toc(text: &str) -> Vec<TocEntry<'_>> {
    let mut out: Vec<TocEntry<'_>> = Vec::new();
    for line in text.lines() {
        if let Some(deps) = line.strip_prefix(";\tdepends on:") {
            if let Some(last) = out.last_mut() {
                last.deps.extend(deps.split_whitespace().filter_map(|d| d.parse::<u32>().ok()));
            }
            continue;
        }
        let Some((id, rest)) = line.split_once("; ") else { continue };
        let Ok(id) = id.trim().parse::<u32>() else { continue };
        // Skip the catalog table OID and the object OID.
        let mut fields = rest.splitn(3, ' ');
        let (Some(_), Some(_), Some(rest)) = (fields.next(), fields.next(), fields.next()) else { continue };
        let desc = MULTI_WORD.iter().find(|d| rest.strip_prefix(**d).is_some_and(|r| r.starts_with(' '))).copied().unwrap_or_else(|| rest.split(' ').next().unwrap_or(""));
        let rest = rest[desc.len()..].trim_start_matches(' ');
        let (schema, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        // The owner is the last word (empty with --no-owner dumps).
        let tag = rest.rsplit_once(' ').map_or(rest, |(tag, _owner)| tag);
        out.push(TocEntry { id, line, desc, schema, tag, deps: Vec::new() });
    }
    out
}

/// The TOC entry of table `table` (in `schema`, if given).
fn table_owner<'a>(entries: &'a [TocEntry<'a>], schema: Option<&str>, table: &str) -> std::result::Result<&'a TocEntry<'a>, String> {
    let matches: Vec<&TocEntry<'_>> = entries.iter().filter(|e| e.desc == "TABLE" && e.tag == table && schema.is_none_or(|s| e.schema == s)).collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => Err(format!("the dump has no table '{}': check the name (SCHEMA.TABLE or TABLE)", schema.map_or_else(|| table.to_owned(), |s| format!("{s}.{table}")))),
        many => {
            let schemas: Vec<&str> = many.iter().map(|e| e.schema).collect();
            Err(format!("there is a table '{table}' in several schemas ({}): write SCHEMA.{table}", schemas.join(", ")))
        }
    }
}

/// What a single-table restore loads, and what it leaves out.
#[derive(Debug, Default)]
struct TableRestore<'a> {
    /// The `pg_restore -L` list.
    lines: Vec<&'a str>,
    left_out: Vec<String>,
    prerequisites: Vec<String>,
}

/// The lines of `toc` (`pg_restore -l -v`) that restore table `table`
/// whole: the table, its rows, and what belongs to it (constraints of its
/// own, indexes, triggers, policies, rules, row security, extended
/// statistics, column defaults, owned sequences with their values,
/// comments, grants).
///
/// Its foreign keys to other tables are restored when the referenced
/// table exists in the target (`exists`), and left out, named, when it
/// does not (the constraint could not be created). Other tables' foreign
/// keys to it are theirs, as in `pg_dump -t`: left out, named. Functions,
/// types, schemas and extensions the kept entries depend on are restored
/// too when the target lacks them (a trigger's function in a new
/// database). Views and other tables that depend on it are not its own.
fn table_restore<'a>(toc: &'a str, schema: Option<&str>, table: &str, exists: &mut dyn FnMut(&Absent<'_>) -> Result<bool>) -> std::result::Result<TableRestore<'a>, String> {
    let entries = parse_toc(toc);
    let owner = table_owner(&entries, schema, table)?.id;
    let by_id: std::collections::HashMap<u32, &TocEntry<'_>> = entries.iter().map(|e| (e.id, e)).collect();
    let own_tag = format!("{table} ");
    let mut out = TableRestore::default();
    let mut keep: std::collections::HashSet<u32> = std::collections::HashSet::from([owner]);
    let failed = |e: PgError| format!("checking the target: {e}");
    for e in &entries {
        if !e.deps.contains(&owner) {
            continue;
        }
        let belongs = match e.desc {
            "TABLE DATA" | "INDEX" | "STATISTICS" | "SEQUENCE" | "ROW SECURITY" | "COMMENT" | "ACL" | "SECURITY LABEL" => true,
            "FK CONSTRAINT" if e.tag.starts_with(&own_tag) => {
                let referenced: Vec<&TocEntry<'_>> = e.deps.iter().filter(|d| **d != owner).filter_map(|d| by_id.get(d).copied()).filter(|d| d.desc == "TABLE").collect();
                let mut missing = Vec::new();
                for r in &referenced {
                    if !exists(&Absent::Table { schema: r.schema, name: r.tag }).map_err(failed)? {
                        missing.push(format!("{}.{}", r.schema, r.tag));
                    }
                }
                if missing.is_empty() {
                    true
                } else {
                    out.left_out.push(format!("foreign key {} of {}.{table}: it references {}, which the target database lacks", constraint_name(e.tag, table), e.schema, missing.join(", ")));
                    false
                }
            }
            "FK CONSTRAINT" => {
                let (other, name) = e.tag.split_once(' ').unwrap_or((e.tag, ""));
                out.left_out.push(format!("foreign key {name} of {}.{other}, which references {}.{table}: another table's (restore that table, or add it back)", e.schema, by_id[&owner].schema));
                false
            }
            // Tagged "TABLE NAME".
            "CONSTRAINT" | "CHECK CONSTRAINT" | "TRIGGER" | "POLICY" | "RULE" | "DEFAULT" => e.tag.starts_with(&own_tag),
            _ => false,
        };
        if belongs {
            keep.insert(e.id);
        }
    }
    // What annotates a kept entry: comments on its indexes, an owned
    // sequence's value and ownership.
    loop {
        let more: Vec<u32> = entries
            .iter()
            .filter(|e| !keep.contains(&e.id) && matches!(e.desc, "COMMENT" | "ACL" | "SECURITY LABEL" | "SEQUENCE SET" | "SEQUENCE OWNED BY") && e.deps.iter().any(|d| keep.contains(d)))
            .map(|e| e.id)
            .collect();
        if more.is_empty() {
            break;
        }
        keep.extend(more);
    }
    // What the kept entries need that the target lacks, with what that
    // needs in turn.
    let mut queue: Vec<u32> = keep.iter().copied().collect();
    let mut looked: std::collections::HashSet<u32> = std::collections::HashSet::new();
    while let Some(id) = queue.pop() {
        let Some(e) = by_id.get(&id) else { continue };
        for d in &e.deps {
            if keep.contains(d) || !looked.insert(*d) {
                continue;
            }
            let Some(dep) = by_id.get(d) else { continue };
            let what = match dep.desc {
                "FUNCTION" => Absent::Function { schema: dep.schema, signature: dep.tag },
                "TYPE" | "DOMAIN" => Absent::Type { schema: dep.schema, name: dep.tag },
                "SCHEMA" => Absent::Schema(dep.tag),
                "EXTENSION" => Absent::Extension(dep.tag),
                _ => continue,
            };
            if !exists(&what).map_err(failed)? {
                out.prerequisites.push(format!("{} {}{}", dep.desc, if dep.schema == "-" { String::new() } else { format!("{}.", dep.schema) }, dep.tag));
                keep.insert(dep.id);
                queue.push(dep.id);
            }
        }
    }
    out.lines = entries.iter().filter(|e| keep.contains(&e.id) || matches!(e.desc, "ENCODING" | "STDSTRINGS" | "SEARCHPATH")).map(|e| e.line).collect();
    Ok(out)
}

/// The constraint's name in a tag `TABLE NAME`.
fn constraint_name<'a>(tag: &'a str, table: &str) -> &'a str {
    tag.strip_prefix(table).map_or(tag, str::trim_start)
}

struct Cleanup(PathBuf);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.0.join("dump"));
    }
}

/// Whether a directory holds a pg_dump directory-format archive.
#[must_use]
pub fn is_dump_dir(p: &Path) -> bool {
    p.join("toc.dat").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_restore -l -v` of a PostgreSQL 15 dump: `notes` has a primary
    /// key, a foreign key to `patients`, an index with a comment, a
    /// trigger, a policy, statistics, an owned sequence, a grant; `other`
    /// has a foreign key to `notes`; a view reads `patients`.
    const TOC: &str = "\
;
; Selected TOC Entries:
;
3377; 0 0 ENCODING - ENCODING 
3378; 0 0 STDSTRINGS - STDSTRINGS 
3379; 0 0 SEARCHPATH - SEARCHPATH 
3380; 1262 16384 DATABASE - app postgres
220; 1255 16424 FUNCTION public t() postgres
215; 1259 16386 TABLE public patients postgres
219; 1259 16420 VIEW public adults postgres
;\tdepends on: 215 215
217; 1259 16397 TABLE public notes postgres
3381; 0 0 COMMENT public TABLE notes postgres
;\tdepends on: 217
3382; 0 0 COMMENT public COLUMN notes.body postgres
;\tdepends on: 217
3383; 0 0 ACL public TABLE notes postgres
;\tdepends on: 217
216; 1259 16396 SEQUENCE public notes_seq_seq postgres
;\tdepends on: 217
3384; 0 0 SEQUENCE OWNED BY public notes_seq_seq postgres
;\tdepends on: 216
218; 1259 16412 TABLE public other postgres
214; 1259 16385 SEQUENCE public patients_id_seq postgres
;\tdepends on: 215
3385; 0 0 SEQUENCE OWNED BY public patients_id_seq postgres
;\tdepends on: 214
3213; 2604 16401 DEFAULT public notes seq postgres
;\tdepends on: 217 216 217
3211; 2604 16389 DEFAULT public patients id postgres
;\tdepends on: 214 215 215
3373; 0 16397 TABLE DATA public notes postgres
;\tdepends on: 217
3374; 0 16412 TABLE DATA public other postgres
;\tdepends on: 218
3371; 0 16386 TABLE DATA public patients postgres
;\tdepends on: 215
3386; 0 0 SEQUENCE SET public notes_seq_seq postgres
;\tdepends on: 216
3387; 0 0 SEQUENCE SET public patients_id_seq postgres
;\tdepends on: 214
3220; 2606 16405 CONSTRAINT public notes notes_pkey postgres
;\tdepends on: 217
3217; 2606 16394 CONSTRAINT public patients patients_pkey postgres
;\tdepends on: 215
3218; 1259 16411 INDEX public notes_body postgres
;\tdepends on: 217
3388; 0 0 COMMENT public INDEX notes_body postgres
;\tdepends on: 3218
3215; 1259 16395 INDEX public patients_born postgres
;\tdepends on: 215
3221; 3381 16427 STATISTICS public notes_st postgres
;\tdepends on: 217 217
3224; 2620 16425 TRIGGER public notes notes_t postgres
;\tdepends on: 217 220
3222; 2606 16406 FK CONSTRAINT public notes notes_patient_fkey postgres
;\tdepends on: 215 217 3217
3223; 2606 16415 FK CONSTRAINT public other other_id_fkey postgres
;\tdepends on: 217 218 3220
3368; 0 16397 ROW SECURITY public notes postgres
;\tdepends on: 217
3369; 3256 16426 POLICY public notes p postgres
;\tdepends on: 217
";

    fn ids(lines: &[&str]) -> Vec<u32> {
        lines.iter().map(|l| l.split(';').next().unwrap().parse().unwrap()).collect()
    }

    /// A target that has everything (`true`) or nothing (`false`).
    fn restore(toc: &str, schema: Option<&str>, table: &str, target_has_all: bool) -> std::result::Result<TableRestore<'static>, String> {
        let toc: &'static str = Box::leak(toc.to_owned().into_boxed_str());
        table_restore(toc, schema, table, &mut |_| Ok(target_has_all))
    }

    #[test]
    fn a_table_comes_with_what_belongs_to_it_and_nothing_else() {
        let got = restore(TOC, None, "notes", true).unwrap();
        assert_eq!(ids(&got.lines), vec![3377, 3378, 3379, 217, 3381, 3382, 3383, 216, 3384, 3213, 3373, 3386, 3220, 3218, 3388, 3221, 3224, 3222, 3368, 3369]);
        // Not the view reading it, nor other's foreign key to it: named.
        assert_eq!(got.left_out, vec!["foreign key other_id_fkey of public.other, which references public.notes: another table's (restore that table, or add it back)"]);
        assert!(got.prerequisites.is_empty(), "{:?}", got.prerequisites);
        let got = restore(TOC, Some("public"), "patients", true).unwrap();
        assert_eq!(ids(&got.lines), vec![3377, 3378, 3379, 215, 214, 3385, 3211, 3371, 3387, 3217, 3215]);
        assert!(got.left_out[0].contains("foreign key notes_patient_fkey of public.notes"), "{:?}", got.left_out);
    }

    /// Bug (issue 16): into a database without `patients`, `notes`'s
    /// foreign key to it made pg_restore fail, and the trigger's function
    /// was missing; now the key is left out and named, the function comes
    /// along.
    #[test]
    fn into_an_empty_database_foreign_keys_to_absent_tables_are_named_and_functions_come_along() {
        let got = restore(TOC, None, "notes", false).unwrap();
        assert_eq!(ids(&got.lines), vec![3377, 3378, 3379, 220, 217, 3381, 3382, 3383, 216, 3384, 3213, 3373, 3386, 3220, 3218, 3388, 3221, 3224, 3368, 3369]);
        assert!(got.left_out.iter().any(|l| l.starts_with("foreign key notes_patient_fkey of public.notes: it references public.patients, which the target database lacks")), "{:?}", got.left_out);
        assert_eq!(got.prerequisites, vec!["FUNCTION public.t()"]);
    }

    #[test]
    fn unknown_and_ambiguous_tables_are_refused() {
        assert!(restore(TOC, None, "nope", true).unwrap_err().contains("no table 'nope'"));
        assert!(restore(TOC, Some("other_schema"), "notes", true).unwrap_err().contains("no table 'other_schema.notes'"));
        let two = format!("{TOC}300; 1259 17000 TABLE audit notes postgres\n");
        assert!(restore(&two, None, "notes", true).unwrap_err().contains("several schemas (public, audit)"));
        assert_eq!(ids(&restore(&two, Some("audit"), "notes", true).unwrap().lines), vec![3377, 3378, 3379, 300]);
    }

    #[test]
    fn descriptions_of_several_words_and_empty_owners_parse() {
        let e = parse_toc("3373; 0 16397 TABLE DATA public notes postgres\n3384; 0 0 SEQUENCE OWNED BY public notes_seq_seq \n9; 0 0 TABLE public my table postgres\n");
        assert_eq!((e[0].desc, e[0].schema, e[0].tag), ("TABLE DATA", "public", "notes"));
        assert_eq!((e[1].desc, e[1].schema, e[1].tag), ("SEQUENCE OWNED BY", "public", "notes_seq_seq"));
        assert_eq!((e[2].desc, e[2].tag), ("TABLE", "my table"));
    }
}
