//! Writers are untrusted: a compromised production host, played by a
//! program (`attacker.py`, written from docs/FORMAT.md), against a
//! repository on a local disk, on S3 (moto) and on Azure (Azurite).
//!
//! 1. The administrator creates the repository and issues two write
//!    credentials: clinic A's and clinic B's, each bound to its host.
//!    Both clinics, and the administrator, back up their documents; A
//!    archives WAL. Every snapshot is restored once, as the reference.
//! 2. Clinic B is taken over. Holding only B's credential and the storage's
//!    read/list/create permission, the attacker first tries the oracle
//!    (which of these documents are in the repository?), then forges a
//!    snapshot for clinic A (in its own domain, and claiming A's), plants
//!    key files claiming full access, writes garbage under every blob ID
//!    it can see (with an index file that sorts first, and without), plants
//!    garbage under the IDs of documents not backed up yet, takes WAL names
//!    before A archives them (and copies an archived segment under another
//!    name), forges legal holds, a prune mark dated two days back
//!    condemning every pack, and index files claiming every pack.
//! 3. With the full key: `check --read-data` reports every attack with the
//!    writer key that did it; `prune --grace 0` deletes nothing genuine and
//!    removes the decoys; every earlier snapshot of every host restores
//!    bit-identical (and through the independent restorer); the genuine WAL
//!    is archived and fetched; forged holds protect nothing; a document
//!    planted in advance is really stored when it is backed up; the oracle
//!    finds nothing of A's, before or after. Then B is revoked: what it
//!    signed before stays, what it writes after is ignored and reported.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::emulators;
use common::*;
use serde_json::Value;

/// Clinic A's discharge letter: smaller than the chunker's minimum, so its
/// one chunk's ID is the keyed hash of the whole text (what the oracle of
/// issue 14 tested).
const LETTER: &str = "Compte rendu de sortie - Mme DUPONT Jeanne, nee le 12/03/1961.\nResultat VIH: positif. Suivi au service des maladies infectieuses.\n";
const LETTER_NAME: &str = "compte-rendu-sortie-dupont-jeanne.txt";
/// A document nobody backed up yet, which the attacker plants first.
const FUTURE_A: &str = "Consentement eclaire - M. MARTIN Paul - chirurgie du genou gauche, 2026-12-01.\n";
const FUTURE_ADMIN: &str = "Registre des incidents - trimestre 4 - aucun incident grave declare.\n";
/// Clinic B's own document: the oracle does find what B itself stored.
const B_OWN: &str = "Clinique B - planning des gardes de decembre.\n";

fn restorer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/restorer/reprise_restore.py")
}

fn attacker_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacker.py")
}

fn python() -> Option<String> {
    let py = std::env::var("REPRISE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py).args(["-c", "import cryptography.hazmat.primitives.hpke, zstandard, blake3, cbor2, argon2, boto3"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("REPRISE_TEST_REQUIRE_ALL").is_none(), "the attacker needs Python with cryptography, zstandard, blake3, cbor2, boto3 (REPRISE_TEST_PYTHON)");
        eprintln!("skipped: {py} cannot run the attacker");
        return None;
    }
    Some(py)
}

/// Where the repository lives, as reprise and the attacker reach it.
struct Storage {
    url: String,
    /// Environment of the administrator's reprise (full storage rights).
    admin_env: Vec<(String, String)>,
    /// Environment of the production hosts' reprise (create-only).
    host_env: Vec<(String, String)>,
    /// The attacker's `--store ...` arguments and environment.
    store_args: Vec<String>,
    store_env: Vec<(String, String)>,
    local: Option<PathBuf>,
    _server: Option<emulators::Server>,
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

struct World {
    work: PathBuf,
    py: String,
    storage: Storage,
    admin: Reprise,
    a: Reprise,
    b: Reprise,
    cred_b: PathBuf,
    key_a: String,
    key_b: String,
}

impl World {
    fn runner(work: &Path, storage: &Storage, vars: &[(String, String)]) -> Reprise {
        vars.iter().fold(Reprise::at(work, PathBuf::from(&storage.url)), |r, (k, v)| r.with_env(k, v))
    }

