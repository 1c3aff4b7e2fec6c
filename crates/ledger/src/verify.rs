//! `verify`: recompute every root, check every signature, and compare the
//! log with every checkpoint it holds and every checkpoint the witness
//! holds; name exactly what was altered, removed, reordered or forked.
//!
//! For each record, in order: its checkpoint must be signed by a trusted
//! key, be of this ledger and of the size its position says; its entry
//! must decrypt, and say the same position; and the root of the tree
//! recomputed from every entry so far must be the one its checkpoint
//! signed. The first record whose recomputed root differs from its own
//! checkpoint points at the change: its frontier (signed with it) and the
//! recomputed one differ in exactly the subtree that holds the changed
//! entry. After damage (an entry that cannot be read), checking resumes
//! from the next intact record's signed frontier, so one damaged record
//! does not hide what follows it.
//!
//! Who appended: every append is co-signed by the appending key's own
//! format 2 signing key. With a full-access key (which knows every
//! endorsed writer), each entry's co-signature must be the
//! administrator's, or an endorsed writer's recording what a write-only
//! key can do (a backup, a check, a note), not after its revocation;
//! anything else is a *forged* entry (docs/FORMAT.md 17.8).
//!
//! Against the witness: each witnessed checkpoint of size `s` must carry
//! the root recomputed at `s`. Appends witness every size, so the first
//! size whose root differs is one entry past the first entry rewritten
//! (a fork); a witnessed size beyond the end of the log means entries were
//! removed from the end (truncation). Entries after the last witnessed
//! checkpoint are protected by the storage's write-once rule only; the
//! report says how many there are.

use std::collections::{BTreeMap, HashMap};

use reprise_backends::ErrorKind;
use reprise_format::keys::Role;
use reprise_format::ledger::{EntryRecord, LedgerId};
use serde::Serialize;
use signed_note::{StandardVerifier, Verifier, VerifierList};

use crate::checkpoint::{self, Refused};
use crate::error::{Error, Result};
use crate::log::{Ledger, object_path};
use crate::tree::{EMPTY_HASH, Frontier, Hash, record_hash};

/// What `verify` found, ledger by ledger.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub repository: String,
    pub witness: Option<String>,
    /// The verifier keys whose signatures were trusted.
    pub trusted_keys: Vec<String>,
    pub ledgers: Vec<LedgerVerdict>,
    /// Whether who appended each entry was judged (it needs a full-access
    /// key, which knows every endorsed writer).
    pub appenders_checked: bool,
    /// Findings about no single ledger (objects the format does not define).
    pub findings: Vec<Finding>,
}

impl VerifyReport {
    /// Whether anything shows tampering or damage (as opposed to notes,
    /// such as entries not witnessed yet).
    #[must_use]
    pub fn tampered(&self) -> bool {
        self.findings.iter().chain(self.ledgers.iter().flat_map(|l| &l.findings)).any(|f| f.kind.is_tampering())
    }
}

/// One ledger's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerVerdict {
    pub ledger: String,
    /// This location appends to it; the others came by `copy`.
    pub own: bool,
    /// Entries the log holds (the highest position + 1).
    pub size: u64,
    /// The root recomputed from the entries (base64), when every entry
    /// could be read.
    pub root: Option<String>,
    /// Records whose checkpoint signature verified.
    pub signatures: u64,
    /// Witnessed checkpoints that match the log.
    pub witnessed: u64,
    /// The largest witnessed size that matches the log.
    pub witnessed_size: Option<u64>,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The entries concerned, `first..=last` (positions, 0-based).
    pub first: u64,
    pub last: u64,
    /// The object concerned (repository or witness path).
    pub object: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// An entry, checkpoint or frontier was changed after it was written,
    /// or a record is not one.
    Altered,
    /// Records are missing inside the log.
    Removed,
    /// A record sits at a position it was not written for.
    Reordered,
    /// The log's history differs from a witnessed checkpoint.
    Forked,
    /// Entries were removed from the end of the log.
    Truncated,
    /// An object that does not belong here.
    Foreign,
    /// An entry appended by a key that may not have appended it: none of
    /// this repository's, a write-only key recording what only the
    /// administrator does, or a writer after its revocation.
    Forged,
    /// Note: entries not witnessed (yet).
    Unwitnessed,
    /// Note: a ledger of this repository that the witness knows and this
    /// location does not hold (another site's).
    Elsewhere,
}

impl FindingKind {
    #[must_use]
    pub fn is_tampering(self) -> bool {
        !matches!(self, FindingKind::Unwitnessed | FindingKind::Elsewhere)
    }
}

