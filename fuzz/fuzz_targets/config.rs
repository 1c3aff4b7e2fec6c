//! `config::RepositoryConfig::from_bytes` on raw bytes (public JSON).
//! Round trip: a config that parses serializes (`to_bytes`) to bytes that parse
//! to an equal config and serialize identically.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::config::RepositoryConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(c) = RepositoryConfig::from_bytes(data) else { return };
    assert!(c.chunker.validate().is_ok());
    let bytes = c.to_bytes();
    let back = RepositoryConfig::from_bytes(&bytes).expect("a serialized config parses");
    assert_eq!(back, c, "config round trip");
    assert_eq!(back.to_bytes(), bytes, "config serialization is not stable");
});
