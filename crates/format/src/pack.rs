//! Packs: the objects that hold blobs (docs/FORMAT.md 6).
//!
//! ```text
//! offset        size  content
//! 0             8     magic "RPRSPAK2"
//! 8             80    pack key sealed to the recovery public key (HPKE: enc 32 || ct 32 || tag 16)
//! 88            ...   blobs, each AES-256-GCM(pack key, nonce = 0u32 || offset u64 LE,
//!                     aad = kind || blob id) of (compression byte || payload), tag appended
//! ...           D     directory: nonce 12 || AES-256-GCM(domain catalog key, aad "reprise pack directory v2") || tag
//! len-140       4     D, u32 LE
//! len-136       32    domain
//! len-104       8     magic "RPRSPAK2"
//! len-96        96    signer || Ed25519 signature (crate::sign)
//! ```
//!
//! Each pack has its own random data key, sealed so that only the recovery
//! secret opens it: the writer forgets it once the pack is uploaded. The
//! directory is under the domain's catalog key instead, so its writer can
//! rebuild index entries for a pack whose index file was never written (a
//! backup killed between the two uploads) without being able to read its
//! content. The domain and the signer are in clear at the end: a reader
//! finds out from two small range reads whose pack it is, before deciding
//! to fetch it whole and check the signature.
//!
//! Version 1 packs (`RPRSPAK1`, legacy domain) end with
//! `directory (legacy catalog key, aad "reprise pack directory v1") || D || magic`.

use crate::crypto::{NONCE_LEN, RecoveryPublicKey, RecoverySecretKey, SymmetricKey, TAG_LEN};
use crate::keys::DomainId;
use crate::sign::{KeyId, ObjectType, SIGNATURE_BLOCK_LEN, SigningKey};
use crate::{BlobKind, FormatError, Id, crypto::IdKey};

pub const PACK_MAGIC: &[u8; 8] = b"RPRSPAK2";
pub const PACK_MAGIC_V1: &[u8; 8] = b"RPRSPAK1";
pub const SEALED_KEY_LEN: usize = crate::crypto::ENC_LEN + 32 + TAG_LEN;
pub const HEADER_LEN: usize = PACK_MAGIC.len() + SEALED_KEY_LEN;
/// What follows a version 1 pack's directory.
pub const TRAILER_LEN_V1: usize = 4 + PACK_MAGIC.len();
/// What follows a version 2 pack's directory: D, domain, magic, signature block.
pub const TRAILER_LEN: usize = 4 + 32 + PACK_MAGIC.len() + SIGNATURE_BLOCK_LEN;
pub const PACK_KEY_INFO: &[u8] = b"reprise pack key v1";
const DIRECTORY_AAD_V1: &[u8] = b"reprise pack directory v1";
const DIRECTORY_AAD: &[u8] = b"reprise pack directory v2";
pub const DIRECTORY_ENTRY_LEN: usize = 1 + 32 + 4 + 4 + 4;
/// Overhead added to each blob's payload: compression byte and GCM tag.
pub const BLOB_OVERHEAD: usize = 1 + TAG_LEN;
/// Upper bound on a blob's plaintext, checked before decompressing.
pub const MAX_BLOB_LEN: u32 = 1 << 30;

/// Compression byte values.
pub const STORED: u8 = 0;
pub const ZSTD: u8 = 1;

/// Where a blob lives in its pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: Id,
    /// Offset of the blob's ciphertext from the start of the pack.
    pub offset: u32,
    /// Length of the ciphertext (payload + compression byte + tag).
    pub length: u32,
    /// Length of the plaintext content, after decompression.
    pub raw_length: u32,
}

fn blob_nonce(offset: u32) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[4..].copy_from_slice(&u64::from(offset).to_le_bytes());
    n
}

fn blob_aad(kind: BlobKind, id: &Id) -> [u8; 33] {
    let mut aad = [0u8; 33];
    aad[0] = kind.code();
    aad[1..].copy_from_slice(&id.0);
    aad
}

