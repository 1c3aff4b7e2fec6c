//! The engine's error type.
//!
//! Each variant says what went wrong *and what to do about it*, in one line:
//! the CLI prints `Display` as is. [`Error::category`] groups variants for
//! exit codes, so that a script can tell "wrong passphrase" from "damaged
//! repository" without parsing text.

use std::path::PathBuf;

use reprise_backends::{BackendError, ErrorKind};
use reprise_format::FormatError;

/// Broad classes of failure; the CLI maps each to a documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Bad arguments or input that the user can correct.
    Usage,
    /// The repository, snapshot, or path asked for does not exist.
    NotFound,
    /// No key opens the repository with the passphrase given.
    Authentication,
    /// Not allowed: write-only key, file or storage permissions.
    Permission,
    /// Stored data is damaged (failed authentication, wrong hash, missing).
    Damaged,
    /// The disk or storage quota is full.
    StorageFull,
    /// The storage did not answer; retrying may help.
    Unavailable,
    Interrupted,
    Other,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no repository at {location}: create one with `reprise init`, or check the repository URL")]
    NotARepository { location: String },

    #[error("a repository already exists at {location}: use it, or choose an empty location")]
    RepositoryExists { location: String },

    /// `init` (or a copy's first run) found unrelated data where the
    /// repository would go.
    #[error("cannot create a repository at {location}: {detail}")]
    LocationNotEmpty { location: String, detail: String },

    #[error("no key of the repository at {location} opens with this passphrase: check the passphrase (REPRISE_PASSWORD, --password-file) or use another key")]
    WrongPassphrase { location: String },

    #[error("{operation} needs a full-access key; this key is write-only (it can add backups, never read or delete them)")]
    WriteOnly { operation: &'static str },

    #[error("{object} is damaged: {source}; {}", remedy(object))]
    Damaged { object: String, source: FormatError },

    /// `latest` asked for, and a snapshot that may be the newest cannot be
    /// read: an older one is never taken in its place without a word.
    #[error("{}", latest_damaged(object, reason, newest_readable.as_ref()))]
    LatestDamaged { object: String, reason: String, newest_readable: Option<(reprise_format::Id, jiff::Timestamp)> },

    #[error("no snapshot matches '{0}': list them with `reprise snapshots`")]
    SnapshotNotFound(String),

    #[error("'{0}' matches several snapshots: give more digits of the ID")]
    AmbiguousSnapshot(String),

    #[error("{path}: not in snapshot {snapshot}: list its contents with `reprise ls {snapshot}`")]
    PathNotInSnapshot { snapshot: String, path: String },

    #[error("cannot read {}: {source}{}", path.display(), io_fix(source, "run as an account that may read it (its owner, or root)"))]
    Source { path: PathBuf, source: std::io::Error },

    #[error("cannot write {}: {source}{}", path.display(), io_fix(source, "write where this account may (or run as the directory's owner)"))]
    Target { path: PathBuf, source: std::io::Error },

    #[error("{0}")]
    InvalidArgument(String),

    /// A hold, key or other named thing that does not exist (the message
    /// says where to list them).
    #[error("{0}")]
    NotFound(String),

    /// The source (e.g. a database) failed; no snapshot was written.
    #[error("{0}")]
    SourceFailed(String),

    #[error("storage: {0}{fix}", fix = backend_fix(.0.kind))]
    Backend(#[from] BackendError),

    /// A concurrent prune made committing unsafe (see `prune`).
    #[error("{0}")]
    ConcurrentPrune(String),

    #[error("interrupted: nothing was acknowledged that is not safely stored; run the command again")]
    Interrupted,

    /// An object whose signer may not have written it (docs/FORMAT.md 2.5).
    #[error("{object} is ignored: {reason}; `reprise check` lists everything ignored and who wrote it")]
    Untrusted { object: String, reason: String },

    /// A version 1 repository: readable, not writable until upgraded.
    #[error("this repository was written by an earlier version of reprise (format 1, unsigned writers): a full-access key must run `reprise key upgrade` before anything is written to it")]
    NeedsUpgrade,

    /// A version 1 write-only key: it holds no signing key.
    #[error("this write-only key predates writer signatures (format 1) and cannot sign what it writes: ask the administrator for a new one (`reprise key add --write-only`)")]
    LegacyKey,
}

impl Error {
    #[must_use]
    pub fn category(&self) -> Category {
        match self {
            Error::NotARepository { .. } | Error::SnapshotNotFound(_) | Error::PathNotInSnapshot { .. } | Error::NotFound(_) => Category::NotFound,
            Error::RepositoryExists { .. } | Error::LocationNotEmpty { .. } | Error::AmbiguousSnapshot(_) | Error::InvalidArgument(_) | Error::NeedsUpgrade => Category::Usage,
            Error::WrongPassphrase { .. } => Category::Authentication,
            Error::WriteOnly { .. } | Error::LegacyKey => Category::Permission,
            Error::Damaged { .. } | Error::LatestDamaged { .. } | Error::Untrusted { .. } => Category::Damaged,
            Error::Source { source, .. } | Error::Target { source, .. } => io_category(source),
            Error::Backend(e) => match e.kind {
                ErrorKind::NotFound => Category::NotFound,
                ErrorKind::AlreadyExists => Category::Usage,
                ErrorKind::PermissionDenied => Category::Permission,
                ErrorKind::StorageFull => Category::StorageFull,
                ErrorKind::Unavailable => Category::Unavailable,
                ErrorKind::Truncated => Category::Damaged,
                ErrorKind::Other => Category::Other,
            },
            Error::Interrupted => Category::Interrupted,
            Error::SourceFailed(_) | Error::ConcurrentPrune(_) => Category::Other,
        }
    }

    pub(crate) fn damaged(object: impl Into<String>, source: FormatError) -> Self {
        Error::Damaged { object: object.into(), source }
    }
}

/// What helps when `object` is damaged, by the kind of object: every
/// damage message names a command that exists and changes something.
#[must_use]
pub fn remedy(object: &str) -> &'static str {
    let kind = object.rsplit_once("/config").map_or(object, |_| "config");
    if kind == "config" {
        "`reprise repair config` writes it again (from the key that opens the repository, or `--from` a copy of it)"
    } else if kind.starts_with("index/") {
        "`reprise repair index` rebuilds the index from the packs' own directories (nothing is lost)"
    } else if kind.starts_with("prune/") {
        "`reprise repair marks` removes it (safe: a mark only allows deletion; the next prune marks again)"
    } else if kind.starts_with("snapshots/") {
        "this backup cannot be restored from here: restore another snapshot (`reprise snapshots` lists them) or this one from a copy repository (`reprise --repo COPY restore`)"
    } else if kind.starts_with("keys/") {
        "open the repository with another key (or the recovery key, --key-file), then `reprise repair keys` removes it"
    } else if kind.starts_with("holds/") {
        "forget and prune stop rather than remove what it may protect: copy the object back from a copy repository, or lift it with `reprise hold remove`"
    } else if kind.starts_with("wal/") {
        "recovery cannot replay past it: take a new base backup (`reprise backup COMPONENT`) so that later points do not need it"
    } else {
        "`reprise check --read-data` lists every damaged object; `reprise restore` restores every other file and names the ones it affects"
    }
}

