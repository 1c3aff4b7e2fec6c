//! Who signs checkpoints, and whose signatures `verify` trusts.
//!
//! The ledger does not choose its keys: its caller passes a [`LedgerKeys`]
//! holding the signer appends use (any `signed_note::Signer`) and the
//! verifier keys it trusts, in the C2SP / Go `note` text form
//! `<name>+<key id>+<base64(0x01 || Ed25519 public key)>` that auditors
//! and witnesses exchange.
//!
//! [`repository_keys`] is the one place a repository's keys are chosen:
//! the ledger key, derived from the shared key, signs every checkpoint
//! (every version 2 key can append), and the appending key's own format 2
//! signing key co-signs it ([`appender_name`]), so that `verify` can tell
//! who appended each entry and judge it (docs/FORMAT.md 17.8).

use ed25519_dalek::{Signer as _, SigningKey};
use reprise_engine::Repository;
use reprise_format::crypto::SymmetricKey;
use reprise_format::sign::KeyId;
use signed_note::{Signer, StandardVerifier, Verifier, VerifierList};

use crate::error::{Error, Result};

/// The signer of appends and the verifier keys trusted by `verify`.
pub struct LedgerKeys {
    signer: Option<Box<dyn Signer + Send + Sync>>,
    /// The appending key's own co-signature (its format 2 signing key), so
    /// that `verify` can say who appended each entry (docs/FORMAT.md 17.8).
    appender: Option<Box<dyn Signer + Send + Sync>>,
    trusted: Vec<(String, StandardVerifier)>,
}

impl std::fmt::Debug for LedgerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerKeys")
            .field("signer", &self.signer.as_ref().map(|s| s.name().to_owned()))
            .field("appender", &self.appender.as_ref().map(|s| s.name().to_owned()))
            .field("trusted", &self.trusted.iter().map(|(k, _)| k).collect::<Vec<_>>())
            .finish()
    }
}

impl LedgerKeys {
    /// Keys that append with `signer` and trust `trusted` (which should
    /// include the signer's own verifier key).
    pub fn new(signer: Box<dyn Signer + Send + Sync>, trusted: &[String]) -> Result<LedgerKeys> {
        Ok(LedgerKeys { signer: Some(signer), appender: None, trusted: parse_trusted(trusted)? })
    }

    /// Keys that verify but cannot append (an auditor's).
    pub fn verify_only(trusted: &[String]) -> Result<LedgerKeys> {
        Ok(LedgerKeys { signer: None, appender: None, trusted: parse_trusted(trusted)? })
    }

    /// The same keys, every append also co-signed by `appender`.
    #[must_use]
    pub fn with_appender(mut self, appender: Box<dyn Signer + Send + Sync>) -> LedgerKeys {
        self.appender = Some(appender);
        self
    }

    pub(crate) fn signer(&self) -> Result<&(dyn Signer + Send + Sync)> {
        self.signer.as_deref().ok_or_else(|| Error::Key("these ledger keys can only verify: appending needs a signing key".into()))
    }

    /// Everything an append's checkpoint is signed with: the ledger key,
    /// then the appender's own key when there is one.
    pub(crate) fn signers(&self) -> Result<Vec<&dyn Signer>> {
        let mut all: Vec<&dyn Signer> = vec![self.signer()?];
        if let Some(a) = self.appender.as_deref() {
            all.push(a);
        }
        Ok(all)
    }

    /// The trusted verifier keys, in C2SP text form.
    pub fn trusted(&self) -> impl Iterator<Item = &str> {
        self.trusted.iter().map(|(k, _)| k.as_str())
    }

    /// The verifier key of the signer, when it is among the trusted ones
    /// (what `proof` hands to an auditor).
    #[must_use]
    pub fn signer_key(&self) -> Option<&str> {
        let s = self.signer.as_ref()?;
        self.trusted.iter().find(|(_, v)| v.name() == s.name() && v.key_id() == s.key_id()).map(|(k, _)| k.as_str())
    }

    pub(crate) fn verifiers(&self) -> VerifierList {
        VerifierList::new(self.trusted.iter().map(|(_, v)| Box::new(v.clone()) as Box<dyn Verifier>).collect())
    }
}

fn parse_trusted(keys: &[String]) -> Result<Vec<(String, StandardVerifier)>> {
    keys.iter()
        .map(|k| {
            StandardVerifier::new(k)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::Key(format!("'{k}' is not a verifier key ({e}): give it as NAME+KEYID+BASE64, as `reprise ledger verify` prints it")))
        })
        .collect()
}

