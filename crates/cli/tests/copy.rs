//! `copy` to a second repository (3-2-1), on real repositories: local to
//! local, local to S3 (moto); interrupted by `kill -9` and resumed; the
//! copy's own retention respected; a damaged source pack never propagated;
//! `status` showing the posture.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::emulators;
use common::*;
use serde_json::Value;

const DAMAGED: i32 = 6;
const USAGE: i32 = 2;
const PERMISSION: i32 = 5;

struct Setup {
    t: TestDir,
    plan: PathBuf,
    records: PathBuf,
    documents: PathBuf,
}

impl Setup {
    /// Two local repositories, `secondary` a copy of `primary`, and two
    /// components backing up to `primary`. `secondary_url` replaces the
    /// secondary's location (object storage).
    fn new(name: &str, records_objectives: &str, secondary_url: Option<&str>, extra: &str) -> Setup {
        let t = TestDir::new(name);
        let records = t.join("records");
        let documents = t.join("documents");
        fs::create_dir_all(&records).unwrap();
        fs::create_dir_all(&documents).unwrap();
        let plan = t.join("reprise.toml");
        let secondary = secondary_url.map_or_else(|| t.join("secondary").display().to_string(), str::to_owned);
        fs::write(
            &plan,
            format!(
                r#"[repositories.primary]
url = "{primary}"
password_env = "REPRISE_PASSWORD"
site = "paris-dc1"

[repositories.secondary]
url = "{secondary}"
password_env = "REPRISE_PASSWORD"
site = "{secondary_site}"
copy_of = "primary"
{extra}
[components.records]
type = "files"
repository = "primary"
paths = ["{records}"]
{records_objectives}

[components.documents]
type = "files"
repository = "primary"
paths = ["{documents}"]
"#,
                primary = t.join("primary").display(),
                secondary_site = if secondary_url.is_some() { "francecentral" } else { "paris-dc2" },
                records = records.display(),
                documents = documents.display(),
            ),
        )
        .unwrap();
        Setup { t, plan, records, documents }
    }

    /// A runner whose `--repo` is a plan repository name.
    fn on(&self, repository: &str) -> Reprise {
        Reprise::at(self.t.path(), PathBuf::from(repository)).with_env("REPRISE_PLAN", self.plan.as_os_str().to_owned())
    }

    fn primary_dir(&self) -> PathBuf {
        self.t.join("primary")
    }

    fn secondary_dir(&self) -> PathBuf {
        self.t.join("secondary")
    }
}

fn init_small_packs(r: &Reprise) {
    r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
}

/// `copy --json ARGS` (source: the plan's primary), asserting success; the
/// report of the one destination.
#[track_caller]
fn copy(s: &Setup, args: &[&str]) -> Value {
    let mut all = vec!["--json", "copy"];
    all.extend_from_slice(args);
    // `copy` takes its source from the plan; `--repo primary` says the same.
    let v = s.on("primary").run(&all).ok().json();
    let reports = v.as_array().expect("one report per destination");
    assert_eq!(reports.len(), 1, "{v}");
    reports[0].clone()
}

fn ids(v: &Value, field: &str) -> BTreeSet<String> {
    v[field].as_array().unwrap_or_else(|| panic!("no {field} in {v}")).iter().map(|x| x.as_str().unwrap().to_owned()).collect()
}

