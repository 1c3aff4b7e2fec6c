//! The independent restorer (`tools/restorer/reprise_restore.py`, written
//! from docs/FORMAT.md alone) restores what this binary wrote, byte for
//! byte. This is what keeps a 20-year archive readable without reprise.
//!
//! Needs Python with the packages of tools/restorer/requirements.txt
//! (REPRISE_TEST_PYTHON names the interpreter; scripts/test-all prepares a
//! venv). Fails when they are missing and REPRISE_TEST_REQUIRE_ALL is set,
//! is skipped with a message otherwise.

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_reprise");

fn restorer() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/restorer/reprise_restore.py")
}

fn python() -> Option<String> {
    let py = std::env::var("REPRISE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = Command::new(&py)
        .args(["-c", "import cryptography.hazmat.primitives.hpke, zstandard, blake3, cbor2, argon2"])
        .output();
    match probe {
        Ok(o) if o.status.success() => Some(py),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or_default().to_owned(),
                Err(e) => e.to_string(),
            };
            common::skip(&format!("{py} cannot run the independent restorer ({why}); scripts/test-all prepares a venv with tools/restorer/requirements.txt"));
            None
        }
    }
}

fn reprise(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("REPRISE_PASSWORD", "independent-passphrase")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .output()
        .expect("run reprise");
    assert!(out.status.success(), "reprise {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deterministic pseudo-random bytes (incompressible).
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("consents/2026/11")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    let template = noise(150_000, 1);
    for i in 0..40u64 {
        let mut doc = b"%PDF-1.7\n".to_vec();
        doc.extend_from_slice(&template);
        doc.extend_from_slice(format!("patient {i} consent signed {}", "texte ".repeat(500 + i as usize)).as_bytes());
        doc.extend_from_slice(&noise(20_000 + i as usize * 100, i + 7));
        fs::write(root.join(format!("consents/2026/11/case-{i}.pdf")), doc).unwrap();
    }
    fs::write(root.join("big.bin"), noise(6 << 20, 99)).unwrap();
    fs::write(root.join("notes.txt"), "compte rendu opératoire\n".repeat(20_000)).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join(std::ffi::OsStr::from_bytes(b"caf\xe9-latin1.txt")), b"non-UTF-8 name").unwrap();
    std::os::unix::fs::symlink("consents/2026/11/case-1.pdf", root.join("latest-consent")).unwrap();
    fs::hard_link(root.join("notes.txt"), root.join("notes-link.txt")).unwrap();
    fs::write(root.join("private.key"), b"secret").unwrap();
    fs::set_permissions(root.join("private.key"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(root.join("consents"), fs::Permissions::from_mode(0o750)).unwrap();
    // Old mtimes, as a real archive has (and so the files cache trusts them).
    for entry in walk(root) {
        let t = filetime::FileTime::from_unix_time(1_700_000_000 + entry.as_os_str().len() as i64, 123_456_789);
        filetime::set_symlink_file_times(&entry, t, t).unwrap();
    }
}

fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Contents, types, modes, mtimes, symlink targets, hard links.
fn assert_same(a: &Path, b: &Path) {
    let rel = |root: &Path, p: &Path| p.strip_prefix(root).unwrap().to_path_buf();
    let ea: Vec<PathBuf> = walk(a).iter().map(|p| rel(a, p)).collect();
    let eb: Vec<PathBuf> = walk(b).iter().map(|p| rel(b, p)).collect();
    assert_eq!(ea, eb, "different entries");
    for r in &ea {
        let (pa, pb) = (a.join(r), b.join(r));
        let (ma, mb) = (fs::symlink_metadata(&pa).unwrap(), fs::symlink_metadata(&pb).unwrap());
        assert_eq!(ma.file_type(), mb.file_type(), "{} type", r.display());
        assert_eq!((ma.mtime(), ma.mtime_nsec()), (mb.mtime(), mb.mtime_nsec()), "{} mtime", r.display());
        if ma.file_type().is_symlink() {
            assert_eq!(fs::read_link(&pa).unwrap(), fs::read_link(&pb).unwrap(), "{} target", r.display());
            continue;
        }
        assert_eq!(ma.mode() & 0o7777, mb.mode() & 0o7777, "{} mode", r.display());
        if ma.is_file() {
            assert!(fs::read(&pa).unwrap() == fs::read(&pb).unwrap(), "{} content differs", r.display());
            assert_eq!(ma.nlink(), mb.nlink(), "{} hard links", r.display());
        }
    }
}

#[test]
fn the_python_restorer_restores_what_reprise_wrote() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    build_tree(&src);
    let repo = dir.join("repo");
    let repo_s = repo.to_str().unwrap();
    reprise(dir, &["--repo", repo_s, "init", "--kdf-memory", "256", "--kdf-iterations", "1"]);
    reprise(dir, &["--repo", repo_s, "backup", "--path", src.to_str().unwrap()]);
    // The state of snapshot 1, kept for comparison; then a day of changes.
    let snap1_copy = dir.join("snap1");
    let cp = Command::new("cp").args(["-a"]).arg(&src).arg(&snap1_copy).status().unwrap();
    assert!(cp.success());
    fs::write(src.join("consents/2026/11/case-40.pdf"), noise(300_000, 40)).unwrap();
    fs::remove_file(src.join("empty")).unwrap();
    fs::write(src.join("notes.txt"), "amended\n".repeat(10)).unwrap();
    let t = filetime::FileTime::from_unix_time(1_700_100_000, 0);
    for p in [src.join("consents/2026/11/case-40.pdf"), src.join("notes.txt"), src.join("consents/2026/11"), src.clone()] {
        filetime::set_file_times(&p, t, t).unwrap();
    }
    reprise(dir, &["--repo", repo_s, "backup", "--path", src.to_str().unwrap()]);
    let key = dir.join("recovery.json");
    reprise(dir, &["--repo", repo_s, "key", "export-recovery", "-o", key.to_str().unwrap()]);
    let snaps: serde_json::Value = serde_json::from_str(&reprise(dir, &["--repo", repo_s, "--json", "snapshots"])).unwrap();
    let ids: Vec<String> = snaps.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), 2);

    let run = |args: &[&str], target: &Path| {
        let out = Command::new(&py)
            .arg(restorer())
            .args(["--repo", repo_s])
            .args(args)
            .arg("--target")
            .arg(target)
            .env("INDEPENDENT_PASSPHRASE", "independent-passphrase")
            .output()
            .unwrap();
        assert!(out.status.success(), "python restorer {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    };
    // Latest snapshot with the escrowed recovery key.
    let t2 = dir.join("py-latest");
    run(&["--recovery-key", key.to_str().unwrap(), "--snapshot", &ids[1]], &t2);
    let restored = t2.join(src.strip_prefix("/").unwrap());
    assert_same(&src, &restored);
    // The first snapshot with the passphrase (Argon2id key file).
    let t1 = dir.join("py-first");
    run(&["--password-env", "INDEPENDENT_PASSPHRASE", "--snapshot", &ids[0][..12]], &t1);
    assert_same(&snap1_copy, &t1.join(src.strip_prefix("/").unwrap()));
    // And reprise's own restore agrees with both.
    let own = dir.join("own");
    reprise(dir, &["--repo", repo_s, "restore", &ids[1], "--to", own.to_str().unwrap()]);
    assert_same(&restored, &own.join(src.strip_prefix("/").unwrap()));
}

// Issue 13 item 12: the rich tree, a pruned and repacked repository, packs
// no index names, and a damaged blob the restorer must refuse.

/// A repository at `dir/repo` with a recovery key at `dir/recovery.json`.
fn repo_with_key(dir: &Path) -> (String, PathBuf) {
    let repo = dir.join("repo");
    let repo_s = repo.to_str().unwrap().to_owned();
    reprise(dir, &["--repo", &repo_s, "init", "--kdf-memory", "256", "--kdf-iterations", "1"]);
    let key = dir.join("recovery.json");
    reprise(dir, &["--repo", &repo_s, "key", "export-recovery", "-o", key.to_str().unwrap()]);
    (repo_s, key)
}

fn backup(dir: &Path, repo: &str, src: &Path) -> String {
    let out = reprise(dir, &["--repo", repo, "--json", "backup", "--path", src.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["id"].as_str().unwrap().to_owned()
}

/// Runs the independent restorer; returns (success, stderr).
fn python_restore(py: &str, repo: &str, key: &Path, snapshot: &str, target: &Path) -> (bool, String) {
    let out = Command::new(py).arg(restorer()).args(["--repo", repo, "--recovery-key"]).arg(key).args(["--snapshot", snapshot, "--target"]).arg(target).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_python_restorer_restores_the_rich_tree() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("rich");
    common::build_rich_tree(&src, &dir.join("outside"), 12);
    let (repo, key) = repo_with_key(dir);
    let id = backup(dir, &repo, &src);
    let target = dir.join("py");
    let (ok, err) = python_restore(&py, &repo, &key, &id, &target);
    assert!(ok, "{err}");
    common::assert_trees_equal_with(&src, &target.join(src.strip_prefix("/").unwrap()), &common::Compare { owners: common::is_root(), ..common::Compare::default() });
}

#[test]
fn the_python_restorer_restores_a_pruned_and_repacked_repository() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    build_tree(&src);
    let (repo, key) = repo_with_key(dir);
    let first = backup(dir, &repo, &src);
    // Half the documents go: the packs holding them become mostly unused.
    for i in (0..40).step_by(2) {
        fs::remove_file(src.join(format!("consents/2026/11/case-{i}.pdf"))).unwrap();
    }
    fs::remove_file(src.join("big.bin")).unwrap();
    let second = backup(dir, &repo, &src);
    // The first snapshot is forgotten (as `forget` does: its object goes).
    fs::remove_file(dir.join("repo/snapshots").join(&first)).unwrap();
    let out = reprise(dir, &["--repo", &repo, "--json", "prune", "--grace", "0", "--max-unused", "0"]);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(report["repacked_packs"].as_u64().unwrap() > 0 && report["deleted_packs"].as_u64().unwrap() > 0, "the test needs a repack: {report}");
    let target = dir.join("py");
    let (ok, err) = python_restore(&py, &repo, &key, &second, &target);
    assert!(ok, "{err}");
    assert_same(&src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn the_python_restorer_reads_packs_no_index_names() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    build_tree(&src);
    let (repo, key) = repo_with_key(dir);
    let id = backup(dir, &repo, &src);
    for e in fs::read_dir(dir.join("repo/index")).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    let target = dir.join("py");
    let (ok, err) = python_restore(&py, &repo, &key, &id, &target);
    assert!(ok, "{err}");
    assert!(err.contains("not in any readable index file"), "the restorer says it used the packs' own directories: {err}");
    assert_same(&src, &target.join(src.strip_prefix("/").unwrap()));
}

#[test]
fn the_python_restorer_refuses_a_damaged_blob() {
    let Some(py) = python() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("only.bin"), noise(100_000, 3)).unwrap();
    fs::write(src.join("other.txt"), "untouched\n".repeat(100)).unwrap();
    let (repo, key) = repo_with_key(dir);
    let id = backup(dir, &repo, &src);
    // One byte inside the data of the only data pack's first blob: the
    // pack's name no longer matches, its directory and key still read.
    let packs: Vec<PathBuf> = walk(&dir.join("repo/data")).into_iter().filter(|p| p.is_file()).collect();
    let data_pack = packs.iter().max_by_key(|p| fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = fs::read(data_pack).unwrap();
    bytes[200] ^= 0x01;
    let mut perms = fs::metadata(data_pack).unwrap().permissions();
    perms.set_mode(0o644);
    fs::set_permissions(data_pack, perms).unwrap();
    fs::write(data_pack, &bytes).unwrap();
    let target = dir.join("py");
    let (ok, err) = python_restore(&py, &repo, &key, &id, &target);
    assert!(!ok, "the restorer accepted a damaged blob");
    assert!(err.contains("only.bin") && err.contains("damaged"), "{err}");
    // Nothing wrong is left behind: the damaged file is absent, the rest is there.
    let restored = target.join(src.strip_prefix("/").unwrap());
    assert!(!restored.join("only.bin").exists(), "a damaged file was written");
    assert_eq!(fs::read(restored.join("other.txt")).unwrap(), fs::read(src.join("other.txt")).unwrap());
}
