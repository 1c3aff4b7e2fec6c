//! The living plan: what `reprise plan render` writes and `reprise plan
//! lint` judges, from the plan *and* what is true now.
//!
//! A continuity plan written by hand says "RPO 1 h" and "tested monthly"
//! and nobody checks either; the seed's own document is full of
//! `[À REMPLIR]`. Here the plan's declarations ([`reprise_plan::Plan`],
//! its continuity sections included) are put next to the measured
//! [`Evidence`]: the recovery point achieved now, what each repository
//! holds, the 3-2-1 posture and storage immutability (all from
//! [`crate::status`], the figures `reprise status` shows), and the drills
//! recorded. [`lint`] says what is stale or wrong; [`document`] writes
//! the PRA/PCA in the seed's structure as a `reprise_report::Document`.
//! A fact that could not be measured is carried as missing, with why, and
//! the document says so: nothing is left blank to fill by hand.
//!
//! Drills are recorded by another part of reprise (`drill run`); what the
//! plan needs of them comes through [`DrillRecords`], so that the
//! document and the lint read the same records whoever stores them.

pub mod document;
pub mod lint;

use std::time::Duration;

use jiff::Timestamp;
use reprise_plan::Plan;

use crate::error::Result;
use crate::workspace::Workspace;

pub use document::{DocumentOptions, document};
pub use lint::{Finding, Severity, lint};

/// One drill as the plan needs it: what it restored, when, whether it
/// passed, and what it measured against the objectives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DrillEvidence {
    /// The plan's drill name.
    pub name: String,
    /// Its record's ID.
    pub id: String,
    pub finished_at: Timestamp,
    pub passed: bool,
    /// The components it restored together.
    pub components: Vec<String>,
    /// The whole restore, until every component was usable.
    #[serde(with = "seconds")]
    pub measured_rto: Option<Duration>,
    /// The data-loss window the restore achieved (target vs the last
    /// restorable commit).
    #[serde(with = "seconds")]
    pub achieved_rpo: Option<Duration>,
    pub objectives: Vec<ObjectiveVerdict>,
}

/// One objective of one component, as a drill measured it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectiveVerdict {
    pub component: String,
    /// `rto` or `rpo`.
    pub objective: String,
    #[serde(with = "seconds")]
    pub target: Option<Duration>,
    #[serde(with = "seconds")]
    pub measured: Option<Duration>,
    pub met: bool,
}

/// Where the recorded drills come from.
pub trait DrillRecords {
    /// Every drill recorded for the plan's repositories, any order.
    fn drills(&self, ws: &Workspace) -> Result<Vec<DrillEvidence>>;
}

/// No drill store yet: nothing is recorded, and the documents say so
/// ("aucun exercice enregistré") rather than invent one.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoDrillRecords;

impl DrillRecords for NoDrillRecords {
    fn drills(&self, _ws: &Workspace) -> Result<Vec<DrillEvidence>> {
        Ok(Vec::new())
    }
}

/// What the repositories say about one component now.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Measured {
    /// Snapshots of the component in the repository its backups go to.
    pub snapshots: usize,
    pub last_backup: Option<Timestamp>,
    pub oldest_restorable: Option<Timestamp>,
    pub newest_restorable: Option<Timestamp>,
    /// The recovery point achieved now: data at risk, in seconds.
    pub rpo_seconds: Option<f64>,
    pub pitr_window_seconds: Option<f64>,
    /// Copies of the data: production plus each repository holding it.
    pub copies: usize,
    pub media: Vec<String>,
    /// At least one copy is off-site (`None`: a site is not declared).
    pub off_site: Option<bool>,
    pub three_two_one: bool,
    /// Each repository that holds or should hold it.
    pub repositories: Vec<RepositoryHolding>,
    /// Whether a storage lock is in force (`None`: not asked of the storage).
    pub immutability_in_force: Option<bool>,
    pub immutability_reason: Option<String>,
    pub alerts: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepositoryHolding {
    pub repository: String,
    pub role: String,
    pub media: String,
    pub site: String,
    pub off_site: Option<bool>,
    pub snapshots: Option<usize>,
    pub newest_snapshot: Option<Timestamp>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// One component's evidence, or why there is none.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentEvidence {
    pub component: String,
    #[serde(flatten)]
    pub state: Measurement,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "measurement", rename_all = "kebab-case")]
