//! What a new user and a hostile tester found (issue 9), each pinned by a
//! test named after the defect: closed pipes, usage errors, one JSON
//! document, colour codes, exit codes, non-empty `init` targets, `latest`
//! and damage, repairs, plan messages, and the documentation's promises.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

use common::*;

/// A repository with one small snapshot of `work/src`.
fn repo_with_snapshot(t: &TestDir) -> (Reprise, PathBuf, String) {
    let r = Reprise::new(t.path());
    r.init();
    let src = t.join("src");
    let mut rng = Rng::new(9);
    random_files(&src, &mut rng, 5, 1_000, 20_000);
    stamp_mtimes(&src, &mut rng);
    let id = id_of(&r.backup_paths(&[&src]));
    (r, src, id)
}

/// Runs a command whose stdout is a pipe closed before it writes anything
/// (`reprise ... | head -0`); returns its exit code and stderr.
fn run_into_closed_pipe(r: &Reprise, args: &[&str]) -> (i32, String) {
    let (mut c, line) = r.command(args);
    c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn");
    drop(child.stdout.take());
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    let status = child.wait().unwrap();
    assert!(status.code().is_some(), "`{line}` was killed by a signal: {status:?}\n{stderr}");
    (status.code().unwrap(), stderr)
}

#[test]
fn closed_pipe_does_not_panic() {
    let t = TestDir::new("epipe");
    let (r, _, id) = repo_with_snapshot(&t);
    for args in [vec!["snapshots"], vec!["--json", "snapshots"], vec!["ls", id.as_str()], vec!["--json", "ls", "latest"], vec!["stats"]] {
        let (code, stderr) = run_into_closed_pipe(&r, &args);
        assert!(!stderr.contains("panicked"), "{args:?} panicked on a closed pipe: {stderr}");
        assert_eq!(code, 0, "{args:?} on a closed pipe exited {code}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: a closed pipe is not worth a message: {stderr}");
    }
    // The exit code stays the command's own: a failing command still fails.
    let (code, stderr) = run_into_closed_pipe(&r, &["ls", "deadbeef"]);
    assert_eq!(code, 3, "{stderr}");
}

#[test]
fn init_into_a_non_empty_unrelated_directory_is_refused() {
    let t = TestDir::new("init-nonempty");
    let dir = t.join("photos");
    write_file(&dir.join("holiday.jpg"), b"not a repository\n");
    let before = repo_listing(&dir);
    let r = Reprise::at(t.path(), dir.clone());
    let out = r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("not empty"), "{}", out.describe());
    assert_eq!(repo_listing(&dir), before, "nothing may be added to the directory");
    // A file where the repository would go.
    let file = t.join("a-file");
    fs::write(&file, b"x").unwrap();
    let out = Reprise::at(t.path(), file.clone()).run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(2);
    out.assert_one_line_error();
    assert_eq!(fs::read(&file).unwrap(), b"x");
    // New and empty directories are fine.
    Reprise::at(t.path(), t.join("new/repo")).init();
    fs::create_dir(t.join("empty")).unwrap();
    Reprise::at(t.path(), t.join("empty")).init();
}

#[test]
fn usage_errors_name_the_missing_arguments() {
    let t = TestDir::new("usage");
    let (r, _, id) = repo_with_snapshot(&t);
    for (args, named) in [
        (vec!["restore", "latest"], "--to <DIR>"),
        (vec!["hold", "add", id.as_str()], "--reason <REASON>"),
        (vec!["diff", "a884"], "<TO>"),
        (vec!["frobnicate"], "'frobnicate'"),
    ] {
        let out = r.run(&args).expect_code(2);
        out.assert_one_line_error();
        // Named in the error itself, not only in the usage line after it.
        let error = out.stderr.split("; usage:").next().unwrap();
        assert!(error.contains(named), "the error must name {named}: {}", out.describe());
        assert!(out.stderr.contains("--help"), "{}", out.describe());
        // With --json: exactly one JSON error object, same code.
        let mut json_args = vec!["--json"];
        json_args.extend(&args);
        let out = r.run(&json_args).expect_code(2);
        let docs = out.json_values();
        assert_eq!(docs.len(), 1, "{}", out.describe());
        assert_eq!(docs[0]["error"]["exit_code"], 2, "{}", out.describe());
        assert!(docs[0]["error"]["message"].as_str().unwrap().contains(named), "{}", out.describe());
    }
    // `reprise` alone, nothing else on the line: the list of commands, exit 2.
    for json in [false, true] {
        let mut c = std::process::Command::new(BIN);
        if json {
            c.arg("--json");
        }
        let o = c.current_dir(t.path()).stdin(Stdio::null()).output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(2), "{stdout}{stderr}");
        assert!(stderr.contains("Commands:") && stderr.contains("restore"), "{stderr}");
        let docs: Vec<serde_json::Value> = serde_json::Deserializer::from_str(&stdout).into_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(docs.len(), usize::from(json), "{stdout}");
    }
    // No command: the list of commands, exit 2 (also for a command group).
    for (args, listed) in [(vec![], ["backup", "restore", "snapshots"]), (vec!["key"], ["add", "list", "export-recovery"])] {
        let out = r.run(&args).expect_code(2);
        assert!(out.stderr.contains("Commands:") && listed.iter().all(|c| out.stderr.contains(c)), "{}", out.describe());
        assert!(out.stderr.lines().last().unwrap().starts_with("reprise: "), "{}", out.describe());
        let mut json_args = vec!["--json"];
        json_args.extend(&args);
        let out = r.run(&json_args).expect_code(2);
        assert_eq!(out.json_values().len(), 1, "{}", out.describe());
        assert_eq!(out.json()["error"]["exit_code"], 2);
    }
}

