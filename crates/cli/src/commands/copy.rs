//! `copy`: send snapshots, and the data and WAL they need, to a repository
//! that mirrors the one they were taken to (see `reprise_engine::copy`).
//!
//! Sources and destinations are plan repositories: the source of a
//! component is its repository (or `--repo NAME`), the destinations are
//! `--to NAME` or every repository whose `copy_of` names the source. Only
//! components declared in the plan are copied (their retention policy is
//! what the copy keeps).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use anyhow::Result;
use reprise_engine::Repository;
use reprise_engine::backends::Lock;
use reprise_engine::copy::{self, CopyOptions, CopyReport, Selection};
use reprise_plan::{ComponentKind, ComponentPlan, PostgresMode};

use crate::args::CopyArgs;
use crate::commands::bytes;
use crate::commands::immutability::lock_for;
use crate::commands::retention::policy_of;
use crate::context::Context;
use crate::exit;
use crate::output::count;

#[derive(Debug, serde::Serialize)]
struct CopyOutput {
    from: String,
    to: String,
    components: Vec<String>,
    /// Snapshots in the source of components the plan does not declare:
    /// not copied (a copy keeps what the plan's retention says, and
    /// there is none for them), per component.
    not_in_plan: BTreeMap<String, usize>,
    #[serde(flatten)]
    report: CopyReport,
}

/// The components copied in one run, and the storage lock their objects get.
type Group<'a> = (Option<Lock>, Vec<&'a ComponentPlan>);

pub fn run(ctx: &Context, args: &CopyArgs) -> Result<()> {
    let plan = ctx.plan()?;
    if let Some(to) = &args.to {
        ctx.named_target(to)?;
    }
    if args.threads == Some(0) {
        return Err(exit::usage("--threads 0: give at least 1"));
    }
    // A source given with --repo must be a plan repository: destinations
    // are found through the plan's copy_of.
    let forced_source = match &ctx.global.repo {
        Some(r) if plan.repositories.contains_key(r) => Some(r.clone()),
        Some(r) => {
            return Err(exit::usage(format!(
                "copy works between repositories of the plan, and '{r}' is not one: pass --repo NAME (or leave it out), and declare the repository under [repositories.NAME]"
            )));
        }
        None => None,
    };
    let explicit = !args.components.is_empty();
    let components: Vec<&ComponentPlan> =
        if explicit { args.components.iter().map(|n| ctx.component(n)).collect::<Result<_>>()? } else { plan.components.values().collect() };
    // (source, destination, storage lock) → components. Components whose
    // objects get different storage locks (`immutable`, `retain_for`) are
    // copied in separate runs, so that each gets on the copy the lock it
    // gets on the original (S3 Object Lock; see commands::immutability).
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    for c in components {
        let source = forced_source.clone().unwrap_or_else(|| c.repository.clone());
        let destinations: Vec<String> = match &args.to {
            Some(t) => vec![t.clone()],
            None => plan.copies_of(&source).into_iter().map(|r| r.name.clone()).collect(),
        };
        if destinations.is_empty() && explicit {
            return Err(exit::usage(format!(
                "component '{}' backs up to repository '{source}', which has no copy: add copy_of = \"{source}\" to the [repositories.NAME] that mirrors it, or pass --to NAME",
                c.name
            )));
        }
        for d in destinations {
            if d == source {
                return Err(exit::usage(format!("--to {d} is the repository component '{}' backs up to: copy to another repository", c.name)));
            }
            let lock = lock_for(c);
            groups.entry((source.clone(), d, format!("{lock:?}"))).or_insert_with(|| (lock, Vec::new())).1.push(c);
        }
    }
    if groups.is_empty() {
        return Err(exit::usage(
            "no repository of the plan is a copy of another: add copy_of = \"PRIMARY\" to the [repositories.NAME] that mirrors it, or pass --to NAME",
        ));
    }

    let threads = args.threads.unwrap_or(copy::DEFAULT_THREADS);
    let mut sources: HashMap<String, Arc<Repository>> = HashMap::new();
    let mut outputs = Vec::new();
    let mut failures: Vec<(String, String, anyhow::Error)> = Vec::new();
    let mut undeclared: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
    let group_count = groups.len();
    for ((from, to, _), (lock, comps)) in groups {
        let names: Vec<String> = comps.iter().map(|c| c.name.clone()).collect();
        let result = (|| -> Result<CopyReport> {
            let src = if let Some(r) = sources.get(&from) {
                Arc::clone(r)
            } else {
                let r = ctx.open_named(&from)?;
                sources.insert(from.clone(), Arc::clone(&r));
                r
            };
            let backend = Context::backend_with_lock(&ctx.named_target(&to)?, lock)?;
            let dest = copy::open_destination(&src, Arc::clone(&backend))?;
            let selections: Vec<Selection> = comps
                .iter()
                .map(|c| Selection { component: c.name.clone(), policy: (!c.objectives.retention.is_empty()).then(|| policy_of(c)) })
                .collect();
            let copy_plan = copy::plan(&src, &dest, &selections)?;
            let mut wal = Vec::new();
            for c in &comps {
                if let ComponentKind::Postgres(pg) = &c.kind
                    && pg.mode == PostgresMode::Physical
                {
                    wal.push(reprise_postgres::copy::wal_batch(&src, dest.repository(), &c.name, &copy_plan.snapshots, c.objectives.pitr.map(|p| p.length_before(jiff::Timestamp::now())))?);
                }
            }
            if args.dry_run {
                return Ok(copy::dry_run(&src, &dest, &copy_plan, &wal)?);
            }
            let progress = ctx.progress("copy");
            let mut report = copy::execute(&src, dest, copy_plan, &wal, &CopyOptions { threads, cancel: ctx.cancel.clone() }, progress.as_ref())?;
            drop(progress);
            crate::commands::ledger::record_copy(ctx, &src, &to, backend.as_ref(), &mut report)?;
            Ok(report)
        })();
        match result {
            Ok(report) => {
                // Named components are a choice; with none named, what is
                // left out is said.
                let not_in_plan = if explicit {
                    BTreeMap::new()
                } else {
                    match sources.get(&from) {
                        Some(src) => undeclared.entry(from.clone()).or_insert_with(|| not_declared(src, plan)).clone(),
                        None => BTreeMap::new(),
                    }
                };
                if !ctx.json() {
                    print_human(ctx, &from, &to, &names, &report);
                    if !not_in_plan.is_empty() {
                        let list: Vec<String> = not_in_plan.iter().map(|(c, n)| format!("{c} ({n})")).collect();
                        ctx.say(format!("  not copied: snapshots of components the plan does not declare: {}; declare them to copy them", list.join(", ")));
                    }
                }
                outputs.push(CopyOutput { from, to, components: names, not_in_plan, report });
            }
            // One unreachable destination does not stop the others.
            Err(e) => failures.push((from, to, e)),
        }
    }
    if ctx.json() && !outputs.is_empty() {
        ctx.print_json(&outputs)?;
    }
    if group_count == 1
        && let Some((_, _, e)) = failures.pop()
    {
        return Err(e);
    }
    if let Some((_, _, first)) = failures.first() {
        for (from, to, e) in &failures {
            errln!("reprise: copy {from} -> {to}: {e}");
        }
        return Err(exit::with_code(
            exit::code_of(first),
            format!("copy failed for {} of {}, each listed above; the others were copied", failures.len(), count(group_count, "destination", "destinations")),
        ));
    }
    let damaged: usize = outputs.iter().map(|o| o.report.damage.len() + o.report.conflicts.len()).sum();
    if damaged > 0 {
        return Err(exit::with_code(
            exit::DAMAGED,
            format!("copy left {} behind (damaged on the source, or different on the destination), each listed with its name; the rest was copied: `reprise check --read-data` on the source lists its damage, and what is repaired there is sent by the next copy", count(damaged, "object", "objects")),
        ));
    }
    Ok(())
}

