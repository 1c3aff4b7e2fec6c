//! `check`.
//!
//! `--read-data-subset` reads part of the packs: `N/M` always the same
//! group (for a schedule that passes N itself), `auto/M` the group of the
//! day (days since 1970-01-01 UTC, modulo M, plus one: run daily, it reads
//! everything once every M days), `P%` a random P% of the packs, drawn
//! anew on each run (like restic's).

use anyhow::Result;
use reprise_engine::check::ReadData;
use reprise_ops::Verdict;

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
    let (n, m) = s.split_once('/').ok_or_else(|| exit::usage(format!("--read-data-subset {s}: write auto/M (e.g. auto/7), N/M (e.g. 2/7) or P% (e.g. 10%)")))?;
    let m: u32 = m.trim().parse().map_err(|_| exit::usage(format!("--read-data-subset {s}: M must be a number")))?;
    let n: u32 = if n.trim() == "auto" {
        if !(1..=256).contains(&m) {
            return Err(exit::usage(format!("--read-data-subset {s}: need 1 <= M <= 256")));
        }
        todays_group(m)
    } else {
        n.trim().parse().map_err(|_| exit::usage(format!("--read-data-subset {s}: N must be a number or auto")))?
    };
    if m == 0 || n == 0 || n > m || m > 256 {
        return Err(exit::usage(format!("--read-data-subset {s}: need 1 <= N <= M <= 256")));
    }
    Ok(ReadData::Group { n, m })
}

/// The group of the day for `auto/m`: 1 to m, moving on by one each UTC day.
fn todays_group(m: u32) -> u32 {
    let days = jiff::Timestamp::now().as_second().div_euclid(86_400);
    u32::try_from(days.rem_euclid(i64::from(m))).expect("below m") + 1
}

pub fn run(ctx: &Context, args: &CheckArgs) -> Result<()> {
    let read_data = match (&args.read_data_subset, args.read_data) {
        (Some(s), _) => parse_subset(s)?,
        (None, true) => ReadData::All,
        (None, false) => ReadData::None,
    };
    let checked = reprise_ops::check::check(&ctx.ws, read_data, &ctx.observer(), &ctx.cancel)?;
    let report = &checked.report;
    if ctx.json() {
        ctx.print_json(&checked)?;
    } else {
        if let Some(g) = &checked.read_data_group {
            ctx.say(format!("reading pack group {g}"));
        }
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
    if let Some(e) = checked.failure() {
        return Err(exit::from_ops(&e));
    }
    if !ctx.json() {
        ctx.say("no problems found");
    }
    Ok(())
}
