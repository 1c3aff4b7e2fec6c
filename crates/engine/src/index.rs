//! The in-memory index of one domain: where every blob of the domain lives.
//!
//! A blob ID means something only in its domain (docs/FORMAT.md 2.3), so an
//! index holds one domain: built from the **trusted** index files of that
//! domain (signed by its writer, or by the administrator), plus — when asked
//! — the packs no index file names (left by a backup killed between
//! uploading a pack and writing its index), once their own signature says
//! they belong to the domain. A blob stored in several packs keeps every
//! location: readers try them in turn until one verifies, so a damaged
//! copy, or a decoy under a blob's ID, never hides a good one.
//!
//! Telling indexed packs from unindexed ones must not cost a read per
//! pack: version 2 index files list their packs' names in clear, so a
//! writer learns which packs other domains claim without being able to
//! read their index files, and reads the tail of only the packs nobody
//! claims.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use hashbrown::HashMap;
use reprise_backends::{ErrorKind, ObjectInfo, ObjectKind};
use reprise_format::index::{self as idx, IndexFile, IndexedPack};
use reprise_format::keys::{Domain, DomainId};
use reprise_format::pack::{self, PackEntry, PackTail};
use reprise_format::sign::ObjectType;
use reprise_format::{BlobKind, Id};

use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::trust::Verdict;

/// Where one copy of a blob is.
#[derive(Debug, Clone, Copy)]
pub struct BlobLocation {
    pub pack: Id,
    pub entry: PackEntry,
    /// The domain whose id key checks the blob.
    pub domain: Domain,
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
    /// Index files and packs ignored because their signer may not have
    /// written them (docs/FORMAT.md 2.5), and why.
    pub untrusted: Vec<(String, String)>,
    /// Packs adopted from their own directories, with their domain.
    pub adopted: Vec<(Domain, IndexedPack)>,
    /// Packs that are neither indexed nor readable.
    pub unreadable_packs: Vec<(String, String)>,
    /// Every pack in storage, when packs were listed.
    pub stored_packs: Option<Vec<ObjectInfo>>,
}

pub struct MasterIndex {
    domain: Domain,
    blobs: HashMap<Id, Slot>,
    /// Further copies of blobs (two backups storing one chunk at once, a
    /// repack in progress, a decoy): tried when the first does not verify.
    extra: HashMap<Id, Vec<Slot>>,
    packs: Vec<(Id, u64)>,
    pack_pos: HashMap<Id, u32>,
    /// Per pack, whether `contains` found a blob in it (only once
    /// [`MasterIndex::track_reuse`] was called): the packs a backup relies
    /// on, which a concurrent prune must not delete under it.
    touched: Box<[AtomicBool]>,
}

impl std::fmt::Debug for MasterIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterIndex").field("domain", &self.domain).field("blobs", &self.blobs.len()).field("packs", &self.packs.len()).finish_non_exhaustive()
    }
}

impl MasterIndex {
    /// An empty index of `domain`.
    #[must_use]
    pub fn new(domain: Domain) -> MasterIndex {
        MasterIndex { domain, blobs: HashMap::new(), extra: HashMap::new(), packs: Vec::new(), pack_pos: HashMap::new(), touched: Box::default() }
    }

    #[must_use]
    pub fn domain(&self) -> Domain {
        self.domain
    }

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

    fn location(&self, id: &Id, s: &Slot) -> BlobLocation {
        BlobLocation {
            pack: self.packs[s.pack as usize].0,
            entry: PackEntry { kind: s.kind, id: *id, offset: s.offset, length: s.length, raw_length: s.raw_length },
            domain: self.domain,
        }
    }

