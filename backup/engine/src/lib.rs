//! The conservator backup engine: repository operations over a store.
//!
//! Async at the edges (store I/O on tokio), CPU work (chunking, hashing,
//! compression, encryption) on plain threads. Every operation that changes the
//! repository takes a lock (see [`lock`]) and follows an order that keeps the
//! repository consistent if the process dies at any point:
//! packs → index → snapshot when writing; new index → old index removal → pack
//! removal when pruning. ARCHITECTURE.md explains why each order is safe.

pub mod backup;
pub mod check;
mod error;
pub mod index;
pub mod lock;
pub mod progress;
pub mod prune;
pub mod repo;
pub mod restore;
pub mod walk;

pub use error::{Error, Result};
pub use progress::Progress;
pub use repo::Repository;
pub use tokio_util::sync::CancellationToken;
