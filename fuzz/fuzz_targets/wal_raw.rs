//! `wal::open_header` (fixed catalog key) and `wal::open` (catalog, id and
//! recovery keys) on raw bytes: magic, header length, AES-GCM and HPKE checks.
//! The seeds are valid WAL files. Anything that opens must agree with
//! `open_header`, match its header's size and keyed hash, and survive a
//! `wal::seal` / `wal::open` round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::wal;
use reprise_fuzz::{DOMAIN, ctx};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let (catalog, id_key, recovery) = (ctx.catalog_key(), ctx.id_key(), ctx.recovery());
    let header = wal::open_header(data, catalog);
    if let Ok(h) = &header {
        assert_eq!(h.version, 1);
    }
    let Ok((h, plain)) = wal::open(data, catalog, id_key, recovery) else { return };
    assert_eq!(header.as_ref(), Ok(&h));
    assert_eq!(plain.len() as u64, h.size);
    assert!(h.size <= wal::MAX_WAL_FILE);
    assert_eq!(id_key.blob_id(&plain), h.hash);
    let again = wal::seal(&h, &plain, 1, &DOMAIN, catalog, &ctx.secrets.recovery_public, &ctx.signer, &ctx.repository());
    assert_eq!(wal::open(&again, catalog, id_key, recovery), Ok((h, plain)), "WAL round trip");
});
