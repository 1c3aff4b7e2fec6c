//! The ledger records what the operations do, whoever runs them: here they
//! run in process, as a daemon would (no CLI, no terminal, nobody to ask
//! for a passphrase), and the entries are read back from the repository.

use reprise_engine::Repository;
use reprise_engine::backends;
use reprise_engine::check::ReadData;
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::KdfParams;
use reprise_ledger::{EntryView, Ledger};
use reprise_ops::{CancelToken, Environment, Settings, Silent, Workspace};
use reprise_plan::Plan;

const PASSPHRASE: &str = "correct horse battery staple";

fn entries(ws: &Workspace) -> Vec<EntryView> {
    let repo = ws.open(None).unwrap();
    let ledger = Ledger::new(&repo, reprise_ops::ledger::keys(&repo).unwrap());
    let own = ledger.ledgers().unwrap().into_iter().find(|l| l.own).expect("the repository has its own ledger");
    let (entries, unreadable) = ledger.entries(own.ledger.parse().unwrap(), 0).unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    entries
}

/// The bug: recording lived in the CLI's commands, so a daemon (or any
/// interface but `reprise`) running a backup, lifting a hold or revoking a
/// key left no entry. Now each operation records its own, and `key
/// revoke` (format 2) is recorded too.
#[test]
fn operations_run_without_the_cli_are_recorded() {
    let t = tempfile::tempdir().unwrap();
    let (repo_dir, src) = (t.path().join("repo"), t.path().join("src"));
    let fast = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    Repository::init(backends::open(repo_dir.to_str().unwrap()).unwrap(), PASSPHRASE.as_bytes(), fast, ChunkerParams::default()).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("record.txt"), b"patient 1\n").unwrap();
    let plan = t.path().join("reprise.toml");
    std::fs::write(
        &plan,
        format!(
            "[repositories.primary]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\n\n[components.records]\ntype = \"files\"\nrepository = \"primary\"\npaths = [\"{}\"]\n",
            repo_dir.display(),
            src.display()
        ),
    )
    .unwrap();
    let env = Environment::from_pairs([("REPRISE_PASSWORD", PASSPHRASE)]);
    let ws = Workspace::new(Some(Plan::load(&plan).unwrap()), Settings { cache_dir: Some(t.path().join("cache")), ..Settings::default() }, env);
    let cancel = CancelToken::new();

    let request = reprise_ops::backup::BackupRequest { component: Some("records".into()), ..Default::default() };
    let backup = reprise_ops::backup::backup(&ws, request, &Silent, &cancel).unwrap();
    let placed = reprise_ops::retention::hold_add(&ws, &backup.outcome.id.to_hex(), "case 12").unwrap();
    reprise_ops::retention::hold_remove(&ws, &placed.hold.to_hex()).unwrap();
    let key_id = reprise_ops::keys::write_credential(&ws, &t.path().join("host.credential"), "host", None).unwrap();
    reprise_ops::keys::revoke(&ws, &key_id.to_hex(), "host retired").unwrap();
    reprise_ops::check::check(&ws, ReadData::All, &Silent, &cancel).unwrap();
    // Listing records nothing.
    reprise_ops::keys::list(&ws).unwrap();

    let entries = entries(&ws);
    let ops: Vec<&str> = entries.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["backup", "hold-add", "hold-remove", "key-add", "key-revoke", "check"]);
    assert_eq!(entries[0].snapshots, vec![backup.outcome.id]);
    assert_eq!(entries[0].component.as_deref(), Some("records"));
    assert_eq!(entries[1].reason.as_deref(), Some("case 12"));
    assert_eq!(entries[2].refs.get("hold"), Some(&placed.hold.to_hex()));
    assert_eq!(entries[3].refs.get("key_id"), Some(&key_id.to_hex()));
    assert_eq!(entries[4].refs.get("key_id"), Some(&key_id.to_hex()));
    assert_eq!(entries[4].reason.as_deref(), Some("host retired"));
    assert_eq!(entries[5].refs.get("read_data").map(String::as_str), Some("all"));
    assert_eq!(entries[5].result, "ok");
}

/// What a write credential may do with the ledger: append (a production
/// host's backups must be recorded), with the shared key it holds.
#[test]
fn a_write_credential_records_its_backups() {
    let t = tempfile::tempdir().unwrap();
    let (repo_dir, src) = (t.path().join("repo"), t.path().join("src"));
    let fast = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    Repository::init(backends::open(repo_dir.to_str().unwrap()).unwrap(), PASSPHRASE.as_bytes(), fast, ChunkerParams::default()).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("record.txt"), b"patient 1\n").unwrap();
    let admin = Workspace::new(
        None,
        Settings { repository: Some(repo_dir.to_str().unwrap().to_owned()), cache_dir: Some(t.path().join("cache")), ..Settings::default() },
        Environment::from_pairs([("REPRISE_PASSWORD", PASSPHRASE)]),
    );
    let credential = t.path().join("host.credential");
    reprise_ops::keys::write_credential(&admin, &credential, "host", None).unwrap();
    let host = Workspace::new(
        None,
        Settings {
            repository: Some(repo_dir.to_str().unwrap().to_owned()),
            key_file: Some(credential),
            cache_dir: Some(t.path().join("host-cache")),
            ..Settings::default()
        },
        Environment::from_pairs(Vec::<(String, String)>::new()),
    );
    let request = reprise_ops::backup::BackupRequest { paths: vec![src.clone()], ..Default::default() };
    let backup = reprise_ops::backup::backup(&host, request, &Silent, &CancelToken::new()).unwrap();
    let by_admin = entries(&admin);
    let ops: Vec<&str> = by_admin.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["key-add", "backup"]);
    assert_eq!(by_admin[1].snapshots, vec![backup.outcome.id]);
}
