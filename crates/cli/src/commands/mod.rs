//! One function per command: flags → request → operation (`reprise_ops`)
//! → render (text or JSON) → exit code.

pub mod backup;
pub mod check;
pub mod copy;
pub mod demo;
pub mod drill;
pub mod inspect;
pub mod keys;
pub mod ledger;
pub mod plan;
pub mod postgres;
pub mod repair;
pub mod restore;
pub mod retention;
pub mod status;


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


/// A warning of an operation, for the operator.
pub fn render_warning(warning: &reprise_ops::Warning) -> String {
    match warning {
        reprise_ops::Warning::SpoolAhead(a) => format!(
            "the wal-stream spool {} holds WAL the repository lacks ({} in {} file(s), from segment {} at byte {}): run `reprise wal-stream {} --upload-only` first to restore it too",
            a.spool.display(),
            bytes(a.bytes),
            a.files,
            a.first_segment,
            a.first_stored_bytes,
            a.component
        ),
        _ => format!("{warning:?}"),
    }
}
