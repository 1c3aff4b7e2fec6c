//! Exit codes: the contract with scripts and schedulers (documented in the
//! README; keep both in step).

use reprise_engine::Category;

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
        Category::Unavailable => UNAVAILABLE,
        Category::Interrupted => INTERRUPTED,
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

/// The exit code for any error that reaches `main`.
#[must_use]
pub fn code_of(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<CliError>() {
            return c.code;
        }
        if let Some(c) = cause.downcast_ref::<reprise_engine::Error>() {
            return for_category(c.category());
        }
        if let Some(c) = cause.downcast_ref::<reprise_ledger::Error>() {
            return for_category(c.category());
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
