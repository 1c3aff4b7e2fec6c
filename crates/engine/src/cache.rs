//! The files cache: what each source file looked like at the last backup.
//!
//! A file whose size, mtime, ctime and inode match its entry is not read
//! again; its chunk list is reused (after checking every chunk is still in
//! the index). The cache lives on the backed-up host, keyed by repository
//! and component, because a write-only host cannot read its previous
//! snapshot back — this is what lets it skip unchanged files anyway. It is
//! derived data: a missing or damaged cache only costs a full read.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use reprise_format::Id;
use reprise_format::tree::{Node, NodeKind};

use crate::error::Result;
use crate::index::MasterIndex;
use crate::repository::Repository;

/// The cache file: zstd over `magic || entries`, each entry
/// `key (16) || size u64 || mtime i64 || ctime i64 || inode u64 || n u32 ||
/// n × chunk ID (32)`, little-endian, read and written as a stream so that a
/// million entries never sit in memory twice. (Version 1 was one CBOR
/// document keyed by path.) A file that does not parse is ignored whole.
const CACHE_MAGIC: &[u8; 8] = b"RPRSFC02";

/// An entry's key: the first 16 bytes of the BLAKE3 hash of the file's path.
/// A million paths of ~60 bytes cost 88 bytes each as `Vec<u8>` keys, and
/// the cache is the largest thing a backup of many small files holds (twice:
/// the one read and the one being written); 128 bits make a collision,
/// which would only cost a file being read again anyway, out of reach.
pub type PathKey = [u8; 16];

