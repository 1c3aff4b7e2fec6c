//! `keys::Secrets::from_recovery_file` and `keys::Secrets::from_key_file`
//! (recovery key file or write credential) on raw bytes (JSON with the secrets
//! in hex).
//!
//! Differential: `from_key_file` accepts every recovery file that
//! `from_recovery_file` accepts, with the same secrets, and what it accepts
//! with a recovery secret `from_recovery_file` accepts too.
//! Round trips: parsed secrets export (`to_recovery_file`, or
//! `to_write_credential` for write-only ones) to files that parse back to the
//! same secrets and export to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reprise_format::keys::{Role, Secrets};
use reprise_fuzz::assert_same_secrets;

fn check_write_credential(s: &Secrets) {
    // A full key issues a writer; a version 2 writer exports itself; a
    // version 1 writer cannot be written again.
    let writer = match s.role() {
        Role::Full => s.new_writer().expect("a full key issues writers"),
        Role::WriteOnly if s.signer().is_some() => s.clone(),
        Role::WriteOnly => return assert!(s.to_write_credential().is_err()),
    };
    let wc = writer.to_write_credential().expect("a version 2 writer");
    let back = Secrets::from_key_file(&wc).expect("exported write credential parses");
    assert_eq!(back.role(), Role::WriteOnly);
    assert_same_secrets(&writer, &back);
    assert_eq!(*back.to_write_credential().expect("again"), *wc, "write credential export is not stable");
    assert!(Secrets::from_recovery_file(&wc).is_err(), "a write credential read as a recovery file");
}

fuzz_target!(|data: &[u8]| {
    let recovery = Secrets::from_recovery_file(data);
    let any = Secrets::from_key_file(data);
    if let Ok(s) = &recovery {
        assert_same_secrets(s, any.as_ref().expect("from_key_file rejects a valid recovery file"));
    }
    if let Ok(s) = &any {
        if s.recovery().is_some() {
            assert_same_secrets(s, recovery.as_ref().expect("from_key_file accepted a full key that from_recovery_file rejects"));
        }
        check_write_credential(s);
    }
    let Ok(s) = recovery else { return };
    assert_eq!(s.role(), Role::Full);
    let rf = s.to_recovery_file().expect("full secrets export");
    let back = Secrets::from_recovery_file(&rf).expect("exported recovery file parses");
    assert_same_secrets(&s, &back);
    assert_eq!(*back.to_recovery_file().expect("export"), *rf, "recovery file export is not stable");
});
