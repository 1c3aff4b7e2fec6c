//! `prune`: two phases and a grace period, so that deleting what no
//! snapshot needs is safe while backups run. These tests check the phases,
//! the rescue of a pack a running backup relied on, the refusal to commit
//! once the grace period is too far gone, and — the proof the issue asks
//! for — many rounds of concurrent backups, forgets and prunes after which
//! every surviving snapshot restores bit for bit.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn init_small_packs(r: &Reprise) {
    // 1 MiB packs: a few hundred KiB of files spread over many packs, so
    // that forgetting a snapshot leaves whole packs unused.
    r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
}

fn prune(r: &Reprise, grace: &str) -> Value {
    r.run(&["--json", "prune", "--grace", grace]).ok().json()
}

fn forget_by_hand(repo: &Path, id: &str) {
    // What `forget` does to a snapshot: remove its object (the data stays
    // for prune). Done directly so that the tests choose exactly which.
    fs::remove_file(repo.join("snapshots").join(id)).expect("remove snapshot");
}

fn data_bytes(repo: &Path) -> u64 {
    packs(repo).iter().map(|p| size_of(repo, p)).sum()
}

fn n(v: &Value, field: &str) -> u64 {
    v[field].as_u64().unwrap_or_else(|| panic!("{field} in {v}"))
}

#[test]
fn packs_go_only_after_the_grace_period_and_what_stays_restores() {
    let t = TestDir::new("prune-phases");
    let r = Reprise::new(t.path());
    init_small_packs(&r);
    let mut rng = Rng::new(71);
    let (old, shared, new) = (t.join("src/old"), t.join("src/shared"), t.join("src/new"));
    random_files(&old, &mut rng, 12, 150_000, 400_000);
    random_files(&shared, &mut rng, 12, 150_000, 400_000);
    let first = id_of(&r.backup_paths(&[&old, &shared]));
    random_files(&new, &mut rng, 6, 150_000, 400_000);
    let second = id_of(&r.backup_paths(&[&shared, &new]));
    forget_by_hand(&r.repo, &first);
    let packs_before = packs(&r.repo);

    // Phase 1: condemned (and partly used packs repacked), nothing deleted.
    let p = prune(&r, "3s");
    assert!(n(&p, "condemned_packs") > 0, "{p}");
    assert_eq!(n(&p, "deleted_packs"), 0, "{p}");
    let packs_marked = packs(&r.repo);
    assert!(packs_before.iter().all(|p| packs_marked.contains(p)), "nothing is deleted before the grace period");
    let before = data_bytes(&r.repo);
    assert_eq!(objects(&r.repo, "prune").len(), 1, "one mark");
    // A second prune within the grace period neither deletes nor marks again.
    let again = prune(&r, "3s");
    assert_eq!((n(&again, "deleted_packs"), n(&again, "condemned_packs"), n(&again, "pending_marks")), (0, 0, 1), "{again}");
    let check = r.check(&["--read-data"]).ok().json();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");

    // Phase 2, after the grace period.
    std::thread::sleep(Duration::from_millis(3100));
    let swept = prune(&r, "3s");
    assert_eq!(n(&swept, "deleted_packs"), n(&p, "condemned_packs") + n(&p, "repacked_packs"), "{swept}");
    assert_eq!(n(&swept, "rescued_packs"), 0);
    assert!(objects(&r.repo, "prune").is_empty(), "the swept mark is gone");
    let after = data_bytes(&r.repo);
    assert_eq!(before - after, n(&swept, "deleted_bytes"));
    assert!(after < before, "space was freed");
    let check = r.check(&["--read-data"]).ok().json();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    let out = t.join("out");
    r.restore(&second, &out, &[] as &[&str]).ok();
    assert_trees_equal(&shared, &out.join(shared.strip_prefix("/").unwrap()));
    assert_trees_equal(&new, &out.join(new.strip_prefix("/").unwrap()));
    assert!(!out.join(old.strip_prefix("/").unwrap()).exists());
}

