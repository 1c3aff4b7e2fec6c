//! Archived write-ahead-log files.
//!
//! A WAL file (segment, timeline history, backup history, partial segment)
//! is stored whole as one object named after it, not chunked into packs:
//! WAL does not deduplicate, must be durable one file at a time as the
//! server hands it over, and must be found by name during recovery.
//!
//! ```text
//! "RPRSWAL2" || domain (32) || u32 H || header (H bytes, sealed under the
//!               domain's catalog key, AAD "reprise wal header v2", CBOR WalHeader)
//!            || file key, HPKE-sealed to the recovery key (info "reprise wal key v1"), 80 bytes
//!            || AES-256-GCM(file key, nonce 0, AAD "reprise wal v1" || name)(compression byte || payload) || tag
//!            || signer || signature
//! ```
//!
//! The header carries the keyed hash of the plaintext (the domain's id key)
//! so that a writer without the recovery key can tell "the same file pushed
//! again" (success) from "a different file under an existing name"
//! (refused); no other domain can compute or even read it. Version 1
//! (legacy domain): `"RPRSWAL1" || u32 H || header || key || body`.

use serde::{Deserialize, Serialize};

use crate::crypto::{IdKey, NONCE_LEN, RecoveryPublicKey, RecoverySecretKey, SymmetricKey};
use crate::keys::DomainId;
use crate::pack::{STORED, ZSTD};
use crate::sign::{ObjectType, SigningKey};
use crate::{FormatError, Id};

pub const WAL_MAGIC: &[u8; 8] = b"RPRSWAL2";
pub const WAL_MAGIC_V1: &[u8; 8] = b"RPRSWAL1";
const HEADER_AAD: &[u8] = b"reprise wal header v2";
const HEADER_AAD_V1: &[u8] = b"reprise wal header v1";
pub const WAL_KEY_INFO: &[u8] = b"reprise wal key v1";
const BODY_AAD: &[u8] = b"reprise wal v1";
/// Largest WAL file accepted (PostgreSQL segments are at most 1 GiB).
pub const MAX_WAL_FILE: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalHeader {
    pub version: u32,
    /// The file's name as PostgreSQL knows it (`000000010000000000000003`,
    /// `00000002.history`, ...).
    pub name: String,
    /// Plaintext length.
    pub size: u64,
    /// Keyed BLAKE3 (id key) of the plaintext.
    pub hash: Id,
    /// When the file was last modified on the server (≈ its last record).
    pub modified: jiff::Timestamp,
    pub pushed: jiff::Timestamp,
    pub host: String,
    /// PostgreSQL system identifier from the segment's first page, when known.
    #[serde(default)]
    pub system_identifier: u64,
}

/// Seals a WAL file in `domain`, signed.
#[must_use]
#[allow(clippy::too_many_arguments, reason = "every argument is a distinct key or input of the format")]
pub fn seal(header: &WalHeader, plaintext: &[u8], level: i32, domain: &DomainId, catalog_key: &SymmetricKey, recovery_public: &RecoveryPublicKey, signer: &SigningKey, repository: &Id) -> Vec<u8> {
    let mut out = WAL_MAGIC.to_vec();
    out.extend_from_slice(&domain.0);
    seal_rest(&mut out, header, plaintext, level, HEADER_AAD, catalog_key, recovery_public);
    signer.seal_object(ObjectType::Wal, repository, &mut out);
    out
}

/// A version 1 WAL object, for tests of the legacy path only.
#[doc(hidden)]
#[must_use]
pub fn seal_v1(header: &WalHeader, plaintext: &[u8], catalog_key: &SymmetricKey, recovery_public: &RecoveryPublicKey) -> Vec<u8> {
    let mut out = WAL_MAGIC_V1.to_vec();
    seal_rest(&mut out, header, plaintext, 1, HEADER_AAD_V1, catalog_key, recovery_public);
    out
}

fn seal_rest(out: &mut Vec<u8>, header: &WalHeader, plaintext: &[u8], level: i32, aad: &[u8], catalog_key: &SymmetricKey, recovery_public: &RecoveryPublicKey) {
    let packed = crate::pack::zstd_compress(plaintext, level);
    let (compression, payload) = if packed.len() < plaintext.len() { (ZSTD, packed) } else { (STORED, plaintext.to_vec()) };
    let mut h = Vec::new();
    ciborium::into_writer(header, &mut h).expect("CBOR encodes in memory");
    let sealed_header = catalog_key.seal_with_random_nonce(aad, &h);
    let key = SymmetricKey::generate();
    let sealed_key = recovery_public.seal(WAL_KEY_INFO, key.as_bytes());
    let mut body = Vec::with_capacity(payload.len() + 17);
    body.push(compression);
    body.extend_from_slice(&payload);
    key.seal_in_place([0u8; NONCE_LEN], &body_aad(&header.name), &mut body);
    out.reserve(4 + sealed_header.len() + sealed_key.len() + body.len() + crate::sign::SIGNATURE_BLOCK_LEN);
    out.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed_header);
    out.extend_from_slice(&sealed_key);
    out.extend_from_slice(&body);
}

