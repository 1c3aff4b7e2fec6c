//! PostgreSQL, end to end, against real PostgreSQL servers started by the
//! tests (initdb, pg_ctl, pgbench, pg_amcheck, pg_dump from the installed
//! PostgreSQL; the test command installs it). Each test builds its own
//! cluster and repository in a private temporary folder and stops the
//! cluster when done.
//!
//! When PostgreSQL is not installed the tests fail if
//! REPRISE_TEST_REQUIRE_ALL is set (CI), and are skipped visibly otherwise
//! (`common::skip`).
//!
//! Ports: the clusters listen on a Unix socket in a private folder only
//! (`listen_addresses = ''`, checked in `setup`); their "port" only names
//! the socket file there, so two tests can never race for one.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reprise_postgres::cluster::{self, Cluster, OnDrop};

use common::pg::{COMPONENT, Env, amcheck, assert_same_dump, cluster_of, dump, dump_with, restore_started, restore_started_with, setup, setup_archiving_with, walk};

fn markers(c: &Cluster) -> i64 {
    c.connect("postgres").expect("connect").query_one("SELECT count(*) FROM markers", &[]).expect("markers").get(0)
}

#[test]
fn pitr_to_times_lsns_and_restore_points_under_pgbench_load() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE markers (n int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())");
    let init = env.pgbench(&["-i", "-s", "5", "-q", "postgres"]).output().expect("pgbench -i");
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    env.archive_now();
    env.ok(&["backup", COMPONENT]);

    // Each phase: pgbench runs; during it a marker is committed and a time,
    // an LSN and a restore point are recorded; after it, with the database
    // quiet, a dump and its LSN are recorded for an exact comparison.
    let mut times = Vec::new();
    let mut lsns = Vec::new();
    let mut names = Vec::new();
    let mut quiet = Vec::new();
    let phases = 3;
    for i in 0..phases {
        let mut load = env.pgbench(&["-c", "2", "-T", "3", "-n", "postgres"]).stdout(std::process::Stdio::null()).spawn().expect("pgbench");
        std::thread::sleep(Duration::from_millis(1200));
        env.sql(&format!("INSERT INTO markers (n) VALUES ({i})"));
        let lsn = env.one("SELECT pg_current_wal_insert_lsn()::text");
        let rp = format!("rp_{i}");
        env.sql(&format!("SELECT pg_create_restore_point('{rp}')"));
        std::thread::sleep(Duration::from_millis(20));
        times.push((i, jiff::Timestamp::now().to_string()));
        lsns.push((i, lsn));
        names.push((i, rp));
        assert!(load.wait().expect("pgbench").success());
        let d = dump(&env, env.cluster(), "postgres");
        let q = env.one("SELECT pg_current_wal_insert_lsn()::text");
        quiet.push((i, q, d));
        if i == 1 {
            // A second base backup: targets before it must use the first.
            env.ok(&["backup", COMPONENT]);
        }
    }
    env.sql(&format!("INSERT INTO markers (n) VALUES ({phases})"));
    env.archive_now();

    // Every restore: the marker count is the state at the target, the dump
    // (when one was taken at the target) is identical, pg_amcheck is clean.
    let check = |label: &str, target: &str, expect_markers: i64, expect_dump: Option<&String>| {
        let to = env.path(&format!("restore-{label}"));
        let (c, out) = restore_started(&env, target, &to);
        assert_eq!(markers(&c), expect_markers, "{label}: restore at {target} shows the wrong state ({out})");
        if let Some(d) = expect_dump {
            let restored = dump(&env, &c, "postgres");
            if restored != *d {
                let diff: Vec<String> = restored.lines().zip(d.lines()).filter(|(a, b)| a != b).take(5).map(|(a, b)| format!("restored: {a}\n   taken: {b}")).collect();
                panic!("the dump of the restore at {target} differs from the dump taken at that point:\n{}", diff.join("\n"));
            }
        }
        amcheck(&env, &c);
        drop(c);
        let _ = std::fs::remove_dir_all(&to);
    };
    for (i, t) in &times {
        check(&format!("time{i}"), t, i64::from(*i) + 1, None);
    }
    for (i, l) in &lsns {
        check(&format!("lsn{i}"), l, i64::from(*i) + 1, None);
    }
    for (i, n) in &names {
        check(&format!("name{i}"), &format!("name:{n}"), i64::from(*i) + 1, None);
    }
    for (i, q, d) in &quiet {
        check(&format!("quiet{i}"), q, i64::from(*i) + 1, Some(d));
    }
    check("latest", "latest", i64::from(phases) + 1, None);
    let status = env.json(&["status", COMPONENT]);
    assert!(status[0]["pitr_window_seconds"].as_f64().expect("window") > 0.0, "{status}");
    assert!(status[0]["rpo_seconds"].as_f64().is_some(), "{status}");
}

