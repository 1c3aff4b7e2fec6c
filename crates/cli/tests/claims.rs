//! README claims that no other test file pins, each checked through the
//! binary (ARCHITECTURE.md, "Testing", maps every claim of the README to
//! the test that pins it): settings taken from the command line, then the
//! environment, then the plan; exit 8 for a backup saved without the
//! entries it could not read; a progress bar on a terminal and nothing on
//! a pipe; `ls`; the recovery point of a files component in `status`; and
//! `reprise demo`, the first of the README's two commands, end to end.

mod common;

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// The account a root test drops to, so that file permissions apply to
/// reprise. `nobody` on Debian.
const NOBODY: u32 = 65534;

/// Runs the binary with exactly `env` (plus a cache and home in `work`),
/// every inherited `REPRISE_*` removed and no `--repo` added: for tests of
/// where settings come from.
fn run_bare(work: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut c = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("REPRISE_") {
            c.env_remove(&k);
        }
    }
    c.env("XDG_CACHE_HOME", work.join("cache")).env("HOME", work).current_dir(work).args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let line = format!("{env:?} reprise {}", args.join(" "));
    let child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn reprise");
    wait_output(child, line, Instant::now(), COMMAND_TIMEOUT)
}

/// How many snapshots a successful `--json snapshots` listed.
#[track_caller]
fn count(out: Out) -> usize {
    out.ok().json().as_array().expect("snapshots").len()
}

/// README: "Settings are taken from the command line first, then the
/// environment, then the plan" — for the repository and the passphrase.
#[test]
fn settings_come_from_the_command_line_then_the_environment_then_the_plan() {
    let t = TestDir::new("precedence");
    // Three repositories told apart by their number of snapshots.
    let src = t.join("src");
    write_file(&src.join("a"), b"a\n");
    let mut urls = Vec::new();
    for (name, snapshots) in [("in-plan", 1), ("in-env", 2), ("on-flag", 3)] {
        let r = Reprise::at(t.path(), t.join(name));
        r.init();
        for _ in 0..snapshots {
            r.backup_paths(&[&src]);
        }
        urls.push(t.join(name).display().to_string());
    }
    let right = t.join("right.pass");
    let wrong = t.join("wrong.pass");
    fs::write(&right, PASSWORD).unwrap();
    fs::write(&wrong, "not the passphrase").unwrap();
    let plan = t.join("reprise.toml");
    fs::write(&plan, format!("[repositories.main]\nurl = \"{}\"\npassword_file = \"{}\"\n", urls[0], right.display())).unwrap();
    let p = plan.to_str().unwrap();
    // The repository: plan, then REPRISE_REPO over it, then --repo over
    // both. (A repository given by URL has no passphrase in the plan.)
    assert_eq!(count(run_bare(t.path(), &["--plan", p, "--json", "snapshots"], &[])), 1);
    assert_eq!(count(run_bare(t.path(), &["--plan", p, "--json", "snapshots"], &[("REPRISE_REPO", &urls[1]), ("REPRISE_PASSWORD", PASSWORD)])), 2);
    assert_eq!(count(run_bare(t.path(), &["--plan", p, "--repo", &urls[2], "--json", "snapshots"], &[("REPRISE_REPO", &urls[1]), ("REPRISE_PASSWORD", PASSWORD)])), 3);
    // The passphrase: the plan's file is wrong, REPRISE_PASSWORD is right
    // and wins; then REPRISE_PASSWORD is wrong and --password-file wins.
    fs::write(&plan, format!("[repositories.main]\nurl = \"{}\"\npassword_file = \"{}\"\n", urls[0], wrong.display())).unwrap();
    run_bare(t.path(), &["--plan", p, "snapshots"], &[]).expect_code(4).assert_one_line_error();
    assert_eq!(count(run_bare(t.path(), &["--plan", p, "--json", "snapshots"], &[("REPRISE_PASSWORD", PASSWORD)])), 1);
    let flag = run_bare(t.path(), &["--plan", p, "--password-file", right.to_str().unwrap(), "--json", "snapshots"], &[("REPRISE_PASSWORD", "not the passphrase")]);
    assert_eq!(count(flag), 1);
    run_bare(t.path(), &["--plan", p, "snapshots"], &[("REPRISE_PASSWORD", "not the passphrase")]).expect_code(4).assert_one_line_error();
}

