//! Opening, creating and keying a repository.

use std::sync::Arc;

use chrono::Utc;
use conservator_backup_core::blob;
use conservator_backup_core::crypto::{KdfParams, KeyRecord, MasterKey, Secret};
use conservator_backup_core::format::{RepoConfig, Snapshot, pack_key};
use conservator_backup_core::{Error as CoreError, Id};
use conservator_store::{Bytes, DynStore, PutOptions};
use serde::Serialize;

use crate::index::{BlobLoc, MasterIndex};
use crate::{Error, Result};

/// An open repository: a store, the unwrapped master key and the config.
#[derive(Debug)]
pub struct Repository {
    /// The store.
    pub store: DynStore,
    /// The master key.
    pub key: MasterKey,
    /// The config.
    pub config: RepoConfig,
    /// Id of the key record that opened it.
    pub key_id: String,
}

/// A key record as listed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Record id.
    pub id: String,
    /// Kind.
    pub kind: String,
    /// Label.
    pub label: String,
    /// Created.
    pub created: String,
    /// Whether this key opened the repository now.
    pub current: bool,
}

/// Options of `init` and `key add`.
#[derive(Debug, Clone)]
pub struct KeyOptions {
    /// Label.
    pub label: String,
    /// Argon2id parameters for passphrase keys.
    pub kdf: KdfParams,
}

impl Default for KeyOptions {
    fn default() -> Self {
        KeyOptions { label: "default".into(), kdf: KdfParams::default() }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into())
}

/// This machine's host name.
pub fn local_hostname() -> String {
    hostname()
}

impl Repository {
    /// Create a repository at an empty location.
    pub async fn init(store: DynStore, secret: &Secret, opts: &KeyOptions) -> Result<Repository> {
        if store.head("config").await?.is_some() {
            return Err(Error::AlreadyInitialised { location: store.describe() });
        }
        store.probe().await?;
        let key = MasterKey::generate();
        let config = RepoConfig::new(Utc::now());
        let rec = KeyRecord::wrap(&key, secret, &opts.label, opts.kdf, &Utc::now().to_rfc3339())?;
        let key_id = Id::random().to_hex();
        store.put_opts(&format!("keys/{key_id}"), Bytes::from(rec.to_json()), PutOptions { if_absent: true }).await?;
        // config last: a location with keys but no config is an interrupted init and may be re-initialised.
        store.put_opts("config", Bytes::from(config.encode(&key)), PutOptions { if_absent: true }).await?;
        Ok(Repository { store, key, config, key_id })
    }

