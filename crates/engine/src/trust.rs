//! Which writers to believe (docs/FORMAT.md 2.5).
//!
//! Every production host can create objects in the repository: its write
//! credential and the storage role allow it. So nothing is believed for
//! being there. An object counts only when its signer may write it:
//!
//! * the **administrator** key (derived from the recovery secret, so every
//!   full-access key and the recovery key file hold it) may write
//!   anything, in any domain;
//! * an **endorsed writer** (a key file the administrator signed) may write
//!   packs, index files, snapshots and WAL, in its own domain only;
//! * a **revoked** writer, only the objects its revocation lists;
//! * an **unsigned** (version 1) object counts in a repository never
//!   upgraded, or when the legacy record lists it.
//!
//! Everything else is ignored, and [`Verdict::Untrusted`] says why, naming
//! the signer, so that `check` can report it. [`Trust`] is built once when
//! a repository is opened: a full-access key reads the key files and trust
//! records; a writer needs neither (it trusts itself and the
//! administrator, and never looks at another domain).

use std::collections::{HashMap, HashSet};

use reprise_backends::{Backend, ObjectKind};
use reprise_format::keys::{Domain, DomainId, KeyFile, Role, Secrets};
use reprise_format::sign::KeyId;
use reprise_format::trust::{ObjectList, RevokedKey, TrustKind, TrustRecord};
use reprise_format::{FormatError, Id};
use serde::Serialize;

use crate::error::{Error, Result};

/// A writer the administrator endorsed (or revoked).
#[derive(Debug, Clone, Serialize)]
pub struct WriterKey {
    pub key_id: KeyId,
    pub domain: DomainId,
    pub label: String,
    pub host: String,
    pub user: String,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_host: Option<String>,
    pub credential: bool,
    /// Set once revoked: what stays trusted.
    #[serde(skip)]
    pub revoked: Option<Revocation>,
}

/// A revocation as read from its trust record.
#[derive(Debug, Clone)]
pub struct Revocation {
    pub record: Id,
    pub time: jiff::Timestamp,
    pub reason: String,
    objects: Listed,
}

/// Object names by kind, for "was it there when the record was written".
#[derive(Debug, Clone, Default)]
struct Listed {
    ids: HashSet<(ObjectKind, Id)>,
    wal: HashSet<String>,
}

impl Listed {
    fn from(list: &ObjectList) -> Listed {
        let mut l = Listed::default();
        l.extend(list);
        l
    }

    fn extend(&mut self, list: &ObjectList) {
        self.ids.extend(list.packs.iter().map(|i| (ObjectKind::Pack, *i)));
        self.ids.extend(list.index.iter().map(|i| (ObjectKind::Index, *i)));
        self.ids.extend(list.snapshots.iter().map(|i| (ObjectKind::Snapshot, *i)));
        self.wal.extend(list.wal.iter().cloned());
    }

    fn contains(&self, kind: ObjectKind, name: &str) -> bool {
        if kind == ObjectKind::Wal {
            return self.wal.contains(name);
        }
        name.parse::<Id>().is_ok_and(|id| self.ids.contains(&(kind, id)))
    }
}

/// How unsigned (version 1) objects are treated.
#[derive(Debug, Clone)]
enum Legacy {
    /// A version 1 repository not upgraded yet: version 1 could not tell
    /// writers apart, so every unsigned object counts (and nothing is
    /// written until the upgrade).
    Open,
    /// Upgraded: the objects the legacy record lists.
    Listed(Box<Listed>),
    /// Born signed, or a writer's view: no unsigned object counts.
    None,
}

/// Who wrote an object, as far as the reader trusts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    Admin,
    Writer(KeyId),
    Legacy,
}

/// The decision about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Trusted { domain: Domain, by: Provenance },
    Untrusted { reason: String },
}

