//! Signed WAL objects, and names another writer took first.
//!
//! WAL objects are named as PostgreSQL names the files (docs/FORMAT.md 10),
//! not by a hash of their bytes, so any writer can create a name before the
//! server that owns it archives it (*squatting*, 10.1). The engine does not
//! know WAL naming; it knows objects: [`create`] stores a file under its
//! name, or — when the name holds an object this key does not trust for its
//! own domain — under `<name>@<first 16 hex digits of its key ID>`, and
//! reports it; [`read`] takes the plain name when it is trusted and fits,
//! and otherwise looks for the copies trusted writers stored beside it.

use reprise_backends::{ErrorKind, ObjectKind};
use reprise_format::keys::Domain;
use reprise_format::sign::{KeyId, ObjectType};
use reprise_format::wal::{self as walfmt, WalHeader};

use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::trust::{Provenance, Verdict};

/// zstd level for WAL objects' bodies.
pub const LEVEL: i32 = 1;

/// The name a writer stores a file under when its plain name is taken.
#[must_use]
pub fn beside(object: &str, key: &KeyId) -> String {
    format!("{object}@{}", &key.to_hex()[..16])
}

/// What [`create`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Stored,
    /// The same file was there already (a retried push).
    AlreadyThere,
    /// The plain name was taken by something else: stored beside it, under
    /// the object name given; the string says who took the name.
    Beside { object: String, squatter: String },
}

/// A conflict: this key's own domain already holds another file under the
/// name (a real divergence, never a squat).
#[derive(Debug, Clone)]
pub struct Conflict;

/// Seals and stores a WAL file under `object` (`<component>/<file>`),
/// signed in this key's domain. `header.hash` must be the keyed hash of
/// `data` under this domain's id key ([`hash`]).
pub fn create(repo: &Repository, object: &str, header: &WalHeader, data: &[u8]) -> Result<std::result::Result<Created, Conflict>> {
    let (signer, domain) = repo.signer()?;
    let keys = repo.domain_keys(&domain)?;
    let sealed = walfmt::seal(header, data, LEVEL, &domain, &keys.catalog_key, &repo.secrets().recovery_public, &signer, &repo.id());
    let mine = |name: &str| -> Result<Mine> { is_mine(repo, name, header, &domain) };
    match repo.backend().create(ObjectKind::Wal, object, &sealed) {
        Ok(()) => return Ok(Ok(Created::Stored)),
        Err(e) if e.kind == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.into()),
    }
    let squatter = match mine(object)? {
        Mine::Same => return Ok(Ok(Created::AlreadyThere)),
        Mine::Different => return Ok(Err(Conflict)),
        Mine::Foreign(who) => who,
    };
    let alt = beside(object, &signer.key_id());
    tracing::warn!("the WAL name {object} is taken by an object this key does not trust ({squatter}): archived as {alt}; report it to the administrator (`reprise check` names the writer)");
    match repo.backend().create(ObjectKind::Wal, &alt, &sealed) {
        Ok(()) => Ok(Ok(Created::Beside { object: alt, squatter })),
        Err(e) if e.kind == ErrorKind::AlreadyExists => match mine(&alt)? {
            Mine::Same => Ok(Ok(Created::AlreadyThere)),
            _ => Ok(Err(Conflict)),
        },
        Err(e) => Err(e.into()),
    }
}

/// The keyed hash a WAL header carries: this key's domain's id key.
pub fn hash(repo: &Repository, data: &[u8]) -> Result<reprise_format::Id> {
    Ok(repo.domain_keys(&repo.home_domain())?.id_key.blob_id(data))
}

enum Mine {
    Same,
    Different,
    /// Not a trusted object of this key's domain: who (or what) it is.
    Foreign(String),
}

fn is_mine(repo: &Repository, name: &str, header: &WalHeader, domain: &Domain) -> Result<Mine> {
    let existing = repo.backend().read(ObjectKind::Wal, name)?;
    let (verdict, signer) = judge(repo, name, &existing);
    match verdict {
        Verdict::Trusted { domain: d, .. } if d == *domain => {
            let keys = repo.domain_keys(domain)?;
            let old = walfmt::open_header(&existing, &keys.catalog_key).map_err(|e| Error::damaged(ObjectKind::Wal.path(name), e))?;
            if old.name != header.name {
                return Ok(Mine::Foreign(format!("a copy of {} signed by {}", old.name, repo.trust().describe(signer.as_ref()))));
            }
            Ok(if old.hash == header.hash && old.size == header.size { Mine::Same } else { Mine::Different })
        }
        Verdict::Trusted { .. } => Ok(Mine::Foreign(format!("a file of another domain, signed by {}", repo.trust().describe(signer.as_ref())))),
        Verdict::Untrusted { reason } => Ok(Mine::Foreign(reason)),
    }
}