impl Ledger<'_> {
    /// Verifies every ledger of the repository (see the module docs).
    pub fn verify(&self) -> Result<VerifyReport> {
        // A damaged site marker is a finding like any other: every ledger
        // is still verified, none is taken for this location's own.
        let mut site_finding = None;
        let own = match self.site() {
            Ok(own) => own,
            Err(Error::Damaged { object, message }) => {
                site_finding = Some(Finding { kind: FindingKind::Altered, first: 0, last: 0, object, message: format!("the site marker is not one ({message}): it was altered; no ledger is taken for this location's own") });
                None
            }
            Err(e) => return Err(e),
        };
        let (inventory, strange) = self.inventory_for(own)?;
        let mut findings: Vec<Finding> = strange
            .into_iter()
            .map(|name| Finding { kind: FindingKind::Foreign, first: 0, last: 0, object: object_path(&name), message: format!("{} is not a ledger object", object_path(&name)) })
            .collect();
        let mut witnessed: BTreeMap<LedgerId, Vec<(u64, String)>> = BTreeMap::new();
        if let Some(w) = &self.witness {
            let (cps, _) = w.list()?;
            for (id, size, name) in cps {
                witnessed.entry(id).or_default().push((size, name));
            }
        }
        let mut ledgers = Vec::new();
        for (id, indexes) in &inventory {
            let cps = witnessed.remove(id).unwrap_or_default();
            ledgers.push(self.verify_one(*id, Some(*id) == own, indexes, &cps)?);
        }
        // Ledgers signed with this repository's keys that the witness
        // knows and this location has no record of. The own ledger (named
        // by the site marker) is in the inventory even when its records
        // are gone, and was reported as truncated; the others belong to
        // the sites that share this repository's keys (a copy appends to
        // its own ledger) and have not been carried here.
        for (id, cps) in witnessed {
            let w = self.witness.as_ref().expect("listed from the witness");
            let Some((size, name)) = cps.last() else { continue };
            let Ok(bytes) = w.read(name) else { continue };
            if checkpoint::open(&bytes, &self.keys).is_ok_and(|cp| cp.origin == id.origin()) {
                findings.push(Finding {
                    kind: FindingKind::Elsewhere,
                    first: 0,
                    last: size - 1,
                    object: w.path(name),
                    message: format!(
                        "the witness holds {} checkpoint(s) of ledger {id}, up to size {size}, signed with this repository's key, and this location has none of its records: the ledger of another site (a copy) not carried here, or removed from here with its site marker",
                        cps.len()
                    ),
                });
            }
        }
        findings.extend(site_finding);
        findings.sort_by(|a, b| a.object.cmp(&b.object));
        Ok(VerifyReport {
            repository: self.repo.backend().location().to_owned(),
            witness: self.witness.as_ref().map(|w| w.location().to_owned()),
            trusted_keys: self.keys.trusted().map(str::to_owned).collect(),
            appenders_checked: self.repo.secrets().role() == Role::Full,
            ledgers,
            findings,
        })
    }

    /// The keys that may append, when this key can know them all.
    fn appenders(&self) -> Option<Appenders> {
        if self.repo.secrets().role() != Role::Full {
            return None;
        }
        let trust = self.repo.trust();
        let mut a = Appenders { verifiers: Vec::new(), who: HashMap::new() };
        let mut add = |id: &reprise_format::sign::KeyId, who: Who| {
            if let Some(v) = crate::keys::appender_verifier_key(id).and_then(|k| StandardVerifier::new(&k).ok()) {
                a.verifiers.push(v);
                a.who.insert(crate::keys::appender_name(id), who);
            }
        };
        if let Some(admin) = trust.admin() {
            add(&admin, Who::Admin);
        }
        for w in trust.writers() {
            add(&w.key_id, Who::Writer { key_id: w.key_id.to_hex(), label: w.label.clone(), revoked: w.revoked.as_ref().map(|r| r.time) });
        }
        Some(a)
    }

    fn verify_one(&self, ledger: LedgerId, own: bool, indexes: &[u64], witnessed: &[(u64, String)]) -> Result<LedgerVerdict> {
        let size = indexes.last().map_or(0, |&i| i + 1);
        let present: std::collections::HashSet<u64> = indexes.iter().copied().collect();
        let mut findings = Vec::new();
        let mut signatures = 0u64;
        // The tree recomputed from the entries (None after damage, until
        // an intact record's signed frontier lets checking resume).
        let mut frontier = Some(Frontier::empty());
        // Roots by size: recomputed where possible, else as signed.
        let mut roots: Vec<Option<Hash>> = vec![None; usize::try_from(size).expect("a log fits in memory") + 1];
        roots[0] = Some(EMPTY_HASH);
        let mut all_recomputed = true;
        let mut missing_from: Option<u64> = None;
        let appenders = self.appenders();
        // Writers whose revocation this ledger recorded, and where.
        let mut revoked_here: HashMap<String, u64> = HashMap::new();
        for i in 0..size {
            let name = ledger.record_name(i);
            let object = object_path(&name);
            let finding = |kind, message: String| Finding { kind, first: i, last: i, object: object.clone(), message };
            if !present.contains(&i) {
                missing_from.get_or_insert(i);
                frontier = None;
                all_recomputed = false;
                continue;
            }
            if let Some(first) = missing_from.take() {
                findings.push(removed(ledger, first, i - 1));
            }
            let bytes = match self.backend().read(reprise_backends::ObjectKind::Ledger, &name) {
                Ok(b) => b,
                Err(e) if matches!(e.kind, ErrorKind::NotFound | ErrorKind::Truncated | ErrorKind::Other) => {
                    findings.push(finding(FindingKind::Altered, format!("entry {i}: its record cannot be read ({e})")));
                    frontier = None;
                    all_recomputed = false;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let opened = match self.open_record(&bytes) {
                Ok(o) => o,
                Err(m) => {
                    findings.push(finding(FindingKind::Altered, format!("entry {i}: {m}: it was altered or truncated")));
                    frontier = None;
                    all_recomputed = false;
                    continue;
                }
            };
            let cp = match opened.checkpoint {
                Ok(cp) => cp,
                Err(r) => {
                    let what = match r {
                        Refused::BadSignature(_) => "its checkpoint was altered",
                        Refused::UnknownSigner(_) => "its checkpoint is not signed by a trusted key (forged, or signed by a key this command does not trust)",
                        Refused::Malformed(_) => "its checkpoint is not a signed checkpoint: it was altered",
                    };
                    findings.push(finding(FindingKind::Altered, format!("entry {i}: {what} ({r})")));
                    // The entry may still be intact: keep the recomputed
                    // tree going if it can be.
                    if let (Some(f), Ok(p)) = (frontier.as_mut(), &opened.plain) {
                        f.push(record_hash(p));
                        roots[i as usize + 1] = Some(f.root());
                    } else {
                        frontier = None;
                        all_recomputed = false;
                    }
                    continue;
                }
            };
            signatures += 1;
            if cp.origin != ledger.origin() {
                findings.push(finding(FindingKind::Foreign, format!("entry {i}: the record holds a checkpoint of {} (another ledger): it was moved here", cp.origin)));
                frontier = None;
                all_recomputed = false;
                continue;
            }
            if cp.size != i + 1 {
                findings.push(finding(
                    FindingKind::Reordered,
                    format!("entry {i}: the record here was written as entry {} (its checkpoint is of size {}): records were reordered", cp.size.saturating_sub(1), cp.size),
                ));
                frontier = None;
                all_recomputed = false;
                continue;
            }
            if let Some(e) = &opened.entry
                && e.index != i
            {
                findings.push(finding(FindingKind::Reordered, format!("entry {i}: the record holds entry {} under the checkpoint of entry {i}: entries were moved between records", e.index)));
            }
            if let (Some(a), Some(e)) = (&appenders, &opened.entry)
                && let Some(m) = a.judge(i, &opened.note, e, &mut revoked_here)
            {
                findings.push(finding(FindingKind::Forged, m));
            }
            // The frontier the record's signer computed, if it matches the
            // root it signed.
            let signed = opened.frontier.clone().filter(|f| f.root() == cp.root);
            if signed.is_none() {
                findings.push(finding(FindingKind::Altered, format!("entry {i}: the frontier stored with its checkpoint does not match the root it signed: the frontier was altered")));
            }
            match (frontier.take(), &opened.plain) {
                (Some(mut f), Ok(plain)) => {
                    f.push(record_hash(plain));
                    if f.root() == cp.root {
                        roots[i as usize + 1] = Some(f.root());
                        frontier = Some(f);
                    } else {
                        findings.push(mismatch(&object, i, &f, signed.as_ref()));
                        // Go on from what the recomputation says: the
                        // witness comparison below is about content.
                        roots[i as usize + 1] = Some(f.root());
                        frontier = Some(f);
                    }
                }
                (_, Err(e)) => {
                    findings.push(finding(FindingKind::Altered, format!("entry {i}: it does not decrypt ({e}): it was altered, or sealed with another key")));
                    all_recomputed = false;
                    roots[i as usize + 1] = Some(cp.root);
                    frontier = signed;
                }
                (None, Ok(_)) => {
                    // Resume after damage from what this record signed.
                    roots[i as usize + 1] = Some(cp.root);
                    frontier = signed;
                }
            }
        }
        if let Some(first) = missing_from {
            findings.push(removed(ledger, first, size - 1));
        }
        let (witnessed_count, witnessed_size) = self.compare_with_witness(ledger, size, &roots, witnessed, &mut findings);
        findings.sort_by_key(|f| (f.first, f.last));
        let root = (all_recomputed && frontier.as_ref().is_some_and(|f| f.size() == size)).then(|| roots[size as usize]).flatten();
        Ok(LedgerVerdict {
            ledger: ledger.to_hex(),
            own,
            size,
            root: root.map(|r| r.to_string()),
            signatures,
            witnessed: witnessed_count,
            witnessed_size,
            findings,
        })
    }

    fn compare_with_witness(&self, ledger: LedgerId, size: u64, roots: &[Option<Hash>], witnessed: &[(u64, String)], findings: &mut Vec<Finding>) -> (u64, Option<u64>) {
        let Some(w) = &self.witness else {
            if size > 0 {
                findings.push(Finding {
                    kind: FindingKind::Unwitnessed,
                    first: 0,
                    last: size - 1,
                    object: object_path(&ledger.record_name(0)),
                    message: format!("no witness was given: entries 0..={} are checked against the repository's own checkpoints only (a key holder could rewrite them)", size - 1),
                });
            }
            return (0, None);
        };
        let mut matched = 0u64;
        let mut matched_max: Option<u64> = None;
        let mut forked = false;
        let mut truncated_to: Option<(u64, String)> = None;
        let mut sizes_held = std::collections::BTreeSet::new();
        for (s, name) in witnessed {
            let object = w.path(name);
            let bytes = match w.read(name) {
                Ok(b) => b,
                Err(e) => {
                    findings.push(Finding { kind: FindingKind::Altered, first: 0, last: s.saturating_sub(1), object, message: format!("the witnessed checkpoint of size {s} cannot be read ({e})") });
                    continue;
                }
            };
            let cp = match checkpoint::open(&bytes, &self.keys) {
                Ok(cp) => cp,
                Err(r) => {
                    findings.push(Finding { kind: FindingKind::Altered, first: 0, last: s.saturating_sub(1), object, message: format!("the witnessed checkpoint of size {s} is refused: {r}") });
                    continue;
                }
            };
            if cp.origin != ledger.origin() || cp.size != *s {
                findings.push(Finding {
                    kind: FindingKind::Reordered,
                    first: 0,
                    last: s.saturating_sub(1),
                    object,
                    message: format!("the witness stores under size {s} the checkpoint of size {} of {}: witnessed checkpoints were renamed", cp.size, cp.origin),
                });
                continue;
            }
            sizes_held.insert(*s);
            if *s > size {
                truncated_to = Some((*s, object));
                continue;
            }
            match roots[*s as usize] {
                Some(r) if r == cp.root => {
                    matched += 1;
                    matched_max = Some(matched_max.map_or(*s, |m: u64| m.max(*s)));
                }
                Some(_) if !forked => {
                    forked = true;
                    // The largest witnessed size below that still matches:
                    // the rewrite starts after it.
                    let from = matched_max.filter(|&m| m < *s).unwrap_or(0);
                    let message = if from + 1 == *s {
                        format!("entry {} differs from the witnessed history: the witness holds another root for size {s}; history was rewritten from entry {} on", s - 1, s - 1)
                    } else {
                        format!("the log differs from the witnessed history at size {s} (it matches up to size {from}): an entry between {from} and {} was rewritten", s - 1)
                    };
                    findings.push(Finding { kind: FindingKind::Forked, first: from.min(s - 1), last: s - 1, object, message });
                }
                _ => {}
            }
        }
        if let Some((s, object)) = truncated_to {
            findings.push(Finding {
                kind: FindingKind::Truncated,
                first: size,
                last: s - 1,
                object,
                message: format!("the log ends after {size} entries, but the witness holds its checkpoint of size {s}: entries {size}..={} were removed from the end", s - 1),
            });
        }
        // Sizes the witness does not hold: notes, not tampering (the
        // witness may have been set up later, or a write to it failed).
        let last_held = sizes_held.range(..=size).next_back().copied().unwrap_or(0);
        if last_held < size {
            findings.push(Finding {
                kind: FindingKind::Unwitnessed,
                first: last_held,
                last: size - 1,
                object: w.location().to_owned(),
                message: format!("entries {last_held}..={} are not witnessed yet (the next append witnesses them)", size - 1),
            });
        }
        let gaps = (1..last_held).filter(|s| !sizes_held.contains(s)).count();
        if gaps > 0 {
            findings.push(Finding {
                kind: FindingKind::Unwitnessed,
                first: 0,
                last: last_held.saturating_sub(1),
                object: w.location().to_owned(),
                message: format!("the witness lacks {gaps} of the checkpoints of sizes 1..{last_held} (appends made before it was set up, or while it was unreachable): entries are pinned by the later ones"),
            });
        }
        (matched, matched_max)
    }
}

fn removed(ledger: LedgerId, first: u64, last: u64) -> Finding {
    let object = object_path(&ledger.record_name(first));
    let message = if first == last { format!("entry {first}: its record was removed") } else { format!("entries {first}..={last}: their records were removed") };
    Finding { kind: FindingKind::Removed, first, last, object, message }
}

/// Names the change when the tree recomputed through entry `i` does not
/// have the root record `i` signed.
fn mismatch(object: &str, i: u64, recomputed: &Frontier, signed: Option<&Frontier>) -> Finding {
    match signed.and_then(|s| recomputed.first_difference(s)) {
        Some((first, end)) if first == i && end == i + 1 => Finding {
            kind: FindingKind::Altered,
            first: i,
            last: i,
            object: object.to_owned(),
            message: format!("entry {i} was changed after it was written: its content no longer matches the checkpoint signed with it"),
        },
        Some((first, end)) => Finding {
            kind: FindingKind::Altered,
            first,
            last: end.min(i + 1) - 1,
            object: object.to_owned(),
            message: format!("the entries before entry {i} do not match the checkpoint of entry {i}: one of entries {first}..={} was changed and the checkpoints after it re-signed", end.min(i + 1) - 1),
        },
        None => Finding {
            kind: FindingKind::Altered,
            first: 0,
            last: i,
            object: object.to_owned(),
            message: format!("the entries up to {i} do not match the checkpoint of entry {i}: an entry up to {i} was changed"),
        },
    }
}

/// What a write-only key can do, and so record: nothing that removes,
/// lifts, restores or changes keys.
const WRITER_OPERATIONS: [&str; 3] = ["backup", "check", "note"];

/// Who may append: the administrator and every endorsed writer.
struct Appenders {
    verifiers: Vec<StandardVerifier>,
    who: HashMap<String, Who>,
}

enum Who {
    Admin,
    Writer { key_id: String, label: String, revoked: Option<jiff::Timestamp> },
}

impl Appenders {
    /// Why entry `i` was not appended by a key that may have appended it,
    /// if it was not.
    fn judge(&self, i: u64, note: &[u8], e: &EntryRecord, revoked_here: &mut HashMap<String, u64>) -> Option<String> {
        let list = VerifierList::new(self.verifiers.iter().map(|v| Box::new(v.clone()) as Box<dyn Verifier>).collect());
        let names = match checkpoint::appenders(note, &list) {
            Ok(names) => names,
            Err(Refused::UnknownSigner(by)) => {
                return Some(format!(
                    "entry {i} ({}): no key of this repository co-signed its append (signed by: {by}): appended with the ledger key alone, by a key nobody endorsed, or with its appender's signature removed",
                    e.operation
                ));
            }
            Err(r) => return Some(format!("entry {i} ({}): its appender's signature: {r}", e.operation)),
        };
        let who = names.iter().find_map(|n| self.who.get(n))?;
        match who {
            Who::Admin => {
                if matches!(e.operation.as_str(), "key-revoke" | "key-remove")
                    && let Some(k) = e.refs.get("key_id")
                {
                    revoked_here.entry(k.clone()).or_insert(i);
                }
                None
            }
            Who::Writer { key_id, label, revoked } => {
                let short = key_id.get(..12).unwrap_or(key_id);
                if !WRITER_OPERATIONS.contains(&e.operation.as_str()) {
                    return Some(format!("entry {i}: a {} appended by write-only key {short} ({label}), which cannot do that", e.operation));
                }
                if let Some(at) = revoked_here.get(key_id) {
                    return Some(format!("entry {i} ({}): appended by write-only key {short} ({label}) after entry {at} recorded its revocation", e.operation));
                }
                if let Some(t) = revoked
                    && e.time > *t
                {
                    return Some(format!("entry {i} ({}): appended by write-only key {short} ({label}) at {}, after its revocation at {t}", e.operation, e.time));
                }
                None
            }
        }
    }
}