    /// The first known copy of a blob.
    #[must_use]
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.blobs.get(id).map(|s| self.location(id, s))
    }

    /// Every known copy of a blob, the first one first.
    #[must_use]
    pub fn locations(&self, id: &Id) -> Vec<BlobLocation> {
        let mut out: Vec<BlobLocation> = self.blobs.get(id).map(|s| self.location(id, s)).into_iter().collect();
        if let Some(more) = self.extra.get(id) {
            out.extend(more.iter().map(|s| self.location(id, s)));
        }
        out
    }

    /// Packs and their lengths as the index files describe them.
    pub fn packs(&self) -> impl Iterator<Item = (Id, u64)> + '_ {
        self.packs.iter().copied()
    }

    #[must_use]
    pub fn has_pack(&self, id: &Id) -> bool {
        self.pack_pos.contains_key(id)
    }

    /// Every blob, with its first location.
    pub fn blobs(&self) -> impl Iterator<Item = BlobLocation> + '_ {
        self.blobs.iter().map(|(id, s)| self.location(id, s))
    }

    /// Adds a pack's entries. A pack listed twice (by two index files of
    /// the domain) keeps the entries of both: one file's claim never hides
    /// another's.
    pub fn add_pack(&mut self, p: &IndexedPack) {
        let pos = *self.pack_pos.entry(p.id).or_insert_with(|| {
            self.packs.push((p.id, p.length));
            (self.packs.len() - 1) as u32
        });
        for e in &p.blobs {
            let slot = Slot { pack: pos, offset: e.offset, length: e.length, raw_length: e.raw_length, kind: e.kind };
            let same = |s: &Slot| s.pack == slot.pack && s.offset == slot.offset && s.length == slot.length;
            match self.blobs.entry(e.id) {
                hashbrown::hash_map::Entry::Vacant(v) => {
                    v.insert(slot);
                }
                hashbrown::hash_map::Entry::Occupied(o) if same(o.get()) => {}
                hashbrown::hash_map::Entry::Occupied(_) => {
                    let more = self.extra.entry(e.id).or_default();
                    if !more.iter().any(same) {
                        more.push(slot);
                    }
                }
            }
        }
    }

    /// Loads the index of `domain`: its trusted index files, then the
    /// packs of the domain no index file names (their own directories say
    /// what they hold, once their signature is checked).
    pub fn load(repo: &Repository, domain: &Domain) -> Result<(MasterIndex, LoadReport)> {
        Self::load_excluding(repo, domain, &HashSet::new())
    }

    /// [`MasterIndex::load`] without the packs in `exclude` (those a prune
    /// has condemned): a blob only they hold counts as absent.
    pub fn load_excluding(repo: &Repository, domain: &Domain, exclude: &HashSet<Id>) -> Result<(MasterIndex, LoadReport)> {
        let scan = Scan::run(repo, Some(*domain))?;
        let mut index = MasterIndex::new(*domain);
        let report = scan.into_report(exclude, |_, p| index.add_pack(p));
        Ok((index, report))
    }

    /// The index of every domain this key can read (full-access keys: all).
    pub fn load_all(repo: &Repository) -> Result<(BTreeMap<Domain, MasterIndex>, LoadReport)> {
        Self::load_all_excluding(repo, &HashSet::new())
    }

    /// [`MasterIndex::load_all`] without the packs in `exclude`.
    pub fn load_all_excluding(repo: &Repository, exclude: &HashSet<Id>) -> Result<(BTreeMap<Domain, MasterIndex>, LoadReport)> {
        let scan = Scan::run(repo, None)?;
        let mut all: BTreeMap<Domain, MasterIndex> = BTreeMap::new();
        let report = scan.into_report(exclude, |d, p| all.entry(d).or_insert_with(|| MasterIndex::new(d)).add_pack(p));
        Ok((all, report))
    }
}

/// One trusted index file, decrypted.
pub(crate) struct IndexRead {
    pub id: Id,
    pub domain: Domain,
    pub file: IndexFile,
}

/// What reading every index file, then the packs nobody indexed, found.
pub(crate) struct Scan {
    pub files: Vec<IndexRead>,
    pub adopted: Vec<(Domain, IndexedPack)>,
    pub stored: Vec<ObjectInfo>,
    pub damaged: Vec<(String, String)>,
    pub untrusted: Vec<(String, String)>,
    pub unreadable_packs: Vec<(String, String)>,
}

