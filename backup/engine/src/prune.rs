//! `forget` (retention) and `prune` (reclaim space), each a plan first.
//!
//! Prune holds the exclusive lock and applies its plan in a crash-safe order:
//! 1. repack the still-used blobs of partly used packs into new packs;
//! 2. write a new index covering every kept and new pack;
//! 3. delete the old index files;
//! 4. delete the dropped packs (unused, repacked, and unindexed leftovers).
//! A crash before 2 leaves unindexed new packs (a warning for check, removed by
//! the next prune); between 2 and 3, two indexes that both point at existing
//! packs; after 3, only unindexed packs. Every state restores every snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use conservator_backup_core::Id;
use conservator_backup_core::blob;
use conservator_backup_core::format::{IndexPack, PackBuilder, PackEntry, Snapshot, pack_key};
use conservator_backup_core::retention::{ForgetPlan, RetentionPolicy, SnapshotInfo, plan};
use conservator_store::Bytes;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::index::{MasterIndex, write_index};
use crate::repo::Repository;
use crate::walk::used_blobs;
use crate::{Error, Progress, Result, lock};

/// The grouping key of a snapshot for retention: its tags and paths.
pub fn group_key(s: &Snapshot) -> String {
    let mut t = s.tags.clone();
    t.sort();
    let mut p = s.paths.clone();
    p.sort();
    let streams: Vec<_> = s.streams.iter().map(|s| s.name.as_str()).collect();
    format!("tags [{}] paths [{}] streams [{}]", t.join(","), p.join(","), streams.join(","))
}

/// Plan `forget` and, unless `dry_run`, remove the snapshots it drops.
pub async fn forget(repo: &Repository, policy: &RetentionPolicy, tags: &[String], dry_run: bool) -> Result<ForgetPlan> {
    let guard = lock::acquire(&repo.store, false, "forget", Duration::from_secs(30)).await?;
    let r = async {
        let snaps = repo.snapshots().await?;
        let infos: Vec<SnapshotInfo> = snaps
            .iter()
            .filter(|(_, s)| tags.iter().all(|t| s.tags.contains(t)))
            .map(|(id, s)| SnapshotInfo { id: *id, time: s.time, group: group_key(s), complete: s.complete })
            .collect();
        let p = plan(policy, &infos)?;
        if !dry_run {
            for id in p.remove() {
                repo.store.delete(&format!("snapshots/{id}")).await?;
            }
        }
        Ok(p)
    }
    .await;
    let _ = guard.release().await;
    r
}

/// What prune will do.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrunePlan {
    /// Snapshots considered.
    pub snapshots: usize,
    /// Blobs used by them.
    pub blobs_used: usize,
    /// Packs kept as they are.
    pub packs_keep: usize,
    /// Packs deleted (nothing used).
    pub packs_delete: Vec<Id>,
    /// Packs repacked (partly used).
    pub packs_repack: Vec<Id>,
    /// Stored packs in no index (left by interrupted runs).
    pub packs_unindexed: Vec<String>,
    /// Bytes freed by deleting.
    pub bytes_delete: u64,
    /// Bytes read for repacking.
    pub bytes_repack: u64,
    /// Of those, bytes still used (rewritten).
    pub bytes_repack_used: u64,
    /// Bytes of unindexed packs.
    pub bytes_unindexed: u64,
    /// Bytes stored before.
    pub bytes_before: u64,
    /// Bytes stored after (estimate).
    pub bytes_after: u64,
    /// Leftovers of interrupted writes removed (temp files, unfinished uploads).
    pub incomplete_removed: usize,
}

/// By default, repack a pack when at least this share (%) of it is unused.
pub const REPACK_UNUSED_PERCENT: u64 = 10;

