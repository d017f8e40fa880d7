//! Progress counters shared between an operation and whoever displays it
//! (the CLI's bars, later the API).

use std::sync::atomic::{AtomicU64, Ordering};

/// Counters updated by long operations. All relaxed: they are for display.
#[derive(Debug, Default)]
pub struct Progress {
    /// Total bytes expected (0 while unknown; may grow while a scan runs).
    pub bytes_total: AtomicU64,
    /// Bytes processed.
    pub bytes_done: AtomicU64,
    /// Items (files, packs) expected.
    pub items_total: AtomicU64,
    /// Items done.
    pub items_done: AtomicU64,
    /// Bytes written to the store.
    pub bytes_stored: AtomicU64,
}

impl Progress {
    pub(crate) fn add_done(&self, bytes: u64) {
        self.bytes_done.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn add_total(&self, bytes: u64) {
        self.bytes_total.fetch_add(bytes, Ordering::Relaxed);
    }
    pub(crate) fn item(&self) {
        self.items_done.fetch_add(1, Ordering::Relaxed);
    }
    /// Read a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}