/// What one index file said.
enum FileRead {
    Trusted(IndexRead),
    /// Another domain's: only its clear pack names were read.
    Claims(Vec<Id>),
    Untrusted(String, Vec<Id>),
    Damaged(String),
    Gone,
}

impl Scan {
    /// Reads the index files of `want` (`None`: every domain the key can
    /// read), then adopts the unindexed packs of those domains.
    pub(crate) fn run(repo: &Repository, want: Option<Domain>) -> Result<Scan> {
        let names = repo.backend().list(ObjectKind::Index)?;
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get).min(8);
        let reads: Vec<(String, Result<FileRead>)> = std::thread::scope(|s| {
            let chunks: Vec<_> = names.chunks(names.len().div_ceil(threads).max(1)).collect();
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| s.spawn(move || chunk.iter().map(|o| (o.name.clone(), read_index_file(repo, o, want))).collect::<Vec<_>>()))
                .collect();
            handles.into_iter().flat_map(|h| h.join().expect("index loader panicked")).collect()
        });
        let mut scan = Scan { files: Vec::new(), adopted: Vec::new(), stored: Vec::new(), damaged: Vec::new(), untrusted: Vec::new(), unreadable_packs: Vec::new() };
        let mut claimed: HashSet<Id> = HashSet::new();
        for (name, r) in reads {
            match r? {
                FileRead::Trusted(f) => {
                    claimed.extend(f.file.packs.iter().map(|p| p.id));
                    scan.files.push(f);
                }
                FileRead::Claims(packs) => claimed.extend(packs),
                FileRead::Untrusted(reason, packs) => {
                    // A full scan judges every file and counts only trusted
                    // claims; a one-domain reader cannot judge the others'
                    // files, and their claims only spare it tail reads.
                    if want.is_some() {
                        claimed.extend(packs);
                    }
                    scan.untrusted.push((ObjectKind::Index.path(&name), reason));
                }
                FileRead::Damaged(m) => scan.damaged.push((ObjectKind::Index.path(&name), m)),
                FileRead::Gone => {}
            }
        }
        let stored = repo.backend().list(ObjectKind::Pack)?;
        for obj in &stored {
            let Ok(id) = obj.name.parse::<Id>() else { continue };
            if claimed.contains(&id) {
                continue;
            }
            match adopt(repo, &id, obj.size, want) {
                Ok(Adoption::Adopted(domain, p)) => scan.adopted.push((domain, p)),
                Ok(Adoption::Skipped) => {}
                Ok(Adoption::Untrusted(reason)) => scan.untrusted.push((ObjectKind::Pack.path(&obj.name), reason)),
                Err(Error::Backend(e)) if e.kind == ErrorKind::NotFound => {}
                Err(Error::Backend(e)) if e.kind != ErrorKind::Truncated => return Err(Error::Backend(e)),
                Err(e) => scan.unreadable_packs.push((ObjectKind::Pack.path(&obj.name), e.to_string())),
            }
        }
        scan.stored = stored;
        Ok(scan)
    }

    fn into_report(self, exclude: &HashSet<Id>, mut add: impl FnMut(Domain, &IndexedPack)) -> LoadReport {
        let mut report = LoadReport::default();
        for f in &self.files {
            for p in f.file.packs.iter().filter(|p| !exclude.contains(&p.id)) {
                add(f.domain, p);
            }
            report.index_files.push(f.id);
        }
        for (d, p) in &self.adopted {
            if !exclude.contains(&p.id) {
                add(*d, p);
            }
        }
        report.adopted = self.adopted;
        report.damaged_index_files = self.damaged;
        report.untrusted = self.untrusted;
        report.unreadable_packs = self.unreadable_packs;
        report.stored_packs = Some(self.stored);
        report
    }
}

