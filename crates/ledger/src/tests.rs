//! The protocol in process: appends chain, racing appenders never lose an
//! acknowledged entry, `verify` names every kind of tampering at the right
//! position, and proofs check (and fail when altered).

use std::sync::Arc;

use proptest::prelude::*;
use reprise_backends::{Backend, MemoryBackend, ObjectKind};
use reprise_engine::Repository;
use reprise_format::chunker::ChunkerParams;
use reprise_format::keys::KdfParams;
use reprise_format::ledger::LedgerId;

use crate::{Entry, FindingKind, Ledger, LedgerKeys, NoteSigner, Operation, Witness, WitnessStatus, check_proof, repository_keys};

/// A repository and a witness, in memory (so that the attacker below can
/// change what write-once storage would not let anyone change).
struct Fixture {
    store: MemoryBackend,
    witness_store: MemoryBackend,
    repo: Repository,
}

impl Fixture {
    fn new() -> Fixture {
        let store = MemoryBackend::new("repo");
        let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
        let repo = Repository::init(Arc::new(store.clone()), b"pass", kdf, ChunkerParams::default()).unwrap();
        let witness_store = MemoryBackend::new("witness");
        Witness::init(Arc::new(witness_store.clone())).unwrap();
        Fixture { store, witness_store, repo }
    }

    fn witness(&self) -> Witness {
        Witness::open(Arc::new(self.witness_store.clone())).unwrap()
    }

    fn ledger(&self) -> Ledger<'_> {
        Ledger::new(&self.repo, repository_keys(&self.repo)).with_witness(self.witness())
    }

    fn record(&self, id: LedgerId, i: u64) -> Vec<u8> {
        self.store.read(ObjectKind::Ledger, &id.record_name(i)).unwrap()
    }

    fn edit(&self, id: LedgerId, i: u64, edit: impl FnOnce(&mut Vec<u8>)) {
        assert!(self.store.tamper(ObjectKind::Ledger, &id.record_name(i), edit));
    }

    fn drop_record(&self, id: LedgerId, i: u64) {
        assert!(self.store.drop_object(ObjectKind::Ledger, &id.record_name(i)));
    }
}

fn note(i: u64) -> Entry {
    Entry::new(Operation::Note).reason(format!("note {i}")).count("i", i)
}

#[test]
fn appends_chain_verify_and_prove() {
    let f = Fixture::new();
    let l = f.ledger();
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
    let auditor = LedgerKeys::verify_only(&[repository_keys(&f.repo).signer_key().unwrap().to_owned()]).unwrap();
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
    assert!(matches!(check_proof(&proof, &LedgerKeys::verify_only(&[stranger.verifier_key()]).unwrap()), Err(crate::Error::Key(_))));
    assert!(matches!(l.proof(None, 12, None), Err(crate::Error::NotFound(_))));
}

#[test]
fn racing_appenders_lose_no_acknowledged_entry() {
    let f = Fixture::new();
    let acknowledged = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for writer in 0..4u64 {
            let (f, acknowledged) = (&f, &acknowledged);
            s.spawn(move || {
                // Each thread is an appender of its own, with no hint.
                let l = f.ledger();
                for i in 0..8 {
                    let receipt = l.append(&note(writer * 100 + i)).unwrap();
                    acknowledged.lock().unwrap().push((receipt.index, writer * 100 + i));
                }
            });
        }
    });
    let l = f.ledger();
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
    FlipFrontierByte,
    Remove,
    SwapWithNext,
    Truncate,
    RewriteFrom,
}

