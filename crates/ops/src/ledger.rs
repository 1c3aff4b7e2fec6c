//! The evidence ledger, as the operations use it: [`record`], the one call
//! each sensitive operation makes once its work is done, the entries they
//! record (built at the end of this file), and [`open`] for the ledger's
//! own operations (show, verify, proof, note).
//!
//! Recording is part of the operation, not of an interface: a daemon
//! running a backup records the same entry as `reprise backup`, and a new
//! interface cannot forget to. An operation records after its work and
//! before its report: if the ledger cannot take the entry, the operation
//! fails with the ledger's error, saying what was done and that it is not
//! recorded. A witness that cannot be written is a warning: the entry is
//! in the repository, and the next append sends the checkpoint again.
//!
//! Where the ledger's keys and witness come from is decided here: the keys
//! are the repository's (`reprise_ledger::repository_keys`, derived from
//! the shared key every version 2 key holds), the witness is the
//! settings', else the plan's `[ledger] witness`.

use std::fmt::Write as _;

use reprise_engine::Repository;
use reprise_engine::backup::BackupOutcome;
use reprise_engine::check::{CheckReport, Problem, ReadData};
use reprise_engine::copy::CopyReport;
use reprise_engine::format::Id;
use reprise_engine::holds::HoldEntry;
use reprise_engine::prune::PruneReport;
use reprise_engine::repair::IndexRepair;
use reprise_engine::restore::RestoreOutcome;
use reprise_engine::retention::ForgetOutcome;
use reprise_engine::revoke::RevokeReport;
use reprise_engine::upgrade::UpgradeReport;
use reprise_ledger::{Entry, Ledger, LedgerKeys, Operation, Outcome, Receipt, Witness, WitnessStatus};
use reprise_plan::PasswordSource;
use reprise_postgres::expire::{WalExpiry, WalSweep};

use crate::error::{OpsError, Result};
use crate::workspace::{Target, Workspace};

/// The witness location: the settings' (a command line's `--witness`),
/// else the plan's `[ledger] witness`.
#[must_use]
pub fn witness_url(ws: &Workspace) -> Option<String> {
    ws.settings().witness.clone().or_else(|| ws.plan_if_any().and_then(|p| p.ledger_witness.clone()))
}

/// The witness at `url`, with the storage credentials the environment
/// gives for it (a witness is not a plan repository).
pub fn open_witness(ws: &Workspace, url: &str) -> Result<Witness> {
    let backend = ws.backend(&Target { name: None, url: url.to_owned(), password: PasswordSource::Prompt, credentials: None }, None)?;
    Ok(Witness::open(backend)?)
}

/// Why the ledger is opened: appends go on without a witness that cannot
/// be reached (and warn); reading and proving refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Append,
    Read,
}

/// The ledger of `repo`, with the workspace's witness and hint cache.
pub fn open<'r>(ws: &Workspace, repo: &'r Repository, keys: LedgerKeys, purpose: Purpose) -> Result<Ledger<'r>> {
    let mut ledger = Ledger::new(repo, keys).with_hint_dir(ws.cache_dir().join("ledger"));
    if let Some(url) = witness_url(ws) {
        match open_witness(ws, &url) {
            Ok(w) => ledger = ledger.with_witness(w),
            Err(e) if purpose == Purpose::Append => tracing::warn!("the ledger witness is not available ({e}); the entry is recorded in the repository only"),
            Err(e) => return Err(e),
        }
    }
    Ok(ledger)
}

/// The repository's ledger keys; a format 1 write-only key has none (it
/// cannot write at all).
pub fn keys(repo: &Repository) -> Result<LedgerKeys> {
    Ok(reprise_ledger::repository_keys(repo)?)
}

