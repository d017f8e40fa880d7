//! A repository in a local directory (the embedded default).
//!
//! Atomic puts: the bytes go to `<dir>/.tmp-<random>` beside the final name, are
//! fsynced, then renamed into place (and the directory fsynced), so a crash leaves
//! either the old state or the whole object. Leftover `.tmp-*` files are ignored
//! by `list` and removed by [`LocalStore::clean_temp`].

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::{Error, ObjectMeta, ObjectStore, PutOptions, Result};

/// A store rooted at a local directory.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    name: String,
}

impl LocalStore {
    /// A store at `root` (created on the first put).
    pub fn new(root: impl Into<PathBuf>) -> LocalStore {
        let root = root.into();
        let name = format!("local:{}", root.display());
        LocalStore { root, name }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Remove temporary files left by interrupted puts.
    pub fn clean_temp(&self) -> Result<usize> {
        let mut n = 0;
        for (path, _) in walk(&self.root).map_err(|e| Error::from_io(&self.name, "list", "", e))? {
            if is_temp(&path) && std::fs::remove_file(&path).is_ok() {
                n += 1;
            }
        }
        Ok(n)
    }

    fn put_sync(&self, key: &str, data: &[u8], opts: PutOptions) -> Result<()> {
        let path = self.path(key);
        let err = |e| Error::from_io(&self.name, "put", key, e);
        let dir = path.parent().expect("object keys are never empty");
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
        let result = (|| {
            let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()?;
            drop(f);
            if opts.if_absent {
                // link(2) fails if the target exists: an atomic create-if-absent.
                std::fs::hard_link(&tmp, &path)?;
                std::fs::remove_file(&tmp)?;
            } else {
                std::fs::rename(&tmp, &path)?;
            }
            std::fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result.map_err(err)
    }
}

fn is_temp(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".tmp-"))
}

fn walk(root: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in rd {
            let entry = entry?;
            let ft = entry.file_type()?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else if ft.is_file() {
                out.push((entry.path(), entry.metadata()?.len()));
            }
        }
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("store I/O task panicked")
}

#[async_trait]
impl ObjectStore for LocalStore {
    fn describe(&self) -> String {
        self.name.clone()
    }

    async fn put_opts(&self, key: &str, data: Bytes, opts: PutOptions) -> Result<()> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.put_sync(&key, &data, opts)).await
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key);
        let (name, k) = (self.name.clone(), key.to_owned());
        blocking(move || std::fs::read(&path).map(Bytes::from).map_err(|e| Error::from_io(&name, "get", &k, e)))
            .await
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let path = self.path(key);
        let (name, k) = (self.name.clone(), key.to_owned());
        blocking(move || {
            let f = std::fs::File::open(&path).map_err(|e| Error::from_io(&name, "get", &k, e))?;
            let size = f.metadata().map_err(|e| Error::from_io(&name, "get", &k, e))?.len();
            if offset + len > size {
                return Err(Error::Integrity { store: name, key: k, offset, end: offset + len, size });
            }
            let mut buf = vec![0u8; len as usize];
            f.read_exact_at(&mut buf, offset).map_err(|e| Error::from_io(&name, "get", &k, e))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<Option<u64>> {
        let path = self.path(key);
        let (name, k) = (self.name.clone(), key.to_owned());
        blocking(move || match std::fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::from_io(&name, "head", &k, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let (name, prefix) = (self.name.clone(), prefix.to_owned());
        blocking(move || {
            // Walk only the directory the prefix names (prefixes end at a '/' boundary
            // in practice: "data/", "index/", "snapshots/", "keys/", "locks/").
            let start = match prefix.rfind('/') {
                Some(i) => root.join(&prefix[..i]),
                None => root.clone(),
            };
            if !root.exists() {
                return Err(Error::NotFound { store: name, key: String::new() });
            }
            let files = walk(&start).map_err(|e| Error::from_io(&name, "list", &prefix, e))?;
            let mut out = Vec::new();
            for (path, size) in files {
                if is_temp(&path) {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&root) else { continue };
                let Some(key) = rel.to_str() else { continue };
                if key.starts_with(&prefix) {
                    out.push(ObjectMeta { key: key.to_owned(), size });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        let (name, k) = (self.name.clone(), key.to_owned());
        blocking(move || match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::from_io(&name, "delete", &k, e)),
        })
        .await
    }

    async fn probe(&self) -> Result<()> {
        let key = format!("locks/.probe-{:016x}", rand::random::<u64>());
        self.put(&key, Bytes::from_static(b"probe")).await?;
        self.delete(&key).await
    }

    async fn cleanup_incomplete(&self, older_than: std::time::Duration) -> Result<usize> {
        let (root, name) = (self.root.clone(), self.name.clone());
        blocking(move || {
            let cutoff = std::time::SystemTime::now() - older_than;
            let files = walk(&root).map_err(|e| Error::from_io(&name, "list", "", e))?;
            let mut removed = 0;
            for (path, _) in files.into_iter().filter(|(p, _)| is_temp(p)) {
                let old = std::fs::metadata(&path).and_then(|m| m.modified()).is_ok_and(|t| t <= cutoff);
                if old && std::fs::remove_file(&path).is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }
}