fn tamper_strategy() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        Just(Tamper::FlipEntryByte),
        Just(Tamper::FlipCheckpointByte),
        Just(Tamper::FlipFrontierByte),
        Just(Tamper::Remove),
        Just(Tamper::SwapWithNext),
        Just(Tamper::Truncate),
        Just(Tamper::RewriteFrom),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Any single tampering of a witnessed log is reported as tampering,
    /// of the right kind, at the position it was done.
    #[test]
    fn verify_names_each_tampering_where_it_was_done(n in 3u64..40, pick in any::<prop::sample::Index>(), how in tamper_strategy()) {
        let f = Fixture::new();
        let l = f.ledger();
        for i in 0..n {
            l.append(&note(i)).unwrap();
        }
        let id = l.site().unwrap().unwrap();
        // Positions that leave a successor (swap) or a predecessor.
        let at = pick.index(n as usize - 1) as u64;
        let expected = match how {
            Tamper::FlipEntryByte => {
                f.edit(id, at, |b| b[20] ^= 0x20);
                (FindingKind::Altered, at)
            }
            Tamper::FlipCheckpointByte => {
                // A digit of the size line, past the origin line.
                let e = u32::from_le_bytes(f.record(id, at)[8..12].try_into().unwrap()) as usize;
                f.edit(id, at, |b| b[12 + e + 4 + "reprise-ledger/".len() + 33] ^= 0x01);
                (FindingKind::Altered, at)
            }
            Tamper::FlipFrontierByte => {
                f.edit(id, at, |b| {
                    let last = b.len() - 1;
                    b[last] ^= 0x01;
                });
                (FindingKind::Altered, at)
            }
            Tamper::Remove => {
                f.drop_record(id, at);
                (FindingKind::Removed, at)
            }
            Tamper::SwapWithNext => {
                let (a, b) = (f.record(id, at), f.record(id, at + 1));
                f.edit(id, at, |x| *x = b);
                f.edit(id, at + 1, |x| *x = a);
                (FindingKind::Reordered, at)
            }
            Tamper::Truncate => {
                for i in at + 1..n {
                    f.drop_record(id, i);
                }
                (FindingKind::Truncated, at + 1)
            }
            Tamper::RewriteFrom => {
                // A key holder removes entries from `at` on and appends
                // others: every record is signed, only the witness differs.
                for i in at..n {
                    f.drop_record(id, i);
                }
                let forger = f.ledger();
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
        // Nothing but what was done: every tampering finding covers it.
        prop_assert!(
            findings.iter().filter(|f| f.kind.is_tampering()).all(|f| f.first <= expected.1 + 1 && expected.1 <= f.last + 1),
            "{how:?} at {at} of {n}: findings elsewhere: {findings:#?}"
        );
    }
}

#[test]
fn appending_into_a_hole_is_refused() {
    let f = Fixture::new();
    let l = Ledger::new(&f.repo, repository_keys(&f.repo));
    for i in 0..6 {
        l.append(&note(i)).unwrap();
    }
    let id = l.site().unwrap().unwrap();
    // With no hint, the search for the end probes 0, 2, 6, then bisects
    // 3..6 and lands on 4.
    f.drop_record(id, 4);
    let err = l.append(&note(9)).unwrap_err();
    assert!(matches!(err, crate::Error::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("record 4 is missing but record 5 exists"), "{err}");
    assert!(f.store.size(ObjectKind::Ledger, &id.record_name(4)).is_err(), "nothing was written into the hole");
}

#[test]
fn carry_sends_only_verified_records_and_never_overwrites() {
    let f = Fixture::new();
    let l = Ledger::new(&f.repo, repository_keys(&f.repo));
    for i in 0..5 {
        l.append(&note(i)).unwrap();
    }
    let to = MemoryBackend::new("copy");
    let report = l.carry(&to).unwrap();
    assert_eq!((report.ledgers, report.records_copied), (1, 5), "{report:?}");
    assert!(to.size(ObjectKind::Ledger, "site").is_err(), "the site marker stays home");
    // Damage in the source stops the copy at the damaged record.
    for i in 5..9 {
        l.append(&note(i)).unwrap();
    }
    let id = l.site().unwrap().unwrap();
    f.edit(id, 6, |b| b[20] ^= 0x20);
    let report = l.carry(&to).unwrap();
    assert_eq!(report.records_copied, 1, "{report:?}");
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(to.size(ObjectKind::Ledger, &id.record_name(6)).is_err());
    // A record that differs at the destination is a fork: reported, kept.
    assert!(to.tamper(ObjectKind::Ledger, &id.record_name(5), |b| b[20] ^= 0x20));
    let report = l.carry(&to).unwrap();
    assert_eq!(report.records_copied, 0, "{report:?}");
    assert!(report.problems[0].contains("differs between the two repositories"), "{report:?}");
}

#[test]
fn a_verify_only_key_cannot_append_and_a_stranger_key_trusts_nothing() {
    let f = Fixture::new();
    Ledger::new(&f.repo, repository_keys(&f.repo)).append(&note(0)).unwrap();
    let stranger = NoteSigner::from_seed("reprise-ledger/x", &[7; 32]).unwrap();
    let l = Ledger::new(&f.repo, LedgerKeys::verify_only(&[stranger.verifier_key()]).unwrap());
    assert!(matches!(l.append(&note(1)), Err(crate::Error::Key(_))));
    let report = l.verify().unwrap();
    assert!(report.tampered());
    assert!(report.ledgers[0].findings.iter().any(|f| f.message.contains("not signed by a trusted key")), "{report:#?}");
}
