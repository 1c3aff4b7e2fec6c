//! A repository written by format 1 (`tests/data/format-v1`, made by the
//! main branch's binary before writer signatures) still opens, reads and
//! restores; nothing is written to it until a full-access key runs `key
//! upgrade`; the upgrade keeps what was there trusted, signs holds and
//! index files, endorses the full key and removes the format 1 write-only
//! key; afterwards unsigned objects are ignored and format 1 writers are
//! refused (docs/FORMAT.md 16).

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const FULL: &str = "fixture-passphrase";
const WRITE_ONLY: &str = "wo-passphrase";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/format-v1")
}

/// The fixture repository copied into `t`, with the folders git drops.
fn copy_fixture(t: &TestDir) -> Reprise {
    let repo = t.join("repo");
    let status = Command::new("cp").arg("-r").arg(fixture().join("repo")).arg(&repo).status().unwrap();
    assert!(status.success());
    for d in ["keys", "snapshots", "index", "holds", "prune", "tmp", "wal"] {
        fs::create_dir_all(repo.join(d)).unwrap();
    }
    for i in 0..=255u8 {
        fs::create_dir_all(repo.join("data").join(format!("{i:02x}"))).unwrap();
    }
    Reprise::at(t.path(), repo).with_password(FULL)
}

fn python() -> Option<String> {
    let py = std::env::var("REPRISE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py).args(["-c", "import cryptography, zstandard, blake3, cbor2, argon2"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        assert!(std::env::var_os("REPRISE_TEST_REQUIRE_ALL").is_none(), "this test needs Python with cryptography, zstandard, blake3, cbor2 (REPRISE_TEST_PYTHON)");
        eprintln!("skipped: {py} cannot write a format 1 object");
        return None;
    }
    Some(py)
}

/// The content of every file below `dir`, by path relative to it.
fn contents(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_owned(), fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Restores `id` and returns what is below its `docs` folder.
fn restored_docs(r: &Reprise, id: &str, to: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    r.restore(id, to, &[] as &[&str]).ok();
    let docs = walk_find(to, "docs").unwrap_or_else(|| panic!("no docs folder in the restore of {id}"));
    contents(&docs)
}

fn walk_find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in fs::read_dir(dir).ok()? {
        let p = e.ok()?.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
            if let Some(found) = walk_find(&p, name) {
                return Some(found);
            }
        }
    }
    None
}