/// Records a sensitive operation that has just been done (see the module
/// docs). The receipt is `None` when the operation may go unrecorded
/// (below).
pub fn record(ws: &Workspace, repo: &Repository, entry: &Entry) -> Result<Option<Receipt>> {
    let what = describe(entry);
    let ledger = open(ws, repo, keys(repo)?, Purpose::Append)?;
    let receipt = match ledger.append(entry) {
        Ok(r) => r,
        // Restores and checks also run where nothing may be written: with
        // read-only storage access (a restore host, an auditor, read-only
        // media), or in a format 1 repository before `key upgrade`. The
        // operation must not fail for it, but it goes unrecorded, and
        // says so.
        Err(e) if matches!(entry.operation, Operation::Restore | Operation::Check) && may_not_write(&e) => {
            tracing::warn!("{what} is not recorded in the ledger: nothing may be written to this repository with this key or credential ({e})");
            return Ok(None);
        }
        Err(e) => return Err(OpsError::from(e).context(format!("{what} was done, but the ledger could not record it"))),
    };
    warn_witness(&receipt);
    tracing::info!("ledger: entry {} recorded (tree size {}, root {})", receipt.index, receipt.tree_size, receipt.root);
    Ok(Some(receipt))
}

/// Whether an append failed because nothing may be written here (rather
/// than because the ledger or the storage is in trouble).
fn may_not_write(e: &reprise_ledger::Error) -> bool {
    matches!(e, reprise_ledger::Error::Engine(reprise_engine::Error::NeedsUpgrade | reprise_engine::Error::LegacyKey)) || e.category() == reprise_engine::Category::Permission
}

/// Says what became of the witness's copy of an append's checkpoint.
pub fn warn_witness(receipt: &Receipt) {
    match &receipt.witness {
        WitnessStatus::None | WitnessStatus::Witnessed => {}
        WitnessStatus::Failed(e) => tracing::warn!("ledger entry {} is recorded in the repository, but the witness could not be written ({e}); the next append sends its checkpoint again", receipt.index),
        WitnessStatus::Conflict(e) => tracing::warn!("ledger entry {} is recorded, but {e}", receipt.index),
    }
}

/// `the backup of db (snapshot 1a2b3c4d)`, for messages.
fn describe(e: &Entry) -> String {
    let mut s = format!("the {}", e.operation.as_str());
    if let Some(c) = &e.component {
        let _ = write!(s, " of {c}");
    }
    if let Some(id) = e.snapshots.first() {
        let _ = write!(s, " (snapshot {})", id.short());
    }
    s
}

/// A statement recorded on its own (a drill signed off, an incident
/// declared); returns the receipt and the witness location, if witnessed.
pub fn note(ws: &Workspace, text: &str) -> Result<(Receipt, Option<String>)> {
    if text.trim().is_empty() {
        return Err(OpsError::usage("the note is empty: say what to record (a drill signed off, an incident declared), without patient data"));
    }
    let repo = ws.open(None)?;
    let ledger = open(ws, &repo, keys(&repo)?, Purpose::Append)?;
    let receipt = ledger.append(&Entry::new(Operation::Note).reason(text))?;
    warn_witness(&receipt);
    let witnessed = match (&receipt.witness, ledger.witness()) {
        (WitnessStatus::Witnessed, Some(w)) => Some(w.location().to_owned()),
        _ => None,
    };
    Ok((receipt, witnessed))
}

