//! The evidence ledger: a tamper-evident log of every sensitive operation
//! (backups, restores, removals, holds, key changes, copies, checks), so
//! that an auditor can trust what the repository says was done, and by
//! whom, when.
//!
//! It is a transparency log, the model of Certificate Transparency and
//! Go's checksum database, built from their parts rather than reinvented:
//!
//! * **entries** ([`Entry`]) are leaves of an RFC 6962 / RFC 9162 Merkle
//!   tree ([`tree`]; hashing and proofs from `tlog_tiles`);
//! * every append signs a **checkpoint** of the tree (C2SP tlog-checkpoint
//!   in a C2SP signed note, Ed25519; [`checkpoint`], from `tlog_tiles` and
//!   `signed_note`), stored with the entry, and sent to a **witness**
//!   ([`Witness`]) the writing hosts cannot rewrite;
//! * **verify** recomputes every root and compares it with every
//!   checkpoint, the repository's and the witness's, naming what was
//!   altered, removed, reordered or forked ([`verify`]);
//! * **proofs** ([`proof`]) let an auditor check one entry offline.
//!
//! The storage layer is reprise's own: one write-once object per entry,
//! whose name is its position (the create-if-absent race *is* the
//! sequencer; see [`log`]), sealed under the catalog key so that a copy
//! carries it ([`Ledger::carry`]) and a write-only key can append.
//!
//! The API is what an operations layer calls: [`Ledger::append`] returns a
//! [`Receipt`]; [`Ledger::verify`], [`Ledger::entries`] and
//! [`Ledger::proof`] read. Keys come from the caller ([`LedgerKeys`]).

pub mod carry;
pub mod checkpoint;
pub mod entry;
pub mod error;
pub mod keys;
pub mod log;
pub mod proof;
pub mod tree;
pub mod verify;
pub mod witness;

pub use carry::CarryReport;
pub use entry::{Entry, EntryView, Operation, Outcome};
pub use error::{Error, Result};
pub use keys::{LedgerKeys, NoteSigner, repository_keys};
pub use log::{Ledger, LedgerSummary, Receipt};
pub use proof::{InclusionProof, ProofCheck, check_proof};
pub use reprise_format::ledger::LedgerId;
pub use verify::{Finding, FindingKind, LedgerVerdict, VerifyReport};
pub use witness::{Witness, WitnessStatus};

#[cfg(test)]
mod tests;
