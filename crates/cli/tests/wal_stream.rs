//! `wal-stream`, against real PostgreSQL servers: what a synchronous
//! stream acknowledges is in the repository, whatever happens next.
//!
//! The skeptic's experiment (issue 12) is `acknowledged_commits_survive_*`:
//! clients count the commits the server acknowledged; the database host is
//! lost (every server process killed with SIGKILL, the data directory
//! removed) and the stream is killed too, so the repository is frozen at
//! that instant; a restore from the repository alone must hold every
//! acknowledged row. In some runs the stream is killed first: commits must
//! then wait (no acknowledgement without the stream), and the server is
//! lost afterwards. On local storage and on an S3 server (moto) behind the
//! fault proxy.
//!
//! The other tests: the stream on another host (TCP, SCRAM) outliving the
//! database host; periodic stores in asynchronous mode seen while the
//! stream runs, then `kill -9`; a spool left behind stored with no server
//! (`--upload-only`) after `restore` warned about it; `status` of a stream
//! (RPO 0 when everything is stored, an alert when it is not running).

#![allow(clippy::duration_suboptimal_units, reason = "Duration::from_mins is newer than the workspace's rust-version (1.85)")]

mod common;
mod pgenv;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::emulators;
use common::fault_proxy::{Fault, FaultProxy};
use common::{Reprise, TestDir};
use pgenv::{COMPONENT, Server, lsn, open_to_server, pg_bin, restore_started, wait_for, wal_objects, write_plan};

const LOCAL_HBA: &str = "local all all trust\nlocal replication all trust\n";

/// A running `reprise wal-stream`, killed with SIGKILL if the test ends early.
struct Stream {
    child: Option<Child>,
    log: PathBuf,
}

impl Stream {
    fn start(r: &Reprise, plan: &Path, extra: &[&str], log: PathBuf) -> Stream {
        let mut args = vec!["--plan", plan.to_str().expect("utf8"), "-v", "wal-stream", COMPONENT];
        args.extend_from_slice(extra);
        let (mut c, _) = r.command(&args);
        let out = std::fs::File::create(&log).expect("log");
        c.stdin(Stdio::null()).stdout(out.try_clone().expect("log")).stderr(out);
        Stream { child: Some(c.spawn().expect("spawn wal-stream")), log }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().expect("wait").is_none())
    }

    fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9 the stream");
            let _ = c.wait();
        }
    }

    /// SIGTERM, then its exit status.
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = std::process::Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(s) = c.try_wait().expect("wait") {
                return s;
            }
            assert!(Instant::now() < deadline, "wal-stream did not stop within 60 s of SIGTERM: {}", self.output());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// `sync` or `async` once the stream is streaming (a walsender is listed,
/// as `async`, from the moment it connects), else empty.
fn sync_state(server: &Server) -> String {
    server.one("SELECT coalesce((SELECT sync_state FROM pg_stat_replication WHERE application_name = 'reprise_db' AND state = 'streaming'), '')")
}

fn wait_streaming(server: &Server, stream: &mut Stream, state: &str) {
    wait_for(&format!("the stream to be a {state} standby"), Duration::from_secs(60), || {
        assert!(stream.running(), "wal-stream exited: {}", stream.output());
        (sync_state(server) == state).then_some(())
    });
}

/// Clients committing one row per transaction; each id is recorded once
/// the server acknowledged its commit, with when its INSERT was sent.
struct Load {
    acked: Arc<Mutex<Vec<(i64, Instant)>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(server: &Server, clients: i64) -> Load {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..clients)
            .map(|t| {
                let (acked, stop) = (Arc::clone(&acked), Arc::clone(&stop));
                let mut client = server.client();
                std::thread::spawn(move || {
                    let started = Instant::now();
                    // Bounded in count and time.
                    for i in 0..5_000i64 {
                        if stop.load(Ordering::Relaxed) || started.elapsed() > Duration::from_secs(120) {
                            return;
                        }
                        let id = t * 1_000_000 + i;
                        let sent = Instant::now();
                        match client.execute("INSERT INTO acked (id) VALUES ($1)", &[&id]) {
                            Ok(_) => acked.lock().unwrap().push((id, sent)),
                            Err(_) => return,
                        }
                    }
                })
            })
            .collect();
        Load { acked, stop, threads }
    }

    fn count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// Acknowledged commits whose INSERT was sent after `t`.
    fn acked_after(&self, t: Instant) -> usize {
        self.acked.lock().unwrap().iter().filter(|(_, sent)| *sent > t).count()
    }

    fn finish(self) -> Vec<i64> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("load thread");
        }
        let mut v: Vec<i64> = self.acked.lock().unwrap().iter().map(|(id, _)| *id).collect();
        v.sort_unstable();
        v
    }
}

