//! Cryptographic primitives, each used exactly as `docs/FORMAT.md` describes.
//!
//! * AES-256-GCM (via `ring`, whose AES-NI/VAES code runs ~6x faster than the
//!   portable RustCrypto implementation on the machines we measured; see
//!   `docs/BENCHMARKS.md`) for everything symmetric;
//! * HPKE (RFC 9180) base mode, suite DHKEM(X25519, HKDF-SHA256) /
//!   HKDF-SHA256 / AES-256-GCM, via the `hpke` crate, to seal pack keys and
//!   snapshot bodies to the recovery public key;
//! * keyed BLAKE3 for blob identifiers, so that someone holding only the
//!   storage cannot confirm that a known document is in the repository.

use hpke::{Deserializable, Kem as _, Serializable};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::{FormatError, Id};

pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Length of an HPKE encapsulated key for DHKEM(X25519).
pub const ENC_LEN: usize = 32;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type HpkeAead = hpke::aead::AesGcm256;

/// Fills an array from the operating system's CSPRNG.
#[must_use]
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).expect("the operating system's random number generator failed");
    out
}

/// A 256-bit symmetric key. Zeroed on drop; never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct SymmetricKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SymmetricKey(..)")
    }
}

impl SymmetricKey {
    #[must_use]
    pub fn generate() -> Self {
        SymmetricKey(random())
    }

    #[must_use]
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SymmetricKey(bytes)
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn ring_key(&self) -> LessSafeKey {
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte AES-256 key"))
    }

    /// Encrypts `buf` in place and appends the 16-byte tag.
    pub fn seal_in_place(&self, nonce: [u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) {
        self.ring_key()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .expect("AES-GCM input within limits");
    }

    /// Decrypts `buf` (ciphertext || tag) in place and truncates the tag.
    pub fn open_in_place(
        &self,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
        what: &'static str,
    ) -> Result<(), FormatError> {
        let len = self
            .ring_key()
            .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), buf)
            .map_err(|_| FormatError::Authentication(what))?
            .len();
        buf.truncate(len);
        Ok(())
    }

    /// `nonce (12 random bytes) || ciphertext || tag`: the layout of every
    /// object sealed under the catalog key.
    #[must_use]
    pub fn seal_with_random_nonce(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = random();
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plaintext);
        let mut body = buf.split_off(NONCE_LEN);
        self.seal_in_place(nonce, aad, &mut body);
        buf.extend_from_slice(&body);
        buf
    }

    pub fn open_with_nonce_prefix(&self, aad: &[u8], sealed: &[u8], what: &'static str) -> Result<Vec<u8>, FormatError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(FormatError::truncated(format!("{what}: {} bytes", sealed.len())));
        }
        let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().expect("length checked");
        let mut buf = sealed[NONCE_LEN..].to_vec();
        self.open_in_place(nonce, aad, &mut buf, what)?;
        Ok(buf)
    }
}

/// The key that turns plaintext into blob identifiers (keyed BLAKE3).
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct IdKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdKey(..)")
    }
}

impl IdKey {
    #[must_use]
    pub fn generate() -> Self {
        IdKey(random())
    }

    #[must_use]
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.0, plaintext).as_bytes())
    }
}

/// The recovery public key: what every writer seals to.
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryPublicKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for RecoveryPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryPublicKey({})", hex::encode(&self.0[..4]))
    }
}

/// The recovery private key: whoever holds it can read the repository.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct RecoverySecretKey(pub(crate) [u8; 32]);

impl std::fmt::Debug for RecoverySecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoverySecretKey(..)")
    }
}

impl RecoverySecretKey {
    #[must_use]
    pub fn generate() -> (RecoverySecretKey, RecoveryPublicKey) {
        let (sk, pk) = Kem::gen_keypair();
        let sk_bytes: [u8; 32] = sk.to_bytes().into();
        let pk_bytes: [u8; 32] = pk.to_bytes().into();
        (RecoverySecretKey(sk_bytes), RecoveryPublicKey(pk_bytes))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, FormatError> {
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes)
            .map_err(|_| FormatError::Malformed("invalid X25519 private key".into()))?;
        Ok(RecoverySecretKey(bytes))
    }