fn body_aad(name: &str) -> Vec<u8> {
    let mut aad = BODY_AAD.to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// A WAL object's domain (`None`: version 1), sealed header, and the rest.
type Parts<'a> = (Option<DomainId>, &'a [u8], &'a [u8]);

fn split(bytes: &[u8]) -> Result<Parts<'_>, FormatError> {
    let (domain, rest) = match bytes.get(..8) {
        Some(m) if m == WAL_MAGIC_V1 => (None, &bytes[8..]),
        Some(m) if m == WAL_MAGIC && bytes.len() >= 40 => {
            (Some(DomainId::from_slice(&bytes[8..40])?), crate::sign::strip(bytes)?.get(40..).ok_or_else(|| FormatError::truncated("WAL"))?)
        }
        _ => return Err(FormatError::BadMagic { expected: "WAL" }),
    };
    if rest.len() < 4 {
        return Err(FormatError::truncated("WAL header"));
    }
    let h = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    if rest.len() < 4 + h {
        return Err(FormatError::truncated("WAL header"));
    }
    Ok((domain, &rest[4..4 + h], &rest[4 + h..]))
}

/// The domain a WAL object names (`None`: version 1, legacy).
pub fn domain_of(bytes: &[u8]) -> Result<Option<DomainId>, FormatError> {
    Ok(split(bytes)?.0)
}

/// Reads the header (the domain's catalog key only): what a writer needs.
pub fn open_header(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<WalHeader, FormatError> {
    let (domain, h, _) = split(bytes)?;
    let aad = if domain.is_some() { HEADER_AAD } else { HEADER_AAD_V1 };
    let plain = catalog_key.open_with_nonce_prefix(aad, h, "WAL header")?;
    let header: WalHeader = ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("WAL header: {e}")))?;
    if header.version != 1 {
        return Err(FormatError::UnsupportedVersion { what: "WAL file", found: header.version, supported: 1 });
    }
    Ok(header)
}

/// Decrypts and verifies the file (its signature is the caller's to check).
pub fn open(bytes: &[u8], catalog_key: &SymmetricKey, id_key: &IdKey, recovery: &RecoverySecretKey) -> Result<(WalHeader, Vec<u8>), FormatError> {
    let header = open_header(bytes, catalog_key)?;
    let (_, _, rest) = split(bytes)?;
    let sealed_len = crate::pack::SEALED_KEY_LEN;
    if rest.len() < sealed_len + 17 {
        return Err(FormatError::truncated("WAL body"));
    }
    let key = recovery.open(WAL_KEY_INFO, &rest[..sealed_len], "WAL key")?;
    let key = SymmetricKey::from_bytes(key.try_into().map_err(|_| FormatError::Malformed("WAL key is not 32 bytes".into()))?);
    let mut body = rest[sealed_len..].to_vec();
    key.open_in_place([0u8; NONCE_LEN], &body_aad(&header.name), &mut body, "WAL body")?;
    if header.size > MAX_WAL_FILE {
        return Err(FormatError::Malformed(format!("WAL file of {} bytes", header.size)));
    }
    let plain = match body.first() {
        Some(&STORED) => body[1..].to_vec(),
        Some(&ZSTD) => crate::pack::zstd_decompress(&body[1..], header.size as usize).map_err(|e| FormatError::Malformed(format!("WAL: zstd: {e}")))?,
        _ => return Err(FormatError::Malformed("WAL: unknown compression".into())),
    };
    if plain.len() as u64 != header.size || id_key.blob_id(&plain) != header.hash {
        return Err(FormatError::IdMismatch);
    }
    Ok((header, plain))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Domain, DomainId, Secrets};

    #[test]
    fn wal_round_trip_and_tamper() {
        let s = Secrets::generate(Id([1; 32]));
        let keys = s.domain_keys(&Domain::ADMIN).unwrap();
        let mut data = vec![0u8; 1 << 20];
        data[100..200].copy_from_slice(&[7u8; 100]);
        let h = WalHeader {
            version: 1,
            name: "000000010000000000000003".into(),
            size: data.len() as u64,
            hash: keys.id_key.blob_id(&data),
            modified: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            pushed: jiff::Timestamp::from_second(1_700_000_001).unwrap(),
            host: "db1".into(),
            system_identifier: 42,
        };
        let admin = s.admin_key().unwrap();
        let mut sealed = seal(&h, &data, 1, &DomainId::ADMIN, &keys.catalog_key, &s.recovery_public, &admin, &s.repository_id);
        assert!(sealed.len() < 10_000, "zeros compress");
        assert_eq!(domain_of(&sealed).unwrap(), Some(DomainId::ADMIN));
        assert_eq!(crate::sign::verify_object(ObjectType::Wal, &s.repository_id, &sealed).unwrap().0, admin.key_id());
        assert_eq!(open_header(&sealed, &keys.catalog_key).unwrap(), h);
        let (h2, back) = open(&sealed, &keys.catalog_key, &keys.id_key, s.recovery().unwrap()).unwrap();
        assert_eq!((h2, back), (h.clone(), data.clone()));
        // Another domain's keys neither read the header nor accept the hash.
        let legacy = s.domain_keys(&DomainId::LEGACY).unwrap();
        assert!(open_header(&sealed, &legacy.catalog_key).is_err());
        let n = sealed.len();
        sealed[n - 120] ^= 1;
        assert!(open(&sealed, &keys.catalog_key, &keys.id_key, s.recovery().unwrap()).is_err());
        let v1 = seal_v1(&h, &data, &legacy.catalog_key, &s.recovery_public);
        assert_eq!(domain_of(&v1).unwrap(), None);
        assert_eq!(open(&v1, &legacy.catalog_key, &keys.id_key, s.recovery().unwrap()).unwrap().1, data);
        assert_eq!(open(&v1, &legacy.catalog_key, &legacy.id_key, s.recovery().unwrap()).unwrap_err(), FormatError::IdMismatch);
    }
}
