//! Comparing two snapshots.

use reprise_format::Id;
use reprise_format::tree::{Node, NodeKind};

use crate::error::Result;
use crate::index::MasterIndex;
use crate::repository::Repository;
use crate::walk::{self, Visit};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    /// Content (or link target) differs.
    Modified,
    /// Only metadata (mode, owner, times) differs.
    Metadata,
}

impl Change {
    #[must_use]
    pub fn symbol(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DiffEntry {
    pub change: Change,
    /// The path, for display (invalid UTF-8 replaced: see `raw_path`).
    pub path: String,
    /// The path's bytes as stored (file names are bytes, not text).
    #[serde(skip)]
    pub raw_path: Vec<u8>,
    pub dir: bool,
}

fn entry(change: Change, raw_path: &[u8], dir: bool) -> DiffEntry {
    DiffEntry { change, path: String::from_utf8_lossy(raw_path).into_owned(), raw_path: raw_path.to_vec(), dir }
}

/// The changes from tree `from` (read with index `a`) to tree `to` (index
/// `b`), in path order. Blob IDs are keyed per domain: when the two
/// snapshots come from different domains, file contents are compared by
/// size and modification time instead.
pub fn diff(repo: &Repository, a: &MasterIndex, b: &MasterIndex, from: &Id, to: &Id) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    diff_trees(repo, (a, b), Some(from), Some(to), b"", &mut out)?;
    Ok(out)
}

fn join(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(prefix.len() + 1 + name.len());
    p.extend_from_slice(prefix);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

fn all_below(repo: &Repository, index: &MasterIndex, node: &Node, path: &[u8], change: Change, out: &mut Vec<DiffEntry>) -> Result<()> {
    out.push(entry(change, path, node.kind == NodeKind::Dir));
    if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
        walk::walk(repo, index, &sub, &mut |rel, n| {
            out.push(entry(change, &join(path, rel), n.kind == NodeKind::Dir));
            Ok(Visit::Descend)
        })?;
    }
    Ok(())
}

fn diff_trees(repo: &Repository, index: (&MasterIndex, &MasterIndex), a: Option<&Id>, b: Option<&Id>, prefix: &[u8], out: &mut Vec<DiffEntry>) -> Result<()> {
    let same_domain = index.0.domain() == index.1.domain();
    if same_domain && a == b {
        return Ok(());
    }
    let ta = a.map(|id| repo.read_tree(index.0, id)).transpose()?.unwrap_or_default();
    let tb = b.map(|id| repo.read_tree(index.1, id)).transpose()?.unwrap_or_default();
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let na = ta.nodes.get(i);
        let nb = tb.nodes.get(j);
        match (na, nb) {
            (Some(x), Some(y)) if x.name == y.name => {
                let path = join(prefix, &x.name);
                let content_differs = if same_domain { x.content != y.content } else { x.mtime_ns != y.mtime_ns };
                if x.kind != y.kind {
                    all_below(repo, index.0, x, &path, Change::Removed, out)?;
                    all_below(repo, index.1, y, &path, Change::Added, out)?;
                } else if x.kind == NodeKind::Dir {
                    if x.mode != y.mode || x.uid != y.uid || x.gid != y.gid {
                        out.push(entry(Change::Metadata, &path, true));
                    }
                    diff_trees(repo, index, x.subtree.as_ref(), y.subtree.as_ref(), &path, out)?;
                } else if content_differs || x.target != y.target || x.size != y.size {
                    out.push(entry(Change::Modified, &path, false));
                } else if x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.mtime_ns != y.mtime_ns {
                    out.push(entry(Change::Metadata, &path, false));
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.name < y.name => {
                all_below(repo, index.0, x, &join(prefix, &x.name), Change::Removed, out)?;
                i += 1;
            }
            (Some(x), None) => {
                all_below(repo, index.0, x, &join(prefix, &x.name), Change::Removed, out)?;
                i += 1;
            }
            (_, Some(y)) => {
                all_below(repo, index.1, y, &join(prefix, &y.name), Change::Added, out)?;
                j += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
    Ok(())
}
