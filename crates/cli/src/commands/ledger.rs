//! `ledger ...` (show, verify, proof, check-proof, note, witness-init), and
//! [`record`]: the one call each sensitive command makes once its operation
//! is done, with the entry built by the functions at the end of this file.
//!
//! Where the ledger's keys and witness come from is decided here, in
//! [`open`]: the keys are the repository's (`reprise_ledger::repository_keys`,
//! until writers have their own), the witness is `--witness`, then
//! `REPRISE_LEDGER_WITNESS`, then `[ledger] witness` in the plan.
//!
//! A sensitive command records after its operation and before its report:
//! if the ledger cannot take the entry, the command says what was done and
//! why it is not recorded, and exits with the ledger error's code. A
//! witness that cannot be written is a warning: the entry is in the
//! repository, and the next append sends the checkpoint again.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Result;
use reprise_engine::Repository;
use reprise_engine::backup::BackupOutcome;
use reprise_engine::check::{CheckReport, Problem};
use reprise_engine::copy::CopyReport;
use reprise_engine::format::Id;
use reprise_engine::prune::PruneReport;
use reprise_engine::restore::RestoreOutcome;
use reprise_engine::retention::ForgetOutcome;
use reprise_ledger::{Entry, EntryView, FindingKind, Ledger, LedgerId, LedgerKeys, Operation, Outcome, Receipt, VerifyReport, Witness, WitnessStatus};
use reprise_plan::PasswordSource;
use reprise_postgres::expire::WalExpiry;

use crate::args::LedgerCommand;
use crate::commands::bytes;
use crate::context::{Context, Target};
use crate::exit;

/// The witness URL: `--witness` (or `REPRISE_LEDGER_WITNESS`), else the
/// plan's `[ledger] witness`.
fn witness_url(ctx: &Context) -> Option<String> {
    ctx.global.witness.clone().or_else(|| ctx.plan.as_ref().and_then(|p| p.ledger_witness.clone()))
}

fn open_witness(url: &str) -> Result<Witness> {
    let backend = Context::backend(&Target { url: url.to_owned(), password: PasswordSource::Prompt })?;
    Ok(Witness::open(backend)?)
}

/// Why the ledger is opened: appends go on without a witness that cannot
/// be reached (and warn); reading and proving refuse.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Append,
    Read,
}

fn open<'r>(ctx: &Context, repo: &'r Repository, keys: LedgerKeys, purpose: Purpose) -> Result<Ledger<'r>> {
    let mut ledger = Ledger::new(repo, keys).with_hint_dir(ctx.cache_dir().join("ledger"));
    if let Some(url) = witness_url(ctx) {
        match open_witness(&url) {
            Ok(w) => ledger = ledger.with_witness(w),
            Err(e) if purpose == Purpose::Append => tracing::warn!("the ledger witness is not available ({e}); the entry is recorded in the repository only"),
            Err(e) => return Err(e),
        }
    }
    Ok(ledger)
}

/// Records a sensitive operation that has just been done (see the module
/// docs).
pub fn record(ctx: &Context, repo: &Repository, entry: &Entry) -> Result<()> {
    let what = describe(entry);
    let ledger = open(ctx, repo, reprise_ledger::repository_keys(repo), Purpose::Append)?;
    let receipt = match ledger.append(entry) {
        Ok(r) => r,
        // Restores and checks also run with read-only storage access (a
        // restore host, an auditor, read-only media): the operation must
        // not fail for it, but it goes unrecorded, and says so.
        Err(e) if e.category() == reprise_engine::Category::Permission && matches!(entry.operation, Operation::Restore | Operation::Check) => {
            tracing::warn!("{what} is not recorded in the ledger: this credential may not write to the repository ({e})");
            return Ok(());
        }
        Err(e) => return Err(anyhow::Error::new(e).context(format!("{what} was done, but the ledger could not record it"))),
    };
    warn_witness(&receipt);
    tracing::info!("ledger: entry {} recorded (tree size {}, root {})", receipt.index, receipt.tree_size, receipt.root);
    Ok(())
}

