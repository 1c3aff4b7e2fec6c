//! Depth-first traversal of a snapshot's trees.

use reprise_format::Id;
use reprise_format::tree::{Node, NodeKind};

use crate::error::{Error, Result};
use crate::index::MasterIndex;
use crate::repository::Repository;

/// What to do after visiting a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// Continue, entering the node if it is a directory.
    Descend,
    /// Continue, without entering this directory.
    Skip,
}

/// Visits every node under `root` in name order. `path` is relative to the
/// root, components joined by `/`. A damaged tree stops the walk with its
/// error; see [`walk_tolerant`] to go on past it.
pub fn walk(repo: &Repository, index: &MasterIndex, root: &Id, visit: &mut dyn FnMut(&[u8], &Node) -> Result<Visit>) -> Result<()> {
    walk_tolerant(repo, index, root, visit, &mut |_, e| Err(e))
}

/// Like [`walk`], but hands damaged trees to `on_damage` (with the path of
/// the directory that cannot be listed) and continues if it returns `Ok`.
pub fn walk_tolerant(
    repo: &Repository,
    index: &MasterIndex,
    root: &Id,
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<Visit>,
    on_damage: &mut dyn FnMut(&[u8], Error) -> Result<()>,
) -> Result<()> {
    let mut path = Vec::new();
    walk_dir(repo, index, root, &mut path, visit, on_damage)
}

fn walk_dir(
    repo: &Repository,
    index: &MasterIndex,
    tree_id: &Id,
    path: &mut Vec<u8>,
    visit: &mut dyn FnMut(&[u8], &Node) -> Result<Visit>,
    on_damage: &mut dyn FnMut(&[u8], Error) -> Result<()>,
) -> Result<()> {
    let tree = match repo.read_tree(index, tree_id) {
        Ok(t) => t,
        Err(e @ (Error::Damaged { .. } | Error::Backend(_))) => return on_damage(path, e),
        Err(e) => return Err(e),
    };
    for node in &tree.nodes {
        let len = path.len();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(&node.name);
        let v = visit(path, node)?;
        if v == Visit::Descend && node.kind == NodeKind::Dir
            && let Some(sub) = &node.subtree {
                walk_dir(repo, index, sub, path, visit, on_damage)?;
            }
        path.truncate(len);
    }
    Ok(())
}

/// Finds the node at `path` (relative, `/`-separated) under `root`.
/// Returns `None` for the empty path (the root itself).
pub fn find(repo: &Repository, index: &MasterIndex, root: &Id, path: &[u8]) -> Result<Option<Node>> {
    let mut tree_id = *root;
    let mut found = None;
    for comp in path.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        let tree = repo.read_tree(index, &tree_id)?;
        let node = tree.nodes.into_iter().find(|n| n.name == comp).ok_or_else(|| Error::PathNotInSnapshot {
            snapshot: String::new(),
            path: String::from_utf8_lossy(path).into_owned(),
        })?;
        if let Some(sub) = node.subtree {
            tree_id = sub;
        }
        found = Some(node);
    }
    Ok(found)
}
