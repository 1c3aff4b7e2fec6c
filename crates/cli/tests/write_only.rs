//! Keys: a write-only key backs up and deduplicates but can never read,
//! list contents, delete, or manage keys; nothing readable is stored in
//! clear; passphrase change, last-key protection and the recovery key.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::*;

const WO_PASSWORD: &str = "write only passphrase";
/// Distinctive strings that must never appear in clear in the repository.
const SECRET_NAME: &str = "PATIENT-RECORD-zq8x3-dossier.txt";
const SECRET_DIR: &str = "oncology-ward-7731";
const SECRET_CONTENT: &str = "DIAGNOSIS: CONFIDENTIAL-MARKER-91c4e0 stage II, treated with protocol B";

struct Fx {
    t: TestDir,
    full: Reprise,
    wo: Reprise,
    src: PathBuf,
    wo_key: String,
    full_key: String,
}

fn fixture(name: &str) -> Fx {
    let t = TestDir::new(name);
    let full = Reprise::new(t.path());
    full.init();
    let added = full
        .with_env("REPRISE_NEW_PASSWORD", WO_PASSWORD)
        .run(&["--json", "key", "add", "--write-only", "--label", "db host", "--kdf-memory", "64", "--kdf-iterations", "1"])
        .ok()
        .json();
    assert_eq!(added["role"], "write-only", "{added}");
    let wo_key = added["added"].as_str().unwrap().to_owned();
    let keys = full.run(&["--json", "key", "list"]).ok().json();
    let full_key = keys.as_array().unwrap().iter().find(|k| k["current"] == true).unwrap()["name"].as_str().unwrap().to_owned();
    // The write-only host has its own cache.
    let wo = full.with_password(WO_PASSWORD).with_cache(t.join("wo-cache"));
    let src = t.join("src").join(SECRET_DIR);
    let mut rng = Rng::new(99);
    // Repeated, compressible content: it would show through if stored in clear.
    write_file(&src.join(SECRET_NAME), SECRET_CONTENT.repeat(50).as_bytes());
    random_files(&src.join("scans"), &mut rng, 4, 10_000, 200_000);
    stamp_mtimes(&src, &mut rng);
    Fx { t, full, wo, src, wo_key, full_key }
}

#[test]
fn write_only_key_backs_up_and_deduplicates() {
    let fx = fixture("wo-backup");
    settle(&fx.src);
    let first = fx.wo.backup_paths(&[&fx.src]);
    assert!(summary(&first, "new_bytes") > 0);
    // Unchanged: the write-only host's own files cache answers.
    let second = fx.wo.backup_paths(&[&fx.src]);
    assert_eq!(summary(&second, "files_read"), 0, "{second}");
    assert_eq!(summary(&second, "new_bytes"), 0, "{second}");
    // Without a cache every file is read, but every chunk is deduplicated.
    let third = fx.wo.backup(&[std::ffi::OsStr::new("--no-cache"), std::ffi::OsStr::new("--path"), fx.src.as_os_str()]);
    assert!(summary(&third, "files_read") > 0);
    assert_eq!(summary(&third, "new_bytes"), 0, "{third}");
    // Data a full key stored earlier is stored again: a writer deduplicates
    // only within its own domain (nothing another key wrote can stand in
    // for its data, and it cannot test what others stored).
    let other = fx.t.join("other");
    write_file(&other.join("x.bin"), &Rng::new(5).bytes(500_000));
    fx.full.backup_paths(&[&other]);
    let own = fx.wo.backup_paths(&[&other]);
    assert_eq!(summary(&own, "new_bytes"), 500_000, "{own}");
    let again = fx.wo.backup(&[std::ffi::OsStr::new("--no-cache"), std::ffi::OsStr::new("--path"), other.as_os_str()]);
    assert_eq!(summary(&again, "new_bytes"), 0, "{again}");

    // `snapshots` shows the headers of its own snapshots only.
    let snaps = fx.wo.snapshots();
    assert_eq!(snaps.len(), 5, "{snaps:?}");
    assert_eq!(fx.full.snapshots().len(), 6);
    assert!(snaps.iter().all(|s| s["summary"]["files"].as_u64().is_some() && s["time"].is_string()));
    // The full key reads what the write-only key wrote, bit-identical.
    let target = fx.t.join("restored");
    fx.full.restore(&snap_path(&id_of(&first), &fx.src), &target, &[] as &[&str]).ok();
    assert_trees_equal(&fx.src, &target);
    fx.full.check(&["--read-data"]).ok();
    // check with the write-only key verifies what it can and says so.
    let wo_check = fx.wo.check(&[] as &[&str]).ok().json();
    assert_eq!(wo_check["content_verified"], false, "{wo_check}");
}

