//! `IndexFile::open` on raw bytes with the fixed catalog key: magic, length and
//! authentication checks. The seeds are valid sealed index files.
//! Round trip for anything that opens: seal → open gives it back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::index::IndexFile;
use reprise_fuzz::{DOMAIN, ctx};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let key = ctx.catalog_key();
    let Ok(idx) = IndexFile::open(data, key) else { return };
    assert_eq!(IndexFile::decode_plain(&idx.encode_plain()).as_ref(), Ok(&idx));
    assert_eq!(IndexFile::open(&idx.seal(&DOMAIN, key, &ctx.signer, &ctx.repository()), key).as_ref(), Ok(&idx));
});