#[test]
fn wal_push_survives_kill_9_and_never_loses_an_acknowledged_segment() {
    let Some(env) = setup(false) else { return };
    // Real segments to push, copied out of pg_wal.
    env.sql("CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 200000) g");
    for _ in 0..3 {
        env.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 50000) g; SELECT pg_switch_wal()");
    }
    let src = env.path("segments");
    std::fs::create_dir_all(&src).expect("mkdir");
    let wal_dir = env.cluster().data_dir.join("pg_wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal_dir).expect("pg_wal").flatten().map(|e| e.path()).filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.len() == 24)).collect();
    segments.sort();
    segments.truncate(3);
    let mut copies = Vec::new();
    for s in &segments {
        let d = src.join(s.file_name().expect("name"));
        std::fs::copy(s, &d).expect("copy");
        copies.push(d);
    }
    let exe = env!("CARGO_BIN_EXE_reprise");
    let push = |seg: &Path| {
        Command::new(exe)
            .args(["--repo", env.repo.to_str().expect("utf8"), "--key-file", env.credential.to_str().expect("utf8"), "wal-push", COMPONENT])
            .arg(seg)
            .spawn()
            .expect("spawn wal-push")
    };
    let mut acknowledged = Vec::new();
    let mut kills = 0;
    for (k, seg) in copies.iter().enumerate() {
        for trial in 0..8u64 {
            let mut child = push(seg);
            std::thread::sleep(Duration::from_micros((trial * 7919 + k as u64 * 104_729) % 40_000));
            match child.try_wait().expect("wait") {
                Some(status) => {
                    assert!(status.success(), "wal-push of {} failed", seg.display());
                    acknowledged.push(seg.clone());
                }
                None => {
                    child.kill().expect("kill -9");
                    let _ = child.wait();
                    kills += 1;
                }
            }
        }
        // After any number of kills, pushing again succeeds.
        assert!(push(seg).wait().expect("wait").success(), "wal-push after kill -9 failed");
        acknowledged.push(seg.clone());
    }
    assert!(kills > 0, "no push was ever interrupted: the delays are too long for this machine");
    // Every acknowledged segment comes back identical; the repository checks clean.
    for seg in &acknowledged {
        let name = seg.file_name().and_then(|n| n.to_str()).expect("name");
        let dest = env.path(&format!("fetched-{name}"));
        let out = Command::new(exe)
            .args(["--repo", env.repo.to_str().expect("utf8"), "--key-file", env.recovery.to_str().expect("utf8"), "wal-fetch", COMPONENT, name])
            .arg(&dest)
            .output()
            .expect("wal-fetch");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::read(&dest).expect("fetched") == std::fs::read(seg).expect("source"), "{name} differs after fetch");
    }
    env.ok(&["--repo", env.repo.to_str().expect("utf8"), "check"]);
    // A different file under an archived name is refused, loudly.
    let forged = env.path("forged");
    std::fs::create_dir_all(&forged).expect("mkdir");
    let name = copies[0].file_name().expect("name");
    std::fs::write(forged.join(name), vec![7u8; 16 << 20]).expect("write");
    let out = Command::new(exe)
        .args(["--repo", env.repo.to_str().expect("utf8"), "--key-file", env.credential.to_str().expect("utf8"), "wal-push", COMPONENT])
        .arg(forged.join(name))
        .output()
        .expect("wal-push");
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("different file"), "{}", String::from_utf8_lossy(&out.stderr));
    // Not archived: exit 1, PostgreSQL's end of recovery.
    let out = Command::new(exe)
        .args(["--repo", env.repo.to_str().expect("utf8"), "--key-file", env.recovery.to_str().expect("utf8"), "wal-fetch", COMPONENT, "0000000100000000000000FF"])
        .arg(env.path("nothing"))
        .output()
        .expect("wal-fetch");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn killed_base_backups_leave_the_repository_consistent() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE markers (n int PRIMARY KEY); INSERT INTO markers VALUES (1)");
    env.sql("CREATE TABLE big AS SELECT g, md5(g::text) || repeat(md5((g * 7)::text), 8) AS pad FROM generate_series(1, 300000) g");
    env.archive_now();
    let exe = env!("CARGO_BIN_EXE_reprise");
    let t = Instant::now();
    env.ok(&["backup", COMPONENT]);
    let full = t.elapsed();
    let mut kills = 0;
    for trial in 0..6u32 {
        env.sql(&format!("UPDATE big SET pad = md5(pad) WHERE g % 97 = {trial}"));
        let mut child = Command::new(exe)
            .args(["--plan", env.plan.to_str().expect("utf8"), "backup", COMPONENT])
            .env("REPRISE_PASSWORD", "test-passphrase")
            .env("XDG_CACHE_HOME", env.path("cache"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn backup");
        std::thread::sleep(full.mul_f64(f64::from(trial % 5 + 1) / 6.0));
        if child.try_wait().expect("wait").is_none() {
            child.kill().expect("kill -9");
            kills += 1;
        }
        let _ = child.wait();
        env.ok(&["--repo", env.repo.to_str().expect("utf8"), "check"]);
    }
    assert!(kills > 0, "no backup was interrupted");
    // The server left backup mode (the session died), a new backup works,
    // and the latest state restores.
    env.sql("INSERT INTO markers VALUES (2)");
    env.ok(&["backup", COMPONENT]);
    env.sql("INSERT INTO markers VALUES (3)");
    env.archive_now();
    env.ok(&["--repo", env.repo.to_str().expect("utf8"), "check", "--read-data"]);
    let (c, _) = restore_started(&env, "latest", &env.path("after-kills"));
    assert_eq!(markers(&c), 3);
    amcheck(&env, &c);
}

#[test]
fn a_promotion_creates_a_timeline_and_restores_follow_it() {
    let Some(mut env) = setup(true) else { return };
    env.sql("CREATE TABLE markers (n int PRIMARY KEY); INSERT INTO markers VALUES (1)");
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    env.sql("INSERT INTO markers VALUES (2)");
    env.archive_now();
    // Failover: the primary is lost; a copy restored from the archive is
    // promoted (timeline 2) and takes over archiving into the same component.
    env.cluster.take();
    let failover = env.path("failover");
    // The server account runs restore_command, which reads this key.
    cluster::hand_over(&env.recovery, 0o600).expect("hand over");
    let out = env.json(&["--key-file", env.recovery.to_str().expect("utf8"), "restore", COMPONENT, "--at", "latest", "--to", failover.to_str().expect("utf8")]);
    assert!(out["wal_segments"].as_u64().expect("segments") > 0, "{out}");
    let exe = env!("CARGO_BIN_EXE_reprise");
    let run = env.path("failover.run");
    std::fs::create_dir_all(&run).expect("mkdir");
    cluster::hand_over(&run, 0o755).expect("hand over");
    let mut c = Cluster::existing(env.bin.clone(), &failover, &run, OnDrop::Stop).expect("cluster");
    c.start(&[
        ("archive_mode".into(), "on".into()),
        ("archive_command".into(), format!("{exe} --repo {} --key-file {} wal-push {COMPONENT} %p", env.repo.display(), env.credential.display())),
    ])
    .expect("start the failover copy");
    c.wait_ready(Duration::from_secs(120)).expect("ready");
    let mut client = c.connect("postgres").expect("connect");
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.query_one("SELECT pg_is_in_recovery()", &[]).expect("q").get::<_, bool>(0) {
        assert!(Instant::now() < deadline, "failover copy never left recovery: {}", c.log_tail(5));
        std::thread::sleep(Duration::from_millis(50));
    }
    let tli: i32 = client.query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[]).expect("q").get(0);
    client.batch_execute("CHECKPOINT").expect("checkpoint");
    let tli2: i32 = client.query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[]).expect("q").get(0);
    assert!(tli.max(tli2) >= 2, "promotion did not create a new timeline");
    client.batch_execute("INSERT INTO markers VALUES (3)").expect("insert");
    let wanted: String = client.query_one("SELECT pg_walfile_name(pg_switch_wal())", &[]).expect("q").get(0);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let last: Option<String> = client.query_one("SELECT last_archived_wal FROM pg_stat_archiver", &[]).expect("q").get(0);
        if last.as_deref().is_some_and(|l| l >= wanted.as_str()) {
            break;
        }
        assert!(Instant::now() < deadline, "timeline 2 not archived: {}", c.log_tail(5));
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(client);
    drop(c);
    // From the base backup on timeline 1, "latest" follows the history file to timeline 2.
    let (r, _) = restore_started(&env, "latest", &env.path("follows"));
    assert_eq!(markers(&r), 3, "the restore did not follow the new timeline");
    let tli: i32 = r.connect("postgres").expect("c").query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[]).expect("q").get(0);
    assert!(tli >= 2);
}

