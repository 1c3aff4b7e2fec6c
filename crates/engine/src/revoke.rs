//! Revoking a writer (`reprise key revoke`, and `key remove` of a
//! write-only key).
//!
//! A stolen write credential must stop counting at once, without losing
//! what its host backed up before. Time cannot say which objects came
//! before: the thief controls the host's clock. So the revocation is a
//! list (docs/FORMAT.md 15): the objects the key had signed when it was
//! revoked stay trusted, checked against the public record the revocation
//! carries; anything else it signs is ignored and reported. The key file
//! goes (the passphrase opens nothing any more). The storage credential
//! must be rotated too: a revoked key's writes are not believed, but the
//! storage still accepts them (docs/STORAGE.md).

use reprise_backends::{ErrorKind, ObjectKind};
use reprise_format::Id;
use reprise_format::keys::DomainId;
use reprise_format::sign::{KeyId, SIGNATURE_BLOCK_LEN};
use reprise_format::trust::{ObjectList, RevokedKey, TrustKind, TrustRecord};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::repository::{Repository, whoami};

/// What a revocation recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RevokeReport {
    pub key_id: String,
    pub label: String,
    pub domain: String,
    /// The trust record written.
    pub record: Id,
    /// Objects the key had signed, which stay trusted.
    pub packs: usize,
    pub index_files: usize,
    pub snapshots: usize,
    pub wal_files: usize,
    /// Key files removed.
    pub key_files_removed: Vec<String>,
}

/// Revokes the writer key `key_id`.
pub fn revoke(repo: &Repository, key_id: &KeyId, reason: &str) -> Result<RevokeReport> {
    repo.require_full("revoking a key")?;
    let (admin, _) = repo.signer()?;
    let trust = repo.trust();
    let Some(writer) = trust.writer(key_id) else {
        return Err(Error::InvalidArgument(format!(
            "key {} is not a write-only key the administrator endorsed: full-access keys hold the recovery secret and cannot be revoked (remove the key file with `reprise key remove`, and if its passphrase leaked, move the data to a new repository with `reprise copy`); list keys with `reprise key list`",
            key_id.short()
        )));
    };
    if writer.revoked.is_some() {
        return Err(Error::InvalidArgument(format!("key {} is already revoked", key_id.short())));
    }
    let objects = signed_by(repo, key_id)?;
    let (host, user) = whoami();
    let record = TrustRecord {
        kind: TrustKind::Revocation,
        time: jiff::Timestamp::now(),
        host,
        user,
        objects,
        key: Some(RevokedKey {
            key_id: *key_id,
            domain: writer.domain,
            label: writer.label.clone(),
            host: writer.host.clone(),
            user: writer.user.clone(),
            created: writer.created.clone(),
            bound_host: writer.bound_host.clone(),
            credential: writer.credential,
        }),
        reason: Some(reason.to_owned()),
    };
    let keys = repo.domain_keys(&DomainId::ADMIN)?;
    // The record first: once the key file is gone, only the record makes
    // its old objects believable.
    let id = repo.save_object(ObjectKind::Trust, &reprise_format::trust::seal(&record, &keys.catalog_key, &admin, &repo.id()))?;
    let mut removed = Vec::new();
    for k in crate::trust::read_key_files(repo.backend().as_ref())? {
        if k.file.key_id() == Some(*key_id) {
            match repo.backend().remove(ObjectKind::Key, &k.name) {
                Ok(()) => removed.push(k.name),
                Err(e) if e.kind == ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    repo.reload_trust()?;
    Ok(RevokeReport {
        key_id: key_id.to_hex(),
        label: writer.label.clone(),
        domain: writer.domain.to_hex(),
        record: id,
        packs: record.objects.packs.len(),
        index_files: record.objects.index.len(),
        snapshots: record.objects.snapshots.len(),
        wal_files: record.objects.wal.len(),
        key_files_removed: removed,
    })
}

/// Every pack, index file, snapshot and WAL object whose signature block
/// names `key` (one small read of each object's end).
pub fn signed_by(repo: &Repository, key: &KeyId) -> Result<ObjectList> {
    let backend = repo.backend();
    let mut out = ObjectList::default();
    for kind in [ObjectKind::Pack, ObjectKind::Index, ObjectKind::Snapshot, ObjectKind::Wal] {
        for o in backend.list(kind)? {
            if o.size < SIGNATURE_BLOCK_LEN as u64 {
                continue;
            }
            let signer = match backend.read_range(kind, &o.name, o.size - SIGNATURE_BLOCK_LEN as u64, 32) {
                Ok(b) => b,
                Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Truncated) => continue,
                Err(e) => return Err(e.into()),
            };
            if signer != key.0 {
                continue;
            }
            if kind == ObjectKind::Wal {
                out.wal.push(o.name);
                continue;
            }
            let Ok(id) = o.name.parse::<Id>() else { continue };
            match kind {
                ObjectKind::Pack => out.packs.push(id),
                ObjectKind::Index => out.index.push(id),
                _ => out.snapshots.push(id),
            }
        }
    }
    Ok(out)
}
