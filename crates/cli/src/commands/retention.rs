//! `forget` (apply the plan's retention policies), `prune` (delete what no
//! snapshot needs) and `hold` (legal holds).

use anyhow::Result;
use reprise_ops::retention::{self, ForgetRequest, PruneRequest};
use reprise_ops::Verdict;
use reprise_postgres::expire::WalExpiry;

use crate::args::{ForgetArgs, HoldCommand, PruneArgs};
use crate::context::Context;
use crate::exit;
use crate::output::count;

pub fn forget(ctx: &Context, args: &ForgetArgs) -> Result<()> {
    let grace = parse_grace(&args.grace)?;
    let request = ForgetRequest { components: args.components.clone(), dry_run: args.dry_run, grace };
    let json = ctx.json();
    let outcomes = retention::forget(&ctx.ws, &request, &mut |one| {
        if json {
            return;
        }
        let outcome = &one.outcome;
        let verb = if args.dry_run { "would forget" } else { "forgotten" };
        outln!(
            "{}: {}, {} kept, {} {verb}",
            outcome.component,
            count(outcome.snapshots.len(), "snapshot", "snapshots"),
            outcome.snapshots.iter().filter(|v| v.keep).count(),
            outcome.snapshots.iter().filter(|v| !v.keep).count()
        );
        for v in &outcome.snapshots {
            let what = if v.keep { "keep  " } else if args.dry_run { "forget" } else { "gone  " };
            outln!("  {what} {}  {}  {}", &v.id.to_hex()[..8], v.time.strftime("%Y-%m-%d %H:%M:%S"), v.reasons.join(", "));
        }
        if let Some(w) = &one.wal {
            print_wal(w);
        }
    })?;
    if json {
        ctx.print_json(&outcomes)?;
    }
    Ok(())
}

fn print_wal(w: &WalExpiry) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let when = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string();
    let verb = if w.dry_run { "would be marked" } else { "marked" };
    match (&w.continuous_from, &w.anchor_backup) {
        (Some(from), Some(anchor)) => outln!(
            "  WAL: {} files kept ({:.1} MiB; continuous from {from}, the start of base backup {}), {} {verb} for deletion ({:.1} MiB, {} newly), deleted by {}",
            w.kept_files,
            mib(w.kept_bytes),
            &anchor.to_hex()[..8],
            w.marked_files.len(),
            mib(w.marked_bytes),
            w.newly_marked,
            grace_words(w.grace_secs)
        ),
        _ => outln!("  WAL: {} files kept ({:.1} MiB), none {verb}", w.kept_files, mib(w.kept_bytes)),
    }
    if !w.unmarked_files.is_empty() {
        outln!("  WAL: {} {} kept again: no longer marked for deletion", w.unmarked_files.len(), if w.dry_run { "file would be" } else { "files are" });
    }
    for c in &w.closes {
        outln!("  WAL: restores between {} and {} will no longer be possible", when(c.from), when(c.to));
    }
    for c in &w.reopens {
        outln!("  WAL: restores between {} and {} are possible again", when(c.from), when(c.to));
    }
    if let Some(note) = &w.note {
        outln!("  WAL: note: {note}");
    }
}

fn grace_words(secs: u64) -> String {
    if secs == 0 { "the next `prune`".to_owned() } else { format!("a `prune` {:#} after marking at the earliest", jiff::SignedDuration::from_secs(i64::try_from(secs).unwrap_or(i64::MAX))) }
}

fn parse_grace(text: &str) -> Result<std::time::Duration> {
    if text.trim() == "0" { Ok(std::time::Duration::ZERO) } else { reprise_plan::duration::parse(text) }
        .map_err(|e| exit::usage(format!("--grace {text}: {e}; write it like 24h, 90m or 0")))
}

pub fn hold(ctx: &Context, cmd: &HoldCommand) -> Result<()> {
    match cmd {
        HoldCommand::Add { snapshot, reason } => {
            let placed = retention::hold_add(&ctx.ws, snapshot, reason)?;
            if ctx.json() {
                ctx.print_json(&placed)?;
            } else {
                outln!("hold {} placed on snapshot {} ({}): {reason}", &placed.hold.to_hex()[..8], &placed.snapshot.to_hex()[..8], placed.component);
            }
        }
        HoldCommand::List => {
            let (all, ignored) = retention::hold_list(&ctx.ws)?;
            // Holds a writer planted count for nothing: said, not listed.
            for (object, why) in &ignored {
                errln!("reprise: warning: {object}: {why}");
            }
            if ctx.json() {
                ctx.print_json(&all)?;
            } else if all.is_empty() {
                outln!("no holds");
            } else {
                for h in &all {
                    outln!("{}  snapshot {}  {}  by {}@{}  {}", &h.id.to_hex()[..8], &h.hold.snapshot.to_hex()[..8], h.hold.time.strftime("%Y-%m-%d %H:%M"), h.hold.user, h.hold.host, h.hold.reason);
                }
            }
        }
        HoldCommand::Remove { hold } => {
            let (id, h) = retention::hold_remove(&ctx.ws, hold)?;
            match (ctx.json(), h) {
                (true, Some(h)) => ctx.print_json(&h)?,
                (true, None) => ctx.print_json(&serde_json::json!({ "id": id, "ignored": true }))?,
                (false, Some(h)) => outln!("hold {} lifted from snapshot {} (it was: {})", &h.id.to_hex()[..8], &h.hold.snapshot.to_hex()[..8], h.hold.reason),
                (false, None) => outln!("removed {}, a hold object the administrator did not sign (it protected nothing)", &id.to_hex()[..8]),
            }
        }
    }
    Ok(())
}

