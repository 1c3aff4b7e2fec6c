//! Opening a repository: config, keys, trust, and typed access to its
//! objects.
//!
//! Opening decides what the reader believes ([`Trust`]): a full-access key
//! reads the key files (only those the administrator endorsed count) and
//! the trust records; a writer trusts itself and the administrator. Every
//! snapshot read through here has had its signature checked and its signer
//! judged, and is read in its own domain (docs/FORMAT.md 2.5).

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use reprise_backends::{Backend, ErrorKind, ObjectKind};
use reprise_format::chunker::{Chunker, ChunkerParams};
use reprise_format::config::RepositoryConfig;
use reprise_format::crypto::{RecoverySecretKey, SymmetricKey};
use reprise_format::keys::{Domain, DomainId, DomainKeys, KdfParams, KeyFile, KeyInfo, KeyLabels, Role, Secrets};
use reprise_format::sign::{KeyId, ObjectType, SigningKey};
use reprise_format::snapshot::{self, SnapshotBody, SnapshotHeader};
use reprise_format::tree::Tree;
use reprise_format::{BlobKind, FormatError, Id, pack};

use crate::error::{Error, Result};
use crate::index::{BlobLocation, MasterIndex};
use crate::trust::{Provenance, Trust, Verdict};

/// An open repository: its storage, public config, the secrets of the key
/// that opened it, and what that key believes.
pub struct Repository {
    backend: Arc<dyn Backend>,
    config: RepositoryConfig,
    secrets: Secrets,
    key_name: Mutex<Option<String>>,
    pack_keys: Mutex<HashMap<Id, SymmetricKey>>,
    domain_keys: Mutex<HashMap<Domain, Arc<DomainKeys>>>,
    /// Replaced when this process changes who is trusted (a key added,
    /// a credential recorded, a key revoked).
    trust: Mutex<Arc<Trust>>,
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

/// A key as listed by `key list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyEntry {
    /// The key file's name (empty for a revoked key: its file is gone).
    pub name: String,
    /// The key's ID (version 2): what signatures name.
    pub key_id: Option<String>,
    /// `full`, `write-only` or `credential`.
    pub kind: &'static str,
    #[serde(flatten)]
    pub info: KeyInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_host: Option<String>,
    /// `endorsed`, `revoked`, `legacy` (version 1, to upgrade) or
    /// `unendorsed` (ignored: planted, or damaged).
    pub status: String,
    /// Whether this is the key the repository was opened with.
    pub current: bool,
}

/// An object that could not be read, and why.
pub type Unreadable = (String, Error);

/// Who wrote a snapshot, as shown to users.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WriterRef {
    /// `administrator`, `write-only`, `credential` or `legacy` (unsigned).
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub label: String,
}

impl WriterRef {
    /// A short form for listings: `admin`, `legacy`, `1a2b3c4d5e6f (label)`.
    #[must_use]
    pub fn short(&self) -> String {
        match (&self.key_id, self.kind) {
            (Some(k), _) if self.label.is_empty() => k[..12].to_owned(),
            (Some(k), _) => format!("{} ({})", &k[..12], self.label),
            (None, "administrator") => "admin".into(),
            (None, kind) => kind.into(),
        }
    }
}

/// A snapshot's name, readable header, domain and writer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotInfo {
    pub id: Id,
    #[serde(flatten)]
    pub header: SnapshotHeader,
    pub domain: Domain,
    pub writer: WriterRef,
    /// Set when the writer claims a host its key was not issued for: such
    /// a snapshot is listed, never taken as `latest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// This host's name and the account running reprise, as objects record them.
