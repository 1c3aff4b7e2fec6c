//! WAL archived by `archive_command`, against real PostgreSQL servers:
//! what `wal-fetch` and a started restore do with a damaged archive, and
//! the recovery point `status` reports, measured against the server.
//!
//! * `wal-fetch` exits 126 (not 1) on a damaged or truncated WAL object, so
//!   PostgreSQL stops recovery instead of ending it early and promoting
//!   with data missing; `restore --start` fails, naming the object.
//! * `status` on an idle server: what PostgreSQL writes on its own after
//!   the last archived commit (checkpoint, RUNNING_XACTS) is no data at
//!   risk, RPO 0 (issue 9, item 13); with archiving stalled, the RPO is the
//!   age of the oldest commit not archived, measured against the server
//!   (item 14: the live path runs, its times read correctly); without the
//!   server, the bound from the newest archived file; with the server but
//!   its WAL unreadable, the bound from the archive's end.

#![allow(clippy::duration_suboptimal_units, reason = "Duration::from_mins is newer than the workspace's rust-version (1.85)")]

mod common;
mod pgenv;

use std::time::{Duration, Instant};

use common::{Reprise, TestDir};
use pgenv::{COMPONENT, Server, open_to_server, pg_bin, wal_objects, write_plan};

const HBA: &str = "local all all trust\nlocal replication all trust\n";

struct Archiving {
    server: Server,
    r: Reprise,
    plan: std::path::PathBuf,
    repo: std::path::PathBuf,
    recovery: std::path::PathBuf,
    work: TestDir,
}

impl Archiving {
    fn start(name: &str) -> Option<Archiving> {
        let bin = pg_bin()?;
        let work = TestDir::new(name);
        open_to_server(work.path());
        let repo = work.join("repo");
        let r = Reprise::at(work.path(), repo.clone());
        r.init();
        let credential = work.join("archive.credential");
        let recovery = work.join("recovery.key");
        r.run(&["key", "add", "--write-only", "--credential", credential.to_str().expect("utf8")]).ok();
        r.run(&["key", "export-recovery", "-o", recovery.to_str().expect("utf8")]).ok();
        for p in walk(&repo) {
            reprise_postgres::cluster::hand_over(&p, if p.is_dir() { 0o755 } else { 0o644 }).expect("hand over");
        }
        reprise_postgres::cluster::hand_over(&credential, 0o600).expect("hand over");
        // Archiving stalls while the file `stall` exists (settings given
        // on the server's command line cannot be changed by ALTER SYSTEM).
        let push = format!(
            "test ! -e {} && {} --repo {} --key-file {} wal-push {COMPONENT} %p",
            work.join("stall").display(),
            env!("CARGO_BIN_EXE_reprise"),
            repo.display(),
            credential.display()
        );
        let server = Server::start(&bin, &work.join("pg"), &[("archive_mode", "on"), ("archive_command", &push)], HBA);
        let plan = work.join("reprise.toml");
        write_plan(&plan, repo.to_str().expect("utf8"), &server.conn_string(), Some(&server.cluster.data_dir), "");
        Some(Archiving { server, r, plan, repo, recovery, work })
    }

    fn plan(&self) -> &str {
        self.plan.to_str().expect("utf8")
    }

    /// Switches segments and waits until the one switched is archived.
    fn archive_now(&self) {
        let wanted = self.server.one("SELECT pg_walfile_name(pg_switch_wal())");
        pgenv::wait_for(&format!("{wanted} archived"), Duration::from_secs(60), || {
            (self.server.one("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver") >= wanted).then_some(())
        });
    }

    fn status(&self) -> serde_json::Value {
        self.r.run(&["--json", "--plan", self.plan(), "status", COMPONENT]).ok().json()
    }
}

fn walk(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir() {
            out.extend(std::fs::read_dir(&out[i]).into_iter().flatten().flatten().map(|e| e.path()));
        }
        i += 1;
    }
    out
}

