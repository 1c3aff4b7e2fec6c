//! Inclusion proofs an auditor checks offline, with no key of the
//! repository and no reprise code: the entry's bytes, the RFC 9162 audit
//! path from its leaf to the root, the signed checkpoint of that root,
//! and the verifier key that signed it (docs/FORMAT.md section 17.6;
//! `tools/ledger/reprise_ledger.py check-proof` is an independent checker).
//!
//! Optionally, a consistency proof from an older tree size (one the
//! auditor kept from an earlier audit) to the checkpoint's, so that the
//! auditor also learns that nothing they saw before was rewritten.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use reprise_backends::ObjectKind;
use reprise_format::ledger::{EntryRecord, LedgerId};
use serde::{Deserialize, Serialize};

use crate::checkpoint;
use crate::entry::EntryView;
use crate::error::{Error, Result};
use crate::keys::LedgerKeys;
use crate::log::{Ledger, object_path};
use crate::tree::{Hash, TreeHashes, check_consistency, check_inclusion, record_hash};

pub const PROOF_FORMAT: &str = "reprise-ledger-proof";

/// The exported proof (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InclusionProof {
    pub format: String,
    pub version: u32,
    pub ledger: String,
    pub index: u64,
    /// The entry's CBOR, base64: the leaf hash is SHA-256(0x00 || it).
    pub entry: String,
    pub tree_size: u64,
    /// Base64 hashes, from the leaf's sibling up to the root's children.
    pub inclusion: Vec<String>,
    /// The signed checkpoint (C2SP signed note) of `tree_size`.
    pub checkpoint: String,
    /// The keys that may have signed it, `name+id+base64`.
    pub verifier_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<ConsistencyProof>,
    /// The witness that holds the same checkpoint, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness: Option<String>,
    /// What the entry says, for the reader (checkers decode `entry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decoded: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsistencyProof {
    pub old_size: u64,
    /// Base64.
    pub old_root: String,
    pub proof: Vec<String>,
}

/// What a proof proved.
#[derive(Debug, Clone, Serialize)]
pub struct ProofCheck {
    pub entry: EntryView,
    pub tree_size: u64,
    pub root: String,
    pub signed_by: Vec<String>,
    pub consistent_with: Option<u64>,
}

impl Ledger<'_> {
    /// The proof that entry `index` of `ledger` (this location's own when
    /// `None`) is in the log's latest tree; with `old_size`, also the
    /// consistency of the tree of that size with it.
    pub fn proof(&self, ledger: Option<LedgerId>, index: u64, old_size: Option<u64>) -> Result<InclusionProof> {
        let (inventory, _) = self.inventory()?;
        let ledger = match ledger {
            Some(l) => l,
            None => self.site()?.ok_or_else(|| Error::NotFound("nothing was recorded in this repository's ledger yet".into()))?,
        };
        let indexes = inventory.into_iter().find(|(id, _)| *id == ledger).map(|(_, v)| v).unwrap_or_default();
        let size = indexes.last().map_or(0, |&i| i + 1);
        if index >= size {
            return Err(Error::NotFound(format!(
                "no entry {index} in ledger {ledger}: it holds {}; `reprise ledger show` lists them",
                if size == 0 { "no entries".to_owned() } else { format!("entries 0..={}", size - 1) }
            )));
        }
        if indexes.len() as u64 != size {
            return Err(Error::damaged(object_path(&ledger.record_name(0)), "the log has missing records"));
        }
        // Rebuild the tree, holding every record to the checkpoint signed
        // with it: a proof is never built over damage.
        let mut tree = TreeHashes::new();
        let mut entry = Vec::new();
        let mut last_note = Vec::new();
        for i in 0..size {
            let name = ledger.record_name(i);
            let bad = |m: String| Error::damaged(object_path(&name), format!("{m}; no proof is built over damage"));
            let bytes = self.backend().read(ObjectKind::Ledger, &name)?;
            let opened = self.open_record(&bytes).map_err(bad)?;
            let cp = opened.checkpoint.map_err(|r| bad(format!("its checkpoint is refused: {r}")))?;
            let plain = opened.plain.map_err(|e| bad(format!("its entry does not open: {e}")))?;
            tree.push(record_hash(&plain));
            if cp.size != i + 1 || cp.origin != ledger.origin() || tree.root(i + 1) != cp.root {
                return Err(bad("it does not match the entries before it".into()));
            }
            if i == index {
                entry = plain;
            }
            last_note = opened.note;
        }
        let consistency = match old_size {
            Some(old) if old == 0 || old > size => {
                return Err(Error::InvalidArgument(format!("--from-size {old}: give a tree size between 1 and {size}")));
            }
            Some(old) => Some(ConsistencyProof { old_size: old, old_root: tree.root(old).to_string(), proof: tree.consistency(old, size).iter().map(ToString::to_string).collect() }),
            None => None,
        };
        let witness = match &self.witness {
            Some(w) if w.get(ledger, size)?.as_deref() == Some(last_note.as_slice()) => Some(w.location().to_owned()),
            _ => None,
        };
        let decoded = EntryRecord::decode(&entry).ok().map(|e| serde_json::to_value(EntryView::new(&ledger.to_hex(), e)).expect("JSON in memory"));
        Ok(InclusionProof {
            format: PROOF_FORMAT.into(),
            version: 1,
            ledger: ledger.to_hex(),
            index,
            entry: B64.encode(&entry),
            tree_size: size,
            inclusion: tree.inclusion(index, size).iter().map(ToString::to_string).collect(),
            checkpoint: String::from_utf8(last_note).expect("a verified note is UTF-8"),
            verifier_keys: self.keys.trusted().map(str::to_owned).collect(),
            consistency,
            witness,
            decoded,
        })
    }
}

