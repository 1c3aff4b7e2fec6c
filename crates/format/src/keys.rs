//! Repository secrets and the key files that protect them.
//!
//! One master secret set is created with a repository and held by every
//! full-access key (docs/FORMAT.md 2.0): the recovery key pair, and the
//! *legacy domain* keys version 1 wrote with. Everything version 2 writes
//! with is derived from the recovery secret (2.3): the administrator's
//! signing key, the shared key of prune marks, and one set of keys per
//! *deduplication domain*.
//!
//! A write-only key holds only its own domain's keys, its own signing key,
//! the shared key and the administrator's public key. That is the whole
//! point: refusing to read, to confirm a guess about another host's data
//! or to forge another writer's objects is not a policy check a
//! compromised host could skip, it is the absence of the keys.
//!
//! A key file stores a secret set sealed under a passphrase (Argon2id +
//! AES-256-GCM), plus a public part (role, key ID, domain, who made it)
//! that the administrator *endorses* with a signature: writers can create
//! files under `keys/`, but not endorsed ones.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{IdKey, NONCE_LEN, RecoveryPublicKey, RecoverySecretKey, SymmetricKey, random};
use crate::sign::{KeyId, ObjectType, SigningKey};
use crate::{FormatError, Id};

pub const KEY_FILE_FORMAT: &str = "reprise-key";
pub const RECOVERY_FILE_FORMAT: &str = "reprise-recovery-key";
pub const WRITE_CREDENTIAL_FORMAT: &str = "reprise-write-credential";
pub const KEY_FILE_VERSION: u32 = 2;
const KEY_FILE_AAD: &[u8] = b"reprise key v1";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read, write, and administer (keys, forget, prune).
    Full,
    /// Add backups and deduplicate against its own; read nothing back.
    WriteOnly,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Full => "full",
            Role::WriteOnly => "write-only",
        })
    }
}

// ---------------------------------------------------------------- domains

/// A deduplication domain's ID (docs/FORMAT.md 2.3).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DomainId(pub [u8; 32]);

/// Where a blob ID means something: a domain.
pub type Domain = DomainId;

impl DomainId {
    /// The administrator's domain, where full-access keys back up.
    pub const ADMIN: DomainId = DomainId([0; 32]);
    /// The legacy domain: version 1's keys (the master set's `id_key`,
    /// `catalog_key`, `chunker_seed`). Unsigned objects belong to it; in
    /// version 2 objects only the administrator may name it.
    pub const LEGACY: DomainId = DomainId([0xFF; 32]);

    #[must_use]
    pub fn generate() -> DomainId {
        let mut d = DomainId(random());
        // A random ID that is a reserved one would be the administrator's
        // or the legacy domain.
        if d == DomainId::ADMIN || d == DomainId::LEGACY {
            d.0[0] = 1;
        }
        d
    }

    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_slice(b: &[u8]) -> Result<DomainId, FormatError> {
        Ok(DomainId(b.try_into().map_err(|_| FormatError::Malformed(format!("domain ID of {} bytes, expected 32", b.len())))?))
    }

    /// `admin`, `legacy`, or the first 12 hex digits.
    #[must_use]
    pub fn name(&self) -> String {
        match *self {
            DomainId::ADMIN => "admin".into(),
            DomainId::LEGACY => "legacy".into(),
            d => d.to_hex()[..12].to_owned(),
        }
    }
}

impl std::fmt::Debug for DomainId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DomainId({})", self.name())
    }
}

impl std::fmt::Display for DomainId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for DomainId {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(DomainId::ADMIN),
            "legacy" => Ok(DomainId::LEGACY),
            _ => DomainId::from_slice(&hex::decode(s).map_err(|_| FormatError::Malformed(format!("'{s}' is not a hex domain ID")))?),
        }
    }
}

impl Serialize for DomainId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            DomainId::ADMIN | DomainId::LEGACY if s.is_human_readable() => s.serialize_str(&self.name()),
            _ if s.is_human_readable() => s.serialize_str(&self.to_hex()),
            _ => s.serialize_bytes(&self.0),
        }
    }
}

impl<'de> Deserialize<'de> for DomainId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let b = serde_bytes::ByteBuf::deserialize(d)?;
            DomainId::from_slice(&b).map_err(serde::de::Error::custom)
        }
    }
}

/// The three secrets of one domain.
#[derive(Clone)]
pub struct DomainKeys {
    pub id_key: IdKey,
    pub catalog_key: SymmetricKey,
    pub chunker_seed: u64,
}

impl std::fmt::Debug for DomainKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DomainKeys(..)")
    }
}

