//! `[drills.NAME]`: restore drills, as the plan declares them.
//!
//! A drill restores some components together into a scratch location,
//! checks what was restored (SQL expectations, the documents the database
//! points to, `pg_amcheck`, a read of the packs used) and measures how
//! long it took and how much data the restore point would have lost. The
//! seed plan asks for one every month (database) and every quarter
//! (documents); writing them in the plan is what lets `reprise serve` run
//! them on their schedule and `plan lint` say when one is missing.
//!
//! Kept apart from the rest of the plan so that the plan's other sections
//! grow without touching it. Validated with the same diagnostics: every
//! mistake located, each with its fix.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde_spanned::Spanned;

use crate::{ComponentKind, Ctx, Plan, valid_name};

/// One drill of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct DrillPlan {
    pub name: String,
    /// The components restored together, in the order given (a database
    /// first, then the documents it points to).
    pub components: Vec<String>,
    pub target: DrillTarget,
    /// Where scratch restores go (a folder is made inside and removed
    /// after); `None`: the system's temporary folder.
    pub scratch: Option<PathBuf>,
    pub schedule: Option<Schedule>,
    /// Who signs the report (the plan owner), shown in its signature block.
    pub owner: Option<String>,
    pub sql: Vec<SqlCheck>,
    pub documents: Vec<DocumentCheck>,
    /// Run `pg_amcheck` on the restored cluster.
    pub amcheck: bool,
    /// Read in full the packs the restore used (`check --read-data` of
    /// those packs only).
    pub read_data: bool,
}

/// Which point in time a drill restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrillTarget {
    /// Everything archived.
    Latest,
    /// A random point within this long behind now: exercises point-in-time
    /// recovery, as an incident at an unknown time would.
    Random(Duration),
    /// This long behind now.
    Offset(Duration),
}

impl std::fmt::Display for DrillTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrillTarget::Latest => f.write_str("latest"),
            DrillTarget::Random(d) => write!(f, "random within {}", crate::duration::format(*d)),
            DrillTarget::Offset(d) => write!(f, "{} ago", crate::duration::format(*d)),
        }
    }
}

/// When the drill runs (for `reprise serve`): a five-field cron expression
/// read in a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub cron: String,
    pub timezone: String,
}

/// A query run on the restored database, and what its first column of its
/// first row must be.
#[derive(Debug, Clone, PartialEq)]
pub struct SqlCheck {
    /// The checklist line (e.g. "Nombre de patients correct").
    pub label: String,
    /// The PostgreSQL component it runs on.
    pub component: String,
    /// `None`: the database of the component's connection.
    pub database: Option<String>,
    pub query: String,
    pub expect: Expectation,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Expectation {
    Equals(f64),
    AtLeast(f64),
    /// Within `ratio` (0.05 = 5 %) of `value`.
    Within { value: f64, ratio: f64 },
    /// The query returns no rows (an orphan, a broken invariant).
    NoRows,
    /// Compared with the answer the live database gave when the restored
    /// base backup was taken (`reprise backup` records it).
    Recorded(RecordedRule),
}

/// How a restored value compares with the one recorded at backup time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordedRule {
    /// Not below it: for what only grows (patients, signed documents),
    /// since the restore point is at or after the recording.
    AtLeast,
    /// The same: for what must not change once recorded (a closed month's
    /// total), or a database nobody writes to between the backup and the
    /// restore point.
    Equal,
}

impl std::fmt::Display for Expectation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Expectation::Equals(v) => write!(f, "= {v}"),
            Expectation::AtLeast(v) => write!(f, "≥ {v}"),
            Expectation::Within { value, ratio } => write!(f, "{value} ± {}%", ratio * 100.0),
            Expectation::NoRows => f.write_str("0 rows"),
            Expectation::Recorded(RecordedRule::AtLeast) => f.write_str("≥ the value recorded at backup time"),
            Expectation::Recorded(RecordedRule::Equal) => f.write_str("= the value recorded at backup time"),
        }
    }
}

