//! Snapshot bodies behind the authentication check: the input is the CBOR
//! plaintext of a body, HPKE-sealed to the fixed recovery public key (info
//! "reprise snapshot body v1") into a snapshot with a valid header, then read
//! with `snapshot::open_body`.
//!
//! Round trip: a body that opens re-seals and opens equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::snapshot;
use reprise_fuzz::{DOMAIN, ctx, snapshot_object};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let sealed_body = ctx.secrets.recovery_public.seal(snapshot::BODY_INFO, data);
    let object = snapshot_object(&ctx.sealed_header, &sealed_body);
    let Ok(b) = snapshot::open_body(&object, ctx.recovery()) else { return };
    let again = snapshot::seal(&ctx.header, &b, &DOMAIN, ctx.catalog_key(), &ctx.secrets.recovery_public, &ctx.signer, &ctx.repository());
    assert_eq!(snapshot::open_body(&again, ctx.recovery()).as_ref(), Ok(&b), "body round trip");
});
