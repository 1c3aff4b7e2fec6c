//! `check`: the repository's structure and, as asked, its data.
//!
//! A scheduled check (a daemon reading one pack group a day) and the
//! operator's run read the same report; damage is its verdict. A full
//! read also names PostgreSQL WAL stored for another server than its
//! component's base backups, and its writer.

use reprise_engine::check::{CheckOptions, CheckReport, Problem, ReadData, check as engine_check};

use crate::error::{Category, OpsError, Result};
use crate::workspace::Workspace;
use crate::{CancelToken, Observer, Verdict, count};

/// The report, and which pack group was read (`N/M`), if one was.
#[derive(Debug, serde::Serialize)]
pub struct Checked {
    #[serde(flatten)]
    pub report: CheckReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_data_group: Option<String>,
}

impl Verdict for Checked {
    fn failure(&self) -> Option<OpsError> {
        (!self.report.ok()).then(|| {
            OpsError::new(Category::Damaged, format!("check found {}, each listed with the damaged object and what helps", count(self.report.problems.len(), "problem", "problems")))
        })
    }
}

pub fn check(ws: &Workspace, read_data: ReadData, observer: &dyn Observer, cancel: &CancelToken) -> Result<Checked> {
    let repo = ws.open(None)?;
    let progress = observer.phase("check");
    let mut report = engine_check(&repo, &CheckOptions { read_data, cancel: cancel.clone() }, progress.as_ref())?;
    drop(progress);
    // WAL of another server than its component's base backups: a writer
    // may store any name in its own domain, and restores ignore such
    // files, so only a full read says whose they are.
    if read_data == ReadData::All && report.content_verified {
        let foreign = reprise_postgres::wal::foreign_servers(&repo)?;
        report.problems.extend(foreign.into_iter().map(|(object, message)| Problem { object, message }));
        report.problems.sort();
        report.problems.dedup();
    }
    crate::ledger::record(ws, &repo, &crate::ledger::check(&report, &crate::ledger::read_data_mode(read_data)))?;
    let read_data_group = match read_data {
        ReadData::Group { n, m } => Some(format!("{n}/{m}")),
        _ => None,
    };
    Ok(Checked { report, read_data_group })
}
