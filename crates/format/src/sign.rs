//! Writer signatures (docs/FORMAT.md 2.4).
//!
//! Writers are untrusted: a production host holds a write credential and
//! can create any object the storage accepts. So every version 2 object
//! says who wrote it, with an Ed25519 signature readers can check without
//! any secret, and the engine decides from the signer whether to trust it
//! (an endorsed writer, in its own domain; the administrator, for
//! anything). This module only answers "is this signature valid, and whose
//! is it"; trust is the engine's business (`reprise_engine::trust`).
//!
//! Every signed object ends with `signer (32) || signature (64)`. The
//! signature covers a short message naming the object type and the
//! repository, and the BLAKE3 of every byte before the signature (so the
//! signer field too): a signature on a pack cannot be replayed on an
//! index file, nor in another repository.

use zeroize::Zeroizing;

use crate::{FormatError, Id};

/// Length of the signature block every signed object ends with.
pub const SIGNATURE_BLOCK_LEN: usize = 32 + 64;
const SIGNATURE_CONTEXT: &[u8] = b"reprise-signature-v2";

/// The kinds of signed object; each signs under its own name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Pack,
    Index,
    Snapshot,
    Wal,
    Hold,
    Mark,
    Trust,
    /// A key file's endorsement by the administrator.
    Key,
    Drill,
}

impl ObjectType {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Pack => "pack",
            ObjectType::Index => "index",
            ObjectType::Snapshot => "snapshot",
            ObjectType::Wal => "wal",
            ObjectType::Hold => "hold",
            ObjectType::Mark => "mark",
            ObjectType::Trust => "trust",
            ObjectType::Key => "key",
            ObjectType::Drill => "drill",
        }
    }
}

/// A signer's identity: its Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct KeyId(pub [u8; 32]);

impl KeyId {
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex digits, as listings show it.
    #[must_use]
    pub fn short(&self) -> String {
        let mut s = self.to_hex();
        s.truncate(12);
        s
    }

    pub fn from_slice(b: &[u8]) -> Result<KeyId, FormatError> {
        Ok(KeyId(b.try_into().map_err(|_| FormatError::Malformed(format!("key ID of {} bytes, expected 32", b.len())))?))
    }
}

impl std::fmt::Debug for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyId({})", self.short())
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::str::FromStr for KeyId {
    type Err = FormatError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyId::from_slice(&hex::decode(s).map_err(|_| FormatError::Malformed(format!("'{s}' is not a hex key ID")))?)
    }
}


impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() { s.serialize_str(&self.to_hex()) } else { s.serialize_bytes(&self.0) }
    }
}

impl<'de> serde::Deserialize<'de> for KeyId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = <String as serde::Deserialize>::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let b: serde_bytes::ByteBuf = serde::Deserialize::deserialize(d)?;
            KeyId::from_slice(&b).map_err(serde::de::Error::custom)
        }
    }
}
/// An Ed25519 signing key. Never printed.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.key_id().short())
    }
}

impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.key_id() == other.key_id()
    }
}

impl SigningKey {
    #[must_use]
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(seed))
    }

    #[must_use]
    pub fn generate() -> SigningKey {
        let seed = Zeroizing::new(crate::crypto::random::<32>());
        SigningKey::from_seed(&seed)
    }

    #[must_use]
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    #[must_use]
    pub fn key_id(&self) -> KeyId {
        KeyId(self.0.verifying_key().to_bytes())
    }

    /// The signature of `signed` as an object of type `ty` (no signer block).
    #[must_use]
    pub fn sign(&self, ty: ObjectType, repository: &Id, signed: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.0.sign(&message(ty, repository, signed)).to_bytes()
    }

    /// Appends the signature block to an object being built: the signer's
    /// key ID, then the signature over everything before it.
    pub fn seal_object(&self, ty: ObjectType, repository: &Id, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.key_id().0);
        let sig = self.sign(ty, repository, buf);
        buf.extend_from_slice(&sig);
    }
}

