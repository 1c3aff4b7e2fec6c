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
        Ledger::new(&self.repo, repository_keys(&self.repo).unwrap()).with_witness(self.witness())
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
    let auditor = LedgerKeys::verify_only(&[repository_keys(&f.repo).unwrap().signer_key().unwrap().to_owned()]).unwrap();
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

/// A backend on which, once armed, competitors append just before the
/// appender under test creates, or asks for the size of, a given record:
/// the races the sequencing must survive, forced rather than hoped for.
struct Racing {
    inner: MemoryBackend,
    /// The record name that fires the competitors, and what they do.
    armed: std::sync::Mutex<Option<(String, Competitors)>>,
}

/// Appends run by other appenders at the chosen moment.
type Competitors = Box<dyn FnOnce() + Send>;

impl Racing {
    fn fire_on(&self, name: &str) {
        let mut armed = self.armed.lock().unwrap();
        if armed.as_ref().is_some_and(|(n, _)| n == name) {
            let (_, competitors) = armed.take().expect("armed");
            drop(armed);
            competitors();
        }
    }

    fn arm(&self, name: String, competitors: impl FnOnce() + Send + 'static) {
        *self.armed.lock().unwrap() = Some((name, Box::new(competitors)));
    }
}

/// Appends `reasons` through another handle on the same storage.
fn competitors(store: &MemoryBackend, reasons: &'static [&'static str]) -> impl FnOnce() + Send + 'static {
    let inner = store.clone();
    move || {
        let other = Repository::open(Arc::new(inner), b"pass").unwrap();
        let l = Ledger::new(&other, repository_keys(&other).unwrap());
        for r in reasons {
            l.append(&Entry::new(Operation::Note).reason(*r)).unwrap();
        }
    }
}

impl std::fmt::Debug for Racing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Racing")
    }
}