fn latest_damaged(object: &str, reason: &str, newest_readable: Option<&(reprise_format::Id, jiff::Timestamp)>) -> String {
    let alternative = match newest_readable {
        Some((id, time)) => format!("the newest readable one is {} ({}): give its ID instead", id.short(), time.strftime("%Y-%m-%d %H:%M:%S UTC")),
        None => "no readable one is older".to_owned(),
    };
    format!("`latest` cannot be resolved: {object} cannot be read ({reason}) and may be the newest snapshot; {alternative}")
}

/// The fix for a storage failure, by its kind (the backend's message says
/// what failed).
fn backend_fix(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::PermissionDenied => {
            "; fix: give this account access to the repository's files (owner and mode), or use storage credentials of the role that may do this (docs/STORAGE.md)"
        }
        ErrorKind::StorageFull => "; fix: free space or raise the quota, then run the command again (what was acknowledged is kept)",
        ErrorKind::Unavailable => {
            "; fix: the storage did not answer after retrying for REPRISE_STORAGE_RETRY_TIMEOUT seconds: check the endpoint and the network, then run the command again"
        }
        ErrorKind::NotFound | ErrorKind::AlreadyExists | ErrorKind::Truncated | ErrorKind::Other => "",
    }
}

/// The fix for a local I/O failure; `permission` says what to do about a
/// refusal where it happened.
fn io_fix(e: &std::io::Error, permission: &str) -> String {
    match io_category(e) {
        Category::Permission => format!("; fix: {permission}"),
        Category::StorageFull => "; fix: free space there (or raise the quota), then run the command again".to_owned(),
        _ => String::new(),
    }
}

fn io_category(e: &std::io::Error) -> Category {
    match e.kind() {
        std::io::ErrorKind::NotFound => Category::NotFound,
        std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => Category::Permission,
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Category::StorageFull,
        _ => match e.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => Category::StorageFull,
            Some(libc::EACCES | libc::EPERM | libc::EROFS) => Category::Permission,
            _ => Category::Other,
        },
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
