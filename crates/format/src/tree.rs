//! Trees: one blob per directory, listing its entries with their metadata.
//!
//! A tree is a CBOR map `{"nodes": [node, ...]}` with nodes sorted by name
//! (byte order) and names unique. File names are CBOR byte strings because
//! POSIX names are bytes, not text. Field names are in `docs/FORMAT.md`.

use serde::{Deserialize, Serialize};

use crate::{FormatError, Id};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
}

/// One directory entry and its source metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    #[serde(with = "serde_bytes")]
    pub name: Vec<u8>,
    #[serde(rename = "type")]
    pub kind: NodeKind,
    /// Permission bits (`st_mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    #[serde(default)]
    pub ctime_ns: i64,
    #[serde(default)]
    pub inode: u64,
    #[serde(default)]
    pub device: u64,
    #[serde(default)]
    pub links: u64,
    /// Content length for files.
    #[serde(default)]
    pub size: u64,
    /// Data blob IDs whose plaintexts, concatenated, are the file's content.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Id>,
    /// Tree blob of a directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtree: Option<Id>,
    /// Target of a symbolic link (bytes).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_bytes")]
    pub target: Option<Vec<u8>>,
    /// Device number for character and block devices.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_zero(v: &u64) -> bool {
    *v == 0
}

mod opt_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    #[allow(clippy::ref_option, reason = "serde's `with` calls this with &Option<T>")]
    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_bytes(b),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Ok(Option::<serde_bytes::ByteBuf>::deserialize(d)?.map(serde_bytes::ByteBuf::into_vec))
    }
}

impl Node {
    /// A node with the given name and kind and empty metadata.
    #[must_use]
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            device: 0,
            links: 0,
            size: 0,
            content: Vec::new(),
            subtree: None,
            target: None,
            rdev: 0,
        }
    }

    #[must_use]
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// Sorts nodes by name; the encoding requires it.
    pub fn sort(&mut self) {
        self.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    }

    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.nodes.windows(2).all(|w| w[0].name < w[1].name), "tree nodes must be sorted and unique");
        let mut out = Vec::with_capacity(64 + self.nodes.len() * 128);
        ciborium::into_writer(self, &mut out).expect("CBOR encodes in memory");
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Tree, FormatError> {
        let t: Tree = ciborium::from_reader(bytes).map_err(|e| FormatError::Malformed(format!("tree: {e}")))?;
        for n in &t.nodes {
            validate_name(&n.name)?;
            match n.kind {
                NodeKind::Dir if n.subtree.is_none() => {
                    return Err(FormatError::Malformed(format!("directory '{}' has no subtree", n.name_lossy())));
                }
                NodeKind::Symlink if n.target.is_none() => {
                    return Err(FormatError::Malformed(format!("symlink '{}' has no target", n.name_lossy())));
                }
                _ => {}
            }
        }
        if !t.nodes.windows(2).all(|w| w[0].name < w[1].name) {
            return Err(FormatError::Malformed("tree nodes are not sorted and unique".into()));
        }
        Ok(t)
    }
}

/// A name must be one path component: restoring must never escape the target.
pub fn validate_name(name: &[u8]) -> Result<(), FormatError> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0) {
        return Err(FormatError::Malformed(format!("invalid file name {:?}", String::from_utf8_lossy(name))));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node() -> impl Strategy<Value = Node> {
        (
            proptest::collection::vec(1u8..=255, 1..20).prop_filter("one component", |n| !n.contains(&b'/') && n != b"." && n != b".."),
            0u8..4,
            any::<u32>(),
            any::<i64>(),
            any::<u64>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..4),
        )
            .prop_map(|(name, k, mode, mtime_ns, size, content)| {
                let kind = [NodeKind::File, NodeKind::Dir, NodeKind::Symlink, NodeKind::Fifo][k as usize];
                let mut n = Node::new(name, kind);
                n.mode = mode & 0o7777;
                n.mtime_ns = mtime_ns;
                n.size = size;
                match kind {
                    NodeKind::File => n.content = content.into_iter().map(Id).collect(),
                    NodeKind::Dir => n.subtree = Some(Id([9; 32])),
                    NodeKind::Symlink => n.target = Some(b"../elsewhere".to_vec()),
                    _ => {}
                }
                n
            })
    }

    proptest! {
        #[test]
        fn tree_round_trip(nodes in proptest::collection::vec(node(), 0..20)) {
            let mut t = Tree { nodes };
            t.sort();
            t.nodes.dedup_by(|a, b| a.name == b.name);
            let bytes = t.encode();
            prop_assert_eq!(Tree::decode(&bytes).unwrap(), t.clone());
            // Encoding is deterministic, which is what makes unchanged directories dedup.
            prop_assert_eq!(bytes, t.encode());
        }
    }

    #[test]
    fn names_that_escape_are_rejected() {
        for bad in [&b".."[..], b"a/b", b"", b"."] {
            let mut n = Node::new(bad.to_vec(), NodeKind::File);
            n.size = 1;
            let t = Tree { nodes: vec![n] };
            let mut bytes = Vec::new();
            ciborium::into_writer(&t, &mut bytes).unwrap();
            assert!(Tree::decode(&bytes).is_err(), "{bad:?} accepted");
        }
    }
}