thread_local! {
    // zstd contexts are reused per thread: creating one costs more than
    // compressing or decompressing an 8 KiB block (a quarter of a restore's
    // CPU time was ZSTD_createDCtx before this).
    static COMPRESSORS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> = const { std::cell::RefCell::new(Vec::new()) };
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { std::cell::RefCell::new(None) };
}

/// zstd at `level`, with this thread's context for that level.
#[must_use]
pub fn zstd_compress(raw: &[u8], level: i32) -> Vec<u8> {
    COMPRESSORS.with(|c| {
        let mut c = c.borrow_mut();
        let i = if let Some(i) = c.iter().position(|(l, _)| *l == level) {
            i
        } else {
            c.push((level, zstd::bulk::Compressor::new(level).expect("zstd context")));
            c.len() - 1
        };
        c[i].1.compress(raw).expect("zstd compresses in memory")
    })
}

/// Decompresses a zstd frame of at most `capacity` bytes with this
/// thread's context.
pub fn zstd_decompress(data: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("set above").decompress(data, capacity)
    })
}

/// Compresses `raw` with zstd when that pays, else stores it.
///
/// For chunks over 32 KiB, the first 16 KiB are tried first: incompressible content (signature
/// images, already-compressed PDF streams) is recognised after compressing a
/// sample instead of the whole chunk.
#[must_use]
pub fn compress(raw: &[u8], level: i32) -> (u8, Vec<u8>) {
    const SAMPLE: usize = 16 * 1024;
    if raw.len() < 64 {
        return (STORED, raw.to_vec());
    }
    if raw.len() > 2 * SAMPLE {
        let sample = &raw[..SAMPLE];
        let packed = zstd_compress(sample, 1);
        if packed.len() * 100 > sample.len() * 97 {
            return (STORED, raw.to_vec());
        }
    }
    let packed = zstd_compress(raw, level);
    // Keep the compressed form only if it saves at least 3 %.
    if packed.len() * 100 <= raw.len() * 97 { (ZSTD, packed) } else { (STORED, raw.to_vec()) }
}

/// Builds one pack in memory.
pub struct PackWriter {
    key: SymmetricKey,
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl std::fmt::Debug for PackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWriter").field("len", &self.buf.len()).field("blobs", &self.entries.len()).finish_non_exhaustive()
    }
}

impl PackWriter {
    #[must_use]
    pub fn new(recovery_public: &RecoveryPublicKey, capacity: usize) -> PackWriter {
        let key = SymmetricKey::generate();
        let sealed = recovery_public.seal(PACK_KEY_INFO, key.as_bytes());
        debug_assert_eq!(sealed.len(), SEALED_KEY_LEN);
        let mut buf = Vec::with_capacity(capacity + capacity / 8);
        buf.extend_from_slice(PACK_MAGIC);
        buf.extend_from_slice(&sealed);
        PackWriter { key, buf, entries: Vec::new() }
    }

    /// Bytes so far (header and blobs, not the directory).
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    #[must_use]
    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    /// Appends a blob. `payload` is `raw` after [`compress`]; `compression`
    /// is the byte [`compress`] returned.
    pub fn add(&mut self, kind: BlobKind, id: Id, raw_length: u32, compression: u8, payload: &[u8]) -> PackEntry {
        let offset = u32::try_from(self.buf.len()).expect("packs stay below 4 GiB");
        let mut ct = Vec::with_capacity(payload.len() + BLOB_OVERHEAD);
        ct.push(compression);
        ct.extend_from_slice(payload);
        self.key.seal_in_place(blob_nonce(offset), &blob_aad(kind, &id), &mut ct);
        self.buf.extend_from_slice(&ct);
        let entry = PackEntry { kind, id, offset, length: ct.len() as u32, raw_length };
        self.entries.push(entry);
        entry
    }

    /// Seals the directory under `domain`'s catalog key, signs the pack
    /// and returns its bytes, its name and entries.
    #[must_use]
    pub fn finish(mut self, domain: &DomainId, catalog_key: &SymmetricKey, signer: &SigningKey, repository: &Id) -> (Id, Vec<u8>, Vec<PackEntry>) {
        let dir = encode_directory(&self.entries);
        let sealed = catalog_key.seal_with_random_nonce(DIRECTORY_AAD, &dir);
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(&domain.0);
        self.buf.extend_from_slice(PACK_MAGIC);
        signer.seal_object(ObjectType::Pack, repository, &mut self.buf);
        let id = Id::of_object(&self.buf);
        (id, std::mem::take(&mut self.buf), std::mem::take(&mut self.entries))
    }

