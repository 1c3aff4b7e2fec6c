//! `check`.

use anyhow::Result;
use reprise_engine::check::{CheckOptions, ReadData, check};

use crate::args::CheckArgs;
use crate::commands::bytes;
use crate::context::Context;
use crate::exit;
use crate::output::count;

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
    if ctx.json() {
        ctx.print_json(&report)?;
    } else {
        for n in &report.notes {
            ctx.say(format!("note: {n}"));
        }
        for p in &report.problems {
            // Each with what helps, unless its message already says it.
            let fix = if p.message.contains("`reprise ") { String::new() } else { format!("; {}", reprise_engine::remedy(&p.object)) };
            outln!("DAMAGED {}: {}{fix}", p.object, p.message);
        }
        ctx.say(format!(
            "{}, {}, {}, {} checked; {} read ({})",
            count(report.snapshots, "snapshot", "snapshots"),
            count(report.index_files, "index file", "index files"),
            count(report.packs, "pack", "packs"),
            count(report.blobs, "blob", "blobs"),
            count(report.packs_read, "pack", "packs"),
            bytes(report.bytes_read)
        ));
    }
    if report.ok() {
        if !ctx.json() {
            ctx.say("no problems found");
        }
        Ok(())
    } else {
        Err(exit::with_code(exit::DAMAGED, format!("check found {}, each listed with the damaged object and what helps", count(report.problems.len(), "problem", "problems"))))
    }
}
