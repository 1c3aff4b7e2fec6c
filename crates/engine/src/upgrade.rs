//! Upgrading a version 1 repository (`reprise key upgrade`,
//! docs/FORMAT.md 16).
//!
//! Version 1 could not tell its writers apart: every write-only key held
//! the secrets everyone deduplicated with, and nothing was signed. This
//! version reads such a repository as it is, but writes nothing to it until
//! a full-access key upgrades it, once:
//!
//! 1. the **legacy record** lists every pack, index file, snapshot and WAL
//!    object present: they stay trusted (in the legacy domain); unsigned
//!    objects it does not list are ignored from then on;
//! 2. version 1 index files are rewritten as administrator-signed version 2
//!    index files of the legacy domain (so that every writer can see, in
//!    clear, which packs they name), together with packs no index named;
//! 3. legal holds are signed again; version 1 prune marks are removed (the
//!    packs they condemned simply wait for a later prune);
//! 4. full-access key files get a key ID and the administrator's
//!    endorsement (their sealed secrets are kept as they are: no passphrase
//!    is needed); version 1 write-only key files are removed: they hold the
//!    legacy secrets and no signing key, so their hosts need new keys.
//!
//! Each step is idempotent and checks what is left to do: an interrupted
//! upgrade is finished by running it again.

use std::collections::HashSet;

use reprise_backends::{ErrorKind, ObjectKind};
use reprise_format::Id;
use reprise_format::index::{IndexFile, IndexedPack};
use reprise_format::keys::{DomainId, KeyFile, Role};
use reprise_format::trust::{ObjectList, TrustKind, TrustRecord};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::index::Scan;
use crate::repository::{Repository, whoami};

/// What the upgrade did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpgradeReport {
    /// The legacy record (written now, or found from an earlier run).
    pub legacy_record: Option<Id>,
    pub legacy_packs: usize,
    pub legacy_snapshots: usize,
    pub legacy_wal_files: usize,
    pub index_files_rewritten: usize,
    pub holds_signed: usize,
    pub marks_removed: usize,
    /// Full-access key files given a key ID and an endorsement.
    pub keys_endorsed: Vec<String>,
    /// Version 1 write-only key files removed (their hosts need new keys).
    pub write_only_keys_removed: Vec<String>,
    /// The key file this session now opens with, if it was rewritten.
    pub current_key: Option<String>,
}

