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
//!
//! Writers are untrusted (docs/STORAGE.md): `check` also reports every
//! object the repository ignores because its signer may not have written
//! it — unendorsed key files, forged marks and holds, snapshots, index
//! files and packs of unknown or revoked keys, objects naming a domain not
//! their signer's, WAL names squatted — each with the key that signed it,
//! and, when reading data, blobs stored twice with different content
//! (decoys), naming the writer of the bad copy.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use reprise_backends::ObjectKind;
use reprise_format::keys::Domain;
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
    let full = report.content_verified;
    // A full-access key checks every domain; a writer, its own.
    let (indexes, load) = if full {
        MasterIndex::load_all(repo)?
    } else {
        let (i, l) = MasterIndex::load(repo, &repo.home_domain())?;
        (BTreeMap::from([(i.domain(), i)]), l)
    };
    report.index_files = load.index_files.len();
    for (object, message) in load.damaged_index_files {
        report.problem(object, message);
    }
    for (object, message) in load.unreadable_packs {
        report.problem(object, message);
    }
    for (object, reason) in load.untrusted {
        report.problem(object, format!("ignored: {reason}"));
    }
    if !load.adopted.is_empty() {
        report.notes.push(format!(
            "{} in no index file (left by an interrupted or running backup); their blobs are usable, and the next backup or `reprise repair index` indexes them",
            if load.adopted.len() == 1 { "1 pack is".to_owned() } else { format!("{} packs are", load.adopted.len()) }
        ));
    }
    // Key files: named by the hash of their bytes, well-formed, endorsed.
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
    let trust = repo.trust();
    for (object, message) in trust.unendorsed.iter().chain(&trust.bad_records) {
        report.problem(object, message);
    }
    if full && trust.needs_upgrade() {
        report.notes.push("written by an earlier version (format 1): writers are not authenticated and nothing can be written until a full-access key runs `reprise key upgrade`".into());
    }
    if !trust.legacy_key_files.is_empty() {
        report.notes.push(format!("{} key file(s) of format 1 remain: run `reprise key upgrade`", trust.legacy_key_files.len()));
    }
    let stored: HashMap<Id, u64> =
        load.stored_packs.unwrap_or_default().into_iter().filter_map(|o| o.name.parse::<Id>().ok().map(|id| (id, o.size))).collect();
    report.packs = stored.len();
    report.blobs = indexes.values().map(MasterIndex::blob_count).sum();

    // Prune marks must be readable (writers rely on them); a pack they
    // condemn may be gone before the sweep rewrote the index files naming
    // it. Marks the administrator did not sign condemn nothing.
    let condemned: HashSet<Id> = match crate::prune::read_marks(repo) {
        Ok(set) => {
            for (object, why) in set.ignored {
                report.problem(object, why);
            }
            let marks = set.marks;
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
    if full {
        match crate::holds::list_all(repo) {
            Ok((_, ignored)) => {
                for (object, why) in ignored {
                    report.problem(object, why);
                }
            }
            Err(e) => report.problem(ObjectKind::Hold.dir(), e.to_string()),
        }
        // A second name for a WAL file means another writer took the first.
        let wal = repo.backend().list(ObjectKind::Wal)?;
        for o in &wal {
            if let Some((plain, writer)) = o.name.rsplit_once('@') {
                let squatter = wal
                    .iter()
                    .find(|b| b.name == plain)
                    .and_then(|b| repo.backend().read_range(ObjectKind::Wal, &b.name, b.size.checked_sub(reprise_format::sign::SIGNATURE_BLOCK_LEN as u64)?, 32).ok())
                    .and_then(|k| reprise_format::sign::KeyId::from_slice(&k).ok());
                report.problem(
                    ObjectKind::Wal.path(&o.name),
                    format!(
                        "the WAL name {plain} was taken before its writer ({writer}) archived it there, by an object naming {} as its signer ({})",
                        repo.trust().describe(squatter.as_ref()),
                        ObjectKind::Wal.path(plain)
                    ),
                );
            }
        }
    }
    // Packs the index names must exist with the indexed length.
    let mut listed: BTreeMap<Id, u64> = BTreeMap::new();
    for index in indexes.values() {
        listed.extend(index.packs());
    }
    for (id, length) in listed {
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

    // Snapshots and their trees, each in its own domain.
    let (snapshots, bad) = repo.snapshots()?;
    for (object, e) in bad {
        report.problem(object, e.to_string());
    }
    for s in &snapshots {
        if let Some(w) = &s.warning {
            report.problem(ObjectKind::Snapshot.path(&s.id.to_hex()), w);
        }
    }
    report.snapshots = snapshots.len();
    let mut missing_blobs: BTreeSet<(Id, String)> = BTreeSet::new();
    if report.content_verified {
        let mut seen_trees: HashSet<(Domain, Id)> = HashSet::new();
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
            let none = MasterIndex::new(snap.domain);
            let index = indexes.get(&snap.domain).unwrap_or(&none);
            if !index.contains(&body.tree) {
                report.problem(&snap_name, format!("root tree {} is in no index of its domain ({})", body.tree, snap.domain));
                continue;
            }
            if !seen_trees.insert((snap.domain, body.tree)) {
                continue;
            }
            let mut problems = Vec::new();
            walk::walk_tolerant(
                repo,
                index,
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
                            if !seen_trees.insert((snap.domain, sub)) {
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
        // Which domains claim each pack.
        let mut claims: HashMap<Id, Vec<Domain>> = HashMap::new();
        for (d, index) in &indexes {
            for (p, _) in index.packs() {
                claims.entry(p).or_default().push(*d);
            }
        }
        let selected: Vec<(Id, u64)> = stored.iter().filter(|(id, _)| pack_selected(id, opts.read_data)).map(|(id, s)| (*id, *s)).collect();
        progress.set_total(selected.iter().map(|(_, s)| s).sum(), selected.len() as u64);
        for (id, size) in selected {
            if opts.cancel.is_cancelled() {
                return Err(Error::Interrupted);
            }
            read_pack(repo, &indexes, claims.get(&id).map_or(&[][..], Vec::as_slice), &id, &mut report);
            report.packs_read += 1;
            report.bytes_read += size;
            progress.advance(size, 1);
        }
        // Archived WAL: signature, signer, name and content of each file.
        if report.content_verified && opts.read_data == ReadData::All {
            for o in repo.backend().list(ObjectKind::Wal)? {
                if opts.cancel.is_cancelled() {
                    return Err(Error::Interrupted);
                }
                if let Err(m) = crate::walobj::verify(repo, &o.name)? {
                    report.problem(ObjectKind::Wal.path(&o.name), m);
                }
                report.bytes_read += o.size;
            }
        }
    }
    report.problems.sort();
    report.problems.dedup();
    Ok(report)
}

fn read_pack(repo: &Repository, indexes: &BTreeMap<Domain, MasterIndex>, claims: &[Domain], id: &Id, report: &mut CheckReport) {
    let name = ObjectKind::Pack.path(&id.to_hex());
    let bytes = match repo.backend().read(ObjectKind::Pack, &id.to_hex()) {
        Ok(b) => b,
        Err(e) => return report.problem(name, e.to_string()),
    };
    if Id::of_object(&bytes) != *id {
        report.problem(&name, "content does not match its name (bytes were altered)");
    }
    let trust = repo.trust();
    let tail = match pack::tail_of(&bytes) {
        Ok(t) => t,
        Err(e) => return report.problem(&name, format!("trailer unreadable: {e}")),
    };
    let writer = trust.describe(tail.signer.as_ref());
    let own = tail.domain.unwrap_or(reprise_format::keys::DomainId::LEGACY);
    if tail.domain.is_some()
        && let Err(e) = pack::verify(&bytes, &repo.id())
    {
        report.problem(&name, format!("{e} (it names {writer} as its signer)"));
    }
    // The domains whose index names this pack; an unindexed pack of a
    // trusted writer is read in its own domain.
    let domains: Vec<Domain> = if claims.is_empty() { vec![own] } else { claims.to_vec() };
    for d in &domains {
        if *d != own {
            report.problem(
                &name,
                format!(
                    "an index file of {} lists this pack, but the pack belongs to {} (written by {writer}): the claim is forged or damaged",
                    trust.describe_domain(d),
                    trust.describe_domain(&own)
                ),
            );
        }
    }
    let Ok(keys) = repo.domain_keys(&own) else { return };
    let dir = match pack::directory_of(&bytes, &keys.catalog_key) {
        Ok(d) => d,
        Err(e) => return report.problem(&name, format!("directory unreadable: {e}")),
    };
    if let Some(index) = indexes.get(&own) {
        for e in &dir {
            if index.locations(&e.id).iter().any(|l| l.pack == *id && l.entry != *e) {
                report.problem(&name, format!("blob {} is indexed at a different place than the pack says", e.id));
            }
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
        if let Err(err) = pack::open_blob(&key, &keys.id_key, e, ct) {
            let kind = if e.kind == BlobKind::Tree { "tree" } else { "data" };
            let others: Vec<Id> = indexes.get(&own).map(|i| i.locations(&e.id).into_iter().map(|l| l.pack).filter(|p| p != id).collect()).unwrap_or_default();
            if others.is_empty() {
                report.problem(&name, format!("{kind} blob {}: {err} (written by {writer})", e.id));
            } else {
                report.problem(
                    &name,
                    format!(
                        "{kind} blob {} is stored twice with different content: this copy, written by {writer}, does not match its ID ({err}); other copies: {}",
                        e.id,
                        others.iter().map(|p| ObjectKind::Pack.path(&p.to_hex())).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
        }
    }
}

/// Reads in full every pack that `snapshots` use (their trees and file
/// contents), as `check --read-data` reads all packs: what a restore drill
/// checks after restoring those snapshots, without reading the whole
/// repository. The report counts only these packs.
pub fn read_packs_of(repo: &Repository, snapshots: &[Id], cancel: &CancelToken, progress: &dyn Progress) -> Result<CheckReport> {
    repo.require_full("reading a snapshot's packs")?;
    let mut report = CheckReport { content_verified: true, snapshots: snapshots.len(), ..CheckReport::default() };
    let (indexes, load) = MasterIndex::load_all(repo)?;
    for (object, message) in load.damaged_index_files.into_iter().chain(load.unreadable_packs) {
        report.problem(object, message);
    }
    let mut packs: BTreeSet<Id> = BTreeSet::new();
    for snap in snapshots {
        let info = repo.snapshot(snap)?;
        let body = repo.snapshot_body(snap)?;
        let none = MasterIndex::new(info.domain);
        let index = indexes.get(&info.domain).unwrap_or(&none);
        let mut add = |id: &Id| match index.get(id) {
            Some(l) => {
                packs.insert(l.pack);
            }
            None => report.problems.push(Problem { object: format!("data blob {id}"), message: format!("in no index, needed by snapshot {}", snap.short()) }),
        };
        add(&body.tree);
        walk::walk(repo, index, &body.tree, &mut |_, node| {
            for id in node.content.iter().chain(node.subtree.as_ref()) {
                add(id);
            }
            Ok(Visit::Descend)
        })?;
    }
    let mut claims: HashMap<Id, Vec<Domain>> = HashMap::new();
    for (d, index) in &indexes {
        for (p, _) in index.packs() {
            if packs.contains(&p) {
                claims.entry(p).or_default().push(*d);
            }
        }
    }
    report.packs = packs.len();
    for id in packs {
        if cancel.is_cancelled() {
            return Err(Error::Interrupted);
        }
        let size = repo.backend().size(ObjectKind::Pack, &id.to_hex()).unwrap_or(0);
        read_pack(repo, &indexes, claims.get(&id).map_or(&[][..], Vec::as_slice), &id, &mut report);
        report.packs_read += 1;
        report.bytes_read += size;
        progress.advance(size, 1);
    }
    report.problems.sort();
    report.problems.dedup();
    Ok(report)
}
