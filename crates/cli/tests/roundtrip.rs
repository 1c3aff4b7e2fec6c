//! Backup → restore is bit-identical, and the inspection commands (`ls`,
//! `diff`, `stats`, `snapshots`) describe what was stored.

mod common;

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use common::*;
use serde_json::Value;

/// A few MB with the same variety as the rich tree, minus the 20 MB file.
fn small_tree(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    write_file(&root.join("docs/readme.txt"), &rng.text(4_000));
    write_file(&root.join("docs/a/b/deep.txt"), &rng.text(900));
    write_file(&root.join("docs/a/b/c/deeper.bin"), &rng.bytes(70_000));
    write_file(&root.join("docs/a/other.txt"), &rng.text(100));
    write_file(&root.join("empty"), b"");
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    for i in 0..12 {
        write_file(&root.join(format!("many/small-{i:02}.dat")), &{
            let n = rng.range(1, 60_000) as usize;
            rng.mixed(n)
        });
    }
    write_file(&root.join("modes/script-0755"), b"#!/bin/sh\n");
    chmod(&root.join("modes/script-0755"), 0o755);
    write_file(&root.join("big.bin"), &rng.bytes(1_500_000));
    std::os::unix::fs::symlink("docs/readme.txt", root.join("link")).unwrap();
    stamp_mtimes(root, &mut rng);
}

fn mtime_ns(p: &Path) -> i64 {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(p).unwrap();
    md.mtime() * 1_000_000_000 + md.mtime_nsec()
}

fn entry<'a>(list: &'a [Value], path: &str) -> &'a Value {
    list.iter().find(|e| e["path"] == path).unwrap_or_else(|| panic!("{path} not listed in {}", Value::from(list.to_vec())))
}

#[test]
fn rich_tree_round_trips_bit_identical() {
    let t = TestDir::new("rich");
    let src = t.join("src");
    build_rich_tree(&src, &t.join("outside"), 1);
    let r = Reprise::new(t.path());
    r.init();
    let out = r.backup_paths(&[&src]);
    let id = id_of(&out);
    assert_eq!(summary(&out, "errors"), 0, "{out}");
    assert!(out["errors"].as_array().unwrap().is_empty(), "{out}");

    // The backed-up directory, restored straight into the target.
    let target = t.join("restored");
    r.restore(&snap_path(&id, &src), &target, &[] as &[&str]).ok();
    assert_trees_equal(&src, &target);

    // The whole snapshot: the tree starts at `/`.
    let whole = t.join("whole");
    r.restore(&id, &whole, &[] as &[&str]).ok();
    assert_trees_equal(&src, &whole.join(src.strip_prefix("/").unwrap()));

    // `ls --json` describes the same entries.
    let ls = r.run(&["--json", "ls", &id]).ok().json();
    let list = ls.as_array().unwrap();
    let p = |rel: &str| format!("{}/{rel}", src.display());
    let big = entry(list, &p("big.bin"));
    assert_eq!((big["type"].as_str(), big["size"].as_u64(), big["mode"].as_u64()), (Some("file"), Some(20_000_000), Some(0o644)));
    assert_eq!(entry(list, &p("link-rel"))["target"], "docs/readme.txt");
    assert_eq!(entry(list, &p("link-rel"))["type"], "symlink");
    assert_eq!(entry(list, &p("modes/setuid-4755"))["mode"], 0o4755);
    assert_eq!(entry(list, &p("modes/setgid-dir"))["mode"], 0o2775);
    assert_eq!(entry(list, &p("modes/setgid-dir"))["type"], "dir");
    assert_eq!(entry(list, &p("empty"))["size"], 0);
    assert!(entry(list, &p("docs/readme.txt"))["mtime"].as_str().unwrap().starts_with("1967-"), "pre-1970 mtime");
    // Every entry of the source is listed, and nothing else below it.
    let listed: BTreeSet<String> = list.iter().filter_map(|e| e["path"].as_str()).filter(|s| s.starts_with(&p(""))).map(str::to_owned).collect();
    let mut expected = BTreeSet::new();
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let path = e.path();
            expected.insert(String::from_utf8_lossy(path.as_os_str().as_bytes()).into_owned());
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path);
            }
        }
    }
    assert_eq!(listed, expected);

    // `ls PATH` limits the listing; `--long` shows type, mode and size.
    let docs = r.run(&["--json", "ls", &id, &format!("{}/docs/a", src.display())]).ok().json();
    assert!(docs.as_array().unwrap().iter().all(|e| e["path"].as_str().unwrap().starts_with(&p("docs/a"))), "{docs}");
    assert!(docs.as_array().unwrap().len() >= 6, "{docs}");
    let long = r.run(&["ls", "--long", &id]).ok().stdout;
    let line = long.lines().find(|l| l.ends_with("/big.bin")).unwrap_or_else(|| panic!("{long}"));
    assert!(line.starts_with("-0644") && line.contains(" 20000000 "), "{line}");
    let line = long.lines().find(|l| l.contains("/link-rel")).unwrap();
    assert!(line.starts_with('l') && line.ends_with("-> docs/readme.txt"), "{line}");
}

