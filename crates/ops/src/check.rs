//! `check`: the repository's structure and, as asked, its data.
//!
//! A scheduled check (a daemon reading one pack group a day) and the
//! operator's run read the same report; damage is its verdict.

use reprise_engine::check::{CheckOptions, CheckReport, ReadData, check as engine_check};

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
    let report = engine_check(&repo, &CheckOptions { read_data, cancel: cancel.clone() }, progress.as_ref())?;
    drop(progress);
    crate::ledger::record(ws, &repo, &crate::ledger::check(&report, &crate::ledger::read_data_mode(read_data)))?;
    let read_data_group = match read_data {
        ReadData::Group { n, m } => Some(format!("{n}/{m}")),
        _ => None,
    };
    Ok(Checked { report, read_data_group })
}