/// Checks an object's signature and judges its signer.
fn judge(repo: &Repository, name: &str, bytes: &[u8]) -> (Verdict, Option<KeyId>) {
    let domain = match walfmt::domain_of(bytes) {
        Ok(d) => d,
        Err(e) => return (Verdict::Untrusted { reason: e.to_string() }, None),
    };
    let signer = match domain {
        Some(_) => match reprise_format::sign::verify_object(ObjectType::Wal, &repo.id(), bytes) {
            Ok((s, _)) => Some(s),
            Err(e) => return (Verdict::Untrusted { reason: e.to_string() }, reprise_format::sign::signer_of(bytes).ok()),
        },
        None => None,
    };
    (repo.trust().judge(ObjectKind::Wal, name, signer.as_ref(), domain), signer)
}

/// Checks one stored WAL object as `check --read-data` does: its signature
/// and signer, the name in its header, its content. `Err` says what is
/// wrong and who signed it.
pub fn verify(repo: &Repository, object: &str) -> Result<std::result::Result<(), String>> {
    let bytes = match repo.backend().read(ObjectKind::Wal, object) {
        Ok(b) => b,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(Ok(())),
        Err(e) => return Err(e.into()),
    };
    let (verdict, signer) = judge(repo, object, &bytes);
    let who = repo.trust().describe(signer.as_ref());
    let domain = match verdict {
        Verdict::Trusted { domain, .. } => domain,
        Verdict::Untrusted { reason } => return Ok(Err(format!("ignored: {reason}"))),
    };
    let file = object.rsplit_once('/').map_or(object, |(_, f)| f);
    let file = file.split_once('@').map_or(file, |(f, _)| f);
    let keys = repo.domain_keys(&domain)?;
    Ok(match walfmt::open(&bytes, &keys.catalog_key, &keys.id_key, repo.recovery("verifying archived WAL")?) {
        Ok((h, _)) if h.name == file => Ok(()),
        Ok((h, _)) => Err(format!("it holds {}, not {file} (signed by {who}): a file copied under another name", h.name)),
        Err(e) => Err(format!("{e} (signed by {who})")),
    })
}

