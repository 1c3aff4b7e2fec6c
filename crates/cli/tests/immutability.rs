//! Storage-level immutability from the plan's objectives, and `status`
//! saying whether it is in force.
//!
//! * S3 (moto) with an Object Lock bucket: a component with
//!   `immutable = true` and `retain_for` gets COMPLIANCE locks on its packs,
//!   index files and snapshot (read back with HEAD), never on config or
//!   keys; moto refuses to delete a locked version; `status` says "in
//!   force" and that the snapshot object's date covers its label; a
//!   component without objectives is "not in force" and says why.
//! * S3 without Object Lock: backups still work (one warning), `status`
//!   says the bucket has no Object Lock.
//! * Azure (Azurite, which implements no immutability): reprise asks for a
//!   policy on each blob it creates (Set Blob Immutability Policy); Azurite
//!   answers 501 (500 when the request carries a SAS), the backup succeeds
//!   with one warning saying so; `status` says "not in force" and why. A local
//!   directory: "not in force", with the reason. Real Azure enforcement is
//!   not tested here (no Azure available).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::emulators;
use common::*;
use serde_json::Value;

fn plan(work: &Path, url: &str, src: &Path) -> PathBuf {
    let p = work.join("reprise.toml");
    fs::write(
        &p,
        format!(
            r#"[repositories.main]
url = "{url}"
password_env = "REPRISE_PASSWORD"

[components.signed]
type = "files"
paths = ["{src}"]

[components.signed.objectives]
retain_for = "3d"
immutable = true

[components.scratch]
type = "files"
paths = ["{src}"]
"#,
            src = src.display()
        ),
    )
    .unwrap();
    p
}

fn status_of(r: &Reprise, plan: &Path, component: &str) -> Value {
    let all = r.run(&["--json", "--plan", plan.to_str().unwrap(), "status"]).ok().json();
    all.as_array().unwrap().iter().find(|c| c["component"] == component).unwrap_or_else(|| panic!("{component} missing in {all}"))["immutability"].clone()
}

/// key -> {mode, until, version} under a prefix, read with boto3.
fn locks(s3: &emulators::Server, bucket: &str, prefix: &str) -> serde_json::Map<String, Value> {
    let v: Value = serde_json::from_str(&emulators::s3_roles("locks", s3, bucket, prefix, None)).unwrap();
    v.as_object().unwrap().clone()
}

