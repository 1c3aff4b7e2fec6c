//! Signed checkpoints: a tree's size and root, as a C2SP `tlog-checkpoint`
//! in a C2SP signed note.
//!
//! ```text
//! reprise-ledger/<ledger id>
//! <size>
//! <base64 root>
//!
//! — <key name> <base64(key id || Ed25519 signature)>
//! ```
//!
//! Both formats come from `tlog_tiles` and `signed_note` (the sumdb
//! formats Go, Sigsum and the CT static logs share), so any C2SP tool reads
//! a reprise checkpoint, and witnesses and auditors need no reprise code.

use signed_note::{Note, NoteError, Signer, VerifierList};
use tlog_tiles::Checkpoint;

use crate::keys::LedgerKeys;
use crate::tree::Hash;

/// A checkpoint whose signature verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Names of the keys whose signatures verified.
    pub signers: Vec<String>,
}

/// Why a checkpoint is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a signed checkpoint ({0})")]
    Malformed(String),
    #[error("its signature by {0} does not verify: it was altered")]
    BadSignature(String),
    #[error("no trusted key signed it (signed by: {0})")]
    UnknownSigner(String),
}

/// Signs the checkpoint of a tree, with each of `signers`.
pub fn sign(origin: &str, size: u64, root: Hash, signers: &[&dyn Signer]) -> Vec<u8> {
    let text = Checkpoint::new(origin, size, root, "").expect("a ledger origin is a valid checkpoint origin").to_bytes();
    let mut note = Note::new(&text, &[]).expect("a checkpoint is a valid note text");
    note.add_sigs(signers).expect("an Ed25519 key with a valid name signs");
    note.to_bytes()
}

/// The names of `appenders` whose signatures on a checkpoint verify
/// (the appender's co-signature, docs/FORMAT.md 17.8).
pub fn appenders(bytes: &[u8], appenders: &VerifierList) -> Result<Vec<String>, Refused> {
    let note = Note::from_bytes(bytes).map_err(|e| Refused::Malformed(e.to_string()))?;
    match note.verify(appenders) {
        Ok((verified, _)) => Ok(verified.iter().map(|s| s.name().to_owned()).collect()),
        Err(NoteError::InvalidSignature { name, id }) => Err(Refused::BadSignature(format!("{name}+{id:08x}"))),
        Err(NoteError::UnverifiedNote) => {
            let names = signer_names(bytes);
            Err(Refused::UnknownSigner(if names.is_empty() { "nobody".into() } else { names.join(", ") }))
        }
        Err(e) => Err(Refused::Malformed(e.to_string())),
    }
}

/// Parses a signed checkpoint and checks its signatures.
pub fn open(bytes: &[u8], keys: &LedgerKeys) -> Result<Verified, Refused> {
    let note = Note::from_bytes(bytes).map_err(|e| Refused::Malformed(e.to_string()))?;
    let checkpoint = Checkpoint::from_bytes(note.text()).map_err(|e| Refused::Malformed(e.to_string()))?;
    match note.verify(&keys.verifiers()) {
        Ok((verified, _)) => Ok(Verified {
            origin: checkpoint.origin().to_owned(),
            size: checkpoint.size(),
            root: *checkpoint.hash(),
            signers: verified.iter().map(|s| s.name().to_owned()).collect(),
        }),
        Err(NoteError::InvalidSignature { name, id }) => Err(Refused::BadSignature(format!("{name}+{id:08x}"))),
        Err(NoteError::UnverifiedNote) => {
            let names = signer_names(bytes);
            Err(Refused::UnknownSigner(if names.is_empty() { "nobody".into() } else { names.join(", ") }))
        }
        Err(e) => Err(Refused::Malformed(e.to_string())),
    }
}

/// The key names on a note's signature lines (for messages).
fn signer_names(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines().filter_map(|l| l.strip_prefix("— ")).filter_map(|l| l.split(' ').next()).map(str::to_owned).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::NoteSigner;
    use crate::tree::record_hash;

    fn keys(seed: u8) -> LedgerKeys {
        let s = NoteSigner::from_seed("reprise-ledger/test", &[seed; 32]).unwrap();
        let v = s.verifier_key();
        LedgerKeys::new(Box::new(s), &[v]).unwrap()
    }

    #[test]
    fn signs_verifies_and_names_what_is_wrong() {
        let k = keys(1);
        let root = record_hash(b"x");
        let note = sign("reprise-ledger/00", 5, root, &[k.signer().unwrap()]);
        let text = String::from_utf8(note.clone()).unwrap();
        assert!(text.starts_with("reprise-ledger/00\n5\n"), "{text}");
        assert!(text.contains("\n\n— reprise-ledger/test "), "{text}");
        let v = open(&note, &k).unwrap();
        assert_eq!((v.size, v.root, v.origin.as_str()), (5, root, "reprise-ledger/00"));

        // The size changed: the signature no longer verifies.
        let altered = text.replacen("\n5\n", "\n6\n", 1);
        assert!(matches!(open(altered.as_bytes(), &k), Err(Refused::BadSignature(_))));
        // Another key (same name) signed it.
        assert!(matches!(open(&sign("reprise-ledger/00", 5, root, &[keys(2).signer().unwrap()]), &k), Err(Refused::UnknownSigner(_))));
        assert!(matches!(open(b"garbage", &k), Err(Refused::Malformed(_))));
    }
}