/// Snapshots per component of the source that the plan does not declare.
fn not_declared(src: &Repository, plan: &reprise_plan::Plan) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    if let Ok((snapshots, _)) = src.snapshots() {
        for s in snapshots.iter().filter(|s| !plan.components.contains_key(&s.header.component)) {
            *out.entry(s.header.component.clone()).or_insert(0) += 1;
        }
    }
    out
}

fn print_human(ctx: &Context, from: &str, to: &str, components: &[String], r: &CopyReport) {
    let verb = if r.dry_run { "would copy" } else { "copied" };
    ctx.say(format!(
        "{from} -> {to} ({}){}: {verb} {}, {} ({}), {} ({}), {}; {} {}, {} already there; {:.1}s",
        components.join(", "),
        match (r.initialised, r.dry_run) {
            (true, true) => ", destination would be initialised",
            (true, false) => ", destination initialised",
            _ => "",
        },
        count(r.snapshots_copied.len(), "snapshot", "snapshots"),
        count(r.packs_written.len(), "pack", "packs"),
        bytes(r.pack_bytes),
        count(r.wal_copied, "WAL file", "WAL files"),
        bytes(r.wal_bytes),
        count(r.holds_copied, "hold", "holds"),
        count(r.objects_copied, "object", "objects"),
        if r.dry_run { "to write" } else { "written" },
        r.objects_skipped,
        r.duration_ms as f64 / 1000.0,
    ));
    for n in &r.snapshots_not_kept {
        ctx.say(format!("  not kept by {to}'s retention: {} {} {}  ({})", n.id.short(), n.component, n.time.strftime("%Y-%m-%d %H:%M:%S"), n.reasons.join(", ")));
    }
    // Damage is printed even with --quiet: it is why the exit code is not 0.
    for p in &r.damage {
        outln!("DAMAGED {}: {}", p.object, p.message);
    }
    for p in &r.conflicts {
        outln!("CONFLICT {}: {}", p.object, p.message);
    }
}
