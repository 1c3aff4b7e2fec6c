//! Damaged repositories: `check --read-data` names exactly the damaged
//! object (exit 6); `restore` restores every undamaged file bit-identical
//! and lists the damaged ones (exit 6); a lost index never loses data.
//!
//! Fixture: snapshot 1 holds directory `a`; snapshot 2 holds `a` (all
//! deduplicated) and `b`, whose chunks go to one new data pack (`--threads
//! 1`), next to a tree pack and one new index file. Damaging snapshot 2's
//! data pack may only ever affect files of `b`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use common::*;

struct Fx {
    t: TestDir,
    r: Reprise,
    src: PathBuf,
    a: PathBuf,
    b: PathBuf,
    snap1: String,
    snap2: String,
    /// The data pack holding `b`'s chunks.
    data_pack: String,
    /// The index file snapshot 2's backup wrote.
    index2: String,
    b_files: Vec<String>,
}

fn fixture(name: &str) -> Fx {
    let t = TestDir::new(name);
    let r = Reprise::new(t.path());
    r.init();
    let src = t.join("src");
    let (a, b) = (src.join("a"), src.join("b"));
    let mut rng = Rng::new(0x00C0_FFEE);
    random_files(&a, &mut rng, 6, 20_000, 400_000);
    write_random_file(&a.join("large"), &mut rng, 2_000_000);
    random_files(&b, &mut rng, 8, 20_000, 300_000);
    write_file(&b.join("empty"), b"");
    stamp_mtimes(&src, &mut rng);

    let snap1 = id_of(&r.backup_paths(&[&a]));
    let packs1 = packs(&r.repo);
    let index1 = objects(&r.repo, "index");
    let out2 = r.backup(&["--threads", "1", "--path", a.to_str().unwrap(), "--path", b.to_str().unwrap()]);
    let snap2 = id_of(&out2);
    let mut new_packs: Vec<String> = packs(&r.repo).into_iter().filter(|p| !packs1.contains(p)).collect();
    assert_eq!(new_packs.len(), 2, "expected one data pack and one tree pack: {new_packs:?}");
    new_packs.sort_by_key(|p| size_of(&r.repo, p));
    let data_pack = new_packs.pop().unwrap();
    assert!(size_of(&r.repo, &data_pack) > 500_000);
    let index2: Vec<String> = objects(&r.repo, "index").into_iter().filter(|i| !index1.contains(i)).collect();
    assert_eq!(index2.len(), 1, "{index2:?}");
    let mut b_files: Vec<String> = fs::read_dir(&b).unwrap().map(|e| format!("b/{}", e.unwrap().file_name().to_string_lossy())).collect();
    b_files.sort();
    Fx { t, r, src, a, b, snap1, snap2, data_pack, index2: index2[0].clone(), b_files }
}

impl Fx {
    /// `check --read-data`: exit 6 and exactly `damaged` named.
    #[track_caller]
    fn check_names_exactly(&self, damaged: &[&str]) {
        let out = self.r.check(&["--read-data"]).expect_code(6);
        let report = out.json();
        let expected: BTreeSet<String> = damaged.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(problem_objects(&report), expected, "check must name exactly the damaged object(s): {}", out.describe());
        // The human form says the same, object first.
        let human = self.r.run(&["check", "--read-data"]).expect_code(6);
        for d in damaged {
            assert!(human.stdout.contains(&format!("DAMAGED {d}")), "{}", human.describe());
        }
        let named: BTreeSet<&str> = human.stdout.lines().filter_map(|l| l.strip_prefix("DAMAGED ")).filter_map(|l| l.split(": ").next()).collect();
        assert_eq!(named.len(), damaged.len(), "{}", human.describe());
    }

