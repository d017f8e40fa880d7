/// The one error type of the pure core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Authenticated decryption failed: the object was changed, truncated, or sealed with another key.
    #[error("{what} failed authentication: it is corrupted, truncated, or was written with another key")]
    Integrity { what: String },
    /// Decrypted content does not hash to the id it is stored under.
    #[error("{what}: content hashes to {actual}, expected {expected}")]
    IdMismatch { what: String, expected: String, actual: String },
    /// None of the repository keys opens with the given secret.
    #[error("wrong passphrase or key: none of the repository's {count} key(s) opens with it")]
    WrongKey { count: usize },
    /// An object declares a format version this build does not know.
    #[error("{what} has format version {found}; this conservator reads version {supported}. Upgrade conservator")]
    Version { what: String, found: u32, supported: u32 },
    /// Bytes do not decode as the expected structure.
    #[error("{what} is malformed: {detail}")]
    Malformed { what: String, detail: String },
    /// A retention policy or parameter is invalid.
    #[error("invalid {what}: {detail}")]
    Invalid { what: String, detail: String },
    /// I/O error from a caller-supplied reader (the core does no I/O of its own).
    #[error("reading {what}: {source}")]
    Read { what: String, #[source] source: std::io::Error },
}

impl Error {
    pub(crate) fn malformed(what: impl Into<String>, detail: impl std::fmt::Display) -> Error {
        Error::Malformed { what: what.into(), detail: detail.to_string() }
    }
}

/// Core result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