pub enum Measurement {
    Measured(Box<Measured>),
    /// The repository could not be opened or read: the reason, in one line.
    Unavailable { reason: String },
}

impl ComponentEvidence {
    #[must_use]
    pub fn measured(&self) -> Option<&Measured> {
        match &self.state {
            Measurement::Measured(m) => Some(m),
            Measurement::Unavailable { .. } => None,
        }
    }
}

/// Everything measured for a plan, at one moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Evidence {
    pub measured_at: Timestamp,
    pub components: Vec<ComponentEvidence>,
    pub drills: Vec<DrillEvidence>,
    /// Why drills could not be read, if they could not.
    pub drills_unavailable: Option<String>,
}

impl Evidence {
    #[must_use]
    pub fn component(&self, name: &str) -> Option<&ComponentEvidence> {
        self.components.iter().find(|c| c.component == name)
    }

    /// The newest drill that restored every one of `components`.
    #[must_use]
    pub fn last_drill_of(&self, components: &[String]) -> Option<&DrillEvidence> {
        self.drills.iter().filter(|d| components.iter().all(|c| d.components.contains(c))).max_by_key(|d| d.finished_at)
    }
}

fn measured_from(st: crate::status::ComponentStatus) -> Measured {
    Measured {
        snapshots: st.copies.repositories.first().and_then(|r| r.snapshots).unwrap_or(0),
        last_backup: st.last_backup,
        oldest_restorable: st.oldest_restorable,
        newest_restorable: st.newest_restorable,
        rpo_seconds: st.rpo_seconds,
        pitr_window_seconds: st.pitr_window_seconds,
        copies: st.copies.copies,
        media: st.copies.media.iter().map(|m| (*m).to_owned()).collect(),
        off_site: st.copies.off_site,
        three_two_one: st.copies.three_two_one,
        repositories: st
            .copies
            .repositories
            .into_iter()
            .map(|r| RepositoryHolding {
                repository: r.repository,
                role: r.role.to_owned(),
                media: r.media.to_owned(),
                site: r.site,
                off_site: r.off_site,
                snapshots: r.snapshots,
                newest_snapshot: r.newest_snapshot,
                error: r.error,
            })
            .collect(),
        immutability_in_force: st.immutability.as_ref().map(|i| i.in_force),
        immutability_reason: st.immutability.map(|i| i.reason),
        alerts: st.alerts,
    }
}

/// Measures every component of the plan (one failing component does not
/// hide the others: it is carried as unavailable, with why) and reads the
/// recorded drills.
pub fn gather(ws: &Workspace, drills: &dyn DrillRecords) -> Result<Evidence> {
    let plan: &Plan = ws.plan()?;
    let measured_at = Timestamp::now();
    let mut components = Vec::new();
    for name in plan.components.keys() {
        let state = match crate::status::status(ws, std::slice::from_ref(name)) {
            Ok(mut st) if !st.is_empty() => Measurement::Measured(Box::new(measured_from(st.remove(0)))),
            Ok(_) => Measurement::Unavailable { reason: "status returned nothing".to_owned() },
            Err(e) => Measurement::Unavailable { reason: e.message().to_owned() },
        };
        components.push(ComponentEvidence { component: name.clone(), state });
    }
    let (drills, drills_unavailable) = match drills.drills(ws) {
        Ok(d) => (d, None),
        Err(e) => (Vec::new(), Some(e.message().to_owned())),
    };
    Ok(Evidence { measured_at, components, drills, drills_unavailable })
}

/// Serialises an optional duration as seconds.
mod seconds {
    use std::time::Duration;

    #[allow(clippy::ref_option, reason = "the signature serde's `with` requires")]
    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests;
