//! Directory trees as a backup source.
//!
//! Yields the events the engine expects (see `reprise_engine::source`):
//! depth-first, entries sorted by name, with full POSIX metadata from
//! `lstat` (symlinks are stored, never followed). Several backup paths are
//! merged under one root: `/srv/docs` and `/etc/reprise` become a tree from
//! `/` with `srv` and `etc` as intermediate directories carrying their own
//! metadata, so a restore recreates the whole path.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};

use globset::{GlobSet, GlobSetBuilder};
use reprise_engine::format::chunker::ChunkPolicy;
use reprise_engine::format::tree::{Node, NodeKind};
use reprise_engine::source::{Content, SourceEvent};

/// Why a files source could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{}: {source}: check the path in the plan or on the command line", path.display())]
    Path { path: PathBuf, source: std::io::Error },
    #[error("exclude pattern '{pattern}' is invalid: {message}")]
    Exclude { pattern: String, message: String },
    #[error("nothing to back up: give at least one path")]
    NoPaths,
}

#[derive(Debug, Clone, Default)]
pub struct FilesOptions {
    pub excludes: Vec<String>,
    /// Do not descend into other file systems below each backup path.
    pub one_file_system: bool,
}

/// Glob excludes: a pattern with a `/` matches the absolute path, one
/// without matches the entry's name at any depth.
#[derive(Debug, Clone)]
struct Excludes {
    by_path: GlobSet,
    by_name: GlobSet,
}

impl Excludes {
    fn new(patterns: &[String]) -> Result<Excludes, SourceError> {
        let mut by_path = GlobSetBuilder::new();
        let mut by_name = GlobSetBuilder::new();
        for p in patterns {
            let glob = globset::GlobBuilder::new(p.trim_end_matches('/'))
                .literal_separator(true)
                .build()
                .map_err(|e| SourceError::Exclude { pattern: p.clone(), message: e.kind().to_string() })?;
            if p.contains('/') {
                by_path.add(glob);
            } else {
                by_name.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| SourceError::Exclude { pattern: patterns.join(", "), message: e.to_string() });
        Ok(Excludes { by_path: build(by_path)?, by_name: build(by_name)? })
    }

    fn matches(&self, path: &Path) -> bool {
        self.by_path.is_match(path) || path.file_name().is_some_and(|n| self.by_name.is_match(n))
    }
}

enum Item {
    /// A real entry to `lstat` and emit (recursively for directories).
    Real(PathBuf, Option<u64>),
    /// An intermediate directory leading to backup paths.
    Virtual(PathBuf, Vec<Item>),
}

struct Frame {
    items: std::vec::IntoIter<Item>,
}

/// Iterator of source events over a set of paths.
pub struct FilesSource {
    stack: Vec<Frame>,
    excludes: Excludes,
    one_file_system: bool,
    names: NameCache,
    /// An event to emit before continuing (the error of an unreadable
    /// directory, reported inside it).
    pending: Option<SourceEvent>,
}

impl std::fmt::Debug for FilesSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilesSource").field("depth", &self.stack.len()).finish_non_exhaustive()
    }
}

/// Makes `path` absolute and lexically normal without following symlinks.
fn normalize(path: &Path) -> Result<PathBuf, SourceError> {
    let abs = std::path::absolute(path).map_err(|e| SourceError::Path { path: path.to_owned(), source: e })?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Trie {
    children: BTreeMap<OsString, Trie>,
    is_path: bool,
}

impl FilesSource {
    /// Checks every path exists before anything is read.
    pub fn new(paths: &[PathBuf], opts: &FilesOptions) -> Result<FilesSource, SourceError> {
        if paths.is_empty() {
            return Err(SourceError::NoPaths);
        }
        let mut trie = Trie::default();
        for p in paths {
            let abs = normalize(p)?;
            fs::symlink_metadata(&abs).map_err(|e| SourceError::Path { path: p.clone(), source: e })?;
            let mut t = &mut trie;
            for c in abs.components().skip(1) {
                t = t.children.entry(c.as_os_str().to_owned()).or_default();
            }
            t.is_path = true;
        }
        if trie.is_path {
            // Backing up "/" itself.
            return Self::from_items(vec![], opts, Some(PathBuf::from("/")));
        }
        let items = Self::trie_items(Path::new("/"), trie);
        Self::from_items(items, opts, None)
    }

    fn trie_items(base: &Path, trie: Trie) -> Vec<Item> {
        trie.children
            .into_iter()
            .map(|(name, child)| {
                let path = base.join(&name);
                if child.is_path {
                    Item::Real(path, None)
                } else {
                    let children = Self::trie_items(&path, child);
                    Item::Virtual(path, children)
                }
            })
            .collect()
    }

    fn from_items(items: Vec<Item>, opts: &FilesOptions, whole_root: Option<PathBuf>) -> Result<FilesSource, SourceError> {
        let mut s = FilesSource {
            stack: vec![Frame { items: items.into_iter() }],
            excludes: Excludes::new(&opts.excludes)?,
            one_file_system: opts.one_file_system,
            names: NameCache::default(),
            pending: None,
        };
        if let Some(root) = whole_root {
            // The root's entries become the snapshot root's entries.
            let dev = fs::symlink_metadata(&root).ok().map(|m| m.dev());
            let children = Self::read_children(&root, dev).unwrap_or_default();
            s.stack = vec![Frame { items: children.into_iter() }];
        }
        Ok(s)
    }

    fn read_children(dir: &Path, dev: Option<u64>) -> std::io::Result<Vec<Item>> {
        let mut names: Vec<OsString> = fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<std::io::Result<_>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names.into_iter().map(|n| Item::Real(dir.join(n), dev)).collect())
    }

    fn node(&mut self, path: &Path, md: &Metadata) -> Node {
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            NodeKind::Dir
        } else if ft.is_symlink() {
            NodeKind::Symlink
        } else if ft.is_fifo() {
            NodeKind::Fifo
        } else if ft.is_char_device() {
            NodeKind::Char
        } else if ft.is_block_device() {
            NodeKind::Block
        } else if ft.is_socket() {
            NodeKind::Socket
        } else {
            NodeKind::File
        };
        let name = path.file_name().map(|n| n.as_bytes().to_vec()).unwrap_or_default();
        let mut node = Node::new(name, kind);
        node.mode = md.mode() & 0o7777;
        node.uid = md.uid();
        node.gid = md.gid();
        node.user = self.names.user(md.uid());
        node.group = self.names.group(md.gid());
        node.mtime_ns = md.mtime().saturating_mul(1_000_000_000).saturating_add(md.mtime_nsec());
        node.ctime_ns = md.ctime().saturating_mul(1_000_000_000).saturating_add(md.ctime_nsec());
        node.inode = md.ino();
        node.device = md.dev();
        node.links = md.nlink();
        if kind == NodeKind::File {
            node.size = md.size();
        }
        if matches!(kind, NodeKind::Char | NodeKind::Block) {
            node.rdev = md.rdev();
        }
        node
    }
}