    fn attack(&self, args: &[&str]) -> Value {
        let mut c = Command::new(&self.py);
        c.arg(attacker_script()).args(&self.storage.store_args).arg("--credential").arg(&self.cred_b).args(args);
        for (k, v) in &self.storage.store_env {
            c.env(k, v);
        }
        let out = c.output().expect("run the attacker");
        assert!(out.status.success(), "attacker {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("attacker {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// The oracle: which guessed documents the attacker finds, what it
    /// could decrypt, and whether any of A's names or contents showed.
    fn oracle(&self) -> Value {
        self.attack(&[
            "oracle",
            "--guess",
            LETTER,
            "--guess",
            &LETTER.replace("positif", "negatif"),
            "--guess",
            B_OWN,
            "--needle",
            LETTER_NAME,
            "--needle",
            "Resultat VIH",
            "--needle",
            "DUPONT",
            "--needle",
            "clinic-a-secret-dir",
        ])
    }

    fn snapshots(&self) -> Vec<Value> {
        self.admin.run(&["--json", "snapshots"]).ok().json().as_array().unwrap().clone()
    }
}

fn setup(name: &str, t: &TestDir, storage: Storage, py: String) -> World {
    let work = t.path().to_owned();
    let admin = World::runner(&work, &storage, &storage.admin_env);
    admin.init();
    let credential = |host: &str| -> (PathBuf, String) {
        let path = work.join(format!("{host}.credential"));
        let out = admin.run(&["--json", "key", "add", "--write-only", "--credential", path.to_str().unwrap(), "--label", host, "--host", host]).ok().json();
        (path, out["key_id"].as_str().unwrap().to_owned())
    };
    let (cred_a, key_a) = credential("clinic-a");
    let (cred_b, key_b) = credential("clinic-b");
    let host = |cred: &Path, cache: &str| World::runner(&work, &storage, &storage.host_env).without_password().with_env("REPRISE_KEY_FILE", cred).with_cache(work.join(cache));
    let a = host(&cred_a, "cache-a");
    let b = host(&cred_b, "cache-b");
    eprintln!("{name}: clinic A writes with {}, clinic B (the attacker) with {}", &key_a[..12], &key_b[..12]);
    World { work, py, storage, admin, a, b, cred_b, key_a, key_b }
}

fn write_trees(w: &World) -> (PathBuf, PathBuf, PathBuf) {
    let mut rng = Rng::new(14);
    let a = w.work.join("clinic-a-secret-dir");
    write_file(&a.join(LETTER_NAME), LETTER.as_bytes());
    random_files(&a.join("scans"), &mut rng, 3, 20_000, 120_000);
    let b = w.work.join("clinic-b-docs");
    write_file(&b.join("planning.txt"), B_OWN.as_bytes());
    random_files(&b.join("scans"), &mut rng, 3, 20_000, 120_000);
    let admin = w.work.join("admin-docs");
    random_files(&admin, &mut rng, 2, 10_000, 50_000);
    for d in [&a, &b, &admin] {
        stamp_mtimes(d, &mut rng);
        settle(d);
    }
    (a, b, admin)
}

/// Every snapshot restored once (the reference the attacks must not change).
fn restore_all(w: &World, ids: &[String], into: &Path) {
    for id in ids {
        w.admin.restore(id, &into.join(id), &[] as &[&str]).ok();
    }
}

/// Two restores of one snapshot are the same: every entry below the
/// restore targets (the targets themselves were made at different times).
fn same_restore(a: &Path, b: &Path) {
    let names = |d: &Path| -> Vec<std::ffi::OsString> {
        let mut v: Vec<_> = fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name()).collect();
        v.sort();
        v
    };
    assert_eq!(names(a), names(b), "{} and {} hold different entries", a.display(), b.display());
    for n in names(a) {
        assert_trees_equal(&a.join(&n), &b.join(&n));
    }
}

/// The server whose WAL A archives.
const SYSTEM_IDENTIFIER: u64 = 7_300_000_000_000_000_123;

/// A segment-like file: random, with the long page header PostgreSQL puts
/// first in every segment (XLP_LONG_HEADER, timeline 1, the server's
/// system identifier).
fn wal_segment(dir: &Path, n: u32, rng: &mut Rng) -> (PathBuf, Vec<u8>) {
    let path = dir.join(format!("0000000100000000000000{n:02X}"));
    let mut data = rng.bytes(64 * 1024);
    data[..4].copy_from_slice(&[0x10, 0xD1, 0x02, 0x00]);
    data[4..8].copy_from_slice(&1u32.to_le_bytes());
    data[8..16].copy_from_slice(&(u64::from(n) << 24).to_le_bytes());
    data[24..32].copy_from_slice(&SYSTEM_IDENTIFIER.to_le_bytes());
    data[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
    write_file(&path, &data);
    (path, data)
}

/// A backup of `path`, recording `host` (the host's name) when given.
fn backup(r: &Reprise, path: &Path, host: Option<&str>) -> Value {
    let mut args: Vec<std::ffi::OsString> = vec!["--path".into(), path.as_os_str().to_owned()];
    if let Some(h) = host {
        args.extend(["--host".into(), h.into()]);
    }
    r.backup(&args)
}

fn problems(report: &Value) -> Vec<(String, String)> {
    report["problems"].as_array().unwrap().iter().map(|p| (p["object"].as_str().unwrap().to_owned(), p["message"].as_str().unwrap().to_owned())).collect()
}

/// Asserts that some problem is about `object` (a prefix) and says `what`.
#[track_caller]
fn reported(problems: &[(String, String)], object: &str, what: &[&str]) {
    assert!(
        problems.iter().any(|(o, m)| o.contains(object) && what.iter().all(|w| m.contains(w) || o.contains(w))),
        "no problem about {object} saying {what:?}; problems:\n{}",
        problems.iter().map(|(o, m)| format!("  {o}: {m}")).collect::<Vec<_>>().join("\n")
    );
}

fn play(name: &str, t: &TestDir, storage: Storage, py: String) {
    let w = setup(name, t, storage, py);
    let (tree_a, tree_b, tree_admin) = write_trees(&w);
    let mut rng = Rng::new(99);

    // 1. Life before the attack.
    let a1 = id_of(&backup(&w.a, &tree_a, Some("clinic-a")));
    let b1 = id_of(&backup(&w.b, &tree_b, Some("clinic-b")));
    let ad1 = id_of(&backup(&w.admin, &tree_admin, None));
    write_file(&tree_a.join("scans/new-scan.bin"), &rng.bytes(70_000));
    let a2 = id_of(&backup(&w.a, &tree_a, Some("clinic-a")));
    let b2 = id_of(&backup(&w.b, &tree_b, Some("clinic-b")));
    let wal_dir = w.work.join("pg_wal");
    let mut segments = BTreeMap::new();
    for n in 1..=5 {
        segments.insert(n, wal_segment(&wal_dir, n, &mut rng));
    }
    for n in 1..=3 {
        w.a.run(&["wal-push", "db", segments[&n].0.to_str().unwrap()]).ok();
    }
    let before: Vec<String> = vec![a1.clone(), b1.clone(), ad1.clone(), a2.clone(), b2.clone()];
    let reference = w.work.join("reference");
    restore_all(&w, &before, &reference);
    assert_trees_equal(&tree_a, &reference.join(&a2).join(tree_a.strip_prefix("/").unwrap()));
    let domain_a = w.snapshots().iter().find(|s| s["id"] == a1.as_str()).unwrap()["domain"].as_str().unwrap().to_owned();

    // 2. The oracle, before any attack: B finds its own document (the
    // method works) and nothing of A's; no name or content of A's shows in
    // anything its keys decrypt.
    let o = w.oracle();
    eprintln!("{name}: oracle before the attacks: {o}");
    assert_eq!(o["matches"], serde_json::json!([B_OWN]), "{o}");
    assert_eq!(o["needles_found"], serde_json::json!([]), "{o}");
    for kind in ["index", "snapshots"] {
        assert!(o["refused"][kind].as_u64().unwrap() > 0 && o["opened"][kind].as_u64().unwrap() > 0, "B opens its own {kind} and no other: {o}");
    }
    assert_eq!(o["opened"]["wal"], 0, "A's WAL headers are not B's to read: {o}");

    // 3. The attacks.
    let forged = w.attack(&["forge-snapshot", "--host", "clinic-a", "--component", "files", "--dir", "clinic-a-secret-dir", "--file", LETTER_NAME, "--content", "Resultat VIH: negatif (forged)"]);
    let forged_a = w.attack(&["forge-snapshot", "--host", "clinic-a", "--component", "files", "--file", LETTER_NAME, "--content", "forged in A's domain", "--as-domain", &domain_a]);
    let keys = w.attack(&["forge-key"]);
    let decoys = w.attack(&["decoys"]);
    let preplant = w.attack(&["preplant", "--content", FUTURE_A, "--content", FUTURE_ADMIN]);
    assert_eq!(preplant["index"].as_array().unwrap().len(), 2, "{preplant}");
    let squat = w.attack(&["squat-wal", "--component", "db", "--file", "000000010000000000000004"]);
    assert_eq!(squat["created"], true, "{squat}");
    let copied = w.attack(&["squat-wal", "--component", "db", "--file", "000000010000000000000005", "--copy-from", "000000010000000000000003"]);
    assert_eq!(copied["created"], true, "{copied}");
    let holds = w.attack(&["forge-hold", "--snapshot", &a1]);
    let mark = w.attack(&["forge-mark", "--days-ago", "2"]);
    let index = w.attack(&["forge-index", "--domain", &domain_a]);
    eprintln!("{name}: decoys {decoys}\n{name}: forged snapshot {forged}");
    assert!(decoys["blobs"].as_u64().unwrap() > 0, "the attacker saw blob IDs to plant decoys under: {decoys}");
    assert!(mark["packs"].as_u64().unwrap() > 0, "the forged mark condemns every pack: {mark}");

    // Life goes on: A archives the segments whose names were taken, backs
    // up a document the attacker planted garbage for; so does the admin.
    for n in [4, 5] {
        let out = w.a.run(&["wal-push", "db", segments[&n].0.to_str().unwrap()]).ok();
        assert!(out.stderr.contains("taken"), "the squatting is reported to the host: {}", out.describe());
    }
    write_file(&tree_a.join("consent.txt"), FUTURE_A.as_bytes());
    let a3 = backup(&w.a, &tree_a, Some("clinic-a"));
    assert!(summary(&a3, "new_bytes") >= FUTURE_A.len() as u64, "the planted garbage stood in for nothing: {a3}");
    let admin_doc = w.work.join("admin-docs-2");
    write_file(&admin_doc.join("registre.txt"), FUTURE_ADMIN.as_bytes());
    let ad2 = backup(&w.admin, &admin_doc, None);
    assert_eq!(summary(&ad2, "new_bytes"), FUTURE_ADMIN.len() as u64, "{ad2}");

    // 4. The administrator's view. Forged snapshots are ignored or flagged,
    // never `latest`; the writer of each is shown.
    let listed = w.admin.run(&["--json", "snapshots"]).ok();
    let snaps: Vec<Value> = listed.json().as_array().unwrap().clone();
    let forged_id = forged["snapshot"].as_str().unwrap();
    let f = snaps.iter().find(|s| s["id"] == forged_id).expect("B's own snapshot is listed");
    assert_eq!(f["writer"]["key_id"], w.key_b.as_str(), "{f}");
    assert!(f["warning"].as_str().unwrap().contains("clinic-b"), "{f}");
    assert!(!snaps.iter().any(|s| s["id"] == forged_a["snapshot"]), "a snapshot claiming A's domain is not listed");
    assert!(listed.stderr.contains(&forged_a["snapshot"].as_str().unwrap()[..8]), "...but reported: {}", listed.describe());
    let latest = w.admin.run(&["--json", "restore", "latest", "--to", w.work.join("latest").to_str().unwrap()]).ok().json();
    assert_ne!(latest["snapshot"], forged_id, "{latest}");

    // check --read-data reports every attack, naming B's key.
    let out = w.admin.check(&["--read-data"]);
    assert_eq!(out.code, 6, "{}", out.describe());
    let p = problems(&out.json());
    let kb = &w.key_b[..12];
    for k in keys["keys"].as_array().unwrap() {
        reported(&p, k.as_str().unwrap(), &["not endorsed"]);
    }
    reported(&p, forged_id, &["claims host 'clinic-a'", kb]);
    reported(&p, forged_a["snapshot"].as_str().unwrap(), &["forged", kb]);
    reported(&p, forged_a["index"].as_str().unwrap(), &["forged", kb]);
    for d in decoys["indexed_decoys"].as_array().unwrap().iter().chain(decoys["unindexed_decoys"].as_array().unwrap()) {
        reported(&p, d.as_str().unwrap(), &["does not match", kb]);
    }
    reported(&p, "data/", &["stored twice with different content", kb]);
    for h in holds["holds"].as_array().unwrap() {
        reported(&p, h.as_str().unwrap(), &["ignored"]);
    }
    reported(&p, holds["holds"][0].as_str().unwrap(), &[kb]);
    reported(&p, mark["mark"].as_str().unwrap(), &["only the administrator may condemn", kb]);
    reported(&p, index["other_domain"].as_str().unwrap(), &["forged", kb]);
    reported(&p, "data/", &["lists this pack, but the pack belongs to", kb]);
    reported(&p, "000000010000000000000004@", &["taken", kb]);
    reported(&p, "000000010000000000000005@", &["taken"]);
    reported(&p, "db/0000000100000000/000000010000000000000005", &["holds 000000010000000000000003", &w.key_a[..12]]);
    eprintln!("{name}: check --read-data: {} problems, e.g.\n  {}", p.len(), p.iter().take(6).map(|(o, m)| format!("{o}: {m}")).collect::<Vec<_>>().join("\n  "));

    // Forged holds protect nothing and are not listed.
    let hl = w.admin.run(&["--json", "hold", "list"]).ok();
    assert_eq!(hl.json(), serde_json::json!([]), "{}", hl.describe());
    assert!(hl.stderr.contains("ignored"), "{}", hl.describe());

    // The independent restorer, with every decoy still there, restores
    // every earlier snapshot bit-identical too (local storage: it reads a
    // directory).
    independent_restores(&w, &before, &reference, &b1, "before-prune");

    // 5. prune: the forged mark condemns nothing; the decoys are found out
    // (their blobs do not verify) and removed, never the genuine packs.
    let pr = w.admin.run(&["--json", "prune", "--grace", "0", "--max-unused", "0"]).ok().json();
    eprintln!("{name}: prune: deleted {} pack(s), {} bad copies, {} untrusted pack(s), {} pack(s) verified", pr["deleted_packs"], pr["bad_copies"].as_array().unwrap().len(), pr["untrusted_packs"], pr["packs_verified"]);
    assert_eq!(pr["ignored_marks"], 1, "{pr}");
    assert!(pr["bad_copies"].as_array().unwrap().iter().any(|c| c["writer"].as_str().unwrap().contains(kb)), "{pr}");
    let stored: Vec<String> = w.admin_packs();
    for d in decoys["indexed_decoys"].as_array().unwrap().iter().chain(decoys["unindexed_decoys"].as_array().unwrap()) {
        assert!(!stored.contains(&d.as_str().unwrap().to_owned()), "decoy pack {d} was not removed");
    }
    let again = w.admin.run(&["--json", "prune", "--grace", "0", "--max-unused", "0"]).ok().json();
    assert_eq!(again["deleted_packs"], 0, "a second prune finds nothing more to delete: {again}");
    // `repair marks` removes the forged mark (it counted for nothing, and
    // `check` would report it forever); the next prune ignores none.
    let rm = w.admin.run(&["--json", "repair", "marks"]).ok().json();
    let removed: Vec<&str> = rm["damaged_marks"].as_array().unwrap().iter().map(|m| m["object"].as_str().unwrap()).collect();
    assert!(removed.len() == 1 && removed[0].ends_with(mark["mark"].as_str().unwrap()), "{rm}");
    assert_eq!(w.admin.run(&["--json", "prune", "--grace", "0"]).ok().json()["ignored_marks"], 0);

    // 6. Every earlier snapshot of every host restores bit-identical.
    let after = w.work.join("after");
    restore_all(&w, &before, &after);
    for id in &before {
        same_restore(&reference.join(id), &after.join(id));
    }
    // The genuine WAL, not the squatter's, nor the copy of another segment:
    // `wal-fetch` runs in the data directory being recovered, whose control
    // file names the server (PostgreSQL's restore_command does the same).
    let data_dir = w.work.join("pgdata");
    write_file(&data_dir.join("global/pg_control"), &SYSTEM_IDENTIFIER.to_le_bytes());
    let in_data_dir = Reprise { cwd: data_dir.clone(), ..w.admin.clone() };
    for n in 1..=5u32 {
        let dest = w.work.join(format!("fetched-{n}"));
        let file = segments[&n].0.file_name().unwrap().to_str().unwrap();
        in_data_dir.run(&["wal-fetch", "db", file, dest.to_str().unwrap()]).ok();
        assert!(fs::read(&dest).unwrap() == segments[&n].1, "segment {n}: wal-fetch returned another file");
    }
    independent_restores(&w, &before, &reference, &b1, "after-prune");

    // 7. The oracle after everything: still nothing of A's.
    let o = w.oracle();
    assert_eq!(o["matches"], serde_json::json!([B_OWN]), "{o}");
    assert_eq!(o["needles_found"], serde_json::json!([]), "{o}");

    // 8. B is revoked: what it signed before stays; what it writes after is
    // ignored and reported.
    let rv = w.admin.run(&["--json", "key", "revoke", &w.key_b[..12], "--reason", "clinic B taken over"]).ok().json();
    assert!(rv["snapshots"].as_u64().unwrap() >= 2, "{rv}");
    let late = backup(&w.b, &tree_b, Some("clinic-b"));
    let late_id = id_of(&late);
    let listed = w.admin.run(&["--json", "snapshots"]).ok();
    let ids: Vec<String> = listed.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert!(ids.contains(&b1) && ids.contains(&b2), "B's snapshots from before its revocation stay");
    assert!(!ids.contains(&late_id), "B's snapshot after its revocation is ignored");
    assert!(listed.stderr.contains("after its revocation"), "{}", listed.describe());
    let p = problems(&w.admin.check(&[] as &[&str]).expect_code(6).json());
    reported(&p, &late_id, &["after its revocation", kb]);
    let keys = w.admin.run(&["--json", "key", "list"]).ok().json();
    assert!(keys.as_array().unwrap().iter().any(|k| k["key_id"] == w.key_b.as_str() && k["status"] == "revoked" && k["kind"] == "credential"), "{keys}");
    assert!(keys.as_array().unwrap().iter().any(|k| k["key_id"] == w.key_a.as_str() && k["status"] == "endorsed"), "{keys}");
    w.admin.restore(&b2, &w.work.join("b2-after-revocation"), &[] as &[&str]).ok();
    same_restore(&reference.join(&b2), &w.work.join("b2-after-revocation"));
}

/// The independent restorer restores every earlier snapshot bit-identical;
/// with B's credential it restores nothing.
fn independent_restores(w: &World, before: &[String], reference: &Path, b1: &str, stage: &str) {
    let Some(repo) = &w.storage.local else { return };
    let rk = w.work.join("recovery.json");
    if !rk.exists() {
        w.admin.run(&["key", "export-recovery", "-o", rk.to_str().unwrap()]).ok();
    }
    for id in before {
        let target = w.work.join(format!("py-{stage}")).join(id);
        let out = Command::new(&w.py).arg(restorer()).arg("--repo").arg(repo).arg("--recovery-key").arg(&rk).args(["--snapshot", id, "--target"]).arg(&target).output().unwrap();
        assert!(out.status.success(), "independent restorer ({stage}), snapshot {id}: {}", String::from_utf8_lossy(&out.stderr));
        same_restore(&reference.join(id), &target);
    }
    let out = Command::new(&w.py).arg(restorer()).arg("--repo").arg(repo).arg("--recovery-key").arg(&w.cred_b).args(["--snapshot", b1, "--target"]).arg(w.work.join(format!("py-b-{stage}"))).output().unwrap();
    assert!(!out.status.success(), "the write credential restored something");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a version 1 reprise-recovery-key file"), "{}", String::from_utf8_lossy(&out.stderr));
}

impl World {
    /// Pack names in storage.
    fn admin_packs(&self) -> Vec<String> {
        match &self.storage.local {
            Some(repo) => packs(repo).into_iter().map(|p| p.rsplit('/').next().unwrap().to_owned()).collect(),
            None => self.attack(&["list-packs"]).as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect(),
        }
    }
}

#[test]
fn a_compromised_writer_cannot_poison_erase_or_spy_on_a_local_repository() {
    let Some(py) = python() else { return };
    let t = TestDir::new("untrusted-local");
    let repo = t.join("repo");
    let storage = Storage {
        url: repo.display().to_string(),
        admin_env: Vec::new(),
        host_env: Vec::new(),
        store_args: vec!["--store".into(), "local".into(), "--path".into(), repo.display().to_string()],
        store_env: Vec::new(),
        local: Some(repo),
        _server: None,
    };
    play("local", &t, storage, py);
}

#[test]
fn a_compromised_writer_cannot_poison_erase_or_spy_on_an_s3_repository() {
    let Some(py) = python() else { return };
    let t = TestDir::new("untrusted-s3");
    let Some(s3) = emulators::moto(t.path()) else { return };
    emulators::create_bucket(&s3, "clinics");
    let creds = env(&[("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID), ("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET)]);
    let storage = Storage {
        url: emulators::s3_url(&s3, "clinics", "repo"),
        admin_env: creds.clone(),
        host_env: creds,
        store_args: vec!["--store".into(), "s3".into(), "--endpoint".into(), s3.endpoint(), "--bucket".into(), "clinics".into(), "--prefix".into(), "repo".into()],
        store_env: env(&[("ATTACKER_S3_KEY_ID", emulators::S3_KEY_ID), ("ATTACKER_S3_SECRET", emulators::S3_SECRET)]),
        local: None,
        _server: Some(s3),
    };
    play("s3", &t, storage, py);
}

#[test]
fn a_compromised_writer_cannot_poison_erase_or_spy_on_an_azure_repository() {
    let Some(py) = python() else { return };
    let t = TestDir::new("untrusted-azure");
    let Some(az) = emulators::azurite(t.path()) else { return };
    emulators::create_container(&az, "clinics");
    // The production hosts and the attacker hold a container SAS that
    // reads, creates and lists: never writes over, never deletes.
    let sas = emulators::container_sas("clinics", "rcl");
    let storage = Storage {
        url: emulators::azure_url(&az, "clinics", "repo"),
        admin_env: env(&[("AZURE_STORAGE_ACCOUNT_KEY", emulators::AZURITE_KEY)]),
        host_env: env(&[("AZURE_STORAGE_SAS_TOKEN", &sas)]),
        store_args: vec![
            "--store".into(),
            "azure".into(),
            "--endpoint".into(),
            az.endpoint(),
            "--account".into(),
            emulators::AZURITE_ACCOUNT.into(),
            "--container".into(),
            "clinics".into(),
            "--prefix".into(),
            "repo".into(),
        ],
        store_env: env(&[("ATTACKER_AZURE_SAS", &sas)]),
        local: None,
        _server: Some(az),
    };
    play("azure", &t, storage, py);
}

/// A copy carries what makes its writers believable: snapshots written with
/// write credentials stay trusted on the mirror (a public record of each
/// writer key goes along, and the administrator's revocations), and what a
/// revoked key wrote after its revocation is not copied.
#[test]
fn a_copy_keeps_writers_believable_and_revocations_in_force() {
    let t = TestDir::new("untrusted-copy");
    let src_a = t.join("clinic-a");
    let src_b = t.join("clinic-b");
    let mut rng = Rng::new(3);
    random_files(&src_a, &mut rng, 3, 20_000, 80_000);
    random_files(&src_b, &mut rng, 3, 20_000, 80_000);
    let plan = t.join("reprise.toml");
    fs::write(
        &plan,
        format!(
            "[repositories.primary]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\n\n[repositories.secondary]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\ncopy_of = \"primary\"\n\n[components.a]\ntype = \"files\"\npaths = [\"{}\"]\n\n[components.b]\ntype = \"files\"\npaths = [\"{}\"]\n",
            t.join("primary").display(),
            t.join("secondary").display(),
            src_a.display(),
            src_b.display()
        ),
    )
    .unwrap();
    let on = |repo: &str| Reprise::at(t.path(), PathBuf::from(repo)).with_env("REPRISE_PLAN", &plan);
    let admin = on("primary");
    admin.init();
    let cred = |host: &str| {
        let path = t.join(format!("{host}.credential"));
        let out = admin.run(&["--json", "key", "add", "--write-only", "--credential", path.to_str().unwrap(), "--label", host, "--host", host]).ok().json();
        (path, out["key_id"].as_str().unwrap().to_owned())
    };
    let (cred_a, _) = cred("clinic-a");
    let (cred_b, key_b) = cred("clinic-b");
    let host = |c: &Path, name: &str| admin.without_password().with_env("REPRISE_KEY_FILE", c).with_cache(t.join(format!("cache-{name}")));
    let a = id_of(&host(&cred_a, "a").backup(&["a", "--host", "clinic-a"]));
    let b = id_of(&host(&cred_b, "b").backup(&["b", "--host", "clinic-b"]));
    admin.run(&["key", "revoke", &key_b[..12]]).ok();
    write_file(&src_b.join("late.bin"), &rng.bytes(30_000));
    let late = id_of(&host(&cred_b, "b").backup(&["b", "--host", "clinic-b"]));

    let report = admin.run(&["--json", "copy", "--to", "secondary"]).ok().json();
    let copied: Vec<String> = report.as_array().unwrap().iter().flat_map(|r| r["snapshots_copied"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned())).collect();
    assert!(copied.contains(&a) && copied.contains(&b) && !copied.contains(&late), "{report}");
    assert!(report.to_string().contains(&late) && report.to_string().contains("after its revocation"), "the ignored snapshot is said: {report}");

    let mirror = on("secondary");
    let listed = mirror.run(&["--json", "snapshots"]).ok();
    let ids: Vec<String> = listed.json().as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert!(ids.contains(&a) && ids.contains(&b), "the writers' snapshots are believed on the mirror: {}", listed.describe());
    mirror.check(&["--read-data"]).ok();
    let keys = mirror.run(&["--json", "key", "list"]).ok().json();
    assert!(keys.as_array().unwrap().iter().any(|k| k["key_id"] == key_b.as_str() && k["status"] == "revoked"), "{keys}");
    let target = t.join("restored");
    mirror.restore(&a, &target, &[] as &[&str]).ok();
    assert_trees_equal(&src_a, &target.join(src_a.strip_prefix("/").unwrap()));
}