#[test]
fn json_plan_check_of_an_invalid_plan_prints_one_document() {
    let t = TestDir::new("plan-json");
    let plan = t.join("reprise.toml");
    fs::write(&plan, "[repositories.main]\nurl = \"/x\"\n\n[components.docs]\ntype = \"filez\"\npaths = [\"/srv\"]\n").unwrap();
    let out = Reprise::new(t.path()).run(&["--json", "--plan", plan.to_str().unwrap(), "plan", "check"]).expect_code(2);
    let docs = out.json_values();
    assert_eq!(docs.len(), 1, "one JSON document per command: {}", out.describe());
    assert_eq!(docs[0]["ok"], false);
}

/// `backup` with `--cache-dir` below a file: the files cache cannot be
/// saved, which the backup reports as a WARN log line on stderr.
fn backup_with_a_warning(t: &TestDir, src: &Path) -> Vec<String> {
    let blocker = t.join("blocker");
    fs::write(&blocker, b"").unwrap();
    vec!["--cache-dir".into(), blocker.join("cache").display().to_string(), "backup".into(), "--path".into(), src.display().to_string()]
}

/// Whether `text` holds an SGR (colour, bold) escape sequence; a progress
/// bar's cursor movements are not colour.
fn has_colour(text: &str) -> bool {
    text.match_indices("\u{1b}[").any(|(i, _)| {
        let rest = &text[i + 2..];
        let params = rest.find(|c: char| !(c.is_ascii_digit() || c == ';')).unwrap_or(rest.len());
        rest[params..].starts_with('m')
    })
}

#[test]
fn warnings_carry_no_colour_codes_off_a_terminal() {
    let t = TestDir::new("colour");
    let (r, src, _) = repo_with_snapshot(&t);
    let args = backup_with_a_warning(&t, &src);
    let out = r.run(&args).ok();
    assert!(out.stderr.contains("WARN"), "the test needs a warning: {}", out.describe());
    assert!(!out.stderr.contains('\u{1b}'), "escape codes in a pipe: {:?}", out.stderr);
    assert!(!has_colour(&out.stdout), "{}", out.describe());
    // On a terminal (script(1) gives it one) the level is coloured, unless
    // NO_COLOR is set: the same command, environment and directory.
    let (cmd, _) = r.command(&args);
    let line: Vec<String> = std::iter::once(BIN.to_owned()).chain(cmd.get_args().map(|a| a.to_str().unwrap().to_owned())).map(|a| format!("'{a}'")).collect();
    let on_terminal = |no_color: Option<&str>| {
        let mut s = std::process::Command::new("script");
        s.args(["-qec", &line.join(" "), "/dev/null"]).current_dir(&r.cwd).stdin(Stdio::null());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => s.env(k, v),
                None => s.env_remove(k),
            };
        }
        match no_color {
            Some(v) => s.env("NO_COLOR", v),
            None => s.env_remove("NO_COLOR"),
        };
        String::from_utf8_lossy(&s.output().expect("script(1)").stdout).into_owned()
    };
    let coloured = on_terminal(None);
    assert!(coloured.contains("WARN"), "{coloured:?}");
    assert!(has_colour(&coloured), "a terminal gets colour: {coloured:?}");
    let plain = on_terminal(Some("1"));
    assert!(plain.contains("WARN") && !has_colour(&plain), "NO_COLOR must turn colour off: {plain:?}");
}

