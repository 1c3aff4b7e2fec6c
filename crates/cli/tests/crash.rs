//! `kill -9` at random points of a backup, many times over one repository:
//! the repository stays consistent, every earlier snapshot stays intact, and
//! the next backup reuses the packs the killed one left. Then concurrent
//! backups into one repository.
//!
//! Reproduce a run with `REPRISE_CRASH_SEED=<seed printed by the test>`;
//! `REPRISE_CRASH_TRIALS=N` changes the number of trials (default 25).

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

/// Small packs (the minimum the config accepts is 1 MiB) give every backup
/// many durable points at which a kill leaves finished packs behind.
const PACK_SIZE: u64 = 2 * 1024 * 1024;

/// ~31 MB: four large files (two above the 8 MiB whole-read limit, so both
/// read paths run) and 30 small ones.
fn dataset(dir: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    for (i, size) in [12_000_000usize, 9_000_000, 6_000_000, 3_000_000].iter().enumerate() {
        write_random_file(&dir.join(format!("large-{i}.bin")), &mut rng, *size);
    }
    random_files(&dir.join("small"), &mut rng, 30, 1_000, 60_000);
    stamp_mtimes(dir, &mut rng);
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn pack_bytes(repo: &Path, packs: &BTreeSet<String>) -> u64 {
    packs.iter().map(|p| size_of(repo, p)).sum()
}

fn restore_and_compare(r: &Reprise, id: &str, dir: &Path, target: &Path) {
    r.restore(&snap_path(id, dir), target, &[] as &[&str]).ok();
    assert_trees_equal(dir, target);
    fs::remove_dir_all(target).unwrap();
}

#[test]
fn kill_9_during_backup_never_damages_the_repository() {
    let seed = env_u64("REPRISE_CRASH_SEED").unwrap_or(0x5EED_2026);
    let trials = env_u64("REPRISE_CRASH_TRIALS").unwrap_or(25) as usize;
    eprintln!("crash trials: seed {seed:#x} (REPRISE_CRASH_SEED), {trials} trials");
    let mut rng = Rng::new(seed);
    let t = TestDir::new("crash");
    let r = Reprise::new(t.path());
    r.init();
    set_pack_size(&r.repo, PACK_SIZE);

    // Calibration: one uninterrupted backup of a data set of the same shape.
    let dir0 = t.join("data/0");
    dataset(&dir0, seed);
    let started = Instant::now();
    let full = r.backup_paths(&[&dir0]);
    let full_duration = started.elapsed();
    let full_stored = summary(&full, "stored_bytes");
    assert!(full_stored > 30_000_000, "{full}");
    let mut done: Vec<(String, PathBuf)> = vec![(id_of(&full), dir0)];
    eprintln!("uninterrupted backup: {full_duration:?}, {full_stored} bytes stored");

    let mut killed_with_leftovers = 0;
    let mut finished_before_kill = 0;
    for trial in 1..=trials {
        let dir = t.join(format!("data/{trial}"));
        dataset(&dir, seed.wrapping_add(trial as u64));
        let before: BTreeSet<String> = packs(&r.repo).into_iter().collect();
        let objects_before = repo_listing(&r.repo);
        let snaps_before = r.snapshots().len();

        let delay = Duration::from_micros(rng.below(full_duration.as_micros() as u64 + 1));
        let (mut child, line) = r.spawn(&["--json", "backup", "--path", dir.to_str().unwrap()]);
        let spawned = Instant::now();
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL; harmless if it already exited
        let out = wait_output(child, line, spawned, COMMAND_TIMEOUT);
        let was_killed = out.code == -1;
        if !was_killed {
            assert_eq!(out.code, 0, "an uninterrupted backup failed: {}", out.describe());
            finished_before_kill += 1;
        }

        // 1. Every object that existed is untouched (same inode, size and
        // mtime): earlier snapshots cannot have changed. The repository
        // checks clean (notes about unindexed packs are fine).
        let objects_after = repo_listing(&r.repo);
        for (path, meta) in &objects_before {
            if ["data/", "index/", "snapshots/", "keys/", "config"].iter().any(|k| path.to_string_lossy().starts_with(k)) && meta.2 != 0 {
                assert_eq!(objects_after.get(path), Some(meta), "trial {trial}: {} changed or vanished", path.display());
            }
        }
        let check = r.check(&[] as &[&str]);
        assert_eq!(check.code, 0, "trial {trial} (kill after {delay:?}): {}", check.describe());
        assert!(problem_objects(&check.json()).is_empty(), "{}", check.describe());
        let snaps_after = r.snapshots().len();
        assert!(snaps_after == snaps_before || snaps_after == snaps_before + 1);

        // 2. The next backup succeeds and reuses the packs left behind.
        let leftover: BTreeSet<String> = packs(&r.repo).into_iter().filter(|p| !before.contains(p)).collect();
        let left_bytes = pack_bytes(&r.repo, &leftover);
        let resumed = r.backup_paths(&[&dir]);
        let stored = summary(&resumed, "stored_bytes");
        let adopted = resumed["adopted_packs"].as_u64().unwrap();
        eprintln!(
            "trial {trial:2}: kill after {:>4} ms ({}), {} pack(s) / {left_bytes} bytes left, next backup stored {stored} bytes, adopted {adopted}",
            delay.as_millis(),
            if was_killed { "killed" } else { "had finished" },
            leftover.len(),
        );
        assert!(
            stored + left_bytes <= full_stored + full_stored / 50 + 512 * 1024,
            "trial {trial}: the next backup re-stored what the killed one left: stored {stored} + left {left_bytes} > full {full_stored}"
        );
        assert!(adopted <= leftover.len() as u64);
        if was_killed && left_bytes > 0 {
            killed_with_leftovers += 1;
        }
        done.push((id_of(&resumed), dir));

        // 3. The new snapshot and a random earlier one restore bit-identical.
        let (id, d) = done.last().unwrap().clone();
        restore_and_compare(&r, &id, &d, &t.join("restore-new"));
        let (id, d) = done[rng.below(done.len() as u64 - 1) as usize].clone();
        restore_and_compare(&r, &id, &d, &t.join("restore-old"));
    }
    eprintln!("{killed_with_leftovers} trial(s) killed after packs were written; {finished_before_kill} finished before the kill");
    assert!(killed_with_leftovers >= 1, "no kill happened after a pack was written: the reuse path was never tested");

    // Finally every pack reads back and every pack is indexed. (Every
    // snapshot was restored right after it was made, and every later trial
    // proved its objects untouched; restore the first and a few more again.)
    let check = r.check(&["--read-data"]).ok().json();
    assert!(problem_objects(&check).is_empty(), "{check}");
    assert_eq!(check["notes"], serde_json::json!([]), "every leftover pack must be indexed by now: {check}");
    assert!(r.snapshots().len() >= done.len());
    for i in [0, done.len() / 3, 2 * done.len() / 3] {
        let (id, d) = &done[i];
        restore_and_compare(&r, id, d, &t.join("restore-final"));
    }
}

#[test]
fn concurrent_backups_into_one_repository() {
    let t = TestDir::new("concurrent");
    let r = Reprise::new(t.path());
    r.init();
    set_pack_size(&r.repo, PACK_SIZE);
    let shared = Rng::new(77).bytes(3_000_000);
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| {
            let d = t.join(format!("host-{i}"));
            let mut rng = Rng::new(1000 + i);
            write_random_file(&d.join("own.bin"), &mut rng, 6_000_000);
            random_files(&d.join("docs"), &mut rng, 15, 1_000, 80_000);
            // The same file on every host: stored concurrently by all three.
            write_file(&d.join("shared.bin"), &shared);
            stamp_mtimes(&d, &mut rng);
            d
        })
        .collect();

    for round in 0..2 {
        if round == 1 {
            for (i, d) in dirs.iter().enumerate() {
                write_random_file(&d.join(format!("round-{round}.bin")), &mut Rng::new(50 + i as u64), 2_000_000);
                write_file(&d.join("shared-2.bin"), &shared[..1_000_000]);
            }
        }
        let children: Vec<_> = dirs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let c = format!("host-{i}");
                let started = Instant::now();
                let (child, line) = r.spawn(&["--json", "backup", "--as", &c, "--path", d.to_str().unwrap()]);
                (child, line, started)
            })
            .collect();
        for (child, line, started) in children {
            wait_output(child, line, started, COMMAND_TIMEOUT).ok();
        }
        let check = r.check(&["--read-data"]).ok().json();
        assert!(problem_objects(&check).is_empty(), "{check}");
        assert_eq!(check["notes"], serde_json::json!([]), "{check}");
    }
    let snaps = r.snapshots();
    assert_eq!(snaps.len(), 6);
    for (i, d) in dirs.iter().enumerate() {
        let latest = snaps.iter().rfind(|s| s["component"] == format!("host-{i}")).unwrap();
        restore_and_compare(&r, latest["id"].as_str().unwrap(), d, &t.join("restored"));
    }
    // Unique content counts the shared file once, however many writers
    // stored it at the same time.
    let stats = r.run(&["--json", "stats"]).ok().json();
    let unique = stats["unique_bytes"].as_u64().unwrap();
    let own: u64 = dirs
        .iter()
        .flat_map(|d| [d.join("own.bin"), d.join("round-1.bin")].into_iter().chain(fs::read_dir(d.join("docs")).unwrap().map(|e| e.unwrap().path())))
        .map(|p| fs::metadata(p).unwrap().len())
        .sum();
    assert!(unique >= own + 3_000_000 && unique < own + 3_000_000 + 1_000_000 + 256 * 1024, "{stats}");
}