/// Plan and (unless `dry_run`) apply a prune. A pack with unused data is repacked when at
/// least `repack_unused_percent` of it is unused (0: whenever any of it is).
pub async fn prune(
    repo: Arc<Repository>,
    dry_run: bool,
    repack_unused_percent: u64,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<PrunePlan> {
    let guard = lock::acquire(&repo.store, true, "prune", Duration::from_secs(30)).await?;
    let r = prune_locked(repo, dry_run, repack_unused_percent, progress, cancel).await;
    let _ = guard.release().await;
    r
}

async fn prune_locked(repo: Arc<Repository>, dry_run: bool, repack_unused_percent: u64, progress: Arc<Progress>, cancel: &CancellationToken) -> Result<PrunePlan> {
    let index = MasterIndex::load(&repo, true).await?;
    let snaps = repo.snapshots().await?;
    let used = used_blobs(&repo, &index, &snaps).await?;
    let mut p = PrunePlan { snapshots: snaps.len(), blobs_used: used.len(), ..Default::default() };
    for id in &used {
        if !index.contains(id) {
            return Err(Error::Damaged(format!("blob {} is used but in no index; refusing to prune", id.short())));
        }
    }
    let stored: HashMap<String, u64> = repo.store.list("data/").await?.into_iter().map(|o| (o.key, o.size)).collect();
    // per pack: entries that are used *at this location*
    let mut keep_entries: HashMap<u32, Vec<PackEntry>> = HashMap::new();
    for (pos, e) in &index.entries {
        if used.contains(&e.id) && index.get(&e.id).map(|l| l.pack) == Some(*pos) {
            keep_entries.entry(*pos).or_default().push(*e);
        }
    }
    let mut keep_packs: Vec<IndexPack> = Vec::new();
    let mut repack: Vec<(Id, Vec<PackEntry>)> = Vec::new();
    let mut indexed = HashSet::new();
    for (pos, info) in index.packs().iter().enumerate() {
        let key = pack_key(&info.id);
        indexed.insert(key.clone());
        p.bytes_before += info.size;
        let used_here = keep_entries.remove(&(pos as u32)).unwrap_or_default();
        let used_bytes: u64 = used_here.iter().map(|e| e.length as u64).sum();
        if used_here.is_empty() {
            p.packs_delete.push(info.id);
            p.bytes_delete += info.size;
            continue;
        }
        if !stored.contains_key(&key) {
            return Err(Error::Damaged(format!("{key} holds used data but is missing from the store; refusing to prune")));
        }
        let unused = info.size.saturating_sub(used_bytes);
        if unused > 0 && unused * 100 >= info.size * repack_unused_percent {
            p.packs_repack.push(info.id);
            p.bytes_repack += info.size;
            p.bytes_repack_used += used_bytes;
            repack.push((info.id, used_here));
        } else {
            p.packs_keep += 1;
            let all: Vec<PackEntry> = index.entries.iter().filter(|(q, _)| *q == pos as u32).map(|(_, e)| *e).collect();
            keep_packs.push(IndexPack { id: info.id, size: info.size, blobs: all });
        }
    }
    for (k, size) in &stored {
        if !indexed.contains(k) {
            p.packs_unindexed.push(k.clone());
            p.bytes_unindexed += size;
        }
    }
    p.bytes_after = p.bytes_before - p.bytes_delete - p.bytes_repack + p.bytes_repack_used;
    if dry_run {
        return Ok(p);
    }

    // 1. repack
    let pack_size = repo.config.pack_size as usize;
    let mut builder = PackBuilder::with_capacity(pack_size);
    progress.items_total.store(repack.len() as u64, std::sync::atomic::Ordering::Relaxed);
    for (pid, entries) in &repack {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let bytes = repo.store.get(&pack_key(pid)).await?;
        for e in entries {
            let s = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            blob::decode(&repo.key, e.kind, &e.id, e.raw_len, s)
                .map_err(|err| Error::Damaged(format!("pack {} blob {}: {err}; refusing to repack damaged data", pid.short(), e.id.short())))?;
            builder.add_sealed(e.id, e.kind, e.raw_len, s);
            if builder.len() >= pack_size {
                let full = std::mem::replace(&mut builder, PackBuilder::with_capacity(pack_size));
                keep_packs.push(put_pack(&repo, full).await?);
            }
        }
        progress.item();
    }
    if !builder.is_empty() {
        keep_packs.push(put_pack(&repo, builder).await?);
    }
    // 2. new index
    let old_files = index.files.clone();
    for chunk in keep_packs.chunks(10_000) {
        write_index(&repo, chunk.to_vec()).await?;
    }
    // 3. old index files
    for f in old_files {
        repo.store.delete(&f).await?;
    }
    // 4. packs
    for id in p.packs_delete.iter().chain(&p.packs_repack) {
        repo.store.delete(&pack_key(id)).await?;
    }
    for k in &p.packs_unindexed {
        repo.store.delete(k).await?;
    }
    // 5. what interrupted writes left (temp files, unfinished multipart uploads)
    p.incomplete_removed = repo.store.cleanup_incomplete(INCOMPLETE_AGE).await?;
    Ok(p)
}

/// Leftovers of interrupted writes older than this are removed by prune (the exclusive lock
/// already keeps writers out; the margin covers a writer whose lock went stale while it ran).
pub const INCOMPLETE_AGE: Duration = Duration::from_secs(15 * 60);

async fn put_pack(repo: &Repository, b: PackBuilder) -> Result<IndexPack> {
    let f = b.finish(&repo.key);
    let size = f.bytes.len() as u64;
    repo.store.put(&pack_key(&f.id), Bytes::from(f.bytes)).await?;
    Ok(IndexPack { id: f.id, size, blobs: f.entries })
}