#[test]
fn write_only_key_cannot_read_delete_or_manage_keys() {
    let fx = fixture("wo-refused");
    let id = id_of(&fx.full.backup_paths(&[&fx.src]));
    let wo = fx.wo.with_env("REPRISE_NEW_PASSWORD", "another one");
    let before = repo_listing(&fx.wo.repo);
    let target = fx.t.join("target");
    let recovery = fx.t.join("recovery.json");
    let cases: Vec<Vec<String>> = vec![
        vec!["ls".into(), id.clone()],
        vec!["ls".into(), "latest".into()],
        vec!["restore".into(), id.clone(), "--to".into(), target.display().to_string()],
        vec!["diff".into(), id.clone(), id.clone()],
        vec!["key".into(), "export-recovery".into(), "-o".into(), recovery.display().to_string()],
        vec!["key".into(), "add".into(), "--kdf-memory".into(), "64".into(), "--kdf-iterations".into(), "1".into()],
        vec!["key".into(), "add".into(), "--write-only".into(), "--kdf-memory".into(), "64".into(), "--kdf-iterations".into(), "1".into()],
        vec!["key".into(), "remove".into(), fx.full_key.clone()],
        vec!["key".into(), "remove".into(), fx.wo_key.clone()],
    ];
    for args in &cases {
        let out = wo.run(args).expect_code(5);
        out.assert_one_line_error();
        assert!(out.stderr.contains("write-only"), "the refusal should say why: {}", out.describe());
    }
    assert!(!target.exists() || fs::read_dir(&target).unwrap().count() == 0, "nothing may be restored");
    assert!(!recovery.exists(), "no recovery key may be written");
    assert_eq!(repo_listing(&fx.wo.repo), before, "refused commands must not change the repository");
}

#[test]
fn nothing_readable_is_stored_in_clear() {
    let fx = fixture("wo-clear");
    fx.full.backup_paths(&[&fx.src]);
    fx.wo.backup_paths(&[&fx.src]);
    let more = fx.src.join("new-visit.txt");
    write_file(&more, SECRET_CONTENT.as_bytes());
    fx.wo.backup(&["--path", fx.src.to_str().unwrap(), "--tag", "TAG-IN-CLEAR-3f9"]);
    // Make sure the needles are what the source holds.
    assert!(!files_containing(&fx.src, SECRET_CONTENT.as_bytes()).is_empty());
    for needle in [SECRET_NAME, SECRET_DIR, SECRET_CONTENT, "CONFIDENTIAL-MARKER-91c4e0", "new-visit.txt", "TAG-IN-CLEAR-3f9"] {
        let hits = files_containing(&fx.full.repo, needle.as_bytes());
        assert!(hits.is_empty(), "'{needle}' is readable in clear in {hits:?}");
    }
    // The write-only key file names no secret that reads content.
    let key = fs::read_to_string(fx.full.repo.join("keys").join(&fx.wo_key)).unwrap();
    assert!(!key.contains("recovery_secret"), "{key}");
}

#[test]
fn a_write_only_key_never_changes_existing_objects() {
    let fx = fixture("wo-immutable");
    fx.full.backup_paths(&[&fx.src]);
    let before = repo_listing(&fx.full.repo);
    // Backups of the same data (which would produce the same blobs) and of
    // new data, with and without the files cache.
    fx.wo.backup_paths(&[&fx.src]);
    fx.wo.backup(&[std::ffi::OsStr::new("--no-cache"), std::ffi::OsStr::new("--path"), fx.src.as_os_str()]);
    write_file(&fx.src.join("added.bin"), &Rng::new(3).bytes(100_000));
    fx.wo.backup_paths(&[&fx.src]);
    let after = repo_listing(&fx.full.repo);
    for (path, meta) in &before {
        if path.starts_with("tmp") || meta.0 == 0 && meta.2 == 0 {
            continue; // directories change as objects are added
        }
        assert_eq!(after.get(path), Some(meta), "{} was replaced or removed", path.display());
    }
    // Every object is read-only on disk.
    for dir in ["keys", "snapshots", "index", "data"] {
        for o in objects(&fx.full.repo, dir) {
            let mode = fs::metadata(fx.full.repo.join(&o)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o444, "{o}");
        }
    }
    // (Object names are BLAKE3 hashes of bytes sealed with random nonces,
    // so the CLI cannot be made to produce a colliding name on purpose; the
    // "fail if exists" primitive itself is covered by the local backend's
    // unit test. What matters here: nothing that existed was touched.)
    fx.full.check(&["--read-data"]).ok();
}