fn snapshot_ids(r: &Reprise, component: Option<&str>) -> BTreeSet<String> {
    r.snapshots().iter().filter(|s| component.is_none_or(|c| s["component"] == c)).map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

/// Pack names (the file names) of a local repository.
fn pack_names(repo: &Path) -> BTreeSet<String> {
    packs(repo).iter().map(|p| p.rsplit('/').next().unwrap().to_owned()).collect()
}

/// Every object of `copy` that is also in `original` has the same bytes,
/// and every content-named object hashes to its name.
fn assert_byte_identical_mirror(original: &Path, copy: &Path) {
    for dir in ["data", "index", "snapshots", "keys", "holds"] {
        for o in objects(copy, dir) {
            let bytes = fs::read(copy.join(&o)).unwrap();
            let name = o.rsplit('/').next().unwrap();
            assert_eq!(blake3_hex(&bytes), name, "{o} on the copy does not hash to its name");
            if dir != "index" {
                assert_eq!(fs::read(original.join(&o)).ok().as_deref(), Some(bytes.as_slice()), "{o} differs from the original");
            }
        }
    }
    assert_eq!(fs::read(original.join("config")).unwrap(), fs::read(copy.join("config")).unwrap(), "a copy has the original's config");
}

/// An object's name: BLAKE3 of its bytes, in lower-case hex (docs/FORMAT.md),
/// computed here with the `blake3` crate: asking the engine's own `Id`
/// would check the engine against itself.
fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

#[test]
fn copy_local_to_local_then_only_what_is_new() {
    let s = Setup::new("copy-local", "", None, "");
    let mut rng = Rng::new(7);
    build_rich_tree(&s.records, &s.t.join("outside"), 11);
    random_files(&s.documents, &mut rng, 6, 300_000, 900_000);
    let p = s.on("primary");
    let sec = s.on("secondary");
    init_small_packs(&p);
    p.backup(&["records"]);
    p.backup(&["documents"]);
    let primary_snaps = snapshot_ids(&p, None);
    assert_eq!(primary_snaps.len(), 2);
    // A legal hold travels with its snapshot.
    let records_id = snapshot_ids(&p, Some("records")).into_iter().next().unwrap();
    p.run(&["hold", "add", &records_id, "--reason", "case 2026-7"]).ok();

    // A dry run writes nothing, not even the destination's config.
    let dry = copy(&s, &["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(ids(&dry, "snapshots_copied"), primary_snaps);
    assert!(!s.secondary_dir().exists(), "a dry run created the destination");

    let first = copy(&s, &[]);
    assert_eq!(first["initialised"], true, "{first}");
    assert_eq!(ids(&first, "snapshots_copied"), primary_snaps);
    assert_eq!(ids(&first, "packs_written"), pack_names(&s.primary_dir()), "every pack is needed by the two snapshots");
    assert_eq!(first["holds_copied"], 1);
    assert!(first["damage"].as_array().unwrap().is_empty());
    assert_eq!(first["keys_copied"], 1);

    // The copy is the same repository: it opens with the same passphrase,
    // checks clean with every byte read, and restores bit for bit.
    let check = sec.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    assert_eq!(check.json()["snapshots"], 2);
    assert_eq!(snapshot_ids(&sec, None), primary_snaps);
    assert_byte_identical_mirror(&s.primary_dir(), &s.secondary_dir());
    let holds = sec.run(&["--json", "hold", "list"]).ok().json();
    assert_eq!(holds[0]["reason"], "case 2026-7");
    for (component, src) in [("records", &s.records), ("documents", &s.documents)] {
        let id = snapshot_ids(&sec, Some(component)).into_iter().next().unwrap();
        let target = s.t.join(format!("restored-{component}"));
        sec.restore(&snap_path(&id, src), &target, &[] as &[&str]).ok();
        assert_trees_equal(src, &target);
    }

    // Nothing new: nothing written.
    let again = copy(&s, &[]);
    assert_eq!(again["objects_copied"], 0, "{again}");
    assert!(ids(&again, "snapshots_copied").is_empty());
    assert_eq!(again["snapshots_present"], 2);

    // A new backup: only its snapshot and the packs it added travel.
    let before = pack_names(&s.primary_dir());
    random_files(&s.documents.join("new"), &mut rng, 3, 400_000, 600_000);
    p.backup(&["documents"]);
    let new_packs: BTreeSet<String> = pack_names(&s.primary_dir()).difference(&before).cloned().collect();
    assert!(!new_packs.is_empty());
    let third = copy(&s, &[]);
    assert_eq!(ids(&third, "packs_written"), new_packs, "{third}");
    assert_eq!(ids(&third, "snapshots_copied").len(), 1);
    assert_eq!(third["objects_copied"].as_u64().unwrap(), new_packs.len() as u64 + 1 + 1, "packs, one index file, one snapshot: {third}");
    assert_eq!(sec.check(&["--read-data"]).code, 0);
    assert_byte_identical_mirror(&s.primary_dir(), &s.secondary_dir());

    // The human report says what happened.
    let human = p.run(&["copy"]).ok();
    assert!(human.stdout.contains("primary -> secondary") && human.stdout.contains("copied 0 snapshots"), "{}", human.stdout);

    // A pack lost from the copy's storage (still named by its index) is
    // sent again when a new snapshot needs its blobs.
    let lost = pack_names(&s.secondary_dir())
        .into_iter()
        .max_by_key(|n| size_of(&s.secondary_dir(), &format!("data/{}/{n}", &n[..2])))
        .unwrap();
    delete_object(&s.secondary_dir(), &format!("data/{}/{lost}", &lost[..2]));
    assert_ne!(sec.check(&[] as &[&str]).code, 0, "check sees the lost pack");
    fs::write(s.documents.join("touch.txt"), b"a small change\n").unwrap();
    fs::write(s.records.join("touch.txt"), b"a small change\n").unwrap();
    p.backup(&["documents"]);
    p.backup(&["records"]);
    let healed = copy(&s, &[]);
    assert!(ids(&healed, "packs_written").contains(&lost), "{healed}");
    let check = sec.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
}

#[test]
fn copy_refuses_another_repository_and_unknown_names() {
    let s = Setup::new("copy-refuse", "", None, "");
    fs::write(s.records.join("a"), b"a").unwrap();
    let p = s.on("primary");
    p.init();
    p.backup(&["records"]);
    // The secondary holds a repository of its own.
    s.on("secondary").init();
    let before = repo_listing(&s.secondary_dir());
    let out = p.run(&["copy"]).expect_code(USAGE);
    out.assert_one_line_error();
    assert!(out.stderr.contains("holds another repository") && out.stderr.contains("empty location"), "{}", out.describe());
    assert_eq!(repo_listing(&s.secondary_dir()), before, "nothing written to another repository");

    let out = p.run(&["copy", "--to", "tertiary"]).expect_code(USAGE);
    out.assert_one_line_error();
    assert!(out.stderr.contains("no repository 'tertiary'") && out.stderr.contains("primary, secondary"), "{}", out.describe());
    let out = p.run(&["copy", "--to", "primary"]).expect_code(USAGE);
    out.assert_one_line_error();

    // A write-only key cannot copy: copying reads snapshot trees.
    fs::remove_dir_all(s.secondary_dir()).unwrap();
    let cred = s.t.join("write.credential");
    p.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap(), "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    let out = p.without_password().run(&["--key-file", cred.to_str().unwrap(), "copy"]).expect_code(PERMISSION);
    out.assert_one_line_error();
    assert!(out.stderr.contains("full-access key"), "{}", out.describe());
    assert!(!s.secondary_dir().exists(), "nothing written with a write-only key");

}

#[test]
fn copy_killed_midway_resumes() {
    let s = Setup::new("copy-resume", "", None, "");
    let mut rng = Rng::new(99);
    random_files(&s.documents, &mut rng, 40, 900_000, 1_100_000);
    let p = s.on("primary");
    let sec = s.on("secondary");
    init_small_packs(&p);
    p.backup(&["documents"]);
    let all_packs = pack_names(&s.primary_dir());
    assert!(all_packs.len() >= 30, "{} packs", all_packs.len());

    // One transfer at a time, killed (SIGKILL) once a few packs are there.
    let (mut child, line) = p.spawn(&["copy", "--threads", "1"]);
    let deadline = Instant::now() + Duration::from_mins(2);
    loop {
        if packs(&s.secondary_dir()).len() >= 5 {
            break;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{line} finished ({st}) before it could be interrupted");
        }
        assert!(Instant::now() < deadline, "{line}: no pack copied in 120 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let copied = pack_names(&s.secondary_dir());
    assert!(copied.len() < all_packs.len(), "the copy finished before the kill: {} packs", copied.len());
    assert!(objects(&s.secondary_dir(), "snapshots").is_empty(), "a snapshot was written before its packs and index");
    // What an interrupted copy leaves is consistent: unreferenced packs.
    let check = sec.check(&[] as &[&str]);
    assert_eq!(check.code, 0, "{}", check.describe());

    // Running it again completes, sending only what is missing.
    let resumed = copy(&s, &[]);
    let written = ids(&resumed, "packs_written");
    assert!(written.is_disjoint(&copied), "packs already there were sent again");
    let mut union = copied.clone();
    union.extend(written);
    assert_eq!(union, all_packs);
    assert_eq!(ids(&resumed, "snapshots_copied").len(), 1);
    let check = sec.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    assert!(check.json()["notes"].as_array().unwrap().is_empty(), "every pack is indexed after the resumed copy: {}", check.stdout);
    let target = s.t.join("restored");
    let id = snapshot_ids(&sec, None).into_iter().next().unwrap();
    sec.restore(&snap_path(&id, &s.documents), &target, &[] as &[&str]).ok();
    assert_trees_equal(&s.documents, &target);
}

#[test]
fn copy_respects_the_copies_own_retention() {
    let s = Setup::new("copy-retention", "[components.records.objectives]\nretention = { keep_last = 2 }", None, "");
    let p = s.on("primary");
    let sec = s.on("secondary");
    p.init();
    for i in 0..2 {
        fs::write(s.records.join("record.txt"), format!("version {i}\n")).unwrap();
        p.backup(&["records"]);
        std::thread::sleep(Duration::from_millis(20));
    }
    let first = copy(&s, &["records"]);
    assert_eq!(ids(&first, "snapshots_copied").len(), 2);
    fs::write(s.records.join("record.txt"), "version 2\n").unwrap();
    p.backup(&["records"]);
    let second = copy(&s, &["records"]);
    assert_eq!(ids(&second, "snapshots_copied").len(), 1);
    let on_primary: Vec<String> = p.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(on_primary.len(), 3);

    // Retention on the copy (the primary keeps everything: no forget there).
    let out = sec.run(&["--json", "forget", "records"]).ok().json();
    assert_eq!(out[0]["removed"], 1);
    assert_eq!(snapshot_ids(&sec, None), on_primary[1..].iter().cloned().collect());

    // The next copy does not bring the forgotten snapshot back.
    let third = copy(&s, &["records"]);
    assert!(ids(&third, "snapshots_copied").is_empty(), "{third}");
    let not_kept = third["snapshots_not_kept"].as_array().unwrap();
    assert_eq!(not_kept.len(), 1, "{third}");
    assert_eq!(not_kept[0]["id"], on_primary[0].as_str());
    assert_eq!(not_kept[0]["reasons"][0], "no rule keeps it");
    assert_eq!(snapshot_ids(&sec, None), on_primary[1..].iter().cloned().collect());
    assert_eq!(sec.check(&[] as &[&str]).code, 0);
}

#[test]
fn a_damaged_source_pack_is_not_propagated() {
    let s = Setup::new("copy-damage", "", None, "");
    let mut rng = Rng::new(3);
    fs::write(s.records.join("small.txt"), b"a record that lives in its own pack\n").unwrap();
    random_files(&s.documents, &mut rng, 6, 400_000, 600_000);
    let p = s.on("primary");
    let sec = s.on("secondary");
    init_small_packs(&p);
    p.backup(&["records"]);
    let records_packs = pack_names(&s.primary_dir());
    p.backup(&["documents"]);
    // The largest pack of the documents is a data pack (tree packs are small).
    let victim = pack_names(&s.primary_dir())
        .difference(&records_packs)
        .max_by_key(|n| size_of(&s.primary_dir(), &format!("data/{}/{n}", &n[..2])))
        .cloned()
        .unwrap();
    let victim_path = format!("data/{}/{victim}", &victim[..2]);
    flip_byte(&s.primary_dir(), &victim_path, size_of(&s.primary_dir(), &victim_path) / 2);

    let out = p.run(&["--json", "copy"]).expect_code(DAMAGED);
    let report = out.json()[0].clone();
    let damaged: Vec<&str> = report["damage"].as_array().unwrap().iter().map(|d| d["object"].as_str().unwrap()).collect();
    assert!(damaged.contains(&victim_path.as_str()), "{report}");
    assert!(out.stderr.contains(" behind (damaged on the source"), "{}", out.describe());
    out.assert_one_line_error();
    // The damaged pack is not on the destination, nor the snapshot that needs it;
    // the other component's snapshot is, and the copy checks clean.
    assert!(!pack_names(&s.secondary_dir()).contains(&victim));
    let documents_id = snapshot_ids(&p, Some("documents")).into_iter().next().unwrap();
    assert_eq!(ids(&report, "snapshots_held_back"), [documents_id].into_iter().collect());
    assert_eq!(snapshot_ids(&sec, None), snapshot_ids(&p, Some("records")));
    let check = sec.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    // Human output names the object too.
    let out = p.run(&["copy"]).expect_code(DAMAGED);
    assert!(out.stdout.contains(&format!("DAMAGED {victim_path}")), "{}", out.describe());
}

#[test]
fn copy_to_s3_and_the_3_2_1_posture() {
    let work = TestDir::new("copy-s3-moto");
    let Some(s3) = emulators::moto(work.path()) else { return };
    emulators::create_bucket(&s3, "offsite");
    let url = emulators::s3_url(&s3, "offsite", "medicapp/repo");
    // A third repository, declared a copy but never created: unreachable.
    let extra = "\n[repositories.tape]\nurl = \"/nonexistent/tape\"\npassword_env = \"REPRISE_PASSWORD\"\ncopy_of = \"primary\"\n";
    let s = Setup::new("copy-s3", "", Some(&url), extra);
    let creds = [("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID), ("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET)];
    let with_creds = |r: Reprise| creds.iter().fold(r, |r, (k, v)| r.with_env(k, *v));
    let p = with_creds(s.on("primary"));
    let sec = with_creds(s.on("secondary"));
    let mut rng = Rng::new(5);
    build_rich_tree(&s.records, &s.t.join("outside"), 3);
    random_files(&s.documents, &mut rng, 4, 200_000, 700_000);
    init_small_packs(&p);
    p.backup(&["records"]);
    p.backup(&["documents"]);

    let out = p.run(&["--json", "copy", "--to", "secondary"]).ok();
    assert!(!out.stdout.contains(emulators::S3_SECRET) && !out.stderr.contains(emulators::S3_SECRET));
    let report = out.json()[0].clone();
    assert_eq!(ids(&report, "packs_written"), pack_names(&s.primary_dir()));
    assert_eq!(sec.check(&["--read-data"]).code, 0);
    let target = s.t.join("restored");
    let id = snapshot_ids(&sec, Some("records")).into_iter().next().unwrap();
    sec.restore(&snap_path(&id, &s.records), &target, &[] as &[&str]).ok();
    assert_trees_equal(&s.records, &target);
    assert_eq!(p.run(&["--json", "copy", "--to", "secondary"]).ok().json()[0]["objects_copied"], 0);

    // Status: primary on local disk in one site, the copy in S3 in another.
    let st = p.run(&["--json", "status", "records"]).ok().json();
    let copies = &st[0]["copies"];
    let repos = copies["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 3, "{copies}");
    let by = |n: &str| repos.iter().find(|r| r["repository"] == n).unwrap_or_else(|| panic!("{n} not in {copies}"));
    assert_eq!(by("primary")["media"], "local-disk");
    assert_eq!(by("primary")["role"], "primary");
    assert_eq!(by("primary")["off_site"], false);
    assert_eq!(by("secondary")["media"], "s3");
    assert_eq!(by("secondary")["site"], "francecentral");
    assert_eq!(by("secondary")["off_site"], true);
    assert_eq!(by("secondary")["holds_newest"], true);
    assert!(by("secondary")["newest_age_seconds"].as_f64().unwrap() < 600.0);
    assert_eq!(by("tape")["site"], "unspecified");
    assert_eq!(by("tape")["off_site"], Value::Null);
    assert!(by("tape")["error"].as_str().unwrap().contains("no repository"), "{copies}");
    assert_eq!(copies["copies"], 3, "production, primary and secondary: {copies}");
    assert_eq!(copies["media"], serde_json::json!(["local-disk", "s3"]));
    assert_eq!(copies["off_site"], true);
    assert_eq!(copies["three_two_one"], true);

    // A new backup not yet copied: the copy is behind, and status says so.
    fs::write(s.records.join("late.txt"), b"after the copy\n").unwrap();
    p.backup(&["records"]);
    let st = p.run(&["--json", "status", "records"]).ok().json();
    let secondary = st[0]["copies"]["repositories"].as_array().unwrap().iter().find(|r| r["repository"] == "secondary").unwrap().clone();
    assert_eq!(secondary["holds_newest"], false);
    let human = p.run(&["status", "records"]).ok();
    assert!(human.stdout.contains("3-2-1 holds") && human.stdout.contains("BEHIND") && human.stdout.contains("ERROR"), "{}", human.stdout);
}

/// On the copy, `copy` keeps the prune protocol of every writer: a prune of
/// the copy has condemned the packs a new snapshot relies on (a mirror
/// cannot write those blobs elsewhere: the source's packs have the same
/// names), and its grace period is nearly over. The copy refuses to save
/// the snapshot rather than leave it to a sweep; once the sweep has run,
/// copying again sends the deleted packs back and the copy restores.
#[test]
fn copy_keeps_the_prune_protocol_of_the_copy() {
    // keep_last = 1: the copy's retention does not want the first snapshot back.
    let s = Setup::new("copy-prune", "[components.records.objectives]\nretention = { keep_last = 1 }", None, "");
    let mut rng = Rng::new(17);
    random_files(&s.records, &mut rng, 8, 200_000, 400_000);
    let p = s.on("primary");
    let sec = s.on("secondary");
    init_small_packs(&p);
    let first = snapshot_id(&p.backup(&["records"]));
    copy(&s, &["records"]);
    random_files(&s.records.join("more"), &mut rng, 2, 200_000, 300_000);
    p.backup(&["records"]);

    // The copy forgets the first snapshot (by hand, as `forget` would once
    // the second is there) and a prune of the copy condemns its packs, with
    // a 2 s grace period.
    fs::remove_file(s.secondary_dir().join("snapshots").join(&first)).unwrap();
    let marked = Instant::now();
    let pruned = sec.run(&["--json", "prune", "--grace", "2s"]).ok().json();
    let condemned = pruned["condemned_packs"].as_u64().unwrap();
    assert!(condemned > 0, "{pruned}");
    std::thread::sleep(Duration::from_millis(1700));

    // Exit 10: busy, retry later (it used to be 1, "unexpected error",
    // which a scheduler escalates instead of retrying).
    let out = p.run(&["copy", "records"]).expect_code(10);
    out.assert_one_line_error();
    assert!(out.stderr.contains("prune") && out.stderr.contains("copy again"), "{}", out.describe());
    assert!(objects(&s.secondary_dir(), "snapshots").is_empty(), "a snapshot was saved on packs about to be swept");

    // The sweep deletes the condemned packs; the next copy sends them again.
    std::thread::sleep(Duration::from_millis(2300).saturating_sub(marked.elapsed()));
    let before_sweep = pack_names(&s.secondary_dir());
    let swept = sec.run(&["--json", "prune", "--grace", "2s"]).ok().json();
    assert_eq!(swept["deleted_packs"].as_u64().unwrap(), condemned, "{swept}");
    let deleted: BTreeSet<String> = before_sweep.difference(&pack_names(&s.secondary_dir())).cloned().collect();
    let again = copy(&s, &["records"]);
    let resent = ids(&again, "packs_written");
    assert!(!resent.is_empty() && resent.is_subset(&deleted), "only packs the sweep deleted are sent again: {again}");
    assert_eq!(ids(&again, "snapshots_copied").len(), 1);
    let check = sec.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    let target = s.t.join("restored");
    sec.restore(&snap_path("latest", &s.records), &target, &[] as &[&str]).ok();
    assert_trees_equal(&s.records, &target);
}

fn snapshot_id(backup: &Value) -> String {
    id_of(backup)
}

/// A legal hold travels with its snapshot, and binds the copy's own
/// retention: `forget` on the copy keeps the held snapshot (the policy
/// alone would drop it), `prune --grace 0 --max-unused 0` on the copy
/// keeps its data, and it restores from the copy bit for bit.
#[test]
fn forget_and_prune_on_a_copy_respect_copied_holds() {
    let s = Setup::new("copy-holds", "[components.records.objectives]\nretention = { keep_last = 1 }", None, "");
    let p = s.on("primary");
    let sec = s.on("secondary");
    init_small_packs(&p);
    let mut rng = Rng::new(23);
    let mut versions = Vec::new();
    for _ in 0..2 {
        let body = rng.bytes(1_500_000);
        fs::write(s.records.join("record.bin"), &body).unwrap();
        versions.push((id_of(&p.backup(&["records"])), body));
    }
    let held = versions[0].0.clone();
    p.run(&["hold", "add", &held, "--reason", "case 2026-7"]).ok();
    let first = copy(&s, &["records"]);
    assert!(ids(&first, "snapshots_copied").contains(&held), "the held snapshot travels: {first}");
    // A newer snapshot reaches the copy: the policy alone keeps only it.
    let body = rng.bytes(1_500_000);
    fs::write(s.records.join("record.bin"), &body).unwrap();
    versions.push((id_of(&p.backup(&["records"])), body));
    copy(&s, &["records"]);

    let forgot = sec.run(&["--json", "forget", "records"]).ok().json();
    let verdicts = forgot[0]["snapshots"].as_array().unwrap();
    let held_verdict = verdicts.iter().find(|v| v["id"] == held.as_str()).unwrap_or_else(|| panic!("{forgot}"));
    assert_eq!(held_verdict["keep"], true, "{forgot}");
    assert_eq!(held_verdict["reasons"][0], "legal hold: case 2026-7", "{forgot}");
    let on_copy = snapshot_ids(&sec, None);
    assert!(on_copy.contains(&held) && on_copy.contains(&versions[2].0), "{on_copy:?}");
    let pruned = sec.run(&["--json", "prune", "--grace", "0", "--max-unused", "0"]).ok().json();
    assert!(pruned["deleted_packs"].as_u64().unwrap() > 0, "the copy's prune deleted what the forgotten snapshot alone needed: {pruned}");
    let check = sec.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    let target = s.t.join("restored-held");
    sec.restore(&held, &target, &[] as &[&str]).ok();
    let file = target.join(s.records.strip_prefix("/").unwrap()).join("record.bin");
    assert!(fs::read(file).unwrap() == versions[0].1, "the held snapshot restores bit for bit from the copy");
    assert_eq!(first["holds_copied"], 1, "{first}");
}

/// Keys of one S3 account, written where the plan says to find them.
fn credentials_text(keys: &Value) -> String {
    format!("AWS_ACCESS_KEY_ID={}\nAWS_SECRET_ACCESS_KEY={}\n", keys["id"].as_str().unwrap(), keys["secret"].as_str().unwrap())
}

fn private_file(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// The bug: one process had one S3 identity (`Credentials::from_env`), so
/// a copy from one provider (or account) to another was impossible. Two
/// S3 services (moto with IAM enforced, each knowing only its own users),
/// the primary's keys in a credentials file, the copy's printed by a
/// program (a secrets manager's CLI): one `copy` uses both, with no AWS_*
/// variable in its environment, and each set of keys is refused by the
/// other service. A credentials file any account can read is refused with
/// one line, and nothing leaks its secrets.
#[test]
fn copy_between_two_s3_accounts_each_with_its_own_credentials() {
    let work = TestDir::new("copy-two-accounts");
    for site in ["paris", "offsite"] {
        fs::create_dir_all(work.join(site)).unwrap();
    }
    let Some(paris) = emulators::moto_iam(&work.join("paris")) else { return };
    let Some(offsite) = emulators::moto_iam(&work.join("offsite")) else { return };
    let setup = |s3: &emulators::Server, bucket: &str| -> Value {
        let v: Value = serde_json::from_str(&emulators::s3_roles("setup", s3, bucket, "0", None)).unwrap();
        v["operator"].clone()
    };
    let paris_keys = setup(&paris, "prod");
    let offsite_keys = setup(&offsite, "offsite");
    let secrets = work.join("secrets");
    fs::create_dir_all(&secrets).unwrap();
    let paris_file = secrets.join("paris.credentials");
    private_file(&paris_file, &credentials_text(&paris_keys), 0o600);
    let offsite_file = secrets.join("offsite.credentials");
    private_file(&offsite_file, &credentials_text(&offsite_keys), 0o600);
    let records = work.join("records");
    random_files(&records, &mut Rng::new(23), 5, 50_000, 300_000);
    let plan = work.join("reprise.toml");
    let write_plan = |primary_creds: &str, offsite_creds: &str| {
        fs::write(
            &plan,
            format!(
                "[repositories.primary]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\nsite = \"paris\"\n{primary_creds}\n\n\
                 [repositories.offsite]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\nsite = \"lyon\"\ncopy_of = \"primary\"\n{offsite_creds}\n\n\
                 [components.records]\ntype = \"files\"\nrepository = \"primary\"\npaths = [\"{}\"]\n",
                emulators::s3_url(&paris, "prod", "repo"),
                emulators::s3_url(&offsite, "offsite", "repo"),
                records.display()
            ),
        )
        .unwrap();
    };
    let file_source = |p: &Path| format!("credentials_file = \"{}\"", p.display());
    let command_source = |p: &Path| format!("credentials_command = [\"/bin/cat\", \"{}\"]", p.display());
    write_plan(&file_source(&paris_file), &command_source(&offsite_file));
    let on = |repo: &str| {
        let mut r = Reprise::at(work.path(), PathBuf::from(repo)).with_env("REPRISE_PLAN", plan.as_os_str().to_owned());
        for k in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"] {
            r.env.push((k.to_owned(), None));
        }
        r
    };
    let never_leaked = |out: &Out| {
        for k in [&paris_keys, &offsite_keys] {
            let secret = k["secret"].as_str().unwrap();
            assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret), "a secret leaked: {}", out.describe());
        }
    };
    let primary = on("primary");
    primary.init();
    never_leaked(&primary.run(&["backup", "records"]).ok());
    let out = primary.run(&["--json", "copy"]).ok();
    never_leaked(&out);
    let report = out.json()[0].clone();
    assert_eq!((report["from"].as_str(), report["to"].as_str()), (Some("primary"), Some("offsite")), "{report}");
    assert_eq!(report["snapshots_copied"].as_array().unwrap().len(), 1, "{report}");
    let copy = on("offsite");
    let target = work.join("restored");
    let id = snapshot_ids(&copy, Some("records")).into_iter().next().expect("the copy holds the snapshot");
    never_leaked(&copy.restore(&snap_path(&id, &records), &target, &[] as &[&str]).ok());
    assert_trees_equal(&records, &target);

    // Each account's keys are refused by the other service: the copy above
    // could only have used both identities.
    write_plan(&file_source(&offsite_file), &command_source(&offsite_file));
    let out = primary.run(&["snapshots"]).expect_code(PERMISSION);
    out.assert_one_line_error();
    never_leaked(&out);
    write_plan(&file_source(&paris_file), &command_source(&paris_file));
    never_leaked(&primary.run(&["copy"]).expect_code(PERMISSION));

    // A credentials file readable by other accounts: refused, one line
    // naming the fix, nothing read from it.
    write_plan(&file_source(&paris_file), &command_source(&offsite_file));
    private_file(&paris_file, &credentials_text(&paris_keys), 0o644);
    let out = primary.run(&["snapshots"]).expect_code(PERMISSION);
    out.assert_one_line_error();
    never_leaked(&out);
    assert!(out.stderr.contains("can be read by other accounts") && out.stderr.contains("chmod 600"), "{}", out.describe());
}
