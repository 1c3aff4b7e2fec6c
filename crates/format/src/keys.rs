//! Repository secrets and the key files that protect them.
//!
//! A repository has one set of secrets, created by `init`:
//!
//! | secret            | who holds it          | protects                                   |
//! |-------------------|-----------------------|--------------------------------------------|
//! | `id_key`          | writers and readers   | blob IDs (keyed BLAKE3)                     |
//! | `catalog_key`     | writers and readers   | index files, pack directories, snapshot headers |
//! | `chunker_seed`    | writers and readers   | chunk boundaries (keyed gear table)         |
//! | recovery public   | writers and readers   | (public) sealing of pack keys and snapshot bodies |
//! | recovery secret   | full-access keys only | opening pack keys and snapshot bodies       |
//!
//! A key file stores those secrets encrypted under a passphrase (Argon2id +
//! AES-256-GCM). A *write-only* key file simply lacks the recovery secret:
//! refusing to read is not a policy check that a compromised host could
//! skip, it is the absence of the key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{IdKey, NONCE_LEN, RecoveryPublicKey, RecoverySecretKey, SymmetricKey, random};
use crate::{FormatError, Id};

pub const KEY_FILE_FORMAT: &str = "reprise-key";
pub const RECOVERY_FILE_FORMAT: &str = "reprise-recovery-key";
pub const WRITE_CREDENTIAL_FORMAT: &str = "reprise-write-credential";
pub const KEY_FILE_VERSION: u32 = 1;
const KEY_FILE_AAD: &[u8] = b"reprise key v1";

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Read, write, and administer (keys, forget, prune).
    Full,
    /// Add backups and deduplicate against existing ones; read nothing back.
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

/// The secrets every writer needs.
#[derive(Clone, Debug)]
pub struct WriteSecrets {
    pub repository_id: Id,
    pub id_key: IdKey,
    pub catalog_key: SymmetricKey,
    pub chunker_seed: u64,
    pub recovery_public: RecoveryPublicKey,
}

/// The secrets held by one key: write secrets, plus the recovery secret for
/// full-access keys.
#[derive(Clone, Debug)]
pub struct Secrets {
    pub write: WriteSecrets,
    pub recovery: Option<RecoverySecretKey>,
}

impl Secrets {
    /// Fresh secrets for a new repository.
    #[must_use]
    pub fn generate(repository_id: Id) -> Secrets {
        let (sk, pk) = RecoverySecretKey::generate();
        Secrets {
            write: WriteSecrets {
                repository_id,
                id_key: IdKey::generate(),
                catalog_key: SymmetricKey::generate(),
                chunker_seed: u64::from_le_bytes(random()),
                recovery_public: pk,
            },
            recovery: Some(sk),
        }
    }

    #[must_use]
    pub fn role(&self) -> Role {
        if self.recovery.is_some() { Role::Full } else { Role::WriteOnly }
    }

    /// The same secrets without the recovery secret.
    #[must_use]
    pub fn write_only(&self) -> Secrets {
        Secrets { write: self.write.clone(), recovery: None }
    }

    fn to_plain(&self) -> PlainSecrets {
        PlainSecrets {
            repository_id: self.write.repository_id,
            id_key: hex::encode(self.write.id_key.0),
            catalog_key: hex::encode(self.write.catalog_key.0),
            chunker_seed: format!("{:016x}", self.write.chunker_seed),
            recovery_public: hex::encode(self.write.recovery_public.0),
            recovery_secret: self.recovery.as_ref().map(|k| hex::encode(k.0)),
        }
    }

