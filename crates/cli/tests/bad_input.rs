//! Wrong input gives the documented exit code and exactly one line on
//! stderr starting with `reprise: `, and changes nothing it should not.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A repository with one small snapshot of `work/src`.
fn repo_with_snapshot(t: &TestDir) -> (Reprise, PathBuf, String) {
    let r = Reprise::new(t.path());
    r.init();
    let src = t.join("src");
    let mut rng = Rng::new(42);
    random_files(&src, &mut rng, 5, 1_000, 50_000);
    write_file(&src.join("sub/note.txt"), b"note\n");
    stamp_mtimes(&src, &mut rng);
    let id = id_of(&r.backup_paths(&[&src]));
    (r, src, id)
}

#[test]
fn wrong_passphrase_exits_4() {
    let t = TestDir::new("wrongpass");
    let (r, src, id) = repo_with_snapshot(&t);
    for args in [vec!["snapshots"], vec!["ls", id.as_str()], vec!["check"], vec!["backup", "--path", src.to_str().unwrap()]] {
        let out = r.with_password("not the passphrase").run(&args).expect_code(4);
        out.assert_one_line_error();
        assert!(!out.stderr.contains("not the passphrase"), "the passphrase must not be echoed: {}", out.describe());
    }
    // The same through --password-file, and REPRISE_PASSWORD_FILE.
    let pf = t.join("pass");
    fs::write(&pf, "still wrong\n").unwrap();
    r.without_password().run(&["--password-file", pf.to_str().unwrap(), "snapshots"]).expect_code(4).assert_one_line_error();
    r.without_password().with_env("REPRISE_PASSWORD_FILE", &pf).run(&["snapshots"]).expect_code(4).assert_one_line_error();
    // The right one from a file (first line only, CRLF tolerated) works.
    fs::write(&pf, format!("{PASSWORD}\r\nignored second line\n")).unwrap();
    r.without_password().run(&["--password-file", pf.to_str().unwrap(), "snapshots"]).ok();
    // A passphrase file that does not exist: not found; an empty one: usage.
    r.without_password().run(&["--password-file", t.join("nope").to_str().unwrap(), "snapshots"]).expect_code(3).assert_one_line_error();
    fs::write(&pf, "").unwrap();
    r.without_password().run(&["--password-file", pf.to_str().unwrap(), "snapshots"]).expect_code(2).assert_one_line_error();
    // No passphrase at all and no terminal: usage, not a hang.
    r.without_password().run(&["snapshots"]).expect_code(2).assert_one_line_error();
}

#[test]
fn missing_repository_exits_3() {
    let t = TestDir::new("norepo");
    let r = Reprise::at(t.path(), t.join("does/not/exist"));
    let src = t.join("src.txt");
    fs::write(&src, b"x\n").unwrap();
    for args in [vec!["snapshots"], vec!["check"], vec!["stats"], vec!["backup", "--path", src.to_str().unwrap()], vec!["restore", "latest", "--to", "out"]] {
        r.run(&args).expect_code(3).assert_one_line_error();
    }
    assert!(!t.join("does").exists(), "nothing may be created for a missing repository");
    assert!(!t.join("out").exists());
    // An empty directory is not a repository either.
    fs::create_dir(t.join("empty")).unwrap();
    Reprise::at(t.path(), t.join("empty")).run(&["snapshots"]).expect_code(3).assert_one_line_error();
    assert_eq!(fs::read_dir(t.join("empty")).unwrap().count(), 0);
}

#[test]
fn init_on_an_existing_repository_exits_2() {
    let t = TestDir::new("reinit");
    let (r, _, _) = repo_with_snapshot(&t);
    let before = repo_listing(&r.repo);
    let out = r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(2);
    out.assert_one_line_error();
    // Even with another passphrase: nothing is touched.
    r.with_password("other").run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(2).assert_one_line_error();
    assert_eq!(repo_listing(&r.repo), before);
    r.run(&["snapshots"]).ok();
}

#[test]
fn missing_source_path_exits_3_and_writes_nothing() {
    let t = TestDir::new("nosource");
    let (r, src, _) = repo_with_snapshot(&t);
    let before = repo_listing(&r.repo);
    let missing = t.join("no/such/dir");
    r.run(&["backup", "--path", missing.to_str().unwrap()]).expect_code(3).assert_one_line_error();
    // One good path and one missing: still refused before anything is read.
    let out = r.run(&["backup", "--path", src.to_str().unwrap(), "--path", missing.to_str().unwrap()]).expect_code(3);
    out.assert_one_line_error();
    assert!(out.stderr.contains("no/such/dir"), "{}", out.describe());
    assert_eq!(repo_listing(&r.repo), before, "a refused backup must not write to the repository");
    assert_eq!(r.snapshots().len(), 1);
    // Nothing to back up at all: usage.
    r.run(&["backup"]).expect_code(2).assert_one_line_error();
    assert_eq!(repo_listing(&r.repo), before);
}

