//! The embedded default: sample datasets and the `reprise demo` scenario.
//!
//! The demo runs the main job end to end on data it generates itself, with
//! nothing to configure, and reports what it measured. Every step is real:
//! the repository is a real encrypted repository, the restore is verified
//! byte for byte against the source.

pub mod datasets;
pub mod files_demo;

pub use files_demo::{DemoReport, DemoStep, run_files_demo};
