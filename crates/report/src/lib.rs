//! Human-facing documents: drill reports, the rendered plan, incident
//! reports.
//!
//! A document is built once, as data ([`Document`]: sections of
//! paragraphs, fields, tables, checklists, charts and signature blocks),
//! by whoever knows what it must say; this crate only decides how it
//! looks, in four forms: Markdown ([`markdown`]), a self-contained HTML
//! page ([`html`]), PDF ([`pdf`], typeset by Typst with its fonts compiled
//! in, no network) and the model itself as JSON (`serde`). Keeping the
//! content in one model is what makes the four forms say the same thing:
//! a figure cannot be in the PDF and missing from the Markdown.
//!
//! Text is data, never markup: every renderer escapes what it is given,
//! so a patient count or a component name can never inject Markdown,
//! HTML or Typst code.
//!
//! The documents are for the plan owner, in French by default
//! ([`Lang::Fr`]); the few words this crate adds itself (signature block,
//! outcome labels) follow [`Document::lang`]. Everything else is written
//! by the caller in the language it chose.

pub mod html;
pub mod markdown;
pub mod pdf;
mod svg;

use serde::Serialize;

/// The language of a document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    /// French: the plan owner's language, the default.
    #[default]
    Fr,
    En,
}

impl Lang {
    /// `fr` or `en`.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// Parses `fr`/`en` (any case); `None` for anything else.
    #[must_use]
    pub fn parse(text: &str) -> Option<Lang> {
        match text.to_ascii_lowercase().as_str() {
            "fr" | "français" | "francais" | "french" => Some(Lang::Fr),
            "en" | "english" | "anglais" => Some(Lang::En),
            _ => None,
        }
    }

    /// Picks the French or the English text.
    #[must_use]
    pub fn pick<'a>(self, fr: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Fr => fr,
            Lang::En => en,
        }
    }
}

/// A whole document.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Document {
    pub lang: Lang,
    pub title: String,
    pub subtitle: Option<String>,
    /// Facts shown under the title (date, plan, repository, ...).
    pub meta: Vec<Field>,
    pub sections: Vec<Section>,
}

/// A titled part of a document.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

impl Section {
    #[must_use]
    pub fn new(title: impl Into<String>) -> Section {
        Section { title: title.into(), blocks: Vec::new() }
    }

    /// Adds a block (builder style).
    #[must_use]
    pub fn with(mut self, block: Block) -> Section {
        self.blocks.push(block);
        self
    }
}

/// A label and its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Field {
    pub label: String,
    pub value: String,
}

impl Field {
    #[must_use]
    pub fn new(label: impl Into<String>, value: impl Into<String>) -> Field {
        Field { label: label.into(), value: value.into() }
    }
}

/// One piece of a section.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    /// Plain text (no markup is interpreted).
    Paragraph { text: String },
    /// Label: value lines.
    Fields { fields: Vec<Field> },
    /// A bulleted list.
    List { items: Vec<String> },
    Table(Table),
    /// Checklist lines with their outcome, and the expected and measured
    /// values where there are some.
    Checklist { items: Vec<Check> },
    /// A bar chart (e.g. the RTO of each drill against the objective).
    Chart(Chart),
    /// Something the reader must not miss.
    Notice { level: Level, text: String },
    /// Where the plan owner signs.
    Signature(Signature),
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
    /// Columns holding figures are right-aligned.
    pub numeric: Vec<bool>,
}

/// The outcome of one checklist line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Done, but something is worth a look.
    Warn,
    /// Not run (and why is in `detail`).
    Skipped,
}

impl Outcome {
    /// The word shown for the outcome.
    #[must_use]
    pub fn label(self, lang: Lang) -> &'static str {
        match self {
            Outcome::Pass => lang.pick("CONFORME", "PASS"),
            Outcome::Fail => lang.pick("NON CONFORME", "FAIL"),
            Outcome::Warn => lang.pick("À VÉRIFIER", "CHECK"),
            Outcome::Skipped => lang.pick("NON FAIT", "NOT RUN"),
        }
    }

    /// `[x]`, `[ ]`, `[!]`, `[-]`: the checkbox a paper checklist would have.
    #[must_use]
    pub fn mark(self) -> &'static str {
        match self {
            Outcome::Pass => "[x]",
            Outcome::Fail => "[ ]",
            Outcome::Warn => "[!]",
            Outcome::Skipped => "[-]",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub label: String,
    pub outcome: Outcome,
    pub expected: Option<String>,
    pub measured: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Critical,
}