/// What a reader believes: built once per open repository.
#[derive(Debug, Clone)]
pub struct Trust {
    admin: Option<KeyId>,
    writers: HashMap<KeyId, WriterKey>,
    legacy: Legacy,
    /// Key files that are not endorsed, or whose endorsement is bad.
    pub unendorsed: Vec<(String, String)>,
    /// Trust records that are not the administrator's, or unreadable.
    pub bad_records: Vec<(String, String)>,
    /// The legacy record, if the repository was upgraded.
    pub legacy_record: Option<Id>,
    /// Version 1 key files still present (upgrade them).
    pub legacy_key_files: Vec<String>,
    /// Names of full-access key files that are endorsed.
    pub full_keys: Vec<KeyId>,
}

/// The descriptive part of a key file, parsed once for `key list`.
#[derive(Debug, Clone)]
pub struct ListedKey {
    pub name: String,
    pub file: KeyFile,
    /// `None`: endorsed; else why the key is ignored.
    pub problem: Option<String>,
}

impl Trust {
    /// A writer's trust: itself, in its domain, and the administrator.
    fn for_writer(secrets: &Secrets) -> Trust {
        let mut writers = HashMap::new();
        if let Some((key, domain)) = secrets.signer() {
            writers.insert(
                key.key_id(),
                WriterKey {
                    key_id: key.key_id(),
                    domain,
                    label: String::new(),
                    host: String::new(),
                    user: String::new(),
                    created: String::new(),
                    bound_host: None,
                    credential: false,
                    revoked: None,
                },
            );
        }
        let legacy = if secrets.signer().is_none() { Legacy::Open } else { Legacy::None };
        Trust { admin: secrets.admin_id(), writers, legacy, unendorsed: Vec::new(), bad_records: Vec::new(), legacy_record: None, legacy_key_files: Vec::new(), full_keys: Vec::new() }
    }

    /// Reads key files and trust records (full-access keys), or trusts
    /// itself and the administrator (writers). `config_version` 1 without
    /// a legacy record means "not upgraded".
    pub fn load(backend: &dyn Backend, secrets: &Secrets, config_version: u32) -> Result<(Trust, Vec<ListedKey>)> {
        if secrets.recovery().is_none() {
            return Ok((Trust::for_writer(secrets), Vec::new()));
        }
        let admin = secrets.admin_id().expect("full key");
        let repository = secrets.repository_id;
        let mut trust = Trust { admin: Some(admin), writers: HashMap::new(), legacy: Legacy::None, unendorsed: Vec::new(), bad_records: Vec::new(), legacy_record: None, legacy_key_files: Vec::new(), full_keys: Vec::new() };
        let keys = read_key_files(backend)?;
        for k in &keys {
            let object = ObjectKind::Key.path(&k.name);
            if let Some(p) = &k.problem {
                trust.unendorsed.push((object, p.clone()));
                continue;
            }
            let f = &k.file;
            if f.version() < 2 {
                trust.legacy_key_files.push(k.name.clone());
                continue;
            }
            if let Err(e) = f.verify_endorsement(&admin, &repository) {
                trust.unendorsed.push((object, format!("ignored: not endorsed by the administrator ({e}): planted, or damaged")));
                continue;
            }
            let key_id = f.key_id().expect("version 2 has a key ID");
            match f.info.role {
                Role::Full => trust.full_keys.push(key_id),
                Role::WriteOnly => {
                    trust.writers.insert(
                        key_id,
                        WriterKey {
                            key_id,
                            domain: f.domain().expect("checked when parsed"),
                            label: f.info.label.clone(),
                            host: f.info.host.clone(),
                            user: f.info.user.clone(),
                            created: f.info.created.to_string(),
                            bound_host: f.bound_host.clone(),
                            credential: f.credential,
                            revoked: None,
                        },
                    );
                }
            }
        }
        let catalog = secrets.domain_keys(&DomainId::ADMIN).expect("full key").catalog_key;
        let mut legacy: Option<Listed> = None;
        for obj in backend.list(ObjectKind::Trust)? {
            let object = ObjectKind::Trust.path(&obj.name);
            let record = match read_record(backend, &obj.name, &admin, &repository, &catalog) {
                Ok(r) => r,
                Err(e) => {
                    trust.bad_records.push((object, e));
                    continue;
                }
            };
            let id: Id = obj.name.parse().expect("checked by read_record");
            match record.kind {
                TrustKind::Legacy => {
                    legacy.get_or_insert_with(Listed::default).extend(&record.objects);
                    trust.legacy_record.get_or_insert(id);
                }
                TrustKind::Revocation => {
                    let Some(key) = record.key else {
                        trust.bad_records.push((object, "a revocation that names no key".into()));
                        continue;
                    };
                    let revocation = Revocation { record: id, time: record.time, reason: record.reason.unwrap_or_default(), objects: Listed::from(&record.objects) };
                    // The key file is gone once revoked: the record keeps
                    // what is needed to check its old objects.
                    let entry = trust.writers.entry(key.key_id).or_insert_with(|| writer_from_record(&key));
                    match &mut entry.revoked {
                        // Two revocations of one key: what either lists stays.
                        Some(r) => r.objects.extend(&record.objects),
                        None => entry.revoked = Some(revocation),
                    }
                }
            }
        }
        trust.legacy = match (legacy, config_version) {
            (Some(l), _) => Legacy::Listed(Box::new(l)),
            (None, v) if v < 2 => Legacy::Open,
            (None, _) => Legacy::None,
        };
        Ok((trust, keys))
    }