#[test]
fn passphrase_change() {
    let fx = fixture("passwd");
    let keys_before: BTreeSet<String> = objects(&fx.full.repo, "keys").into_iter().collect();
    let out = fx
        .full
        .with_env("REPRISE_NEW_PASSWORD", "brand new passphrase")
        .run(&["--json", "key", "passwd", "--kdf-memory", "64", "--kdf-iterations", "1"])
        .ok()
        .json();
    let new_key = out["key"].as_str().unwrap().to_owned();
    let keys_after: BTreeSet<String> = objects(&fx.full.repo, "keys").into_iter().collect();
    assert!(keys_after.contains(&format!("keys/{new_key}")));
    assert!(!keys_after.contains(&format!("keys/{}", fx.full_key)), "the old key file must be gone");
    assert_eq!(keys_after.len(), keys_before.len());
    fx.full.run(&["snapshots"]).expect_code(4).assert_one_line_error();
    let new = fx.full.with_password("brand new passphrase");
    new.run(&["snapshots"]).ok();
    let id = id_of(&new.backup_paths(&[&fx.src]));
    new.run(&["ls", &id]).ok();
    // The write-only key is unaffected. It cannot change its own passphrase:
    // that removes a key file, and write-only keys never delete anything
    // (an administrator issues a new key and removes the old one).
    fx.wo.run(&["snapshots"]).ok();
    let keys_before_wo: BTreeSet<String> = objects(&fx.full.repo, "keys").into_iter().collect();
    let out = fx.wo.with_env("REPRISE_NEW_PASSWORD", "wo 2").run(&["key", "passwd", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(5);
    out.assert_one_line_error();
    assert_eq!(keys_before_wo, objects(&fx.full.repo, "keys").into_iter().collect::<BTreeSet<String>>());
    fx.wo.run(&["snapshots"]).ok();
    fx.wo.backup_paths(&[&fx.src]);
    fx.wo.run(&["ls", "latest"]).expect_code(5);
    // An empty new passphrase is refused.
    let out = new.with_env("REPRISE_NEW_PASSWORD", "").run(&["key", "passwd", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(2);
    out.assert_one_line_error();
}

#[test]
fn the_last_full_key_and_the_key_in_use_cannot_be_removed() {
    let fx = fixture("lastkey");
    // The key in use.
    let out = fx.full.run(&["key", "remove", &fx.full_key]).expect_code(2);
    out.assert_one_line_error();
    // The last full key, from a session that does not use it (recovery key).
    let rk = fx.t.join("recovery.json");
    fx.full.run(&["key", "export-recovery", "-o", rk.to_str().unwrap()]).ok();
    let rec = fx.full.without_password();
    let rk = rk.to_str().unwrap();
    let out = rec.run(&["--recovery-key", rk, "key", "remove", &fx.full_key[..12]]).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("last full-access key"), "{}", out.describe());
    assert!(fx.full.repo.join("keys").join(&fx.full_key).exists());
    // With a second full key, the first can go.
    let added =
        fx.full.with_env("REPRISE_NEW_PASSWORD", "second full").run(&["--json", "key", "add", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok().json();
    let second = fx.full.with_password("second full");
    second.run(&["key", "remove", &fx.full_key]).ok();
    fx.full.run(&["snapshots"]).expect_code(4);
    // ... but now the second is the last one.
    let out = rec.run(&["--recovery-key", rk, "key", "remove", added["added"].as_str().unwrap()]).expect_code(2);
    assert!(out.stderr.contains("last full-access key"), "{}", out.describe());
    // The write-only key can be removed by a full key.
    second.run(&["key", "remove", &fx.wo_key]).ok();
    fx.wo.run(&["snapshots"]).expect_code(4);
    // Unknown key: not found (3, as the README's table says), one line.
    second.run(&["key", "remove", "ffffffffffff"]).expect_code(3).assert_one_line_error();
}

/// The bug this pins: `diff` read both snapshots' trees through one
/// domain's index, but a write-only host's snapshot lives in its own
/// domain (its own blob IDs), so comparing it with an administrator's
/// snapshot found none of its trees. Each side is read in its own domain,
/// files compared by size and time, and the note says so.
#[test]
fn diff_of_two_writers_snapshots_reads_each_in_its_own_domain() {
    let fx = fixture("wo-diff-domains");
    settle(&fx.src);
    let theirs = id_of(&fx.wo.backup_paths(&[&fx.src]));
    let ours = id_of(&fx.full.backup_paths(&[&fx.src]));
    let out = fx.full.run(&["--json", "diff", &theirs, &ours]).ok();
    assert!(out.stderr.contains("different writers"), "{}", out.describe());
    let changes = out.json();
    assert!(
        changes.as_array().unwrap().iter().all(|c| c["change"] != "added" && c["change"] != "removed" && c["change"] != "modified"),
        "the same files, backed up by two writers, differ in nothing: {changes}"
    );
}

/// The bug this pins: deleting a writer's key file is not what `key
/// remove` must do to a write-only key. Its endorsement is what makes its
/// objects count, so a bare deletion would disown everything it ever
/// backed up; and the key, its file gone, would be listed as nothing at
/// all. `key remove` of a writer revokes it instead: what it wrote before
/// stays listed and restorable, the key is listed as revoked, and it can
/// no longer open the repository.
#[test]
fn removing_a_write_only_key_revokes_it_and_keeps_what_it_wrote() {
    let fx = fixture("wo-remove-revokes");
    let id = id_of(&fx.wo.backup_paths(&[&fx.src]));
    let removed = fx.full.run(&["--json", "key", "remove", &fx.wo_key]).ok().json();
    let listed: Vec<String> = fx.full.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert!(listed.contains(&id), "the removed writer's earlier snapshot is still listed: {listed:?}");
    let target = fx.t.join("restored");
    fx.full.restore(&snap_path(&id, &fx.src), &target, &[] as &[&str]).ok();
    assert_trees_equal(&fx.src, &target);
    fx.wo.run(&["snapshots"]).expect_code(4);
    assert_eq!(removed["revocation"]["snapshots"], 1, "the removal is a revocation that counts what the key wrote: {removed}");
    let keys = fx.full.run(&["--json", "key", "list"]).ok().json();
    let key_id = removed["revocation"]["key_id"].as_str().unwrap();
    assert!(keys.as_array().unwrap().iter().any(|k| k["key_id"] == key_id && k["status"] == "revoked"), "{keys}");
}

#[test]
fn recovery_key_export_and_use() {
    let fx = fixture("recovery");
    let id = id_of(&fx.full.backup_paths(&[&fx.src]));
    let rk = fx.t.join("escrow/recovery.json");
    fs::create_dir_all(rk.parent().unwrap()).unwrap();
    fx.full.run(&["key", "export-recovery", "-o", rk.to_str().unwrap()]).ok();
    assert_eq!(fs::metadata(&rk).unwrap().mode() & 0o777, 0o600, "the recovery key must be private");
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&rk).unwrap()).unwrap();
    assert_eq!(v["format"], "reprise-recovery-key");
    assert!(v["recovery_secret"].as_str().is_some_and(|s| s.len() == 64));
    // Never overwritten.
    let out = fx.full.run(&["key", "export-recovery", "-o", rk.to_str().unwrap()]).expect_code(2);
    out.assert_one_line_error();

    // No passphrase at all: the recovery key opens everything.
    let rec = fx.full.without_password();
    for args in [vec!["--recovery-key", rk.to_str().unwrap(), "snapshots"], vec!["--recovery-key", rk.to_str().unwrap(), "ls", &id]] {
        rec.run(&args).ok();
    }
    let target = fx.t.join("restored");
    rec.run(&["--recovery-key", rk.to_str().unwrap(), "restore", &snap_path(&id, &fx.src), "--to", target.to_str().unwrap()]).ok();
    assert_trees_equal(&fx.src, &target);
    rec.run(&["check", "--read-data", "--recovery-key", rk.to_str().unwrap()]).ok();
    // Even when every key file is lost.
    for k in objects(&fx.full.repo, "keys") {
        delete_object(&fx.full.repo, &k);
    }
    fx.full.run(&["snapshots"]).expect_code(4);
    rec.run(&["--recovery-key", rk.to_str().unwrap(), "ls", &id]).ok();
    // A file that is not a recovery key: authentication error, one line.
    let bogus = fx.t.join("bogus.json");
    fs::write(&bogus, b"{\"format\":\"something else\"}").unwrap();
    rec.run(&["--recovery-key", bogus.to_str().unwrap(), "snapshots"]).expect_code(4).assert_one_line_error();
    // Another repository's recovery key is refused.
    let t2 = TestDir::new("recovery-other");
    let other = Reprise::new(t2.path());
    other.init();
    let out = other.without_password().run(&["--recovery-key", rk.to_str().unwrap(), "snapshots"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    out.assert_one_line_error();
}

/// Issue 13 item 5, issue 14: a write credential opens its own domain's
/// metadata and nothing that names or holds content — checked by a program
/// that decrypts everything the credential's secrets can open (index files,
/// pack directories, snapshot and WAL headers, marks, holds) and searches
/// the plaintext; the independent restorer restores nothing with it.
#[test]
fn a_write_credential_decrypts_no_name_and_no_content() {
    let py = std::env::var("REPRISE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let usable = std::process::Command::new(&py).args(["-c", "import cryptography, zstandard, blake3, cbor2"]).output().is_ok_and(|o| o.status.success());
    if !usable {
        assert!(std::env::var_os("REPRISE_TEST_REQUIRE_ALL").is_none(), "this test needs Python with cryptography, zstandard, blake3, cbor2 (REPRISE_TEST_PYTHON)");
        eprintln!("skipped: {py} cannot run the decryption check");
        return;
    }
    let fx = fixture("wo-credential-reads");
    let cred = fx.t.join("host.credential");
    fx.full.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap()]).ok();
    let text = fs::read_to_string(&cred).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(v.get("recovery_secret").is_none() && !text.contains("recovery_secret"), "the credential holds no recovery secret: {}", v["format"]);
    let host = fx.full.without_password().with_env("REPRISE_KEY_FILE", &cred).with_cache(fx.t.join("host-cache"));
    host.backup_paths(&[&fx.src]);
    let more = fx.src.join("new-visit.txt");
    write_file(&more, SECRET_CONTENT.as_bytes());
    host.backup(&["--path", fx.src.to_str().unwrap(), "--tag", "TAG-IN-CLEAR-3f9"]);
    // A full-key backup, a hold, and a prune mark (a snapshot removed, its
    // packs condemned): there is something of every kind to try.
    let kept = id_of(&fx.full.backup_paths(&[&fx.src]));
    fx.full.run(&["hold", "add", &kept, "--reason", "case 12"]).ok();
    let other = fx.t.join("other");
    write_file(&other.join("x.bin"), &Rng::new(8).bytes(200_000));
    let gone = id_of(&fx.full.backup_paths(&[&other]));
    delete_object(&fx.full.repo, &format!("snapshots/{gone}"));
    let pr = fx.full.run(&["--json", "prune", "--grace", "1h"]).ok().json();
    assert!(pr["mark"].is_string(), "{pr}");

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacker.py");
    let mut cmd = std::process::Command::new(&py);
    cmd.arg(&script).args(["--store", "local", "--path"]).arg(&fx.full.repo).arg("--credential").arg(&cred).arg("oracle");
    for needle in [SECRET_NAME, SECRET_DIR, "CONFIDENTIAL-MARKER-91c4e0", "new-visit.txt", "scans"] {
        cmd.args(["--needle", needle]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let o: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(o["needles_found"], serde_json::json!([]), "{o}");
    // It did open its own metadata (the search ran over something), and
    // nothing of the full key's domain.
    assert!(o["opened"]["index"].as_u64().unwrap() > 0 && o["opened"]["snapshots"].as_u64().unwrap() == 2, "{o}");
    assert!(o["refused"]["snapshots"].as_u64().unwrap() > 0 && o["refused"]["holds"].as_u64().unwrap() > 0, "{o}");
    // Marks are under the shared key every writer holds (it must honour
    // them): they name packs, never content.
    assert_eq!(o["opened"]["prune"], 1, "{o}");
    // The tag the host chose is its own metadata: readable by it, as
    // docs/STORAGE.md says; but no name or content.

    // The independent restorer, given the credential, restores nothing.
    let target = fx.t.join("py-target");
    let out = std::process::Command::new(&py)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/restorer/reprise_restore.py"))
        .arg("--repo")
        .arg(&fx.full.repo)
        .arg("--recovery-key")
        .arg(&cred)
        .arg("--target")
        .arg(&target)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the restorer restored with a write credential");
    assert!(!target.exists() || fs::read_dir(&target).unwrap().count() == 0);
}

/// `prune`, `hold remove`, `key revoke` and `key upgrade` are
/// refused to a write-only key and a write credential, changing nothing.
#[test]
fn write_only_keys_cannot_prune_lift_holds_or_revoke() {
    let fx = fixture("wo-no-delete");
    let id = id_of(&fx.full.backup_paths(&[&fx.src]));
    let hold = fx.full.run(&["--json", "hold", "add", &id, "--reason", "case 12"]).ok().json()["hold"].as_str().unwrap().to_owned();
    let cred = fx.t.join("host.credential");
    fx.full.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap()]).ok();
    let credential = fx.full.without_password().with_env("REPRISE_KEY_FILE", &cred);
    let before = repo_listing(&fx.full.repo);
    for who in [&fx.wo, &credential] {
        for args in [
            vec!["prune", "--grace", "0"],
            vec!["hold", "remove", &hold[..8]],
            vec!["key", "revoke", &fx.wo_key[..12]],
            vec!["key", "upgrade"],
        ] {
            let out = who.run(&args);
            assert_eq!(out.code, 5, "{}", out.describe());
            out.assert_one_line_error();
        }
    }
    assert_eq!(repo_listing(&fx.full.repo), before, "refused commands must not change the repository");
}

/// `repair index` rebuilds a writer's damaged index file in the writer's
/// own domain (signed by the administrator): the writer's snapshot
/// restores, `check` is clean, and the writer still deduplicates against
/// its old data (it trusts index files the administrator signed in its
/// domain, and no other domain's).
#[test]
fn repair_index_rebuilds_a_writers_index_in_its_own_domain() {
    let fx = fixture("wo-repair-index");
    settle(&fx.src);
    fx.full.backup_paths(&[&fx.src]);
    let admins: BTreeSet<String> = objects(&fx.full.repo, "index").into_iter().collect();
    let id = id_of(&fx.wo.backup_paths(&[&fx.src]));
    let writers: Vec<String> = objects(&fx.full.repo, "index").into_iter().filter(|o| !admins.contains(o)).collect();
    assert_eq!(writers.len(), 1, "{writers:?}");
    let size = size_of(&fx.full.repo, &writers[0]);
    flip_byte(&fx.full.repo, &writers[0], size / 2);
    let out = fx.full.run(&["check", "--read-data"]).expect_code(6);
    assert!(out.stdout.contains(&format!("DAMAGED {}", writers[0])), "{}", out.describe());

    let done = fx.full.run(&["--json", "repair", "index"]).ok().json();
    assert_eq!(done["damaged_index_files"].as_array().unwrap().len(), 1, "{done}");
    assert!(done["packs_indexed"].as_u64().unwrap() >= 1, "{done}");
    assert!(!fx.full.repo.join(&writers[0]).exists());
    let check = fx.full.check(&["--read-data"]).ok().json();
    assert!(problem_objects(&check).is_empty(), "{check}");
    let out = fx.t.join("out");
    fx.full.restore(&id, &out, &[] as &[&str]).ok();
    assert_trees_equal(&fx.src, &out.join(fx.src.strip_prefix("/").unwrap()));
    // The writer, without its files cache, finds every chunk again.
    let again = fx.wo.backup(&[std::ffi::OsStr::new("--no-cache"), std::ffi::OsStr::new("--path"), fx.src.as_os_str()]);
    assert!(summary(&again, "files_read") > 0, "{again}");
    assert_eq!(summary(&again, "new_bytes"), 0, "{again}");
}
