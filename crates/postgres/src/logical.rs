//! Logical backups for managed servers (no file access): `pg_dump` in
//! directory format with parallel jobs, stored as a snapshot, and
//! `pg_restore -j` (of a whole database or of one table).
//!
//! Dumps are written uncompressed (`-Z 0`) so that the repository's
//! content-defined chunking deduplicates one day's table data against the
//! previous day's; reprise compresses what it stores.

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
        if let Some(t) = &opts.table {
            let (schema, table) = t.split_once('.').map_or((None, t.as_str()), |(s, t)| (Some(s), t));
            if let Some(s) = schema {
                cmd.args(["-n", s]);
            }
            cmd.args(["-t", table]);
        }
        run(cmd.arg(&dir), "pg_restore")?;
        restored.push(db);
    }
    Ok(restored)
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