    /// Whether version 1 objects are all trusted (a repository not
    /// upgraded yet): nothing may be written to it.
    #[must_use]
    pub fn needs_upgrade(&self) -> bool {
        matches!(self.legacy, Legacy::Open)
    }

    #[must_use]
    pub fn admin(&self) -> Option<KeyId> {
        self.admin
    }

    /// Every writer the administrator endorsed or revoked.
    pub fn writers(&self) -> impl Iterator<Item = &WriterKey> {
        self.writers.values()
    }

    #[must_use]
    pub fn writer(&self, key: &KeyId) -> Option<&WriterKey> {
        self.writers.get(key)
    }

    /// Who a signer is, for messages: "write-only key 1a2b3c4d5e6f (clinic-b)".
    #[must_use]
    pub fn describe(&self, signer: Option<&KeyId>) -> String {
        match signer {
            None => "no key (an unsigned, version 1 object)".into(),
            Some(k) if Some(*k) == self.admin => "the administrator".into(),
            Some(k) => match self.writers.get(k) {
                Some(w) => {
                    let what = if w.credential { "write credential" } else { "write-only key" };
                    let revoked = if w.revoked.is_some() { ", revoked" } else { "" };
                    if w.label.is_empty() { format!("{what} {}{revoked}", k.short()) } else { format!("{what} {} ({}){revoked}", k.short(), w.label) }
                }
                None => format!("unknown key {} (not endorsed by the administrator)", k.short()),
            },
        }
    }

    /// A domain and whose it is, for messages.
    #[must_use]
    pub fn describe_domain(&self, domain: &DomainId) -> String {
        match *domain {
            DomainId::ADMIN => "the administrator's domain".into(),
            DomainId::LEGACY => "the legacy domain".into(),
            d => match self.writers.values().find(|w| w.domain == d) {
                Some(w) => format!("domain {d} of {}", self.describe(Some(&w.key_id))),
                None => format!("domain {d} (no known key)"),
            },
        }
    }

