//! Repository locks: shared for backup/restore/check/forget, exclusive for prune.
//!
//! Protocol (restic's, made safe against crashed holders on the same host):
//! 1. write `locks/<random>` with our record;
//! 2. list `locks/`: if any *other live* lock conflicts (an exclusive one, or any
//!    one when we want exclusive), delete ours and fail (or retry until a deadline);
//! 3. refresh our record every [`LOCK_REFRESH_SECS`] while we run; delete it at the end.
//!
//! A lock is live if refreshed within [`LOCK_STALE_SECS`] and, when its holder is on
//! this host, its pid still exists: a SIGKILLed holder's lock stops counting at once.
//! If two processes race in step 1, both see each other in step 2 and back off; a
//! retry with jitter resolves it.

use std::time::Duration;

use chrono::Utc;
use conservator_backup_core::Id;
use conservator_backup_core::format::{LOCK_REFRESH_SECS, Lock};
use conservator_store::{Bytes, DynStore};

use crate::repo::local_hostname;
use crate::{Error, Result};

/// A held lock; refreshed in the background, removed by [`LockGuard::release`] (or on drop, best effort).
#[derive(Debug)]
pub struct LockGuard {
    store: DynStore,
    key: String,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Whether a lock record still counts.
pub fn lock_is_live(l: &Lock) -> bool {
    if !l.is_live(Utc::now()) {
        return false;
    }
    if l.hostname == local_hostname() && !pid_alive(l.pid) {
        return false;
    }
    true
}

fn describe(l: &Lock) -> String {
    format!(
        "{} lock of pid {} on {} ({}, since {})",
        if l.exclusive { "an exclusive" } else { "a shared" },
        l.pid,
        l.hostname,
        l.operation,
        l.created.format("%Y-%m-%d %H:%M:%S UTC")
    )
}

/// Take a lock, retrying for up to `wait` while a conflicting lock is held.
pub async fn acquire(store: &DynStore, exclusive: bool, operation: &str, wait: Duration) -> Result<LockGuard> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match try_acquire(store, exclusive, operation).await {
            Ok(g) => return Ok(g),
            Err(Error::Locked { holder }) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::Locked { holder });
                }
                let jitter = Duration::from_millis(200 + rand::random::<u64>() % 800);
                tokio::time::sleep(jitter).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn try_acquire(store: &DynStore, exclusive: bool, operation: &str) -> Result<LockGuard> {
    let now = Utc::now();
    let rec = Lock {
        exclusive,
        hostname: local_hostname(),
        pid: std::process::id(),
        operation: operation.into(),
        created: now,
        refreshed: now,
    };
    let key = format!("locks/{}", Id::random().to_hex());
    store.put(&key, Bytes::from(serde_json::to_vec(&rec).expect("lock serialises"))).await?;
    let conflict = async {
        for o in store.list("locks/").await? {
            if o.key == key {
                continue;
            }
            let Ok(bytes) = store.get(&o.key).await else { continue };
            let Ok(other) = serde_json::from_slice::<Lock>(&bytes) else { continue };
            if lock_is_live(&other) && (exclusive || other.exclusive) {
                return Ok::<_, Error>(Some(describe(&other)));
            }
        }
        Ok(None)
    }
    .await;
    match conflict {
        Ok(None) => {}
        Ok(Some(holder)) => {
            let _ = store.delete(&key).await;
            return Err(Error::Locked { holder });
        }
        Err(e) => {
            let _ = store.delete(&key).await;
            return Err(e);
        }
    }
    let (s, k) = (store.clone(), key.clone());
    let refresher = tokio::spawn(async move {
        let mut rec = rec;
        loop {
            tokio::time::sleep(Duration::from_secs(LOCK_REFRESH_SECS)).await;
            rec.refreshed = Utc::now();
            let _ = s.put(&k, Bytes::from(serde_json::to_vec(&rec).expect("lock serialises"))).await;
        }
    });
    Ok(LockGuard { store: store.clone(), key, refresher: Some(refresher) })
}

impl LockGuard {
    /// Remove the lock.
    pub async fn release(mut self) -> Result<()> {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        self.store.delete(&self.key).await?;
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
            let (s, k) = (self.store.clone(), self.key.clone());
            if let Ok(h) = tokio::runtime::Handle::try_current() {
                h.spawn(async move {
                    let _ = s.delete(&k).await;
                });
            }
        }
    }
}

/// Remove locks that no longer count (stale, or of dead processes on this host).
/// With `all`, remove every lock.
pub async fn unlock(store: &DynStore, all: bool) -> Result<usize> {
    let mut n = 0;
    for o in store.list("locks/").await? {
        let stale = match store.get(&o.key).await {
            Ok(b) => serde_json::from_slice::<Lock>(&b).map(|l| !lock_is_live(&l)).unwrap_or(true),
            Err(_) => true,
        };
        if all || stale {
            store.delete(&o.key).await?;
            n += 1;
        }
    }
    Ok(n)
}