    fn from_plain(p: &PlainSecrets) -> Result<Secrets, FormatError> {
        let key32 = |name: &str, s: &str| -> Result<[u8; 32], FormatError> {
            let v = hex::decode(s).map_err(|_| FormatError::Malformed(format!("{name} is not hex")))?;
            v.try_into().map_err(|_| FormatError::Malformed(format!("{name} is not 32 bytes")))
        };
        let recovery_public = RecoveryPublicKey::from_bytes(key32("recovery_public", &p.recovery_public)?)?;
        let recovery = match &p.recovery_secret {
            Some(s) => {
                let sk = RecoverySecretKey::from_bytes(key32("recovery_secret", s)?)?;
                if sk.public_key() != recovery_public {
                    return Err(FormatError::Malformed("recovery secret does not match the recovery public key".into()));
                }
                Some(sk)
            }
            None => None,
        };
        Ok(Secrets {
            write: WriteSecrets {
                repository_id: p.repository_id,
                id_key: IdKey(key32("id_key", &p.id_key)?),
                catalog_key: SymmetricKey(key32("catalog_key", &p.catalog_key)?),
                chunker_seed: u64::from_str_radix(&p.chunker_seed, 16)
                    .map_err(|_| FormatError::Malformed("chunker_seed is not hex".into()))?,
                recovery_public,
            },
            recovery,
        })
    }
}

/// The JSON inside a key file's sealed box, and inside a recovery key file.
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

/// The public, descriptive part of a key file (everything but the secrets).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    pub role: Role,
    pub created: jiff::Timestamp,
    pub host: String,
    pub user: String,
    #[serde(default)]
    pub label: String,
}

/// A key file as stored under `keys/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    format: String,
    version: u32,
    #[serde(flatten)]
    pub info: KeyInfo,
    kdf: KdfSection,
    nonce: String,
    sealed: String,
}

impl KeyFile {
    /// Seals `secrets` under `passphrase`. The role recorded is the secrets' own.
    pub fn seal(secrets: &Secrets, passphrase: &[u8], params: KdfParams, host: &str, user: &str, label: &str) -> Result<KeyFile, FormatError> {
        let salt: [u8; 16] = random();
        let kek = SymmetricKey(*params.derive(passphrase, &salt)?);
        let nonce: [u8; NONCE_LEN] = random();
        let plain = Zeroizing::new(serde_json::to_vec(&secrets.to_plain()).expect("secrets serialize"));
        let mut buf = plain.to_vec();
        kek.seal_in_place(nonce, KEY_FILE_AAD, &mut buf);
        Ok(KeyFile {
            format: KEY_FILE_FORMAT.into(),
            version: KEY_FILE_VERSION,
            info: KeyInfo {
                role: secrets.role(),
                created: jiff::Timestamp::now(),
                host: host.into(),
                user: user.into(),
                label: label.into(),
            },
            kdf: KdfSection {
                algorithm: "argon2id".into(),
                memory_kib: params.memory_kib,
                iterations: params.iterations,
                parallelism: params.parallelism,
                salt: B64.encode(salt),
            },
            nonce: B64.encode(nonce),
            sealed: B64.encode(buf),
        })
    }

