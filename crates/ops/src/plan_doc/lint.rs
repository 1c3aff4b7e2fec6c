//! `plan lint`: what in the plan is stale, or not true of the
//! repositories now, each finding with a stable code, a severity and the
//! fix.
//!
//! A pure function of the plan and the [`Evidence`] (no I/O), so that
//! each rule is tested on its own facts, and a daemon can run it on every
//! measurement. Errors are promises the plan makes that are broken now
//! (an RPO exceeded, no off-site copy, data kept shorter than the law
//! requires); warnings are what will become one if left (a contact not
//! checked this quarter, an RTO never measured).

use std::time::Duration;

use jiff::Timestamp;
use reprise_plan::Plan;

use super::Evidence;
use crate::plan_doc::document::human;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing to fix.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Stable, for scripts and suppressions (`no-off-site-copy`).
    pub code: &'static str,
    pub severity: Severity,
    /// What it is about: a component, a contact, a test, the plan.
    pub subject: String,
    pub message: String,
    pub fix: String,
}

/// Every code, its severity, and what it means (docs/PLAN.md lists them).
pub const CODES: &[(&str, Severity, &str)] = &[
    ("no-objectives", Severity::Warning, "a component declares neither an RPO nor an RTO"),
    ("no-backup", Severity::Error, "a component has no snapshot in its repository"),
    ("evidence-unavailable", Severity::Warning, "a component's repository could not be read, so nothing about it is measured"),
    ("rpo-over-objective", Severity::Error, "the recovery point achieved now is older than the RPO"),
    ("rto-over-objective", Severity::Error, "the last drill's measured RTO exceeded the objective"),
    ("rto-not-measured", Severity::Warning, "a component has an RTO that no recorded drill has measured"),
    ("drill-failed", Severity::Error, "the last drill a required test counts failed"),
    ("drill-overdue", Severity::Error, "no passed drill within the period a required test sets"),
    ("no-test-required", Severity::Warning, "the plan requires no restore test at all"),
    ("no-off-site-copy", Severity::Error, "no repository holding the component is off-site"),
    ("off-site-unknown", Severity::Warning, "a repository has no site, so off-site cannot be judged"),
    ("retention-below-legal", Severity::Error, "backups are kept shorter than a legal retention declared for the data"),
    ("immutability-not-in-force", Severity::Error, "immutable = true, but no storage lock is in force"),
    ("no-contacts", Severity::Warning, "the plan names nobody to call"),
    ("contact-not-reviewed", Severity::Warning, "a contact was not reviewed within contacts_every (a quarter)"),
    ("review-overdue", Severity::Warning, "the plan's next review date has passed, or it was never reviewed"),
];

fn severity_of(code: &str) -> Severity {
    CODES.iter().find(|(c, _, _)| *c == code).map_or(Severity::Error, |(_, s, _)| *s)
}

struct Findings(Vec<Finding>);

impl Findings {
    fn add(&mut self, code: &'static str, subject: &str, message: String, fix: String) {
        self.0.push(Finding { code, severity: severity_of(code), subject: subject.to_owned(), message, fix });
    }
}

/// How long the plan keeps a snapshot of `c` at most: its `retain_for`,
/// or what its retention policy keeps, whichever is longer.
fn longest_kept(c: &reprise_plan::ComponentPlan, now: Timestamp) -> Option<Duration> {
    let retain = c.objectives.retain_for.map(|p| p.length_after(now));
    let policy = crate::immutability::horizon(&c.objectives.retention, now);
    retain.into_iter().chain(policy).max()
}

fn today(now: Timestamp) -> jiff::civil::Date {
    now.to_zoned(jiff::tz::TimeZone::UTC).date()
}