/// The bytes of the "dump" the interrupted backup reads: the seeded
/// stream, 1 MiB at a time.
fn dump_piece(rng: &mut Rng) -> Vec<u8> {
    rng.bytes(1 << 20)
}

/// Ctrl-C (SIGINT) is not a crash: the backup stops, exits 130, and what
/// was uploaded is indexed, so the next backup neither re-adopts nor
/// re-stores it.
///
/// The backup reads a dump from standard input (as `pg_dump | reprise
/// backup --stdin`) that the test keeps feeding until a few packs are
/// stored, then interrupts, waits until reprise says it is interrupting,
/// and only then ends the input. So the backup cannot finish before the
/// signal, however fast the machine: a binary that ignored SIGINT would
/// reach the end of its input and exit 0, and the test fails. (It used to
/// back up a directory, and passed with "nothing to check" whenever the
/// backup won the race.)
#[test]
fn interrupted_backup_keeps_and_indexes_what_was_stored() {
    use std::io::{BufRead, Write};
    let t = TestDir::new("sigint");
    let r = Reprise::new(t.path());
    r.init();
    set_pack_size(&r.repo, PACK_SIZE);
    let (mut c, line) = r.command(&["--json", "backup", "--stdin", "--stdin-name", "dump.bin"]);
    let started = Instant::now();
    let mut child = c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let stderr = child.stderr.take().expect("stderr");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for l in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = lines_tx.send(l);
        }
    });
    let mut rng = Rng::new(4242);
    let mut dump = Vec::new();
    // Feed until a few packs are stored (the handler is installed by then).
    while packs(&r.repo).len() < 3 {
        assert!(started.elapsed() < Duration::from_mins(2) && dump.len() < 400 << 20, "no 3 packs stored after {} MiB fed", dump.len() >> 20);
        let piece = dump_piece(&mut rng);
        stdin.write_all(&piece).expect("feed the backup");
        dump.extend(piece);
    }
    let st = std::process::Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(st.success());
    let mut said = Vec::new();
    loop {
        match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(l) if l.contains("interrupting") => {
                said.push(l);
                break;
            }
            Ok(l) => said.push(l),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout | std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("reprise did not say it was interrupting within 30 s of SIGINT: {said:?}")
            }
        }
    }
    // Only now does the input end: a backup that had not taken the signal
    // would complete and save a snapshot.
    drop(stdin);
    let out = wait_output(child, line, started, COMMAND_TIMEOUT);
    reader.join().unwrap();
    said.extend(lines.try_iter());
    assert_eq!(out.code, 130, "SIGINT must stop the backup with exit 130: {}\n{said:?}", out.describe());
    assert!(said.last().is_some_and(|l| l.starts_with("reprise: ")), "{said:?}");
    assert_eq!(r.snapshots().len(), 0);
    let check = r.check(&[] as &[&str]).ok().json();
    assert!(problem_objects(&check).is_empty(), "{check}");
    assert_eq!(check["notes"], serde_json::json!([]), "an interrupted backup indexes what it stored: {check}");
    let left: BTreeSet<String> = packs(&r.repo).into_iter().collect();
    let left_bytes = pack_bytes(&r.repo, &left);
    assert!(left_bytes > 0);
    // The same dump again, and more: what the interrupted backup stored is
    // reused, not stored again.
    for _ in 0..4 {
        dump.extend(dump_piece(&mut rng));
    }
    let next = r.run_input(&["--json", "backup", "--stdin", "--stdin-name", "dump.bin"], Some(&dump)).ok().json();
    assert_eq!(next["adopted_packs"], 0, "{next}");
    let stored = summary(&next, "stored_bytes");
    assert!(stored + left_bytes < dump.len() as u64 + 2_000_000, "stored {stored} + left {left_bytes} for a {} byte dump: {next}", dump.len());
    let target = t.join("out");
    r.restore(&id_of(&next), &target, &[] as &[&str]).ok();
    assert!(fs::read(target.join("dump.bin")).unwrap() == dump, "the dump restores bit-identical");
}

