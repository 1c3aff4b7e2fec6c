//! Restore drill records: the evidence a drill leaves in the repository
//! (`drills/<id>`, docs/FORMAT.md section 18).
//!
//! Kept in the repository rather than beside it, so that the evidence
//! stays with the backups it proves (`copy` carries it off-site with
//! them, `copy::execute` step 6), and write-once like
//! every object: a failed drill cannot be rewritten into a passed one.
//! Only the administrator signs them (a drill restores patient data, which
//! only a full-access key may do); a record signed by anyone else is
//! ignored, like a planted hold. The engine stores bytes: what a record
//! says is the operations layer's business.

use reprise_backends::ObjectKind;
use reprise_format::Id;
use reprise_format::keys::DomainId;

use crate::error::{Error, Result};
use crate::repository::Repository;

/// Stores a drill record (its JSON); returns its ID (the BLAKE3 of the
/// stored bytes).
pub fn save(repo: &Repository, json: &[u8]) -> Result<Id> {
    repo.require_full("recording a restore drill")?;
    let admin = repo.admin_key("recording a restore drill")?;
    let keys = repo.domain_keys(&DomainId::ADMIN)?;
    let sealed = reprise_format::drill::seal(json, &keys.catalog_key, &admin, &repo.id());
    repo.save_object(ObjectKind::Drill, &sealed)
}

/// Drill record objects nobody may have written, with why they are ignored.
pub type Ignored = Vec<(String, String)>;

/// Drill records: each ID and its JSON.
pub type Records = Vec<(Id, Vec<u8>)>;

/// Every drill record the administrator signed (ID and JSON), and the
/// objects ignored, with why.
pub fn list(repo: &Repository) -> Result<(Records, Ignored)> {
    repo.require_full("reading restore drill records")?;
    let admin = repo.trust().admin();
    let keys = repo.domain_keys(&DomainId::ADMIN)?;
    let mut out = Vec::new();
    let mut ignored = Vec::new();
    for obj in repo.backend().list(ObjectKind::Drill)? {
        let Ok(id) = obj.name.parse::<Id>() else { continue };
        let object = ObjectKind::Drill.path(&obj.name);
        // A damaged record is reported, not a reason to hide the others.
        let sealed = match repo.read_object(ObjectKind::Drill, &id) {
            Ok(s) => s,
            Err(e) => {
                ignored.push((object, e.to_string()));
                continue;
            }
        };
        match reprise_format::drill::verify(&sealed, &repo.id()) {
            Ok(signer) if Some(signer) == admin => {}
            Ok(signer) => {
                ignored.push((object, format!("ignored: only the administrator records drills; this record is signed by {}", repo.trust().describe(Some(&signer)))));
                continue;
            }
            Err(e) => {
                ignored.push((object, format!("ignored: {e}")));
                continue;
            }
        }
        let json = reprise_format::drill::open(&sealed, &keys.catalog_key).map_err(|e| Error::Damaged { object, source: e })?;
        out.push((id, json));
    }
    Ok((out, ignored))
}
