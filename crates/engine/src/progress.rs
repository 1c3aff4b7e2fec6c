//! Progress reporting, decoupled from any terminal library.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Receives progress of long operations. Implementations must be cheap:
/// workers call `advance` for every chunk.
pub trait Progress: Send + Sync {
    /// The expected total, when known (may be called late, from a scanner).
    fn set_total(&self, _bytes: u64, _items: u64) {}
    fn advance(&self, _bytes: u64, _items: u64) {}
    fn note(&self, _message: &str) {}
}

/// Ignores progress.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// Set from a signal handler or another thread to stop long work early and
/// cleanly: writers finish what is in flight and record it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}
