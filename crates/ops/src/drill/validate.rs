//! The checks a drill runs on what it restored, each timed, each a
//! [`Validation`] whatever happens: a check that cannot run is a failed
//! check with the reason, never an error that ends the drill (the scratch
//! copy must still be removed and the failure recorded).
//!
//! Paths the restored database returns are data, not trusted: a document
//! path is joined under the restored documents' root only if it stays
//! there (no `..`, not absolute), so a drill never reads outside its
//! scratch folder.

use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Component, Path, PathBuf};
use std::time::Instant;

use reprise_plan::drill::{DocumentCheck, Expectation, RecordedRule, SqlCheck};
use reprise_plan::{ComponentKind, DrillPlan};
use sha2::Digest as _;

use super::record::{Outcome, Phase, Validation};
use super::{RecordedAt, Restored, Scratch, ms};
use crate::workspace::Workspace;
use crate::{CancelToken, Observer};

/// How long one validation query may run on the scratch database.
const STATEMENT_TIMEOUT: &str = "30min";
/// At most this many paths are named in a failed document check.
const NAMED: usize = 5;

/// Runs every validation of `drill` on what was restored.
pub(super) fn all(ws: &Workspace, drill: &DrillPlan, restored: &Restored, scratch: &mut Scratch, observer: &dyn Observer, cancel: &CancelToken, phases: &mut Vec<Phase>) -> Vec<Validation> {
    let mut out = Vec::new();
    let mut timed = |out: &mut Vec<Validation>, component: Option<&str>, f: &mut dyn FnMut() -> Vec<Validation>| {
        if cancel.is_cancelled() {
            return;
        }
        let t = Instant::now();
        let mut found = f();
        let took = ms(t.elapsed());
        // A check yielding several lines shares its time among them.
        let each = took / found.len().max(1) as u64;
        for v in &mut found {
            v.ms = each;
            phases.push(Phase { phase: "validation".into(), component: component.map(str::to_owned), label: Some(v.label.clone()), ms: each });
        }
        out.extend(found);
    };
    for (component, i) in &restored.databases {
        let c = &scratch.clusters[*i];
        timed(&mut out, Some(component), &mut || vec![connection(ws, component, c)]);
    }
    for check in &drill.sql {
        let Some(c) = cluster_of(restored, scratch, &check.component) else { continue };
        let recorded = restored.recorded.iter().find(|r| r.component == check.component);
        timed(&mut out, Some(&check.component), &mut || vec![sql(ws, check, c, recorded)]);
    }
    for check in &drill.documents {
        let Some(c) = cluster_of(restored, scratch, &check.database_component) else { continue };
        let folder = restored.folders.iter().find(|(n, _)| *n == check.component).map(|(_, f)| f.clone());
        timed(&mut out, Some(&check.component), &mut || documents(ws, check, c, folder.as_deref()));
    }
    if drill.amcheck {
        for (component, i) in &restored.databases {
            let c = &scratch.clusters[*i];
            timed(&mut out, Some(component), &mut || vec![amcheck(c)]);
        }
    }
    if drill.read_data {
        timed(&mut out, None, &mut || vec![read_data(ws, restored, observer, cancel)]);
    }
    out
}

fn cluster_of<'a>(restored: &Restored, scratch: &'a Scratch, component: &str) -> Option<&'a reprise_postgres::cluster::Cluster> {
    restored.databases.iter().find(|(n, _)| n == component).map(|(_, i)| &scratch.clusters[*i])
}

fn validation(kind: &str, label: &str, outcome: Outcome, expected: Option<String>, measured: Option<String>, detail: Option<String>) -> Validation {
    Validation { kind: kind.to_owned(), label: label.to_owned(), outcome, expected, measured, detail, ms: 0 }
}

/// The database a check queries: its own, else the one of the component's
/// connection string, else `postgres`.
fn database(ws: &Workspace, component: &str, given: Option<&str>) -> String {
    if let Some(d) = given {
        return d.to_owned();
    }
    ws.component(component)
        .ok()
        .and_then(|c| match &c.kind {
            ComponentKind::Postgres(pg) => reprise_postgres::conn::config(&pg.connection, None).ok().and_then(|cfg| cfg.get_dbname().map(str::to_owned)),
            ComponentKind::Files => None,
        })
        .unwrap_or_else(|| "postgres".to_owned())
}

fn connect(c: &reprise_postgres::cluster::Cluster, db: &str) -> Result<postgres::Client, String> {
    let mut client = c.connect(db).map_err(|e| format!("cannot connect to database '{db}' of the restored server: {e}"))?;
    client.batch_execute(&format!("SET statement_timeout = '{STATEMENT_TIMEOUT}'")).map_err(|e| e.to_string())?;
    Ok(client)
}

