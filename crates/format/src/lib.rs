//! The reprise repository format.
//!
//! Everything that decides which bytes land in a repository lives here, and
//! nothing else does: this crate performs no I/O, so every encoder and decoder
//! can be property-tested and fuzzed in isolation, and `docs/FORMAT.md` can be
//! checked against one place. The engine (`reprise-engine`) moves these objects
//! between sources, storage backends and restore targets.
//!
//! The layering of secrets is the heart of the format (see [`keys`]):
//!
//! * the *catalog key* (symmetric) protects what a backup writer must read to
//!   deduplicate and to prove freshness: index files, pack directories and
//!   snapshot headers. They hold identifiers, sizes and times, never content
//!   or file names;
//! * the *recovery key pair* (X25519) protects content and names: every pack's
//!   data key and every snapshot body is sealed to the recovery public key
//!   with HPKE (RFC 9180), so a host that holds only write credentials can add
//!   backups but can never read them back.

pub mod chunker;
pub mod config;
pub mod crypto;
pub mod drill;
pub mod error;
pub mod hold;
pub mod id;
pub mod index;
pub mod keys;
pub mod ledger;
pub mod mark;
pub mod pack;
pub mod sign;
pub mod snapshot;
pub mod tree;
pub mod trust;
pub mod wal;

pub use error::FormatError;
pub use id::Id;

/// Kinds of blob stored in packs. Data and tree blobs live in separate packs
/// so that listing a snapshot never downloads file contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobKind {
    /// A chunk of file (or stream) content.
    Data,
    /// A serialized directory ([`tree::Tree`]).
    Tree,
}

impl BlobKind {
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            BlobKind::Data => 0,
            BlobKind::Tree => 1,
        }
    }

    pub fn from_code(code: u8) -> Result<Self, FormatError> {
        match code {
            0 => Ok(BlobKind::Data),
            1 => Ok(BlobKind::Tree),
            other => Err(FormatError::Malformed(format!("unknown blob kind {other}"))),
        }
    }
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobKind::Data => "data",
            BlobKind::Tree => "tree",
        })
    }
}