/// The documents the restored database points to, checked in the restored
/// documents: every (path, sha256) the query returns must exist there with
/// that hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentCheck {
    pub label: String,
    /// The files component holding the documents.
    pub component: String,
    /// The PostgreSQL component queried.
    pub database_component: String,
    pub database: Option<String>,
    /// Returns (path, sha256 hex), newest first.
    pub query: String,
    /// Where the query's relative paths start, in the backed-up tree (an
    /// absolute path, e.g. the folder above `legal_documents_signed`).
    pub root: PathBuf,
    /// The first N rows are "the newest documents" of the checklist.
    pub newest: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDrill {
    components: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    target: Option<Spanned<String>>,
    #[serde(default)]
    scratch: Option<Spanned<String>>,
    #[serde(default)]
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    timezone: Option<Spanned<String>>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    amcheck: Option<bool>,
    #[serde(default)]
    read_data: Option<bool>,
    #[serde(default)]
    sql: Vec<Spanned<RawSql>>,
    #[serde(default)]
    documents: Vec<Spanned<RawDocuments>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    label: String,
    #[serde(default)]
    component: Option<Spanned<String>>,
    #[serde(default)]
    database: Option<String>,
    query: Spanned<String>,
    #[serde(default)]
    equals: Option<f64>,
    #[serde(default)]
    at_least: Option<f64>,
    #[serde(default)]
    within: Option<RawWithin>,
    #[serde(default)]
    no_rows: Option<bool>,
    #[serde(default)]
    recorded: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWithin {
    value: f64,
    ratio: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocuments {
    #[serde(default)]
    label: Option<String>,
    component: Spanned<String>,
    #[serde(default)]
    database_component: Option<Spanned<String>>,
    #[serde(default)]
    database: Option<String>,
    query: Spanned<String>,
    root: Spanned<String>,
    #[serde(default)]
    newest: Option<u32>,
}

/// The drill's PostgreSQL component when there is exactly one.
fn only_postgres(plan: &Plan, components: &[String]) -> Option<String> {
    let mut pg = components.iter().filter(|c| plan.components.get(*c).is_some_and(|c| matches!(c.kind, ComponentKind::Postgres(_))));
    match (pg.next(), pg.next()) {
        (Some(c), None) => Some(c.clone()),
        _ => None,
    }
}

/// Validates every `[drills.NAME]` against the components already read.
pub(crate) fn parse(cx: &mut Ctx<'_>, plan: &mut Plan, raw: BTreeMap<String, Spanned<RawDrill>>, resolve: &dyn Fn(&str) -> PathBuf) {
    for (name, d) in raw {
        let span = d.span().start;
        let d = d.into_inner();
        if !valid_name(&name) {
            cx.at(span, format!("drill name '{name}' is not valid"), "use letters, digits, '-', '_' or '.' (at most 64)");
        }
        let mut components = Vec::new();
        for c in d.components.get_ref() {
            match plan.components.get(c.get_ref()) {
                Some(_) if components.contains(c.get_ref()) => cx.at(c.span().start, format!("drill '{name}' lists '{}' twice", c.get_ref()), "list each component once"),
                Some(_) => components.push(c.get_ref().clone()),
                None => {
                    let known: Vec<_> = plan.components.keys().map(String::as_str).collect();
                    cx.at(c.span().start, format!("drill '{name}' restores '{}', which the plan does not declare", c.get_ref()), format!("use one of: {}", if known.is_empty() { "none declared".to_owned() } else { known.join(", ") }));
                }
            }
        }
        if d.components.get_ref().is_empty() {
            cx.at(d.components.span().start, format!("drill '{name}' restores nothing"), "list the components restored together, e.g. components = [\"medicapp-db\", \"signed-documents\"]");
        }
        let target = match &d.target {
            None => DrillTarget::Latest,
            Some(t) => parse_target(cx, t),
        };
        let schedule = match (&d.schedule, &d.timezone) {
            (Some(s), tz) => {
                if let Err(e) = check_cron(s.get_ref()) {
                    cx.at(s.span().start, format!("schedule of drill '{name}': {e}"), "write five cron fields: minute hour day-of-month month day-of-week, e.g. \"0 3 1 * *\" (03:00 on the 1st of each month)");
                }
                let timezone = match tz {
                    Some(z) if jiff::tz::TimeZone::get(z.get_ref()).is_err() => {
                        cx.at(z.span().start, format!("unknown time zone '{}'", z.get_ref()), "use an IANA name such as \"Europe/Paris\" or \"UTC\"");
                        z.get_ref().clone()
                    }
                    Some(z) => z.get_ref().clone(),
                    None => "UTC".to_owned(),
                };
                Some(Schedule { cron: s.get_ref().clone(), timezone })
            }
            (None, Some(z)) => {
                cx.at(z.span().start, format!("drill '{name}' has a timezone but no schedule"), "add schedule = \"0 3 1 * *\", or remove timezone");
                None
            }
            (None, None) => None,
        };
        let pg_default = only_postgres(plan, &components);
        let pg_component = |cx: &mut Ctx<'_>, given: Option<&Spanned<String>>, at: usize, what: &str| -> String {
            match given {
                Some(c) => {
                    if !components.contains(c.get_ref()) || !plan.components.get(c.get_ref()).is_some_and(|p| matches!(p.kind, ComponentKind::Postgres(_))) {
                        cx.at(c.span().start, format!("{what} of drill '{name}' queries '{}', which is not a postgres component the drill restores", c.get_ref()), "name a postgres component listed in the drill's components");
                    }
                    c.get_ref().clone()
                }
                None => pg_default.clone().unwrap_or_else(|| {
                    cx.at(at, format!("{what} of drill '{name}' does not say which database it queries"), "add component = \"NAME\" (a postgres component of the drill), or restore exactly one postgres component");
                    String::new()
                }),
            }
        };
        let mut sql = Vec::new();
        for s in d.sql {
            let at = s.span().start;
            let s = s.into_inner();
            let component = pg_component(cx, s.component.as_ref(), at, "an SQL check");
            let given = [s.equals.is_some(), s.at_least.is_some(), s.within.is_some(), s.no_rows == Some(true), s.recorded.is_some()].iter().filter(|b| **b).count();
            if given != 1 {
                cx.at(at, format!("SQL check '{}' of drill '{name}' needs exactly one expectation", s.label), "set one of equals = N, at_least = N, within = { value = N, ratio = 0.05 }, no_rows = true, recorded = \"at_least\"");
            }
            let recorded = s.recorded.as_ref().map(|r| match r.get_ref().as_str() {
                "at_least" => RecordedRule::AtLeast,
                "equal" => RecordedRule::Equal,
                other => {
                    cx.at(r.span().start, format!("SQL check '{}': recorded = \"{other}\" is not a rule", s.label), "write recorded = \"at_least\" (the value only grows) or recorded = \"equal\" (it must not change)");
                    RecordedRule::AtLeast
                }
            });
            let expect = match (s.equals, s.at_least, s.within, recorded) {
                (.., Some(rule)) => Expectation::Recorded(rule),
                (Some(v), ..) => Expectation::Equals(v),
                (_, Some(v), ..) => Expectation::AtLeast(v),
                (_, _, Some(w), None) => {
                    if !(0.0..=1.0).contains(&w.ratio) {
                        cx.at(at, format!("SQL check '{}': ratio {} is not between 0 and 1", s.label, w.ratio), "write the tolerance as a fraction: 0.05 for 5 %");
                    }
                    Expectation::Within { value: w.value, ratio: w.ratio }
                }
                _ => Expectation::NoRows,
            };
            if s.query.get_ref().trim().is_empty() {
                cx.at(s.query.span().start, format!("SQL check '{}' has an empty query", s.label), "write the query, e.g. query = \"SELECT count(*) FROM patients\"");
            }
            sql.push(SqlCheck { label: s.label, component, database: s.database, query: s.query.into_inner(), expect });
        }
        let mut documents = Vec::new();
        for doc in d.documents {
            let at = doc.span().start;
            let doc = doc.into_inner();
            let database_component = pg_component(cx, doc.database_component.as_ref(), at, "a document check");
            let files = doc.component.get_ref();
            if !components.contains(files) || !plan.components.get(files).is_some_and(|c| c.kind == ComponentKind::Files) {
                cx.at(doc.component.span().start, format!("the document check of drill '{name}' looks in '{files}', which is not a files component the drill restores"), "name a files component listed in the drill's components");
            }
            let root = PathBuf::from(doc.root.get_ref());
            if !root.is_absolute() {
                cx.at(doc.root.span().start, format!("root '{}' is relative", doc.root.get_ref()), "write the absolute path, in the backed-up tree, that the query's paths start from (e.g. \"/srv/medicapp\")");
            }
            documents.push(DocumentCheck {
                label: doc.label.unwrap_or_else(|| "Documents référencés présents".to_owned()),
                component: files.clone(),
                database_component,
                database: doc.database,
                query: doc.query.into_inner(),
                root,
                newest: doc.newest.unwrap_or(10),
            });
        }
        let has_pg = pg_default.is_some() || components.iter().any(|c| plan.components.get(c).is_some_and(|c| matches!(c.kind, ComponentKind::Postgres(_))));
        plan.drills.insert(
            name.clone(),
            DrillPlan {
                name,
                components,
                target,
                scratch: d.scratch.map(|s| resolve(s.get_ref())),
                schedule,
                owner: d.owner,
                sql,
                documents,
                amcheck: d.amcheck.unwrap_or(has_pg),
                read_data: d.read_data.unwrap_or(true),
            },
        );
    }
}

fn parse_target(cx: &mut Ctx<'_>, t: &Spanned<String>) -> DrillTarget {
    let text = t.get_ref().trim();
    let fix = "write \"latest\", \"random:7d\" (a random point within the last 7 days) or \"offset:1h\" (one hour ago)";
    if text == "latest" {
        return DrillTarget::Latest;
    }
    let parsed = text.split_once(':').and_then(|(kind, d)| Some((kind, crate::duration::parse(d).ok()?)));
    match parsed {
        Some(("random", d)) if !d.is_zero() => DrillTarget::Random(d),
        Some(("offset", d)) => DrillTarget::Offset(d),
        _ => {
            cx.at(t.span().start, format!("'{text}' is not a drill target"), fix);
            DrillTarget::Latest
        }
    }
}

/// A five-field cron expression: numbers, `*`, ranges, lists and steps,
/// each within its field's bounds.
fn check_cron(expr: &str) -> Result<(), String> {
    const FIELDS: [(&str, u32, u32); 5] = [("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7)];
    let parts: Vec<&str> = expr.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!("'{expr}' has {} fields, a cron expression has 5", parts.len()));
    }
    for (part, (what, lo, hi)) in parts.iter().zip(FIELDS) {
        for item in part.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            if let Some(s) = step
                && s.parse::<u32>().ok().is_none_or(|n| n == 0)
            {
                return Err(format!("the {what} step '{s}' is not a positive number"));
            }
            if range == "*" {
                continue;
            }
            let bounds: Vec<&str> = range.splitn(2, '-').collect();
            for b in &bounds {
                match b.parse::<u32>() {
                    Ok(n) if (lo..=hi).contains(&n) => {}
                    _ => return Err(format!("the {what} '{b}' is not a number from {lo} to {hi}")),
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::duration_suboptimal_units, reason = "plans count in seconds; from_mins and from_hours are newer than the MSRV")]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::PlanError;

    const BASE: &str = r#"
[repositories.primary]
url = "/var/backups/reprise"

[components.db]
type = "postgres"
connection = "host=/var/run/postgresql user=postgres dbname=medicapp"

[components.docs]
type = "files"
paths = ["/srv/medicapp/legal_documents_signed"]
"#;

    fn parse(drill: &str) -> Result<Plan, PlanError> {
        Plan::parse(Path::new("/etc/reprise/p.toml"), &format!("{BASE}\n{drill}"))
    }

    #[test]
    fn a_drill_of_the_database_and_its_documents() {
        let plan = parse(
            r#"
[drills.monthly]
components = ["db", "docs"]
target = "random:7d"
scratch = "scratch"
schedule = "0 3 1 * *"
timezone = "Europe/Paris"
owner = "Dr Martin"

[[drills.monthly.sql]]
label = "Nombre de patients correct"
query = "SELECT count(*) FROM patients"
within = { value = 1000, ratio = 0.01 }

[[drills.monthly.sql]]
label = "Pas de document orphelin"
query = "SELECT id FROM documents WHERE case_id NOT IN (SELECT id FROM procedure_cases)"
no_rows = true

[[drills.monthly.documents]]
component = "docs"
query = "SELECT storage_path, sha256 FROM documents ORDER BY signed_at DESC"
root = "/srv/medicapp"
newest = 5
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let d = &plan.drills["monthly"];
        assert_eq!(d.components, ["db", "docs"]);
        assert_eq!(d.target, DrillTarget::Random(Duration::from_secs(7 * 86_400)));
        assert_eq!(d.scratch.as_deref(), Some(Path::new("/etc/reprise/scratch")));
        assert_eq!(d.schedule, Some(Schedule { cron: "0 3 1 * *".into(), timezone: "Europe/Paris".into() }));
        assert_eq!(d.sql[0].component, "db", "the only postgres component is the default");
        assert_eq!(d.sql[0].expect, Expectation::Within { value: 1000.0, ratio: 0.01 });
        assert_eq!(d.sql[1].expect, Expectation::NoRows);
        assert_eq!((d.documents[0].database_component.as_str(), d.documents[0].newest), ("db", 5));
        assert!(d.amcheck && d.read_data, "both on by default with a database");
    }

    #[test]
    fn drill_mistakes_are_located_with_a_fix() {
        let Err(PlanError::Invalid(d)) = parse(
            r#"
[drills.bad]
components = ["db", "nope"]
target = "yesterday"
schedule = "0 25 * * *"
timezone = "Mars/Olympus"

[[drills.bad.sql]]
label = "two expectations"
query = "SELECT 1"
equals = 1
at_least = 1

[[drills.bad.documents]]
component = "db"
query = "SELECT p, h FROM t"
root = "srv"
"#,
        ) else {
            panic!("accepted")
        };
        let text: Vec<String> = d.iter().map(ToString::to_string).collect();
        for want in ["restores 'nope'", "not a drill target", "hour '25'", "unknown time zone", "exactly one expectation", "not a files component", "root 'srv' is relative"] {
            assert!(text.iter().any(|t| t.contains(want)), "no diagnostic says {want:?}: {text:#?}");
        }
        assert!(d.iter().all(|x| x.line > 1 && !x.fix.is_empty()), "{text:#?}");
    }

    #[test]
    fn a_check_against_the_value_recorded_at_backup_time() {
        let plan = parse(
            r#"
[drills.m]
components = ["db"]

[[drills.m.sql]]
label = "Patients"
query = "SELECT count(*) FROM patients"
recorded = "at_least"

[[drills.m.sql]]
label = "Checksum"
query = "SELECT md5(string_agg(id::text, ',')) FROM closed_months"
recorded = "equal"
"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let d = &plan.drills["m"];
        assert_eq!(d.sql[0].expect, Expectation::Recorded(RecordedRule::AtLeast));
        assert_eq!(d.sql[1].expect, Expectation::Recorded(RecordedRule::Equal));
        let Err(PlanError::Invalid(d)) = parse("[drills.m]\ncomponents = [\"db\"]\n[[drills.m.sql]]\nlabel = \"x\"\nquery = \"SELECT 1\"\nrecorded = \"more\"\n") else { panic!("accepted") };
        assert!(d.iter().any(|x| x.to_string().contains("recorded = \"more\" is not a rule") && x.fix.contains("at_least")), "{d:?}");
        let Err(PlanError::Invalid(d)) = parse("[drills.m]\ncomponents = [\"db\"]\n[[drills.m.sql]]\nlabel = \"x\"\nquery = \"SELECT 1\"\nrecorded = \"equal\"\nequals = 1\n") else { panic!("accepted") };
        assert!(d.iter().any(|x| x.to_string().contains("exactly one expectation")), "{d:?}");
    }

    #[test]
    fn cron_fields() {
        for good in ["0 3 1 * *", "*/15 * * * 1-5", "0 0,12 1 1,4,7,10 0"] {
            assert_eq!(check_cron(good), Ok(()), "{good}");
        }
        for bad in ["0 3 1 *", "60 * * * *", "* * 0 * *", "*/0 * * * *", "a * * * *"] {
            assert!(check_cron(bad).is_err(), "{bad} accepted");
        }
    }
}