    /// Open with a secret, trying every key record.
    pub async fn open(store: DynStore, secret: &Secret) -> Result<Repository> {
        let config_bytes = match store.get("config").await {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::NoRepository { location: store.describe() }),
            Err(e) => return Err(e.into()),
        };
        let keys = store.list("keys/").await?;
        if keys.is_empty() {
            return Err(Error::Invalid(format!(
                "repository {} has no keys left: it was crypto-shredded and its data can never be read again",
                store.describe()
            )));
        }
        let mut stale = false;
        for k in &keys {
            let rec = KeyRecord::from_json(&store.get(&k.key).await?)?;
            let secret = secret.clone();
            let opened = tokio::task::spawn_blocking(move || rec.unwrap_key(&secret)).await.expect("kdf task")?;
            if let Some(key) = opened {
                // A record can unwrap with this secret yet hold another master key: left by an
                // `init` that was cut off before it wrote `config`, then run again. Only the
                // record whose key opens `config` is the repository's; keep looking.
                match RepoConfig::decode(&key, &config_bytes) {
                    Ok(config) => {
                        let key_id = k.key.trim_start_matches("keys/").to_string();
                        return Ok(Repository { store, key, config, key_id });
                    }
                    Err(e) => {
                        tracing::warn!(record = %k.key, "a key record opens with this secret but not the repository's config: {e}");
                        stale = true;
                    }
                }
            }
        }
        if stale {
            return Err(Error::Invalid(format!(
                "repository {}: the key records this secret opens belong to an interrupted `init`, none opens its config",
                store.describe()
            )));
        }
        Err(CoreError::WrongKey { count: keys.len() }.into())
    }

    /// List key records.
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for k in self.store.list("keys/").await? {
            let rec = KeyRecord::from_json(&self.store.get(&k.key).await?)?;
            let id = k.key.trim_start_matches("keys/").to_string();
            out.push(KeyInfo { current: id == self.key_id, id, kind: rec.kind, label: rec.label, created: rec.created });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created));
        Ok(out)
    }

    /// Add a key record for another secret.
    pub async fn add_key(&self, secret: &Secret, opts: &KeyOptions) -> Result<String> {
        let rec = KeyRecord::wrap(&self.key, secret, &opts.label, opts.kdf, &Utc::now().to_rfc3339())?;
        let id = Id::random().to_hex();
        self.store.put_opts(&format!("keys/{id}"), Bytes::from(rec.to_json()), PutOptions { if_absent: true }).await?;
        Ok(id)
    }

    /// Remove a key record. Removing the last one destroys the repository
    /// (crypto-shredding) and needs `allow_last`.
    pub async fn remove_key(&self, id: &str, allow_last: bool) -> Result<()> {
        let keys = self.store.list("keys/").await?;
        let matches: Vec<_> = keys.iter().filter(|k| k.key.trim_start_matches("keys/").starts_with(id)).collect();
        let target = match matches.as_slice() {
            [one] => one.key.clone(),
            [] => return Err(Error::NotFound(format!("no key with id {id}; `conservator repo key list` shows them"))),
            _ => return Err(Error::Invalid(format!("key id prefix {id} is ambiguous; give more digits"))),
        };
        if keys.len() == 1 && !allow_last {
            return Err(Error::Invalid(
                "refusing to remove the last key: without a key nobody can ever read this repository again. \
                 Pass --shred to crypto-shred the repository on purpose"
                    .into(),
            ));
        }
        self.store.delete(&target).await?;
        Ok(())
    }

    /// Read one blob from a known location, verify and decode it.
    pub async fn read_blob(&self, index: &MasterIndex, id: &Id) -> Result<Vec<u8>> {
        let loc = index.get(id).ok_or_else(|| Error::Damaged(format!("blob {id} is referenced but in no index")))?;
        self.read_blob_at(index, id, loc).await
    }

    /// Read a blob at a location.
    pub async fn read_blob_at(&self, index: &MasterIndex, id: &Id, loc: BlobLoc) -> Result<Vec<u8>> {
        let pack = index.pack_id(loc.pack);
        let sealed = self.store.get_range(&pack_key(&pack), loc.offset as u64, loc.length as u64).await?;
        blob::decode(&self.key, loc.kind, id, loc.raw_len, &sealed)
            .map_err(|e| Error::Damaged(format!("pack {}: {e}", pack.short())))
    }

    /// Load every snapshot, newest last. Unreadable snapshots are errors.
    pub async fn snapshots(&self) -> Result<Vec<(Id, Snapshot)>> {
        let list = self.store.list("snapshots/").await?;
        let mut set = tokio::task::JoinSet::new();
        for o in list {
            let store = self.store.clone();
            let key = self.key.clone();
            set.spawn(async move {
                let id: Id = o.key.trim_start_matches("snapshots/").parse()?;
                let bytes = store.get(&o.key).await?;
                if Id::of_stored(&bytes) != id {
                    return Err(Error::Damaged(format!("snapshot {id} does not match its name")));
                }
                let s = Snapshot::decode(&key, &bytes, &format!("snapshot {}", id.short()))?;
                Ok::<_, Error>((id, s))
            });
        }
        let mut out = Vec::new();
        while let Some(r) = set.join_next().await {
            out.push(r.expect("snapshot task")?);
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(out)
    }

    /// Resolve `latest`, a full id or a unique id prefix.
    pub async fn find_snapshot(&self, spec: &str) -> Result<(Id, Snapshot)> {
        let all = self.snapshots().await?;
        if spec == "latest" {
            return all.into_iter().rev().find(|(_, s)| s.complete).ok_or_else(|| {
                Error::NotFound("the repository has no complete snapshot yet; run `conservator repo backup` first".into())
            });
        }
        let found: Vec<_> = all.into_iter().filter(|(id, _)| id.to_hex().starts_with(spec)).collect();
        match found.len() {
            1 => Ok(found.into_iter().next().expect("one")),
            0 => Err(Error::NotFound(format!("no snapshot {spec}; `conservator repo snapshots` lists them"))),
            _ => Err(Error::Invalid(format!("snapshot prefix {spec} is ambiguous; give more digits"))),
        }
    }

    /// Store a snapshot; returns its id.
    pub async fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        let bytes = snap.encode(&self.key);
        let id = Id::of_stored(&bytes);
        self.store.put(&format!("snapshots/{id}"), Bytes::from(bytes)).await?;
        Ok(id)
    }
}

/// Shared handle.
pub type RepoHandle = Arc<Repository>;
