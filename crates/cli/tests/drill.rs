//! Restore drills, end to end: the demo's MedicApp database (a real
//! PostgreSQL 15 cluster archiving into the repository) and the signed
//! documents it points to, drilled as the plan says; then the same drill
//! after rows were deleted, a document lost and another altered; then a
//! drill interrupted with SIGINT. Each time the scratch copy must be gone,
//! and the report must say what was measured.
//!
//! The documents are real files whose SHA-256 the database records (as
//! MedicApp does for signed consents), computed by PostgreSQL itself
//! (`sha256()`), so the drill's comparison is checked against an
//! independent hash.

#![allow(clippy::duration_suboptimal_units, reason = "bounds in seconds read as the messages that state them")]

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::pg::{COMPONENT, Env, setup};

/// Documents kept in the database (the generator makes more; the rest are
/// removed so every referenced document exists on disk).
const DOCUMENTS: i64 = 60;
const PATIENTS: i64 = 1000;

fn docs_root(env: &Env) -> PathBuf {
    env.path("srv/medicapp")
}

/// Loads MedicApp at scale 1, keeps `DOCUMENTS` documents, writes each one
/// under the documents' folder and records its SHA-256 in the database.
fn medicapp(env: &Env) {
    env.sql(reprise_demo::medicapp::SCHEMA);
    env.sql(&reprise_demo::medicapp::data(1));
    env.sql(&format!(
        "DELETE FROM documents WHERE id > {DOCUMENTS}; \
         UPDATE documents SET sha256 = encode(sha256(convert_to('signed document ' || id, 'UTF8')), 'hex')"
    ));
    let mut client = env.client("postgres");
    for row in client.query("SELECT id, storage_path FROM documents", &[]).expect("documents") {
        let (id, path): (i64, String) = (row.get(0), row.get(1));
        let file = docs_root(env).join(&path);
        std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
        std::fs::write(&file, format!("signed document {id}")).expect("write document");
    }
}

/// The drill of the seed's monthly test, added to the test's plan.
fn add_drill(env: &Env, scratch: &Path) {
    let mut plan = std::fs::read_to_string(&env.plan).expect("plan");
    let _ = write!(
        plan,
        r#"
[components.{COMPONENT}.objectives]
rpo = "1h"
rto = "2h"

[components.docs]
type = "files"
paths = ["{docs}/legal_documents_signed"]

[components.docs.objectives]
rpo = "1h"
rto = "4h"

[tests.database]
components = ["{COMPONENT}"]
every = "1mo"

[drills.monthly]
components = ["{COMPONENT}", "docs"]
target = "latest"
scratch = "{scratch}"
schedule = "0 3 1 * *"
timezone = "Europe/Paris"
owner = "Dr Claire Martin"

[[drills.monthly.sql]]
label = "Nombre de patients correct"
query = "SELECT count(*) FROM patients"
equals = {PATIENTS}

[[drills.monthly.sql]]
label = "Prescriptions présentes"
query = "SELECT count(*) FROM prescriptions"
equals = 2000

[[drills.monthly.sql]]
label = "Patients au moins ceux de la sauvegarde"
query = "SELECT count(*) FROM patients"
recorded = "at_least"

[[drills.monthly.sql]]
label = "Journal d'audit identique à la sauvegarde"
query = "SELECT count(*) FROM audit_log"
recorded = "equal"

[[drills.monthly.sql]]
label = "Logs audit cohérents"
query = "SELECT id FROM audit_log WHERE at > now() + interval '1 day'"
no_rows = true

[[drills.monthly.documents]]
component = "docs"
query = "SELECT storage_path, sha256 FROM documents ORDER BY signed_at DESC, id"
root = "{docs}"
newest = 10
"#,
        docs = docs_root(env).display(),
        scratch = scratch.display()
    );
    std::fs::write(&env.plan, plan).expect("plan");
}

