//! `forget` (apply the plan's retention policies) and `hold` (legal holds).

use anyhow::Result;
use reprise_engine::retention::{self, Policy};
use reprise_engine::{Repository, holds};
use reprise_plan::ComponentPlan;

use crate::args::{ForgetArgs, HoldCommand};
use crate::context::Context;
use crate::exit;

/// The engine's form of a component's retention policy (also the policy
/// `copy` applies to what a copy receives).
pub(crate) fn policy_of(c: &ComponentPlan) -> Policy {
    let r = &c.objectives.retention;
    Policy { last: r.keep_last, within: r.keep_within, hourly: r.hourly, daily: r.daily, weekly: r.weekly, monthly: r.monthly, yearly: r.yearly }
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
        if !ctx.json() {
            let verb = if args.dry_run { "would forget" } else { "forgotten" };
            println!("{}: {} snapshots, {} kept, {} {verb}", c.name, outcome.snapshots.len(), outcome.snapshots.iter().filter(|v| v.keep).count(), outcome.snapshots.iter().filter(|v| !v.keep).count());
            for v in &outcome.snapshots {
                let what = if v.keep { "keep  " } else if args.dry_run { "forget" } else { "gone  " };
                println!("  {what} {}  {}  {}", &v.id.to_hex()[..8], v.time.strftime("%Y-%m-%d %H:%M:%S"), v.reasons.join(", "));
            }
        }
        outcomes.push(outcome);
    }
    if ctx.json() {
        ctx.print_json(&outcomes)?;
    }
    Ok(())
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
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "hold": id, "snapshot": snap.id }))?;
            } else {
                println!("hold {} placed on snapshot {} ({}): {reason}", &id.to_hex()[..8], &snap.id.to_hex()[..8], snap.header.component);
            }
        }
        HoldCommand::List => {
            let all = holds::list(&repo)?;
            if ctx.json() {
                ctx.print_json(&all)?;
            } else if all.is_empty() {
                println!("no holds");
            } else {
                for h in &all {
                    println!("{}  snapshot {}  {}  by {}@{}  {}", &h.id.to_hex()[..8], &h.hold.snapshot.to_hex()[..8], h.hold.time.strftime("%Y-%m-%d %H:%M"), h.hold.user, h.hold.host, h.hold.reason);
                }
            }
        }
        HoldCommand::Remove { hold } => {
            let h = holds::remove(&repo, hold)?;
            if ctx.json() {
                ctx.print_json(&h)?;
            } else {
                println!("hold {} lifted from snapshot {} (it was: {})", &h.id.to_hex()[..8], &h.hold.snapshot.to_hex()[..8], h.hold.reason);
            }
        }
    }
    Ok(())
}
