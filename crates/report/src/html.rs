//! A self-contained HTML page: inline style, inline SVG charts, no script
//! and no external resource, so it opens the same from an e-mail, a USB
//! stick or an auditor's archive ten years later.

use std::fmt::Write as _;

use crate::svg::{bar_chart, xml};
use crate::{Block, Document, Level, Outcome, signature_words};

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}\
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}\
.subtitle{color:#555;margin-top:0}dl.fields{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}\
table{border-collapse:collapse;margin:.5rem 0}th,td{border:1px solid #ccc;padding:.25rem .6rem;text-align:left;vertical-align:top}td.num,th.num{text-align:right}\
ul.checklist{list-style:none;padding-left:0}ul.checklist li{margin:.3rem 0}.outcome{display:inline-block;min-width:8.5rem;font-weight:700}\
.pass{color:#1e7d32}.fail{color:#c0392b}.warn{color:#b9770e}.skipped{color:#666}.notice{padding:.5rem .8rem;border-left:4px solid #2e86c1;background:#f2f7fb}\
.notice.warning{border-color:#b9770e;background:#fdf6ec}.notice.critical{border-color:#c0392b;background:#fbeeee}.detail{color:#555}\
.signature{border:1px solid #999;padding:.8rem 1rem;max-width:26rem}.signature .line{border-bottom:1px solid #999;height:1.6rem;margin-bottom:.6rem}\
@media print{body{margin:0}h2{break-after:avoid}}";

/// Escapes text for HTML, keeping its line breaks.
fn text(t: &str) -> String {
    xml(t).replace('\n', "<br>")
}

fn outcome_class(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Fail => "fail",
        Outcome::Warn => "warn",
        Outcome::Skipped => "skipped",
    }
}

/// The document as one HTML page.
#[must_use]
pub fn render(doc: &Document) -> String {
    let lang = doc.lang;
    let mut o = String::new();
    let _ = write!(o, "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n", lang.code(), xml(&doc.title));
    let _ = writeln!(o, "<h1>{}</h1>", text(&doc.title));
    if let Some(s) = &doc.subtitle {
        let _ = writeln!(o, "<p class=\"subtitle\">{}</p>", text(s));
    }
    if !doc.meta.is_empty() {
        o.push_str("<dl class=\"fields\">\n");
        for f in &doc.meta {
            let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", text(&f.label), text(&f.value));
        }
        o.push_str("</dl>\n");
    }
    for section in &doc.sections {
        let _ = writeln!(o, "<section>\n<h2>{}</h2>", text(&section.title));
        for block in &section.blocks {
            match block {
                Block::Paragraph { text: t } => {
                    let _ = writeln!(o, "<p>{}</p>", text(t));
                }
                Block::Fields { fields } => {
                    o.push_str("<dl class=\"fields\">\n");
                    for f in fields {
                        let _ = writeln!(o, "<dt>{}</dt><dd>{}</dd>", text(&f.label), text(&f.value));
                    }
                    o.push_str("</dl>\n");
                }
                Block::List { items } => {
                    o.push_str("<ul>\n");
                    for i in items {
                        let _ = writeln!(o, "<li>{}</li>", text(i));
                    }
                    o.push_str("</ul>\n");
                }
                Block::Table(t) => {
                    let num = |i: usize| if t.numeric.get(i).copied().unwrap_or(false) { " class=\"num\"" } else { "" };
                    o.push_str("<table>\n<thead><tr>");
                    for (i, h) in t.header.iter().enumerate() {
                        let _ = write!(o, "<th{}>{}</th>", num(i), text(h));
                    }
                    o.push_str("</tr></thead>\n<tbody>\n");
                    for row in &t.rows {
                        o.push_str("<tr>");
                        for i in 0..t.header.len() {
                            let _ = write!(o, "<td{}>{}</td>", num(i), text(row.get(i).map_or("", String::as_str)));
                        }
                        o.push_str("</tr>\n");
                    }
                    o.push_str("</tbody>\n</table>\n");
                }
                Block::Checklist { items } => {
                    o.push_str("<ul class=\"checklist\">\n");
                    for c in items {
                        let _ = write!(o, "<li><span class=\"outcome {}\">{} {}</span> {}", outcome_class(c.outcome), c.outcome.mark(), c.outcome.label(lang), text(&c.label));
                        let figures: Vec<String> = [(lang.pick("attendu", "expected"), &c.expected), (lang.pick("mesuré", "measured"), &c.measured)]
                            .into_iter()
                            .filter_map(|(l, v)| v.as_ref().map(|v| format!("{l} : <strong>{}</strong>", text(v))))
                            .collect();
                        if !figures.is_empty() {
                            let _ = write!(o, " ({})", figures.join(", "));
                        }
                        if let Some(d) = &c.detail {
                            let _ = write!(o, " <span class=\"detail\">— {}</span>", text(d));
                        }
                        o.push_str("</li>\n");
                    }
                    o.push_str("</ul>\n");
                }
                Block::Chart(c) => {
                    let _ = writeln!(o, "<figure>{}</figure>", bar_chart(c));
                }
                Block::Notice { level, text: t } => {
                    let class = match level {
                        Level::Info => "",
                        Level::Warning => " warning",
                        Level::Critical => " critical",
                    };
                    let _ = writeln!(o, "<p class=\"notice{class}\">{}</p>", text(t));
                }
                Block::Signature(s) => {
                    let (name, date, sign) = signature_words(lang);
                    let _ = write!(o, "<div class=\"signature\"><p><strong>{}</strong></p>", text(&s.role));
                    match &s.name {
                        Some(n) => {
                            let _ = write!(o, "<p>{name} : {}</p>", text(n));
                        }
                        None => {
                            let _ = write!(o, "<p>{name} :</p><div class=\"line\"></div>");
                        }
                    }
                    let _ = writeln!(o, "<p>{date} :</p><div class=\"line\"></div><p>{sign} :</p><div class=\"line\"></div><div class=\"line\"></div></div>");
                }
            }
        }
        o.push_str("</section>\n");
    }
    o.push_str("</body>\n</html>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Lang;
    use crate::tests::sample;

    #[test]
    fn html_is_self_contained_and_escapes_text() {
        let page = render(&sample(Lang::Fr));
        assert!(page.starts_with("<!DOCTYPE html>") && page.contains("<html lang=\"fr\">"));
        assert!(page.contains("RTO &lt;dépassé&gt; &amp; *non* conforme"), "text is escaped, not interpreted");
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="), "no script, no external resource");
        assert!(page.contains("<svg") && page.contains("NON CONFORME") && page.contains("attendu : <strong>40</strong>"));
        assert!(page.contains("sur deux lignes") && page.contains("\"guillemets\"".replace('"', "&quot;").as_str()));
    }
}
