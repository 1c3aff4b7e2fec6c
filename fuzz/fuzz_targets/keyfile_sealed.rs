//! Key files behind the passphrase: the input is the secrets JSON inside a key
//! file, sealed (AES-256-GCM, aad "reprise key v1") under the key-encryption
//! key that Argon2id with `KdfParams::insecure_fast()` derives from the fixed
//! passphrase, wrapped in a valid key file envelope, then read with
//! `KeyFile::from_bytes` + `KeyFile::open` (reaching the private secrets parser
//! and its hex / X25519 / key-pair consistency checks).
//!
//! Round trips for secrets that open: re-seal and re-open equal; full-access
//! secrets also survive a recovery key file round trip; write-only ones cannot
//! export one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::keys::{KdfParams, KeyFile, Role, Secrets};
use reprise_fuzz::{PASSPHRASE, assert_same_secrets, ctx, key_file_with_plaintext, labels};

fuzz_target!(|data: &[u8]| {
    let ctx = ctx();
    let kf = KeyFile::from_bytes(&key_file_with_plaintext(ctx, data)).expect("template envelope parses");
    let Ok(secrets) = kf.open(PASSPHRASE) else { return };
    if let Some(sk) = secrets.recovery() {
        assert_eq!(sk.public_key(), secrets.recovery_public, "recovery secret does not match the public key");
    }
    // A version 1 write-only key cannot be written again (it cannot sign).
    let Ok(resealed) = KeyFile::seal(&secrets, PASSPHRASE, KdfParams::insecure_fast(), &labels()) else { return };
    assert_eq!(resealed.info.role, secrets.role());
    let reopened = KeyFile::from_bytes(&resealed.to_bytes()).expect("parses").open(PASSPHRASE).expect("opens");
    assert_same_secrets(&secrets, &reopened);
    match secrets.role() {
        Role::Full => {
            let rf = secrets.to_recovery_file().expect("full secrets export");
            assert_same_secrets(&secrets, &Secrets::from_recovery_file(&rf).expect("exported recovery file parses"));
        }
        Role::WriteOnly => assert!(secrets.to_recovery_file().is_err()),
    }
});