#[test]
fn exit_codes_agree_with_the_readme_table() {
    let t = TestDir::new("exit-table");
    let (r, src, id) = repo_with_snapshot(&t);
    // 2: invalid arguments, invalid plan, non-empty restore target.
    r.run(&["restore", "latest"]).expect_code(2).assert_one_line_error();
    let bad_plan = t.join("bad.toml");
    fs::write(&bad_plan, "[components.x]\ntype = \"filez\"\n").unwrap();
    r.run(&["--plan", bad_plan.to_str().unwrap(), "snapshots"]).expect_code(2).assert_one_line_error();
    write_file(&t.join("full/x"), b"x");
    r.restore(&id, &t.join("full"), &[] as &[&str]).expect_code(2).assert_one_line_error();
    // 3: repository, snapshot, path, component, plan; and holds, keys.
    Reprise::at(t.path(), t.join("nowhere")).run(&["snapshots"]).expect_code(3).assert_one_line_error();
    let file_repo = Reprise::at(t.path(), bad_plan.clone()).run(&["snapshots"]).expect_code(3);
    file_repo.assert_one_line_error();
    assert!(!file_repo.stderr.contains("os error"), "a raw OS error is no fix: {}", file_repo.describe());
    r.restore("deadbeef", &t.join("o1"), &[] as &[&str]).expect_code(3).assert_one_line_error();
    r.restore(&format!("{id}:no/such/path"), &t.join("o2"), &[] as &[&str]).expect_code(3).assert_one_line_error();
    let plan = t.join("reprise.toml");
    fs::write(&plan, format!("[repositories.main]\nurl = \"{}\"\n\n[components.docs]\ntype = \"files\"\npaths = [\"{}\"]\n", r.repo.display(), src.display())).unwrap();
    r.run(&["--plan", plan.to_str().unwrap(), "backup", "nosuchcomponent"]).expect_code(3).assert_one_line_error();
    r.run(&["--plan", t.join("none.toml").to_str().unwrap(), "snapshots"]).expect_code(3).assert_one_line_error();
    r.run(&["hold", "remove", "zzzz"]).expect_code(3).assert_one_line_error();
    r.run(&["key", "remove", "zzzz"]).expect_code(3).assert_one_line_error();
    let missing = r.without_password().run(&["--password-file", t.join("no-such-pass").to_str().unwrap(), "snapshots"]).expect_code(3);
    missing.assert_one_line_error();
    assert!(missing.stderr.contains("fix: ") && !missing.stderr.contains("os error"), "{}", missing.describe());
    // 4: wrong passphrase.
    r.with_password("wrong").run(&["snapshots"]).expect_code(4).assert_one_line_error();
    // 5: a write-only key asked to read.
    let cred = t.join("cred");
    r.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap()]).ok();
    r.without_password().run(&["--key-file", cred.to_str().unwrap(), "restore", &id, "--to", t.join("o3").to_str().unwrap()]).expect_code(5).assert_one_line_error();
    // 6: damage (a flipped byte in a pack).
    let pack = packs(&r.repo).into_iter().max_by_key(|p| size_of(&r.repo, p)).unwrap();
    flip_byte(&r.repo, &pack, size_of(&r.repo, &pack) / 2);
    r.run(&["check", "--read-data"]).expect_code(6);
    // 8: a source entry that cannot be read; as root, run as `nobody`.
    let t8 = TestDir::new("exit-8");
    let r8 = Reprise::new(t8.path());
    r8.init();
    let src8 = t8.join("src");
    write_file(&src8.join("readable"), b"yes\n");
    write_file(&src8.join("secret"), b"no\n");
    chmod(&src8.join("secret"), 0o000);
    let mut cmd = r8.command(&["backup", "--path", src8.to_str().unwrap()]).0;
    if is_root() {
        // nobody must reach the repository, the cache and the source.
        for p in [t8.path().to_owned(), r8.repo.clone(), t8.join("cache"), src8.clone()] {
            fs::create_dir_all(&p).unwrap();
        }
        let _ = std::process::Command::new("chmod").args(["-R", "a+rwX"]).arg(t8.path()).status();
        chmod(&src8.join("secret"), 0o000);
        cmd.uid(65534).gid(65534);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = wait_output(cmd.spawn().unwrap(), "backup as nobody".into(), Instant::now(), COMMAND_TIMEOUT);
    assert_eq!(out.code, 8, "{}", out.describe());
    assert!(out.stderr.contains("secret"), "{}", out.describe());
    // 7 (storage full), 9 (storage unavailable) and 130 (interrupted) are
    // pinned by bad_input::full_storage_exits_7_and_keeps_the_repository_usable,
    // object_storage::s3_repository_round_trip_and_errors and
    // crash::interrupted_backup_keeps_and_indexes_what_was_stored.
}

#[test]
fn missing_plan_message_names_a_command_that_exists() {
    let t = TestDir::new("plan-init");
    let r = Reprise::new(t.path());
    // The message points to `reprise plan init`, and it works.
    let out = r.run(&["status"]).expect_code(3);
    out.assert_one_line_error();
    assert!(out.stderr.contains("reprise plan init"), "{}", out.describe());
    r.run(&["plan", "init"]).ok();
    let written = fs::read_to_string(t.join("reprise.toml")).unwrap();
    assert!(written.contains("docs/PLAN.md") && written.lines().filter(|l| l.trim_start().starts_with('#')).count() > 10, "a commented starter: {written}");
    // It is a valid plan; what this machine lacks is a warning, not an error.
    let out = r.run(&["plan", "check"]).ok();
    assert!(out.stdout.contains("1 repository, 1 component"), "{}", out.describe());
    // Never written over.
    fs::write(t.join("reprise.toml"), "# mine\n").unwrap();
    r.run(&["plan", "init"]).expect_code(2).assert_one_line_error();
    assert_eq!(fs::read_to_string(t.join("reprise.toml")).unwrap(), "# mine\n");
    r.run(&["plan", "init", "-o", t.join("other.toml").to_str().unwrap()]).ok();
    assert!(t.join("other.toml").exists());
    // docs/PLAN.md, which messages point to, exists and names every key.
    let doc = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/PLAN.md")).expect("docs/PLAN.md");
    for key in ["url", "password_file", "password_env", "key_file", "site", "copy_of", "type", "repository", "paths", "exclude", "tags", "one_file_system", "mode", "connection", "data_directory", "bin_dir", "databases", "archive_timeout", "block_size_kib", "rpo", "rto", "retain_for", "immutable", "pitr", "keep_last", "keep_within", "hourly", "daily", "weekly", "monthly", "yearly", "cache_dir", "name"] {
        assert!(doc.contains(&format!("`{key}`")), "docs/PLAN.md does not describe `{key}`");
    }
}

