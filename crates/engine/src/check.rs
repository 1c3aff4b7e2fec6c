//! Verifying a repository.
//!
//! Structure (always): every index file, snapshot and pack is readable and
//! consistent; every snapshot's trees can be walked and every blob they
//! reference is indexed in a pack that exists with the indexed size.
//!
//! Data (`--read-data`, or a subset): every selected pack is read whole,
//! its bytes must hash to its name, its own directory must agree with the
//! index, and every blob in it must decrypt and hash to its ID.
//!
//! Every problem names the object it is about, so that a damaged repository
//! can be repaired object by object.

use std::collections::{BTreeSet, HashMap, HashSet};

use reprise_backends::ObjectKind;
use reprise_format::tree::NodeKind;
use reprise_format::{BlobKind, Id, pack};

use crate::error::{Error, Result};
use crate::index::MasterIndex;
use crate::progress::{CancelToken, Progress};
use crate::repository::Repository;
use crate::walk::{self, Visit};

/// Which packs to read in full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// The `n`-th of `m` groups (1-based), by pack name: running 1/m … m/m
    /// over successive days reads everything once.
    Group { n: u32, m: u32 },
    /// A random fraction of packs, 0 < f ≤ 1.
    Fraction(f64),
}

#[derive(Debug, Clone)]
pub struct CheckOptions {
    pub read_data: ReadData,
    pub cancel: CancelToken,
}

/// One thing found wrong, about one object.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub object: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CheckReport {
    pub problems: Vec<Problem>,
    /// Facts that are not errors (e.g. packs a killed backup left unindexed).
    pub notes: Vec<String>,
    pub snapshots: usize,
    pub index_files: usize,
    pub packs: usize,
    pub blobs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    /// False when the key is write-only: content could not be verified.
    pub content_verified: bool,
}

impl CheckReport {
    #[must_use]
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, object: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { object: object.into(), message: message.into() });
    }
}

fn pack_selected(id: &Id, mode: ReadData) -> bool {
    match mode {
        ReadData::None => false,
        ReadData::All => true,
        ReadData::Group { n, m } => u32::from(id.0[0]) * m / 256 + 1 == n,
        ReadData::Fraction(f) => {
            let r: [u8; 8] = reprise_format::crypto::random();
            (u64::from_le_bytes(r) as f64 / u64::MAX as f64) < f
        }
    }
}

