//! `IndexFile::decode_plain` on raw bytes (the binary index format).
//!
//! Round trip: the format has one encoding per value, so a decoded index file
//! re-encodes with `encode_plain` to exactly the input, and sealing it
//! (`seal`, zstd + AES-GCM) then `open`ing it gives the same value back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::index::IndexFile;
use reprise_fuzz::{DOMAIN, ctx};

fuzz_target!(|data: &[u8]| {
    let Ok(idx) = IndexFile::decode_plain(data) else { return };
    assert_eq!(idx.encode_plain(), data, "encode_plain(decode_plain(x)) != x");
    assert_eq!(IndexFile::decode_plain(&idx.encode_plain()).as_ref(), Ok(&idx));
    let ctx = ctx();
    let key = ctx.catalog_key();
    assert_eq!(IndexFile::open(&idx.seal(&DOMAIN, key, &ctx.signer, &ctx.repository()), key).as_ref(), Ok(&idx), "seal/open round trip");
});
