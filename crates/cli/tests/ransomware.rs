//! The ransomware scenario, played end to end against real object-storage
//! servers (Azurite for Azure Blob Storage; moto for S3, see below).
//!
//! 1. An operator creates the repository with a full key and gives the
//!    production host a write-only repository credential and a write-only
//!    storage credential (Azure: a container SAS `rcl` — read, create,
//!    list; S3: an IAM user allowed GetObject, PutObject, ListBucket).
//! 2. The host backs up a documents tree (signed PDFs and notes) with only
//!    those two credentials.
//! 3. The host is taken over. With the same credentials the attacker
//!    (a) runs every reprise command that deletes: all refused;
//!    (b) goes straight to the storage API and tries to delete every
//!    object it can list, to overwrite them, to replace them by other
//!    routes (block lists, copies), to lease or re-tier them, to shorten or
//!    lift retention; every attempt is counted by kind, with the answer.
//!    The listing must show every kind of object (data, index, snapshots,
//!    keys, holds, config), and control requests with the same
//!    credentials (a read, a new object) must succeed, so that refusals
//!    are the permissions at work. A refusal is the service's own answer
//!    for it (403; S3: `AccessDenied`, or 412 `PreconditionFailed` for a
//!    conditional create), never a server or signature error: those prove
//!    nothing and fail the test, unless the same request with every
//!    permission fails the same way (Azurite cannot serve some requests at
//!    all; the tally shows which);
//!    (c) encrypts the source tree in place, deletes part of it, and lets
//!    the scheduled backup run over the wreck.
//! 4. The operator, with the full key and the full storage credential,
//!    runs `check --read-data`, restores the newest snapshot taken before
//!    the attack and finds every file bit-identical to the original
//!    (SHA-256 of every file, modes, file set).
//!
//! Run with `--nocapture` to see the tally of attempts.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::emulators;
use common::*;

const PERMISSION: i32 = 5;

/// How the service (or reprise) answered one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Refused for lack of permission (or, for a conditional write, by its
    /// condition): the answer the scenario needs.
    Refused,
    /// The attempt succeeded.
    Accepted,
    /// Neither: a server error, a signature error, a malformed request.
    /// Proves nothing either way, so the test fails on it unless a control
    /// shows the emulator cannot do the request even for the owner.
    Inconclusive,
}

/// What the attacker tried, by kind: attempts, refusals, answers that
/// prove nothing, and the answers seen (HTTP status and error code, or
/// exit codes).
#[derive(Default)]
struct Tally {
    rows: BTreeMap<String, Row>,
    /// Attempts that succeeded, with what the service answered.
    accepted: Vec<String>,
}

#[derive(Default)]
struct Row {
    tried: u32,
    refused: u32,
    inconclusive: u32,
    /// Inconclusive answers explained by a control: the emulator fails the
    /// same request made with the owner's full rights.
    excused: Option<String>,
    answers: std::collections::BTreeSet<String>,
}

impl Tally {
    fn record(&mut self, kind: &str, answer: String, verdict: Verdict, detail: impl FnOnce() -> String) {
        let row = self.rows.entry(kind.to_owned()).or_default();
        row.tried += 1;
        row.answers.insert(answer);
        match verdict {
            Verdict::Refused => row.refused += 1,
            Verdict::Inconclusive => row.inconclusive += 1,
            Verdict::Accepted => self.accepted.push(format!("{kind}: {}", detail())),
        }
    }

    /// Kinds with answers that prove nothing and no control to explain them.
    fn unexplained(&self) -> Vec<String> {
        self.rows.iter().filter(|(_, r)| r.inconclusive > 0 && r.excused.is_none()).map(|(k, r)| format!("{k}: {:?}", r.answers)).collect()
    }

