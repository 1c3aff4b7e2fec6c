//! Reading one state of a table (a scratch restore, or the live table).
//!
//! Rows travel with `COPY ... TO STDOUT` in text format: each value is the
//! column type's own output, the representation its input function reads
//! back. Nothing goes through json (which reorders json keys, drops array
//! bounds and confuses jsonb `null` with SQL NULL), and no table alias is
//! used (a column may be named like one). In the scratch states each row
//! also carries where it was stored (`ctid`, and its relation file) and
//! which transaction wrote it (`xmin`), so that the WAL can link a row's
//! version before the accident with its version after.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};

use crate::error::{PgError, Result};

use super::diff::{Row, TupleLoc};
use super::script::{quote_ident, session_sql};

/// A relation file as the WAL names it: tablespace, database, file node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub(crate) struct Relfile {
    pub tablespace: u32,
    pub database: u32,
    pub relfilenode: u32,
}

pub(crate) fn prepare_session(client: &mut postgres::Client) -> Result<()> {
    client.batch_execute(&session_sql(false)).map_err(|e| PgError::sql(&e))
}

/// The table's column names in this cluster, or `None` if it has no such
/// table.
pub(crate) fn columns(client: &mut postgres::Client, qualified: &str) -> Result<Option<Vec<String>>> {
    let Some(row) = client.query_opt("SELECT to_regclass($1::text)::oid", &[&qualified]).map_err(|e| PgError::sql(&e))? else { return Ok(None) };
    let Some(oid) = row.get::<_, Option<u32>>(0) else { return Ok(None) };
    let names = client
        .query("SELECT attname::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum", &[&oid])
        .map_err(|e| PgError::sql(&e))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(Some(names))
}

/// Relation files holding the table's rows (its partitions, for a
/// partitioned table: `pg_partition_tree` lists nothing for a plain
/// table), by table OID.
pub(crate) fn relfiles(client: &mut postgres::Client, qualified: &str) -> Result<HashMap<u32, Relfile>> {
    let rows = client
        .query(
            "SELECT c.oid, CASE WHEN c.reltablespace = 0 THEN d.dattablespace ELSE c.reltablespace END, d.oid, pg_relation_filenode(c.oid) \
             FROM pg_class c, pg_database d \
             WHERE (c.oid = $1::text::regclass OR c.oid IN (SELECT relid FROM pg_partition_tree($1::text::regclass) WHERE isleaf)) \
               AND d.datname = current_database() AND pg_relation_filenode(c.oid) IS NOT NULL",
            &[&qualified],
        )
        .map_err(|e| PgError::sql(&e))?;
    Ok(rows.iter().map(|r| (r.get::<_, u32>(0), Relfile { tablespace: r.get(1), database: r.get(2), relfilenode: r.get(3) })).collect())
}

/// Chooses rows by their values.
pub(crate) type Filter<'a> = &'a dyn Fn(&[Option<String>]) -> bool;

/// What to read besides the compared columns.
pub(crate) struct Read<'a> {
    pub from: &'a str,
    pub columns: &'a [String],
    pub order_by: &'a [String],
    /// Scratch states: `ctid`, `tableoid`, `xmin` (mapped to relation files).
    pub locations: Option<&'a HashMap<u32, Relfile>>,
    /// `--where`, evaluated on each row; `None` selects every row.
    pub predicate: Option<&'a str>,
    /// Rows to keep (by their values); `None` keeps every row.
    pub keep: Option<Filter<'a>>,
}

