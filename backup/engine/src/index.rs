//! The in-memory master index: every blob's pack and position.

use std::collections::HashMap;

use conservator_backup_core::Id;
use conservator_backup_core::blob::BlobKind;
use conservator_backup_core::format::{IndexFile, IndexPack, PackEntry};
use conservator_store::Bytes;

use crate::repo::Repository;
use crate::{Error, Result};

/// Where a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLoc {
    /// Position of its pack in [`MasterIndex::packs`].
    pub pack: u32,
    /// Kind.
    pub kind: BlobKind,
    /// Offset in the pack.
    pub offset: u32,
    /// Sealed length.
    pub length: u32,
    /// Content length.
    pub raw_len: u32,
}

/// A pack as indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackInfo {
    /// Id.
    pub id: Id,
    /// Size.
    pub size: u64,
}

/// All index files merged. A blob stored twice (two concurrent backups, or an
/// interrupted prune) keeps its first location; both are valid.
#[derive(Debug, Default)]
pub struct MasterIndex {
    blobs: HashMap<Id, BlobLoc>,
    packs: Vec<PackInfo>,
    pack_pos: HashMap<Id, u32>,
    /// Every blob of every pack (only kept when asked: prune and check need duplicates).
    pub entries: Vec<(u32, PackEntry)>,
    /// Ids of the index files loaded.
    pub files: Vec<String>,
}

impl MasterIndex {
    /// Load every `index/` object.
    pub async fn load(repo: &Repository, keep_entries: bool) -> Result<MasterIndex> {
        let list = repo.store.list("index/").await?;
        let mut set = tokio::task::JoinSet::new();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
        for o in list {
            let store = repo.store.clone();
            let key = repo.key.clone();
            let sem = sem.clone();
            set.spawn(async move {
                let _permit = sem.acquire().await.expect("semaphore");
                let bytes = store.get(&o.key).await?;
                let name = o.key.trim_start_matches("index/").to_string();
                if Id::of_stored(&bytes).to_hex() != name {
                    return Err(Error::Damaged(format!("index file {name} does not match its name")));
                }
                let f = tokio::task::spawn_blocking(move || IndexFile::decode(&key, &bytes, &format!("index {name}")))
                    .await
                    .expect("index decode task")
                    .map_err(|e| Error::Damaged(e.to_string()))?;
                Ok::<_, Error>((o.key, f))
            });
        }
        let mut idx = MasterIndex::default();
        while let Some(r) = set.join_next().await {
            let (key, f) = r.expect("index task")?;
            idx.files.push(key);
            for p in f.packs {
                idx.add_pack(&p, keep_entries);
            }
        }
        Ok(idx)
    }

    /// Add a pack's blobs.
    ///
    /// A pack named by two index files (after a crash between prune's writing the new index
    /// and deleting the old ones) is counted once: its entries come from its one header.
    pub fn add_pack(&mut self, p: &IndexPack, keep_entries: bool) {
        if self.pack_pos.contains_key(&p.id) {
            return;
        }
        let pos = self.packs.len() as u32;
        self.packs.push(PackInfo { id: p.id, size: p.size });
        self.pack_pos.insert(p.id, pos);
        for e in &p.blobs {
            self.blobs.entry(e.id).or_insert(BlobLoc {
                pack: pos,
                kind: e.kind,
                offset: e.offset,
                length: e.length,
                raw_len: e.raw_len,
            });
            if keep_entries {
                self.entries.push((pos, *e));
            }
        }
    }

    /// Location of a blob.
    pub fn get(&self, id: &Id) -> Option<BlobLoc> {
        self.blobs.get(id).copied()
    }
    /// Whether a blob is indexed.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }
    /// Pack id at a position.
    pub fn pack_id(&self, pos: u32) -> Id {
        self.packs[pos as usize].id
    }
    /// All packs.
    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }
    /// Position of a pack.
    pub fn pack_pos(&self, id: &Id) -> Option<u32> {
        self.pack_pos.get(id).copied()
    }
    /// Number of distinct blobs.
    pub fn blob_count(&self) -> usize {
        self.blobs.len()
    }
    /// Iterate blobs.
    pub fn blobs(&self) -> impl Iterator<Item = (&Id, &BlobLoc)> {
        self.blobs.iter()
    }
}

/// Write an index file for `packs`; returns its key.
pub async fn write_index(repo: &Repository, packs: Vec<IndexPack>) -> Result<String> {
    let file = IndexFile { version: conservator_backup_core::FORMAT_VERSION, packs };
    let key = repo.key.clone();
    let bytes = tokio::task::spawn_blocking(move || file.encode(&key)).await.expect("index encode task");
    let name = format!("index/{}", Id::of_stored(&bytes));
    repo.store.put(&name, Bytes::from(bytes)).await?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use conservator_backup_core::blob::BlobKind;
    use conservator_backup_core::format::PackEntry;

    use super::*;

    /// A crash between prune's new index and the deletion of the old ones leaves a pack in
    /// two index files: it counts once, so `check` compares its header with one entry list.
    #[test]
    fn a_pack_in_two_index_files_counts_once() {
        let e = |i: u8, off: u32| PackEntry { id: Id([i; 32]), kind: BlobKind::Data, offset: off, length: 100, raw_len: 90 };
        let p = IndexPack { id: Id([9; 32]), size: 300, blobs: vec![e(1, 0), e(2, 100)] };
        let mut m = MasterIndex::default();
        m.add_pack(&p, true);
        m.add_pack(&p, true);
        assert_eq!(m.packs().len(), 1);
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.blob_count(), 2);
        assert_eq!(m.get(&Id([2; 32])).map(|l| l.offset), Some(100));
    }
}
