//! The protocol in process: appends chain, racing appenders never lose an
//! acknowledged entry, `verify` names every kind of tampering at the right
//! position, and proofs check (and fail when altered).

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use reprise_backends::{Backend, LocalBackend, ObjectKind};
use reprise_engine::Repository;
use reprise_format::chunker::ChunkerParams;
use reprise_format::keys::KdfParams;
use reprise_format::ledger::LedgerId;

use crate::{Entry, FindingKind, Ledger, LedgerKeys, NoteSigner, Operation, Witness, WitnessStatus, check_proof, repository_keys};

fn repo(dir: &Path) -> Repository {
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.join("repo")));
    let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    Repository::init(backend, b"pass", kdf, ChunkerParams::default()).unwrap()
}

fn witness(dir: &Path) -> Witness {
    std::fs::create_dir_all(dir.join("witness")).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(dir.join("witness")));
    Witness::init(Arc::clone(&backend)).unwrap();
    Witness::open(backend).unwrap()
}

fn note(i: u64) -> Entry {
    Entry::new(Operation::Note).reason(format!("note {i}")).count("i", i)
}

fn records(dir: &Path, ledger: LedgerId, i: u64) -> std::path::PathBuf {
    dir.join("repo/ledger").join(ledger.record_name(i))
}

#[test]
fn appends_chain_verify_and_prove() {
    let t = tempfile::tempdir().unwrap();
    let r = repo(t.path());
    let l = Ledger::new(&r, repository_keys(&r)).with_witness(witness(t.path()));
    for i in 0..12 {
        let receipt = l.append(&note(i)).unwrap();
        assert_eq!((receipt.index, receipt.tree_size), (i, i + 1));
        assert_eq!(receipt.witness, WitnessStatus::Witnessed);
    }
    let report = l.verify().unwrap();
    assert!(!report.tampered(), "{report:#?}");
    let v = &report.ledgers[0];
    assert_eq!((v.size, v.signatures, v.witnessed, v.witnessed_size), (12, 12, 12, Some(12)));
    assert!(v.findings.is_empty(), "{:#?}", v.findings);

    let (entries, unreadable) = l.entries(l.site().unwrap().unwrap(), 5).unwrap();
    assert!(unreadable.is_empty());
    assert_eq!(entries.iter().map(|e| e.reason.clone().unwrap()).collect::<Vec<_>>(), (5..12).map(|i| format!("note {i}")).collect::<Vec<_>>());

    // A proof checks with the signer's key only, with or without a
    // consistency proof; altered, it fails.
    let auditor = LedgerKeys::verify_only(&[repository_keys(&r).signer_key().unwrap().to_owned()]).unwrap();
    let proof = l.proof(None, 4, Some(3)).unwrap();
    let checked = check_proof(&proof, &auditor).unwrap();
    assert_eq!((checked.entry.index, checked.tree_size, checked.consistent_with), (4, 12, Some(3)));
    assert_eq!(checked.entry.reason.as_deref(), Some("note 4"));
    let mut other = proof.clone();
    other.index = 5;
    assert!(check_proof(&other, &auditor).is_err());
    let mut other = l.proof(None, 5, None).unwrap();
    other.entry = proof.entry.clone();
    assert!(check_proof(&other, &auditor).is_err(), "entry 4 passed off with entry 5's path");
    let stranger = NoteSigner::from_seed("reprise-ledger/x", &[7; 32]).unwrap();
    assert!(check_proof(&proof, &LedgerKeys::verify_only(&[stranger.verifier_key()]).unwrap()).is_err());
    assert!(matches!(l.proof(None, 12, None), Err(crate::Error::NotFound(_))));
}

#[test]
fn racing_appenders_lose_no_acknowledged_entry() {
    let t = tempfile::tempdir().unwrap();
    let r = repo(t.path());
    let w = witness(t.path());
    let acknowledged = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for writer in 0..4u64 {
            let (r, w, acknowledged) = (&r, w.clone(), &acknowledged);
            s.spawn(move || {
                // Each thread is an appender of its own, with no hint.
                let l = Ledger::new(r, repository_keys(r)).with_witness(w);
                for i in 0..8 {
                    let receipt = l.append(&note(writer * 100 + i)).unwrap();
                    acknowledged.lock().unwrap().push((receipt.index, writer * 100 + i));
                }
            });
        }
    });
    let l = Ledger::new(&r, repository_keys(&r)).with_witness(w);
    let report = l.verify().unwrap();
    assert!(!report.tampered(), "{report:#?}");
    assert_eq!(report.ledgers.len(), 1, "one site, one ledger");
    let (entries, _) = l.entries(l.site().unwrap().unwrap(), 0).unwrap();
    assert_eq!(entries.len(), 32);
    for (index, i) in acknowledged.into_inner().unwrap() {
        assert_eq!(entries[index as usize].reason.as_deref(), Some(format!("note {i}").as_str()), "acknowledged entry {index}");
    }
}

/// How the property test below damages a log of `n` entries at `at`.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    FlipEntryByte,
    FlipCheckpointByte,
    Remove,
    SwapWithNext,
    Truncate,
    RewriteFrom,
}

fn tamper_strategy() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        Just(Tamper::FlipEntryByte),
        Just(Tamper::FlipCheckpointByte),
        Just(Tamper::Remove),
        Just(Tamper::SwapWithNext),
        Just(Tamper::Truncate),
        Just(Tamper::RewriteFrom),
    ]
}

