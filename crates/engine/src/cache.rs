//! The files cache: what each source file looked like at the last backup.
//!
//! A file whose size, mtime, ctime and inode match its entry is not read
//! again; its chunk list is reused (after checking every chunk is still in
//! the index). The cache lives on the backed-up host, keyed by repository
//! and component, because a write-only host cannot read its previous
//! snapshot back — this is what lets it skip unchanged files anyway. It is
//! derived data: a missing or damaged cache only costs a full read.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use reprise_format::Id;
use reprise_format::tree::{Node, NodeKind};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::index::MasterIndex;
use crate::repository::Repository;

const CACHE_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    entries: Vec<(serde_bytes::ByteBuf, CachedFile)>,
}

#[derive(Debug, Default)]
pub struct FilesCache {
    entries: HashMap<Vec<u8>, CachedFile>,
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
        let Ok(bytes) = std::fs::read(path) else { return FilesCache::default() };
        let Ok(plain) = zstd::decode_all(bytes.as_slice()) else { return FilesCache::default() };
        match ciborium::from_reader::<CacheFile, _>(plain.as_slice()) {
            Ok(f) if f.version == CACHE_VERSION => FilesCache { entries: f.entries.into_iter().map(|(k, v)| (k.into_vec(), v)).collect() },
            _ => FilesCache::default(),
        }
    }

    /// Builds the cache from a previous snapshot's tree (full-access keys only).
    pub fn from_snapshot(repo: &Repository, index: &MasterIndex, tree: &Id) -> Result<FilesCache> {
        let mut entries = HashMap::new();
        crate::walk::walk(repo, index, tree, &mut |path, node| {
            if node.kind == NodeKind::File {
                let mut full = b"/".to_vec();
                full.extend_from_slice(path);
                entries.insert(full, CachedFile::of(node));
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
        let e = self.entries.get(path.as_os_str().as_bytes())?;
        if !e.matches(node) || (e.content.is_empty() && e.size > 0) {
            return None;
        }
        e.content.iter().all(|id| index.contains(id)).then(|| e.content.clone())
    }

    /// Atomically replaces the cache file with `entries`.
    pub fn save(path: &Path, entries: Vec<(Vec<u8>, CachedFile)>) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = CacheFile { version: CACHE_VERSION, entries: entries.into_iter().map(|(k, v)| (serde_bytes::ByteBuf::from(k), v)).collect() };
        let mut plain = Vec::new();
        ciborium::into_writer(&file, &mut plain).map_err(std::io::Error::other)?;
        let packed = zstd::bulk::compress(&plain, 3)?;
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&packed)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}