fn connection(ws: &Workspace, component: &str, c: &reprise_postgres::cluster::Cluster) -> Validation {
    let db = database(ws, component, None);
    let label = "Connexion possible à la base";
    match connect(c, &db).and_then(|mut cl| cl.simple_query("SELECT 1").map_err(|e| e.to_string())) {
        Ok(_) => validation("connection", label, Outcome::Pass, None, Some(format!("{component}/{db}")), None),
        Err(e) => validation("connection", label, Outcome::Fail, None, None, Some(e)),
    }
}

/// The rows of a query as text (NULL as `None`).
fn rows(client: &mut postgres::Client, query: &str) -> Result<Vec<Vec<Option<String>>>, String> {
    let messages = client.simple_query(query).map_err(|e| match e.as_db_error() {
        Some(db) => format!("the query failed: {}", db.message()),
        None => format!("the query failed: {e}"),
    })?;
    Ok(messages
        .into_iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(r) => Some((0..r.len()).map(|i| r.get(i).map(str::to_owned)).collect()),
            _ => None,
        })
        .collect())
}

/// Whether `measured` meets `expect`; the measured value as shown.
fn judge(expect: Expectation, result: &[Vec<Option<String>>]) -> (bool, String) {
    if expect == Expectation::NoRows {
        return (result.is_empty(), format!("{} row(s)", result.len()));
    }
    let Some(text) = result.first().and_then(|r| r.first()).cloned().flatten() else {
        return (false, "no value (the query returned no row, or NULL)".to_owned());
    };
    let Ok(v) = text.trim().parse::<f64>() else { return (false, format!("'{text}' is not a number")) };
    let met = match expect {
        Expectation::Equals(e) => (v - e).abs() < f64::EPSILON * e.abs().max(1.0),
        Expectation::AtLeast(e) => v >= e,
        Expectation::Within { value, ratio } => (v - value).abs() <= value.abs() * ratio,
        Expectation::NoRows | Expectation::Recorded(_) => unreachable!("handled before"),
    };
    (met, text)
}

fn expected_text(expect: Expectation) -> String {
    match expect {
        Expectation::Equals(v) => format!("{v}"),
        Expectation::AtLeast(v) => format!("≥ {v}"),
        Expectation::Within { value, ratio } => format!("{value} ± {}%", ratio * 100.0),
        Expectation::NoRows => "0 row(s)".to_owned(),
        Expectation::Recorded(RecordedRule::AtLeast) => "≥ the value recorded at backup time".to_owned(),
        Expectation::Recorded(RecordedRule::Equal) => "= the value recorded at backup time".to_owned(),
    }
}

/// The fixed expectation a recorded check stands for: the value the
/// restored base backup recorded, under the check's rule; `Err` says why
/// there is nothing to compare with (a failed check, never a skipped one:
/// the plan asked for the comparison).
fn recorded_expectation(check: &SqlCheck, rule: RecordedRule, recorded: Option<&RecordedAt>) -> Result<(Baseline, String), String> {
    let Some(r) = recorded else { return Err(format!("'{}' was restored without a known base backup: nothing recorded to compare with", check.component)) };
    let values = r.values.as_ref().map_err(|e| format!("base backup {}: {e}", r.backup))?;
    let Some(v) = values.find(check.database.as_deref(), &check.query) else {
        return Err(format!("base backup {} recorded no value for this query (taken before the check was in the plan, or with another query): run `reprise backup {}` so the next drill has one", r.backup, check.component));
    };
    if let Some(e) = &v.error {
        return Err(format!("base backup {} could not record the value at backup time: {e}", r.backup));
    }
    let Some(text) = v.value.as_deref() else { return Err(format!("base backup {} recorded no value (no row, or NULL)", r.backup)) };
    // The recording precedes the backup's stop LSN, which every restore of
    // it replays past: a restore that did not is not comparable.
    match (v.lsn(), r.reached) {
        (Some(at), Some(reached)) if at <= reached => {}
        (at, reached) => {
            return Err(format!(
                "the restore ended at {}, not after the recording at {} by base backup {}: the values are not comparable",
                reached.map_or_else(|| "an unknown point".to_owned(), |l| l.to_string()),
                at.map_or_else(|| "an unknown point".to_owned(), |l| l.to_string()),
                r.backup
            ));
        }
    }
    let source = format!("recorded by base backup {} at {}", r.backup, v.time);
    match (rule, text.trim().parse::<f64>()) {
        (RecordedRule::AtLeast, Ok(n)) => Ok((Baseline::Number(Expectation::AtLeast(n)), format!("≥ {text} ({source})"))),
        (RecordedRule::Equal, Ok(n)) => Ok((Baseline::Number(Expectation::Equals(n)), format!("{text} ({source})"))),
        (RecordedRule::AtLeast, Err(_)) => Err(format!("base backup {} recorded '{text}', not a number: at_least compares numbers (use recorded = \"equal\")", r.backup)),
        // A checksum, a name: compared as text.
        (RecordedRule::Equal, Err(_)) => Ok((Baseline::Text(text.to_owned()), format!("{text} ({source})"))),
    }
}

