//! Blobs behind the authentication check: `open_blob` (compression byte
//! dispatch, zstd decompression bounded by the entry's raw length, length and
//! identifier check).
//!
//! Input: `kind u8 || flags u8 || offset u32 || raw_length u32 || id [32] ||
//! blob plaintext (compression byte || payload)`. The plaintext is sealed under
//! a fixed pack key with the blob nonce and AAD of `docs/FORMAT.md` §6.1.
//! flags bit 0: use the identifier of the content the plaintext really holds
//! (stored payload, or its zstd decompression) instead of the given one;
//! bit 1: use that content's length as raw length; bits 2 and 3 both set: also
//! run the full round trip (`compress` → `PackWriter` → `directory_of` →
//! `open_pack_key` → `open_blob`) on the plaintext, which must give it back
//! (only on a quarter of the inputs: its two X25519 operations dominate the
//! cost of an execution); bits 4-5: the compression level for it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::pack::{self, PackEntry, PackWriter};
use reprise_format::{BlobKind, Id};
use reprise_fuzz::{Cursor, DOMAIN, blob_aad, blob_nonce, ctx};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let id_key = ctx.id_key();
    let mut c = Cursor(data);
    let kind = BlobKind::from_code(c.u8() & 1).expect("0 or 1");
    let flags = c.u8();
    let offset = c.u32();
    let mut raw_length = c.u32() % (pack::MAX_BLOB_LEN + 1);
    let mut id = Id(c.take());
    let plain = c.rest();

    // What the plaintext really holds, if anything.
    let content: Option<Vec<u8>> = match plain.first() {
        Some(&pack::STORED) => Some(plain[1..].to_vec()),
        Some(&pack::ZSTD) => zstd::bulk::decompress(&plain[1..], (raw_length as usize).min(1 << 20)).ok(),
        _ => None,
    };
    if let Some(content) = &content {
        if flags & 1 != 0 {
            id = id_key.blob_id(content);
        }
        if flags & 2 != 0 {
            raw_length = content.len() as u32;
        }
    }

    let mut ct = plain.to_vec();
    ctx.pack_key.seal_in_place(blob_nonce(offset), &blob_aad(kind, &id), &mut ct);
    let entry = PackEntry { kind, id, offset, length: ct.len() as u32, raw_length };
    let opened = pack::open_blob(&ctx.pack_key, id_key, &entry, &ct);
    match &opened {
        Ok(raw) => {
            assert_eq!(raw.len(), raw_length as usize);
            assert_eq!(id_key.blob_id(raw), id);
            assert_eq!(Some(raw), content.as_ref(), "open_blob returned something other than the plaintext's content");
        }
        Err(_) => {
            if let Some(content) = &content {
                assert!(
                    !(flags & 3 == 3 && content.len() <= pack::MAX_BLOB_LEN as usize),
                    "a well-formed blob was rejected: {opened:?}"
                );
            }
        }
    }
    // Framing errors: a ciphertext of the wrong length, another offset or kind.
    assert!(pack::open_blob(&ctx.pack_key, id_key, &PackEntry { length: entry.length.wrapping_add(1), ..entry }, &ct).is_err());
    assert!(pack::open_blob(&ctx.pack_key, id_key, &PackEntry { offset: offset ^ 1, ..entry }, &ct).is_err());

    if flags & 0x0C == 0x0C {
        let raw = plain;
        let level = i32::from(flags >> 4) % 4 + 1;
        let (compression, payload) = pack::compress(raw, level);
        let blob_id = id_key.blob_id(raw);
        let mut w = PackWriter::new(&ctx.secrets.recovery_public, raw.len());
        let added = w.add(kind, blob_id, raw.len() as u32, compression, &payload);
        let (name, bytes, entries) = w.finish(&DOMAIN, ctx.catalog_key(), &ctx.signer, &ctx.repository());
        assert_eq!(pack::verify(&bytes, &ctx.repository()), Ok((DOMAIN, ctx.signer.key_id())));
        assert_eq!(name, Id::of_object(&bytes));
        assert_eq!(entries, vec![added]);
        assert_eq!(pack::directory_of(&bytes, ctx.catalog_key()).expect("own pack's directory"), entries);
        let key = pack::open_pack_key(&bytes, ctx.recovery()).expect("own pack's key");
        let ct = &bytes[added.offset as usize..(added.offset + added.length) as usize];
        assert_eq!(pack::open_blob(&key, id_key, &added, ct).expect("own blob"), raw);
    }
});