fn message(ty: ObjectType, repository: &Id, signed: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNATURE_CONTEXT.len() + 16 + 64);
    m.extend_from_slice(SIGNATURE_CONTEXT);
    m.push(0);
    m.extend_from_slice(ty.name().as_bytes());
    m.push(0);
    m.extend_from_slice(&repository.0);
    m.extend_from_slice(blake3::hash(signed).as_bytes());
    m
}

/// Checks `signature` by `signer` on `content` as an object of type `ty`.
pub fn verify_detached(signer: &KeyId, ty: ObjectType, repository: &Id, content: &[u8], signature: &[u8; 64]) -> Result<(), FormatError> {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&signer.0).map_err(|_| FormatError::BadSignature(ty.name()))?;
    key.verify_strict(&message(ty, repository, content), &ed25519_dalek::Signature::from_bytes(signature))
        .map_err(|_| FormatError::BadSignature(ty.name()))
}

/// The signer named by an object's signature block (not yet verified).
pub fn signer_of(bytes: &[u8]) -> Result<KeyId, FormatError> {
    let start = bytes.len().checked_sub(SIGNATURE_BLOCK_LEN).ok_or_else(|| FormatError::truncated("signature block"))?;
    KeyId::from_slice(&bytes[start..start + 32])
}

/// Verifies a signed object's signature block; returns the signer and the
/// object without its signature block.
pub fn verify_object<'a>(ty: ObjectType, repository: &Id, bytes: &'a [u8]) -> Result<(KeyId, &'a [u8]), FormatError> {
    let start = bytes.len().checked_sub(SIGNATURE_BLOCK_LEN).ok_or_else(|| FormatError::truncated("signature block"))?;
    let signer = KeyId::from_slice(&bytes[start..start + 32])?;
    let sig: [u8; 64] = bytes[start + 32..].try_into().expect("64 bytes");
    verify_detached(&signer, ty, repository, &bytes[..start + 32], &sig)?;
    Ok((signer, &bytes[..start]))
}

/// The object without its signature block (for decoders that do not check
/// signatures themselves).
pub(crate) fn strip(bytes: &[u8]) -> Result<&[u8], FormatError> {
    let end = bytes.len().checked_sub(SIGNATURE_BLOCK_LEN).ok_or_else(|| FormatError::truncated("signature block"))?;
    Ok(&bytes[..end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_signed_object_verifies_and_any_flipped_bit_breaks_it(body in proptest::collection::vec(any::<u8>(), 0..2000), bit in any::<prop::sample::Index>()) {
            let key = SigningKey::generate();
            let repo = Id([4; 32]);
            let mut obj = body.clone();
            key.seal_object(ObjectType::Pack, &repo, &mut obj);
            let (signer, rest) = verify_object(ObjectType::Pack, &repo, &obj).unwrap();
            prop_assert_eq!(signer, key.key_id());
            prop_assert_eq!(rest, body.as_slice());
            let i = bit.index(obj.len() * 8);
            obj[i / 8] ^= 1 << (i % 8);
            prop_assert!(verify_object(ObjectType::Pack, &repo, &obj).is_err());
        }
    }

    #[test]
    fn a_signature_is_bound_to_its_type_and_repository() {
        let key = SigningKey::generate();
        let mut obj = b"an index file".to_vec();
        key.seal_object(ObjectType::Index, &Id([1; 32]), &mut obj);
        assert!(verify_object(ObjectType::Index, &Id([1; 32]), &obj).is_ok());
        assert!(verify_object(ObjectType::Snapshot, &Id([1; 32]), &obj).is_err());
        assert!(verify_object(ObjectType::Index, &Id([2; 32]), &obj).is_err());
        // Another key cannot take the object over by changing the signer.
        let other = SigningKey::generate();
        let n = obj.len();
        obj[n - 96..n - 64].copy_from_slice(&other.key_id().0);
        assert!(verify_object(ObjectType::Index, &Id([1; 32]), &obj).is_err());
    }

    #[test]
    fn seeds_round_trip() {
        let key = SigningKey::generate();
        assert_eq!(SigningKey::from_seed(&key.seed()).key_id(), key.key_id());
    }
}
