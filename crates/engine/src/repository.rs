//! Opening a repository: config, keys, and typed access to its objects.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use reprise_backends::{Backend, ErrorKind, ObjectKind};
use reprise_format::chunker::{Chunker, ChunkerParams};
use reprise_format::config::RepositoryConfig;
use reprise_format::crypto::{RecoverySecretKey, SymmetricKey};
use reprise_format::keys::{KdfParams, KeyFile, KeyInfo, Role, Secrets};
use reprise_format::snapshot::{self, SnapshotBody, SnapshotHeader};
use reprise_format::tree::Tree;
use reprise_format::{BlobKind, FormatError, Id, pack};

use crate::error::{Error, Result};
use crate::index::MasterIndex;

/// An open repository: its storage, public config and the secrets of the key
/// that opened it.
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepositoryConfig,
    secrets: Secrets,
    key_name: Mutex<Option<String>>,
    pack_keys: Mutex<HashMap<Id, SymmetricKey>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.backend.location())
            .field("id", &self.config.id)
            .field("role", &self.secrets.role())
            .finish_non_exhaustive()
    }
}

/// A key file as listed by `key list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyEntry {
    pub name: String,
    #[serde(flatten)]
    pub info: KeyInfo,
    /// Whether this is the key the repository was opened with.
    pub current: bool,
}

/// An object that could not be read, and why.
pub type Unreadable = (String, Error);

/// A snapshot's name and readable header.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotInfo {
    pub id: Id,
    #[serde(flatten)]
    pub header: SnapshotHeader,
}

pub(crate) fn whoami() -> (String, String) {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name).unwrap_or_default();
    (host, user)
}

/// Prepares an empty location for a new repository (`init`, a copy's
/// first run): a repository already there, or anything else, is refused.
pub(crate) fn prepare_location(backend: &dyn Backend) -> Result<()> {
    backend.prepare().map_err(|e| match e.kind {
        ErrorKind::AlreadyExists if e.object == "config" => Error::RepositoryExists { location: backend.location().to_owned() },
        ErrorKind::AlreadyExists => Error::LocationNotEmpty { location: backend.location().to_owned(), detail: e.message },
        _ => Error::Backend(e),
    })
}

/// The local host name, as recorded in snapshots.
#[must_use]
pub fn hostname() -> String {
    whoami().0
}

impl Repository {
    /// Creates a repository at an empty location and its first, full-access key.
    pub fn init(backend: Arc<dyn Backend>, passphrase: &[u8], kdf: KdfParams, chunker: ChunkerParams) -> Result<Repository> {
        Self::init_with(backend, passphrase, kdf, chunker, reprise_format::config::DEFAULT_PACK_SIZE)
    }

    /// [`Repository::init`] with a chosen target pack size in bytes.
    pub fn init_with(backend: Arc<dyn Backend>, passphrase: &[u8], kdf: KdfParams, chunker: ChunkerParams, pack_size: u32) -> Result<Repository> {
        if !(1 << 20..=1 << 30).contains(&pack_size) {
            return Err(Error::InvalidArgument(format!("pack size {pack_size} is outside 1 MiB..1 GiB")));
        }
        if passphrase.is_empty() {
            return Err(Error::InvalidArgument("the passphrase is empty: choose one (it protects the repository's keys)".into()));
        }
        prepare_location(backend.as_ref())?;
        let id = Id(reprise_format::crypto::random());
        let mut config = RepositoryConfig::new(id, chunker);
        config.pack_size = pack_size;
        let secrets = Secrets::generate(id);
        let (host, user) = whoami();
        let key = KeyFile::seal(&secrets, passphrase, kdf, &host, &user, "initial key").map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let key_bytes = key.to_bytes();
        let key_name = Id::of_object(&key_bytes).to_hex();
        // Key first, config last: a location with a config always has a key.
        backend.create(ObjectKind::Key, &key_name, &key_bytes)?;
        backend.create(ObjectKind::Config, "", &config.to_bytes())?;
        Ok(Repository { backend, config, secrets, key_name: Mutex::new(Some(key_name)), pack_keys: Mutex::default() })
    }

