//! The reprise repository engine.
//!
//! Opens repositories ([`Repository`]), loads their index ([`MasterIndex`]),
//! and runs the operations every interface shares: [`backup::backup`],
//! [`restore::restore`], [`check::check`], listing and comparing snapshots.
//! It knows nothing of command lines or plan files: callers pass option
//! structs and a [`Progress`] sink, and get typed [`Error`]s back.

pub mod backup;
pub mod cache;
pub mod check;
pub mod copy;
pub mod diff;
pub mod drills;
pub mod error;
pub mod holds;
pub mod index;
pub mod locks;
pub mod packer;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod repository;
pub mod restore;
pub mod retention;
pub mod revoke;
pub mod source;
pub mod stats;
pub mod trust;
pub mod upgrade;
pub mod walk;
pub mod walobj;

pub use error::{Category, Error, Result, remedy};
pub use index::MasterIndex;
pub use progress::{CancelToken, NoProgress, Progress};
pub use repository::{Repository, SnapshotInfo};
pub use reprise_backends as backends;
pub use reprise_format as format;
