//! The ledger's error type.
//!
//! Each message says what happened and what to do, in one line, like the
//! engine's; [`Error::category`] reuses the engine's categories so that
//! the binary maps both to the same documented exit codes.

use reprise_backends::BackendError;
use reprise_engine::Category;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] reprise_engine::Error),

    #[error("storage: {0}")]
    Backend(#[from] BackendError),

    /// A ledger object is not what it claims to be: appending after it, or
    /// proving through it, would build on damage.
    #[error("{object}: {message}; run `reprise ledger verify` to see what was altered")]
    Damaged { object: String, message: String },

    /// An inclusion or consistency proof that does not hold.
    #[error("the proof does not hold: {0}")]
    ProofFails(String),

    /// No such entry or ledger.
    #[error("{0}")]
    NotFound(String),

    /// The witness location is missing or is not a witness.
    #[error("no ledger witness at {location}: {fix}")]
    WitnessMissing { location: String, fix: String },

    #[error("{0}")]
    InvalidArgument(String),

    /// The keys given cannot sign (verification only) or verify.
    #[error("{0}")]
    Key(String),

    /// Other appenders kept winning the race for the next position.
    #[error("{0}")]
    Contention(String),
}

impl Error {
    #[must_use]
    pub fn category(&self) -> Category {
        match self {
            Error::Engine(e) => e.category(),
            Error::Backend(e) => reprise_engine::Error::Backend(BackendError::new(e.kind, "", "", "")).category(),
            Error::Damaged { .. } | Error::ProofFails(_) => Category::Damaged,
            Error::NotFound(_) | Error::WitnessMissing { .. } => Category::NotFound,
            Error::InvalidArgument(_) => Category::Usage,
            Error::Key(_) => Category::Authentication,
            Error::Contention(_) => Category::Unavailable,
        }
    }

    pub(crate) fn damaged(object: impl Into<String>, message: impl Into<String>) -> Error {
        Error::Damaged { object: object.into(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