#[test]
fn wal_fetch_exits_126_on_a_damaged_wal_object_and_a_started_restore_fails_instead_of_promoting() {
    let Some(a) = Archiving::start("damaged-wal") else { return };
    a.server.sql("CREATE TABLE t (n int)");
    a.archive_now();
    a.r.run(&["--plan", a.plan(), "backup", COMPONENT]).ok();
    for i in 0..3 {
        a.server.sql(&format!("INSERT INTO t VALUES ({i})"));
        a.archive_now();
    }
    let segments: Vec<String> = wal_objects(&a.repo).into_iter().filter(|n| n.len() == 24).collect();
    // A segment recovery from the base backup needs, in the middle of the chain.
    let victim = segments[segments.len() - 2].clone();
    let path = a.repo.join("wal").join(COMPONENT).join(&victim[..16]).join(&victim);
    let fetch = |name: &str, dest: &str| a.r.run(&["--key-file", a.recovery.to_str().expect("utf8"), "wal-fetch", COMPONENT, name, a.work.join(dest).to_str().expect("utf8")]);
    // Intact: fetched.
    fetch(&victim, "intact").ok();
    let original = std::fs::read(&path).expect("object");
    let mut flipped = original.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x01;
    std::fs::write(&path, &flipped).expect("flip a byte");
    let out = fetch(&victim, "flipped");
    assert_eq!(out.code, 126, "a damaged WAL object must stop recovery (126), not end it (1): {}", out.describe());
    assert!(out.stderr.contains(&victim), "the damaged object is not named: {}", out.stderr);
    assert!(!a.work.join("flipped").exists(), "a damaged file was handed to recovery");
    std::fs::write(&path, &original[..original.len() - 100]).expect("truncate");
    let out = fetch(&victim, "truncated");
    assert_eq!(out.code, 126, "a truncated WAL object: {}", out.describe());
    // Not archived at all is the end of recovery: 1.
    assert_eq!(fetch("0000000100000000000000FF", "missing").code, 1);

    // A started restore must fail, name the object, and leave no promoted server.
    std::fs::write(&path, &flipped).expect("flip again");
    let to = a.work.join("restored");
    let out = a.r.run(&["--plan", a.plan(), "restore", COMPONENT, "--at", "latest", "--to", to.to_str().expect("utf8"), "--start"]);
    assert_eq!(out.code, 6, "restore --start over a damaged WAL object must fail as damage: {}", out.describe());
    out.assert_one_line_error();
    assert!(out.stderr.contains(&victim), "{}", out.stderr);
    assert!(to.join("recovery.signal").exists(), "the restored copy left recovery (promoted) despite the damaged WAL");
    assert!(!std::fs::read_to_string(to.join("postmaster.pid")).is_ok_and(|p| !p.is_empty() && std::path::Path::new(&format!("/proc/{}", p.lines().next().unwrap_or("0"))).exists()), "a server was left running");
}

#[test]
fn status_on_an_idle_server_reports_no_data_at_risk() {
    let Some(a) = Archiving::start("idle-status") else { return };
    a.server.sql("CREATE TABLE t (n int)");
    a.archive_now();
    a.r.run(&["--plan", a.plan(), "backup", COMPONENT]).ok();
    a.server.sql("INSERT INTO t VALUES (1)");
    a.archive_now();
    // What PostgreSQL writes on its own: a checkpoint and RUNNING_XACTS,
    // after the last archived commit. Time passes.
    a.server.sql("CHECKPOINT");
    let archived_end = a.server.one("SELECT last_archived_wal FROM pg_stat_archiver");
    let current = a.server.one("SELECT pg_walfile_name(pg_current_wal_lsn())");
    assert!(current > archived_end, "the server wrote nothing past the archive ({current} vs {archived_end}): the test proves nothing");
    std::thread::sleep(Duration::from_secs(3));
    let st = a.status();
    let pg = &st[0]["postgres"];
    assert_eq!(pg["rpo_basis"], "server", "{st}");
    assert_eq!(pg["rpo_seconds"].as_f64(), Some(0.0), "an idle server has no data at risk: {st}");
    assert!(pg["server"]["last_archived_time"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()), "{st}");
}

