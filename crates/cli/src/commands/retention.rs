//! `forget` (apply the plan's retention policies), `prune` (delete what no
//! snapshot needs) and `hold` (legal holds).

use anyhow::Result;
use reprise_engine::retention::{self, Policy};
use reprise_engine::{Repository, holds};
use reprise_plan::{ComponentPlan, PostgresMode};
use reprise_postgres::expire::{self, WalExpiry};

use crate::args::{ForgetArgs, HoldCommand, PruneArgs};
use crate::commands::ledger;
use crate::commands::postgres::pg_error;
use crate::context::Context;
use crate::exit;
use crate::output::count;

/// The engine's form of a component's retention policy (also the policy
/// `copy` applies to what a copy receives).
pub(crate) fn policy_of(c: &ComponentPlan) -> Policy {
    let r = &c.objectives.retention;
    // `keep_within = "1y"` is a calendar year behind now.
    let within = r.keep_within.map(|p| p.length_before(jiff::Timestamp::now()));
    Policy { last: r.keep_last, within, hourly: r.hourly, daily: r.daily, weekly: r.weekly, monthly: r.monthly, yearly: r.yearly }
}

pub fn forget(ctx: &Context, args: &ForgetArgs) -> Result<()> {
    let plan = ctx.plan()?;
    let components: Vec<&ComponentPlan> = if args.components.is_empty() {
        let with_policy: Vec<&ComponentPlan> = plan.components.values().filter(|c| !c.objectives.retention.is_empty()).collect();
        if with_policy.is_empty() {
            return Err(exit::usage("no component of the plan has a retention policy: add retention = { keep_within = \"7d\", daily = 30, ... } to a component's objectives"));
        }
        with_policy
    } else {
        args.components.iter().map(|n| ctx.component(n)).collect::<Result<_>>()?
    };
    let mut outcomes = Vec::new();
    for c in components {
        let repo = ctx.open(Some(c))?;
        let outcome = retention::forget(&repo, &c.name, &policy_of(c), args.dry_run)?;
        let wal = match crate::commands::postgres::pg_plan(c) {
            Some(pg) if pg.mode == PostgresMode::Physical => Some(expire_wal(&repo, c, &outcome, args.dry_run)?),
            _ => None,
        };
        if !args.dry_run {
            ledger::record(ctx, &repo, &ledger::forget(&outcome, wal.as_ref()))?;
        }
        if !ctx.json() {
            let verb = if args.dry_run { "would forget" } else { "forgotten" };
            outln!(
                "{}: {}, {} kept, {} {verb}",
                c.name,
                count(outcome.snapshots.len(), "snapshot", "snapshots"),
                outcome.snapshots.iter().filter(|v| v.keep).count(),
                outcome.snapshots.iter().filter(|v| !v.keep).count()
            );
            for v in &outcome.snapshots {
                let what = if v.keep { "keep  " } else if args.dry_run { "forget" } else { "gone  " };
                outln!("  {what} {}  {}  {}", &v.id.to_hex()[..8], v.time.strftime("%Y-%m-%d %H:%M:%S"), v.reasons.join(", "));
            }
            if let Some(w) = &wal {
                print_wal(w);
            }
        }
        outcomes.push(ComponentForget { outcome, wal });
    }
    if ctx.json() {
        ctx.print_json(&outcomes)?;
    }
    Ok(())
}

/// One component's `forget`: its snapshots, and for PostgreSQL its WAL.
#[derive(serde::Serialize)]
struct ComponentForget {
    #[serde(flatten)]
    outcome: retention::ForgetOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    wal: Option<WalExpiry>,
}

/// WAL retention after the snapshot decision: the window is the plan's
/// `pitr` objective, or else the retention's `keep_within` (the seed writes
/// "7 days of point-in-time recovery" as the latter).
fn expire_wal(repo: &Repository, c: &ComponentPlan, outcome: &retention::ForgetOutcome, dry_run: bool) -> Result<WalExpiry> {
    let going: std::collections::HashSet<_> = outcome.snapshots.iter().filter(|v| !v.keep).map(|v| v.id).collect();
    let kept: Vec<_> = reprise_postgres::restore::base_backups(repo, &c.name).map_err(pg_error)?.into_iter().filter(|b| !going.contains(&b.id)).collect();
    let window = c.objectives.pitr.or(c.objectives.retention.keep_within).map(|p| p.length_before(jiff::Timestamp::now()));
    expire::expire(repo, &c.name, &kept, window, dry_run).map_err(pg_error)
}