    /// A version 1 pack (no domain, no signature), for tests of the legacy
    /// path only.
    #[doc(hidden)]
    #[must_use]
    pub fn finish_v1(mut self, catalog_key: &SymmetricKey) -> (Id, Vec<u8>, Vec<PackEntry>) {
        self.buf[..8].copy_from_slice(PACK_MAGIC_V1);
        let dir = encode_directory(&self.entries);
        let sealed = catalog_key.seal_with_random_nonce(DIRECTORY_AAD_V1, &dir);
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(PACK_MAGIC_V1);
        let id = Id::of_object(&self.buf);
        (id, std::mem::take(&mut self.buf), std::mem::take(&mut self.entries))
    }
}

fn encode_directory(entries: &[PackEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * DIRECTORY_ENTRY_LEN);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        encode_entry(e, &mut out);
    }
    out
}

pub(crate) fn encode_entry(e: &PackEntry, out: &mut Vec<u8>) {
    out.push(e.kind.code());
    out.extend_from_slice(&e.id.0);
    out.extend_from_slice(&e.offset.to_le_bytes());
    out.extend_from_slice(&e.length.to_le_bytes());
    out.extend_from_slice(&e.raw_length.to_le_bytes());
}

pub(crate) fn decode_entry(b: &[u8]) -> Result<PackEntry, FormatError> {
    debug_assert_eq!(b.len(), DIRECTORY_ENTRY_LEN);
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let e = PackEntry {
        kind: BlobKind::from_code(b[0])?,
        id: Id::from_slice(&b[1..33])?,
        offset: u32_at(33),
        length: u32_at(37),
        raw_length: u32_at(41),
    };
    if (e.length as usize) < BLOB_OVERHEAD || e.raw_length > MAX_BLOB_LEN || (e.offset as usize) < HEADER_LEN {
        return Err(FormatError::Malformed(format!("blob entry {} has impossible bounds", e.id.short())));
    }
    Ok(e)
}

/// What the end of a pack says: its version, directory length, and for
/// version 2 its domain and signer (not yet verified).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackTail {
    pub directory_len: usize,
    /// Bytes after the directory.
    pub trailer_len: usize,
    /// `None` for a version 1 (legacy) pack.
    pub domain: Option<DomainId>,
    pub signer: Option<KeyId>,
}

impl PackTail {
    /// How many bytes from the end of a pack of `size` bytes to read for
    /// [`PackTail::parse`].
    #[must_use]
    pub fn read_len(size: u64) -> u64 {
        size.min(TRAILER_LEN as u64)
    }

    /// Parses the last [`PackTail::read_len`] bytes of a pack.
    pub fn parse(tail: &[u8]) -> Result<PackTail, FormatError> {
        let n = tail.len();
        if n >= TRAILER_LEN_V1 && &tail[n - 8..] == PACK_MAGIC_V1 {
            let d = u32::from_le_bytes(tail[n - 12..n - 8].try_into().expect("4 bytes")) as usize;
            return Ok(PackTail { directory_len: d, trailer_len: TRAILER_LEN_V1, domain: None, signer: None });
        }
        if n < TRAILER_LEN {
            return Err(FormatError::truncated("pack trailer"));
        }
        let t = &tail[n - TRAILER_LEN..];
        if &t[36..44] != PACK_MAGIC {
            return Err(FormatError::BadMagic { expected: "pack" });
        }
        Ok(PackTail {
            directory_len: u32::from_le_bytes(t[..4].try_into().expect("4 bytes")) as usize,
            trailer_len: TRAILER_LEN,
            domain: Some(DomainId::from_slice(&t[4..36])?),
            signer: Some(KeyId::from_slice(&t[44..76])?),
        })
    }
}