pub fn check(repo: &Repository, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let mut report = CheckReport { content_verified: repo.recovery("").is_ok(), ..CheckReport::default() };
    let (index, load) = MasterIndex::load(repo)?;
    report.index_files = load.index_files.len();
    for (object, message) in load.damaged_index_files {
        report.problem(object, message);
    }
    for (object, message) in load.unreadable_packs {
        report.problem(object, message);
    }
    if !load.adopted.is_empty() {
        report.notes.push(format!(
            "{} in no index file (left by an interrupted or running backup); their blobs are usable, and the next backup or `reprise repair index` indexes them",
            if load.adopted.len() == 1 { "1 pack is".to_owned() } else { format!("{} packs are", load.adopted.len()) }
        ));
    }
    // Key files: named by the hash of their bytes, and well-formed.
    for k in repo.backend().list(ObjectKind::Key)? {
        let object = ObjectKind::Key.path(&k.name);
        match repo.backend().read(ObjectKind::Key, &k.name) {
            Ok(bytes) if Id::of_object(&bytes).to_hex() != k.name => report.problem(object, "content does not match its name (bytes were altered)"),
            Ok(bytes) => {
                if let Err(e) = reprise_format::keys::KeyFile::from_bytes(&bytes) {
                    report.problem(object, e.to_string());
                }
            }
            Err(e) => report.problem(object, e.to_string()),
        }
    }
    let stored: HashMap<Id, u64> =
        load.stored_packs.unwrap_or_default().into_iter().filter_map(|o| o.name.parse::<Id>().ok().map(|id| (id, o.size))).collect();
    report.packs = stored.len();
    report.blobs = index.blob_count();

    // Prune marks must be readable (writers rely on them); a pack they
    // condemn may be gone before the sweep rewrote the index files naming it.
    let condemned: HashSet<Id> = match crate::prune::read_marks(repo) {
        Ok(marks) => {
            if !marks.is_empty() {
                let packs: HashSet<&Id> = marks.iter().flat_map(|m| &m.mark.packs).collect();
                report.notes.push(format!(
                    "{} in {} wait for their grace period before deletion",
                    if packs.len() == 1 { "1 pack".to_owned() } else { format!("{} packs", packs.len()) },
                    if marks.len() == 1 { "1 prune mark".to_owned() } else { format!("{} prune marks", marks.len()) }
                ));
            }
            marks.iter().flat_map(|m| m.mark.packs.iter().copied()).collect()
        }
        Err(e) => {
            report.problem(ObjectKind::PruneMark.dir(), e.to_string());
            HashSet::new()
        }
    };
    // Packs the index names must exist with the indexed length.
    for (id, length) in index.packs() {
        match stored.get(&id) {
            None if condemned.contains(&id) => {
                report.notes.push(format!("{}: condemned by a prune and already deleted; the sweep rewrites the index files naming it", ObjectKind::Pack.path(&id.to_hex())));
            }
            None => report.problem(ObjectKind::Pack.path(&id.to_hex()), "missing: the index lists it but storage does not have it"),
            Some(&size) if size != length => {
                report.problem(ObjectKind::Pack.path(&id.to_hex()), format!("size {size} bytes, the index says {length}"));
            }
            Some(_) => {}
        }
    }

    // Snapshots and their trees.
    let (snapshots, bad) = repo.snapshots()?;
    for (object, e) in bad {
        report.problem(object, e.to_string());
    }
    report.snapshots = snapshots.len();
    let mut missing_blobs: BTreeSet<(Id, String)> = BTreeSet::new();
    if report.content_verified {
        let mut seen_trees: HashSet<Id> = HashSet::new();
        for snap in &snapshots {
            if opts.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            let snap_name = ObjectKind::Snapshot.path(&snap.id.to_hex());
            let body = match repo.snapshot_body(&snap.id) {
                Ok(b) => b,
                Err(e) => {
                    report.problem(snap_name, e.to_string());
                    continue;
                }
            };
            if !index.contains(&body.tree) {
                report.problem(&snap_name, format!("root tree {} is in no index", body.tree));
                continue;
            }
            if !seen_trees.insert(body.tree) {
                continue;
            }
            let mut problems = Vec::new();
            walk::walk_tolerant(
                repo,
                &index,
                &body.tree,
                &mut |path, node| {
                    for id in &node.content {
                        if !index.contains(id) {
                            missing_blobs.insert((*id, format!("{snap_name}: /{}", String::from_utf8_lossy(path))));
                        }
                    }
                    if node.kind == NodeKind::Dir
                        && let Some(sub) = node.subtree {
                            // Identical subtrees are checked once.
                            if !seen_trees.insert(sub) {
                                return Ok(Visit::Skip);
                            }
                        }
                    Ok(Visit::Descend)
                },
                &mut |path, e| {
                    problems.push(Problem { object: e.to_string(), message: format!("tree of {snap_name}: /{} cannot be read", String::from_utf8_lossy(path)) });
                    Ok(())
                },
            )?;
            report.problems.extend(problems);
        }
    } else {
        report.notes.push("write-only key: snapshot contents and blobs were not verified (they need the recovery key)".into());
    }
    for (id, path) in missing_blobs {
        report.problem(format!("data blob {id}"), format!("in no index, needed by {path}"));
    }

    // Read data.
    if opts.read_data != ReadData::None {
        let selected: Vec<(Id, u64)> = stored.iter().filter(|(id, _)| pack_selected(id, opts.read_data)).map(|(id, s)| (*id, *s)).collect();
        progress.set_total(selected.iter().map(|(_, s)| s).sum(), selected.len() as u64);
        for (id, size) in selected {
            if opts.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            read_pack(repo, &index, &id, &mut report);
            report.packs_read += 1;
            report.bytes_read += size;
            progress.advance(size, 1);
        }
    }
    report.problems.sort();
    report.problems.dedup();
    Ok(report)
}

fn read_pack(repo: &Repository, index: &MasterIndex, id: &Id, report: &mut CheckReport) {
    let name = ObjectKind::Pack.path(&id.to_hex());
    let bytes = match repo.backend().read(ObjectKind::Pack, &id.to_hex()) {
        Ok(b) => b,
        Err(e) => return report.problem(name, e.to_string()),
    };
    if Id::of_object(&bytes) != *id {
        report.problem(&name, "content does not match its name (bytes were altered)");
    }
    let dir = match pack::directory_of(&bytes, &repo.secrets().write.catalog_key) {
        Ok(d) => d,
        Err(e) => return report.problem(&name, format!("directory unreadable: {e}")),
    };
    for e in &dir {
        if let Some(loc) = index.get(&e.id)
            && loc.pack == *id && loc.entry != *e {
                report.problem(&name, format!("blob {} is indexed at a different place than the pack says", e.id));
            }
    }
    if !report.content_verified {
        return;
    }
    let key = match pack::open_pack_key(&bytes, repo.recovery("").expect("checked")) {
        Ok(k) => k,
        Err(e) => return report.problem(&name, format!("pack key: {e}")),
    };
    for e in &dir {
        let ct = &bytes[e.offset as usize..(e.offset + e.length) as usize];
        if let Err(err) = pack::open_blob(&key, &repo.secrets().write.id_key, e, ct) {
            let kind = if e.kind == BlobKind::Tree { "tree" } else { "data" };
            report.problem(&name, format!("{kind} blob {}: {err}", e.id));
        }
    }
}