#[derive(Debug, Clone, Copy)]
enum Loss {
    /// The database host dies first; the stream is killed right after.
    ServerFirst,
    /// The stream is killed first (commits must wait), the host dies later.
    StreamFirst,
}

/// One run of the skeptic's experiment; returns (acknowledged, restored).
fn skeptic_run(work: &Path, tag: &str, r: &Reprise, repo_url: &str, loss: Loss, proxy: Option<&FaultProxy>) -> (usize, usize) {
    let bin = pg_bin().expect("checked by the caller");
    let root = work.join(tag);
    std::fs::create_dir_all(&root).expect("mkdir");
    open_to_server(&root);
    let mut server = Server::start(&bin, &root.join("pg"), &[("synchronous_standby_names", "reprise_db")], LOCAL_HBA);
    let plan = root.join("reprise.toml");
    write_plan(&plan, repo_url, &server.conn_string(), Some(&server.cluster.data_dir), "");
    let faults = |on: bool| {
        if let Some(p) = proxy {
            p.enabled.store(on, Ordering::Relaxed);
        }
    };
    r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    faults(true);
    let mut stream = Stream::start(r, &plan, &["--synchronous"], root.join("stream.log"));
    wait_streaming(&server, &mut stream, "sync");
    server.sql("CREATE TABLE acked (id bigint PRIMARY KEY)");
    r.run(&["--plan", plan.to_str().expect("utf8"), "backup", COMPONENT]).ok();
    let load = Load::start(&server, 4);
    wait_for("150 acknowledged commits", Duration::from_secs(120), || (load.count() >= 150).then_some(()));
    match loss {
        Loss::ServerFirst => {
            server.kill_9_and_destroy();
            stream.kill_9();
        }
        Loss::StreamFirst => {
            // No child process to orphan: the stream is the standby itself.
            assert!(pgenv::children(stream.pid()).is_empty(), "wal-stream has child processes");
            stream.kill_9();
            // Its socket is closed: WAL written from now on cannot reach
            // the repository, so no commit sent from now on may be
            // acknowledged. (Commits released by the stream's last status
            // update may still be on their way to the clients.)
            let killed = Instant::now();
            wait_for("the server to see the stream gone", Duration::from_secs(30), || sync_state(&server).is_empty().then_some(()));
            std::thread::sleep(Duration::from_secs(3));
            assert_eq!(load.acked_after(killed), 0, "{tag}: commits sent after the stream died were acknowledged");
            let waiting: i64 = server.client().query_one("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'", &[]).expect("q").get(0);
            assert!(waiting > 0, "{tag}: no commit is waiting for the stream");
            server.kill_9_and_destroy();
        }
    }
    faults(false);
    let acked = load.finish();
    // The repository alone, as it was when the host was lost.
    let (restored_server, _, _) = restore_started(r, &plan, &bin, "latest", &root.join("restored"));
    let mut client = restored_server.connect("postgres").expect("connect");
    let restored: std::collections::BTreeSet<i64> = client.query("SELECT id FROM acked", &[]).expect("q").iter().map(|row| row.get(0)).collect();
    let missing: Vec<&i64> = acked.iter().filter(|id| !restored.contains(id)).collect();
    assert!(missing.is_empty(), "{tag}: {} acknowledged commit(s) missing from the restore (of {}), first {:?}; stream log:\n{}", missing.len(), acked.len(), &missing[..missing.len().min(5)], stream.output());
    eprintln!("{tag}: {} commits acknowledged, all {} restored ({} more committed but never acknowledged)", acked.len(), acked.len(), restored.len() - acked.len());
    (acked.len(), restored.len())
}

#[test]
fn acknowledged_commits_survive_the_loss_of_the_database_host_on_local_storage() {
    if pg_bin().is_none() {
        return;
    }
    let work = TestDir::new("skeptic-local");
    open_to_server(work.path());
    for (i, loss) in [Loss::ServerFirst, Loss::StreamFirst, Loss::ServerFirst].into_iter().enumerate() {
        let repo = work.join(format!("repo{i}"));
        let r = Reprise::at(work.path(), repo.clone());
        let (acked, restored) = skeptic_run(work.path(), &format!("local-{i}-{loss:?}"), &r, repo.to_str().expect("utf8"), loss, None);
        assert!(acked >= 150 && restored >= acked);
    }
}

