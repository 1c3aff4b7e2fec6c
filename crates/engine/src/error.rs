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

    #[error("no key of the repository at {location} opens with this passphrase: check the passphrase (REPRISE_PASSWORD, --password-file) or use another key")]
    WrongPassphrase { location: String },

    #[error("{operation} needs a full-access key; this key is write-only (it can add backups, never read or delete them)")]
    WriteOnly { operation: &'static str },

    #[error("{object} is damaged: {source}; run `reprise check --read-data` for a full report")]
    Damaged { object: String, source: FormatError },

    #[error("no snapshot matches '{0}': list them with `reprise snapshots`")]
    SnapshotNotFound(String),

    #[error("'{0}' matches several snapshots: give more digits of the ID")]
    AmbiguousSnapshot(String),

    #[error("{path}: not in snapshot {snapshot}: list its contents with `reprise ls {snapshot}`")]
    PathNotInSnapshot { snapshot: String, path: String },

    #[error("cannot read {}: {source}", path.display())]
    Source { path: PathBuf, source: std::io::Error },

    #[error("cannot write {}: {source}", path.display())]
    Target { path: PathBuf, source: std::io::Error },

    #[error("{0}")]
    InvalidArgument(String),

    /// The source (e.g. a database) failed; no snapshot was written.
    #[error("{0}")]
    SourceFailed(String),

    #[error("storage: {0}")]
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
            Error::NotARepository { .. } | Error::SnapshotNotFound(_) | Error::PathNotInSnapshot { .. } => Category::NotFound,
            Error::RepositoryExists { .. } | Error::AmbiguousSnapshot(_) | Error::InvalidArgument(_) | Error::NeedsUpgrade => Category::Usage,
            Error::WrongPassphrase { .. } => Category::Authentication,
            Error::WriteOnly { .. } | Error::LegacyKey => Category::Permission,
            Error::Damaged { .. } | Error::Untrusted { .. } => Category::Damaged,
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
