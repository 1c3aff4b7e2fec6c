//! One error type for every operation, with a category a scheduler can act
//! on.
//!
//! A daemon that runs backups for days must tell *retry later* (the storage
//! did not answer, another prune holds what this run needs) from *fix
//! something* (a wrong passphrase, a bad path, damaged data): the first is
//! retried with backoff, the second is escalated to a person. Every error
//! of the layers below (engine, storage, PostgreSQL, sources, plan) is
//! mapped here, once, so that no interface has to know them all; the CLI
//! turns [`Category`] into its documented exit codes in one function.

use std::fmt;

/// What kind of failure this is, for whoever decides what happens next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// Bad arguments, an invalid plan, a target that is not empty: the
    /// caller must change what it asks.
    Usage,
    /// The repository, snapshot, path, component, key or file asked for
    /// does not exist.
    NotFound,
    /// No key opens the repository with the secret given.
    Authentication,
    /// Not allowed: a write-only key, file or storage permissions.
    Permission,
    /// Stored data is damaged.
    Damaged,
    /// The disk or the storage quota is full.
    StorageFull,
    /// The work was done and saved, but part of the source could not be
    /// read (listed in the report).
    Incomplete,
    /// The storage did not answer (timeouts, server errors after retries):
    /// retry later.
    Unavailable,
    /// Another process holds what this run needs (a concurrent prune past
    /// its grace period): retry later.
    Busy,
    /// Cancelled by the caller; what was stored is kept.
    Interrupted,
    /// A restore drill ran and failed: a validation, an objective, or the
    /// restore itself (its record says which, and is stored).
    DrillFailed,
    Other,
}

impl Category {
    /// Whether the same request, unchanged, may succeed later. A
    /// scheduler retries these with backoff and escalates the others.
    #[must_use]
    pub fn retryable(self) -> bool {
        matches!(self, Category::Unavailable | Category::Busy)
    }

    /// Every category, for tables that must cover them all (exit codes).
    pub const ALL: [Category; 12] = [
        Category::Usage,
        Category::NotFound,
        Category::Authentication,
        Category::Permission,
        Category::Damaged,
        Category::StorageFull,
        Category::Incomplete,
        Category::Unavailable,
        Category::Busy,
        Category::Interrupted,
        Category::DrillFailed,
        Category::Other,
    ];
}

impl From<reprise_engine::Category> for Category {
    fn from(c: reprise_engine::Category) -> Self {
        use reprise_engine::Category as E;
        match c {
            E::Usage => Category::Usage,
            E::NotFound => Category::NotFound,
            E::Authentication => Category::Authentication,
            E::Permission => Category::Permission,
            E::Damaged => Category::Damaged,
            E::StorageFull => Category::StorageFull,
            E::Unavailable => Category::Unavailable,
            E::Interrupted => Category::Interrupted,
            E::Other => Category::Other,
        }
    }
}

/// An operation's failure: a category, and one line that names the fix.
#[derive(Debug)]
pub struct OpsError {
    category: Category,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl OpsError {
    pub fn new(category: Category, message: impl Into<String>) -> Self {
        OpsError { category, message: message.into(), source: None }
    }

    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(Category::Usage, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Category::NotFound, message)
    }

    #[must_use]
    pub fn category(&self) -> Category {
        self.category
    }

    #[must_use]
    pub fn retryable(&self) -> bool {
        self.category.retryable()
    }