#[test]
fn plan_check_warns_about_paths_that_do_not_exist() {
    let t = TestDir::new("plan-paths");
    let plan = t.join("reprise.toml");
    let here = t.join("here");
    fs::create_dir(&here).unwrap();
    fs::write(&plan, format!("[repositories.main]\nurl = \"{}\"\npassword_file = \"{}\"\n\n[components.docs]\ntype = \"files\"\npaths = [\"{}\", \"{}\"]\n", t.join("repo").display(), t.join("no.pass").display(), here.display(), t.join("gone").display())).unwrap();
    let r = Reprise::new(t.path());
    let out = r.run(&["plan", "check"]).ok();
    let warnings: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("reprise: warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{}", out.describe());
    assert!(out.stderr.contains(&t.join("gone").display().to_string()) && out.stderr.contains("no.pass"), "{}", out.describe());
    assert!(!out.stderr.contains(&format!("{} does not", here.display())), "{}", out.describe());
    let v = r.run(&["--json", "plan", "check"]).ok();
    assert_eq!(v.json_values().len(), 1);
    assert_eq!(v.json()["warnings"].as_array().unwrap().len(), 2, "{}", v.describe());
}

#[test]
fn reprise_recovery_key_variable_opens_the_repository() {
    let t = TestDir::new("recovery-env");
    let (r, _, id) = repo_with_snapshot(&t);
    let rk = t.join("recovery.key");
    r.run(&["key", "export-recovery", "-o", rk.to_str().unwrap()]).ok();
    // No passphrase anywhere: the variable the README documents is enough.
    let out = r.without_password().with_env("REPRISE_RECOVERY_KEY", &rk).run(&["--json", "snapshots"]).ok();
    assert_eq!(out.json()[0]["id"], id.as_str());
    // Without it, there is no key: usage (and nothing read).
    r.without_password().run(&["snapshots"]).expect_code(2);
    // A wrong path is named, with where it came from.
    let out = r.without_password().with_env("REPRISE_RECOVERY_KEY", t.join("nope")).run(&["snapshots"]).expect_code(3);
    assert!(out.stderr.contains("REPRISE_RECOVERY_KEY"), "{}", out.describe());
}

/// The bug: `retain_for = "20y"` counted 365-day years and ended five days
/// early. The label written into the snapshot is twenty calendar years on.
#[test]
fn retain_for_twenty_years_is_twenty_calendar_years() {
    let t = TestDir::new("calendar");
    let r = Reprise::new(t.path());
    r.init();
    let src = t.join("src");
    write_file(&src.join("consent.pdf"), b"signed\n");
    let plan = t.join("reprise.toml");
    fs::write(&plan, format!("[repositories.main]\nurl = \"{}\"\n\n[components.signed]\ntype = \"files\"\npaths = [\"{}\"]\n\n[components.signed.objectives]\nretain_for = \"20y\"\n", r.repo.display(), src.display())).unwrap();
    r.run(&["--plan", plan.to_str().unwrap(), "backup", "signed"]).ok();
    let snap = &r.snapshots()[0];
    let time = snap["time"].as_str().unwrap();
    let until = snap["labels"]["retain_until"].as_str().unwrap();
    // Same month, day and time of day, twenty years on (taken before the
    // 29th of February, nothing moves; the test does not run on one).
    let (date, rest) = time.split_once('T').unwrap();
    let year: u32 = date[..4].parse().unwrap();
    if &date[5..] != "02-29" {
        assert!(until.starts_with(&format!("{}{}T", year + 20, &date[4..])), "retain_until {until} for a snapshot taken {time}");
        assert_eq!(until.split_once('T').unwrap().1, rest, "time of day kept: {until} vs {time}");
    }
}

/// A plan with `primary`, its copy `offsite`, and component `docs`.
fn copy_fixture(t: &TestDir) -> (Reprise, PathBuf, PathBuf) {
    let src = t.join("src");
    let mut rng = Rng::new(5);
    random_files(&src, &mut rng, 4, 1_000, 30_000);
    stamp_mtimes(&src, &mut rng);
    let plan = t.join("reprise.toml");
    fs::write(
        &plan,
        format!(
            "[repositories.primary]\nurl = \"{}\"\n\n[repositories.offsite]\nurl = \"{}\"\ncopy_of = \"primary\"\n\n[components.docs]\ntype = \"files\"\npaths = [\"{}\"]\n",
            t.join("primary").display(),
            t.join("offsite").display(),
            src.display()
        ),
    )
    .unwrap();
    let r = Reprise::at(t.path(), t.join("primary")).with_env("REPRISE_PLAN", &plan);
    r.init();
    (r, src, plan)
}

