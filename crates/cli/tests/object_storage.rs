//! Repositories in object storage, against real servers started by the
//! test: an S3 server (moto) and Azure Blob Storage (Azurite).
//!
//! For each service: init, two backups (the second one deduplicated),
//! `check --read-data`, a bit-identical restore; a second `init` refused;
//! a missing bucket, wrong credentials and an unreachable endpoint each
//! give one clear line with the documented exit code; the secret never
//! appears in any output.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use common::emulators;
use common::fault_proxy::{Fault, FaultProxy, Seen};
use common::*;
use reprise_engine::backends::{Backend, Credentials, ErrorKind, ObjectBackend, ObjectInfo, ObjectKind, ObjectUrl};

const NOT_FOUND: i32 = 3;
const UNAVAILABLE: i32 = 9;
const USAGE: i32 = 2;
const PERMISSION: i32 = 5;

/// The reprise runner for a repository URL, with the service's credentials.
fn runner(work: &std::path::Path, url: String, creds: &[(&str, &str)]) -> Reprise {
    let mut r = Reprise::at(work, PathBuf::from(url));
    for (k, v) in creds {
        r = r.with_env(k, *v);
    }
    r
}

fn assert_no_secret(out: &Out, secret: &str) {
    assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret), "the secret appears in the output of {}", out.describe());
}

/// The whole round trip on one object-storage repository.
fn round_trip(work: &TestDir, r: &Reprise, secret: &str) {
    let src = work.join("src");
    build_rich_tree(&src, &work.join("outside"), 41);
    let out = r.init();
    assert_no_secret(&out, secret);
    let again = r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(USAGE);
    again.assert_one_line_error();
    assert!(again.stderr.contains("already"), "{}", again.describe());

    let first = r.backup_paths(&[&src]);
    assert!(summary(&first, "new_bytes") > 0);
    let second = r.backup_paths(&[&src]);
    assert_eq!(summary(&second, "new_bytes"), 0, "an unchanged tree stores nothing new: {second}");
    assert_eq!(r.snapshots().len(), 2);

    let check = r.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    assert_no_secret(&check, secret);

    let target = work.join("restored");
    let id = id_of(&second);
    let out = r.restore(&snap_path(&id, &src), &target, &[] as &[&str]);
    assert_eq!(out.code, 0, "{}", out.describe());
    assert_no_secret(&out, secret);
    assert_trees_equal(&src, &target);
}

#[test]
fn s3_repository_round_trip_and_errors() {
    let work = TestDir::new("s3-roundtrip");
    let Some(s3) = emulators::moto(work.path()) else { return };
    emulators::create_bucket(&s3, "reprise-test");
    let creds = [("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID), ("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET)];
    let r = runner(work.path(), emulators::s3_url(&s3, "reprise-test", "site/repo"), &creds);
    round_trip(&work, &r, emulators::S3_SECRET);

    // The repository's objects are under its prefix, packs spread by prefix.
    let (status, listing) = emulators::http(s3.port, "GET", "/reprise-test?list-type=2&prefix=site/repo/data/", &[], b"");
    assert_eq!(status, 200, "{listing}");
    assert!(listing.contains("<Key>site/repo/data/"), "{listing}");

    // A bucket that does not exist.
    let missing = runner(work.path(), emulators::s3_url(&s3, "no-such-bucket", "repo"), &creds);
    let out = missing.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(NOT_FOUND);
    out.assert_one_line_error();
    assert!(out.stderr.contains("no-such-bucket"), "{}", out.describe());
    assert_no_secret(&out, emulators::S3_SECRET);

    // No credentials at all.
    let nocreds = runner(work.path(), emulators::s3_url(&s3, "reprise-test", "site/repo"), &[]).with_env("AWS_ACCESS_KEY_ID", "").with_env("AWS_SECRET_ACCESS_KEY", "");
    let out = nocreds.run(&["snapshots"]).expect_code(PERMISSION);
    out.assert_one_line_error();
    assert!(out.stderr.contains("AWS_SECRET_ACCESS_KEY"), "the error names the fix: {}", out.describe());

    // Nothing listening: a clear failure after the retries, not a hang.
    let dead = runner(work.path(), format!("s3://reprise-test/site/repo?endpoint=http://127.0.0.1:{}", emulators::free_port()), &creds).with_env("REPRISE_STORAGE_RETRY_TIMEOUT", "3s");
    let out = dead.run(&["snapshots"]);
    assert_eq!(out.code, UNAVAILABLE, "{}", out.describe());
    out.assert_one_line_error();
    assert_no_secret(&out, emulators::S3_SECRET);
}