    /// Restores snapshot 2's `src` and checks: every file of `a` and every
    /// undamaged file of `b` bit-identical; damaged ones listed and absent.
    /// Returns the damaged paths (relative to the target).
    #[track_caller]
    fn restore_snap2(&self, target_name: &str, expect_damage: bool) -> BTreeSet<String> {
        let target = self.t.join(target_name);
        let out = self.r.restore(&snap_path(&self.snap2, &self.src), &target, &[] as &[&str]);
        let damaged = damaged_paths(&out.stderr);
        if expect_damage {
            assert_eq!(out.code, 6, "{}", out.describe());
            assert!(!damaged.is_empty(), "damaged files must be listed: {}", out.describe());
            let last = out.stderr.lines().last().unwrap();
            assert!(last.starts_with("reprise: ") && !last.starts_with("reprise: damaged, not restored"), "{}", out.describe());
        } else {
            assert_eq!(out.code, 0, "{}", out.describe());
            assert!(damaged.is_empty(), "{}", out.describe());
        }
        for d in &damaged {
            assert!(self.b_files.contains(d), "{d} is not in the damaged pack: {}", out.describe());
            assert!(!target.join(d).exists(), "damaged {d} must not be left in the target");
        }
        let opts = Compare { root_meta: false, owners: is_root(), missing_ok: damaged.iter().map(|d| d.as_bytes().to_vec()).collect() };
        assert_trees_equal_with(&self.a, &target.join("a"), &Compare { root_meta: true, ..opts.clone() });
        let missing_ok = damaged.iter().map(|d| d.strip_prefix("b/").unwrap().as_bytes().to_vec()).collect();
        assert_trees_equal_with(&self.b, &target.join("b"), &Compare { root_meta: true, missing_ok, ..opts });
        damaged
    }

    fn restore_snap1_fully(&self, target_name: &str) {
        let target = self.t.join(target_name);
        self.r.restore(&snap_path(&self.snap1, &self.a), &target, &[] as &[&str]).ok();
        assert_trees_equal(&self.a, &target);
    }
}

#[test]
fn intact_repository_checks_clean() {
    let fx = fixture("intact");
    let out = fx.r.check(&["--read-data"]).ok();
    let report = out.json();
    assert!(problem_objects(&report).is_empty(), "{}", out.describe());
    assert_eq!(report["snapshots"], 2);
    assert_eq!(report["packs_read"].as_u64().unwrap(), packs(&fx.r.repo).len() as u64);
    fx.restore_snap2("out", false);
}

#[test]
fn flipped_byte_in_a_pack() {
    let fx = fixture("flip-pack");
    let size = size_of(&fx.r.repo, &fx.data_pack);
    flip_byte(&fx.r.repo, &fx.data_pack, size / 2);
    fx.check_names_exactly(&[&fx.data_pack]);
    // One blob is damaged: one file of b.
    let damaged = fx.restore_snap2("out", true);
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    fx.restore_snap1_fully("out1");

    // A subset check reads the damaged pack only in its own group.
    let name = fx.data_pack.rsplit('/').next().unwrap();
    let first = u32::from_str_radix(&name[..2], 16).unwrap();
    let group = first * 3 / 256 + 1;
    for n in 1..=3 {
        let out = fx.r.check(&["--read-data-subset", &format!("{n}/3")]);
        if n == group {
            assert_eq!(out.code, 6, "{}", out.describe());
            assert_eq!(problem_objects(&out.json()), BTreeSet::from([fx.data_pack.clone()]));
        } else {
            assert_eq!(out.code, 0, "group {n} holds no damaged pack: {}", out.describe());
        }
    }
    let pct = fx.r.check(&["--read-data-subset", "100%"]).expect_code(6);
    assert_eq!(problem_objects(&pct.json()), BTreeSet::from([fx.data_pack.clone()]));
}

