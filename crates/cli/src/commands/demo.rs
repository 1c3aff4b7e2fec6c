//! `demo`: the embedded default.

use anyhow::Result;
use reprise_engine::CancelToken;

use crate::args::{DemoArgs, Global};
use crate::exit;

pub fn run(global: &Global, args: &DemoArgs, cancel: &CancelToken) -> Result<()> {
    let tmp;
    let workdir = if let Some(d) = &args.dir {
        if d.exists() && std::fs::read_dir(d)?.next().is_some() {
            return Err(exit::usage(format!("demo directory {} is not empty: choose a new or empty directory", d.display())));
        }
        d.clone()
    } else {
        tmp = tempfile::Builder::new().prefix("reprise-demo-").tempdir()?;
        tmp.path().to_owned()
    };
    let quiet = global.quiet || global.json;
    if !quiet {
        println!("reprise demo — working in {}", workdir.display());
    }
    let report = reprise_demo::run_files_demo(&workdir, args.documents, cancel, &mut |s| {
        if !quiet {
            println!("  {:<9} {:>7.2}s  {}", s.name, s.millis as f64 / 1000.0, s.detail);
        }
    })
    .map_err(|e| exit::with_code(exit::ERROR, format!("demo failed: {e}")))?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if !quiet {
        println!(
            "done: {:.1} MiB of documents protected in {:.1} MiB of repository; restore took {:.2}s and was verified byte for byte.",
            report.source_bytes as f64 / 1_048_576.0,
            report.stored_bytes as f64 / 1_048_576.0,
            report.restore_millis as f64 / 1000.0
        );
        if args.dir.is_none() {
            println!("(the temporary work directory is removed; use --dir DIR to keep it)");
        }
    }
    Ok(())
}