/// What a recorded value becomes: a number to compare under the rule, or
/// a text that must come back unchanged.
enum Baseline {
    Number(Expectation),
    Text(String),
}

fn sql(ws: &Workspace, check: &SqlCheck, c: &reprise_postgres::cluster::Cluster, recorded: Option<&RecordedAt>) -> Validation {
    let db = database(ws, &check.component, check.database.as_deref());
    let mut expected = Some(expected_text(check.expect));
    let mut expect = check.expect;
    let mut equal_text = None;
    if let Expectation::Recorded(rule) = check.expect {
        match recorded_expectation(check, rule, recorded) {
            Ok((baseline, shown)) => {
                expected = Some(shown);
                match baseline {
                    Baseline::Number(e) => expect = e,
                    Baseline::Text(t) => equal_text = Some(t),
                }
            }
            Err(why) => return validation("sql", &check.label, Outcome::Fail, expected, None, Some(why)),
        }
    }
    match connect(c, &db).and_then(|mut client| rows(&mut client, &check.query)) {
        Ok(result) => {
            let (met, measured) = match &equal_text {
                Some(want) => {
                    let got = result.first().and_then(|r| r.first()).cloned().flatten();
                    (got.as_deref() == Some(want.as_str()), got.unwrap_or_else(|| "no value (the query returned no row, or NULL)".to_owned()))
                }
                None => judge(expect, &result),
            };
            validation("sql", &check.label, if met { Outcome::Pass } else { Outcome::Fail }, expected, Some(measured), None)
        }
        Err(e) => validation("sql", &check.label, Outcome::Fail, expected, None, Some(e)),
    }
}

/// `relative` joined under `root` if it stays there.
fn contained(root: &Path, relative: &str) -> Option<PathBuf> {
    let rel = Path::new(relative);
    rel.components().all(|c| matches!(c, Component::Normal(_))).then(|| root.join(rel))
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// The newest documents, then every document the database references:
/// each (path, sha256) must be in the restored documents with that hash.
fn documents(ws: &Workspace, check: &DocumentCheck, c: &reprise_postgres::cluster::Cluster, folder: Option<&Path>) -> Vec<Validation> {
    let newest_label = "Derniers documents présents";
    let fail_both = |why: String| vec![validation("documents-newest", newest_label, Outcome::Fail, None, None, Some(why.clone())), validation("documents-referenced", &check.label, Outcome::Fail, None, None, Some(why))];
    let Some(folder) = folder else { return fail_both(format!("'{}' was not restored", check.component)) };
    let root = folder.join(check.root.strip_prefix("/").unwrap_or(&check.root));
    let db = database(ws, &check.database_component, check.database.as_deref());
    let result = match connect(c, &db).and_then(|mut client| rows(&mut client, &check.query)) {
        Ok(r) => r,
        Err(e) => return fail_both(e),
    };
    let mut missing = Vec::new();
    let mut altered = Vec::new();
    let mut bad_rows = 0usize;
    let mut newest_ok = 0usize;
    let newest = (check.newest as usize).min(result.len());
    for (i, row) in result.iter().enumerate() {
        let (Some(Some(path)), Some(Some(hash))) = (row.first(), row.get(1)) else {
            bad_rows += 1;
            continue;
        };
        let ok = match contained(&root, path) {
            None => {
                bad_rows += 1;
                false
            }
            Some(file) => match sha256_file(&file) {
                Ok(h) if h.eq_ignore_ascii_case(hash.trim()) => true,
                Ok(_) => {
                    altered.push(path.clone());
                    false
                }
                Err(_) => {
                    missing.push(path.clone());
                    false
                }
            },
        };
        if ok && i < newest {
            newest_ok += 1;
        }
    }
    let intact = result.len() - missing.len() - altered.len() - bad_rows;
    let mut problems = Vec::new();
    let name = |list: &[String]| {
        let mut s = list.iter().take(NAMED).cloned().collect::<Vec<_>>().join(", ");
        if list.len() > NAMED {
            let _ = write!(s, " (+{})", list.len() - NAMED);
        }
        s
    };
    if !missing.is_empty() {
        problems.push(format!("{} missing: {}", missing.len(), name(&missing)));
    }
    if !altered.is_empty() {
        problems.push(format!("{} with another SHA-256 than the database records: {}", altered.len(), name(&altered)));
    }
    if bad_rows > 0 {
        problems.push(format!("{bad_rows} row(s) without a path and a hash, or with a path leaving the documents' folder"));
    }
    let detail = (!problems.is_empty()).then(|| problems.join("; "));
    let outcome = |ok: bool| if ok { Outcome::Pass } else { Outcome::Fail };
    let newest_v = validation(
        "documents-newest",
        newest_label,
        outcome(newest > 0 && newest_ok == newest),
        Some(newest.to_string()),
        Some(newest_ok.to_string()),
        (newest == 0).then(|| "the database references no document".to_owned()).or_else(|| (newest_ok < newest).then(|| detail.clone().unwrap_or_default())),
    );
    let all_v = validation("documents-referenced", &check.label, outcome(problems.is_empty() && !result.is_empty()), Some(result.len().to_string()), Some(intact.to_string()), detail);
    vec![newest_v, all_v]
}

fn amcheck(c: &reprise_postgres::cluster::Cluster) -> Validation {
    let label = "pg_amcheck (tables et index)";
    let mut cmd = match c.bin.command("pg_amcheck") {
        Ok(cmd) => cmd,
        Err(e) => return validation("amcheck", label, Outcome::Skipped, None, None, Some(e.to_string())),
    };
    let out = cmd
        .args(["--install-missing", "--heapallindexed", "--all", "-h"])
        .arg(&c.socket_dir)
        .args(["-p", &c.port.to_string(), "-U", "postgres"])
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => validation("amcheck", label, Outcome::Pass, Some("0".into()), Some("0".into()), None),
        Ok(o) => {
            let text = String::from_utf8_lossy(&o.stdout);
            let first = text.lines().chain(String::from_utf8_lossy(&o.stderr).lines()).find(|l| !l.trim().is_empty()).unwrap_or("").to_owned();
            let found = text.lines().filter(|l| l.starts_with("heap table") || l.starts_with("btree index")).count();
            validation("amcheck", label, Outcome::Fail, Some("0".into()), Some(found.to_string()), Some(first))
        }
        Err(e) => validation("amcheck", label, Outcome::Fail, None, None, Some(format!("cannot run pg_amcheck: {e}"))),
    }
}

