//! PostgreSQL clusters that reprise starts itself: scratch restores, the
//! demo's throwaway server, drills.
//!
//! A cluster runs as the `postgres` OS account when reprise runs as root
//! (the server refuses root), listens on a free loopback port and on a
//! socket in a private folder, and is stopped — and, for scratch clusters,
//! removed — when its [`Cluster`] is dropped, including after Ctrl-C. A
//! registry lets a second Ctrl-C stop every cluster before exiting.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{PgError, Result};

/// PostgreSQL's programs.
#[derive(Debug, Clone)]
pub struct PgBin {
    pub dir: PathBuf,
}

impl PgBin {
    /// `configured` (the plan's `bin_dir`), else `pg_config --bindir`, else
    /// the newest `/usr/lib/postgresql/*/bin`.
    pub fn find(configured: Option<&Path>) -> Result<PgBin> {
        if let Some(d) = configured {
            return Ok(PgBin { dir: d.to_path_buf() });
        }
        if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
            if out.status.success() {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if dir.join("postgres").exists() {
                    return Ok(PgBin { dir });
                }
            }
        }
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path().join("bin"))).filter(|p| p.join("postgres").exists()).collect())
            .unwrap_or_default();
        versions.sort();
        versions.pop().map(|dir| PgBin { dir }).ok_or_else(|| PgError::MissingBinary { program: "postgres".into(), dir: "/usr/lib/postgresql/*/bin".into() })
    }

    pub fn program(&self, name: &str) -> Result<PathBuf> {
        let p = self.dir.join(name);
        if p.exists() { Ok(p) } else { Err(PgError::MissingBinary { program: name.into(), dir: self.dir.clone() }) }
    }

    /// A command for one of PostgreSQL's programs, run as the server
    /// account when we are root.
    pub fn command(&self, name: &str) -> Result<Command> {
        let mut c = Command::new(self.program(name)?);
        if let Some((uid, gid)) = server_account() {
            c.uid(uid).gid(gid);
            c.env("HOME", std::env::temp_dir());
        }
        c.env_remove("PGDATA").env_remove("PGHOST").env_remove("PGPORT").env_remove("PGDATABASE").env_remove("PGUSER");
        Ok(c)
    }
}

/// The account PostgreSQL servers run as when reprise is root.
#[must_use]
pub fn server_account() -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    let u = nix::unistd::User::from_name("postgres").ok().flatten()?;
    Some((u.uid.as_raw(), u.gid.as_raw()))
}

/// Makes `path` usable by the server account (owner, mode).
pub fn hand_over(path: &Path, mode: u32) -> Result<()> {
    if let Some((uid, gid)) = server_account() {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).map_err(|e| PgError::io(path, e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| PgError::io(path, e))
}

/// A free TCP port on loopback (bound then released).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| PgError::io("127.0.0.1:0", e))?;
    Ok(l.local_addr().map_err(|e| PgError::io("127.0.0.1:0", e))?.port())
}

static REGISTRY: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());