#[test]
fn azure_repository_round_trip_and_errors() {
    let work = TestDir::new("azure-roundtrip");
    let Some(az) = emulators::azurite(work.path()) else { return };
    emulators::create_container(&az, "reprise-test");
    let creds = [("AZURE_STORAGE_ACCOUNT_KEY", emulators::AZURITE_KEY)];
    let r = runner(work.path(), emulators::azure_url(&az, "reprise-test", "site/repo"), &creds);
    round_trip(&work, &r, emulators::AZURITE_KEY);

    // A container that does not exist.
    let missing = runner(work.path(), emulators::azure_url(&az, "no-such-container", "repo"), &creds);
    let out = missing.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1"]).expect_code(NOT_FOUND);
    out.assert_one_line_error();
    assert!(out.stderr.contains("no-such-container"), "{}", out.describe());

    // A wrong account key: refused by the service, reported as permission.
    let wrong_key = "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3Jvbmcta2V5LXdyb25nLWtleQ==";
    let wrong = runner(work.path(), emulators::azure_url(&az, "reprise-test", "site/repo"), &[("AZURE_STORAGE_ACCOUNT_KEY", wrong_key)]);
    let out = wrong.run(&["snapshots"]).expect_code(PERMISSION);
    out.assert_one_line_error();
    assert_no_secret(&out, wrong_key);
}


/// The `Backend` contract, object by object, on both services: create
/// never overwrites, missing objects are `NotFound`, a range past the end
/// is `Truncated`, listings give names back (WAL files grouped by
/// timeline), removal works for a full-access credential.
fn backend_contract(b: &dyn Backend) {
    b.prepare().expect("prepare an empty prefix");
    b.create(ObjectKind::Index, "abc", b"one").unwrap();
    let e = b.create(ObjectKind::Index, "abc", b"two").unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    assert_eq!(b.read(ObjectKind::Index, "abc").unwrap(), b"one", "the first object stays");
    assert_eq!(b.read(ObjectKind::Index, "nope").unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(b.size(ObjectKind::Index, "nope").unwrap_err().kind, ErrorKind::NotFound);

    b.create(ObjectKind::Pack, "ab12", b"packbytes").unwrap();
    assert_eq!(b.read_range(ObjectKind::Pack, "ab12", 1, 3).unwrap(), b"ack");
    assert_eq!(b.size(ObjectKind::Pack, "ab12").unwrap(), 9);
    let e = b.read_range(ObjectKind::Pack, "ab12", 5, 10).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Truncated, "{e}");

    b.create(ObjectKind::Wal, "db/000000010000000000000003", b"seg").unwrap();
    b.create(ObjectKind::Wal, "db/00000002.history", b"hist").unwrap();
    let names: Vec<String> = b.list(ObjectKind::Wal).unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, vec!["db/000000010000000000000003", "db/00000002.history"]);
    assert_eq!(b.list(ObjectKind::Pack).unwrap(), vec![ObjectInfo { name: "ab12".into(), size: 9 }]);
    assert_eq!(b.list(ObjectKind::Snapshot).unwrap(), vec![]);
    assert_eq!(b.list(ObjectKind::Config).unwrap(), vec![]);

    b.create(ObjectKind::Config, "", b"{}").unwrap();
    assert_eq!(b.prepare().unwrap_err().kind, ErrorKind::AlreadyExists);
    b.remove(ObjectKind::Index, "abc").unwrap();
    assert_eq!(b.read(ObjectKind::Index, "abc").unwrap_err().kind, ErrorKind::NotFound);
}