/// HKDF-SHA256 from the recovery secret, salted with the repository ID
/// (docs/FORMAT.md 2.3).
fn derive<const L: usize>(recovery: &RecoverySecretKey, repository: &Id, info: &[&[u8]]) -> Zeroizing<[u8; L]> {
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&repository.0), recovery.as_bytes());
    let mut out = Zeroizing::new([0u8; L]);
    hk.expand_multi_info(info, out.as_mut()).expect("HKDF output of at most 32 bytes");
    out
}

// ---------------------------------------------------------------- secret sets

/// What a full-access key (or the recovery key file) holds.
#[derive(Clone, Debug)]
pub struct FullSecrets {
    pub recovery: RecoverySecretKey,
    /// Version 1's keys: the legacy domain.
    pub legacy: DomainKeys,
}

/// What a version 2 write-only key (or write credential) holds.
#[derive(Clone, Debug)]
pub struct WriterSecrets {
    pub signing: SigningKey,
    pub domain: DomainId,
    pub keys: DomainKeys,
    pub shared_key: SymmetricKey,
    /// The administrator's key ID: prune marks must carry its signature.
    pub admin: KeyId,
}

/// The secrets one key opens to.
#[derive(Clone, Debug)]
pub enum Access {
    Full(FullSecrets),
    Writer(Box<WriterSecrets>),
    /// A version 1 write-only key: the legacy domain's keys and nothing to
    /// sign with. It can no longer write (docs/FORMAT.md 16).
    LegacyWriter(DomainKeys),
}

#[derive(Clone, Debug)]
pub struct Secrets {
    pub repository_id: Id,
    pub recovery_public: RecoveryPublicKey,
    pub access: Access,
}

impl Secrets {
    /// Fresh secrets for a new repository.
    #[must_use]
    pub fn generate(repository_id: Id) -> Secrets {
        let (sk, pk) = RecoverySecretKey::generate();
        Secrets {
            repository_id,
            recovery_public: pk,
            access: Access::Full(FullSecrets {
                recovery: sk,
                legacy: DomainKeys { id_key: IdKey::generate(), catalog_key: SymmetricKey::generate(), chunker_seed: u64::from_le_bytes(random()) },
            }),
        }
    }

    #[must_use]
    pub fn role(&self) -> Role {
        match self.access {
            Access::Full(_) => Role::Full,
            Access::Writer(_) | Access::LegacyWriter(_) => Role::WriteOnly,
        }
    }

    #[must_use]
    pub fn recovery(&self) -> Option<&RecoverySecretKey> {
        match &self.access {
            Access::Full(f) => Some(&f.recovery),
            _ => None,
        }
    }

    /// The administrator's signing key (full-access keys only).
    #[must_use]
    pub fn admin_key(&self) -> Option<SigningKey> {
        let recovery = self.recovery()?;
        Some(SigningKey::from_seed(&derive::<32>(recovery, &self.repository_id, &[b"reprise admin signing key v2"])))
    }

    /// The administrator's key ID, as every version 2 key knows it.
    #[must_use]
    pub fn admin_id(&self) -> Option<KeyId> {
        match &self.access {
            Access::Full(_) => self.admin_key().map(|k| k.key_id()),
            Access::Writer(w) => Some(w.admin),
            Access::LegacyWriter(_) => None,
        }
    }

    /// The key prune marks are sealed under.
    #[must_use]
    pub fn shared_key(&self) -> Option<SymmetricKey> {
        match &self.access {
            Access::Full(f) => Some(SymmetricKey::from_bytes(*derive::<32>(&f.recovery, &self.repository_id, &[b"reprise shared key v2"]))),
            Access::Writer(w) => Some(w.shared_key.clone()),
            Access::LegacyWriter(_) => None,
        }
    }

    /// The keys of `domain`, if this key holds (or can derive) them.
    #[must_use]
    pub fn domain_keys(&self, domain: &Domain) -> Option<DomainKeys> {
        match (&self.access, *domain) {
            (Access::Full(f), DomainId::LEGACY) => Some(f.legacy.clone()),
            (Access::LegacyWriter(k), DomainId::LEGACY) => Some(k.clone()),
            (Access::Full(f), d) => Some(derive_domain(&f.recovery, &self.repository_id, &d)),
            (Access::Writer(w), d) if d == w.domain => Some(w.keys.clone()),
            _ => None,
        }
    }

    /// What this key signs with and the domain it writes in; `None` for a
    /// version 1 write-only key, which cannot sign.
    #[must_use]
    pub fn signer(&self) -> Option<(SigningKey, DomainId)> {
        match &self.access {
            Access::Full(_) => self.admin_key().map(|k| (k, DomainId::ADMIN)),
            Access::Writer(w) => Some((w.signing.clone(), w.domain)),
            Access::LegacyWriter(_) => None,
        }
    }

    /// The domain this key backs up in.
    #[must_use]
    pub fn home_domain(&self) -> Domain {
        match &self.access {
            Access::Full(_) => DomainId::ADMIN,
            Access::Writer(w) => w.domain,
            Access::LegacyWriter(_) => DomainId::LEGACY,
        }
    }

