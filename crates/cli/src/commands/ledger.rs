//! `ledger ...` (show, verify, proof, check-proof, note, witness-init):
//! flags to the ledger's reads and proofs, and their rendering.
//!
//! Recording is not here: each sensitive operation records its own entry
//! in `reprise_ops::ledger`, so that every interface records the same.
//! The ledger's keys and witness come from there too
//! (`reprise_ops::ledger::open`).

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use anyhow::Result;
use reprise_engine::format::Id;
use reprise_ledger::{EntryView, FindingKind, Ledger, LedgerId, LedgerKeys, VerifyReport, Witness, WitnessStatus};
use reprise_ops::ledger::{self as ops_ledger, Purpose};

use crate::args::LedgerCommand;
use crate::commands::bytes;
use crate::context::Context;
use crate::exit;

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
    let (receipt, witnessed_at) = ops_ledger::note(&ctx.ws, text).map_err(|e| exit::from_ops(&e))?;
    if ctx.json() {
        return ctx.print_json(&receipt);
    }
    let witnessed = match (&receipt.witness, witnessed_at) {
        (WitnessStatus::Witnessed, Some(w)) => format!(", witnessed at {w}"),
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
    let repo = ctx.ws.open(None)?;
    // Reading entries needs no witness.
    let ledger = Ledger::new(&repo, ops_ledger::keys(&repo)?);
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
    let repo = ctx.ws.open(None)?;
    let ledger_keys = if keys.is_empty() { ops_ledger::keys(&repo)? } else { LedgerKeys::verify_only(keys)? };
    let ledger = ops_ledger::open(&ctx.ws, &repo, ledger_keys, Purpose::Read)?;
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
    if !r.ledgers.is_empty() && !r.appenders_checked {
        ctx.say("note: who appended each entry was not judged: that needs a full-access key, which knows every endorsed writer");
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
        FindingKind::Forged => "FORGED",
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
    let repo = ctx.ws.open(None)?;
    let ledger = ops_ledger::open(&ctx.ws, &repo, ops_ledger::keys(&repo)?, Purpose::Read)?;
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
    // A witness is no plan repository: its storage credentials come from
    // the environment, as for any URL given on the command line.
    let ws = reprise_ops::Workspace::new(None, reprise_ops::Settings::default(), reprise_ops::Environment::from_process());
    let target = reprise_ops::Target { name: None, url: url.to_owned(), password: reprise_plan::PasswordSource::Prompt, credentials: None };
    // A local witness is a directory its owner creates here; object
    // stores need their bucket or container to exist.
    if !url.contains("://") {
        let path = url.strip_prefix("local:").unwrap_or(url);
        std::fs::create_dir_all(path).map_err(|e| exit::with_code(exit::PERMISSION, format!("cannot create {path}: {e}")))?;
    }
    let created = Witness::init(ws.backend(&target, None).map_err(|e| exit::from_ops(&e))?)?;
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