/// `500M`, `10G`, `1.5T`, `4096` (bytes; binary units).
fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = t[i..].to_ascii_uppercase();
            let m: u64 = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1 << 40,
                _ => return None,
            };
            (&t[..i], m)
        }
        None => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some((v * mult as f64) as u64)
}

pub fn prune(ctx: &Context, args: &PruneArgs) -> Result<()> {
    let grace = parse_grace(&args.grace)?;
    if !(0.0..=100.0).contains(&args.max_unused) {
        return Err(exit::usage(format!("--max-unused {} is not a percentage: give 0 to 100", args.max_unused)));
    }
    let max_repack = match &args.max_repack {
        None => None,
        Some(s) => Some(parse_size(s).ok_or_else(|| exit::usage(format!("--max-repack {s} is not a size: write it like 500M or 10G")))?),
    };
    let prune = retention::prune(&ctx.ws, &PruneRequest { grace, max_unused: args.max_unused / 100.0, max_repack, dry_run: args.dry_run })?;
    let lock_failure = prune.failure().map(|e| exit::from_ops(&e));
    let r = &prune.report;
    if ctx.json() {
        ctx.print_json(&prune)?;
        return lock_failure.map_or(Ok(()), Err);
    }
    let b = crate::commands::bytes;
    let would = if r.dry_run { "would be " } else { "" };
    outln!("{} use {}; {}, {}", count(r.snapshots, "snapshot", "snapshots"), count(r.used_blobs, "blob", "blobs"), count(r.packs, "pack", "packs"), b(r.pack_bytes));
    if r.swept_marks > 0 || r.deleted_packs > 0 {
        outln!(
            "sweep: {} past their grace period; {} {would}deleted ({}), {} rescued (a newer snapshot needs them), {} {would}rewritten",
            count(r.swept_marks, "mark", "marks"),
            count(r.deleted_packs, "pack", "packs"),
            b(r.deleted_bytes),
            r.rescued_packs,
            count(r.index_files_rewritten, "index file", "index files")
        );
    }
    outln!(
        "mark: {} ({}) and {} ({}) {would}condemned{}",
        count(r.condemned_packs, "unused pack", "unused packs"),
        b(r.condemned_bytes),
        count(r.repacked_packs, "repacked pack", "repacked packs"),
        b(r.repacked_bytes),
        if r.repack_limited { "; repacking stopped at --max-repack" } else { "" }
    );
    outln!("unused space left in partly used packs: {}", b(r.unused_bytes_left));
    let w = &prune.wal;
    if w.swept_marks > 0 {
        outln!(
            "WAL: {} past their grace period; {} {would}deleted ({}), {} kept (a base backup needs them)",
            count(w.swept_marks, "mark", "marks"),
            count(w.deleted_files, "file", "files"),
            b(w.deleted_bytes),
            w.rescued_files.len()
        );
    }
    if let Some(t) = w.next_sweep {
        outln!(
            "WAL: {} marked by forget wait for their grace period; the first can be deleted by a prune after {}",
            count(w.pending_files, "file", "files"),
            t.strftime("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    if let Some(t) = r.next_sweep {
        outln!(
            "{} in {} wait for the grace period recorded in the mark; the first can be deleted by a prune after {}",
            count(r.pending_packs, "pack", "packs"),
            count(r.pending_marks, "mark", "marks"),
            t.strftime("%Y-%m-%d %H:%M:%S UTC")
        );
    }
    let l = &r.locks;
    if l.in_force {
        outln!(
            "locks: {}; {} checked, {} {}lengthened{}{}",
            count(l.retained_snapshots, "retained snapshot", "retained snapshots"),
            count(l.packs_checked, "pack", "packs"),
            l.packs_extended,
            would,
            l.latest_until.map(|t| format!(" (latest until {})", t.strftime("%Y-%m-%d"))).unwrap_or_default(),
            if l.packs_failed > 0 { format!(", {} failed", l.packs_failed) } else { String::new() }
        );
    } else {
        outln!("locks: not in force here, pack locks not checked ({})", l.detail);
    }
    lock_failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes() {
        assert_eq!(super::parse_size("500M"), Some(500 << 20));
        assert_eq!(super::parse_size("10GiB"), Some(10 << 30));
        assert_eq!(super::parse_size("4096"), Some(4096));
        assert_eq!(super::parse_size("1.5k"), Some(1536));
        assert_eq!(super::parse_size("12 parsecs"), None);
        assert_eq!(super::parse_size("-1G"), None);
    }
}
