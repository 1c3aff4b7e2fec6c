//! Shared harness of the CLI integration tests.
//!
//! * [`TestDir`]: one temporary directory per test (repository, sources,
//!   restore targets and the files cache all live inside it).
//! * [`Reprise`]: runs the real binary with a clean environment (its own
//!   passphrase, cache directory and working directory) and returns exit
//!   code, stdout and stderr.
//! * [`Rng`]: a seeded generator, so that every data set is reproducible.
//! * [`assert_trees_equal`]: compares two directory trees: types, contents,
//!   modes, owners, mtimes (ns), symlink targets and hard-link structure.
//! * Repository helpers: listing objects, flipping bytes, truncating.
#![allow(dead_code, clippy::pedantic)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod emulators;
pub mod fault_proxy;
pub mod pg;

pub const BIN: &str = env!("CARGO_BIN_EXE_reprise");
pub const PASSWORD: &str = "correct horse battery staple";
/// No command of the suite should come near this; a hang fails the test.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(180);

// ---------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------

/// A per-test directory, removed at the end (read-only repository files
/// and directories included).
pub struct TestDir {
    dir: Option<tempfile::TempDir>,
}

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let dir = tempfile::Builder::new().prefix(&format!("reprise-it-{name}-")).tempdir().expect("create temp dir");
        TestDir { dir: Some(dir) }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("alive").path()
    }

    pub fn join(&self, p: impl AsRef<Path>) -> PathBuf {
        self.path().join(p)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            make_writable(d.path());
            let _ = d.close();
        }
    }
}

/// Makes every directory under `root` writable so it can be removed.
pub fn make_writable(root: &Path) {
    let Ok(md) = fs::symlink_metadata(root) else { return };
    if md.is_dir() {
        let _ = fs::set_permissions(root, fs::Permissions::from_mode(0o755));
        if let Ok(rd) = fs::read_dir(root) {
            for e in rd.flatten() {
                make_writable(&e.path());
            }
        }
    }
}

/// Whether every test must run (`REPRISE_TEST_REQUIRE_ALL` set, as
/// scripts/test-all does): then a missing component fails the test instead
/// of skipping it.
pub fn require_all() -> bool {
    std::env::var_os("REPRISE_TEST_REQUIRE_ALL").is_some_and(|v| !v.is_empty() && v != "0")
}

