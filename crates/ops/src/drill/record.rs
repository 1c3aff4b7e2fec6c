//! The drill record: what a drill measured and found, as stored (JSON,
//! sealed in `drills/<id>`, docs/FORMAT.md section 18) and as every report
//! is rendered from.
//!
//! The schema is versioned by [`SCHEMA`]: a reader refuses a record whose
//! major version it does not know rather than show half of it. Fields are
//! only added within a version, with defaults, so an older record still
//! reads. Durations are milliseconds of a monotonic clock; instants are
//! RFC 3339 UTC.

use serde::{Deserialize, Serialize};

/// The schema name and version this code writes.
pub const SCHEMA: &str = "reprise.drill/1";

/// One drill, start to end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillRecord {
    pub schema: String,
    pub drill: String,
    #[serde(default)]
    pub plan: String,
    pub started: jiff::Timestamp,
    pub finished: jiff::Timestamp,
    pub host: String,
    pub user: String,
    #[serde(default)]
    pub owner: Option<String>,
    /// As the plan wrote it (`latest`, `random within 7d`, `1h ago`).
    pub target: String,
    /// The point in time restored: the drill's start for `latest`.
    pub target_time: jiff::Timestamp,
    pub components: Vec<ComponentResult>,
    pub phases: Vec<Phase>,
    pub validations: Vec<Validation>,
    /// From the drill's start until every component was restored and the
    /// database accepted connections, promoted: the recovery time a real
    /// restore would have had (validations and clean-up not included).
    pub rto_ms: u64,
    pub objectives: Vec<ObjectiveResult>,
    pub scratch: ScratchResult,
    /// Scratch copies of killed drills this drill found and removed (or
    /// could not), as said on the terminal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<String>,
    pub verdict: DrillVerdict,
    /// Why the drill could not restore, when it could not.
    #[serde(default)]
    pub failure: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DrillVerdict {
    Passed,
    Failed,
}

/// What was restored of one component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ComponentResult {
    pub name: String,
    /// `postgres` or `files`.
    pub kind: String,
    /// The snapshot restored (a base backup for PostgreSQL), hex.
    #[serde(default)]
    pub snapshot: Option<String>,
    /// When that snapshot (or base backup) was taken.
    #[serde(default)]
    pub snapshot_time: Option<jiff::Timestamp>,
    #[serde(default)]
    pub wal_segments: u64,
    #[serde(default)]
    pub files: u64,
    #[serde(default)]
    pub bytes: u64,
    /// The newest data the restore holds: the last commit replayed
    /// (PostgreSQL), the snapshot's time (files).
    #[serde(default)]
    pub last_restored: Option<jiff::Timestamp>,
    /// Where recovery ended (PostgreSQL).
    #[serde(default)]
    pub reached_lsn: Option<String>,
    /// `target_time − last_restored`: the data an incident at the target
    /// time would lose with this restore.
    #[serde(default)]
    pub data_loss_ms: Option<u64>,
    /// From the drill's start until this component was usable.
    #[serde(default)]
    pub ready_after_ms: Option<u64>,
}

/// One timed step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Phase {
    /// `restore-files`, `startup-consistent`, `wal-replay`, `validation`, `cleanup`.
    pub phase: String,
    #[serde(default)]
    pub component: Option<String>,
    /// What it was (a validation's label).
    #[serde(default)]
    pub label: Option<String>,
    pub ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    Skipped,
}

/// One validation and what it found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Validation {
    /// `sql`, `documents-newest`, `documents-referenced`, `amcheck`, `read-data`, `connection`.
    pub kind: String,
    pub label: String,
    pub outcome: Outcome,
    #[serde(default)]
    pub expected: Option<String>,
    #[serde(default)]
    pub measured: Option<String>,
    #[serde(default)]
    pub detail: Option<String>,
    pub ms: u64,
}

/// An objective of the plan against what the drill measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectiveResult {
    pub component: String,
    /// `rto` or `rpo`.
    pub objective: String,
    pub target_ms: u64,
    /// `None`: not measured (the restore failed).
    pub measured_ms: Option<u64>,
    pub met: bool,
}

/// The scratch location, and whether it is gone.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScratchResult {
    pub path: String,
    pub removed: bool,
    #[serde(default)]
    pub error: Option<String>,
}

impl DrillRecord {
    /// Reads a stored record, refusing a schema this version cannot read.
    pub fn from_json(bytes: &[u8]) -> Result<DrillRecord, String> {
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not a drill record: {e}"))?;
        let schema = value.get("schema").and_then(serde_json::Value::as_str).unwrap_or_default();
        if schema.split('/').next() != Some("reprise.drill") || schema.split('/').nth(1) != Some("1") {
            return Err(format!("drill record schema '{schema}' is not one this version reads (it reads {SCHEMA}): upgrade reprise"));
        }
        serde_json::from_value(value).map_err(|e| format!("drill record: {e}"))
    }

    /// Validations that failed.
    pub fn failed_validations(&self) -> impl Iterator<Item = &Validation> {
        self.validations.iter().filter(|v| v.outcome == Outcome::Fail)
    }
}