/// A copy: recorded in the source's ledger, then every ledger of the
/// source carried to the destination (records it could not send count as
/// damage of the copy).
pub fn record_copy(ws: &Workspace, src: &Repository, to: &str, destination: &dyn reprise_engine::backends::Backend, report: &mut CopyReport) -> Result<()> {
    let entry = Entry::new(Operation::Copy)
        .reference("destination", to)
        .snapshots(report.snapshots_copied.iter().copied())
        .count("snapshots", report.snapshots_copied.len() as u64)
        .count("packs", report.packs_written.len() as u64)
        .count("wal_files", report.wal_copied as u64)
        .count("holds", report.holds_copied as u64)
        .count("problems", (report.damage.len() + report.conflicts.len()) as u64)
        .size("pack_bytes", report.pack_bytes)
        .size("wal_bytes", report.wal_bytes)
        .outcome(if report.damage.is_empty() && report.conflicts.is_empty() { Outcome::Ok } else { Outcome::Problems });
    record(ws, src, &entry)?;
    let ledger = open(ws, src, keys(src)?, Purpose::Append)?;
    let carried = ledger.carry(destination)?;
    tracing::info!("ledger: {} record(s) of {} ledger(s) carried to {to}", carried.records_copied, carried.ledgers);
    report.damage.extend(carried.problems.into_iter().map(|message| Problem { object: "ledger".into(), message }));
    Ok(())
}

// ---- the entries each operation records ----

#[must_use]
pub fn init(repo: &Repository) -> Entry {
    Entry::new(Operation::Init).reference("repository", repo.id().to_hex())
}

#[must_use]
pub fn backup(o: &BackupOutcome) -> Entry {
    let s = &o.header.summary;
    Entry::new(Operation::Backup)
        .component(&o.header.component)
        .snapshot(o.id)
        .host(&o.header.host)
        .reference("kind", &o.header.kind)
        .count("files", s.files)
        .count("dirs", s.dirs)
        .count("files_read", s.files_read)
        .count("new_blobs", s.new_blobs)
        .count("unreadable", o.errors.len() as u64)
        .size("bytes", s.bytes)
        .size("new_bytes", s.new_bytes)
        .size("stored_bytes", s.stored_bytes)
        .outcome(if o.errors.is_empty() { Outcome::Ok } else { Outcome::Problems })
}

#[must_use]
pub fn restore(snapshot: Id, component: &str, o: &RestoreOutcome) -> Entry {
    Entry::new(Operation::Restore)
        .component(component)
        .snapshot(snapshot)
        .count("files", o.files)
        .count("dirs", o.dirs)
        .count("damaged", o.damaged.len() as u64)
        .size("bytes", o.bytes)
        .outcome(if o.damaged.is_empty() { Outcome::Ok } else { Outcome::Problems })
}

/// A PostgreSQL restore: a dump (`dump`), or a base backup and the WAL
/// replayed to `target`.
#[must_use]
pub fn restore_postgres(component: &str, snapshot: Option<Id>, base_backup: Option<&str>, target: &str, wal_segments: u64) -> Entry {
    let mut e = Entry::new(Operation::Restore).component(component).reference("target", target).count("wal_segments", wal_segments);
    if let Some(id) = snapshot.or_else(|| base_backup.and_then(|b| b.parse().ok())) {
        e = e.snapshot(id);
    }
    e
}

/// `recover-rows`: rows of the live database put back from two scratch
/// restores, a restore whose target is the live database (`refs.kind =
/// "rows"`). Counts only: table names and row values stay out of the
/// ledger.
#[must_use]
pub fn recover_rows(component: &str, r: &reprise_postgres::rows::RowRecovery) -> Entry {
    Entry::new(Operation::Restore)
        .component(component)
        .reference("kind", "rows")
        .reference("target", &r.at)
        .count("tables", r.tables.len() as u64)
        .count("repaired", r.repaired())
        .count("conflicts", r.conflicts())
        .count("rows_written", r.rows_written)
        .count("statements_skipped", r.statements_skipped)
        .count("applied", u64::from(r.applied))
        .outcome(if r.conflicts() == 0 { Outcome::Ok } else { Outcome::Problems })
}

