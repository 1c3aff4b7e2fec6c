//! A repository held in memory, for tests of the protocols above the
//! backend (index, prune, copy, ledger) that should run in-process, in
//! milliseconds, with no temporary directory.
//!
//! It keeps the whole contract of [`Backend`] — create never overwrites,
//! reads of a missing object fail with `NotFound`, ranges past the end fail
//! with `Truncated` — so that a protocol proven against it holds on the
//! real backends; `tests::contract` runs the same checks against
//! [`crate::LocalBackend`] to keep the two honest. Objects can be damaged,
//! replaced or dropped behind the contract's back
//! ([`MemoryBackend::tamper`], [`MemoryBackend::drop_object`]) to play an
//! attacker or a faulty disk.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::{Backend, BackendError, ErrorKind, ObjectInfo, ObjectKind};

/// Objects by (kind, name); bytes shared so reads do not hold the lock
/// while copying.
type Store = BTreeMap<(ObjectKind, String), Arc<Vec<u8>>>;

#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    objects: Arc<Mutex<Store>>,
    location: Arc<str>,
}

impl MemoryBackend {
    /// An empty store; `location` names it in messages.
    #[must_use]
    pub fn new(location: &str) -> Self {
        MemoryBackend { objects: Arc::default(), location: Arc::from(format!("memory:{location}")) }
    }

    fn err(&self, kind: ErrorKind, object_kind: ObjectKind, name: &str, message: &str) -> BackendError {
        BackendError::new(kind, &self.location, &object_kind.path(name), message)
    }