#[test]
fn a_gap_in_the_archive_is_reported_before_restoring() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE t (n int)");
    env.ok(&["backup", COMPONENT]);
    for i in 0..3 {
        env.sql(&format!("INSERT INTO t VALUES ({i})"));
        env.archive_now();
    }
    // Remove a segment from the middle of the chain.
    let mut segs: Vec<PathBuf> = walk(&env.repo.join("wal")).into_iter().filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.len() == 24)).collect();
    segs.sort();
    let victim = segs[segs.len() - 2].clone();
    std::fs::remove_file(&victim).expect("remove segment");
    let to = env.path("gap");
    let out = env.reprise(&["restore", COMPONENT, "--at", "latest", "--to", to.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(6), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(victim.file_name().and_then(|n| n.to_str()).expect("name")), "the missing segment is not named: {err}");
    assert!(!to.exists() || std::fs::read_dir(&to).expect("dir").next().is_none(), "restore wrote files despite the gap");
    let status = env.json(&["status", COMPONENT]);
    assert!(status[0]["postgres"]["gap"].as_str().is_some(), "{status}");
}

#[test]
fn bad_input_gets_one_clear_line_and_changes_nothing() {
    let Some(env) = setup(false) else { return };
    let listing = |env: &Env| walk(&env.repo).into_iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
    let before = listing(&env);
    let base = std::fs::read_to_string(&env.plan).expect("plan");
    let exe = env!("CARGO_BIN_EXE_reprise");
    let run_with_plan = |plan: &str| {
        let p = env.path("bad.toml");
        std::fs::write(&p, plan).expect("plan");
        Command::new(exe).args(["--plan", p.to_str().expect("utf8"), "backup", COMPONENT]).env("REPRISE_PASSWORD", "test-passphrase").env("XDG_CACHE_HOME", env.path("cache")).output().expect("run")
    };
    // Wrong connection string.
    let out = run_with_plan(&base.replace(&format!("port={}", env.cluster().port), "port=1"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("cannot connect") && err.lines().count() == 1, "{err}");
    // Server neither archiving nor streaming.
    let out = env.reprise(&["backup", COMPONENT]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("archive_mode") && err.lines().count() == 1, "{err}");
    assert_eq!(before, listing(&env), "a failed backup changed the repository");
}

#[test]
fn wrong_data_directory_and_privileges_on_an_archiving_server() {
    let Some(env) = setup(true) else { return };
    let listing = |env: &Env| walk(&env.repo).into_iter().filter(|p| !p.starts_with(env.repo.join("wal"))).map(|p| p.display().to_string()).collect::<Vec<_>>();
    let before = listing(&env);
    let base = std::fs::read_to_string(&env.plan).expect("plan");
    let exe = env!("CARGO_BIN_EXE_reprise");
    let run_with_plan = |plan: &str| {
        let p = env.path("bad.toml");
        std::fs::write(&p, plan).expect("plan");
        Command::new(exe).args(["--plan", p.to_str().expect("utf8"), "backup", COMPONENT]).env("REPRISE_PASSWORD", "test-passphrase").env("XDG_CACHE_HOME", env.path("cache")).output().expect("run")
    };
    let out = run_with_plan(&base.replace(&env.cluster().data_dir.display().to_string(), "/var/lib/postgresql/elsewhere"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("data directory") && err.lines().count() == 1, "{err}");
    env.sql("CREATE ROLE clerk LOGIN; GRANT pg_read_all_settings TO clerk");
    let out = run_with_plan(&base.replace("user=postgres", "user=clerk"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(err.contains("privileges") && err.lines().count() == 1, "{err}");
    assert_eq!(before, listing(&env), "a failed backup changed the repository");
    // No session of reprise was left behind.
    assert_eq!(env.one("SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'reprise' AND pid <> pg_backend_pid()"), "0");
}

/// Runs reprise with the test's plan under a shell that, once reprise has
/// exited and been reaped, reads its own `/proc/self/io`: the kernel adds
/// a reaped child's I/O counters to its parent's, so `wchar` there is every
/// byte reprise (threads and children included) passed to `write`-family
/// calls. Returns reprise's JSON output and that count: what was written,
/// measured by the kernel rather than reported by reprise.
fn json_counting_writes(env: &Env, args: &[&str]) -> (serde_json::Value, u64) {
    let io = env.path("reprise.io");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#""$@"; s=$?; cat "/proc/$$/io" > "$REPRISE_TEST_IO"; exit $s"#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_reprise"))
        .arg("--plan")
        .arg(&env.plan)
        .arg("--json")
        .args(args)
        .env("REPRISE_PASSWORD", "test-passphrase")
        .env("XDG_CACHE_HOME", env.path("cache"))
        .env("REPRISE_TEST_IO", &io)
        .env_remove("REPRISE_REPO")
        .output()
        .expect("run reprise under sh");
    assert!(out.status.success(), "reprise {args:?} failed ({:?}):\n{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    let counters = std::fs::read_to_string(&io).expect("io counters");
    let wchar = counters.lines().find_map(|l| l.strip_prefix("wchar: ")).and_then(|v| v.trim().parse().ok()).unwrap_or_else(|| panic!("no wchar in {counters}"));
    (serde_json::from_slice(&out.stdout).expect("json output"), wchar)
}

/// Inode of every regular file under `root`, by path.
fn inodes(root: &Path) -> std::collections::BTreeMap<PathBuf, u64> {
    use std::os::unix::fs::MetadataExt;
    walk(root).into_iter().filter(|p| p.is_file()).map(|p| (p.clone(), std::fs::metadata(&p).expect("stat").ino())).collect()
}

/// A delta restore brings a damaged copy back to the snapshot by writing
/// only what differs: checked against the kernel's count of the bytes the
/// process wrote and the files' inodes (patched in place, never replaced),
/// not against reprise's own `bytes_unchanged`, which a restore that
/// rewrote everything while reporting "unchanged" would still show.
/// (ctime cannot tell: a delta restore sets every file's mode and mtime
/// again, which changes its ctime, whether its bytes were rewritten or not.)
#[test]
fn delta_restore_rewrites_only_what_differs() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE t AS SELECT g, md5(g::text) AS h FROM generate_series(1, 200000) g");
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    env.archive_now();
    let to = env.path("delta");
    let (first, full_written) = json_counting_writes(&env, &["restore", COMPONENT, "--at", "immediate", "--to", to.to_str().expect("utf8")]);
    let data_bytes: u64 = walk(&to).iter().filter(|p| p.is_file()).map(|p| std::fs::metadata(p).expect("stat").len()).sum();
    assert!(full_written >= data_bytes, "the kernel counted {full_written} bytes written by a full restore of {data_bytes} bytes");
    // Damage the copy: change a relation file, delete another, add a stray file.
    let base_dir = walk(&to.join("base")).into_iter().filter(|p| p.is_file() && std::fs::metadata(p).map(|m| m.len() > 100_000).unwrap_or(false)).collect::<Vec<_>>();
    let victim = &base_dir[0];
    let mut data = std::fs::read(victim).expect("read");
    data[8192 * 3 + 100] ^= 0xFF;
    std::fs::write(victim, &data).expect("write");
    std::fs::write(to.join("stray-file"), b"not in the snapshot").expect("write");
    std::fs::remove_file(to.join("recovery.signal")).expect("rm");
    let before = inodes(&to);
    let (again, written) = json_counting_writes(&env, &["restore", COMPONENT, "--at", "immediate", "--to", to.to_str().expect("utf8"), "--delta"]);
    let reported = again["bytes"].as_u64().expect("bytes");
    let unchanged = again["bytes_unchanged"].as_u64().expect("unchanged");
    eprintln!("delta restore: the kernel counted {written} bytes written (reported: {reported} written, {unchanged} unchanged); the full restore wrote {full_written}");
    assert!(written < full_written / 20, "delta rewrote too much: the kernel counted {written} bytes written, the full restore {full_written} (first restore: {first})");
    assert!(written <= reported + 256 * 1024, "reprise reported {reported} bytes written, the kernel counted {written}");
    assert!(unchanged > 20 * reported, "{again}");
    // Patched in place: every file that was there is the same file.
    let after = inodes(&to);
    for (path, ino) in &before {
        if let Some(now) = after.get(path) {
            assert_eq!(now, ino, "{} was replaced, not patched", path.display());
        }
    }
    assert!(!to.join("stray-file").exists(), "delta kept a file the snapshot does not have");
    assert_eq!(std::fs::read(victim).expect("read")[8192 * 3 + 100], data[8192 * 3 + 100] ^ 0xFF, "the damaged block was not rewritten");
}

/// A logical dump restores a database exactly as it was: the dump of the
/// restored database is the dump taken before (schema, constraints,
/// indexes, sequences, views, comments, every value), not only the same
/// row counts. One table restored alone comes back with its definition
/// and every row.
#[test]
fn logical_dump_restores_a_database_and_a_single_table() {
    let Some(env) = setup(false) else { return };
    env.sql("CREATE DATABASE app");
    let load = "CREATE TABLE patients (id serial PRIMARY KEY, name text NOT NULL, born date, notes jsonb, photo bytea, CHECK (born > '1900-01-01')); \
                INSERT INTO patients (name, born, notes, photo) SELECT 'p' || g || E' l\\'apostrophe\\n', date '1950-01-01' + g, \
                  CASE WHEN g % 3 = 0 THEN NULL ELSE jsonb_build_object('g', g, 'txt', 'é ✓') END, CASE WHEN g % 5 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END \
                  FROM generate_series(1, 5000) g; \
                CREATE INDEX patients_born ON patients (born); \
                CREATE TABLE notes (id int PRIMARY KEY, patient int REFERENCES patients (id), body text, tags text[], amount numeric(12,3) CHECK (amount >= 0), seq bigserial); \
                INSERT INTO notes (id, patient, body, tags, amount) SELECT g, g, repeat('x', g % 50), ARRAY['a', NULL, 'c' || g], g * 1.125 FROM generate_series(1, 100) g; \
                CREATE UNIQUE INDEX notes_patient_body ON notes (patient, body); \
                CREATE FUNCTION notes_touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$; \
                CREATE TRIGGER notes_touch BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION notes_touch(); \
                CREATE VIEW adults AS SELECT id, name FROM patients WHERE born < date '2000-01-01'; \
                COMMENT ON TABLE notes IS 'clinical notes'; \
                COMMENT ON COLUMN notes.body IS 'free text'; \
                COMMENT ON INDEX notes_patient_body IS 'one note per text';";
    env.client("app").batch_execute(load).expect("load");
    let before = dump(&env, env.cluster(), "app");
    let notes_before = dump_with(&env, env.cluster(), "app", &["-t", "notes"]);
    let plan = std::fs::read_to_string(&env.plan).expect("plan");
    let logical: String = plan
        .replace("type = \"postgres\"", "type = \"postgres\"\nmode = \"logical\"\ndatabases = [\"app\"]")
        .lines()
        .filter(|l| !l.starts_with("data_directory"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&env.plan, logical).expect("plan");
    let b = env.json(&["backup", COMPONENT]);
    assert_eq!(b["header"]["kind"], "postgres-logical", "{b}");
    let into = env.cluster().conn_string("postgres");
    // The whole database, into a fresh empty one of the same name.
    env.sql("DROP DATABASE app");
    env.sql("CREATE DATABASE app");
    let out = env.json(&["restore", COMPONENT, "--to", env.path("dump1").to_str().expect("utf8"), "--into", &into, "--database", "app"]);
    assert_eq!(out["loaded"], serde_json::json!(["app"]), "{out}");
    assert_same_dump("the whole database", &before, &dump(&env, env.cluster(), "app"));
    // One table only. Bug (test audit, issue 13): `pg_restore -t` brought
    // back its definition and rows but not its primary key, foreign key,
    // indexes, trigger or comments; the whole `pg_dump -t` must match.
    env.client("app").batch_execute("DROP TABLE notes").expect("drop");
    env.json(&["restore", COMPONENT, "--to", env.path("dump2").to_str().expect("utf8"), "--into", &into, "--database", "app", "--table", "notes"]);
    assert_same_dump("table notes", &notes_before, &dump_with(&env, env.cluster(), "app", &["-t", "notes"]));
    // The rest of the database is as it was (nothing else restored twice).
    assert_same_dump("the database after restoring one table", &before, &dump(&env, env.cluster(), "app"));
    // A table the dump lacks is an error, not a silent no-op.
    let out = env.reprise(&["restore", COMPONENT, "--to", env.path("dump3").to_str().expect("utf8"), "--into", &into, "--database", "app", "--table", "public.nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no table 'public.nope'"), "{err}");
}

/// `copy` of a physical component: the base backup and the WAL it needs
/// reach the second repository before its snapshot does, WAL older than
/// the base backup stays behind, later WAL follows, and a point-in-time
/// restore to latest from the copy alone gives the newest committed state.
#[test]
fn a_copy_restores_to_latest_from_its_own_wal() {
    let Some(env) = setup(true) else { return };
    let copy_repo = env.path("copy");
    let plan = format!(
        "{}\n[repositories.offsite]\nurl = \"{}\"\nsite = \"elsewhere\"\ncopy_of = \"main\"\n",
        std::fs::read_to_string(&env.plan).expect("plan"),
        copy_repo.display()
    );
    std::fs::write(&env.plan, plan).expect("plan");
    env.sql("CREATE TABLE markers (n int PRIMARY KEY)");
    env.archive_now();
    env.sql("INSERT INTO markers VALUES (1)");
    env.ok(&["backup", COMPONENT]);
    env.sql("INSERT INTO markers VALUES (2)");
    env.archive_now();

    let first = env.json(&["copy"]);
    let report = &first[0];
    assert_eq!(report["to"], "offsite", "{first}");
    assert_eq!(report["snapshots_copied"].as_array().expect("ids").len(), 1, "{first}");
    assert!(report["wal_copied"].as_u64().expect("count") >= 2, "{first}");
    let wal_names = |repo: &Path| -> std::collections::BTreeSet<String> {
        walk(&repo.join("wal")).into_iter().filter(|p| p.is_file()).map(|p| p.file_name().expect("name").to_string_lossy().into_owned()).collect()
    };
    let (primary_wal, copied_wal) = (wal_names(&env.repo), wal_names(&copy_repo));
    assert!(copied_wal.is_subset(&primary_wal));
    assert!(copied_wal.len() < primary_wal.len(), "WAL from before the base backup is not needed on the copy: {copied_wal:?} of {primary_wal:?}");

    // More commits after the copy: the next copy sends their WAL only.
    env.sql("INSERT INTO markers VALUES (3)");
    env.archive_now();
    let second = env.json(&["copy"]);
    assert!(second[0]["snapshots_copied"].as_array().expect("ids").is_empty(), "{second}");
    assert!(second[0]["wal_copied"].as_u64().expect("count") >= 1, "{second}");
    assert!(second[0]["wal_present"].as_u64().expect("count") >= 2, "{second}");
    env.ok(&["--repo", "offsite", "check", "--read-data"]);

    // The copy alone restores to the newest committed state.
    let to = env.path("from-copy");
    let out = env.json(&["--repo", "offsite", "restore", COMPONENT, "--at", "latest", "--to", to.to_str().expect("utf8"), "--start", "--keep-running"]);
    let mut run = to.clone().into_os_string();
    run.push(".run");
    let mut c = Cluster::existing(env.bin.clone(), &to, Path::new(&run), OnDrop::Stop).expect("cluster");
    c.port = out["port"].as_u64().expect("port") as u16;
    c.socket_dir = PathBuf::from(out["socket_dir"].as_str().expect("socket"));
    assert_eq!(markers(&c), 3, "restore from the copy: {out}");
    amcheck(&env, &c);
}

/// Archived WAL segment names of the component, from the repository folder.
fn archived_segments(env: &Env) -> Vec<String> {
    let mut out: Vec<String> = walk(&env.repo.join("wal").join(COMPONENT))
        .into_iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .filter(|n| n.len() == 24 && n.bytes().all(|b| b.is_ascii_hexdigit()))
        .collect();
    out.sort();
    out
}

#[test]
fn wal_retention_keeps_what_kept_base_backups_need_and_nothing_more() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE markers (n int PRIMARY KEY); INSERT INTO markers VALUES (1)");
    env.archive_now();
    let mut bases = Vec::new();
    for round in 0..3 {
        env.ok(&["backup", COMPONENT]);
        bases.push(env.json(&["snapshots"]).as_array().expect("list").last().expect("snapshot").clone());
        // WAL between base backups: what only a point-in-time restore needs.
        for n in 0..3 {
            env.sql(&format!("INSERT INTO markers VALUES ({})", 10 * (round + 1) + n));
            env.archive_now();
        }
    }
    let label = |b: &serde_json::Value, k: &str| b["labels"][format!("pg.{k}")].as_str().unwrap_or_else(|| panic!("{k} in {b}")).to_owned();
    let before = archived_segments(&env);
    // Keep the two newest base backups, no point-in-time window.
    let plan = std::fs::read_to_string(&env.plan).expect("plan") + "\n[components.db.objectives]\nretention = { keep_last = 2 }\n";
    std::fs::write(&env.plan, plan).expect("plan");

    let dry = env.json(&["forget", "--dry-run"]);
    let wal = &dry[0]["wal"];
    assert_eq!(archived_segments(&env), before, "a dry run removes nothing");
    let would: Vec<String> = wal["marked_files"].as_array().expect("marked").iter().map(|v| v.as_str().expect("name").to_owned()).collect();
    assert!(!would.is_empty(), "{dry}");

    // Marked by forget (no grace here), deleted by prune.
    let out = env.json(&["forget", "--grace", "0"]);
    assert_eq!(out[0]["removed"], 1, "{out}");
    assert_eq!(out[0]["wal"]["marked_files"], wal["marked_files"], "the dry run said what the run did");
    assert_eq!(archived_segments(&env), before, "forget only marks");
    env.ok(&["--repo", env.repo.to_str().expect("utf8"), "prune", "--grace", "0"]);
    let after = archived_segments(&env);
    let (b2_start, b2_stop, b3_start) = (label(&bases[1], "start_wal"), label(&bases[1], "stop_wal"), label(&bases[2], "start_wal"));
    for s in &before {
        let needed = (s >= &b2_start && s <= &b2_stop) || s >= &b3_start;
        assert_eq!(after.contains(s), needed, "{s}: kept {} but needed {needed} (base 2 {b2_start}..{b2_stop}, base 3 from {b3_start})", after.contains(s));
    }
    assert!(before.iter().any(|s| s > &b2_stop && s < &b3_start), "the test made WAL between base backups 2 and 3");
    assert!(before.iter().any(|s| s < &b2_start), "the test made WAL before base backup 2");

    // Both kept base backups still restore: the oldest to its own end (its
    // range is all it has), the newest to the latest archived state.
    let (r, _) = restore_started(&env, &label(&bases[1], "stop_lsn"), &env.path("at-base-2"));
    assert_eq!(markers(&r), 1 + 3, "base backup 2 restored to its own end");
    drop(r);
    let (r, _) = restore_started(&env, "latest", &env.path("latest"));
    assert_eq!(markers(&r), 1 + 9);
    // With a point-in-time window wider than every backup, WAL is kept from
    // the oldest kept base backup and forget says the window is not covered.
    let plan = std::fs::read_to_string(&env.plan).expect("plan").replace("keep_last = 2", "keep_last = 2, keep_within = \"30d\"");
    std::fs::write(&env.plan, plan).expect("plan");
    let out = env.json(&["forget"]);
    assert_eq!(out[0]["wal"]["marked_files"].as_array().expect("marked").len(), 0, "{out}");
    assert!(out[0]["wal"]["note"].as_str().is_some_and(|n| n.contains("keep older base backups")), "{out}");
}

/// A legal hold on an old base backup keeps it, its data and its own WAL
/// through `forget` (whose policy keeps only the newest) and `prune
/// --grace 0 --max-unused 0`: it still restores to its own end.
#[test]
fn a_held_base_backup_keeps_its_wal_and_data_through_forget_and_prune() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE markers (n int PRIMARY KEY); INSERT INTO markers VALUES (1)");
    env.archive_now();
    let mut bases = Vec::new();
    for round in 0..3 {
        // Data of its own in each base backup, and WAL between them.
        env.sql(&format!("CREATE TABLE pad_{round} AS SELECT g, md5((g * {}) ::text) AS h FROM generate_series(1, 20000) g", round + 7));
        env.archive_now();
        env.ok(&["backup", COMPONENT]);
        bases.push(env.json(&["snapshots"]).as_array().expect("list").last().expect("snapshot").clone());
        for n in 0..2 {
            env.sql(&format!("INSERT INTO markers VALUES ({})", 10 * (round + 1) + n));
            env.archive_now();
        }
    }
    let label = |b: &serde_json::Value, k: &str| b["labels"][format!("pg.{k}")].as_str().unwrap_or_else(|| panic!("{k} in {b}")).to_owned();
    let held = bases[0]["id"].as_str().expect("id").to_owned();
    env.ok(&["hold", "add", &held, "--reason", "litigation 2026-117"]);
    let plan = std::fs::read_to_string(&env.plan).expect("plan") + "\n[components.db.objectives]\nretention = { keep_last = 1 }\n";
    std::fs::write(&env.plan, plan).expect("plan");
    let before = archived_segments(&env);

    let out = env.json(&["forget", "--grace", "0"]);
    assert_eq!(out[0]["removed"], 1, "only the middle base backup goes: {out}");
    let pruned = env.json(&["--repo", env.repo.to_str().expect("utf8"), "prune", "--grace", "0", "--max-unused", "0"]);
    assert!(pruned["deleted_packs"].as_u64().expect("deleted") > 0, "{pruned}");
    let after = archived_segments(&env);
    let (start, stop) = (label(&bases[0], "start_wal"), label(&bases[0], "stop_wal"));
    let own: Vec<&String> = before.iter().filter(|s| **s >= start && **s <= stop).collect();
    assert!(!own.is_empty());
    for s in &own {
        assert!(after.contains(s), "{s}, of the held base backup's own range {start}..{stop}, was removed");
    }
    assert!(after.len() < before.len(), "WAL that only the forgotten base backup needed went");
    env.ok(&["--repo", env.repo.to_str().expect("utf8"), "check", "--read-data"]);
    let started = Instant::now();
    let (c, out) = restore_started(&env, &label(&bases[0], "stop_lsn"), &env.path("held"));
    let wall = started.elapsed().as_millis() as u64;
    assert_eq!(markers(&c), 1, "the held base backup restores to its own end");
    // --start measures the recovery: some time, within the command's own.
    let (recovery, total) = (out["recovery_ms"].as_u64().expect("recovery_ms"), out["total_ms"].as_u64().expect("total_ms"));
    assert!(recovery > 0 && recovery <= total && total <= wall, "recovery {recovery} ms, total {total} ms, command {wall} ms: {out}");
    amcheck(&env, &c);
}

/// The server's clock, in seconds since the epoch.
fn server_epoch(env: &Env) -> f64 {
    env.one("SELECT extract(epoch FROM clock_timestamp())::text").parse().expect("epoch")
}

/// `status`'s recovery point, checked against the server rather than for
/// being there: with a commit not yet archived, the data at risk is at
/// least as old as that commit and at most as old as the last archived
/// segment (`pg_stat_archiver`); once archived, it falls back. (A status
/// that said 0, or the age of the last base backup, fails.)
#[test]
fn status_rpo_is_the_age_of_unarchived_commits_measured_on_the_server() {
    /// Seconds between reprise's clock reading and the server's.
    const SLACK: f64 = 1.0;
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE t (n int)");
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    // The base backup is older than anything archived from here on.
    std::thread::sleep(Duration::from_secs(3));
    env.archive_now();
    let archived: f64 = env.one("SELECT extract(epoch FROM last_archived_time)::text FROM pg_stat_archiver").parse().expect("epoch");
    let rpo = |env: &Env| -> (f64, f64, f64, serde_json::Value) {
        let before = server_epoch(env);
        let st = env.json(&["status", COMPONENT]);
        let after = server_epoch(env);
        (st[0]["rpo_seconds"].as_f64().unwrap_or_else(|| panic!("no rpo_seconds in {st}")), before, after, st)
    };
    // Everything archived: at most the age of the last archived segment.
    let (quiet, _, after, st) = rpo(&env);
    assert!(quiet <= after - archived + SLACK, "nothing is unarchived, yet status says {quiet:.2}s at risk (last archived {:.2}s ago): {st}", after - archived);
    // A commit that stays in the segment being written.
    let committed_before = server_epoch(&env);
    env.sql("INSERT INTO t VALUES (1)");
    let committed = server_epoch(&env);
    assert!(committed >= committed_before);
    std::thread::sleep(Duration::from_secs(3));
    let (at_risk, before, after, st) = rpo(&env);
    eprintln!("rpo with a commit {:.2}s old not archived: {at_risk:.2}s (last archive {:.2}s ago; basis {})", before - committed, after - archived, st[0]["postgres"]["rpo_basis"]);
    assert!(at_risk >= before - committed - SLACK, "a commit {:.2}s old is not archived, yet status says {at_risk:.2}s at risk: {st}", before - committed);
    assert!(at_risk <= after - archived + SLACK, "status says {at_risk:.2}s at risk, more than the {:.2}s since the last archived segment: {st}", after - archived);
    // Archived: the commit is safe, the recovery point falls back.
    env.archive_now();
    let archived: f64 = env.one("SELECT extract(epoch FROM last_archived_time)::text FROM pg_stat_archiver").parse().expect("epoch");
    let (safe, _, after, st) = rpo(&env);
    assert!(safe <= after - archived + SLACK && safe < at_risk, "after archiving, status still says {safe:.2}s at risk: {st}");
}

/// Every file under `root` with its bytes and modification time: what
/// anything writing into the folder would change.
fn fingerprint(root: &Path) -> std::collections::BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    walk(root)
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let md = std::fs::metadata(&p).expect("stat");
            let bytes = std::fs::read(&p).expect("read");
            (p, (bytes, md.modified().expect("mtime")))
        })
        .collect()
}

