//! PostgreSQL for the integration tests: a real cluster (initdb, pg_ctl
//! from the installed PostgreSQL) archiving into a fresh repository
//! through a write-only credential, the reprise binary run with the test's
//! plan, and helpers to restore, dump and check clusters.
//!
//! When PostgreSQL is not installed, [`setup`] fails the test if
//! REPRISE_TEST_REQUIRE_ALL is set (CI) and otherwise returns `None` after
//! saying the test is skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reprise_postgres::cluster::{self, Cluster, OnDrop, PgBin};

pub const COMPONENT: &str = "db";

pub fn pg_bin() -> Option<PgBin> {
    match PgBin::find(None) {
        Ok(b) => Some(b),
        Err(e) => {
            super::skip(&format!("PostgreSQL is not installed ({e}; scripts/test-all installs postgresql-15)"));
            None
        }
    }
}

/// Fields drop in order: the cluster stops before its folder is removed.
pub struct Env {
    pub cluster: Option<Cluster>,
    pub bin: PgBin,
    pub repo: PathBuf,
    pub plan: PathBuf,
    pub credential: PathBuf,
    pub recovery: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster.as_ref().expect("cluster")
    }

    /// Runs reprise with the test's plan and passphrase.
    pub fn reprise(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_reprise"))
            .arg("--plan")
            .arg(&self.plan)
            .args(args)
            .env("REPRISE_PASSWORD", "test-passphrase")
            .env("XDG_CACHE_HOME", self.path("cache"))
            .env_remove("REPRISE_REPO")
            .output()
            .expect("run reprise")
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.reprise(args);
        assert!(out.status.success(), "reprise {args:?} failed ({:?}):\n{}\n{}", out.status.code(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ok(&a)).expect("json output")
    }

    pub fn client(&self, db: &str) -> postgres::Client {
        self.cluster().connect(db).expect("connect")
    }

    pub fn sql(&self, q: &str) {
        self.client("postgres").batch_execute(q).unwrap_or_else(|e| panic!("{q}: {e}"));
    }

    pub fn one(&self, q: &str) -> String {
        let mut c = self.client("postgres");
        let row = c.query_one(q, &[]).unwrap_or_else(|e| panic!("{q}: {e}"));
        row.get::<_, String>(0)
    }

    /// Forces a WAL switch and waits until the segment is archived.
    pub fn archive_now(&self) {
        let wanted = self.one("SELECT pg_walfile_name(pg_switch_wal())");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = self.one("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if last >= wanted {
                return;
            }
            assert!(Instant::now() < deadline, "{wanted} not archived in 60 s (last {last}): {}", self.cluster().log_tail(5));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn pgbench(&self, args: &[&str]) -> Command {
        let c = self.cluster();
        let mut cmd = self.bin.command("pgbench").expect("pgbench");
        cmd.arg("-h").arg(&c.socket_dir).args(["-p", &c.port.to_string(), "-U", "postgres"]).args(args);
        cmd
    }
}

/// A cluster archiving into a fresh repository through a write credential.
pub fn setup(archive: bool) -> Option<Env> {
    setup_with(archive, &[])
}

/// [`setup`] with extra server settings (`track_commit_timestamp`, ...).
pub fn setup_with(archive: bool, extra: &[(&str, &str)]) -> Option<Env> {
    setup_archiving_with(archive, "", extra)
}

/// [`setup_with`], with `flags` given to reprise in the archive_command
/// (e.g. `-v`, so that every push logs a line into the server's log).
pub fn setup_archiving_with(archive: bool, flags: &str, extra: &[(&str, &str)]) -> Option<Env> {
    let bin = pg_bin()?;
    let dir = tempfile::Builder::new().prefix("reprise-pg-").tempdir().expect("tempdir");
    cluster::hand_over(dir.path(), 0o755).expect("hand over");
    let repo = dir.path().join("repo");
    let plan = dir.path().join("reprise.toml");
    let credential = dir.path().join("archive.credential");
    let recovery = dir.path().join("recovery.key");
    let mut c = Cluster::initdb(bin.clone(), &dir.path().join("pg"), OnDrop::StopAndRemove).expect("initdb");
    let mut env = Env { cluster: None, bin, repo, plan, credential, recovery, dir };
    std::fs::write(
        &env.plan,
        format!(
            "[repositories.main]\nurl = \"{}\"\n\n[components.{COMPONENT}]\ntype = \"postgres\"\nconnection = \"{}\"\ndata_directory = \"{}\"\narchive_timeout = \"60s\"\n",
            env.repo.display(),
            c.conn_string("postgres"),
            c.data_dir.display()
        ),
    )
    .expect("plan");
    env.ok(&["--repo", env.repo.to_str().expect("utf8"), "init", "--kdf-memory", "64", "--kdf-iterations", "1"]);
    env.ok(&["key", "add", "--write-only", "--credential", env.credential.to_str().expect("utf8")]);
    env.ok(&["key", "export-recovery", "-o", env.recovery.to_str().expect("utf8")]);
    // The server account archives: it must reach the repository and the credential.
    for p in walk(&env.repo) {
        cluster::hand_over(&p, if p.is_dir() { 0o755 } else { 0o644 }).expect("hand over");
    }
    cluster::hand_over(&env.credential, 0o600).expect("hand over");
    let exe = env!("CARGO_BIN_EXE_reprise");
    let mut settings: Vec<(String, String)> = vec![("wal_level".into(), "replica".into()), ("max_wal_senders".into(), "4".into())];
    settings.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    if archive {
        settings.push(("archive_mode".into(), "on".into()));
        settings.push((
            "archive_command".into(),
            format!("{exe} {flags} --repo {} --key-file {} wal-push {COMPONENT} %p", env.repo.display(), env.credential.display()),
        ));
    }
    c.start(&settings).expect("start");
    c.wait_ready(Duration::from_secs(60)).expect("ready");
    std::fs::write(c.data_dir.join("pg_hba.conf"), "local all all trust\nlocal replication all trust\n").ok();
    env.cluster = Some(c);
    env.sql("SELECT pg_reload_conf()");
    assert_eq!(env.one("SHOW listen_addresses"), "", "test clusters listen on their private socket only");
    Some(env)
}

pub fn walk(root: &Path) -> Vec<PathBuf> {
    let mut out = vec![root.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if out[i].is_dir()
            && let Ok(rd) = std::fs::read_dir(&out[i])
        {
            let children: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            out.extend(children);
        }
        i += 1;
    }
    out
}

/// A started restore of `target` (reprise restore --start --keep-running):
/// returns the restored cluster for inspection (stopped when dropped).
pub fn restore_started(env: &Env, target: &str, to: &Path) -> (Cluster, serde_json::Value) {
    restore_started_with(env, target, to, &[])
}

/// [`restore_started`] with more arguments.
pub fn restore_started_with(env: &Env, target: &str, to: &Path, extra: &[&str]) -> (Cluster, serde_json::Value) {
    let mut args = vec!["restore", COMPONENT, "--at", target, "--to", to.to_str().expect("utf8"), "--start", "--keep-running"];
    args.extend_from_slice(extra);
    let out = env.json(&args);
    (cluster_of(env, to, &out), out)
}

/// The cluster a started restore into `to` left running (stopped when dropped).
pub fn cluster_of(env: &Env, to: &Path, out: &serde_json::Value) -> Cluster {
    let mut run = to.to_path_buf().into_os_string();
    run.push(".run");
    let mut c = Cluster::existing(env.bin.clone(), to, Path::new(&run), OnDrop::Stop).expect("cluster");
    c.port = out["port"].as_u64().expect("port") as u16;
    c.socket_dir = PathBuf::from(out["socket_dir"].as_str().expect("socket"));
    c
}

pub fn amcheck(env: &Env, c: &Cluster) {
    let out = env
        .bin
        .command("pg_amcheck")
        .expect("pg_amcheck")
        .args(["--install-missing", "--heapallindexed", "--all", "-h"])
        .arg(&c.socket_dir)
        .args(["-p", &c.port.to_string(), "-U", "postgres"])
        .output()
        .expect("run pg_amcheck");
    assert!(out.status.success(), "pg_amcheck found corruption: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

pub fn dump(env: &Env, c: &Cluster, db: &str) -> String {
    dump_with(env, c, db, &[])
}

/// `pg_dump` of `db` on `c` with extra arguments (a table, sections), as
/// plain SQL a test can compare line by line.
pub fn dump_with(env: &Env, c: &Cluster, db: &str, extra: &[&str]) -> String {
    let out = env
        .bin
        .command("pg_dump")
        .expect("pg_dump")
        .args(["--no-owner", "-h"])
        .arg(&c.socket_dir)
        .args(["-p", &c.port.to_string(), "-U", "postgres", "-d", db])
        .args(extra)
        .output()
        .expect("run pg_dump");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    // pg_dump (since 15.14) writes a random \restrict key into every dump.
    String::from_utf8(out.stdout).expect("utf8 dump").lines().filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")).map(|l| format!("{l}\n")).collect()
}

/// Panics with the first differing lines of two dumps.
#[track_caller]
pub fn assert_same_dump(what: &str, expected: &str, got: &str) {
    if expected != got {
        let diff: Vec<String> = expected.lines().zip(got.lines()).filter(|(a, b)| a != b).take(8).map(|(a, b)| format!("before: {a}\n after: {b}")).collect();
        panic!("{what}: the dump after the restore differs ({} lines before, {} after):\n{}", expected.lines().count(), got.lines().count(), diff.join("\n"));
    }
}
