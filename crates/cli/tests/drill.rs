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
    backup_both(&env);
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

#[test]
fn a_drill_interrupted_by_sigint_removes_its_scratch_copy() {
    let Some(env) = setup(true) else { return };
    let scratch = env.path("scratch");
    medicapp(&env);
    add_drill(&env, &scratch);
    backup_both(&env);
    let mut child = Command::new(env!("CARGO_BIN_EXE_reprise"))
        .arg("--plan")
        .arg(&env.plan)
        .args(["drill", "run", "monthly"])
        .env("REPRISE_PASSWORD", "test-passphrase")
        .env("XDG_CACHE_HOME", env.path("cache"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Interrupted once the restored server runs from the scratch copy.
    let deadline = Instant::now() + Duration::from_secs(120);
    let started = loop {
        let running = left_in(&scratch).iter().any(|d| scratch.join(d).join(format!("{COMPONENT}.run")).exists());
        if running || Instant::now() > deadline {
            break running;
        }
        if child.try_wait().expect("wait").is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(started, "the drill never started its database in {}", scratch.display());
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the drill did not stop within 120 s of SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("stderr");
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(left_in(&scratch).is_empty(), "scratch left after SIGINT: {:?}", left_in(&scratch));
    assert_eq!(env.ok(&["drill", "list"]).trim(), "no drill record: run one with `reprise drill run NAME`", "an interrupted drill is not recorded");
}
