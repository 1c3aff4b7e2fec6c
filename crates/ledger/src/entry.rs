//! What an entry says: the operation, what it touched, who ran it and how
//! it ended. Never patient data — no file names, no paths, no content, no
//! error messages (they name paths): operations, components, identifiers,
//! counts, sizes, host, account, time, the reason when one was given, and
//! the result.

use std::collections::BTreeMap;

use reprise_format::Id;
use reprise_format::ledger::EntryRecord;
use serde::Serialize;

/// The sensitive operations recorded. Stored as their [`Operation::as_str`]
/// name; readers show names they do not know as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Init,
    Backup,
    Restore,
    Forget,
    Prune,
    HoldAdd,
    HoldRemove,
    KeyAdd,
    KeyRemove,
    KeyPassphrase,
    KeyExportRecovery,
    /// A writer's key revoked (`key revoke`, or `key remove` of a writer).
    KeyRevoke,
    /// A format 1 repository upgraded to format 2 (`key upgrade`).
    KeyUpgrade,
    Copy,
    Check,
    /// `repair index`, `repair keys`, `repair marks`: damage cleared,
    /// objects removed.
    Repair,
    /// A statement recorded on its own (`reprise ledger note`): a drill
    /// signed off, an incident declared.
    Note,
    /// A restore drill (`reprise drill run`): its record's ID and verdict.
    Drill,
}

impl Operation {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Init => "init",
            Operation::Backup => "backup",
            Operation::Restore => "restore",
            Operation::Forget => "forget",
            Operation::Prune => "prune",
            Operation::HoldAdd => "hold-add",
            Operation::HoldRemove => "hold-remove",
            Operation::KeyAdd => "key-add",
            Operation::KeyRemove => "key-remove",
            Operation::KeyPassphrase => "key-passphrase",
            Operation::KeyExportRecovery => "key-export-recovery",
            Operation::KeyRevoke => "key-revoke",
            Operation::KeyUpgrade => "key-upgrade",
            Operation::Copy => "copy",
            Operation::Check => "check",
            Operation::Repair => "repair",
            Operation::Note => "note",
            Operation::Drill => "drill",
        }
    }
}

/// How the operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// It ran to the end and found problems (a `check` that found damage).
    Problems,
    /// It failed; the category (`damaged`, `permission`, ...).
    Failed(String),
}

/// An entry to append: built by the caller, completed (position, time,
/// host, account, salt) by `Ledger::append`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub operation: Operation,
    pub component: Option<String>,
    pub snapshots: Vec<Id>,
    pub counts: BTreeMap<String, u64>,
    pub sizes: BTreeMap<String, u64>,
    pub refs: BTreeMap<String, String>,
    pub reason: Option<String>,
    pub outcome: Outcome,
    /// The host to record instead of this one (`backup --host`).
    pub host: Option<String>,
}

impl Entry {
    #[must_use]
    pub fn new(operation: Operation) -> Entry {
        Entry {
            operation,
            component: None,
            snapshots: Vec::new(),
            counts: BTreeMap::new(),
            sizes: BTreeMap::new(),
            refs: BTreeMap::new(),
            reason: None,
            outcome: Outcome::Ok,
            host: None,
        }
    }

    #[must_use]
    pub fn component(mut self, name: impl Into<String>) -> Entry {
        self.component = Some(name.into());
        self
    }

    #[must_use]
    pub fn snapshot(mut self, id: Id) -> Entry {
        self.snapshots.push(id);
        self
    }

    #[must_use]
    pub fn snapshots(mut self, ids: impl IntoIterator<Item = Id>) -> Entry {
        self.snapshots.extend(ids);
        self
    }

    #[must_use]
    pub fn count(mut self, what: &str, n: u64) -> Entry {
        self.counts.insert(what.to_owned(), n);
        self
    }

    #[must_use]
    pub fn size(mut self, what: &str, bytes: u64) -> Entry {
        self.sizes.insert(what.to_owned(), bytes);
        self
    }

    /// An identifier of something else the operation touched.
    #[must_use]
    pub fn reference(mut self, what: &str, id: impl Into<String>) -> Entry {
        self.refs.insert(what.to_owned(), id.into());
        self
    }

    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Entry {
        self.reason = Some(reason.into());
        self
    }

    #[must_use]
    pub fn outcome(mut self, outcome: Outcome) -> Entry {
        self.outcome = outcome;
        self
    }

    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Entry {
        self.host = Some(host.into());
        self
    }

    pub(crate) fn into_record(self, index: u64, time: jiff::Timestamp, host: String, user: String) -> EntryRecord {
        let (result, error) = match self.outcome {
            Outcome::Ok => ("ok".to_owned(), None),
            Outcome::Problems => ("problems".to_owned(), None),
            Outcome::Failed(category) => ("failed".to_owned(), Some(category)),
        };
        EntryRecord {
            version: reprise_format::ledger::ENTRY_VERSION,
            index,
            salt: reprise_format::crypto::random::<16>().to_vec(),
            time,
            host: self.host.unwrap_or(host),
            user,
            operation: self.operation.as_str().to_owned(),
            component: self.component,
            snapshots: self.snapshots,
            counts: self.counts,
            sizes: self.sizes,
            refs: self.refs,
            reason: self.reason,
            result,
            error,
        }
    }
}

/// An entry as read back, for people and for `--json` (the salt, which
/// means nothing to a reader, is left out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryView {
    pub ledger: String,
    pub index: u64,
    pub time: jiff::Timestamp,
    pub host: String,
    pub user: String,
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Id>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sizes: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub refs: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EntryView {
    #[must_use]
    pub fn new(ledger: &str, r: EntryRecord) -> EntryView {
        EntryView {
            ledger: ledger.to_owned(),
            index: r.index,
            time: r.time,
            host: r.host,
            user: r.user,
            operation: r.operation,
            component: r.component,
            snapshots: r.snapshots,
            counts: r.counts,
            sizes: r.sizes,
            refs: r.refs,
            reason: r.reason,
            result: r.result,
            error: r.error,
        }
    }
}
