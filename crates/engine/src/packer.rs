//! Turning new blobs into uploaded packs and index files.
//!
//! Each backup worker owns a [`BlobPacker`] (its own pack, its own pack key:
//! no lock on the hot path). Finished packs go through a bounded channel to
//! uploader threads. An uploaded pack is recorded for the next index file;
//! index files are written every [`INDEX_FLUSH_PACKS`] packs and at the end.
//!
//! **Ordering invariant: a pack is durable before an index file names it,
//! and every index file naming a snapshot's blobs is durable before the
//! snapshot is written.** A crash at any point leaves only unreferenced
//! objects, never a reference to something missing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, bounded};
use parking_lot::Mutex;
use reprise_backends::ObjectKind;
use reprise_format::crypto::SymmetricKey;
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::keys::Domain;
use reprise_format::pack::{PackWriter, compress};
use reprise_format::sign::SigningKey;
use reprise_format::{BlobKind, Id};

use crate::error::{Error, Result};
use crate::repository::Repository;

/// Index files are written after this many packs (about 1 GiB of 16 MiB
/// packs), bounding what a crash forces the next backup to re-adopt.
pub const INDEX_FLUSH_PACKS: usize = 64;

struct FinishedPack {
    id: Id,
    bytes: Vec<u8>,
    domain: Domain,
    pack: IndexedPack,
}

/// Shared state of one backup's uploads.
pub struct Uploads {
    repo: Arc<Repository>,
    tx: Option<Sender<FinishedPack>>,
    threads: Vec<JoinHandle<()>>,
    state: Arc<UploadState>,
}

#[derive(Default)]
struct UploadState {
    pending: Mutex<Vec<(Domain, IndexedPack)>>,
    index_files: Mutex<Vec<Id>>,
    error: Mutex<Option<Error>>,
    failed: AtomicBool,
    stored_bytes: AtomicU64,
    packs: AtomicU64,
    written: Mutex<Vec<Id>>,
}

impl UploadState {
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock();
        if slot.is_none() {
            *slot = Some(e);
        }
        self.failed.store(true, Ordering::SeqCst);
    }
}

/// What a finished set of uploads wrote.
#[derive(Debug, Clone, Default)]
pub struct Uploaded {
    pub index_files: Vec<Id>,
    /// Pack bytes written (not counting index files).
    pub stored_bytes: u64,
    pub packs: u64,
    /// The packs uploaded.
    pub pack_ids: Vec<Id>,
}

/// A handle workers use to hand over finished packs.
#[derive(Clone)]
pub struct PackSink {
    tx: Sender<FinishedPack>,
    state: Arc<UploadState>,
}

impl PackSink {
    /// Whether any upload has failed (workers stop early).
    #[must_use]
    pub fn failed(&self) -> bool {
        self.state.failed.load(Ordering::Relaxed)
    }
}

impl Uploads {
    /// Starts `threads` uploaders; at most `queue` finished packs wait
    /// (0: a worker hands its pack straight to a free uploader, which
    /// bounds memory to one pack per worker and per uploader).
    #[must_use]
    pub fn start(repo: Arc<Repository>, threads: usize, queue: usize) -> Uploads {
        let (tx, rx) = bounded::<FinishedPack>(queue);
        let state = Arc::new(UploadState::default());
        let threads = (0..threads.max(1))
            .map(|_| {
                let rx: Receiver<FinishedPack> = rx.clone();
                let state = Arc::clone(&state);
                let repo = Arc::clone(&repo);
                std::thread::spawn(move || {
                    for fp in rx {
                        if state.failed.load(Ordering::Relaxed) {
                            continue; // drain without uploading
                        }
                        let len = fp.bytes.len() as u64;
                        match repo.backend().create(ObjectKind::Pack, &fp.id.to_hex(), &fp.bytes) {
                            Ok(()) => {}
                            // Same name means same bytes: another writer stored it.
                            Err(e) if e.kind == reprise_backends::ErrorKind::AlreadyExists => {}
                            Err(e) => {
                                state.fail(e.into());
                                continue;
                            }
                        }
                        drop(fp.bytes);
                        state.stored_bytes.fetch_add(len, Ordering::Relaxed);
                        state.packs.fetch_add(1, Ordering::Relaxed);
                        state.written.lock().push(fp.id);
                        let batch = {
                            let mut pending = state.pending.lock();
                            pending.push((fp.domain, fp.pack));
                            if pending.len() >= INDEX_FLUSH_PACKS { Some(std::mem::take(&mut *pending)) } else { None }
                        };
                        if let Some(batch) = batch {
                            match write_index(&repo, batch) {
                                Ok(ids) => state.index_files.lock().extend(ids),
                                Err(e) => state.fail(e),
                            }
                        }
                    }
                })
            })
            .collect();
        Uploads { repo, tx: Some(tx), threads, state }
    }

    #[must_use]
    pub fn sink(&self) -> PackSink {
        PackSink { tx: self.tx.clone().expect("uploads running"), state: Arc::clone(&self.state) }
    }

