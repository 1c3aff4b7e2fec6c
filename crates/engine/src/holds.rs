//! Legal holds: a snapshot under hold is never forgotten or pruned, whatever
//! the retention policy and whatever `--force` says, until the hold is
//! removed.
//!
//! A hold is an object of its own (`holds/<id>`, docs/FORMAT.md section 13):
//! the snapshot, the reason, who placed it and when, sealed under the
//! catalog key (a reason may name a patient or a case). Placing one is a
//! write; lifting one deletes it, which only a credential allowed to delete
//! can do (the same one that forgets and prunes).

use jiff::Timestamp;
use reprise_backends::ObjectKind;
use reprise_format::Id;
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
    if reason.trim().is_empty() {
        return Err(Error::InvalidArgument("a hold needs a reason: pass --reason \"...\" (a case number, a request)".into()));
    }
    let (host, user) = crate::repository::whoami();
    let hold = Hold { snapshot, reason: reason.to_owned(), time: Timestamp::now(), host, user };
    let sealed = reprise_format::hold::seal(&hold, &repo.secrets().write.catalog_key);
    let id = repo.save_object(ObjectKind::Hold, &sealed)?;
    // A `forget` running meanwhile may have removed the snapshot between
    // our lookup and the hold's write: say so rather than report a hold
    // on nothing.
    if let Err(e) = repo.snapshot_header(&snapshot) {
        return Err(Error::InvalidArgument(format!("snapshot {} was removed while the hold was being placed ({e}); the hold {} protects nothing", snapshot.short(), id.short())));
    }
    Ok(id)
}

/// Every hold of the repository.
pub fn list(repo: &Repository) -> Result<Vec<HoldEntry>> {
    let mut out = Vec::new();
    for obj in repo.backend().list(ObjectKind::Hold)? {
        let Ok(id) = obj.name.parse::<Id>() else { continue };
        let sealed = repo.read_object(ObjectKind::Hold, &id)?;
        let hold = reprise_format::hold::open(&sealed, &repo.secrets().write.catalog_key)
            .map_err(|e| Error::Damaged { object: ObjectKind::Hold.path(&obj.name), source: e })?;
        out.push(HoldEntry { id, hold });
    }
    out.sort_by(|a, b| a.hold.time.cmp(&b.hold.time));
    Ok(out)
}

/// Lifts a hold, named by its ID or a unique prefix.
pub fn remove(repo: &Repository, spec: &str) -> Result<HoldEntry> {
    repo.require_full("lifting a legal hold")?;
    let spec = spec.to_ascii_lowercase();
    let all = list(repo)?;
    let mut found = all.into_iter().filter(|h| h.id.to_hex().starts_with(&spec) && !spec.is_empty());
    let hold = match (found.next(), found.next()) {
        (Some(h), None) => h,
        (None, _) => return Err(Error::NotFound(format!("no hold {spec}: `reprise hold list` shows them"))),
        (Some(_), Some(_)) => return Err(Error::InvalidArgument(format!("hold {spec} is ambiguous: give more of its ID"))),
    };
    repo.backend().remove(ObjectKind::Hold, &hold.id.to_hex())?;
    Ok(hold)
}
