//! Appending to the log, and reading it back.
//!
//! **Sequencing with write-once objects.** Record `n` of a ledger is the
//! object `ledger/<ledger>/records/<n>`; an appender takes position `n` by
//! creating that object, and `Backend::create` never overwrites, so among
//! appenders racing for `n` (processes, hosts) exactly one wins; the others
//! read the winner's record and try `n + 1`. An append is acknowledged when
//! its create returned: the record is durable, its position taken for good.
//! There is no lock to break, no pending queue to integrate later, and
//! nothing a write-only key needs beyond create and read.
//!
//! **Crash safety.** The create is the only write that matters, and it is
//! atomic (local disks: temporary file, fsync, `link(2)`; object stores:
//! one PUT with `If-None-Match: *`). A `kill -9` before it leaves nothing
//! (the entry was never acknowledged), after it a complete record. The
//! witness write comes after; if it is lost, the next append sends that
//! checkpoint again, and `verify` reports what stayed unwitnessed.
//!
//! **Finding the end** costs a few `HEAD`s: from a hint (the size last seen,
//! kept in the cache directory) the appender gallops forward and bisects
//! to the first missing record, then checks that the one after it is
//! missing too: a log with a hole (a record removed) is refused, not
//! written into.
//!
//! Each record carries the signed checkpoint and the frontier of the tree
//! it ends (see `reprise_format::ledger`), so the next appender checks its
//! predecessor's signature and extends the tree from that one object.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reprise_backends::{Backend, ErrorKind, ObjectKind};
use reprise_engine::Repository;
use reprise_format::ledger::{self, EntryRecord, LedgerId, LedgerName, Record, SITE_NAME, SiteMarker};
use serde::Serialize;

use crate::checkpoint::{self, Refused, Verified};
use crate::entry::{Entry, EntryView};
use crate::error::{Error, Result};
use crate::keys::LedgerKeys;
use crate::tree::{Frontier, Hash, record_hash};
use crate::witness::{Witness, WitnessStatus};

/// How long an appender keeps losing races before it gives up.
#[allow(clippy::duration_suboptimal_units, reason = "Duration::from_mins needs Rust 1.91; the workspace supports 1.85")]
const APPEND_PATIENCE: Duration = Duration::from_secs(120);
const APPEND_ATTEMPTS: u32 = 100_000;

/// A repository's ledgers: its own (which this location appends to) and
/// those copies brought from other sites.
pub struct Ledger<'r> {
    pub(crate) repo: &'r Repository,
    pub(crate) keys: LedgerKeys,
    pub(crate) witness: Option<Witness>,
    hint_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Ledger<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("repository", &self.repo.backend().location()).field("witness", &self.witness.as_ref().map(Witness::location)).finish_non_exhaustive()
    }
}

/// Proof that an entry was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Receipt {
    pub ledger: String,
    /// The entry's position (0-based).
    pub index: u64,
    /// The size of the tree it ends (index + 1).
    pub tree_size: u64,
    /// The root of that tree (base64), as its signed checkpoint says.
    pub root: String,
    pub witness: WitnessStatus,
}

/// A record read and checked as far as it can be on its own: its
/// checkpoint's signature, its frontier against that checkpoint, its entry
/// decrypted.
pub(crate) struct Opened {
    pub checkpoint: Result<Verified, Refused>,
    /// The frontier, when it has the right shape for the checkpoint's size.
    pub frontier: Option<Frontier>,
    /// The entry's CBOR (what the tree hashes), or why it does not open.
    pub plain: Result<Vec<u8>, String>,
    pub entry: Option<EntryRecord>,
    pub note: Vec<u8>,
}

impl<'r> Ledger<'r> {
    /// The ledgers of `repo`, signing and verifying with `keys`.
    #[must_use]
    pub fn new(repo: &'r Repository, keys: LedgerKeys) -> Ledger<'r> {
        Ledger { repo, keys, witness: None, hint_dir: None }
    }

    /// Sends every checkpoint to `witness` as well, and checks against it.
    #[must_use]
    pub fn with_witness(mut self, witness: Witness) -> Ledger<'r> {
        self.witness = Some(witness);
        self
    }