    /// Secrets for a new write-only key with its own fresh domain and
    /// signing key (full-access keys only).
    pub fn new_writer(&self) -> Result<Secrets, FormatError> {
        let Access::Full(f) = &self.access else {
            return Err(FormatError::Malformed("only a full-access key can issue write-only keys".into()));
        };
        let domain = DomainId::generate();
        Ok(Secrets {
            repository_id: self.repository_id,
            recovery_public: self.recovery_public.clone(),
            access: Access::Writer(Box::new(WriterSecrets {
                signing: SigningKey::generate(),
                domain,
                keys: derive_domain(&f.recovery, &self.repository_id, &domain),
                shared_key: self.shared_key().expect("full key"),
                admin: self.admin_id().expect("full key"),
            })),
        })
    }

    fn to_plain_full(&self) -> Option<PlainSecrets> {
        let Access::Full(f) = &self.access else { return None };
        Some(PlainSecrets {
            repository_id: self.repository_id,
            id_key: hex::encode(f.legacy.id_key.0),
            catalog_key: hex::encode(f.legacy.catalog_key.0),
            chunker_seed: format!("{:016x}", f.legacy.chunker_seed),
            recovery_public: hex::encode(self.recovery_public.0),
            recovery_secret: Some(hex::encode(f.recovery.0)),
        })
    }

    fn to_plain_writer(&self) -> Option<PlainWriterSecrets> {
        let Access::Writer(w) = &self.access else { return None };
        Some(PlainWriterSecrets {
            version: 2,
            repository_id: self.repository_id,
            recovery_public: hex::encode(self.recovery_public.0),
            admin_public: w.admin.to_hex(),
            signing_key: hex::encode(*w.signing.seed()),
            domain: w.domain.to_hex(),
            id_key: hex::encode(w.keys.id_key.0),
            catalog_key: hex::encode(w.keys.catalog_key.0),
            chunker_seed: format!("{:016x}", w.keys.chunker_seed),
            shared_key: hex::encode(w.shared_key.0),
        })
    }

    /// The secrets object a key file seals (docs/FORMAT.md 4).
    fn to_plain_json(&self) -> Result<Zeroizing<Vec<u8>>, FormatError> {
        let v = match (self.to_plain_full(), self.to_plain_writer()) {
            (Some(p), _) => serde_json::to_vec(&p),
            (_, Some(p)) => serde_json::to_vec(&p),
            _ => return Err(FormatError::Malformed("a version 1 write-only key cannot be written again: add a new write-only key".into())),
        };
        Ok(Zeroizing::new(v.expect("secrets serialize")))
    }

    /// Reads a secrets object: version 2 writer, or version 1 (full or
    /// write-only).
    fn from_plain_json(bytes: &[u8]) -> Result<Secrets, FormatError> {
        let probe: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("key secrets: {e}")))?;
        if probe.get("version").and_then(serde_json::Value::as_u64) == Some(2) {
            drop(probe);
            let p: PlainWriterSecrets = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("key secrets: {e}")))?;
            return Secrets::from_plain_writer(&p);
        }
        drop(probe);
        let p: PlainSecrets = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("key secrets: {e}")))?;
        Secrets::from_plain(&p)
    }

    fn from_plain(p: &PlainSecrets) -> Result<Secrets, FormatError> {
        let recovery_public = RecoveryPublicKey::from_bytes(key32("recovery_public", &p.recovery_public)?)?;
        let legacy = DomainKeys {
            id_key: IdKey(key32("id_key", &p.id_key)?),
            catalog_key: SymmetricKey(key32("catalog_key", &p.catalog_key)?),
            chunker_seed: seed64(&p.chunker_seed)?,
        };
        let access = match &p.recovery_secret {
            Some(s) => {
                let sk = RecoverySecretKey::from_bytes(key32("recovery_secret", s)?)?;
                if sk.public_key() != recovery_public {
                    return Err(FormatError::Malformed("recovery secret does not match the recovery public key".into()));
                }
                Access::Full(FullSecrets { recovery: sk, legacy })
            }
            None => Access::LegacyWriter(legacy),
        };
        Ok(Secrets { repository_id: p.repository_id, recovery_public, access })
    }

    fn from_plain_writer(p: &PlainWriterSecrets) -> Result<Secrets, FormatError> {
        Ok(Secrets {
            repository_id: p.repository_id,
            recovery_public: RecoveryPublicKey::from_bytes(key32("recovery_public", &p.recovery_public)?)?,
            access: Access::Writer(Box::new(WriterSecrets {
                signing: SigningKey::from_seed(&Zeroizing::new(key32("signing_key", &p.signing_key)?)),
                domain: DomainId(key32("domain", &p.domain)?),
                keys: DomainKeys {
                    id_key: IdKey(key32("id_key", &p.id_key)?),
                    catalog_key: SymmetricKey(key32("catalog_key", &p.catalog_key)?),
                    chunker_seed: seed64(&p.chunker_seed)?,
                },
                shared_key: SymmetricKey(key32("shared_key", &p.shared_key)?),
                admin: KeyId(key32("admin_public", &p.admin_public)?),
            })),
        })
    }
}

