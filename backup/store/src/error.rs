/// The one error type of the store crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("object {key} not found in {store}")]
    NotFound { store: String, key: String },
    /// A conditional put found the key taken.
    #[error("object {key} already exists in {store}")]
    AlreadyExists { store: String, key: String },
    /// The object exists but is shorter than asked for (truncated).
    #[error("object {key} in {store} is truncated: asked for bytes {offset}..{end}, it has {size}")]
    Integrity { store: String, key: String, offset: u64, end: u64, size: u64 },
    /// The store cannot be reached at all (connection refused, DNS, timeout).
    #[error("store {store} is unreachable: {detail}. Check the endpoint address and that the server is running")]
    Unreachable { store: String, detail: String },
    /// Credentials were refused or the bucket does not allow the operation.
    #[error("store {store} refused {op} of {key}: {detail}. Check the credentials and the bucket policy")]
    Denied { store: String, op: &'static str, key: String, detail: String },
    /// The store (or the disk under it) is full.
    #[error("store {store} is out of space writing {key}: {detail}. Free space or grow the volume, then run again")]
    NoSpace { store: String, key: String, detail: String },
    /// The location string is not understood.
    #[error("bad store location {location:?}: {why}")]
    BadLocation { location: String, why: String },
    /// Any other failure, with the operation and whether a retry may help.
    #[error("store {store}: {op} {key} failed: {detail}")]
    Other { store: String, op: &'static str, key: String, detail: String, transient: bool },
}

impl Error {
    /// Whether retrying the same call cannot help.
    pub fn is_permanent(&self) -> bool {
        match self {
            Error::Unreachable { .. } => false,
            Error::Other { transient, .. } => !transient,
            _ => true,
        }
    }

    /// Whether this is a [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    pub(crate) fn from_io(store: &str, op: &'static str, key: &str, e: std::io::Error) -> Error {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Error::NotFound { store: store.into(), key: key.into() },
            K::AlreadyExists => Error::AlreadyExists { store: store.into(), key: key.into() },
            K::StorageFull | K::QuotaExceeded => {
                Error::NoSpace { store: store.into(), key: key.into(), detail: e.to_string() }
            }
            K::PermissionDenied | K::ReadOnlyFilesystem => {
                Error::Denied { store: store.into(), op, key: key.into(), detail: e.to_string() }
            }
            _ => Error::Other {
                store: store.into(),
                op,
                key: key.into(),
                detail: e.to_string(),
                transient: matches!(e.kind(), K::Interrupted | K::TimedOut | K::WouldBlock),
            },
        }
    }
}

/// Store result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