/// Bug (test audit, issue 13): Ctrl-C on `backup --stdin` was noticed
/// only when the input ended (the engine looked at the cancel token
/// between files, not while reading one). `pg_dump | reprise backup
/// --stdin` with a dump that stalls must still stop on Ctrl-C: the input
/// stays open and silent after the signal, and the backup must exit 130
/// within seconds, with what it stored indexed and no snapshot.
#[test]
fn ctrl_c_stops_a_stdin_backup_whose_input_stays_open() {
    use std::io::Write;
    let t = TestDir::new("sigint-open");
    let r = Reprise::new(t.path());
    r.init();
    set_pack_size(&r.repo, PACK_SIZE);
    let (mut c, line) = r.command(&["--json", "backup", "--stdin", "--stdin-name", "dump.bin"]);
    let started = Instant::now();
    let mut child = c.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut rng = Rng::new(77);
    let mut fed = 0usize;
    // Feed until a few packs are stored (the handler is installed by then).
    while packs(&r.repo).len() < 3 {
        assert!(started.elapsed() < Duration::from_mins(2) && fed < 400 << 20, "no 3 packs stored after {} MiB fed", fed >> 20);
        stdin.write_all(&dump_piece(&mut rng)).expect("feed the backup");
        fed += 1 << 20;
    }
    let st = std::process::Command::new("kill").arg("-INT").arg(child.id().to_string()).status().unwrap();
    assert!(st.success());
    let signalled = Instant::now();
    // `stdin` stays open until the backup has exited.
    let out = wait_output(child, line, signalled, Duration::from_secs(10));
    drop(stdin);
    eprintln!("exit {} {:?} after SIGINT with the input open ({} MiB fed)", out.code, signalled.elapsed(), fed >> 20);
    assert_eq!(out.code, 130, "{}", out.describe());
    assert_eq!(r.snapshots().len(), 0);
    let check = r.check(&[] as &[&str]).ok().json();
    assert!(problem_objects(&check).is_empty(), "{check}");
    assert_eq!(check["notes"], serde_json::json!([]), "what the interrupted backup stored is indexed: {check}");
    assert!(!packs(&r.repo).is_empty());
}