    fn print(&self, title: &str) {
        eprintln!("\n== ransomware tally: {title}");
        eprintln!("{:<50} {:>6} {:>8} {:>12} {:>9}  answers", "attempt", "tried", "refused", "inconclusive", "accepted");
        let mut total = (0, 0, 0);
        for (kind, r) in &self.rows {
            let accepted = r.tried - r.refused - r.inconclusive;
            eprintln!("{kind:<50} {:>6} {:>8} {:>12} {accepted:>9}  {:?}", r.tried, r.refused, r.inconclusive, r.answers);
            total = (total.0 + r.tried, total.1 + r.refused, total.2 + r.inconclusive);
        }
        eprintln!("{:<50} {:>6} {:>8} {:>12} {:>9}", "total", total.0, total.1, total.2, total.0 - total.1 - total.2);
        for (kind, r) in &self.rows {
            if let Some(why) = &r.excused {
                eprintln!("  inconclusive, explained: {kind}: {why}");
            }
        }
        for a in self.accepted.iter().take(3) {
            eprintln!("  e.g. accepted: {a}");
        }
    }
}

/// The documents of the scenario: signed consent forms, prescriptions and
/// operative reports (PDF-like, from the project's dataset generator), and
/// plain-text notes.
fn documents(root: &Path) {
    reprise_demo::datasets::signed_documents(&root.join("signed"), 240, 0x7a11).expect("generate documents");
    let mut rng = Rng::new(0x0b5e);
    for i in 0..60 {
        let dir = root.join("notes").join(format!("{:02}", i % 6));
        fs::create_dir_all(&dir).unwrap();
        let n = rng.range(200, 20_000) as usize;
        write_file(&dir.join(format!("note-{i:03}.txt")), &rng.text(n));
    }
    fs::set_permissions(root.join("notes/00/note-000.txt"), fs::Permissions::from_mode(0o600)).unwrap();
}