fn count(c: &Cluster, table: &str) -> i64 {
    c.connect("postgres").expect("connect").query_one(&format!("SELECT count(*) FROM {table}"), &[]).expect("count").get(0)
}

/// The server's own view of where a tablespace is.
fn tablespace_location(c: &Cluster, oid: &str) -> PathBuf {
    let row = c.connect("postgres").expect("connect").query_one(&format!("SELECT pg_tablespace_location({oid})"), &[]).expect("location");
    PathBuf::from(row.get::<_, String>(0))
}

/// Bug (test audit, issue 13): a restore of a cluster with tablespaces left
/// the restored data directory's `pg_tblspc` links and `tablespace_map`
/// naming the production tablespace folders, and recovery replayed WAL
/// into them: a restore beside production corrupted production. Each
/// tablespace must go to a folder of its own (by default beside the
/// restored data directory, or where `--tablespace OID=DIR` says), with a
/// started restore, a restore point, and a delta restore over the first.
/// Production is stopped after its last archived change, so any write
/// into its tablespace folders shows as a changed file.
#[test]
fn restore_of_a_cluster_with_a_tablespace_never_touches_the_original() {
    let Some(mut env) = setup(true) else { return };
    let (ts1, ts2) = (env.path("ts1"), env.path("ts2"));
    for ts in [&ts1, &ts2] {
        std::fs::create_dir_all(ts).expect("mkdir");
        cluster::hand_over(ts, 0o700).expect("hand over");
    }
    env.sql(&format!("CREATE TABLESPACE ts1 LOCATION '{}'", ts1.display()));
    env.sql(&format!("CREATE TABLESPACE ts2 LOCATION '{}'", ts2.display()));
    env.sql("CREATE TABLE markers (n int PRIMARY KEY USING INDEX TABLESPACE ts2) TABLESPACE ts1; CREATE TABLE notes (n int, body text) TABLESPACE ts2");
    env.sql("INSERT INTO markers VALUES (1); INSERT INTO notes VALUES (1, 'one')");
    let oid1 = env.one("SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts1'");
    let oid2 = env.one("SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts2'");
    env.archive_now();
    env.ok(&["backup", COMPONENT]);
    env.sql("INSERT INTO markers VALUES (2); INSERT INTO notes VALUES (2, 'two')");
    env.sql("SELECT pg_create_restore_point('two')");
    env.sql("INSERT INTO markers VALUES (3); INSERT INTO notes VALUES (3, 'three')");
    env.archive_now();
    env.cluster.as_mut().expect("cluster").stop("fast");
    let production = (fingerprint(&ts1), fingerprint(&ts2));
    assert!(!production.0.is_empty() && !production.1.is_empty());

    let to = env.path("restored");
    let default1 = env.path(&format!("restored.tablespaces/{oid1}"));
    let mapped2 = env.path("elsewhere/ts2");
    let map2 = format!("{oid2}={}", mapped2.display());
    let check_placed = |c: &Cluster| {
        for (oid, want) in [(&oid1, &default1), (&oid2, &mapped2)] {
            let link = to.join("pg_tblspc").join(oid);
            assert_eq!(&std::fs::read_link(&link).expect("pg_tblspc link"), want, "{}", link.display());
            assert_eq!(&tablespace_location(c, oid), want, "tablespace {oid} according to the restored server");
            assert!(walk(want).iter().any(|p| p.is_file()), "tablespace {oid} has no files in {}", want.display());
        }
    };
    let (c, out) = restore_started_with(&env, "latest", &to, &["--tablespace", &map2]);
    let placed: Vec<(String, String)> = out["tablespaces"]
        .as_array()
        .expect("tablespaces in the report")
        .iter()
        .map(|t| (t["oid"].to_string(), t["location"].as_str().expect("location").to_owned()))
        .collect();
    assert_eq!(placed, vec![(oid1.clone(), default1.display().to_string()), (oid2.clone(), mapped2.display().to_string())], "{out}");
    check_placed(&c);
    assert_eq!((count(&c, "markers"), count(&c, "notes")), (3, 3));
    amcheck(&env, &c);
    // The restored server writes to its tablespaces, and flushes.
    c.connect("postgres").expect("connect").batch_execute("INSERT INTO markers VALUES (4); INSERT INTO notes VALUES (4, 'four'); CHECKPOINT").expect("write");
    drop(c);

    // The same folders, updated in place back to the restore point.
    let out = env.json(&["restore", COMPONENT, "--at", "name:two", "--to", to.to_str().expect("utf8"), "--delta", "--start", "--keep-running", "--tablespace", &map2]);
    let c = cluster_of(&env, &to, &out);
    check_placed(&c);
    assert_eq!((count(&c, "markers"), count(&c, "notes")), (2, 2), "a delta restore to the restore point: {out}");
    amcheck(&env, &c);
    drop(c);

    assert!(fingerprint(&ts1) == production.0, "the restores changed files in production's tablespace {}", ts1.display());
    assert!(fingerprint(&ts2) == production.1, "the restores changed files in production's tablespace {}", ts2.display());
}

