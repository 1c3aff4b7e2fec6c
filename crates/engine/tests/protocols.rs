//! The index, prune and copy protocols, in process, on memory backends:
//! random sequences of backups, forgets, prunes (grace 0: mark and sweep
//! in one run) and copies to a second repository, then every snapshot
//! either repository still lists must restore to exactly the bytes it was
//! taken from, and `check --read-data` must find nothing wrong on either.
//!
//! Written against the engine's public entry points only (backup,
//! retention::forget, prune::prune, copy::{open_destination, plan,
//! execute}, restore, check), so that they survive changes inside it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use reprise_engine::backends::{Backend, MemoryBackend};
use reprise_engine::backup::{BackupOptions, backup};
use reprise_engine::check::{CheckOptions, ReadData, check};
use reprise_engine::copy::{self, CopyOptions, Selection};
use reprise_engine::format::Id;
use reprise_engine::format::chunker::{ChunkPolicy, ChunkerParams};
use reprise_engine::format::keys::KdfParams;
use reprise_engine::prune::{PruneOptions, prune};
use reprise_engine::restore::{RestoreOptions, restore};
use reprise_engine::retention::{Policy, forget};
use reprise_engine::source::single_stream;
use reprise_engine::{CancelToken, NoProgress, Progress, Repository};

const PASSPHRASE: &[u8] = b"protocol test";
const COMPONENT: &str = "db";
const STREAM: &str = "dump.bin";

#[derive(Debug, Clone)]
enum Step {
    /// A stream: a prefix shared by every backup (deduplicated), then
    /// bytes of its own.
    Backup { shared: usize, own: usize, seed: u64 },
    Forget { keep_last: u32 },
    Prune,
    Copy,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..150_000, 1usize..120_000, any::<u64>()).prop_map(|(shared, own, seed)| Step::Backup { shared, own, seed }),
        2 => (1u32..4).prop_map(|keep_last| Step::Forget { keep_last }),
        2 => Just(Step::Prune),
        2 => Just(Step::Copy),
    ]
}

/// Deterministic bytes (xorshift), so that equal seeds give equal streams.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn restored(repo: &Repository, id: &Id) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let out = restore(repo, id, &RestoreOptions::new(&target), &NoProgress).unwrap();
    assert!(out.damaged.is_empty(), "snapshot {} restored with damage: {:?}", id.short(), out.damaged);
    std::fs::read(target.join(STREAM)).unwrap()
}

/// Every snapshot listed restores to its bytes; the data checks clean.
fn verify(repo: &Repository, taken: &HashMap<Id, Vec<u8>>, which: &str) {
    let (snapshots, unreadable) = repo.snapshots().unwrap();
    assert!(unreadable.is_empty(), "{which}: unreadable snapshots {unreadable:?}");
    for s in &snapshots {
        let want = taken.get(&s.id).unwrap_or_else(|| panic!("{which}: snapshot {} was never taken", s.id.short()));
        assert!(restored(repo, &s.id) == *want, "{which}: snapshot {} does not restore to its bytes", s.id.short());
    }
    let report = check(repo, &CheckOptions { read_data: ReadData::All, cancel: CancelToken::new() }, &NoProgress).unwrap();
    assert!(report.ok(), "{which}: check found {:?}", report.problems);
}

fn run(steps: &[Step]) {
    let fast = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let src_backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new("memory://primary"));
    let dst_backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new("memory://copy"));
    let src = Arc::new(Repository::init(Arc::clone(&src_backend), PASSPHRASE, fast, ChunkerParams::default()).unwrap());
    let shared = bytes(7, 150_000);
    let mut taken: HashMap<Id, Vec<u8>> = HashMap::new();
    let progress: Arc<dyn Progress> = Arc::new(NoProgress);
    for s in steps {
        match s {
            Step::Backup { shared: n, own, seed } => {
                let mut data = shared[..*n].to_vec();
                data.extend(bytes(*seed, *own));
                let mut opts = BackupOptions::new(COMPONENT, "stdin");
                opts.paths = vec![STREAM.as_bytes().to_vec()];
                opts.threads = 2;
                let source = single_stream(STREAM, Box::new(std::io::Cursor::new(data.clone())), ChunkPolicy::ContentDefined);
                let outcome = backup(&src, source, &opts, &progress).unwrap();
                taken.insert(outcome.id, data);
            }
            Step::Forget { keep_last } => {
                let policy = Policy { last: Some(*keep_last), ..Policy::default() };
                forget(&src, COMPONENT, &policy, false).unwrap();
            }
            Step::Prune => {
                prune(&src, &PruneOptions { grace: Duration::ZERO, threads: 2, ..PruneOptions::default() }).unwrap();
            }
            Step::Copy => {
                let dest = copy::open_destination(&src, Arc::clone(&dst_backend)).unwrap();
                let plan = copy::plan(&src, &dest, &[Selection { component: COMPONENT.into(), policy: None }]).unwrap();
                let report = copy::execute(&src, dest, plan, &[], &CopyOptions { threads: 2, cancel: CancelToken::new() }, &NoProgress).unwrap();
                assert!(report.damage.is_empty() && report.conflicts.is_empty(), "{report:?}");
            }
        }
        // The index protocol after every step: what the source lists restores.
        verify(&src, &taken, "source");
    }
    if steps.iter().any(|s| matches!(s, Step::Copy)) {
        let copy = Repository::open(dst_backend, PASSPHRASE).unwrap();
        verify(&copy, &taken, "copy");
    }
}

proptest! {
    // Each case runs real backups, prunes and copies: few cases, short
    // sequences, bounded in time.
    #![proptest_config(ProptestConfig { cases: 12, max_shrink_iters: 16, ..ProptestConfig::default() })]

    #[test]
    fn every_kept_snapshot_restores_after_any_backup_forget_prune_copy_sequence(steps in prop::collection::vec(step(), 1..8)) {
        run(&steps);
    }
}

/// The sequence that exercises everything at once, always run.
#[test]
fn backup_forget_prune_copy_then_everything_restores() {
    run(&[
        Step::Backup { shared: 150_000, own: 50_000, seed: 1 },
        Step::Backup { shared: 100_000, own: 80_000, seed: 2 },
        Step::Copy,
        Step::Forget { keep_last: 1 },
        Step::Prune,
        Step::Backup { shared: 150_000, own: 10_000, seed: 3 },
        Step::Copy,
        Step::Prune,
    ]);
}
