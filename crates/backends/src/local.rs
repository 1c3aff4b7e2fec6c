//! A repository in a local (or mounted) directory.
//!
//! Write-once on a POSIX file system: each object is written to `tmp/`,
//! fsync'd, made read-only, then hard-linked to its final name. `link(2)`
//! fails if the name exists, which gives "create, never overwrite"
//! atomically; the parent folder is fsync'd so the name survives a crash.
//! A crash leaves at worst a file in `tmp/`, which no reader looks at.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Backend, BackendError, ErrorKind, ObjectInfo, ObjectKind};

#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
    location: String,
}

impl LocalBackend {
    pub fn new(root: impl AsRef<Path>) -> Self {
        let root = root.as_ref().to_path_buf();
        let location = root.display().to_string();
        LocalBackend { root, location }
    }

    fn err(&self, object: &str, e: &io::Error) -> BackendError {
        let kind = match e.kind() {
            // A path through a file (`--repo /etc/passwd`): nothing there.
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => ErrorKind::PermissionDenied,
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorKind::StorageFull,
            _ => match e.raw_os_error() {
                Some(libc::ENOSPC | libc::EDQUOT) => ErrorKind::StorageFull,
                Some(libc::EACCES | libc::EPERM | libc::EROFS) => ErrorKind::PermissionDenied,
                _ => ErrorKind::Other,
            },
        };
        BackendError::new(kind, &self.location, object, e.to_string())
    }

    /// Creates missing folders below the root. When running as root, they
    /// are given the repository root's owner: a repository shared by root
    /// (base backups) and the `postgres` account (WAL archiving) must stay
    /// writable by both.
    fn make_dirs(&self, dir: &Path) -> io::Result<()> {
        if dir.is_dir() {
            return Ok(());
        }
        if let Some(parent) = dir.parent() {
            if parent != self.root {
                self.make_dirs(parent)?;
            }
        }
        match fs::create_dir(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
            Err(e) => return Err(e),
        }
        if nix::unistd::geteuid().is_root() {
            let md = fs::metadata(&self.root)?;
            std::os::unix::fs::chown(dir, Some(md.uid()), Some(md.gid()))?;
        }
        Ok(())
    }

    fn path(&self, kind: ObjectKind, name: &str) -> PathBuf {
        self.root.join(kind.path(name))
    }

    fn write_tmp(tmp: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        // Read-only once complete: a stray process cannot append to it.
        f.set_permissions(fs::Permissions::from_mode(0o444))?;
        Ok(())
    }
}

impl LocalBackend {
    /// The first file below `dir` that is not part of an empty repository
    /// layout (the folders `prepare` makes, and leftovers in `tmp/`), as a
    /// path relative to the root. Folders alone, as a `prepare` whose
    /// `init` then failed leaves them, do not count.
    fn foreign_file(&self, dir: &Path) -> io::Result<Option<String>> {
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let rel = path.strip_prefix(&self.root).map(|p| p.display().to_string()).unwrap_or_default();
            if !entry.file_type()?.is_dir() {
                return Ok(Some(rel));
            }
            let layout = ObjectKind::ALL.iter().any(|k| !k.dir().is_empty() && rel.split('/').next() == Some(k.dir()));
            if dir == self.root && rel == "tmp" {
                continue;
            }
            if !layout {
                return Ok(Some(rel));
            }
            if let Some(found) = self.foreign_file(&path)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LocalBackend {
    fn list_tree(&self, base: &Path, dir: &Path, kind: ObjectKind, out: &mut Vec<ObjectInfo>) -> Result<(), BackendError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err(&dir.display().to_string(), &e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| self.err(&dir.display().to_string(), &e))?;
            let md = entry.metadata().map_err(|e| self.err(&entry.path().display().to_string(), &e))?;
            if md.is_dir() {
                self.list_tree(base, &entry.path(), kind, out)?;
            } else if md.is_file() {
                let rel = entry.path().strip_prefix(base).map(|p| p.display().to_string()).unwrap_or_default();
                out.push(ObjectInfo { name: kind.name_from_relative(&rel), size: md.len() });
            }
        }
        Ok(())
    }
}

impl Backend for LocalBackend {
    fn location(&self) -> &str {
        &self.location
    }