#[test]
fn acknowledged_commits_survive_the_loss_of_the_database_host_on_s3_through_faults() {
    if pg_bin().is_none() {
        return;
    }
    let work = TestDir::new("skeptic-s3");
    open_to_server(work.path());
    let Some(s3) = emulators::moto(work.path()) else { return };
    emulators::create_bucket(&s3, "stream");
    let proxy = FaultProxy::start(s3.port, 10, 0x5eed_0012, Duration::from_secs(3));
    for (i, loss) in [Loss::ServerFirst, Loss::StreamFirst].into_iter().enumerate() {
        let url = format!("s3://stream/run{i}?endpoint={}", proxy.endpoint());
        let r = Reprise::at(work.path(), PathBuf::from(&url))
            .with_env("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID)
            .with_env("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET)
            .with_env("REPRISE_STORAGE_REQUEST_TIMEOUT", "2")
            .with_env("REPRISE_STORAGE_RETRY_TIMEOUT", "60")
            .with_timeout(Duration::from_secs(600));
        skeptic_run(work.path(), &format!("s3-{i}-{loss:?}"), &r, &url, loss, Some(&proxy));
    }
    let injected: u64 = Fault::ALL.iter().map(|f| proxy.count(*f)).sum();
    eprintln!("faults: {}", proxy.report());
    assert!(injected > 0, "no fault was injected: {}", proxy.report());
}

/// The stream runs on the backup server (like Barman): its own cache, TCP
/// to the database with a SCRAM password, a role with nothing but
/// REPLICATION. The database host is lost; the backup server restores
/// every acknowledged commit.
#[test]
fn a_stream_on_another_host_outlives_the_database_host() {
    let Some(bin) = pg_bin() else { return };
    let work = TestDir::new("another-host");
    open_to_server(work.path());
    let hba = "local all all trust\nlocal replication all trust\nhost replication streamer 127.0.0.1/32 scram-sha-256\n";
    let mut server = Server::start(&bin, &work.join("pg"), &[("synchronous_standby_names", "reprise_db"), ("listen_addresses", "127.0.0.1")], hba);
    let secret = "stream-secret-7f3a91";
    // No standby yet: this commit must not wait for one.
    server.sql(&format!("SET synchronous_commit = local; CREATE ROLE streamer REPLICATION LOGIN PASSWORD '{secret}'"));
    let repo = work.join("repo");
    // The database host: base backups over its socket.
    let db_plan = work.join("db-host.toml");
    write_plan(&db_plan, repo.to_str().expect("utf8"), &server.conn_string(), Some(&server.cluster.data_dir), "");
    let db_host = Reprise::at(work.path(), repo.clone()).with_cache(work.join("db-host-cache"));
    // The backup server: TCP, password from the environment.
    let bk_plan = work.join("backup-host.toml");
    let tcp = format!("host=127.0.0.1 port={} user=streamer dbname=postgres", server.cluster.port);
    write_plan(&bk_plan, repo.to_str().expect("utf8"), &tcp, None, "password_env = \"STREAM_PASSWORD\"\n");
    let backup_host = Reprise::at(work.path(), repo.clone()).with_cache(work.join("backup-host-cache")).with_env("STREAM_PASSWORD", secret);
    db_host.init();
    let mut stream = Stream::start(&backup_host, &bk_plan, &["--synchronous"], work.join("stream.log"));
    wait_streaming(&server, &mut stream, "sync");
    assert_eq!(server.one("SELECT client_addr::text FROM pg_stat_replication WHERE application_name = 'reprise_db'"), "127.0.0.1/32");
    server.sql("CREATE TABLE acked (id bigint PRIMARY KEY)");
    db_host.run(&["--plan", db_plan.to_str().expect("utf8"), "backup", COMPONENT]).ok();
    let load = Load::start(&server, 2);
    wait_for("100 acknowledged commits", Duration::from_secs(120), || (load.count() >= 100).then_some(()));
    server.kill_9_and_destroy();
    std::fs::remove_dir_all(work.join("db-host-cache")).ok();
    let acked = load.finish();
    // The stream is still there, trying to reconnect; the backup host restores.
    assert!(stream.running(), "the stream died with the database host: {}", stream.output());
    let (restored, _, _) = restore_started(&backup_host, &bk_plan, &bin, "latest", &work.join("restored"));
    let ids: std::collections::BTreeSet<i64> = restored.connect("postgres").expect("connect").query("SELECT id FROM acked", &[]).expect("q").iter().map(|r| r.get(0)).collect();
    let missing = acked.iter().filter(|id| !ids.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged commits missing", acked.len());
    let status = stream.stop();
    assert!(status.success(), "wal-stream did not stop cleanly on SIGTERM: {}", stream.output());
    assert!(!stream.output().contains(secret), "the password appears in the stream's output");
}

/// Issue 13 item 4: without `--synchronous` the stream stores what it
/// received every `--partial-interval`; a store newer than a commit is seen
/// while the stream still runs (not its shutdown flush), and after
/// `kill -9` the repository alone restores the commit.
#[test]
fn an_asynchronous_stream_stores_a_commit_within_its_interval_and_kill_9_keeps_it() {
    let Some(bin) = pg_bin() else { return };
    let work = TestDir::new("async-stream");
    open_to_server(work.path());
    let mut server = Server::start(&bin, &work.join("pg"), &[], LOCAL_HBA);
    let repo = work.join("repo");
    let plan = work.join("reprise.toml");
    write_plan(&plan, repo.to_str().expect("utf8"), &server.conn_string(), Some(&server.cluster.data_dir), "");
    let r = Reprise::at(work.path(), repo.clone());
    r.init();
    let mut stream = Stream::start(&r, &plan, &["--partial-interval", "1"], work.join("stream.log"));
    wait_streaming(&server, &mut stream, "async");
    server.sql("CREATE TABLE markers (n int PRIMARY KEY)");
    r.run(&["--plan", plan.to_str().expect("utf8"), "backup", COMPONENT]).ok();
    server.sql("INSERT INTO markers VALUES (1)");
    let commit_end = lsn(&server.one("SELECT pg_current_wal_lsn()::text"));
    let t = Instant::now();
    wait_for("a stored range past the commit", Duration::from_secs(15), || {
        (pgenv::stored_range_end(&wal_objects(&repo)).is_some_and(|end| end >= commit_end)).then_some(())
    });
    let took = t.elapsed();
    assert!(stream.running(), "the range was stored by a stream that had stopped");
    eprintln!("the commit reached the repository {took:?} after it returned (interval 1 s)");
    stream.kill_9();
    server.kill_9_and_destroy();
    let (restored, _, _) = restore_started(&r, &plan, &bin, "latest", &work.join("restored"));
    let n: i64 = restored.connect("postgres").expect("connect").query_one("SELECT count(*) FROM markers", &[]).expect("q").get(0);
    assert_eq!(n, 1, "the commit stored while the stream ran is not in the restore");
}

/// A stream killed before it stored what it received leaves it in its
/// spool: `restore` warns, `wal-stream --upload-only` stores it with no
/// server at all, and the next restore has the commit.
#[test]
fn a_spool_left_behind_is_stored_without_a_server() {
    let Some(bin) = pg_bin() else { return };
    let work = TestDir::new("spool");
    open_to_server(work.path());
    let mut server = Server::start(&bin, &work.join("pg"), &[], LOCAL_HBA);
    let repo = work.join("repo");
    let plan = work.join("reprise.toml");
    write_plan(&plan, repo.to_str().expect("utf8"), &server.conn_string(), Some(&server.cluster.data_dir), "");
    let r = Reprise::at(work.path(), repo.clone());
    r.init();
    // Stores only when a segment completes (or at a clean stop).
    let mut stream = Stream::start(&r, &plan, &["--partial-interval", "3600"], work.join("stream.log"));
    wait_streaming(&server, &mut stream, "async");
    server.sql("CREATE TABLE markers (n int PRIMARY KEY)");
    r.run(&["--plan", plan.to_str().expect("utf8"), "backup", COMPONENT]).ok();
    server.sql("INSERT INTO markers VALUES (1)");
    let (segment, end): (String, String) = {
        let row = server.client().query_one("SELECT pg_walfile_name(pg_current_wal_lsn()), pg_current_wal_lsn()::text", &[]).expect("q");
        (row.get(0), row.get(1))
    };
    let offset = lsn(&end) % (16 << 20);
    let repo_id = std::fs::read_to_string(repo.join("config")).ok().and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok()).and_then(|c| c["id"].as_str().map(str::to_owned)).expect("repository id");
    let spool_file = work.join("cache/reprise/wal-stream").join(repo_id).join(COMPONENT).join(format!("{segment}.spool"));
    wait_for("the commit in the spool", Duration::from_secs(15), || (std::fs::metadata(&spool_file).is_ok_and(|m| m.len() >= offset)).then_some(()));
    stream.kill_9();
    server.kill_9_and_destroy();

    let (first, _, stderr) = restore_started(&r, &plan, &bin, "latest", &work.join("before-upload"));
    assert!(stderr.contains("holds WAL the repository lacks") && stderr.contains("--upload-only"), "restore did not warn about the spool: {stderr}");
    let n: i64 = first.connect("postgres").expect("connect").query_one("SELECT count(*) FROM markers", &[]).expect("q").get(0);
    assert_eq!(n, 0, "the commit was in the repository already: this test proves nothing");
    drop(first);

    let saved = r.run(&["--json", "--plan", plan.to_str().expect("utf8"), "wal-stream", COMPONENT, "--upload-only"]).ok().json();
    assert!(saved["ranges_stored"].as_u64().expect("count") >= 1, "{saved}");
    let (second, _, stderr) = restore_started(&r, &plan, &bin, "latest", &work.join("after-upload"));
    assert!(!stderr.contains("holds WAL the repository lacks"), "still warns after the upload: {stderr}");
    let n: i64 = second.connect("postgres").expect("connect").query_one("SELECT count(*) FROM markers", &[]).expect("q").get(0);
    assert_eq!(n, 1, "the spool's commit is not in the restore after --upload-only");
}

/// `status` of a streamed component: RPO 0 measured against the server
/// while the synchronous stream runs; when it is killed, an alert rather
/// than "ok".
#[test]
fn status_of_a_stream_is_zero_when_stored_and_an_alert_when_it_stops() {
    let Some(bin) = pg_bin() else { return };
    let work = TestDir::new("stream-status");
    open_to_server(work.path());
    let server = Server::start(&bin, &work.join("pg"), &[("synchronous_standby_names", "reprise_db")], LOCAL_HBA);
    let repo = work.join("repo");
    let plan = work.join("reprise.toml");
    write_plan(&plan, repo.to_str().expect("utf8"), &server.conn_string(), Some(&server.cluster.data_dir), "\n[components.db.objectives]\nrpo = \"1m\"\n");
    let r = Reprise::at(work.path(), repo.clone());
    r.init();
    let mut stream = Stream::start(&r, &plan, &["--synchronous"], work.join("stream.log"));
    wait_streaming(&server, &mut stream, "sync");
    server.sql("CREATE TABLE markers (n int PRIMARY KEY)");
    r.run(&["--plan", plan.to_str().expect("utf8"), "backup", COMPONENT]).ok();
    server.sql("INSERT INTO markers VALUES (1)");
    let p = plan.to_str().expect("utf8");
    let status = r.run(&["--json", "--plan", p, "status", COMPONENT]).ok().json();
    let pg = &status[0]["postgres"];
    assert_eq!(pg["rpo_basis"], "server", "{status}");
    assert_eq!(pg["rpo_seconds"].as_f64(), Some(0.0), "every acknowledged commit is stored: {status}");
    assert_eq!(pg["stream"]["active"], true, "{status}");
    assert_eq!(pg["stream"]["sync_state"], "sync", "{status}");
    assert_eq!(status[0]["alerts"], serde_json::json!([]), "{status}");
    let newest = status[0]["newest_restorable"].as_str().expect("restorable").parse::<jiff::Timestamp>().expect("time");
    assert!(jiff::Timestamp::now().duration_since(newest).as_secs_f64() < 5.0, "restorable until {newest}, not now: {status}");
    let human = r.run(&["--plan", p, "status", COMPONENT]).ok().stdout;
    assert!(human.lines().next().is_some() && human.contains("  ok"), "{human}");

    stream.kill_9();
    wait_for("the slot to be inactive", Duration::from_secs(30), || (server.one("SELECT active::text FROM pg_replication_slots WHERE slot_name = 'reprise_db'") == "false").then_some(()));
    let status = r.run(&["--json", "--plan", p, "status", COMPONENT]).ok().json();
    let alerts = status[0]["alerts"].as_array().expect("alerts");
    assert!(alerts.iter().any(|a| a.as_str().is_some_and(|a| a.contains("wal-stream is not running"))), "{status}");
    let human = r.run(&["--plan", p, "status", COMPONENT]).ok().stdout;
    assert!(human.contains("ALERT") && !human.contains("  ok"), "a stopped stream must not read as ok: {human}");
}

fn restorer_python() -> Option<String> {
    let py = std::env::var("REPRISE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py).args(["-c", "import cryptography.hazmat.primitives.hpke, zstandard, blake3, cbor2, argon2"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        common::skip(&format!("{py} cannot run the independent restorer (its Python packages: scripts/test-all installs them)"));
        return None;
    }
    Some(py)
}

/// The independent restorer (tools/restorer, written from docs/FORMAT.md)
/// restores the base backup and the WAL, the last segment assembled from
/// its streamed ranges (the stream was killed mid-segment with the
/// server), and PostgreSQL replays it to every acknowledged commit.
#[test]
fn the_independent_restorer_replays_streamed_wal_to_every_acknowledged_commit() {
    let Some(bin) = pg_bin() else { return };
    let Some(py) = restorer_python() else { return };
    let work = TestDir::new("restorer-wal");
    open_to_server(work.path());
    let mut server = Server::start(&bin, &work.join("pg"), &[("synchronous_standby_names", "reprise_db")], LOCAL_HBA);
    let repo = work.join("repo");
    let plan = work.join("reprise.toml");
    write_plan(&plan, repo.to_str().expect("utf8"), &server.conn_string(), Some(&server.cluster.data_dir), "");
    let r = Reprise::at(work.path(), repo.clone());
    r.init();
    let key = work.join("recovery.key");
    r.run(&["key", "export-recovery", "-o", key.to_str().expect("utf8")]).ok();
    let mut stream = Stream::start(&r, &plan, &["--synchronous"], work.join("stream.log"));
    wait_streaming(&server, &mut stream, "sync");
    server.sql("CREATE TABLE acked (id bigint PRIMARY KEY)");
    r.run(&["--plan", plan.to_str().expect("utf8"), "backup", COMPONENT]).ok();
    let load = Load::start(&server, 2);
    wait_for("100 acknowledged commits", Duration::from_secs(120), || (load.count() >= 100).then_some(()));
    server.kill_9_and_destroy();
    stream.kill_9();
    let acked = load.finish();
    let names = wal_objects(&repo);
    let last_whole = names.iter().filter(|n| n.len() == 24).max().cloned().unwrap_or_default();
    assert!(names.iter().any(|n| n.contains(".stream.") && n[..24] > *last_whole), "the newest WAL should exist only as ranges: {names:?}");

    let target = work.join("independent");
    let wal_dir = work.join("independent-wal");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/restorer/reprise_restore.py");
    let out = std::process::Command::new(&py)
        .arg(&script)
        .args(["--repo", repo.to_str().expect("utf8"), "--recovery-key", key.to_str().expect("utf8"), "--target", target.to_str().expect("utf8"), "--wal-dir", wal_dir.to_str().expect("utf8")])
        .output()
        .expect("run the restorer");
    assert!(out.status.success(), "the independent restorer failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    for p in [&target, &wal_dir] {
        let _ = std::process::Command::new("chown").args(["-R", "postgres:postgres"]).arg(p).status();
    }
    let run = work.join("independent.run");
    std::fs::create_dir_all(&run).expect("mkdir");
    open_to_server(&run);
    let mut c = reprise_postgres::cluster::Cluster::existing(bin.clone(), &target.join("pgdata"), &run, reprise_postgres::cluster::OnDrop::Stop).expect("cluster");
    c.start(&[]).expect("start the independently restored server");
    c.wait_ready(Duration::from_secs(120)).expect("ready");
    let mut client = c.connect("postgres").expect("connect");
    wait_for("the end of recovery", Duration::from_secs(120), || (!client.query_one("SELECT pg_is_in_recovery()", &[]).expect("q").get::<_, bool>(0)).then_some(()));
    let ids: std::collections::BTreeSet<i64> = client.query("SELECT id FROM acked", &[]).expect("q").iter().map(|row| row.get(0)).collect();
    let missing = acked.iter().filter(|id| !ids.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged commits missing after the independent restore", acked.len());
}

/// The server restarts under a synchronous stream: the stream reconnects,
/// asks again for the segment it was storing (from its first byte, so that
/// it can store it whole later), stores only what the repository lacks,
/// and the commits before and after the restart all restore.
#[test]
fn a_stream_resumes_after_the_server_restarts() {
    let Some(bin) = pg_bin() else { return };
    let work = TestDir::new("stream-resume");
    open_to_server(work.path());
    let mut server = Server::start(&bin, &work.join("pg"), &[("synchronous_standby_names", "reprise_db")], LOCAL_HBA);
    let repo = work.join("repo");
    let plan = work.join("reprise.toml");
    write_plan(&plan, repo.to_str().expect("utf8"), &server.conn_string(), Some(&server.cluster.data_dir), "");
    let r = Reprise::at(work.path(), repo.clone());
    r.init();
    let mut stream = Stream::start(&r, &plan, &["--synchronous"], work.join("stream.log"));
    wait_streaming(&server, &mut stream, "sync");
    server.sql("CREATE TABLE acked (id bigint PRIMARY KEY)");
    r.run(&["--plan", plan.to_str().expect("utf8"), "backup", COMPONENT]).ok();
    server.sql("INSERT INTO acked SELECT generate_series(900000001, 900000050)");
    let before = wal_objects(&repo).len();
    server.restart();
    wait_streaming(&server, &mut stream, "sync");
    let load = Load::start(&server, 2);
    wait_for("100 acknowledged commits after the restart", Duration::from_secs(120), || (load.count() >= 100).then_some(()));
    server.kill_9_and_destroy();
    stream.kill_9();
    let acked = load.finish();
    assert!(stream.output().contains("reconnecting"), "the stream did not see the restart: {}", stream.output());
    assert!(wal_objects(&repo).len() > before, "nothing stored after the restart");
    let (restored, _, _) = restore_started(&r, &plan, &bin, "latest", &work.join("restored"));
    let ids: std::collections::BTreeSet<i64> = restored.connect("postgres").expect("connect").query("SELECT id FROM acked", &[]).expect("q").iter().map(|row| row.get(0)).collect();
    assert!((900_000_001..=900_000_050).all(|i| ids.contains(&i)), "commits from before the restart are missing");
    let missing = acked.iter().filter(|id| !ids.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of {} commits acknowledged after the restart are missing", acked.len());
}

/// Format 2 (issue 14) meets streaming (issue 12): the production host
/// streams with its own write-only credential, and another host's write
/// credential — a compromised writer of the same repository — forges WAL
/// for the same component: it takes the name of the segment being streamed
/// before the stream completes it, and once the database host is lost it
/// plants ranges that would carry the last segment on past what was
/// acknowledged, cover it whole, or start a segment the server never wrote.
/// A restore from the repository takes none of them and reaches every
/// acknowledged commit; so does the independent restorer; `check` names
/// every forged object and its writer.
#[test]
fn a_range_forged_with_another_write_credential_is_ignored_by_restore_and_reported_by_check() {
    let Some(bin) = pg_bin() else { return };
    let Some(py) = restorer_python() else { return };
    let work = TestDir::new("forged-ranges");
    open_to_server(work.path());
    let mut server = Server::start(&bin, &work.join("pg"), &[("synchronous_standby_names", "reprise_db")], LOCAL_HBA);
    let repo = work.join("repo");
    let plan = work.join("reprise.toml");
    let p = plan.to_str().expect("utf8");
    write_plan(&plan, repo.to_str().expect("utf8"), &server.conn_string(), Some(&server.cluster.data_dir), "");
    let admin = Reprise::at(work.path(), repo.clone());
    admin.init();
    let credential = |host: &str| -> (PathBuf, String) {
        let path = work.join(format!("{host}.credential"));
        let out = admin.run(&["--json", "key", "add", "--write-only", "--credential", path.to_str().expect("utf8"), "--label", host, "--host", host]).ok().json();
        (path, out["key_id"].as_str().expect("key_id").to_owned())
    };
    let (db_cred, db_key) = credential("db-host");
    let (other_cred, other_key) = credential("other-host");
    let db_host = Reprise::at(work.path(), repo.clone()).without_password().with_env("REPRISE_KEY_FILE", &db_cred).with_cache(work.join("db-host-cache"));
    // A forged file; a range gets the length its name gives.
    let forge = |file: &str| {
        let size = file.split_once(".stream.").and_then(|(_, r)| r.split_once('-')).map(|(a, b)| (u32::from_str_radix(b, 16).expect("hex") - u32::from_str_radix(a, 16).expect("hex")).to_string());
        let out = std::process::Command::new(&py)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/attacker.py"))
            .args(["--store", "local", "--path", repo.to_str().expect("utf8"), "--credential", other_cred.to_str().expect("utf8")])
            .args(["squat-wal", "--component", COMPONENT, "--file", file])
            .args(size.iter().flat_map(|s| ["--size", s.as_str()]))
            .output()
            .expect("run the attacker");
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("\"created\": true"), "forging {file}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    };

    // The production host streams and backs up with its write-only credential.
    let mut stream = Stream::start(&db_host, &plan, &["--synchronous"], work.join("stream.log"));
    wait_streaming(&server, &mut stream, "sync");
    server.sql("CREATE TABLE acked (id bigint PRIMARY KEY)");
    db_host.run(&["--plan", p, "backup", COMPONENT]).ok();
    let streamed_segment = |names: &[String]| names.iter().filter_map(|n| n.split_once(".stream.").map(|(s, _)| s.to_owned())).max().expect("a streamed segment");
    // The segment being streamed: its name is taken before the stream
    // completes it.
    // (A write first: at a segment's very start the function names the one before.)
    server.sql("CREATE TABLE after_backup (n int)");
    let current = server.one("SELECT pg_walfile_name(pg_current_wal_lsn())");
    assert!(!wal_objects(&repo).contains(&current), "{current} is still being written");
    forge(&current);
    let load = Load::start(&server, 2);
    wait_for("100 acknowledged commits", Duration::from_secs(120), || (load.count() >= 100).then_some(()));
    server.sql("SELECT pg_switch_wal()");
    let beside = wait_for("the completed segment stored beside the taken name", Duration::from_secs(60), || {
        wal_objects(&repo).into_iter().find(|n| n.starts_with(&format!("{current}@")))
    });
    assert_eq!(&beside[25..], &db_key[..16], "stored beside under the stream's own key");
    let after = load.count();
    wait_for("50 more acknowledged commits", Duration::from_secs(120), || (load.count() >= after + 50).then_some(()));
    assert!(stream.output().contains("taken"), "the stream reports the name taken: {}", stream.output());
    let genuine_end = |names: &[String], segment: &str| {
        names.iter().filter_map(|n| n.strip_prefix(&format!("{segment}.stream.")).and_then(|r| r.split_once('-')).map(|(_, to)| u32::from_str_radix(&to[..8], 16).expect("hex"))).max().expect("ranges")
    };
    // The stream dies (commits wait); a range planted where its stored WAL
    // ends, to the end of the segment, must not make the restarted stream
    // believe, and acknowledge, WAL the repository lacks.
    stream.kill_9();
    let names = wal_objects(&repo);
    let last = streamed_segment(&names);
    let planted_tail = format!("{last}.stream.{:08X}-01000000", genuine_end(&names, &last));
    forge(&planted_tail);
    let mut stream = Stream::start(&db_host, &plan, &["--synchronous"], work.join("stream-2.log"));
    wait_streaming(&server, &mut stream, "sync");
    let after = load.count();
    wait_for("50 more acknowledged commits after the restart", Duration::from_secs(120), || (load.count() >= after + 50).then_some(()));
    server.kill_9_and_destroy();
    stream.kill_9();
    let acked = load.finish();

    // The repository frozen; the other writer plants ranges: one carrying
    // the last segment on past what was stored, one standing for all of it,
    // one starting a segment the server never wrote.
    let names = wal_objects(&repo);
    let last = streamed_segment(&names);
    let end = genuine_end(&names, &last);
    let next = format!("{}{:08X}", &last[..16], u32::from_str_radix(&last[16..], 16).expect("hex") + 1);
    let whole = ["00000000", "00000001"].iter().map(|from| format!("{last}.stream.{from}-{end:08X}")).find(|n| !names.contains(n)).expect("a free name");
    let mut forged = vec![planted_tail, format!("{last}.stream.{end:08X}-{:08X}", end + 0x2000), whole, format!("{next}.stream.00000000-00002000")];
    forged.dedup();
    for f in &forged[1..] {
        forge(f);
    }

    // A restore from the repository reaches every acknowledged commit.
    let (restored, _, stderr) = restore_started(&admin, &plan, &bin, "latest", &work.join("restored"));
    let ids: std::collections::BTreeSet<i64> = restored.connect("postgres").expect("connect").query("SELECT id FROM acked", &[]).expect("q").iter().map(|r| r.get(0)).collect();
    drop(restored);
    let missing = acked.iter().filter(|id| !ids.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged commits missing; restore said: {stderr}", acked.len());
    assert!(stderr.contains("ignored"), "the restore says what it left out: {stderr}");

    // check --read-data names every forged object and its writer.
    let out = admin.check(&["--read-data"]);
    assert_eq!(out.code, 6, "{}", out.describe());
    let problems: Vec<(String, String)> = out.json()["problems"].as_array().expect("problems").iter().map(|p| (p["object"].as_str().expect("o").to_owned(), p["message"].as_str().expect("m").to_owned())).collect();
    let about = |object: &str, what: &str| {
        assert!(
            problems.iter().any(|(o, m)| o.ends_with(object) && m.contains(what) && m.contains(&other_key[..12])),
            "no problem about {object} saying {what} and naming {}: {problems:#?}",
            &other_key[..12]
        );
    };
    for f in &forged {
        about(f, "another server");
    }
    about(&current, "another server");
    assert!(problems.iter().any(|(o, m)| o.ends_with(&beside) && m.contains("taken") && m.contains(&other_key[..12])), "the taken name is reported: {problems:#?}");

    // The independent restorer, written from FORMAT.md, leaves them out too.
    let key = work.join("recovery.key");
    admin.run(&["key", "export-recovery", "-o", key.to_str().expect("utf8")]).ok();
    let target = work.join("independent");
    let wal_dir = work.join("independent-wal");
    let out = std::process::Command::new(&py)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/restorer/reprise_restore.py"))
        .args(["--repo", repo.to_str().expect("utf8"), "--recovery-key", key.to_str().expect("utf8"), "--target", target.to_str().expect("utf8"), "--wal-dir", wal_dir.to_str().expect("utf8")])
        .output()
        .expect("run the restorer");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the independent restorer failed: {said}");
    assert!(said.contains("from server 0, not"), "the independent restorer says what it left out: {said}");
    for p in [&target, &wal_dir] {
        let _ = std::process::Command::new("chown").args(["-R", "postgres:postgres"]).arg(p).status();
    }
    let run = work.join("independent.run");
    std::fs::create_dir_all(&run).expect("mkdir");
    open_to_server(&run);
    let mut c = reprise_postgres::cluster::Cluster::existing(bin.clone(), &target.join("pgdata"), &run, reprise_postgres::cluster::OnDrop::Stop).expect("cluster");
    c.start(&[]).expect("start the independently restored server");
    c.wait_ready(Duration::from_secs(120)).expect("ready");
    let mut client = c.connect("postgres").expect("connect");
    wait_for("the end of recovery", Duration::from_secs(120), || (!client.query_one("SELECT pg_is_in_recovery()", &[]).expect("q").get::<_, bool>(0)).then_some(()));
    let ids: std::collections::BTreeSet<i64> = client.query("SELECT id FROM acked", &[]).expect("q").iter().map(|row| row.get(0)).collect();
    let missing = acked.iter().filter(|id| !ids.contains(id)).count();
    assert_eq!(missing, 0, "{missing} of {} acknowledged commits missing after the independent restore", acked.len());
}