#[test]
fn repacking_keeps_used_blobs_and_respects_its_budget() {
    let t = TestDir::new("prune-repack");
    let r = Reprise::new(t.path());
    r.init(); // default 8 MiB packs: both snapshots share packs
    let mut rng = Rng::new(72);
    let (a, b) = (t.join("src/a"), t.join("src/b"));
    random_files(&a, &mut rng, 10, 200_000, 300_000);
    random_files(&b, &mut rng, 10, 200_000, 300_000);
    let first = id_of(&r.backup_paths(&[&a, &b]));
    let second = id_of(&r.backup_paths(&[&b]));
    forget_by_hand(&r.repo, &first);
    // A budget smaller than any pack: nothing repacked, and it says so.
    let limited = r.run(&["--json", "prune", "--grace", "0", "--max-repack", "1K"]).ok().json();
    assert_eq!(n(&limited, "repacked_packs"), 0, "{limited}");
    assert_eq!(limited["repack_limited"], true);
    // Without a budget, the mixed pack is repacked and (grace 0) swept at once.
    let p = r.run(&["--json", "prune", "--grace", "0", "--max-unused", "0"]).ok().json();
    assert!(n(&p, "repacked_packs") >= 1, "{p}");
    assert!(n(&p, "deleted_packs") >= 1, "{p}");
    assert_eq!(n(&p, "unused_bytes_left"), 0);
    let check = r.check(&["--read-data"]).ok().json();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    let out = t.join("out");
    r.restore(&second, &out, &[] as &[&str]).ok();
    assert_trees_equal(&b, &out.join(b.strip_prefix("/").unwrap()));
}