/// Bars with a label and a value each, and an optional threshold line
/// (the objective). Values are in `unit`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Chart {
    pub title: String,
    pub unit: String,
    pub bars: Vec<Bar>,
    pub threshold: Option<Threshold>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub label: String,
    pub value: f64,
    /// Drawn as a failure (e.g. a failed drill, or above the objective).
    pub failed: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Threshold {
    pub label: String,
    pub value: f64,
}

/// A signature block: who signs, in which role; the date and the
/// signature are left blank for a pen.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Signature {
    pub role: String,
    pub name: Option<String>,
}

/// The fixed words of a signature block.
fn signature_words(lang: Lang) -> (&'static str, &'static str, &'static str) {
    (lang.pick("Nom", "Name"), lang.pick("Date", "Date"), lang.pick("Signature", "Signature"))
}

/// Rendering failures (only PDF typesetting can fail).
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the PDF could not be typeset: {0} (a bug in reprise's report template: please report it)")]
    Typeset(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document with one of every block, the same in every renderer's
    /// tests.
    pub(crate) fn sample(lang: Lang) -> Document {
        Document {
            lang,
            title: "Rapport d'exercice de restauration".into(),
            subtitle: Some("medicapp-db — mensuel".into()),
            meta: vec![Field::new("Date", "2026-11-26 10:00 UTC"), Field::new("Plan", "reprise.toml")],
            sections: vec![
                Section::new("Résultat")
                    .with(Block::Notice { level: Level::Critical, text: "RTO <dépassé> & *non* conforme".into() })
                    .with(Block::Paragraph { text: "Texte avec `code`, #hash, $dollar, [crochets], _souligné_ et \"guillemets\"\nsur deux lignes.".into() })
                    .with(Block::Fields { fields: vec![Field::new("RTO mesuré", "1 min 12 s"), Field::new("Objectif", "2 h")] })
                    .with(Block::List { items: vec!["premier".into(), "second | pipe".into()] }),
                Section::new("Liste de contrôle").with(Block::Checklist {
                    items: vec![
                        Check { label: "Nombre de patients correct".into(), outcome: Outcome::Pass, expected: Some("1200".into()), measured: Some("1200".into()), detail: None },
                        Check { label: "Documents présents".into(), outcome: Outcome::Fail, expected: Some("40".into()), measured: Some("39".into()), detail: Some("manque: a|b.pdf".into()) },
                        Check { label: "pg_amcheck".into(), outcome: Outcome::Skipped, expected: None, measured: None, detail: Some("non installé".into()) },
                    ],
                }),
                Section::new("Historique")
                    .with(Block::Table(Table {
                        header: vec!["Date".into(), "RTO (s)".into()],
                        rows: vec![vec!["2026-10-26".into(), "80".into()], vec!["2026-11-26".into(), "72".into()]],
                        numeric: vec![false, true],
                    }))
                    .with(Block::Chart(Chart {
                        title: "RTO par exercice".into(),
                        unit: "s".into(),
                        bars: vec![Bar { label: "10-26".into(), value: 80.0, failed: false }, Bar { label: "11-26".into(), value: 7300.0, failed: true }],
                        threshold: Some(Threshold { label: "objectif 2 h".into(), value: 7200.0 }),
                    })),
                Section::new("Signature").with(Block::Signature(Signature { role: "Responsable du plan".into(), name: None })),
            ],
        }
    }

    #[test]
    fn languages_parse_and_pick() {
        assert_eq!(Lang::parse("FR"), Some(Lang::Fr));
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("de"), None);
        assert_eq!(Lang::En.pick("oui", "yes"), "yes");
        assert_eq!(Outcome::Fail.label(Lang::Fr), "NON CONFORME");
    }

    #[test]
    fn the_model_serializes_with_block_kinds() {
        let json = serde_json::to_value(sample(Lang::Fr)).expect("json");
        assert_eq!(json["lang"], "fr");
        assert_eq!(json["sections"][1]["blocks"][0]["kind"], "checklist");
        assert_eq!(json["sections"][1]["blocks"][0]["items"][1]["outcome"], "fail");
    }
}
