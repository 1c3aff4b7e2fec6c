//! Trust records (`trust/`, docs/FORMAT.md sections 15 and 16).
//!
//! A reader trusts an object by its signer; two administrator statements
//! change that, and both are lists of what existed at one moment, so that
//! "written after" needs no trusted clock:
//!
//! * a **revocation** lists the objects a writer key had signed when it was
//!   revoked (they stay trusted; anything else it signs is ignored), with
//!   the key's public record, so that its old objects can still be checked
//!   once its key file is gone;
//! * the **legacy** record lists the unsigned (version 1) objects present
//!   when a repository was upgraded; unsigned objects it does not list are
//!   ignored.
//!
//! ```text
//! "RPRSTRS2" || nonce (12) || AES-256-GCM(admin domain catalog key, AAD "reprise trust v2")(CBOR) || tag || signer || signature
//! ```

use serde::{Deserialize, Serialize};

use crate::crypto::SymmetricKey;
use crate::error::FormatError;
use crate::id::Id;
use crate::keys::DomainId;
use crate::sign::{KeyId, ObjectType, SigningKey};

pub const TRUST_MAGIC: &[u8; 8] = b"RPRSTRS2";
const TRUST_AAD: &[u8] = b"reprise trust v2";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrustKind {
    Revocation,
    Legacy,
}

/// Objects present at one moment, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectList {
    #[serde(default)]
    pub packs: Vec<Id>,
    #[serde(default)]
    pub index: Vec<Id>,
    #[serde(default)]
    pub snapshots: Vec<Id>,
    /// WAL object names, `<component>/<file>`.
    #[serde(default)]
    pub wal: Vec<String>,
}

impl ObjectList {
    #[must_use]
    pub fn len(&self) -> usize {
        self.packs.len() + self.index.len() + self.snapshots.len() + self.wal.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The public record of a revoked key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedKey {
    pub key_id: KeyId,
    pub domain: DomainId,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub created: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_host: Option<String>,
    #[serde(default)]
    pub credential: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustRecord {
    pub kind: TrustKind,
    pub time: jiff::Timestamp,
    pub host: String,
    pub user: String,
    pub objects: ObjectList,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<RevokedKey>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[must_use]
pub fn seal(record: &TrustRecord, catalog_key: &SymmetricKey, signer: &SigningKey, repository: &Id) -> Vec<u8> {
    let mut plain = Vec::new();
    ciborium::into_writer(record, &mut plain).expect("CBOR encodes in memory");
    let mut out = TRUST_MAGIC.to_vec();
    out.extend_from_slice(&catalog_key.seal_with_random_nonce(TRUST_AAD, &plain));
    signer.seal_object(ObjectType::Trust, repository, &mut out);
    out
}

/// Checks the signature; returns the signer.
pub fn verify(bytes: &[u8], repository: &Id) -> Result<KeyId, FormatError> {
    if !bytes.starts_with(TRUST_MAGIC) {
        return Err(FormatError::BadMagic { expected: "trust record" });
    }
    Ok(crate::sign::verify_object(ObjectType::Trust, repository, bytes)?.0)
}

pub fn open(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<TrustRecord, FormatError> {
    if !bytes.starts_with(TRUST_MAGIC) {
        return Err(FormatError::BadMagic { expected: "trust record" });
    }
    let plain = catalog_key.open_with_nonce_prefix(TRUST_AAD, &crate::sign::strip(bytes)?[8..], "trust record")?;
    ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("trust record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper() {
        let key = SymmetricKey::generate();
        let admin = SigningKey::generate();
        let repo = Id([2; 32]);
        let r = TrustRecord {
            kind: TrustKind::Revocation,
            time: "2026-11-21T10:00:00Z".parse().unwrap(),
            host: "admin-host".into(),
            user: "root".into(),
            objects: ObjectList { packs: vec![Id([1; 32])], index: vec![Id([2; 32])], snapshots: vec![], wal: vec!["db/000000010000000000000003".into()] },
            key: Some(RevokedKey { key_id: SigningKey::generate().key_id(), domain: DomainId([9; 32]), label: "clinic-b".into(), host: "h".into(), user: "u".into(), created: "2026-11-20T00:00:00Z".into(), bound_host: Some("clinic-b".into()), credential: true }),
            reason: Some("stolen laptop".into()),
        };
        let mut sealed = seal(&r, &key, &admin, &repo);
        assert_eq!(open(&sealed, &key).unwrap(), r);
        assert_eq!(verify(&sealed, &repo).unwrap(), admin.key_id());
        let mid = sealed.len() / 2;
        sealed[mid] ^= 1;
        assert!(verify(&sealed, &repo).is_err());
        assert!(open(&sealed, &key).is_err());
    }
}