#[must_use]
pub fn forget(o: &ForgetOutcome, wal: Option<&WalExpiry>) -> Entry {
    let mut e = Entry::new(Operation::Forget)
        .component(&o.component)
        .snapshots(o.snapshots.iter().filter(|v| !v.keep).map(|v| v.id))
        .count("kept", o.snapshots.iter().filter(|v| v.keep).count() as u64)
        .count("removed", o.removed as u64);
    if let Some(w) = wal {
        e = e
            .count("wal_marked", w.newly_marked as u64)
            .count("wal_condemned", w.marked_files.len() as u64)
            .size("wal_condemned_bytes", w.marked_bytes)
            .count("wal_unmarked", w.unmarked_files.len() as u64)
            .count("pitr_windows_closed", w.closes.len() as u64);
        if let Some(m) = w.mark {
            e = e.reference("wal_mark", m.to_hex());
        }
    }
    e
}

#[must_use]
pub fn prune(r: &PruneReport, wal: &WalSweep) -> Entry {
    let mut e = Entry::new(Operation::Prune)
        .count("snapshots", r.snapshots as u64)
        .count("deleted_packs", r.deleted_packs as u64)
        .count("rescued_packs", r.rescued_packs as u64)
        .count("condemned_packs", r.condemned_packs as u64)
        .count("repacked_packs", r.repacked_packs as u64)
        .count("locks_extended", r.locks.packs_extended as u64)
        .size("deleted_bytes", r.deleted_bytes)
        .size("condemned_bytes", r.condemned_bytes)
        .count("wal_deleted", wal.deleted_files as u64)
        .size("wal_deleted_bytes", wal.deleted_bytes)
        .count("wal_rescued", wal.rescued_files.len() as u64)
        .outcome(if r.locks.error.is_some() { Outcome::Problems } else { Outcome::Ok });
    if let Some(m) = r.mark {
        e = e.reference("mark", m.to_hex());
    }
    e
}

#[must_use]
pub fn hold_add(hold: Id, snapshot: Id, component: &str, reason: &str) -> Entry {
    Entry::new(Operation::HoldAdd).component(component).snapshot(snapshot).reference("hold", hold.to_hex()).reason(reason)
}

/// A hold lifted; `None`: a hold object nobody trusted had signed, removed
/// the same way (it protected nothing, and its removal is recorded too).
#[must_use]
pub fn hold_remove(id: Id, h: Option<&HoldEntry>) -> Entry {
    match h {
        Some(h) => Entry::new(Operation::HoldRemove).snapshot(h.hold.snapshot).reference("hold", h.id.to_hex()).reason(&h.hold.reason),
        None => Entry::new(Operation::HoldRemove).reference("hold", id.to_hex()).reference("trusted", "no"),
    }
}

#[must_use]
pub fn key_add(name: &str, key_id: &str, role: &str) -> Entry {
    Entry::new(Operation::KeyAdd).reference("key", name).reference("key_id", key_id).reference("role", role)
}

#[must_use]
pub fn write_credential(key_id: &str) -> Entry {
    Entry::new(Operation::KeyAdd).reference("key_id", key_id).reference("role", "write-only").reference("form", "write credential file")
}

/// A key removed; a writer's removal is a revocation (`revocation`).
#[must_use]
pub fn key_remove(name: &str, revocation: Option<&RevokeReport>) -> Entry {
    let e = Entry::new(Operation::KeyRemove).reference("key", name);
    match revocation {
        Some(r) => revoked(e, r),
        None => e,
    }
}

#[must_use]
pub fn key_revoke(r: &RevokeReport, reason: &str) -> Entry {
    revoked(Entry::new(Operation::KeyRevoke), r).reason(reason)
}

fn revoked(e: Entry, r: &RevokeReport) -> Entry {
    e.reference("key_id", &r.key_id)
        .reference("domain", &r.domain)
        .reference("record", r.record.to_hex())
        .count("packs", r.packs as u64)
        .count("index_files", r.index_files as u64)
        .count("snapshots", r.snapshots as u64)
        .count("wal_files", r.wal_files as u64)
}

