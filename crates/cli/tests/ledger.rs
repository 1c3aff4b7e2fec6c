//! The evidence ledger through the real binary: every sensitive command
//! leaves an entry; `ledger verify` (and the independent Python verifier,
//! `tools/ledger/reprise_ledger.py`, written from docs/FORMAT.md) names
//! each kind of tampering where it was done; `kill -9` during appends
//! loses no acknowledged entry; processes appending at once lose none;
//! hosts holding only write credentials cannot remove or rewrite entries
//! (S3, moto with IAM); proofs check offline; bad input gets one line and
//! a documented exit code, and changes nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::emulators;
use common::*;
use serde_json::Value;

const USAGE: i32 = 2;
const NOT_FOUND: i32 = 3;
const AUTH: i32 = 4;
const DAMAGED: i32 = 6;

/// A repository and a witness directory, with the witness set for every
/// command (as `REPRISE_LEDGER_WITNESS`).
struct Site {
    t: TestDir,
    r: Reprise,
    witness: PathBuf,
}

fn site(name: &str) -> Site {
    let t = TestDir::new(name);
    let witness = t.join("witness");
    let r = Reprise::new(t.path()).with_env("REPRISE_LEDGER_WITNESS", witness.as_os_str().to_owned());
    r.init();
    r.run(&["ledger", "witness-init", witness.to_str().unwrap()]).ok();
    Site { t, r, witness }
}

fn note(r: &Reprise, text: &str) -> Value {
    r.run(&["--json", "ledger", "note", text]).ok().json()
}

/// This location's own ledger ID (`ledger/site`).
fn own_ledger(repo: &Path) -> String {
    let site: Value = serde_json::from_slice(&fs::read(repo.join("ledger/site")).unwrap()).unwrap();
    site["ledger"].as_str().unwrap().to_owned()
}

fn record(repo: &Path, i: u64) -> PathBuf {
    repo.join("ledger").join(own_ledger(repo)).join("records").join(format!("{i:020}"))
}

fn witnessed(witness: &Path, ledger: &str, size: u64) -> PathBuf {
    witness.join("ledger").join(ledger).join("checkpoints").join(format!("{size:020}"))
}

fn writable(path: &Path) {
    fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
}

fn flip(path: &Path, offset: usize) {
    writable(path);
    let mut b = fs::read(path).unwrap();
    b[offset] ^= 0x01;
    fs::write(path, b).unwrap();
}

/// `ledger verify --json`: the exit code and the report.
fn verify(r: &Reprise) -> (i32, Value) {
    let out = r.run(&["--json", "ledger", "verify"]);
    assert!(matches!(out.code, 0 | DAMAGED), "{}", out.describe());
    (out.code, out.json())
}

/// (kind, first, last) of every finding of every ledger.
fn findings(report: &Value) -> BTreeSet<(String, u64, u64)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["ledgers"].as_array().unwrap().iter().flat_map(|l| l["findings"].as_array().unwrap().iter()))
        .map(|f| (f["kind"].as_str().unwrap().to_owned(), f["first"].as_u64().unwrap(), f["last"].as_u64().unwrap()))
        .collect()
}

fn tampering(set: &BTreeSet<(String, u64, u64)>) -> BTreeSet<(String, u64, u64)> {
    set.iter().filter(|(k, _, _)| k != "unwitnessed" && k != "elsewhere").cloned().collect()
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------
// The independent verifier
// ---------------------------------------------------------------------------

fn python() -> Option<String> {
    let py = std::env::var("REPRISE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    match Command::new(&py).args(["-c", "import cryptography, cbor2, blake3"]).output() {
        Ok(o) if o.status.success() => Some(py),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or_default().to_owned(),
                Err(e) => e.to_string(),
            };
            skip(&format!("{py} cannot run the independent ledger verifier ({why}); scripts/test-all prepares a venv with tools/ledger/requirements.txt"));
            None
        }
    }
}

fn tool() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/ledger/reprise_ledger.py")
}

/// `reprise_ledger.py verify --json`: exit code and report.
fn python_verify(py: &str, repo: &Path, witness: &Path, key_file: &Path) -> (i32, Value) {
    let out = Command::new(py)
        .arg(tool())
        .args(["verify", repo.to_str().unwrap(), "--witness", witness.to_str().unwrap(), "--key-file", key_file.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert!(matches!(code, 0 | 1), "reprise_ledger.py failed: {}", String::from_utf8_lossy(&out.stderr));
    (code, serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout))))
}

fn python_findings(report: &Value) -> BTreeSet<(String, u64, u64)> {
    report["findings"].as_array().unwrap().iter().map(|f| (f["kind"].as_str().unwrap().to_owned(), f["first"].as_u64().unwrap(), f["last"].as_u64().unwrap())).collect()
}

// ---------------------------------------------------------------------------
// Every sensitive command is recorded
// ---------------------------------------------------------------------------

/// A plan with a primary, a copy of it, and one component with a
/// retention policy that keeps one snapshot.
fn plan(t: &TestDir, src: &Path) -> PathBuf {
    let plan = t.join("reprise.toml");
    fs::write(
        &plan,
        format!(
            r#"[repositories.primary]
url = "{primary}"
password_env = "REPRISE_PASSWORD"

[repositories.secondary]
url = "{secondary}"
password_env = "REPRISE_PASSWORD"
copy_of = "primary"

[ledger]
witness = "{witness}"

[components.records]
type = "files"
repository = "primary"
paths = ["{src}"]
[components.records.objectives]
retention = {{ keep_last = 1 }}
"#,
            primary = t.join("primary").display(),
            secondary = t.join("secondary").display(),
            witness = t.join("witness").display(),
            src = src.display(),
        ),
    )
    .unwrap();
    plan
}