/// The bug: into a new destination, `copy --dry-run` announced 8 objects
/// and 0 holds while the copy wrote 12 (keys, index, a hold), and said
/// "destination initialised" while creating nothing.
#[test]
fn copy_dry_run_counts_what_the_copy_writes() {
    let t = TestDir::new("copy-dry");
    let (r, _, _) = copy_fixture(&t);
    r.run(&["backup", "docs"]).ok();
    let id = r.snapshots()[0]["id"].as_str().unwrap().to_owned();
    r.run(&["hold", "add", &id, "--reason", "case 12"]).ok();
    // Not --repo: copy goes from the plan's repositories.
    let r = Reprise { repo: PathBuf::from("primary"), ..r };
    let dry = r.run(&["--json", "copy", "--dry-run"]).ok().json()[0].clone();
    assert!(!t.join("offsite").exists(), "a dry run creates nothing");
    let human = r.run(&["copy", "--dry-run"]).ok();
    assert!(human.stdout.contains("would be initialised") && !human.stdout.contains("destination initialised"), "{}", human.describe());
    let real = r.run(&["--json", "copy"]).ok().json()[0].clone();
    for field in ["objects_copied", "keys_copied", "holds_copied", "snapshots_copied", "packs_written", "wal_copied"] {
        assert_eq!(dry[field], real[field], "{field}: dry run {dry}\nreal {real}");
    }
    assert_eq!(real["holds_copied"], 1);
    assert!(real["keys_copied"].as_u64().unwrap() >= 1);
    // What the copy wrote is what it counted: every object on the destination.
    let written: usize = ["keys", "snapshots", "index", "holds"].iter().map(|d| objects(&t.join("offsite"), d).len()).sum::<usize>() + packs(&t.join("offsite")).len() + 1;
    assert_eq!(real["objects_copied"].as_u64().unwrap() as usize, written, "{real}");
    // Again: nothing left to copy, and the dry run agrees.
    let dry = r.run(&["--json", "copy", "--dry-run"]).ok().json()[0].clone();
    assert_eq!(dry["objects_copied"], 0, "{dry}");
}

#[test]
fn copy_says_which_snapshots_it_leaves_out_because_the_plan_does_not_declare_them() {
    let t = TestDir::new("copy-undeclared");
    let (r, src, _) = copy_fixture(&t);
    r.run(&["backup", "docs"]).ok();
    r.run(&["backup", "--path", src.to_str().unwrap(), "--as", "old-app"]).ok();
    let r = Reprise { repo: PathBuf::from("primary"), ..r };
    let out = r.run(&["copy"]).ok();
    assert!(out.stdout.contains("old-app (1)") && out.stdout.contains("declare them"), "{}", out.describe());
    let v = r.run(&["--json", "copy"]).ok().json();
    assert_eq!(v[0]["not_in_plan"], serde_json::json!({ "old-app": 1 }), "{v}");
    // Naming components is a choice: nothing to say then.
    let v = r.run(&["--json", "copy", "docs"]).ok().json();
    assert_eq!(v[0]["not_in_plan"], serde_json::json!({}), "{v}");
}

#[test]
fn backup_into_a_repository_declared_a_copy_is_refused() {
    let t = TestDir::new("backup-copy");
    let (r, src, _) = copy_fixture(&t);
    r.run(&["backup", "docs"]).ok();
    let r = Reprise { repo: PathBuf::from("primary"), ..r };
    r.run(&["copy"]).ok();
    let before = repo_listing(&t.join("offsite"));
    let offsite = Reprise { repo: PathBuf::from("offsite"), ..r.clone() };
    for args in [vec!["backup", "docs"], vec!["backup", "--path", src.to_str().unwrap()]] {
        let out = offsite.run(&args).expect_code(2);
        out.assert_one_line_error();
        assert!(out.stderr.contains("copy of 'primary'") && out.stderr.contains("--into-copy"), "{}", out.describe());
    }
    // The URL of the copy is the copy too.
    let by_url = Reprise { repo: t.join("offsite"), ..r.clone() };
    by_url.run(&["backup", "docs"]).expect_code(2);
    assert_eq!(repo_listing(&t.join("offsite")), before, "nothing written into the copy");
    // Asked for by name, it is done, with a warning.
    let out = offsite.run(&["backup", "docs", "--into-copy"]).ok();
    assert!(out.stderr.contains("warning"), "{}", out.describe());
}

/// Sibling of `init` into a non-empty directory: the first copy into a
/// directory holding other files is refused the same way.
#[test]
fn copy_into_a_non_empty_unrelated_directory_is_refused() {
    let t = TestDir::new("copy-nonempty");
    let (r, _, _) = copy_fixture(&t);
    r.run(&["backup", "docs"]).ok();
    write_file(&t.join("offsite/notes.txt"), b"mine\n");
    let before = repo_listing(&t.join("offsite"));
    let r = Reprise { repo: PathBuf::from("primary"), ..r };
    let out = r.run(&["copy"]).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("not empty"), "{}", out.describe());
    assert_eq!(repo_listing(&t.join("offsite")), before);
}

