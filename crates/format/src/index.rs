//! Index files: which blob lives in which pack.
//!
//! An index file is written by each backup after its packs are durable and
//! before its snapshot is; it is never rewritten. Its plaintext (zstd
//! compressed, then sealed under the catalog key) is:
//!
//! ```text
//! u32 version (= 1)
//! u32 S, then S × 32-byte names of index files this one supersedes
//! u32 P, then P × pack:
//!     32  pack name
//!     u64 pack length in bytes
//!     u32 B, then B × 45-byte entries (kind u8, blob id 32, offset u32, length u32, raw length u32)
//! ```
//!
//! The stored object is `"RPRSIDX2" || domain (32) || u32 P || P × pack
//! name || nonce 12 || ciphertext || tag || signer || signature`, sealed
//! under the domain's catalog key with the magic as AAD: every pack it
//! lists belongs to that domain, as its signer vouches (docs/FORMAT.md 7).
//! The pack names are also in clear, in front: storage listings show them
//! anyway, and every writer must tell packs some index file names from
//! packs nobody indexed (left by an interrupted backup) without decrypting
//! other domains' index files. Version 1 (legacy domain):
//! `"RPRSIDX1" || nonce 12 || ciphertext || tag`. All integers are
//! little-endian.

use crate::crypto::SymmetricKey;
use crate::keys::DomainId;
use crate::pack::{DIRECTORY_ENTRY_LEN, PackEntry, decode_entry, encode_entry};
use crate::sign::{ObjectType, SigningKey};
use crate::{FormatError, Id};

pub const INDEX_MAGIC: &[u8; 8] = b"RPRSIDX2";
pub const INDEX_MAGIC_V1: &[u8; 8] = b"RPRSIDX1";
pub const INDEX_VERSION: u32 = 1;
/// Bytes at the start of a version 2 index file that say its domain and
/// how many pack names follow in clear.
pub const PEEK_LEN: usize = 8 + 32 + 4;

/// What the first [`PEEK_LEN`] bytes of an index file say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peek {
    /// `None`: a version 1 (legacy) file, which lists no pack in clear.
    pub domain: Option<DomainId>,
    pub packs: u32,
}

impl Peek {
    /// Where the clear pack names end (and the sealed part starts).
    #[must_use]
    pub fn names_end(&self) -> usize {
        PEEK_LEN + 32 * self.packs as usize
    }
}

/// Reads the start of an index file (at least [`PEEK_LEN`] bytes, or
/// the whole file if shorter).
pub fn peek(prefix: &[u8]) -> Result<Peek, FormatError> {
    match prefix.get(..8) {
        Some(m) if m == INDEX_MAGIC_V1 => Ok(Peek { domain: None, packs: 0 }),
        Some(m) if m == INDEX_MAGIC && prefix.len() >= PEEK_LEN => Ok(Peek {
            domain: Some(DomainId::from_slice(&prefix[8..40])?),
            packs: u32::from_le_bytes(prefix[40..44].try_into().expect("4 bytes")),
        }),
        Some(m) if m == INDEX_MAGIC => Err(FormatError::truncated("index file")),
        _ => Err(FormatError::BadMagic { expected: "index" }),
    }
}