#[test]
fn every_sensitive_command_leaves_an_entry_and_a_copy_carries_them() {
    let t = TestDir::new("ledger-commands");
    // A distinctive name that must never reach the ledger.
    let src = t.join("src/PATIENT-dossier-7731");
    write_file(&src.join("consent-JEAN-DUPONT.pdf"), &Rng::new(1).bytes(50_000));
    let plan = plan(&t, &src);
    let on = |repo: &str| Reprise::at(t.path(), PathBuf::from(repo)).with_env("REPRISE_PLAN", plan.as_os_str().to_owned());
    let primary = on("primary");
    fs::create_dir_all(t.join("witness")).unwrap();
    primary.run(&["ledger", "witness-init", t.join("witness").to_str().unwrap()]).ok();
    primary.init();
    let b1 = id_of(&primary.backup(&["records"]));
    write_file(&src.join("note.txt"), b"second version");
    let b2 = id_of(&primary.backup(&["records"]));
    primary.restore(&b2, &t.join("restored"), &[] as &[&str]).ok();
    let hold = primary.run(&["--json", "hold", "add", &b2, "--reason", "case 2026-17"]).ok().json()["hold"].as_str().unwrap().to_owned();
    primary.run(&["hold", "remove", &hold]).ok();
    primary.run(&["forget", "records"]).ok();
    primary.run(&["prune", "--grace", "0"]).ok();
    let wo = primary.with_env("REPRISE_NEW_PASSWORD", "write only").run(&["--json", "key", "add", "--write-only", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok().json();
    let wo = wo["added"].as_str().unwrap().to_owned();
    primary.run(&["key", "list"]).ok();
    primary.run(&["key", "remove", &wo]).ok();
    primary.with_env("REPRISE_NEW_PASSWORD", PASSWORD).run(&["key", "passwd", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    primary.run(&["key", "export-recovery", "-o", t.join("recovery.key").to_str().unwrap()]).ok();
    primary.run(&["key", "add", "--write-only", "--credential", t.join("host.credential").to_str().unwrap()]).ok();
    primary.check(&["--read-data"]).ok();
    primary.run(&["repair", "marks"]).ok();
    primary.run(&["repair", "index", "--dry-run"]).ok();
    primary.run(&["snapshots"]).ok();
    primary.run(&["copy"]).ok();

    let shown = primary.run(&["--json", "ledger", "show"]).ok().json();
    let entries = shown["entries"].as_array().unwrap();
    let ops: Vec<&str> = entries.iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "init", "backup", "backup", "restore", "hold-add", "hold-remove", "forget", "prune", "key-add", "key-remove", "key-passphrase",
            "key-export-recovery", "key-add", "check", "repair", "copy"
        ],
        "listing snapshots or keys records nothing; everything else once"
    );
    let by_op = |op: &str| entries.iter().filter(move |e| e["operation"] == op).collect::<Vec<_>>();
    assert_eq!(by_op("backup")[0]["snapshots"], serde_json::json!([b1]));
    assert_eq!(by_op("backup")[1]["snapshots"], serde_json::json!([b2]));
    assert_eq!(by_op("backup")[0]["component"], "records");
    assert_eq!(by_op("restore")[0]["snapshots"], serde_json::json!([b2]));
    assert_eq!(by_op("hold-add")[0]["reason"], "case 2026-17");
    assert_eq!(by_op("hold-add")[0]["refs"]["hold"], hold.as_str());
    assert_eq!(by_op("forget")[0]["snapshots"], serde_json::json!([b1]), "forget names the snapshot it removed");
    assert_eq!(by_op("key-remove")[0]["refs"]["key"], wo.as_str());
    assert_eq!(by_op("check")[0]["result"], "ok");
    assert_eq!(by_op("check")[0]["refs"]["read_data"], "all");
    assert_eq!(by_op("repair")[0]["refs"]["what"], "marks");
    assert_eq!(by_op("copy")[0]["refs"]["destination"], "secondary");
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e["index"], i as u64);
        assert!(!e["user"].as_str().unwrap().is_empty() && !e["host"].as_str().unwrap().is_empty(), "{e}");
    }
    // No patient data: neither the tree's names in what the ledger says,
    // nor anything readable in its objects.
    assert!(!shown.to_string().contains("JEAN-DUPONT") && !shown.to_string().contains("PATIENT-dossier"), "{shown}");
    assert!(files_containing(&t.join("primary/ledger"), b"case 2026-17").is_empty(), "a reason is stored in clear");
    assert!(files_containing(&t.join("witness"), b"case 2026-17").is_empty());

    let (code, report) = verify(&primary);
    assert_eq!(code, 0, "{report:#}");
    let own = &report["ledgers"][0];
    assert_eq!((own["size"].as_u64(), own["signatures"].as_u64(), own["witnessed_size"].as_u64()), (Some(16), Some(16), Some(16)), "{report}");

    // The copy holds the primary's ledger, verified, as another site's.
    let secondary = on("secondary");
    let (code, report) = verify(&secondary);
    assert_eq!(code, 0, "{report}");
    let ledgers = report["ledgers"].as_array().unwrap();
    assert_eq!(ledgers.len(), 1, "{report}");
    assert_eq!((ledgers[0]["own"].as_bool(), ledgers[0]["size"].as_u64()), (Some(false), Some(16)), "{report}");
    // Operations on the copy go to the copy's own ledger; the next copy
    // brings the primary's new entries without touching it.
    secondary.run(&["forget", "records"]).ok();
    primary.run(&["ledger", "note", "drill of 2026-11 signed off"]).ok();
    primary.run(&["copy"]).ok();
    let (code, report) = verify(&secondary);
    assert_eq!(code, 0, "{report}");
    let sizes: BTreeMap<bool, u64> = report["ledgers"].as_array().unwrap().iter().map(|l| (l["own"].as_bool().unwrap(), l["size"].as_u64().unwrap())).collect();
    assert_eq!(sizes, BTreeMap::from([(true, 1), (false, 18)]), "{report}");
    let (code, report) = verify(&primary);
    assert_eq!(code, 0, "{report:#}");
}