fn read_index_file(repo: &Repository, obj: &ObjectInfo, want: Option<Domain>) -> Result<FileRead> {
    let name = obj.name.as_str();
    let object = ObjectKind::Index.path(name);
    let Ok(id) = name.parse::<Id>() else {
        return Ok(FileRead::Damaged("not an index file name".into()));
    };
    let backend = repo.backend();
    let gone = |e: reprise_backends::BackendError| -> Result<FileRead> {
        match e.kind {
            // Superseded by a prune since it was listed: the replacement
            // (or, if it was listed too late, the packs' own directories)
            // describes the same packs.
            ErrorKind::NotFound => Ok(FileRead::Gone),
            ErrorKind::Truncated => Ok(FileRead::Damaged(e.message)),
            _ => Err(Error::Backend(e)),
        }
    };
    // One domain wanted: look at the start first, and read only the clear
    // pack names of other domains' files.
    if let Some(want) = want {
        let head = match backend.read_range(ObjectKind::Index, name, 0, obj.size.min(idx::PEEK_LEN as u64)) {
            Ok(b) => b,
            Err(e) => return gone(e),
        };
        let peek = match idx::peek(&head) {
            Ok(p) => p,
            Err(e) => return Ok(FileRead::Damaged(e.to_string())),
        };
        let domain = peek.domain.unwrap_or(DomainId::LEGACY);
        if domain != want {
            if peek.domain.is_none() {
                return Ok(FileRead::Claims(Vec::new()));
            }
            let list = match backend.read_range(ObjectKind::Index, name, idx::PEEK_LEN as u64, peek.names_end() as u64 - idx::PEEK_LEN as u64) {
                Ok(b) => b,
                Err(e) => return gone(e),
            };
            return Ok(match idx::pack_names(&list) {
                Ok(p) => FileRead::Claims(p),
                Err(e) => FileRead::Damaged(e.to_string()),
            });
        }
    }
    let bytes = match repo.read_object(ObjectKind::Index, &id) {
        Ok(b) => b,
        Err(Error::Backend(e)) => return gone(e),
        Err(e) => return Ok(FileRead::Damaged(e.to_string())),
    };
    let peek = match idx::peek(&bytes[..bytes.len().min(idx::PEEK_LEN)]) {
        Ok(p) => p,
        Err(e) => return Ok(FileRead::Damaged(e.to_string())),
    };
    let claims = if peek.domain.is_some() { idx::pack_names(bytes.get(idx::PEEK_LEN..peek.names_end()).unwrap_or_default()).unwrap_or_default() } else { Vec::new() };
    let signer = match peek.domain {
        Some(_) => match reprise_format::sign::verify_object(ObjectType::Index, &repo.id(), &bytes) {
            Ok((s, _)) => Some(s),
            Err(e) => return Ok(FileRead::Untrusted(format!("{e} (claimed signer: {})", repo.trust().describe(reprise_format::sign::signer_of(&bytes).ok().as_ref())), claims)),
        },
        None => None,
    };
    let domain = match repo.trust().judge(ObjectKind::Index, name, signer.as_ref(), peek.domain) {
        Verdict::Trusted { domain, .. } => domain,
        Verdict::Untrusted { reason } => return Ok(FileRead::Untrusted(reason, claims)),
    };
    if want.is_some_and(|w| w != domain) {
        return Ok(FileRead::Claims(claims));
    }
    let Ok(keys) = repo.domain_keys(&domain) else {
        // A writer's view of another domain: it reads nothing of it.
        return Ok(FileRead::Claims(claims));
    };
    match IndexFile::open(&bytes, &keys.catalog_key) {
        Ok(file) => Ok(FileRead::Trusted(IndexRead { id, domain, file })),
        Err(e) => {
            let _ = object;
            Ok(FileRead::Damaged(e.to_string()))
        }
    }
}

enum Adoption {
    Adopted(Domain, IndexedPack),
    /// Another domain's, or one this key cannot read.
    Skipped,
    Untrusted(String),
}