#[test]
fn s3_object_lock_is_set_from_the_plan_and_reported() {
    let work = TestDir::new("imm-s3");
    let Some(s3) = emulators::moto(work.path()) else { return };
    // The administrator's bucket, with Object Lock (hence versioning).
    let (status, text) = emulators::http(s3.port, "PUT", "/locked", &[("x-amz-bucket-object-lock-enabled", "true".into())], b"");
    assert_eq!(status, 200, "{text}");
    let creds = [("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID), ("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET)];
    let url = emulators::s3_url(&s3, "locked", "repo");
    let mut r = Reprise::at(work.path(), PathBuf::from(&url));
    for (k, v) in creds {
        r = r.with_env(k, v);
    }
    let src = work.join("src");
    random_files(&src, &mut Rng::new(4), 6, 1000, 200_000);
    let p = plan(work.path(), &url, &src);
    let ps = p.to_str().unwrap();
    r.init();
    let before = jiff::Timestamp::now();
    let signed = r.run(&["--json", "--plan", ps, "backup", "signed"]).ok().json();
    let all = locks(&s3, "locked", "repo/");
    r.run(&["--json", "--plan", ps, "backup", "scratch"]).ok();
    let after_scratch = locks(&s3, "locked", "repo/");
    // The scratch component asks for no lock: what it wrote has none.
    let scratch_new: Vec<_> = after_scratch.iter().filter(|(k, _)| !all.contains_key(*k)).collect();
    assert!(!scratch_new.is_empty());
    for (key, l) in scratch_new {
        assert_eq!(l["mode"], Value::Null, "{key}: {l}");
    }

    // Every pack, index file and the signed snapshot: COMPLIANCE, until at
    // least three days from now (rounded up to midnight UTC).
    let min = before + jiff::SignedDuration::from_hours(72);
    let signed_snapshot = format!("repo/snapshots/{}", id_of(&signed));
    let mut locked = 0;
    for (key, l) in &all {
        let lockable = key.starts_with("repo/data/") || key.starts_with("repo/index/") || *key == signed_snapshot;
        if !lockable {
            // Config and key files are never locked (keys are replaced on
            // a passphrase change).
            assert_eq!(l["mode"], Value::Null, "{key}: {l}");
            continue;
        }
        assert_eq!(l["mode"], "COMPLIANCE", "{key}: {l}");
        let until: jiff::Timestamp = l["until"].as_str().unwrap().parse().unwrap();
        assert!(until >= min && until <= min + jiff::SignedDuration::from_hours(24), "{key}: {until}");
        assert_eq!(until.strftime("%H:%M:%S").to_string(), "00:00:00", "{until}");
        locked += 1;
    }
    assert!(locked >= 3 && all.keys().any(|k| k.starts_with("repo/keys/")) && all.contains_key("repo/config"), "{all:?}");

    // The service refuses to delete the locked version, whoever asks (moto
    // here accepts any key: this is the lock, not a permission).
    let out: Value = serde_json::from_str(emulators::s3_roles("delete-version", &s3, "locked", &signed_snapshot, None).trim()).unwrap();
    assert_eq!((&out["outcome"], &out["status"], &out["error"]), (&Value::from("error"), &Value::from(403), &Value::from("AccessDenied")), "{out}");

    // status: in force for `signed`, and the object's date covers the label.
    let st = status_of(&r, &p, "signed");
    assert_eq!(st["in_force"], true, "{st}");
    assert!(st["reason"].as_str().unwrap().contains("COMPLIANCE"), "{st}");
    assert_eq!(st["service"]["supported"], true, "{st}");
    assert!(st["service"]["detail"].as_str().unwrap().contains("Object Lock enabled"), "{st}");
    assert_eq!(st["lock"]["mode"], "COMPLIANCE");
    let label: jiff::Timestamp = st["newest_snapshot"]["retain_until_label"].as_str().unwrap().parse().unwrap();
    let object: jiff::Timestamp = st["newest_snapshot"]["object_retain_until"].as_str().unwrap().parse().unwrap();
    assert!(object >= label, "{object} < {label}");
    // ... and not for `scratch`, whose objectives ask for nothing.
    let st = status_of(&r, &p, "scratch");
    assert_eq!(st["in_force"], false, "{st}");
    assert!(st["reason"].as_str().unwrap().contains("plan asks for none"), "{st}");
    let human = r.run(&["--plan", ps, "status"]).ok();
    assert!(human.stdout.contains("immutability: in force: COMPLIANCE until"), "{}", human.stdout);
    assert!(human.stdout.contains("immutability: not in force"), "{}", human.stdout);
    assert!(!human.stdout.contains(emulators::S3_SECRET) && !human.stderr.contains(emulators::S3_SECRET));

    // The repository reads back whole.
    r.check(&["--read-data"]).ok();
}