    fn read_config(backend: &dyn Backend) -> Result<RepositoryConfig> {
        let bytes = backend.read(ObjectKind::Config, "").map_err(|e| match e.kind {
            ErrorKind::NotFound => Error::NotARepository { location: backend.location().to_owned() },
            _ => Error::Backend(e),
        })?;
        RepositoryConfig::from_bytes(&bytes).map_err(|e| Error::damaged("config", e))
    }

    /// Opens with a passphrase, trying every key file.
    pub fn open(backend: Arc<dyn Backend>, passphrase: &[u8]) -> Result<Repository> {
        let config = Self::read_config(backend.as_ref())?;
        let keys = backend.list(ObjectKind::Key)?;
        let mut damaged: Vec<String> = Vec::new();
        let mut other_repository: Option<Id> = None;
        for k in &keys {
            let bytes = match backend.read(ObjectKind::Key, &k.name) {
                Ok(b) => b,
                Err(e) => {
                    tracing::debug!("skipping unreadable key {}: {e}", k.name);
                    damaged.push(ObjectKind::Key.path(&k.name));
                    continue;
                }
            };
            // Key files are named by the hash of their bytes.
            if Id::of_object(&bytes).to_hex() != k.name {
                tracing::debug!("key file {} is damaged (its bytes do not match its name)", k.name);
                damaged.push(ObjectKind::Key.path(&k.name));
                continue;
            }
            let Ok(file) = KeyFile::from_bytes(&bytes) else {
                tracing::debug!("skipping malformed key file {}", k.name);
                damaged.push(ObjectKind::Key.path(&k.name));
                continue;
            };
            match file.open(passphrase) {
                Ok(secrets) => {
                    if secrets.write.repository_id != config.id {
                        tracing::debug!("key {} belongs to another repository", k.name);
                        other_repository = Some(secrets.write.repository_id);
                        continue;
                    }
                    return Ok(Repository { backend, config, secrets, key_name: Mutex::new(Some(k.name.clone())), pack_keys: Mutex::default() });
                }
                Err(FormatError::WrongPassphrase) => {}
                Err(e) => {
                    tracing::debug!("key {}: {e}", k.name);
                    damaged.push(ObjectKind::Key.path(&k.name));
                }
            }
        }
        if !damaged.is_empty() {
            // The passphrase may belong to a damaged key: say so, not "wrong passphrase".
            return Err(Error::Damaged {
                object: damaged.join(", "),
                source: FormatError::Malformed(
                    "no intact key file opens with this passphrase; restore the damaged key file from a copy, or open with the recovery key (--key-file)".into(),
                ),
            });
        }
        // The passphrase opens a key, but the config names another
        // repository: an altered config (a flipped digit of its ID), not a
        // wrong passphrase.
        if let Some(theirs) = other_repository {
            return Err(Error::damaged(
                "config",
                FormatError::Malformed(format!(
                    "it names repository {}, but the key this passphrase opens belongs to repository {} (if this is the wrong location, check --repo)",
                    config.id.short(),
                    theirs.short()
                )),
            ));
        }
        Err(Error::WrongPassphrase { location: backend.location().to_owned() })
    }

    /// Opens with secrets from a recovery key file.
    pub fn open_with_secrets(backend: Arc<dyn Backend>, secrets: Secrets) -> Result<Repository> {
        let config = Self::read_config(backend.as_ref())?;
        if secrets.write.repository_id != config.id {
            return Err(Error::InvalidArgument(format!(
                "this recovery key belongs to repository {}, not to {} ({})",
                secrets.write.repository_id.short(),
                config.id.short(),
                backend.location()
            )));
        }
        Ok(Repository { backend, config, secrets, key_name: Mutex::new(None), pack_keys: Mutex::default() })
    }

    #[must_use]
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    #[must_use]
    pub fn config(&self) -> &RepositoryConfig {
        &self.config
    }

    #[must_use]
    pub fn id(&self) -> Id {
        self.config.id
    }

    #[must_use]
    pub fn role(&self) -> Role {
        self.secrets.role()
    }

    #[must_use]
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    #[must_use]
    pub fn chunker(&self) -> Chunker {
        Chunker::new(self.config.chunker, self.secrets.write.chunker_seed)
    }

    /// The recovery secret, or [`Error::WriteOnly`] naming the operation.
    pub fn recovery(&self, operation: &'static str) -> Result<&RecoverySecretKey> {
        self.secrets.recovery.as_ref().ok_or(Error::WriteOnly { operation })
    }