    fn prepare(&self) -> Result<(), BackendError> {
        if self.path(ObjectKind::Config, "").exists() {
            return Err(BackendError::new(ErrorKind::AlreadyExists, &self.location, "config", "a repository already exists here"));
        }
        // A repository is never mixed into other files: whatever is there
        // could be taken for repository objects, or removed by a prune.
        match fs::metadata(&self.root) {
            Ok(md) if !md.is_dir() => {
                return Err(BackendError::new(ErrorKind::AlreadyExists, &self.location, "", "this is a file, not a directory: give a new or empty directory"));
            }
            Ok(_) => {
                if let Some(found) = self.foreign_file(&self.root).map_err(|e| self.err("", &e))? {
                    return Err(BackendError::new(ErrorKind::AlreadyExists, &self.location, "", crate::not_empty_message(&found)));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.err("", &e)),
        }
        let mut dirs = vec![self.root.join("tmp")];
        for kind in [ObjectKind::Key, ObjectKind::Snapshot, ObjectKind::Index, ObjectKind::Pack, ObjectKind::Hold, ObjectKind::PruneMark, ObjectKind::Trust] {
            dirs.push(self.root.join(kind.dir()));
        }
        for i in 0..=255u8 {
            dirs.push(self.root.join("data").join(hex::encode([i])));
        }
        for d in dirs {
            fs::create_dir_all(&d).map_err(|e| self.err(&d.display().to_string(), &e))?;
        }
        sync_dir(&self.root).map_err(|e| self.err("", &e))?;
        Ok(())
    }

    fn create(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        let object = kind.path(name);
        let dest = self.path(kind, name);
        let suffix: [u8; 8] = {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).expect("OS random");
            b
        };
        let tmp = self.root.join("tmp").join(format!("{}.{}.tmp", name.replace('/', "_"), hex::encode(suffix)));
        let mut written = Self::write_tmp(&tmp, bytes);
        // A location that is not a repository (a ledger witness) has no
        // `tmp/` until its first write. The root itself is never created
        // here: a mistyped path must fail, not start a new location.
        if matches!(&written, Err(e) if e.kind() == io::ErrorKind::NotFound) && self.root.is_dir() {
            self.make_dirs(&self.root.join("tmp")).map_err(|e| self.err(&object, &e))?;
            written = Self::write_tmp(&tmp, bytes);
        }
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(self.err(&object, &e));
        }
        // Folders that repositories made by older versions may lack.
        if matches!(kind, ObjectKind::Wal | ObjectKind::Hold | ObjectKind::PruneMark | ObjectKind::Trust | ObjectKind::Ledger | ObjectKind::Drill)
            && let Some(parent) = dest.parent()
        {
            self.make_dirs(parent).map_err(|e| self.err(&object, &e))?;
        }
        let linked = fs::hard_link(&tmp, &dest);
        let _ = fs::remove_file(&tmp);
        linked.map_err(|e| self.err(&object, &e))?;
        if let Some(parent) = dest.parent() {
            sync_dir(parent).map_err(|e| self.err(&object, &e))?;
        }
        Ok(())
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, BackendError> {
        fs::read(self.path(kind, name)).map_err(|e| self.err(&kind.path(name), &e))
    }

    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64) -> Result<Vec<u8>, BackendError> {
        let object = kind.path(name);
        let f = File::open(self.path(kind, name)).map_err(|e| self.err(&object, &e))?;
        let mut buf = vec![0u8; usize::try_from(length).expect("range fits in memory")];
        f.read_exact_at(&mut buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                BackendError::new(ErrorKind::Truncated, &self.location, &object, format!("object is shorter than {} bytes: truncated", offset + length))
            } else {
                self.err(&object, &e)
            }
        })?;
        Ok(buf)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, BackendError> {
        let dir = self.root.join(kind.dir());
        if matches!(kind, ObjectKind::Wal | ObjectKind::Ledger) {
            let mut out = Vec::new();
            self.list_tree(&dir, &dir, kind, &mut out)?;
            out.sort_by(|a, b| a.name.cmp(&b.name));
            return Ok(out);
        }
        let mut out = Vec::new();
        let mut push_dir = |d: &Path| -> Result<(), BackendError> {
            let entries = match fs::read_dir(d) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(self.err(&d.display().to_string(), &e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| self.err(&d.display().to_string(), &e))?;
                let md = entry.metadata().map_err(|e| self.err(&entry.path().display().to_string(), &e))?;
                if md.is_file()
                    && let Some(name) = entry.file_name().to_str() {
                        out.push(ObjectInfo { name: name.to_owned(), size: md.len() });
                    }
            }
            Ok(())
        };
        match kind {
            ObjectKind::Config => {
                if let Ok(md) = fs::metadata(self.path(kind, "")) {
                    return Ok(vec![ObjectInfo { name: "config".into(), size: md.len() }]);
                }
            }
            ObjectKind::Pack => {
                for i in 0..=255u8 {
                    push_dir(&dir.join(hex::encode([i])))?;
                }
            }
            _ => push_dir(&dir)?,
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64, BackendError> {
        fs::metadata(self.path(kind, name)).map(|m| m.len()).map_err(|e| self.err(&kind.path(name), &e))
    }

    fn remove(&self, kind: ObjectKind, name: &str) -> Result<(), BackendError> {
        fs::remove_file(self.path(kind, name)).map_err(|e| self.err(&kind.path(name), &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.prepare().unwrap();
        b.create(ObjectKind::Index, "abc", b"one").unwrap();
        let e = b.create(ObjectKind::Index, "abc", b"two").unwrap_err();
        assert_eq!(e.kind, ErrorKind::AlreadyExists);
        assert_eq!(b.read(ObjectKind::Index, "abc").unwrap(), b"one");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temporary file left behind");
        assert_eq!(b.list(ObjectKind::Index).unwrap(), vec![ObjectInfo { name: "abc".into(), size: 3 }]);
        assert_eq!(b.read(ObjectKind::Index, "nope").unwrap_err().kind, ErrorKind::NotFound);
    }

    #[test]
    fn wal_files_are_grouped_and_listed_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.prepare().unwrap();
        b.create(ObjectKind::Wal, "db/000000010000000000000003", b"seg").unwrap();
        b.create(ObjectKind::Wal, "db/00000002.history", b"hist").unwrap();
        assert!(dir.path().join("wal/db/0000000100000000/000000010000000000000003").exists());
        assert!(dir.path().join("wal/db/history/00000002.history").exists());
        let names: Vec<String> = b.list(ObjectKind::Wal).unwrap().into_iter().map(|o| o.name).collect();
        assert_eq!(names, vec!["db/000000010000000000000003", "db/00000002.history"]);
        assert_eq!(b.read(ObjectKind::Wal, "db/00000002.history").unwrap(), b"hist");
        assert_eq!(b.create(ObjectKind::Wal, "db/00000002.history", b"other").unwrap_err().kind, ErrorKind::AlreadyExists);
    }

    #[test]
    fn packs_are_spread_over_folders() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.prepare().unwrap();
        b.create(ObjectKind::Pack, "ab12", b"pack").unwrap();
        assert!(dir.path().join("data/ab/ab12").exists());
        assert_eq!(b.read_range(ObjectKind::Pack, "ab12", 1, 2).unwrap(), b"ac");
        assert!(b.read_range(ObjectKind::Pack, "ab12", 3, 2).is_err());
        b.create(ObjectKind::Config, "", b"{}").unwrap();
        assert_eq!(b.prepare().unwrap_err().kind, ErrorKind::AlreadyExists);
    }

    #[test]
    fn ledger_objects_keep_their_path_as_name() {
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.prepare().unwrap();
        b.create(ObjectKind::Ledger, "site", b"s").unwrap();
        b.create(ObjectKind::Ledger, "00ff/records/00000000000000000001", b"r").unwrap();
        assert!(dir.path().join("ledger/00ff/records/00000000000000000001").exists());
        let names: Vec<String> = b.list(ObjectKind::Ledger).unwrap().into_iter().map(|o| o.name).collect();
        assert_eq!(names, vec!["00ff/records/00000000000000000001", "site"]);
    }

    #[test]
    fn a_bare_directory_gets_its_tmp_folder_but_a_missing_one_is_not_created() {
        // A ledger witness is a plain directory, not a repository.
        let dir = tempfile::tempdir().unwrap();
        let b = LocalBackend::new(dir.path());
        b.create(ObjectKind::Ledger, "witness", b"w").unwrap();
        assert_eq!(b.read(ObjectKind::Ledger, "witness").unwrap(), b"w");
        let missing = LocalBackend::new(dir.path().join("typo"));
        assert_eq!(missing.create(ObjectKind::Ledger, "witness", b"w").unwrap_err().kind, ErrorKind::NotFound);
        assert!(!dir.path().join("typo").exists());
    }
}
