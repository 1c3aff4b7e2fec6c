//! Retention: `forget` applies the plan's policy, says why each snapshot
//! stays or goes, and never removes a snapshot under a legal hold or before
//! its retain-until date, whatever the plan says later.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

const PERMISSION: i32 = 5;

fn plan(t: &TestDir, src: &std::path::Path, docs_extra: &str) -> std::path::PathBuf {
    let p = t.join("reprise.toml");
    fs::write(
        &p,
        format!(
            r#"[repositories.main]
url = "{repo}"
password_env = "REPRISE_PASSWORD"

[components.records]
type = "files"
paths = ["{src}"]

[components.records.objectives]
retention = {{ keep_last = 1 }}

[components.signed]
type = "files"
paths = ["{src}"]

[components.signed.objectives]
retention = {{ keep_last = 1 }}
{docs_extra}
"#,
            repo = t.join("repo").display(),
            src = src.display()
        ),
    )
    .unwrap();
    p
}

fn verdicts(out: &Out, component: &str) -> Vec<Value> {
    let all = out.json();
    let c = all.as_array().unwrap().iter().find(|c| c["component"] == component).unwrap_or_else(|| panic!("no {component} in {all}"));
    c["snapshots"].as_array().unwrap().clone()
}

fn ids(r: &Reprise, component: &str) -> Vec<String> {
    r.snapshots().iter().filter(|s| s["component"] == component).map(|s| s["id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn forget_keeps_what_the_policy_holds_and_retain_until_protect() {
    let t = TestDir::new("retention");
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    let r = Reprise::new(t.path());
    r.init();
    let p = plan(&t, &src, "retain_for = \"20y\"");
    let ps = p.to_str().unwrap();

    let mut contents = Vec::new();
    for i in 0..3 {
        let body = format!("version {i} of the record\n");
        fs::write(src.join("record.txt"), &body).unwrap();
        contents.push(body);
        r.run(&["--plan", ps, "backup", "records"]).ok();
        r.run(&["--plan", ps, "backup", "signed"]).ok();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let records = ids(&r, "records");
    assert_eq!(records.len(), 3);
    let (oldest, middle, newest) = (&records[0], &records[1], &records[2]);

    // A legal hold on the oldest record snapshot.
    let out = r.run(&["--json", "--plan", ps, "hold", "add", &oldest[..12], "--reason", "litigation 2026-117"]).ok();
    let hold_id = out.json()["hold"].as_str().unwrap().to_owned();
    let listed = r.run(&["--json", "--plan", ps, "hold", "list"]).ok().json();
    assert_eq!(listed[0]["reason"], "litigation 2026-117");

    // Dry run: every snapshot with its reason; nothing removed.
    let out = r.run(&["--json", "--plan", ps, "forget", "--dry-run"]).ok();
    let v = verdicts(&out, "records");
    let by = |id: &str| v.iter().find(|x| x["id"] == id).unwrap().clone();
    assert_eq!(by(newest)["keep"], true);
    assert_eq!(by(newest)["reasons"][0], "last 1");
    assert_eq!(by(oldest)["keep"], true);
    assert_eq!(by(oldest)["reasons"][0], "legal hold: litigation 2026-117");
    assert_eq!(by(middle)["keep"], false);
    assert_eq!(by(middle)["reasons"][0], "no rule keeps it");
    for s in verdicts(&out, "signed") {
        assert_eq!(s["keep"], true, "retain_for = 20y keeps every signed snapshot: {s}");
    }
    assert_eq!(r.snapshots().len(), 6, "a dry run removes nothing");
    let human = r.run(&["--plan", ps, "forget", "--dry-run"]).ok();
    assert!(human.stdout.contains("legal hold: litigation 2026-117") && human.stdout.contains("no rule keeps it"), "{}", human.stdout);

    // A write-only key cannot forget or lift holds.
    let cred = t.join("write.credential");
    r.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap(), "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    let wo = r.without_password();
    let out = wo.run(&["--plan", ps, "--key-file", cred.to_str().unwrap(), "forget"]).expect_code(PERMISSION);
    out.assert_one_line_error();
    wo.run(&["--plan", ps, "--key-file", cred.to_str().unwrap(), "hold", "remove", &hold_id]).expect_code(PERMISSION).assert_one_line_error();
    assert_eq!(r.snapshots().len(), 6);

    // The real thing.
    r.run(&["--plan", ps, "forget"]).ok();
    assert_eq!(ids(&r, "records"), vec![oldest.clone(), newest.clone()]);
    assert_eq!(ids(&r, "signed").len(), 3);

    // The held snapshot still restores as it was.
    let target = t.join("held");
    r.restore(&snap_path(oldest, &src), &target, &[] as &[&str]).ok();
    assert_eq!(fs::read_to_string(target.join("record.txt")).unwrap(), contents[0]);

    // A later plan without retain_for cannot shorten what the snapshots
    // recorded; lifting the hold lets the policy take the old record.
    let p2 = plan(&t, &src, "");
    let ps2 = p2.to_str().unwrap();
    r.run(&["--plan", ps2, "forget"]).ok();
    assert_eq!(ids(&r, "signed").len(), 3, "retain-until dates recorded at backup time still hold");
    r.run(&["--plan", ps2, "hold", "remove", &hold_id[..10]]).ok();
    r.run(&["--plan", ps2, "forget"]).ok();
    assert_eq!(ids(&r, "records"), vec![newest.clone()]);
    assert_eq!(r.check(&[] as &[&str]).code, 0);
}

/// Holds and retain-until dates through the whole life cycle, not only
/// `forget`'s decision: a held snapshot and one before its retain-until
/// date keep their data through `forget` and `prune --grace 0
/// --max-unused 0` (which deletes and repacks at once), and restore bit
/// for bit, while the snapshot no rule keeps goes with its data.
#[test]
fn held_and_retain_until_snapshots_keep_their_data_through_forget_and_prune() {
    let t = TestDir::new("retention-prune");
    let (records, signed) = (t.join("records"), t.join("signed"));
    fs::create_dir_all(&records).unwrap();
    fs::create_dir_all(&signed).unwrap();
    let p = t.join("reprise.toml");
    fs::write(
        &p,
        format!(
            "[repositories.main]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\n\n\
             [components.records]\ntype = \"files\"\npaths = [\"{}\"]\n\n[components.records.objectives]\nretention = {{ keep_last = 1 }}\n\n\
             [components.signed]\ntype = \"files\"\npaths = [\"{}\"]\n\n[components.signed.objectives]\nretention = {{ keep_last = 1 }}\nretain_for = \"20y\"\n",
            t.join("repo").display(),
            records.display(),
            signed.display()
        ),
    )
    .unwrap();
    let r = Reprise::new(t.path()).with_env("REPRISE_PLAN", &p);
    // 1 MiB packs: each version's data (incompressible, its own) fills
    // packs of its own, which prune deletes once nothing needs them.
    r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    let mut rng = Rng::new(9);
    let mut versions: Vec<(String, Vec<u8>, &std::path::Path)> = Vec::new();
    for (component, dir, n) in [("records", &records, 3), ("signed", &signed, 2)] {
        for _ in 0..n {
            let body = rng.bytes(1_500_000);
            fs::write(dir.join("document.bin"), &body).unwrap();
            versions.push((id_of(&r.backup(&[component])), body, dir));
        }
    }
    let (held, forgotten, newest_record) = (versions[0].0.clone(), versions[1].0.clone(), versions[2].0.clone());
    let (retained, newest_signed) = (versions[3].0.clone(), versions[4].0.clone());
    r.run(&["hold", "add", &held, "--reason", "litigation 2026-117"]).ok();

    let forget = r.run(&["--json", "forget"]).ok().json();
    let removed: u64 = forget.as_array().unwrap().iter().map(|c| c["removed"].as_u64().unwrap()).sum();
    assert_eq!(removed, 1, "{forget}");
    let packs_before = packs(&r.repo).len();
    let pruned = r.run(&["--json", "prune", "--grace", "0", "--max-unused", "0"]).ok().json();
    assert!(pruned["deleted_packs"].as_u64().unwrap() > 0, "the forgotten snapshot's data went: {pruned}");
    assert!(packs(&r.repo).len() < packs_before);
    let left: Vec<String> = r.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(left.iter().collect::<std::collections::BTreeSet<_>>(), [&held, &newest_record, &retained, &newest_signed].into_iter().collect(), "only {forgotten} is gone");
    let check = r.check(&["--read-data"]).ok().json();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    for (id, body, dir) in versions.iter().filter(|v| v.0 != forgotten) {
        let target = t.join(format!("restored-{}", &id[..8]));
        r.restore(id, &target, &[] as &[&str]).ok();
        let file = target.join(dir.strip_prefix("/").unwrap()).join("document.bin");
        assert!(fs::read(&file).unwrap() == *body, "{id} restores bit for bit after the prune");
    }
}