    pub fn open(&self, passphrase: &[u8]) -> Result<Secrets, FormatError> {
        if self.kdf.algorithm != "argon2id" {
            return Err(FormatError::Malformed(format!("unknown key derivation '{}'", self.kdf.algorithm)));
        }
        let params = KdfParams { memory_kib: self.kdf.memory_kib, iterations: self.kdf.iterations, parallelism: self.kdf.parallelism };
        let salt = B64.decode(&self.kdf.salt).map_err(|_| FormatError::Malformed("salt is not base64".into()))?;
        let nonce: [u8; NONCE_LEN] = B64
            .decode(&self.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| FormatError::Malformed("nonce is not 12 base64 bytes".into()))?;
        let mut buf = B64.decode(&self.sealed).map_err(|_| FormatError::Malformed("sealed secrets are not base64".into()))?;
        let kek = SymmetricKey(*params.derive(passphrase, &salt)?);
        kek.open_in_place(nonce, KEY_FILE_AAD, &mut buf, "key file").map_err(|_| FormatError::WrongPassphrase)?;
        let buf = Zeroizing::new(buf);
        let plain: PlainSecrets = serde_json::from_slice(&buf).map_err(|e| FormatError::Malformed(format!("key secrets: {e}")))?;
        Secrets::from_plain(&plain)
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

impl Secrets {
    /// Serializes a full-access secret set as a recovery key file.
    pub fn to_recovery_file(&self) -> Result<Zeroizing<Vec<u8>>, FormatError> {
        if self.recovery.is_none() {
            return Err(FormatError::Malformed("a write-only key has no recovery secret to export".into()));
        }
        let rf = RecoveryFile { format: RECOVERY_FILE_FORMAT.into(), version: KEY_FILE_VERSION, secrets: self.to_plain() };
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
        if s.recovery.is_none() {
            return Err(FormatError::Malformed("recovery key file has no recovery_secret".into()));
        }
        Ok(s)
    }

    /// Serializes the write secrets as a *write credential*: an unencrypted
    /// file for hosts that push many times a minute (WAL archiving), where
    /// an Argon2id derivation per call would be too slow and the passphrase
    /// would sit in a file beside it anyway. It can add backups, never read
    /// them. Keep it mode 0600, owned by the service account.
    #[must_use]
    pub fn to_write_credential(&self) -> Zeroizing<Vec<u8>> {
        let mut plain = self.write_only().to_plain();
        plain.recovery_secret = None;
        let rf = RecoveryFile { format: WRITE_CREDENTIAL_FORMAT.into(), version: KEY_FILE_VERSION, secrets: plain };
        let mut v = serde_json::to_vec_pretty(&rf).expect("credential serializes");
        v.push(b'\n');
        Zeroizing::new(v)
    }

    /// Reads a recovery key file or a write credential.
    pub fn from_key_file(bytes: &[u8]) -> Result<Secrets, FormatError> {
        let rf: RecoveryFile = serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("key file: {e}")))?;
        match rf.format.as_str() {
            RECOVERY_FILE_FORMAT => Self::from_recovery_file(bytes),
            WRITE_CREDENTIAL_FORMAT => {
                let s = Secrets::from_plain(&rf.secrets)?;
                if s.recovery.is_some() {
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

    #[test]
    fn key_file_round_trip_and_wrong_passphrase() {
        let s = Secrets::generate(Id([7; 32]));
        let kf = KeyFile::seal(&s, b"correct horse", KdfParams::insecure_fast(), "h", "u", "").unwrap();
        let kf = KeyFile::from_bytes(&kf.to_bytes()).unwrap();
        let back = kf.open(b"correct horse").unwrap();
        assert_eq!(back.write.catalog_key, s.write.catalog_key);
        assert_eq!(back.recovery, s.recovery);
        assert_eq!(kf.open(b"wrong").unwrap_err(), FormatError::WrongPassphrase);
    }

    #[test]
    fn write_only_key_has_no_recovery_secret() {
        let s = Secrets::generate(Id([7; 32])).write_only();
        let kf = KeyFile::seal(&s, b"pw", KdfParams::insecure_fast(), "h", "u", "").unwrap();
        assert_eq!(kf.info.role, Role::WriteOnly);
        assert!(!String::from_utf8(kf.to_bytes()).unwrap().contains("recovery_secret"));
        assert!(kf.open(b"pw").unwrap().recovery.is_none());
    }

    #[test]
    fn write_credential_round_trip() {
        let s = Secrets::generate(Id([1; 32]));
        let bytes = s.to_write_credential();
        assert!(!String::from_utf8(bytes.to_vec()).unwrap().contains("recovery_secret"));
        let back = Secrets::from_key_file(&bytes).unwrap();
        assert!(back.recovery.is_none());
        assert_eq!(back.write.catalog_key, s.write.catalog_key);
        assert!(Secrets::from_key_file(&s.to_recovery_file().unwrap()).unwrap().recovery.is_some());
    }

    #[test]
    fn recovery_file_round_trip() {
        let s = Secrets::generate(Id([1; 32]));
        let bytes = s.to_recovery_file().unwrap();
        let back = Secrets::from_recovery_file(&bytes).unwrap();
        assert_eq!(back.recovery, s.recovery);
        assert!(s.write_only().to_recovery_file().is_err());
    }
}
