//! `repair index | config | keys | marks`: clear the damage `check`
//! reports (the protocols are `reprise_engine::repair`'s).

use reprise_engine::repair::{self, ConfigRepair, IndexRepair, KeyRepair, MarkRepair};

use crate::error::{Category, OpsError, Result};
use crate::ledger;
use crate::workspace::{Key, Workspace};
use crate::{Verdict, count};

/// The index rebuilt from the packs' own directories, and its verdict:
/// packs whose directory cannot be read are damage.
#[derive(Debug, serde::Serialize)]
#[serde(transparent)]
pub struct IndexRepaired(pub IndexRepair);

impl Verdict for IndexRepaired {
    fn failure(&self) -> Option<OpsError> {
        let unreadable = self.0.unreadable_packs.len();
        (unreadable > 0).then(|| {
            OpsError::new(
                Category::Damaged,
                format!(
                    "the index is repaired, but {} damaged themselves (listed): the files that need them cannot be restored from here; `reprise check --read-data` lists all damage",
                    count(unreadable, "pack is", "packs are")
                ),
            )
        })
    }
}

pub fn index(ws: &Workspace, dry_run: bool) -> Result<IndexRepaired> {
    let repo = ws.open(None)?;
    let r = repair::repair_index(&repo, dry_run)?;
    if !r.dry_run {
        ledger::record(ws, &repo, &ledger::repair_index(&r))?;
    }
    Ok(IndexRepaired(r))
}

pub fn keys(ws: &Workspace, dry_run: bool) -> Result<KeyRepair> {
    let repo = ws.open(None)?;
    let r = repair::repair_keys(&repo, dry_run)?;
    if !r.dry_run {
        ledger::record(ws, &repo, &ledger::repair("keys", r.keys, r.damaged_keys.len()))?;
    }
    Ok(r)
}

pub fn marks(ws: &Workspace, dry_run: bool) -> Result<MarkRepair> {
    let repo = ws.open(None)?;
    let r = repair::repair_marks(&repo, dry_run)?;
    if !r.dry_run {
        ledger::record(ws, &repo, &ledger::repair("marks", r.marks, r.damaged_marks.len()))?;
    }
    Ok(r)
}

/// Writes the config again, from the key that opens the repository (and
/// what can still be read of the old config), or from a copy's
/// (`from`: a plan repository name or a URL).
pub fn config(ws: &Workspace, from: Option<&str>, dry_run: bool) -> Result<ConfigRepair> {
    let target = ws.target(None)?;
    let backend = ws.backend(&target, None)?;
    let from = from.map(|f| ws.backend(&ws.target_by_name_or_url(f), None)).transpose()?;
    Ok(match ws.key(&target)? {
        Key::Secrets(s) => repair::repair_config(&backend, repair::Key::Secrets(s), from.as_ref(), dry_run)?,
        Key::Passphrase(p) => repair::repair_config(&backend, repair::Key::Passphrase(&p), from.as_ref(), dry_run)?,
    })
}
