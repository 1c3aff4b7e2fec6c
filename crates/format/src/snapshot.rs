//! Snapshots: one object per backup (docs/FORMAT.md 9).
//!
//! ```text
//! "RPRSSNP2" || domain (32) || u32 LE H || header (H bytes: nonce || AES-256-GCM(domain catalog key) || tag)
//!            || body (HPKE sealed to the recovery public key) || signer || signature
//! ```
//!
//! The *header* (the domain's catalog key) holds what monitoring and
//! retention need and what the writer may see again: time, host,
//! component, tags, sizes. The *body* (recovery key) holds the root tree
//! and the source paths, which can name patients. The domain says which
//! index (and which id key) the snapshot's blobs are looked up in.
//!
//! Version 1 (legacy domain): `"RPRSSNP1" || u32 H || header || body`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{RecoveryPublicKey, RecoverySecretKey, SymmetricKey};
use crate::keys::DomainId;
use crate::sign::{ObjectType, SigningKey};
use crate::{FormatError, Id};

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"RPRSSNP2";
pub const SNAPSHOT_MAGIC_V1: &[u8; 8] = b"RPRSSNP1";
pub const SNAPSHOT_VERSION: u32 = 1;
const HEADER_AAD: &[u8] = b"reprise snapshot header v2";
const HEADER_AAD_V1: &[u8] = b"reprise snapshot header v1";
pub const BODY_INFO: &[u8] = b"reprise snapshot body v1";

/// Totals measured while taking the snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    /// Bytes of file content in the snapshot.
    pub bytes: u64,
    /// Files whose content was read (the rest matched the parent).
    pub files_read: u64,
    /// Plaintext bytes of blobs this backup added.
    pub new_bytes: u64,
    /// Pack bytes this backup uploaded.
    pub stored_bytes: u64,
    pub new_blobs: u64,
    pub duration_ms: u64,
    /// Source entries that could not be read (listed in the body).
    #[serde(default)]
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub version: u32,
    pub time: jiff::Timestamp,
    pub host: String,
    pub component: String,
    /// What was backed up: `files`, `stdin`, ... (sources add their own).
    pub kind: String,
    #[serde(default)]
    pub tags: Vec<String>,
    pub summary: Summary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Id>,
    /// Source-specific facts that are not sensitive (e.g. a WAL position).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBody {
    /// Root tree: the filesystem from `/` down to each backed-up path.
    pub tree: Id,
    /// The paths that were backed up, as given (bytes).
    pub paths: Vec<serde_bytes::ByteBuf>,
    #[serde(default)]
    pub excludes: Vec<String>,
    #[serde(default)]
    pub user: String,
    /// Source entries that could not be read, with the reason.
    #[serde(default)]
    pub errors: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Seals a snapshot into its stored form, in `domain`, signed.
#[must_use]
pub fn seal(header: &SnapshotHeader, body: &SnapshotBody, domain: &DomainId, catalog_key: &SymmetricKey, recovery_public: &RecoveryPublicKey, signer: &SigningKey, repository: &Id) -> Vec<u8> {
    let mut h = Vec::new();
    ciborium::into_writer(header, &mut h).expect("CBOR encodes in memory");
    let mut b = Vec::new();
    ciborium::into_writer(body, &mut b).expect("CBOR encodes in memory");
    let sealed_header = catalog_key.seal_with_random_nonce(HEADER_AAD, &h);
    let sealed_body = recovery_public.seal(BODY_INFO, &b);
    let mut out = Vec::with_capacity(44 + sealed_header.len() + sealed_body.len() + crate::sign::SIGNATURE_BLOCK_LEN);
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&domain.0);
    out.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed_header);
    out.extend_from_slice(&sealed_body);
    signer.seal_object(ObjectType::Snapshot, repository, &mut out);
    out
}

/// A version 1 snapshot, for tests of the legacy path only.
#[doc(hidden)]
#[must_use]
pub fn seal_v1(header: &SnapshotHeader, body: &SnapshotBody, catalog_key: &SymmetricKey, recovery_public: &RecoveryPublicKey) -> Vec<u8> {
    let mut h = Vec::new();
    ciborium::into_writer(header, &mut h).expect("CBOR encodes in memory");
    let mut b = Vec::new();
    ciborium::into_writer(body, &mut b).expect("CBOR encodes in memory");
    let sealed_header = catalog_key.seal_with_random_nonce(HEADER_AAD_V1, &h);
    let mut out = SNAPSHOT_MAGIC_V1.to_vec();
    out.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed_header);
    out.extend_from_slice(&recovery_public.seal(BODY_INFO, &b));
    out
}