    /// Where to keep the size last seen (a hint that saves requests).
    #[must_use]
    pub fn with_hint_dir(mut self, dir: PathBuf) -> Ledger<'r> {
        self.hint_dir = Some(dir);
        self
    }

    #[must_use]
    pub fn keys(&self) -> &LedgerKeys {
        &self.keys
    }

    #[must_use]
    pub fn witness(&self) -> Option<&Witness> {
        self.witness.as_ref()
    }

    pub(crate) fn backend(&self) -> &dyn Backend {
        self.repo.backend().as_ref()
    }

    /// This location's own ledger, if anything was ever appended here.
    pub fn site(&self) -> Result<Option<LedgerId>> {
        match self.backend().read(ObjectKind::Ledger, SITE_NAME) {
            Ok(bytes) => SiteMarker::from_bytes(&bytes).map(Some).map_err(|e| Error::damaged(object_path(SITE_NAME), e.to_string())),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The own ledger, created on first use. Two first appenders race for
    /// the marker like for records: one creates it, the other reads it.
    fn site_or_create(&self) -> Result<LedgerId> {
        if let Some(id) = self.site()? {
            return Ok(id);
        }
        let id = LedgerId::generate();
        match self.backend().create(ObjectKind::Ledger, SITE_NAME, &SiteMarker::new(id).to_bytes()) {
            Ok(()) => Ok(id),
            Err(e) if e.kind == ErrorKind::AlreadyExists => self.site()?.ok_or_else(|| Error::damaged(object_path(SITE_NAME), "vanished while being read")),
            Err(e) => Err(e.into()),
        }
    }

    /// Every ledger with records here, own first, with its record indexes
    /// (sorted), and the names under `ledger/` that the format does not
    /// define.
    pub(crate) fn inventory(&self) -> Result<Inventory> {
        self.inventory_for(self.site()?)
    }

    /// [`Ledger::inventory`], with the own ledger already read.
    pub(crate) fn inventory_for(&self, own: Option<LedgerId>) -> Result<Inventory> {
        let mut by_ledger: BTreeMap<LedgerId, Vec<u64>> = BTreeMap::new();
        let mut strange = Vec::new();
        if let Some(id) = own {
            by_ledger.entry(id).or_default();
        }
        for o in self.backend().list(ObjectKind::Ledger)? {
            match LedgerName::parse(&o.name) {
                Some(LedgerName::Record(id, n)) => by_ledger.entry(id).or_default().push(n),
                Some(LedgerName::Site) => {}
                _ => strange.push(o.name),
            }
        }
        let mut out: Vec<(LedgerId, Vec<u64>)> = by_ledger.into_iter().map(|(id, mut v)| {
            v.sort_unstable();
            (id, v)
        }).collect();
        out.sort_by_key(|(id, _)| Some(*id) != own);
        Ok((out, strange))
    }

    /// Appends an entry; returns once its record is durable (and the
    /// witness was tried).
    pub fn append(&self, entry: &Entry) -> Result<Receipt> {
        let signers = self.keys.signers()?;
        // An append is a write like any other: refused by a format 1
        // repository until `key upgrade`, and to format 1 write-only keys.
        self.repo.signer()?;
        let entry_key = crate::keys::entry_key(self.repo)?;
        let ledger = self.site_or_create()?;
        let mut n = self.find_end(ledger, self.read_hint(ledger))?;
        let (host, user) = whoami();
        let time = jiff::Timestamp::now();
        let started = Instant::now();
        let mut attempts = 0u32;
        let (note, root, previous) = loop {
            let (frontier, previous) = if n == 0 { (Frontier::empty(), None) } else { self.tip(ledger, n - 1)? };
            let plain = entry.clone().into_record(n, time, host.clone(), user.clone()).encode();
            let mut frontier = frontier;
            frontier.push(record_hash(&plain));
            let root = frontier.root();
            let note = checkpoint::sign(&ledger.origin(), n + 1, root, &signers);
            let record = Record {
                sealed_entry: ledger::seal_entry(&plain, &entry_key),
                checkpoint: note.clone(),
                frontier: frontier.hashes().iter().map(|h| h.0).collect(),
            };
            match self.backend().create(ObjectKind::Ledger, &ledger.record_name(n), &record.encode()) {
                Ok(()) => break (note, root, previous),
                Err(e) if e.kind == ErrorKind::AlreadyExists => {
                    attempts += 1;
                    if attempts >= APPEND_ATTEMPTS || started.elapsed() > APPEND_PATIENCE {
                        return Err(Error::Contention(format!(
                            "could not append to ledger {ledger}: other appenders took {attempts} positions in a row in {:?}; run the command again",
                            started.elapsed()
                        )));
                    }
                    n += 1;
                }
                Err(e) => return Err(e.into()),
            }
        };
        self.write_hint(ledger, n + 1);
        let witness = self.witness_append(ledger, n, previous.as_deref(), &note);
        Ok(Receipt { ledger: ledger.to_hex(), index: n, tree_size: n + 1, root: root.to_string(), witness })
    }

    /// Sends the new checkpoint to the witness, and the previous one if
    /// the witness lacks it (an append whose witness write was lost).
    fn witness_append(&self, ledger: LedgerId, n: u64, previous: Option<&[u8]>, note: &[u8]) -> WitnessStatus {
        let Some(w) = &self.witness else { return WitnessStatus::None };
        if let Some(prev) = previous {
            // A witness the host may only write to cannot answer: skip.
            match w.get(ledger, n) {
                Ok(None) => {
                    let _ = w.put(ledger, n, prev);
                }
                Ok(Some(held)) if held != prev => {
                    return WitnessStatus::Conflict(format!(
                        "the witness at {} holds another checkpoint for size {n} of ledger {ledger}: this log's history differs from the witnessed one; run `reprise ledger verify`",
                        w.location()
                    ));
                }
                _ => {}
            }
        }
        w.put(ledger, n + 1, note)
    }

    fn exists(&self, ledger: LedgerId, index: u64) -> Result<bool> {
        match self.backend().size(ObjectKind::Ledger, &ledger.record_name(index)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The number of records, found by galloping from `hint` and
    /// bisecting (see the module docs).
    fn find_end(&self, ledger: LedgerId, hint: u64) -> Result<u64> {
        // Records below `known` exist; record `hi` (once found) does not.
        let mut known = if hint > 0 && self.exists(ledger, hint - 1)? { hint } else { 0 };
        loop {
            let mut step = 1u64;
            let mut hi = loop {
                let probe = known + step - 1;
                if self.exists(ledger, probe)? {
                    known = probe + 1;
                    step = step.saturating_mul(2);
                } else {
                    break probe;
                }
            };
            while known < hi {
                let mid = known + (hi - known) / 2;
                if self.exists(ledger, mid)? {
                    known = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if !self.exists(ledger, known + 1)? {
                return Ok(known);
            }
            // Record `known + 1` exists, and its appender read record
            // `known` before writing it: either other appenders created
            // both while this one looked (search on), or `known` was
            // removed since (a hole).
            if !self.exists(ledger, known)? {
                return Err(Error::damaged(
                    object_path(&ledger.record_name(known)),
                    format!("record {known} is missing but record {} exists: the log has a hole (a record was removed); nothing is appended into it", known + 1),
                ));
            }
            known += 2;
        }
    }

    /// The frontier after record `index` and its checkpoint, once its
    /// signature, position and frontier are checked: what the next record
    /// extends.
    fn tip(&self, ledger: LedgerId, index: u64) -> Result<(Frontier, Option<Vec<u8>>)> {
        let name = ledger.record_name(index);
        let bytes = self.backend().read(ObjectKind::Ledger, &name)?;
        let opened = self.open_record(&bytes).map_err(|m| Error::damaged(object_path(&name), m))?;
        let refuse = |m: String| Error::damaged(object_path(&name), format!("{m}; nothing is appended after it"));
        let cp = opened.checkpoint.map_err(|r| refuse(format!("its checkpoint is refused: {r}")))?;
        if cp.size != index + 1 || cp.origin != ledger.origin() {
            return Err(refuse(format!("it holds the checkpoint of size {} of {}, not of size {} of this ledger", cp.size, cp.origin, index + 1)));
        }
        let frontier = opened.frontier.filter(|f| f.root() == cp.root).ok_or_else(|| refuse("its frontier does not match its checkpoint".into()))?;
        Ok((frontier, Some(opened.note)))
    }

    /// Decodes a record and checks what can be checked on its own. `Err`
    /// only when it is not a record at all.
    pub(crate) fn open_record(&self, bytes: &[u8]) -> Result<Opened, String> {
        let record = Record::decode(bytes).map_err(|e| format!("not a ledger record ({e})"))?;
        let checkpoint = checkpoint::open(&record.checkpoint, &self.keys);
        let frontier = checkpoint.as_ref().ok().and_then(|cp| Frontier::from_parts(cp.size, record.frontier.iter().map(|h| Hash(*h)).collect()));
        let plain = crate::keys::entry_key(self.repo).map_err(|e| e.to_string()).and_then(|k| ledger::open_entry(&record.sealed_entry, &k).map_err(|e| e.to_string()));
        let entry = plain.as_ref().ok().and_then(|p| EntryRecord::decode(p).ok());
        Ok(Opened { checkpoint, frontier, plain, entry, note: record.checkpoint })
    }

    /// Entries of one ledger from position `since` on, decrypted (not
    /// verified: that is `verify`), and the records that could not be read.
    pub fn entries(&self, ledger: LedgerId, since: u64) -> Result<(Vec<EntryView>, Vec<String>)> {
        let (all, _) = self.inventory()?;
        let Some((_, indexes)) = all.into_iter().find(|(id, _)| *id == ledger) else {
            return Err(Error::NotFound(format!("no ledger {ledger} in this repository: `reprise ledger show` lists them")));
        };
        let mut out = Vec::new();
        let mut unreadable = Vec::new();
        for i in indexes.into_iter().filter(|&i| i >= since) {
            let name = ledger.record_name(i);
            let entry = self
                .backend()
                .read(ObjectKind::Ledger, &name)
                .map_err(|e| e.to_string())
                .and_then(|b| self.open_record(&b))
                .and_then(|o| o.entry.ok_or_else(|| o.plain.err().unwrap_or_else(|| "its entry does not decode".into())));
            match entry {
                Ok(e) => out.push(EntryView::new(&ledger.to_hex(), e)),
                Err(m) => unreadable.push(format!("{}: {m}", object_path(&name))),
            }
        }
        Ok((out, unreadable))
    }

    /// Every ledger here, own first.
    pub fn ledgers(&self) -> Result<Vec<LedgerSummary>> {
        let own = self.site()?;
        Ok(self.inventory()?.0.into_iter().map(|(id, idx)| LedgerSummary { ledger: id.to_hex(), own: Some(id) == own, records: idx.len() as u64 }).collect())
    }

    fn hint_file(&self, ledger: LedgerId) -> Option<PathBuf> {
        self.hint_dir.as_ref().map(|d| d.join(format!("{}-{}", self.repo.id().short(), ledger.to_hex())))
    }

    fn read_hint(&self, ledger: LedgerId) -> u64 {
        self.hint_file(ledger).and_then(|f| std::fs::read_to_string(f).ok()).and_then(|s| s.trim().parse().ok()).unwrap_or(0)
    }

    /// Best effort: a lost hint costs a few requests, nothing else.
    fn write_hint(&self, ledger: LedgerId, size: u64) {
        let Some(file) = self.hint_file(ledger) else { return };
        let _ = std::fs::create_dir_all(file.parent().expect("a file in a folder"));
        let tmp = file.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, size.to_string()).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }
}

/// Every ledger with its record indexes, and the names under `ledger/`
/// that the format does not define.
pub(crate) type Inventory = (Vec<(LedgerId, Vec<u64>)>, Vec<String>);

/// A ledger present in the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerSummary {
    pub ledger: String,
    /// Whether this location appends to it (the others came by `copy`).
    pub own: bool,
    pub records: u64,
}

/// Where a ledger object is in the repository, for messages.
pub(crate) fn object_path(name: &str) -> String {
    ObjectKind::Ledger.path(name)
}

/// This host's name and the account running this process.
pub(crate) fn whoami() -> (String, String) {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    let user = nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name).unwrap_or_default();
    (host, user)
}
