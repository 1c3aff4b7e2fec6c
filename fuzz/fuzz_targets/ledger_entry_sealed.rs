//! Ledger entries behind the authentication check: the input is an entry's
//! CBOR, sealed under the fixed catalog key (AAD "reprise ledger entry v1"),
//! then opened with `ledger::open_entry` and decoded.
//!
//! Round trip: the plaintext comes back exactly (the tree hashes it), and a
//! decoded entry re-encodes to an entry that decodes equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::ledger::{self, EntryRecord};
use reprise_fuzz::{ctx, seal_fixed};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let object = seal_fixed(ctx.catalog_key(), ledger::ENTRY_AAD, data);
    let plain = ledger::open_entry(&object, ctx.catalog_key()).expect("sealed under this key");
    assert_eq!(plain, data, "the hashed bytes are the sealed bytes");
    let Ok(e) = EntryRecord::decode(&plain) else { return };
    assert_eq!(EntryRecord::decode(&e.encode()).as_ref(), Ok(&e), "entry round trip");
});
