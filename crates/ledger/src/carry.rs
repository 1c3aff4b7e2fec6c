//! Carrying ledgers to a copy of the repository (`reprise copy`), so that
//! the second site holds the evidence too.
//!
//! Records travel byte for byte under their own names, like every object a
//! copy sends, and only verified: each record sent must chain onto the
//! ones before it (its checkpoint signed by a trusted key, its entry
//! decrypting, the recomputed root equal to the signed one). A damaged
//! record stops its ledger there: the copy never gets a hole, and never
//! gets damage. A record already at the destination with other bytes is a
//! fork, reported and left alone (nothing is ever overwritten).
//!
//! The destination's own marker (`ledger/site`) is never sent: each site
//! appends to its own ledger and keeps the others as they came.

use std::collections::{BTreeMap, BTreeSet};

use reprise_backends::{Backend, ErrorKind, ObjectKind};
use reprise_format::ledger::{LedgerId, LedgerName};
use serde::Serialize;

use crate::error::Result;
use crate::log::Ledger;
use crate::tree::{Frontier, record_hash};

/// What a carry did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CarryReport {
    pub ledgers: u64,
    pub records_copied: u64,
    /// Records not sent, and why (damage in the source, a fork).
    pub problems: Vec<String>,
}

impl Ledger<'_> {
    /// Sends to `to` every record of every ledger here that it lacks.
    pub fn carry(&self, to: &dyn Backend) -> Result<CarryReport> {
        let (inventory, _) = self.inventory()?;
        let mut held: BTreeMap<LedgerId, BTreeSet<u64>> = BTreeMap::new();
        for o in to.list(ObjectKind::Ledger)? {
            if let Some(LedgerName::Record(id, n)) = LedgerName::parse(&o.name) {
                held.entry(id).or_default().insert(n);
            }
        }
        let mut report = CarryReport::default();
        for (ledger, indexes) in inventory {
            if indexes.is_empty() {
                continue;
            }
            report.ledgers += 1;
            let there = held.remove(&ledger).unwrap_or_default();
            let size = indexes.last().map_or(0, |&i| i + 1);
            // The destination's prefix was verified when it was sent.
            let start = (0..size).find(|i| !there.contains(i)).unwrap_or(size);
            if start == size {
                continue;
            }
            let mut frontier = Frontier::empty();
            let mut i = start.saturating_sub(1);
            if start > 0 {
                let name = ledger.record_name(i);
                let ours = self.backend().read(ObjectKind::Ledger, &name)?;
                if to.read(ObjectKind::Ledger, &name)? != ours {
                    report.problems.push(format!("ledger {ledger}: entry {i} differs between the two repositories (a fork); nothing after it was copied: run `reprise ledger verify` on both"));
                    continue;
                }
                let signed = self.open_record(&ours).ok().and_then(|o| o.checkpoint.ok().and_then(|cp| o.frontier.filter(|f| f.root() == cp.root && cp.size == i + 1)));
                let Some(f) = signed else {
                    report.problems.push(format!("ledger {ledger}: entry {i} is damaged here: nothing after it was copied; run `reprise ledger verify`"));
                    continue;
                };
                frontier = f;
                i += 1;
            }
            while i < size {
                let name = ledger.record_name(i);
                let bytes = match self.backend().read(ObjectKind::Ledger, &name) {
                    Ok(b) => b,
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        report.problems.push(format!("ledger {ledger}: entry {i} is missing here: nothing after it was copied; run `reprise ledger verify`"));
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                let chained = self.open_record(&bytes).ok().and_then(|o| {
                    let cp = o.checkpoint.ok()?;
                    let mut f = frontier.clone();
                    f.push(record_hash(o.plain.as_ref().ok()?));
                    (cp.size == i + 1 && cp.origin == ledger.origin() && f.root() == cp.root).then_some(f)
                });
                let Some(next) = chained else {
                    report.problems.push(format!("ledger {ledger}: entry {i} is damaged here: neither it nor anything after it was copied; run `reprise ledger verify`"));
                    break;
                };
                match to.create(ObjectKind::Ledger, &name, &bytes) {
                    Ok(()) => report.records_copied += 1,
                    Err(e) if e.kind == ErrorKind::AlreadyExists => {
                        if to.read(ObjectKind::Ledger, &name)? != bytes {
                            report.problems.push(format!("ledger {ledger}: entry {i} differs between the two repositories (a fork); nothing after it was copied: run `reprise ledger verify` on both"));
                            break;
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
                frontier = next;
                i += 1;
            }
        }
        Ok(report)
    }
}