/// README, exit codes: "8: backup saved, but some source entries could not
/// be read (listed)". A backup run as an account that cannot read one file
/// saves a snapshot of the rest, names the file, and exits 8.
#[test]
fn a_backup_that_cannot_read_some_entries_is_saved_lists_them_and_exits_8() {
    let t = TestDir::new("exit8");
    chmod(t.path(), 0o755);
    let src = t.join("src");
    write_file(&src.join("readable.txt"), b"anyone may read this\n");
    write_file(&src.join("private/secret.txt"), b"only its owner may\n");
    let repo = t.join("repo");
    let r = Reprise::at(t.path(), repo.clone());
    r.init();
    let as_writer = |args: &[&str]| -> Out {
        let (mut c, line) = r.command(args);
        if is_root() {
            // Root reads everything: the backup runs as `nobody`, which
            // may write the repository and its cache but not read the file.
            c.uid(NOBODY).gid(NOBODY);
        }
        let child = c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn");
        wait_output(child, line, Instant::now(), COMMAND_TIMEOUT)
    };
    if is_root() {
        let st = Command::new("chown").args(["-R", &format!("{NOBODY}:{NOBODY}")]).arg(&repo).status().unwrap();
        assert!(st.success());
        fs::create_dir_all(t.join("cache")).unwrap();
        std::os::unix::fs::chown(t.join("cache"), Some(NOBODY), Some(NOBODY)).unwrap();
        std::os::unix::fs::chown(src.join("private/secret.txt"), Some(0), Some(0)).unwrap();
    }
    chmod(&src.join("private/secret.txt"), 0o600);
    let out = as_writer(&["--json", "backup", "--path", src.to_str().unwrap()]).expect_code(8);
    assert!(out.stderr.contains("secret.txt"), "the unreadable file is listed: {}", out.describe());
    assert!(out.stderr.lines().last().unwrap().starts_with("reprise: "), "{}", out.describe());
    let snapshots = r.snapshots();
    assert_eq!(snapshots.len(), 1, "the snapshot was saved");
    let target = t.join("restored");
    r.restore(snapshots[0]["id"].as_str().unwrap(), &target, &[] as &[&str]).ok();
    let under = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(fs::read(under.join("readable.txt")).unwrap(), b"anyone may read this\n");
    assert!(!under.join("private/secret.txt").exists());
}

/// README: "long operations show a progress bar on a terminal and nothing
/// on a pipe". The same backup and restore, once under a pseudo-terminal
/// (`script`, util-linux) and once with stderr on a pipe.
#[test]
fn progress_shows_on_a_terminal_and_nothing_on_a_pipe() {
    let t = TestDir::new("progress");
    let r = Reprise::new(t.path());
    r.init();
    let src = t.join("src");
    random_files(&src, &mut Rng::new(5), 8, 500_000, 1_000_000);
    // On a pipe: a successful backup, restore and check say nothing on stderr.
    let out = r.run(&["backup", "--path", src.to_str().unwrap()]).ok();
    assert_eq!(out.stderr, "", "{}", out.describe());
    let out = r.restore("latest", &t.join("piped"), &[] as &[&str]).ok();
    assert_eq!(out.stderr, "", "{}", out.describe());
    let out = r.run(&["check", "--read-data"]).ok();
    assert_eq!(out.stderr, "", "{}", out.describe());
    // On a terminal.
    let Ok(script) = which("script") else {
        skip("`script` (util-linux) is needed to run reprise under a terminal");
        return;
    };
    let (c, _) = r.command(&["restore", "latest", "--to", t.join("on-a-tty").to_str().unwrap()]);
    let mut shell_line = String::new();
    for part in std::iter::once(c.get_program()).chain(c.get_args()) {
        shell_line.push('\'');
        shell_line.push_str(&part.to_str().unwrap().replace('\'', "'\\''"));
        shell_line.push_str("' ");
    }
    let mut tty = Command::new(script);
    tty.args(["-q", "-e", "-c", &shell_line, "/dev/null"]).current_dir(&r.cwd);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => tty.env(k, v),
            None => tty.env_remove(k),
        };
    }
    let out = tty.stdin(Stdio::null()).output().expect("run script");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("ETA") && shown.contains('['), "no progress bar on a terminal: {shown:?}");
}

