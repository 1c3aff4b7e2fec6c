//! The in-memory index: where every blob of the repository lives.
//!
//! Built from all index files, plus — when asked — the directories of packs
//! that no index file mentions (left by a backup killed between uploading a
//! pack and writing its index). Those are readable with the catalog key
//! alone, so even a write-only host can adopt them and reuse their blobs.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashMap;
use reprise_backends::{ObjectInfo, ObjectKind};
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::pack::{self, PackEntry};
use reprise_format::{BlobKind, Id};

use crate::error::{Error, Result};
use crate::repository::Repository;

/// Where one blob is.
#[derive(Debug, Clone, Copy)]
pub struct BlobLocation {
    pub pack: Id,
    pub entry: PackEntry,
}

#[derive(Clone, Copy)]
struct Slot {
    pack: u32,
    offset: u32,
    length: u32,
    raw_length: u32,
    kind: BlobKind,
}


/// What loading found besides the index itself.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub index_files: Vec<Id>,
    pub damaged_index_files: Vec<(String, String)>,
    /// Packs adopted from their own directories.
    pub adopted: Vec<IndexedPack>,
    /// Packs that are neither indexed nor readable.
    pub unreadable_packs: Vec<(String, String)>,
    /// Every pack in storage, when packs were listed.
    pub stored_packs: Option<Vec<ObjectInfo>>,
}

#[derive(Default)]
pub struct MasterIndex {
    blobs: HashMap<Id, Slot>,
    packs: Vec<(Id, u64)>,
    pack_pos: HashMap<Id, u32>,
    /// Per pack, whether `contains` found a blob in it (only once
    /// [`MasterIndex::track_reuse`] was called): the packs a backup relies
    /// on, which a concurrent prune must not delete under it.
    touched: Box<[AtomicBool]>,
}

impl std::fmt::Debug for MasterIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterIndex").field("blobs", &self.blobs.len()).field("packs", &self.packs.len()).finish_non_exhaustive()
    }
}

impl MasterIndex {
    #[must_use]
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }

    #[must_use]
    pub fn pack_count(&self) -> usize {
        self.packs.len()
    }

    /// Whether the blob is stored; with reuse tracking on, also records
    /// that its pack is relied on.
    #[must_use]
    pub fn contains(&self, id: &Id) -> bool {
        match self.blobs.get(id) {
            Some(slot) => {
                if let Some(t) = self.touched.get(slot.pack as usize) {
                    // Load first: most hits are in packs already recorded,
                    // and a load does not bounce the cache line between workers.
                    if !t.load(Ordering::Relaxed) {
                        t.store(true, Ordering::Relaxed);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Starts recording which packs `contains` finds blobs in.
    pub fn track_reuse(&mut self) {
        self.touched = (0..self.packs.len()).map(|_| AtomicBool::new(false)).collect();
    }

    /// The packs `contains` found blobs in since [`MasterIndex::track_reuse`].
    #[must_use]
    pub fn touched_packs(&self) -> Vec<Id> {
        self.touched.iter().zip(&self.packs).filter(|(t, _)| t.load(Ordering::Relaxed)).map(|(_, (id, _))| *id).collect()
    }

    #[must_use]
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| BlobLocation {
            pack: self.packs[s.pack as usize].0,
            entry: PackEntry { kind: s.kind, id: *id, offset: s.offset, length: s.length, raw_length: s.raw_length },
        })
    }

    /// Packs and their lengths as the index files describe them.
    pub fn packs(&self) -> impl Iterator<Item = (Id, u64)> + '_ {
        self.packs.iter().copied()
    }

    #[must_use]
    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_pos.contains_key(id)
    }

    /// Every blob, with its location.
    pub fn blobs(&self) -> impl Iterator<Item = BlobLocation> + '_ {
        self.blobs.keys().filter_map(|id| self.get(id))
    }

    pub fn add_pack(&mut self, p: &IndexedPack) {
        let pos = *self.pack_pos.entry(p.id).or_insert_with(|| {
            self.packs.push((p.id, p.length));
            (self.packs.len() - 1) as u32
        });
        for e in &p.blobs {
            // First location wins: duplicates (two backups storing the same
            // chunk at once) are equally good copies.
            self.blobs.entry(e.id).or_insert(Slot { pack: pos, offset: e.offset, length: e.length, raw_length: e.raw_length, kind: e.kind });
        }
    }

    /// Loads every index file, then lists the packs and adopts those no
    /// index file mentions (an interrupted backup, a deleted or damaged
    /// index file): their own directories say what they hold. Listing is
    /// cheap next to what any command that needs the index then reads.
    pub fn load(repo: &Repository) -> Result<(MasterIndex, LoadReport)> {
        Self::load_excluding(repo, &HashSet::new())
    }

    /// [`MasterIndex::load`] without the packs in `exclude` (those a prune
    /// has condemned): a blob only they hold counts as absent.
    pub fn load_excluding(repo: &Repository, exclude: &HashSet<Id>) -> Result<(MasterIndex, LoadReport)> {
        let backend = repo.backend();
        let mut report = LoadReport::default();
        let results = read_index_files(repo)?;
        let mut index = MasterIndex::default();
        for (name, r) in results {
            match r {
                Ok(file) => {
                    for p in file.packs.iter().filter(|p| !exclude.contains(&p.id)) {
                        index.add_pack(p);
                    }
                    report.index_files.push(name.parse().expect("parsed above"));
                }
                // Superseded by a prune since it was listed: the replacement
                // (or, if it was listed too late, the packs' own
                // directories) describes the same packs.
                Err(Error::Backend(e)) if e.kind == reprise_backends::ErrorKind::NotFound => {}
                Err(Error::Backend(e)) => return Err(Error::Backend(e)),
                Err(e) => report.damaged_index_files.push((ObjectKind::Index.path(&name), e.to_string())),
            }
        }
        {
            let stored = backend.list(ObjectKind::Pack)?;
            for obj in &stored {
                let Ok(id) = obj.name.parse::<Id>() else { continue };
                if index.has_pack(&id) || exclude.contains(&id) {
                    continue;
                }
                match read_directory(repo, &id, obj.size) {
                    Ok(blobs) => {
                        let p = IndexedPack { id, length: obj.size, blobs };
                        index.add_pack(&p);
                        report.adopted.push(p);
                    }
                    Err(e) => report.unreadable_packs.push((ObjectKind::Pack.path(&obj.name), e.to_string())),
                }
            }
            report.stored_packs = Some(stored);
        }
        Ok((index, report))
    }
}

