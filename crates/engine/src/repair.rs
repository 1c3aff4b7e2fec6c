//! Repairs: bringing a damaged repository back to a state every command
//! accepts, without losing anything that can still be read.
//!
//! Damage found by `check` must be clearable, or `check` fails forever and
//! its exit code stops meaning anything. Each repair removes only objects
//! that cannot be read, and only after what they stood for is safely
//! written again (the durability order: what replaces an object is durable
//! before the object goes):
//!
//! * [`repair_index`]: index files that cannot be read are replaced by new
//!   ones built from the packs' own directories (every pack describes
//!   itself), then removed. A damaged index file held nothing that is not
//!   in the packs; a pack whose directory cannot be read either is damaged
//!   itself, reported, and left for `check --read-data`.
//! * [`repair_config`]: a `config` that cannot be read (or is missing while
//!   keys are there) is written again from a copy repository's (the same
//!   bytes, by construction) or rebuilt: the repository ID from the key
//!   that opens it, the writers' parameters from what can still be read.
//! * [`repair_keys`]: key files whose bytes no longer hash to their name
//!   are removed (they open nothing; the other keys are untouched).
//! * [`repair_marks`]: prune marks that cannot be read are removed. Safe:
//!   a mark only allows deletion; without it nothing is deleted, and the
//!   next prune marks what is unused again. Writers refuse to run while a
//!   mark cannot be read, so this is what lets backups go on.
//!
//! All of them need a full-access key (and, on object storage, credentials
//! allowed to delete).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use reprise_backends::{Backend, ErrorKind, ObjectKind};
use reprise_format::config::RepositoryConfig;
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::keys::{Domain, KeyFile, Secrets};
use reprise_format::{FormatError, Id};

use crate::check::Problem;
use crate::error::{Error, Result};
use crate::index::Scan;
use crate::packer::INDEX_FLUSH_PACKS;
use crate::prune::MarkRead;
use crate::repository::Repository;

/// What `repair_index` found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IndexRepair {
    pub dry_run: bool,
    /// Index files that could not be read (removed, unless a dry run).
    pub damaged_index_files: Vec<Problem>,
    /// Packs named by no readable index file, now indexed from their own
    /// directories.
    pub packs_indexed: usize,
    pub index_files_written: Vec<Id>,
    /// Packs whose own directory cannot be read either: damaged, not indexed.
    pub unreadable_packs: Vec<Problem>,
    /// Unindexed packs a prune has condemned: left to the prune's sweep.
    pub condemned_packs_left: usize,
}

/// Rebuilds the index from the packs' directories and removes the index
/// files that cannot be read (see the module documentation). Every
/// domain's packs are indexed in that domain, in index files the
/// administrator signs; packs nobody may have written stay unindexed (and
/// `check` reports them).
pub fn repair_index(repo: &Repository, dry_run: bool) -> Result<IndexRepair> {
    repo.require_full("repairing the index (it removes damaged index files)")?;
    let admin = repo.admin_key("repairing the index (it removes damaged index files)")?;
    if repo.trust().needs_upgrade() {
        // A format 1 repository is written to only after the upgrade (which
        // indexes the packs a damaged index file named, too).
        return Err(Error::NeedsUpgrade);
    }
    let mut report = IndexRepair { dry_run, ..IndexRepair::default() };
    // Condemned packs stay out, as in any writer: the sweep may be
    // deleting them now.
    let condemned: HashSet<Id> = crate::prune::read_marks(repo)?.marks.into_iter().flat_map(|m| m.mark.packs).collect();
    // Every domain at once: only trusted index files' claims count, so the
    // packs a damaged file named come back as unindexed, read from their
    // own (signed) directories.
    let scan = Scan::run(repo, None)?;
    let damaged: Vec<String> = scan.damaged.iter().map(|(object, _)| object.rsplit('/').next().unwrap_or_default().to_owned()).collect();
    report.damaged_index_files = scan.damaged.into_iter().map(|(object, message)| Problem { object, message }).collect();
    report.unreadable_packs = scan.unreadable_packs.into_iter().map(|(object, message)| Problem { object, message }).collect();
    let mut to_index: BTreeMap<Domain, Vec<IndexedPack>> = BTreeMap::new();
    for (domain, pack) in scan.adopted {
        if condemned.contains(&pack.id) {
            report.condemned_packs_left += 1;
            continue;
        }
        report.packs_indexed += 1;
        to_index.entry(domain).or_default().push(pack);
    }
    // New index files first: once `save_object` returns they are durable,
    // and only then do the damaged ones go.
    for (domain, packs) in &to_index {
        let keys = repo.domain_keys(domain)?;
        for chunk in packs.chunks(INDEX_FLUSH_PACKS) {
            let sealed = IndexFile { supersedes: Vec::new(), packs: chunk.to_vec() }.seal(domain, &keys.catalog_key, &admin, &repo.id());
            report.index_files_written.push(if dry_run { Id::of_object(&sealed) } else { repo.save_object(ObjectKind::Index, &sealed)? });
        }
    }
    if !dry_run {
        for name in &damaged {
            remove(repo.backend().as_ref(), ObjectKind::Index, name)?;
        }
    }
    Ok(report)
}