/// The account a root test drops to, so that file permissions apply to
/// reprise (root ignores mode 0555). `nobody` on Debian.
const NOBODY: u32 = 65534;

#[test]
fn restore_target_without_permission_exits_5() {
    let t = TestDir::new("noperm");
    let (r, src, id) = repo_with_snapshot(&t);
    let locked = t.join("locked");
    fs::create_dir(&locked).unwrap();
    write_file(&locked.join("existing/keep"), b"keep\n");
    fs::create_dir(locked.join("empty-target")).unwrap();
    chmod(&locked.join("empty-target"), 0o555);
    chmod(&locked, 0o555);
    // As root, reprise runs as `nobody`: it may read the repository (and
    // write its own cache) but not write into `locked`. As another user,
    // mode 0555 is enough.
    let r = if is_root() {
        chmod(t.path(), 0o755);
        let cache = t.join("nobody-cache");
        fs::create_dir(&cache).unwrap();
        std::os::unix::fs::chown(&cache, Some(NOBODY), Some(NOBODY)).unwrap();
        r.with_cache(cache)
    } else {
        r
    };
    let restore = |target: &Path| {
        let args: Vec<std::ffi::OsString> = vec!["restore".into(), snap_path(&id, &src).into(), "--to".into(), target.into()];
        let (mut c, line) = r.command(&args);
        if is_root() {
            use std::os::unix::process::CommandExt;
            c.uid(NOBODY).gid(NOBODY);
        }
        let child = c.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        wait_output(child, line, std::time::Instant::now(), COMMAND_TIMEOUT)
    };
    let before = repo_listing(&locked);
    // A new target in a directory we may not write to.
    let out = restore(&locked.join("new-target")).expect_code(5);
    out.assert_one_line_error();
    assert!(out.stderr.contains("new-target"), "{}", out.describe());
    // An existing, empty target we may not write into.
    let out = restore(&locked.join("empty-target")).expect_code(5);
    out.assert_one_line_error();
    assert!(out.stderr.contains("empty-target"), "{}", out.describe());
    assert_eq!(repo_listing(&locked), before);
    // The same restore into a folder of its own works for the same
    // account: the refusals above were the target's permissions.
    let own = t.join("own");
    fs::create_dir(&own).unwrap();
    if is_root() {
        std::os::unix::fs::chown(&own, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    restore(&own.join("target")).ok();
    assert_eq!(fs::read(own.join("target/sub/note.txt")).unwrap(), b"note\n");
}

#[test]
fn restore_target_that_is_a_file_exits_2() {
    let t = TestDir::new("targetfile");
    let (r, src, id) = repo_with_snapshot(&t);
    let file = t.join("a-file");
    fs::write(&file, b"I am a file\n").unwrap();
    r.restore(&snap_path(&id, &src), &file, &[] as &[&str]).expect_code(2).assert_one_line_error();
    assert_eq!(fs::read(&file).unwrap(), b"I am a file\n");
    r.restore(&snap_path(&id, &src), &file, &["--overwrite"]).expect_code(2).assert_one_line_error();
    assert_eq!(fs::read(&file).unwrap(), b"I am a file\n");
    // A target below a file cannot be created: an error, one line.
    let out = r.restore(&snap_path(&id, &src), &file.join("below"), &[] as &[&str]);
    assert_ne!(out.code, 0, "{}", out.describe());
    out.assert_one_line_error();
}

#[test]
fn non_empty_target_needs_overwrite() {
    let t = TestDir::new("nonempty");
    let (r, src, id) = repo_with_snapshot(&t);
    let target = t.join("target");
    write_file(&target.join("keep.txt"), b"mine\n");
    write_file(&target.join("f000"), b"will be replaced with --overwrite\n");
    let before = repo_listing(&target);
    let out = r.restore(&snap_path(&id, &src), &target, &[] as &[&str]).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("--overwrite"), "the message should give the fix: {}", out.describe());
    assert_eq!(repo_listing(&target), before, "target must be unchanged");
    assert_eq!(fs::read(target.join("f000")).unwrap(), b"will be replaced with --overwrite\n");

    r.restore(&snap_path(&id, &src), &target, &["--overwrite"]).ok();
    assert_eq!(fs::read(target.join("keep.txt")).unwrap(), b"mine\n", "--overwrite replaces, it does not wipe");
    fs::remove_file(target.join("keep.txt")).unwrap();
    assert_trees_equal_with(&src, &target, &Compare { owners: is_root(), ..Compare::default() });
}

#[test]
fn unknown_snapshot_exits_3() {
    let t = TestDir::new("nosnap");
    let (r, _, id) = repo_with_snapshot(&t);
    let target = t.join("target");
    for what in ["deadbeef", "0000", "not-hex", "latestt"] {
        let out = r.restore(what, &target, &[] as &[&str]).expect_code(3);
        out.assert_one_line_error();
        assert!(!target.exists(), "no target may be created for an unknown snapshot");
    }
    r.run(&["ls", "deadbeef"]).expect_code(3).assert_one_line_error();
    r.run(&["diff", "deadbeef", &id]).expect_code(3).assert_one_line_error();
    r.run(&["diff", &id, "deadbeef"]).expect_code(3).assert_one_line_error();
    // `latest` of an empty repository.
    let t2 = TestDir::new("nosnap-empty");
    let empty = Reprise::new(t2.path());
    empty.init();
    empty.restore("latest", &t2.join("target"), &[] as &[&str]).expect_code(3).assert_one_line_error();
    // --json adds a machine-readable error on stdout, same code.
    let out = r.run(&["--json", "ls", "deadbeef"]).expect_code(3);
    assert_eq!(out.json()["error"]["exit_code"], 3, "{}", out.describe());
}

const BAD_PLAN: &str = r#"[repositories.main]
url = "/var/backups/reprise"

[components.docs]
type = "filez"
paths = ["relative/path"]
"#;

#[test]
fn malformed_plan_exits_2_with_file_line_column_and_fix() {
    let t = TestDir::new("plan");
    let plan = t.join("reprise.toml");
    fs::write(&plan, BAD_PLAN).unwrap();
    let r = Reprise::new(t.path());
    let out = r.run(&["--plan", plan.to_str().unwrap(), "plan", "check"]).expect_code(2);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(lines.len() >= 2, "{}", out.describe());
    let (diags, last) = lines.split_at(lines.len() - 1);
    assert!(last[0].starts_with("reprise: "), "{}", out.describe());
    let prefix = format!("{}:", plan.display());
    let mut at = Vec::new();
    for d in diags {
        let rest = d.strip_prefix(&prefix).unwrap_or_else(|| panic!("diagnostic without file: {d}"));
        let mut parts = rest.splitn(3, ':');
        let line: usize = parts.next().unwrap().parse().unwrap_or_else(|_| panic!("no line number: {d}"));
        let col: usize = parts.next().unwrap().parse().unwrap_or_else(|_| panic!("no column: {d}"));
        let msg = parts.next().unwrap();
        assert!(msg.starts_with(' ') && msg.contains("; fix: ") && !msg.ends_with("fix: "), "{d}");
        at.push((line, col));
    }
    let lines_named: Vec<usize> = at.iter().map(|x| x.0).collect();
    assert_eq!(lines_named.len(), 2, "{}", out.describe());
    assert!(lines_named.contains(&5) && lines_named.contains(&6), "{}", out.describe());

    // --json: the same diagnostics as data.
    let out = r.run(&["--json", "--plan", plan.to_str().unwrap(), "plan", "check"]).expect_code(2);
    let v = out.json();
    assert_eq!(v["ok"], false);
    let errors = v["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e["line"].as_u64().is_some() && e["column"].as_u64().is_some() && !e["fix"].as_str().unwrap().is_empty()));

    // A TOML syntax error is located too.
    fs::write(&plan, "[repositories.main\nurl = 1\n").unwrap();
    let out = r.run(&["--plan", plan.to_str().unwrap(), "plan", "check"]).expect_code(2);
    assert!(out.stderr.lines().next().unwrap().starts_with(&format!("{}:1:", plan.display())), "{}", out.describe());
    assert!(out.stderr.contains("fix: "), "{}", out.describe());

    // Any other command with a plan holding one error: one line, located.
    fs::write(&plan, "[repositories.main]\nurl = \"/x\"\n\n[components.docs]\ntype = \"filez\"\npaths = [\"/srv\"]\n").unwrap();
    let out = r.run(&["--plan", plan.to_str().unwrap(), "snapshots"]).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains(&format!("{}:5:", plan.display())) && out.stderr.contains("fix: "), "{}", out.describe());
    // A plan that does not exist: not found.
    r.run(&["--plan", t.join("none.toml").to_str().unwrap(), "plan", "check"]).expect_code(3).assert_one_line_error();
}

/// A 2 MiB tmpfs, unmounted (lazily) at the end of the test.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).output().map_err(|e| e.to_string())?;
        if out.status.success() { Ok(Tmpfs(dir.to_owned())) } else { Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()) }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn full_storage_exits_7_and_keeps_the_repository_usable() {
    let t = TestDir::new("full");
    let mnt = t.join("mnt");
    let _fs = match Tmpfs::mount(&mnt, "2m") {
        Ok(m) => m,
        Err(e) => {
            skip(&format!("cannot mount a 2 MiB tmpfs to fill ({e}): needs root or CAP_SYS_ADMIN"));
            return;
        }
    };
    let r = Reprise::at(t.path(), mnt.join("repo"));
    r.init();
    let small = t.join("small");
    let mut rng = Rng::new(7);
    random_files(&small, &mut rng, 4, 1_000, 30_000);
    stamp_mtimes(&small, &mut rng);
    let first = id_of(&r.backup_paths(&[&small]));

    let big = t.join("big");
    write_random_file(&big.join("ten-megabytes"), &mut rng, 10_000_000);
    let out = r.run(&["backup", "--path", big.to_str().unwrap()]).expect_code(7);
    out.assert_one_line_error();
    assert_eq!(r.snapshots().len(), 1, "no snapshot may be recorded for a failed backup");
    assert_eq!(fs::read_dir(mnt.join("repo/tmp")).unwrap().count(), 0, "temporary files must be cleaned up");

    // The repository is still consistent and the earlier snapshot restores.
    let check = r.check(&["--read-data"]).ok().json();
    assert!(problem_objects(&check).is_empty(), "{check}");
    let target = t.join("restored");
    r.restore(&snap_path(&first, &small), &target, &[] as &[&str]).ok();
    assert_trees_equal(&small, &target);
    // And once space is available again (a smaller backup), backups work.
    let more = t.join("more");
    write_file(&more.join("x"), b"fits\n");
    r.backup_paths(&[&more]);
}

