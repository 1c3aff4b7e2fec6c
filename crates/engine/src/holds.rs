//! Legal holds: a snapshot under hold is never forgotten or pruned, whatever
//! the retention policy and whatever `--force` says, until the hold is
//! removed.
//!
//! A hold is an object of its own (`holds/<id>`, docs/FORMAT.md section 13):
//! the snapshot, the reason, who placed it and when, sealed under the
//! administrator domain's catalog key (a reason may name a patient or a
//! case) and signed by the administrator. Placing one is a write; lifting
//! one deletes it, which only a credential allowed to delete can do (the
//! same one that forgets and prunes). A hold a writer planted is ignored:
//! it counts for nothing, and `check` and `hold list` report it.

use jiff::Timestamp;
use reprise_backends::ObjectKind;
use reprise_format::Id;
use reprise_format::keys::DomainId;
pub use reprise_format::hold::Hold;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::repository::Repository;

/// A hold and the name of its object.
#[derive(Debug, Clone, Serialize)]
pub struct HoldEntry {
    pub id: Id,
    #[serde(flatten)]
    pub hold: Hold,
}

/// Places a hold on a snapshot; returns the hold's ID.
pub fn add(repo: &Repository, snapshot: Id, reason: &str) -> Result<Id> {
    repo.require_full("placing a legal hold")?;
    let (signer, _) = repo.signer()?;
    if reason.trim().is_empty() {
        return Err(Error::InvalidArgument("a hold needs a reason: pass --reason \"...\" (a case number, a request)".into()));
    }
    let (host, user) = crate::repository::whoami();
    let hold = Hold { snapshot, reason: reason.to_owned(), time: Timestamp::now(), host, user };
    let keys = repo.domain_keys(&DomainId::ADMIN)?;
    let sealed = reprise_format::hold::seal(&hold, &keys.catalog_key, &signer, &repo.id());
    let id = repo.save_object(ObjectKind::Hold, &sealed)?;
    // A `forget` running meanwhile may have removed the snapshot between
    // our lookup and the hold's write: say so rather than report a hold
    // on nothing.
    if let Err(e) = repo.snapshot_header(&snapshot) {
        return Err(Error::InvalidArgument(format!("snapshot {} was removed while the hold was being placed ({e}); the hold {} protects nothing", snapshot.short(), id.short())));
    }
    Ok(id)
}

/// Hold objects nobody may have placed, with why they are ignored.
pub type Ignored = Vec<(String, String)>;

/// Every hold the administrator placed, and the hold objects ignored
/// (another signer, or unsigned after the upgrade), with why.
pub fn list_all(repo: &Repository) -> Result<(Vec<HoldEntry>, Ignored)> {
    repo.require_full("reading legal holds")?;
    let admin = repo.trust().admin();
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    for obj in repo.backend().list(ObjectKind::Hold)? {
        let Ok(id) = obj.name.parse::<Id>() else { continue };
        let object = ObjectKind::Hold.path(&obj.name);
        let sealed = repo.read_object(ObjectKind::Hold, &id)?;
        let domain = if reprise_format::hold::is_v2(&sealed) {
            match reprise_format::hold::verify(&sealed, &repo.id()) {
                Ok(signer) if Some(signer) == admin => DomainId::ADMIN,
                Ok(signer) => {
                    ignored.push((object, format!("ignored: only the administrator may place a hold; this one is signed by {}", repo.trust().describe(Some(&signer)))));
                    continue;
                }
                Err(e) => {
                    ignored.push((object, format!("ignored: {e}")));
                    continue;
                }
            }
        } else if repo.trust().needs_upgrade() {
            DomainId::LEGACY
        } else {
            ignored.push((object, "ignored: an unsigned (format 1) hold, written after the repository stopped trusting unsigned objects".into()));
            continue;
        };
        let keys = repo.domain_keys(&domain)?;
        let hold = reprise_format::hold::open(&sealed, &keys.catalog_key).map_err(|e| Error::Damaged { object, source: e })?;
        out.push(HoldEntry { id, hold });
    }
    out.sort_by_key(|h| h.hold.time);
    Ok((out, ignored))
}

/// Every hold the administrator placed.
pub fn list(repo: &Repository) -> Result<Vec<HoldEntry>> {
    Ok(list_all(repo)?.0)
}

/// Lifts a hold, named by its ID or a unique prefix. An ignored hold
/// object (one a writer planted) can be removed the same way; it is
/// returned as `None`.
pub fn remove(repo: &Repository, spec: &str) -> Result<(Id, Option<HoldEntry>)> {
    repo.require_full("lifting a legal hold")?;
    let spec = spec.to_ascii_lowercase();
    let (all, ignored) = list_all(repo)?;
    let planted = ignored.into_iter().filter_map(|(o, _)| o.rsplit('/').next().and_then(|n| n.parse::<Id>().ok()));
    let mut found = all
        .into_iter()
        .map(|h| (h.id, Some(h)))
        .chain(planted.map(|id| (id, None)))
        .filter(|(id, _)| id.to_hex().starts_with(&spec) && !spec.is_empty());
    let hold = match (found.next(), found.next()) {
        (Some(h), None) => h,
        (None, _) => return Err(Error::NotFound(format!("no hold {spec}: `reprise hold list` shows them"))),
        (Some(_), Some(_)) => return Err(Error::InvalidArgument(format!("hold {spec} is ambiguous: give more of its ID"))),
    };
    repo.backend().remove(ObjectKind::Hold, &hold.0.to_hex())?;
    Ok(hold)
}
