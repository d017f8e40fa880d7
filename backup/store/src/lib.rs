//! Object stores for conservator repositories.
//!
//! A repository is a set of immutable, named objects (`config`, `keys/…`, `data/…`,
//! `index/…`, `snapshots/…`, `locks/…`). Every store implements [`ObjectStore`]:
//!
//! * `put` is atomic: a reader sees the whole object or nothing, never a prefix.
//!   (local: write to a temporary name, fsync, rename; S3: PUT / completed multipart).
//! * `delete` is idempotent: deleting a missing object is not an error.
//! * `list` returns every object under a prefix with its size, in no particular order.
//! * every future is safe to drop (that is how callers cancel): a dropped `put`
//!   leaves either nothing or the complete object.
//!
//! One contract suite ([`testsuite`], feature `testsuite`) runs against every store.

mod error;
mod local;
mod s3;
#[cfg(feature = "testsuite")]
pub mod testsuite;

use std::sync::Arc;

use async_trait::async_trait;
pub use bytes::Bytes;

pub use error::{Error, Result};
pub use local::LocalStore;
pub use s3::{LockMode, S3Config, S3Store};

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Key relative to the store's root/prefix, `/`-separated.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
}

/// Options for a `put`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// Fail with [`Error::AlreadyExists`] when the key exists (S3 `If-None-Match: *`).
    pub if_absent: bool,
}

/// A flat namespace of immutable objects.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// A human description without secrets, e.g. `local:/srv/repo` or `s3:http://host/bucket/prefix`.
    fn describe(&self) -> String;

    /// How many large writes (packs) pay to have in flight at once: each holds a pack in
    /// memory. Two keep a local disk busy while the next pack fills (measured: 12 % faster
    /// than one on the benchmark corpus); a remote store may want more.
    fn write_concurrency(&self) -> usize {
        2
    }

    /// Store `data` under `key`, atomically.
    async fn put_opts(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<()>;

    /// Store `data` under `key`, atomically, replacing what was there.
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        self.put_opts(key, data, PutOptions::default()).await
    }

    /// Read a whole object. [`Error::NotFound`] when it does not exist.
    async fn get(&self, key: &str) -> Result<Bytes>;

    /// Read `len` bytes at `offset`. Reading past the end is [`Error::Integrity`]
    /// (the caller asked for bytes the object does not have: the object is truncated).
    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes>;

    /// Size of an object, or `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<u64>>;

    /// Every object whose key starts with `prefix`.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Delete an object; a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Check the store can be reached and written (used by `init` and at daemon start).
    async fn probe(&self) -> Result<()>;

    /// Remove what interrupted writes left behind that is older than `older_than` (local:
    /// `.tmp-*` files; S3: unfinished multipart uploads under the prefix). None of it is
    /// ever visible as an object; it only holds space. Returns how many were removed.
    async fn cleanup_incomplete(&self, older_than: std::time::Duration) -> Result<usize>;
}

/// A shared store handle.
pub type DynStore = Arc<dyn ObjectStore>;

/// Open a store from a location string:
/// * `s3:http(s)://host[:port]/bucket[/prefix]` → [`S3Store`] (credentials from
///   `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, region from `AWS_REGION`, default `us-east-1`;
///   Object Lock retention on every object written from `CONSERVATOR_S3_OBJECT_LOCK`,
///   `governance:DAYS` or `compliance:DAYS`);
/// * `local:/path` or a plain path → [`LocalStore`].
pub fn open(location: &str) -> Result<DynStore> {
    match location.strip_prefix("s3:") {
        Some(rest) => Ok(Arc::new(S3Store::new(s3_config(rest)?)?)),
        None => Ok(Arc::new(LocalStore::new(location.strip_prefix("local:").unwrap_or(location)))),
    }
}

/// Like [`open`], for a repository about to be created: an S3 bucket that does not exist yet
/// is created (with Object Lock enabled when `CONSERVATOR_S3_OBJECT_LOCK` asks for it).
pub async fn open_creating(location: &str) -> Result<DynStore> {
    match location.strip_prefix("s3:") {
        Some(rest) => {
            let cfg = s3_config(rest)?;
            let lock = cfg.object_lock.is_some();
            let store = S3Store::new(cfg)?;
            store.create_bucket_if_missing(lock).await?;
            Ok(Arc::new(store))
        }
        None => open(location),
    }
}

fn s3_config(rest: &str) -> Result<S3Config> {
    let mut cfg = S3Config::from_url(rest)?.with_env_credentials()?;
    if let Ok(v) = std::env::var("CONSERVATOR_S3_OBJECT_LOCK") {
        cfg.object_lock = Some(parse_object_lock(&v)?);
    }
    Ok(cfg)
}

/// [`open`] / [`open_creating`] with Object Lock retention given by the caller (the daemon's
/// `[repository] object_lock`) instead of the environment; `None` leaves the environment's.
pub async fn open_locked(location: &str, object_lock: Option<&str>, creating: bool) -> Result<DynStore> {
    let Some(lock) = object_lock else {
        return if creating { open_creating(location).await } else { open(location) };
    };
    match location.strip_prefix("s3:") {
        Some(rest) => {
            let mut cfg = s3_config(rest)?;
            cfg.object_lock = Some(parse_object_lock(lock)?);
            let store = S3Store::new(cfg)?;
            if creating {
                store.create_bucket_if_missing(true).await?;
            }
            Ok(Arc::new(store))
        }
        None => Err(Error::BadLocation {
            location: location.to_string(),
            why: "object_lock applies to S3 repositories only: remove it or use an s3: location".into(),
        }),
    }
}

/// `governance:DAYS` or `compliance:DAYS`.
pub fn parse_object_lock(v: &str) -> Result<(LockMode, u32)> {
    let bad = || Error::BadLocation {
        location: format!("CONSERVATOR_S3_OBJECT_LOCK={v}"),
        why: "expected governance:DAYS or compliance:DAYS, e.g. compliance:30".into(),
    };
    let (mode, days) = v.split_once(':').ok_or_else(bad)?;
    let mode = match mode.to_ascii_lowercase().as_str() {
        "governance" => LockMode::Governance,
        "compliance" => LockMode::Compliance,
        _ => return Err(bad()),
    };
    let days: u32 = days.parse().ok().filter(|d| *d > 0).ok_or_else(bad)?;
    Ok((mode, days))
}