#[test]
fn flipped_byte_in_a_pack_key() {
    let fx = fixture("flip-pack-key");
    // Bytes 8..88 hold the sealed pack key: every blob of the pack is lost.
    flip_byte(&fx.r.repo, &fx.data_pack, 40);
    fx.check_names_exactly(&[&fx.data_pack]);
    let damaged = fx.restore_snap2("out", true);
    let non_empty: BTreeSet<String> = fx.b_files.iter().filter(|f| *f != "b/empty").cloned().collect();
    assert_eq!(damaged, non_empty);
    fx.restore_snap1_fully("out1");
}

#[test]
fn truncated_pack_is_named_by_check() {
    let fx = fixture("truncate-pack-check");
    let size = size_of(&fx.r.repo, &fx.data_pack);
    truncate_object(&fx.r.repo, &fx.data_pack, size / 2);
    fx.check_names_exactly(&[&fx.data_pack]);
    fx.restore_snap1_fully("out1");
}

#[test]
fn truncated_pack_restores_everything_else() {
    let fx = fixture("truncate-pack");
    let size = size_of(&fx.r.repo, &fx.data_pack);
    truncate_object(&fx.r.repo, &fx.data_pack, size / 2);
    let damaged = fx.restore_snap2("out", true);
    assert!(damaged.len() < fx.b_files.len() - 1, "files stored before the cut must be restored: {damaged:?}");
}

#[test]
fn deleted_pack() {
    let fx = fixture("delete-pack");
    delete_object(&fx.r.repo, &fx.data_pack);
    fx.check_names_exactly(&[&fx.data_pack]);
    let damaged = fx.restore_snap2("out", true);
    let non_empty: BTreeSet<String> = fx.b_files.iter().filter(|f| *f != "b/empty").cloned().collect();
    assert_eq!(damaged, non_empty);
    fx.restore_snap1_fully("out1");
}

#[test]
fn flipped_byte_in_an_index_file() {
    let fx = fixture("flip-index");
    let size = size_of(&fx.r.repo, &fx.index2);
    flip_byte(&fx.r.repo, &fx.index2, size / 2);
    fx.check_names_exactly(&[&fx.index2]);
    // The packs' own directories replace the damaged index: nothing is lost.
    fx.restore_snap2("out", false);
    fx.restore_snap1_fully("out1");
    let ls = fx.r.run(&["--json", "ls", &fx.snap2]).ok().json();
    assert!(ls.as_array().unwrap().len() > 10);
}

#[test]
fn deleted_index_file_is_not_damage() {
    let fx = fixture("delete-index");
    delete_object(&fx.r.repo, &fx.index2);
    // Nothing is damaged: the packs the index described are still there and
    // describe themselves; check says so in a note, and exits 0. (A deleted
    // index file cannot be named: nothing refers to index files by name.)
    let out = fx.r.check(&["--read-data"]).ok();
    let report = out.json();
    assert!(problem_objects(&report).is_empty(), "{}", out.describe());
    let notes = report["notes"].to_string();
    assert!(notes.contains("in no index"), "check should note the unindexed packs: {}", out.describe());
    fx.restore_snap1_fully("out1");
}

#[test]
fn deleted_index_file_restore_falls_back_to_pack_directories() {
    let fx = fixture("delete-index-restore");
    delete_object(&fx.r.repo, &fx.index2);
    let ls = fx.r.run(&["--json", "ls", &fx.snap2]).ok().json();
    assert!(ls.as_array().unwrap().len() > 10);
    fx.restore_snap2("out", false);
}

#[test]
fn deleted_index_file_is_rebuilt_by_the_next_backup() {
    let fx = fixture("reindex");
    delete_object(&fx.r.repo, &fx.index2);
    let out = fx.r.backup_paths(&[&fx.a]);
    assert!(out["adopted_packs"].as_u64().unwrap() >= 1, "{out}");
    let check = fx.r.check(&["--read-data"]).ok().json();
    assert_eq!(check["notes"], serde_json::json!([]), "{check}");
    fx.restore_snap2("out", false);
}

