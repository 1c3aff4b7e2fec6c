//! `keys::KeyFile::from_bytes` on raw bytes (the JSON envelope), then
//! `KeyFile::open` with the fixed passphrase when the file's Argon2id
//! parameters are as cheap as `KdfParams::insecure_fast()` (larger ones are
//! skipped: they only make the fuzzer slow). The seeds are valid key files
//! sealed with `insecure_fast()` under that passphrase, so mutations of the
//! envelope that keep the sealed box intact reach the secrets parser.
//!
//! Round trips: `to_bytes` → `from_bytes` → `to_bytes` is stable, and secrets
//! that open re-seal (`KeyFile::seal` with `insecure_fast()`) and re-open equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::keys::{KdfParams, KeyFile};
use reprise_fuzz::{PASSPHRASE, assert_same_secrets, labels};

fuzz_target!(|data: &[u8]| {
    let Ok(kf) = KeyFile::from_bytes(data) else { return };
    let bytes = kf.to_bytes();
    let again = KeyFile::from_bytes(&bytes).expect("a serialized key file parses");
    assert_eq!(again.to_bytes(), bytes, "key file serialization is not stable");
    assert_eq!(again.info, kf.info);

    let v: serde_json::Value = serde_json::from_slice(&bytes).expect("key file JSON");
    // A key file without a sealed part (a public record: the `kdf` section
    // is optional since format 2) has nothing to open.
    if v.get("kdf").is_none_or(serde_json::Value::is_null) {
        assert!(kf.open(PASSPHRASE).is_err(), "a key file without a kdf section opened");
        return;
    }
    let param = |name: &str| v["kdf"][name].as_u64().expect("kdf parameter");
    if param("memory_kib") > 1024 || param("iterations") > 2 || param("parallelism") > 4 {
        return;
    }
    let Ok(secrets) = kf.open(PASSPHRASE) else { return };
    // A version 1 write-only key cannot be written again (it cannot sign).
    let Ok(resealed) = KeyFile::seal(&secrets, PASSPHRASE, KdfParams::insecure_fast(), &labels()) else { return };
    let reopened = KeyFile::from_bytes(&resealed.to_bytes()).expect("parses").open(PASSPHRASE).expect("opens");
    assert_same_secrets(&secrets, &reopened);
});
