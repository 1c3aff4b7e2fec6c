//! PostgreSQL for reprise.
//!
//! * [`base`]: physical base backups (non-exclusive `pg_backup_start` /
//!   `pg_backup_stop`), as a source for the engine;
//! * [`wal`]: the WAL archive (`wal-push`, `wal-fetch`, gaps, timelines);
//! * [`restore`]: point-in-time restore, optionally started and measured;
//! * [`tablespaces`]: where a restore puts tablespaces, never production's folders;
//! * [`cluster`]: servers reprise runs itself (scratch restores, demo);
//! * [`rows`]: recovering deleted or changed rows of one table;
//! * [`logical`]: `pg_dump` / `pg_restore` for managed servers;
//! * [`recorded`]: drill checks' values answered at backup time;
//! * [`stream`], [`replication`]: WAL streamed into the repository,
//!   acknowledged to the server only once stored;
//! * [`status`]: achieved RPO and the point-in-time window;
//! * [`copy`]: the WAL a copy to a second repository sends;
//! * [`expire`]: WAL retention (what kept base backups and the window need).

pub mod base;
pub mod cluster;
pub mod conn;
pub mod copy;
pub mod error;
pub mod expire;
pub mod logical;
pub mod recorded;
pub mod replication;
pub mod restore;
pub mod rows;
pub mod status;
pub mod stream;
pub mod tablespaces;
pub mod wal;
pub mod walname;
pub mod walrecord;

pub use error::{PgError, Result};