/// The bug: a restore that failed (a path not in the snapshot) left an
/// empty target directory behind.
#[test]
fn failed_restore_leaves_no_empty_target_behind() {
    let t = TestDir::new("restore-target");
    let (r, src, id) = repo_with_snapshot(&t);
    let target = t.join("new/target");
    r.restore(&format!("{id}:no/such/path"), &target, &[] as &[&str]).expect_code(3).assert_one_line_error();
    assert!(!target.exists(), "an empty target was left behind");
    r.restore(&snap_path(&id, &src), &target, &["--include", "not-there"]).expect_code(3).assert_one_line_error();
    assert!(!target.exists(), "an empty target was left behind");
    // An existing empty target stays (it was the user's).
    fs::create_dir_all(&target).unwrap();
    r.restore(&format!("{id}:no/such/path"), &target, &[] as &[&str]).expect_code(3);
    assert!(target.is_dir());
}

/// The bug: `--overwrite` was described as "replace" but merges. It is
/// described as what it does (and `--delta` as what replaces).
#[test]
fn restore_overwrite_is_described_as_the_merge_it_is() {
    let t = TestDir::new("overwrite");
    let (r, src, id) = repo_with_snapshot(&t);
    let help = r.run(&["restore", "--help"]).ok().stdout;
    // The option's own entry (other entries mention it too).
    let entry = help.split("\n      --overwrite").nth(1).unwrap_or_default();
    let entry: Vec<&str> = entry.split("\n      --").next().unwrap_or_default().split_whitespace().collect();
    let entry = entry.join(" ");
    assert!(entry.contains("kept") && entry.contains("merge"), "{entry}\n{help}");
    let target = t.join("target");
    write_file(&target.join("mine.txt"), b"mine\n");
    let out = r.restore(&snap_path(&id, &src), &target, &[] as &[&str]).expect_code(2);
    assert!(out.stderr.contains("others are kept") && out.stderr.contains("--delta"), "{}", out.describe());
    r.restore(&snap_path(&id, &src), &target, &["--overwrite"]).ok();
    assert_eq!(fs::read(target.join("mine.txt")).unwrap(), b"mine\n", "--overwrite merges");
    r.restore(&snap_path(&id, &src), &target, &["--delta"]).ok();
    assert!(!target.join("mine.txt").exists(), "--delta makes the target exactly the snapshot");
    assert_trees_equal_with(&src, &target, &Compare { owners: is_root(), ..Compare::default() });
}

/// The bug: `backup --stdin` of empty input succeeded silently (a dump
/// that failed at once looked like a backup).
#[test]
fn empty_stdin_backup_is_refused_unless_allowed() {
    let t = TestDir::new("stdin-empty");
    let (r, _, _) = repo_with_snapshot(&t);
    let before = repo_listing(&r.repo);
    let out = r.run_input(&["backup", "--stdin"], Some(b"")).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("--allow-empty"), "{}", out.describe());
    assert_eq!(repo_listing(&r.repo), before, "nothing written");
    r.run_input(&["backup", "--stdin", "--allow-empty"], Some(b"")).ok();
    let data = b"pg_dump output\n".repeat(1000);
    let id = id_of(&r.run_input(&["--json", "backup", "--stdin", "--stdin-name", "dump.sql"], Some(&data)).ok().json());
    r.restore(&id, &t.join("out"), &[] as &[&str]).ok();
    assert_eq!(fs::read(t.join("out/dump.sql")).unwrap(), data);
}

/// The bug: the README's `check --read-data-subset 1/7   # a seventh of
/// the data each day` read the same seventh every day. `auto/M` reads the
/// group of the day, and the M groups cover every pack once.
#[test]
fn check_read_data_subset_auto_rotates_by_day() {
    let t = TestDir::new("subset-auto");
    let r = Reprise::new(t.path());
    r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    let src = t.join("src");
    let mut rng = Rng::new(77);
    random_files(&src, &mut rng, 12, 300_000, 600_000);
    r.backup_paths(&[&src]);
    let all = packs(&r.repo);
    assert!(all.len() >= 6, "the test needs packs in several groups: {}", all.len());
    let group_of = |p: &String, m: u32| u32::from_str_radix(&p.rsplit('/').next().unwrap()[..2], 16).unwrap() * m / 256 + 1;
    let days = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 86_400;
    let today = u32::try_from(days % 3).unwrap() + 1;
    let v = r.check(&["--read-data-subset", "auto/3"]).ok().json();
    // (A run across midnight UTC would see the next group: not in 2 s.)
    assert_eq!(v["read_data_group"], format!("{today}/3"), "{v}");
    assert_eq!(v["packs_read"].as_u64().unwrap() as usize, all.iter().filter(|p| group_of(p, 3) == today).count(), "{v}");
    // The groups of three days read every pack exactly once.
    let read: u64 = (1..=3).map(|n| r.check(&["--read-data-subset", &format!("{n}/3")]).ok().json()["packs_read"].as_u64().unwrap()).sum();
    assert_eq!(read as usize, all.len());
    for bad in ["auto/0", "auto/300", "auto"] {
        r.run(&["check", "--read-data-subset", bad]).expect_code(2).assert_one_line_error();
    }
}