/// A tablespace's folder is checked like the data directory, before
/// anything is written: an OID the backup lacks, a folder that is not
/// empty (without `--delta`) and a folder inside the data directory are
/// refused with exit 2 and one line naming the fix.
#[test]
fn tablespace_folders_are_checked_before_anything_is_written() {
    let Some(env) = setup(true) else { return };
    let ts = env.path("ts1");
    std::fs::create_dir_all(&ts).expect("mkdir");
    cluster::hand_over(&ts, 0o700).expect("hand over");
    env.sql(&format!("CREATE TABLESPACE ts1 LOCATION '{}'", ts.display()));
    env.sql("CREATE TABLE markers (n int) TABLESPACE ts1; INSERT INTO markers VALUES (1)");
    let oid = env.one("SELECT oid::text FROM pg_tablespace WHERE spcname = 'ts1'");
    env.archive_now();
    let backup = env.json(&["backup", COMPONENT]);
    // How an operator finds the OIDs (README).
    let listed = env.ok(&["ls", "-l", backup["id"].as_str().expect("id"), "pgdata/pg_tblspc"]);
    assert!(listed.contains(&format!("/pgdata/pg_tblspc/{oid} -> {}", ts.display())), "{listed}");
    let full = env.path("full");
    std::fs::create_dir_all(&full).expect("mkdir");
    std::fs::write(full.join("keep.txt"), b"someone's data").expect("write");
    let to = env.path("restored");
    for (map, says) in [
        (format!("1={}", env.path("x").display()), format!("has no tablespace 1 (its tablespaces: {oid} (was {}))", ts.display())),
        (format!("{oid}={}", full.display()), format!("tablespace {oid} would be restored into {}, which is not empty", full.display())),
        (format!("{oid}={}", to.join("ts").display()), "overlaps the data directory".to_owned()),
    ] {
        let out = env.reprise(&["restore", COMPONENT, "--to", to.to_str().expect("utf8"), "--tablespace", &map]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--tablespace {map}: {err}");
        assert!(err.contains(&says) && err.contains("--tablespace") && err.trim().lines().count() == 1, "--tablespace {map}: {err}");
        assert!(!to.exists(), "--tablespace {map} was refused after writing {}", to.display());
        assert!(!env.path("restored.tablespaces").exists() && !env.path("x").exists());
    }
    assert_eq!(std::fs::read_dir(&full).expect("list").count(), 1);
    assert_eq!(std::fs::read(full.join("keep.txt")).expect("read"), b"someone's data");
}

/// README: "relation files stored as changed 8 KiB pages". A second base
/// backup after a hundred rows changed, spread over a 20 MB table, stores
/// about those pages, not the table again: content-defined chunks of a
/// megabyte would each hold a changed row and be stored anew.
#[test]
fn a_second_base_backup_stores_only_the_pages_that_changed() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE big AS SELECT g, md5(g::text) || md5((g * 3)::text) AS pad FROM generate_series(1, 200000) g");
    // Frozen first: otherwise the UPDATE's scan sets hint bits on every
    // page, and every page has changed.
    env.sql("VACUUM (FREEZE) big");
    env.sql("CHECKPOINT");
    env.archive_now();
    let first = env.json(&["backup", COMPONENT]);
    let table_bytes: i64 = env.one("SELECT pg_relation_size('big')::text").parse().expect("size");
    assert!(table_bytes > 15_000_000, "{table_bytes}");
    // A hundred rows, 2000 apart: a hundred different pages.
    env.sql("UPDATE big SET pad = upper(pad) WHERE g % 2000 = 0");
    env.sql("CHECKPOINT");
    env.archive_now();
    let second = env.json(&["backup", COMPONENT]);
    let new = second["header"]["summary"]["new_bytes"].as_u64().expect("new_bytes");
    eprintln!("first base backup: {} new bytes; after 100 scattered row updates: {new} new bytes (table {table_bytes} bytes)", first["header"]["summary"]["new_bytes"]);
    // A hundred pages hold the old versions (their xmax changed), the new
    // versions fill a few new pages; then the free-space and visibility
    // maps, pg_xact, pg_control and the like. Twice the hundred pages plus
    // 400 KB is the bound (about 870 KB is stored; content-defined chunks
    // of these files store about 3 MB).
    assert!(new < 2 * 100 * 8192 + 400_000, "{new} new bytes for 100 changed rows: pages are not what is stored");
}

