//! Snapshot headers behind the authentication check: the input is the CBOR
//! plaintext of a header, sealed under the fixed catalog key (AAD
//! "reprise snapshot header v1") into a snapshot with a valid body, then read
//! with `snapshot::open_header`.
//!
//! Round trip: a header that opens re-seals (`snapshot::seal`) and opens equal,
//! and its version is one this program supports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::snapshot;
use reprise_fuzz::{DOMAIN, HEADER_AAD, ctx, seal_fixed, snapshot_object};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let object = snapshot_object(&seal_fixed(ctx.catalog_key(), HEADER_AAD, data), &ctx.sealed_body);
    let Ok(h) = snapshot::open_header(&object, ctx.catalog_key()) else { return };
    assert!(h.version <= snapshot::SNAPSHOT_VERSION);
    let again = snapshot::seal(&h, &ctx.body, &DOMAIN, ctx.catalog_key(), &ctx.secrets.recovery_public, &ctx.signer, &ctx.repository());
    assert_eq!(snapshot::open_header(&again, ctx.catalog_key()).as_ref(), Ok(&h), "header round trip");
});
