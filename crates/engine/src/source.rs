//! What the engine backs up: a stream of entries from a source.
//!
//! A source (a directory tree, standard input, a PostgreSQL data directory)
//! yields [`SourceEvent`]s depth-first, each directory's entries sorted by
//! name. The engine turns content into chunks and directories into tree
//! blobs; the source decides what to read and how to cut it.

use std::io::Read;
use std::path::PathBuf;

use reprise_format::chunker::ChunkPolicy;
use reprise_format::tree::Node;

/// Where a file's content comes from.
pub enum Content {
    /// A file on disk, read by a backup worker. Eligible for the files cache.
    /// With `missing_ok`, a file that vanished before it was read is left
    /// out silently (a database drops files while it is backed up).
    File { path: PathBuf, policy: ChunkPolicy, missing_ok: bool },
    /// A stream, read once (standard input, a pipe from a dump tool).
    Stream { reader: Box<dyn Read + Send>, policy: ChunkPolicy },
    /// Bytes the source produced itself (e.g. a generated label file).
    Bytes { data: Vec<u8>, policy: ChunkPolicy },
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::File { path, .. } => write!(f, "File({})", path.display()),
            Content::Stream { .. } => f.write_str("Stream"),
            Content::Bytes { data, .. } => write!(f, "Bytes({})", data.len()),
        }
    }
}

#[derive(Debug)]
pub enum SourceEvent {
    /// A directory begins; its entries follow until the matching `LeaveDir`.
    /// The node carries the directory's metadata; the engine fills `subtree`.
    EnterDir(Node),
    LeaveDir,
    /// A non-directory entry. Files carry their content; the engine fills
    /// `content` and sets `size` to the bytes actually read.
    Leaf(Node, Option<Content>),
    /// An entry that could not be read; recorded in the snapshot, skipped.
    Error { path: String, message: String },
    /// Asks the engine to signal `done` once everything emitted before has
    /// been read. A database source waits on it before ending its backup
    /// mode: no file may be read after the stop point.
    Barrier(std::sync::mpsc::Sender<()>),
    /// The source cannot go on: the backup fails and no snapshot is written.
    Fatal(String),
    /// A fact to record in the snapshot: in the header (readable with write
    /// secrets) or, if `sealed`, in the body (recovery key only).
    Label { key: String, value: String, sealed: bool },
}

/// Anything that yields source events.
pub trait Source: Iterator<Item = SourceEvent> + Send {}
impl<T: Iterator<Item = SourceEvent> + Send> Source for T {}

/// A source of one file, read from a stream (`backup --stdin`).
#[must_use] 
pub fn single_stream(name: &str, reader: Box<dyn Read + Send>, policy: ChunkPolicy) -> impl Source + use<> {
    let mut node = Node::new(name.as_bytes().to_vec(), reprise_format::tree::NodeKind::File);
    node.mode = 0o600;
    node.uid = nix::unistd::getuid().as_raw();
    node.gid = nix::unistd::getgid().as_raw();
    node.mtime_ns = jiff::Timestamp::now().as_nanosecond() as i64;
    std::iter::once(SourceEvent::Leaf(node, Some(Content::Stream { reader, policy })))
}