/// A domain's keys, derived from the recovery secret (docs/FORMAT.md 2.3).
fn derive_domain(recovery: &RecoverySecretKey, repository: &Id, domain: &DomainId) -> DomainKeys {
    DomainKeys {
        id_key: IdKey(*derive::<32>(recovery, repository, &[b"reprise domain id key v2", &domain.0])),
        catalog_key: SymmetricKey(*derive::<32>(recovery, repository, &[b"reprise domain catalog key v2", &domain.0])),
        chunker_seed: u64::from_le_bytes(*derive::<8>(recovery, repository, &[b"reprise domain chunker seed v2", &domain.0])),
    }
}

fn key32(name: &str, s: &str) -> Result<[u8; 32], FormatError> {
    let v = Zeroizing::new(hex::decode(s).map_err(|_| FormatError::Malformed(format!("{name} is not hex")))?);
    v.as_slice().try_into().map_err(|_| FormatError::Malformed(format!("{name} is not 32 bytes")))
}

fn seed64(s: &str) -> Result<u64, FormatError> {
    u64::from_str_radix(s, 16).map_err(|_| FormatError::Malformed("chunker_seed is not hex".into()))
}

/// The JSON of a full-access (or version 1 write-only) secrets object.
#[derive(Serialize, Deserialize, zeroize::Zeroize)]
#[serde(deny_unknown_fields)]
struct PlainSecrets {
    #[zeroize(skip)]
    repository_id: Id,
    id_key: String,
    catalog_key: String,
    chunker_seed: String,
    recovery_public: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    recovery_secret: Option<String>,
}

impl Drop for PlainSecrets {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self);
    }
}

/// The JSON of a version 2 write-only secrets object.
#[derive(Serialize, Deserialize, zeroize::Zeroize)]
#[serde(deny_unknown_fields)]
struct PlainWriterSecrets {
    version: u32,
    #[zeroize(skip)]
    repository_id: Id,
    recovery_public: String,
    admin_public: String,
    signing_key: String,
    domain: String,
    id_key: String,
    catalog_key: String,
    chunker_seed: String,
    shared_key: String,
}

impl Drop for PlainWriterSecrets {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self);
    }
}

// ---------------------------------------------------------------- key files

/// Argon2id parameters, stored in each key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes: about a quarter of a second on a 2-core server, per
    /// attempt — cheap for the owner, expensive for a guesser.
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 }
    }
}

impl KdfParams {
    /// Minimal parameters for tests that open repositories hundreds of times.
    #[must_use]
    pub fn insecure_fast() -> Self {
        KdfParams { memory_kib: 64, iterations: 1, parallelism: 1 }
    }

    fn derive(&self, passphrase: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>, FormatError> {
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
            .map_err(|e| FormatError::Malformed(format!("invalid Argon2id parameters: {e}")))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase, salt, out.as_mut())
            .map_err(|e| FormatError::Malformed(format!("Argon2id failed: {e}")))?;
        Ok(out)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KdfSection {
    algorithm: String,
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
    salt: String,
}

/// Who made a key and why (the descriptive part of a key file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub role: Role,
    pub created: jiff::Timestamp,
    pub host: String,
    pub user: String,
    #[serde(default)]
    pub label: String,
}

/// A key file as stored under `keys/` (docs/FORMAT.md 4).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    format: String,
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(flatten)]
    pub info: KeyInfo,
    /// The public record of a write credential: no sealed secrets here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub credential: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kdf: Option<KdfSection>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endorsement: Option<String>,
}

/// What a new key file describes besides its secrets.
#[derive(Debug, Clone, Default)]
pub struct KeyLabels {
    pub host: String,
    pub user: String,
    pub label: String,
    /// Write-only keys: the host the key is issued for.
    pub bound_host: Option<String>,
}

impl KeyFile {
    /// Seals `secrets` under `passphrase`. The role recorded is the
    /// secrets' own; a version 2 key file is not endorsed yet (see
    /// [`KeyFile::endorse`]).
    pub fn seal(secrets: &Secrets, passphrase: &[u8], params: KdfParams, labels: &KeyLabels) -> Result<KeyFile, FormatError> {
        let salt: [u8; 16] = random();
        let kek = SymmetricKey(*params.derive(passphrase, &salt)?);
        let nonce: [u8; NONCE_LEN] = random();
        let mut buf = secrets.to_plain_json()?.to_vec();
        kek.seal_in_place(nonce, KEY_FILE_AAD, &mut buf);
        let mut file = KeyFile::public(secrets, labels, false)?;
        file.kdf = Some(KdfSection {
            algorithm: "argon2id".into(),
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
            salt: B64.encode(salt),
        });
        file.nonce = Some(B64.encode(nonce));
        file.sealed = Some(B64.encode(buf));
        Ok(file)
    }