/// The key of a path's entry.
#[must_use]
pub fn path_key(path: &[u8]) -> PathKey {
    let h = blake3::hash(path);
    let mut k = [0u8; 16];
    k.copy_from_slice(&h.as_bytes()[..16]);
    k
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedFile {
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
    pub inode: u64,
    pub content: Vec<Id>,
}

impl CachedFile {
    #[must_use]
    pub fn of(node: &Node) -> CachedFile {
        CachedFile { size: node.size, mtime_ns: node.mtime_ns, ctime_ns: node.ctime_ns, inode: node.inode, content: node.content.clone() }
    }

    fn matches(&self, node: &Node) -> bool {
        self.size == node.size && self.mtime_ns == node.mtime_ns && self.ctime_ns == node.ctime_ns && self.inode == node.inode
    }
}

#[derive(Debug, Default)]
pub struct FilesCache {
    entries: hashbrown::HashMap<PathKey, CachedFile>,
}

impl FilesCache {
    /// Where the cache of `component` in repository `repo` lives under `dir`.
    #[must_use]
    pub fn path_for(dir: &Path, repo: Id, host: &str, component: &str) -> PathBuf {
        let key = blake3::hash(format!("{host}\0{component}").as_bytes());
        dir.join(repo.to_hex()).join(format!("files-{}", &key.to_hex()[..16]))
    }

    /// Loads a cache file; anything unreadable yields an empty cache.
    #[must_use]
    pub fn load(path: &Path) -> FilesCache {
        let Ok(file) = std::fs::File::open(path) else { return FilesCache::default() };
        match read_entries(file) {
            Ok(entries) => FilesCache { entries },
            Err(e) => {
                tracing::debug!("ignoring the files cache {}: {e}", path.display());
                FilesCache::default()
            }
        }
    }

    pub fn from_snapshot(repo: &Repository, index: &MasterIndex, tree: &Id) -> Result<FilesCache> {
        let mut entries = hashbrown::HashMap::new();
        crate::walk::walk(repo, index, tree, &mut |path, node| {
            if node.kind == NodeKind::File {
                let mut full = b"/".to_vec();
                full.extend_from_slice(path);
                entries.insert(path_key(&full), CachedFile::of(node));
            }
            Ok(crate::walk::Visit::Descend)
        })?;
        Ok(FilesCache { entries })
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The chunk list of `path` if `node` (fresh metadata) matches the
    /// cached entry and every chunk is still indexed.
    #[must_use]
    pub fn lookup(&self, path: &Path, node: &Node, index: &MasterIndex) -> Option<Vec<Id>> {
        let e = self.entries.get(&path_key(path.as_os_str().as_bytes()))?;
        if !e.matches(node) || (e.content.is_empty() && e.size > 0) {
            return None;
        }
        e.content.iter().all(|id| index.contains(id)).then(|| e.content.clone())
    }

    /// Atomically replaces the cache file with `entries`.
    pub fn save(path: &Path, entries: Vec<(PathKey, CachedFile)>) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut z = zstd::Encoder::new(std::io::BufWriter::new(std::fs::File::create(&tmp)?), 3)?;
        z.write_all(CACHE_MAGIC)?;
        for (key, e) in &entries {
            z.write_all(key)?;
            for v in [e.size.to_le_bytes(), e.mtime_ns.to_le_bytes(), e.ctime_ns.to_le_bytes(), e.inode.to_le_bytes()] {
                z.write_all(&v)?;
            }
            z.write_all(&u32::try_from(e.content.len()).map_err(std::io::Error::other)?.to_le_bytes())?;
            for id in &e.content {
                z.write_all(&id.0)?;
            }
        }
        let f = z.finish()?.into_inner().map_err(std::io::IntoInnerError::into_error)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

fn read_entries(file: std::fs::File) -> std::io::Result<hashbrown::HashMap<PathKey, CachedFile>> {
    use std::io::Read;
    let mut z = std::io::BufReader::new(zstd::Decoder::new(file)?);
    let mut magic = [0u8; 8];
    z.read_exact(&mut magic)?;
    if &magic != CACHE_MAGIC {
        return Err(std::io::Error::other("not a version 2 files cache"));
    }
    let mut entries = hashbrown::HashMap::new();
    let mut key = [0u8; 16];
    loop {
        // A clean end of stream falls between entries.
        match z.read(&mut key[..1])? {
            0 => return Ok(entries),
            _ => z.read_exact(&mut key[1..])?,
        }
        let mut fixed = [0u8; 36];
        z.read_exact(&mut fixed)?;
        let word = |i: usize| <[u8; 8]>::try_from(&fixed[i * 8..i * 8 + 8]).expect("8 bytes");
        let n = u32::from_le_bytes(fixed[32..36].try_into().expect("4 bytes")) as usize;
        let mut content = Vec::with_capacity(n.min(1 << 16));
        for _ in 0..n {
            let mut id = [0u8; 32];
            z.read_exact(&mut id)?;
            content.push(Id(id));
        }
        let e = CachedFile {
            size: u64::from_le_bytes(word(0)),
            mtime_ns: i64::from_le_bytes(word(1)),
            ctime_ns: i64::from_le_bytes(word(2)),
            inode: u64::from_le_bytes(word(3)),
            content,
        };
        entries.insert(key, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, chunks: usize) -> (PathKey, CachedFile) {
        (path_key(format!("/srv/docs/{n}.pdf").as_bytes()), CachedFile { size: u64::from(n) * 1000, mtime_ns: -5 + i64::from(n), ctime_ns: 7, inode: 42, content: (0..chunks).map(|i| Id([i as u8; 32])).collect() })
    }

    #[test]
    fn saved_entries_load_back_and_damage_means_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("files-x");
        let entries = vec![entry(1, 0), entry(2, 1), entry(3, 5)];
        FilesCache::save(&path, entries.clone()).unwrap();
        let loaded = FilesCache::load(&path);
        assert_eq!(loaded.len(), 3);
        for (k, e) in &entries {
            assert_eq!(loaded.entries.get(k), Some(e));
        }
        // Truncated: ignored whole (a partial cache would be as good, but
        // a damaged one is not trusted).
        let bytes = std::fs::read(&path).unwrap();
        let plain = zstd::decode_all(bytes.as_slice()).unwrap();
        std::fs::write(&path, zstd::encode_all(&plain[..plain.len() - 3], 3).unwrap()).unwrap();
        assert!(FilesCache::load(&path).is_empty());
        std::fs::write(&path, b"not zstd").unwrap();
        assert!(FilesCache::load(&path).is_empty());
        assert!(FilesCache::load(&dir.path().join("missing")).is_empty());
    }
}
