//! Real PostgreSQL servers for the WAL tests (wal_stream.rs,
//! wal_archive.rs): started by the test as the `postgres` account, killed
//! with `kill -9` when a test says the host is lost, removed at the end.
//!
//! Beside `common::pg` (a cluster archiving through a credential): these
//! tests need several servers, settings of their own and `kill -9` of a
//! whole server. When PostgreSQL is not installed the tests fail if
//! REPRISE_TEST_REQUIRE_ALL is set, and say they are skipped otherwise
//! (`common::skip`).
#![allow(dead_code, clippy::pedantic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reprise_postgres::cluster::{self, Cluster, OnDrop, PgBin};

use crate::common::Reprise;

pub const COMPONENT: &str = "db";

pub fn pg_bin() -> Option<PgBin> {
    crate::common::pg::pg_bin()
}

/// Lets the server account reach into a test directory.
pub fn open_to_server(dir: &Path) {
    cluster::hand_over(dir, 0o755).expect("hand over");
}

/// One server, stopped and removed when dropped.
pub struct Server {
    pub cluster: Cluster,
    pub bin: PgBin,
    settings: Vec<(String, String)>,
}

impl Server {
    /// `initdb` into `root`, then start with `settings` and `hba` as pg_hba.conf.
    pub fn start(bin: &PgBin, root: &Path, settings: &[(&str, &str)], hba: &str) -> Server {
        let mut c = Cluster::initdb(bin.clone(), root, OnDrop::StopAndRemove).expect("initdb");
        std::fs::write(c.data_dir.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        let mut all: Vec<(String, String)> = vec![("wal_level".into(), "replica".into()), ("max_wal_senders".into(), "4".into())];
        all.extend(settings.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        c.start(&all).expect("start");
        c.wait_ready(Duration::from_secs(60)).expect("ready");
        Server { cluster: c, bin: bin.clone(), settings: all }
    }

    /// A clean restart (`pg_ctl stop -m fast`, then start): every
    /// connection, the stream's included, is closed.
    pub fn restart(&mut self) {
        self.cluster.stop("fast");
        self.cluster.start(&self.settings).expect("start");
        self.cluster.wait_ready(Duration::from_secs(60)).expect("ready");
    }

    pub fn client(&self) -> postgres::Client {
        self.cluster.connect("postgres").expect("connect")
    }

    pub fn sql(&self, q: &str) {
        self.client().batch_execute(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }

    pub fn one(&self, q: &str) -> String {
        self.client().query_one(q, &[]).unwrap_or_else(|e| panic!("{q}: {e}")).get::<_, String>(0)
    }

    pub fn conn_string(&self) -> String {
        self.cluster.conn_string("postgres")
    }

    /// The loss of the database host: every server process killed with
    /// SIGKILL at once (nothing flushed, nothing said to clients), then
    /// the data directory removed.
    pub fn kill_9_and_destroy(&mut self) {
        let pid: i32 = std::fs::read_to_string(self.cluster.data_dir.join("postmaster.pid"))
            .expect("postmaster.pid")
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("pid");
        let mut pids = vec![pid];
        pids.extend(children(pid));
        let list: Vec<String> = pids.iter().map(ToString::to_string).collect();
        let _ = Command::new("kill").arg("-9").args(&list).stderr(std::process::Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|p| Path::new(&format!("/proc/{p}")).exists() && !is_zombie(*p)) {
            assert!(Instant::now() < deadline, "server processes survived kill -9");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::remove_dir_all(&self.cluster.data_dir).expect("remove the data directory");
    }
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z')).unwrap_or(true)
}

/// Direct children of `pid` (from /proc).
pub fn children(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let ppid = stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().nth(1)).and_then(|s| s.parse::<i32>().ok());
        if ppid == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// Writes a plan with one physical component.
pub fn write_plan(path: &Path, repo_url: &str, connection: &str, data_directory: Option<&Path>, extra: &str) {
    let mut text = format!("[repositories.main]\nurl = \"{repo_url}\"\n\n[components.{COMPONENT}]\ntype = \"postgres\"\nconnection = \"{connection}\"\narchive_timeout = \"120s\"\n");
    if let Some(d) = data_directory {
        text.push_str(&format!("data_directory = \"{}\"\n", d.display()));
    }
    text.push_str(extra);
    std::fs::write(path, text).expect("plan");
}

/// Polls `f` until it returns `Some`, for at most `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A started restore of `target` from the repository alone (reprise
/// restore --start --keep-running): the restored server, stopped on drop.
pub fn restore_started(r: &Reprise, plan: &Path, bin: &PgBin, target: &str, to: &Path) -> (Cluster, serde_json::Value, String) {
    let out = r.run(&["--json", "--plan", plan.to_str().expect("utf8"), "restore", COMPONENT, "--at", target, "--to", to.to_str().expect("utf8"), "--start", "--keep-running"]).ok();
    let json = out.json();
    let mut run = to.to_path_buf().into_os_string();
    run.push(".run");
    let mut c = Cluster::existing(bin.clone(), to, Path::new(&run), OnDrop::Stop).expect("cluster");
    c.port = json["port"].as_u64().expect("port") as u16;
    c.socket_dir = PathBuf::from(json["socket_dir"].as_str().expect("socket"));
    (c, json, out.stderr)
}

/// Every WAL object name of the component in a local repository.
pub fn wal_objects(repo: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let root = repo.join("wal").join(COMPONENT);
    for group in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(group.path()).into_iter().flatten().flatten() {
            out.push(f.file_name().to_string_lossy().into_owned());
        }
    }
    out.sort();
    out
}

/// Where the stored ranges of the newest streamed segment end (an LSN as a
/// number), from object names alone.
pub fn stored_range_end(names: &[String]) -> Option<u64> {
    names
        .iter()
        .filter_map(|n| {
            let (seg, range) = n.split_once(".stream.")?;
            let (_, to) = range.split_once('-')?;
            let log = u64::from_str_radix(&seg[8..16], 16).ok()?;
            let num = u64::from_str_radix(&seg[16..24], 16).ok()?;
            Some((log << 32) + num * (16 << 20) + u64::from_str_radix(to, 16).ok()?)
        })
        .max()
}

/// An LSN (`0/3000060`) as a number.
pub fn lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').expect("an LSN");
    (u64::from_str_radix(hi, 16).expect("hex") << 32) | u64::from_str_radix(lo, 16).expect("hex")
}