#[must_use]
pub fn key_upgrade(r: &UpgradeReport) -> Entry {
    let mut e = Entry::new(Operation::KeyUpgrade)
        .count("legacy_packs", r.legacy_packs as u64)
        .count("legacy_snapshots", r.legacy_snapshots as u64)
        .count("legacy_wal_files", r.legacy_wal_files as u64)
        .count("index_files_rewritten", r.index_files_rewritten as u64)
        .count("holds_signed", r.holds_signed as u64)
        .count("marks_removed", r.marks_removed as u64)
        .count("keys_endorsed", r.keys_endorsed.len() as u64)
        .count("write_only_keys_removed", r.write_only_keys_removed.len() as u64);
    if let Some(id) = r.legacy_record {
        e = e.reference("legacy_record", id.to_hex());
    }
    e
}

#[must_use]
pub fn key_passphrase(new_name: &str) -> Entry {
    Entry::new(Operation::KeyPassphrase).reference("key", new_name)
}

#[must_use]
pub fn key_export_recovery() -> Entry {
    Entry::new(Operation::KeyExportRecovery)
}

#[must_use]
pub fn repair_index(r: &IndexRepair) -> Entry {
    Entry::new(Operation::Repair)
        .reference("what", "index")
        .count("damaged_index_files", r.damaged_index_files.len() as u64)
        .count("packs_indexed", r.packs_indexed as u64)
        .count("index_files_written", r.index_files_written.len() as u64)
        .count("unreadable_packs", r.unreadable_packs.len() as u64)
        .outcome(if r.unreadable_packs.is_empty() { Outcome::Ok } else { Outcome::Problems })
}

/// `repair keys` and `repair marks`: how many were read, how many damaged
/// ones removed.
#[must_use]
pub fn repair(what: &str, read: usize, removed: usize) -> Entry {
    Entry::new(Operation::Repair).reference("what", what).count("read", read as u64).count("removed", removed as u64)
}

/// How much data a check read: `none`, `all`, a group `N/M`, a fraction.
#[must_use]
pub fn read_data_mode(r: ReadData) -> String {
    match r {
        ReadData::None => "none".to_owned(),
        ReadData::All => "all".to_owned(),
        ReadData::Group { n, m } => format!("{n}/{m}"),
        ReadData::Fraction(f) => format!("{}%", f * 100.0),
    }
}

#[must_use]
pub fn check(r: &CheckReport, read_data: &str) -> Entry {
    Entry::new(Operation::Check)
        .reference("read_data", read_data)
        .count("snapshots", r.snapshots as u64)
        .count("packs", r.packs as u64)
        .count("blobs", r.blobs as u64)
        .count("packs_read", r.packs_read as u64)
        .count("problems", r.problems.len() as u64)
        .size("bytes_read", r.bytes_read)
        .outcome(if r.ok() { Outcome::Ok } else { Outcome::Problems })
}

/// A restore drill: its stored record's ID (`drills/<id>`, whose content
/// the record's hash pins), the snapshots it restored, its RTO and
/// verdict. No path, no validation detail: those are in the sealed record.
#[must_use]
pub fn drill(r: &crate::drill::record::DrillRecord, record: Id) -> Entry {
    let mut e = Entry::new(Operation::Drill)
        .reference("drill", &r.drill)
        .reference("record", record.to_hex())
        .snapshots(r.components.iter().filter_map(|c| c.snapshot.as_deref().and_then(|s| s.parse().ok())))
        .count("rto_ms", r.rto_ms)
        .count("validations", r.validations.len() as u64)
        .count("failed_validations", r.failed_validations().count() as u64)
        .count("objectives_missed", r.objectives.iter().filter(|o| !o.met).count() as u64)
        .count("scratch_removed", u64::from(r.scratch.removed))
        .outcome(if r.verdict == crate::drill::record::DrillVerdict::Passed { Outcome::Ok } else { Outcome::Problems });
    if let Some(c) = r.components.first() {
        e = e.component(&c.name);
    }
    e
}