    #[must_use]
    pub fn public_key(&self) -> RecoveryPublicKey {
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.0).expect("validated at construction");
        RecoveryPublicKey(Kem::sk_to_pk(&sk).to_bytes().into())
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Opens `enc (32) || ciphertext || tag` sealed by [`RecoveryPublicKey::seal`].
    pub fn open(&self, info: &[u8], sealed: &[u8], what: &'static str) -> Result<Vec<u8>, FormatError> {
        if sealed.len() < ENC_LEN + TAG_LEN {
            return Err(FormatError::truncated(format!("{what}: sealed box of {} bytes", sealed.len())));
        }
        let sk = <Kem as hpke::Kem>::PrivateKey::from_bytes(&self.0).expect("validated at construction");
        let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed[..ENC_LEN])
            .map_err(|_| FormatError::Malformed(format!("{what}: invalid encapsulated key")))?;
        hpke::single_shot_open::<HpkeAead, Kdf, Kem>(&hpke::OpModeR::Base, &sk, &enc, info, &sealed[ENC_LEN..], b"")
            .map_err(|_| FormatError::Authentication(what))
    }
}

impl RecoveryPublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, FormatError> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| FormatError::Malformed("invalid X25519 public key".into()))?;
        Ok(RecoveryPublicKey(bytes))
    }

    #[must_use]
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// HPKE single-shot seal, base mode, empty AAD. Output: `enc || ct || tag`,
    /// the layout RFC 9180 implementations (e.g. Python `cryptography`'s
    /// `hpke.Suite.encrypt`) produce.
    #[must_use]
    pub fn seal(&self, info: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&self.0).expect("validated at construction");
        let (enc, ct) = hpke::single_shot_seal::<HpkeAead, Kdf, Kem>(&hpke::OpModeS::Base, &pk, info, plaintext, b"")
            .expect("HPKE seal with a valid public key");
        let mut out = Vec::with_capacity(ENC_LEN + ct.len());
        out.extend_from_slice(&enc.to_bytes());
        out.extend_from_slice(&ct);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn symmetric_round_trip(data in proptest::collection::vec(any::<u8>(), 0..4096), aad in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = SymmetricKey::generate();
            let sealed = key.seal_with_random_nonce(&aad, &data);
            prop_assert_eq!(key.open_with_nonce_prefix(&aad, &sealed, "test").unwrap(), data);
        }

        #[test]
        fn hpke_round_trip(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let (sk, pk) = RecoverySecretKey::generate();
            let sealed = pk.seal(b"info", &data);
            prop_assert_eq!(sk.open(b"info", &sealed, "test").unwrap(), data);
        }

        #[test]
        fn symmetric_detects_any_flipped_bit(data in proptest::collection::vec(any::<u8>(), 1..512), bit in any::<prop::sample::Index>()) {
            let key = SymmetricKey::generate();
            let mut sealed = key.seal_with_random_nonce(b"", &data);
            let i = bit.index(sealed.len() * 8);
            sealed[i / 8] ^= 1 << (i % 8);
            prop_assert!(key.open_with_nonce_prefix(b"", &sealed, "test").is_err());
        }
    }

    #[test]
    fn hpke_rejects_other_key_and_other_info() {
        let (_, pk) = RecoverySecretKey::generate();
        let (other_sk, _) = RecoverySecretKey::generate();
        let sealed = pk.seal(b"info", b"secret");
        assert!(other_sk.open(b"info", &sealed, "test").is_err());
        let (sk, pk) = RecoverySecretKey::generate();
        let sealed = pk.seal(b"info", b"secret");
        assert!(sk.open(b"other", &sealed, "test").is_err());
        assert_eq!(sk.public_key(), pk);
    }
}
