//! `snapshot::open_header` (fixed catalog key) and `snapshot::open_body`
//! (fixed recovery key) on raw bytes: magic, header length, AES-GCM and HPKE
//! checks. The seeds are valid snapshots. Anything that opens must survive a
//! seal/open round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::snapshot;
use reprise_fuzz::{DOMAIN, ctx};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let header = snapshot::open_header(data, ctx.catalog_key());
    let body = snapshot::open_body(data, ctx.recovery());
    if header.is_err() && body.is_err() {
        return;
    }
    let h = header.unwrap_or_else(|_| ctx.header.clone());
    let b = body.unwrap_or_else(|_| ctx.body.clone());
    assert!(h.version <= snapshot::SNAPSHOT_VERSION);
    let again = snapshot::seal(&h, &b, &DOMAIN, ctx.catalog_key(), &ctx.secrets.recovery_public, &ctx.signer, &ctx.repository());
    assert_eq!(snapshot::open_header(&again, ctx.catalog_key()).as_ref(), Ok(&h));
    assert_eq!(snapshot::open_body(&again, ctx.recovery()).as_ref(), Ok(&b));
});