fn warn_witness(receipt: &Receipt) {
    match &receipt.witness {
        WitnessStatus::None | WitnessStatus::Witnessed => {}
        WitnessStatus::Failed(e) => tracing::warn!("ledger entry {} is recorded in the repository, but the witness could not be written ({e}); the next append sends its checkpoint again", receipt.index),
        WitnessStatus::Conflict(e) => tracing::warn!("ledger entry {} is recorded, but {e}", receipt.index),
    }
}

/// `backup of db (snapshot 1a2b3c4d)`, for messages.
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

pub fn run(ctx: &Context, cmd: &LedgerCommand) -> Result<()> {
    match cmd {
        LedgerCommand::Show { since, ledger } => show(ctx, since.as_deref(), ledger.as_deref()),
        LedgerCommand::Verify { keys } => verify(ctx, keys),
        LedgerCommand::Proof { entry, from_size, output } => proof(ctx, entry, *from_size, output.as_deref()),
        LedgerCommand::Note { text } => note(ctx, text),
        LedgerCommand::CheckProof { .. } | LedgerCommand::WitnessInit { .. } => unreachable!("run without a repository: see `without_repository`"),
    }
}

/// The subcommands that need no repository.
pub fn without_repository(global: &crate::args::Global, cmd: &LedgerCommand) -> Option<Result<()>> {
    match cmd {
        LedgerCommand::CheckProof { file, keys } => Some(check_proof(global.json, file, keys)),
        LedgerCommand::WitnessInit { url } => Some(witness_init(global.json, global.quiet, url)),
        _ => None,
    }
}

fn note(ctx: &Context, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return Err(exit::usage("the note is empty: say what to record (a drill signed off, an incident declared), without patient data"));
    }
    let repo = ctx.open(None)?;
    let ledger = open(ctx, &repo, reprise_ledger::repository_keys(&repo), Purpose::Append)?;
    let receipt = ledger.append(&Entry::new(Operation::Note).reason(text))?;
    warn_witness(&receipt);
    if ctx.json() {
        return ctx.print_json(&receipt);
    }
    let witnessed = match (&receipt.witness, ledger.witness()) {
        (WitnessStatus::Witnessed, Some(w)) => format!(", witnessed at {}", w.location()),
        (WitnessStatus::None, _) => ", no witness configured".to_owned(),
        _ => ", not witnessed".to_owned(),
    };
    ctx.say(format!("recorded entry {} in ledger {} (tree size {}{witnessed})", receipt.index, &receipt.ledger[..8], receipt.tree_size));
    Ok(())
}

/// `--since`: a position, a time (RFC 3339 or a date), or a duration back
/// from now (`7d`).
enum Since {
    Index(u64),
    Time(jiff::Timestamp),
}

fn parse_since(s: &str) -> Result<Since> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Since::Index(n));
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(Since::Time(t));
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Ok(Since::Time(d.to_zoned(jiff::tz::TimeZone::UTC).map_err(|e| exit::usage(e.to_string()))?.timestamp()));
    }
    if let Ok(d) = reprise_plan::duration::parse(s) {
        let back = jiff::SignedDuration::try_from(d).unwrap_or(jiff::SignedDuration::MAX);
        return Ok(Since::Time(jiff::Timestamp::now().checked_sub(back).unwrap_or(jiff::Timestamp::MIN)));
    }
    Err(exit::usage(format!("--since {s}: give an entry position (42), a time (2026-11-26T08:00:00Z), a date (2026-11-26) or a duration back from now (7d)")))
}

