//! Which WAL files `reprise copy` sends with a component's snapshots.
//!
//! A base backup on the copy must restore from the copy alone, so the copy
//! receives what WAL retention (`expire::KeepRule`) keeps for the base
//! backups the destination will hold after the copy and the component's
//! PITR window: every history file, everything from the start of the
//! anchor base backup, and each other base backup's own range. Older WAL
//! serves no base backup there and is not sent, and WAL that `forget` on
//! the copy removed is not sent again (pgBackRest and Barman expire archive
//! the same way).

use std::collections::HashMap;
use std::time::Duration;

use reprise_engine::backends::ObjectKind;
use reprise_engine::check::Problem;
use reprise_engine::copy::WalBatch;
use reprise_engine::{Repository, SnapshotInfo};

use crate::error::Result;
use crate::expire::KeepRule;
use crate::restore::{BaseBackupInfo, base_backup_info, base_backups};
use crate::walname::{self, WalFile};

/// The WAL of `component` the destination lacks, given the base-backup
/// snapshots about to be copied (`dst` is `None` for an empty destination).
///
/// Names present on both sides are compared by listed size only (reading
/// every archived file twice at each copy would cost more than the copy);
/// when the sizes differ, the headers' keyed hashes decide, and a real
/// difference is a conflict, never overwritten.
///
/// `window` is the component's PITR objective (`pitr`), as `forget` uses it.
pub fn wal_batch(src: &Repository, dst: Option<&Repository>, component: &str, copying: &[SnapshotInfo], window: Option<Duration>) -> Result<WalBatch> {
    let mut bases: Vec<BaseBackupInfo> = copying.iter().filter(|s| s.header.component == component).filter_map(base_backup_info).collect();
    if let Some(d) = dst {
        bases.extend(base_backups(d, component)?);
    }
    let rule = KeepRule::new(&bases, window, jiff::Timestamp::now());
    let prefix = format!("{component}/");
    let list = |r: &Repository| -> Result<HashMap<String, u64>> {
        Ok(r.backend().list(ObjectKind::Wal).map_err(reprise_engine::Error::from)?.into_iter().filter(|o| o.name.starts_with(&prefix)).map(|o| (o.name, o.size)).collect())
    };
    let theirs = match dst {
        Some(d) => list(d)?,
        None => HashMap::new(),
    };
    let mut batch = WalBatch { component: component.to_owned(), ..WalBatch::default() };
    let mut names: Vec<(String, u64)> = list(src)?.into_iter().collect();
    names.sort();
    for (name, size) in names {
        let file = &name[prefix.len()..];
        let wanted = match (walname::classify(file), &rule) {
            (Some(WalFile::History(_)), _) => true,
            // No base backup will be there: nothing to replay WAL onto.
            (None, _) | (Some(_), None) => false,
            (Some(_), Some(rule)) => rule.keeps(file),
        };
        if !wanted {
            continue;
        }
        match theirs.get(&name) {
            None => batch.names.push((name, size)),
            Some(&their_size) if their_size == size => batch.present += 1,
            Some(_) => {
                let header = |r: &Repository| reprise_engine::walobj::read(r, &name, false, None).ok().flatten().map(|w| w.header);
                match (header(src), dst.and_then(header)) {
                    (Some(a), Some(b)) if a.hash == b.hash && a.size == b.size => batch.present += 1,
                    _ => batch.conflicts.push(Problem {
                        object: ObjectKind::Wal.path(&name),
                        message: "the destination holds a different file under this name: left as it is; the component's snapshots are not copied until someone finds out which is right".into(),
                    }),
                }
            }
        }
    }
    Ok(batch)
}
