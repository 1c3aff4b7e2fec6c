//! Where a restore puts a cluster's tablespaces.
//!
//! A base backup stores each tablespace under `tablespaces/<oid>/`; the
//! data directory it stores still names the folders the backed-up server
//! used, twice: in the `pg_tblspc/<oid>` links and in the `tablespace_map`
//! that `pg_backup_stop` returned. Restored as stored, they send the
//! restored server to production's folders, and WAL replay writes there: a
//! restore beside production would corrupt production. At startup, with a
//! `backup_label`, PostgreSQL recreates the links from `tablespace_map`, so
//! fixing the links alone is not enough; both are rewritten
//! ([`relink`]) before the restored server can start.
//!
//! Each tablespace goes where the operator says (`--tablespace OID=DIR`,
//! or `--tablespace-dir DIR` for `DIR/<oid>`), and otherwise beside the
//! restored data directory, in `<data directory>.tablespaces/<oid>`:
//! outside the data directory, as PostgreSQL wants it (a delta restore of
//! the data directory removes what the snapshot lacks there, and a base
//! backup of the restored cluster would store a tablespace inside it
//! twice). The backed-up server's folder is never a default. Every
//! destination is checked before anything is written ([`place`],
//! [`check_targets`]): outside the data directory, not shared, and empty
//! unless the restore is a delta restore, which updates it in place.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use reprise_engine::format::Id;
use reprise_engine::format::tree::NodeKind;
use reprise_engine::{Error as EngineError, MasterIndex, Repository};

use crate::error::{PgError, Result};

/// Where the operator asked tablespaces to go.
#[derive(Debug, Clone, Default)]
pub struct TablespaceMap {
    /// One folder per tablespace OID (`--tablespace OID=DIR`).
    pub by_oid: BTreeMap<u32, PathBuf>,
    /// Every other tablespace in `under/<oid>` (`--tablespace-dir DIR`).
    pub under: Option<PathBuf>,
}

/// One tablespace of a base backup and the folder a restore gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Placement {
    pub oid: u32,
    /// Where the backed-up server kept it (its `pg_tblspc` link).
    pub original: Option<PathBuf>,
    pub location: PathBuf,
}

/// The tablespaces a base backup holds: each OID with the folder the
/// backed-up server used, from the stored `pg_tblspc` links and the
/// `tablespaces/` folder. A link without stored files is damage: that
/// tablespace cannot be restored.
pub fn stored(repo: &Repository, index: &MasterIndex, tree: &Id, base: &Id) -> Result<Vec<(u32, Option<PathBuf>)>> {
    let children = |path: &[u8]| -> Result<Vec<reprise_engine::format::tree::Node>> {
        match reprise_engine::walk::find(repo, index, tree, path) {
            Ok(Some(n)) if n.kind == NodeKind::Dir => match n.subtree {
                Some(sub) => Ok(repo.read_tree(index, &sub)?.nodes),
                None => Ok(Vec::new()),
            },
            Ok(_) | Err(EngineError::PathNotInSnapshot { .. }) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    };
    let oid = |name: &[u8]| std::str::from_utf8(name).ok().and_then(|s| s.parse::<u32>().ok());
    let mut found: BTreeMap<u32, (Option<PathBuf>, bool)> = BTreeMap::new();
    for n in children(b"tablespaces")? {
        if let Some(o) = oid(&n.name) {
            found.entry(o).or_default().1 = true;
        }
    }
    for n in children(b"pgdata/pg_tblspc")? {
        if let Some(o) = oid(&n.name) {
            let target = n.target.filter(|_| n.kind == NodeKind::Symlink).map(|t| PathBuf::from(OsString::from_vec(t)));
            found.entry(o).or_default().0 = target;
        }
    }
    if let Some((o, (original, _))) = found.iter().find(|(_, (_, has_files))| !has_files) {
        return Err(PgError::Engine(EngineError::Damaged {
            object: format!("base backup {}", base.short()),
            source: reprise_engine::format::FormatError::Malformed(format!(
                "its data directory links tablespace {o}{} but it holds no files for it: restore from another base backup",
                original.as_ref().map(|p| format!(" ({})", p.display())).unwrap_or_default()
            )),
        }));
    }
    Ok(found.into_iter().map(|(o, (original, _))| (o, original)).collect())
}

fn describe(stored: &[(u32, Option<PathBuf>)]) -> String {
    if stored.is_empty() {
        return "it has none".to_owned();
    }
    let list: Vec<String> = stored.iter().map(|(o, p)| format!("{o}{}", p.as_ref().map(|p| format!(" (was {})", p.display())).unwrap_or_default())).collect();
    format!("its tablespaces: {}", list.join(", "))
}

/// `a` is `b` or lies below it, comparing absolute paths component by component.
fn within(a: &Path, b: &Path) -> bool {
    a.starts_with(b)
}

/// Decides where each stored tablespace goes; refuses, before anything is
/// written, a map naming a tablespace the backup lacks, a folder inside
/// the data directory `to` (or holding it), two tablespaces sharing a
/// folder, and a computed default that is the backed-up server's own
/// folder (restoring over it must be asked for by OID).
pub fn place(stored: &[(u32, Option<PathBuf>)], to: &Path, map: &TablespaceMap, base: &Id) -> Result<Vec<Placement>> {
    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| PgError::io(p, e));
    let to = absolute(to)?;
    for (oid, dir) in &map.by_oid {
        if !stored.iter().any(|(o, _)| o == oid) {
            return Err(PgError::Invalid(format!(
                "--tablespace {oid}={}: base backup {} has no tablespace {oid} ({}); name one of its OIDs",
                dir.display(),
                base.short(),
                describe(stored)
            )));
        }
    }
    let mut out: Vec<Placement> = Vec::new();
    for (oid, original) in stored {
        let (location, explicit) = match (map.by_oid.get(oid), &map.under) {
            (Some(dir), _) => (absolute(dir)?, true),
            (None, Some(under)) => (absolute(under)?.join(oid.to_string()), false),
            (None, None) => {
                let mut p = to.clone().into_os_string();
                p.push(format!(".tablespaces/{oid}"));
                (PathBuf::from(p), false)
            }
        };
        if within(&location, &to) || within(&to, &location) {
            return Err(PgError::Invalid(format!(
                "tablespace {oid} cannot go to {}: it overlaps the data directory {}; choose a folder outside it with --tablespace {oid}=DIR",
                location.display(),
                to.display()
            )));
        }
        if !explicit && original.as_deref().is_some_and(|o| absolute(o).is_ok_and(|o| o == location)) {
            return Err(PgError::Invalid(format!(
                "tablespace {oid} would be restored into {}, the folder the backed-up server uses: to restore over it, say so with --tablespace {oid}={}; otherwise choose another folder",
                location.display(),
                location.display()
            )));
        }
        if let Some(other) = out.iter().find(|p| within(&p.location, &location) || within(&location, &p.location)) {
            return Err(PgError::Invalid(format!(
                "tablespaces {} and {oid} would share {}: give each its own folder with --tablespace OID=DIR",
                other.oid,
                location.display()
            )));
        }
        out.push(Placement { oid: *oid, original: original.clone(), location });
    }
    Ok(out)
}

