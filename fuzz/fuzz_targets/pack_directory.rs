//! Pack directories behind the authentication check. The input is
//! `u64 pack_len || u16 blob_area || directory plaintext`; the plaintext is
//! sealed under the fixed catalog key (AAD "reprise pack directory v1") and
//! decoded twice: with `decode_directory(sealed, key, pack_len)` and, wrapped in
//! a whole pack with a `blob_area`-byte blob area, with `directory_of`, which
//! must agree with `decode_directory` on that pack's length.
//!
//! Round trip: a decoded directory re-encodes (with the crate's own entry
//! encoder) to exactly the plaintext, and its entries survive an index file
//! round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::Id;
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::pack::{self, PackEntry};
use reprise_fuzz::{Cursor, DIRECTORY_AAD, ctx, directory_plain, pack_around, pack_tail, seal_fixed};

fn check(plain: &[u8], sealed_len: usize, pack_len: u64, entries: &[PackEntry]) {
    assert_eq!(directory_plain(entries), plain, "directory does not re-encode to its plaintext");
    let blob_end = pack_len.saturating_sub((sealed_len + pack::TRAILER_LEN) as u64);
    for e in entries {
        assert!(e.offset as usize >= pack::HEADER_LEN);
        assert!(e.length as usize >= pack::BLOB_OVERHEAD);
        assert!(e.raw_length <= pack::MAX_BLOB_LEN);
        assert!(u64::from(e.offset) + u64::from(e.length) <= blob_end);
    }
    let idx = IndexFile { supersedes: vec![], packs: vec![IndexedPack { id: Id([1; 32]), length: pack_len, blobs: entries.to_vec() }] };
    assert_eq!(IndexFile::decode_plain(&idx.encode_plain()).as_ref(), Ok(&idx), "directory entries fail an index round trip");
}

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let mut c = Cursor(data);
    let pack_len = c.u64();
    let blob_area = usize::from(c.u16());
    let plain = c.rest();
    let sealed = seal_fixed(ctx.catalog_key(), DIRECTORY_AAD, plain);

    let tail = pack_tail(sealed.len());
    if let Ok(entries) = pack::decode_directory(&sealed, ctx.catalog_key(), pack_len, &tail) {
        check(plain, sealed.len(), pack_len, &entries);
    }

    let whole = pack_around(&sealed, blob_area);
    let via_pack = pack::directory_of(&whole, ctx.catalog_key());
    assert_eq!(via_pack, pack::decode_directory(&sealed, ctx.catalog_key(), whole.len() as u64, &tail));
    if let Ok(entries) = via_pack {
        check(plain, sealed.len(), whole.len() as u64, &entries);
    }

    // A wrong key or AAD never opens it.
    assert!(pack::decode_directory(&sealed, &ctx.pack_key, pack_len, &tail).is_err());
});
