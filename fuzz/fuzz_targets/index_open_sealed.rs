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
use reprise_fuzz::{ctx, seal_fixed};

fuzz_target!(|data: &[u8]| {
    let key = ctx().catalog_key();
    let (mode, rest) = data.split_first().map_or((0, &[][..]), |(m, r)| (*m, r));
    let packed = if mode & 1 == 0 { zstd::bulk::compress(rest, 1).expect("zstd compresses in memory") } else { rest.to_vec() };
    let mut object = INDEX_MAGIC.to_vec();
    object.extend_from_slice(&seal_fixed(key, INDEX_MAGIC, &packed));
    let opened = IndexFile::open(&object, key);
    if mode & 1 == 0 {
        assert_eq!(opened, IndexFile::decode_plain(rest), "open disagrees with decode_plain");
    }
    let Ok(idx) = opened else { return };
    assert_eq!(IndexFile::decode_plain(&idx.encode_plain()).as_ref(), Ok(&idx));
    assert_eq!(IndexFile::open(&idx.seal(key), key).as_ref(), Ok(&idx));
});