/// Judges `plan` against `evidence` (measured at `evidence.measured_at`).
#[must_use]
pub fn lint(plan: &Plan, evidence: &Evidence) -> Vec<Finding> {
    let now = evidence.measured_at;
    let mut f = Findings(Vec::new());
    let cont = &plan.continuity;
    for c in plan.components.values() {
        let o = &c.objectives;
        if o.rpo.is_none() && o.rto.is_none() {
            f.add(
                "no-objectives",
                &c.name,
                format!("component '{}' declares no objective: nothing says how much data it may lose or how long a restore may take", c.name),
                format!("add [components.{}.objectives] with rpo = \"1h\" and rto = \"4h\" (the figures the business accepts)", c.name),
            );
        }
        for legal in cont.legal_for(&c.name) {
            let needed = legal.retain.length_after(now);
            match longest_kept(c, now) {
                Some(kept) if kept >= needed => {}
                kept => f.add(
                    "retention-below-legal",
                    &c.name,
                    format!(
                        "component '{}' holds {} ({} by law), but its backups are kept {}",
                        c.name,
                        legal.data,
                        legal.retain_text,
                        kept.map_or_else(|| "only until forgotten: no retain_for, no retention policy".to_owned(), |k| format!("at most {}", human(k)))
                    ),
                    format!("set retain_for = \"{}\" in [components.{}.objectives] (each snapshot then keeps its date), or yearly = {} in its retention", legal.retain_text, c.name, legal.retain.months.div_ceil(12).max(1)),
                ),
            }
        }
        let Some(ev) = evidence.component(&c.name) else { continue };
        let Some(m) = ev.measured() else {
            if let super::Measurement::Unavailable { reason } = &ev.state {
                f.add("evidence-unavailable", &c.name, format!("component '{}' could not be measured: {reason}", c.name), "fix what the reason says, then run `reprise status` to see the figures".to_owned());
            }
            continue;
        };
        if m.snapshots == 0 {
            f.add("no-backup", &c.name, format!("component '{}' has no snapshot in its repository: there is nothing to restore", c.name), format!("run `reprise backup {}` (and schedule it)", c.name));
        }
        if let (Some(objective), Some(rpo)) = (o.rpo, m.rpo_seconds)
            && rpo > objective.as_secs_f64()
        {
            f.add(
                "rpo-over-objective",
                &c.name,
                format!("component '{}' would lose {} of data now, over its RPO of {}", c.name, human(Duration::from_secs_f64(rpo)), human(objective)),
                format!("back up now (`reprise backup {}`), then back up (or archive WAL) at least every {}", c.name, human(objective)),
            );
        }
        match m.off_site {
            Some(true) => {}
            Some(false) => f.add(
                "no-off-site-copy",
                &c.name,
                format!("component '{}' has no copy off-site: every repository holding it is at the same site", c.name),
                format!("declare a repository at another site with copy_of = \"{}\" and run `reprise copy`", c.repository),
            ),
            None => f.add(
                "off-site-unknown",
                &c.name,
                format!("whether component '{}' has a copy off-site is unknown: a repository holding it declares no site", c.name),
                "set site = \"...\" on every repository (where its storage is)".to_owned(),
            ),
        }
        if o.immutable && m.immutability_in_force != Some(true) {
            f.add(
                "immutability-not-in-force",
                &c.name,
                format!("component '{}' asks for immutability, but no storage lock is in force: {}", c.name, m.immutability_reason.as_deref().unwrap_or("the storage was not asked")),
                "use storage that enforces locks (S3 with Object Lock, Azure with version-level immutability; docs/STORAGE.md), then back up again".to_owned(),
            );
        }
        if let Some(objective) = o.rto {
            let measured = evidence
                .drills
                .iter()
                .filter(|d| d.objectives.iter().any(|v| v.component == c.name && v.objective == "rto" && v.measured.is_some()))
                .max_by_key(|d| d.finished_at);
            match measured {
                None => f.add(
                    "rto-not-measured",
                    &c.name,
                    format!("the RTO of component '{}' ({}) has never been measured: no recorded drill restored it", c.name, human(objective)),
                    format!("run a restore drill of '{}' (`reprise drill run`)", c.name),
                ),
                Some(d) => {
                    let v = d.objectives.iter().find(|v| v.component == c.name && v.objective == "rto").expect("filtered");
                    if let Some(took) = v.measured.filter(|t| *t > objective) {
                        f.add(
                            "rto-over-objective",
                            &c.name,
                            format!("the last drill of component '{}' ({}, {}) took {}, over its RTO of {}", c.name, d.name, d.finished_at.strftime("%Y-%m-%d"), human(took), human(objective)),
                            "find the slow phase in the drill's report and shorten it, or agree a longer RTO with the business and change the plan".to_owned(),
                        );
                    }
                }
            }
        }
    }
    if cont.tests.is_empty() && !plan.components.is_empty() {
        f.add(
            "no-test-required",
            "plan",
            "the plan requires no restore test: nothing says how often restores must be proven".to_owned(),
            "add [tests.NAME] with components = [...] and every = \"1mo\" (the seed: the database monthly, documents quarterly)".to_owned(),
        );
    }
    for t in cont.tests.values() {
        let due_after = t.every.before(now);
        match evidence.last_drill_of(&t.components) {
            Some(d) if !d.passed => f.add(
                "drill-failed",
                &t.id,
                format!("the last drill of test '{}' ({} on {}) failed", t.id, d.name, d.finished_at.strftime("%Y-%m-%d")),
                "read the drill's report, fix what failed, and run the drill again".to_owned(),
            ),
            Some(d) if d.finished_at >= due_after => {}
            last => f.add(
                "drill-overdue",
                &t.id,
                match last {
                    Some(d) => format!("test '{}' ({}) is due every {}: the last drill was on {}", t.id, t.components.join(", "), t.every_text, d.finished_at.strftime("%Y-%m-%d")),
                    None => format!("test '{}' ({}) is due every {}: no drill is recorded", t.id, t.components.join(", "), t.every_text),
                },
                format!("run a drill restoring {} now (`reprise drill run`), and schedule it", t.components.join(" and ")),
            ),
        }
    }
    if cont.contacts.is_empty() {
        f.add("no-contacts", "plan", "the plan names nobody to call in an incident".to_owned(), "add [contacts.NAME] with name, role, phone or email, and reviewed = \"YYYY-MM-DD\"".to_owned());
    }
    let stale_before = cont.review.contacts_every.before(now).to_zoned(jiff::tz::TimeZone::UTC).date();
    for c in cont.contacts.values() {
        match c.reviewed {
            Some(d) if d >= stale_before => {}
            reviewed => f.add(
                "contact-not-reviewed",
                &c.id,
                match reviewed {
                    Some(d) => format!("contact '{}' ({}) was last reviewed on {d}, before {stale_before}", c.id, c.role),
                    None => format!("contact '{}' ({}) has never been reviewed", c.id, c.role),
                },
                format!("call or write to {}, correct the details, and set reviewed = \"{}\" in [contacts.{}]", c.name, today(now), c.id),
            ),
        }
    }
    match (cont.review.reviewed, cont.review.next) {
        (None, _) => f.add("review-overdue", "plan", "the plan has never been reviewed".to_owned(), format!("review it with the people it names, then set [review] reviewed = \"{}\"", today(now))),
        (Some(_), Some(next)) if next < today(now) => f.add(
            "review-overdue",
            "plan",
            format!("the plan's review was due on {next}"),
            format!("review it with the people it names, then set [review] reviewed = \"{}\" (and next, if it is not reviewed + every)", today(now)),
        ),
        _ => {}
    }
    let mut out = f.0;
    out.sort_by(|a, b| (a.severity, a.code, &a.subject).cmp(&(b.severity, b.code, &b.subject)));
    out
}