/// Starts `backup --stdin`, feeds it `data`, and returns the child with
/// its stdin still open (the backup cannot finish until it is closed).
fn start_stdin_backup(r: &Reprise, data: &[u8]) -> (std::process::Child, std::process::ChildStdin) {
    let (mut c, _) = r.command(&["--json", "backup", "--stdin", "--stdin-name", "dump.bin"]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    // Writing more than a pipe holds means the backup is reading, so it has
    // loaded the marks and the index already.
    stdin.write_all(data).expect("feed the backup");
    (child, stdin)
}

#[test]
fn a_pack_a_running_backup_relied_on_is_rescued_and_a_late_commit_is_refused() {
    let t = TestDir::new("prune-race");
    let r = Reprise::new(t.path());
    init_small_packs(&r);
    let mut rng = Rng::new(73);
    let mut data = vec![0u8; 3_000_000];
    for b in data.chunks_mut(8) {
        let v = rng.next_u64().to_le_bytes();
        b.copy_from_slice(&v[..b.len()]);
    }
    fs::create_dir_all(t.join("src")).unwrap();
    fs::write(t.join("src/dump.bin"), &data).unwrap();
    let first = id_of(&r.backup_paths(&[&t.join("src")]));
    forget_by_hand(&r.repo, &first);

    // A backup of the same bytes starts while the packs are still live, so
    // it deduplicates against them; then a prune condemns those packs.
    let (child, stdin) = start_stdin_backup(&r, &data);
    let p = prune(&r, "8s");
    assert!(n(&p, "condemned_packs") > 0, "{p}");
    drop(stdin); // the backup commits within the grace period
    let out = wait_output(child, "backup --stdin".into(), Instant::now(), Duration::from_mins(2)).ok().json();
    let rescued_snapshot = id_of(&out);
    assert_eq!(summary(&out, "new_blobs"), 0, "the backup reused the condemned packs' blobs: {out}");
    std::thread::sleep(Duration::from_millis(8100));
    let swept = prune(&r, "8s");
    assert!(n(&swept, "rescued_packs") > 0, "the sweep saw the new snapshot and kept its packs: {swept}");
    let check = r.check(&["--read-data"]).ok().json();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    let restored = t.join("restored");
    r.restore(&rescued_snapshot, &restored, &[] as &[&str]).ok();
    assert!(fs::read(restored.join("dump.bin")).unwrap() == data, "bit-identical after the sweep");

    // The same race, but the backup commits past three quarters of the
    // grace period: it refuses, and nothing it wrote is referenced.
    forget_by_hand(&r.repo, &rescued_snapshot);
    let before = r.snapshots().len();
    let (child, stdin) = start_stdin_backup(&r, &data);
    let p = prune(&r, "4s");
    assert!(n(&p, "condemned_packs") > 0, "{p}");
    std::thread::sleep(Duration::from_millis(3300));
    drop(stdin);
    // Exit 10: busy, retry later (it was 1, "unexpected error").
    let late = wait_output(child, "backup --stdin".into(), Instant::now(), Duration::from_mins(2)).expect_code(10);
    late.assert_one_line_error();
    assert!(late.stderr.contains("run the backup again"), "{}", late.stderr);
    assert_eq!(r.snapshots().len(), before, "no snapshot was written");
    // Run again, it succeeds (it does not deduplicate against condemned packs).
    let again = r.run_input(&["--json", "backup", "--stdin", "--stdin-name", "dump.bin"], Some(&data)).ok().json();
    assert!(summary(&again, "new_blobs") > 0, "{again}");
    std::thread::sleep(Duration::from_millis(4100));
    prune(&r, "4s");
    let check = r.check(&["--read-data"]).ok().json();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
}

/// Path → file bytes of a source folder.
fn manifest(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in fs::read_dir(root).unwrap().flatten() {
        out.insert(e.path().strip_prefix(root).unwrap().to_owned(), fs::read(e.path()).unwrap());
    }
    out
}

/// Changes a few files of a source folder: rewrites, additions, deletions.
fn mutate(dir: &Path, rng: &mut Rng, round: usize) {
    let mut files: Vec<PathBuf> = fs::read_dir(dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    for f in &files {
        match rng.below(6) {
            0 => fs::remove_file(f).unwrap(),
            1 => {
                let size = rng.range(20_000, 300_000) as usize;
                write_random_file(f, rng, size);
            }
            _ => {}
        }
    }
    for i in 0..rng.range(1, 4) {
        let size = rng.range(20_000, 300_000) as usize;
        write_random_file(&dir.join(format!("r{round:03}-{i}")), rng, size);
    }
}

/// A writer holding only a write-only credential, as production hosts do:
/// `--key-file CREDENTIAL`, no passphrase, its own files cache.
fn write_only(admin: &Reprise, t: &TestDir, name: &str) -> (Reprise, PathBuf) {
    let cred = t.join(format!("{name}.credential"));
    admin.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap(), "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    (admin.without_password().with_cache(t.join(format!("{name}-cache"))), cred)
}

/// `ARGS` with `--key-file CREDENTIAL` in front.
fn with_key(cred: &Path, args: &[&str]) -> Vec<std::ffi::OsString> {
    let mut all: Vec<std::ffi::OsString> = vec!["--key-file".into(), cred.into()];
    all.extend(args.iter().map(Into::into));
    all
}

/// One forced race of the soak: a dump host deduplicates against the
/// packs of its previous dump while a prune condemns them.
struct Race {
    round: usize,
    /// Commit within the grace period's first three quarters (the sweep
    /// must rescue), or after (the writer must refuse).
    timely: bool,
    /// The data packs of the dump the racing backup relied on.
    packs: Vec<String>,
    /// The racing backup's snapshot, when it committed.
    snapshot: Option<String>,
    /// What the race's own prune reported deleting and rescuing: it may
    /// sweep an earlier round's marks, whose grace period is longer than
    /// the other prunes' (the rescue of the previous race is often here).
    pruned: (u64, u64),
}

/// The grace period of the forced races' prunes.
const RACE_GRACE: Duration = Duration::from_secs(4);

/// The race the protocol exists for, forced: `dumper` backs up `dump`
/// (snapshot P, alone in the repository at that moment, so the packs it
/// adds are P's); a second backup of the same bytes starts and loads the
/// index while P's packs are live, so it deduplicates against them; P is
/// forgotten and a prune condemns its packs; then the backup commits,
/// either at once or once three quarters of the grace period are gone.
fn forced_race(admin: &Reprise, dumper: &Reprise, cred: &Path, dump: &[u8], round: usize, timely: bool) -> Race {
    let before: BTreeSet<String> = packs(&admin.repo).into_iter().collect();
    let args = with_key(cred, &["--json", "backup", "--stdin", "--stdin-name", "dump.bin", "--as", "dumps"]);
    let p = id_of(&dumper.run_input(&args, Some(dump)).ok().json());
    let packs: Vec<String> = packs(&admin.repo).into_iter().filter(|x| !before.contains(x) && size_of(&admin.repo, x) > 100_000).collect();
    assert!(!packs.is_empty(), "round {round}: the dump added no data pack");
    // The racing backup: fed more than a pipe holds, so it is reading its
    // input, hence has read the marks and loaded the index.
    let (mut c, line) = dumper.command(&args);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let half = dump.len() / 2;
    stdin.write_all(&dump[..half]).expect("feed the backup");
    forget_by_hand(&admin.repo, &p);
    let pruned = admin.run(&["--json", "prune", "--grace", &format!("{}s", RACE_GRACE.as_secs())]).ok().json();
    assert!(n(&pruned, "condemned_packs") >= packs.len() as u64, "round {round}: the prune condemned the dump's packs: {pruned}");
    if !timely {
        // The mark is older than this prune's end: four fifths of the
        // grace period from now is past its three quarters.
        std::thread::sleep(RACE_GRACE * 4 / 5);
    }
    stdin.write_all(&dump[half..]).expect("feed the backup");
    drop(stdin);
    let out = wait_output(child, line, Instant::now(), Duration::from_mins(2));
    let snapshot = if out.code == 0 {
        let v = out.json();
        assert!(summary(&v, "new_blobs") <= 1, "round {round}: the racing backup relied on the dump's packs (only its tree is new): {v}");
        Some(id_of(&v))
    } else {
        out.assert_one_line_error();
        assert!(out.stderr.contains("run the backup again"), "round {round}: unexpected failure: {}", out.describe());
        None
    };
    let pruned = (n(&pruned, "deleted_packs"), n(&pruned, "rescued_packs"));
    Race { round, timely, packs, snapshot, pruned }
}

/// Many rounds of concurrent backups, forgets and prunes, with the writers
/// holding write-only credentials (the real deployment), after which every
/// snapshot that was committed and not forgotten restores bit for bit.
/// Each round also forces the race the two phases exist for (see
/// [`forced_race`]), alternately committing in time and too late, and the
/// test checks on storage what each race must give: a timely commit keeps
/// the condemned packs it relied on through the sweep (rescued), a late
/// one is refused and those packs are swept. Random timing alone may never
/// produce the race; this run cannot pass without it.
#[test]
fn concurrent_write_only_backups_forgets_and_prunes_then_every_snapshot_restores() {
    let t = TestDir::new("prune-concurrent");
    let r = Reprise::new(t.path());
    init_small_packs(&r);
    let mut rng = Rng::new(74);
    let hosts: Vec<(PathBuf, Reprise, PathBuf)> = (0..2)
        .map(|h| {
            let dir = t.join(format!("src/host{h}"));
            random_files(&dir, &mut rng, 10, 20_000, 300_000);
            let (writer, cred) = write_only(&r, &t, &format!("host{h}"));
            (dir, writer, cred)
        })
        .collect();
    let (dumper, dump_cred) = write_only(&r, &t, "dumps");
    // Snapshot ID → the content its source had.
    let mut expected: BTreeMap<String, (PathBuf, BTreeMap<PathBuf, Vec<u8>>)> = BTreeMap::new();
    let mut dumps: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut races = Vec::new();
    let (mut refused, mut prunes, mut deleted, mut rescued, mut forgotten) = (0, 0, 0, 0, 0);
    let rounds = 10;
    let deadline = Instant::now() + Duration::from_secs(400);
    let prune = |r: &Reprise| {
        let p = r.run(&["--json", "prune", "--grace", "1s"]).ok().json();
        (n(&p, "deleted_packs"), n(&p, "rescued_packs"))
    };
    let mut tally = |(d, s): (u64, u64)| {
        prunes += 1;
        deleted += d;
        rescued += s;
    };
    for round in 0..rounds {
        assert!(Instant::now() < deadline, "bounded in time: {round} rounds done");
        for (dir, _, _) in &hosts {
            mutate(dir, &mut rng, round);
        }
        // Forget about a third of the hosts' snapshots kept so far (never
        // the newest of a host, as a policy would).
        let ids: Vec<String> = expected.keys().filter(|id| !dumps.contains_key(*id)).cloned().collect();
        for id in ids {
            if rng.below(3) == 0 {
                forget_by_hand(&r.repo, &id);
                expected.remove(&id);
                forgotten += 1;
            }
        }
        let manifests: Vec<_> = hosts.iter().map(|(dir, _, _)| manifest(dir)).collect();
        let dump = rng.bytes(3_000_000);
        let backups: Vec<_> = hosts.iter().map(|(dir, w, cred)| w.spawn(&with_key(cred, &["--json", "backup", "--path", dir.to_str().unwrap()]))).collect();
        // Prunes with a one-second grace period run while the backups do:
        // the first marks, later ones sweep what an earlier round marked.
        std::thread::sleep(Duration::from_millis(rng.range(0, 500)));
        tally(prune(&r));
        std::thread::sleep(Duration::from_millis(rng.range(0, 500)));
        tally(prune(&r));
        for ((child, line), ((dir, _, _), m)) in backups.into_iter().zip(hosts.iter().zip(manifests)) {
            let out = wait_output(child, line, Instant::now(), Duration::from_mins(2));
            if out.code == 0 {
                expected.insert(id_of(&out.json()), (dir.clone(), m));
            } else {
                // The one failure allowed: the commit came too late in a
                // prune's grace period. It says so and wrote no snapshot.
                assert!(out.stderr.contains("run the backup again"), "unexpected failure: {}", out.describe());
                refused += 1;
            }
        }
        // The forced race runs once the hosts' backups are done: it tells
        // the dump's packs from the others by what appeared while it ran,
        // which a concurrent backup would blur (under load, a host's packs
        // landed in that window and the check failed for them).
        let race = forced_race(&r, &dumper, &dump_cred, &dump, round, round % 2 == 0);
        if let Some(id) = &race.snapshot {
            dumps.insert(id.clone(), dump.clone());
        }
        tally(race.pruned);
        races.push(race);
    }
    // Let every mark come due, sweep, and verify everything.
    std::thread::sleep(RACE_GRACE + Duration::from_millis(100));
    tally(prune(&r));
    std::thread::sleep(Duration::from_millis(1100));
    tally(prune(&r));
    let committed_races = races.iter().filter(|x| x.snapshot.is_some()).count();
    eprintln!(
        "{rounds} rounds: {} host snapshots kept, {forgotten} forgotten, {refused} host backups refused by the prune guard, {prunes} prunes, {deleted} packs deleted, {rescued} rescued; forced races: {committed_races} committed, {} refused by the guard",
        expected.len(),
        races.len() - committed_races
    );
    // Every forced race ran as it must, checked on storage.
    for race in &races {
        let present = race.packs.iter().filter(|p| r.repo.join(p).exists()).count();
        match (&race.snapshot, race.timely) {
            (Some(_), _) => assert_eq!(present, race.packs.len(), "round {}: a committed backup's condemned packs must be rescued", race.round),
            (None, false) => assert_eq!(present, 0, "round {}: the refused backup's packs were condemned and swept", race.round),
            (None, true) => eprintln!("round {}: the timely commit was refused (this machine took over {}s to commit)", race.round, RACE_GRACE.as_secs() * 3 / 4),
        }
        assert!(race.timely || race.snapshot.is_none(), "round {}: a commit past three quarters of the grace period was accepted", race.round);
    }
    assert!(committed_races >= 1, "no forced race committed in time: the rescue path was never exercised");
    let rescued_packs: usize = races.iter().filter(|x| x.snapshot.is_some()).map(|x| x.packs.len()).sum();
    assert!(rescued as usize >= rescued_packs, "the prunes report {rescued} rescued packs, the forced races alone needed {rescued_packs}");
    assert!(deleted > 0, "the prunes deleted something");
    assert!(forgotten > 0 && expected.len() > 2);
    let check = r.check(&["--read-data"]).ok().json();
    assert!(check["problems"].as_array().unwrap().is_empty(), "{check}");
    let snapshots: Vec<String> = r.snapshots().iter().map(|s| s["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(snapshots.len(), expected.len() + dumps.len(), "every committed snapshot that was not forgotten is there");
    for (id, (src, m)) in &expected {
        let out = t.join(format!("restore-{id}"));
        r.restore(id, &out, &[] as &[&str]).ok();
        let got = manifest(&out.join(src.strip_prefix("/").unwrap()));
        assert!(got == *m, "snapshot {id} does not restore what was backed up");
        fs::remove_dir_all(&out).unwrap();
    }
    for (id, dump) in &dumps {
        let out = t.join(format!("restore-{id}"));
        r.restore(id, &out, &[] as &[&str]).ok();
        assert!(fs::read(out.join("dump.bin")).unwrap() == *dump, "dump {id} does not restore bit for bit");
        fs::remove_dir_all(&out).unwrap();
    }
}