fn find_ledger(ledger: &Ledger<'_>, prefix: &str) -> Result<LedgerId> {
    let all = ledger.ledgers()?;
    let found: Vec<_> = all.iter().filter(|l| l.ledger.starts_with(&prefix.to_ascii_lowercase()) && !prefix.is_empty()).collect();
    match found.as_slice() {
        [one] => Ok(one.ledger.parse().expect("listed IDs parse")),
        [] => Err(exit::with_code(exit::NOT_FOUND, format!("no ledger {prefix} in this repository: `reprise ledger show` lists them"))),
        _ => Err(exit::usage(format!("ledger {prefix} is ambiguous: give more of its ID"))),
    }
}

#[derive(serde::Serialize)]
struct ShowOutput {
    ledgers: Vec<reprise_ledger::LedgerSummary>,
    entries: Vec<EntryView>,
    unreadable: Vec<String>,
}

fn show(ctx: &Context, since: Option<&str>, which: Option<&str>) -> Result<()> {
    let since = since.map(parse_since).transpose()?;
    let repo = ctx.open(None)?;
    // Reading entries needs no witness.
    let ledger = Ledger::new(&repo, reprise_ledger::repository_keys(&repo));
    let ledgers = ledger.ledgers()?;
    let chosen: Vec<LedgerId> = match which {
        Some(p) => vec![find_ledger(&ledger, p)?],
        None => ledgers.iter().map(|l| l.ledger.parse().expect("listed IDs parse")).collect(),
    };
    let mut out = ShowOutput { ledgers, entries: Vec::new(), unreadable: Vec::new() };
    for id in chosen {
        let from = match since {
            Some(Since::Index(n)) => n,
            _ => 0,
        };
        let (entries, unreadable) = ledger.entries(id, from)?;
        out.entries.extend(entries.into_iter().filter(|e| match since {
            Some(Since::Time(t)) => e.time >= t,
            _ => true,
        }));
        out.unreadable.extend(unreadable);
    }
    if ctx.json() {
        ctx.print_json(&out)?;
    } else {
        if out.ledgers.is_empty() {
            ctx.say("nothing recorded in this repository's ledger yet");
        }
        let several = out.ledgers.len() > 1;
        for l in &out.ledgers {
            if several || !l.own {
                ctx.say(format!("ledger {}: {} entries{}", l.ledger, l.records, if l.own { " (this site's)" } else { " (from another site, by copy)" }));
            }
        }
        for e in &out.entries {
            ctx.say(entry_line(e, several));
        }
    }
    for u in &out.unreadable {
        errln!("reprise: unreadable ledger record: {u}");
    }
    if out.unreadable.is_empty() {
        Ok(())
    } else {
        Err(exit::with_code(exit::DAMAGED, format!("{} ledger record(s) could not be read, each listed above: run `reprise ledger verify`", out.unreadable.len())))
    }
}

fn entry_line(e: &EntryView, with_ledger: bool) -> String {
    let mut s = String::new();
    if with_ledger {
        let _ = write!(s, "{} ", &e.ledger[..8]);
    }
    let _ = write!(s, "#{:<5} {}  {:<14} ", e.index, e.time.strftime("%Y-%m-%dT%H:%M:%SZ"), e.operation);
    if let Some(c) = &e.component {
        let _ = write!(s, "{c} ");
    }
    s.push_str(&e.result);
    if let Some(err) = &e.error {
        let _ = write!(s, " ({err})");
    }
    let _ = write!(s, "  {}@{}", e.user, e.host);
    if !e.snapshots.is_empty() {
        let _ = write!(s, "  snapshot {}", e.snapshots.iter().map(Id::short).collect::<Vec<_>>().join(","));
    }
    for (k, v) in &e.counts {
        let _ = write!(s, "  {k}={v}");
    }
    for (k, v) in &e.sizes {
        let _ = write!(s, "  {k}={}", bytes(*v));
    }
    for (k, v) in &e.refs {
        let _ = write!(s, "  {k}={}", if v.len() > 16 && v.bytes().all(|b| b.is_ascii_hexdigit()) { &v[..8] } else { v });
    }
    if let Some(r) = &e.reason {
        let _ = write!(s, "  reason: {}", r.replace('\n', " "));
    }
    s
}