// ---------------------------------------------------------------------------
// Tampering
// ---------------------------------------------------------------------------

/// Damage done to a copy of a repository and its witness (repository,
/// witness, a runner on them).
type Tamper = Box<dyn Fn(&Path, &Path, &Reprise)>;
/// What is done, how, and the findings (kind, first, last) it must cause.
type Case = (&'static str, Tamper, Vec<(&'static str, u64, u64)>);

/// Each tampering of a witnessed ledger of 10 entries, on a copy of it:
/// `ledger verify` exits 6 and names the kind and the entries, and the
/// independent verifier finds the same.
#[test]
fn verify_names_every_tampering_and_the_independent_verifier_agrees() {
    let base = site("ledger-tamper");
    base.r.run(&["key", "export-recovery", "-o", base.t.join("recovery.key").to_str().unwrap()]).ok();
    for i in 1..9 {
        note(&base.r, &format!("entry {i}"));
    }
    let ledger = own_ledger(&base.r.repo);
    let py = python();
    let (code, clean) = verify(&base.r);
    assert_eq!(code, 0, "{clean}");
    assert_eq!(clean["ledgers"][0]["size"], 10, "init, the recovery key's export, 8 notes: {clean}");
    assert!(findings(&clean).is_empty(), "{clean}");
    if let Some(py) = &py {
        let (code, report) = python_verify(py, &base.r.repo, &base.witness, &base.t.join("recovery.key"));
        assert_eq!(code, 0, "{report}");
        assert!(python_findings(&report).is_empty(), "{report}");
        assert_eq!(report["ledgers"][0]["root"], clean["ledgers"][0]["root"], "both verifiers recompute the same root");
    }

    let entry_offset = 8 + 4 + 20; // inside the sealed entry
    let size_line = |repo: &Path, i: u64| {
        // The size line of the record's checkpoint: after the origin line.
        let b = fs::read(record(repo, i)).unwrap();
        8 + 4 + u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize + 4 + "reprise-ledger/".len() + 32 + 1
    };
    let cases: Vec<Case> = vec![
        ("flip a byte of entry 3", Box::new(move |repo, _, _| flip(&record(repo, 3), entry_offset)), vec![("altered", 3, 3)]),
        ("flip the size in the checkpoint of entry 5", Box::new(move |repo, _, _| flip(&record(repo, 5), size_line(repo, 5))), vec![("altered", 5, 5)]),
        (
            "truncate the record of entry 2",
            Box::new(|repo, _, _| {
                let p = record(repo, 2);
                writable(&p);
                let b = fs::read(&p).unwrap();
                fs::write(&p, &b[..b.len() / 2]).unwrap();
            }),
            vec![("altered", 2, 2)],
        ),
        ("delete entry 4", Box::new(|repo, _, _| fs::remove_file(record(repo, 4)).unwrap()), vec![("removed", 4, 4)]),
        (
            "swap entries 1 and 6",
            Box::new(|repo, _, _| {
                let (a, b) = (record(repo, 1), record(repo, 6));
                let tmp = repo.join("tmp/swap");
                fs::rename(&a, &tmp).unwrap();
                fs::rename(&b, &a).unwrap();
                fs::rename(&tmp, &b).unwrap();
            }),
            vec![("reordered", 1, 1), ("reordered", 6, 6)],
        ),
        (
            "truncate the log: delete entries 8 and 9",
            Box::new(|repo, _, _| {
                fs::remove_file(record(repo, 9)).unwrap();
                fs::remove_file(record(repo, 8)).unwrap();
            }),
            vec![("truncated", 8, 9)],
        ),
        (
            "flip a byte of the witnessed checkpoint of size 3",
            Box::new({
                let ledger = ledger.clone();
                move |_, w, _| flip(&witnessed(w, &ledger, 3), 60)
            }),
            vec![("altered", 0, 2)],
        ),
        (
            "swap the witnessed checkpoints of sizes 2 and 4",
            Box::new({
                let ledger = ledger.clone();
                move |_, w, _| {
                    let (a, b) = (witnessed(w, &ledger, 2), witnessed(w, &ledger, 4));
                    let tmp = w.join("swap");
                    fs::rename(&a, &tmp).unwrap();
                    fs::rename(&b, &a).unwrap();
                    fs::rename(&tmp, &b).unwrap();
                }
            }),
            vec![("reordered", 0, 1), ("reordered", 0, 3)],
        ),
        (
            "rewrite history from entry 3 after it was witnessed (a key holder re-appends)",
            Box::new(|repo, _, r| {
                for i in 3..10 {
                    fs::remove_file(record(repo, i)).unwrap();
                }
                for i in 3..10 {
                    let out = r.run(&["ledger", "note", &format!("forged {i}")]).ok();
                    assert!(out.stderr.contains("holds another checkpoint for size"), "the appender must warn of the fork: {}", out.describe());
                }
            }),
            vec![("forked", 3, 3)],
        ),
        (
            "remove the whole ledger",
            Box::new(|repo, _, _| {
                let ledger = own_ledger(repo);
                fs::remove_dir_all(repo.join("ledger").join(ledger)).unwrap();
            }),
            vec![("truncated", 0, 9)],
        ),
    ];
    for (what, tamper, expected) in &cases {
        let dir = base.t.join(format!("case-{}", what.replace(' ', "-")));
        let (repo, witness) = (dir.join("repo"), dir.join("witness"));
        copy_dir(&base.r.repo, &repo);
        copy_dir(&base.witness, &witness);
        let r = Reprise::at(base.t.path(), repo.clone()).with_env("REPRISE_LEDGER_WITNESS", witness.as_os_str().to_owned()).with_cache(dir.join("cache"));
        tamper(&repo, &witness, &r);
        let expected: BTreeSet<(String, u64, u64)> = expected.iter().map(|(k, a, b)| ((*k).to_owned(), *a, *b)).collect();
        let (code, report) = verify(&r);
        assert_eq!(code, DAMAGED, "{what}: {report}");
        let found = tampering(&findings(&report));
        assert!(expected.is_subset(&found), "{what}: expected {expected:?}, found {found:?}: {report}");
        // Every finding carries the object and a message naming the entries.
        for f in report["ledgers"].as_array().unwrap().iter().flat_map(|l| l["findings"].as_array().unwrap()) {
            assert!(!f["object"].as_str().unwrap().is_empty() && !f["message"].as_str().unwrap().is_empty(), "{f}");
        }
        eprintln!("{what}: {found:?}");
        if let Some(py) = &py {
            let (code, report) = python_verify(py, &repo, &witness, &base.t.join("recovery.key"));
            assert_eq!(code, 1, "{what}: the independent verifier must fail: {report}");
            let found = tampering(&python_findings(&report));
            assert!(expected.is_subset(&found), "{what}: the independent verifier: expected {expected:?}, found {found:?}: {report}");
        }
    }

    // A witnessed checkpoint deleted is a gap, not tampering (a witness
    // write may have failed): named, exit 0.
    let dir = base.t.join("case-witness-gap");
    copy_dir(&base.r.repo, &dir.join("repo"));
    copy_dir(&base.witness, &dir.join("witness"));
    fs::remove_file(witnessed(&dir.join("witness"), &ledger, 4)).unwrap();
    let r = Reprise::at(base.t.path(), dir.join("repo")).with_env("REPRISE_LEDGER_WITNESS", dir.join("witness").as_os_str().to_owned());
    let (code, report) = verify(&r);
    assert_eq!(code, 0, "{report}");
    let notes: Vec<&str> = report["ledgers"][0]["findings"].as_array().unwrap().iter().map(|f| f["message"].as_str().unwrap()).collect();
    assert!(notes.iter().any(|m| m.contains("lacks 1 of the checkpoints")), "{notes:?}");
}

