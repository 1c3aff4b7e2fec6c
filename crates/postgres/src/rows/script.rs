//! The SQL that repairs the rows: reviewable, and safe to run twice.
//!
//! Every statement is guarded so that it changes a row only while the row
//! is exactly as the comparison saw it: an INSERT does nothing if the key
//! (or any unique value) is taken (`ON CONFLICT DO NOTHING`), an UPDATE or
//! DELETE names the row's key and every compared column's value. Running
//! the script a second time, or after someone changed one of its rows,
//! changes nothing more; `--apply` counts the statements that found their
//! row changed.
//!
//! Values are written as literals in PostgreSQL's text representation,
//! which the column type's input function reads back exactly (json keeps
//! its key order and duplicate keys, arrays their bounds, jsonb `null` is
//! not SQL NULL, domains and enums are checked by the server). Guards
//! compare `format('%s', column)` — the type's output function, exactly
//! what `COPY` printed, under the same session settings (`SESSION`) — with
//! the text read, so that types without an equality operator (json,
//! point) can be guarded too. Not `column::text`: a type may have its own
//! cast to text that differs from its output (`true` for `t`,
//! `127.0.0.1/32` for inet `127.0.0.1`). Every identifier is quoted.

use std::fmt::Write as _;

/// Session settings under which values are read and compared: they fix
/// the text output of dates, intervals, floats and bytea.
pub(crate) const SESSION: [(&str, &str); 5] =
    [("DateStyle", "ISO, YMD"), ("IntervalStyle", "postgres"), ("TimeZone", "UTC"), ("extra_float_digits", "1"), ("bytea_output", "hex")];

pub(crate) fn session_sql(local: bool) -> String {
    SESSION.iter().map(|(k, v)| format!("SET {}{k} = {};", if local { "LOCAL " } else { "" }, quote_literal(v))).collect::<Vec<_>>().join(" ")
}

#[must_use]
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A string literal on one line: `'...'`, or `E'...'` with escapes when
/// the value holds a backslash or a control character (a newline in a
/// value must not end a comment line, and one statement stays one line).
#[must_use]
pub(crate) fn quote_literal(s: &str) -> String {
    if !s.chars().any(|c| c == '\\' || c.is_control()) {
        return format!("'{}'", s.replace('\'', "''"));
    }
    let mut out = String::with_capacity(s.len() + 4);
    out.push_str("E'");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("''"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[must_use]
pub(crate) fn value(v: Option<&String>) -> String {
    v.map_or_else(|| "NULL".to_owned(), |s| quote_literal(s))
}

/// A table as the statements need it.
pub(crate) struct TableSql<'a> {
    pub qualified: &'a str,
    /// Compared (and written) columns, in order.
    pub columns: &'a [String],
    /// `GENERATED ALWAYS AS IDENTITY` columns among them (need
    /// `OVERRIDING SYSTEM VALUE` to be inserted).
    pub identity_always: &'a [bool],
    pub key: &'a [usize],
}

impl TableSql<'_> {
    /// `WHERE` clause matching the row `row` exactly: key with `=` (uses
    /// the index), other columns by their output text.
    fn guard(&self, row: &[Option<String>]) -> String {
        let mut parts = Vec::with_capacity(self.columns.len());
        for &k in self.key {
            parts.push(format!("{} = {}", quote_ident(&self.columns[k]), value(row[k].as_ref())));
        }
        for (i, c) in self.columns.iter().enumerate() {
            if self.key.contains(&i) {
                continue;
            }
            parts.push(match &row[i] {
                None => format!("{} IS NULL", quote_ident(c)),
                Some(v) => format!("format('%s', {}) = {}", quote_ident(c), quote_literal(v)),
            });
        }
        parts.join(" AND ")
    }

    pub(crate) fn insert(&self, row: &[Option<String>]) -> String {
        let cols = self.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", ");
        let vals = row.iter().map(|v| value(v.as_ref())).collect::<Vec<_>>().join(", ");
        let overriding = if self.identity_always.iter().any(|&a| a) { " OVERRIDING SYSTEM VALUE" } else { "" };
        format!("INSERT INTO {} ({cols}){overriding} VALUES ({vals}) ON CONFLICT DO NOTHING;", self.qualified)
    }

    /// Turns the row that is exactly `from` into `to` (only the columns
    /// that differ are set); `None` if they are equal.
    pub(crate) fn update(&self, from: &[Option<String>], to: &[Option<String>]) -> Option<String> {
        let sets: Vec<String> = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| from[*i] != to[*i])
            .map(|(i, c)| format!("{} = {}", quote_ident(c), value(to[i].as_ref())))
            .collect();
        if sets.is_empty() {
            return None;
        }
        Some(format!("UPDATE {} SET {} WHERE {};", self.qualified, sets.join(", "), self.guard(from)))
    }

    pub(crate) fn delete(&self, row: &[Option<String>]) -> String {
        format!("DELETE FROM {} WHERE {};", self.qualified, self.guard(row))
    }

    /// One version of a row, for a comment line.
    pub(crate) fn shown(row: Option<&Vec<Option<String>>>) -> String {
        match row {
            None => "(no row)".to_owned(),
            Some(r) => format!("({})", r.iter().map(|v| value(v.as_ref())).collect::<Vec<_>>().join(", ")),
        }
    }

    pub(crate) fn column_list(&self) -> String {
        format!("({})", self.columns.iter().map(|c| quote_ident(c)).collect::<Vec<_>>().join(", "))
    }

    pub(crate) fn key_text(&self, row: &[Option<String>]) -> String {
        self.key.iter().map(|&k| format!("{} = {}", quote_ident(&self.columns[k]), value(row[k].as_ref()))).collect::<Vec<_>>().join(" AND ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_stay_on_one_line_and_read_back_exactly() {
        assert_eq!(quote_literal("O'Brien"), "'O''Brien'");
        assert_eq!(quote_literal("a\nb\\c'd\te"), "E'a\\nb\\\\c''d\\te'");
        assert_eq!(quote_literal("bell\u{7}"), "E'bell\\x07'");
        assert_eq!(quote_literal("é ✓"), "'é ✓'");
        assert!(!quote_literal("x\r\n\u{85}").contains(['\n', '\r', '\u{85}']));
    }

    #[test]
    fn a_column_named_t_is_quoted_everywhere() {
        let cols = vec!["id".to_owned(), "t".to_owned(), "we\"ird".to_owned()];
        let t = TableSql { qualified: "\"public\".\"x\"", columns: &cols, identity_always: &[false, false, false], key: &[0] };
        let from = vec![Some("1".into()), Some("old".into()), None];
        let to = vec![Some("1".into()), Some("new".into()), None];
        assert_eq!(
            t.update(&from, &to).as_deref(),
            Some("UPDATE \"public\".\"x\" SET \"t\" = 'new' WHERE \"id\" = '1' AND format('%s', \"t\") = 'old' AND \"we\"\"ird\" IS NULL;")
        );
        assert_eq!(t.update(&from, &from), None);
    }

    #[test]
    fn identity_always_columns_are_inserted_with_overriding_system_value() {
        let cols = vec!["id".to_owned(), "v".to_owned()];
        let t = TableSql { qualified: "\"t\"", columns: &cols, identity_always: &[true, false], key: &[0] };
        assert_eq!(
            t.insert(&[Some("5".into()), Some("x".into())]),
            "INSERT INTO \"t\" (\"id\", \"v\") OVERRIDING SYSTEM VALUE VALUES ('5', 'x') ON CONFLICT DO NOTHING;"
        );
    }
}