/// The bug: `ls` printed a newline in a name raw (one entry on two lines)
/// and names that are not UTF-8 as U+FFFD, in `--json` too (two different
/// names looked the same; neither could be given back to `restore`).
#[test]
fn ls_escapes_newlines_and_keeps_names_that_are_not_utf8() {
    use base64::Engine as _;
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let t = TestDir::new("ls-names");
    let r = Reprise::new(t.path());
    r.init();
    let src = t.join("src");
    fs::create_dir(&src).unwrap();
    let names: [&[u8]; 5] = [b"line\nbreak", b"latin1-\xe9t\xe9", b"latin1-\xe9t\xe8", b"back\\slash", b"plain"];
    for n in names {
        fs::write(src.join(OsStr::from_bytes(n)), b"x").unwrap();
    }
    std::os::unix::fs::symlink(OsStr::from_bytes(b"to-\xff"), src.join("link")).unwrap();
    let id = id_of(&r.backup_paths(&[&src]));
    let out = r.run(&["ls", &id, src.to_str().unwrap()]).ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1 + names.len() + 1, "one line per entry: {}", out.describe());
    let dir = src.display().to_string();
    for expected in ["line\\nbreak", "latin1-\\xe9t\\xe9", "latin1-\\xe9t\\xe8", "back\\\\slash", "plain"] {
        assert!(lines.contains(&format!("{dir}/{expected}").as_str()), "{expected} not shown losslessly: {}", out.describe());
    }
    assert!(!out.stdout.contains('\u{fffd}'), "{}", out.describe());
    let long = r.run(&["ls", "-l", &id, src.to_str().unwrap()]).ok();
    assert!(long.stdout.contains("-> to-\\xff"), "{}", long.describe());
    // JSON: the bytes of a name that is not UTF-8, exactly.
    let v = r.run(&["--json", "ls", &id, src.to_str().unwrap()]).ok().json();
    let mut seen: Vec<Vec<u8>> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| match e["path_bytes"].as_str() {
            Some(b) => base64::engine::general_purpose::STANDARD.decode(b).unwrap(),
            None => e["path"].as_str().unwrap().as_bytes().to_vec(),
        })
        .collect();
    seen.sort();
    let mut expected: Vec<Vec<u8>> = names.iter().copied().chain([b"link".as_slice()]).map(|n| [src.as_os_str().as_bytes(), b"/", n].concat()).chain([src.as_os_str().as_bytes().to_vec()]).collect();
    expected.sort();
    assert_eq!(seen, expected);
    let link = v.as_array().unwrap().iter().find(|e| e["path"].as_str().unwrap().ends_with("/link")).unwrap();
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(link["target_bytes"].as_str().unwrap()).unwrap(), b"to-\xff");
    // `diff` shows the same names the same way.
    fs::write(src.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")), b"changed").unwrap();
    let id2 = id_of(&r.backup_paths(&[&src]));
    let d = r.run(&["diff", &id, &id2]).ok();
    assert!(d.stdout.contains("M ") && d.stdout.contains("latin1-\\xe9t\\xe9") && !d.stdout.contains('\u{fffd}'), "{}", d.describe());
    let dj = r.run(&["--json", "diff", &id, &id2]).ok().json();
    let modified = dj.as_array().unwrap().iter().find(|c| c["change"] == "modified").unwrap();
    assert!(base64::engine::general_purpose::STANDARD.decode(modified["path_bytes"].as_str().unwrap()).unwrap().ends_with(b"/latin1-\xe9t\xe9"), "{dj}");
}

/// The bug: `status` said "off-site: no" in the summary and "off-site
/// unknown" on the repository line below it, and the repository lines had
/// no labels.
#[test]
fn status_off_site_summary_agrees_with_the_repository_lines() {
    let t = TestDir::new("status-offsite");
    let (r, _, plan) = copy_fixture(&t);
    r.run(&["backup", "docs"]).ok();
    let r = Reprise { repo: PathBuf::from("primary"), ..r };
    r.run(&["copy"]).ok();
    // No site anywhere: unknown, on every line.
    let out = r.run(&["status", "docs"]).ok();
    let summary = out.stdout.lines().find(|l| l.trim_start().starts_with("copies:")).unwrap();
    assert!(summary.contains("off-site: unknown"), "{}", out.describe());
    let copy_line = out.stdout.lines().find(|l| l.contains("copy 'offsite'")).unwrap_or_else(|| panic!("{}", out.describe()));
    assert!(copy_line.contains("media local-disk") && copy_line.contains("site unspecified") && copy_line.contains("off-site unknown"), "{copy_line}");
    assert_eq!(r.run(&["--json", "status", "docs"]).ok().json()[0]["copies"]["off_site"], serde_json::Value::Null);
    // Sites on both, different: yes everywhere.
    let text = fs::read_to_string(&plan).unwrap().replace("copy_of = \"primary\"", "copy_of = \"primary\"\nsite = \"lyon\"").replace("[repositories.offsite]", "[repositories.offsite]\n").replacen("\n\n[repositories.offsite]", "\nsite = \"paris\"\n\n[repositories.offsite]", 1);
    fs::write(&plan, text).unwrap();
    let out = r.run(&["status", "docs"]).ok();
    assert!(out.stdout.contains("off-site: yes") && out.stdout.contains("copy 'offsite': media local-disk, site lyon, off-site yes"), "{}", out.describe());
    assert!(out.stdout.contains("primary 'primary': media local-disk, site paris, off-site no"), "{}", out.describe());
}