#[test]
fn a_format_1_repository_is_read_then_upgraded_and_unsigned_writers_are_refused() {
    let t = TestDir::new("upgrade");
    let r = copy_fixture(&t);
    let src = contents(&fixture().join("src/docs"));
    let mut first = src.clone();
    first.remove(Path::new("b.txt"));

    // Read as it is: both snapshots, written by "legacy" (unsigned) writers.
    let snaps = r.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert!(snaps.iter().all(|s| s["writer"]["kind"] == "legacy" && s["domain"] == "legacy"), "{snaps:?}");
    let (s1, s2) = (snaps[0]["id"].as_str().unwrap().to_owned(), snaps[1]["id"].as_str().unwrap().to_owned());
    assert_eq!(restored_docs(&r, &s1, &t.join("before-1")), first);
    assert_eq!(restored_docs(&r, &s2, &t.join("before-2")), src);
    let check = r.check(&["--read-data"]).ok().json();
    assert!(check["notes"].to_string().contains("key upgrade"), "{check}");

    // Nothing is written before the upgrade, by any key.
    let docs = fixture().join("src");
    let out = r.run(&["backup", "--path", docs.to_str().unwrap()]).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("reprise key upgrade"), "{}", out.describe());
    let cred = fixture().join("cred-v1.json");
    let legacy_host = r.without_password().with_env("REPRISE_KEY_FILE", &cred);
    let out = legacy_host.run(&["backup", "--path", docs.to_str().unwrap()]).expect_code(5);
    assert!(out.stderr.contains("key add --write-only"), "{}", out.describe());
    let before = repo_listing(&r.repo);

    // The upgrade.
    let up = r.run(&["--json", "key", "upgrade"]).ok().json();
    assert_eq!((up["legacy_packs"].as_u64(), up["legacy_snapshots"].as_u64(), up["legacy_wal_files"].as_u64()), (Some(4), Some(2), Some(1)), "{up}");
    assert_eq!(up["holds_signed"], 1, "{up}");
    assert_eq!(up["keys_endorsed"].as_array().unwrap().len(), 1, "{up}");
    assert_eq!(up["write_only_keys_removed"].as_array().unwrap().len(), 1, "{up}");
    assert!(up["index_files_rewritten"].as_u64().unwrap() >= 1, "{up}");
    // Every pack and snapshot that was there is still there, untouched.
    let after = repo_listing(&r.repo);
    for (path, meta) in &before {
        let p = path.to_string_lossy();
        if p.starts_with("data/") || p.starts_with("snapshots/") || p.starts_with("wal/") {
            assert_eq!(after.get(path), Some(meta), "{p} changed");
        }
    }
    // Run again: nothing left to do, and no error.
    let again = r.run(&["--json", "key", "upgrade"]).ok().json();
    assert_eq!((again["holds_signed"].as_u64(), again["index_files_rewritten"].as_u64()), (Some(0), Some(0)), "{again}");

    // After: everything reads as before, the hold holds, the legacy WAL is
    // fetched, the full key's key file is endorsed.
    assert_eq!(restored_docs(&r, &s1, &t.join("after-1")), first);
    assert_eq!(restored_docs(&r, &s2, &t.join("after-2")), src);
    r.check(&["--read-data"]).ok();
    let holds = r.run(&["--json", "hold", "list"]).ok().json();
    assert_eq!(holds.as_array().unwrap().len(), 1, "{holds}");
    let fetched = t.join("fetched");
    r.run(&["wal-fetch", "db", "000000010000000000000001", fetched.to_str().unwrap()]).ok();
    assert!(fs::read(&fetched).unwrap() == fs::read(fixture().join("wal-000000010000000000000001")).unwrap());
    let keys = r.run(&["--json", "key", "list"]).ok().json();
    assert!(keys.as_array().unwrap().iter().all(|k| k["status"] == "endorsed" && k["kind"] == "full"), "{keys}");

    // The full key writes again, in the administrator's domain.
    let new = r.backup_paths(&[&docs]);
    assert_eq!(r.snapshots().last().unwrap()["domain"], "admin");
    assert_eq!(restored_docs(&r, &id_of(&new), &t.join("new")), src);

    // Format 1 writers: the write-only key is gone, the credential refused.
    r.with_password(WRITE_ONLY).run(&["snapshots"]).expect_code(4);
    legacy_host.run(&["backup", "--path", docs.to_str().unwrap()]).expect_code(5);

    // An unsigned object written after the upgrade (a format 1 host that
    // was not told) is ignored and reported.
    let Some(py) = python() else { return };
    let forged = Command::new(&py)
        .args([
            "-c",
            r#"
import json, os, struct, sys, blake3, zstandard
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
cred = json.load(open(sys.argv[1])); repo = sys.argv[2]
key = bytes.fromhex(cred["catalog_key"])
plain = struct.pack("<III", 1, 0, 0)
nonce = os.urandom(12)
data = b"RPRSIDX1" + nonce + AESGCM(key).encrypt(nonce, zstandard.ZstdCompressor().compress(plain), b"RPRSIDX1")
name = blake3.blake3(data).hexdigest()
open(os.path.join(repo, "index", name), "wb").write(data)
print(name)
"#,
        ])
        .arg(&cred)
        .arg(&r.repo)
        .output()
        .unwrap();
    assert!(forged.status.success(), "{}", String::from_utf8_lossy(&forged.stderr));
    let name = String::from_utf8_lossy(&forged.stdout).trim().to_owned();
    let out = r.check(&[] as &[&str]).expect_code(6);
    let report = out.json();
    assert!(report["problems"].as_array().unwrap().iter().any(|p| p["object"].as_str().unwrap().contains(&name) && p["message"].as_str().unwrap().contains("unsigned")), "{}", out.describe());

    // The independent restorer reads the upgraded repository too.
    let rk = t.join("recovery.json");
    r.run(&["key", "export-recovery", "-o", rk.to_str().unwrap()]).ok();
    for (id, want) in [(&s1, &first), (&s2, &src)] {
        let target = t.join(format!("py-{}", &id[..8]));
        let out = Command::new(&py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/restorer/reprise_restore.py"))
            .arg("--repo")
            .arg(&r.repo)
            .arg("--recovery-key")
            .arg(&rk)
            .args(["--snapshot", id, "--target"])
            .arg(&target)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(&contents(&walk_find(&target, "docs").unwrap()), want);
    }
}

/// `repair config` on a format 1 repository whose config is unreadable
/// writes version 1 again (from the key files, all format 1): the
/// repository still trusts its unsigned objects, reads every snapshot,
/// and upgrades. (Written as version 2, every object in it would be
/// ignored as unsigned.)
#[test]
fn repair_config_keeps_a_format_1_repository_format_1() {
    let t = TestDir::new("upgrade-repair-config");
    let r = copy_fixture(&t);
    let before = r.snapshots().len();
    fs::write(r.repo.join("config"), b"{\"format\": \"reprise-repo\x00\x00 garbage").unwrap();
    let done = r.run(&["--json", "repair", "config"]).ok().json();
    assert_eq!(done["config"]["version"], 1, "{done}");
    assert!(done["defaults"].as_array().unwrap().iter().any(|d| d.as_str().unwrap().starts_with("version (set to 1")), "{done}");
    let snaps = r.snapshots();
    assert_eq!(snaps.len(), before, "{snaps:?}");
    assert!(snaps.iter().all(|s| s["writer"]["kind"] == "legacy"), "{snaps:?}");
    r.run(&["--json", "key", "upgrade"]).ok();
    assert_eq!(r.snapshots().len(), before);
}
