//! Evidence-ledger objects (`ledger/`, docs/FORMAT.md section 17).
//!
//! The ledger is a transparency log (RFC 6962/9162 Merkle tree, C2SP
//! checkpoints) of the sensitive operations run on a repository; the tree,
//! the signatures and the protocol live in `reprise-ledger`. Here are only
//! the bytes: the record each append creates, the entry it carries, and
//! the names objects are stored under.
//!
//! ```text
//! record = "RPRSLED1" || u32 E || sealed entry (E) || u32 C || checkpoint (C) || u8 F || F × 32-byte hash
//! sealed entry = nonce (12) || AES-256-GCM(catalog key, nonce, AAD "reprise ledger entry v1")(entry CBOR) || tag (16)
//! ```
//!
//! One object per entry, named by its position: `<ledger>/records/<index>`.
//! The name is the sequencer: `Backend::create` never overwrites, so two
//! appenders racing for one index cannot both win, and an entry, once
//! acknowledged, has a position nothing can take from it. The record also
//! carries the signed checkpoint of the tree that ends with it, and that
//! tree's *frontier* (the roots of its perfect subtrees, largest first), so
//! that the next appender extends the tree from one object instead of
//! reading the whole log.
//!
//! The entry is sealed under the catalog key (like holds: a reason may name
//! a case), but what the tree hashes is its **plaintext**, so that an
//! auditor given an entry and its inclusion proof checks it without any
//! key. Each entry carries a random salt, so that the hashes (and the
//! checkpoints a witness holds) reveal nothing of what they cover.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::crypto::SymmetricKey;
use crate::error::FormatError;
use crate::id::Id;

pub const RECORD_MAGIC: &[u8; 8] = b"RPRSLED1";
pub const ENTRY_AAD: &[u8] = b"reprise ledger entry v1";
pub const ENTRY_VERSION: u32 = 1;
/// A frontier has one hash per bit set in the tree size: at most 64.
pub const MAX_FRONTIER: usize = 64;
/// Far above a real checkpoint (about 250 bytes): a bound for decoders.
pub const MAX_CHECKPOINT: usize = 16 * 1024;
/// Far above a real entry: a bound for decoders.
pub const MAX_ENTRY: usize = 1 << 20;
/// Width of the decimal index in record names: every u64 fits, and
/// names sort in log order.
const INDEX_DIGITS: usize = 20;

/// A ledger's identity: 16 random bytes, chosen by the first append at a
/// location (see [`SiteMarker`]), shown as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LedgerId(pub [u8; 16]);

impl LedgerId {
    #[must_use]
    pub fn generate() -> LedgerId {
        LedgerId(crate::crypto::random())
    }

    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The checkpoint origin line (C2SP tlog-checkpoint) of this ledger.
    #[must_use]
    pub fn origin(&self) -> String {
        format!("reprise-ledger/{}", self.to_hex())
    }

    /// The name of record `index`.
    #[must_use]
    pub fn record_name(&self, index: u64) -> String {
        format!("{}/records/{index:0INDEX_DIGITS$}", self.to_hex())
    }

    /// The name of the witnessed checkpoint of tree size `size`.
    #[must_use]
    pub fn checkpoint_name(&self, size: u64) -> String {
        format!("{}/checkpoints/{size:0INDEX_DIGITS$}", self.to_hex())
    }
}

impl fmt::Display for LedgerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for LedgerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LedgerId({})", self.to_hex())
    }
}

impl FromStr for LedgerId {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| FormatError::Malformed(format!("'{s}' is not a ledger ID (32 hex digits)")))?;
        let arr: [u8; 16] = bytes.try_into().map_err(|_| FormatError::Malformed(format!("'{s}' is not a ledger ID (32 hex digits)")))?;
        Ok(LedgerId(arr))
    }
}

/// What a name under `ledger/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LedgerName {
    Site,
    Witness,
    Record(LedgerId, u64),
    Checkpoint(LedgerId, u64),
}

impl LedgerName {
    /// Parses an object name; `None` for anything the format does not
    /// define (reported by `ledger verify`, never read).
    #[must_use]
    pub fn parse(name: &str) -> Option<LedgerName> {
        match name {
            SITE_NAME => return Some(LedgerName::Site),
            WITNESS_NAME => return Some(LedgerName::Witness),
            _ => {}
        }
        let mut parts = name.split('/');
        let (Some(id), Some(folder), Some(number), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return None;
        };
        let id: LedgerId = id.parse().ok()?;
        if number.len() != INDEX_DIGITS || !number.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = number.parse().ok()?;
        match folder {
            "records" => Some(LedgerName::Record(id, n)),
            "checkpoints" => Some(LedgerName::Checkpoint(id, n)),
            _ => None,
        }
    }
}