    #[must_use]
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with its message prefixed (which repository, which
    /// copy), its category kept.
    #[must_use]
    pub fn context(self, prefix: impl fmt::Display) -> Self {
        OpsError { message: format!("{prefix}: {}", self.message), ..self }
    }

    fn with_source(category: Category, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        OpsError { category, message: source.to_string(), source: Some(Box::new(source)) }
    }
}

impl fmt::Display for OpsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OpsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

pub type Result<T, E = OpsError> = std::result::Result<T, E>;

fn io_category(kind: std::io::ErrorKind) -> Category {
    match kind {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => Category::NotFound,
        std::io::ErrorKind::PermissionDenied => Category::Permission,
        std::io::ErrorKind::StorageFull => Category::StorageFull,
        _ => Category::Other,
    }
}

impl From<reprise_engine::Error> for OpsError {
    fn from(e: reprise_engine::Error) -> Self {
        OpsError::with_source(engine_category(&e), e)
    }
}

impl From<reprise_engine::backends::BackendError> for OpsError {
    fn from(e: reprise_engine::backends::BackendError) -> Self {
        use reprise_engine::backends::ErrorKind as K;
        let category = match e.kind {
            K::NotFound => Category::NotFound,
            K::PermissionDenied => Category::Permission,
            K::StorageFull => Category::StorageFull,
            K::Unavailable => Category::Unavailable,
            K::Truncated => Category::Damaged,
            K::AlreadyExists | K::Other => Category::Usage,
        };
        // The message alone: the location is in it where it helps, and a
        // URL's query (endpoints) is no fix.
        OpsError::new(category, e.message)
    }
}

impl From<reprise_postgres::PgError> for OpsError {
    fn from(e: reprise_postgres::PgError) -> Self {
        use reprise_postgres::PgError as E;
        let category = match &e {
            E::Engine(inner) => engine_category(inner),
            E::Connect { .. } | E::NotArchiving(_) | E::WrongDataDirectory { .. } | E::NotADataDirectory { .. } | E::BadWalName(_) | E::Invalid(_) | E::OutOfReach { .. } => Category::Usage,
            E::Privileges { .. } => Category::Permission,
            E::Gap { .. } | E::WalConflict { .. } => Category::Damaged,
            E::NoBaseBackup { .. } | E::MissingBinary { .. } => Category::NotFound,
            E::Interrupted => Category::Interrupted,
            E::Io { source, .. } => match io_category(source.kind()) {
                // A missing file below a data directory is not "not found"
                // for the caller: something else went wrong.
                Category::NotFound => Category::Other,
                c => c,
            },
            // A replication connection that broke or a server that refused:
            // what to fix is in the message (exit 1, as before the ops layer).
            E::Sql(_) | E::Server { .. } | E::Stream(_) | E::Command { .. } | E::Recovery(_) | E::ArchiveTimeout { .. } => Category::Other,
        };
        OpsError::with_source(category, e)
    }
}

fn engine_category(e: &reprise_engine::Error) -> Category {
    match e {
        // "Run the backup again": nothing to fix, only to wait for.
        reprise_engine::Error::ConcurrentPrune(_) => Category::Busy,
        other => other.category().into(),
    }
}

impl From<reprise_source_files::SourceError> for OpsError {
    fn from(e: reprise_source_files::SourceError) -> Self {
        use reprise_source_files::SourceError as S;
        let category = match &e {
            S::Path { source, .. } => match io_category(source.kind()) {
                Category::NotFound => Category::NotFound,
                Category::Permission => Category::Permission,
                _ => Category::Usage,
            },
            _ => Category::Usage,
        };
        OpsError::with_source(category, e)
    }
}

impl From<reprise_plan::PlanError> for OpsError {
    fn from(e: reprise_plan::PlanError) -> Self {
        let category = match &e {
            reprise_plan::PlanError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Category::NotFound,
            reprise_plan::PlanError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => Category::Permission,
            _ => Category::Usage,
        };
        OpsError::with_source(category, e)
    }
}

impl From<reprise_ledger::Error> for OpsError {
    fn from(e: reprise_ledger::Error) -> Self {
        let category = match &e {
            reprise_ledger::Error::Engine(inner) => engine_category(inner),
            other => other.category().into(),
        };
        OpsError::with_source(category, e)
    }
}

impl From<std::io::Error> for OpsError {
    fn from(e: std::io::Error) -> Self {
        OpsError::with_source(io_category(e.kind()), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bug: a concurrent prune made `backup` exit 1 ("unexpected
    /// error"), so a scheduler escalated what only needed a later retry.
    #[test]
    fn concurrent_prune_is_retry_later_not_fix_something() {
        let e = OpsError::from(reprise_engine::Error::ConcurrentPrune("a prune from h".into()));
        assert_eq!(e.category(), Category::Busy);
        assert!(e.retryable());
        let wrapped = OpsError::from(reprise_postgres::PgError::Engine(reprise_engine::Error::ConcurrentPrune("x".into())));
        assert_eq!(wrapped.category(), Category::Busy);
    }

    /// The bug: a storage outage inside the PostgreSQL part of `copy` (the
    /// WAL batch) exited 1 instead of 9.
    #[test]
    fn storage_outage_below_postgres_is_unavailable() {
        let outage = reprise_engine::backends::BackendError::new(reprise_engine::backends::ErrorKind::Unavailable, "s3://b", "wal/x", "timed out");
        let e = OpsError::from(reprise_postgres::PgError::Engine(reprise_engine::Error::Backend(outage)));
        assert_eq!(e.category(), Category::Unavailable);
        assert!(e.retryable());
        assert!(e.to_string().contains("timed out"), "{e}");
    }

    #[test]
    fn fix_something_is_not_retryable() {
        for c in [Category::Usage, Category::NotFound, Category::Authentication, Category::Permission, Category::Damaged, Category::StorageFull, Category::Incomplete] {
            assert!(!c.retryable(), "{c:?}");
        }
    }
}