fn verify(ctx: &Context, keys: &[String]) -> Result<()> {
    let repo = ctx.open(None)?;
    let ledger_keys = if keys.is_empty() { reprise_ledger::repository_keys(&repo) } else { LedgerKeys::verify_only(keys)? };
    let ledger = open(ctx, &repo, ledger_keys, Purpose::Read)?;
    let report = ledger.verify()?;
    // A key that signed nothing at all is the wrong key, not tampering.
    if !keys.is_empty() && report.ledgers.iter().any(|l| l.size > 0) && report.ledgers.iter().all(|l| l.signatures == 0) {
        return Err(exit::with_code(
            exit::AUTH,
            "no checkpoint of this repository's ledgers is signed by the key given (--key): check the key; `reprise ledger verify` without --key prints the one the repository signs with",
        ));
    }
    if ctx.json() {
        ctx.print_json(&report)?;
    } else {
        print_verdict(ctx, &report);
    }
    let tampering: usize = report.findings.iter().chain(report.ledgers.iter().flat_map(|l| &l.findings)).filter(|f| f.kind.is_tampering()).count();
    if report.tampered() {
        return Err(exit::with_code(exit::DAMAGED, format!("the ledger was tampered with or damaged: {tampering} finding(s), each listed with the entries and object concerned")));
    }
    Ok(())
}

fn print_verdict(ctx: &Context, r: &VerifyReport) {
    if r.ledgers.is_empty() {
        ctx.say("nothing recorded in this repository's ledger yet");
    }
    for l in &r.ledgers {
        let witness = match (&r.witness, l.witnessed_size) {
            (Some(w), Some(s)) => format!("; witness {w}: {} checkpoint(s) match, up to size {s}", l.witnessed),
            (Some(w), None) => format!("; witness {w}: no checkpoint matches"),
            (None, _) => "; no witness".to_owned(),
        };
        ctx.say(format!(
            "ledger {}{}: {} entries, {} signature(s) verified, root {}{witness}",
            l.ledger,
            if l.own { " (this site's)" } else { " (from another site)" },
            l.size,
            l.signatures,
            l.root.as_deref().unwrap_or("not recomputable")
        ));
        for f in &l.findings {
            print_finding(ctx, f);
        }
    }
    for f in &r.findings {
        print_finding(ctx, f);
    }
    for k in &r.trusted_keys {
        ctx.say(format!("verifier key: {k}"));
    }
}

fn print_finding(ctx: &Context, f: &reprise_ledger::Finding) {
    let label = match f.kind {
        FindingKind::Altered => "ALTERED",
        FindingKind::Removed => "REMOVED",
        FindingKind::Reordered => "REORDERED",
        FindingKind::Forked => "FORKED",
        FindingKind::Truncated => "TRUNCATED",
        FindingKind::Foreign => "FOREIGN",
        FindingKind::Unwitnessed | FindingKind::Elsewhere => "note",
    };
    let line = format!("  {label} {}: {}", f.object, f.message);
    // Tampering is printed even with --quiet: it is why the exit code is not 0.
    if f.kind.is_tampering() {
        outln!("{line}");
    } else {
        ctx.say(line);
    }
}

