//! Storage backends.
//!
//! A backend stores named objects of a few kinds and knows nothing of what
//! they contain. Its contract is small and strict, because everything above
//! relies on it:
//!
//! * **`create` never overwrites.** It fails with [`ErrorKind::AlreadyExists`]
//!   if the name exists, so that the same layout works unchanged on WORM and
//!   object-lock storage, and so that no writer can replace what another
//!   wrote. (Object stores: when a retried create finds the name taken, the
//!   object is read back; if it holds exactly the bytes being written, an
//!   earlier attempt whose answer was lost created it, and `create`
//!   succeeds.)
//! * **`create` returns only once the object is durable** (fsync'd, or
//!   acknowledged by the object store); a crash before that leaves either no
//!   object or a temporary file that is never read.
//! * Reads of a missing object fail with [`ErrorKind::NotFound`], never with
//!   empty data.

mod local;
mod memory;
pub mod lock;
mod object;

use std::fmt;
use std::sync::Arc;

pub use local::LocalBackend;
pub use memory::MemoryBackend;
pub use lock::{Lock, LockMode, ObjectLock, ServiceImmutability};
pub use object::{Credentials, ObjectBackend, ObjectUrl, Service};

/// The kinds of object a repository holds, each in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Config,
    Key,
    Snapshot,
    Index,
    Pack,
    /// Archived WAL files, named `<component>/<file name>`.
    Wal,
    /// Legal holds on snapshots.
    Hold,
    /// Prune marks: packs condemned, deleted after a grace period.
    PruneMark,
    /// The evidence ledger (`reprise_ledger`): records named
    /// `<ledger>/records/<index>`, witnessed checkpoints named
    /// `<ledger>/checkpoints/<size>`, and the `site` and `witness` markers.
    Ledger,
    /// The administrator's trust records: revocations, the legacy record.
    Trust,
    /// Restore drill records (`reprise drill run`): the evidence of each
    /// drill, kept with the backups it tested so a copy carries it.
    Drill,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 11] = [
        ObjectKind::Config,
        ObjectKind::Key,
        ObjectKind::Snapshot,
        ObjectKind::Index,
        ObjectKind::Pack,
        ObjectKind::Wal,
        ObjectKind::Hold,
        ObjectKind::PruneMark,
        ObjectKind::Ledger,
        ObjectKind::Trust,
        ObjectKind::Drill,
    ];

    /// The folder (or key prefix) objects of this kind live under.
    #[must_use]
    pub fn dir(self) -> &'static str {
        match self {
            ObjectKind::Config => "",
            ObjectKind::Key => "keys",
            ObjectKind::Snapshot => "snapshots",
            ObjectKind::Index => "index",
            ObjectKind::Pack => "data",
            ObjectKind::Wal => "wal",
            ObjectKind::Hold => "holds",
            ObjectKind::PruneMark => "prune",
            ObjectKind::Ledger => "ledger",
            ObjectKind::Trust => "trust",
            ObjectKind::Drill => "drills",
        }
    }

    /// The object's path relative to the repository root. Packs are spread
    /// over 256 folders by their first two hex digits, as restic does, to
    /// keep directories small on local file systems.
    ///
    /// WAL files (`<component>/<file>`) are grouped like PostgreSQL's own
    /// archive layouts: segments by timeline and log number (256 per
    /// folder), other files (histories) in `history/`.
    #[must_use]
    pub fn path(self, name: &str) -> String {
        match self {
            ObjectKind::Config => "config".to_owned(),
            ObjectKind::Pack if name.len() >= 2 => format!("data/{}/{name}", &name[..2]),
            ObjectKind::Wal => match name.split_once('/') {
                Some((component, file)) if file.len() >= 24 && file.as_bytes()[..24].iter().all(u8::is_ascii_hexdigit) => {
                    format!("wal/{component}/{}/{file}", &file[..16])
                }
                Some((component, file)) => format!("wal/{component}/history/{file}"),
                None => format!("wal/{name}"),
            },
            other => format!("{}/{name}", other.dir()),
        }
    }

    /// The object name for a path produced by [`ObjectKind::path`] under
    /// this kind's folder (used by listings).
    #[must_use]
    pub fn name_from_relative(self, relative: &str) -> String {
        match self {
            ObjectKind::Wal => {
                let parts: Vec<&str> = relative.split('/').collect();
                match parts.as_slice() {
                    [component, _group, file] => format!("{component}/{file}"),
                    _ => relative.to_owned(),
                }
            }
            // Ledger names are paths of their own (`<ledger>/records/<index>`).
            ObjectKind::Ledger => relative.to_owned(),
            _ => relative.rsplit('/').next().unwrap_or(relative).to_owned(),
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Config => "config",
            ObjectKind::Key => "key",
            ObjectKind::Snapshot => "snapshot",
            ObjectKind::Index => "index",
            ObjectKind::Pack => "pack",
            ObjectKind::Wal => "WAL file",
            ObjectKind::Hold => "hold",
            ObjectKind::PruneMark => "prune mark",
            ObjectKind::Ledger => "ledger object",
            ObjectKind::Trust => "trust record",
            ObjectKind::Drill => "drill record",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// The credentials or file permissions do not allow the operation.
    PermissionDenied,
    /// No space left on the device or quota exceeded.
    StorageFull,
    /// The storage did not answer in time or answered with a server error;
    /// retrying later may succeed.
    Unavailable,
    /// The object is shorter than the range asked for: truncated.
    Truncated,
    Other,
}

/// A storage failure, naming the object and the location.
#[derive(Debug, thiserror::Error)]
#[error("{location}/{object}: {message}")]
pub struct BackendError {
    pub kind: ErrorKind,
    pub location: String,
    pub object: String,
    pub message: String,
}

impl BackendError {
    #[must_use]
    pub fn new(kind: ErrorKind, location: &str, object: &str, message: impl Into<String>) -> Self {
        BackendError { kind, location: location.to_owned(), object: object.to_owned(), message: message.into() }
    }
}

/// An object and its size, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// A place that stores repository objects.
pub trait Backend: Send + Sync + fmt::Debug {
    /// A human-readable location, without credentials.
    fn location(&self) -> &str;

    /// Whether each request costs far more than the bytes it moves (object
    /// stores): readers then fetch whole packs once instead of many small
    /// ranges.
    fn prefers_whole_objects(&self) -> bool {
        false
    }

    /// Prepares an empty repository location (folders, containers). Fails
    /// with [`ErrorKind::AlreadyExists`] if a repository config is there
    /// (object `config`), or if the location holds anything else (object
    /// `""`, the message says what): a repository is never mixed into
    /// unrelated files.
    fn prepare(&self) -> Result<(), BackendError>;

    /// Stores a new object; never overwrites (see the crate docs).
    fn create(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<(), BackendError>;

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, BackendError>;

    /// Reads `length` bytes at `offset`; fails if the object is shorter.
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError>;

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, BackendError>;

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64, BackendError>;

    fn remove(&self, kind: ObjectKind, name: &str) -> Result<(), BackendError>;

    /// What the storage service says about locks where the repository
    /// lives (S3: the bucket's Object Lock configuration and versioning;
    /// Azure: the container's immutability properties).
    fn immutability(&self) -> Result<ServiceImmutability, BackendError> {
        Ok(ServiceImmutability { supported: false, detail: "a local directory has no storage-level immutability (objects are read-only files, which root can change)".into() })
    }

    /// The lock the service reports on one object; `None` when it reports
    /// none (or has no such notion).
    fn object_lock(&self, kind: ObjectKind, name: &str) -> Result<Option<ObjectLock>, BackendError> {
        let _ = (kind, name);
        Ok(None)
    }

    /// Sets the lock of an existing object to `mode` until `until` (S3
    /// PutObjectRetention; Azure Set Blob Immutability Policy). Callers
    /// only ever lengthen a lock (see `reprise_engine::locks`); the
    /// service refuses to shorten a COMPLIANCE / `Locked` one anyway.
    /// Storage without locks refuses.
    fn extend_lock(&self, kind: ObjectKind, name: &str, mode: LockMode, until: jiff::Timestamp) -> Result<(), BackendError> {
        let _ = (mode, until);
        Err(BackendError::new(ErrorKind::Other, self.location(), &kind.path(name), "this storage has no object locks"))
    }
}

/// Why `prepare` refuses a location where `found` (a path relative to it)
/// already is.
pub(crate) fn not_empty_message(found: &str) -> String {
    if found.starts_with("keys/") {
        format!("it holds key files ({found}) but no config: an interrupted `init` or `repair config`; run `reprise repair config` with the passphrase of those keys rather than init over it")
    } else {
        format!("it is not empty ({found}) and holds no repository: give a new or empty location (a repository is never mixed with other files)")
    }
}

/// Opens the backend a repository URL names.
///
/// Accepted forms: a path (`/srv/backup/repo`, `./repo`), `local:PATH`,
/// `s3://BUCKET[/PREFIX][?endpoint=URL&region=R]` and
/// `azure://ACCOUNT/CONTAINER[/PREFIX][?endpoint=URL]` (credentials from
/// the environment; see [`ObjectUrl`]).
pub fn open(url: &str) -> Result<Arc<dyn Backend>, BackendError> {
    open_with_lock(url, None)
}

/// [`open`], with a storage-level lock on the packs, index files,
/// snapshots and WAL files created (S3 Object Lock; Azure version-level
/// immutability policies; ignored by local directories: see [`lock`]).
pub fn open_with_lock(url: &str, lock: Option<Lock>) -> Result<Arc<dyn Backend>, BackendError> {
    open_with(url, lock, &Credentials::from_env())
}

/// [`open_with_lock`] with the storage credentials given, rather than
/// those of the process environment (credentials per repository).
pub fn open_with(url: &str, lock: Option<Lock>, credentials: &Credentials) -> Result<Arc<dyn Backend>, BackendError> {
    if let Some(parsed) = ObjectUrl::parse(url) {
        let parsed = parsed.map_err(|m| BackendError::new(ErrorKind::Other, url.split('?').next().unwrap_or(url), "", m))?;
        return Ok(Arc::new(ObjectBackend::open(&parsed, credentials)?.with_lock(lock)));
    }
    let path = url.strip_prefix("local:").or_else(|| url.strip_prefix("file://")).unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(BackendError::new(
            ErrorKind::Other,
            url,
            "",
            "unsupported repository URL: give a directory path (e.g. /srv/backup/repo), s3://BUCKET/PREFIX or azure://ACCOUNT/CONTAINER/PREFIX",
        ));
    }
    Ok(Arc::new(LocalBackend::new(path)))
}