#[test]
fn flipped_byte_in_a_snapshot() {
    let fx = fixture("flip-snapshot");
    let object = format!("snapshots/{}", fx.snap1);
    let size = size_of(&fx.r.repo, &object);
    flip_byte(&fx.r.repo, &object, size - 10);
    fx.check_names_exactly(&[&object]);
    // The other snapshot is untouched.
    fx.restore_snap2("out", false);
    // `snapshots` lists the readable one and warns about the other.
    let out = fx.r.run(&["--json", "snapshots"]).ok();
    assert_eq!(out.json().as_array().unwrap().len(), 1);
    assert!(out.stderr.contains(&object), "{}", out.describe());
}

#[test]
fn restoring_a_damaged_snapshot_reports_damage() {
    let fx = fixture("flip-snapshot-restore");
    let object = format!("snapshots/{}", fx.snap1);
    let size = size_of(&fx.r.repo, &object);
    flip_byte(&fx.r.repo, &object, size - 10);
    let out = fx.r.restore(&fx.snap1, &fx.t.join("out1"), &[] as &[&str]);
    assert_eq!(out.code, 6, "{}", out.describe());
    out.assert_one_line_error();
    assert!(out.stderr.contains(&object), "{}", out.describe());
}

/// Adds a second full key and damages one base64 character of its sealed
/// secrets (the file stays valid JSON). Returns the object path.
fn damage_second_key(fx: &Fx) -> String {
    let added =
        fx.r.with_env("REPRISE_NEW_PASSWORD", "second passphrase").run(&["--json", "key", "add", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok().json();
    let object = format!("keys/{}", added["added"].as_str().unwrap());
    let text = fs::read_to_string(fx.r.repo.join(&object)).unwrap();
    let sealed = text.find("\"sealed\"").unwrap();
    let at = sealed + text[sealed..].find(": \"").unwrap() + 10;
    edit_object(&fx.r.repo, &object, |p| {
        let mut bytes = text.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        fs::write(p, bytes).unwrap();
    });
    object
}

#[test]
fn flipped_byte_in_a_key_file_spares_the_other_keys() {
    let fx = fixture("flip-key");
    damage_second_key(&fx);
    fx.restore_snap2("out", false);
    // The damaged key no longer opens the repository; one error line.
    let out = fx.r.with_password("second passphrase").run(&["snapshots"]);
    assert_ne!(out.code, 0, "{}", out.describe());
    out.assert_one_line_error();
}

#[test]
fn flipped_byte_in_a_key_file_is_named_by_check() {
    let fx = fixture("flip-key-check");
    let object = damage_second_key(&fx);
    fx.check_names_exactly(&[&object]);
}

#[test]
fn damaged_only_key_is_reported_as_damage_not_as_a_wrong_passphrase() {
    let fx = fixture("flip-only-key");
    let rk = fx.t.join("recovery.json");
    fx.r.run(&["key", "export-recovery", "-o", rk.to_str().unwrap()]).ok();
    let keys = objects(&fx.r.repo, "keys");
    assert_eq!(keys.len(), 1);
    let object = keys[0].clone();
    let text = fs::read_to_string(fx.r.repo.join(&object)).unwrap();
    let sealed = text.find("\"sealed\"").unwrap();
    let at = sealed + text[sealed..].find(": \"").unwrap() + 10;
    edit_object(&fx.r.repo, &object, |p| {
        let mut bytes = text.clone().into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        fs::write(p, bytes).unwrap();
    });
    // The right passphrase: the key file is damaged, say so.
    let out = fx.r.run(&["snapshots"]);
    assert_eq!(out.code, 6, "{}", out.describe());
    out.assert_one_line_error();
    assert!(out.stderr.contains(&object), "{}", out.describe());
    // With the recovery key, check names it.
    let out = fx.r.without_password().run(&["--json", "--recovery-key", rk.to_str().unwrap(), "check", "--read-data"]).expect_code(6);
    assert_eq!(problem_objects(&out.json()), BTreeSet::from([object]));
}
