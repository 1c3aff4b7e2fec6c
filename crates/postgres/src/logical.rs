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

/// Restores a logical snapshot's dump folder, then optionally `pg_restore`s it.
pub fn restore_logical(repo: &Repository, opts: &LogicalRestoreOptions, progress: &dyn Progress) -> Result<Vec<String>> {
    let body = repo.snapshot_body(&opts.snapshot)?;
    let dump_path = body.paths.first().map(|p| String::from_utf8_lossy(p).trim_start_matches('/').to_owned()).unwrap_or_default();
    let mut ro = RestoreOptions::new(&opts.to);
    ro.subpath = dump_path.into_bytes();
    let out = restore_files(repo, &opts.snapshot, &ro, progress)?;
    if !out.damaged.is_empty() {
        return Err(PgError::Invalid(format!("{} dump file(s) are damaged; run `reprise check --read-data`", out.damaged.len())));
    }
    let Some(into) = &opts.into else { return Ok(Vec::new()) };
    let bin = PgBin::find(opts.bin.as_deref())?;
    let mut restored = Vec::new();
    let databases: Vec<String> = match &opts.database {
        Some(d) => vec![d.clone()],
        None => std::fs::read_dir(&opts.to)
            .map_err(|e| PgError::io(&opts.to, e))?
            .flatten()
            .filter(|e| e.path().join("toc.dat").exists())
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .collect(),
    };
    for db in databases {
        let dir = opts.to.join(&db);
        if !dir.join("toc.dat").exists() {
            return Err(PgError::Invalid(format!("the snapshot has no dump of database '{db}'")));
        }
        let target = with_dbname(into, &db);
        let cfg = conn::config(&target, opts.password_env.as_deref())?;
        let mut cmd = std::process::Command::new(bin.program("pg_restore")?);
        libpq_env(&mut cmd, &cfg);
        cmd.args(["-j", &opts.jobs.max(1).to_string(), "--no-owner", "-d", &db]);
        // Kept until pg_restore has read it.
        let mut list_file = None;
        if let Some(t) = &opts.table {
            let (schema, table) = t.split_once('.').map_or((None, t.as_str()), |(s, t)| (Some(s), t));
            let toc = toc_of(&bin, &dir)?;
            let lines = table_entries(&toc, schema, table).map_err(|e| PgError::Invalid(format!("database '{db}': {e}")))?;
            let mut f = tempfile::NamedTempFile::new().map_err(|e| PgError::io(std::env::temp_dir(), e))?;
            for l in lines {
                writeln!(f, "{l}").map_err(|e| PgError::io(f.path(), e))?;
            }
            f.flush().map_err(|e| PgError::io(f.path(), e))?;
            cmd.arg("-L").arg(f.path());
            list_file = Some(f);
        }
        run(cmd.arg(&dir), "pg_restore")?;
        drop(list_file);
        restored.push(db);
    }
    Ok(restored)
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

/// The lines of `toc` (`pg_restore -l -v`) that restore table `table`
/// whole: the table, its rows, and what belongs to it (constraints and
/// foreign keys of its own, indexes, triggers, policies, rules, row
/// security, extended statistics, column defaults, owned sequences with
/// their values, comments, grants). Views and other tables that depend on
/// it, and their foreign keys to it, are not its own.
fn table_entries<'a>(toc: &'a str, schema: Option<&str>, table: &str) -> std::result::Result<Vec<&'a str>, String> {
    let entries = parse_toc(toc);
    let matches: Vec<&TocEntry<'_>> = entries.iter().filter(|e| e.desc == "TABLE" && e.tag == table && schema.is_none_or(|s| e.schema == s)).collect();
    let owner = match matches.as_slice() {
        [one] => one.id,
        [] => return Err(format!("the dump has no table '{}': check the name (SCHEMA.TABLE or TABLE)", schema.map_or_else(|| table.to_owned(), |s| format!("{s}.{table}")))),
        many => {
            let schemas: Vec<&str> = many.iter().map(|e| e.schema).collect();
            return Err(format!("there is a table '{table}' in several schemas ({}): write SCHEMA.{table}", schemas.join(", ")));
        }
    };
    let own_tag = format!("{table} ");
    let mut keep: std::collections::HashSet<u32> = std::collections::HashSet::from([owner]);
    for e in &entries {
        if !e.deps.contains(&owner) {
            continue;
        }
        let belongs = match e.desc {
            "TABLE DATA" | "INDEX" | "STATISTICS" | "SEQUENCE" | "ROW SECURITY" | "COMMENT" | "ACL" | "SECURITY LABEL" => true,
            // Tagged "TABLE NAME": another table's foreign key to this one
            // depends on it too, but is that table's.
            "CONSTRAINT" | "FK CONSTRAINT" | "CHECK CONSTRAINT" | "TRIGGER" | "POLICY" | "RULE" | "DEFAULT" => e.tag.starts_with(&own_tag),
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
    Ok(entries.iter().filter(|e| keep.contains(&e.id) || matches!(e.desc, "ENCODING" | "STDSTRINGS" | "SEARCHPATH")).map(|e| e.line).collect())
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

    #[test]
    fn a_table_comes_with_what_belongs_to_it_and_nothing_else() {
        let got = ids(&table_entries(TOC, None, "notes").unwrap());
        assert_eq!(got, vec![3377, 3378, 3379, 217, 3381, 3382, 3383, 216, 3384, 3213, 3373, 3386, 3220, 3218, 3388, 3221, 3224, 3222, 3368, 3369]);
        // Not the view reading it, nor notes' foreign key to it.
        assert_eq!(ids(&table_entries(TOC, Some("public"), "patients").unwrap()), vec![3377, 3378, 3379, 215, 214, 3385, 3211, 3371, 3387, 3217, 3215]);
    }

    #[test]
    fn unknown_and_ambiguous_tables_are_refused() {
        assert!(table_entries(TOC, None, "nope").unwrap_err().contains("no table 'nope'"));
        assert!(table_entries(TOC, Some("other_schema"), "notes").unwrap_err().contains("no table 'other_schema.notes'"));
        let two = format!("{TOC}300; 1259 17000 TABLE audit notes postgres\n");
        assert!(table_entries(&two, None, "notes").unwrap_err().contains("several schemas (public, audit)"));
        assert_eq!(ids(&table_entries(&two, Some("audit"), "notes").unwrap()), vec![3377, 3378, 3379, 300]);
    }

    #[test]
    fn descriptions_of_several_words_and_empty_owners_parse() {
        let e = parse_toc("3373; 0 16397 TABLE DATA public notes postgres\n3384; 0 0 SEQUENCE OWNED BY public notes_seq_seq \n9; 0 0 TABLE public my table postgres\n");
        assert_eq!((e[0].desc, e[0].schema, e[0].tag), ("TABLE DATA", "public", "notes"));
        assert_eq!((e[1].desc, e[1].schema, e[1].tag), ("SEQUENCE OWNED BY", "public", "notes_seq_seq"));
        assert_eq!((e[2].desc, e[2].tag), ("TABLE", "my table"));
    }
}
