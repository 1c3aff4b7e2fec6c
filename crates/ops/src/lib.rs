//! The operations: what `reprise` does, for every interface.
//!
//! The CLI, a daemon (`reprise serve`), a restore drill and an incident
//! timeline all run the same backups, restores, copies and status checks.
//! So none of it lives in an interface: each operation here takes a
//! [`Workspace`] (the plan, the settings that override it, the
//! repositories it opened) and a request, and returns a typed,
//! serialisable report, or an [`OpsError`] whose [`Category`] says whether
//! to retry later or to fix something. Interfaces turn flags into
//! requests, and reports into text, JSON or exit codes.
//!
//! What this layer must not know: clap, terminals, exit codes, HTTP. What
//! it must not hold: global state; the environment is captured once in the
//! workspace. Progress goes through an [`Observer`], cancellation through
//! a [`CancelToken`].

pub mod backup;
pub mod check;
pub mod copy;
pub mod drill;
pub mod error;
pub mod immutability;
pub mod inspect;
pub mod keys;
pub mod ledger;
pub mod plan_doc;
pub mod postgres;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod secrets;
pub mod status;
pub mod workspace;

use std::sync::Arc;

pub use error::{Category, OpsError, Result};
pub use reprise_engine::{CancelToken, NoProgress, Progress};
pub use secrets::Environment;
pub use workspace::{Settings, Target, Workspace};

/// Where an operation reports its progress: one [`Progress`] per phase
/// (`backup`, `copy` to one destination, `restore`), dropped when the
/// phase ends. A terminal draws bars; a daemon may export metrics.
pub trait Observer: Send + Sync {
    fn phase(&self, _label: &str) -> Arc<dyn Progress> {
        Arc::new(NoProgress)
    }

    /// Told as soon as it is known, before the operation ends (or fails):
    /// what the operator may want to act on first.
    fn warning(&self, _warning: &Warning) {}
}

/// What an operation found that does not stop it but may change what the
/// operator does next.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "warning", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Warning {
    /// The local `wal-stream` spool holds WAL the repository lacks: a
    /// restore now would miss it.
    SpoolAhead(postgres::SpoolAhead),
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}

/// An outcome that is a report *and* a failure (damage found, entries not
/// read): the report is still shown, and the failure decides the verdict.
pub trait Verdict {
    /// The failure this report amounts to, if any.
    fn failure(&self) -> Option<OpsError>;
}

/// `n thing` or `n things`: counts in messages read as English.
#[must_use]
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// The snapshot a spec names (`latest`, an ID prefix), `latest` meaning
/// the newest of all, or of `component` when given.
pub fn find_snapshot(repo: &reprise_engine::Repository, spec: &str, component: Option<&str>) -> Result<reprise_engine::SnapshotInfo> {
    let filter = |h: &reprise_engine::format::snapshot::SnapshotHeader| component.is_none_or(|c| h.component == c);
    Ok(repo.find_snapshot(spec, &filter)?)
}