#[test]
fn backend_contract_on_s3_and_azure() {
    let work = TestDir::new("backend-contract");
    if let Some(s3) = emulators::moto(work.path()) {
        emulators::create_bucket(&s3, "contract");
        let url = ObjectUrl::parse(&emulators::s3_url(&s3, "contract", "r1")).unwrap().unwrap();
        let creds = Credentials { aws_access_key_id: Some(emulators::S3_KEY_ID.into()), aws_secret_access_key: Some(emulators::S3_SECRET.into()), ..Credentials::default() };
        backend_contract(&ObjectBackend::open(&url, &creds).unwrap());
    }
    if let Some(az) = emulators::azurite(work.path()) {
        emulators::create_container(&az, "contract");
        let url = ObjectUrl::parse(&emulators::azure_url(&az, "contract", "r1")).unwrap().unwrap();
        let creds = Credentials { azure_account_key: Some(emulators::AZURITE_KEY.into()), ..Credentials::default() };
        backend_contract(&ObjectBackend::open(&url, &creds).unwrap());
    }
}

/// Query parameters that make a `PUT` something other than the creation
/// of an object: S3 subresources (retention, legal hold, tags, ACL,
/// multipart parts), Azure `comp=` operations (blocks, policies, metadata)
/// and container operations.
const NOT_A_CREATE: [&str; 9] = ["comp", "restype", "retention", "legal-hold", "tagging", "acl", "uploads", "uploadId", "partNumber"];

/// A request that creates (or would replace) an object: a `PUT` of a body
/// to a name, with no subresource.
fn is_create(s: &Seen) -> bool {
    s.method == "PUT" && !s.query_keys().iter().any(|k| NOT_A_CREATE.contains(k))
}

/// The kinds of fault that have not yet hit a request of `phase` that
/// matters to it. A backup's requests: its creates (for the kinds that
/// apply to any request) and its reads with a body (for the kinds that
/// change a body: there is none to change in a `PUT`'s answer). A
/// restore's: its reads of packs.
fn not_yet_hit(proxy: &FaultProxy, phase: &str) -> Vec<Fault> {
    let hits = proxy.hits();
    Fault::ALL
        .into_iter()
        .filter(|f| {
            !hits.iter().any(|h| {
                let ok_body = h.upstream_status.is_some_and(|s| (200..300).contains(&s)) && h.body_len.is_some_and(|n| n > 0);
                h.phase == phase
                    && h.fault == Some(*f)
                    && match (phase, Fault::BODY.contains(f)) {
                        ("backup", false) => is_create(h),
                        ("backup", true) => h.method == "GET" && ok_body,
                        (_, body) => h.method == "GET" && h.path().contains("/data/") && (!body || ok_body),
                    }
            })
        })
        .collect()
}