fn backup_both(env: &Env) {
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    env.ok(&["backup", "docs"]);
    env.archive_now();
}

/// What the scratch root holds (nothing, once a drill ended).
fn left_in(scratch: &Path) -> Vec<String> {
    std::fs::read_dir(scratch).map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

fn validation<'a>(run: &'a serde_json::Value, label: &str) -> &'a serde_json::Value {
    run["validations"].as_array().expect("validations").iter().find(|v| v["label"] == label).unwrap_or_else(|| panic!("no validation {label}: {run}"))
}

fn pdftotext(pdf: &Path) -> Option<String> {
    let out = Command::new("pdftotext").args(["-layout"]).arg(pdf).arg("-").output();
    match out {
        Ok(o) if o.status.success() => Some(String::from_utf8_lossy(&o.stdout).into_owned()),
        _ => {
            common::skip("pdftotext is not installed (poppler-utils; scripts/test-all installs it)");
            None
        }
    }
}

#[test]
fn a_drill_of_medicapp_passes_with_every_figure_filled_then_fails_on_missing_rows_and_documents() {
    let Some(env) = setup(true) else { return };
    let scratch = env.path("scratch");
    medicapp(&env);
    add_drill(&env, &scratch);
    backup_both(&env);

    // Bad input: one line naming the fix, its exit code, nothing restored.
    let out = env.reprise(&["drill", "run", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(3) && err.contains("drills: monthly") && err.lines().count() == 1, "{err}");
    let out = env.reprise(&["drill", "show", "latest", "--format", "docx"]);
    assert!(out.status.code() == Some(2) && String::from_utf8_lossy(&out.stderr).contains("choose md, html, pdf or json"));
    std::fs::write(env.path("taken.md"), "mine").expect("file");
    let out = env.reprise(&["drill", "run", "monthly", "-o", env.path("taken.md").to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!scratch.exists() || left_in(&scratch).is_empty(), "a refused drill restores nothing");
    assert_eq!(std::fs::read_to_string(env.path("taken.md")).expect("file"), "mine");

    // 1. The drill passes, every figure measured.
    let run = env.json(&["drill", "run", "monthly"]);
    assert_eq!(run["verdict"], "passed", "{run:#}");
    assert_eq!(run["schema"], "reprise.drill/1");
    let rto = run["rto_ms"].as_u64().expect("rto");
    // The measured figures, for whoever reads the test's output.
    eprintln!("drill: rto_ms {rto}, phases {}, components {}", run["phases"], run["components"]);
    assert!(rto > 0, "{run}");
    for phase in ["restore-files", "startup-consistent", "wal-replay", "validation", "cleanup"] {
        assert!(run["phases"].as_array().expect("phases").iter().any(|p| p["phase"] == phase), "no {phase} phase: {run:#}");
    }
    let patients = validation(&run, "Nombre de patients correct");
    assert_eq!((patients["outcome"].as_str(), patients["measured"].as_str(), patients["expected"].as_str()), (Some("pass"), Some("1000"), Some("1000")));
    // Compared with what the live database answered at backup time.
    let audit_rows = env.one("SELECT count(*)::text FROM audit_log");
    let at_least = validation(&run, "Patients au moins ceux de la sauvegarde");
    let equal = validation(&run, "Journal d'audit identique à la sauvegarde");
    assert_eq!((at_least["outcome"].as_str(), at_least["measured"].as_str()), (Some("pass"), Some("1000")), "{at_least}");
    assert!(at_least["expected"].as_str().is_some_and(|e| e.starts_with("≥ 1000 (recorded by base backup ")), "{at_least}");
    assert_eq!((equal["outcome"].as_str(), equal["measured"].as_str()), (Some("pass"), Some(audit_rows.as_str())), "{equal}");
    assert!(equal["expected"].as_str().is_some_and(|e| e.starts_with(&format!("{audit_rows} (recorded by base backup "))), "{equal}");
    let referenced = validation(&run, "Documents référencés présents");
    assert_eq!((referenced["outcome"].as_str(), referenced["expected"].as_str(), referenced["measured"].as_str()), (Some("pass"), Some("60"), Some("60")), "{run:#}");
    assert_eq!(validation(&run, "Derniers documents présents")["measured"], "10");
    for kind in ["amcheck", "read-data", "connection"] {
        let v = run["validations"].as_array().expect("v").iter().find(|v| v["kind"] == kind).unwrap_or_else(|| panic!("no {kind}: {run:#}"));
        assert_eq!(v["outcome"], "pass", "{v}");
    }
    for c in run["components"].as_array().expect("components") {
        assert!(c["data_loss_ms"].is_u64() && c["last_restored"].is_string() && c["ready_after_ms"].is_u64(), "{c}");
    }
    let objectives = run["objectives"].as_array().expect("objectives");
    assert_eq!(objectives.len(), 4, "rto and rpo of both components: {run:#}");
    assert!(objectives.iter().all(|o| o["met"] == true), "{run:#}");
    assert_eq!(run["scratch"]["removed"], true);
    assert!(!Path::new(run["scratch"]["path"].as_str().expect("path")).exists());
    assert!(left_in(&scratch).is_empty(), "scratch left: {:?}", left_in(&scratch));
    let id = run["id"].as_str().expect("id").to_owned();

    // The record is in the ledger, by its ID.
    let ledger = env.json(&["ledger", "show"]);
    let entries = ledger.as_array().cloned().or_else(|| ledger["entries"].as_array().cloned()).expect("entries");
    assert!(entries.iter().any(|e| e["operation"] == "drill" && e["refs"]["record"] == id.as_str() && e["result"] == "ok"), "{ledger:#}");

    // `copy` carries the record off-site, once: the copy's `drill list`
    // shows it, a second copy finds it there.
    let mut plan = std::fs::read_to_string(&env.plan).expect("plan");
    let _ = write!(plan, "\n[repositories.offsite]\nurl = \"{}\"\ncopy_of = \"main\"\n", env.path("offsite").display());
    std::fs::write(&env.plan, plan).expect("plan");
    let copied = env.json(&["copy"]);
    assert_eq!((copied[0]["drills_copied"].as_u64(), copied[0]["drills_present"].as_u64()), (Some(1), Some(0)), "{copied:#}");
    let record = env.path("offsite").join("drills").join(&id);
    assert!(record.is_file(), "no {}", record.display());
    let listed = env.ok(&["--repo", "offsite", "drill", "list"]);
    assert!(listed.contains(&id[..8]) && listed.contains("passed"), "{listed}");
    let on_copy = env.json(&["--repo", "offsite", "drill", "show", &id, "--format", "json"]);
    assert_eq!((on_copy["id"].as_str(), on_copy["rto_ms"].as_u64()), (Some(id.as_str()), Some(rto)));
    let again = env.json(&["copy"]);
    assert_eq!((again[0]["drills_copied"].as_u64(), again[0]["drills_present"].as_u64()), (Some(0), Some(1)), "{again:#}");

    // The reports, rendered from the stored record.
    let md = env.ok(&["drill", "show", &id[..12], "--format", "md"]);
    for want in ["Nombre de patients correct (attendu : 1000, réel : 1000)", "SUCCÈS - RTO respecté (0h", "\\< 2h00min)", "Derniers documents présents", "Rapport de test (PRA §10.4)", "Dr Claire Martin", "Supprimer serveur de test"] {
        assert!(md.contains(want), "the Markdown report lacks {want:?}:\n{md}");
    }
    let en = env.ok(&["drill", "show", "monthly", "--format", "md", "--lang", "en"]);
    assert!(en.contains("SUCCESS - RTO met") && en.contains("(expected: 1000, actual: 1000)"), "{en}");
    let json = env.json(&["drill", "show", &id, "--format", "json"]);
    assert_eq!((json["id"].as_str(), json["rto_ms"].as_u64()), (Some(id.as_str()), Some(rto)));
    let html_path = env.path("report.html");
    env.ok(&["drill", "show", &id, "--format", "html", "-o", html_path.to_str().expect("utf8")]);
    let html = std::fs::read_to_string(&html_path).expect("html");
    assert!(html.contains("<svg") && html.contains("Historique des tests"), "the HTML report has the RTO chart");
    let pdf = env.path("report.pdf");
    env.ok(&["drill", "show", &id, "--format", "pdf", "-o", pdf.to_str().expect("utf8")]);
    if let Some(text) = pdftotext(&pdf) {
        for want in ["attendu : 1000", "réel : 1000", "RTO respecté", "< 2h00min", "Signature"] {
            assert!(text.contains(want), "the PDF lacks {want:?}:\n{text}");
        }
    }
    let again = env.reprise(&["drill", "show", &id, "--format", "html", "-o", html_path.to_str().expect("utf8")]);
    assert_eq!(again.status.code(), Some(2), "a report is never written over a file");

    // The plan reads the same record: render cites it, lint counts it.
    assert!(!lint_codes(&env).iter().any(|c| c.starts_with("drill-")), "a passed drill this month satisfies the monthly test: {:?}", lint_codes(&env));
    let plan_path = env.path("PRA.md");
    env.reprise(&["plan", "render", "-o", plan_path.to_str().expect("utf8")]);
    let plan_md = std::fs::read_to_string(&plan_path).expect("plan render writes the plan even when lint finds something");
    assert!(plan_md.contains(&format!("monthly ({})", &id[..8])) && !plan_md.contains("aucun exercice enregistré"), "the rendered plan cites the drill:\n{plan_md}");

    // 2. Rows deleted, a document lost, another altered: the drill fails,
    // says which, exits 11, and still removes its copy.
    env.sql("DELETE FROM prescriptions WHERE id <= 5");
    let mut client = env.client("postgres");
    let paths: Vec<String> = client.query("SELECT storage_path FROM documents ORDER BY id LIMIT 2", &[]).expect("paths").iter().map(|r| r.get(0)).collect();
    drop(client);
    std::fs::remove_file(docs_root(&env).join(&paths[0])).expect("lose a document");
    std::fs::write(docs_root(&env).join(&paths[1]), "forged").expect("alter a document");
    // A recorded check whose query fails at backup time: the backup goes
    // on, warns, and records the error the drill then reports.
    let mut plan = std::fs::read_to_string(&env.plan).expect("plan");
    plan.push_str("\n[[drills.monthly.sql]]\nlabel = \"Table disparue\"\nquery = \"SELECT count(*) FROM no_such_table\"\nrecorded = \"at_least\"\n");
    std::fs::write(&env.plan, plan).expect("plan");
    env.archive_now();
    let backup = env.reprise(&["backup", COMPONENT]);
    let warned = String::from_utf8_lossy(&backup.stderr);
    assert!(backup.status.success() && warned.contains("could not be recorded at backup time") && warned.contains("no_such_table"), "{warned}");
    env.ok(&["backup", "docs"]);
    // Written after the backup recorded its count: a latest restore has one
    // row more than recorded, which "equal" must catch and "at_least" allow.
    env.sql("INSERT INTO audit_log (actor, action) VALUES ('drill-test', 'after the backup')");
    env.archive_now();
    let written = env.path("failed.md");
    let out = env.reprise(&["--json", "drill", "run", "monthly", "-o", written.to_str().expect("utf8")]);
    assert!(std::fs::read_to_string(&written).expect("the failed drill's report is written too").contains("ÉCHEC - Raison"));
    assert_eq!(out.status.code(), Some(11), "a failed drill exits 11: {}", String::from_utf8_lossy(&out.stderr));
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(failed["verdict"], "failed");
    let prescriptions = validation(&failed, "Prescriptions présentes");
    assert_eq!((prescriptions["outcome"].as_str(), prescriptions["measured"].as_str()), (Some("fail"), Some("1995")));
    let docs = validation(&failed, "Documents référencés présents");
    let detail = docs["detail"].as_str().expect("detail");
    assert_eq!(docs["outcome"], "fail");
    assert!(detail.contains(&format!("1 missing: {}", paths[0])) && detail.contains(&format!("1 with another SHA-256 than the database records: {}", paths[1])), "{detail}");
    assert_eq!(validation(&failed, "Nombre de patients correct")["outcome"], "pass", "only what is wrong fails");
    assert_eq!(validation(&failed, "Patients au moins ceux de la sauvegarde")["outcome"], "pass", "{failed:#}");
    let equal = validation(&failed, "Journal d'audit identique à la sauvegarde");
    let recorded_rows: u64 = equal["expected"].as_str().and_then(|e| e.split(' ').next()).and_then(|n| n.parse().ok()).expect("recorded count");
    assert_eq!((equal["outcome"].as_str(), equal["measured"].as_str()), (Some("fail"), Some((recorded_rows + 1).to_string().as_str())), "{equal}");
    let gone = validation(&failed, "Table disparue");
    assert!(gone["outcome"] == "fail" && gone["detail"].as_str().is_some_and(|d| d.contains("could not record the value at backup time") && d.contains("no_such_table")), "{gone}");
    assert_eq!(failed["scratch"]["removed"], true);
    assert!(left_in(&scratch).is_empty(), "scratch left after a failed drill: {:?}", left_in(&scratch));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Prescriptions présentes") && stderr.lines().filter(|l| l.starts_with("reprise:")).count() == 1, "{stderr}");

    let history = env.ok(&["drill", "history", "monthly"]);
    assert_eq!(history.lines().count(), 2, "{history}");
    assert!(history.lines().next().is_some_and(|l| l.contains("passed")) && history.lines().nth(1).is_some_and(|l| l.contains("FAILED")), "{history}");
    let md = env.ok(&["drill", "show", "latest"]);
    assert!(md.contains("ÉCHEC - Raison") && md.contains("1995"), "{md}");
    assert!(lint_codes(&env).iter().any(|c| c == "drill-failed"), "plan lint names the failed drill: {:?}", lint_codes(&env));
}

/// The codes `plan lint --json` reports (it exits 12 or 13 when it finds any).
fn lint_codes(env: &Env) -> Vec<String> {
    let out = env.reprise(&["--json", "plan", "lint"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan lint --json: {e}: {}", String::from_utf8_lossy(&out.stderr)));
    report["findings"].as_array().expect("findings").iter().filter_map(|f| f["code"].as_str().map(str::to_owned)).collect()
}

/// `drill run monthly` in the background, stderr piped.
fn spawn_drill(env: &Env) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("--plan")
        .arg(&env.plan)
        .args(["drill", "run", "monthly"])
        .env("REPRISE_PASSWORD", "test-passphrase")
        .env("XDG_CACHE_HOME", env.path("cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// Waits until the drill's restored server runs from its scratch copy.
fn wait_running(child: &mut std::process::Child, scratch: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = loop {
        let running = left_in(scratch).iter().any(|d| scratch.join(d).join(format!("{COMPONENT}.run")).exists());
        if running || Instant::now() > deadline {
            break running;
        }
        if child.try_wait().expect("wait").is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(started, "the drill never started its database in {}", scratch.display());
}

fn signal(child: &std::process::Child, sig: &str) {
    let kill = Command::new("kill").args([sig, &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
}

/// Waits (at most 120 s) for the drill to exit; its status and stderr.
fn finish(mut child: std::process::Child) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the drill did not stop within 120 s of the signal");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    (status, stderr)
}

/// One cluster for the three ways a drill ends early: Ctrl-C, Ctrl-C twice
/// (the second exits at once, without destructors), SIGKILL (nothing of
/// the process runs; the next drill must clean up after it).
#[test]
fn a_drill_interrupted_by_sigint_removes_its_scratch_copy() {
    let Some(env) = setup(true) else { return };
    let scratch = env.path("scratch");
    medicapp(&env);
    add_drill(&env, &scratch);
    backup_both(&env);

    let mut child = spawn_drill(&env);
    wait_running(&mut child, &scratch);
    signal(&child, "-INT");
    let (status, stderr) = finish(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(left_in(&scratch).is_empty(), "scratch left after SIGINT: {:?}", left_in(&scratch));
    assert_eq!(env.ok(&["drill", "list"]).trim(), "no drill record: run one with `reprise drill run NAME`", "an interrupted drill is not recorded");

    // The bug this pins: a second Ctrl-C exited at once, leaving the
    // restored copy (health data) behind.
    let mut child = spawn_drill(&env);
    wait_running(&mut child, &scratch);
    signal(&child, "-INT");
    signal(&child, "-INT");
    let (status, stderr) = finish(child);
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(left_in(&scratch).is_empty(), "scratch left after two SIGINTs: {:?}\n{stderr}", left_in(&scratch));

    // A drill killed outright leaves its copy, its server maybe running;
    // the next drill stops that server, removes the copy and says so.
    let mut child = spawn_drill(&env);
    wait_running(&mut child, &scratch);
    let killed = child.id();
    signal(&child, "-KILL");
    let (status, _) = finish(child);
    assert_eq!(status.code(), None, "killed by a signal");
    let left = left_in(&scratch);
    assert_eq!(left.len(), 1, "a killed drill leaves its copy: {left:?}");
    let out = env.reprise(&["--json", "drill", "run", "monthly"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("removed {}, the scratch copy of a drill (process {killed}) that was killed", scratch.join(&left[0]).display())), "{stderr}");
    let run: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(run["leftovers"].as_array().map(Vec::len), Some(1), "the record says it too: {run:#}");
    assert!(left_in(&scratch).is_empty(), "scratch left: {:?}", left_in(&scratch));
}

fn at(v: &serde_json::Value) -> jiff::Timestamp {
    v.as_str().and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("not a time: {v}"))
}

/// Point-in-time targets restore a point within the reach and the record
/// says which; a drill that cannot restore (a component never backed up)
/// is recorded as failed and says why; a scratch folder that cannot be
/// made is refused before anything is restored; a corrupt index fails
/// `pg_amcheck`. One cluster for all (each drill costs a restore).
#[test]
fn drill_targets_restore_within_the_reach_and_failures_are_recorded() {
    let Some(env) = setup(true) else { return };
    let scratch = env.path("scratch");
    medicapp(&env);
    // An index nothing else reads, corrupted at the end.
    env.sql("CREATE TABLE amcheck_probe (id int PRIMARY KEY, v text); INSERT INTO amcheck_probe SELECT g, 'v' || g FROM generate_series(1, 5000) g; CHECKPOINT");
    let mut plan = std::fs::read_to_string(&env.plan).expect("plan");
    let one = |name: &str, target: &str, extra: &str| {
        format!(
            "\n[drills.{name}]\ncomponents = [\"{COMPONENT}\"{extra}]\ntarget = \"{target}\"\nscratch = \"{}\"\nread_data = false\namcheck = {}\n\n[[drills.{name}.sql]]\nlabel = \"Patients\"\nquery = \"SELECT count(*) FROM patients\"\nequals = {PATIENTS}\n",
            if name == "unwritable" { "/proc/reprise-drill-scratch".to_owned() } else { scratch.display().to_string() },
            name == "amcheck"
        )
    };
    let _ = write!(plan, "\n[components.never]\ntype = \"files\"\npaths = [\"{}\"]\n", env.path("never").display());
    let _ = write!(
        plan,
        "\n[components.packdocs]\ntype = \"files\"\npaths = [\"{}\"]\n\n[drills.packread]\ncomponents = [\"packdocs\"]\nscratch = \"{}\"\n",
        env.path("packdocs").display(),
        scratch.display()
    );
    for (name, target, extra) in [("random", "random:7d", ""), ("offset", "offset:2s", ""), ("amcheck", "latest", ""), ("unrestorable", "latest", ", \"never\""), ("unwritable", "latest", "")] {
        plan.push_str(&one(name, target, extra));
    }
    std::fs::write(&env.plan, plan).expect("plan");
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    // Four seconds of commits, every 100 ms, archived up to the last one:
    // the WAL history the targets land in.
    for _ in 0..40 {
        env.sql("INSERT INTO audit_log (actor, action) VALUES ('ticker', 'tick')");
        std::thread::sleep(Duration::from_millis(100));
    }
    env.sql("INSERT INTO audit_log (actor, action) VALUES ('ticker', 'last')");
    env.archive_now();
    let last_tick: jiff::Timestamp = env.one("SELECT to_char(max(at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM audit_log WHERE actor = 'ticker'").parse().expect("time");

    // offset:2s, first (the target must fall before the last archived
    // commit): exactly two seconds before the drill started, restored to
    // the last commit before it (commits every 100 ms: less than 1 s lost).
    let run = env.json(&["drill", "run", "offset"]);
    assert_eq!((run["verdict"].as_str(), run["target"].as_str()), (Some("passed"), Some("2s ago")), "{run:#}");
    let (target, started) = (at(&run["target_time"]), at(&run["started"]));
    assert_eq!((started - target).get_milliseconds() + (started - target).get_seconds() * 1000, 2000, "{run:#}");
    let db = &run["components"][0];
    let last = at(&db["last_restored"]);
    let loss = db["data_loss_ms"].as_u64().expect("data loss");
    assert!(last <= target && loss < 1000, "offset: target {target}, last restored {last}, loss {loss} ms");
    eprintln!("offset: target {target}, last restored {last}, data_loss_ms {loss}");

    // random:7d: a point between the base backup and the last archived
    // commit (never after what the archive holds).
    let run = env.json(&["drill", "run", "random"]);
    assert_eq!((run["verdict"].as_str(), run["target"].as_str()), (Some("passed"), Some("random within 1w")), "{run:#}");
    let db = &run["components"][0];
    let (target, base, last) = (at(&run["target_time"]), at(&db["snapshot_time"]), at(&db["last_restored"]));
    assert!(base <= target && target <= last_tick, "random target {target} outside the reach {base} .. {last_tick}");
    assert!(last <= target, "restored past the target: last commit {last}, target {target}");
    eprintln!("random: target {target}, last restored {last}, reach {base} .. {last_tick}, data_loss_ms {}", db["data_loss_ms"]);

    // A component never backed up: recorded as failed, with why, exit 11,
    // no scratch left.
    let out = env.reprise(&["--json", "drill", "run", "unrestorable"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let why = failed["failure"].as_str().expect("failure");
    assert!(why.contains("no snapshot of 'never'") && why.contains("reprise backup never"), "{why}");
    assert!(stderr.lines().filter(|l| l.starts_with("reprise:")).count() == 1 && stderr.contains("no snapshot of 'never'"), "{stderr}");
    assert_eq!(failed["scratch"]["removed"], true);
    assert!(left_in(&scratch).is_empty(), "scratch left: {:?}", left_in(&scratch));
    assert!(env.ok(&["drill", "history", "unrestorable"]).contains("FAILED"), "the failed drill is recorded");

    // A scratch folder that cannot be made: bad input, one line naming the
    // fix, exit 2, nothing restored, nothing recorded.
    let out = env.reprise(&["drill", "run", "unwritable"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.code() == Some(2) && stderr.lines().count() == 1 && stderr.contains("set [drills.unwritable] scratch to a writable folder"), "{stderr}");
    let history = env.ok(&["drill", "history", "unwritable"]);
    assert!(history.contains("has no record yet"), "nothing recorded: {history}");

    // A pack the restore used, damaged where the restore does not read:
    // the restore succeeds, the read of the packs it used fails the drill.
    // `keep.txt` is stored once, in the first backup's data pack, beside
    // the first version of `change.bin` (16 KiB); the second backup stores
    // a new `change.bin` and reuses `keep.txt`'s blob from that pack.
    // Damage a third into the pack lands in the old `change.bin`, which
    // the restore never reads.
    let folder = env.path("packdocs");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(folder.join("keep.txt"), "kept from the first backup").expect("write");
    let noise = |seed: u64| -> Vec<u8> {
        let mut x = seed;
        (0..16 << 10).map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()[0]
        }).collect()
    };
    std::fs::write(folder.join("change.bin"), noise(1)).expect("write");
    let packs = || common::pg::walk(&env.repo.join("data")).into_iter().filter(|p| p.is_file()).collect::<std::collections::BTreeSet<_>>();
    let before = packs();
    // One worker: both files' blobs in one data pack (parallel workers
    // may each fill their own).
    env.ok(&["backup", "packdocs", "--threads", "1"]);
    let first: Vec<PathBuf> = packs().difference(&before).cloned().collect();
    assert_eq!(first.len(), 2, "the first backup writes a tree pack and one data pack: {first:?}");
    std::fs::write(folder.join("change.bin"), noise(2)).expect("write");
    env.ok(&["backup", "packdocs"]);
    // Its largest pack is the data pack (the other holds the trees).
    let old = first.iter().max_by_key(|p| std::fs::metadata(p).map_or(0, |m| m.len())).expect("the first backup wrote a pack");
    let mut bytes = std::fs::read(old).expect("pack");
    let third = bytes.len() / 3;
    bytes[third] ^= 0xff;
    std::fs::write(old, &bytes).expect("damage the pack");
    let out = env.reprise(&["--json", "drill", "run", "packread"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(failed["failure"].is_null(), "the restore itself worked: {failed:#}");
    let read = failed["validations"].as_array().expect("validations").iter().find(|v| v["kind"] == "read-data").expect("read-data ran");
    let pack_name = old.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(read["outcome"] == "fail" && read["detail"].as_str().is_some_and(|d| d.contains(pack_name)), "{read}");
    eprintln!("read-data: {read}");
    assert!(left_in(&scratch).is_empty(), "scratch left: {:?}", left_in(&scratch));

    // A btree index corrupted on disk before the backup: the restore works,
    // `pg_amcheck` finds it, the drill fails naming it.
    let file = env.cluster().data_dir.join(env.one("SELECT pg_relation_filepath('amcheck_probe_pkey')"));
    let mut bytes = std::fs::read(&file).expect("index file");
    assert!(bytes.len() >= 3 * 8192, "the index has leaf pages");
    bytes[8192 + 4096..8192 + 4096 + 512].fill(0x7f);
    std::fs::write(&file, &bytes).expect("corrupt the index");
    env.ok(&["backup", COMPONENT]);
    env.archive_now();
    let out = env.reprise(&["--json", "drill", "run", "amcheck"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(11), "{stderr}");
    let failed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let check = failed["validations"].as_array().expect("validations").iter().find(|v| v["kind"] == "amcheck").expect("amcheck ran");
    assert_eq!(check["outcome"], "fail", "{check}");
    assert!(check["detail"].as_str().is_some_and(|d| d.contains("amcheck_probe_pkey")), "{check}");
    eprintln!("amcheck: {check}");
    assert!(stderr.contains("pg_amcheck"), "{stderr}");
    assert_eq!(validation(&failed, "Patients")["outcome"], "pass", "only the index is wrong");
    assert!(left_in(&scratch).is_empty(), "scratch left: {:?}", left_in(&scratch));
}