#[test]
fn s3_without_object_lock_backs_up_and_says_not_in_force() {
    let work = TestDir::new("imm-s3-plain");
    let Some(s3) = emulators::moto(work.path()) else { return };
    emulators::create_bucket(&s3, "plain");
    let url = emulators::s3_url(&s3, "plain", "repo");
    let r = Reprise::at(work.path(), PathBuf::from(&url)).with_env("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID).with_env("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET);
    let src = work.join("src");
    random_files(&src, &mut Rng::new(5), 4, 1000, 100_000);
    let p = plan(work.path(), &url, &src);
    r.init();
    // moto refuses a PUT with lock headers on this bucket ("Bucket is
    // missing ObjectLockConfiguration"), as AWS does: the backup goes on
    // without locks, and says so once.
    let out = r.run(&["--plan", p.to_str().unwrap(), "backup", "signed"]).ok();
    assert_eq!(out.stderr.matches("no Object Lock").count(), 1, "{}", out.describe());
    let all = locks(&s3, "plain", "repo/");
    assert!(all.keys().any(|k| k.starts_with("repo/data/")), "{all:?}");
    for (key, l) in &all {
        assert_eq!(l["mode"], Value::Null, "{key}");
    }
    let st = status_of(&r, &p, "signed");
    assert_eq!(st["in_force"], false, "{st}");
    assert_eq!(st["service"]["supported"], false, "{st}");
    assert!(st["reason"].as_str().unwrap().contains("the bucket has no Object Lock"), "{st}");
    r.check(&["--read-data"]).ok();
}

#[test]
fn azure_and_local_say_not_in_force_and_why() {
    let work = TestDir::new("imm-azure");
    let src = work.join("src");
    random_files(&src, &mut Rng::new(6), 3, 1000, 50_000);
    if let Some(az) = emulators::azurite(work.path()) {
        emulators::create_container(&az, "imm");
        let url = emulators::azure_url(&az, "imm", "repo");
        let r = Reprise::at(work.path(), PathBuf::from(&url)).with_env("AZURE_STORAGE_ACCOUNT_KEY", emulators::AZURITE_KEY);
        let p = plan(work.path(), &url, &src);
        r.init();
        // Every pack, index and snapshot blob gets a policy request;
        // Azurite does not implement it (501): one warning, no failure.
        let out = r.run(&["--plan", p.to_str().unwrap(), "backup", "signed"]).ok();
        assert_eq!(out.stderr.matches("does not implement Set Blob Immutability Policy").count(), 1, "{}", out.describe());
        assert!(out.stderr.contains("HTTP 501 APINotImplemented") && !out.stderr.contains(emulators::AZURITE_KEY), "{}", out.describe());
        // A component whose plan asks for no lock sends no policy request.
        let out = r.run(&["--plan", p.to_str().unwrap(), "backup", "scratch"]).ok();
        assert!(!out.stderr.contains("immutability"), "{}", out.describe());
        let st = status_of(&r, &p, "signed");
        assert_eq!(st["in_force"], false, "{st}");
        assert_eq!(st["service"]["supported"], false, "{st}");
        assert!(st["reason"].as_str().unwrap().contains("the container reports no immutability"), "{st}");
        // prune checks no pack lock there, and says why in one line.
        let pruned = r.run(&["--plan", p.to_str().unwrap(), "prune"]).ok();
        assert_eq!(pruned.stdout.matches("locks: not in force here").count(), 1, "{}", pruned.describe());
        // The same with the write-only SAS of a production host.
        let sas = emulators::container_sas("imm", "rcl");
        let host = r.with_env("AZURE_STORAGE_ACCOUNT_KEY", "").with_env("AZURE_STORAGE_SAS_TOKEN", &sas);
        // (Azurite does not let a container SAS read the container's
        // properties: status says it cannot tell, and names the fix.)
        let st = status_of(&host, &p, "signed");
        assert_eq!(st["in_force"], false, "{st}");
        let reason = st["reason"].as_str().unwrap();
        assert!(reason.contains("not in force") || reason.contains("cannot tell"), "{st}");
        assert!(!reason.contains(sas.split("sig=").nth(1).unwrap()), "{st}");
        // The production host's SAS: Azurite answers 500 to a SAS-signed
        // policy request whatever its permissions (its SAS table has no
        // entry for the operation), so the 'i' permission cannot be tested
        // here; what can: the backup succeeds, one warning, no SAS in it.
        fs::write(src.join("new-file"), b"written by the host").unwrap();
        let out = host.run(&["--plan", p.to_str().unwrap(), "backup", "signed"]).ok();
        assert_eq!(out.stderr.matches("cannot set a blob's immutability policy").count(), 1, "{}", out.describe());
        assert!(!out.stderr.contains(sas.split("sig=").nth(1).unwrap()), "the SAS leaked: {}", out.describe());
        r.check(&["--read-data"]).ok();
    }
    let local = Reprise::new(work.path());
    let p = plan(work.path(), local.repo.to_str().unwrap(), &src);
    local.init();
    local.run(&["--plan", p.to_str().unwrap(), "backup", "signed"]).ok();
    let st = status_of(&local, &p, "signed");
    assert_eq!(st["in_force"], false, "{st}");
    assert!(st["reason"].as_str().unwrap().contains("local directory"), "{st}");
}