/// Path → (SHA-256, mode) of every file under `root`.
fn manifest(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, u32)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32)>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let md = fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                walk(root, &e.path(), out);
            } else {
                let digest = ring::digest::digest(&ring::digest::SHA256, &fs::read(e.path()).unwrap());
                out.insert(e.path().strip_prefix(root).unwrap().to_owned(), (digest.as_ref().to_vec(), md.permissions().mode() & 0o7777));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// What ransomware does to the source: every file encrypted in place and
/// renamed `*.locked`, one in eight deleted outright, a ransom note.
fn encrypt_in_place(root: &Path) -> usize {
    let mut rng = Rng::new(0xbad);
    let files: Vec<PathBuf> = manifest(root).into_keys().collect();
    for (i, rel) in files.iter().enumerate() {
        let p = root.join(rel);
        if i % 8 == 0 {
            fs::remove_file(&p).unwrap();
            continue;
        }
        let mut data = fs::read(&p).unwrap();
        let mut key = rng.bytes(data.len());
        for (d, k) in data.iter_mut().zip(key.drain(..)) {
            *d ^= k;
        }
        let mut locked = p.clone().into_os_string();
        locked.push(".locked");
        fs::write(&locked, &data).unwrap();
        fs::remove_file(&p).unwrap();
    }
    write_file(&root.join("README-RESTORE-YOUR-FILES.txt"), b"Your files are encrypted. Pay 5 BTC.");
    files.len()
}

/// The newest snapshot of `component` taken before `t`.
/// The operator restores the newest snapshot taken before `attack` and
/// every file must match the original (content and mode).
fn recover_and_compare(admin: &Reprise, attack: jiff::Timestamp, src: &Path, target: &Path, original: &BTreeMap<PathBuf, (Vec<u8>, u32)>) {
    let id = newest_before(admin, attack);
    admin.restore(&snap_path(&id, src), target, &[] as &[&str]).ok();
    let restored = manifest(target);
    assert_eq!(restored.len(), original.len());
    for (path, want) in original {
        assert_eq!(restored.get(path), Some(want), "{} differs after the restore", path.display());
    }
    eprintln!("recovered {} files bit-identical from snapshot {}", restored.len(), &id[..8]);
}

fn newest_before(r: &Reprise, t: jiff::Timestamp) -> String {
    let snaps = r.snapshots();
    let before: Vec<&serde_json::Value> = snaps.iter().filter(|s| s["time"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap() < t).collect();
    assert!(!before.is_empty(), "no snapshot before the attack: {snaps:?}");
    before.iter().max_by_key(|s| s["time"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap()).unwrap()["id"].as_str().unwrap().to_owned()
}

/// A plan on the compromised host: its one component has a retention
/// policy, so that `forget` gets as far as the repository, and the given
/// extra objectives.
fn host_plan(work: &Path, url: &str, src: &Path, objectives: &str) -> PathBuf {
    let p = work.join("host-reprise.toml");
    fs::write(
        &p,
        format!(
            "[repositories.main]\nurl = \"{url}\"\n\n[components.documents]\ntype = \"files\"\npaths = [\"{}\"]\n\n[components.documents.objectives]\nretention = {{ keep_last = 1 }}\n{objectives}\n",
            src.display()
        ),
    )
    .unwrap();
    p
}

/// Step (a): every reprise command that removes something, with the host's
/// credentials. Each must be refused with a permission error, one line.
fn reprise_attacks(host: &Reprise, plan: &Path, key_file: &Path, hold: &str, full_key: &str, tally: &mut Tally) {
    let (p, k) = (plan.to_str().unwrap(), key_file.to_str().unwrap());
    let cases: Vec<(&str, Vec<&str>)> = vec![
        ("reprise forget", vec!["--plan", p, "--key-file", k, "forget"]),
        ("reprise hold remove", vec!["--plan", p, "--key-file", k, "hold", "remove", hold]),
        ("reprise key remove (full key)", vec!["--key-file", k, "key", "remove", full_key]),
        ("reprise key passwd", vec!["--key-file", k, "key", "passwd", "--kdf-memory", "64", "--kdf-iterations", "1"]),
        ("reprise key add (a full key for itself)", vec!["--key-file", k, "key", "add", "--kdf-memory", "64", "--kdf-iterations", "1"]),
    ];
    for (kind, args) in cases {
        let out = host.with_env("REPRISE_NEW_PASSWORD", "attacker").run(&args);
        let verdict = match out.code {
            PERMISSION => Verdict::Refused,
            0 => Verdict::Accepted,
            _ => Verdict::Inconclusive,
        };
        tally.record(kind, format!("exit {}", out.code), verdict, || format!("exit {}: {}", out.code, out.stderr.trim()));
        assert_eq!(out.code, PERMISSION, "{kind} must be refused for lack of permission: {}", out.describe());
        out.assert_one_line_error();
    }
}

// ---------------------------------------------------------------------------
// Azure
// ---------------------------------------------------------------------------

/// The error code of an Azure answer (`<Code>…</Code>`), if any.
fn azure_code(text: &str) -> &str {
    text.split("<Code>").nth(1).and_then(|c| c.split("</Code>").next()).unwrap_or_default()
}

/// On Azure, a refusal for lack of permission is a 403
/// `AuthorizationPermissionMismatch` (a 403 `AuthenticationFailed` or
/// `AuthorizationFailure` is a bad signature: it proves nothing about the
/// SAS's permissions). A 2xx is an accepted attempt; anything else (a 5xx:
/// Azurite implements neither immutability policies nor legal holds, and
/// fails SAS-signed Copy Blob) proves nothing, and stays a failure unless
/// the same request with every permission fails too ([`azure_controls`]).
fn azure_verdict(status: u16, text: &str) -> Verdict {
    match status {
        403 if azure_code(text) == "AuthorizationPermissionMismatch" => Verdict::Refused,
        200..=299 => Verdict::Accepted,
        _ => Verdict::Inconclusive,
    }
}

/// One storage request of the attack, kept to replay as a control.
#[derive(Clone)]
struct AzureAttempt {
    method: &'static str,
    query: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

/// Step (b) on Azure: everything a holder of the SAS can try on each blob
/// and on the container. Returns the names listed and one request of each
/// kind (for [`azure_controls`]).
fn azure_storage_attacks(az: &emulators::Server, container: &str, sas: &str, tally: &mut Tally) -> (Vec<String>, BTreeMap<String, AzureAttempt>) {
    use emulators::azure_sas_request as req;
    let (status, listing) = req(az, "GET", container, "", &format!("restype=container&comp=list&prefix=repo/&include=snapshots,versions&{sas}"), &[], b"");
    assert_eq!(status, 200, "{listing}");
    let names: Vec<String> = listing.split("<Name>").skip(1).filter_map(|s| s.split("</Name>").next()).map(str::to_owned).collect();
    for kind in ["snapshots/", "data/", "index/", "keys/", "holds/"] {
        assert!(names.iter().any(|n| n.starts_with(&format!("repo/{kind}"))), "the host lists no {kind}: {names:?}");
    }
    assert!(names.iter().any(|n| n == "repo/config"), "{names:?}");
    // Controls: the SAS does read and create new blobs (so the refusals
    // below are the permissions at work, not a broken SAS).
    let (status, text) = req(az, "GET", container, &names[0], sas, &[], b"");
    assert_eq!(status, 200, "control: the host's SAS reads {}: {}", names[0], text.lines().next().unwrap_or_default());
    let (status, text) = req(az, "PUT", container, "attacker-source.bin", sas, &[], b"ransom");
    assert_eq!(status, 201, "control: the host's SAS creates a new blob: {text}");
    let copy_source = format!("{}/{}/{container}/attacker-source.bin?{sas}", az.endpoint(), emulators::AZURITE_ACCOUNT);
    let past = "Mon, 01 Jan 2001 00:00:00 GMT".to_owned();
    let mut kinds: BTreeMap<String, AzureAttempt> = BTreeMap::new();
    for name in &names {
        let mut r = |kind: &str, method: &'static str, query: &str, headers: &[(&'static str, String)], body: &[u8]| {
            let q = if query.is_empty() { sas.to_owned() } else { format!("{query}&{sas}") };
            let (status, text) = req(az, method, container, name, &q, headers, body);
            tally.record(kind, format!("{status} {}", azure_code(&text)), azure_verdict(status, &text), || format!("{name}: HTTP {status}: {}", text.lines().next().unwrap_or_default()));
            kinds.entry(kind.to_owned()).or_insert_with(|| AzureAttempt { method, query: query.to_owned(), headers: headers.to_vec(), body: body.to_vec() });
        };
        r("storage: delete object", "DELETE", "", &[], b"");
        r("storage: delete object and its snapshots", "DELETE", "", &[("x-ms-delete-snapshots", "include".into())], b"");
        r("storage: overwrite (Put Blob)", "PUT", "", &[], b"encrypted by ransomware");
        r("storage: overwrite (Put Blob, If-Match *)", "PUT", "", &[("If-Match", "*".into())], b"encrypted by ransomware");
        // A block list committed over an existing name replaces it too.
        let block = "YmxvY2stMDAwMQ==";
        r("storage: stage a block under an existing name", "PUT", &format!("comp=block&blockid={}", block.replace('=', "%3D")), &[], b"encrypted");
        r(
            "storage: overwrite (Put Block List)",
            "PUT",
            "comp=blocklist",
            &[],
            format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>{block}</Latest></BlockList>").as_bytes(),
        );
        r("storage: overwrite (Copy Blob onto it)", "PUT", "", &[("x-ms-copy-source", copy_source.clone())], b"");
        r("storage: set metadata", "PUT", "comp=metadata", &[("x-ms-meta-ransom", "yes".into())], b"");
        r("storage: infinite lease (blocks the operator)", "PUT", "comp=lease", &[("x-ms-lease-action", "acquire".into()), ("x-ms-lease-duration", "-1".into())], b"");
        r("storage: move to the archive tier", "PUT", "comp=tier", &[("x-ms-access-tier", "Archive".into())], b"");
        r(
            "storage: shorten immutability policy",
            "PUT",
            "comp=immutabilityPolicies",
            &[("x-ms-immutability-policy-until-date", past.clone()), ("x-ms-immutability-policy-mode", "Unlocked".into())],
            b"",
        );
        r("storage: delete immutability policy", "DELETE", "comp=immutabilityPolicies", &[], b"");
        r("storage: lift legal hold", "PUT", "comp=legalhold", &[("x-ms-legal-hold", "false".into())], b"");
    }
    // The container itself.
    let mut c = |kind: &str, method: &str, query: &str, headers: &[(&str, String)], body: &[u8]| {
        let (status, text) = req(az, method, container, "", &format!("{query}&{sas}"), headers, body);
        tally.record(kind, format!("{status} {}", azure_code(&text)), azure_verdict(status, &text), || format!("container: HTTP {status}: {}", text.lines().next().unwrap_or_default()));
    };
    c("storage: delete the container", "DELETE", "restype=container", &[], b"");
    c("storage: change the container's access policy", "PUT", "restype=container&comp=acl", &[("x-ms-blob-public-access", "container".into())], b"");
    c("storage: change container metadata", "PUT", "restype=container&comp=metadata", &[("x-ms-meta-owned", "yes".into())], b"");
    (names, kinds)
}

/// Every permission a container SAS can carry.
const FULL_SAS: &str = "racwdxltfmi";

/// For each kind of attempt that got answers proving nothing, the same
/// request, authenticated the same way (a SAS) but with every permission,
/// on a blob of the owner's: if the emulator fails that too, it cannot
/// serve the request at all, and the inconclusive answers are explained
/// (and shown). If the fully permitted request succeeds or is refused, the
/// attacker's failure is left unexplained and fails the test.
fn azure_controls(az: &emulators::Server, container: &str, kinds: &BTreeMap<String, AzureAttempt>, tally: &mut Tally) {
    let sas = emulators::container_sas(container, FULL_SAS);
    // The full SAS itself works: it may overwrite and delete.
    for (method, expected) in [("PUT", 201), ("DELETE", 202)] {
        let (status, text) = emulators::azure_sas_request(az, method, container, "control/probe", &sas, &[], b"probe");
        assert_eq!(status, expected, "control: {method} with a SAS with every permission: {text}");
    }
    for (kind, row) in tally.rows.iter_mut().filter(|(_, r)| r.inconclusive > 0) {
        let Some(a) = kinds.get(kind) else { continue };
        let blob = format!("control/{}", kind.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
        let (status, text) = emulators::azure_shared_key_request(az, "PUT", &format!("/{container}/{blob}"), &[("x-ms-blob-type", "BlockBlob".into())], b"the owner's blob");
        assert_eq!(status, 201, "control blob {blob}: {text}");
        let query = if a.query.is_empty() { sas.clone() } else { format!("{}&{sas}", a.query) };
        let (status, text) = emulators::azure_sas_request(az, a.method, container, &blob, &query, &a.headers, &a.body);
        eprintln!("control for {kind}: a SAS with every permission gets HTTP {status} {}", azure_code(&text));
        if status >= 500 {
            row.excused = Some(format!("a SAS with every permission gets HTTP {status} {} too", azure_code(&text)));
        }
    }
}

#[test]
fn ransomware_on_azure_with_a_write_only_sas() {
    let work = TestDir::new("ransomware-azure");
    let Some(az) = emulators::azurite(work.path()) else { return };
    emulators::create_container(&az, "prod");
    let url = emulators::azure_url(&az, "prod", "repo");

    // 1. The operator.
    let admin = Reprise::at(work.path(), PathBuf::from(&url)).with_env("AZURE_STORAGE_ACCOUNT_KEY", emulators::AZURITE_KEY);
    admin.init();
    let full_key = admin.run(&["--json", "key", "list"]).ok().json().as_array().unwrap().iter().find(|k| k["current"] == true).unwrap()["name"].as_str().unwrap().to_owned();
    let cred = work.join("host/write.credential");
    fs::create_dir_all(cred.parent().unwrap()).unwrap();
    admin.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap(), "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();
    let sas = emulators::container_sas("prod", "rcl");

    // 2. The production host: only the write credential and the SAS.
    let src = work.join("srv/documents");
    documents(&src);
    let original = manifest(&src);
    assert!(original.len() >= 300, "{} files", original.len());
    let host = Reprise::at(work.path(), PathBuf::from(&url)).without_password().with_env("AZURE_STORAGE_SAS_TOKEN", &sas).with_cache(work.join("host/cache"));
    let k = cred.to_str().unwrap();
    host.run(&["--key-file", k, "--json", "backup", "--path", src.to_str().unwrap(), "--as", "documents"]).ok();
    write_file(&src.join("notes/05/late-note.txt"), b"added after the first backup\n");
    let out = host.run(&["--key-file", k, "--json", "backup", "--path", src.to_str().unwrap(), "--as", "documents"]).ok();
    assert!(!out.stdout.contains(sas.split("sig=").nth(1).unwrap()) && !out.stderr.contains(sas.split("sig=").nth(1).unwrap()), "the SAS leaked");
    let original = manifest(&src);
    // A legal hold the operator placed on the first snapshot.
    let first = admin.snapshots()[0]["id"].as_str().unwrap().to_owned();
    let hold = admin.run(&["--json", "hold", "add", &first, "--reason", "litigation 2026-117"]).ok().json()["hold"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let attack = jiff::Timestamp::now();

    // 3. The attack.
    let mut tally = Tally::default();
    let plan = host_plan(work.path(), &url, &src, "");
    reprise_attacks(&host, &plan, &cred, &hold, &full_key, &mut tally);
    let (names, kinds) = azure_storage_attacks(&az, "prod", &sas, &mut tally);
    azure_controls(&az, "prod", &kinds, &mut tally);
    let files = encrypt_in_place(&src);
    // The scheduled backup runs over the encrypted tree: a new snapshot,
    // nothing older touched.
    host.run(&["--key-file", k, "--json", "backup", "--path", src.to_str().unwrap(), "--as", "documents"]).ok();
    tally.print(&format!("Azure (Azurite), write-only SAS `rcl`; {} repository objects listed; {files} source files encrypted or deleted", names.len()));
    assert!(tally.accepted.is_empty(), "the write-only SAS changed something: {:#?}", tally.accepted);
    assert!(tally.unexplained().is_empty(), "answers that prove nothing, which a fully permitted request does not explain: {:#?}", tally.unexplained());
    // Deleting and overwriting are refused by the permissions themselves
    // (403), never excused as an emulator failure.
    for kind in ["storage: delete object", "storage: delete object and its snapshots", "storage: overwrite (Put Blob)", "storage: overwrite (Put Blob, If-Match *)", "storage: overwrite (Put Block List)", "storage: delete the container"] {
        let r = &tally.rows[kind];
        assert!(r.tried > 0 && r.tried == r.refused, "{kind} must be refused with 403: {:?}", r.answers);
    }
    assert!(tally.rows.iter().filter(|(k, _)| k.starts_with("reprise ")).all(|(_, r)| r.tried == r.refused));

    // 4. The operator recovers.
    let check = admin.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    let holds = admin.run(&["--json", "hold", "list"]).ok().json();
    assert_eq!(holds.as_array().unwrap().len(), 1, "the hold survived: {holds}");
    recover_and_compare(&admin, attack, &src, &work.join("recovered"), &original);
}


// ---------------------------------------------------------------------------
// S3
// ---------------------------------------------------------------------------

/// On S3, what refusing an attempt looks like: a conditional create over
/// an existing name fails its condition (412 `PreconditionFailed`);
/// anything else is refused for lack of permission (403 `AccessDenied`;
/// a batch delete may answer 200 and refuse key by key). Any other error
/// (a 5xx, `SignatureDoesNotMatch`, a malformed request) proves nothing.
fn s3_verdict(kind: &str, status: i64, error: &str) -> Verdict {
    let refused = if kind.contains("If-None-Match") {
        (status, error) == (412, "PreconditionFailed")
    } else if kind.contains("(batch)") {
        error == "AccessDenied" && (status == 403 || status == 200)
    } else {
        (status, error) == (403, "AccessDenied")
    };
    if refused { Verdict::Refused } else { Verdict::Inconclusive }
}

/// Runs `s3_roles.py CMD ENDPOINT BUCKET ARG` with keys in its environment.
fn s3_roles(cmd: &str, s3: &emulators::Server, bucket: &str, arg: &str, keys: Option<&Keys>) -> String {
    emulators::s3_roles(cmd, s3, bucket, arg, keys.map(|k| (k.id.as_str(), k.secret.as_str())))
}

#[derive(Clone)]
struct Keys {
    id: String,
    secret: String,
}

/// The storage administrator's work: the bucket, the two IAM users, and
/// moto's IAM enforcement turned on. Returns (operator, producer).
fn s3_bucket_and_roles(s3: &emulators::Server, bucket: &str, object_lock: bool) -> (Keys, Keys) {
    let v: serde_json::Value = serde_json::from_str(&s3_roles("setup", s3, bucket, if object_lock { "1" } else { "0" }, None)).unwrap();
    let k = |who: &str| Keys { id: v[who]["id"].as_str().unwrap().to_owned(), secret: v[who]["secret"].as_str().unwrap().to_owned() };
    (k("operator"), k("producer"))
}

fn s3_runner(work: &Path, url: &str, keys: &Keys) -> Reprise {
    Reprise::at(work, PathBuf::from(url)).with_env("AWS_ACCESS_KEY_ID", &keys.id).with_env("AWS_SECRET_ACCESS_KEY", &keys.secret)
}

/// key -> version IDs, oldest first (operator's view).
fn s3_versions(s3: &emulators::Server, bucket: &str, prefix: &str, operator: &Keys) -> BTreeMap<String, Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(&s3_roles("versions", s3, bucket, prefix, Some(operator))).unwrap();
    v.as_object().unwrap().iter().map(|(k, vs)| (k.clone(), vs.as_array().unwrap().iter().map(|x| x["version"].as_str().unwrap().to_owned()).collect())).collect()
}

/// S3 (moto with IAM enforcement on, bucket with Object Lock hence
/// versioning). What moto enforces and what only AWS does is in
/// docs/STORAGE.md; in short: moto checks each request's signature and the
/// IAM action (so the producer can neither delete an object or a version
/// nor touch the bucket's configuration), but it evaluates no policy
/// condition, so the producer's `s3:if-none-match` condition cannot be
/// set, and a plain PutObject over an existing name is accepted: on a
/// versioned bucket it adds a version on top and the original stays. And
/// moto authorizes PutObjectRetention and PutObjectLegalHold as PutObject,
/// so it lets the producer call them; AWS does not (distinct permissions,
/// which the producer's policy does not grant).
///
/// The test asserts what matters whatever the server: no original version
/// is gone, deletes and configuration changes are refused; `check` finds
/// the overwrites (the objects no longer hash to their names); the operator
/// puts the original versions back on top and restores bit-identical.
#[test]
fn ransomware_on_s3_with_a_producer_iam_user() {
    let work = TestDir::new("ransomware-s3");
    let Some(s3) = emulators::moto_iam(work.path()) else { return };
    let (operator, producer) = s3_bucket_and_roles(&s3, "prod", true);
    let url = emulators::s3_url(&s3, "prod", "repo");

    let admin = s3_runner(work.path(), &url, &operator);
    admin.init();
    let full_key = admin.run(&["--json", "key", "list"]).ok().json().as_array().unwrap().iter().find(|k| k["current"] == true).unwrap()["name"].as_str().unwrap().to_owned();
    let cred = work.join("host/write.credential");
    fs::create_dir_all(cred.parent().unwrap()).unwrap();
    admin.run(&["key", "add", "--write-only", "--credential", cred.to_str().unwrap(), "--kdf-memory", "64", "--kdf-iterations", "1"]).ok();

    let src = work.join("srv/documents");
    documents(&src);
    // The documents are immutable: COMPLIANCE locks for a day on every
    // pack, index file and snapshot the host writes.
    let plan = host_plan(work.path(), &url, &src, "retain_for = \"1d\"\nimmutable = true");
    let ps = plan.to_str().unwrap();
    let host = s3_runner(work.path(), &url, &producer).without_password().with_cache(work.join("host/cache"));
    let k = cred.to_str().unwrap();
    host.run(&["--plan", ps, "--key-file", k, "--json", "backup", "documents"]).ok();
    write_file(&src.join("notes/05/late-note.txt"), b"added after the first backup\n");
    let out = host.run(&["--plan", ps, "--key-file", k, "--json", "backup", "documents"]).ok();
    assert!(!out.stdout.contains(&producer.secret) && !out.stderr.contains(&producer.secret), "the secret leaked");
    let original = manifest(&src);
    let first = admin.snapshots()[0]["id"].as_str().unwrap().to_owned();
    let hold = admin.run(&["--json", "hold", "add", &first, "--reason", "litigation 2026-117"]).ok().json()["hold"].as_str().unwrap().to_owned();
    let before = s3_versions(&s3, "prod", "repo/", &operator);
    let status = |who: &Reprise| who.run(&["--json", "--plan", ps, "status", "documents"]).ok().json()[0]["immutability"].clone();
    let st = status(&admin);
    assert_eq!(st["in_force"], true, "{st}");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let attack = jiff::Timestamp::now();

    // The attack: reprise, the source, then the storage API.
    let mut tally = Tally::default();
    reprise_attacks(&host, &plan, &cred, &hold, &full_key, &mut tally);
    let files = encrypt_in_place(&src);
    host.run(&["--plan", ps, "--key-file", k, "--json", "backup", "documents"]).ok();
    let mut listed = Vec::new();
    let mut controls = Vec::new();
    for line in s3_roles("attack", &s3, "prod", "repo/", Some(&producer)).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let kind = v["kind"].as_str().unwrap();
        if kind == "listing" {
            listed = v["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_owned()).collect();
            continue;
        }
        let status = v["status"].as_i64().unwrap();
        let error = v["error"].as_str().unwrap_or_default();
        if kind.starts_with("control: ") {
            controls.push(kind.to_owned());
            assert_eq!(v["outcome"], "accepted", "{kind} with the producer's keys must succeed (else every refusal below proves nothing): {v}");
            continue;
        }
        let verdict = if v["outcome"] == "accepted" { Verdict::Accepted } else { s3_verdict(kind, status, error) };
        tally.record(&format!("storage: {kind}"), format!("{status} {error}"), verdict, || format!("{} HTTP {status} {error}", v["key"]));
    }
    tally.print(&format!(
        "S3 (moto, IAM enforced, Object Lock bucket), producer IAM user; {} repository objects listed; {files} source files encrypted or deleted",
        listed.len()
    ));
    // The attack reached every kind of object, with working keys.
    for kind in ["data/", "index/", "snapshots/", "keys/", "holds/"] {
        assert!(listed.iter().any(|k| k.starts_with(&format!("repo/{kind}"))), "the host lists no {kind}: {listed:?}");
    }
    assert!(listed.iter().any(|k| k == "repo/config"), "{listed:?}");
    assert_eq!(controls, ["control: read an object", "control: create a new object"]);

    // What must hold on any S3 server: every answer says something (no
    // server or signature error), and each destructive kind is refused,
    // each with the refusal of its kind.
    assert!(tally.unexplained().is_empty(), "answers that prove nothing: {:#?}", tally.unexplained());
    for (kind, r) in &tally.rows {
        let must_refuse = kind.starts_with("reprise ")
            || kind.contains("delete")
            || kind.contains("If-None-Match")
            || ["storage: suspend versioning", "storage: lifecycle rule expiring everything", "storage: bucket policy granting the host delete", "storage: change the Object Lock configuration"].contains(&kind.as_str());
        if must_refuse {
            assert!(r.tried > 0 && r.tried == r.refused, "{kind} must be refused: answers {:?}", r.answers);
        }
    }
    // Nothing that was there is gone: every original version remains.
    let after = s3_versions(&s3, "prod", "repo/", &operator);
    for (key, versions) in &before {
        assert_eq!(after.get(key).map(|v| &v[..1]), Some(&versions[..1]), "{key}: the original version is gone");
    }
    // moto accepted plain overwrites (no condition keys): the repository
    // as the attacker left it does not check clean ...
    let overwritten = tally.rows.get("storage: overwrite (plain PutObject)").map_or(0, |r| r.tried - r.refused - r.inconclusive);
    if overwritten > 0 {
        let damaged = admin.check(&["--read-data"]);
        assert_ne!(damaged.code, 0, "check must notice {overwritten} overwritten objects: {}", damaged.describe());
        eprintln!("check after the overwrites: exit {} ({})", damaged.code, damaged.stderr.lines().last().unwrap_or_default());
        // ... until the operator puts the original versions back on top.
        let repaired: Vec<String> = serde_json::from_str(&s3_roles("undo-overwrites", &s3, "prod", "repo/", Some(&operator))).unwrap();
        eprintln!("operator put back the original version of {} objects", repaired.len());
        assert_eq!(repaired.len() as u32, overwritten);
    }

    let check = admin.check(&["--read-data"]);
    assert_eq!(check.code, 0, "{}", check.describe());
    assert_eq!(admin.run(&["--json", "hold", "list"]).ok().json().as_array().unwrap().len(), 1, "the hold survived");
    // moto let the producer shorten the locks (it authorizes
    // PutObjectRetention as PutObject and does not protect COMPLIANCE
    // dates); AWS refuses both. status notices either way, once the
    // original versions are current again.
    let st = status(&admin);
    let shortened = tally.rows.get("storage: shorten retention (PutObjectRetention)").is_some_and(|r| r.tried > r.refused);
    eprintln!("status after the attack and the repair: {}", st["reason"]);
    assert_eq!(st["in_force"], !shortened, "{st}");


    recover_and_compare(&admin, attack, &src, &work.join("recovered"), &original);
}
