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
    // `snapshots` lists the readable one and the damaged one, and exits 6.
    let out = fx.r.run(&["--json", "snapshots"]).expect_code(6);
    let listed = out.json();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 2, "{}", out.describe());
    assert_eq!(listed.iter().filter(|s| s["damaged"].is_string()).map(|s| s["object"].as_str().unwrap()).collect::<Vec<_>>(), vec![object.as_str()]);
    assert_eq!(out.json_values().len(), 1, "one JSON document: {}", out.describe());
    out.assert_one_line_error();
    let human = fx.r.run(&["snapshots"]).expect_code(6);
    assert!(human.stdout.contains(&format!("DAMAGED {object}")), "{}", human.describe());
    human.assert_one_line_error();
}

/// Flips a byte of a snapshot object: near its end (the body: the header
/// still authenticates, so its time is known) or near its start (the
/// header: nothing is known of it).
fn damage_snapshot(fx: &Fx, id: &str, in_header: bool) -> String {
    let object = format!("snapshots/{id}");
    let size = size_of(&fx.r.repo, &object);
    flip_byte(&fx.r.repo, &object, if in_header { 20 } else { size - 10 });
    object
}

/// The bug: with the newest snapshot damaged, `restore latest` restored
/// the older one, exit 0, and said nothing.
#[test]
fn restore_latest_never_silently_restores_an_older_snapshot() {
    for in_header in [false, true] {
        let fx = fixture(if in_header { "latest-damaged-header" } else { "latest-damaged-body" });
        let object = damage_snapshot(&fx, &fx.snap2, in_header);
        let target = fx.t.join("out");
        let out = fx.r.restore("latest", &target, &[] as &[&str]).expect_code(6);
        out.assert_one_line_error();
        // It names the damaged one and the explicit alternative.
        assert!(out.stderr.contains(&object) && out.stderr.contains(&fx.snap1[..8]), "{}", out.describe());
        assert!(!target.exists(), "nothing may be restored: {}", out.describe());
        // The same for everything that takes `latest`, and for a component.
        fx.r.run(&["ls", "latest"]).expect_code(6).assert_one_line_error();
        fx.r.run(&["diff", &fx.snap1, "latest"]).expect_code(6).assert_one_line_error();
        let plan = fx.t.join("reprise.toml");
        fs::write(&plan, format!("[repositories.main]\nurl = \"{}\"\n\n[components.files]\ntype = \"files\"\npaths = [\"{}\"]\n", fx.r.repo.display(), fx.a.display())).unwrap();
        let out = fx.r.run(&["--plan", plan.to_str().unwrap(), "restore", "files", "--to", target.to_str().unwrap()]).expect_code(6);
        assert!(out.stderr.contains(&fx.snap1[..8]), "{}", out.describe());
        assert!(!target.exists());
        // The named alternative works.
        fx.restore_snap1_fully("out1");
    }
}

#[test]
fn damaged_older_snapshot_leaves_latest_alone_when_its_time_is_known() {
    let fx = fixture("older-damaged");
    damage_snapshot(&fx, &fx.snap1, false);
    // Its header still says it is older: `latest` is the newest, as asked.
    let out = fx.r.restore("latest", &fx.t.join("out"), &[] as &[&str]).ok();
    assert!(out.stdout.contains(&fx.snap2[..8]), "{}", out.describe());
    // Its header unreadable: it could be anything, so `latest` is refused.
    let fx = fixture("older-damaged-header");
    damage_snapshot(&fx, &fx.snap1, true);
    fx.r.restore("latest", &fx.t.join("out"), &[] as &[&str]).expect_code(6).assert_one_line_error();
    fx.restore_snap2("out2", false);
}