fn flip(path: &Path, offset: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[offset] ^= 0x20;
    let mut perm = std::fs::metadata(path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false, reason = "the test plays an attacker with write access to the files")]
    perm.set_readonly(false);
    std::fs::set_permissions(path, perm).unwrap();
    std::fs::write(path, b).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any single tampering of a witnessed log is reported as tampering,
    /// of the right kind, at the position it was done.
    #[test]
    fn verify_names_each_tampering_where_it_was_done(n in 3u64..14, pick in any::<prop::sample::Index>(), how in tamper_strategy()) {
        let t = tempfile::tempdir().unwrap();
        let r = repo(t.path());
        let l = Ledger::new(&r, repository_keys(&r)).with_witness(witness(t.path()));
        for i in 0..n {
            l.append(&note(i)).unwrap();
        }
        let id = l.site().unwrap().unwrap();
        // Positions that leave a successor (swap) or a predecessor.
        let at = pick.index(n as usize - 1) as u64;
        let expected = match how {
            Tamper::FlipEntryByte => {
                flip(&records(t.path(), id, at), 20);
                (FindingKind::Altered, at)
            }
            Tamper::FlipCheckpointByte => {
                let bytes = std::fs::read(records(t.path(), id, at)).unwrap();
                let e = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
                // A digit of the size line, past the origin line.
                flip(&records(t.path(), id, at), 12 + e + 4 + "reprise-ledger/".len() + 33);
                (FindingKind::Altered, at)
            }
            Tamper::Remove => {
                std::fs::remove_file(records(t.path(), id, at)).unwrap();
                (FindingKind::Removed, at)
            }
            Tamper::SwapWithNext => {
                let (a, b) = (records(t.path(), id, at), records(t.path(), id, at + 1));
                let tmp = t.path().join("swap");
                std::fs::rename(&a, &tmp).unwrap();
                std::fs::rename(&b, &a).unwrap();
                std::fs::rename(&tmp, &b).unwrap();
                (FindingKind::Reordered, at)
            }
            Tamper::Truncate => {
                for i in at + 1..n {
                    std::fs::remove_file(records(t.path(), id, i)).unwrap();
                }
                (FindingKind::Truncated, at + 1)
            }
            Tamper::RewriteFrom => {
                // A key holder removes entries from `at` on and appends
                // others: every record is signed, only the witness differs.
                for i in at..n {
                    std::fs::remove_file(records(t.path(), id, i)).unwrap();
                }
                let forger = Ledger::new(&r, repository_keys(&r)).with_witness(witness_of(t.path()));
                for i in at..n {
                    let receipt = forger.append(&Entry::new(Operation::Note).reason(format!("forged {i}"))).unwrap();
                    prop_assert!(matches!(receipt.witness, WitnessStatus::Conflict(_)), "{receipt:?}");
                }
                (FindingKind::Forked, at)
            }
        };
        let report = l.verify().unwrap();
        prop_assert!(report.tampered(), "{how:?} at {at} of {n} not seen: {report:#?}");
        let findings = &report.ledgers[0].findings;
        prop_assert!(
            findings.iter().any(|f| f.kind == expected.0 && f.first <= expected.1 && expected.1 <= f.last),
            "{how:?} at {at} of {n}: expected {:?} covering {}, got {findings:#?}", expected.0, expected.1
        );
    }
}

fn witness_of(dir: &Path) -> Witness {
    Witness::open(Arc::new(LocalBackend::new(dir.join("witness")))).unwrap()
}

#[test]
fn appending_into_a_hole_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let r = repo(t.path());
    let l = Ledger::new(&r, repository_keys(&r));
    for i in 0..6 {
        l.append(&note(i)).unwrap();
    }
    let id = l.site().unwrap().unwrap();
    // With no hint, the search for the end probes 0, 2, 6, then bisects
    // 3..6 and lands on 4.
    std::fs::remove_file(records(t.path(), id, 4)).unwrap();
    let err = l.append(&note(9)).unwrap_err();
    assert!(matches!(err, crate::Error::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("record 4 is missing but record 5 exists"), "{err}");
    assert!(!records(t.path(), id, 4).exists(), "nothing was written into the hole");
}

#[test]
fn carry_sends_only_verified_records_and_never_overwrites() {
    let t = tempfile::tempdir().unwrap();
    let r = repo(t.path());
    let l = Ledger::new(&r, repository_keys(&r));
    for i in 0..5 {
        l.append(&note(i)).unwrap();
    }
    let copy = t.path().join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    let to = LocalBackend::new(&copy);
    let report = l.carry(&to).unwrap();
    assert_eq!((report.ledgers, report.records_copied), (1, 5), "{report:?}");
    assert!(to.size(ObjectKind::Ledger, "site").is_err(), "the site marker stays home");
    // Damage in the source stops the copy at the damaged record.
    for i in 5..9 {
        l.append(&note(i)).unwrap();
    }
    let id = l.site().unwrap().unwrap();
    flip(&records(t.path(), id, 6), 20);
    let report = l.carry(&to).unwrap();
    assert_eq!(report.records_copied, 1, "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(to.size(ObjectKind::Ledger, &id.record_name(6)).is_err());
}

#[test]
fn a_verify_only_key_cannot_append_and_a_stranger_key_trusts_nothing() {
    let t = tempfile::tempdir().unwrap();
    let r = repo(t.path());
    Ledger::new(&r, repository_keys(&r)).append(&note(0)).unwrap();
    let stranger = NoteSigner::from_seed("reprise-ledger/x", &[7; 32]).unwrap();
    let l = Ledger::new(&r, LedgerKeys::verify_only(&[stranger.verifier_key()]).unwrap());
    assert!(matches!(l.append(&note(1)), Err(crate::Error::Key(_))));
    let report = l.verify().unwrap();
    assert!(report.tampered());
    assert!(report.ledgers[0].findings.iter().any(|f| f.message.contains("not signed by a trusted key")), "{report:#?}");
}