/// README: "`reprise wal-fetch` as `restore_command` with prefetch". A
/// fetch of one segment also fetches the next ones into the spool, and the
/// next fetches take them from there (the spooled file moves to the
/// destination), identical to a fetch from the repository.
#[test]
fn wal_fetch_prefetches_the_next_segments_into_its_spool() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE t (n int)");
    for i in 0..4 {
        env.sql(&format!("INSERT INTO t VALUES ({i})"));
        env.archive_now();
    }
    let segments = archived_segments(&env);
    assert!(segments.len() >= 4, "{segments:?}");
    let spool = env.path("spool");
    let dest = env.path("fetched");
    std::fs::create_dir_all(&dest).expect("mkdir");
    let exe = env!("CARGO_BIN_EXE_reprise");
    let fetch = |repo: &Path, name: &str| {
        Command::new(exe)
            .args(["--repo", repo.to_str().expect("utf8"), "--key-file", env.recovery.to_str().expect("utf8"), "wal-fetch", COMPONENT, name])
            .arg(dest.join(name))
            .arg("--spool")
            .arg(&spool)
            .output()
            .expect("wal-fetch")
    };
    let out = fetch(&env.repo, &segments[0]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for s in &segments[1..4] {
        assert!(spool.join(s).exists(), "{s} was not fetched ahead into the spool");
    }
    let direct = env.path("direct");
    std::fs::create_dir_all(&direct).expect("mkdir");
    for s in &segments[1..4] {
        let out = fetch(&env.repo, s);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!spool.join(s).exists(), "{s} was fetched again instead of taken from the spool");
        let out = Command::new(exe)
            .args(["--repo", env.repo.to_str().expect("utf8"), "--key-file", env.recovery.to_str().expect("utf8"), "wal-fetch", COMPONENT, s])
            .arg(direct.join(s))
            .arg("--spool")
            .arg(env.path("empty-spool"))
            .output()
            .expect("wal-fetch");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::read(dest.join(s)).expect("fetched") == std::fs::read(direct.join(s)).expect("fetched"), "{s} from the spool differs from the archive");
    }
}

