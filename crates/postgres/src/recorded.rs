//! Values recorded at backup time, for drills to compare with
//! (`recorded = "at_least"` or `"equal"` in a drill's SQL check).
//!
//! A count checked after a restore means little without the count the
//! database had when it was backed up: "1 000 patients restored" is only
//! good news if there were 1 000. So a base backup runs the queries of the
//! drill checks that ask for it against the live server, once every data
//! file has been read and just before `pg_backup_stop`, and keeps the
//! answers in the snapshot's sealed body (label [`LABEL`], docs/FORMAT.md
//! section 10.4).
//!
//! Recording *before* `pg_backup_stop` is what makes the comparison
//! sound: each value comes with the WAL insert position taken at its
//! transaction's snapshot, which is before the backup's stop LSN, and
//! recovery of that backup always replays past its stop LSN. So whatever
//! point a restore of this backup reaches, the restored database contains
//! every commit the recorded value saw. A query that fails (a typo, a
//! timeout) is recorded with its error and warned about: the backup itself
//! must not fail because of a drill's check.

use serde::{Deserialize, Serialize};

use crate::conn;
use crate::walname::Lsn;

/// The body label that holds the recorded values (JSON, [`Recorded`]).
pub const LABEL: &str = "pg.recorded";
/// The schema name and version of [`Recorded`].
pub const SCHEMA: &str = "reprise.recorded/1";
/// How long one recorded query may run on the production server.
const STATEMENT_TIMEOUT: &str = "60s";

/// A query a drill wants answered at backup time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordQuery {
    /// `None`: the database of the component's connection.
    pub database: Option<String>,
    pub query: String,
}

/// Everything one base backup recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Recorded {
    pub schema: String,
    pub values: Vec<RecordedValue>,
}

/// One query's answer at backup time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordedValue {
    /// `None`: the database of the component's connection.
    pub database: Option<String>,
    /// The query as the plan wrote it: a drill compares only with the
    /// answer to the same query.
    pub query: String,
    /// First column of the first row, as text; `None` for no row, NULL or
    /// an error.
    pub value: Option<String>,
    /// The WAL insert position when the query's snapshot was taken: a
    /// restore that replayed to here or later contains what it saw.
    pub lsn: Option<String>,
    /// When it was taken (RFC 3339 UTC).
    pub time: jiff::Timestamp,
    /// Why there is no value.
    pub error: Option<String>,
}

impl RecordedValue {
    #[must_use]
    pub fn lsn(&self) -> Option<Lsn> {
        self.lsn.as_deref().and_then(|l| l.parse().ok())
    }
}

impl Recorded {
    /// Reads the label, refusing a schema this version does not know.
    pub fn from_label(text: &str) -> Result<Recorded, String> {
        let r: Recorded = serde_json::from_str(text).map_err(|e| format!("{LABEL}: {e}"))?;
        if r.schema.split('/').next() != Some("reprise.recorded") || r.schema.split('/').nth(1) != Some("1") {
            return Err(format!("{LABEL}: schema '{}' is not one this version reads ({SCHEMA}): upgrade reprise", r.schema));
        }
        Ok(r)
    }

    /// The answer recorded for `query` on `database`.
    #[must_use]
    pub fn find(&self, database: Option<&str>, query: &str) -> Option<&RecordedValue> {
        self.values.iter().find(|v| v.database.as_deref() == database && v.query == query)
    }
}

/// Runs every query, each in its own read-only repeatable-read
/// transaction whose first statement reads the WAL insert position (so
/// the position and the answer see the same snapshot). Never fails: an
/// error is recorded with the query, and warned about.
pub fn capture(connection: &str, password_env: Option<&str>, queries: &[RecordQuery]) -> Recorded {
    let mut values = Vec::new();
    for q in queries {
        let time = jiff::Timestamp::now();
        let (value, lsn, error) = match capture_one(connection, password_env, q) {
            Ok((v, l)) => (v, Some(l), None),
            Err(e) => {
                tracing::warn!("a drill check's value could not be recorded at backup time (the backup goes on): {e}");
                (None, None, Some(e))
            }
        };
        values.push(RecordedValue { database: q.database.clone(), query: q.query.clone(), value, lsn, time, error });
    }
    Recorded { schema: SCHEMA.to_owned(), values }
}

fn capture_one(connection: &str, password_env: Option<&str>, q: &RecordQuery) -> Result<(Option<String>, String), String> {
    let mut cfg = conn::config(connection, password_env).map_err(|e| e.to_string())?;
    if let Some(db) = &q.database {
        cfg.dbname(db);
    }
    let mut client = cfg.connect(postgres::NoTls).map_err(|e| format!("cannot connect to {}: {}", conn::describe(&cfg), e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned())))?;
    let sql_err = |e: postgres::Error| e.as_db_error().map_or_else(|| e.to_string(), |d| format!("the query failed: {}", d.message()));
    client
        .batch_execute(&format!("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'"))
        .map_err(sql_err)?;
    // On a standby the insert position does not exist; what it replayed is
    // the same bound.
    let lsn: String = client
        .query_one("SELECT (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END)::text", &[])
        .map_err(sql_err)?
        .get(0);
    let messages = client.simple_query(&q.query).map_err(sql_err)?;
    let value = messages.into_iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => Some(r.get(0).map(str::to_owned)),
        _ => None,
    });
    let _ = client.batch_execute("ROLLBACK");
    Ok((value.flatten(), lsn))
}
