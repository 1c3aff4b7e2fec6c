//! Errors of the PostgreSQL layer. Each says what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error(transparent)]
    Engine(#[from] reprise_engine::Error),

    #[error("cannot connect to PostgreSQL ({target}): {message}; check the connection string (host, port, user, dbname) and that the server runs")]
    Connect { target: String, message: String },

    #[error("PostgreSQL: {0}")]
    Sql(String),

    /// An error the server answered, with its SQLSTATE (for callers that
    /// handle some codes).
    #[error("PostgreSQL: {message} ({code})")]
    Server { code: String, message: String },

    #[error("WAL stream: {0}")]
    Stream(String),

    #[error("the server is not in archive mode (archive_mode = {0}): set archive_mode = on and archive_command = 'reprise wal-push COMPONENT %p' (then restart), or stream WAL with `reprise wal-stream`")]
    NotArchiving(String),

    #[error("the plan says the data directory is {plan}, but the server uses {server}: fix data_directory in the plan")]
    WrongDataDirectory { plan: PathBuf, server: PathBuf },

    #[error("insufficient privileges for {what}: connect as a superuser, or GRANT EXECUTE ON FUNCTION pg_backup_start, pg_backup_stop TO the backup role (and pg_read_all_settings)")]
    Privileges { what: String },

    #[error("{} is not a PostgreSQL data directory ({reason}): fix data_directory in the plan", path.display())]
    NotADataDirectory { path: PathBuf, reason: String },

    #[error("'{0}' is not a WAL file name PostgreSQL archives: archive_command must pass %p (the path), restore_command %f and %p")]
    BadWalName(String),

    #[error("refusing to archive {name}: a different file with this name is already in the archive (was this component's archive_command copied to another cluster?); nothing was overwritten")]
    WalConflict { name: String },

    #[error("WAL archive of '{component}' has a gap: {missing} missing ({first_missing}{more}); restore cannot go past {last_good}: point-in-time recovery is limited until a new base backup is taken")]
    Gap { component: String, missing: usize, first_missing: String, more: String, last_good: String },

    #[error("no base backup of '{component}' can reach {target}: {reason}")]
    NoBaseBackup { component: String, target: String, reason: String },

    /// A target outside what one base backup, with the WAL the repository
    /// holds for it, can reach.
    #[error("base backup {backup} cannot reach {target}: the repository holds what restores it from {reach}; choose --at within that range (or restore the component by name to let reprise pick a base backup)")]
    OutOfReach { backup: String, target: String, reach: String },

    #[error("PostgreSQL program {program} not found in {}: install postgresql-15, or set bin_dir in the plan", dir.display())]
    MissingBinary { program: String, dir: PathBuf },

    #[error("{program} failed: {message}")]
    Command { program: String, message: String },

    #[error("recovery did not reach the target: {0}")]
    Recovery(String),

    #[error("{0}")]
    Invalid(String),

    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },

    #[error("the WAL file {name} was not archived within {seconds}s after the backup: check archive_command (the backup is not restorable without it)")]
    ArchiveTimeout { name: String, seconds: u64 },

    #[error("interrupted")]
    Interrupted,
}

impl PgError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PgError::Io { path: path.into(), source }
    }

    pub(crate) fn sql(e: &postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => PgError::Sql(format!("{} ({})", db.message(), db.code().code())),
            None => PgError::Sql(e.to_string()),
        }
    }
}

pub type Result<T, E = PgError> = std::result::Result<T, E>;