/// Sibling of `init` into a non-empty directory, on object storage: a
/// prefix that already holds objects is not a place for a repository.
#[test]
fn init_into_a_non_empty_s3_prefix_is_refused() {
    let t = TestDir::new("init-s3-nonempty");
    let Some(s3) = emulators::moto(t.path()) else { return };
    emulators::create_bucket(&s3, "shared");
    let (status, text) = emulators::http(s3.port, "PUT", "/shared/photos/holiday.jpg", &[], b"not a repository");
    assert_eq!(status, 200, "{text}");
    let creds = |r: Reprise| r.with_env("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID).with_env("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET);
    let taken = creds(Reprise::at(t.path(), PathBuf::from(emulators::s3_url(&s3, "shared", "photos"))));
    let out = taken.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(2);
    out.assert_one_line_error();
    assert!(out.stderr.contains("holiday.jpg"), "{}", out.describe());
    // The whole bucket holds it too; an empty prefix beside it is fine.
    creds(Reprise::at(t.path(), PathBuf::from(emulators::s3_url(&s3, "shared", "")))).run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(2);
    creds(Reprise::at(t.path(), PathBuf::from(emulators::s3_url(&s3, "shared", "repo")))).init();
}

/// `chattr +i DIR` for the life of the guard (even root cannot create or
/// remove entries in it); `None` where the file system does not support it.
struct Immutable(PathBuf);

impl Immutable {
    fn new(dir: &Path) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr").arg("+i").arg(dir).status().is_ok_and(|s| s.success());
        ok.then(|| Immutable(dir.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// The bug: permission errors and a full disk printed `storage: PATH: OS
/// error` with no fix named.
#[test]
fn storage_permission_and_full_disk_errors_name_their_fix() {
    let t = TestDir::new("fixes");
    let (r, src, id) = repo_with_snapshot(&t);
    // Storage refuses: nothing can be created in the repository.
    write_file(&src.join("new.txt"), b"new\n");
    {
        let Some(_guard) = Immutable::new(&r.repo.join("tmp")) else {
            return skip("`chattr +i` is not supported here");
        };
        let out = r.run(&["backup", "--path", src.to_str().unwrap()]).expect_code(5);
        out.assert_one_line_error();
        assert!(out.stderr.contains("; fix: ") && out.stderr.contains("access"), "{}", out.describe());
        // The restore target refuses.
        let locked = t.join("locked");
        fs::create_dir(&locked).unwrap();
        let _g2 = Immutable::new(&locked).unwrap();
        let out = r.restore(&snap_path(&id, &src), &locked, &[] as &[&str]).expect_code(5);
        out.assert_one_line_error();
        assert!(out.stderr.contains("; fix: "), "{}", out.describe());
    }
    // A full disk (a 2 MiB tmpfs).
    let mnt = t.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"]).arg(&mnt).status().is_ok_and(|s| s.success());
    if !mounted {
        return skip("cannot mount a tmpfs (needs root)");
    }
    let full = Reprise::at(t.path(), mnt.join("repo"));
    full.init();
    let big = t.join("big");
    write_random_file(&big.join("ten-megabytes"), &mut Rng::new(3), 10_000_000);
    let out = full.run(&["backup", "--path", big.to_str().unwrap()]);
    let _ = std::process::Command::new("umount").arg("-l").arg(&mnt).status();
    assert_eq!(out.code, 7, "{}", out.describe());
    out.assert_one_line_error();
    assert!(out.stderr.contains("; fix: free space"), "{}", out.describe());
}

/// The README suggested a later prune's `--grace` decides when marked packs
/// go. The period is the marking prune's, recorded in its mark: a later
/// prune with a shorter `--grace` (even 0) does not delete them early.
#[test]
fn prune_grace_is_the_one_recorded_in_the_mark() {
    let t = TestDir::new("grace");
    let (r, src, id) = repo_with_snapshot(&t);
    write_file(&src.join("more.bin"), &Rng::new(8).bytes(200_000));
    r.backup_paths(&[&src]);
    // Snapshot 1 removed by hand: the packs only it used become unused.
    delete_object(&r.repo, &format!("snapshots/{id}"));
    let marked = r.run(&["--json", "prune"]).ok().json();
    let condemned = marked["pending_packs"].as_u64().unwrap();
    assert!(condemned > 0, "{marked}");
    let before = packs(&r.repo);
    let later = r.run(&["--json", "prune", "--grace", "0"]).ok().json();
    assert_eq!(later["deleted_packs"], 0, "a later --grace 0 deleted packs marked with 24h: {later}");
    assert_eq!(packs(&r.repo), before);
    assert_eq!(later["pending_packs"].as_u64().unwrap(), condemned, "{later}");
    let human = r.run(&["prune", "--dry-run"]).ok();
    assert!(human.stdout.contains("grace period recorded in the mark"), "{}", human.describe());
}
