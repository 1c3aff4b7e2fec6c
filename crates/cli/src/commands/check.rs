//! `check`.

use anyhow::Result;
use reprise_engine::check::{CheckOptions, ReadData, check};

use crate::args::CheckArgs;
use crate::commands::bytes;
use crate::context::Context;
use crate::exit;

fn parse_subset(s: &str) -> Result<ReadData> {
    if let Some(p) = s.strip_suffix('%') {
        let f: f64 = p.trim().parse().map_err(|_| exit::usage(format!("--read-data-subset {s}: write a percentage like 10%")))?;
        if !(f > 0.0 && f <= 100.0) {
            return Err(exit::usage(format!("--read-data-subset {s}: the percentage must be in (0, 100]")));
        }
        return Ok(ReadData::Fraction(f / 100.0));
    }
    let (n, m) = s.split_once('/').ok_or_else(|| exit::usage(format!("--read-data-subset {s}: write N/M (e.g. 2/7) or P% (e.g. 10%)")))?;
    let (n, m): (u32, u32) = (
        n.trim().parse().map_err(|_| exit::usage(format!("--read-data-subset {s}: N must be a number")))?,
        m.trim().parse().map_err(|_| exit::usage(format!("--read-data-subset {s}: M must be a number")))?,
    );
    if m == 0 || n == 0 || n > m || m > 256 {
        return Err(exit::usage(format!("--read-data-subset {s}: need 1 <= N <= M <= 256")));
    }
    Ok(ReadData::Group { n, m })
}

pub fn run(ctx: &Context, args: &CheckArgs) -> Result<()> {
    let read_data = match (&args.read_data_subset, args.read_data) {
        (Some(s), _) => parse_subset(s)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let repo = ctx.open(None)?;
    let progress = ctx.progress("check");
    let report = check(&repo, &CheckOptions { read_data, cancel: ctx.cancel.clone() }, progress.as_ref())?;
    drop(progress);
    let mode = args.read_data_subset.as_deref().unwrap_or(if args.read_data { "all" } else { "none" });
    crate::commands::ledger::record(ctx, &repo, &crate::commands::ledger::check(&report, mode))?;
    if ctx.json() {
        ctx.print_json(&report)?;
    } else {
        for n in &report.notes {
            ctx.say(format!("note: {n}"));
        }
        for p in &report.problems {
            println!("DAMAGED {}: {}", p.object, p.message);
        }
        ctx.say(format!(
            "{} snapshots, {} index files, {} packs, {} blobs checked; {} packs read ({})",
            report.snapshots,
            report.index_files,
            report.packs,
            report.blobs,
            report.packs_read,
            bytes(report.bytes_read)
        ));
    }
    if report.ok() {
        if !ctx.json() {
            ctx.say("no problems found");
        }
        Ok(())
    } else {
        Err(exit::with_code(exit::DAMAGED, format!("check found {} problem(s), each listed with the damaged object", report.problems.len())))
    }
}
