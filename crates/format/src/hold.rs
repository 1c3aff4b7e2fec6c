//! Legal-hold objects (`holds/`, docs/FORMAT.md section 13).
//!
//! ```text
//! "RPRSHLD2" || nonce (12) || AES-256-GCM(admin domain catalog key, nonce, AAD "reprise hold v2")(CBOR) || tag (16)
//!            || signer || signature
//! ```
//!
//! Only the administrator places holds, so only its signature counts, and
//! only its domain's key reads them: a reason may name a patient or a case,
//! and production hosts never need holds. Version 1: the same sealed CBOR
//! under the legacy catalog key (AAD "reprise hold v1"), without magic or
//! signature.

use serde::{Deserialize, Serialize};

use crate::crypto::SymmetricKey;
use crate::error::FormatError;
use crate::id::Id;
use crate::sign::{KeyId, ObjectType, SigningKey};

pub const HOLD_MAGIC: &[u8; 8] = b"RPRSHLD2";
pub const HOLD_AAD: &[u8] = b"reprise hold v2";
const HOLD_AAD_V1: &[u8] = b"reprise hold v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub snapshot: Id,
    pub reason: String,
    pub time: jiff::Timestamp,
    pub host: String,
    pub user: String,
}

#[must_use]
pub fn seal(hold: &Hold, catalog_key: &SymmetricKey, signer: &SigningKey, repository: &Id) -> Vec<u8> {
    let mut plain = Vec::new();
    ciborium::into_writer(hold, &mut plain).expect("CBOR encodes in memory");
    let mut out = HOLD_MAGIC.to_vec();
    out.extend_from_slice(&catalog_key.seal_with_random_nonce(HOLD_AAD, &plain));
    signer.seal_object(ObjectType::Hold, repository, &mut out);
    out
}

/// A version 1 hold, for tests of the legacy path only.
#[doc(hidden)]
#[must_use]
pub fn seal_v1(hold: &Hold, catalog_key: &SymmetricKey) -> Vec<u8> {
    let mut plain = Vec::new();
    ciborium::into_writer(hold, &mut plain).expect("CBOR encodes in memory");
    catalog_key.seal_with_random_nonce(HOLD_AAD_V1, &plain)
}

/// Whether the bytes are a version 2 hold (else: version 1).
#[must_use]
pub fn is_v2(bytes: &[u8]) -> bool {
    bytes.starts_with(HOLD_MAGIC)
}

/// Checks a version 2 hold's signature; returns its signer.
pub fn verify(bytes: &[u8], repository: &Id) -> Result<KeyId, FormatError> {
    if !is_v2(bytes) {
        return Err(FormatError::Malformed("a version 1 hold carries no signature".into()));
    }
    Ok(crate::sign::verify_object(ObjectType::Hold, repository, bytes)?.0)
}

/// Decrypts a hold of either version (version 2 under the administrator
/// domain's catalog key, version 1 under the legacy one).
pub fn open(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<Hold, FormatError> {
    let plain = if is_v2(bytes) {
        catalog_key.open_with_nonce_prefix(HOLD_AAD, &crate::sign::strip(bytes)?[8..], "hold")?
    } else {
        catalog_key.open_with_nonce_prefix(HOLD_AAD_V1, bytes, "hold")?
    };
    ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("hold: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SymmetricKey::generate();
        let signer = SigningKey::generate();
        let h = Hold { snapshot: Id([3; 32]), reason: "case 7".into(), time: "2026-11-21T10:00:00Z".parse().unwrap(), host: "h".into(), user: "u".into() };
        let mut sealed = seal(&h, &key, &signer, &Id([1; 32]));
        assert_eq!(open(&sealed, &key).unwrap(), h);
        assert_eq!(verify(&sealed, &Id([1; 32])).unwrap(), signer.key_id());
        assert_eq!(open(&seal_v1(&h, &key), &key).unwrap(), h);
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(verify(&sealed, &Id([1; 32])).is_err());
        let mid = sealed.len() / 2;
        sealed[mid] ^= 1;
        assert!(open(&sealed, &key).is_err());
        assert!(open(&sealed[..10], &key).is_err());
    }
}
