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

/// The changes from tree `from` to tree `to`, in path order.
pub fn diff(repo: &Repository, index: &MasterIndex, from: &Id, to: &Id) -> Result<Vec<DiffEntry>> {
    let mut out = Vec::new();
    diff_trees(repo, index, Some(from), Some(to), b"", &mut out)?;
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

fn diff_trees(repo: &Repository, index: &MasterIndex, a: Option<&Id>, b: Option<&Id>, prefix: &[u8], out: &mut Vec<DiffEntry>) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = a.map(|id| repo.read_tree(index, id)).transpose()?.unwrap_or_default();
    let tb = b.map(|id| repo.read_tree(index, id)).transpose()?.unwrap_or_default();
    let (mut i, mut j) = (0, 0);
    while i < ta.nodes.len() || j < tb.nodes.len() {
        let na = ta.nodes.get(i);
        let nb = tb.nodes.get(j);
        match (na, nb) {
            (Some(x), Some(y)) if x.name == y.name => {
                let path = join(prefix, &x.name);
                if x.kind != y.kind {
                    all_below(repo, index, x, &path, Change::Removed, out)?;
                    all_below(repo, index, y, &path, Change::Added, out)?;
                } else if x.kind == NodeKind::Dir {
                    if x.mode != y.mode || x.uid != y.uid || x.gid != y.gid {
                        out.push(entry(Change::Metadata, &path, true));
                    }
                    diff_trees(repo, index, x.subtree.as_ref(), y.subtree.as_ref(), &path, out)?;
                } else if x.content != y.content || x.target != y.target || x.size != y.size {
                    out.push(entry(Change::Modified, &path, false));
                } else if x.mode != y.mode || x.uid != y.uid || x.gid != y.gid || x.mtime_ns != y.mtime_ns {
                    out.push(entry(Change::Metadata, &path, false));
                }
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x.name < y.name => {
                all_below(repo, index, x, &join(prefix, &x.name), Change::Removed, out)?;
                i += 1;
            }
            (Some(x), None) => {
                all_below(repo, index, x, &join(prefix, &x.name), Change::Removed, out)?;
                i += 1;
            }
            (_, Some(y)) => {
                all_below(repo, index, y, &join(prefix, &y.name), Change::Added, out)?;
                j += 1;
            }
            (None, None) => unreachable!("loop condition"),
        }
    }
    Ok(())
}