/// Looks at a pack no index file names: its tail says its domain and
/// signer; a pack of a wanted domain whose signer may write there is read
/// whole, its signature checked, and its directory taken.
fn adopt(repo: &Repository, id: &Id, size: u64, want: Option<Domain>) -> Result<Adoption> {
    let name = id.to_hex();
    let object = ObjectKind::Pack.path(&name);
    let backend = repo.backend();
    let n = PackTail::read_len(size);
    let tail_bytes = backend.read_range(ObjectKind::Pack, &name, size - n, n)?;
    let tail = PackTail::parse(&tail_bytes).map_err(|e| Error::damaged(&object, e))?;
    let domain = tail.domain.unwrap_or(DomainId::LEGACY);
    if want.is_some_and(|w| w != domain) {
        return Ok(Adoption::Skipped);
    }
    // Judged first on the signer the tail names, so that a pack nobody may
    // have written costs no whole read.
    if let Verdict::Untrusted { reason } = repo.trust().judge(ObjectKind::Pack, &name, tail.signer.as_ref(), tail.domain) {
        return Ok(Adoption::Untrusted(reason));
    }
    let Ok(keys) = repo.domain_keys(&domain) else { return Ok(Adoption::Skipped) };
    let blobs = if tail.domain.is_none() {
        read_directory_v1(repo, id, size, &tail, &keys.catalog_key)?
    } else {
        let bytes = repo.read_object(ObjectKind::Pack, id)?;
        match pack::verify(&bytes, &repo.id()) {
            Ok((d, s)) if Some(d) == tail.domain && Some(s) == tail.signer => {}
            Ok(_) => return Err(Error::damaged(&object, reprise_format::FormatError::Malformed("its tail changed while it was read".into()))),
            Err(e) => return Ok(Adoption::Untrusted(format!("{e} (claimed signer: {})", repo.trust().describe(tail.signer.as_ref())))),
        }
        pack::directory_of(&bytes, &keys.catalog_key).map_err(|e| Error::damaged(&object, e))?
    };
    Ok(Adoption::Adopted(domain, IndexedPack { id: *id, length: size, blobs }))
}

/// A version 1 pack's directory, from two range reads of its tail (a
/// version 1 pack carries no signature to check).
fn read_directory_v1(repo: &Repository, pack_id: &Id, size: u64, tail: &PackTail, catalog_key: &reprise_format::crypto::SymmetricKey) -> Result<Vec<PackEntry>> {
    let name = pack_id.to_hex();
    let object = ObjectKind::Pack.path(&name);
    let dlen = tail.directory_len as u64;
    if dlen + (pack::HEADER_LEN + tail.trailer_len) as u64 > size {
        return Err(Error::damaged(object, reprise_format::FormatError::Truncated("pack directory".into())));
    }
    let sealed = repo.backend().read_range(ObjectKind::Pack, &name, size - tail.trailer_len as u64 - dlen, dlen)?;
    pack::decode_directory(&sealed, catalog_key, size, tail).map_err(|e| Error::damaged(object, e))
}

/// Reads the named index files (trusted ones of any domain the key reads).
pub(crate) fn read_files(repo: &Repository, ids: &[Id]) -> Result<Vec<IndexRead>> {
    let mut out = Vec::new();
    for id in ids {
        let size = repo.backend().size(ObjectKind::Index, &id.to_hex())?;
        match read_index_file(repo, &ObjectInfo { name: id.to_hex(), size }, None)? {
            FileRead::Trusted(f) => out.push(f),
            FileRead::Untrusted(reason, _) => return Err(Error::Untrusted { object: ObjectKind::Index.path(&id.to_hex()), reason }),
            FileRead::Damaged(m) => return Err(Error::damaged(ObjectKind::Index.path(&id.to_hex()), reprise_format::FormatError::Malformed(m))),
            FileRead::Claims(_) | FileRead::Gone => {}
        }
    }
    Ok(out)
}

/// The set of blob IDs in an index, for tests and checks.
#[must_use]
pub fn blob_ids(index: &MasterIndex) -> HashSet<Id> {
    index.blobs.keys().copied().collect()
}