/// The bug: after a byte flip in an index file, `check` exited 6 forever
/// and its advice (`check --read-data`) printed the same advice.
#[test]
fn damaged_index_file_is_cleared_by_repair_index() {
    let fx = fixture("repair-index");
    let size = size_of(&fx.r.repo, &fx.index2);
    flip_byte(&fx.r.repo, &fx.index2, size / 2);
    let out = fx.r.run(&["check", "--read-data"]).expect_code(6);
    let line = out.stdout.lines().find(|l| l.starts_with(&format!("DAMAGED {}", fx.index2))).unwrap_or_else(|| panic!("{}", out.describe()));
    assert!(line.contains("`reprise repair index`"), "the damage names the command that helps: {}", out.describe());
    // A backup indexes the packs again, but the damaged file stays.
    fx.r.backup_paths(&[&fx.a]);
    fx.check_names_exactly(&[&fx.index2]);
    // A write-only key may not remove anything.
    let cred = fx.t.join("cred");
    fx.r.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap()]).ok();
    let before = repo_listing(&fx.r.repo);
    fx.r.without_password().run(&["--key-file", cred.to_str().unwrap(), "repair", "index"]).expect_code(5).assert_one_line_error();
    // A dry run says what it would do, and does nothing.
    let dry = fx.r.run(&["--json", "repair", "index", "--dry-run"]).ok().json();
    assert_eq!(dry["damaged_index_files"][0]["object"], fx.index2.as_str(), "{dry}");
    assert_eq!(repo_listing(&fx.r.repo), before);
    let done = fx.r.run(&["--json", "repair", "index"]).ok().json();
    assert_eq!(done["damaged_index_files"].as_array().unwrap().len(), 1, "{done}");
    assert!(!fx.r.repo.join(&fx.index2).exists());
    let check = fx.r.check(&["--read-data"]).ok().json();
    assert!(problem_objects(&check).is_empty() && check["notes"] == serde_json::json!([]), "{check}");
    fx.restore_snap2("out", false);
    fx.restore_snap1_fully("out1");
    // Run again: nothing left to do.
    let again = fx.r.run(&["--json", "repair", "index"]).ok().json();
    assert_eq!((again["packs_indexed"].as_u64(), again["damaged_index_files"].as_array().unwrap().len()), (Some(0), 0), "{again}");
}

/// Durability order: a damaged index file is removed only once the index
/// files that replace it are stored. With `tmp/` immutable no object can
/// be created (the local backend writes there first), while index files
/// could still be removed: the repair must fail and remove nothing.
#[test]
fn repair_index_removes_nothing_before_the_new_index_is_stored() {
    let fx = fixture("repair-index-order");
    let size = size_of(&fx.r.repo, &fx.index2);
    flip_byte(&fx.r.repo, &fx.index2, size / 2);
    let tmp = fx.r.repo.join("tmp");
    let locked = std::process::Command::new("chattr").arg("+i").arg(&tmp).status().is_ok_and(|s| s.success());
    if !locked {
        return skip("`chattr +i` is not supported here");
    }
    let out = fx.r.run(&["repair", "index"]);
    let _ = std::process::Command::new("chattr").arg("-i").arg(&tmp).status();
    assert_ne!(out.code, 0, "{}", out.describe());
    out.assert_one_line_error();
    assert!(fx.r.repo.join(&fx.index2).exists(), "the damaged index file was removed before its replacement was stored: {}", out.describe());
    fx.r.run(&["repair", "index"]).ok();
    assert!(!fx.r.repo.join(&fx.index2).exists());
}

