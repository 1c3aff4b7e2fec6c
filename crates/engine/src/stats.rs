//! Repository and snapshot statistics.

use crate::error::Result;
use crate::index::MasterIndex;
use crate::repository::Repository;
use reprise_format::BlobKind;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepositoryStats {
    pub snapshots: usize,
    pub packs: usize,
    /// Bytes of pack objects in storage.
    pub stored_bytes: u64,
    pub data_blobs: usize,
    pub tree_blobs: usize,
    /// Plaintext bytes of all unique blobs.
    pub unique_bytes: u64,
    /// Sum of every snapshot's content size: what restoring them all writes.
    pub restore_bytes: u64,
    /// `restore_bytes / stored_bytes`: deduplication and compression together.
    pub ratio: f64,
}

/// Statistics of every domain this key reads (a writer: its own).
pub fn repository_stats(repo: &Repository) -> Result<RepositoryStats> {
    let indexes = if repo.recovery("").is_ok() {
        MasterIndex::load_all(repo)?.0.into_values().collect()
    } else {
        vec![MasterIndex::load(repo, &repo.home_domain())?.0]
    };
    let (snapshots, _) = repo.snapshots()?;
    let packs: std::collections::HashMap<reprise_format::Id, u64> = indexes.iter().flat_map(MasterIndex::packs).collect();
    let mut s = RepositoryStats { snapshots: snapshots.len(), packs: packs.len(), ..RepositoryStats::default() };
    s.stored_bytes = packs.values().sum();
    for loc in indexes.iter().flat_map(MasterIndex::blobs) {
        match loc.entry.kind {
            BlobKind::Data => s.data_blobs += 1,
            BlobKind::Tree => s.tree_blobs += 1,
        }
        s.unique_bytes += u64::from(loc.entry.raw_length);
    }
    s.restore_bytes = snapshots.iter().map(|x| x.header.summary.bytes).sum();
    s.ratio = if s.stored_bytes > 0 { s.restore_bytes as f64 / s.stored_bytes as f64 } else { 0.0 };
    Ok(s)
}