/// Stops every cluster this process started (for a second Ctrl-C, which
/// exits without running destructors).
pub fn stop_all() {
    let list: Vec<_> = REGISTRY.lock().clone();
    for (pg_ctl, data) in list {
        let mut c = Command::new(&pg_ctl);
        if let Some((uid, gid)) = server_account() {
            c.uid(uid).gid(gid);
        }
        let _ = c.args(["stop", "-m", "immediate", "-D"]).arg(&data).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

/// Stops a server left running from `data` by a process that died (a
/// drill killed with SIGKILL): immediate shutdown, since its files are
/// about to be removed. Signals only the process whose working directory
/// is `data` (a postmaster works from its data directory), never one that
/// merely reuses a stale PID. Waits up to `wait`; says whether none runs.
#[must_use]
pub fn stop_orphan(data: &Path, wait: Duration) -> bool {
    use nix::sys::signal::{Signal, kill};
    let Ok(text) = std::fs::read_to_string(data.join("postmaster.pid")) else { return true };
    let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else { return true };
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    if cwd.is_none() || cwd != std::fs::canonicalize(data).ok() {
        return true;
    }
    let pid = nix::unistd::Pid::from_raw(pid);
    if kill(pid, Signal::SIGQUIT).is_err() {
        return true;
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        // A zombie has exited: only its parent, gone too, would reap it.
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().and_then(|s| s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z'))).unwrap_or(false);
        if zombie || kill(pid, None).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// What happens to a cluster's files when it is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDrop {
    /// Stop it and remove its folder (scratch clusters).
    StopAndRemove,
    /// Stop it, keep the files.
    Stop,
    /// Leave it running (a restore the user asked to start).
    Detach,
}

#[derive(Debug)]
pub struct Cluster {
    pub bin: PgBin,
    pub data_dir: PathBuf,
    pub port: u16,
    pub socket_dir: PathBuf,
    pub log_file: PathBuf,
    /// A folder that holds everything of a scratch cluster, removed with it.
    pub root: Option<PathBuf>,
    /// `socket_dir` when it had to be made under `/tmp` (see
    /// `socket_dir_in`), removed once the server is stopped.
    short_socket_dir: Option<PathBuf>,
    pub on_drop: OnDrop,
    running: bool,
}

impl Cluster {
    /// Describes an existing data directory (not started).
    pub fn existing(bin: PgBin, data_dir: &Path, work: &Path, on_drop: OnDrop) -> Result<Cluster> {
        let (socket_dir, short) = socket_dir_in(work)?;
        hand_over(&socket_dir, 0o700)?;
        let log_file = work.join("postgresql.log");
        let short_socket_dir = short.then(|| socket_dir.clone());
        Ok(Cluster { bin, data_dir: data_dir.to_path_buf(), port: free_port()?, socket_dir, log_file, root: None, short_socket_dir, on_drop, running: false })
    }

    /// Creates a fresh cluster in `root/data` with `initdb` (trust
    /// authentication on the private socket and loopback only).
    pub fn initdb(bin: PgBin, root: &Path, on_drop: OnDrop) -> Result<Cluster> {
        std::fs::create_dir_all(root).map_err(|e| PgError::io(root, e))?;
        hand_over(root, 0o755)?;
        let data = root.join("data");
        std::fs::create_dir_all(&data).map_err(|e| PgError::io(&data, e))?;
        hand_over(&data, 0o700)?;
        let out = bin
            .command("initdb")?
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-instructions"])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| PgError::io("initdb", e))?;
        if !out.status.success() {
            return Err(PgError::Command { program: "initdb".into(), message: String::from_utf8_lossy(&out.stderr).trim().to_owned() });
        }
        let mut c = Cluster::existing(bin, &data, root, on_drop)?;
        c.root = Some(root.to_path_buf());
        Ok(c)
    }

    /// Settings that make a cluster private to this machine and process.
    fn private_settings(&self) -> Vec<(String, String)> {
        vec![
            ("port".into(), self.port.to_string()),
            // Socket only, in a folder only the server account can enter.
            ("listen_addresses".into(), String::new()),
            ("unix_socket_directories".into(), self.socket_dir.display().to_string()),
        ]
    }

    /// Starts the server without waiting for it to accept connections
    /// (recovery may take long); see [`Cluster::wait_ready`].
    pub fn start(&mut self, settings: &[(String, String)]) -> Result<()> {
        // pg_ctl hands -o to a shell: quote each name=value for it.
        let mut opts = String::new();
        for (k, v) in self.private_settings().iter().chain(settings) {
            opts.push_str(" -c ");
            opts.push_str(&shell_quote(&format!("{k}={v}")));
        }
        if let Some((uid, gid)) = server_account() {
            // The log file must be writable by the server account.
            let _ = std::fs::File::create(&self.log_file);
            let _ = std::os::unix::fs::chown(&self.log_file, Some(uid), Some(gid));
        }
        let out = self
            .bin
            .command("pg_ctl")?
            .args(["start", "-W", "-D"])
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&self.log_file)
            .arg("-o")
            .arg(opts)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| PgError::io("pg_ctl", e))?;
        if !out.status.success() {
            return Err(PgError::Command { program: "pg_ctl start".into(), message: format!("{} {}", String::from_utf8_lossy(&out.stderr).trim(), self.log_tail(5)) });
        }
        self.running = true;
        REGISTRY.lock().push((self.bin.program("pg_ctl")?, self.data_dir.clone()));
        Ok(())
    }

    /// Whether the postmaster is alive (from `postmaster.pid`).
    #[must_use]
    pub fn alive(&self) -> bool {
        let Ok(text) = std::fs::read_to_string(self.data_dir.join("postmaster.pid")) else { return false };
        let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()) else { return false };
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    }

    /// Waits until the server accepts connections, or fails with the end of
    /// its log if it stopped.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let started = Instant::now();
        loop {
            if let Ok(mut c) = self.connect("postgres") {
                if c.simple_query("SELECT 1").is_ok() {
                    return Ok(());
                }
            }
            // Give the postmaster a moment to write its pid file first.
            if started.elapsed() > Duration::from_secs(2) && !self.alive() {
                return Err(PgError::Recovery(self.log_tail(3)));
            }
            if Instant::now() > deadline {
                return Err(PgError::Recovery(format!("the server did not become ready in {}s: {}", timeout.as_secs(), self.log_tail(5))));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[must_use]
    pub fn conn_string(&self, dbname: &str) -> String {
        format!("host={} port={} user=postgres dbname={dbname}", self.socket_dir.display(), self.port)
    }

    pub fn connect(&self, dbname: &str) -> Result<postgres::Client> {
        crate::conn::connect(&self.conn_string(dbname), None)
    }

    /// The last lines of the server log that say something.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_file).unwrap_or_default();
        let important: Vec<&str> = text.lines().filter(|l| l.contains("FATAL") || l.contains("ERROR") || l.contains("PANIC")).collect();
        let pick: Vec<&str> = if important.is_empty() { text.lines().collect() } else { important };
        pick[pick.len().saturating_sub(lines)..].join(" | ")
    }

    pub fn stop(&mut self, mode: &str) {
        if !self.running && !self.alive() {
            return;
        }
        if let Ok(mut c) = self.bin.command("pg_ctl") {
            let _ = c.args(["stop", "-w", "-t", "60", "-m", mode, "-D"]).arg(&self.data_dir).stdout(Stdio::null()).stderr(Stdio::null()).status();
        }
        self.running = false;
        REGISTRY.lock().retain(|(_, d)| d != &self.data_dir);
    }

    /// Appends lines to `postgresql.auto.conf` (as the server would).
    pub fn append_auto_conf(&self, lines: &str) -> Result<()> {
        append_file(&self.data_dir.join("postgresql.auto.conf"), lines)
    }
}

/// Quotes `s` for a POSIX shell when it needs it.
#[must_use]
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-=:,%".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub(crate) fn append_file(path: &Path, text: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| PgError::io(path, e))?;
    f.write_all(text.as_bytes()).map_err(|e| PgError::io(path, e))?;
    f.sync_all().map_err(|e| PgError::io(path, e))?;
    if let Some((uid, gid)) = server_account() {
        let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
    Ok(())
}

/// The longest socket path a server can listen on: `sun_path` holds 108
/// bytes with the closing NUL (PostgreSQL refuses longer ones with "could
/// not create any Unix-domain sockets").
const MAX_SOCKET_PATH: usize = 107;

/// Where a cluster working in `work` listens: `work/socket`, unless the
/// socket's full path (`.s.PGSQL.<port>`) would be too long — a drill's
/// scratch folder or a restore target can be deep — then a private folder
/// made under `/tmp` (true in the second value: remove it after).
fn socket_dir_in(work: &Path) -> Result<(PathBuf, bool)> {
    let socket_dir = work.join("socket");
    if socket_dir.join(".s.PGSQL.65535").as_os_str().len() <= MAX_SOCKET_PATH {
        std::fs::create_dir_all(&socket_dir).map_err(|e| PgError::io(&socket_dir, e))?;
        return Ok((socket_dir, false));
    }
    let short = tempfile::Builder::new().prefix("reprise-pg-").tempdir_in("/tmp").map_err(|e| PgError::io("/tmp", e))?;
    Ok((short.keep(), true))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        match self.on_drop {
            OnDrop::Detach => {
                REGISTRY.lock().retain(|(_, d)| d != &self.data_dir);
            }
            OnDrop::Stop => self.stop("fast"),
            OnDrop::StopAndRemove => {
                self.stop("immediate");
                if let Some(root) = &self.root {
                    let _ = std::fs::remove_dir_all(root);
                }
            }
        }
        // A server left running keeps its socket folder.
        if self.on_drop != OnDrop::Detach
            && let Some(dir) = &self.short_socket_dir
        {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_work_folder_gets_a_short_socket_folder_a_drill_in_a_long_scratch_path_could_not_start() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (near, short) = socket_dir_in(tmp.path()).expect("socket dir");
        assert!(!short && near == tmp.path().join("socket") && near.is_dir());
        let deep = tmp.path().join("a-scratch-folder-of-a-drill-somewhere-deep").join("x".repeat(60));
        let (far, short) = socket_dir_in(&deep).expect("socket dir");
        assert!(short && far.starts_with("/tmp") && far.is_dir(), "{}", far.display());
        assert!(far.join(".s.PGSQL.65535").as_os_str().len() <= MAX_SOCKET_PATH);
        std::fs::remove_dir(&far).expect("remove");
    }
}
