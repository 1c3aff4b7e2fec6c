//! The repository's `config` object: public, write-once parameters.

use serde::{Deserialize, Serialize};

use crate::chunker::ChunkerParams;
use crate::{FormatError, Id};

pub const CONFIG_FORMAT: &str = "reprise-repository";
pub const CONFIG_VERSION: u32 = 2;

/// Default target size of a pack before it is sealed and uploaded. A backup
/// holds about one pack per worker and per uploader in memory, so this
/// bounds its peak memory; 8 MiB objects are still large for object stores.
pub const DEFAULT_PACK_SIZE: u32 = 8 * 1024 * 1024;

/// Public parameters of a repository. Holds no secret: the chunker seed that
/// keys chunk boundaries lives in the key files.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RepositoryConfig {
    pub format: String,
    pub version: u32,
    pub id: Id,
    pub created: jiff::Timestamp,
    pub chunker: ChunkerParams,
    /// Target pack size in bytes.
    pub pack_size: u32,
}

impl RepositoryConfig {
    #[must_use]
    pub fn new(id: Id, chunker: ChunkerParams) -> Self {
        RepositoryConfig {
            format: CONFIG_FORMAT.into(),
            version: CONFIG_VERSION,
            id,
            created: jiff::Timestamp::now(),
            chunker,
            pack_size: DEFAULT_PACK_SIZE,
        }
    }

    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("config serializes");
        v.push(b'\n');
        v
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FormatError> {
        let c: RepositoryConfig =
            serde_json::from_slice(bytes).map_err(|e| FormatError::Malformed(format!("repository config: {e}")))?;
        if c.format != CONFIG_FORMAT {
            return Err(FormatError::BadMagic { expected: "repository config" });
        }
        if c.version > CONFIG_VERSION {
            return Err(FormatError::UnsupportedVersion { what: "repository", found: c.version, supported: CONFIG_VERSION });
        }
        c.chunker.validate()?;
        if c.pack_size < 1024 * 1024 || c.pack_size > 1024 * 1024 * 1024 {
            return Err(FormatError::Malformed(format!("pack_size {} outside 1 MiB..1 GiB", c.pack_size)));
        }
        Ok(c)
    }
}
