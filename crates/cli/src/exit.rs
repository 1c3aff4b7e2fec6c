//! Exit codes: the contract with scripts and schedulers (documented in the
//! README; keep both in step). Every error category of the operations
//! layer maps to one code here, and only here.

use reprise_ops::{Category, OpsError};

pub const OK: u8 = 0;
pub const ERROR: u8 = 1;
pub const USAGE: u8 = 2;
pub const NOT_FOUND: u8 = 3;
pub const AUTH: u8 = 4;
pub const PERMISSION: u8 = 5;
pub const DAMAGED: u8 = 6;
pub const STORAGE_FULL: u8 = 7;
pub const INCOMPLETE: u8 = 8;
pub const UNAVAILABLE: u8 = 9;
pub const BUSY: u8 = 10;
pub const DRILL_FAILED: u8 = 11;
/// `plan lint` found warnings, and no error.
pub const LINT_WARNINGS: u8 = 12;
/// `plan lint` found at least one error: a promise of the plan broken now.
pub const LINT_ERRORS: u8 = 13;
pub const INTERRUPTED: u8 = 130;

#[must_use]
pub fn for_category(c: Category) -> u8 {
    match c {
        Category::Usage => USAGE,
        Category::NotFound => NOT_FOUND,
        Category::Authentication => AUTH,
        Category::Permission => PERMISSION,
        Category::Damaged => DAMAGED,
        Category::StorageFull => STORAGE_FULL,
        Category::Incomplete => INCOMPLETE,
        Category::Unavailable => UNAVAILABLE,
        Category::Busy => BUSY,
        Category::Interrupted => INTERRUPTED,
        Category::DrillFailed => DRILL_FAILED,
        Category::Other => ERROR,
    }
}

/// An error the CLI decided on itself (argument combinations, plan
/// problems), with the exit code it deserves.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub fn usage(message: impl Into<String>) -> anyhow::Error {
    CliError { code: USAGE, message: message.into() }.into()
}

pub fn with_code(code: u8, message: impl Into<String>) -> anyhow::Error {
    CliError { code, message: message.into() }.into()
}

/// An operation's failure as the CLI reports it: its message, and the
/// code of its category.
pub fn from_ops(e: &OpsError) -> anyhow::Error {
    with_code(for_category(e.category()), e.message())
}

/// The exit code for any error that reaches `main`.
#[must_use]
pub fn code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return c.code;
        }
        if let Some(c) = cause.downcast_ref::<OpsError>() {
            return for_category(c.category());
        }
        if let Some(c) = cause.downcast_ref::<reprise_engine::Error>() {
            return for_category(match c {
                reprise_engine::Error::ConcurrentPrune(_) => Category::Busy,
                other => other.category().into(),
            });
        }
        if let Some(c) = cause.downcast_ref::<reprise_ledger::Error>() {
            return for_category(c.category().into());
        }
        if let Some(p) = cause.downcast_ref::<reprise_plan::PlanError>() {
            return match p {
                reprise_plan::PlanError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => NOT_FOUND,
                reprise_plan::PlanError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => PERMISSION,
                _ => USAGE,
            };
        }
        if let Some(s) = cause.downcast_ref::<reprise_source_files::SourceError>() {
            return match s {
                reprise_source_files::SourceError::Path { source, .. } if source.kind() == std::io::ErrorKind::NotFound => NOT_FOUND,
                reprise_source_files::SourceError::Path { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => PERMISSION,
                _ => USAGE,
            };
        }
    }
    ERROR
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every category a library error can have reaches a code of the
    /// README's table, and two categories that call for different actions
    /// never share one (a scheduler retries 9 and 10, and escalates the rest).
    #[test]
    fn every_category_has_a_documented_exit_code() {
        let readme = include_str!("../../../README.md");
        let table = &readme[readme.find("## Exit codes").expect("README has the table")..];
        let mut seen = std::collections::HashMap::new();
        for c in Category::ALL {
            let code = for_category(c);
            assert!(table.contains(&format!("| {code} ")), "{c:?} exits {code}, which the README's table does not list");
            if let Some(other) = seen.insert(code, c) {
                assert!(other == Category::Other || c == Category::Other, "{other:?} and {c:?} share exit code {code}");
            }
            assert_eq!(c.retryable(), matches!(code, UNAVAILABLE | BUSY), "{c:?}");
        }
    }
}
