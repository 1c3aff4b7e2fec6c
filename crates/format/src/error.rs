//! Errors raised while encoding or decoding repository objects.

/// Why an object could not be decoded. Every variant means "this object is
/// not what it claims to be": callers report the object's name with it.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The object does not start with the expected magic bytes.
    #[error("not a reprise {expected} object (bad magic bytes)")]
    BadMagic { expected: &'static str },
    /// The object's version is newer than this program understands.
    #[error("{what} format version {found} is not supported (this program reads up to {supported})")]
    UnsupportedVersion { what: &'static str, found: u32, supported: u32 },
    /// The object ends before its declared structure does.
    #[error("truncated: {0}")]
    Truncated(String),
    /// Authenticated decryption failed: wrong key, or the bytes were altered.
    #[error("authentication failed for {0}: the bytes were altered or the key is wrong")]
    Authentication(&'static str),
    /// The plaintext does not hash to the identifier it is stored under.
    #[error("content does not match its identifier")]
    IdMismatch,
    /// The structure decoded but violates the format's rules.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A signature does not verify: the object was altered, or forged.
    #[error("the signature of this {0} does not verify: it was altered or forged")]
    BadSignature(&'static str),
    /// A passphrase-protected key could not be opened with the passphrase given.
    #[error("wrong passphrase")]
    WrongPassphrase,
}

impl FormatError {
    pub(crate) fn truncated(what: impl Into<String>) -> Self {
        FormatError::Truncated(what.into())
    }
}