/// Deduplication shares packs across components: a pack first written by a
/// 1-day component and reused by a 30-day `immutable` one keeps its 1-day
/// lock until the operator's prune lengthens it to the longer snapshot's
/// date (keeping the pack's own mode); a second prune has nothing to do,
/// and a dry run changes nothing.
#[test]
fn prune_lengthens_the_locks_of_packs_a_longer_kept_snapshot_reuses() {
    let work = TestDir::new("imm-extend");
    let Some(s3) = emulators::moto(work.path()) else { return };
    let (status, text) = emulators::http(s3.port, "PUT", "/locked", &[("x-amz-bucket-object-lock-enabled", "true".into())], b"");
    assert_eq!(status, 200, "{text}");
    let url = emulators::s3_url(&s3, "locked", "repo");
    let r = Reprise::at(work.path(), PathBuf::from(&url)).with_env("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID).with_env("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET);
    let src = work.join("src");
    random_files(&src, &mut Rng::new(7), 3, 1000, 100_000);
    let p = work.join("reprise.toml");
    fs::write(
        &p,
        format!(
            r#"[repositories.main]
url = "{url}"
password_env = "REPRISE_PASSWORD"

[components.short]
type = "files"
paths = ["{src}"]

[components.short.objectives]
retain_for = "1d"

[components.long]
type = "files"
paths = ["{src}"]

[components.long.objectives]
retain_for = "30d"
immutable = true
"#,
            src = src.display()
        ),
    )
    .unwrap();
    let ps = p.to_str().unwrap();
    r.init();
    let before = jiff::Timestamp::now();
    r.run(&["--json", "--plan", ps, "backup", "short"]).ok();
    let short = locks(&s3, "locked", "repo/");
    r.run(&["--json", "--plan", ps, "backup", "long"]).ok();
    let packs = |all: &serde_json::Map<String, Value>| -> Vec<(String, Value)> { all.iter().filter(|(k, _)| k.starts_with("repo/data/")).map(|(k, v)| (k.clone(), v.clone())).collect() };
    let shared = packs(&short);
    assert!(!shared.is_empty());
    // Deduplicated: the long-kept backup reuses every pack of the first
    // (its file content is there); what it writes of its own (its tree
    // pack: trees record which component's files cache saw them) is
    // locked for its 30 days already.
    let own: Vec<(String, Value)> = packs(&locks(&s3, "locked", "repo/")).into_iter().filter(|(k, _)| !short.contains_key(k)).collect();
    assert!(own.len() < shared.len(), "the second backup rewrote the content: nothing shared to test ({own:?})");
    for (key, l) in &own {
        assert_eq!(l["mode"], "COMPLIANCE", "{key}: {l}");
    }
    let until = |l: &Value| l["until"].as_str().unwrap_or_else(|| panic!("no lock: {l}")).parse::<jiff::Timestamp>().unwrap();
    for (key, l) in &shared {
        assert_eq!(l["mode"], "GOVERNANCE", "{key}: {l}");
        assert!(until(l) <= before + jiff::SignedDuration::from_hours(48), "{key}: {l}");
    }
    let label: jiff::Timestamp = status_of(&r, &p, "long")["newest_snapshot"]["retain_until_label"].as_str().unwrap().parse().unwrap();
    assert!(label >= before + jiff::SignedDuration::from_hours(24 * 30), "{label}");

    // A dry run says what it would do and does nothing.
    let dry = r.run(&["--json", "--plan", ps, "prune", "--dry-run"]).ok().json();
    assert_eq!(dry["locks"]["in_force"], true, "{dry}");
    assert_eq!(dry["locks"]["retained_snapshots"], 2, "{dry}");
    assert_eq!(dry["locks"]["packs_extended"].as_u64(), Some(shared.len() as u64), "{dry}");
    let unchanged = locks(&s3, "locked", "repo/");
    for (key, l) in &shared {
        assert_eq!(&unchanged[key], l, "a dry run changed a lock");
    }

    // The operator's prune lengthens every shared pack to the long
    // snapshot's date (rounded up to midnight), in the pack's own mode.
    let out = r.run(&["--json", "--plan", ps, "prune"]).ok();
    let report = out.json();
    assert_eq!(report["locks"]["packs_checked"].as_u64(), Some((shared.len() + own.len()) as u64), "{report}");
    assert_eq!(report["locks"]["packs_extended"].as_u64(), Some(shared.len() as u64), "{report}");
    assert_eq!(report["locks"]["packs_failed"], 0, "{report}");
    let after = locks(&s3, "locked", "repo/");
    for (key, _) in &shared {
        let l = &after[key];
        assert_eq!(l["mode"], "GOVERNANCE", "{key}: {l}");
        assert!(until(l) >= label && until(l) <= label + jiff::SignedDuration::from_hours(24), "{key}: {l} vs label {label}");
    }
    // Index files are left alone (not needed to restore): the first
    // backup's keep their 1-day locks.
    let indexes: Vec<_> = short.iter().filter(|(k, _)| k.starts_with("repo/index/")).collect();
    assert!(!indexes.is_empty());
    for (key, l) in indexes {
        assert_eq!(&after[key], l, "{key}");
    }
    assert!(!out.stdout.contains(emulators::S3_SECRET) && !out.stderr.contains(emulators::S3_SECRET));

    // Nothing left to do; the human report says so.
    let again = r.run(&["--json", "--plan", ps, "prune"]).ok().json();
    assert_eq!(again["locks"]["packs_checked"].as_u64(), Some((shared.len() + own.len()) as u64), "{again}");
    assert_eq!(again["locks"]["packs_extended"], 0, "{again}");
    let human = r.run(&["--plan", ps, "prune"]).ok();
    assert!(human.stdout.contains(&format!("{} packs checked, 0 lengthened", shared.len() + own.len())), "{}", human.stdout);
    r.check(&["--read-data"]).ok();
}

/// Where the storage has no locks, prune says so in one line and checks
/// nothing.
#[test]
fn prune_says_locks_are_not_in_force_on_a_local_directory() {
    let work = TestDir::new("imm-extend-local");
    let src = work.join("src");
    random_files(&src, &mut Rng::new(8), 2, 1000, 20_000);
    let local = Reprise::new(work.path());
    let p = plan(work.path(), local.repo.to_str().unwrap(), &src);
    local.init();
    local.run(&["--plan", p.to_str().unwrap(), "backup", "signed"]).ok();
    let report = local.run(&["--json", "--plan", p.to_str().unwrap(), "prune"]).ok().json();
    assert_eq!(report["locks"]["in_force"], false, "{report}");
    assert_eq!(report["locks"]["packs_checked"], 0, "{report}");
    let human = local.run(&["--plan", p.to_str().unwrap(), "prune"]).ok();
    assert_eq!(human.stdout.matches("locks: not in force here").count(), 1, "{}", human.stdout);
}