/// A snapshot's parts: domain (`None`: version 1), sealed header, body.
struct Parts<'a> {
    domain: Option<DomainId>,
    header: &'a [u8],
    body: &'a [u8],
}

fn split(bytes: &[u8]) -> Result<Parts<'_>, FormatError> {
    let (domain, rest) = match bytes.get(..8) {
        Some(m) if m == SNAPSHOT_MAGIC_V1 => (None, &bytes[8..]),
        Some(m) if m == SNAPSHOT_MAGIC && bytes.len() >= 40 => {
            (Some(DomainId::from_slice(&bytes[8..40])?), crate::sign::strip(bytes)?.get(40..).ok_or_else(|| FormatError::truncated("snapshot"))?)
        }
        _ => return Err(FormatError::BadMagic { expected: "snapshot" }),
    };
    if rest.len() < 4 {
        return Err(FormatError::truncated("snapshot header"));
    }
    let h = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    if rest.len() < 4 + h {
        return Err(FormatError::truncated("snapshot header"));
    }
    Ok(Parts { domain, header: &rest[4..4 + h], body: &rest[4 + h..] })
}

/// The domain a snapshot names (`None`: a version 1, legacy snapshot).
pub fn domain_of(bytes: &[u8]) -> Result<Option<DomainId>, FormatError> {
    Ok(split(bytes)?.domain)
}

pub fn open_header(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<SnapshotHeader, FormatError> {
    let parts = split(bytes)?;
    let aad = if parts.domain.is_some() { HEADER_AAD } else { HEADER_AAD_V1 };
    let plain = catalog_key.open_with_nonce_prefix(aad, parts.header, "snapshot header")?;
    let header: SnapshotHeader =
        ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("snapshot header: {e}")))?;
    if header.version > SNAPSHOT_VERSION {
        return Err(FormatError::UnsupportedVersion { what: "snapshot", found: header.version, supported: SNAPSHOT_VERSION });
    }
    Ok(header)
}

pub fn open_body(bytes: &[u8], recovery: &RecoverySecretKey) -> Result<SnapshotBody, FormatError> {
    let plain = recovery.open(BODY_INFO, split(bytes)?.body, "snapshot body")?;
    ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("snapshot body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Domain, DomainId, Secrets};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn snapshot_round_trip(host in ".{0,20}", component in "[a-z-]{1,20}", tags in proptest::collection::vec("[a-z]{1,8}", 0..4),
                               paths in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..30), 1..4), files in any::<u64>()) {
            let s = Secrets::generate(Id([5; 32]));
            let header = SnapshotHeader {
                version: 1, time: jiff::Timestamp::from_second(1_700_000_000).unwrap(), host, component, kind: "files".into(), tags,
                summary: Summary { files, ..Summary::default() }, parent: Some(Id([1; 32])), labels: BTreeMap::from([("a".into(), "b".into())]),
            };
            let body = SnapshotBody { tree: Id([2; 32]), paths: paths.into_iter().map(serde_bytes::ByteBuf::from).collect(), excludes: vec!["*.tmp".into()], user: "u".into(), errors: vec![], labels: BTreeMap::new() };
            let w = s.new_writer().unwrap();
            let (signer, domain) = w.signer().unwrap();
            let keys = w.domain_keys(&domain).unwrap();
            let bytes = seal(&header, &body, &domain, &keys.catalog_key, &w.recovery_public, &signer, &s.repository_id);
            prop_assert_eq!(domain_of(&bytes).unwrap(), Some(domain));
            prop_assert_eq!(crate::sign::verify_object(ObjectType::Snapshot, &s.repository_id, &bytes).unwrap().0, signer.key_id());
            prop_assert_eq!(open_header(&bytes, &keys.catalog_key).unwrap(), header.clone());
            prop_assert!(open_header(&bytes, &s.domain_keys(&Domain::ADMIN).unwrap().catalog_key).is_err());
            prop_assert_eq!(open_body(&bytes, s.recovery().unwrap()).unwrap(), body.clone());
            let legacy = s.domain_keys(&DomainId::LEGACY).unwrap();
            let v1 = seal_v1(&header, &body, &legacy.catalog_key, &s.recovery_public);
            prop_assert_eq!(domain_of(&v1).unwrap(), None);
            prop_assert_eq!(open_header(&v1, &legacy.catalog_key).unwrap(), header);
            prop_assert_eq!(open_body(&v1, s.recovery().unwrap()).unwrap(), body);
        }
    }
}