    /// The public record of a write credential (docs/FORMAT.md 4.2).
    pub fn credential_record(secrets: &Secrets, labels: &KeyLabels) -> Result<KeyFile, FormatError> {
        if !matches!(secrets.access, Access::Writer(_)) {
            return Err(FormatError::Malformed("a write credential holds version 2 write-only secrets".into()));
        }
        KeyFile::public(secrets, labels, true)
    }

    fn public(secrets: &Secrets, labels: &KeyLabels, credential: bool) -> Result<KeyFile, FormatError> {
        let (key_id, domain) = match &secrets.access {
            Access::Full(_) => (KeyId(random()), None),
            Access::Writer(w) => (w.signing.key_id(), Some(w.domain.to_hex())),
            Access::LegacyWriter(_) => return Err(FormatError::Malformed("a version 1 write-only key cannot be written again: add a new write-only key".into())),
        };
        Ok(KeyFile {
            format: KEY_FILE_FORMAT.into(),
            version: KEY_FILE_VERSION,
            key_id: Some(key_id.to_hex()),
            info: KeyInfo { role: secrets.role(), created: jiff::Timestamp::now(), host: labels.host.clone(), user: labels.user.clone(), label: labels.label.clone() },
            credential,
            domain,
            bound_host: if secrets.role() == Role::WriteOnly { labels.bound_host.clone() } else { None },
            kdf: None,
            nonce: None,
            sealed: None,
            endorsement: None,
        })
    }

    /// The same sealed secrets with a new public part (version 2, a random
    /// key ID): how `key upgrade` carries a version 1 full-access key file
    /// over without its passphrase.
    pub fn upgraded(&self) -> Result<KeyFile, FormatError> {
        if self.version != 1 || self.info.role != Role::Full || self.sealed.is_none() {
            return Err(FormatError::Malformed("only version 1 full-access key files are upgraded".into()));
        }
        let mut f = self.clone();
        f.version = KEY_FILE_VERSION;
        f.key_id = Some(KeyId(random()).to_hex());
        f.endorsement = None;
        Ok(f)
    }

    /// A new file for the same key with `other`'s sealed secrets (a
    /// passphrase change): key ID, role and labels are kept.
    #[must_use]
    pub fn with_secrets_of(&self, other: &KeyFile) -> KeyFile {
        let mut f = self.clone();
        f.kdf.clone_from(&other.kdf);
        f.nonce.clone_from(&other.nonce);
        f.sealed.clone_from(&other.sealed);
        f.endorsement = None;
        f
    }

    /// The same key without its sealed secrets: a record that vouches for
    /// a writer's signatures (in a `copy` mirror) and opens nothing.
    #[must_use]
    pub fn public_record(&self) -> KeyFile {
        let mut f = self.clone();
        f.kdf = None;
        f.nonce = None;
        f.sealed = None;
        f.endorsement = None;
        f
    }

    #[must_use]
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The key's ID (version 2).
    #[must_use]
    pub fn key_id(&self) -> Option<KeyId> {
        self.key_id.as_deref().and_then(|s| s.parse().ok())
    }

    /// The domain a write-only key writes in (version 2).
    #[must_use]
    pub fn domain(&self) -> Option<DomainId> {
        self.domain.as_deref().and_then(|s| s.parse().ok())
    }

    /// Whether the file holds sealed secrets a passphrase may open.
    #[must_use]
    pub fn has_secrets(&self) -> bool {
        self.sealed.is_some()
    }

    /// The bytes the administrator's endorsement signs (docs/FORMAT.md 4).
    pub fn endorsed_bytes(&self) -> Result<Vec<u8>, FormatError> {
        fn lp(out: &mut Vec<u8>, b: &[u8]) {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        let key_id = self.key_id().ok_or_else(|| FormatError::Malformed("key file has no key_id".into()))?;
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&key_id.0);
        out.push(match self.info.role {
            Role::Full => 0,
            Role::WriteOnly => 1,
        });
        out.push(u8::from(self.credential));
        out.extend_from_slice(&self.domain().map_or([0; 32], |d| d.0));
        lp(&mut out, self.bound_host.as_deref().unwrap_or("").as_bytes());
        lp(&mut out, self.info.created.to_string().as_bytes());
        lp(&mut out, self.info.host.as_bytes());
        lp(&mut out, self.info.user.as_bytes());
        lp(&mut out, self.info.label.as_bytes());
        let b64 = |s: &Option<String>, what: &str| -> Result<Vec<u8>, FormatError> {
            s.as_deref().map_or(Ok(Vec::new()), |s| B64.decode(s).map_err(|_| FormatError::Malformed(format!("{what} is not base64"))))
        };
        let kdf = self.kdf.as_ref();
        out.extend_from_slice(&kdf.map_or(0, |k| k.memory_kib).to_le_bytes());
        out.extend_from_slice(&kdf.map_or(0, |k| k.iterations).to_le_bytes());
        out.extend_from_slice(&kdf.map_or(0, |k| k.parallelism).to_le_bytes());
        lp(&mut out, &b64(&kdf.map(|k| k.salt.clone()), "salt")?);
        lp(&mut out, &b64(&self.nonce, "nonce")?);
        lp(&mut out, &b64(&self.sealed, "sealed")?);
        Ok(out)
    }