/// A full read of the packs the restored snapshots use, per repository.
fn read_data(ws: &Workspace, restored: &Restored, observer: &dyn Observer, cancel: &CancelToken) -> Validation {
    let label = "Lecture complète des packs utilisés";
    let mut packs = 0usize;
    let mut bytes = 0u64;
    let mut problems: Vec<String> = Vec::new();
    for (component, snap) in &restored.snapshots {
        let repo = match ws.component(component).and_then(|c| ws.open(Some(c))) {
            Ok(r) => r,
            Err(e) => {
                problems.push(e.message().to_owned());
                continue;
            }
        };
        let progress = observer.phase("check");
        match reprise_engine::check::read_packs_of(&repo, &[*snap], cancel, progress.as_ref()) {
            Ok(r) => {
                packs += r.packs_read;
                bytes += r.bytes_read;
                problems.extend(r.problems.into_iter().map(|p| format!("{}: {}", p.object, p.message)));
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    let measured = Some(format!("{packs} pack(s), {bytes} bytes, {} problem(s)", problems.len()));
    let detail = problems.first().cloned();
    validation("read-data", label, if problems.is_empty() { Outcome::Pass } else { Outcome::Fail }, Some("0 problem(s)".into()), measured, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(v: &str) -> Vec<Vec<Option<String>>> {
        vec![vec![Some(v.to_owned())]]
    }

    #[test]
    fn expectations() {
        assert!(judge(Expectation::Equals(1000.0), &one("1000")).0);
        assert!(!judge(Expectation::Equals(1000.0), &one("999")).0);
        assert!(judge(Expectation::AtLeast(10.0), &one("10")).0);
        assert!(!judge(Expectation::AtLeast(10.0), &one("9.5")).0);
        assert!(judge(Expectation::Within { value: 100.0, ratio: 0.05 }, &one("104")).0);
        assert!(!judge(Expectation::Within { value: 100.0, ratio: 0.05 }, &one("106")).0);
        assert!(judge(Expectation::NoRows, &[]).0);
        assert!(!judge(Expectation::NoRows, &one("x")).0);
        assert!(!judge(Expectation::Equals(1.0), &[]).0, "no row is no value");
        assert!(!judge(Expectation::Equals(1.0), &one("abc")).0);
    }

    /// The bug this pins: a path from the restored database with `..`
    /// would make the drill hash files outside its scratch folder.
    #[test]
    fn document_paths_never_leave_the_restored_folder() {
        let root = Path::new("/scratch/docs/srv");
        assert_eq!(contained(root, "a/b.pdf"), Some(root.join("a/b.pdf")));
        for bad in ["../etc/passwd", "/etc/passwd", "a/../../b", "./a"] {
            assert_eq!(contained(root, bad), None, "{bad}");
        }
    }
}
