//! The embedded default: sample datasets and the `reprise demo` scenario.
//!
//! The demo runs the main job end to end on data it generates itself, with
//! nothing to configure, and reports what it measured. Every step is real:
//! a real PostgreSQL, a real encrypted repository, restores verified
//! against their sources.

pub mod datasets;
pub mod medicapp;
pub mod scenario;

pub use scenario::{DemoError, DemoOptions, DemoReport, DemoStep, run_demo};