/// Backups and restores through the fault proxy: every backup either
/// completes or fails with one clear line and leaves a repository that
/// `check` passes; the next backup reuses what was uploaded; the restore is
/// bit-identical. Backups (of new files) and restores are repeated until
/// every kind of fault has hit the requests of each (bounded): a fault that
/// only ever hit a listing proves nothing about writing packs. Returns the
/// proxy, whose counts say what was survived.
fn through_faults(work: &TestDir, tag: &str, upstream: u16, url: impl Fn(&str) -> String, creds: &[(&str, &str)], seed: u64) -> FaultProxy {
    let proxy = FaultProxy::start(upstream, 25, seed, Duration::from_secs(4));
    let r = runner(work.path(), url(&proxy.endpoint()), creds)
        .with_env("REPRISE_STORAGE_REQUEST_TIMEOUT", "2")
        .with_env("REPRISE_STORAGE_RETRY_TIMEOUT", "30")
        .with_timeout(Duration::from_mins(10));
    proxy.set_phase("init");
    r.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    let src = work.join(format!("src-{tag}"));
    let mut rng = Rng::new(seed);
    random_files(&src, &mut rng, 24, 100_000, 900_000);

    let set = |on: bool| proxy.enabled.store(on, std::sync::atomic::Ordering::Relaxed);
    let until_ok = |what: &str, phase: &str, args: &[&std::ffi::OsStr]| -> Out {
        for attempt in 1..=6 {
            proxy.set_phase(phase);
            set(true);
            let out = r.run(args);
            set(false);
            proxy.set_phase("between");
            if out.code == 0 {
                return out;
            }
            out.assert_one_line_error();
            eprintln!("{tag}: {what} attempt {attempt} failed under faults: {}", out.stderr.trim());
            let check = r.check(&[] as &[&str]);
            assert_eq!(check.code, 0, "after a failed {what}, the repository must stay consistent: {}", check.describe());
        }
        panic!("{tag}: {what} never succeeded through the faults ({})", proxy.report());
    };
    let os = |s: &str| std::ffi::OsStr::new(s).to_owned();
    let backup_args = [os("--json"), os("backup"), os("--path"), src.as_os_str().to_owned()];
    let backup_refs: Vec<&std::ffi::OsStr> = backup_args.iter().map(std::ffi::OsString::as_os_str).collect();
    until_ok("backup", "backup", &backup_refs);
    let second = until_ok("second backup", "backup", &backup_refs).json();
    assert_eq!(summary(&second, "new_bytes"), 0, "{tag}: the second backup reuses what the first uploaded");
    let mut latest = id_of(&second);
    let mut more_backups = 0;
    for round in 0.. {
        let missing = not_yet_hit(&proxy, "backup");
        if missing.is_empty() {
            more_backups = round;
            break;
        }
        assert!(round < 10, "{tag}: after {round} more backups, {missing:?} never hit a backup's creates or reads ({})", proxy.report());
        random_files(&src.join(format!("more-{round}")), &mut rng, 6, 100_000, 900_000);
        latest = id_of(&until_ok("backup of new files", "backup", &backup_refs).json());
    }

    let target = work.join(format!("restored-{tag}"));
    let what = snap_path(&latest, &src);
    let restore_args = [os("restore"), os(&what), os("--to"), target.as_os_str().to_owned(), os("--overwrite")];
    let restore_refs: Vec<&std::ffi::OsStr> = restore_args.iter().map(std::ffi::OsString::as_os_str).collect();
    let mut restores = 0;
    for round in 0.. {
        let missing = not_yet_hit(&proxy, "restore");
        if missing.is_empty() {
            restores = round;
            break;
        }
        assert!(round < 12, "{tag}: after {round} restores, {missing:?} never hit a restore's reads of packs ({})", proxy.report());
        if target.exists() {
            fs::remove_dir_all(&target).unwrap();
        }
        until_ok("restore", "restore", &restore_refs);
        assert_trees_equal(&src, &target);
    }

    let check = r.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{tag}: {}", check.describe());
    assert_creates_are_conditional(&proxy.seen(), tag);
    eprintln!("{tag}: survived {} (every kind hit the creates and reads of 2 + {more_backups} backups and the pack reads of {restores} restores)", proxy.report());
    proxy
}

/// Every create on the wire carries `If-None-Match: *`, and every other
/// `PUT` is a subresource request (a retention date, a policy): no request
/// can replace an object.
fn assert_creates_are_conditional(seen: &[Seen], tag: &str) {
    let creates: Vec<&Seen> = seen.iter().filter(|s| is_create(s)).collect();
    assert!(!creates.is_empty(), "{tag}: no create went through the proxy");
    for s in creates {
        assert_eq!(s.header("if-none-match"), Some("*"), "{tag}: a create without If-None-Match: * ({} {})", s.method, s.path());
    }
}

#[test]
fn backups_and_restores_survive_storage_faults() {
    let work = TestDir::new("faults");
    let mut proxies = Vec::new();
    if let Some(s3) = emulators::moto(work.path()) {
        emulators::create_bucket(&s3, "faults");
        let creds = [("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID), ("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET)];
        proxies.push(through_faults(&work, "s3", s3.port, |ep| format!("s3://faults/repo?endpoint={ep}"), &creds, 0x5eed_0001));
    }
    if let Some(az) = emulators::azurite(work.path()) {
        emulators::create_container(&az, "faults");
        let creds = [("AZURE_STORAGE_ACCOUNT_KEY", emulators::AZURITE_KEY)];
        let url = |ep: &str| format!("azure://{}/faults/repo?endpoint={ep}/{}", emulators::AZURITE_ACCOUNT, emulators::AZURITE_ACCOUNT);
        proxies.push(through_faults(&work, "azure", az.port, url, &creds, 0x5eed_0002));
    }
    for p in &proxies {
        for f in Fault::ALL {
            assert!(p.count(f) > 0, "no {f:?} fault was applied: the test proves nothing about it ({})", p.report());
        }
    }
}