#[test]
fn status_measures_a_stalled_archiver_against_the_server() {
    let Some(a) = Archiving::start("stalled-status") else { return };
    a.server.sql("CREATE TABLE t (n int, at timestamptz)");
    a.archive_now();
    a.r.run(&["--plan", a.plan(), "backup", COMPONENT]).ok();
    a.archive_now();
    let before_switch = jiff::Timestamp::now();
    a.archive_now();
    let after_switch = jiff::Timestamp::now();
    // Archiving stalls (archive_command fails); a commit is at risk.
    std::fs::write(a.work.join("stall"), b"").expect("stall");
    a.server.sql("INSERT INTO t VALUES (1, clock_timestamp())");
    let committed: jiff::Timestamp = a.server.one("SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM t").parse().expect("time");
    a.server.sql("SELECT pg_switch_wal()");
    pgenv::wait_for("a failed archiving attempt", Duration::from_secs(30), || (!a.server.one("SELECT coalesce(last_failed_wal, '') FROM pg_stat_archiver").is_empty()).then_some(()));
    std::thread::sleep(Duration::from_secs(3));
    let t0 = jiff::Timestamp::now();
    let st = a.status();
    let t1 = jiff::Timestamp::now();
    let pg = &st[0]["postgres"];
    assert_eq!(pg["rpo_basis"], "server", "{st}");
    let rpo = pg["rpo_seconds"].as_f64().expect("rpo");
    let (lo, hi) = (t0.duration_since(committed).as_secs_f64() - 0.5, t1.duration_since(committed).as_secs_f64() + 0.5);
    assert!(rpo >= lo && rpo <= hi, "RPO {rpo} s, but the oldest unarchived commit is {lo}..{hi} s old: {st}");
    let oldest: jiff::Timestamp = pg["oldest_unstored_commit"].as_str().expect("commit time").parse().expect("time");
    assert!(oldest.duration_since(committed).as_secs_f64().abs() < 1.0, "commit at {committed}, status says {oldest}");
    assert!(st[0]["alerts"].as_array().expect("alerts").iter().any(|x| x.as_str().is_some_and(|x| x.contains("archive_command fails"))), "{st}");

    // Its WAL unreadable (a monitoring role, no data directory here): an
    // upper bound from when the archive's end was written, said so.
    a.server.sql("CREATE ROLE monitor LOGIN; GRANT pg_monitor TO monitor");
    let plan2 = a.work.join("monitor.toml");
    write_plan(&plan2, a.repo.to_str().expect("utf8"), &a.server.conn_string().replace("user=postgres", "user=monitor"), None, "");
    let st2 = a.r.run(&["--json", "--plan", plan2.to_str().expect("utf8"), "status", COMPONENT]).ok().json();
    assert_eq!(st2[0]["postgres"]["rpo_basis"], "server-bound", "{st2}");
    let bound = st2[0]["postgres"]["rpo_seconds"].as_f64().expect("rpo");
    assert!(bound >= rpo - 0.5, "an upper bound ({bound}) below the measured RPO ({rpo})");

    // Without the server: the archive's bound, from the newest archived segment.
    let t = Instant::now();
    let mut a = a;
    a.server.cluster.stop("immediate");
    let st3 = a.status();
    let pg3 = &st3[0]["postgres"];
    assert_eq!(pg3["rpo_basis"], "archive", "{st3}");
    let rpo3 = pg3["rpo_seconds"].as_f64().expect("rpo");
    let now = jiff::Timestamp::now();
    let (lo, hi) = (now.duration_since(after_switch).as_secs_f64() - 1.0 - t.elapsed().as_secs_f64(), now.duration_since(before_switch).as_secs_f64() + 1.0);
    assert!(rpo3 >= lo && rpo3 <= hi, "archive-based RPO {rpo3} s, expected {lo}..{hi} s (newest archived segment switched then): {st3}");
}
