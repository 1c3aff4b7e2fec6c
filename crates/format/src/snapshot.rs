//! Snapshots: one object per backup.
//!
//! ```text
//! "RPRSSNP1" || u32 LE H || header (H bytes: nonce || AES-256-GCM(catalog key) || tag)
//!            || body (HPKE sealed to the recovery public key, to the end)
//! ```
//!
//! The *header* (catalog key) holds what monitoring and retention need and
//! what a write-only host may see: time, host, component, tags, sizes. The
//! *body* (recovery key) holds the root tree and the source paths, which can
//! name patients.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::crypto::{RecoveryPublicKey, RecoverySecretKey, SymmetricKey};
use crate::{FormatError, Id};

pub const SNAPSHOT_MAGIC: &[u8; 8] = b"RPRSSNP1";
pub const SNAPSHOT_VERSION: u32 = 1;
const HEADER_AAD: &[u8] = b"reprise snapshot header v1";
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

/// Seals a snapshot into its stored form.
#[must_use]
pub fn seal(header: &SnapshotHeader, body: &SnapshotBody, catalog_key: &SymmetricKey, recovery_public: &RecoveryPublicKey) -> Vec<u8> {
    let mut h = Vec::new();
    ciborium::into_writer(header, &mut h).expect("CBOR encodes in memory");
    let mut b = Vec::new();
    ciborium::into_writer(body, &mut b).expect("CBOR encodes in memory");
    let sealed_header = catalog_key.seal_with_random_nonce(HEADER_AAD, &h);
    let sealed_body = recovery_public.seal(BODY_INFO, &b);
    let mut out = Vec::with_capacity(12 + sealed_header.len() + sealed_body.len());
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed_header);
    out.extend_from_slice(&sealed_body);
    out
}

fn split(bytes: &[u8]) -> Result<(&[u8], &[u8]), FormatError> {
    if bytes.len() < 12 || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(FormatError::BadMagic { expected: "snapshot" });
    }
    let h = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if bytes.len() < 12 + h {
        return Err(FormatError::truncated("snapshot header"));
    }
    Ok((&bytes[12..12 + h], &bytes[12 + h..]))
}

pub fn open_header(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<SnapshotHeader, FormatError> {
    let (h, _) = split(bytes)?;
    let plain = catalog_key.open_with_nonce_prefix(HEADER_AAD, h, "snapshot header")?;
    let header: SnapshotHeader =
        ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("snapshot header: {e}")))?;
    if header.version > SNAPSHOT_VERSION {
        return Err(FormatError::UnsupportedVersion { what: "snapshot", found: header.version, supported: SNAPSHOT_VERSION });
    }
    Ok(header)
}

pub fn open_body(bytes: &[u8], recovery: &RecoverySecretKey) -> Result<SnapshotBody, FormatError> {
    let (_, b) = split(bytes)?;
    let plain = recovery.open(BODY_INFO, b, "snapshot body")?;
    ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("snapshot body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Secrets;
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
            let bytes = seal(&header, &body, &s.write.catalog_key, &s.write.recovery_public);
            prop_assert_eq!(open_header(&bytes, &s.write.catalog_key).unwrap(), header);
            prop_assert_eq!(open_body(&bytes, s.recovery.as_ref().unwrap()).unwrap(), body);
        }
    }
}