fn which(program: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(program)).find(|p| p.is_file())).ok_or(())
}

/// README: "`diff`, `ls`, `stats`" — `ls` lists what a snapshot holds.
#[test]
fn ls_lists_every_entry_of_a_snapshot() {
    let t = TestDir::new("ls");
    let r = Reprise::new(t.path());
    r.init();
    let src = t.join("src");
    write_file(&src.join("a.txt"), b"a\n");
    write_file(&src.join("sub/b.txt"), b"bb\n");
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let id = id_of(&r.backup_paths(&[&src]));
    let listed = r.run(&["--json", "ls", &id]).ok().json();
    let root = format!("{}/", src.display());
    let under: std::collections::BTreeSet<&str> = listed.as_array().expect("entries").iter().filter_map(|e| e["path"].as_str()?.strip_prefix(root.as_str())).collect();
    assert_eq!(under, ["a.txt", "link", "sub", "sub/b.txt"].into_iter().collect(), "{listed}");
    let human = r.run(&["ls", &id]).ok().stdout;
    for path in ["a.txt", "sub/b.txt", "link"] {
        assert!(human.contains(path), "{path} not in {human}");
    }
}

/// README: "`reprise status`: per component, the recovery point achieved
/// now (seconds of data at risk) against its objective". For a files
/// component the data at risk is everything since its newest backup: the
/// value lies between the times the test saw the backup start and end.
#[test]
fn status_gives_a_files_component_the_age_of_its_newest_backup_as_its_recovery_point() {
    let t = TestDir::new("status-files");
    let src = t.join("src");
    write_file(&src.join("doc"), b"signed\n");
    let plan = t.join("reprise.toml");
    fs::write(
        &plan,
        format!(
            "[repositories.main]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\n\n[components.docs]\ntype = \"files\"\npaths = [\"{}\"]\n\n[components.docs.objectives]\nrpo = \"2s\"\n",
            t.join("repo").display(),
            src.display()
        ),
    )
    .unwrap();
    let r = Reprise::new(t.path()).with_env("REPRISE_PLAN", &plan);
    r.init();
    let started = Instant::now();
    r.backup(&["docs"]);
    let ended = Instant::now();
    let status = || {
        let before = Instant::now();
        let st = r.run(&["--json", "status", "docs"]).ok().json();
        (st[0].clone(), before, Instant::now())
    };
    let (st, before, after) = status();
    let rpo = st["rpo_seconds"].as_f64().unwrap_or_else(|| panic!("{st}"));
    assert!(rpo >= (before - ended).as_secs_f64() - 0.05 && rpo <= (after - started).as_secs_f64() + 0.05, "{rpo}s: {st}");
    assert_eq!(st["rpo_met"], true, "{st}");
    // Past the objective: the value grows with time and the objective is missed.
    std::thread::sleep(Duration::from_millis(2500));
    let (st, before, after) = status();
    let rpo = st["rpo_seconds"].as_f64().unwrap();
    assert!(rpo >= (before - ended).as_secs_f64() - 0.05 && rpo <= (after - started).as_secs_f64() + 0.05, "{rpo}s: {st}");
    assert_eq!(st["rpo_met"], false, "{st}");
}