/// The pack names a version 2 index file lists in clear: the bytes from
/// [`PEEK_LEN`] to [`Peek::names_end`].
pub fn pack_names(list: &[u8]) -> Result<Vec<Id>, FormatError> {
    if !list.len().is_multiple_of(32) {
        return Err(FormatError::truncated("index file pack names"));
    }
    list.chunks_exact(32).map(Id::from_slice).collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexedPack {
    pub id: Id,
    pub length: u64,
    pub blobs: Vec<PackEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexFile {
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexedPack>,
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        if self.b.len() < n {
            return Err(FormatError::truncated("index file"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn id(&mut self) -> Result<Id, FormatError> {
        Id::from_slice(self.take(32)?)
    }
    /// A count of items of at least `min_item` bytes each, bounded by what is left.
    fn count(&mut self, min_item: usize) -> Result<usize, FormatError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.b.len() {
            return Err(FormatError::truncated("index file count exceeds its length"));
        }
        Ok(n)
    }
}

impl IndexFile {
    #[must_use]
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }

    #[must_use]
    pub fn encode_plain(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.blob_count() * DIRECTORY_ENTRY_LEN + self.packs.len() * 44);
        out.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.supersedes.len() as u32).to_le_bytes());
        for s in &self.supersedes {
            out.extend_from_slice(&s.0);
        }
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
            out.extend_from_slice(&p.length.to_le_bytes());
            out.extend_from_slice(&(p.blobs.len() as u32).to_le_bytes());
            for e in &p.blobs {
                encode_entry(e, &mut out);
            }
        }
        out
    }

    pub fn decode_plain(b: &[u8]) -> Result<IndexFile, FormatError> {
        let mut r = Reader { b };
        let version = r.u32()?;
        if version != INDEX_VERSION {
            return Err(FormatError::UnsupportedVersion { what: "index file", found: version, supported: INDEX_VERSION });
        }
        let s = r.count(32)?;
        let supersedes = (0..s).map(|_| r.id()).collect::<Result<_, _>>()?;
        let p = r.count(44)?;
        let mut packs = Vec::with_capacity(p);
        for _ in 0..p {
            let id = r.id()?;
            let length = r.u64()?;
            let n = r.count(DIRECTORY_ENTRY_LEN)?;
            let blobs = (0..n).map(|_| decode_entry(r.take(DIRECTORY_ENTRY_LEN)?)).collect::<Result<Vec<_>, _>>()?;
            for e in &blobs {
                if u64::from(e.offset) + u64::from(e.length) > length {
                    return Err(FormatError::Malformed(format!("blob {} lies beyond the end of pack {}", e.id.short(), id.short())));
                }
            }
            packs.push(IndexedPack { id, length, blobs });
        }
        if !r.b.is_empty() {
            return Err(FormatError::Malformed(format!("{} trailing bytes in index file", r.b.len())));
        }
        Ok(IndexFile { supersedes, packs })
    }

    /// The stored object: compressed, sealed under `domain`'s catalog key,
    /// signed.
    #[must_use]
    pub fn seal(&self, domain: &DomainId, catalog_key: &SymmetricKey, signer: &SigningKey, repository: &Id) -> Vec<u8> {
        let plain = zstd::bulk::compress(&self.encode_plain(), 3).expect("zstd compresses in memory");
        let mut out = INDEX_MAGIC.to_vec();
        out.extend_from_slice(&domain.0);
        out.extend_from_slice(&(self.packs.len() as u32).to_le_bytes());
        for p in &self.packs {
            out.extend_from_slice(&p.id.0);
        }
        out.extend_from_slice(&catalog_key.seal_with_random_nonce(INDEX_MAGIC, &plain));
        signer.seal_object(ObjectType::Index, repository, &mut out);
        out
    }

    /// A version 1 index file, for tests of the legacy path only.
    #[doc(hidden)]
    #[must_use]
    pub fn seal_v1(&self, catalog_key: &SymmetricKey) -> Vec<u8> {
        let plain = zstd::bulk::compress(&self.encode_plain(), 3).expect("zstd compresses in memory");
        let mut out = INDEX_MAGIC_V1.to_vec();
        out.extend_from_slice(&catalog_key.seal_with_random_nonce(INDEX_MAGIC_V1, &plain));
        out
    }

    /// Decrypts an index file of either version (the signature is checked
    /// by the caller, who decides whether to trust its signer).
    pub fn open(bytes: &[u8], catalog_key: &SymmetricKey) -> Result<IndexFile, FormatError> {
        let p = peek(&bytes[..bytes.len().min(PEEK_LEN)])?;
        let sealed = match p.domain {
            None => &bytes[8..],
            Some(_) => crate::sign::strip(bytes)?.get(p.names_end()..).ok_or_else(|| FormatError::truncated("index file"))?,
        };
        let magic = &bytes[..8];
        let packed = catalog_key.open_with_nonce_prefix(magic, sealed, "index file")?;
        // The decompressed size is bounded: 1 GiB covers ~20 million blobs.
        let plain = zstd::bulk::decompress(&packed, 1 << 30).map_err(|e| FormatError::Malformed(format!("index file: zstd: {e}")))?;
        let file = IndexFile::decode_plain(&plain)?;
        // The clear list must be the sealed one: a reader that trusts the
        // clear list only to skip adopting packs is not misled by a signer
        // it trusts.
        if p.domain.is_some() && pack_names(&bytes[PEEK_LEN..p.names_end()])? != file.packs.iter().map(|x| x.id).collect::<Vec<_>>() {
            return Err(FormatError::Malformed("the index file's clear pack list differs from its sealed one".into()));
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BlobKind;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = PackEntry> {
        (any::<bool>(), any::<[u8; 32]>(), 88u32..1_000_000, 17u32..100_000, 0u32..1_000_000).prop_map(|(t, id, offset, length, raw_length)| PackEntry {
            kind: if t { BlobKind::Tree } else { BlobKind::Data },
            id: Id(id),
            offset,
            length,
            raw_length,
        })
    }

    proptest! {
        #[test]
        fn index_round_trip(
            supersedes in proptest::collection::vec(any::<[u8; 32]>(), 0..4),
            packs in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(entry(), 0..10)), 0..6),
        ) {
            let idx = IndexFile {
                supersedes: supersedes.into_iter().map(Id).collect(),
                packs: packs.into_iter().map(|(id, blobs)| IndexedPack { id: Id(id), length: 2_000_000, blobs }).collect(),
            };
            let key = SymmetricKey::generate();
            let signer = SigningKey::generate();
            let domain = DomainId([5; 32]);
            let sealed = idx.seal(&domain, &key, &signer, &Id([1; 32]));
            let pk = peek(&sealed[..PEEK_LEN]).unwrap();
            prop_assert_eq!(pk.domain, Some(domain));
            prop_assert_eq!(pack_names(&sealed[PEEK_LEN..pk.names_end()]).unwrap(), idx.packs.iter().map(|p| p.id).collect::<Vec<_>>());
            prop_assert_eq!(crate::sign::verify_object(ObjectType::Index, &Id([1; 32]), &sealed).unwrap().0, signer.key_id());
            prop_assert_eq!(IndexFile::open(&sealed, &key).unwrap(), idx.clone());
            prop_assert!(IndexFile::open(&sealed, &SymmetricKey::generate()).is_err());
            prop_assert_eq!(IndexFile::open(&idx.seal_v1(&key), &key).unwrap(), idx.clone());
            prop_assert_eq!(IndexFile::decode_plain(&idx.encode_plain()).unwrap(), idx);
        }
    }

    #[test]
    fn truncated_plaintext_is_an_error_not_a_panic() {
        let idx = IndexFile { supersedes: vec![], packs: vec![IndexedPack { id: Id([1; 32]), length: 10_000, blobs: vec![PackEntry { kind: BlobKind::Data, id: Id([2; 32]), offset: 100, length: 50, raw_length: 33 }] }] };
        let plain = idx.encode_plain();
        for cut in 0..plain.len() {
            assert!(IndexFile::decode_plain(&plain[..cut]).is_err());
        }
    }
}