/// Reads and opens every index file, in parallel (decoding is CPU-bound).
/// Returns each file's name with its content or why it could not be read.
pub(crate) fn read_index_files(repo: &Repository) -> Result<Vec<(String, Result<IndexFile>)>> {
    let names = repo.backend().list(ObjectKind::Index)?;
    let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).min(8);
    Ok(std::thread::scope(|s| {
        let chunks: Vec<_> = names.chunks(names.len().div_ceil(threads).max(1)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || chunk.iter().map(|o| (o.name.clone(), open_index_file(repo, &o.name))).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("index loader panicked")).collect()
    }))
}

fn open_index_file(repo: &Repository, name: &str) -> Result<IndexFile> {
    let id = name.parse::<Id>().map_err(|e| Error::damaged(ObjectKind::Index.path(name), e))?;
    let bytes = repo.read_object(ObjectKind::Index, &id)?;
    IndexFile::open(&bytes, repo.catalog_key()).map_err(|e| Error::damaged(ObjectKind::Index.path(name), e))
}

/// Reads the named index files.
pub(crate) fn read_files(repo: &Repository, ids: &[Id]) -> Result<Vec<(Id, IndexFile)>> {
    ids.iter().map(|id| open_index_file(repo, &id.to_hex()).map(|f| (*id, f))).collect()
}

/// Reads a pack's own directory (two range reads from its tail).
pub fn read_directory(repo: &Repository, pack_id: &Id, size: u64) -> Result<Vec<PackEntry>> {
    let name = pack_id.to_hex();
    let object = ObjectKind::Pack.path(&name);
    let min = (pack::HEADER_LEN + pack::TRAILER_LEN) as u64;
    if size < min {
        return Err(Error::damaged(object, reprise_format::FormatError::Truncated(format!("pack of {size} bytes"))));
    }
    let backend = repo.backend();
    let trailer = backend.read_range(ObjectKind::Pack, &name, size - pack::TRAILER_LEN as u64, pack::TRAILER_LEN as u64)?;
    let dlen = pack::directory_len(&trailer).map_err(|e| Error::damaged(object.clone(), e))? as u64;
    if dlen + min > size {
        return Err(Error::damaged(object, reprise_format::FormatError::Truncated("pack directory".into())));
    }
    let sealed = backend.read_range(ObjectKind::Pack, &name, size - pack::TRAILER_LEN as u64 - dlen, dlen)?;
    pack::decode_directory(&sealed, repo.catalog_key(), size).map_err(|e| Error::damaged(object, e))
}

/// The set of blob IDs in an index, for tests and checks.
#[must_use]
pub fn blob_ids(index: &MasterIndex) -> HashSet<Id> {
    index.blobs.keys().copied().collect()
}