/// Decodes a pack's sealed directory, checking every entry lies within the
/// blob area of a pack of `pack_len` bytes.
pub fn decode_directory(sealed: &[u8], catalog_key: &SymmetricKey, pack_len: u64, tail: &PackTail) -> Result<Vec<PackEntry>, FormatError> {
    let aad = if tail.domain.is_some() { DIRECTORY_AAD } else { DIRECTORY_AAD_V1 };
    let plain = catalog_key.open_with_nonce_prefix(aad, sealed, "pack directory")?;
    if plain.len() < 4 {
        return Err(FormatError::truncated("pack directory"));
    }
    let count = u32::from_le_bytes(plain[..4].try_into().expect("4 bytes")) as usize;
    let body = &plain[4..];
    if body.len() != count.checked_mul(DIRECTORY_ENTRY_LEN).ok_or_else(|| FormatError::truncated("pack directory"))? {
        return Err(FormatError::Malformed(format!("pack directory declares {count} entries in {} bytes", body.len())));
    }
    let blob_end = pack_len.saturating_sub((sealed.len() + tail.trailer_len) as u64);
    body.chunks_exact(DIRECTORY_ENTRY_LEN)
        .map(|b| {
            let e = decode_entry(b)?;
            if u64::from(e.offset) + u64::from(e.length) > blob_end {
                return Err(FormatError::Malformed(format!("blob {} extends past the blob area", e.id.short())));
            }
            Ok(e)
        })
        .collect()
}

/// A whole pack's tail, checked against its header magic.
pub fn tail_of(pack: &[u8]) -> Result<PackTail, FormatError> {
    if pack.len() < HEADER_LEN + TRAILER_LEN_V1 {
        return Err(FormatError::truncated(format!("pack of {} bytes", pack.len())));
    }
    let tail = PackTail::parse(&pack[pack.len() - PackTail::read_len(pack.len() as u64) as usize..])?;
    let magic = if tail.domain.is_some() { PACK_MAGIC } else { PACK_MAGIC_V1 };
    if &pack[..8] != magic {
        return Err(FormatError::BadMagic { expected: "pack" });
    }
    Ok(tail)
}

/// Checks a whole version 2 pack's signature; returns its domain and signer.
pub fn verify(pack: &[u8], repository: &Id) -> Result<(DomainId, KeyId), FormatError> {
    let tail = tail_of(pack)?;
    let Some(domain) = tail.domain else {
        return Err(FormatError::Malformed("a version 1 pack carries no signature".into()));
    };
    let (signer, _) = crate::sign::verify_object(ObjectType::Pack, repository, pack)?;
    Ok((domain, signer))
}

/// Whole-pack decoding: header check and directory, for `check --read-data`
/// and for adopting unindexed packs. Does not check the signature
/// ([`verify`] does).
pub fn directory_of(pack: &[u8], catalog_key: &SymmetricKey) -> Result<Vec<PackEntry>, FormatError> {
    let tail = tail_of(pack)?;
    let start = pack
        .len()
        .checked_sub(tail.trailer_len + tail.directory_len)
        .filter(|s| *s >= HEADER_LEN)
        .ok_or_else(|| FormatError::truncated("pack directory"))?;
    decode_directory(&pack[start..pack.len() - tail.trailer_len], catalog_key, pack.len() as u64, &tail)
}

/// Opens a pack's data key from its first [`HEADER_LEN`] bytes.
pub fn open_pack_key(header: &[u8], recovery: &RecoverySecretKey) -> Result<SymmetricKey, FormatError> {
    if header.len() < HEADER_LEN {
        return Err(FormatError::truncated("pack header"));
    }
    if &header[..8] != PACK_MAGIC && &header[..8] != PACK_MAGIC_V1 {
        return Err(FormatError::BadMagic { expected: "pack" });
    }
    let key = recovery.open(PACK_KEY_INFO, &header[8..HEADER_LEN], "pack key")?;
    let key: [u8; 32] = key.try_into().map_err(|_| FormatError::Malformed("pack key is not 32 bytes".into()))?;
    Ok(SymmetricKey::from_bytes(key))
}

