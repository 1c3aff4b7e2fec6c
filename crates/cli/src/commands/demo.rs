//! `demo`: the embedded default.

use anyhow::Result;
use reprise_engine::CancelToken;

use crate::args::{DemoArgs, Global};
use crate::exit;

pub fn run(global: &Global, args: &DemoArgs, cancel: &CancelToken) -> Result<()> {
    if args.documents == 0 || args.scale == 0 {
        // Its drill checks the patients and the documents the database
        // points to: with none, the drill would fail for the data, not the restore.
        return Err(exit::usage("--documents and --scale must be at least 1: the demo's drill checks the patients and their documents"));
    }
    let tmp;
    let workdir = if let Some(d) = &args.dir {
        if d.exists() && std::fs::read_dir(d)?.next().is_some() {
            return Err(exit::usage(format!("demo directory {} is not empty: choose a new or empty directory", d.display())));
        }
        std::path::absolute(d)?
    } else {
        tmp = tempfile::Builder::new().prefix("reprise-demo-").tempdir()?;
        tmp.path().to_owned()
    };
    let quiet = global.quiet || global.json;
    if !quiet {
        outln!("reprise demo — working in {}", workdir.display());
    }
    let opts = reprise_demo::DemoOptions { documents: args.documents, scale: args.scale, load_seconds: args.load_seconds, exe: std::env::current_exe()? };
    let report = reprise_demo::run_demo(&workdir, &opts, cancel, &mut |s| {
        if !quiet {
            outln!("  {:<12} {:>7.2}s  {}", s.name, s.millis as f64 / 1000.0, s.detail);
        }
    })
    .map_err(|e| match e {
        reprise_demo::DemoError::Interrupted => exit::with_code(exit::INTERRUPTED, "demo interrupted; everything it started was stopped"),
        reprise_demo::DemoError::Postgres(reprise_postgres::PgError::MissingBinary { .. }) => {
            exit::with_code(exit::NOT_FOUND, format!("demo failed: {e} (scripts/demo installs it)"))
        }
        reprise_demo::DemoError::Ops(e) => exit::with_code(exit::for_category(e.category()), format!("demo failed: {}", e.message())),
        other => exit::with_code(exit::ERROR, format!("demo failed: {other}")),
    })?;
    // The plan the demo wrote, rendered as its PRA/PCA from what the
    // repository holds now (the same operation as `reprise plan render`).
    let rendered = render_plan(&workdir)?;
    let drill_reports = render_drill(&workdir)?;
    if global.json {
        crate::output::json(&report)?;
    } else if !quiet {
        outln!(
            "done: base backup {:.1}s, achieved RPO {}, {} rows recovered in {:.1}s with the {} later changes kept, database restored at a chosen time in {:.1}s (RTO), documents restored in {:.1}s and verified byte for byte, monthly drill passed {} checks with an RTO of {:.1}s; {} ledger entries recorded and verified.",
            report.base_backup_ms as f64 / 1000.0,
            report.achieved_rpo_seconds.map_or_else(|| "unknown".into(), |s| format!("{s:.1}s")),
            report.rows_recovered,
            report.recover_rows_ms as f64 / 1000.0,
            report.later_changes_kept,
            report.pitr_rto_ms as f64 / 1000.0,
            report.documents_restore_ms as f64 / 1000.0,
            report.drill_checks,
            report.drill_rto_ms as f64 / 1000.0,
            report.ledger_entries
        );
        if args.dir.is_some() {
            outln!("drill report (the seed's checklist, filled): {} and {}", drill_reports[0].display(), drill_reports[1].display());
            outln!("plan rendered from the measurements: {} and {}", rendered[0].display(), rendered[1].display());
        } else {
            outln!("drill report and plan rendered from the measurements (drills/*.md, *.pdf, plan/PRA.md, PRA.pdf); nothing is left running; the work directory is removed: use --dir DIR to keep them");
        }
    }
    Ok(())
}

/// Renders the demo's stored drill record (Markdown and PDF, French) into
/// `workdir/drills/`, as `reprise drill show ID -o FILE` does.
fn render_drill(workdir: &std::path::Path) -> Result<[std::path::PathBuf; 2]> {
    let ws = demo_workspace(workdir)?;
    let stored = reprise_ops::drill::list(&ws, Some("monthly")).map_err(|e| exit::from_ops(&e))?;
    let one = stored.last().ok_or_else(|| exit::with_code(exit::ERROR, "the demo's drill left no record in the repository"))?;
    let doc = reprise_ops::drill::document::build(one, &stored, reprise_report::Lang::Fr);
    let dir = workdir.join("drills");
    std::fs::create_dir_all(&dir)?;
    let base = format!("drill-{}-{}", one.record.drill, one.id.short());
    let (md, pdf) = (dir.join(format!("{base}.md")), dir.join(format!("{base}.pdf")));
    std::fs::write(&md, reprise_report::markdown::render(&doc))?;
    std::fs::write(&pdf, reprise_report::pdf::render(&doc).map_err(|e| exit::with_code(exit::ERROR, e.to_string()))?)?;
    Ok([md, pdf])
}

fn demo_workspace(workdir: &std::path::Path) -> Result<reprise_ops::Workspace> {
    let plan = reprise_plan::Plan::load(&workdir.join("reprise.toml"))?;
    // The demo's passphrase file wins over a REPRISE_PASSWORD the caller may have set.
    let settings = reprise_ops::Settings { password_file: Some(workdir.join("passphrase")), ..reprise_ops::Settings::default() };
    Ok(reprise_ops::Workspace::new(Some(plan), settings, reprise_ops::Environment::from_process()))
}

/// Renders the demo's plan (Markdown and PDF) into `workdir/plan/`.
fn render_plan(workdir: &std::path::Path) -> Result<[std::path::PathBuf; 2]> {
    let ws = demo_workspace(workdir)?;
    let evidence = reprise_ops::plan_doc::gather(&ws, &reprise_ops::drill::RecordedDrills).map_err(|e| exit::from_ops(&e))?;
    let doc = reprise_ops::plan_doc::document(ws.plan().map_err(|e| exit::from_ops(&e))?, &evidence, &reprise_ops::plan_doc::DocumentOptions::default());
    let dir = workdir.join("plan");
    std::fs::create_dir_all(&dir)?;
    let (md, pdf) = (dir.join("PRA.md"), dir.join("PRA.pdf"));
    std::fs::write(&md, reprise_report::markdown::render(&doc))?;
    std::fs::write(&pdf, reprise_report::pdf::render(&doc).map_err(|e| exit::with_code(exit::ERROR, e.to_string()))?)?;
    Ok([md, pdf])
}
