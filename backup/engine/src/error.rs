use std::path::PathBuf;

/// The one error type of the engine crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store operation failed.
    #[error(transparent)]
    Store(conservator_store::Error),
    /// A format, crypto or planning error.
    #[error(transparent)]
    Core(#[from] conservator_backup_core::Error),
    /// There is no repository at the location.
    #[error("no repository at {location}: it has no `config` object. Create one with `conservator repo init`, or check --repo")]
    NoRepository { location: String },
    /// `init` on a location that already holds a repository.
    #[error("{location} already holds a repository; refusing to overwrite it")]
    AlreadyInitialised { location: String },
    /// Another process holds a conflicting lock.
    #[error("repository is locked by {holder}; wait for it to finish, or if that process is gone, run `conservator repo unlock`")]
    Locked { holder: String },
    /// A snapshot, path or key was not found.
    #[error("{0}")]
    NotFound(String),
    /// Local file-system error (source walk or restore target).
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, #[source] source: std::io::Error },
    /// The restore target is full.
    #[error("restore target {path} is out of space: {source}. Free space or restore elsewhere; files restored so far are incomplete")]
    NoSpace { path: PathBuf, #[source] source: std::io::Error },
    /// The repository is damaged where an operation needed it.
    #[error("repository damaged: {0}. Run `conservator repo check --read-data` for the full list of what is affected")]
    Damaged(String),
    /// A named stream's command could not be run.
    #[error("stream {name}: cannot run {command:?}: {source}")]
    Command { name: String, command: String, #[source] source: std::io::Error },
    /// Invalid request.
    #[error("{0}")]
    Invalid(String),
    /// The operation was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl From<conservator_store::Error> for Error {
    /// A stored object shorter than its index says is damage in the repository, not a
    /// failure of the store.
    fn from(e: conservator_store::Error) -> Error {
        match e {
            conservator_store::Error::Integrity { .. } => Error::Damaged(e.to_string()),
            e => Error::Store(e),
        }
    }
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        if matches!(source.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded) {
            Error::NoSpace { path, source }
        } else {
            Error::Io { op, path, source }
        }
    }
}

/// Engine result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
