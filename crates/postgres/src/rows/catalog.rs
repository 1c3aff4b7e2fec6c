//! What the live database says about the tables to repair: columns (and
//! which the server computes), primary key, and the foreign keys between
//! them, which decide the order of the repair (parents are re-inserted
//! before their children, children deleted before their parents) so that
//! the user never has to list tables in the right order.

use crate::error::{PgError, Result};

use super::script::quote_ident;

#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub name: String,
    /// `GENERATED ALWAYS AS (...) STORED`: computed, never written.
    pub generated: bool,
    /// `GENERATED ALWAYS AS IDENTITY`.
    pub identity_always: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct LiveTable {
    /// `schema.table`, for messages and the report.
    pub display: String,
    /// `"schema"."table"`, for SQL.
    pub qualified: String,
    pub oid: u32,
    pub partitioned: bool,
    pub columns: Vec<Column>,
    pub key: Vec<String>,
}

impl LiveTable {
    /// `FROM` target that reads the table's own rows (a partitioned table
    /// reads its partitions; a plain table not its inheritance children).
    pub(crate) fn source(&self) -> String {
        if self.partitioned { self.qualified.clone() } else { format!("ONLY {}", self.qualified) }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ForeignKey {
    pub table: u32,
    pub columns: Vec<String>,
    pub references: u32,
    pub referenced_columns: Vec<String>,
    /// `pg_constraint.confdeltype`: `c` cascade, `n` set null, `d` set default.
    pub on_delete: String,
    pub on_update: String,
    pub table_display: String,
}

pub(crate) fn describe(client: &mut postgres::Client, table: &str) -> Result<LiveTable> {
    let row = client
        .query_opt(
            "SELECT c.oid, n.nspname, c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1::text)",
            &[&table],
        )
        .map_err(|e| PgError::sql(&e))?
        .ok_or_else(|| PgError::Invalid(format!("table '{table}' does not exist in the live database: check --table (schema.table) and --database")))?;
    let oid: u32 = row.get(0);
    let (schema, name, kind): (String, String, String) = (row.get(1), row.get(2), row.get(3));
    let display = format!("{schema}.{name}");
    if kind != "r" && kind != "p" {
        return Err(PgError::Invalid(format!("{display} is not a table (relkind {kind}): recover-rows repairs tables")));
    }
    let columns = client
        .query(
            "SELECT attname::text, attgenerated::text, attidentity::text FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            &[&oid],
        )
        .map_err(|e| PgError::sql(&e))?
        .iter()
        .map(|r| Column { name: r.get(0), generated: !r.get::<_, String>(1).is_empty(), identity_always: r.get::<_, String>(2) == "a" })
        .collect();
    let key: Vec<String> = client
        .query(
            "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = $1 AND i.indisprimary ORDER BY array_position(i.indkey::int2[], a.attnum)",
            &[&oid],
        )
        .map_err(|e| PgError::sql(&e))?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    if key.is_empty() {
        return Err(PgError::Invalid(format!(
            "table {display} has no primary key: rows cannot be matched between before the accident, after it and now; add one (ALTER TABLE {} ADD PRIMARY KEY (...)) and run recover-rows again",
            quote_ident(&schema) + "." + &quote_ident(&name)
        )));
    }
    Ok(LiveTable { display, qualified: format!("{}.{}", quote_ident(&schema), quote_ident(&name)), oid, partitioned: kind == "p", columns, key })
}

/// Every foreign key from or to one of `oids` (partition copies of a
/// partitioned table's keys left out).
pub(crate) fn foreign_keys(client: &mut postgres::Client, oids: &[u32]) -> Result<Vec<ForeignKey>> {
    let rows = client
        .query(
            "SELECT f.conrelid, f.confrelid, f.confdeltype::text, f.confupdtype::text, \
                    (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(f.conkey) WITH ORDINALITY k(n, ord) JOIN pg_attribute a ON a.attrelid = f.conrelid AND a.attnum = k.n), \
                    (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(f.confkey) WITH ORDINALITY k(n, ord) JOIN pg_attribute a ON a.attrelid = f.confrelid AND a.attnum = k.n), \
                    n.nspname || '.' || c.relname \
             FROM pg_constraint f JOIN pg_class c ON c.oid = f.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE f.contype = 'f' AND f.conparentid = 0 AND (f.conrelid = ANY($1) OR f.confrelid = ANY($1))",
            &[&oids],
        )
        .map_err(|e| PgError::sql(&e))?;
    Ok(rows
        .iter()
        .map(|r| ForeignKey {
            table: r.get(0),
            references: r.get(1),
            on_delete: r.get(2),
            on_update: r.get(3),
            columns: r.get(4),
            referenced_columns: r.get(5),
            table_display: r.get(6),
        })
        .collect())
}

/// Table indexes, parents first (a table after every listed table it
/// references). A cycle between tables keeps the given order for its
/// members; self-references are ordered row by row instead.
pub(crate) fn parents_first(tables: &[LiveTable], fks: &[ForeignKey]) -> Vec<usize> {
    let index = |oid: u32| tables.iter().position(|t| t.oid == oid);
    let mut parents: Vec<Vec<usize>> = vec![Vec::new(); tables.len()];
    for fk in fks {
        if let (Some(child), Some(parent)) = (index(fk.table), index(fk.references))
            && child != parent
            && !parents[child].contains(&parent)
        {
            parents[child].push(parent);
        }
    }
    let mut placed = vec![false; tables.len()];
    let mut order = Vec::with_capacity(tables.len());
    while order.len() < tables.len() {
        // The first table whose listed parents are all placed; in a cycle,
        // the first unplaced one.
        let next = (0..tables.len())
            .find(|&i| !placed[i] && parents[i].iter().all(|&p| placed[p]))
            .or_else(|| (0..tables.len()).find(|&i| !placed[i]))
            .expect("an unplaced table remains");
        placed[next] = true;
        order.push(next);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(oid: u32) -> LiveTable {
        LiveTable { display: format!("t{oid}"), qualified: String::new(), oid, partitioned: false, columns: Vec::new(), key: vec!["id".into()] }
    }

    fn fk(child: u32, parent: u32) -> ForeignKey {
        ForeignKey {
            table: child,
            references: parent,
            columns: vec![],
            referenced_columns: vec![],
            on_delete: "a".into(),
            on_update: "a".into(),
            table_display: String::new(),
        }
    }

    #[test]
    fn tables_given_child_first_are_put_back_parent_first() {
        // grandchild (3) → child (2) → parent (1), listed grandchild first.
        let tables = vec![table(3), table(2), table(1)];
        let order = parents_first(&tables, &[fk(3, 2), fk(2, 1), fk(2, 2)]);
        assert_eq!(order, [2, 1, 0]);
    }
}