/// Checks a proof with the verifier keys `trusted` (an auditor pins them;
/// the proof's own list is only a hint).
pub fn check_proof(proof: &InclusionProof, trusted: &LedgerKeys) -> Result<ProofCheck> {
    // A proof that is not one is bad input; one that is, and fails, was
    // altered (or proves something else); one signed by another key needs
    // the right key.
    let malformed = |m: String| Error::InvalidArgument(format!("not a ledger proof: {m}"));
    let bad = Error::ProofFails;
    if proof.format != PROOF_FORMAT || proof.version != 1 {
        return Err(malformed(format!("format {}, version {} (expected {PROOF_FORMAT}, version 1)", proof.format, proof.version)));
    }
    let ledger: LedgerId = proof.ledger.parse().map_err(|e| malformed(format!("{e}")))?;
    let entry = B64.decode(&proof.entry).map_err(|e| malformed(format!("entry: {e}")))?;
    let record = EntryRecord::decode(&entry).map_err(|e| bad(format!("entry: {e}")))?;
    if record.index != proof.index {
        return Err(bad(format!("the entry says it is entry {}, the proof says {}", record.index, proof.index)));
    }
    let cp = checkpoint::open(proof.checkpoint.as_bytes(), trusted).map_err(|r| match r {
        checkpoint::Refused::UnknownSigner(who) => Error::Key(format!(
            "the proof's checkpoint is signed by {who}, not by a key given (--key): check the key the repository's owner gave you"
        )),
        r => bad(format!("checkpoint: {r}")),
    })?;
    if cp.origin != ledger.origin() || cp.size != proof.tree_size {
        return Err(bad(format!("the checkpoint is of size {} of {}, the proof claims size {} of {}", cp.size, cp.origin, proof.tree_size, ledger.origin())));
    }
    let hashes = |v: &[String]| v.iter().map(|h| Hash::parse_hash(h).map_err(|e| bad(format!("hash '{h}': {e}")))).collect::<Result<Vec<_>>>();
    if !check_inclusion(&hashes(&proof.inclusion)?, cp.size, cp.root, proof.index, record_hash(&entry)) {
        return Err(bad(format!("entry {} is not in the tree of size {} that the checkpoint signs", proof.index, cp.size)));
    }
    let consistent_with = match &proof.consistency {
        Some(c) => {
            let old_root = Hash::parse_hash(&c.old_root).map_err(|e| bad(format!("old root: {e}")))?;
            if !check_consistency(&hashes(&c.proof)?, cp.size, cp.root, c.old_size, old_root) {
                return Err(bad(format!("the tree of size {} is not a prefix of the tree of size {}: history was rewritten", c.old_size, cp.size)));
            }
            Some(c.old_size)
        }
        None => None,
    };
    Ok(ProofCheck { entry: EntryView::new(&proof.ledger, record), tree_size: cp.size, root: cp.root.to_string(), signed_by: cp.signers, consistent_with })
}
