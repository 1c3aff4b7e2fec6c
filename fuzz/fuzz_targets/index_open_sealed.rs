//! `IndexFile::open` behind the authentication check. Input: `mode u8 || rest`,
//! sealed as `"RPRSIDX1" || nonce || AES-GCM(catalog key, aad "RPRSIDX1")`:
//!
//! * mode bit 0 clear: `rest` is the index plaintext; it is zstd-compressed
//!   before sealing, and `open` must agree exactly with `decode_plain(rest)`
//!   (same value or same error);
//! * mode bit 0 set: `rest` is sealed as is, so it is the (untrusted) zstd frame
//!   that `open` decompresses.
//!
//! Round trip for anything that opens: re-encode, re-seal, re-open.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::index::{INDEX_MAGIC, IndexFile};
use reprise_fuzz::{DOMAIN, NO_SIGNATURE, ctx, seal_fixed};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let key = ctx.catalog_key();
    let (mode, rest) = data.split_first().map_or((0, &[][..]), |(m, r)| (*m, r));
    let packed = if mode & 1 == 0 { zstd::bulk::compress(rest, 1).expect("zstd compresses in memory") } else { rest.to_vec() };
    // The clear pack list of a version 2 file must match the sealed one:
    // taken from the plaintext when it decodes.
    let listed: Vec<[u8; 32]> = IndexFile::decode_plain(rest).map(|i| i.packs.iter().map(|p| p.id.0).collect()).unwrap_or_default();
    let mut object = INDEX_MAGIC.to_vec();
    object.extend_from_slice(&DOMAIN.0);
    object.extend_from_slice(&(listed.len() as u32).to_le_bytes());
    for id in &listed {
        object.extend_from_slice(id);
    }
    object.extend_from_slice(&seal_fixed(key, INDEX_MAGIC, &packed));
    object.extend_from_slice(&NO_SIGNATURE);
    let opened = IndexFile::open(&object, key);
    if mode & 1 == 0 && !(listed.is_empty() && IndexFile::decode_plain(rest).is_ok_and(|i| !i.packs.is_empty())) {
        assert_eq!(opened, IndexFile::decode_plain(rest), "open disagrees with decode_plain");
    }
    let Ok(idx) = opened else { return };
    assert_eq!(IndexFile::decode_plain(&idx.encode_plain()).as_ref(), Ok(&idx));
    assert_eq!(IndexFile::open(&idx.seal(&DOMAIN, key, &ctx.signer, &ctx.repository()), key).as_ref(), Ok(&idx));
});