/// FIFOs (restoring one once hung forever: setting its mtime opened it),
/// hard-linked FIFOs and symlinks, and a file of mode 000.
#[test]
fn special_files_round_trip() {
    let t = TestDir::new("fifo");
    let src = t.join("src");
    write_file(&src.join("before"), b"a file next to the FIFO\n");
    mkfifo(&src.join("fifo"));
    chmod(&src.join("fifo"), 0o640);
    fs::hard_link(src.join("fifo"), src.join("fifo-second-name")).unwrap();
    std::os::unix::fs::symlink("before", src.join("symlink")).unwrap();
    fs::hard_link(src.join("symlink"), src.join("symlink-second-name")).unwrap();
    write_file(&src.join("mode-000"), b"nobody may read this\n");
    stamp_mtimes(&src, &mut Rng::new(10));
    chmod(&src.join("mode-000"), 0o000);
    let r = Reprise::new(t.path());
    r.init();
    let id = id_of(&r.backup_paths(&[&src]));
    let ls = r.run(&["--json", "ls", &id]).ok().json();
    assert_eq!(entry(ls.as_array().unwrap(), &format!("{}/fifo", src.display()))["type"], "fifo");
    let target = t.join("out");
    r.with_timeout(std::time::Duration::from_secs(20)).restore(&snap_path(&id, &src), &target, &[] as &[&str]).ok();
    assert_trees_equal(&src, &target);
    let ino = |p: &str| std::os::unix::fs::MetadataExt::ino(&fs::symlink_metadata(target.join(p)).unwrap());
    assert_eq!(ino("fifo"), ino("fifo-second-name"), "hard-linked FIFO");
    assert_eq!(ino("symlink"), ino("symlink-second-name"), "hard-linked symlink");
}

