//! The in-memory index: where every blob of the repository lives.
//!
//! Built from all index files, plus — when asked — the directories of packs
//! that no index file mentions (left by a backup killed between uploading a
//! pack and writing its index). Those are readable with the catalog key
//! alone, so even a write-only host can adopt them and reuse their blobs.

use std::collections::HashSet;

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

    #[must_use]
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
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
        let backend = repo.backend();
        let names = backend.list(ObjectKind::Index)?;
        let mut report = LoadReport::default();
        // Decoding is CPU-bound: spread it over the cores.
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).min(8);
        let results: Vec<(String, Result<IndexFile>)> = std::thread::scope(|s| {
            let chunks: Vec<_> = names.chunks(names.len().div_ceil(threads).max(1)).collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|o| {
                                let r = o.name.parse::<Id>().map_err(|e| Error::damaged(ObjectKind::Index.path(&o.name), e)).and_then(|id| {
                                    let bytes = repo.read_object(ObjectKind::Index, &id)?;
                                    IndexFile::open(&bytes, repo.catalog_key()).map_err(|e| Error::damaged(ObjectKind::Index.path(&o.name), e))
                                });
                                (o.name.clone(), r)
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("index loader panicked")).collect()
        });
        let mut index = MasterIndex::default();
        for (name, r) in results {
            match r {
                Ok(file) => {
                    for p in &file.packs {
                        index.add_pack(p);
                    }
                    report.index_files.push(name.parse().expect("parsed above"));
                }
                Err(Error::Backend(e)) if e.kind != reprise_backends::ErrorKind::NotFound => return Err(Error::Backend(e)),
                Err(e) => report.damaged_index_files.push((ObjectKind::Index.path(&name), e.to_string())),
            }
        }
        {
            let stored = backend.list(ObjectKind::Pack)?;
            for obj in &stored {
                let Ok(id) = obj.name.parse::<Id>() else { continue };
                if index.has_pack(&id) {
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