/// Upgrades the repository `repo` was opened on (see the module docs).
pub fn upgrade(repo: &Repository, current_key: Option<&str>) -> Result<UpgradeReport> {
    repo.require_full("upgrading a repository")?;
    let admin = repo.admin_key("upgrading a repository")?;
    let admin_domain = repo.domain_keys(&DomainId::ADMIN)?;
    let backend = repo.backend();
    // 1. The legacy record.
    let mut report = UpgradeReport { legacy_record: repo.trust().legacy_record, ..UpgradeReport::default() };
    if report.legacy_record.is_none() {
        if repo.config().version >= 2 {
            return Err(Error::InvalidArgument("this repository was created by this version: there is nothing to upgrade".into()));
        }
        let mut objects = ObjectList::default();
        for (kind, list) in [(ObjectKind::Pack, &mut objects.packs), (ObjectKind::Index, &mut objects.index), (ObjectKind::Snapshot, &mut objects.snapshots)] {
            list.extend(backend.list(kind)?.into_iter().filter_map(|o| o.name.parse::<Id>().ok()));
        }
        objects.wal = backend.list(ObjectKind::Wal)?.into_iter().map(|o| o.name).collect();
        let (host, user) = whoami();
        let record = TrustRecord { kind: TrustKind::Legacy, time: jiff::Timestamp::now(), host, user, objects, key: None, reason: None };
        report.legacy_packs = record.objects.packs.len();
        report.legacy_snapshots = record.objects.snapshots.len();
        report.legacy_wal_files = record.objects.wal.len();
        report.legacy_record = Some(repo.save_object(ObjectKind::Trust, &reprise_format::trust::seal(&record, &admin_domain.catalog_key, &admin, &repo.id()))?);
    }

    // 2. Version 1 index files, and packs no index names, become signed
    // index files of the legacy domain.
    let legacy = repo.domain_keys(&DomainId::LEGACY)?;
    let scan = Scan::run(repo, Some(DomainId::LEGACY))?;
    let mut old_files: Vec<Id> = Vec::new();
    let mut packs: Vec<IndexedPack> = Vec::new();
    let mut seen: HashSet<Id> = HashSet::new();
    for f in &scan.files {
        let bytes = backend.read_range(ObjectKind::Index, &f.id.to_hex(), 0, 8)?;
        if bytes.as_slice() != reprise_format::index::INDEX_MAGIC_V1 {
            continue; // already a signed file of the legacy domain
        }
        old_files.push(f.id);
        packs.extend(f.file.packs.iter().filter(|p| seen.insert(p.id)).cloned());
    }
    packs.extend(scan.adopted.iter().filter(|(_, p)| seen.insert(p.id)).map(|(_, p)| p.clone()));
    for chunk in packs.chunks(crate::packer::INDEX_FLUSH_PACKS) {
        let file = IndexFile { supersedes: Vec::new(), packs: chunk.to_vec() };
        repo.save_object(ObjectKind::Index, &file.seal(&DomainId::LEGACY, &legacy.catalog_key, &admin, &repo.id()))?;
        report.index_files_rewritten += 1;
    }
    for id in &old_files {
        remove(repo, ObjectKind::Index, &id.to_hex())?;
    }

    // 3. Holds signed again; version 1 marks removed.
    for o in backend.list(ObjectKind::Hold)? {
        let Ok(id) = o.name.parse::<Id>() else { continue };
        let bytes = repo.read_object(ObjectKind::Hold, &id)?;
        if reprise_format::hold::is_v2(&bytes) {
            continue;
        }
        let hold = reprise_format::hold::open(&bytes, &legacy.catalog_key).map_err(|e| Error::damaged(ObjectKind::Hold.path(&o.name), e))?;
        repo.save_object(ObjectKind::Hold, &reprise_format::hold::seal(&hold, &admin_domain.catalog_key, &admin, &repo.id()))?;
        remove(repo, ObjectKind::Hold, &o.name)?;
        report.holds_signed += 1;
    }
    for o in backend.list(ObjectKind::PruneMark)? {
        let bytes = match backend.read(ObjectKind::PruneMark, &o.name) {
            Ok(b) => b,
            Err(e) if e.kind == ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if !reprise_format::mark::is_v2(&bytes) {
            remove(repo, ObjectKind::PruneMark, &o.name)?;
            report.marks_removed += 1;
        }
    }

    // 4. Key files.
    for k in crate::trust::read_key_files(backend.as_ref())? {
        if k.file.version() >= 2 {
            continue;
        }
        match k.file.info.role {
            Role::Full => {
                let mut f: KeyFile = k.file.upgraded().map_err(|e| Error::damaged(ObjectKind::Key.path(&k.name), e))?;
                f.endorse(&admin, &repo.id()).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                let bytes = f.to_bytes();
                let name = Id::of_object(&bytes).to_hex();
                match backend.create(ObjectKind::Key, &name, &bytes) {
                    Ok(()) => {}
                    Err(e) if e.kind == ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
                remove(repo, ObjectKind::Key, &k.name)?;
                if current_key == Some(k.name.as_str()) {
                    report.current_key = Some(name.clone());
                }
                report.keys_endorsed.push(name);
            }
            Role::WriteOnly => {
                remove(repo, ObjectKind::Key, &k.name)?;
                report.write_only_keys_removed.push(k.name);
            }
        }
    }
    repo.reload_trust()?;
    Ok(report)
}

fn remove(repo: &Repository, kind: ObjectKind, name: &str) -> Result<()> {
    match repo.backend().remove(kind, name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}