#[must_use]
pub fn whoami() -> (String, String) {
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

fn labels(label: &str, bound_host: Option<&str>) -> KeyLabels {
    let (host, user) = whoami();
    KeyLabels { host, user, label: label.to_owned(), bound_host: bound_host.map(str::to_owned) }
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
        let mut key = KeyFile::seal(&secrets, passphrase, kdf, &labels("initial key", None)).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        key.endorse(&secrets.admin_key().expect("full key"), &id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let key_bytes = key.to_bytes();
        let key_name = Id::of_object(&key_bytes).to_hex();
        // Key first, config last: a location with a config always has a key.
        backend.create(ObjectKind::Key, &key_name, &key_bytes)?;
        backend.create(ObjectKind::Config, "", &config.to_bytes())?;
        Self::assemble(backend, config, secrets, Some(key_name))
    }

    fn assemble(backend: Arc<dyn Backend>, config: RepositoryConfig, secrets: Secrets, key_name: Option<String>) -> Result<Repository> {
        let (trust, _) = Trust::load(backend.as_ref(), &secrets, config.version)?;
        Ok(Repository { backend, config, secrets, key_name: Mutex::new(key_name), pack_keys: Mutex::default(), domain_keys: Mutex::default(), trust: Mutex::new(Arc::new(trust)) })
    }

    fn read_config(backend: &dyn Backend) -> Result<RepositoryConfig> {
        let bytes = backend.read(ObjectKind::Config, "").map_err(|e| match e.kind {
            ErrorKind::NotFound => Error::NotARepository { location: backend.location().to_owned() },
            _ => Error::Backend(e),
        })?;
        RepositoryConfig::from_bytes(&bytes).map_err(|e| Error::damaged("config", e))
    }

    /// Opens with a passphrase, trying every key file that holds secrets.
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
            if !file.has_secrets() {
                continue; // a write credential's public record
            }
            match file.open(passphrase) {
                Ok(secrets) => {
                    if secrets.repository_id != config.id {
                        tracing::debug!("key {} belongs to another repository", k.name);
                        other_repository = Some(secrets.repository_id);
                        continue;
                    }
                    return Self::assemble(backend, config, secrets, Some(k.name.clone()));
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

    /// Opens with secrets from a recovery key file or a write credential.
    pub fn open_with_secrets(backend: Arc<dyn Backend>, secrets: Secrets) -> Result<Repository> {
        let config = Self::read_config(backend.as_ref())?;
        if secrets.repository_id != config.id {
            return Err(Error::InvalidArgument(format!(
                "this key belongs to repository {}, not to {} ({})",
                secrets.repository_id.short(),
                config.id.short(),
                backend.location()
            )));
        }
        Self::assemble(backend, config, secrets, None)
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

    /// What this key believes (docs/FORMAT.md 2.5).
    #[must_use]
    pub fn trust(&self) -> Arc<Trust> {
        Arc::clone(&self.trust.lock())
    }

    /// Reads the key files and trust records again: after this process
    /// added, endorsed or revoked a key, what it reads next is judged by
    /// the new state.
    pub fn reload_trust(&self) -> Result<()> {
        let (trust, _) = Trust::load(self.backend.as_ref(), &self.secrets, self.config.version)?;
        *self.trust.lock() = Arc::new(trust);
        Ok(())
    }

    /// The domain this key backs up in.
    #[must_use]
    pub fn home_domain(&self) -> Domain {
        self.secrets.home_domain()
    }

    /// The chunker of this key's own domain.
    #[must_use]
    pub fn chunker(&self) -> Chunker {
        let seed = self.domain_keys(&self.home_domain()).map_or(0, |k| k.chunker_seed);
        Chunker::new(self.config.chunker, seed)
    }

    /// The keys of `domain`: derived (full-access keys, cached) or held (a
    /// writer's own domain); [`Error::WriteOnly`] for another domain.
    pub fn domain_keys(&self, domain: &Domain) -> Result<Arc<DomainKeys>> {
        if let Some(k) = self.domain_keys.lock().get(domain) {
            return Ok(Arc::clone(k));
        }
        let keys = Arc::new(self.secrets.domain_keys(domain).ok_or(Error::WriteOnly { operation: "reading another writer's objects" })?);
        self.domain_keys.lock().insert(*domain, Arc::clone(&keys));
        Ok(keys)
    }

    /// What this key signs with, and the domain it writes in; refused in a
    /// repository not upgraded yet, and to version 1 write-only keys.
    pub fn signer(&self) -> Result<(SigningKey, DomainId)> {
        let (key, domain) = self.secrets.signer().ok_or(Error::LegacyKey)?;
        if self.trust().needs_upgrade() {
            return Err(Error::NeedsUpgrade);
        }
        Ok((key, domain))
    }

    /// The administrator's signing key (full-access keys).
    pub fn admin_key(&self, operation: &'static str) -> Result<SigningKey> {
        self.secrets.admin_key().ok_or(Error::WriteOnly { operation })
    }

    /// The recovery secret, or [`Error::WriteOnly`] naming the operation.
    pub fn recovery(&self, operation: &'static str) -> Result<&RecoverySecretKey> {
        self.secrets.recovery().ok_or(Error::WriteOnly { operation })
    }

    pub fn require_full(&self, operation: &'static str) -> Result<()> {
        self.recovery(operation).map(|_| ())
    }

    // ---- keys ----

    /// Every key: key files (endorsed, legacy or ignored) and revoked keys.
    pub fn keys(&self) -> Result<Vec<KeyEntry>> {
        let (_, files) = Trust::load(self.backend.as_ref(), &self.secrets, self.config.version)?;
        let files = if files.is_empty() { crate::trust::read_key_files(self.backend.as_ref())? } else { files };
        let admin = self.secrets.admin_id();
        let current = self.key_name.lock().clone();
        let mut out = Vec::new();
        for k in files {
            let f = &k.file;
            let status = if f.version() < 2 {
                "legacy".to_owned()
            } else {
                match admin.map(|a| f.verify_endorsement(&a, &self.config.id)) {
                    Some(Ok(())) => "endorsed".to_owned(),
                    Some(Err(_)) => "unendorsed".to_owned(),
                    // A version 1 write-only key cannot tell.
                    None => "unknown".to_owned(),
                }
            };
            out.push(KeyEntry {
                current: current.as_deref() == Some(k.name.as_str()),
                key_id: f.key_id().map(|k| k.to_hex()),
                kind: kind_of(f),
                info: f.info.clone(),
                domain: f.domain().map(|d| d.to_hex()),
                bound_host: f.bound_host.clone(),
                status,
                name: k.name,
            });
        }
        let trust = self.trust();
        for w in trust.writers().filter(|w| w.revoked.is_some()) {
            if out.iter().any(|k| k.key_id.as_deref() == Some(w.key_id.to_hex().as_str())) {
                continue;
            }
            out.push(KeyEntry {
                name: String::new(),
                key_id: Some(w.key_id.to_hex()),
                kind: if w.credential { "credential" } else { "write-only" },
                info: KeyInfo { role: Role::WriteOnly, created: w.created.parse().unwrap_or_default(), host: w.host.clone(), user: w.user.clone(), label: w.label.clone() },
                domain: Some(w.domain.to_hex()),
                bound_host: w.bound_host.clone(),
                status: "revoked".into(),
                current: false,
            });
        }
        out.sort_by_key(|a| a.info.created);
        Ok(out)
    }

    fn endorse(&self, file: &mut KeyFile) -> Result<()> {
        let admin = self.admin_key("managing keys")?;
        file.endorse(&admin, &self.config.id).map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    fn store_key_file(&self, file: &KeyFile) -> Result<String> {
        let bytes = file.to_bytes();
        let name = Id::of_object(&bytes).to_hex();
        self.backend.create(ObjectKind::Key, &name, &bytes)?;
        Ok(name)
    }

    /// Adds a key. A full key can add full or write-only keys; a write-only
    /// key gets its own new domain (and, with `bound_host`, the host it is
    /// issued for). Returns the key file's name and the key's ID.
    pub fn add_key(&self, passphrase: &[u8], role: Role, kdf: KdfParams, label: &str, bound_host: Option<&str>) -> Result<(String, KeyId)> {
        self.require_full("adding a key")?;
        self.signer()?;
        if passphrase.is_empty() {
            return Err(Error::InvalidArgument("the new passphrase is empty: choose one".into()));
        }
        let secrets = match role {
            Role::Full => self.secrets.clone(),
            Role::WriteOnly => self.secrets.new_writer().map_err(|e| Error::InvalidArgument(e.to_string()))?,
        };
        let mut file = KeyFile::seal(&secrets, passphrase, kdf, &labels(label, bound_host)).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.endorse(&mut file)?;
        let key_id = file.key_id().expect("version 2");
        let name = self.store_key_file(&file)?;
        self.reload_trust()?;
        Ok((name, key_id))
    }

    /// Issues a write credential: new write-only secrets (own domain, own
    /// signing key) for the caller to write to a file, and their endorsed
    /// public record under `keys/`. The caller writes the secrets first and
    /// then calls [`Repository::record_credential`].
    pub fn new_credential(&self) -> Result<Secrets> {
        self.require_full("issuing a write credential")?;
        self.signer()?;
        self.secrets.new_writer().map_err(|e| Error::InvalidArgument(e.to_string()))
    }

    /// Stores the public record of a credential made by [`Repository::new_credential`].
    pub fn record_credential(&self, secrets: &Secrets, label: &str, bound_host: Option<&str>) -> Result<(String, KeyId)> {
        let mut file = KeyFile::credential_record(secrets, &labels(label, bound_host)).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.endorse(&mut file)?;
        let key_id = file.key_id().expect("version 2");
        let name = self.store_key_file(&file)?;
        self.reload_trust()?;
        Ok((name, key_id))
    }

    /// Resolves a key ID, a key file name, or a unique prefix of either.
    pub fn find_key(&self, prefix: &str) -> Result<KeyEntry> {
        let p = prefix.to_ascii_lowercase();
        if p.is_empty() {
            return Err(Error::InvalidArgument("no key named: give a key ID from `reprise key list`".into()));
        }
        let keys = self.keys()?;
        let mut matches: Vec<_> = keys.into_iter().filter(|k| k.key_id.as_deref().is_some_and(|id| id.starts_with(&p)) || (!k.name.is_empty() && k.name.starts_with(&p))).collect();
        // A key file planted under a real key's ID (unendorsed) does not
        // make that key ambiguous.
        if matches.len() > 1 && matches.iter().any(|k| k.status != "unendorsed") {
            matches.retain(|k| k.status != "unendorsed");
        }
        match matches.len() {
            1 => Ok(matches.into_iter().next().expect("one match")),
            0 => Err(Error::NotFound(format!("no key matches '{prefix}': list keys with `reprise key list`"))),
            _ => Err(Error::InvalidArgument(format!("'{prefix}' matches several keys: give more digits"))),
        }
    }

    /// Removes a full-access key file. Refuses the key in use and the last
    /// full-access key, which would lock everyone out of reading. (A
    /// write-only key is revoked instead: see `revoke::revoke`, which keeps
    /// what it wrote trusted.)
    pub fn remove_key(&self, name: &str) -> Result<()> {
        self.require_full("removing a key")?;
        let keys = self.keys()?;
        let target = keys
            .iter()
            .find(|k| !k.name.is_empty() && k.name == name)
            .ok_or_else(|| Error::NotFound(format!("no key named {name}: list keys with `reprise key list`")))?;
        if target.current {
            return Err(Error::InvalidArgument(
                "refusing to remove the key in use: open the repository with another key to remove this one".into(),
            ));
        }
        if target.info.role == Role::Full && keys.iter().filter(|k| k.info.role == Role::Full && !k.name.is_empty()).count() == 1 {
            return Err(Error::InvalidArgument("refusing to remove the last full-access key: nobody could read the backups".into()));
        }
        self.backend.remove(ObjectKind::Key, name)?;
        Ok(())
    }

    /// Replaces the current key's passphrase: a new key file with the same
    /// key ID, role and labels, endorsed, then removal of the old one
    /// (objects are write-once).
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
        let bytes = self.backend.read(ObjectKind::Key, &old)?;
        let current = KeyFile::from_bytes(&bytes).map_err(|e| Error::damaged(ObjectKind::Key.path(&old), e))?;
        let fresh = KeyFile::seal(&self.secrets, new_passphrase, kdf, &labels(&current.info.label, None)).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        // A version 1 key file gets a version 2 one, with a new key ID.
        let mut file = if current.version() >= 2 { current.with_secrets_of(&fresh) } else { fresh };
        self.endorse(&mut file)?;
        let name = self.store_key_file(&file)?;
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
        let (signer, domain) = self.signer()?;
        let keys = self.domain_keys(&domain)?;
        let bytes = snapshot::seal(header, body, &domain, &keys.catalog_key, &self.secrets.recovery_public, &signer, &self.config.id);
        self.save_object(ObjectKind::Snapshot, &bytes)
    }

    /// Reads a snapshot object, checks its signature and judges its signer:
    /// its bytes, domain and provenance.
    fn read_snapshot(&self, id: &Id) -> Result<(Vec<u8>, Domain, Provenance, Option<KeyId>)> {
        let bytes = self.read_object(ObjectKind::Snapshot, id)?;
        let object = ObjectKind::Snapshot.path(&id.to_hex());
        let domain = snapshot::domain_of(&bytes).map_err(|e| Error::damaged(&object, e))?;
        let signer = match domain {
            Some(_) => Some(reprise_format::sign::verify_object(ObjectType::Snapshot, &self.config.id, &bytes).map_err(|e| Error::damaged(&object, e))?.0),
            None => None,
        };
        match self.trust().judge(ObjectKind::Snapshot, &id.to_hex(), signer.as_ref(), domain) {
            Verdict::Trusted { domain, by } => Ok((bytes, domain, by, signer)),
            Verdict::Untrusted { reason } => Err(Error::Untrusted { object, reason }),
        }
    }

    fn writer_ref(&self, by: &Provenance) -> WriterRef {
        match by {
            Provenance::Admin => WriterRef { kind: "administrator", key_id: None, label: String::new() },
            Provenance::Legacy => WriterRef { kind: "legacy", key_id: None, label: String::new() },
            Provenance::Writer(k) => {
                let w = self.trust().writer(k).cloned();
                WriterRef {
                    kind: if w.as_ref().is_some_and(|w| w.credential) { "credential" } else { "write-only" },
                    key_id: Some(k.to_hex()),
                    label: w.map(|w| w.label).unwrap_or_default(),
                }
            }
        }
    }

    /// A snapshot's header, domain and writer.
    pub fn snapshot(&self, id: &Id) -> Result<SnapshotInfo> {
        let (bytes, domain, by, _) = self.read_snapshot(id)?;
        let keys = self.domain_keys(&domain)?;
        let header = snapshot::open_header(&bytes, &keys.catalog_key).map_err(|e| Error::damaged(ObjectKind::Snapshot.path(&id.to_hex()), e))?;
        let trust = self.trust();
        let warning = trust.bound_host(&by).filter(|h| *h != header.host).map(|h| {
            format!("claims host '{}', but {} was issued for host '{h}'", header.host, trust.describe(match &by {
                Provenance::Writer(k) => Some(k),
                _ => None,
            }))
        });
        Ok(SnapshotInfo { id: *id, header, domain, writer: self.writer_ref(&by), warning })
    }

    /// Every trusted, readable snapshot, oldest first, and the names of
    /// those that could not be read or are not trusted. A writer sees only
    /// its own domain's snapshots: others' are not its business (and do
    /// not decrypt).
    pub fn snapshots(&self) -> Result<(Vec<SnapshotInfo>, Vec<Unreadable>)> {
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        let writer = self.secrets.recovery().is_none();
        for obj in self.backend.list(ObjectKind::Snapshot)? {
            let Ok(id) = obj.name.parse::<Id>() else {
                continue;
            };
            match self.snapshot(&id) {
                Ok(info) => ok.push(info),
                Err(Error::Untrusted { .. } | Error::WriteOnly { .. }) if writer => {}
                Err(e) => bad.push((ObjectKind::Snapshot.path(&obj.name), e)),
            }
        }
        ok.sort_by(|a, b| a.header.time.cmp(&b.header.time).then(a.id.cmp(&b.id)));
        Ok((ok, bad))
    }

    pub fn snapshot_header(&self, id: &Id) -> Result<SnapshotHeader> {
        Ok(self.snapshot(id)?.header)
    }

    pub fn snapshot_body(&self, id: &Id) -> Result<SnapshotBody> {
        let recovery = self.recovery("reading a snapshot")?;
        let (bytes, ..) = self.read_snapshot(id)?;
        snapshot::open_body(&bytes, recovery).map_err(|e| Error::damaged(ObjectKind::Snapshot.path(&id.to_hex()), e))
    }

    /// The header of a snapshot object that is damaged (its bytes no longer
    /// hash to its name) when the header itself still authenticates under
    /// the catalog key: its time and component are then known for sure.
    #[must_use]
    pub fn damaged_snapshot_header(&self, object: &str) -> Option<SnapshotHeader> {
        let name = object.rsplit('/').next()?;
        let bytes = self.backend.read(ObjectKind::Snapshot, name).ok()?;
        let domain = snapshot::domain_of(&bytes).ok()?.unwrap_or(DomainId::LEGACY);
        snapshot::open_header(&bytes, &self.domain_keys(&domain).ok()?.catalog_key).ok()
    }

    /// The newest snapshot that passes `filter`, or `None` when there is
    /// none. A damaged snapshot that may be newer (its header cannot be
    /// read, or says it is newer and passes the filter) makes this an
    /// error naming it and the newest readable one: `latest` never
    /// silently means an older snapshot.
    pub fn newest_snapshot(&self, filter: &dyn Fn(&SnapshotHeader) -> bool) -> Result<Option<SnapshotInfo>> {
        let (all, unreadable) = self.snapshots()?;
        // Never a snapshot whose writer claims a host its key was not
        // issued for.
        let newest = all.into_iter().rfind(|s| filter(&s.header) && s.warning.is_none());
        for (object, e) in unreadable {
            let reason = match e {
                Error::Damaged { source, .. } => source.to_string(),
                // A snapshot nobody trusted wrote is not a newer backup.
                Error::Untrusted { .. } => continue,
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
    /// pass `filter`. `latest` never picks a snapshot whose writer claims
    /// a host its key was not issued for.
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
            // A writer sees its own domain only: another writer's snapshot
            // is not "missing", it is out of this key's reach.
            (None, _) if self.secrets.recovery().is_none() && self.backend.list(ObjectKind::Snapshot)?.iter().any(|o| o.name.starts_with(&spec_lower)) => {
                Err(Error::WriteOnly { operation: "reading another writer's snapshot" })
            }
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

    /// Reads, decrypts and verifies one blob of the index's domain, trying
    /// every copy the index knows until one verifies: a damaged copy, or a
    /// decoy stored under the blob's ID, never hides a good one.
    pub fn read_blob(&self, index: &MasterIndex, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        let locations = index.locations(id);
        if locations.is_empty() {
            return Err(Error::damaged(format!("{kind} blob {id}"), FormatError::Malformed("not in any index: its pack is missing".into())));
        }
        let mut first_error = None;
        for loc in &locations {
            let r = self
                .backend
                .read_range(ObjectKind::Pack, &loc.pack.to_hex(), u64::from(loc.entry.offset), u64::from(loc.entry.length))
                .map_err(Error::from)
                .and_then(|ct| self.open_blob(loc, &ct));
            match r {
                Ok(plain) => {
                    if let Some(e) = first_error {
                        tracing::warn!("{e}; another copy of {kind} blob {} was used", id.short());
                    }
                    return Ok(plain);
                }
                Err(e @ (Error::Damaged { .. } | Error::Backend(_))) => {
                    if let Error::Backend(b) = &e
                        && !matches!(b.kind, ErrorKind::NotFound | ErrorKind::Truncated)
                    {
                        return Err(e);
                    }
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_error.expect("at least one location"))
    }

    /// Decrypts and verifies a blob whose ciphertext was already read, with
    /// the id key of the location's domain.
    pub fn open_blob(&self, loc: &BlobLocation, ciphertext: &[u8]) -> Result<Vec<u8>> {
        let key = self.pack_key(&loc.pack)?;
        let keys = self.domain_keys(&loc.domain)?;
        pack::open_blob(&key, &keys.id_key, &loc.entry, ciphertext)
            .map_err(|e| Error::damaged(format!("{} blob {} in {}", loc.entry.kind, loc.entry.id, ObjectKind::Pack.path(&loc.pack.to_hex())), e))
    }

    /// Like [`Repository::open_blob`], but returns the blob as stored
    /// (compression byte, payload) once verified.
    pub fn open_blob_stored(&self, loc: &BlobLocation, ciphertext: &[u8]) -> Result<(u8, Vec<u8>)> {
        let key = self.pack_key(&loc.pack)?;
        let keys = self.domain_keys(&loc.domain)?;
        pack::open_blob_stored(&key, &keys.id_key, &loc.entry, ciphertext)
            .map_err(|e| Error::damaged(format!("{} blob {} in {}", loc.entry.kind, loc.entry.id, ObjectKind::Pack.path(&loc.pack.to_hex())), e))
    }

    pub fn read_tree(&self, index: &MasterIndex, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(index, BlobKind::Tree, id)?;
        Tree::decode(&bytes).map_err(|e| Error::damaged(format!("tree blob {id}"), e))
    }

}

fn kind_of(f: &KeyFile) -> &'static str {
    match (f.info.role, f.credential) {
        (Role::Full, _) => "full",
        (Role::WriteOnly, true) => "credential",
        (Role::WriteOnly, false) => "write-only",
    }
}