/// An Ed25519 key signing notes under a name (C2SP signed-note).
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NoteSigner({}+{:08x})", self.name, self.id)
    }
}

impl NoteSigner {
    /// The signer of a 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<NoteSigner> {
        if !signed_note::is_key_name_valid(name) {
            return Err(Error::Key(format!("'{name}' cannot name a signing key: no spaces, no '+'")));
        }
        let key = SigningKey::from_bytes(seed);
        let id = signed_note::key_id(name, &[&[1u8][..], key.verifying_key().as_bytes()].concat());
        Ok(NoteSigner { name: name.to_owned(), id, key })
    }

    /// The verifier key, in C2SP text form.
    #[must_use]
    pub fn verifier_key(&self) -> String {
        signed_note::new_ed25519_verifier_key(&self.name, &self.key.verifying_key())
    }
}

impl Signer for NoteSigner {
    fn name(&self) -> &str {
        &self.name
    }

    fn key_id(&self) -> u32 {
        self.id
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.try_sign(msg)?.to_vec())
    }
}

/// The ledger keys of a repository: one Ed25519 key, derived from the
/// repository's *shared key*, that signs and is trusted.
///
/// The shared key is the one secret every version 2 key holds, full
/// access and write-only alike (docs/FORMAT.md 2.3), as prune marks need:
/// so a production host with a write credential records its backups. It
/// also means every writer can sign with this key for every other: the
/// storage's write-once rule and the witness keep history from being
/// rewritten, and the appender's own co-signature says who appended
/// (docs/FORMAT.md 17.8: what a compromised writer can and cannot do). A
/// format 1 write-only key holds no shared key, and can write nothing
/// anyway.
pub fn repository_keys(repo: &Repository) -> Result<LedgerKeys> {
    let shared = shared_key(repo)?;
    let seed = blake3::derive_key(CHECKPOINT_KEY_CONTEXT, shared.as_bytes());
    let signer = NoteSigner::from_seed(&repository_key_name(repo), &seed).expect("the name is valid");
    let trusted = vec![signer.verifier_key()];
    let keys = LedgerKeys::new(Box::new(signer), &trusted).expect("a key this function made parses");
    // The key's own format 2 signing key co-signs: the administrator's for
    // a full-access key, the writer's for a write-only key.
    Ok(match repo.secrets().signer() {
        Some((key, _)) => keys.with_appender(Box::new(NoteSigner::from_seed(&appender_name(&key.key_id()), &key.seed()).expect("the name is valid"))),
        None => keys,
    })
}

/// The name a format 2 key co-signs checkpoints under: `reprise-key/`
/// and its key ID (its Ed25519 public key, 64 hex digits). A note text
/// starts with the ledger's origin line, never with the prefix of an
/// object signature (docs/FORMAT.md 2.4), so one key serves both without
/// one signature ever passing for the other.
#[must_use]
pub fn appender_name(id: &KeyId) -> String {
    format!("reprise-key/{}", id.to_hex())
}

/// The verifier key of a format 2 signer, in C2SP text form.
#[must_use]
pub fn appender_verifier_key(id: &KeyId) -> Option<String> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&id.0).ok()?;
    Some(signed_note::new_ed25519_verifier_key(&appender_name(id), &key))
}

/// BLAKE3 `derive_key` contexts of the ledger's two secrets, both from the
/// shared key (docs/FORMAT.md 17.4).
const CHECKPOINT_KEY_CONTEXT: &str = "reprise ledger checkpoint signing key v2";
const ENTRY_KEY_CONTEXT: &str = "reprise ledger entry key v2";

fn shared_key(repo: &Repository) -> Result<SymmetricKey> {
    repo.secrets()
        .shared_key()
        .ok_or_else(|| Error::Key("a format 1 write-only key cannot open or write the ledger: issue this host a new key (`reprise key add --write-only`)".into()))
}

/// The AES-256-GCM key entries are sealed under.
pub(crate) fn entry_key(repo: &Repository) -> Result<SymmetricKey> {
    Ok(SymmetricKey::from_bytes(blake3::derive_key(ENTRY_KEY_CONTEXT, shared_key(repo)?.as_bytes())))
}

/// `reprise-ledger/<first 16 hex digits of the repository ID>`.
fn repository_key_name(repo: &Repository) -> String {
    format!("reprise-ledger/{}", &repo.id().to_hex()[..16])
}