/// What `repair_marks` found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct MarkRepair {
    pub dry_run: bool,
    pub marks: usize,
    /// Marks that could not be read (removed, unless a dry run).
    pub damaged_marks: Vec<Problem>,
}

/// Removes the prune marks that cannot be read, and those nobody who may
/// condemn packs wrote (they count for nothing; `check` reports them)
/// (see the module documentation).
pub fn repair_marks(repo: &Repository, dry_run: bool) -> Result<MarkRepair> {
    repo.require_full("repairing prune marks (it removes damaged marks)")?;
    let mut report = MarkRepair { dry_run, ..MarkRepair::default() };
    for obj in repo.backend().list(ObjectKind::PruneMark)? {
        report.marks += 1;
        let object = ObjectKind::PruneMark.path(&obj.name);
        let problem = match crate::prune::read_mark(repo, &obj.name) {
            Ok(MarkRead::Counted(_) | MarkRead::Gone) => continue,
            Ok(MarkRead::Ignored(why)) => why,
            Err(Error::Damaged { source, .. }) => source.to_string(),
            Err(e) => return Err(e),
        };
        report.damaged_marks.push(Problem { object, message: problem });
        if !dry_run {
            remove(repo.backend().as_ref(), ObjectKind::PruneMark, &obj.name)?;
        }
    }
    Ok(report)
}

/// What `repair_keys` found and did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct KeyRepair {
    pub dry_run: bool,
    pub keys: usize,
    /// Key files whose bytes no longer hash to their name (removed, unless
    /// a dry run).
    pub damaged_keys: Vec<Problem>,
}

/// Removes key files whose bytes no longer hash to their name: altered,
/// they open nothing, and nothing else can tell what they were. A key file
/// that hashes right but does not parse is left alone (it may come from a
/// newer reprise); the key in use is intact by definition.
pub fn repair_keys(repo: &Repository, dry_run: bool) -> Result<KeyRepair> {
    repo.require_full("repairing keys (it removes damaged key files)")?;
    let mut report = KeyRepair { dry_run, ..KeyRepair::default() };
    for k in repo.backend().list(ObjectKind::Key)? {
        report.keys += 1;
        let bytes = match repo.backend().read(ObjectKind::Key, &k.name) {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if Id::of_object(&bytes).to_hex() != k.name {
            report.damaged_keys.push(Problem { object: ObjectKind::Key.path(&k.name), message: "content does not match its name (bytes were altered)".into() });
            if !dry_run {
                remove(repo.backend().as_ref(), ObjectKind::Key, &k.name)?;
            }
        }
    }
    Ok(report)
}

/// How a repair opens the repository's keys when its config cannot be read.
pub enum Key<'a> {
    Passphrase(&'a [u8]),
    /// A recovery key file's secrets.
    Secrets(Secrets),
}

/// What `repair_config` found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConfigRepair {
    pub dry_run: bool,
    /// Whether the config needed repairing (`false`: it is intact).
    pub repaired: bool,
    /// What was wrong with it.
    pub problem: Option<String>,
    /// Where the new config came from.
    pub source: String,
    /// Parameters that could not be recovered and were set to defaults.
    pub defaults: Vec<String>,
    pub config: RepositoryConfig,
}