    /// Replaces an object's bytes, bypassing "never overwrite": what a
    /// faulty disk or an attacker with delete rights could do.
    #[must_use = "false means there was no such object to tamper with"]
    pub fn tamper(&self, kind: ObjectKind, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> bool {
        let mut objects = self.objects.lock();
        let Some(bytes) = objects.get_mut(&Self::key(kind, name)) else { return false };
        let mut copy = bytes.as_ref().clone();
        edit(&mut copy);
        *bytes = Arc::new(copy);
        true
    }

    /// Removes an object without going through [`Backend::remove`] (a lost
    /// object).
    #[must_use = "false means there was no such object"]
    pub fn drop_object(&self, kind: ObjectKind, name: &str) -> bool {
        self.objects.lock().remove(&Self::key(kind, name)).is_some()
    }

    /// How many objects of `kind` are stored.
    #[must_use]
    pub fn count(&self, kind: ObjectKind) -> usize {
        self.objects.lock().keys().filter(|(k, _)| *k == kind).count()
    }

    /// The map key: an object's name within its kind, except `config`,
    /// which has one name whatever the caller passes (as on disk).
    fn key(kind: ObjectKind, name: &str) -> (ObjectKind, String) {
        (kind, if kind == ObjectKind::Config { "config".to_owned() } else { name.to_owned() })
    }

    fn get(&self, kind: ObjectKind, name: &str) -> Result<Arc<Vec<u8>>, BackendError> {
        self.objects.lock().get(&Self::key(kind, name)).cloned().ok_or_else(|| self.err(ErrorKind::NotFound, kind, name, "no such object"))
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn prepare(&self) -> Result<(), BackendError> {
        let objects = self.objects.lock();
        if objects.contains_key(&Self::key(ObjectKind::Config, "")) {
            return Err(self.err(ErrorKind::AlreadyExists, ObjectKind::Config, "", "a repository already exists here"));
        }
        // Never mixed into other objects (the contract in lib.rs).
        if let Some((kind, name)) = objects.keys().next() {
            return Err(BackendError::new(ErrorKind::AlreadyExists, &self.location, "", crate::not_empty_message(&kind.path(name))));
        }
        Ok(())
    }

    fn create(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        let mut objects = self.objects.lock();
        let key = Self::key(kind, name);
        if objects.contains_key(&key) {
            return Err(self.err(ErrorKind::AlreadyExists, kind, name, "object exists (objects are never overwritten)"));
        }
        objects.insert(key, Arc::new(bytes.to_vec()));
        Ok(())
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, BackendError> {
        Ok(self.get(kind, name)?.as_ref().clone())
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        let bytes = self.get(kind, name)?;
        let end = offset.checked_add(length).filter(|&e| e <= bytes.len() as u64).ok_or_else(|| {
            self.err(ErrorKind::Truncated, kind, name, &format!("{} bytes, asked for {length} at {offset}", bytes.len()))
        })?;
        Ok(bytes[offset as usize..end as usize].to_vec())
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, BackendError> {
        Ok(self
            .objects
            .lock()
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, name), bytes)| ObjectInfo { name: name.clone(), size: bytes.len() as u64 })
            .collect())
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64, BackendError> {
        Ok(self.get(kind, name)?.len() as u64)
    }

    fn remove(&self, kind: ObjectKind, name: &str) -> Result<(), BackendError> {
        self.objects.lock().remove(&Self::key(kind, name)).map(|_| ()).ok_or_else(|| self.err(ErrorKind::NotFound, kind, name, "no such object"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalBackend;

    /// The backend contract, checked the same way on every backend that
    /// runs without a server.
    fn contract(b: &dyn Backend) {
        b.prepare().expect("prepare an empty location");
        b.create(ObjectKind::Config, "", b"{}").expect("config");
        assert_eq!(b.prepare().expect_err("a second prepare").kind, ErrorKind::AlreadyExists);
        assert_eq!(b.list(ObjectKind::Config).expect("list config")[0].name, "config");
        assert_eq!(b.read(ObjectKind::Config, "").expect("read config"), b"{}");

        b.create(ObjectKind::Pack, "ab01", b"hello world").expect("create");
        let again = b.create(ObjectKind::Pack, "ab01", b"other bytes").expect_err("create must never overwrite");
        assert_eq!(again.kind, ErrorKind::AlreadyExists);
        assert_eq!(b.read(ObjectKind::Pack, "ab01").expect("read"), b"hello world", "the first bytes stay");

        assert_eq!(b.read_range(ObjectKind::Pack, "ab01", 6, 5).expect("range"), b"world");
        assert_eq!(b.read_range(ObjectKind::Pack, "ab01", 6, 6).expect_err("past the end").kind, ErrorKind::Truncated);
        assert_eq!(b.size(ObjectKind::Pack, "ab01").expect("size"), 11);

        assert_eq!(b.read(ObjectKind::Index, "ab01").expect_err("kinds are separate namespaces").kind, ErrorKind::NotFound);
        b.create(ObjectKind::Wal, "db/000000010000000000000003", b"wal").expect("wal");
        b.create(ObjectKind::Wal, "db/00000002.history", b"h").expect("history");
        let mut wal: Vec<String> = b.list(ObjectKind::Wal).expect("list").into_iter().map(|o| o.name).collect();
        wal.sort();
        assert_eq!(wal, ["db/000000010000000000000003", "db/00000002.history"]);

        let packs = b.list(ObjectKind::Pack).expect("list");
        assert_eq!(packs, [ObjectInfo { name: "ab01".into(), size: 11 }]);
        b.remove(ObjectKind::Pack, "ab01").expect("remove");
        assert_eq!(b.read(ObjectKind::Pack, "ab01").expect_err("removed").kind, ErrorKind::NotFound);
        assert_eq!(b.remove(ObjectKind::Pack, "ab01").expect_err("removed twice").kind, ErrorKind::NotFound);
        assert!(b.list(ObjectKind::Pack).expect("list").is_empty());
    }

    #[test]
    fn memory_backend_keeps_the_contract() {
        contract(&MemoryBackend::new("contract"));
    }

    #[test]
    fn local_backend_keeps_the_same_contract() {
        let dir = tempfile::tempdir().expect("tempdir");
        contract(&LocalBackend::new(dir.path().join("repo")));
    }

    /// Issue 9: `init` into a non-empty, unrelated location succeeded and
    /// mixed the repository into what was there.
    #[test]
    fn prepare_refuses_a_location_holding_anything_else() {
        let m = MemoryBackend::new("stray");
        m.create(ObjectKind::Snapshot, "s", b"someone else's").expect("create");
        let e = m.prepare().expect_err("a stray object");
        assert_eq!((e.kind, e.object.as_str()), (ErrorKind::AlreadyExists, ""), "{e}");
        let keys = MemoryBackend::new("keys");
        keys.create(ObjectKind::Key, "k", b"{}").expect("create");
        assert!(keys.prepare().expect_err("keys without config").message.contains("repair config"));

        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("repo");
        let local = LocalBackend::new(&root);
        local.prepare().expect("new");
        // Only the folders of a prepare whose init failed: prepared again.
        local.prepare().expect("an empty layout is still empty");
        std::fs::write(root.join("holiday.jpg"), b"x").expect("write");
        let e = local.prepare().expect_err("a stray file");
        assert_eq!((e.kind, e.object.as_str()), (ErrorKind::AlreadyExists, ""), "{e}");
        assert!(e.message.contains("holiday.jpg"), "{e}");
        std::fs::remove_file(root.join("holiday.jpg")).expect("rm");
        std::fs::write(root.join("keys/abc"), b"{}").expect("write");
        assert!(local.prepare().expect_err("keys without config").message.contains("repair config"));
        std::fs::write(dir.path().join("a-file"), b"x").expect("write");
        assert_eq!(LocalBackend::new(dir.path().join("a-file")).prepare().expect_err("a file").kind, ErrorKind::AlreadyExists);
    }

    #[test]
    fn tampering_bypasses_write_once() {
        let b = MemoryBackend::new("t");
        b.create(ObjectKind::Snapshot, "s", b"abc").expect("create");
        assert!(b.tamper(ObjectKind::Snapshot, "s", |bytes| bytes[0] ^= 1));
        assert_eq!(b.read(ObjectKind::Snapshot, "s").expect("read"), b"`bc");
        assert!(b.drop_object(ObjectKind::Snapshot, "s"));
        assert_eq!(b.count(ObjectKind::Snapshot), 0);
    }
}
