//! Keys: create a repository, add, remove and revoke keys, change a
//! passphrase, issue a write credential, export the recovery key, upgrade
//! a format 1 repository.
//!
//! Key management is governance (SPEC C8: rotation, escrow): a daemon's
//! rotation job and the operator's command run the same steps. The new
//! passphrase is given as data; asking for it is the interface's job.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use reprise_engine::Repository;
use reprise_engine::format::chunker::ChunkerParams;
use reprise_engine::format::keys::{KdfParams, Role};
use reprise_engine::format::sign::KeyId;
use reprise_engine::repository::KeyEntry;
use reprise_engine::revoke::RevokeReport;
use reprise_engine::upgrade::UpgradeReport;
use zeroize::Zeroizing;

use crate::error::{Category, OpsError, Result};
use crate::ledger;
use crate::workspace::Workspace;

/// A new repository.
#[derive(Debug, serde::Serialize)]
pub struct Created {
    pub repository: String,
    pub id: String,
    pub chunker: ChunkerParams,
}

/// Creates the repository the settings (or the plan) name, with the
/// passphrase its plan source gives (or a person types).
pub fn init(ws: &Workspace, kdf: KdfParams, chunker: ChunkerParams, pack_size: u32) -> Result<Created> {
    let target = ws.target(None)?;
    let backend = ws.backend(&target, None)?;
    let pass = ws.passphrase(&target, &format!("new passphrase for {}: ", target.url))?;
    let repo = Repository::init_with(backend, &pass, kdf, chunker, pack_size)?;
    ledger::record(ws, &repo, &ledger::init(&repo))?;
    Ok(Created { repository: target.url, id: repo.id().to_hex(), chunker: repo.config().chunker })
}

pub fn list(ws: &Workspace) -> Result<Vec<KeyEntry>> {
    Ok(ws.open(None)?.keys()?)
}

/// Adds a key opened by `passphrase` (a write-only key may be bound to the
/// host it is issued for); returns its file name and key ID.
pub fn add(ws: &Workspace, passphrase: &Zeroizing<Vec<u8>>, role: Role, kdf: KdfParams, label: &str, host: Option<&str>) -> Result<(String, KeyId)> {
    let repo = ws.open(None)?;
    let (name, key_id) = repo.add_key(passphrase, role, kdf, label, host)?;
    ledger::record(ws, &repo, &ledger::key_add(&name, &key_id.to_hex(), &role.to_string()))?;
    Ok((name, key_id))
}

/// Issues a write credential (a key file without passphrase, with its own
/// signing key and deduplication domain, for hosts that only add backups)
/// to `path`, mode 0600, never over a file; returns its key ID.
pub fn write_credential(ws: &Workspace, path: &Path, label: &str, host: Option<&str>) -> Result<KeyId> {
    let repo = ws.open(None)?;
    let secrets = repo.new_credential()?;
    let bytes = secrets.to_write_credential().map_err(|e| OpsError::usage(e.to_string()))?;
    // The credential file first: a record without its file vouches for
    // nobody, a file without its record is refused (unendorsed).
    write_secret_file(path, &bytes, "write credential")?;
    let key_id = match repo.record_credential(&secrets, label, host) {
        Ok((_, key_id)) => key_id,
        Err(e) => {
            let _ = std::fs::remove_file(path);
            return Err(e.into());
        }
    };
    ledger::record(ws, &repo, &ledger::write_credential(&key_id.to_hex()))?;
    Ok(key_id)
}

/// Writes the recovery key (it opens everything: for escrow, offline).
pub fn export_recovery(ws: &Workspace, path: &Path) -> Result<()> {
    let repo = ws.open(None)?;
    repo.require_full("exporting the recovery key")?;
    let bytes = repo.secrets().to_recovery_file().map_err(|e| OpsError::usage(e.to_string()))?;
    write_secret_file(path, &bytes, "recovery key")?;
    ledger::record(ws, &repo, &ledger::key_export_recovery())?;
    Ok(())
}