    /// Records packs that need an index entry without uploading anything
    /// (packs adopted from an interrupted backup).
    pub fn record_adopted(&self, packs: Vec<(Domain, IndexedPack)>) {
        self.state.pending.lock().extend(packs);
    }


    /// Waits for every upload, writes the last index file, and returns the
    /// index files written. Fails if any upload failed.
    pub fn finish(mut self) -> Result<Uploaded> {
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            t.join().expect("uploader panicked");
        }
        if let Some(e) = self.state.error.lock().take() {
            return Err(e);
        }
        let rest = std::mem::take(&mut *self.state.pending.lock());
        if !rest.is_empty() {
            let ids = write_index(&self.repo, rest)?;
            self.state.index_files.lock().extend(ids);
        }
        Ok(Uploaded {
            index_files: std::mem::take(&mut *self.state.index_files.lock()),
            stored_bytes: self.state.stored_bytes.load(Ordering::Relaxed),
            packs: self.state.packs.load(Ordering::Relaxed),
            pack_ids: std::mem::take(&mut *self.state.written.lock()),
        })
    }

    /// Stops without writing a final index: used when the backup fails.
    pub fn abandon(mut self) {
        self.state.failed.store(true, Ordering::SeqCst);
        drop(self.tx.take());
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    #[must_use] 
    pub fn take_error(&self) -> Option<Error> {
        self.state.error.lock().take()
    }
}

/// Writes one signed index file per domain among `packs` (a writer's are
/// all in its own domain; a repack's may span several).
fn write_index(repo: &Repository, packs: Vec<(Domain, IndexedPack)>) -> Result<Vec<Id>> {
    let (signer, _) = repo.signer()?;
    let mut by_domain: std::collections::BTreeMap<Domain, Vec<IndexedPack>> = std::collections::BTreeMap::new();
    for (d, p) in packs {
        by_domain.entry(d).or_default().push(p);
    }
    let mut ids = Vec::new();
    for (domain, packs) in by_domain {
        let keys = repo.domain_keys(&domain)?;
        let file = IndexFile { supersedes: Vec::new(), packs };
        ids.push(repo.save_object(ObjectKind::Index, &file.seal(&domain, &keys.catalog_key, &signer, &repo.id()))?);
    }
    Ok(ids)
}

/// One worker's pack under construction, in one domain.
pub struct BlobPacker {
    repo: Arc<Repository>,
    kind: BlobKind,
    target: usize,
    level: i32,
    domain: Domain,
    catalog_key: SymmetricKey,
    signer: SigningKey,
    writer: Option<PackWriter>,
    sink: PackSink,
}

impl BlobPacker {
    /// A packer for the repository key's own domain.
    pub fn new(repo: Arc<Repository>, kind: BlobKind, sink: PackSink, level: i32) -> Result<BlobPacker> {
        let domain = repo.home_domain();
        Self::in_domain(repo, domain, kind, sink, level)
    }

    /// A packer for `domain` (the administrator repacking a writer's blobs).
    pub fn in_domain(repo: Arc<Repository>, domain: Domain, kind: BlobKind, sink: PackSink, level: i32) -> Result<BlobPacker> {
        let (signer, _) = repo.signer()?;
        let catalog_key = repo.domain_keys(&domain)?.catalog_key.clone();
        let target = repo.config().pack_size as usize;
        Ok(BlobPacker { repo, kind, target, level, domain, catalog_key, signer, writer: None, sink })
    }

    /// Compresses, encrypts and appends a blob the caller has claimed as new.
    pub fn add(&mut self, id: Id, raw: &[u8]) -> Result<()> {
        let (compression, payload) = compress(raw, self.level);
        let writer = self.writer.get_or_insert_with(|| PackWriter::new(&self.repo.secrets().recovery_public, self.target));
        writer.add(self.kind, id, raw.len() as u32, compression, &payload);
        if writer.len() >= self.target {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends a blob already compressed (as read by
    /// `Repository::open_blob_stored`): repacking moves blobs without
    /// compressing them again.
    pub fn add_stored(&mut self, id: Id, raw_length: u32, compression: u8, payload: &[u8]) -> Result<()> {
        let writer = self.writer.get_or_insert_with(|| PackWriter::new(&self.repo.secrets().recovery_public, self.target));
        writer.add(self.kind, id, raw_length, compression, payload);
        if writer.len() >= self.target {
            self.flush()?;
        }
        Ok(())
    }

    /// Seals, signs and hands over the current pack, if any.
    pub fn flush(&mut self) -> Result<()> {
        let Some(writer) = self.writer.take() else { return Ok(()) };
        if writer.is_empty() {
            return Ok(());
        }
        let (id, bytes, blobs) = writer.finish(&self.domain, &self.catalog_key, &self.signer, &self.repo.id());
        let pack = IndexedPack { id, length: bytes.len() as u64, blobs };
        // On failure the real cause stays in the shared state, where
        // `Uploads::take_error` finds it.
        if self.sink.tx.send(FinishedPack { id, bytes, domain: self.domain, pack }).is_err() || self.sink.failed() {
            return Err(Error::Interrupted);
        }
        Ok(())
    }
}