/// A test that cannot run here (a component is not installed, the kernel
/// refuses a mount, ...). libtest has no "skipped" outcome: a test that
/// returns early is reported as passed, so a skip must never be silent.
/// Under [`require_all`] (CI) this panics: the run fails and names what to
/// install. Otherwise it writes `SKIPPED <test>: <reason>` straight to the
/// process's stderr, past libtest's output capture (which only takes the
/// `print!` family), so that plain `cargo test` shows it; the caller then
/// returns.
#[track_caller]
pub fn skip(reason: &str) {
    let current = std::thread::current();
    let test = current.name().unwrap_or("<unnamed test>");
    assert!(!require_all(), "{test} cannot run: {reason} (REPRISE_TEST_REQUIRE_ALL is set: scripts/test-all installs what the tests need)");
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

pub fn is_root() -> bool {
    // No unsafe code in this crate: the owner of a fresh file is the euid.
    let probe = std::env::temp_dir().join(format!("reprise-it-euid-{}", std::process::id()));
    let _ = fs::write(&probe, b"");
    let uid = fs::metadata(&probe).map(|m| m.uid()).unwrap_or(1);
    let _ = fs::remove_file(&probe);
    uid == 0
}

// ---------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------

/// The outcome of one command.
#[derive(Debug, Clone)]
pub struct Out {
    pub cmdline: String,
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Out {
    fn from(cmdline: String, status: ExitStatus, stdout: Vec<u8>, stderr: Vec<u8>, elapsed: Duration) -> Out {
        Out {
            cmdline,
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            elapsed,
        }
    }

    pub fn describe(&self) -> String {
        format!("`{}` exited {}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.cmdline, self.code, self.stdout, self.stderr)
    }

    /// Asserts exit code 0.
    #[track_caller]
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {}", self.describe());
        self
    }

    /// Asserts a given exit code.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Out {
        assert_eq!(self.code, code, "unexpected exit code: {}", self.describe());
        self
    }

    /// Every JSON document printed on stdout (a failing command prints its
    /// report, then an `{"error": ...}` object).
    #[track_caller]
    pub fn json_values(&self) -> Vec<Value> {
        serde_json::Deserializer::from_str(&self.stdout)
            .into_iter::<Value>()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }

    /// The first JSON document on stdout.
    #[track_caller]
    pub fn json(&self) -> Value {
        self.json_values().into_iter().next().unwrap_or_else(|| panic!("no JSON on stdout: {}", self.describe()))
    }

    /// Asserts the error contract: exactly one line on stderr, starting with
    /// `reprise: `.
    #[track_caller]
    pub fn assert_one_line_error(&self) {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(lines.len() == 1 && lines[0].starts_with("reprise: "), "stderr must be exactly one line starting with 'reprise: ': {}", self.describe());
    }
}

/// Waits for a child, reading its pipes, killing it after `timeout`.
pub fn wait_output(mut child: Child, cmdline: String, started: Instant, timeout: Duration) -> Out {
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut v);
        }
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{cmdline}` did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let elapsed = started.elapsed();
    let stdout = t_out.join().expect("stdout reader");
    let stderr = t_err.join().expect("stderr reader");
    Out::from(cmdline, status, stdout, stderr, elapsed)
}

/// Runs the binary against one repository with a controlled environment.
#[derive(Debug, Clone)]
pub struct Reprise {
    pub repo: PathBuf,
    pub cache: PathBuf,
    pub cwd: PathBuf,
    pub password: Option<OsString>,
    pub env: Vec<(String, Option<OsString>)>,
    /// A command running longer fails the test (and is killed).
    pub timeout: Duration,
}

impl Reprise {
    /// A repository at `work/repo`, cache at `work/cache`, run from `work`.
    pub fn new(work: &Path) -> Reprise {
        Reprise::at(work, work.join("repo"))
    }

    pub fn at(work: &Path, repo: PathBuf) -> Reprise {
        Reprise { repo, cache: work.join("cache"), cwd: work.to_owned(), password: Some(PASSWORD.into()), env: Vec::new(), timeout: COMMAND_TIMEOUT }
    }

    pub fn with_password(&self, p: impl Into<OsString>) -> Reprise {
        Reprise { password: Some(p.into()), ..self.clone() }
    }

    pub fn without_password(&self) -> Reprise {
        Reprise { password: None, ..self.clone() }
    }

    pub fn with_env(&self, k: &str, v: impl Into<OsString>) -> Reprise {
        let mut r = self.clone();
        r.env.push((k.to_owned(), Some(v.into())));
        r
    }

    pub fn with_timeout(&self, timeout: Duration) -> Reprise {
        Reprise { timeout, ..self.clone() }
    }

    pub fn with_cache(&self, cache: PathBuf) -> Reprise {
        Reprise { cache, ..self.clone() }
    }

    /// A command with `--repo` set and every inherited `REPRISE_*` removed.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> (Command, String) {
        let mut c = Command::new(BIN);
        for (k, _) in std::env::vars_os() {
            if k.as_bytes().starts_with(b"REPRISE_") {
                c.env_remove(&k);
            }
        }
        c.env("XDG_CACHE_HOME", &self.cache).env("HOME", &self.cwd).env_remove("RUST_LOG").current_dir(&self.cwd);
        if let Some(p) = &self.password {
            c.env("REPRISE_PASSWORD", p);
        }
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c.arg("--repo").arg(&self.repo);
        let mut line = format!("reprise --repo {}", self.repo.display());
        for a in args {
            c.arg(a.as_ref());
            line.push(' ');
            line.push_str(&a.as_ref().to_string_lossy());
        }
        (c, line)
    }

    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Out {
        self.run_input(args, None)
    }

    pub fn run_input<S: AsRef<OsStr>>(&self, args: &[S], input: Option<&[u8]>) -> Out {
        let (mut c, line) = self.command(args);
        c.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = c.spawn().expect("spawn reprise");
        let writer = input.map(|data| {
            let mut stdin = child.stdin.take().expect("stdin");
            let data = data.to_vec();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            })
        });
        let out = wait_output(child, line, started, self.timeout);
        if let Some(w) = writer {
            let _ = w.join();
        }
        out
    }

    /// Starts a command and returns the child (stdout and stderr piped).
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> (Child, String) {
        let (mut c, line) = self.command(args);
        c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        (c.spawn().expect("spawn reprise"), line)
    }

    /// `init` with the fast KDF every test uses.
    pub fn init(&self) -> Out {
        self.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).ok()
    }

    /// `backup --json ARGS`, asserting success; returns the outcome object.
    #[track_caller]
    pub fn backup<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        let mut all: Vec<OsString> = vec!["--json".into(), "backup".into()];
        all.extend(args.iter().map(|a| a.as_ref().to_owned()));
        self.run(&all).ok().json()
    }

    /// `backup --json --path P` for each path.
    #[track_caller]
    pub fn backup_paths(&self, paths: &[&Path]) -> Value {
        let mut args: Vec<OsString> = Vec::new();
        for p in paths {
            args.push("--path".into());
            args.push(p.as_os_str().to_owned());
        }
        self.backup(&args)
    }

    /// `snapshots --json`, oldest first.
    #[track_caller]
    pub fn snapshots(&self) -> Vec<Value> {
        self.run(&["--json", "snapshots"]).ok().json().as_array().expect("array").clone()
    }

    /// `restore WHAT --to TARGET [extra]`.
    pub fn restore<S: AsRef<OsStr>>(&self, what: &str, to: &Path, extra: &[S]) -> Out {
        let mut all: Vec<OsString> = vec!["restore".into(), what.into(), "--to".into(), to.as_os_str().to_owned()];
        all.extend(extra.iter().map(|a| a.as_ref().to_owned()));
        self.run(&all)
    }

    /// `check --json [extra]`.
    pub fn check<S: AsRef<OsStr>>(&self, extra: &[S]) -> Out {
        let mut all: Vec<OsString> = vec!["--json".into(), "check".into()];
        all.extend(extra.iter().map(|a| a.as_ref().to_owned()));
        self.run(&all)
    }
}

/// `ID:path` for restoring the directory `dir` (absolute) of a snapshot
/// straight into the target.
pub fn snap_path(id: &str, dir: &Path) -> String {
    let rel = dir.strip_prefix("/").unwrap_or(dir);
    format!("{id}:{}", rel.to_str().expect("test paths are UTF-8"))
}

/// The snapshot id of a backup outcome.
pub fn id_of(outcome: &Value) -> String {
    outcome["id"].as_str().expect("id").to_owned()
}

pub fn summary(outcome: &Value, field: &str) -> u64 {
    outcome["header"]["summary"][field].as_u64().unwrap_or_else(|| panic!("summary.{field} missing in {outcome}"))
}

// ---------------------------------------------------------------------------
// Seeded data
// ---------------------------------------------------------------------------

/// SplitMix64: small, fast, reproducible.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let v = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&v[..n]);
    }

    /// Incompressible bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.fill(&mut v);
        v
    }

    /// Compressible, text-like bytes (words from a small vocabulary).
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 16] =
            ["patient", "record", "signed", "consent", "dose", "mg", "ward", "night", "scan", "report", "the", "of", "and", "2026", "\n", "id"];
        let mut v = Vec::with_capacity(n + 16);
        while v.len() < n {
            v.extend_from_slice(WORDS[self.below(16) as usize].as_bytes());
            v.push(b' ');
        }
        v.truncate(n);
        v
    }

    /// Half random, half text: realistic compression.
    pub fn mixed(&mut self, n: usize) -> Vec<u8> {
        let mut v = self.bytes(n / 2);
        v.extend(self.text(n - n / 2));
        v
    }
}

pub fn write_file(path: &Path, data: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("mkdir");
    }
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Writes `size` random bytes in 1 MiB pieces (no huge buffer).
pub fn write_random_file(path: &Path, rng: &mut Rng, size: usize) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).expect("mkdir");
    }
    let mut f = fs::File::create(path).expect("create");
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        let n = left.min(buf.len());
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write");
        left -= n;
    }
}

pub fn set_mtime_ns(path: &Path, ns: i64) {
    let t = filetime::FileTime::from_unix_time(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32);
    filetime::set_symlink_file_times(path, t, t).unwrap_or_else(|e| panic!("set mtime of {}: {e}", path.display()));
}

pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

pub fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("run mkfifo");
    assert!(st.success(), "mkfifo {}", path.display());
}

/// Gives every entry under `root` (root included) a distinct, reproducible
/// mtime with nanoseconds; directories last, deepest first, so that
/// nothing disturbs them afterwards.
pub fn stamp_mtimes(root: &Path, rng: &mut Rng) {
    let mut dirs = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let p = e.expect("entry").path();
            let md = fs::symlink_metadata(&p).expect("lstat");
            if md.is_dir() {
                stack.push(p);
            } else {
                // 2001..2024, with nanoseconds.
                set_mtime_ns(&p, (rng.range(978_307_200, 1_704_067_200) as i64) * 1_000_000_000 + rng.below(1_000_000_000) as i64);
            }
        }
        dirs.push(d);
    }
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        set_mtime_ns(&d, (rng.range(978_307_200, 1_704_067_200) as i64) * 1_000_000_000 + rng.below(1_000_000_000) as i64);
    }
}

/// Waits until every entry under `root` last changed (ctime) more than
/// 2 s ago. The files cache does not trust "racily clean" files — changed
/// within 2 s of a backup's start — so tests that expect an unchanged file
/// to be skipped must let their freshly written data settle first.
pub fn settle(root: &Path) {
    let mut newest = 0i128;
    let mut stack = vec![root.to_owned()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        newest = newest.max(i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()));
        if md.is_dir() {
            for e in fs::read_dir(&p).unwrap().flatten() {
                stack.push(e.path());
            }
        }
    }
    let settled = newest + 2_200_000_000;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128;
    if settled > now {
        std::thread::sleep(Duration::from_nanos((settled - now) as u64));
    }
}

/// A directory of `count` random files of sizes in `lo..hi`, named
/// `f000`..; returns their paths.
pub fn random_files(dir: &Path, rng: &mut Rng, count: usize, lo: usize, hi: usize) -> Vec<PathBuf> {
    fs::create_dir_all(dir).expect("mkdir");
    (0..count)
        .map(|i| {
            let p = dir.join(format!("f{i:03}"));
            let n = rng.range(lo as u64, hi as u64) as usize;
            write_random_file(&p, rng, n);
            p
        })
        .collect()
}

/// The rich tree of the round-trip tests: nested and empty directories,
/// empty files, a 20 MB file, symlinks (relative, absolute, dangling, to a
/// directory, non-UTF-8 target), hard links (within one directory, across
/// directories, and to a file outside the tree), non-UTF-8 names, odd modes
/// (0600, 0755, 0400, setuid, setgid and sticky directories), files
/// owned by other users (as root), and explicit nanosecond mtimes — one of
/// them before 1970. (FIFOs have their own test: see roundtrip.rs.)
pub fn build_rich_tree(root: &Path, outside: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    fs::create_dir_all(root).expect("mkdir root");
    write_random_file(&root.join("big.bin"), &mut rng, 20 * 1000 * 1000);
    write_file(&root.join("empty"), b"");
    write_file(&root.join("docs/readme.txt"), &rng.text(5_000));
    write_file(&root.join("docs/report.pdf"), &rng.mixed(300_000));
    write_file(&root.join("docs/a/b/c/d/deep.txt"), &rng.text(1_234));
    write_file(&root.join("docs/a/b/c/empty-in-deep"), b"");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("docs/a/empty-nested/also-empty")).unwrap();
    for i in 0..40 {
        write_file(&root.join(format!("many/small-{i:02}.dat")), &{
            let n = rng.range(1, 40_000) as usize;
            rng.mixed(n)
        });
    }
    // Two files with the same content (dedup) and one sharing a prefix.
    let shared = rng.bytes(200_000);
    write_file(&root.join("dup/one"), &shared);
    write_file(&root.join("dup/two"), &shared);
    let mut prefix = shared.clone();
    prefix.extend(rng.bytes(70_000));
    write_file(&root.join("dup/three"), &prefix);

    // Non-UTF-8 names (Latin-1 'é', a lone 0xff) and a name with spaces/newline.
    let latin1 = root.join(OsStr::from_bytes(b"caf\xe9"));
    write_file(&latin1, b"latin-1 name\n");
    let weird_dir = root.join(OsStr::from_bytes(b"dir-\xff\xfe"));
    write_file(&weird_dir.join(OsStr::from_bytes(b"inner-\x80.txt")), b"inside a non-UTF-8 directory\n");
    write_file(&root.join("name with spaces\nand newline"), b"odd name\n");
    write_file(&root.join("unicode-\u{1F600}-\u{00E9}.txt"), "utf-8 name\n".as_bytes());

    // Symlinks.
    std::os::unix::fs::symlink("docs/readme.txt", root.join("link-rel")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname-that-does-not-exist", root.join("link-abs-dangling")).unwrap();
    std::os::unix::fs::symlink("docs/a", root.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"target-\xe9-\xff"), root.join("link-non-utf8")).unwrap();
    std::os::unix::fs::symlink("../../empty", root.join("docs/a/link-up")).unwrap();

    // Hard links: three names across directories, a pair in one directory,
    // and a file whose other link is outside the tree.
    write_file(&root.join("hard/original"), &rng.mixed(100_000));
    fs::create_dir_all(root.join("hard/sub")).unwrap();
    fs::hard_link(root.join("hard/original"), root.join("hard/sub/second")).unwrap();
    fs::hard_link(root.join("hard/original"), root.join("docs/third-name")).unwrap();
    write_file(&root.join("hard/pair-a"), b"pair content\n");
    fs::hard_link(root.join("hard/pair-a"), root.join("hard/pair-b")).unwrap();
    write_file(&root.join("hard/shared-with-outside"), b"one link is outside the backup\n");
    fs::create_dir_all(outside).unwrap();
    fs::hard_link(root.join("hard/shared-with-outside"), outside.join("other-name")).unwrap();
    // Empty files hard-linked.
    write_file(&root.join("hard/empty-a"), b"");
    fs::hard_link(root.join("hard/empty-a"), root.join("hard/empty-b")).unwrap();

    // Modes.
    write_file(&root.join("modes/private-0600"), b"secret\n");
    chmod(&root.join("modes/private-0600"), 0o600);
    write_file(&root.join("modes/script-0755"), b"#!/bin/sh\necho hi\n");
    chmod(&root.join("modes/script-0755"), 0o755);
    write_file(&root.join("modes/readonly-0400"), b"read only\n");
    chmod(&root.join("modes/readonly-0400"), 0o400);
    write_file(&root.join("modes/setuid-4755"), b"setuid\n");
    fs::create_dir_all(root.join("modes/setgid-dir")).unwrap();
    write_file(&root.join("modes/setgid-dir/inside"), b"in setgid dir\n");
    fs::create_dir_all(root.join("modes/sticky-dir")).unwrap();
    fs::create_dir_all(root.join("modes/private-dir-0700")).unwrap();
    write_file(&root.join("modes/private-dir-0700/x"), b"x\n");
    if is_root() {
        write_file(&root.join("modes/owned-by-1234"), b"someone else's\n");
        std::os::unix::fs::lchown(root.join("modes/owned-by-1234"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("link-rel"), Some(4321), Some(8765)).unwrap();
        fs::create_dir_all(root.join("modes/dir-owned-by-2000")).unwrap();
        std::os::unix::fs::lchown(root.join("modes/dir-owned-by-2000"), Some(2000), Some(2000)).unwrap();
    }
    stamp_mtimes(root, &mut rng);
    // Before 1970, with nanoseconds.
    set_mtime_ns(&root.join("docs/readme.txt"), -86_400 * 365 * 3 * 1_000_000_000 + 123_456_789);
    // Modes last (chown clears set-id bits).
    chmod(&root.join("modes/setuid-4755"), 0o4755);
    chmod(&root.join("modes/setgid-dir"), 0o2775);
    chmod(&root.join("modes/sticky-dir"), 0o1777);
    chmod(&root.join("modes/private-dir-0700"), 0o700);
    chmod(&root.join("empty-dir"), 0o750);
}

// ---------------------------------------------------------------------------
// Comparing trees
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Symlink(Vec<u8>),
    Fifo,
    Other(u32),
}

#[derive(Debug, Clone)]
struct Entry {
    kind: Kind,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime_ns: i128,
    size: u64,
    ino: u64,
}

fn scan(root: &Path) -> BTreeMap<Vec<u8>, Entry> {
    fn go(base: &Path, rel: &[u8], out: &mut BTreeMap<Vec<u8>, Entry>) {
        let path = if rel.is_empty() { base.to_owned() } else { base.join(OsStr::from_bytes(rel)) };
        let md = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let ft = md.file_type();
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(&path).unwrap().into_os_string().into_vec())
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Other(md.mode() & 0o170000)
        };
        out.insert(
            rel.to_vec(),
            Entry {
                kind: kind.clone(),
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
                size: if ft.is_file() { md.len() } else { 0 },
                ino: md.ino(),
            },
        );
        if kind == Kind::Dir {
            let mut names: Vec<Vec<u8>> = fs::read_dir(&path).unwrap().map(|e| e.unwrap().file_name().into_vec()).collect();
            names.sort();
            for n in names {
                let mut r = rel.to_vec();
                if !r.is_empty() {
                    r.push(b'/');
                }
                r.extend_from_slice(&n);
                go(base, &r, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, b"", &mut out);
    out
}

/// For each file, the other paths of the tree that are the same inode.
fn link_groups(tree: &BTreeMap<Vec<u8>, Entry>) -> HashMap<Vec<u8>, BTreeSet<Vec<u8>>> {
    let mut by_ino: HashMap<u64, BTreeSet<Vec<u8>>> = HashMap::new();
    for (p, e) in tree {
        if e.kind == Kind::File {
            by_ino.entry(e.ino).or_default().insert(p.clone());
        }
    }
    let mut out = HashMap::new();
    for (p, e) in tree {
        if e.kind == Kind::File {
            out.insert(p.clone(), by_ino[&e.ino].clone());
        }
    }
    out
}

fn show(p: &[u8]) -> String {
    if p.is_empty() { "<root>".into() } else { String::from_utf8_lossy(p).into_owned() }
}

/// The first difference between the contents of two files, or `None` if
/// they are equal. A file that cannot be read is a difference, never a
/// match: two unreadable files (a restore that left them mode 000 to a
/// non-root reader, or a path that vanished) prove nothing.
pub fn content_difference(a: &Path, b: &Path) -> Option<String> {
    let (mut fa, mut fb) = match (fs::File::open(a), fs::File::open(b)) {
        (Ok(fa), Ok(fb)) => (fa, fb),
        (ra, rb) => {
            let why = |r: &std::io::Result<fs::File>, p: &Path| r.as_ref().err().map(|e| format!("{} cannot be read: {e}", p.display()));
            return Some([why(&ra, a), why(&rb, b)].into_iter().flatten().collect::<Vec<_>>().join("; "));
        }
    };
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        let (na, nb) = match (read_full(&mut fa, &mut ba), read_full(&mut fb, &mut bb)) {
            (Ok(na), Ok(nb)) => (na, nb),
            (ra, rb) => return Some(format!("read error at byte {offset}: {}", [ra.err(), rb.err()].into_iter().flatten().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))),
        };
        if ba[..na] != bb[..nb] {
            let i = ba[..na].iter().zip(&bb[..nb]).position(|(x, y)| x != y).unwrap_or(na.min(nb));
            return Some(format!("contents differ at byte {}", offset + i as u64));
        }
        if na == 0 {
            return None;
        }
        offset += na as u64;
    }
}

fn read_full(f: &mut fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Options of [`compare_trees`].
#[derive(Debug, Clone, Default)]
pub struct Compare {
    /// Also compare the roots' own mode, owner and mtime.
    pub root_meta: bool,
    /// Compare owners (uid, gid).
    pub owners: bool,
    /// Relative paths (bytes) expected in `a` but absent from `b`.
    pub missing_ok: BTreeSet<Vec<u8>>,
}

/// Every difference between trees `a` (expected) and `b` (actual).
pub fn compare_trees(a: &Path, b: &Path, opts: &Compare) -> Vec<String> {
    let ta = scan(a);
    let tb = scan(b);
    let mut diffs = Vec::new();
    for (p, ea) in &ta {
        let Some(eb) = tb.get(p) else {
            if !opts.missing_ok.contains(p) {
                diffs.push(format!("{}: missing from {}", show(p), b.display()));
            }
            continue;
        };
        if opts.missing_ok.contains(p) {
            diffs.push(format!("{}: expected to be absent from {}", show(p), b.display()));
        }
        if ea.kind != eb.kind {
            diffs.push(format!("{}: type {:?} != {:?}", show(p), ea.kind, eb.kind));
            continue;
        }
        let is_root = p.is_empty();
        if is_root && !opts.root_meta {
            continue;
        }
        // Symlink permission bits are meaningless on Linux.
        if !matches!(ea.kind, Kind::Symlink(_)) && ea.mode != eb.mode {
            diffs.push(format!("{}: mode {:04o} != {:04o}", show(p), ea.mode, eb.mode));
        }
        if opts.owners && (ea.uid, ea.gid) != (eb.uid, eb.gid) {
            diffs.push(format!("{}: owner {}:{} != {}:{}", show(p), ea.uid, ea.gid, eb.uid, eb.gid));
        }
        if ea.mtime_ns != eb.mtime_ns {
            diffs.push(format!("{}: mtime {} != {} (ns)", show(p), ea.mtime_ns, eb.mtime_ns));
        }
        if ea.kind == Kind::File {
            if ea.size != eb.size {
                diffs.push(format!("{}: size {} != {}", show(p), ea.size, eb.size));
            } else if let Some(d) = content_difference(&a.join(OsStr::from_bytes(p)), &b.join(OsStr::from_bytes(p))) {
                diffs.push(format!("{}: {d}", show(p)));
            }
        }
    }
    for p in tb.keys() {
        if !ta.contains_key(p) {
            diffs.push(format!("{}: unexpected in {}", show(p), b.display()));
        }
    }
    let (la, lb) = (link_groups(&ta), link_groups(&tb));
    for (p, ga) in &la {
        if let Some(gb) = lb.get(p)
            && ga != gb
        {
            let f = |g: &BTreeSet<Vec<u8>>| g.iter().map(|x| show(x)).collect::<Vec<_>>().join(", ");
            diffs.push(format!("{}: hard links [{}] != [{}]", show(p), f(ga), f(gb)));
        }
    }
    diffs
}

/// Panics with every difference between `a` (expected) and `b` (actual):
/// types, contents, modes, owners (as root), mtimes, symlink targets, hard
/// links. The roots' own metadata is compared too.
#[track_caller]
pub fn assert_trees_equal(a: &Path, b: &Path) {
    assert_trees_equal_with(a, b, &Compare { root_meta: true, owners: is_root(), ..Compare::default() });
}

#[track_caller]
pub fn assert_trees_equal_with(a: &Path, b: &Path, opts: &Compare) {
    let d = compare_trees(a, b, opts);
    if !d.is_empty() {
        let n = d.len();
        let shown: Vec<_> = d.into_iter().take(40).collect();
        panic!("trees {} and {} differ ({n} difference(s)):\n  {}", a.display(), b.display(), shown.join("\n  "));
    }
}

/// Whether two files are both readable and hold the same bytes.
pub fn files_equal(a: &Path, b: &Path) -> bool {
    content_difference(a, b).is_none()
}

// ---------------------------------------------------------------------------
// Repository objects
// ---------------------------------------------------------------------------

/// Every file under the repository (relative path → size, inode, mtime):
/// to prove a command wrote nothing.
pub fn repo_listing(repo: &Path) -> BTreeMap<PathBuf, (u64, u64, i64, i64)> {
    let mut out = BTreeMap::new();
    if !repo.exists() {
        return out;
    }
    let mut stack = vec![repo.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(repo).unwrap().to_owned();
            if md.is_dir() {
                stack.push(p);
                out.insert(rel, (0, md.ino(), 0, 0));
            } else {
                out.insert(rel, (md.len(), md.ino(), md.mtime(), md.mtime_nsec()));
            }
        }
    }
    out
}

/// Object files of one kind, as repository-relative paths
/// (`data/ab/abcd…`, `index/…`, `snapshots/…`, `keys/…`), sorted.
pub fn objects(repo: &Path, dir: &str) -> Vec<String> {
    let mut out = Vec::new();
    let base = repo.join(dir);
    let Ok(rd) = fs::read_dir(&base) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            for f in fs::read_dir(&p).unwrap().flatten() {
                out.push(format!("{dir}/{}/{}", e.file_name().to_string_lossy(), f.file_name().to_string_lossy()));
            }
        } else {
            out.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

pub fn packs(repo: &Path) -> Vec<String> {
    objects(repo, "data")
}

pub fn size_of(repo: &Path, object: &str) -> u64 {
    fs::metadata(repo.join(object)).unwrap().len()
}

/// Runs `f` on a repository file made writable, then makes it 0444 again.
pub fn edit_object(repo: &Path, object: &str, f: impl FnOnce(&Path)) {
    let p = repo.join(object);
    let md = fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert_eq!(md.mode() & 0o222, 0, "{object} should be read-only (mode {:o})", md.mode() & 0o7777);
    chmod(&p, 0o644);
    f(&p);
    chmod(&p, 0o444);
}

/// XORs the byte at `offset` with 0xff.
pub fn flip_byte(repo: &Path, object: &str, offset: u64) {
    edit_object(repo, object, |p| {
        let mut bytes = fs::read(p).unwrap();
        bytes[offset as usize] ^= 0xff;
        fs::write(p, bytes).unwrap();
    });
}

pub fn truncate_object(repo: &Path, object: &str, len: u64) {
    edit_object(repo, object, |p| {
        fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len).unwrap();
    });
}

pub fn delete_object(repo: &Path, object: &str) {
    fs::remove_file(repo.join(object)).unwrap_or_else(|e| panic!("rm {object}: {e}"));
}

/// Sets the repository's target pack size (a documented writer parameter
/// of `config`, section 3 of docs/FORMAT.md): small packs give a backup
/// many durable points, which the crash and corruption tests need.
pub fn set_pack_size(repo: &Path, bytes: u64) {
    edit_object(repo, "config", |p| {
        let mut v: Value = serde_json::from_slice(&fs::read(p).unwrap()).unwrap();
        v["pack_size"] = Value::from(bytes);
        fs::write(p, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    });
}

/// Does any file under `dir` contain `needle`?
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let md = fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() {
                let data = fs::read(&p).unwrap();
                if data.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

/// Parses `reprise: damaged, not restored: PATH: reason` lines.
pub fn damaged_paths(stderr: &str) -> BTreeSet<String> {
    stderr.lines().filter_map(|l| l.strip_prefix("reprise: damaged, not restored: ")).map(|rest| rest.split(": ").next().unwrap_or(rest).to_owned()).collect()
}

/// The `object` of every problem in a `check --json` report.
pub fn problem_objects(report: &Value) -> BTreeSet<String> {
    report["problems"].as_array().expect("problems").iter().map(|p| p["object"].as_str().expect("object").to_owned()).collect()
}
