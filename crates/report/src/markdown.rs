//! Markdown (CommonMark with GitHub tables): the form that diffs well and
//! reads as plain text in a terminal or a ticket.

use std::fmt::Write as _;

use crate::{Block, Check, Document, Level, Signature, Table, signature_words};

/// Escapes text so that CommonMark shows it as written: inline markup
/// characters everywhere, block markers at the start of a line.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split('\n') {
        if !out.is_empty() {
            // A hard line break: the text's own line structure is kept.
            out.push_str("\\\n");
        }
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        out.push_str(indent);
        // Block markers only mean something at the start of a line: `#`,
        // `-`, `+`, `=` are escaped there (`>` is escaped everywhere); an
        // ordered-list marker (`12.`, `3)`) by escaping its delimiter,
        // since a backslash before a digit is not an escape.
        if trimmed.starts_with(['#', '-', '+', '=']) {
            out.push('\\');
        }
        let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
        let list_delimiter = (digits > 0 && matches!(trimmed.as_bytes().get(digits), Some(b'.' | b')'))).then_some(digits);
        for (i, c) in trimmed.char_indices() {
            if Some(i) == list_delimiter || matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '&' | '!') {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out
}

/// A table cell: escaped, on one line.
fn cell(text: &str) -> String {
    escape(&text.replace('\n', " "))
}

fn table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "| {} |", t.header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
    let rule: Vec<&str> = (0..t.header.len()).map(|i| if t.numeric.get(i).copied().unwrap_or(false) { "---:" } else { "---" }).collect();
    let _ = writeln!(out, "| {} |", rule.join(" | "));
    for row in &t.rows {
        let cells: Vec<String> = (0..t.header.len()).map(|i| row.get(i).map_or_else(String::new, |c| cell(c))).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
}

fn checklist(out: &mut String, items: &[Check], lang: crate::Lang) {
    for c in items {
        let mut line = format!("- {} **{}** — {}", c.outcome.mark().replace('[', "\\["), c.outcome.label(lang), escape(&c.label));
        let expected = lang.pick("attendu", "expected");
        let measured = lang.pick("mesuré", "measured");
        match (&c.expected, &c.measured) {
            (Some(e), Some(m)) => {
                let _ = write!(line, " ({expected} : {}, {measured} : {})", escape(e), escape(m));
            }
            (Some(e), None) => {
                let _ = write!(line, " ({expected} : {})", escape(e));
            }
            (None, Some(m)) => {
                let _ = write!(line, " ({measured} : {})", escape(m));
            }
            (None, None) => {}
        }
        if let Some(d) = &c.detail {
            let _ = write!(line, " — {}", escape(d));
        }
        out.push_str(&line);
        out.push('\n');
    }
}

fn signature(out: &mut String, s: &Signature, lang: crate::Lang) {
    let (name, date, sign) = signature_words(lang);
    let _ = writeln!(out, "**{}**\n", escape(&s.role));
    let _ = writeln!(out, "{name} : {}\\", s.name.as_deref().map_or_else(|| "______________________________".to_owned(), escape));
    let _ = writeln!(out, "{date} : ______________________________\\");
    let _ = writeln!(out, "{sign} :\n\n\n______________________________");
}

/// The document as Markdown.
#[must_use]
pub fn render(doc: &Document) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", escape(&doc.title));
    if let Some(s) = &doc.subtitle {
        let _ = writeln!(out, "*{}*\n", escape(s));
    }
    for f in &doc.meta {
        let _ = writeln!(out, "- **{}** : {}", escape(&f.label), escape(&f.value));
    }
    if !doc.meta.is_empty() {
        out.push('\n');
    }
    for section in &doc.sections {
        let _ = writeln!(out, "## {}\n", escape(&section.title));
        for block in &section.blocks {
            match block {
                Block::Paragraph { text } => {
                    let _ = writeln!(out, "{}", escape(text));
                }
                Block::Fields { fields } => {
                    for f in fields {
                        let _ = writeln!(out, "- **{}** : {}", escape(&f.label), escape(&f.value));
                    }
                }
                Block::List { items } => {
                    for i in items {
                        let _ = writeln!(out, "- {}", escape(i));
                    }
                }
                Block::Table(t) => table(&mut out, t),
                Block::Checklist { items } => checklist(&mut out, items, doc.lang),
                Block::Chart(c) => {
                    // Markdown has no charts: the figures as a table.
                    let _ = writeln!(out, "*{}*\n", escape(&c.title));
                    let t = Table {
                        header: vec![String::new(), c.unit.clone()],
                        rows: c.bars.iter().map(|b| vec![b.label.clone(), format!("{}{}", trim_float(b.value), if b.failed { " ✗" } else { "" })]).collect(),
                        numeric: vec![false, true],
                    };
                    table(&mut out, &t);
                    if let Some(th) = &c.threshold {
                        let _ = writeln!(out, "\n{} : {} {}", escape(&th.label), trim_float(th.value), escape(&c.unit));
                    }
                }
                Block::Notice { level, text } => {
                    let tag = match level {
                        Level::Info => "Note",
                        Level::Warning => doc.lang.pick("Attention", "Warning"),
                        Level::Critical => doc.lang.pick("IMPORTANT", "IMPORTANT"),
                    };
                    let _ = writeln!(out, "> **{tag}** : {}", escape(text).replace("\\\n", "\\\n> "));
                }
                Block::Signature(s) => signature(&mut out, s, doc.lang),
            }
            out.push('\n');
        }
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// `72`, `1.5`: no trailing zeros.
pub(crate) fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{v:.0}") } else { format!("{v:.2}").trim_end_matches('0').trim_end_matches('.').to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Lang;
    use crate::tests::sample;

    #[test]
    fn markdown_escapes_markup_in_text() {
        assert_eq!(escape("*bold* _it_ `code` [l](u) <b> a|b"), "\\*bold\\* \\_it\\_ \\`code\\` \\[l\\](u) \\<b\\> a\\|b");
        assert_eq!(escape("# not a heading"), "\\# not a heading");
        assert_eq!(escape("1. not a list"), "1\\. not a list");
        assert_eq!(escape("12) nor this"), "12\\) nor this");
        assert_eq!(escape("- not\n- a list"), "\\- not\\\n\\- a list");
        assert_eq!(escape("2026-11-26"), "2026-11-26", "dates stay readable");
    }

    #[test]
    fn markdown_report_in_french() {
        insta::assert_snapshot!(render(&sample(Lang::Fr)));
    }

    #[test]
    fn markdown_report_in_english_uses_english_fixed_words() {
        let md = render(&sample(Lang::En));
        assert!(md.contains("**FAIL**") && md.contains("expected : 40") && md.contains("Name : "), "{md}");
        assert!(!md.contains("CONFORME"), "{md}");
    }
}
