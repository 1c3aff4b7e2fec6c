//! `drill run|list|show|history`: flags → `reprise_ops::drill` → the
//! report rendered (Markdown, HTML, PDF, JSON) or a summary → exit code
//! (11 for a drill that failed, README).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::Arc;

use anyhow::Result;
use reprise_ops::Verdict;
use reprise_ops::drill::document::{self, duration};
use reprise_ops::drill::record::{DrillVerdict, Outcome};
use reprise_ops::drill::{DrillRequest, StoredDrill};
use reprise_ops::postgres::FetchCommand;
use reprise_report::Lang;

use crate::args::DrillCommand;
use crate::commands::postgres::CliFetch;
use crate::context::Context;
use crate::exit;

/// The report formats `--format` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Markdown,
    Html,
    Pdf,
    Json,
}

fn format_of(text: &str) -> Result<Format> {
    match text.to_ascii_lowercase().as_str() {
        "md" | "markdown" => Ok(Format::Markdown),
        "html" => Ok(Format::Html),
        "pdf" => Ok(Format::Pdf),
        "json" => Ok(Format::Json),
        other => Err(exit::usage(format!("--format {other}: choose md, html, pdf or json"))),
    }
}

fn lang_of(text: &str) -> Result<Lang> {
    Lang::parse(text).ok_or_else(|| exit::usage(format!("--lang {text}: choose fr (the default) or en")))
}

pub fn run(ctx: &Context, cmd: &DrillCommand) -> Result<()> {
    match cmd {
        DrillCommand::Run { name, scratch, output, format, lang } => {
            // Flags are checked before anything is restored.
            let (format, lang) = (format_of(format)?, lang_of(lang)?);
            if let Some(o) = output
                && o.exists()
            {
                return Err(exit::usage(format!("{} exists: a report is never written over a file; choose another --output", o.display())));
            }
            let fetch: Arc<dyn FetchCommand> = Arc::new(CliFetch::new(ctx));
            let request = DrillRequest { name: name.clone(), scratch: scratch.clone() };
            let ran = reprise_ops::drill::run(&ctx.ws, &request, &fetch, &ctx.observer(), &ctx.cancel)?;
            let stored = StoredDrill { id: ran.id, record: ran.record.clone() };
            if let Some(o) = output {
                let history = reprise_ops::drill::list(&ctx.ws, Some(name))?;
                write_report(&stored, &history, format, lang, Some(o.as_path()))?;
            }
            if ctx.json() {
                ctx.print_json(&ran)?;
            } else {
                summary(ctx, &stored, ran.ledger_index);
                if let Some(o) = output {
                    ctx.say(format!("report: {}", o.display()));
                }
            }
            match ran.failure() {
                Some(e) => Err(exit::from_ops(&e)),
                None => Ok(()),
            }
        }
        DrillCommand::List { name } => {
            let all = reprise_ops::drill::list(&ctx.ws, name.as_deref())?;
            if ctx.json() {
                return ctx.print_json(&all);
            }
            if all.is_empty() {
                ctx.say("no drill record: run one with `reprise drill run NAME`");
            }
            for d in &all {
                ctx.say(line(d));
            }
            Ok(())
        }
        DrillCommand::History { name } => {
            let all = reprise_ops::drill::list(&ctx.ws, Some(name))?;
            if ctx.json() {
                let rows: Vec<_> = all.iter().map(|d| serde_json::json!({ "id": d.id, "started": d.record.started, "rto_ms": d.record.rto_ms, "verdict": d.record.verdict })).collect();
                return ctx.print_json(&rows);
            }
            if all.is_empty() {
                ctx.say(format!("drill '{name}' has no record yet: run `reprise drill run {name}`"));
            }
            for d in &all {
                ctx.say(line(d));
            }
            Ok(())
        }
        DrillCommand::Show { id, format, lang, output } => {
            let (format, lang) = (format_of(format)?, lang_of(lang)?);
            let (one, history) = reprise_ops::drill::show(&ctx.ws, id)?;
            write_report(&one, &history, format, lang, output.as_deref())
        }
    }
}

fn line(d: &StoredDrill) -> String {
    let r = &d.record;
    format!(
        "{}  {}  {:<20} {:<6}  RTO {}",
        d.id.short(),
        r.started.strftime("%Y-%m-%d %H:%M:%S"),
        r.drill,
        if r.verdict == DrillVerdict::Passed { "passed" } else { "FAILED" },
        duration(r.rto_ms)
    )
}

fn summary(ctx: &Context, d: &StoredDrill, ledger: Option<u64>) {
    let r = &d.record;
    for p in &r.phases {
        ctx.say(format!("  {:<20} {:<18} {:>14}  {}", p.phase, p.component.as_deref().unwrap_or(""), duration(p.ms), p.label.as_deref().unwrap_or("")));
    }
    for v in &r.validations {
        let mark = match v.outcome {
            Outcome::Pass => "pass",
            Outcome::Fail => "FAIL",
            Outcome::Skipped => "skip",
        };
        ctx.say(format!(
            "  [{mark}] {}{}{}",
            v.label,
            v.measured.as_ref().map(|m| format!(": {m}")).unwrap_or_default(),
            v.detail.as_ref().filter(|_| v.outcome != Outcome::Pass).map(|d| format!(" ({d})")).unwrap_or_default()
        ));
    }
    for o in &r.objectives {
        ctx.say(format!(
            "  {} {}: {} for {} ({})",
            o.component,
            o.objective.to_uppercase(),
            o.measured_ms.map_or_else(|| "not measured".to_owned(), duration),
            duration(o.target_ms),
            if o.met { "met" } else { "NOT MET" }
        ));
    }
    ctx.say(format!(
        "drill '{}' {}: RTO {}, scratch copy {}; record {}{}",
        r.drill,
        if r.verdict == DrillVerdict::Passed { "passed" } else { "FAILED" },
        duration(r.rto_ms),
        if r.scratch.removed { "removed" } else { "NOT removed" },
        d.id.short(),
        ledger.map(|i| format!(", ledger entry {i}")).unwrap_or_default()
    ));
}

fn write_report(one: &StoredDrill, history: &[StoredDrill], format: Format, lang: Lang, output: Option<&Path>) -> Result<()> {
    let bytes = match format {
        // The stored record itself: the versioned schema.
        Format::Json => {
            let mut v = serde_json::to_vec_pretty(one)?;
            v.push(b'\n');
            v
        }
        Format::Markdown => reprise_report::markdown::render(&document::build(one, history, lang)).into_bytes(),
        Format::Html => reprise_report::html::render(&document::build(one, history, lang)).into_bytes(),
        Format::Pdf => {
            if output.is_none() {
                return Err(exit::usage("a PDF is not written to a terminal: add -o FILE.pdf"));
            }
            reprise_report::pdf::render(&document::build(one, history, lang)).map_err(|e| exit::with_code(exit::ERROR, e.to_string()))?
        }
    };
    match output {
        Some(path) => {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
                let code = if e.kind() == std::io::ErrorKind::AlreadyExists { exit::USAGE } else { exit::PERMISSION };
                exit::with_code(code, format!("cannot create {}: {e} (a report is never written over an existing file)", path.display()))
            })?;
            f.write_all(&bytes)?;
        }
        None => crate::output::raw(&bytes),
    }
    Ok(())
}
