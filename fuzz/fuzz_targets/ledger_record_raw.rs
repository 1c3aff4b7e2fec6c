//! Ledger records as stored (`ledger/<ledger>/records/<n>`), and the site
//! and witness markers: arbitrary bytes through `Record::decode`,
//! `SiteMarker::from_bytes` and `WitnessMarker::check`.
//!
//! Round trip: a record that decodes re-encodes to exactly its bytes (the
//! format leaves no room for two encodings of one record).
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::ledger::{Record, SiteMarker, WitnessMarker};

fuzz_target!(|data: &[u8]| {
    let _ = SiteMarker::from_bytes(data);
    let _ = WitnessMarker::check(data);
    let Ok(r) = Record::decode(data) else { return };
    assert_eq!(r.encode(), data, "record round trip");
});