/// Every row of the table, ordered by primary key (the server's order for
/// the key's types, which makes the script read naturally).
pub(crate) fn read(client: &mut postgres::Client, r: &Read<'_>) -> Result<Vec<Row>> {
    let mut select = Vec::new();
    if r.locations.is_some() {
        select.push("ctid".to_owned());
        select.push("tableoid::oid".to_owned());
        select.push("xmin".to_owned());
    }
    select.push(r.predicate.map_or_else(|| "true".to_owned(), |p| format!("({p}) IS TRUE")));
    select.extend(r.columns.iter().map(|c| quote_ident(c)));
    let order = r.order_by.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
    let sql = format!("COPY (SELECT {} FROM {} ORDER BY {order}) TO STDOUT", select.join(", "), r.from);
    let reader = client.copy_out(sql.as_str()).map_err(|e| PgError::sql(&e))?;
    let mut out = Vec::new();
    let extra = if r.locations.is_some() { 4 } else { 1 };
    for line in BufReader::with_capacity(1 << 16, reader).split(b'\n') {
        let line = line.map_err(|e| PgError::Sql(format!("reading {}: {e}", r.from)))?;
        let mut fields = decode_line(&line)?;
        if fields.len() != extra + r.columns.len() {
            return Err(PgError::Sql(format!("reading {}: {} fields in a row, expected {}", r.from, fields.len(), extra + r.columns.len())));
        }
        let values = fields.split_off(extra);
        if r.keep.is_some_and(|keep| !keep(&values)) {
            continue;
        }
        let selected = fields[extra - 1].as_deref() == Some("t");
        let (loc, xmin) = match r.locations {
            Some(files) => {
                let relfilenode = fields[1].as_deref().and_then(|o| o.parse::<u32>().ok()).and_then(|oid| files.get(&oid)).map(|f| f.relfilenode);
                let loc = relfilenode.zip(fields[0].as_deref().and_then(parse_ctid)).map(|(relfilenode, (block, offset))| TupleLoc { relfilenode, block, offset });
                (loc, fields[2].as_deref().and_then(|x| x.parse().ok()).unwrap_or(0))
            }
            None => (None, 0),
        };
        out.push(Row { values, loc, xmin, selected });
    }
    Ok(out)
}

/// `(12,5)` → block 12, line pointer 5.
fn parse_ctid(s: &str) -> Option<(u32, u16)> {
    let (b, o) = s.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    Some((b.parse().ok()?, o.parse().ok()?))
}

/// One line of `COPY ... TO STDOUT` text format: tab-separated fields,
/// `\N` for NULL, backslash escapes (PostgreSQL's COPY documentation,
/// "Text Format").
pub(crate) fn decode_line(line: &[u8]) -> Result<Vec<Option<String>>> {
    let mut fields = Vec::new();
    for raw in line.split(|&b| b == b'\t') {
        if raw == b"\\N" {
            fields.push(None);
            continue;
        }
        let mut bytes = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            if b != b'\\' || i + 1 == raw.len() {
                bytes.push(b);
                i += 1;
                continue;
            }
            let e = raw[i + 1];
            i += 2;
            match e {
                b'b' => bytes.push(8),
                b'f' => bytes.push(12),
                b'n' => bytes.push(b'\n'),
                b'r' => bytes.push(b'\r'),
                b't' => bytes.push(b'\t'),
                b'v' => bytes.push(11),
                b'0'..=b'7' => {
                    let mut v = u32::from(e - b'0');
                    for _ in 0..2 {
                        match raw.get(i) {
                            Some(d @ b'0'..=b'7') => {
                                v = v * 8 + u32::from(d - b'0');
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    bytes.push((v & 0xFF) as u8);
                }
                b'x' => {
                    let mut v = 0u32;
                    let mut n = 0;
                    while n < 2 {
                        match raw.get(i).and_then(|d| (*d as char).to_digit(16)) {
                            Some(d) => {
                                v = v * 16 + d;
                                i += 1;
                                n += 1;
                            }
                            None => break,
                        }
                    }
                    if n == 0 {
                        bytes.push(b'x');
                    } else {
                        bytes.push(v as u8);
                    }
                }
                other => bytes.push(other),
            }
        }
        fields.push(Some(String::from_utf8(bytes).map_err(|e| PgError::Sql(format!("COPY sent a value that is not UTF-8: {e}")))?));
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_are_decoded() {
        let line = b"1\t\\N\ta\\tb\\nc\\\\d\t\\\\x0a0b\t\\101\\x42\t";
        let f = decode_line(line).expect("decode");
        assert_eq!(
            f,
            vec![Some("1".into()), None, Some("a\tb\nc\\d".into()), Some("\\x0a0b".into()), Some("AB".into()), Some(String::new())]
        );
    }

    #[test]
    fn ctid_text_is_parsed() {
        assert_eq!(parse_ctid("(12,5)"), Some((12, 5)));
        assert_eq!(parse_ctid("12,5"), None);
    }
}