/// Decrypts one blob, decompresses it and checks it hashes to its ID.
pub fn open_blob(pack_key: &SymmetricKey, id_key: &IdKey, entry: &PackEntry, ciphertext: &[u8]) -> Result<Vec<u8>, FormatError> {
    let mut buf = decrypt_blob(pack_key, entry, ciphertext)?;
    let plain = match buf.first() {
        Some(&STORED) => {
            buf.remove(0);
            buf
        }
        _ => decompress(entry, &buf)?,
    };
    verify_blob(id_key, entry, &plain)?;
    Ok(plain)
}

/// Like [`open_blob`] (decrypted, decompressed and verified against its
/// ID), but returns the blob as stored: its compression byte and payload.
/// Repacking carries them over instead of compressing again.
pub fn open_blob_stored(pack_key: &SymmetricKey, id_key: &IdKey, entry: &PackEntry, ciphertext: &[u8]) -> Result<(u8, Vec<u8>), FormatError> {
    let mut buf = decrypt_blob(pack_key, entry, ciphertext)?;
    match buf.first() {
        Some(&STORED) => verify_blob(id_key, entry, &buf[1..])?,
        _ => verify_blob(id_key, entry, &decompress(entry, &buf)?)?,
    }
    let compression = buf.remove(0);
    Ok((compression, buf))
}

fn decrypt_blob(pack_key: &SymmetricKey, entry: &PackEntry, ciphertext: &[u8]) -> Result<Vec<u8>, FormatError> {
    if ciphertext.len() != entry.length as usize {
        return Err(FormatError::truncated(format!("blob {}", entry.id.short())));
    }
    let mut buf = ciphertext.to_vec();
    pack_key.open_in_place(blob_nonce(entry.offset), &blob_aad(entry.kind, &entry.id), &mut buf, "blob")?;
    Ok(buf)
}

/// Decodes a decrypted blob that is not stored raw.
fn decompress(entry: &PackEntry, buf: &[u8]) -> Result<Vec<u8>, FormatError> {
    match buf.first() {
        Some(&ZSTD) => zstd_decompress(&buf[1..], entry.raw_length as usize).map_err(|e| FormatError::Malformed(format!("blob {}: zstd: {e}", entry.id.short()))),
        Some(other) => Err(FormatError::Malformed(format!("unknown compression byte {other}"))),
        None => Err(FormatError::truncated("blob")),
    }
}