/// Issue 9: `wal-push` log lines reached PostgreSQL's server log with
/// colour codes. The server's log is a file: the lines must be plain.
#[test]
#[allow(clippy::duration_suboptimal_units, reason = "from_mins is newer than the MSRV")]
fn wal_push_lines_reach_the_server_log_without_colour_codes() {
    // -v: every push logs an INFO line, which PostgreSQL copies into its log.
    let Some(env) = setup_archiving_with(true, "-v", &[]) else { return };
    env.sql("CREATE TABLE colour AS SELECT g FROM generate_series(1, 1000) g");
    env.archive_now();
    let log = &env.cluster().log_file;
    let deadline = Instant::now() + Duration::from_secs(60);
    let text = loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("INFO") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(text.contains("INFO"), "no wal-push line reached the server log within 60 s: {text}");
    assert!(!text.contains('\u{1b}'), "escape codes in the server log: {text:?}");
}

/// Bug (test audit, issue 13): `wal-fetch` opened the repository before
/// looking in its prefetch spool, so segments already fetched (and
/// verified) could not be served while storage was unreachable. With the
/// repository gone, a prefetched segment is served, identical to the
/// archive; anything else fails with 126 (an error: recovery stops),
/// never 1 ("not archived": recovery would end and promote early).
#[test]
fn wal_fetch_serves_prefetched_segments_while_the_repository_is_unreachable() {
    let Some(env) = setup(true) else { return };
    env.sql("CREATE TABLE t (n int)");
    for i in 0..3 {
        env.sql(&format!("INSERT INTO t VALUES ({i})"));
        env.archive_now();
    }
    let segments = archived_segments(&env);
    assert!(segments.len() >= 3, "{segments:?}");
    let (spool, dest, direct) = (env.path("spool"), env.path("fetched"), env.path("direct"));
    for d in [&dest, &direct] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    let exe = env!("CARGO_BIN_EXE_reprise");
    let fetch = |name: &str, into: &Path, spool: &Path| {
        Command::new(exe)
            .args(["--repo", env.repo.to_str().expect("utf8"), "--key-file", env.recovery.to_str().expect("utf8"), "wal-fetch", COMPONENT, name])
            .arg(into.join(name))
            .arg("--spool")
            .arg(spool)
            .output()
            .expect("wal-fetch")
    };
    let ok = |out: &Output, what: &str| assert!(out.status.success(), "{what}: {:?} {}", out.status.code(), String::from_utf8_lossy(&out.stderr));
    ok(&fetch(&segments[0], &dest, &spool), "first fetch");
    assert!(spool.join(&segments[1]).exists() && spool.join(&segments[2]).exists(), "not prefetched");
    ok(&fetch(&segments[1], &direct, &env.path("other-spool")), "direct fetch");

    // Storage unreachable: the repository is gone.
    let away = env.path("repo-away");
    std::fs::rename(&env.repo, &away).expect("move the repository away");
    let out = fetch(&segments[1], &dest, &spool);
    ok(&out, "a prefetched segment while the repository is unreachable");
    assert!(std::fs::read(dest.join(&segments[1])).expect("fetched") == std::fs::read(direct.join(&segments[1])).expect("direct"), "the spooled copy differs from the archive");
    for name in [segments[0].as_str(), "00000002.history"] {
        let out = fetch(name, &dest, &spool);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(126), "{name}, not prefetched, with the repository unreachable: {err}");
        assert!(err.trim().lines().count() == 1 && err.contains(env.repo.to_str().expect("utf8")), "{err}");
    }
    std::fs::rename(&away, &env.repo).expect("move the repository back");
}