impl Backend for Racing {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn prepare(&self) -> Result<(), reprise_backends::BackendError> {
        self.inner.prepare()
    }
    fn create(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<(), reprise_backends::BackendError> {
        self.fire_on(&format!("create {name}"));
        self.inner.create(kind, name, bytes)
    }
    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, reprise_backends::BackendError> {
        self.inner.read(kind, name)
    }
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, reprise_backends::BackendError> {
        self.inner.read_range(kind, name, offset, length)
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<reprise_backends::ObjectInfo>, reprise_backends::BackendError> {
        self.inner.list(kind)
    }
    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64, reprise_backends::BackendError> {
        self.fire_on(&format!("size {name}"));
        self.inner.size(kind, name)
    }
    fn remove(&self, kind: ObjectKind, name: &str) -> Result<(), reprise_backends::BackendError> {
        self.inner.remove(kind, name)
    }
}

fn racing() -> (MemoryBackend, Arc<Racing>, Repository) {
    let store = MemoryBackend::new("repo");
    let racing = Arc::new(Racing { inner: store.clone(), armed: std::sync::Mutex::new(None) });
    let kdf = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let repo = Repository::init(Arc::clone(&racing) as Arc<dyn Backend>, b"pass", kdf, ChunkerParams::default()).unwrap();
    (store, racing, repo)
}

fn reasons(l: &Ledger<'_>) -> Vec<String> {
    l.entries(l.site().unwrap().unwrap(), 0).unwrap().0.into_iter().map(|e| e.reason.unwrap()).collect()
}

/// An appender that loses the race for its position takes the next one:
/// its receipt names where its entry really is, and the winner's entry is
/// intact.
#[test]
fn an_appender_that_loses_the_race_takes_the_next_position() {
    let (store, racing, repo) = racing();
    let l = Ledger::new(&repo, repository_keys(&repo).unwrap());
    assert_eq!(l.append(&note(0)).unwrap().index, 0);
    let id = l.site().unwrap().unwrap();
    racing.arm(format!("create {}", id.record_name(1)), competitors(&store, &["competitor"]));
    let receipt = l.append(&note(1)).unwrap();
    assert_eq!(receipt.index, 2, "the loser moved on: {receipt:?}");
    assert_eq!(reasons(&l), ["note 0", "competitor", "note 1"]);
    assert!(!l.verify().unwrap().tampered());
}

/// Records other appenders create while an appender looks for the end
/// are not a hole (the end's check once refused a healthy log).
#[test]
fn records_created_while_the_end_is_sought_are_not_a_hole() {
    let (store, racing, repo) = racing();
    let l = Ledger::new(&repo, repository_keys(&repo).unwrap());
    for i in 0..4 {
        l.append(&note(i)).unwrap();
    }
    let id = l.site().unwrap().unwrap();
    // With no hint, the search probes 0, 2, 6, bisects to 4 (missing) and
    // checks that 5 is missing too: the competitors write 4 and 5 then.
    racing.arm(format!("size {}", id.record_name(5)), competitors(&store, &["competitor 4", "competitor 5"]));
    let receipt = l.append(&note(6)).unwrap();
    assert_eq!(receipt.index, 6, "{receipt:?}");
    assert_eq!(reasons(&l)[4..], ["competitor 4", "competitor 5", "note 6"]);
    assert!(!l.verify().unwrap().tampered());
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
    let l = Ledger::new(&f.repo, repository_keys(&f.repo).unwrap());
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
    let l = Ledger::new(&f.repo, repository_keys(&f.repo).unwrap());
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
    Ledger::new(&f.repo, repository_keys(&f.repo).unwrap()).append(&note(0)).unwrap();
    let stranger = NoteSigner::from_seed("reprise-ledger/x", &[7; 32]).unwrap();
    let l = Ledger::new(&f.repo, LedgerKeys::verify_only(&[stranger.verifier_key()]).unwrap());
    assert!(matches!(l.append(&note(1)), Err(crate::Error::Key(_))));
    let report = l.verify().unwrap();
    assert!(report.tampered());
    assert!(report.ledgers[0].findings.iter().any(|f| f.message.contains("not signed by a trusted key")), "{report:#?}");
}

/// The bug: every key holds the ledger key (the shared key's), so a
/// compromised production host could append entries of its choosing and
/// nothing told them from the administrator's. Now each append is
/// co-signed by the appending key itself, and `verify` names a writer's
/// entry for what a write-only key cannot do, an entry after the writer's
/// revocation was recorded, and an append co-signed by no key of the
/// repository.
#[test]
fn forged_appends_by_a_writer_are_named() {
    let f = Fixture::new();
    let admin = f.ledger();
    admin.append(&note(0)).unwrap();
    let secrets = f.repo.new_credential().unwrap();
    let (_, writer_id) = f.repo.record_credential(&secrets, "ward host", None).unwrap();
    let host = Repository::open_with_secrets(Arc::new(f.store.clone()), secrets).unwrap();
    let writer = Ledger::new(&host, repository_keys(&host).unwrap());
    // What a production host records: clean.
    writer.append(&Entry::new(Operation::Backup).component("records")).unwrap();
    assert!(!admin.verify().unwrap().tampered());
    // A prune it cannot have run (entry 2); the ledger key alone, without
    // its own co-signature (entry 3).
    writer.append(&Entry::new(Operation::Prune)).unwrap();
    let ledger_key = NoteSigner::from_seed(&format!("reprise-ledger/{}", &host.id().to_hex()[..16]), &ledger_seed(&host)).unwrap();
    let trusted = [ledger_key.verifier_key()];
    let anonymous = LedgerKeys::new(Box::new(ledger_key), &trusted).unwrap();
    Ledger::new(&host, anonymous).append(&note(3)).unwrap();
    // Revoked (entry 4, by the administrator), it goes on appending (5).
    let revoked = reprise_engine::revoke::revoke(&f.repo, &writer_id, "stolen").unwrap();
    admin.append(&Entry::new(Operation::KeyRevoke).reference("key_id", &revoked.key_id)).unwrap();
    writer.append(&Entry::new(Operation::Backup).component("records")).unwrap();

    let report = admin.verify().unwrap();
    let forged: Vec<u64> = report.ledgers[0].findings.iter().filter(|x| x.kind == FindingKind::Forged).map(|x| x.first).collect();
    assert_eq!(forged, [2, 3, 5], "{report:#?}");
    assert!(report.appenders_checked);
    // Nothing else is wrong with the log: only who appended.
    assert!(report.ledgers[0].findings.iter().filter(|x| x.kind.is_tampering()).all(|x| x.kind == FindingKind::Forged), "{report:#?}");
    // A writer cannot judge other appenders (it knows no other writer),
    // and says so rather than calling them forged.
    let by_writer = writer.verify().unwrap();
    assert!(!by_writer.appenders_checked);
    assert!(!by_writer.ledgers[0].findings.iter().any(|x| x.kind == FindingKind::Forged), "{by_writer:#?}");
}

/// The ledger key's seed, as `repository_keys` derives it (docs/FORMAT.md
/// 17.4), for the test's anonymous appender.
fn ledger_seed(repo: &Repository) -> [u8; 32] {
    blake3::derive_key("reprise ledger checkpoint signing key v2", repo.secrets().shared_key().unwrap().as_bytes())
}