    /// Signs the file's public part with the administrator key.
    pub fn endorse(&mut self, admin: &SigningKey, repository: &Id) -> Result<(), FormatError> {
        self.endorsement = None;
        let sig = admin.sign(ObjectType::Key, repository, &self.endorsed_bytes()?);
        self.endorsement = Some(hex::encode(sig));
        Ok(())
    }

    /// Checks the endorsement against the administrator's key ID.
    pub fn verify_endorsement(&self, admin: &KeyId, repository: &Id) -> Result<(), FormatError> {
        let sig = self.endorsement.as_deref().ok_or_else(|| FormatError::Malformed("not endorsed by the administrator".into()))?;
        let sig: [u8; 64] = hex::decode(sig).ok().and_then(|v| v.try_into().ok()).ok_or_else(|| FormatError::Malformed("endorsement is not 64 hex bytes".into()))?;
        crate::sign::verify_detached(admin, ObjectType::Key, repository, &self.endorsed_bytes()?, &sig)
    }

    pub fn open(&self, passphrase: &[u8]) -> Result<Secrets, FormatError> {
        let (Some(kdf), Some(nonce), Some(sealed)) = (&self.kdf, &self.nonce, &self.sealed) else {
            return Err(FormatError::WrongPassphrase);
        };
        if kdf.algorithm != "argon2id" {
            return Err(FormatError::Malformed(format!("unknown key derivation '{}'", kdf.algorithm)));
        }
        let params = KdfParams { memory_kib: kdf.memory_kib, iterations: kdf.iterations, parallelism: kdf.parallelism };
        let salt = B64.decode(&kdf.salt).map_err(|_| FormatError::Malformed("salt is not base64".into()))?;
        let nonce: [u8; NONCE_LEN] = B64
            .decode(nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| FormatError::Malformed("nonce is not 12 base64 bytes".into()))?;
        let mut buf = B64.decode(sealed).map_err(|_| FormatError::Malformed("sealed secrets are not base64".into()))?;
        let kek = SymmetricKey(*params.derive(passphrase, &salt)?);
        kek.open_in_place(nonce, KEY_FILE_AAD, &mut buf, "key file").map_err(|_| FormatError::WrongPassphrase)?;
        let buf = Zeroizing::new(buf);
        let secrets = Secrets::from_plain_json(&buf)?;
        // A file whose public part names another key than its secrets
        // (pieced together from two files) is not this key.
        if let (Access::Writer(w), Some(id)) = (&secrets.access, self.key_id())
            && w.signing.key_id() != id
        {
            return Err(FormatError::Malformed("the key file's key_id is not the key its secrets hold".into()));
        }
        if secrets.role() != self.info.role {
            return Err(FormatError::Malformed("the key file's role is not its secrets' role".into()));
        }
        Ok(secrets)
    }

    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("key file serializes");
        v.push(b'\n');
        v
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<KeyFile, FormatError> {
        let kf: KeyFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("key file: {e}")))?;
        if kf.format != KEY_FILE_FORMAT {
            return Err(FormatError::BadMagic { expected: "key file" });
        }
        if kf.version > KEY_FILE_VERSION {
            return Err(FormatError::UnsupportedVersion { what: "key file", found: kf.version, supported: KEY_FILE_VERSION });
        }
        if kf.version >= 2 && kf.key_id().is_none() {
            return Err(FormatError::Malformed("version 2 key file without a valid key_id".into()));
        }
        if kf.version >= 2 && kf.info.role == Role::WriteOnly && kf.domain().is_none() {
            return Err(FormatError::Malformed("version 2 write-only key file without a valid domain".into()));
        }
        // Only a writer's public record (a write credential's, or one a
        // copy made) comes without secrets.
        if kf.sealed.is_none() && (kf.version < 2 || kf.info.role == Role::Full) {
            return Err(FormatError::Malformed("key file without sealed secrets".into()));
        }
        Ok(kf)
    }
}

