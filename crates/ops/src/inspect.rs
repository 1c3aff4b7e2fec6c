//! Looking into a repository: `snapshots`, `ls`, `diff`, `stats`.
//!
//! A dashboard and the CLI list the same snapshots, including the damaged
//! ones (a damaged snapshot may be the newest: it is never left out in
//! silence), so the listing and its verdict are decided here.

use reprise_engine::MasterIndex;
use reprise_engine::diff::DiffEntry;
use reprise_engine::format::keys::Domain;
use reprise_engine::format::snapshot::SnapshotHeader;
use reprise_engine::format::tree::Node;
use reprise_engine::stats::RepositoryStats;
use reprise_engine::walk::{self, Visit};
use reprise_engine::{SnapshotInfo, format::Id};

use crate::error::{Category, OpsError, Result};
use crate::workspace::Workspace;
use crate::{Verdict, count, find_snapshot};

/// Which snapshots to list.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    pub component: Option<String>,
    pub host: Option<String>,
}

impl SnapshotFilter {
    fn keeps(&self, h: &SnapshotHeader) -> bool {
        self.component.as_ref().is_none_or(|c| &h.component == c) && self.host.as_ref().is_none_or(|x| &h.host == x)
    }
}

/// A snapshot that cannot be read, and what could still be learnt of it.
#[derive(Debug)]
pub struct DamagedSnapshot {
    pub object: String,
    pub reason: String,
    /// Its header, when it still authenticates (time, host, component).
    pub header: Option<SnapshotHeader>,
}

/// The snapshots, oldest first, the damaged ones, and the ones no trusted
/// key wrote.
#[derive(Debug)]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotInfo>,
    pub damaged: Vec<DamagedSnapshot>,
    /// Why each snapshot object nobody trusted wrote was ignored (it names
    /// the key that signed it): reported, never damage, never listed.
    pub untrusted: Vec<String>,
}

impl Verdict for SnapshotList {
    fn failure(&self) -> Option<OpsError> {
        (!self.damaged.is_empty()).then(|| {
            OpsError::new(
                Category::Damaged,
                format!(
                    "{} cannot be read (listed as DAMAGED): the others are usable by ID; `reprise check` reports all damage, and a copy repository may hold an intact one",
                    count(self.damaged.len(), "snapshot", "snapshots")
                ),
            )
        })
    }
}

pub fn snapshots(ws: &Workspace, filter: &SnapshotFilter) -> Result<SnapshotList> {
    let repo = ws.open(None)?;
    let (all, bad) = repo.snapshots()?;
    let snapshots = all.into_iter().filter(|s| filter.keeps(&s.header)).collect();
    // A snapshot nobody trusted wrote is not damage: it is reported (with
    // the key that signed it) and counts for nothing.
    let (untrusted, bad): (Vec<_>, Vec<_>) = bad.into_iter().partition(|(_, e)| matches!(e, reprise_engine::Error::Untrusted { .. }));
    let untrusted = untrusted.into_iter().map(|(_, e)| e.to_string()).collect();
    // A damaged snapshot is listed too (it may be the newest), unless its
    // header still authenticates and says it is outside the filter.
    let damaged = bad
        .into_iter()
        .map(|(object, e)| {
            let header = repo.damaged_snapshot_header(&object);
            let reason = match e {
                reprise_engine::Error::Damaged { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            DamagedSnapshot { object, reason, header }
        })
        .filter(|d| d.header.as_ref().is_none_or(|h| filter.keeps(h)))
        .collect();
    Ok(SnapshotList { snapshots, damaged, untrusted })
}

/// One entry of a snapshot's tree: its path (bytes, from `/`) and node.
#[derive(Debug)]
pub struct Entry {
    pub path: Vec<u8>,
    pub node: Node,
}

/// The entries of `snapshot` at and below `path` (empty: all), in tree order.
pub fn ls(ws: &Workspace, snapshot: &str, path: &str) -> Result<(SnapshotInfo, Vec<Entry>)> {
    let repo = ws.open(None)?;
    repo.require_full("listing a snapshot's contents")?;
    let snap = find_snapshot(&repo, snapshot, None)?;
    let body = repo.snapshot_body(&snap.id)?;
    let (index, _) = MasterIndex::load(&repo, &snap.domain)?;
    let prefix: Vec<u8> = path.trim_matches('/').as_bytes().to_vec();
    let mut entries = Vec::new();
    walk::walk(&repo, &index, &body.tree, &mut |path, node| {
        let below = |a: &[u8], b: &[u8]| a.len() > b.len() && a.starts_with(b) && a[b.len()] == b'/';
        let inside = prefix.is_empty() || path == prefix.as_slice() || below(path, &prefix);
        let on_way = below(&prefix, path);
        if !inside && !on_way {
            return Ok(Visit::Skip);
        }
        if inside {
            let mut full = Vec::with_capacity(path.len() + 1);
            full.push(b'/');
            full.extend_from_slice(path);
            entries.push(Entry { path: full, node: node.clone() });
        }
        Ok(Visit::Descend)
    })?;
    Ok((snap, entries))
}

/// What changed from one snapshot to another.
#[derive(Debug)]
pub struct Diff {
    pub changes: Vec<DiffEntry>,
    /// The two writers' deduplication domains, when they differ: chunk IDs
    /// cannot be compared across domains, so files were compared by size
    /// and modification time.
    pub domains: Option<(Domain, Domain)>,
}

pub fn diff(ws: &Workspace, from: &str, to: &str) -> Result<Diff> {
    let repo = ws.open(None)?;
    repo.require_full("comparing snapshots")?;
    let a = find_snapshot(&repo, from, None)?;
    let b = find_snapshot(&repo, to, None)?;
    let (index_a, _) = MasterIndex::load(&repo, &a.domain)?;
    let index_b = if b.domain == a.domain { None } else { Some(MasterIndex::load(&repo, &b.domain)?.0) };
    let ta: Id = repo.snapshot_body(&a.id)?.tree;
    let tb: Id = repo.snapshot_body(&b.id)?.tree;
    let changes = reprise_engine::diff::diff(&repo, &index_a, index_b.as_ref().unwrap_or(&index_a), &ta, &tb)?;
    Ok(Diff { changes, domains: index_b.is_some().then_some((a.domain, b.domain)) })
}

pub fn stats(ws: &Workspace) -> Result<RepositoryStats> {
    Ok(reprise_engine::stats::repository_stats(&*ws.open(None)?)?)
}