#[test]
fn restore_of_a_subpath_a_single_file_and_includes() {
    let t = TestDir::new("subpath");
    let src = t.join("src");
    small_tree(&src, 2);
    let r = Reprise::new(t.path());
    r.init();
    let id = id_of(&r.backup_paths(&[&src]));

    // A directory: its contents land in the target, with its own metadata.
    let sub = t.join("sub");
    r.restore(&snap_path(&id, &src.join("docs/a")), &sub, &[] as &[&str]).ok();
    assert_trees_equal(&src.join("docs/a"), &sub);

    // A single file: restored into the target under its name.
    let one = t.join("one");
    r.restore(&snap_path(&id, &src.join("docs/readme.txt")), &one, &[] as &[&str]).ok();
    let names: Vec<_> = fs::read_dir(&one).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, vec![OsStr::new("readme.txt").to_owned()]);
    assert!(files_equal(&src.join("docs/readme.txt"), &one.join("readme.txt")));
    let (a, b) = (fs::metadata(src.join("docs/readme.txt")).unwrap(), fs::metadata(one.join("readme.txt")).unwrap());
    assert_eq!(a.modified().unwrap(), b.modified().unwrap());

    // --include: only those paths (and the directories leading to them).
    let inc = t.join("inc");
    r.restore(&snap_path(&id, &src), &inc, &["--include", "docs/a/b", "--include", "/many/small-03.dat"]).ok();
    assert_trees_equal(&src.join("docs/a/b"), &inc.join("docs/a/b"));
    assert!(files_equal(&src.join("many/small-03.dat"), &inc.join("many/small-03.dat")));
    let mut present = BTreeSet::new();
    let mut stack = vec![inc.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(&inc).unwrap().to_string_lossy().into_owned();
            if !rel.starts_with("docs/a/b/") {
                present.insert(rel);
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    let expected: BTreeSet<String> = ["docs", "docs/a", "docs/a/b", "many", "many/small-03.dat"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(present, expected, "--include restored more (or less) than asked");

    // A path that is not in the snapshot: exit 3, one line.
    let missing = r.restore(&format!("{id}:no/such/dir"), &t.join("nothing"), &[] as &[&str]).expect_code(3);
    missing.assert_one_line_error();
}

#[test]
fn stdin_backup_round_trips() {
    let t = TestDir::new("stdin");
    let r = Reprise::new(t.path());
    r.init();
    let data = Rng::new(3).mixed(5_000_000);
    let out = r.run_input(&["--json", "backup", "--stdin", "--stdin-name", "db.dump", "--as", "postgres", "--tag", "nightly"], Some(&data)).ok().json();
    let id = id_of(&out);
    assert_eq!((summary(&out, "files"), summary(&out, "bytes"), summary(&out, "files_read")), (1, 5_000_000, 1));
    assert!(summary(&out, "stored_bytes") < 5_000_000, "mixed data compresses: {out}");

    let snaps = r.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!((snaps[0]["component"].as_str(), snaps[0]["kind"].as_str()), (Some("postgres"), Some("stdin")));
    assert_eq!(snaps[0]["tags"], serde_json::json!(["nightly"]));

    let ls = r.run(&["--json", "ls", &id]).ok().json();
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    assert_eq!((ls[0]["path"].as_str(), ls[0]["size"].as_u64()), (Some("/db.dump"), Some(5_000_000)));

    let target = t.join("out");
    r.restore(&id, &target, &[] as &[&str]).ok();
    assert_eq!(fs::read(target.join("db.dump")).unwrap(), data);
    let target2 = t.join("out2");
    r.restore(&format!("{id}:db.dump"), &target2, &[] as &[&str]).ok();
    assert_eq!(fs::read(target2.join("db.dump")).unwrap(), data);

    // The same stream again: every chunk deduplicated.
    let again = r.run_input(&["--json", "backup", "--stdin", "--stdin-name", "db.dump", "--as", "postgres"], Some(&data)).ok().json();
    assert_eq!(summary(&again, "new_bytes"), 0, "{again}");
    // Only the new root tree (its file node lists every chunk ID) is stored.
    assert!(summary(&again, "stored_bytes") < 64 * 1024, "{again}");

    // An empty stream is refused unless asked for (a dump that failed at
    // once); asked for, it is a valid (empty) file.
    r.run_input(&["backup", "--stdin", "--stdin-name", "empty.dump"], Some(b"")).expect_code(2);
    let empty = r.run_input(&["--json", "backup", "--stdin", "--stdin-name", "empty.dump", "--allow-empty"], Some(b"")).ok().json();
    let target3 = t.join("out3");
    r.restore(&id_of(&empty), &target3, &[] as &[&str]).ok();
    assert_eq!(fs::read(target3.join("empty.dump")).unwrap(), b"");
}

#[test]
fn unchanged_files_are_not_read_again() {
    let t = TestDir::new("cache");
    let src = t.join("src");
    small_tree(&src, 4);
    let r = Reprise::new(t.path());
    r.init();
    settle(&src);
    let first = r.backup_paths(&[&src]);
    let files = summary(&first, "files");
    assert_eq!(summary(&first, "files_read"), files);

    let second = r.backup_paths(&[&src]);
    assert_eq!(summary(&second, "files"), files);
    assert_eq!(summary(&second, "bytes"), summary(&first, "bytes"));
    assert_eq!(summary(&second, "files_read"), 0, "the files cache should answer for every unchanged file: {second}");
    assert_eq!(summary(&second, "new_bytes"), 0, "{second}");
    assert!(summary(&second, "stored_bytes") < 16 * 1024, "only a few tree blobs may be new: {second}");
    assert_eq!(second["header"]["parent"], first["id"], "{second}");

    // One file changes: exactly one is read.
    let f = src.join("many/small-05.dat");
    let mut data = fs::read(&f).unwrap();
    data.extend_from_slice(b"appended");
    fs::write(&f, &data).unwrap();
    let third = r.backup_paths(&[&src]);
    assert_eq!(summary(&third, "files_read"), 1, "{third}");

    // A lost cache is rebuilt from the parent snapshot (full-access key).
    fs::remove_dir_all(t.join("cache")).unwrap();
    let fourth = r.backup_paths(&[&src]);
    assert_eq!(summary(&fourth, "files_read"), 0, "cache should be rebuilt from the parent snapshot: {fourth}");

    // --no-cache reads everything but stores nothing new.
    let fifth = r.backup(&[OsStr::new("--no-cache"), OsStr::new("--path"), src.as_os_str()]);
    assert_eq!(summary(&fifth, "files_read"), files, "{fifth}");
    assert_eq!(summary(&fifth, "new_bytes"), 0, "{fifth}");

    let out = t.join("out");
    r.restore(&snap_path(&id_of(&fifth), &src), &out, &[] as &[&str]).ok();
    assert_trees_equal(&src, &out);
}

#[test]
fn diff_lists_added_removed_modified_and_metadata_changes() {
    let t = TestDir::new("diff");
    let src = t.join("src");
    small_tree(&src, 5);
    let r = Reprise::new(t.path());
    r.init();
    let a = id_of(&r.backup_paths(&[&src]));

    write_file(&src.join("new.txt"), b"new\n");
    write_file(&src.join("newdir/x"), b"x\n");
    fs::remove_file(src.join("many/small-03.dat")).unwrap();
    fs::remove_dir_all(src.join("docs/a/b/c")).unwrap();
    let readme = src.join("docs/readme.txt");
    let mut text = fs::read(&readme).unwrap();
    text[0] ^= 0x20; // same size, different content
    fs::write(&readme, &text).unwrap();
    chmod(&src.join("modes/script-0755"), 0o700);
    let b = id_of(&r.backup_paths(&[&src]));

    let list = r.run(&["--json", "diff", &a, &b]).ok().json();
    let got: BTreeSet<(String, String)> =
        list.as_array().unwrap().iter().map(|e| (e["change"].as_str().unwrap().to_owned(), e["path"].as_str().unwrap().to_owned())).collect();
    let s = |rel: &str| format!("{}/{rel}", src.display());
    let expected: BTreeSet<(String, String)> = [
        ("added", s("new.txt")),
        ("added", s("newdir")),
        ("added", s("newdir/x")),
        ("removed", s("many/small-03.dat")),
        ("removed", s("docs/a/b/c")),
        ("removed", s("docs/a/b/c/deeper.bin")),
        ("modified", s("docs/readme.txt")),
        ("metadata", s("modes/script-0755")),
    ]
    .into_iter()
    .map(|(c, p)| (c.to_owned(), p))
    .collect();
    assert_eq!(got, expected);
    let dir_flag = list.as_array().unwrap().iter().find(|e| e["path"] == s("newdir")).unwrap()["dir"].clone();
    assert_eq!(dir_flag, true);

    let human = r.run(&["diff", &a, &b]).ok().stdout;
    assert!(human.contains(&format!("+ {}\n", s("new.txt"))), "{human}");
    assert!(human.contains(&format!("- {}\n", s("many/small-03.dat"))), "{human}");
    assert!(human.contains(&format!("M {}\n", s("docs/readme.txt"))), "{human}");
    assert!(human.contains("3 added, 3 removed, 1 modified, 1 metadata only"), "{human}");

    // Identical snapshots: no differences.
    let same = r.run(&["--json", "diff", &a, &a]).ok().json();
    assert_eq!(same, serde_json::json!([]));
}

#[test]
fn stats_add_up() {
    let t = TestDir::new("stats");
    let src = t.join("src");
    small_tree(&src, 6);
    let r = Reprise::new(t.path());
    r.init();
    let one = r.backup_paths(&[&src]);
    write_file(&src.join("more.bin"), &Rng::new(66).bytes(300_000));
    let two = r.backup_paths(&[&src]);
    let s = r.run(&["--json", "stats"]).ok().json();
    let packs = packs(&r.repo);
    assert_eq!(s["snapshots"], 2, "{s}");
    assert_eq!(s["packs"].as_u64().unwrap(), packs.len() as u64, "{s}");
    let on_disk: u64 = packs.iter().map(|p| size_of(&r.repo, p)).sum();
    assert_eq!(s["stored_bytes"].as_u64().unwrap(), on_disk, "{s}");
    assert_eq!(s["restore_bytes"].as_u64().unwrap(), summary(&one, "bytes") + summary(&two, "bytes"), "{s}");
    assert!(s["data_blobs"].as_u64().unwrap() > 0 && s["tree_blobs"].as_u64().unwrap() > 0, "{s}");
    let unique = s["unique_bytes"].as_u64().unwrap();
    assert!(unique >= summary(&two, "bytes") && unique < summary(&one, "bytes") + summary(&two, "bytes"), "dedup: {s}");
    let ratio = s["ratio"].as_f64().unwrap();
    let expect = s["restore_bytes"].as_f64().unwrap() / on_disk as f64;
    assert!((ratio - expect).abs() < 1e-9, "{s}");
    // Stored bytes of the snapshots = pack bytes on disk.
    assert_eq!(summary(&one, "stored_bytes") + summary(&two, "stored_bytes"), on_disk);
}

#[test]
fn several_paths_in_one_backup() {
    let t = TestDir::new("multi");
    let a = t.join("x/first");
    let b = t.join("y/z/second");
    let single = t.join("y/alone.txt");
    small_tree(&a, 7);
    small_tree(&b, 8);
    write_file(&single, b"a single file as a backup path\n");
    let r = Reprise::new(t.path());
    r.init();
    let out = r.backup_paths(&[&a, &b, &single]);
    let id = id_of(&out);
    let target = t.join("out");
    r.restore(&id, &target, &[] as &[&str]).ok();
    let under = |p: &Path| target.join(p.strip_prefix("/").unwrap());
    assert_trees_equal(&a, &under(&a));
    assert_trees_equal(&b, &under(&b));
    assert!(files_equal(&single, &under(&single)));
    // Nothing of y/ but what was asked for.
    let mut names: Vec<_> = fs::read_dir(under(&t.join("y"))).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    assert_eq!(names, vec![OsStr::new("alone.txt").to_owned(), OsStr::new("z").to_owned()]);

    let ls = r.run(&["--json", "ls", &id]).ok().json();
    let files = ls.as_array().unwrap().iter().filter(|e| e["type"] == "file").count() as u64;
    assert_eq!(summary(&out, "files"), files);
}

#[test]
fn excludes_leave_matching_entries_out() {
    let t = TestDir::new("exclude");
    let src = t.join("src");
    small_tree(&src, 9);
    write_file(&src.join("junk.tmp"), b"tmp\n");
    write_file(&src.join("docs/also.tmp"), b"tmp\n");
    write_file(&src.join("cache/big"), &[7u8; 10_000]);
    let r = Reprise::new(t.path());
    r.init();
    let cache_glob = format!("{}/cache", src.display());
    let id = id_of(&r.backup(&["--path", src.to_str().unwrap(), "--exclude", "*.tmp", "--exclude", &cache_glob]));
    let out = t.join("out");
    r.restore(&snap_path(&id, &src), &out, &[] as &[&str]).ok();
    // Remove the excluded entries from the source (keeping the directory
    // mtimes) to compare what is left.
    let docs_mtime = mtime_ns(&src.join("docs"));
    fs::remove_file(src.join("junk.tmp")).unwrap();
    fs::remove_file(src.join("docs/also.tmp")).unwrap();
    fs::remove_dir_all(src.join("cache")).unwrap();
    set_mtime_ns(&src.join("docs"), docs_mtime);
    assert_trees_equal_with(&src, &out, &Compare { owners: is_root(), ..Compare::default() });
}

/// The comparator once took a file it could not read as equal to anything
/// (and two unreadable files as equal to each other): a restore that
/// produced unreadable files would have compared clean.
#[test]
fn unreadable_files_are_a_difference_in_the_tree_comparison() {
    let t = TestDir::new("harness-unreadable");
    write_file(&t.join("a/doc"), b"content\n");
    write_file(&t.join("b/doc"), b"content\n");
    assert_eq!(content_difference(&t.join("a/doc"), &t.join("b/doc")), None);
    assert!(files_equal(&t.join("a/doc"), &t.join("b/doc")));
    // Missing on one side, on both sides.
    assert!(content_difference(&t.join("a/doc"), &t.join("b/none")).is_some_and(|d| d.contains("cannot be read")));
    assert!(content_difference(&t.join("a/none"), &t.join("b/none")).is_some());
    assert!(!files_equal(&t.join("a/none"), &t.join("b/none")), "two missing files are not equal files");
    // Opens but cannot be read (EISDIR): as root, the one unreadable kind
    // of path there is.
    fs::create_dir_all(t.join("c/dir")).unwrap();
    assert!(content_difference(&t.join("a/doc"), &t.join("c/dir")).is_some_and(|d| d.contains("read error")));
    assert!(content_difference(&t.join("c/dir"), &t.join("c/dir")).is_some(), "a path that cannot be read is never equal to itself");
    if !is_root() {
        chmod(&t.join("b/doc"), 0o000);
        assert!(content_difference(&t.join("a/doc"), &t.join("b/doc")).is_some());
        let d = compare_trees(&t.join("a"), &t.join("b"), &Compare::default());
        assert!(d.iter().any(|x| x.contains("cannot be read")), "{d:?}");
        chmod(&t.join("b/doc"), 0o644);
    }
}

/// The comparator itself must see every kind of difference, or every
/// round-trip assertion above would be vacuous.
#[test]
fn harness_detects_differences() {
    type Change<'a> = Box<dyn Fn(&Path) + 'a>;
    let t = TestDir::new("harness");
    let a = t.join("a");
    small_tree(&a, 11);
    write_file(&a.join("h1"), b"linked\n");
    fs::hard_link(a.join("h1"), a.join("h2")).unwrap();
    let copy = |name: &str| {
        let b = t.join(name);
        let st = std::process::Command::new("cp").arg("-a").arg(&a).arg(&b).status().unwrap();
        assert!(st.success());
        assert!(compare_trees(&a, &b, &Compare { root_meta: true, owners: true, ..Compare::default() }).is_empty(), "cp -a copy differs");
        b
    };
    let cases: Vec<(&str, Change)> = vec![
        (
            "content",
            Box::new(|b: &Path| {
                let p = b.join("big.bin");
                let m = mtime_ns(&p);
                let mut d = fs::read(&p).unwrap();
                d[1_000_000] ^= 1;
                fs::write(&p, d).unwrap();
                set_mtime_ns(&p, m);
            }),
        ),
        ("mode", Box::new(|b: &Path| chmod(&b.join("modes/script-0755"), 0o775))),
        ("mtime", Box::new(|b: &Path| set_mtime_ns(&b.join("docs/a"), mtime_ns(&b.join("docs/a")) + 1))),
        (
            "symlink target",
            Box::new(|b: &Path| {
                let m = mtime_ns(b);
                fs::remove_file(b.join("link")).unwrap();
                std::os::unix::fs::symlink("docs/other", b.join("link")).unwrap();
                set_mtime_ns(&b.join("link"), mtime_ns(&t.join("a/link")));
                set_mtime_ns(b, m);
            }),
        ),
        (
            "hard link",
            Box::new(|b: &Path| {
                let m = mtime_ns(b);
                let mt = mtime_ns(&b.join("h2"));
                fs::remove_file(b.join("h2")).unwrap();
                fs::copy(b.join("h1"), b.join("h2")).unwrap();
                set_mtime_ns(&b.join("h2"), mt);
                set_mtime_ns(b, m);
            }),
        ),
        (
            "extra file",
            Box::new(|b: &Path| {
                let m = mtime_ns(&b.join("docs"));
                write_file(&b.join("docs/extra"), b"");
                set_mtime_ns(&b.join("docs"), m);
            }),
        ),
    ];
    for (i, (what, change)) in cases.iter().enumerate() {
        let b = copy(&format!("b{i}"));
        change(&b);
        let d = compare_trees(&a, &b, &Compare { root_meta: true, owners: true, ..Compare::default() });
        assert!(!d.is_empty(), "a changed {what} went unnoticed");
    }
}

#[test]
fn many_small_files_and_an_empty_backup_path() {
    let t = TestDir::new("many");
    let src = t.join("src");
    let mut rng = Rng::new(12);
    for d in 0..40 {
        for f in 0..50 {
            let n = rng.below(3_000) as usize;
            write_file(&src.join(format!("d{d:02}/f{f:03}")), &rng.mixed(n));
        }
    }
    stamp_mtimes(&src, &mut rng);
    let empty = t.join("empty-source");
    fs::create_dir(&empty).unwrap();
    set_mtime_ns(&empty, 1_600_000_000_123_456_789);
    let r = Reprise::new(t.path());
    r.init();
    let out = r.backup_paths(&[&src, &empty]);
    assert_eq!(summary(&out, "files"), 2_000, "{out}");
    let id = id_of(&out);
    let target = t.join("out");
    r.restore(&snap_path(&id, &src), &target, &[] as &[&str]).ok();
    assert_trees_equal(&src, &target);
    let target = t.join("out-empty");
    r.restore(&snap_path(&id, &empty), &target, &[] as &[&str]).ok();
    assert_trees_equal(&empty, &target);
    // An empty directory alone is a valid backup.
    let only_empty = r.backup_paths(&[&empty]);
    assert_eq!(summary(&only_empty, "files"), 0);
}

#[test]
fn overwrite_never_writes_through_symlinks_in_the_target() {
    let t = TestDir::new("symlink-target");
    let src = t.join("src");
    small_tree(&src, 13);
    let r = Reprise::new(t.path());
    r.init();
    let id = id_of(&r.backup_paths(&[&src]));
    // A target prepared by someone else: names of the snapshot are symlinks
    // to files and directories outside it.
    let victim = t.join("victim");
    write_file(&victim.join("file"), b"must stay\n");
    fs::create_dir_all(victim.join("dir")).unwrap();
    let target = t.join("target");
    fs::create_dir_all(target.join("many")).unwrap();
    std::os::unix::fs::symlink(victim.join("file"), target.join("big.bin")).unwrap();
    std::os::unix::fs::symlink(victim.join("file"), target.join("many/small-00.dat")).unwrap();
    std::os::unix::fs::symlink(victim.join("dir"), target.join("docs")).unwrap();
    r.restore(&snap_path(&id, &src), &target, &["--overwrite"]).ok();
    assert_eq!(fs::read(victim.join("file")).unwrap(), b"must stay\n");
    assert_eq!(fs::read_dir(victim.join("dir")).unwrap().count(), 0, "nothing may be written into the symlinked directory");
    assert_trees_equal(&src, &target);
}

#[test]
fn include_of_a_path_not_in_the_snapshot_is_an_error() {
    let t = TestDir::new("include-typo");
    let src = t.join("src");
    small_tree(&src, 14);
    let r = Reprise::new(t.path());
    r.init();
    let id = id_of(&r.backup_paths(&[&src]));
    let out = r.restore(&snap_path(&id, &src), &t.join("out"), &["--include", "docs/a/typo"]).expect_code(3);
    out.assert_one_line_error();
    assert!(out.stderr.contains("docs/a/typo"), "{}", out.describe());
}

/// A file over the split threshold (64 MiB) is restored by several threads
/// writing pieces at their offsets: the result is the same bytes.
#[test]
fn a_large_file_restores_through_parallel_pieces() {
    let t = TestDir::new("large-file");
    let src = t.join("src");
    fs::create_dir_all(&src).unwrap();
    let mut rng = Rng::new(99);
    write_random_file(&src.join("segment.1"), &mut rng, 70 * 1024 * 1024 + 12_345);
    write_random_file(&src.join("small"), &mut rng, 5_000);
    let r = Reprise::new(t.path());
    r.init();
    let id = id_of(&r.backup_paths(&[&src]));
    let target = t.join("restored");
    r.restore(&snap_path(&id, &src), &target, &["--threads", "3"]).ok();
    assert_trees_equal(&src, &target);
}