fn proof(ctx: &Context, spec: &str, from_size: Option<u64>, output: Option<&Path>) -> Result<()> {
    let repo = ctx.open(None)?;
    let ledger = open(ctx, &repo, reprise_ledger::repository_keys(&repo), Purpose::Read)?;
    let (which, index) = match spec.split_once(':') {
        Some((l, i)) => (Some(find_ledger(&ledger, l)?), i),
        None => (None, spec),
    };
    let index: u64 = index.parse().map_err(|_| exit::usage(format!("{spec} is not an entry: give its position as `reprise ledger show` lists it (e.g. 42, or LEDGER:42)")))?;
    let proof = ledger.proof(which, index, from_size)?;
    match output {
        Some(path) => {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o644).open(path).map_err(|e| {
                let code = if e.kind() == std::io::ErrorKind::AlreadyExists { exit::USAGE } else { exit::PERMISSION };
                exit::with_code(code, format!("cannot create {}: {e} (a proof is never written over an existing file)", path.display()))
            })?;
            f.write_all(serde_json::to_string_pretty(&proof)?.as_bytes())?;
            f.write_all(b"\n")?;
            if ctx.json() {
                ctx.print_json(&serde_json::json!({ "proof": path, "ledger": proof.ledger, "index": proof.index, "tree_size": proof.tree_size, "witness": proof.witness }))?;
            } else {
                ctx.say(format!(
                    "proof of entry {} in the tree of size {} written to {}{}; check it with `reprise ledger check-proof {} --key KEY` or tools/ledger/reprise_ledger.py",
                    proof.index,
                    proof.tree_size,
                    path.display(),
                    proof.witness.as_ref().map(|w| format!(" (checkpoint witnessed at {w})")).unwrap_or_default(),
                    path.display()
                ));
            }
        }
        None => {
            ctx.print_json(&proof)?;
        }
    }
    Ok(())
}

fn check_proof(json: bool, file: &Path, keys: &[String]) -> Result<()> {
    let bytes = std::fs::read(file).map_err(|e| {
        let code = if e.kind() == std::io::ErrorKind::NotFound { exit::NOT_FOUND } else { exit::PERMISSION };
        exit::with_code(code, format!("cannot read {}: {e}", file.display()))
    })?;
    let proof: reprise_ledger::InclusionProof =
        serde_json::from_slice(&bytes).map_err(|e| exit::usage(format!("{} is not a ledger proof ({e}): give a file `reprise ledger proof` wrote", file.display())))?;
    let pinned = !keys.is_empty();
    let trusted = LedgerKeys::verify_only(if pinned { keys } else { &proof.verifier_keys })?;
    let checked = reprise_ledger::check_proof(&proof, &trusted)?;
    if json {
        crate::output::json(&checked)?;
    } else {
        outln!(
            "the proof holds: entry {} is in the tree of size {} (root {}) signed by {}{}",
            checked.entry.index,
            checked.tree_size,
            checked.root,
            checked.signed_by.join(", "),
            checked.consistent_with.map(|s| format!("; the tree of size {s} is a prefix of it")).unwrap_or_default()
        );
        outln!("{}", entry_line(&checked.entry, true));
        if !pinned {
            outln!("caution: the signer's key was taken from the proof itself; pass --key with the key the repository's owner gave you");
        }
    }
    Ok(())
}

fn witness_init(json: bool, quiet: bool, url: &str) -> Result<()> {
    let target = Target { url: url.to_owned(), password: PasswordSource::Prompt };
    // A local witness is a directory its owner creates here; object
    // stores need their bucket or container to exist.
    if !url.contains("://") {
        let path = url.strip_prefix("local:").unwrap_or(url);
        std::fs::create_dir_all(path).map_err(|e| exit::with_code(exit::PERMISSION, format!("cannot create {path}: {e}")))?;
    }
    let created = Witness::init(Context::backend(&target)?)?;
    if json {
        crate::output::json(&serde_json::json!({ "witness": url, "created": created }))?;
    } else if !quiet {
        outln!(
            "{url} {} a ledger witness: give the writing hosts credentials that can create objects there but not delete or overwrite them (docs/STORAGE.md), and set ledger.witness in the plan",
            if created { "is now" } else { "already was" }
        );
    }
    Ok(())
}

// ---- the entries each command records ----

pub fn init(repo: &Repository) -> Entry {
    Entry::new(Operation::Init).reference("repository", repo.id().to_hex())
}

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