/// The name of the site marker.
pub const SITE_NAME: &str = "site";
/// The name of the witness marker.
pub const WITNESS_NAME: &str = "witness";

/// `ledger/site`: which ledger is this location's own. A copy carries the
/// records of every ledger, never this marker, so each site appends to its
/// own log and keeps the others as they came.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteMarker {
    pub format: String,
    pub version: u32,
    pub ledger: String,
}

impl SiteMarker {
    pub const FORMAT: &'static str = "reprise-ledger-site";

    #[must_use]
    pub fn new(ledger: LedgerId) -> SiteMarker {
        SiteMarker { format: Self::FORMAT.into(), version: 1, ledger: ledger.to_hex() }
    }

    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec(self).expect("JSON encodes in memory");
        v.push(b'\n');
        v
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<LedgerId, FormatError> {
        let m: SiteMarker = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("ledger site marker: {e}")))?;
        if m.format != Self::FORMAT {
            return Err(FormatError::BadMagic { expected: "ledger site marker" });
        }
        if m.version != 1 {
            return Err(FormatError::UnsupportedVersion { what: "ledger site marker", found: m.version, supported: 1 });
        }
        m.ledger.parse()
    }
}

/// `ledger/witness`: marks a location prepared to hold witnessed
/// checkpoints, so that a mistyped witness URL is an error rather than a
/// new, unwatched place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WitnessMarker {
    pub format: String,
    pub version: u32,
}

impl WitnessMarker {
    pub const FORMAT: &'static str = "reprise-ledger-witness";

    #[must_use]
    pub fn to_bytes() -> Vec<u8> {
        let mut v = serde_json::to_vec(&WitnessMarker { format: Self::FORMAT.into(), version: 1 }).expect("JSON encodes in memory");
        v.push(b'\n');
        v
    }

    pub fn check(bytes: &[u8]) -> Result<(), FormatError> {
        let m: WitnessMarker = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("ledger witness marker: {e}")))?;
        if m.format != Self::FORMAT {
            return Err(FormatError::BadMagic { expected: "ledger witness marker" });
        }
        if m.version != 1 {
            return Err(FormatError::UnsupportedVersion { what: "ledger witness marker", found: m.version, supported: 1 });
        }
        Ok(())
    }
}

/// One ledger entry, as stored (CBOR, text keys). Never patient data:
/// operations, identifiers, counts, sizes, who, when, and why when a
/// reason was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryRecord {
    pub version: u32,
    /// Position in the log (0-based); equal to the record's name.
    pub index: u64,
    /// 16 random bytes: the leaf hash of an entry reveals nothing of it.
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
    pub time: jiff::Timestamp,
    pub host: String,
    /// The operating-system account that ran the operation.
    pub user: String,
    /// `backup`, `restore`, `forget`, `prune`, `hold-add`, ... (README).
    pub operation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Id>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<String, u64>,
    /// Byte counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sizes: BTreeMap<String, u64>,
    /// Identifiers of other things the operation touched (a hold, a key, a
    /// destination repository), as text.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub refs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `ok`, `problems` (a check that found damage) or `failed`.
    pub result: String,
    /// For a failure: its category (`damaged`, `permission`, ...), never a
    /// message (messages name paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EntryRecord {
    /// The entry's CBOR: the bytes the Merkle tree hashes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(self, &mut out).expect("CBOR encodes in memory");
        out
    }

    pub fn decode(plain: &[u8]) -> Result<EntryRecord, FormatError> {
        let e: EntryRecord = ciborium::from_reader(plain).map_err(|e| FormatError::Malformed(format!("ledger entry: {e}")))?;
        if e.version != ENTRY_VERSION {
            return Err(FormatError::UnsupportedVersion { what: "ledger entry", found: e.version, supported: ENTRY_VERSION });
        }
        Ok(e)
    }
}

/// Seals an entry's CBOR under the catalog key.
#[must_use]
pub fn seal_entry(plain: &[u8], catalog_key: &SymmetricKey) -> Vec<u8> {
    catalog_key.seal_with_random_nonce(ENTRY_AAD, plain)
}

/// Opens a sealed entry: its CBOR, exactly as hashed.
pub fn open_entry(sealed: &[u8], catalog_key: &SymmetricKey) -> Result<Vec<u8>, FormatError> {
    catalog_key.open_with_nonce_prefix(ENTRY_AAD, sealed, "ledger entry")
}

/// A record: what one append stores (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub sealed_entry: Vec<u8>,
    /// The C2SP signed note of the tree that ends with this entry.
    pub checkpoint: Vec<u8>,
    /// Roots of the perfect subtrees of that tree, largest (leftmost) first.
    pub frontier: Vec<[u8; 32]>,
}

