//! PDF, typeset by Typst (embedded through `typst-as-lib`), with its fonts
//! compiled into the binary: no network, no system font, the same pages on
//! every machine.
//!
//! The template (`templates/document.typ`) is fixed; the document reaches
//! it as data (`sys.inputs.doc`), never as generated markup, so no text a
//! report carries can be read as Typst code. The few words the template
//! needs in the document's language (outcome labels, the signature block)
//! and the charts (SVG, the same drawing as in the HTML page) are added to
//! that data here.

use std::sync::LazyLock;

use typst::foundations::{Array, Dict, Str, Value};
use typst_layout::PagedDocument;
use typst_as_lib::TypstEngine;

use crate::{Block, Document, ReportError, signature_words};

static TEMPLATE: &str = include_str!("../templates/document.typ");

/// Building the engine parses the bundled fonts; done once per process.
static ENGINE: LazyLock<TypstEngine<typst_as_lib::TypstTemplateMainFile>> =
    LazyLock::new(|| TypstEngine::builder().main_file(TEMPLATE).fonts(typst_assets::fonts()).build());

/// A JSON value as a Typst value (objects become dictionaries).
fn typst_value(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::None,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => n.as_i64().map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int),
        serde_json::Value::String(s) => Value::Str(Str::from(s)),
        serde_json::Value::Array(a) => Value::Array(a.into_iter().map(typst_value).collect::<Array>()),
        serde_json::Value::Object(o) => {
            let mut d = Dict::new();
            for (k, v) in o {
                d.insert(Str::from(k), typst_value(v));
            }
            Value::Dict(d)
        }
    }
}

/// The document as the template reads it: the model, plus the words and
/// drawings the template cannot make itself.
fn template_input(doc: &Document) -> serde_json::Value {
    let lang = doc.lang;
    let mut v = serde_json::to_value(doc).expect("a document always serializes");
    let sections = v["sections"].as_array_mut().expect("sections");
    for (section, model) in sections.iter_mut().zip(&doc.sections) {
        let blocks = section["blocks"].as_array_mut().expect("blocks");
        for (block, model) in blocks.iter_mut().zip(&model.blocks) {
            match model {
                Block::Checklist { items } => {
                    for (item, check) in block["items"].as_array_mut().expect("items").iter_mut().zip(items) {
                        item["outcome_label"] = check.outcome.label(lang).into();
                        item["mark"] = check.outcome.mark().into();
                        item["expected_word"] = lang.pick("attendu", "expected").into();
                        item["measured_word"] = lang.pick("mesuré", "measured").into();
                    }
                }
                Block::Chart(c) => block["svg"] = crate::svg::bar_chart(c).into(),
                Block::Signature(_) => {
                    let (name, date, signature) = signature_words(lang);
                    block["words"] = serde_json::json!({ "name": name, "date": date, "signature": signature });
                }
                _ => {}
            }
        }
    }
    v
}

/// The document as PDF bytes.
pub fn render(doc: &Document) -> Result<Vec<u8>, ReportError> {
    let mut inputs = Dict::new();
    inputs.insert(Str::from("doc"), typst_value(template_input(doc)));
    let compiled = ENGINE.compile_with_input::<_, PagedDocument>(inputs);
    let pages = compiled.output.map_err(|e| ReportError::Typeset(e.to_string()))?;
    typst_pdf::pdf(&pages, &typst_pdf::PdfOptions::default()).map_err(|errors| ReportError::Typeset(errors.iter().map(|e| e.message.to_string()).collect::<Vec<_>>().join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Lang;
    use crate::tests::sample;

    #[test]
    fn pdf_is_typeset_with_the_embedded_fonts() {
        let pdf = render(&sample(Lang::Fr)).expect("typeset");
        assert!(pdf.starts_with(b"%PDF-"), "a PDF file");
        assert!(pdf.len() > 5_000, "with pages and fonts: {} bytes", pdf.len());
    }

    /// What a reader sees, read back with poppler's `pdftotext` (installed
    /// by scripts/test-all): the text as written, markup characters
    /// included, and the checklist's outcomes and figures.
    #[test]
    fn pdf_text_reads_back_as_written() {
        let pdf = render(&sample(Lang::Fr)).expect("typeset");
        let dir = std::env::temp_dir().join(format!("reprise-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("sample.pdf");
        std::fs::write(&file, &pdf).expect("write");
        let out = std::process::Command::new("pdftotext").args(["-layout"]).arg(&file).arg("-").output();
        let _ = std::fs::remove_dir_all(&dir);
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                assert!(std::env::var_os("REPRISE_TEST_REQUIRE_ALL").is_none(), "pdftotext is required (poppler-utils): {e}");
                eprintln!("SKIPPED pdf_text_reads_back_as_written: pdftotext not installed ({e})");
                return;
            }
        };
        assert!(out.status.success(), "pdftotext: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).expect("utf8");
        for expected in [
            "Rapport d’exercice de restauration",
            "RTO <dépassé> & *non* conforme",
            "#hash, $dollar, [crochets], _souligné_",
            "NON CONFORME",
            "attendu : 40, mesuré : 39",
            "manque: a|b.pdf",
            "Responsable du plan",
            "Signature :",
        ] {
            let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let want: String = expected.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(&want) || flat.contains(&want.replace('’', "'")), "missing {expected:?} in:\n{text}");
        }
    }
}
