//! How many reads of packs a restore costs. After an incremental backup, a
//! file whose blocks changed alternates between the first backup's pack
//! and a later one; read in the file's own order, that cost one read (an
//! open, a read and a close on a local disk) for every two or three blocks:
//! 84,211 reads of packs for a 1.5 GB pgbench restore (BENCHMARKS 6).
//! Counted here on a memory backend that counts ranged reads of packs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reprise_engine::backends::{Backend, BackendError, MemoryBackend, ObjectInfo, ObjectKind};
use reprise_engine::backup::{BackupOptions, backup};
use reprise_engine::format::Id;
use reprise_engine::format::chunker::{ChunkPolicy, ChunkerParams};
use reprise_engine::format::keys::KdfParams;
use reprise_engine::restore::{RestoreOptions, restore};
use reprise_engine::source::single_stream;
use reprise_engine::{NoProgress, Progress, Repository};

const BLOCK: usize = 8192;
const STREAM: &str = "relation";

#[derive(Debug)]
struct CountingBackend {
    inner: MemoryBackend,
    pack_reads: AtomicUsize,
}

impl Backend for CountingBackend {
    fn location(&self) -> &str {
        self.inner.location()
    }
    fn prefers_whole_objects(&self) -> bool {
        self.inner.prefers_whole_objects()
    }
    fn prepare(&self) -> Result<(), BackendError> {
        self.inner.prepare()
    }
    fn create(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        self.inner.create(kind, name, bytes)
    }
    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, BackendError> {
        if kind == ObjectKind::Pack {
            self.pack_reads.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.read(kind, name)
    }
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        if kind == ObjectKind::Pack {
            self.pack_reads.fetch_add(1, Ordering::Relaxed);
        }
        self.inner.read_range(kind, name, offset, length)
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, BackendError> {
        self.inner.list(kind)
    }
    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64, BackendError> {
        self.inner.size(kind, name)
    }
    fn remove(&self, kind: ObjectKind, name: &str) -> Result<(), BackendError> {
        self.inner.remove(kind, name)
    }
}

/// Deterministic, incompressible bytes (xorshift).
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

fn back_up(repo: &Arc<Repository>, data: &[u8]) -> Id {
    let mut opts = BackupOptions::new("db", "stdin");
    opts.paths = vec![STREAM.as_bytes().to_vec()];
    opts.threads = 1;
    let progress: Arc<dyn Progress> = Arc::new(NoProgress);
    let source = single_stream(STREAM, Box::new(std::io::Cursor::new(data.to_vec())), ChunkPolicy::Fixed(BLOCK as u32));
    backup(repo, source, &opts, &progress).unwrap().id
}

#[test]
fn restore_of_a_file_alternating_between_two_packs_reads_each_pack_once_not_once_per_block() {
    let backend = Arc::new(CountingBackend { inner: MemoryBackend::new("memory://reads"), pack_reads: AtomicUsize::new(0) });
    let fast = KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    let repo = Arc::new(Repository::init(Arc::clone(&backend) as Arc<dyn Backend>, b"reads", fast, ChunkerParams::default()).unwrap());
    // 128 blocks; then every other block rewritten, as pgbench's updates
    // leave a relation file: the second snapshot's blocks alternate between
    // the first backup's pack and the second's.
    let blocks = 128;
    let first = bytes(1, blocks * BLOCK);
    back_up(&repo, &first);
    let mut second = first.clone();
    for b in (0..blocks).step_by(2) {
        second[b * BLOCK..(b + 1) * BLOCK].copy_from_slice(&bytes(1000 + b as u64, BLOCK));
    }
    let id = back_up(&repo, &second);

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    backend.pack_reads.store(0, Ordering::Relaxed);
    let out = restore(&repo, &id, &RestoreOptions::new(&target), &NoProgress).unwrap();
    let reads = backend.pack_reads.load(Ordering::Relaxed);

    assert!(out.damaged.is_empty(), "{:?}", out.damaged);
    assert!(std::fs::read(target.join(STREAM)).unwrap() == second, "the restore differs from the second backup");
    // Two packs of data, plus the snapshot's tree: a handful of reads, where
    // reading in file order took one per block.
    assert!(reads <= 8, "{reads} reads of packs to restore {blocks} blocks stored in two packs");
}