#[test]
fn passphrase_is_never_accepted_as_an_argument() {
    let t = TestDir::new("passarg");
    let r = Reprise::new(t.path());
    r.init();
    for args in [vec!["--password", "hunter2-secret", "snapshots"], vec!["snapshots", "--passphrase=hunter2-secret"]] {
        let out = r.run(&args).expect_code(2);
        assert!(!out.stderr.contains("hunter2-secret") && !out.stdout.contains("hunter2-secret"), "{}", out.describe());
    }
}

#[test]
fn invalid_check_subsets_exit_2() {
    let t = TestDir::new("subset");
    let (r, _, _) = repo_with_snapshot(&t);
    for bad in ["0/3", "4/3", "1/0", "1/300", "abc", "0%", "150%", "x%", "3"] {
        let out = r.run(&["check", "--read-data-subset", bad]).expect_code(2);
        out.assert_one_line_error();
    }
    for good in ["1/3", "3/3", "50%", "100%"] {
        r.run(&["check", "--read-data-subset", good]).ok();
    }
}

#[test]
fn plan_with_several_errors_is_one_line_for_other_commands() {
    let t = TestDir::new("plan-multi");
    let plan = t.join("reprise.toml");
    fs::write(&plan, BAD_PLAN).unwrap();
    let r = Reprise::new(t.path());
    let out = r.run(&["--plan", plan.to_str().unwrap(), "snapshots"]).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("plan check") || out.stderr.contains(&format!("{}:5:", plan.display())), "{}", out.describe());
}

#[test]
fn argument_errors_are_one_line() {
    let t = TestDir::new("args");
    let r = Reprise::new(t.path());
    r.init();
    for args in [vec!["restore", "latest"], vec!["frobnicate"], vec!["backup", "--stdin", "--path", "/x"], vec!["--password", "x", "snapshots"]] {
        let out = r.run(&args).expect_code(2);
        out.assert_one_line_error();
    }
}

/// The demo's drill checks the patients and the documents its database
/// points to: with none, it would fail for the data. Refused up front,
/// nothing created.
#[test]
fn demo_without_documents_or_patients_exits_2_and_creates_nothing() {
    let t = TestDir::new("demo-empty");
    for args in [["--documents", "0"], ["--scale", "0"]] {
        let dir = t.join("work");
        let out = Reprise::new(t.path()).run(&["demo", args[0], args[1], "--dir", dir.to_str().unwrap()]).expect_code(2);
        out.assert_one_line_error();
        assert!(out.stderr.contains("at least 1"), "{}", out.stderr);
        assert!(!dir.exists(), "{} was created", dir.display());
    }
}