/// The bug: a damaged `config` made `check` fail with the error telling
/// to run `check`.
#[test]
fn damaged_config_names_a_command_that_helps() {
    let fx = fixture("repair-config");
    let config = fx.r.repo.join("config");
    let text = fs::read_to_string(&config).unwrap();
    // A copy of the repository, as `reprise copy` makes (same config bytes).
    let copy = fx.t.join("copy");
    fs::create_dir(&copy).unwrap();
    fs::write(copy.join("config"), &text).unwrap();
    for (damage, expect) in [
        // Not JSON any more.
        (text.replacen('{', "[", 1), 6),
        // Still JSON, one digit of the repository ID changed: damage, not a wrong passphrase.
        ({
            let at = text.find("\"id\": \"").unwrap() + 7;
            let mut b = text.clone().into_bytes();
            b[at] = if b[at] == b'0' { b'1' } else { b'0' };
            String::from_utf8(b).unwrap()
        }, 6),
    ] {
        edit_object(&fx.r.repo, "config", |p| fs::write(p, &damage).unwrap());
        let out = fx.r.run(&["check"]).expect_code(expect);
        out.assert_one_line_error();
        assert!(out.stderr.contains("`reprise repair config`") && !out.stderr.contains("reprise check"), "{}", out.describe());
        let r = fx.r.run(&["--json", "repair", "config"]).ok().json();
        assert_eq!(r["repaired"], true, "{r}");
        assert_eq!(r["defaults"], serde_json::json!([]), "the damaged text still had the parameters: {r}");
        assert_eq!(fs::read_to_string(&config).unwrap(), text, "the same config as before the damage");
        fx.r.check(&["--read-data"]).ok();
    }
    // Gone entirely: rebuilt from the key (parameters to defaults, said so),
    // or taken from the copy, byte for byte.
    edit_object(&fx.r.repo, "config", |p| fs::write(p, b"").unwrap());
    let r = fx.r.run(&["--json", "repair", "config", "--dry-run"]).ok().json();
    assert!(!r["defaults"].as_array().unwrap().is_empty(), "{r}");
    assert_eq!(fs::read(&config).unwrap(), b"", "a dry run writes nothing");
    fx.r.run(&["repair", "config", "--from", copy.to_str().unwrap()]).ok();
    assert_eq!(fs::read_to_string(&config).unwrap(), text);
    fx.restore_snap2("out", false);
    // A location that is not a copy of this repository is refused.
    let other = TestDir::new("repair-config-other");
    let o = Reprise::new(other.path());
    o.init();
    edit_object(&fx.r.repo, "config", |p| fs::write(p, b"").unwrap());
    fx.r.run(&["repair", "config", "--from", o.repo.to_str().unwrap()]).expect_code(2).assert_one_line_error();
    assert_eq!(fs::read(&config).unwrap(), b"");
}

/// A prune mark that cannot be read stops every backup (writers must read
/// marks); the message names `repair marks`, which removes it safely.
#[test]
fn damaged_prune_mark_is_cleared_by_repair_marks() {
    let fx = fixture("repair-marks");
    // Forget snapshot 2 by hand: its packs become unused, and a prune
    // with the default grace period marks them.
    delete_object(&fx.r.repo, &format!("snapshots/{}", fx.snap2));
    fx.r.run(&["prune"]).ok();
    let marks = objects(&fx.r.repo, "prune");
    assert_eq!(marks.len(), 1, "{marks:?}");
    flip_byte(&fx.r.repo, &marks[0], 12);
    let out = fx.r.run(&["backup", "--path", fx.a.to_str().unwrap()]).expect_code(6);
    out.assert_one_line_error();
    assert!(out.stderr.contains("`reprise repair marks`") && out.stderr.contains(&marks[0]), "{}", out.describe());
    fx.r.run(&["repair", "marks"]).ok();
    assert!(objects(&fx.r.repo, "prune").is_empty());
    fx.r.backup_paths(&[&fx.a]);
    fx.r.check(&["--read-data"]).ok();
    fx.restore_snap1_fully("out1");
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

/// A damaged key file kept `check` failing forever: `repair keys` clears
/// it (and only it), as the message says.
#[test]
fn damaged_key_file_is_cleared_by_repair_keys() {
    let fx = fixture("repair-keys");
    let object = damage_second_key(&fx);
    let out = fx.r.run(&["check"]).expect_code(6);
    let line = out.stdout.lines().find(|l| l.starts_with(&format!("DAMAGED {object}"))).unwrap_or_else(|| panic!("{}", out.describe()));
    assert!(line.contains("`reprise repair keys`"), "{}", out.describe());
    let keys_before = objects(&fx.r.repo, "keys").len();
    let r = fx.r.run(&["--json", "repair", "keys"]).ok().json();
    assert_eq!(r["damaged_keys"][0]["object"], object.as_str(), "{r}");
    assert_eq!(objects(&fx.r.repo, "keys").len(), keys_before - 1);
    fx.r.check(&["--read-data"]).ok();
    fx.restore_snap2("out", false);
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
