//! The witness: a second place that keeps a copy of every checkpoint, and
//! that the hosts writing the ledger cannot delete from or overwrite.
//!
//! A repository ledger alone proves little against whoever controls the
//! repository: with its keys and delete rights, history can be removed and
//! re-signed. A witness pins it. Each append writes its checkpoint to the
//! witness under `ledger/<ledger>/checkpoints/<size>` (create-only, like
//! every object), and `verify` compares the log with every witnessed
//! checkpoint: an entry changed, removed or reordered after it was
//! witnessed changes the root of every later size, and the first size whose
//! root differs names the first entry rewritten.
//!
//! What makes a witness one is the storage, not this code: another
//! repository or bucket whose credentials the writing hosts hold only to
//! create (S3: `s3:PutObject` without `s3:DeleteObject`, ideally with
//! Object Lock; Azure: a SAS with `c` but not `w`/`d`; a directory of
//! another account, exported create-only). docs/STORAGE.md shows how.
//! A witness holds only checkpoints: sizes and roots, which reveal nothing
//! of the entries (each is salted).
//!
//! A location becomes a witness once `reprise ledger witness-init` writes
//! its marker (`ledger/witness`), so that a mistyped URL is refused instead
//! of quietly collecting checkpoints nobody will look at.

use std::sync::Arc;

use reprise_backends::{Backend, ErrorKind, ObjectKind};
use reprise_format::ledger::{LedgerId, LedgerName, WITNESS_NAME, WitnessMarker};

use crate::error::{Error, Result};

/// A witnessed checkpoint: its ledger, its size, its object name.
pub(crate) type Witnessed = (LedgerId, u64, String);

/// An opened witness location.
#[derive(Debug, Clone)]
pub struct Witness {
    backend: Arc<dyn Backend>,
}

/// What happened when a checkpoint was sent to the witness.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "detail")]
pub enum WitnessStatus {
    /// No witness is configured.
    None,
    /// The witness holds this checkpoint.
    Witnessed,
    /// The witness could not be written; the entry is in the repository
    /// only (the next append sends this checkpoint again).
    Failed(String),
    /// The witness holds another checkpoint for this size: the log has
    /// forked (history was rewritten); `ledger verify` names where.
    Conflict(String),
}

impl Witness {
    /// Opens a witness, refusing a location without its marker.
    pub fn open(backend: Arc<dyn Backend>) -> Result<Witness> {
        match backend.read(ObjectKind::Ledger, WITNESS_NAME) {
            Ok(bytes) => {
                WitnessMarker::check(&bytes).map_err(|e| Error::damaged(format!("{}/ledger/{WITNESS_NAME}", backend.location()), e.to_string()))?;
                Ok(Witness { backend })
            }
            Err(e) if e.kind == ErrorKind::NotFound => Err(Error::WitnessMissing {
                location: backend.location().to_owned(),
                fix: format!("check the witness URL (--witness, REPRISE_LEDGER_WITNESS or ledger.witness in the plan), or prepare it with `reprise ledger witness-init {}` as its owner", backend.location()),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes a location a witness (its owner runs this once). Returns
    /// `false` when it already was one.
    pub fn init(backend: Arc<dyn Backend>) -> Result<bool> {
        match backend.create(ObjectKind::Ledger, WITNESS_NAME, &WitnessMarker::to_bytes()) {
            Ok(()) => Ok(true),
            Err(e) if e.kind == ErrorKind::AlreadyExists => Witness::open(backend).map(|_| false),
            Err(e) if e.kind == ErrorKind::NotFound => Err(Error::WitnessMissing {
                location: backend.location().to_owned(),
                fix: "create the directory (or bucket, container) first, as the account that owns the witness".into(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    #[must_use]
    pub fn location(&self) -> &str {
        self.backend.location()
    }

    /// Sends a checkpoint. An existing one with the same bytes is success
    /// (an earlier attempt); with other bytes, a conflict.
    pub(crate) fn put(&self, ledger: LedgerId, size: u64, note: &[u8]) -> WitnessStatus {
        let name = ledger.checkpoint_name(size);
        match self.backend.create(ObjectKind::Ledger, &name, note) {
            Ok(()) => WitnessStatus::Witnessed,
            Err(e) if e.kind == ErrorKind::AlreadyExists => match self.backend.read(ObjectKind::Ledger, &name) {
                Ok(held) if held == note => WitnessStatus::Witnessed,
                Ok(_) => WitnessStatus::Conflict(format!(
                    "the witness at {} holds another checkpoint for size {size} of ledger {ledger}: this log's history differs from the witnessed one; run `reprise ledger verify`",
                    self.location()
                )),
                Err(e) => WitnessStatus::Failed(e.to_string()),
            },
            Err(e) => WitnessStatus::Failed(e.to_string()),
        }
    }

    /// The checkpoint the witness holds for a size, if any.
    pub(crate) fn get(&self, ledger: LedgerId, size: u64) -> Result<Option<Vec<u8>>> {
        match self.backend.read(ObjectKind::Ledger, &ledger.checkpoint_name(size)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every witnessed checkpoint, by ledger: (size, object name), sorted;
    /// and names under `ledger/` this format does not define.
    pub(crate) fn list(&self) -> Result<(Vec<Witnessed>, Vec<String>)> {
        let mut out = Vec::new();
        let mut strange = Vec::new();
        for o in self.backend.list(ObjectKind::Ledger)? {
            match LedgerName::parse(&o.name) {
                Some(LedgerName::Checkpoint(id, size)) => out.push((id, size, o.name)),
                Some(LedgerName::Witness) => {}
                _ => strange.push(o.name),
            }
        }
        out.sort_by_key(|a| (a.0, a.1));
        Ok((out, strange))
    }

    pub(crate) fn read(&self, name: &str) -> Result<Vec<u8>> {
        Ok(self.backend.read(ObjectKind::Ledger, name)?)
    }

    /// Where an object of this witness is, for messages.
    pub(crate) fn path(&self, name: &str) -> String {
        // Object-store locations end with their parameters (`?endpoint=`).
        let base = self.location().split('?').next().unwrap_or_default();
        format!("{}/{}", base.trim_end_matches('/'), ObjectKind::Ledger.path(name))
    }
}
