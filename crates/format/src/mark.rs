//! Prune marks (`prune/`, docs/FORMAT.md section 14): the packs a `prune`
//! has condemned, and when. Deleting them waits for a grace period (see
//! `reprise_engine::prune`).
//!
//! ```text
//! nonce (12) || AES-256-GCM(catalog key, nonce, AAD "reprise prune mark v1")(CBOR) || tag (16)
//! ```
//!
//! Sealed under the catalog key because backup writers, which hold only
//! that key, must read marks: they never deduplicate against a condemned
//! pack.

use serde::{Deserialize, Serialize};

use crate::crypto::SymmetricKey;
use crate::error::FormatError;
use crate::id::Id;

pub const MARK_AAD: &[u8] = b"reprise prune mark v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneMark {
    /// When the mark was written (the prune host's clock).
    pub time: jiff::Timestamp,
    /// Seconds after `time` before the packs may be deleted.
    pub grace_secs: u64,
    /// The condemned packs.
    pub packs: Vec<Id>,
    pub host: String,
    pub user: String,
}

#[must_use]
pub fn seal(mark: &PruneMark, catalog_key: &SymmetricKey) -> Vec<u8> {
    let mut plain = Vec::new();
    ciborium::into_writer(mark, &mut plain).expect("CBOR encodes in memory");
    catalog_key.seal_with_random_nonce(MARK_AAD, &plain)
}

pub fn open(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<PruneMark, FormatError> {
    let plain = catalog_key.open_with_nonce_prefix(MARK_AAD, bytes, "prune mark")?;
    ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("prune mark: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SymmetricKey::generate();
        let m = PruneMark { time: "2026-11-21T10:00:00Z".parse().unwrap(), grace_secs: 86_400, packs: vec![Id([1; 32]), Id([2; 32])], host: "h".into(), user: "u".into() };
        let mut sealed = seal(&m, &key);
        assert_eq!(open(&sealed, &key).unwrap(), m);
        // A hold sealed with the same key is not a mark (distinct AAD).
        let hold = crate::hold::seal(&crate::hold::Hold { snapshot: Id([3; 32]), reason: "r".into(), time: m.time, host: String::new(), user: String::new() }, &key);
        assert!(open(&hold, &key).is_err());
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(open(&sealed, &key).is_err());
        assert!(open(&sealed[..10], &key).is_err());
    }
}