    pub fn require_full(&self, operation: &'static str) -> Result<()> {
        self.recovery(operation).map(|_| ())
    }

    // ---- keys ----

    pub fn keys(&self) -> Result<Vec<KeyEntry>> {
        let mut out = Vec::new();
        for k in self.backend.list(ObjectKind::Key)? {
            let bytes = self.backend.read(ObjectKind::Key, &k.name)?;
            let file = KeyFile::from_bytes(&bytes).map_err(|e| Error::damaged(ObjectKind::Key.path(&k.name), e))?;
            let current = self.key_name.lock().as_deref() == Some(k.name.as_str());
            out.push(KeyEntry { current, name: k.name, info: file.info });
        }
        out.sort_by_key(|a| a.info.created);
        Ok(out)
    }

    /// Adds a key. A full key can add full or write-only keys.
    pub fn add_key(&self, passphrase: &[u8], role: Role, kdf: KdfParams, label: &str) -> Result<String> {
        self.require_full("adding a key")?;
        if passphrase.is_empty() {
            return Err(Error::InvalidArgument("the new passphrase is empty: choose one".into()));
        }
        let secrets = match role {
            Role::Full => self.secrets.clone(),
            Role::WriteOnly => self.secrets.write_only(),
        };
        let (host, user) = whoami();
        let file = KeyFile::seal(&secrets, passphrase, kdf, &host, &user, label).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let bytes = file.to_bytes();
        let name = Id::of_object(&bytes).to_hex();
        self.backend.create(ObjectKind::Key, &name, &bytes)?;
        Ok(name)
    }