/// A key removed: a full-access key's file is deleted; a write-only key
/// or credential is revoked (what it wrote so far stays trusted).
#[derive(Debug, serde::Serialize)]
pub struct Removed {
    pub key: KeyEntry,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revocation: Option<RevokeReport>,
}

/// Removes the key `id` names (a key ID or file name prefix).
pub fn remove(ws: &Workspace, id: &str) -> Result<Removed> {
    let repo = ws.open(None)?;
    let key = repo.find_key(id)?;
    // A writer's key file alone is not what trusts it (its endorsement
    // is): deleting the file would leave what it writes later trusted.
    if key.info.role == Role::WriteOnly && key.status != "legacy" {
        let revocation = revoke_entry(&repo, &key, "removed")?;
        ledger::record(ws, &repo, &ledger::key_remove(&key.name, Some(&revocation)))?;
        return Ok(Removed { key, revocation: Some(revocation) });
    }
    repo.remove_key(&key.name)?;
    ledger::record(ws, &repo, &ledger::key_remove(&key.name, None))?;
    Ok(Removed { key, revocation: None })
}

/// A writer revoked, and what it had signed (which stays trusted).
#[derive(Debug, serde::Serialize)]
pub struct Revoked {
    #[serde(skip)]
    pub key: KeyEntry,
    #[serde(flatten)]
    pub report: RevokeReport,
}

/// Revokes the write-only key or credential `id` names, for `reason`.
pub fn revoke(ws: &Workspace, id: &str, reason: &str) -> Result<Revoked> {
    let repo = ws.open(None)?;
    let key = repo.find_key(id)?;
    if key.info.role != Role::WriteOnly || key.status == "legacy" {
        return Err(OpsError::usage(format!(
            "key {} is a {} key: only write-only keys and credentials are revoked (remove a full-access key with `reprise key remove`)",
            short(key.key_id.as_deref().unwrap_or(&key.name)),
            if key.status == "legacy" { "format 1" } else { key.kind }
        )));
    }
    let report = revoke_entry(&repo, &key, reason)?;
    ledger::record(ws, &repo, &ledger::key_revoke(&report, reason))?;
    Ok(Revoked { key, report })
}

fn revoke_entry(repo: &Repository, key: &KeyEntry, reason: &str) -> Result<RevokeReport> {
    let id: KeyId = key.key_id.as_deref().and_then(|k| k.parse().ok()).ok_or_else(|| OpsError::usage("this key has no key ID: run `reprise key upgrade` first"))?;
    Ok(reprise_engine::revoke::revoke(repo, &id, reason)?)
}

/// The first 12 characters of a key ID or file name, as `key list` shows.
#[must_use]
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Upgrades a format 1 repository to format 2: what is there is signed or
/// recorded as legacy, full-access keys are endorsed, format 1 write-only
/// keys are removed (their hosts need new ones).
pub fn upgrade(ws: &Workspace) -> Result<UpgradeReport> {
    let repo = ws.open(None)?;
    let current = repo.keys().ok().and_then(|keys| keys.into_iter().find(|k| k.current).map(|k| k.name));
    let report = reprise_engine::upgrade::upgrade(&repo, current.as_deref())?;
    ledger::record(ws, &repo, &ledger::key_upgrade(&report))?;
    Ok(report)
}

/// Replaces the key in use by one under `passphrase`; returns its name.
pub fn change_passphrase(ws: &Workspace, passphrase: &Zeroizing<Vec<u8>>, kdf: KdfParams) -> Result<String> {
    let repo = ws.open(None)?;
    let name = repo.change_passphrase(passphrase, kdf)?;
    ledger::record(ws, &repo, &ledger::key_passphrase(&name))?;
    Ok(name)
}

/// Creates a file readable by its owner only, never over an existing one.
fn write_secret_file(path: &Path, bytes: &[u8], what: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|e| {
        let category = if e.kind() == std::io::ErrorKind::AlreadyExists { Category::Usage } else { Category::Permission };
        OpsError::new(category, format!("cannot create {}: {e} (a {what} is never written over an existing file)", path.display()))
    })?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