/// The object kinds of a repository at `prefix/` that a request names
/// (`data`, `index`, `snapshots`, `keys`, `holds`, `prune`, `config`).
fn object_kind<'a>(s: &'a Seen, prefix: &str) -> Option<&'a str> {
    let path = s.path();
    let rest = &path[path.find(&format!("/{prefix}/"))? + prefix.len() + 2..];
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Every object reprise writes (config, keys, packs, index files,
/// snapshots, holds, prune marks) is created, on the wire, by a `PUT` that
/// carries `If-None-Match: *`, on S3 and on Azure: the storage itself
/// refuses to replace an object, whatever reprise believes is there.
#[test]
fn every_create_on_the_wire_carries_if_none_match() {
    let work = TestDir::new("wire");
    let run = |tag: &str, upstream: u16, url: &str, creds: &[(&str, &str)]| {
        let proxy = FaultProxy::start(upstream, 0, 1, Duration::from_secs(1));
        let url = url.replace("ENDPOINT", &proxy.endpoint());
        let src = work.join(format!("src-{tag}"));
        fs::create_dir_all(&src).unwrap();
        let plan = work.join(format!("{tag}.toml"));
        fs::write(
            &plan,
            format!("[repositories.main]\nurl = \"{url}\"\npassword_env = \"REPRISE_PASSWORD\"\n\n[components.docs]\ntype = \"files\"\npaths = [\"{}\"]\n\n[components.docs.objectives]\nretention = {{ keep_last = 1 }}\n", src.display()),
        )
        .unwrap();
        let r = runner(work.path(), url.clone(), creds).with_env("REPRISE_PLAN", &plan);
        r.init();
        write_random_file(&src.join("first.bin"), &mut Rng::new(1), 300_000);
        r.backup(&["docs"]);
        fs::remove_file(src.join("first.bin")).unwrap();
        write_random_file(&src.join("second.bin"), &mut Rng::new(2), 300_000);
        let second = id_of(&r.backup(&["docs"]));
        // On the snapshot the policy keeps anyway: forget still removes the first.
        r.run(&["hold", "add", &second, "--reason", "wire test"]).ok();
        r.run(&["key", "add", "--write-only", "--credential", work.join(format!("{tag}.credential")).to_str().unwrap(), "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
        r.run(&["forget"]).ok();
        let pruned = r.run(&["--json", "prune", "--grace", "1h"]).ok().json();
        assert!(pruned["condemned_packs"].as_u64().unwrap() > 0, "{tag}: the prune wrote a mark: {pruned}");
        let seen = proxy.seen();
        assert_creates_are_conditional(&seen, tag);
        let created: BTreeSet<&str> = seen.iter().filter(|s| is_create(s)).filter_map(|s| object_kind(s, "repo")).collect();
        for kind in ["config", "keys", "data", "index", "snapshots", "holds", "prune"] {
            assert!(created.contains(kind), "{tag}: no {kind} object was created through the proxy: {created:?}");
        }
        let other_puts: Vec<String> = seen.iter().filter(|s| s.method == "PUT" && !is_create(s)).map(|s| s.target.clone()).collect();
        eprintln!("{tag}: {} creates, all with If-None-Match: *; other PUTs: {other_puts:?}", seen.iter().filter(|s| is_create(s)).count());
    };
    if let Some(s3) = emulators::moto(work.path()) {
        emulators::create_bucket(&s3, "wire");
        let creds = [("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID), ("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET)];
        run("s3", s3.port, "s3://wire/repo?endpoint=ENDPOINT", &creds);
    }
    if let Some(az) = emulators::azurite(work.path()) {
        emulators::create_container(&az, "wire");
        let creds = [("AZURE_STORAGE_ACCOUNT_KEY", emulators::AZURITE_KEY)];
        run("azure", az.port, &format!("azure://{0}/wire/repo?endpoint=ENDPOINT/{0}", emulators::AZURITE_ACCOUNT), &creds);
    }
}

/// Azure: the production host holds only a write-only repository key and a
/// container SAS with read, create and list permissions (no write, no
/// delete). It backs up normally; going straight to the storage API with
/// its SAS, it can neither delete nor overwrite any object of the
/// repository; the full-access side still restores everything.
#[test]
fn azure_write_only_sas_cannot_delete_or_overwrite() {
    let work = TestDir::new("azure-sas");
    let Some(az) = emulators::azurite(work.path()) else { return };
    emulators::create_container(&az, "prod");
    let url = emulators::azure_url(&az, "prod", "repo");
    let admin = runner(work.path(), url.clone(), &[("AZURE_STORAGE_ACCOUNT_KEY", emulators::AZURITE_KEY)]);
    admin.init();
    let cred = work.join("host.credential");
    admin.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap(), "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();

    let sas = emulators::container_sas("prod", "rcl");
    let host = runner(work.path(), url, &[("AZURE_STORAGE_SAS_TOKEN", sas.as_str())]).without_password();
    let src = work.join("src");
    build_rich_tree(&src, &work.join("outside"), 7);
    let out = host.run(&["--key-file", cred.to_str().unwrap(), "--json", "backup", "--path", src.to_str().unwrap()]).ok();
    let id = id_of(&out.json());
    assert!(!out.stderr.contains(sas.split("sig=").nth(1).unwrap()), "the SAS signature leaked: {}", out.describe());

    // Every object the repository holds, as the host can list them.
    let (status, listing) = emulators::azure_sas_request(&az, "GET", "prod", "", &format!("restype=container&comp=list&prefix=repo/&{sas}"), &[], b"");
    assert_eq!(status, 200, "{listing}");
    let names: Vec<String> = listing.split("<Name>").skip(1).filter_map(|s| s.split("</Name>").next()).map(str::to_owned).collect();
    assert!(names.iter().any(|n| n.starts_with("repo/snapshots/")) && names.iter().any(|n| n.starts_with("repo/data/")), "{names:?}");
    for name in &names {
        let (del, text) = emulators::azure_sas_request(&az, "DELETE", "prod", name, &sas, &[], b"");
        assert_eq!(del, 403, "delete of {name} with the host's SAS: {text}");
        let (put, text) = emulators::azure_sas_request(&az, "PUT", "prod", name, &sas, &[], b"encrypted by ransomware");
        assert_eq!(put, 403, "overwrite of {name} with the host's SAS: {text}");
    }
    // A new object is allowed (that is what a backup does), never a replacement.
    let (put, text) = emulators::azure_sas_request(&az, "PUT", "prod", "repo/ransom-note.txt", &sas, &[], b"pay");
    assert_eq!(put, 201, "{text}");

    let check = admin.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    let target = work.join("restored");
    admin.restore(&snap_path(&id, &src), &target, &[] as &[&str]).ok();
    assert_trees_equal(&src, &target);
}

/// "At most 16 requests in flight": a copy to S3 asked for 48 transfers at
/// once, through a proxy that holds every request 300 ms so that they
/// overlap, never has more than 16 requests open at the proxy.
#[test]
fn at_most_16_storage_requests_in_flight() {
    let work = TestDir::new("in-flight");
    let Some(s3) = emulators::moto(work.path()) else { return };
    emulators::create_bucket(&s3, "limit");
    let proxy = FaultProxy::start(s3.port, 0, 1, Duration::from_secs(1));
    let src = work.join("src");
    random_files(&src, &mut Rng::new(16), 48, 1_100_000, 1_200_000);
    let plan = work.join("reprise.toml");
    fs::write(
        &plan,
        format!(
            "[repositories.primary]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\n\n[repositories.offsite]\nurl = \"s3://limit/repo?endpoint={}\"\npassword_env = \"REPRISE_PASSWORD\"\ncopy_of = \"primary\"\n\n[components.docs]\ntype = \"files\"\npaths = [\"{}\"]\n",
            work.join("primary").display(),
            proxy.endpoint(),
            src.display()
        ),
    )
    .unwrap();
    let creds = [("AWS_ACCESS_KEY_ID", emulators::S3_KEY_ID), ("AWS_SECRET_ACCESS_KEY", emulators::S3_SECRET)];
    let p = runner(work.path(), "primary".into(), &creds).with_env("REPRISE_PLAN", &plan);
    p.run(&["init", "--kdf-memory", "64", "--kdf-iterations", "1", "--pack-size", "1"]).ok();
    p.backup(&["docs"]);
    let packs = packs(&work.join("primary")).len();
    assert!(packs >= 48, "{packs} packs");
    proxy.set_latency(Duration::from_millis(300));
    let out = p.run(&["--json", "copy", "--threads", "48"]).ok().json();
    assert_eq!(out[0]["packs_written"].as_array().unwrap().len(), packs, "{out}");
    let max = proxy.max_in_flight();
    eprintln!("copy of {packs} packs with --threads 48: at most {max} requests in flight ({} requests)", proxy.requests());
    assert!(max <= 16, "{max} requests in flight at once");
    assert!(max >= 8, "only {max} requests ever overlapped: the test did not load the limit");
}