fn print_wal(w: &WalExpiry) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let verb = if w.dry_run { "would remove" } else { "removed" };
    match (&w.continuous_from, &w.anchor_backup) {
        (Some(from), Some(anchor)) => outln!(
            "  WAL: {} files kept ({:.1} MiB; continuous from {from}, the start of base backup {}), {} {verb} ({:.1} MiB)",
            w.kept_files,
            mib(w.kept_bytes),
            &anchor.to_hex()[..8],
            w.removed_files.len(),
            mib(w.removed_bytes)
        ),
        _ => outln!("  WAL: {} files kept ({:.1} MiB), none {verb}", w.kept_files, mib(w.kept_bytes)),
    }
    if let Some(note) = &w.note {
        outln!("  WAL: note: {note}");
    }
}

fn open_any(ctx: &Context) -> Result<std::sync::Arc<Repository>> {
    ctx.open(None)
}

pub fn hold(ctx: &Context, cmd: &HoldCommand) -> Result<()> {
    let repo = open_any(ctx)?;
    match cmd {
        HoldCommand::Add { snapshot, reason } => {
            let snap = crate::commands::find_snapshot(&repo, snapshot, None)?;
            let id = holds::add(&repo, snap.id, reason)?;
            ledger::record(ctx, &repo, &ledger::hold_add(id, snap.id, &snap.header.component, reason))?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "hold": id, "snapshot": snap.id }))?;
            } else {
                outln!("hold {} placed on snapshot {} ({}): {reason}", &id.to_hex()[..8], &snap.id.to_hex()[..8], snap.header.component);
            }
        }
        HoldCommand::List => {
            let all = holds::list(&repo)?;
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
            let h = holds::remove(&repo, hold)?;
            ledger::record(ctx, &repo, &ledger::hold_remove(&h))?;
            if ctx.json() {
                ctx.print_json(&h)?;
            } else {
                outln!("hold {} lifted from snapshot {} (it was: {})", &h.id.to_hex()[..8], &h.hold.snapshot.to_hex()[..8], h.hold.reason);
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
    (v.is_finite() && v >= 0.0).then(|| (v * mult as f64) as u64)
}

pub fn prune(ctx: &Context, args: &PruneArgs) -> Result<()> {
    let grace = if args.grace.trim() == "0" { Ok(std::time::Duration::ZERO) } else { reprise_plan::duration::parse(&args.grace) }
        .map_err(|e| exit::usage(format!("--grace {}: {e}; write it like 24h, 90m or 0", args.grace)))?;
    if !(0.0..=100.0).contains(&args.max_unused) {
        return Err(exit::usage(format!("--max-unused {} is not a percentage: give 0 to 100", args.max_unused)));
    }
    let max_repack = match &args.max_repack {
        None => None,
        Some(s) => Some(parse_size(s).ok_or_else(|| exit::usage(format!("--max-repack {s} is not a size: write it like 500M or 10G")))?),
    };
    let repo = open_any(ctx)?;
    // The mode a pack with no lock gets when a retained snapshot needs it
    // locked longer: the plan knows which components are `immutable`
    // (without a plan, GOVERNANCE: the weaker mode, liftable by an
    // administrator, rather than an irrevocable guess).
    let lock_modes = ctx
        .plan
        .as_ref()
        .map(|p| p.components.values().filter_map(|c| crate::commands::immutability::lock_for(c).map(|l| (c.name.clone(), l.mode))).collect())
        .unwrap_or_default();
    let opts = reprise_engine::prune::PruneOptions { grace, max_unused: args.max_unused / 100.0, max_repack, dry_run: args.dry_run, lock_modes, ..Default::default() };
    let r = reprise_engine::prune::prune(&repo, &opts)?;
    if !r.dry_run {
        ledger::record(ctx, &repo, &ledger::prune(&r))?;
    }
    // The garbage collection is done and reported either way; a lock that
    // could not be lengthened makes the run fail, so that a scheduler sees it.
    let lock_failure = r.locks.error.as_ref().map(|e| {
        exit::with_code(exit::ERROR, format!("{} could not be read or lengthened; first: {e}", count(r.locks.packs_failed.max(1), "pack lock", "pack locks")))
    });
    if ctx.json() {
        ctx.print_json(&r)?;
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
