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

pub fn repository_stats(repo: &Repository) -> Result<RepositoryStats> {
    let (index, _) = MasterIndex::load(repo)?;
    let (snapshots, _) = repo.snapshots()?;
    let mut s = RepositoryStats { snapshots: snapshots.len(), packs: index.pack_count(), ..RepositoryStats::default() };
    s.stored_bytes = index.packs().map(|(_, len)| len).sum();
    for loc in index.blobs() {
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