/// Refuses, like the data directory, a destination that is not a folder,
/// or is not empty unless `delta` (which updates it in place).
pub fn check_targets(placements: &[Placement], delta: bool) -> Result<()> {
    for p in placements {
        match std::fs::symlink_metadata(&p.location) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(PgError::io(&p.location, e)),
            Ok(md) if !md.is_dir() => {
                return Err(PgError::Invalid(format!(
                    "tablespace {} would be restored into {}, which is not a directory: choose another folder with --tablespace {}=DIR",
                    p.oid,
                    p.location.display(),
                    p.oid
                )));
            }
            Ok(_) if delta => {}
            Ok(_) => {
                let mut entries = std::fs::read_dir(&p.location).map_err(|e| PgError::io(&p.location, e))?;
                if entries.next().is_some() {
                    return Err(PgError::Invalid(format!(
                        "tablespace {} would be restored into {}, which is not empty: choose an empty or new folder with --tablespace {}=DIR, or pass --delta to update it in place",
                        p.oid,
                        p.location.display(),
                        p.oid
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `tablespace_map` as PostgreSQL reads it: `OID PATH` lines, with `\`
/// before a newline, carriage return or backslash in the path.
#[must_use]
pub fn encode_map(placements: &[Placement]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in placements {
        out.extend_from_slice(p.oid.to_string().as_bytes());
        out.push(b' ');
        for &b in p.location.as_os_str().as_bytes() {
            if matches!(b, b'\n' | b'\r' | b'\\') {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'\n');
    }
    out
}

/// Points the restored data directory at the placed tablespaces: each
/// `pg_tblspc/<oid>` link, and `tablespace_map` when the backup has one.
pub fn relink(data_dir: &Path, placements: &[Placement]) -> Result<()> {
    let tblspc = data_dir.join("pg_tblspc");
    if !placements.is_empty() {
        std::fs::create_dir_all(&tblspc).map_err(|e| PgError::io(&tblspc, e))?;
    }
    for p in placements {
        let link = tblspc.join(p.oid.to_string());
        match std::fs::symlink_metadata(&link) {
            Ok(md) if md.is_dir() => {
                return Err(PgError::Invalid(format!(
                    "{} is a directory, not a tablespace link: tablespaces kept inside the data directory (allow_in_place_tablespaces) are not supported",
                    link.display()
                )));
            }
            Ok(_) => std::fs::remove_file(&link).map_err(|e| PgError::io(&link, e))?,
            Err(_) => {}
        }
        std::os::unix::fs::symlink(&p.location, &link).map_err(|e| PgError::io(&link, e))?;
        if let Some((uid, gid)) = crate::cluster::server_account() {
            let _ = std::os::unix::fs::lchown(&link, Some(uid), Some(gid));
        }
    }
    let map = data_dir.join("tablespace_map");
    if map.exists() {
        let tmp = data_dir.join("tablespace_map.reprise-tmp");
        std::fs::write(&tmp, encode_map(placements)).map_err(|e| PgError::io(&tmp, e))?;
        crate::cluster::hand_over(&tmp, 0o600)?;
        std::fs::rename(&tmp, &map).map_err(|e| PgError::io(&map, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Id {
        Id([7; 32])
    }

    fn stored() -> Vec<(u32, Option<PathBuf>)> {
        vec![(16384, Some(PathBuf::from("/srv/ts1"))), (16390, Some(PathBuf::from("/srv/ts2")))]
    }

    #[test]
    fn defaults_go_beside_the_data_directory_never_to_the_original() {
        let p = place(&stored(), Path::new("/r/data"), &TablespaceMap::default(), &base()).unwrap();
        assert_eq!(p[0].location, PathBuf::from("/r/data.tablespaces/16384"));
        assert_eq!(p[1].location, PathBuf::from("/r/data.tablespaces/16390"));
        assert_eq!(p[0].original, Some(PathBuf::from("/srv/ts1")));
    }

    #[test]
    fn a_map_by_oid_and_a_folder_for_the_rest() {
        let map = TablespaceMap { by_oid: [(16390, PathBuf::from("/fast/ts2"))].into(), under: Some(PathBuf::from("/big")) };
        let p = place(&stored(), Path::new("/r/data"), &map, &base()).unwrap();
        assert_eq!(p[0].location, PathBuf::from("/big/16384"));
        assert_eq!(p[1].location, PathBuf::from("/fast/ts2"));
    }

    #[test]
    fn the_original_folder_only_when_named_by_oid() {
        let under = TablespaceMap { by_oid: BTreeMap::new(), under: Some(PathBuf::from("/srv")) };
        let s = vec![(16384, Some(PathBuf::from("/srv/16384")))];
        let e = place(&s, Path::new("/r/data"), &under, &base()).unwrap_err().to_string();
        assert!(e.contains("the folder the backed-up server uses") && e.contains("--tablespace 16384=/srv/16384"), "{e}");
        let named = TablespaceMap { by_oid: [(16384, PathBuf::from("/srv/16384"))].into(), under: None };
        assert_eq!(place(&s, Path::new("/r/data"), &named, &base()).unwrap()[0].location, PathBuf::from("/srv/16384"));
    }

    #[test]
    fn unknown_oids_overlaps_and_the_data_directory_are_refused() {
        let unknown = TablespaceMap { by_oid: [(99, PathBuf::from("/x"))].into(), under: None };
        let e = place(&stored(), Path::new("/r/data"), &unknown, &base()).unwrap_err().to_string();
        assert!(e.contains("no tablespace 99") && e.contains("16384 (was /srv/ts1), 16390 (was /srv/ts2)"), "{e}");
        let inside = TablespaceMap { by_oid: [(16384, PathBuf::from("/r/data/ts"))].into(), under: None };
        assert!(place(&stored(), Path::new("/r/data"), &inside, &base()).unwrap_err().to_string().contains("overlaps the data directory"));
        let above = TablespaceMap { by_oid: [(16384, PathBuf::from("/r"))].into(), under: None };
        assert!(place(&stored(), Path::new("/r/data"), &above, &base()).unwrap_err().to_string().contains("overlaps the data directory"));
        let shared = TablespaceMap { by_oid: [(16384, PathBuf::from("/t")), (16390, PathBuf::from("/t/two"))].into(), under: None };
        assert!(place(&stored(), Path::new("/r/data"), &shared, &base()).unwrap_err().to_string().contains("would share"));
        // A sibling whose name merely starts like the data directory is not inside it.
        let sibling = TablespaceMap { by_oid: [(16384, PathBuf::from("/r/data2"))].into(), under: None };
        assert!(place(&stored(), Path::new("/r/data"), &sibling, &base()).is_ok());
    }

    #[test]
    fn non_empty_targets_are_refused_unless_delta() {
        let dir = tempfile::tempdir().unwrap();
        let p = vec![Placement { oid: 1, original: None, location: dir.path().join("ts") }];
        check_targets(&p, false).unwrap();
        std::fs::create_dir(dir.path().join("ts")).unwrap();
        check_targets(&p, false).unwrap();
        std::fs::write(dir.path().join("ts/PG_15_1"), b"").unwrap();
        assert!(check_targets(&p, false).unwrap_err().to_string().contains("not empty"));
        check_targets(&p, true).unwrap();
    }

    #[test]
    fn the_map_escapes_what_postgres_unescapes() {
        let p = vec![
            Placement { oid: 16384, original: None, location: PathBuf::from("/a b/ts") },
            Placement { oid: 16385, original: None, location: PathBuf::from("/odd\\name\nx") },
        ];
        assert_eq!(encode_map(&p), b"16384 /a b/ts\n16385 /odd\\\\name\\\nx\n".to_vec());
    }
}