    /// Resolves a key name or unique prefix.
    pub fn find_key(&self, prefix: &str) -> Result<KeyEntry> {
        let keys = self.keys()?;
        let matches: Vec<_> = keys.into_iter().filter(|k| k.name.starts_with(prefix)).collect();
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => Err(Error::NotFound(format!("no key matches '{prefix}': list keys with `reprise key list`"))),
            _ => Err(Error::InvalidArgument(format!("'{prefix}' matches several keys: give more digits"))),
        }
    }

    /// Removes a key. Refuses the key in use and the last full-access key,
    /// which would lock everyone out of reading.
    pub fn remove_key(&self, name: &str) -> Result<()> {
        self.require_full("removing a key")?;
        let keys = self.keys()?;
        let target = keys
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| Error::NotFound(format!("no key named {name}: list keys with `reprise key list`")))?;
        if target.current {
            return Err(Error::InvalidArgument(
                "refusing to remove the key in use: open the repository with another key to remove this one".into(),
            ));
        }
        if target.info.role == Role::Full && keys.iter().filter(|k| k.info.role == Role::Full).count() == 1 {
            return Err(Error::InvalidArgument("refusing to remove the last full-access key: nobody could read the backups".into()));
        }
        self.backend.remove(ObjectKind::Key, name)?;
        Ok(())
    }

    /// Replaces the current key's passphrase: a new key file with the same
    /// role and label, then removal of the old one (objects are write-once).
    pub fn change_passphrase(&self, new_passphrase: &[u8], kdf: KdfParams) -> Result<String> {
        // It removes the old key file, and write-only keys never delete.
        self.require_full("changing a passphrase (it removes the old key file)")?;
        let old = self
            .key_name
            .lock()
            .clone()
            .ok_or_else(|| Error::InvalidArgument("opened with a recovery key file: there is no passphrase to change".into()))?;
        if new_passphrase.is_empty() {
            return Err(Error::InvalidArgument("the new passphrase is empty: choose one".into()));
        }
        let label = self.keys()?.into_iter().find(|k| k.name == old).map(|k| k.info.label).unwrap_or_default();
        let (host, user) = whoami();
        let file =
            KeyFile::seal(&self.secrets, new_passphrase, kdf, &host, &user, &label).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let bytes = file.to_bytes();
        let name = Id::of_object(&bytes).to_hex();
        self.backend.create(ObjectKind::Key, &name, &bytes)?;
        self.backend.remove(ObjectKind::Key, &old)?;
        *self.key_name.lock() = Some(name.clone());
        Ok(name)
    }

    // ---- objects ----

    /// Stores an object under the hash of its bytes. Storing identical bytes
    /// twice is a no-op (same name, same content).
    pub fn save_object(&self, kind: ObjectKind, bytes: &[u8]) -> Result<Id> {
        let id = Id::of_object(bytes);
        match self.backend.create(kind, &id.to_hex(), bytes) {
            Ok(()) => Ok(id),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Ok(id),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads an object and checks that its bytes hash to its name.
    pub fn read_object(&self, kind: ObjectKind, id: &Id) -> Result<Vec<u8>> {
        let name = id.to_hex();
        let bytes = self.backend.read(kind, &name)?;
        if Id::of_object(&bytes) != *id {
            return Err(Error::damaged(kind.path(&name), FormatError::Malformed("content does not match its name".into())));
        }
        Ok(bytes)
    }

    // ---- snapshots ----

    pub fn save_snapshot(&self, header: &SnapshotHeader, body: &SnapshotBody) -> Result<Id> {
        let bytes = snapshot::seal(header, body, &self.secrets.write.catalog_key, &self.secrets.write.recovery_public);
        self.save_object(ObjectKind::Snapshot, &bytes)
    }

    /// Every readable snapshot header, oldest first, and the names of those
    /// that could not be read.
    pub fn snapshots(&self) -> Result<(Vec<SnapshotInfo>, Vec<Unreadable>)> {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for obj in self.backend.list(ObjectKind::Snapshot)? {
            let Ok(id) = obj.name.parse::<Id>() else {
                continue;
            };
            match self.snapshot_header(&id) {
                Ok(header) => ok.push(SnapshotInfo { id, header }),
                Err(e) => bad.push((ObjectKind::Snapshot.path(&obj.name), e)),
            }
        }
        ok.sort_by(|a, b| a.header.time.cmp(&b.header.time).then(a.id.cmp(&b.id)));
        Ok((ok, bad))
    }

    pub fn snapshot_header(&self, id: &Id) -> Result<SnapshotHeader> {
        let bytes = self.read_object(ObjectKind::Snapshot, id)?;
        snapshot::open_header(&bytes, &self.secrets.write.catalog_key).map_err(|e| Error::damaged(ObjectKind::Snapshot.path(&id.to_hex()), e))
    }

    pub fn snapshot_body(&self, id: &Id) -> Result<SnapshotBody> {
        let recovery = self.recovery("reading a snapshot")?;
        let bytes = self.read_object(ObjectKind::Snapshot, id)?;
        snapshot::open_body(&bytes, recovery).map_err(|e| Error::damaged(ObjectKind::Snapshot.path(&id.to_hex()), e))
    }

    /// The header of a snapshot object that is damaged (its bytes no longer
    /// hash to its name) when the header itself still authenticates under
    /// the catalog key: its time and component are then known for sure.
    #[must_use]
    pub fn damaged_snapshot_header(&self, object: &str) -> Option<SnapshotHeader> {
        let name = object.rsplit('/').next()?;
        let bytes = self.backend.read(ObjectKind::Snapshot, name).ok()?;
        snapshot::open_header(&bytes, &self.secrets.write.catalog_key).ok()
    }

    /// The newest snapshot that passes `filter`, or `None` when there is
    /// none. A damaged snapshot that may be newer (its header cannot be
    /// read, or says it is newer and passes the filter) makes this an
    /// error naming it and the newest readable one: `latest` never
    /// silently means an older snapshot.
    pub fn newest_snapshot(&self, filter: &dyn Fn(&SnapshotHeader) -> bool) -> Result<Option<SnapshotInfo>> {
        let (all, unreadable) = self.snapshots()?;
        let newest = all.into_iter().rfind(|s| filter(&s.header));
        for (object, e) in unreadable {
            let reason = match e {
                Error::Damaged { source, .. } => source.to_string(),
                // Not damage (storage refused or did not answer): that
                // error, with its own category.
                other => return Err(other),
            };
            match self.damaged_snapshot_header(&object) {
                Some(h) if !filter(&h) => {}
                Some(h) if newest.as_ref().is_some_and(|n| h.time < n.header.time) => {}
                _ => return Err(Error::LatestDamaged { object, reason, newest_readable: newest.map(|s| (s.id, s.header.time)) }),
            }
        }
        Ok(newest)
    }

    /// Resolves `latest`, a full ID or a unique prefix, among snapshots that
    /// pass `filter`.
    pub fn find_snapshot(&self, spec: &str, filter: &dyn Fn(&SnapshotHeader) -> bool) -> Result<SnapshotInfo> {
        if spec == "latest" {
            return self.newest_snapshot(filter)?.ok_or_else(|| Error::SnapshotNotFound(spec.to_owned()));
        }
        let (all, unreadable) = self.snapshots()?;
        // A damaged snapshot asked for by ID is damage, not "not found".
        let spec_lower = spec.to_ascii_lowercase();
        if !spec.is_empty()
            && !all.iter().any(|s| s.id.to_hex().starts_with(&spec_lower))
            && let Some((object, e)) = unreadable.into_iter().find(|(o, _)| o.rsplit('/').next().is_some_and(|n| n.starts_with(&spec_lower)))
        {
            return Err(match e {
                Error::Damaged { source, .. } => Error::Damaged { object, source },
                other => other,
            });
        }
        let candidates: Vec<SnapshotInfo> = all.into_iter().filter(|s| filter(&s.header)).collect();
        if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::SnapshotNotFound(spec.to_owned()));
        }
        let mut matches = candidates.into_iter().filter(|s| s.id.to_hex().starts_with(&spec_lower));
        match (matches.next(), matches.next()) {
            (Some(s), None) => Ok(s),
            (None, _) => Err(Error::SnapshotNotFound(spec.to_owned())),
            (Some(_), Some(_)) => Err(Error::AmbiguousSnapshot(spec.to_owned())),
        }
    }

    // ---- blobs ----

    /// The data key of a pack, opened once and cached.
    pub fn pack_key(&self, pack: &Id) -> Result<SymmetricKey> {
        if let Some(k) = self.pack_keys.lock().get(pack) {
            return Ok(k.clone());
        }
        let recovery = self.recovery("reading backed-up content")?;
        let name = pack.to_hex();
        let header = self.backend.read_range(ObjectKind::Pack, &name, 0, pack::HEADER_LEN as u64)?;
        let key = pack::open_pack_key(&header, recovery).map_err(|e| Error::damaged(ObjectKind::Pack.path(&name), e))?;
        self.pack_keys.lock().insert(*pack, key.clone());
        Ok(key)
    }

    /// Reads, decrypts and verifies one blob.
    pub fn read_blob(&self, index: &MasterIndex, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or_else(|| {
            Error::damaged(format!("{kind} blob {id}"), FormatError::Malformed("not in any index: its pack is missing".into()))
        })?;
        let ct = self.backend.read_range(ObjectKind::Pack, &loc.pack.to_hex(), u64::from(loc.entry.offset), u64::from(loc.entry.length))?;
        self.open_blob(&loc.pack, &loc.entry, &ct)
    }

    /// Decrypts and verifies a blob whose ciphertext was already read.
    pub fn open_blob(&self, pack: &Id, entry: &pack::PackEntry, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let key = self.pack_key(pack)?;
        pack::open_blob(&key, &self.secrets.write.id_key, entry, ciphertext)
            .map_err(|e| Error::damaged(format!("{} blob {} in {}", entry.kind, entry.id, ObjectKind::Pack.path(&pack.to_hex())), e))
    }

    /// Like [`Repository::open_blob`], but returns the blob as stored
    /// (compression byte, payload) once verified.
    pub fn open_blob_stored(&self, pack: &Id, entry: &pack::PackEntry, ciphertext: &[u8]) -> Result<(u8, Vec<u8>)> {
        let key = self.pack_key(pack)?;
        pack::open_blob_stored(&key, &self.secrets.write.id_key, entry, ciphertext)
            .map_err(|e| Error::damaged(format!("{} blob {} in {}", entry.kind, entry.id, ObjectKind::Pack.path(&pack.to_hex())), e))
    }

    pub fn read_tree(&self, index: &MasterIndex, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(index, BlobKind::Tree, id)?;
        Tree::decode(&bytes).map_err(|e| Error::damaged(format!("tree blob {id}"), e))
    }

    /// The catalog key, for modules that seal index files.
    pub(crate) fn catalog_key(&self) -> &SymmetricKey {
        &self.secrets.write.catalog_key
    }
}