fn verify_blob(id_key: &IdKey, entry: &PackEntry, plain: &[u8]) -> Result<(), FormatError> {
    if plain.len() != entry.raw_length as usize || id_key.blob_id(plain) != entry.id {
        return Err(FormatError::IdMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Domain, DomainId, Secrets};
    use proptest::prelude::*;

    fn admin_finish(s: &Secrets, w: PackWriter) -> (Id, Vec<u8>, Vec<PackEntry>) {
        let keys = s.domain_keys(&Domain::ADMIN).unwrap();
        w.finish(&DomainId::ADMIN, &keys.catalog_key, &s.admin_key().unwrap(), &s.repository_id)
    }

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..3000), any::<bool>(), any::<bool>()), 1..20)) {
            let s = Secrets::generate(Id([3; 32]));
            let keys = s.domain_keys(&Domain::ADMIN).unwrap();
            let mut w = PackWriter::new(&s.recovery_public, 1024);
            let mut expected = Vec::new();
            let mut stored = Vec::new();
            for (data, tree, squash) in &blobs {
                let raw = if *squash { vec![b'a'; data.len() + 100] } else { data.clone() };
                let kind = if *tree { BlobKind::Tree } else { BlobKind::Data };
                let id = keys.id_key.blob_id(&raw);
                let (c, payload) = compress(&raw, 3);
                w.add(kind, id, raw.len() as u32, c, &payload);
                stored.push((c, payload));
                expected.push(raw);
            }
            let (name, bytes, entries) = admin_finish(&s, w);
            prop_assert_eq!(name, Id::of_object(&bytes));
            let dir = directory_of(&bytes, &keys.catalog_key).unwrap();
            prop_assert_eq!(&dir, &entries);
            prop_assert_eq!(verify(&bytes, &s.repository_id).unwrap(), (DomainId::ADMIN, s.admin_id().unwrap()));
            let tail = PackTail::parse(&bytes[bytes.len() - PackTail::read_len(bytes.len() as u64) as usize..]).unwrap();
            prop_assert_eq!(tail.signer, s.admin_id());
            let key = open_pack_key(&bytes[..HEADER_LEN], s.recovery().unwrap()).unwrap();
            for ((e, raw), as_stored) in dir.iter().zip(&expected).zip(&stored) {
                let ct = &bytes[e.offset as usize..(e.offset + e.length) as usize];
                prop_assert_eq!(&open_blob(&key, &keys.id_key, e, ct).unwrap(), raw);
                // Repacking reads the blob as stored, verified the same way.
                prop_assert_eq!(&open_blob_stored(&key, &keys.id_key, e, ct).unwrap(), as_stored);
                let mut wrong = *e;
                wrong.id = Id([9; 32]);
                prop_assert!(open_blob_stored(&key, &keys.id_key, &wrong, ct).is_err());
                // Another domain's id key does not take the blob for its own.
                prop_assert!(open_blob(&key, &s.domain_keys(&DomainId::LEGACY).unwrap().id_key, e, ct).is_err());
            }
        }
    }

    #[test]
    fn flipped_blob_byte_is_detected_and_write_only_cannot_open() {
        let s = Secrets::generate(Id([3; 32]));
        let keys = s.domain_keys(&Domain::ADMIN).unwrap();
        let mut w = PackWriter::new(&s.recovery_public, 1024);
        let raw = b"consent form of patient 42".to_vec();
        let id = keys.id_key.blob_id(&raw);
        w.add(BlobKind::Data, id, raw.len() as u32, STORED, &raw);
        let (_, mut bytes, entries) = admin_finish(&s, w);
        let (other, _) = RecoverySecretKey::generate();
        assert!(open_pack_key(&bytes[..HEADER_LEN], &other).is_err());
        let key = open_pack_key(&bytes[..HEADER_LEN], s.recovery().unwrap()).unwrap();
        let e = entries[0];
        bytes[e.offset as usize + 3] ^= 0x40;
        assert!(verify(&bytes, &s.repository_id).is_err(), "a flipped byte breaks the signature");
        let ct = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        assert!(matches!(open_blob(&key, &keys.id_key, &e, ct), Err(FormatError::Authentication(_))));
        assert!(!bytes.windows(raw.len()).any(|w| w == raw.as_slice()), "plaintext visible in pack");
    }

    #[test]
    fn a_version_1_pack_is_still_read() {
        let s = Secrets::generate(Id([3; 32]));
        let legacy = s.domain_keys(&DomainId::LEGACY).unwrap();
        let mut w = PackWriter::new(&s.recovery_public, 1024);
        let raw = vec![7u8; 5000];
        w.add(BlobKind::Data, legacy.id_key.blob_id(&raw), raw.len() as u32, STORED, &raw);
        let (_, bytes, entries) = w.finish_v1(&legacy.catalog_key);
        let tail = tail_of(&bytes).unwrap();
        assert_eq!((tail.domain, tail.signer, tail.trailer_len), (None, None, TRAILER_LEN_V1));
        assert_eq!(directory_of(&bytes, &legacy.catalog_key).unwrap(), entries);
        assert!(verify(&bytes, &s.repository_id).is_err());
        let key = open_pack_key(&bytes[..HEADER_LEN], s.recovery().unwrap()).unwrap();
        let e = entries[0];
        assert_eq!(open_blob(&key, &legacy.id_key, &e, &bytes[e.offset as usize..(e.offset + e.length) as usize]).unwrap(), raw);
    }

    #[test]
    fn incompressible_data_is_stored() {
        let mut data = vec![0u8; 100_000];
        blake3::Hasher::new().finalize_xof().fill(&mut data);
        assert_eq!(compress(&data, 3).0, STORED);
        assert_eq!(compress(&vec![b'x'; 100_000], 3).0, ZSTD);
    }
}