/// Processes whose command line mentions `dir`.
fn processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        if !e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&needle) {
                found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// README: "`reprise demo` ... needs no configuration and leaves nothing
/// running (`--dir DIR` keeps its work directory)". Run small (its flags
/// shrink the data set and the write load), it goes through every step
/// with real PostgreSQL and exits 0; afterwards no process runs from its
/// folder.
#[test]
fn demo_runs_every_step_and_leaves_nothing_running() {
    let t = TestDir::new("demo");
    if reprise_postgres::cluster::PgBin::find(None).is_err() {
        skip("PostgreSQL is not installed (scripts/test-all installs postgresql-15)");
        return;
    }
    chmod(t.path(), 0o755);
    let dir = t.join("work");
    let out = run_bare(t.path(), &["demo", "--scale", "1", "--documents", "40", "--load-seconds", "3", "--dir", dir.to_str().unwrap()], &[]);
    assert_eq!(out.code, 0, "{}", out.describe());
    assert!(dir.join("reprise.toml").exists(), "--dir keeps the work directory");
    // The plan it wrote is rendered from what the repository holds.
    let md = fs::read_to_string(dir.join("plan/PRA.md")).expect("the demo renders its plan");
    assert!(fs::read(dir.join("plan/PRA.pdf")).expect("pdf").starts_with(b"%PDF-"));
    // It ran the plan's monthly drill: the record is in the repository,
    // its report filled with the measured values, and the rendered plan
    // cites it.
    let plan = dir.join("reprise.toml");
    let plan = plan.to_str().unwrap();
    let drills = run_bare(t.path(), &["--plan", plan, "--json", "drill", "list"], &[]);
    assert_eq!(drills.code, 0, "{}", drills.describe());
    let drills: serde_json::Value = serde_json::from_str(&drills.stdout).expect("drill list --json");
    let drills = drills.as_array().expect("a list of drills");
    assert_eq!(drills.len(), 1, "{drills:?}");
    let drill = &drills[0];
    assert_eq!(drill["verdict"], "passed", "{drill}");
    assert_eq!(drill["scratch"]["removed"], true, "{drill}");
    let id = drill["id"].as_str().expect("id");
    let short = &id[..8];
    assert!(md.contains("| medicapp-db | 1 |") && md.contains(&format!("monthly ({short})")) && !md.contains("aucun exercice enregistré"), "the rendered plan cites the drill:\n{md}");
    let report = fs::read_to_string(dir.join(format!("drills/drill-monthly-{short}.md"))).expect("the demo writes the drill report");
    for want in ["Nombre de patients correct (attendu : 1000, réel : 1000)", "SUCCÈS - RTO respecté", "Documents signés référencés présents et intègres", "Dr Claire Martin (demo)"] {
        assert!(report.contains(want), "{want:?} missing from the drill report:\n{report}");
    }
    assert!(fs::read(dir.join(format!("drills/drill-monthly-{short}.pdf"))).expect("drill pdf").starts_with(b"%PDF-"));
    assert!(out.stdout.contains(&format!("drill-monthly-{short}.md")), "the demo prints the report's path: {}", out.stdout);
    // It ran the operations every interface runs, so they are in the
    // ledger, and the ledger verifies: checked here with the CLI's own
    // `ledger show` and `ledger verify` on the demo's plan, not only by
    // what the demo says of itself.
    assert!(out.stdout.lines().any(|l| l.trim_start().starts_with("ledger ") && l.contains("entries recorded")), "{}", out.describe());
    let shown = run_bare(t.path(), &["--plan", plan, "--json", "ledger", "show"], &[]);
    assert_eq!(shown.code, 0, "{}", shown.describe());
    let shown: serde_json::Value = serde_json::from_str(&shown.stdout).expect("ledger show --json");
    let ops: Vec<&str> = shown["entries"].as_array().expect("entries").iter().map(|e| e["operation"].as_str().expect("operation")).collect();
    // Restores: recover-rows, the PITR, the documents, and the drill's two.
    for (op, n) in [("init", 1), ("backup", 2), ("restore", 5), ("check", 1), ("drill", 1)] {
        assert_eq!(ops.iter().filter(|o| **o == op).count(), n, "{op} entries in {ops:?}");
    }
    assert!(out.stdout.contains(&format!("{} ledger entries recorded and verified", ops.len())), "the demo's count is the ledger's ({}): {}", ops.len(), out.stdout);
    let verified = run_bare(t.path(), &["--plan", plan, "ledger", "verify"], &[]);
    assert_eq!(verified.code, 0, "{}", verified.describe());
    // The clusters it started are stopped (pg_ctl stop waits for them).
    let left = processes_under(&dir);
    assert!(left.is_empty(), "still running after the demo: {left:#?}");
}