impl Iterator for FilesSource {
    type Item = SourceEvent;

    fn next(&mut self) -> Option<SourceEvent> {
        if let Some(ev) = self.pending.take() {
            return Some(ev);
        }
        loop {
            let depth = self.stack.len();
            let frame = self.stack.last_mut()?;
            let Some(item) = frame.items.next() else {
                self.stack.pop();
                if depth > 1 {
                    return Some(SourceEvent::LeaveDir);
                }
                return None;
            };
            match item {
                Item::Virtual(path, children) => {
                    let node = match fs::symlink_metadata(&path) {
                        Ok(md) => self.node(&path, &md),
                        Err(e) => return Some(SourceEvent::Error { path: path.display().to_string(), message: e.to_string() }),
                    };
                    self.stack.push(Frame { items: children.into_iter() });
                    return Some(SourceEvent::EnterDir(Node { kind: NodeKind::Dir, ..node }));
                }
                Item::Real(path, parent_dev) => {
                    if parent_dev.is_some() && self.excludes.matches(&path) {
                        continue;
                    }
                    let md = match fs::symlink_metadata(&path) {
                        Ok(md) => md,
                        Err(e) => return Some(SourceEvent::Error { path: path.display().to_string(), message: e.to_string() }),
                    };
                    let mut node = self.node(&path, &md);
                    match node.kind {
                        NodeKind::Dir => {
                            let dev = md.dev();
                            let crosses = self.one_file_system && parent_dev.is_some_and(|d| d != dev);
                            let children = if crosses { Ok(Vec::new()) } else { Self::read_children(&path, Some(parent_dev.unwrap_or(dev))) };
                            match children {
                                Ok(c) => self.stack.push(Frame { items: c.into_iter() }),
                                Err(e) => {
                                    // Keep the directory (restored empty) and report why.
                                    self.stack.push(Frame { items: Vec::new().into_iter() });
                                    self.pending = Some(SourceEvent::Error { path: path.display().to_string(), message: e.to_string() });
                                }
                            }
                            return Some(SourceEvent::EnterDir(node));
                        }
                        NodeKind::File => {
                            return Some(SourceEvent::Leaf(node, Some(Content::File { path, policy: ChunkPolicy::ContentDefined, missing_ok: false })));
                        }
                        NodeKind::Symlink => {
                            match fs::read_link(&path) {
                                Ok(t) => node.target = Some(t.into_os_string().into_vec()),
                                Err(e) => return Some(SourceEvent::Error { path: path.display().to_string(), message: e.to_string() }),
                            }
                            return Some(SourceEvent::Leaf(node, None));
                        }
                        _ => return Some(SourceEvent::Leaf(node, None)),
                    }
                }
            }
        }
    }
}

/// User and group names, looked up once per ID.
#[derive(Default)]
struct NameCache {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl NameCache {
    fn user(&mut self, uid: u32) -> String {
        self.users
            .entry(uid)
            .or_insert_with(|| nix::unistd::User::from_uid(uid.into()).ok().flatten().map(|u| u.name).unwrap_or_default())
            .clone()
    }
    fn group(&mut self, gid: u32) -> String {
        self.groups
            .entry(gid)
            .or_insert_with(|| nix::unistd::Group::from_gid(gid.into()).ok().flatten().map(|g| g.name).unwrap_or_default())
            .clone()
    }
}

/// Total bytes and files under `paths`, for progress estimates. Walks
/// metadata only.
#[must_use]
pub fn scan_totals(paths: &[PathBuf], opts: &FilesOptions) -> (u64, u64) {
    let Ok(source) = FilesSource::new(paths, opts) else { return (0, 0) };
    source.fold((0, 0), |(b, f), ev| match ev {
        SourceEvent::Leaf(n, Some(_)) => (b + n.size, f + 1),
        _ => (b, f),
    })
}