/// Writes `config` again (see the module documentation). `from` is a copy
/// of this repository whose config is taken as is, once its ID is checked.
pub fn repair_config(backend: &Arc<dyn Backend>, key: Key<'_>, from: Option<&Arc<dyn Backend>>, dry_run: bool) -> Result<ConfigRepair> {
    let secrets = match key {
        Key::Secrets(s) => s,
        Key::Passphrase(p) => open_any_key(backend.as_ref(), p)?,
    };
    if secrets.recovery().is_none() {
        return Err(Error::WriteOnly { operation: "repairing the config (it replaces an object)" });
    }
    let id = secrets.repository_id;
    let current = match backend.read(ObjectKind::Config, "") {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    let problem = match current.as_deref().map(RepositoryConfig::from_bytes) {
        Some(Ok(c)) if c.id == id => {
            return Ok(ConfigRepair { dry_run, repaired: false, problem: None, source: "intact".into(), defaults: Vec::new(), config: c });
        }
        Some(Ok(c)) => format!("it names repository {}, but the key opens repository {}", c.id.short(), id.short()),
        Some(Err(e)) => e.to_string(),
        None => "it is missing (the keys are there)".to_owned(),
    };
    let (config, source, defaults) = if let Some(copy) = from {
        let bytes = copy.read(ObjectKind::Config, "").map_err(|e| match e.kind {
            ErrorKind::NotFound => Error::NotARepository { location: copy.location().to_owned() },
            _ => Error::Backend(e),
        })?;
        let c = RepositoryConfig::from_bytes(&bytes).map_err(|e| Error::damaged(format!("{}/config", copy.location()), e))?;
        if c.id != id {
            return Err(Error::InvalidArgument(format!(
                "{} holds repository {}, not a copy of {} ({}): give a copy made by `reprise copy` from this repository",
                copy.location(),
                c.id.short(),
                backend.location(),
                id.short()
            )));
        }
        (c, format!("the copy at {}", copy.location()), Vec::new())
    } else {
        let (c, defaults) = rebuild(id, current.as_deref(), newest_key_version(backend.as_ref())?);
        (c, "the key (repository ID) and what the damaged config still says".to_owned(), defaults)
    };
    if !dry_run {
        // The config is the one object replaced in place (it is never
        // locked): remove, then create. Interrupted in between, the
        // location has keys and no config, and this repair runs again.
        if current.is_some() {
            remove(backend.as_ref(), ObjectKind::Config, "")?;
        }
        backend.create(ObjectKind::Config, "", &config.to_bytes())?;
    }
    Ok(ConfigRepair { dry_run, repaired: true, problem: Some(problem), source, defaults, config })
}

/// The config for repository `id`, keeping what the damaged text still
/// says validly (format version, chunker parameters, pack size, creation
/// time), else the defaults (named in the second value). Restores need
/// none of the parameters: they only steer how new backups cut and pack
/// data. The version matters: a format 1 repository not upgraded yet
/// trusts its unsigned objects only while its config says version 1, so
/// without a readable version it is taken from the key files (format 1
/// keys only: version 1).
fn rebuild(id: Id, damaged: Option<&[u8]>, key_version: u32) -> (RepositoryConfig, Vec<String>) {
    let text = damaged.map(String::from_utf8_lossy).unwrap_or_default();
    let old = |name: &str| field_value(&text, name);
    let mut config = RepositoryConfig::new(id, reprise_format::chunker::ChunkerParams::default());
    let mut defaults = Vec::new();
    match old("version").as_ref().and_then(serde_json::Value::as_u64).and_then(|v| u32::try_from(v).ok()).filter(|v| (1..=config.version).contains(v)) {
        Some(v) => config.version = v,
        None => {
            config.version = key_version.clamp(1, config.version);
            defaults.push(format!("version (set to {}, from the key files)", config.version));
        }
    }
    match old("chunker").and_then(|v| serde_json::from_value::<reprise_format::chunker::ChunkerParams>(v).ok()).filter(|c| c.validate().is_ok()) {
        Some(c) => config.chunker = c,
        None => defaults.push("chunker (new backups may deduplicate less against older ones)".to_owned()),
    }
    match old("pack_size").as_ref().and_then(serde_json::Value::as_u64).and_then(|p| u32::try_from(p).ok()).filter(|p| (1 << 20..=1 << 30).contains(p)) {
        Some(p) => config.pack_size = p,
        None => defaults.push("pack_size".to_owned()),
    }
    match old("created").as_ref().and_then(serde_json::Value::as_str).and_then(|t| t.parse().ok()) {
        Some(t) => config.created = t,
        None => defaults.push("created (set to now)".to_owned()),
    }
    (config, defaults)
}

/// The value of `"name": VALUE` in a JSON text that may be broken
/// elsewhere (a flipped byte in another field leaves this one readable).
fn field_value(text: &str, name: &str) -> Option<serde_json::Value> {
    let key = format!("\"{name}\"");
    let after = &text[text.find(&key)? + key.len()..];
    let value = after.trim_start().strip_prefix(':')?;
    serde_json::Deserializer::from_str(value).into_iter::<serde_json::Value>().next()?.ok()
}

/// The highest format version of the intact key files (1 when none parses).
fn newest_key_version(backend: &dyn Backend) -> Result<u32> {
    let mut newest = 1;
    for k in backend.list(ObjectKind::Key)? {
        let Ok(bytes) = backend.read(ObjectKind::Key, &k.name) else { continue };
        if Id::of_object(&bytes).to_hex() == k.name
            && let Ok(file) = KeyFile::from_bytes(&bytes)
        {
            newest = newest.max(file.version());
        }
    }
    Ok(newest)
}

/// The secrets of the first intact key file that opens with `passphrase`
/// (without the config: it is what is being repaired).
fn open_any_key(backend: &dyn Backend, passphrase: &[u8]) -> Result<Secrets> {
    for k in backend.list(ObjectKind::Key)? {
        let Ok(bytes) = backend.read(ObjectKind::Key, &k.name) else { continue };
        if Id::of_object(&bytes).to_hex() != k.name {
            continue;
        }
        let Ok(file) = KeyFile::from_bytes(&bytes) else { continue };
        match file.open(passphrase) {
            Ok(secrets) => return Ok(secrets),
            Err(FormatError::WrongPassphrase) => {}
            Err(e) => tracing::debug!("key {}: {e}", k.name),
        }
    }
    Err(Error::WrongPassphrase { location: backend.location().to_owned() })
}

fn remove(backend: &dyn Backend, kind: ObjectKind, name: &str) -> Result<()> {
    match backend.remove(kind, name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}
