//! Legal-hold objects (`holds/`, docs/FORMAT.md section 13).
//!
//! ```text
//! nonce (12) || AES-256-GCM(catalog key, nonce, AAD "reprise hold v1")(CBOR) || tag (16)
//! ```

use serde::{Deserialize, Serialize};

use crate::crypto::SymmetricKey;
use crate::error::FormatError;
use crate::id::Id;

pub const HOLD_AAD: &[u8] = b"reprise hold v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub snapshot: Id,
    pub reason: String,
    pub time: jiff::Timestamp,
    pub host: String,
    pub user: String,
}

#[must_use]
pub fn seal(hold: &Hold, catalog_key: &SymmetricKey) -> Vec<u8> {
    let mut plain = Vec::new();
    ciborium::into_writer(hold, &mut plain).expect("CBOR encodes in memory");
    catalog_key.seal_with_random_nonce(HOLD_AAD, &plain)
}

pub fn open(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<Hold, FormatError> {
    let plain = catalog_key.open_with_nonce_prefix(HOLD_AAD, bytes, "hold")?;
    ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("hold: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SymmetricKey::generate();
        let h = Hold { snapshot: Id([3; 32]), reason: "case 7".into(), time: "2026-11-21T10:00:00Z".parse().unwrap(), host: "h".into(), user: "u".into() };
        let mut sealed = seal(&h, &key);
        assert_eq!(open(&sealed, &key).unwrap(), h);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(open(&sealed, &key).is_err());
        assert!(open(&sealed[..10], &key).is_err());
    }
}