// ---------------------------------------------------------------------------
// Crashes and concurrency
// ---------------------------------------------------------------------------

/// `kill -9` of appenders at random moments: every acknowledged entry is
/// in the log at the position its receipt gave, the log verifies, and the
/// next append goes on. Trials run until kills have landed both before an
/// entry was stored and after (so both sides of the write were hit), at
/// most 120.
#[test]
fn kill_9_during_appends_loses_no_acknowledged_entry() {
    let s = site("ledger-kill");
    let mut rng = Rng::new(std::env::var("REPRISE_CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x01ED_6E12));
    // Calibration: how long one append takes from spawn to exit.
    let started = Instant::now();
    for i in 0..3 {
        note(&s.r, &format!("calibration {i}"));
    }
    let typical = started.elapsed() / 3;
    let mut acknowledged: Vec<(u64, String)> = Vec::new();
    let mut killed: Vec<String> = Vec::new();
    let (mut before, mut after) = (0, 0);
    #[allow(clippy::duration_suboptimal_units, reason = "Duration::from_mins needs Rust 1.91; the workspace supports 1.85")]
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut trial = 0;
    while trial < 120 && Instant::now() < deadline && (trial < 30 || before == 0 || after == 0) {
        let text = format!("trial {trial}");
        let (mut child, line) = s.r.spawn(&["--json", "ledger", "note", &text]);
        let delay = Duration::from_micros(rng.below(typical.as_micros() as u64 * 12 / 10 + 1));
        std::thread::sleep(delay);
        let _ = child.kill();
        let out = wait_output(child, line, Instant::now(), COMMAND_TIMEOUT);
        assert!(out.code == 0 || out.code == -1, "an append either finishes or is killed, never fails: {}", out.describe());
        if out.code == 0 {
            acknowledged.push((out.json()["index"].as_u64().unwrap(), text));
        } else {
            killed.push(text.clone());
            let shown = s.r.run(&["--json", "ledger", "show"]).ok().json();
            if shown["entries"].as_array().unwrap().iter().any(|e| e["reason"] == text.as_str()) {
                after += 1;
            } else {
                before += 1;
            }
        }
        trial += 1;
    }
    eprintln!("kill -9 of appends: {trial} trials, {} acknowledged, {} killed ({before} before their entry was stored, {after} after)", acknowledged.len(), killed.len());
    assert!(before > 0 && after > 0, "the kills must land on both sides of the write ({before} before, {after} after)");
    let (code, report) = verify(&s.r);
    assert_eq!(code, 0, "{report}");
    assert!(tampering(&findings(&report)).is_empty(), "{report}");
    let entries = s.r.run(&["--json", "ledger", "show"]).ok().json()["entries"].as_array().unwrap().clone();
    for (index, text) in &acknowledged {
        assert_eq!(entries[*index as usize]["reason"], text.as_str(), "acknowledged entry {index} ({text})");
    }
    let next = note(&s.r, "after the kills");
    assert_eq!(next["index"].as_u64().unwrap() as usize, entries.len());
    assert_eq!(next["witness"]["status"], "witnessed");
}

/// Four processes appending ten entries each at the same time: forty
/// positions, no entry lost, every checkpoint witnessed, the log verifies.
#[test]
fn concurrent_appends_from_several_processes() {
    let s = site("ledger-concurrent");
    let receipts: Vec<(u64, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|p| {
                let r = s.r.with_cache(s.t.join(format!("cache-{p}")));
                scope.spawn(move || (0..10).map(|i| {
                    let text = format!("process {p} entry {i}");
                    (note(&r, &text)["index"].as_u64().unwrap(), text)
                }).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let positions: BTreeSet<u64> = receipts.iter().map(|(i, _)| *i).collect();
    assert_eq!(positions, (1..=40).collect(), "40 distinct positions after the init entry");
    let entries = s.r.run(&["--json", "ledger", "show"]).ok().json()["entries"].as_array().unwrap().clone();
    for (index, text) in &receipts {
        assert_eq!(entries[*index as usize]["reason"], text.as_str());
    }
    let (code, report) = verify(&s.r);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ledgers"][0]["witnessed_size"], 41, "{report}");
    assert!(findings(&report).is_empty(), "{report}");
}

// ---------------------------------------------------------------------------
// Write-only hosts
// ---------------------------------------------------------------------------

/// A production host holding only a write credential and an S3 identity
/// allowed to read, list and create (moto, IAM enforced, versioned bucket
/// with Object Lock): it appends (backups, notes) to the ledger and to the
/// witness, and every attempt to delete its entries or checkpoints is
/// refused. moto accepts plain overwrites (it evaluates no If-None-Match
/// condition; AWS with the policy of docs/STORAGE.md refuses them), so the
/// test also shows that `ledger verify` names each overwritten entry and
/// checkpoint, and that the operator's versions put everything back.
#[test]
fn write_only_hosts_append_but_cannot_remove_or_rewrite_entries() {
    let work = TestDir::new("ledger-s3");
    let Some(s3) = emulators::moto_iam(work.path()) else { return };
    let v: Value = serde_json::from_str(&emulators::s3_roles("setup", &s3, "prod", "1", None)).unwrap();
    let keys = |who: &str| (v[who]["id"].as_str().unwrap().to_owned(), v[who]["secret"].as_str().unwrap().to_owned());
    let (operator, producer) = (keys("operator"), keys("producer"));
    let repo_url = emulators::s3_url(&s3, "prod", "repo");
    let witness_url = emulators::s3_url(&s3, "prod", "witness");
    let with = |keys: &(String, String)| {
        Reprise::at(work.path(), PathBuf::from(&repo_url))
            .with_env("AWS_ACCESS_KEY_ID", &keys.0)
            .with_env("AWS_SECRET_ACCESS_KEY", &keys.1)
            .with_env("REPRISE_LEDGER_WITNESS", &witness_url)
    };
    let admin = with(&operator);
    admin.init();
    admin.run(&["ledger", "witness-init", &witness_url]).ok();
    let cred = work.join("write.credential");
    admin.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap()]).ok();
    let host = with(&producer).without_password().with_env("REPRISE_KEY_FILE", cred.as_os_str().to_owned()).with_cache(work.join("host-cache"));
    let src = work.join("src");
    write_file(&src.join("a.bin"), &Rng::new(3).bytes(20_000));
    host.backup_paths(&[&src]);
    for i in 0..3 {
        let receipt = note(&host, &format!("host note {i}"));
        assert_eq!(receipt["witness"]["status"], "witnessed", "{receipt}");
    }
    let (code, clean) = verify(&admin);
    assert_eq!(code, 0, "{clean}");
    let size = clean["ledgers"][0]["size"].as_u64().unwrap();
    assert_eq!(size, 6, "init, write credential, backup, three notes: {clean}");

    // The host is taken over: every destructive request on every ledger
    // object of the repository and of the witness.
    let mut tried = 0;
    let mut overwritten: BTreeSet<String> = BTreeSet::new();
    // The witness marker is its owner's; the host attacks the checkpoints.
    let ledger_id = clean["ledgers"][0]["ledger"].as_str().unwrap().to_owned();
    for prefix in ["repo/ledger/".to_owned(), format!("witness/ledger/{ledger_id}/")] {
        for line in emulators::s3_roles("attack", &s3, "prod", &prefix, Some((&producer.0, &producer.1))).lines() {
            let a: Value = serde_json::from_str(line).unwrap();
            let kind = a["kind"].as_str().unwrap();
            if kind == "listing" {
                assert!(a["keys"].as_array().unwrap().len() as u64 >= size, "the host sees the ledger: {line}");
                continue;
            }
            if kind.starts_with("control:") {
                // The second pass finds the first pass's probe object there.
                let again = prefix.starts_with("witness/") && a["error"] == "PreconditionFailed";
                assert!(a["outcome"] == "accepted" || again, "the host's keys work (so refusals are the permissions): {line}");
                continue;
            }
            let key = a["key"].as_str().unwrap_or_default();
            if !key.contains("ledger/") {
                continue;
            }
            tried += 1;
            // Refused by the permissions (403 AccessDenied) or by the
            // create-only condition (412); never by an emulator failure.
            if kind.contains("delete") || kind.contains("If-None-Match") {
                let (status, error) = (a["status"].as_i64().unwrap(), a["error"].as_str().unwrap_or_default());
                assert!(a["outcome"] == "error" && matches!((status, error), (403 | 200, "AccessDenied") | (412, "PreconditionFailed")), "{line}");
            }
            if kind == "overwrite (plain PutObject)" && a["outcome"] == "accepted" {
                overwritten.insert(key.to_owned());
            }
        }
    }
    assert!(tried >= 8 * 2 * (size as usize), "attempts on every ledger object: {tried}");
    eprintln!("{tried} attempts on ledger objects; {} plain overwrites accepted by moto (versions kept)", overwritten.len());
    if !overwritten.is_empty() {
        // Each overwritten entry and checkpoint is named.
        let out = admin.run(&["--json", "ledger", "verify"]);
        assert_eq!(out.code, DAMAGED, "{}", out.describe());
        let report = out.json();
        let named: BTreeSet<String> = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .chain(report["ledgers"].as_array().unwrap().iter().flat_map(|l| l["findings"].as_array().unwrap()))
            .map(|f| f["object"].as_str().unwrap().to_owned())
            .collect();
        for key in &overwritten {
            let tail = &key[key.find("ledger/").unwrap()..];
            assert!(named.iter().any(|o| o.ends_with(tail)), "{key} not named in {named:?}");
        }
        for prefix in ["repo/", "witness/"] {
            emulators::s3_roles("undo-overwrites", &s3, "prod", prefix, Some((&operator.0, &operator.1)));
        }
    }
    let (code, report) = verify(&admin);
    assert_eq!(code, 0, "{report}");
    assert_eq!((report["ledgers"][0]["size"].as_u64(), report["ledgers"][0]["witnessed_size"].as_u64()), (Some(size), Some(size)), "{report}");
}

// ---------------------------------------------------------------------------
// Proofs, bad input
// ---------------------------------------------------------------------------

#[test]
fn proofs_check_offline_and_fail_when_altered() {
    let s = site("ledger-proof");
    for i in 1..12 {
        note(&s.r, &format!("entry {i}"));
    }
    let key = verify(&s.r).1["trusted_keys"][0].as_str().unwrap().to_owned();
    let proof = s.t.join("proof.json");
    s.r.run(&["ledger", "proof", "5", "--from-size", "3", "-o", proof.to_str().unwrap()]).ok();
    let doc: Value = serde_json::from_slice(&fs::read(&proof).unwrap()).unwrap();
    assert_eq!((doc["index"].as_u64(), doc["tree_size"].as_u64()), (Some(5), Some(12)));
    assert_eq!(doc["decoded"]["reason"], "entry 5");
    assert_eq!(doc["witness"], s.witness.to_str().unwrap());
    // Checked with no repository at all.
    let offline = Reprise::at(s.t.path(), s.t.join("nowhere")).without_password();
    let ok = offline.run(&["--json", "ledger", "check-proof", proof.to_str().unwrap(), "--key", &key]).ok().json();
    assert_eq!((ok["entry"]["index"].as_u64(), ok["consistent_with"].as_u64()), (Some(5), Some(3)), "{ok}");
    let py = python();
    let py_check = |file: &Path| {
        let out = Command::new(py.as_ref().unwrap()).arg(tool()).args(["check-proof", file.to_str().unwrap(), "--verifier-key", &key]).output().unwrap();
        out.status.code().unwrap()
    };
    if py.is_some() {
        assert_eq!(py_check(&proof), 0);
    }
    // Altered: another entry's bytes, another position, another root.
    let other = s.r.run(&["ledger", "proof", "6"]).ok().json();
    let alterations: Vec<(&str, Value)> = vec![
        ("entry 6 passed off as entry 5", { let mut d = doc.clone(); d["entry"] = other["entry"].clone(); d }),
        ("another position", { let mut d = doc.clone(); d["index"] = 4.into(); d }),
        ("a hash of the path", { let mut d = doc.clone(); d["inclusion"][0] = other["inclusion"][1].clone(); d }),
        ("the consistency proof", { let mut d = doc.clone(); d["consistency"]["old_root"] = doc["inclusion"][0].clone(); d }),
    ];
    for (what, d) in alterations {
        let f = s.t.join("altered.json");
        fs::write(&f, d.to_string()).unwrap();
        let out = offline.run(&["ledger", "check-proof", f.to_str().unwrap(), "--key", &key]);
        assert_eq!(out.code, DAMAGED, "{what}: {}", out.describe());
        out.assert_one_line_error();
        if py.is_some() {
            assert_eq!(py_check(&f), 1, "{what}: the independent checker must refuse it");
        }
        fs::remove_file(&f).unwrap();
    }
}

/// A well-formed verifier key that signed nothing here (C2SP form, made
/// with ring: docs/FORMAT.md section 17.4).
fn stranger_key() -> String {
    use base64::Engine as _;
    let name = "reprise-ledger/stranger";
    let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
    let public = [&[1u8][..], ring::signature::KeyPair::public_key(&pair).as_ref()].concat();
    let id = ring::digest::digest(&ring::digest::SHA256, &[name.as_bytes(), b"\n", &public].concat());
    let hex = id.as_ref()[..4].iter().fold(String::new(), |mut s, b| {
        let _ = std::fmt::Write::write_fmt(&mut s, format_args!("{b:02x}"));
        s
    });
    format!("{name}+{hex}+{}", base64::engine::general_purpose::STANDARD.encode(public))
}

#[test]
fn bad_input_gets_one_line_a_documented_code_and_changes_nothing() {
    let s = site("ledger-bad-input");
    for i in 1..4 {
        note(&s.r, &format!("entry {i}"));
    }
    let key = verify(&s.r).1["trusted_keys"][0].as_str().unwrap().to_owned();
    let proof = s.t.join("proof.json");
    s.r.run(&["ledger", "proof", "2", "-o", proof.to_str().unwrap()]).ok();
    let stranger = stranger_key();
    let stranger = stranger.as_str();
    let before = (repo_listing(&s.r.repo), repo_listing(&s.witness));
    let missing = s.t.join("no-such-witness");
    let config = s.r.repo.join("config");
    let not_a_witness = s.t.join("empty-dir");
    fs::create_dir_all(&not_a_witness).unwrap();
    let cases: Vec<(&str, Reprise, Vec<&str>, i32, &str)> = vec![
        ("unknown entry", s.r.clone(), vec!["ledger", "proof", "99"], NOT_FOUND, "no entry 99"),
        ("not an entry", s.r.clone(), vec!["ledger", "proof", "latest"], USAGE, "is not an entry"),
        ("unknown ledger", s.r.clone(), vec!["ledger", "show", "--ledger", "ffff"], NOT_FOUND, "no ledger ffff"),
        ("bad --since", s.r.clone(), vec!["ledger", "show", "--since", "last tuesday"], USAGE, "--since"),
        ("empty note", s.r.clone(), vec!["ledger", "note", " "], USAGE, "the note is empty"),
        ("wrong key (valid, another)", s.r.clone(), vec!["ledger", "verify", "--key", stranger], AUTH, "--key"),
        ("wrong key (not a key)", s.r.clone(), vec!["ledger", "verify", "--key", "garbage"], AUTH, "not a verifier key"),
        ("proof checked with the wrong key", s.r.clone(), vec!["ledger", "check-proof", proof.to_str().unwrap(), "--key", stranger], AUTH, "not by a key given"),
        ("missing witness", s.r.with_env("REPRISE_LEDGER_WITNESS", missing.as_os_str().to_owned()), vec!["ledger", "verify"], NOT_FOUND, "witness-init"),
        ("not a witness", s.r.with_env("REPRISE_LEDGER_WITNESS", not_a_witness.as_os_str().to_owned()), vec!["ledger", "verify"], NOT_FOUND, "no ledger witness at"),
        ("missing proof file", s.r.clone(), vec!["ledger", "check-proof", "/nonexistent/proof.json", "--key", &key], NOT_FOUND, "cannot read"),
        ("not a proof", s.r.clone(), vec!["ledger", "check-proof", config.to_str().unwrap(), "--key", &key], USAGE, "not a ledger proof"),
    ];
    for (what, r, args, code, says) in cases {
        let out = r.run(&args);
        assert_eq!(out.code, code, "{what}: {}", out.describe());
        out.assert_one_line_error();
        assert!(out.stderr.contains(says), "{what}: the message must say '{says}': {}", out.stderr);
        let out = r.run(&[&["--json"][..], &args[..]].concat());
        assert_eq!(out.code, code, "{what} (--json): {}", out.describe());
        assert_eq!(out.json()["error"]["exit_code"], code, "{what}: {}", out.stdout);
    }
    assert!(!missing.exists(), "a missing witness is never created");
    assert_eq!((repo_listing(&s.r.repo), repo_listing(&s.witness)), before, "bad input changed nothing");

    // An append whose witness is missing is recorded, with a warning: the
    // operation happened, and the next append with the witness catches up.
    let out = s.r.with_env("REPRISE_LEDGER_WITNESS", missing.as_os_str().to_owned()).run(&["ledger", "note", "while the witness is away"]).ok();
    assert!(out.stderr.contains("witness") && out.stderr.contains("recorded in the repository only"), "{}", out.describe());
    let receipt = note(&s.r, "back");
    assert_eq!(receipt["witness"]["status"], "witnessed");
    let (code, report) = verify(&s.r);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ledgers"][0]["witnessed_size"], 6, "the missed checkpoint was sent again: {report}");
}

/// A restore (or a check) by a host that may only read the repository (a
/// restore host, read-only media) completes, exits 0, and says on one line
/// that it is not recorded; a backup, which writes anyway, is never let off.
#[test]
fn a_restore_with_read_only_access_completes_and_says_it_is_not_recorded() {
    const NOBODY: u32 = 65534;
    let s = site("ledger-read-only");
    let src = s.t.join("src");
    write_file(&src.join("a.txt"), b"restored without a ledger entry\n");
    let id = id_of(&s.r.backup_paths(&[&src]));
    let before = repo_listing(&s.r.repo);
    fs::set_permissions(s.t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let as_reader = |args: &[std::ffi::OsString], target: &Path| -> Out {
        let (mut c, line) = s.r.with_cache(s.t.join("reader-cache")).command(args);
        fs::create_dir_all(target).unwrap();
        fs::create_dir_all(s.t.join("reader-cache")).unwrap();
        if is_root() {
            use std::os::unix::process::CommandExt;
            // Root writes anywhere: the reader runs as `nobody`.
            std::os::unix::fs::chown(target, Some(NOBODY), Some(NOBODY)).unwrap();
            std::os::unix::fs::chown(s.t.join("reader-cache"), Some(NOBODY), Some(NOBODY)).unwrap();
            c.uid(NOBODY).gid(NOBODY);
        }
        let child = c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        wait_output(child, line, Instant::now(), COMMAND_TIMEOUT)
    };
    if !is_root() {
        for d in walk_dirs(&s.r.repo) {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o555)).unwrap();
        }
    }
    let target = s.t.join("restored");
    let out = as_reader(&["restore".into(), snap_path(&id, &src).into(), "--to".into(), target.clone().into()], &target);
    assert_eq!(out.code, 0, "{}", out.describe());
    assert_eq!(fs::read(target.join("a.txt")).unwrap(), b"restored without a ledger entry\n");
    assert!(out.stderr.contains("is not recorded in the ledger: nothing may be written"), "{}", out.describe());
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.describe());
    assert_eq!(repo_listing(&s.r.repo), before, "nothing was written");
    if !is_root() {
        for d in walk_dirs(&s.r.repo) {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

fn walk_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        for e in fs::read_dir(&out[i]).unwrap().flatten() {
            if e.file_type().unwrap().is_dir() {
                out.push(e.path());
            }
        }
        i += 1;
    }
    out
}


/// The bug: format 2 brought `key revoke` and `key upgrade`, and neither
/// left an entry, though revoking a stolen host's key is the most
/// sensitive key operation there is. Now both are recorded; and a format 1
/// repository gets no ledger object before its upgrade (nothing is
/// written to it until then), its restores completing unrecorded.
#[test]
fn format_2_key_operations_are_recorded() {
    let t = TestDir::new("ledger-format-2-keys");
    let repo = t.join("repo");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v1");
    assert!(Command::new("cp").arg("-r").arg(fixture.join("repo")).arg(&repo).status().unwrap().success());
    for d in ["keys", "snapshots", "index", "holds", "prune", "tmp", "wal"] {
        fs::create_dir_all(repo.join(d)).unwrap();
    }
    for i in 0..=255u8 {
        fs::create_dir_all(repo.join("data").join(format!("{i:02x}"))).unwrap();
    }
    let r = Reprise::at(t.path(), repo.clone()).with_password("fixture-passphrase");
    let first = r.snapshots()[0]["id"].as_str().unwrap().to_owned();
    let out = r.restore(&first, &t.join("before-upgrade"), &[] as &[&str]).ok();
    assert!(out.stderr.contains("is not recorded in the ledger"), "{}", out.describe());
    assert!(!repo.join("ledger").exists(), "a ledger object was written to a format 1 repository");

    r.run(&["key", "upgrade"]).ok();
    let cred = t.join("host.credential");
    let issued = r.run(&["--json", "key", "add", "--write-only", "--credential", cred.to_str().unwrap()]).ok().json();
    let key_id = issued["key_id"].as_str().unwrap().to_owned();
    r.run(&["key", "revoke", &key_id, "--reason", "laptop stolen"]).ok();

    let shown = r.run(&["--json", "ledger", "show"]).ok().json();
    let entries = shown["entries"].as_array().unwrap();
    let ops: Vec<&str> = entries.iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(ops, ["key-upgrade", "key-add", "key-revoke"], "{shown}");
    assert_eq!(entries[0]["counts"]["legacy_snapshots"], 2, "{shown}");
    assert_eq!(entries[1]["refs"]["key_id"], key_id.as_str(), "{shown}");
    assert_eq!(entries[2]["refs"]["key_id"], key_id.as_str(), "{shown}");
    assert_eq!(entries[2]["reason"], "laptop stolen", "{shown}");
    let (code, report) = verify(&r);
    assert_eq!(code, 0, "{report:#}");
}

/// The bug: every key can derive the ledger key, so a stolen production
/// host's credential could go on appending entries after its revocation,
/// and nothing told them from genuine ones. Each append is now co-signed
/// by the appending key itself: `ledger verify` (and the independent
/// verifier) name the revoked writer's later entry as forged, and nothing
/// else (docs/FORMAT.md 17.8).
#[test]
fn a_revoked_writers_later_appends_are_forged_and_both_verifiers_say_so() {
    let s = site("ledger-revoked-writer");
    let cred = s.t.join("host.credential");
    let issued = s.r.run(&["--json", "key", "add", "--write-only", "--credential", cred.to_str().unwrap()]).ok().json();
    let key_id = issued["key_id"].as_str().unwrap().to_owned();
    let host = s.r.without_password().with_env("REPRISE_KEY_FILE", cred.as_os_str().to_owned()).with_cache(s.t.join("host-cache"));
    let src = s.t.join("src");
    write_file(&src.join("a.txt"), b"ward 3\n");
    host.backup_paths(&[&src]);
    note(&host, "shift handover");
    let (code, report) = verify(&s.r);
    assert_eq!(code, 0, "a writer's backup and note are what it may append: {report:#}");
    assert_eq!(report["appenders_checked"], true, "{report}");

    s.r.run(&["key", "revoke", &key_id, "--reason", "laptop stolen"]).ok();
    // The stolen credential still holds the ledger key, and appends.
    note(&host, "all backups verified");
    let (code, report) = verify(&s.r);
    assert_eq!(code, DAMAGED, "{report:#}");
    let found = tampering(&findings(&report));
    assert_eq!(found, BTreeSet::from([("forged".to_owned(), 5, 5)]), "init 0, credential 1, backup 2, note 3, revoke 4, forged note 5: {report:#}");

    let Some(py) = python() else { return };
    let recovery = s.t.join("recovery.key");
    s.r.run(&["key", "export-recovery", "-o", recovery.to_str().unwrap()]).ok();
    let (code, report) = python_verify(&py, &s.r.repo, &s.witness, &recovery);
    assert_eq!(code, 1, "{report:#}");
    let found: BTreeSet<_> = python_findings(&report).into_iter().filter(|(k, ..)| k != "unwitnessed" && k != "elsewhere").collect();
    assert_eq!(found, BTreeSet::from([("forged".to_owned(), 5, 5)]), "{report:#}");
}