/// A PostgreSQL restore: a dump (`logical`), or a base backup and the WAL
/// replayed to `target`.
pub fn restore_postgres(component: &str, snapshot: Option<Id>, base_backup: Option<&str>, target: &str, wal_segments: u64) -> Entry {
    let mut e = Entry::new(Operation::Restore).component(component).reference("target", target).count("wal_segments", wal_segments);
    if let Some(id) = snapshot.or_else(|| base_backup.and_then(|b| b.parse().ok())) {
        e = e.snapshot(id);
    }
    e
}

pub fn forget(o: &ForgetOutcome, wal: Option<&WalExpiry>) -> Entry {
    let mut e = Entry::new(Operation::Forget)
        .component(&o.component)
        .snapshots(o.snapshots.iter().filter(|v| !v.keep).map(|v| v.id))
        .count("kept", o.snapshots.iter().filter(|v| v.keep).count() as u64)
        .count("removed", o.removed as u64);
    if let Some(w) = wal {
        e = e.count("wal_removed", w.removed_files.len() as u64).size("wal_removed_bytes", w.removed_bytes);
    }
    e
}

pub fn prune(r: &PruneReport) -> Entry {
    let mut e = Entry::new(Operation::Prune)
        .count("snapshots", r.snapshots as u64)
        .count("deleted_packs", r.deleted_packs as u64)
        .count("rescued_packs", r.rescued_packs as u64)
        .count("condemned_packs", r.condemned_packs as u64)
        .count("repacked_packs", r.repacked_packs as u64)
        .count("locks_extended", r.locks.packs_extended as u64)
        .size("deleted_bytes", r.deleted_bytes)
        .size("condemned_bytes", r.condemned_bytes)
        .outcome(if r.locks.error.is_some() { Outcome::Problems } else { Outcome::Ok });
    if let Some(m) = r.mark {
        e = e.reference("mark", m.to_hex());
    }
    e
}

pub fn hold_add(hold: Id, snapshot: Id, component: &str, reason: &str) -> Entry {
    Entry::new(Operation::HoldAdd).component(component).snapshot(snapshot).reference("hold", hold.to_hex()).reason(reason)
}

pub fn hold_remove(h: &reprise_engine::holds::HoldEntry) -> Entry {
    Entry::new(Operation::HoldRemove).snapshot(h.hold.snapshot).reference("hold", h.id.to_hex()).reason(&h.hold.reason)
}

pub fn key_add(name: &str, role: &str) -> Entry {
    Entry::new(Operation::KeyAdd).reference("key", name).reference("role", role)
}

pub fn write_credential() -> Entry {
    Entry::new(Operation::KeyAdd).reference("role", "write-only").reference("form", "write credential file")
}

pub fn key_remove(name: &str) -> Entry {
    Entry::new(Operation::KeyRemove).reference("key", name)
}

pub fn key_passphrase(new_name: &str) -> Entry {
    Entry::new(Operation::KeyPassphrase).reference("key", new_name)
}

pub fn key_export_recovery() -> Entry {
    Entry::new(Operation::KeyExportRecovery)
}

pub fn repair_index(r: &reprise_engine::repair::IndexRepair) -> Entry {
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
pub fn repair(what: &str, read: usize, removed: usize) -> Entry {
    Entry::new(Operation::Repair).reference("what", what).count("read", read as u64).count("removed", removed as u64)
}

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

/// A copy: recorded in the source's ledger, then every ledger of the
/// source carried to the destination (records it could not send count as
/// damage of the copy).
pub fn record_copy(ctx: &Context, src: &Repository, to: &str, destination: &dyn reprise_engine::backends::Backend, report: &mut CopyReport) -> Result<()> {
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
    record(ctx, src, &entry)?;
    let ledger = open(ctx, src, reprise_ledger::repository_keys(src), Purpose::Append)?;
    let carried = ledger.carry(destination)?;
    tracing::info!("ledger: {} record(s) of {} ledger(s) carried to {to}", carried.records_copied, carried.ledgers);
    report.damage.extend(carried.problems.into_iter().map(|message| Problem { object: "ledger".into(), message }));
    Ok(())
}
