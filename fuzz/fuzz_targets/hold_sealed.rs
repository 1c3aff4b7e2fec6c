//! Legal-hold objects behind the authentication check: the input is the CBOR
//! plaintext of a hold, sealed under the fixed catalog key (AAD
//! "reprise hold v1"), then read with `hold::open`.
//!
//! Round trip: a hold that opens re-seals (`hold::seal`) and opens equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::hold;
use reprise_fuzz::{ctx, seal_fixed, unsigned};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let object = unsigned(hold::HOLD_MAGIC, &seal_fixed(ctx.catalog_key(), hold::HOLD_AAD, data));
    let Ok(h) = hold::open(&object, ctx.catalog_key()) else { return };
    let again = hold::seal(&h, ctx.catalog_key(), &ctx.signer, &ctx.repository());
    assert_eq!(hold::verify(&again, &ctx.repository()), Ok(ctx.signer.key_id()));
    assert_eq!(hold::open(&again, ctx.catalog_key()).as_ref(), Ok(&h), "hold round trip");
});