/// The header of one stored WAL object (a copy beside a name included) and
/// who signed it, when a trusted writer stored it and this key can read its
/// domain; `None` otherwise (gone, or untrusted: [`verify`] reports those).
/// For checks that need what the file says of itself, such as the server
/// it comes from.
pub fn trusted_header(repo: &Repository, object: &str) -> Result<Option<(WalHeader, String)>> {
    let bytes = match repo.backend().read(ObjectKind::Wal, object) {
        Ok(b) => b,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (verdict, signer) = judge(repo, object, &bytes);
    let Verdict::Trusted { domain, .. } = verdict else { return Ok(None) };
    let Ok(keys) = repo.domain_keys(&domain) else { return Ok(None) };
    Ok(walfmt::open_header(&bytes, &keys.catalog_key).ok().map(|h| (h, repo.trust().describe(signer.as_ref()))))
}

/// A WAL file as read: the object it came from, its header, and (when the
/// content was asked for) its plaintext.
#[derive(Debug)]
pub struct WalRead {
    pub object: String,
    pub header: WalHeader,
    pub data: Option<Vec<u8>>,
    pub domain: Domain,
    pub by: Provenance,
}

/// Reads `object` (`<component>/<file>`): the plain name when it is
/// trusted, names `file` in its header, decrypts and hashes right, and
/// (given `system_identifier`, from the base backup being restored) comes
/// from that server; else a copy a trusted writer stored beside it.
/// `Ok(None)`: no trusted copy (not archived). With `content`, decrypts
/// and verifies the whole file (the recovery key); else the header only.
pub fn read(repo: &Repository, object: &str, content: bool, system_identifier: Option<u64>) -> Result<Option<WalRead>> {
    let file = object.rsplit_once('/').map_or(object, |(_, f)| f);
    let mut damage = None;
    let (first, problem) = match open(repo, object, file, content)? {
        Opened::Missing => return Ok(None),
        Opened::Good(r) => {
            if fits(&r, system_identifier) {
                return Ok(Some(*r));
            }
            let found = r.header.system_identifier;
            (Some(r), format!("it does not come from the server being recovered (system identifier {found}, not {})", system_identifier.unwrap_or_default()))
        }
        Opened::Bad(why) => (None, why),
        Opened::Damaged(e) => {
            let why = e.to_string();
            damage = Some(e);
            (None, why)
        }
    };
    // Abnormal (or a file that names no server, such as a timeline
    // history): look beside it, for every key this reader knows.
    let mut keys: Vec<KeyId> = repo.trust().writers().map(|w| w.key_id).collect();
    keys.extend(repo.trust().admin());
    keys.sort();
    for k in keys {
        let alt = beside(object, &k);
        if let Opened::Good(r) = open(repo, &alt, file, content)?
            && fits(&r, system_identifier)
        {
            tracing::warn!("{}: {problem}; using {}, stored beside it", ObjectKind::Wal.path(object), ObjectKind::Wal.path(&alt));
            return Ok(Some(*r));
        }
    }
    // Bytes that do not verify at all (altered, truncated) under a name no
    // trusted copy answers for: the file may be the genuine one, damaged.
    // Ending recovery there would promote with WAL missing; stop instead.
    if let Some(e) = damage {
        return Err(Error::damaged(ObjectKind::Wal.path(object), e));
    }
    if first.is_none() {
        tracing::warn!("{}: ignored: {problem}", ObjectKind::Wal.path(object));
    }
    Ok(first.map(|r| *r))
}

/// Whether a file fits the server being recovered: with its identifier
/// known, only a file that names it (a segment's first page always does;
/// a file that names none, such as a history file, is taken only when
/// nothing beside it does).
fn fits(r: &WalRead, system_identifier: Option<u64>) -> bool {
    match system_identifier {
        Some(want) if want != 0 => r.header.system_identifier == want,
        _ => true,
    }
}

enum Opened {
    Missing,
    Good(Box<WalRead>),
    /// There, but not a file this reader may use: why.
    Bad(String),
    /// There, but its bytes do not verify (bad magic, truncated, signature
    /// that does not check): damaged, or garbage.
    Damaged(reprise_format::FormatError),
}

fn open(repo: &Repository, object: &str, file: &str, content: bool) -> Result<Opened> {
    let bytes = match repo.backend().read(ObjectKind::Wal, object) {
        Ok(b) => b,
        Err(e) if e.kind == ErrorKind::NotFound => return Ok(Opened::Missing),
        Err(e) => return Err(e.into()),
    };
    match walfmt::domain_of(&bytes) {
        Err(e) => return Ok(Opened::Damaged(e)),
        Ok(Some(_)) => {
            if let Err(e) = reprise_format::sign::verify_object(ObjectType::Wal, &repo.id(), &bytes) {
                return Ok(Opened::Damaged(e));
            }
        }
        Ok(None) => {}
    }
    let (verdict, _) = judge(repo, object, &bytes);
    let (domain, by) = match verdict {
        Verdict::Trusted { domain, by } => (domain, by),
        Verdict::Untrusted { reason } => return Ok(Opened::Bad(reason)),
    };
    let Ok(keys) = repo.domain_keys(&domain) else {
        return Ok(Opened::Bad(format!("written in domain {domain}, which this key cannot read")));
    };
    let damaged = |e| Error::damaged(ObjectKind::Wal.path(object), e);
    let (header, data) = if content {
        let recovery = repo.recovery("reading archived WAL")?;
        let (h, d) = walfmt::open(&bytes, &keys.catalog_key, &keys.id_key, recovery).map_err(damaged)?;
        (h, Some(d))
    } else {
        (walfmt::open_header(&bytes, &keys.catalog_key).map_err(damaged)?, None)
    };
    if header.name != file {
        return Ok(Opened::Bad(format!("it holds {}, not {file}: a file copied under another name", header.name)));
    }
    Ok(Opened::Good(Box::new(WalRead { object: object.to_owned(), header, data, domain, by })))
}
