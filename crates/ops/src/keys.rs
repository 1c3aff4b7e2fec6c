//! Keys: create a repository, add and remove keys, change a passphrase,
//! issue a write credential, export the recovery key.
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
use reprise_engine::repository::KeyEntry;
use zeroize::Zeroizing;

use crate::error::{Category, OpsError, Result};
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
    Ok(Created { repository: target.url, id: repo.id().to_hex(), chunker: repo.config().chunker })
}

pub fn list(ws: &Workspace) -> Result<Vec<KeyEntry>> {
    Ok(ws.open(None)?.keys()?)
}

/// Adds a key opened by `passphrase`; returns its name.
pub fn add(ws: &Workspace, passphrase: &Zeroizing<Vec<u8>>, role: Role, kdf: KdfParams, label: &str) -> Result<String> {
    Ok(ws.open(None)?.add_key(passphrase, role, kdf, label)?)
}

/// Writes a write credential (a key file without passphrase, for hosts
/// that only add backups) to `path`, mode 0600, never over a file.
pub fn write_credential(ws: &Workspace, path: &Path) -> Result<()> {
    let repo = ws.open(None)?;
    repo.require_full("issuing a write credential")?;
    write_secret_file(path, &repo.secrets().to_write_credential(), "write credential")
}

/// Writes the recovery key (it opens everything: for escrow, offline).
pub fn export_recovery(ws: &Workspace, path: &Path) -> Result<()> {
    let repo = ws.open(None)?;
    repo.require_full("exporting the recovery key")?;
    let bytes = repo.secrets().to_recovery_file().map_err(|e| OpsError::usage(e.to_string()))?;
    write_secret_file(path, &bytes, "recovery key")
}

/// Removes the key whose name starts with `id`; returns its full name.
pub fn remove(ws: &Workspace, id: &str) -> Result<String> {
    let repo = ws.open(None)?;
    let key = repo.find_key(id)?;
    repo.remove_key(&key.name)?;
    Ok(key.name)
}

/// Replaces the key in use by one under `passphrase`; returns its name.
pub fn change_passphrase(ws: &Workspace, passphrase: &Zeroizing<Vec<u8>>, kdf: KdfParams) -> Result<String> {
    Ok(ws.open(None)?.change_passphrase(passphrase, kdf)?)
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
