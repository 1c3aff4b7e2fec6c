//! Prune marks behind the authentication check: the input is the CBOR
//! plaintext of a mark, sealed under the fixed catalog key (AAD
//! "reprise prune mark v1"), then read with `mark::open`.
//!
//! Round trip: a mark that opens re-seals (`mark::seal`) and opens equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::mark;
use reprise_fuzz::{ctx, seal_fixed, unsigned};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let object = unsigned(mark::MARK_MAGIC, &seal_fixed(ctx.catalog_key(), mark::MARK_AAD, data));
    let Ok(m) = mark::open(&object, ctx.catalog_key()) else { return };
    let again = mark::seal(&m, ctx.catalog_key(), &ctx.signer, &ctx.repository());
    assert_eq!(mark::verify(&again, &ctx.repository()), Ok(ctx.signer.key_id()));
    assert_eq!(mark::open(&again, ctx.catalog_key()).as_ref(), Ok(&m), "prune mark round trip");
});