impl Record {
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.frontier.len() <= MAX_FRONTIER && self.checkpoint.len() <= MAX_CHECKPOINT && self.sealed_entry.len() <= MAX_ENTRY);
        let mut out = Vec::with_capacity(8 + 4 + self.sealed_entry.len() + 4 + self.checkpoint.len() + 1 + 32 * self.frontier.len());
        out.extend_from_slice(RECORD_MAGIC);
        out.extend_from_slice(&(self.sealed_entry.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.sealed_entry);
        out.extend_from_slice(&(self.checkpoint.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.checkpoint);
        out.push(self.frontier.len() as u8);
        for h in &self.frontier {
            out.extend_from_slice(h);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Record, FormatError> {
        let mut r = Reader { bytes, at: 0 };
        if r.take(8)? != RECORD_MAGIC {
            return Err(FormatError::BadMagic { expected: "ledger record" });
        }
        let e = r.u32()? as usize;
        if e > MAX_ENTRY {
            return Err(FormatError::Malformed(format!("ledger record: entry of {e} bytes")));
        }
        let sealed_entry = r.take(e)?.to_vec();
        let c = r.u32()? as usize;
        if c > MAX_CHECKPOINT {
            return Err(FormatError::Malformed(format!("ledger record: checkpoint of {c} bytes")));
        }
        let checkpoint = r.take(c)?.to_vec();
        let f = usize::from(r.take(1)?[0]);
        if f > MAX_FRONTIER {
            return Err(FormatError::Malformed(format!("ledger record: frontier of {f} hashes")));
        }
        let mut frontier = Vec::with_capacity(f);
        for _ in 0..f {
            frontier.push(r.take(32)?.try_into().expect("32 bytes"));
        }
        if r.at != bytes.len() {
            return Err(FormatError::Malformed(format!("ledger record: {} bytes after the frontier", bytes.len() - r.at)));
        }
        Ok(Record { sealed_entry, checkpoint, frontier })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FormatError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| FormatError::truncated(format!("ledger record ends at {} bytes", self.bytes.len())))?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    fn u32(&mut self) -> Result<u32, FormatError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn entry() -> EntryRecord {
        EntryRecord {
            version: 1,
            index: 7,
            salt: vec![9; 16],
            time: "2026-11-26T10:00:00Z".parse().unwrap(),
            host: "db1".into(),
            user: "postgres".into(),
            operation: "backup".into(),
            component: Some("db".into()),
            snapshots: vec![Id([1; 32])],
            counts: BTreeMap::from([("files".into(), 12)]),
            sizes: BTreeMap::from([("bytes".into(), 4096)]),
            refs: BTreeMap::new(),
            reason: None,
            result: "ok".into(),
            error: None,
        }
    }

    #[test]
    fn entry_round_trips_sealed_and_refuses_other_keys() {
        let key = SymmetricKey::generate();
        let plain = entry().encode();
        let sealed = seal_entry(&plain, &key);
        assert_eq!(open_entry(&sealed, &key).unwrap(), plain);
        assert_eq!(EntryRecord::decode(&plain).unwrap(), entry());
        assert!(open_entry(&sealed, &SymmetricKey::generate()).is_err());
    }

    #[test]
    fn names_parse_back() {
        let id = LedgerId([0xab; 16]);
        assert_eq!(LedgerName::parse(&id.record_name(42)), Some(LedgerName::Record(id, 42)));
        assert_eq!(LedgerName::parse(&id.checkpoint_name(u64::MAX)), Some(LedgerName::Checkpoint(id, u64::MAX)));
        assert_eq!(LedgerName::parse("site"), Some(LedgerName::Site));
        assert_eq!(LedgerName::parse(&format!("{id}/records/42")), None);
        assert_eq!(LedgerName::parse(&format!("{id}/other/{:020}", 1)), None);
        assert_eq!(SiteMarker::from_bytes(&SiteMarker::new(id).to_bytes()).unwrap(), id);
        assert!(WitnessMarker::check(&WitnessMarker::to_bytes()).is_ok());
        assert!(WitnessMarker::check(&SiteMarker::new(id).to_bytes()).is_err());
    }

    proptest! {
        #[test]
        fn record_round_trips(entry in proptest::collection::vec(any::<u8>(), 0..300),
                              checkpoint in proptest::collection::vec(any::<u8>(), 0..300),
                              frontier in proptest::collection::vec(any::<[u8; 32]>(), 0..20)) {
            let r = Record { sealed_entry: entry, checkpoint, frontier };
            let bytes = r.encode();
            prop_assert_eq!(Record::decode(&bytes).unwrap(), r);
            // Any shorter prefix, or one byte more, is refused.
            for cut in [0, 7, 8, bytes.len() / 2, bytes.len() - 1] {
                prop_assert!(Record::decode(&bytes[..cut]).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            prop_assert!(Record::decode(&longer).is_err());
        }
    }
}
