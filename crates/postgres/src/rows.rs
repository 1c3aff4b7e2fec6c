//! Recovering deleted or changed rows of one table (the human-error
//! scenario: an accidental `DELETE` or `UPDATE`).
//!
//! The database is restored at the chosen time into a scratch cluster; the
//! table there is compared, by primary key, with the live table; the result
//! is an SQL script that re-inserts the rows deleted since and puts back
//! the rows changed since — rows inserted after the target time are left
//! alone. The script runs in one transaction (`--apply`), or is written for
//! review. Rows travel as `jsonb` and are turned back into rows by the
//! server (`jsonb_populate_record`), so every type round-trips exactly.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use reprise_engine::{CancelToken, NoProgress, Repository};

use crate::conn;
use crate::error::{PgError, Result};
use crate::restore::{self, PitrOptions, Target};

#[derive(Debug, Clone)]
pub struct RowRecoveryOptions {
    pub component: String,
    /// `schema.table` or `table`; several tables (a parent and the
    /// children a cascading delete emptied) are compared from one scratch
    /// restore and put back in this order, in one transaction.
    pub tables: Vec<String>,
    pub at: Target,
    /// SQL predicate restricting the rows compared (`id < 1000`).
    pub predicate: Option<String>,
    /// Live database connection (the component's, with the table's database).
    pub live: String,
    pub password_env: Option<String>,
    /// Database that holds the table.
    pub database: String,
    pub apply: bool,
    /// Where to write the script (always written).
    pub script: PathBuf,
    /// Scratch folder (removed afterwards).
    pub scratch: PathBuf,
    pub exe: PathBuf,
    pub bin: Option<PathBuf>,
    pub cancel: CancelToken,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TableRecovery {
    pub table: String,
    pub deleted_rows: u64,
    pub changed_rows: u64,
    /// Rows present now that did not exist at the target (left alone).
    pub newer_rows: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RowRecovery {
    pub at: String,
    pub tables: Vec<TableRecovery>,
    pub applied: bool,
    pub script: PathBuf,
    pub scratch_restore_ms: u64,
    pub total_ms: u64,
}

impl RowRecovery {
    #[must_use]
    pub fn deleted_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.deleted_rows).sum()
    }
    #[must_use]
    pub fn changed_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.changed_rows).sum()
    }
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The table's quoted name, columns (insertable, in order) and primary key.
struct TableShape {
    qualified: String,
    columns: Vec<String>,
    key: Vec<String>,
}

fn table_shape(client: &mut postgres::Client, table: &str) -> Result<TableShape> {
    let row = client
        .query_opt("SELECT c.oid::bigint, quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)", &[&table])
        .map_err(|e| PgError::sql(&e))?
        .ok_or_else(|| PgError::Invalid(format!("table '{table}' does not exist in the live database: check --table (schema.table) and --database")))?;
    let oid: i64 = row.get(0);
    let qualified: String = row.get(1);
    let columns: Vec<String> = client
        .query(
            "SELECT attname FROM pg_attribute WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
            &[&oid],
        )
        .map_err(|e| PgError::sql(&e))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    let key: Vec<String> = client
        .query(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1::bigint::oid AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)",
            &[&oid],
        )
        .map_err(|e| PgError::sql(&e))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    if key.is_empty() {
        return Err(PgError::Invalid(format!("table {qualified} has no primary key: rows cannot be matched between then and now")));
    }
    Ok(TableShape { qualified, columns, key })
}

/// Every row as (primary key as JSON text, row as JSON text).
fn rows(client: &mut postgres::Client, shape: &TableShape, predicate: Option<&str>) -> Result<HashMap<String, String>> {
    let key = shape.key.iter().map(|k| format!("t.{}", quote_ident(k))).collect::<Vec<_>>().join(", ");
    let filter = predicate.map(|p| format!(" WHERE {p}")).unwrap_or_default();
    let sql = format!("SELECT jsonb_build_array({key})::text, to_jsonb(t)::text FROM {} t{filter}", shape.qualified);
    let mut out = HashMap::new();
    for r in client.query(&sql, &[]).map_err(|e| PgError::sql(&e))? {
        out.insert(r.get::<_, String>(0), r.get::<_, String>(1));
    }
    Ok(out)
}

