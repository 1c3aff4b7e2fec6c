//! Restore drill records (`drills/`, docs/FORMAT.md section 18).
//!
//! ```text
//! "RPRSDRL2" || nonce (12) || AES-256-GCM(admin domain catalog key, nonce, AAD "reprise drill v2")(JSON) || tag (16)
//!            || signer || signature
//! ```
//!
//! A drill restores patient data to check it, so only a full-access key
//! runs one, and only the administrator's signature counts on its record.
//! The record is sealed under the administrator domain's catalog key:
//! production hosts (writers) never read it, and a validation's detail may
//! name a document. The plaintext is the drill's JSON record (its schema
//! is versioned by the operations layer, docs/FORMAT.md 18): this crate
//! seals bytes and does not read them, so a new schema version needs no
//! new object version.

use crate::crypto::SymmetricKey;
use crate::error::FormatError;
use crate::id::Id;
use crate::sign::{KeyId, ObjectType, SigningKey};

pub const DRILL_MAGIC: &[u8; 8] = b"RPRSDRL2";
pub const DRILL_AAD: &[u8] = b"reprise drill v2";

/// Seals a drill record's JSON and signs it.
#[must_use]
pub fn seal(json: &[u8], catalog_key: &SymmetricKey, signer: &SigningKey, repository: &Id) -> Vec<u8> {
    let mut out = DRILL_MAGIC.to_vec();
    out.extend_from_slice(&catalog_key.seal_with_random_nonce(DRILL_AAD, json));
    signer.seal_object(ObjectType::Drill, repository, &mut out);
    out
}

/// Checks a drill record's signature; returns its signer.
pub fn verify(bytes: &[u8], repository: &Id) -> Result<KeyId, FormatError> {
    if !bytes.starts_with(DRILL_MAGIC) {
        return Err(FormatError::Malformed("not a drill record (bad magic)".into()));
    }
    Ok(crate::sign::verify_object(ObjectType::Drill, repository, bytes)?.0)
}

/// Decrypts a drill record: its JSON bytes.
pub fn open(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<Vec<u8>, FormatError> {
    if !bytes.starts_with(DRILL_MAGIC) {
        return Err(FormatError::Malformed("not a drill record (bad magic)".into()));
    }
    catalog_key.open_with_nonce_prefix(DRILL_AAD, &crate::sign::strip(bytes)?[8..], "drill record")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SymmetricKey::generate();
        let signer = SigningKey::generate();
        let json = br#"{"schema":"reprise.drill/1"}"#;
        let mut sealed = seal(json, &key, &signer, &Id([1; 32]));
        assert_eq!(open(&sealed, &key).unwrap(), json);
        assert_eq!(verify(&sealed, &Id([1; 32])).unwrap(), signer.key_id());
        assert!(verify(&sealed, &Id([2; 32])).is_err(), "a record of another repository");
        assert!(open(&sealed, &SymmetricKey::generate()).is_err());
        // A byte of the ciphertext: the signature and the AEAD tag both break.
        sealed[DRILL_MAGIC.len() + 12 + 1] ^= 1;
        assert!(verify(&sealed, &Id([1; 32])).is_err());
        assert!(open(&sealed, &key).is_err());
        sealed[DRILL_MAGIC.len() + 12 + 1] ^= 1;
        // A byte of the signature block: the content still decrypts, and
        // only the signature says it is no longer the administrator's.
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(verify(&sealed, &Id([1; 32])).is_err());
        assert!(open(&sealed[..10], &key).is_err());
    }
}
