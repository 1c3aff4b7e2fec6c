//! Prune marks (`prune/`, docs/FORMAT.md section 14): the packs a `prune`
//! has condemned, and when. Deleting them waits for a grace period (see
//! `reprise_engine::prune`).
//!
//! ```text
//! "RPRSMRK2" || nonce (12) || AES-256-GCM(shared key, nonce, AAD "reprise prune mark v2")(CBOR) || tag (16)
//!            || signer || signature
//! ```
//!
//! Sealed under the shared key because every writer must read marks: it
//! never deduplicates against a condemned pack. Signed because only the
//! administrator may condemn anything: a mark a writer forged is ignored.
//! Version 1: sealed under the legacy catalog key (AAD "reprise prune
//! mark v1"), without magic or signature.

use serde::{Deserialize, Serialize};

use crate::crypto::SymmetricKey;
use crate::error::FormatError;
use crate::id::Id;
use crate::sign::{KeyId, ObjectType, SigningKey};

pub const MARK_MAGIC: &[u8; 8] = b"RPRSMRK2";
pub const MARK_AAD: &[u8] = b"reprise prune mark v2";
const MARK_AAD_V1: &[u8] = b"reprise prune mark v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneMark {
    /// When the mark was written (the prune host's clock).
    pub time: jiff::Timestamp,
    /// Seconds after `time` before the packs may be deleted.
    pub grace_secs: u64,
    /// The condemned packs.
    pub packs: Vec<Id>,
    /// Condemned WAL objects (`<component>/<file>`), marked by `forget`:
    /// absent from marks that condemn none, so those encode as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wal: Vec<String>,
    pub host: String,
    pub user: String,
}

#[must_use]
pub fn seal(mark: &PruneMark, shared_key: &SymmetricKey, signer: &SigningKey, repository: &Id) -> Vec<u8> {
    let mut plain = Vec::new();
    ciborium::into_writer(mark, &mut plain).expect("CBOR encodes in memory");
    let mut out = MARK_MAGIC.to_vec();
    out.extend_from_slice(&shared_key.seal_with_random_nonce(MARK_AAD, &plain));
    signer.seal_object(ObjectType::Mark, repository, &mut out);
    out
}

/// A version 1 mark, for tests of the legacy path only.
#[doc(hidden)]
#[must_use]
pub fn seal_v1(mark: &PruneMark, catalog_key: &SymmetricKey) -> Vec<u8> {
    let mut plain = Vec::new();
    ciborium::into_writer(mark, &mut plain).expect("CBOR encodes in memory");
    catalog_key.seal_with_random_nonce(MARK_AAD_V1, &plain)
}

#[must_use]
pub fn is_v2(bytes: &[u8]) -> bool {
    bytes.starts_with(MARK_MAGIC)
}

/// Checks a version 2 mark's signature; returns its signer.
pub fn verify(bytes: &[u8], repository: &Id) -> Result<KeyId, FormatError> {
    if !is_v2(bytes) {
        return Err(FormatError::Malformed("a version 1 prune mark carries no signature".into()));
    }
    Ok(crate::sign::verify_object(ObjectType::Mark, repository, bytes)?.0)
}

/// Decrypts a mark of either version (version 2: the shared key; version
/// 1: the legacy catalog key).
pub fn open(bytes: &[u8], key: &SymmetricKey) -> Result<PruneMark, FormatError> {
    let plain = if is_v2(bytes) {
        key.open_with_nonce_prefix(MARK_AAD, &crate::sign::strip(bytes)?[8..], "prune mark")?
    } else {
        key.open_with_nonce_prefix(MARK_AAD_V1, bytes, "prune mark")?
    };
    ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("prune mark: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SymmetricKey::generate();
        let signer = SigningKey::generate();
        let repo = Id([1; 32]);
        let m = PruneMark { time: "2026-11-21T10:00:00Z".parse().unwrap(), grace_secs: 86_400, packs: vec![Id([1; 32]), Id([2; 32])], wal: Vec::new(), host: "h".into(), user: "u".into() };
        let mut sealed = seal(&m, &key, &signer, &repo);
        assert_eq!(open(&sealed, &key).unwrap(), m);
        assert_eq!(verify(&sealed, &repo).unwrap(), signer.key_id());
        // A hold sealed with the same key and signer is not a mark.
        let hold = crate::hold::seal(&crate::hold::Hold { snapshot: Id([3; 32]), reason: "r".into(), time: m.time, host: String::new(), user: String::new() }, &key, &signer, &repo);
        assert!(open(&hold, &key).is_err());
        assert!(verify(&hold, &repo).is_err());
        assert_eq!(open(&seal_v1(&m, &key), &key).unwrap(), m);
        // A mark condemning WAL round-trips too; one that condemns none
        // encodes without the key, as marks did before it existed.
        let w = PruneMark { wal: vec!["db/000000010000000000000003".into()], packs: Vec::new(), ..m.clone() };
        assert_eq!(open(&seal(&w, &key, &signer, &repo), &key).unwrap(), w);
        let mut plain = Vec::new();
        ciborium::into_writer(&m, &mut plain).unwrap();
        let map: ciborium::Value = ciborium::from_reader(plain.as_slice()).unwrap();
        assert_eq!(map.as_map().unwrap().len(), 5, "time, grace_secs, packs, host, user");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(verify(&sealed, &repo).is_err());
        assert!(open(&sealed[..10], &key).is_err());
    }
}