pub fn recover_rows(repo: &Arc<Repository>, opts: &RowRecoveryOptions) -> Result<RowRecovery> {
    let started = Instant::now();
    let mut live = conn::connect(&with_dbname(&opts.live, &opts.database), opts.password_env.as_deref())?;
    if opts.tables.is_empty() {
        return Err(PgError::Invalid("name the table to recover with --table".into()));
    }
    let shapes = opts.tables.iter().map(|t| table_shape(&mut live, t)).collect::<Result<Vec<_>>>()?;
    if let Some(p) = &opts.predicate {
        // Validate the predicate on the live tables before the long restore.
        for shape in &shapes {
            live.query(&format!("SELECT 1 FROM {} t WHERE {p} LIMIT 0", shape.qualified), &[]).map_err(|e| PgError::Invalid(format!("--where {p}: {}", PgError::sql(&e))))?;
        }
    }

    let data = opts.scratch.join("data");
    std::fs::create_dir_all(&opts.scratch).map_err(|e| PgError::io(&opts.scratch, e))?;
    crate::cluster::hand_over(&opts.scratch, 0o700)?;
    let _cleanup = RemoveOnDrop(opts.scratch.clone());
    let pitr = PitrOptions {
        component: opts.component.clone(),
        target: opts.at.clone(),
        to: data.clone(),
        start: true,
        delta: false,
        tablespace_map: crate::tablespaces::TablespaceMap::default(),
        standalone_fetch: String::new(),
        exe: opts.exe.clone(),
        bin: opts.bin.clone(),
        threads: 0,
        cancel: opts.cancel.clone(),
        keep_running: false,
        settings: Vec::new(),
    };
    let (outcome, cluster) = restore::restore(repo, &pitr, &NoProgress)?;
    let cluster = cluster.expect("started restore returns its cluster");
    let mut then = cluster.connect(&opts.database)?;
    let mut result = RowRecovery { at: opts.at.to_string(), script: opts.script.clone(), ..RowRecovery::default() };
    let mut script = format!("-- reprise recover-rows as of {}: {}\nBEGIN;\n", opts.at, shapes.iter().map(|s| s.qualified.as_str()).collect::<Vec<_>>().join(", "));
    for shape in &shapes {
        let before = rows(&mut then, shape, opts.predicate.as_deref())?;
        let now = rows(&mut live, shape, opts.predicate.as_deref())?;
        let (table_script, t) = table_script(shape, &before, &now);
        script.push_str(&table_script);
        result.tables.push(t);
    }
    drop(then);
    drop(cluster);
    script.push_str("COMMIT;\n");
    write_private(&opts.script, &script)?;
    if opts.apply && (result.deleted_rows() + result.changed_rows()) > 0 {
        live.batch_execute(&script).map_err(|e| PgError::Sql(format!("applying {}: {} (nothing was changed: the script runs in one transaction)", opts.script.display(), PgError::sql(&e))))?;
        result.applied = true;
    }
    result.scratch_restore_ms = outcome.total_ms;
    result.total_ms = started.elapsed().as_millis() as u64;
    Ok(result)
}

/// The statements that bring one table's rows back to `before`.
fn table_script(shape: &TableShape, before: &HashMap<String, String>, now: &HashMap<String, String>) -> (String, TableRecovery) {
    let cols = shape.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let keys = shape.key.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let t_keys = shape.key.iter().map(|c| format!("t.{}", quote_ident(c))).collect::<Vec<_>>().join(", ");
    let mut t = TableRecovery { table: shape.qualified.clone(), ..TableRecovery::default() };
    let mut script = String::new();
    let mut keys_sorted: Vec<&String> = before.keys().collect();
    keys_sorted.sort();
    for k in keys_sorted {
        let row = &before[k];
        let rec = format!("jsonb_populate_record(NULL::{}, {}::jsonb)", shape.qualified, quote_literal(row));
        match now.get(k) {
            None => {
                let _ = writeln!(script, "INSERT INTO {} ({cols}) OVERRIDING SYSTEM VALUE SELECT {cols} FROM {rec};", shape.qualified);
                t.deleted_rows += 1;
            }
            Some(current) if current != row => {
                let _ = writeln!(script, "UPDATE {} AS t SET ({cols}) = (SELECT {cols} FROM {rec}) WHERE ({t_keys}) = (SELECT {keys} FROM {rec});", shape.qualified);
                t.changed_rows += 1;
            }
            Some(_) => {}
        }
    }
    t.newer_rows = now.keys().filter(|k| !before.contains_key(*k)).count() as u64;
    let header = format!("-- {}: {} row(s) to re-insert, {} to put back\n", shape.qualified, t.deleted_rows, t.changed_rows);
    (header + &script, t)
}

/// Writes the script readable by its owner only: it holds patient rows.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path).map_err(|e| PgError::io(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| PgError::io(path, e))
}

/// `conn` with its database replaced by `db`.
#[must_use]
pub fn with_dbname(conn: &str, db: &str) -> String {
    if conn.contains("://") {
        // postgresql://host/db?params
        if let Some(scheme_end) = conn.find("://") {
            let rest = &conn[scheme_end + 3..];
            let (authority, tail) = rest.split_once('/').map_or((rest, ""), |(a, t)| (a, t));
            let params = tail.split_once('?').map(|(_, p)| format!("?{p}")).unwrap_or_default();
            return format!("{}://{authority}/{db}{params}", &conn[..scheme_end]);
        }
    }
    let mut parts: Vec<String> = conn.split_whitespace().filter(|kv| !kv.starts_with("dbname=")).map(str::to_owned).collect();
    parts.push(format!("dbname={db}"));
    parts.join(" ")
}

/// Removes the scratch folder (data directory and its `.run` folder).
struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dbname_is_replaced() {
        assert_eq!(super::with_dbname("host=/tmp port=5 dbname=postgres", "app"), "host=/tmp port=5 dbname=app");
        assert_eq!(super::with_dbname("postgresql://u@h:5/postgres?sslmode=disable", "app"), "postgresql://u@h:5/app?sslmode=disable");
    }
}