    /// Whether to believe an object of `kind` named `name`, signed by
    /// `signer` (`None`: unsigned, version 1) and naming `domain` (objects
    /// that have one). The signature itself must have been checked.
    #[must_use]
    pub fn judge(&self, kind: ObjectKind, name: &str, signer: Option<&KeyId>, domain: Option<DomainId>) -> Verdict {
        let Some(signer) = signer else {
            let ok = match &self.legacy {
                Legacy::Open => true,
                Legacy::Listed(l) => l.contains(kind, name),
                Legacy::None => false,
            };
            return if ok {
                Verdict::Trusted { domain: DomainId::LEGACY, by: Provenance::Legacy }
            } else {
                Verdict::Untrusted { reason: "unsigned (version 1) object that the legacy record does not list: written after the upgrade, by a key that cannot sign".into() }
            };
        };
        let domain_of = |d: Option<DomainId>| d.unwrap_or(DomainId::ADMIN);
        if Some(*signer) == self.admin {
            return Verdict::Trusted { domain: domain_of(domain), by: Provenance::Admin };
        }
        let Some(w) = self.writers.get(signer) else {
            return Verdict::Untrusted { reason: format!("signed by {}", self.describe(Some(signer))) };
        };
        if !matches!(kind, ObjectKind::Pack | ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Wal) {
            return Verdict::Untrusted { reason: format!("only the administrator may write a {kind}; this one is signed by {}", self.describe(Some(signer))) };
        }
        if domain != Some(w.domain) {
            return Verdict::Untrusted {
                reason: format!("signed by {} of domain {}, but it names domain {}: forged", self.describe(Some(signer)), w.domain, domain_of(domain)),
            };
        }
        if let Some(r) = &w.revoked
            && !r.objects.contains(kind, name)
        {
            return Verdict::Untrusted {
                reason: format!("written by {} after its revocation on {}", self.describe(Some(signer)), r.time.strftime("%Y-%m-%d %H:%M:%S")),
            };
        }
        Verdict::Trusted { domain: w.domain, by: Provenance::Writer(*signer) }
    }

    /// The host a writer key was issued for, if bound.
    #[must_use]
    pub fn bound_host(&self, by: &Provenance) -> Option<&str> {
        match by {
            Provenance::Writer(k) => self.writers.get(k).and_then(|w| w.bound_host.as_deref()),
            _ => None,
        }
    }
}

fn writer_from_record(key: &RevokedKey) -> WriterKey {
    WriterKey {
        key_id: key.key_id,
        domain: key.domain,
        label: key.label.clone(),
        host: key.host.clone(),
        user: key.user.clone(),
        created: key.created.clone(),
        bound_host: key.bound_host.clone(),
        credential: key.credential,
        revoked: None,
    }
}

/// Every key file, parsed (named by the hash of its bytes, checked).
pub fn read_key_files(backend: &dyn Backend) -> Result<Vec<ListedKey>> {
    let mut out = Vec::new();
    for k in backend.list(ObjectKind::Key)? {
        let bytes = match backend.read(ObjectKind::Key, &k.name) {
            Ok(b) => b,
            Err(e) if e.kind == reprise_backends::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        };
        if Id::of_object(&bytes).to_hex() != k.name {
            // Without a parsed file there is nothing to list: a stand-in
            // that never opens keeps the name visible to `check`.
            tracing::debug!("key file {} does not match its name", k.name);
            continue;
        }
        match KeyFile::from_bytes(&bytes) {
            Ok(file) => out.push(ListedKey { name: k.name, file, problem: None }),
            Err(e) => tracing::debug!("key file {}: {e}", k.name),
        }
    }
    Ok(out)
}

fn read_record(backend: &dyn Backend, name: &str, admin: &KeyId, repository: &Id, catalog: &reprise_format::crypto::SymmetricKey) -> Result<TrustRecord, String> {
    let id: Id = name.parse().map_err(|e: FormatError| e.to_string())?;
    let bytes = backend.read(ObjectKind::Trust, name).map_err(|e| e.to_string())?;
    if Id::of_object(&bytes) != id {
        return Err("content does not match its name (bytes were altered)".into());
    }
    let signer = reprise_format::trust::verify(&bytes, repository).map_err(|e| e.to_string())?;
    if signer != *admin {
        return Err(format!("ignored: signed by key {}, not by the administrator", signer.short()));
    }
    reprise_format::trust::open(&bytes, catalog).map_err(|e| e.to_string())
}

/// The error for an untrusted object a command was asked to use.
#[must_use]
pub fn untrusted(object: String, reason: String) -> Error {
    Error::Untrusted { object, reason }
}
