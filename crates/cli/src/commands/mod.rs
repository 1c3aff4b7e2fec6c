//! One function per command: resolve arguments, call the engine, print.

pub mod backup;
pub mod check;
pub mod copy;
pub mod demo;
pub mod immutability;
pub mod inspect;
pub mod keys;
pub mod ledger;
pub mod plan;
pub mod postgres;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod status;

use reprise_engine::Repository;
use reprise_engine::format::snapshot::SnapshotHeader;

/// Human-readable byte counts (binary units).
#[must_use]
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{n} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Resolves a snapshot argument, `latest` meaning the newest of all (or of
/// `component` when given).
pub fn find_snapshot(repo: &Repository, spec: &str, component: Option<&str>) -> reprise_engine::Result<reprise_engine::SnapshotInfo> {
    let filter = |h: &SnapshotHeader| component.is_none_or(|c| h.component == c);
    repo.find_snapshot(spec, &filter)
}
