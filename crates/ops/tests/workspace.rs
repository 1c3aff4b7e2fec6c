//! The workspace opens each repository once, whatever asks for it: the
//! operations run in process here, on local repositories, through a
//! storage wrapper that counts the opens (each `Repository::open` reads
//! the config once, and with a passphrase it is one Argon2id derivation:
//! the cost a daemon must not pay on every scheduled run). Key files are
//! no measure since format 2: every open also reads them all to judge
//! who may write what.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reprise_engine::Repository;
use reprise_engine::backends::{self, Backend, BackendError, Credentials, Lock, ObjectInfo, ObjectKind};
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::KdfParams;
use reprise_ops::workspace::Storage;
use reprise_ops::{CancelToken, Environment, Settings, Silent, Workspace};
use reprise_plan::Plan;

const PASSPHRASE: &str = "correct horse battery staple";

/// Counts repository opens (config reads), per workspace of the test.
struct Counting {
    opens: Arc<AtomicUsize>,
}

#[derive(Debug)]
struct CountingBackend {
    inner: Arc<dyn Backend>,
    opens: Arc<AtomicUsize>,
}

impl Storage for Counting {
    fn open(&self, url: &str, lock: Option<Lock>, credentials: &Credentials) -> Result<Arc<dyn Backend>, BackendError> {
        Ok(Arc::new(CountingBackend { inner: backends::open_with(url, lock, credentials)?, opens: Arc::clone(&self.opens) }))
    }
}

impl Backend for CountingBackend {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn prepare(&self) -> Result<(), BackendError> {
        self.inner.prepare()
    }
    fn create(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        self.inner.create(kind, name, bytes)
    }
    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, BackendError> {
        if kind == ObjectKind::Config {
            self.opens.fetch_add(1, Ordering::SeqCst);
        }
        self.inner.read(kind, name)
    }
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        self.inner.read_range(kind, name, offset, length)
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(kind)
    }
    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64, BackendError> {
        self.inner.size(kind, name)
    }
    fn remove(&self, kind: ObjectKind, name: &str) -> Result<(), BackendError> {
        self.inner.remove(kind, name)
    }
}

fn init(dir: &Path) {
    let fast = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    Repository::init(backends::open(dir.to_str().unwrap()).unwrap(), PASSPHRASE.as_bytes(), fast, ChunkerParams::default()).unwrap();
}

fn workspace(plan: &Path, opens: &Arc<AtomicUsize>, cache: PathBuf) -> Workspace {
    let plan = Plan::load(plan).unwrap();
    let env = Environment::from_pairs([("REPRISE_PASSWORD", PASSPHRASE)]);
    Workspace::new(Some(plan), Settings { cache_dir: Some(cache), ..Settings::default() }, env).with_storage(Box::new(Counting { opens: Arc::clone(opens) }))
}

/// The bug: `status` opened the component's repository once for the 3-2-1
/// posture and again for the recovery point and immutability (and a third
/// time for a PostgreSQL component's WAL status): one Argon2id derivation
/// each. Now each repository of the plan is opened once per workspace,
/// and a second `status` in the same workspace (a daemon's next tick)
/// opens nothing.
#[test]
fn status_opens_each_repository_once() {
    let t = tempfile::tempdir().unwrap();
    let (primary, copy, src) = (t.path().join("primary"), t.path().join("copy"), t.path().join("src"));
    init(&primary);
    init(&copy);
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("record.txt"), b"patient 1\n").unwrap();
    let plan = t.path().join("reprise.toml");
    std::fs::write(
        &plan,
        format!(
            "[repositories.primary]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\n\n[repositories.copy]\nurl = \"{}\"\npassword_env = \"REPRISE_PASSWORD\"\ncopy_of = \"primary\"\n\n\
             [components.records]\ntype = \"files\"\nrepository = \"primary\"\npaths = [\"{}\"]\nobjectives = {{ rpo = \"1h\" }}\n",
            primary.display(),
            copy.display(),
            src.display()
        ),
    )
    .unwrap();
    let opens = Arc::new(AtomicUsize::new(0));
    let ws = workspace(&plan, &opens, t.path().join("cache"));
    let request = reprise_ops::backup::BackupRequest { component: Some("records".into()), ..Default::default() };
    reprise_ops::backup::backup(&ws, request, &Silent, &CancelToken::new()).unwrap();
    assert_eq!(opens.load(Ordering::SeqCst), 1, "backup opens the primary once");

    let status = reprise_ops::status::status(&ws, &[]).unwrap();
    assert_eq!(status[0].copies.repositories.len(), 2);
    assert!(status[0].rpo_met == Some(true), "{:?}", status[0].rpo_seconds);
    assert_eq!(opens.load(Ordering::SeqCst), 2, "status opens the copy, and reuses the primary opened by backup");
    reprise_ops::status::status(&ws, &[]).unwrap();
    assert_eq!(opens.load(Ordering::SeqCst), 2, "a second status opens nothing");

    // A fresh workspace: one derivation per repository, not per question.
    let fresh = Arc::new(AtomicUsize::new(0));
    let ws = workspace(&plan, &fresh, t.path().join("cache"));
    reprise_ops::status::status(&ws, &[]).unwrap();
    assert_eq!(fresh.load(Ordering::SeqCst), 2, "status on a fresh workspace: primary and copy, once each");
}