/// The unencrypted recovery key: all secrets, for escrow in a safe and for
/// independent restorers. Whoever holds this file can read the repository.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoveryFile {
    format: String,
    version: u32,
    #[serde(flatten)]
    secrets: PlainSecrets,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialFile {
    format: String,
    #[serde(flatten)]
    secrets: PlainWriterSecrets,
}

impl Secrets {
    /// Serializes a full-access secret set as a recovery key file.
    pub fn to_recovery_file(&self) -> Result<Zeroizing<Vec<u8>>, FormatError> {
        let plain = self.to_plain_full().ok_or_else(|| FormatError::Malformed("a write-only key has no recovery secret to export".into()))?;
        let rf = RecoveryFile { format: RECOVERY_FILE_FORMAT.into(), version: 1, secrets: plain };
        let mut v = serde_json::to_vec_pretty(&rf).expect("recovery file serializes");
        v.push(b'\n');
        Ok(Zeroizing::new(v))
    }

    pub fn from_recovery_file(bytes: &[u8]) -> Result<Secrets, FormatError> {
        let rf: RecoveryFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("recovery key file: {e}")))?;
        if rf.format != RECOVERY_FILE_FORMAT {
            return Err(FormatError::BadMagic { expected: "recovery key file" });
        }
        let s = Secrets::from_plain(&rf.secrets)?;
        if s.recovery().is_none() {
            return Err(FormatError::Malformed("recovery key file has no recovery_secret".into()));
        }
        Ok(s)
    }

    /// Serializes version 2 write-only secrets as a *write credential*: an
    /// unencrypted file for hosts that push many times a minute (WAL
    /// archiving), where an Argon2id derivation per call would be too slow
    /// and the passphrase would sit in a file beside it anyway. It can add
    /// backups to its domain, never read them. Keep it mode 0600, owned by
    /// the service account.
    pub fn to_write_credential(&self) -> Result<Zeroizing<Vec<u8>>, FormatError> {
        let plain = self.to_plain_writer().ok_or_else(|| FormatError::Malformed("only version 2 write-only secrets make a write credential".into()))?;
        let cf = CredentialFile { format: WRITE_CREDENTIAL_FORMAT.into(), secrets: plain };
        let mut v = serde_json::to_vec_pretty(&cf).expect("credential serializes");
        v.push(b'\n');
        Ok(Zeroizing::new(v))
    }

    /// Reads a recovery key file or a write credential (version 1 or 2).
    pub fn from_key_file(bytes: &[u8]) -> Result<Secrets, FormatError> {
        #[derive(Deserialize)]
        struct Probe {
            format: String,
            #[serde(default)]
            version: u32,
        }
        let probe: Probe = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("key file: {e}")))?;
        match (probe.format.as_str(), probe.version) {
            (RECOVERY_FILE_FORMAT, _) => Self::from_recovery_file(bytes),
            (WRITE_CREDENTIAL_FORMAT, 2) => {
                let cf: CredentialFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("write credential: {e}")))?;
                Secrets::from_plain_writer(&cf.secrets)
            }
            (WRITE_CREDENTIAL_FORMAT, _) => {
                let rf: RecoveryFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("write credential: {e}")))?;
                let s = Secrets::from_plain(&rf.secrets)?;
                if s.recovery().is_some() {
                    return Err(FormatError::Malformed("a write credential must not hold the recovery secret".into()));
                }
                Ok(s)
            }
            _ => Err(FormatError::BadMagic { expected: "recovery key or write credential" }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> KeyLabels {
        KeyLabels { host: "h".into(), user: "u".into(), label: "l".into(), bound_host: Some("db1".into()) }
    }

    #[test]
    fn key_file_round_trip_and_wrong_passphrase() {
        let s = Secrets::generate(Id([7; 32]));
        let kf = KeyFile::seal(&s, b"correct horse", KdfParams::insecure_fast(), &labels()).unwrap();
        let kf = KeyFile::from_bytes(&kf.to_bytes()).unwrap();
        let back = kf.open(b"correct horse").unwrap();
        assert_eq!(back.recovery(), s.recovery());
        assert_eq!(kf.open(b"wrong").unwrap_err(), FormatError::WrongPassphrase);
        assert_eq!(kf.bound_host, None, "full keys are bound to no host");
    }

    #[test]
    fn a_writer_holds_its_domain_and_nothing_of_the_masters() {
        let s = Secrets::generate(Id([7; 32]));
        let w = s.new_writer().unwrap();
        let kf = KeyFile::seal(&w, b"pw", KdfParams::insecure_fast(), &labels()).unwrap();
        assert_eq!(kf.info.role, Role::WriteOnly);
        let text = String::from_utf8(kf.to_bytes()).unwrap();
        assert!(!text.contains("recovery_secret"), "{text}");
        let back = kf.open(b"pw").unwrap();
        assert!(back.recovery().is_none());
        let home = back.home_domain();
        // The writer's keys are the administrator's derivation for its domain.
        let (theirs, mine) = (s.domain_keys(&home).unwrap(), back.domain_keys(&home).unwrap());
        assert_eq!(theirs.id_key, mine.id_key);
        assert_eq!(theirs.catalog_key, mine.catalog_key);
        assert_eq!(theirs.chunker_seed, mine.chunker_seed);
        // ... and different from every other domain's, the legacy one included.
        assert!(back.domain_keys(&Domain::ADMIN).is_none());
        assert!(back.domain_keys(&DomainId::LEGACY).is_none());
        let other = s.new_writer().unwrap().home_domain();
        assert!(back.domain_keys(&other).is_none());
        assert_ne!(s.domain_keys(&other).unwrap().id_key, mine.id_key);
        assert_ne!(s.domain_keys(&Domain::ADMIN).unwrap().id_key, mine.id_key);
        let Access::Full(f) = &s.access else { panic!() };
        assert_ne!(f.legacy.id_key, mine.id_key);
        assert_eq!(back.admin_id(), s.admin_id());
        assert_eq!(back.shared_key(), s.shared_key());
        assert_eq!(kf.key_id(), Some(back.signer().unwrap().0.key_id()));
    }

    #[test]
    fn endorsement_covers_every_public_field_and_the_sealed_secrets() {
        let s = Secrets::generate(Id([7; 32]));
        let admin = s.admin_key().unwrap();
        let w = s.new_writer().unwrap();
        let mut kf = KeyFile::seal(&w, b"pw", KdfParams::insecure_fast(), &labels()).unwrap();
        assert!(kf.verify_endorsement(&admin.key_id(), &Id([7; 32])).is_err(), "not endorsed yet");
        kf.endorse(&admin, &Id([7; 32])).unwrap();
        let kf = KeyFile::from_bytes(&kf.to_bytes()).unwrap();
        kf.verify_endorsement(&admin.key_id(), &Id([7; 32])).unwrap();
        assert!(kf.verify_endorsement(&admin.key_id(), &Id([8; 32])).is_err());
        assert!(kf.verify_endorsement(&SigningKey::generate().key_id(), &Id([7; 32])).is_err());
        let json: serde_json::Value = serde_json::from_slice(&kf.to_bytes()).unwrap();
        for (field, value) in [("role", "full"), ("label", "other"), ("bound_host", "db2"), ("domain", &"00".repeat(32)), ("host", "x"), ("sealed", "AAAA")] {
            let mut forged = json.clone();
            forged[field] = serde_json::Value::String(value.into());
            let forged = KeyFile::from_bytes(&serde_json::to_vec(&forged).unwrap()).unwrap();
            assert!(forged.verify_endorsement(&admin.key_id(), &Id([7; 32])).is_err(), "{field} is not covered");
        }
    }

    #[test]
    fn write_credential_round_trip_and_record() {
        let s = Secrets::generate(Id([1; 32]));
        let w = s.new_writer().unwrap();
        let bytes = w.to_write_credential().unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        assert!(!text.contains("recovery_secret"));
        let back = Secrets::from_key_file(&bytes).unwrap();
        assert!(back.recovery().is_none());
        assert_eq!(back.signer().unwrap().0.key_id(), w.signer().unwrap().0.key_id());
        assert!(Secrets::from_key_file(&s.to_recovery_file().unwrap()).unwrap().recovery().is_some());
        assert!(s.to_write_credential().is_err());
        let rec = KeyFile::credential_record(&w, &labels()).unwrap();
        let rec = KeyFile::from_bytes(&rec.to_bytes()).unwrap();
        assert!(rec.credential && !rec.has_secrets());
        assert_eq!(rec.open(b"anything").unwrap_err(), FormatError::WrongPassphrase);
    }

    #[test]
    fn recovery_file_round_trip() {
        let s = Secrets::generate(Id([1; 32]));
        let bytes = s.to_recovery_file().unwrap();
        let back = Secrets::from_recovery_file(&bytes).unwrap();
        assert_eq!(back.recovery(), s.recovery());
        assert_eq!(back.admin_id(), s.admin_id());
        assert!(s.new_writer().unwrap().to_recovery_file().is_err());
    }

    #[test]
    fn a_key_file_pieced_from_two_keys_does_not_open() {
        let s = Secrets::generate(Id([1; 32]));
        let a = KeyFile::seal(&s.new_writer().unwrap(), b"pw", KdfParams::insecure_fast(), &labels()).unwrap();
        let b = KeyFile::seal(&s.new_writer().unwrap(), b"pw", KdfParams::insecure_fast(), &labels()).unwrap();
        let pieced = a.with_secrets_of(&b);
        assert!(matches!(pieced.open(b"pw"), Err(FormatError::Malformed(_))));
    }
}
