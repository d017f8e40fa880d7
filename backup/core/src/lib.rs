//! Pure core of the conservator repository format (format version 1).
//!
//! Nothing here does I/O beyond reading from a caller-provided `std::io::Read`, and
//! nothing needs an async runtime: chunking, ids, the encryption envelope, the
//! key hierarchy, the pack/index/tree/snapshot encodings and retention planning.
//! The byte layout is documented in `ARCHITECTURE.md` ("Repository format v1").

pub mod blob;
pub mod chunker;
pub mod crypto;
pub mod dump;
pub mod error;
pub mod format;
pub mod id;
pub mod retention;

pub use error::{Error, Result};
pub use id::Id;

/// The repository format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
