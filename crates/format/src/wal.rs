//! Archived write-ahead-log files.
//!
//! A WAL file (segment, timeline history, backup history, partial segment)
//! is stored whole as one object named after it, not chunked into packs:
//! WAL does not deduplicate, must be durable one file at a time as the
//! server hands it over, and must be found by name during recovery.
//!
//! ```text
//! "RPRSWAL1" || u32 H || header (H bytes, sealed under the catalog key,
//!               AAD "reprise wal header v1", CBOR WalHeader)
//!            || file key, HPKE-sealed to the recovery key (info "reprise wal key v1"), 80 bytes
//!            || AES-256-GCM(file key, nonce 0, AAD "reprise wal v1" || name)(compression byte || payload) || tag
//! ```
//!
//! The header carries the keyed hash of the plaintext so that a writer
//! without the recovery key can tell "the same file pushed again" (success)
//! from "a different file under an existing name" (refused).

use serde::{Deserialize, Serialize};

use crate::crypto::{IdKey, NONCE_LEN, RecoveryPublicKey, RecoverySecretKey, SymmetricKey};
use crate::pack::{STORED, ZSTD};
use crate::{FormatError, Id};

pub const WAL_MAGIC: &[u8; 8] = b"RPRSWAL1";
const HEADER_AAD: &[u8] = b"reprise wal header v1";
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

/// Seals a WAL file.
#[must_use]
pub fn seal(header: &WalHeader, plaintext: &[u8], level: i32, catalog_key: &SymmetricKey, recovery_public: &RecoveryPublicKey) -> Vec<u8> {
    let packed = crate::pack::zstd_compress(plaintext, level);
    let (compression, payload) = if packed.len() < plaintext.len() { (ZSTD, packed) } else { (STORED, plaintext.to_vec()) };
    let mut h = Vec::new();
    ciborium::into_writer(header, &mut h).expect("CBOR encodes in memory");
    let sealed_header = catalog_key.seal_with_random_nonce(HEADER_AAD, &h);
    let key = SymmetricKey::generate();
    let sealed_key = recovery_public.seal(WAL_KEY_INFO, key.as_bytes());
    let mut body = Vec::with_capacity(payload.len() + 17);
    body.push(compression);
    body.extend_from_slice(&payload);
    key.seal_in_place([0u8; NONCE_LEN], &body_aad(&header.name), &mut body);
    let mut out = Vec::with_capacity(12 + sealed_header.len() + sealed_key.len() + body.len());
    out.extend_from_slice(WAL_MAGIC);
    out.extend_from_slice(&(sealed_header.len() as u32).to_le_bytes());
    out.extend_from_slice(&sealed_header);
    out.extend_from_slice(&sealed_key);
    out.extend_from_slice(&body);
    out
}

fn body_aad(name: &str) -> Vec<u8> {
    let mut aad = BODY_AAD.to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

fn split(bytes: &[u8]) -> Result<(&[u8], &[u8]), FormatError> {
    if bytes.len() < 12 || &bytes[..8] != WAL_MAGIC {
        return Err(FormatError::BadMagic { expected: "WAL" });
    }
    let h = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if bytes.len() < 12 + h {
        return Err(FormatError::truncated("WAL header"));
    }
    Ok((&bytes[12..12 + h], &bytes[12 + h..]))
}

/// Reads the header (catalog key only): what a writer needs.
pub fn open_header(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<WalHeader, FormatError> {
    let (h, _) = split(bytes)?;
    let plain = catalog_key.open_with_nonce_prefix(HEADER_AAD, h, "WAL header")?;
    let header: WalHeader = ciborium::from_reader(plain.as_slice()).map_err(|e| FormatError::Malformed(format!("WAL header: {e}")))?;
    if header.version != 1 {
        return Err(FormatError::UnsupportedVersion { what: "WAL file", found: header.version, supported: 1 });
    }
    Ok(header)
}

/// Decrypts and verifies the file.
pub fn open(bytes: &[u8], catalog_key: &SymmetricKey, id_key: &IdKey, recovery: &RecoverySecretKey) -> Result<(WalHeader, Vec<u8>), FormatError> {
    let header = open_header(bytes, catalog_key)?;
    let (_, rest) = split(bytes)?;
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
    use crate::keys::Secrets;

    #[test]
    fn wal_round_trip_and_tamper() {
        let s = Secrets::generate(Id([1; 32]));
        let mut data = vec![0u8; 1 << 20];
        data[100..200].copy_from_slice(&[7u8; 100]);
        let h = WalHeader {
            version: 1,
            name: "000000010000000000000003".into(),
            size: data.len() as u64,
            hash: s.write.id_key.blob_id(&data),
            modified: jiff::Timestamp::from_second(1_700_000_000).unwrap(),
            pushed: jiff::Timestamp::from_second(1_700_000_001).unwrap(),
            host: "db1".into(),
            system_identifier: 42,
        };
        let mut sealed = seal(&h, &data, 1, &s.write.catalog_key, &s.write.recovery_public);
        assert!(sealed.len() < 10_000, "zeros compress");
        assert_eq!(open_header(&sealed, &s.write.catalog_key).unwrap(), h);
        let (h2, back) = open(&sealed, &s.write.catalog_key, &s.write.id_key, s.recovery.as_ref().unwrap()).unwrap();
        assert_eq!((h2, back), (h, data));
        let n = sealed.len();
        sealed[n - 20] ^= 1;
        assert!(open(&sealed, &s.write.catalog_key, &s.write.id_key, s.recovery.as_ref().unwrap()).is_err());
    }
}
