//! `check`: the repository's structure, and with `read_data` every byte of every pack.
//!
//! Problems are errors (data a snapshot needs is missing or damaged) or warnings
//! (unreferenced packs left by an interrupted backup or prune: harmless, `prune`
//! removes them). Every damaged pack is reported with the snapshots and files it
//! affects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use conservator_backup_core::Id;
use conservator_backup_core::blob;
use conservator_backup_core::format::{pack_key, read_pack_header};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::index::MasterIndex;
use crate::repo::Repository;
use crate::walk::walk_snapshot;
use crate::{Error, Progress, Result, lock};

/// A problem found.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The object (e.g. `data/ab/ab12…`, `snapshots/…`).
    pub object: String,
    /// What is wrong.
    pub detail: String,
    /// Affected snapshot files: `snapshot <id8> <time>: <path>`.
    pub affects: Vec<String>,
    /// How many affected entries were not listed.
    pub affects_more: usize,
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Errors: data needed by snapshots is missing or damaged.
    pub errors: Vec<Problem>,
    /// Warnings: nothing is lost.
    pub warnings: Vec<String>,
    /// Snapshots checked.
    pub snapshots: usize,
    /// Packs in the index.
    pub packs: usize,
    /// Distinct blobs.
    pub blobs: usize,
    /// Packs read in full (read_data).
    pub packs_read: usize,
    /// Bytes read.
    pub bytes_read: u64,
}

impl CheckReport {
    /// No errors.
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

const MAX_AFFECTS: usize = 50;

/// Run a check.
pub async fn check(repo: Arc<Repository>, read_data: bool, progress: Arc<Progress>, cancel: &CancellationToken) -> Result<CheckReport> {
    let guard = lock::acquire(&repo.store, false, "check", Duration::from_secs(0)).await?;
    let r = check_locked(repo, read_data, progress, cancel).await;
    let _ = guard.release().await;
    r
}

async fn check_locked(repo: Arc<Repository>, read_data: bool, progress: Arc<Progress>, cancel: &CancellationToken) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let index = Arc::new(MasterIndex::load(&repo, true).await?);
    report.packs = index.packs().len();
    report.blobs = index.blob_count();
    // damaged blob -> (pack object, reason)
    let mut damaged: HashMap<Id, (String, String)> = HashMap::new();
    let mut pack_problem: BTreeMap<String, String> = BTreeMap::new();

    let stored: HashMap<String, u64> = repo.store.list("data/").await?.into_iter().map(|o| (o.key, o.size)).collect();
    let indexed: HashSet<String> = index.packs().iter().map(|p| pack_key(&p.id)).collect();
    let mut by_pack: HashMap<u32, Vec<conservator_backup_core::format::PackEntry>> = HashMap::new();
    for (pos, e) in &index.entries {
        by_pack.entry(*pos).or_default().push(*e);
    }
    for (pos, p) in index.packs().iter().enumerate() {
        let key = pack_key(&p.id);
        let entries = by_pack.get(&(pos as u32)).cloned().unwrap_or_default();
        let why = match stored.get(&key) {
            None => Some("pack is missing from the store".to_string()),
            Some(&s) if s != p.size => Some(format!("pack is {s} bytes, the index says {} (truncated or overwritten)", p.size)),
            _ => None,
        };
        if let Some(why) = why {
            for e in &entries {
                damaged.insert(e.id, (key.clone(), why.clone()));
            }
            pack_problem.insert(key, why);
        }
    }
    for (k, size) in &stored {
        if !indexed.contains(k) {
            report.warnings.push(format!("{k} ({size} bytes) is in no index: left by an interrupted backup or prune; `conservator repo prune` removes it"));
        }
    }

    if read_data {
        progress.items_total.store(index.packs().len() as u64, std::sync::atomic::Ordering::Relaxed);
        progress.add_total(index.packs().iter().map(|p| p.size).sum());
        let mut set = tokio::task::JoinSet::new();
        let packs: Vec<_> = index.packs().iter().enumerate().filter(|(_, p)| !pack_problem.contains_key(&pack_key(&p.id))).map(|(i, p)| (i, *p)).collect();
        let mut it = packs.into_iter();
        loop {
            while set.len() < 2 {
                let Some((pos, p)) = it.next() else { break };
                let entries = by_pack.get(&(pos as u32)).cloned().unwrap_or_default();
                let (repo, progress) = (repo.clone(), progress.clone());
                set.spawn(async move {
                    let key = pack_key(&p.id);
                    let bytes = match repo.store.get(&key).await {
                        Ok(b) => b,
                        Err(e) => return (key, p.size, Some(e.to_string()), entries.iter().map(|e| e.id).collect::<Vec<_>>()),
                    };
                    progress.add_done(bytes.len() as u64);
                    progress.item();
                    let k2 = repo.key.clone();
                    let key2 = key.clone();
                    let (why, bad) = tokio::task::spawn_blocking(move || verify_pack(&k2, &key2, &p.id, &bytes, &entries))
                        .await
                        .expect("verify task");
                    (key, p.size, why, bad)
                });
            }
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let Some(r) = set.join_next().await else { break };
            let (key, size, why, bad) = r.expect("check task");
            report.packs_read += 1;
            report.bytes_read += size;
            if let Some(why) = why {
                for id in bad {
                    damaged.insert(id, (key.clone(), why.clone()));
                }
                pack_problem.insert(key, why);
            }
        }
    }

    // Walk every snapshot: every referenced blob must be indexed and undamaged.
    let snaps = match repo.snapshots().await {
        Ok(s) => s,
        Err(e) => {
            report.errors.push(Problem { object: "snapshots/".into(), detail: e.to_string(), affects: vec![], affects_more: 0 });
            Vec::new()
        }
    };
    report.snapshots = snaps.len();
    let mut affects: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut cache = HashMap::new();
    for (sid, s) in &snaps {
        let label = format!("snapshot {} {}", sid.short(), s.time.format("%Y-%m-%d %H:%M:%S"));
        let mut bad = Vec::new();
        let mut seen_paths: HashSet<(String, String)> = HashSet::new();
        let mut v = |id: &Id, path: &str| {
            if let Some((pk, _)) = damaged.get(id) {
                if seen_paths.insert((pk.clone(), path.to_string())) {
                    let e = affects.entry(pk.clone()).or_default();
                    if e.0.len() < MAX_AFFECTS { e.0.push(format!("{label}: {path}")) } else { e.1 += 1 }
                }
            } else if !index.contains(id) {
                missing.entry(format!("{label}: {path}")).or_default().push(id.short());
            }
        };
        walk_snapshot(&repo, &index, s, &mut cache, &mut v, &mut bad, None).await?;
        for (path, e) in bad {
            report.errors.push(Problem {
                object: format!("snapshots/{sid}"),
                detail: format!("tree or content list at {path} is unreadable: {e}"),
                affects: vec![format!("{label}: {path} and everything below it")],
                affects_more: 0,
            });
        }
    }
    for (pk, why) in pack_problem {
        let (list, more) = affects.remove(&pk).unwrap_or_default();
        report.errors.push(Problem { object: pk, detail: why, affects: list, affects_more: more });
    }
    for (path, ids) in missing {
        report.errors.push(Problem {
            object: "index/".into(),
            detail: format!("{} blob(s) referenced but in no index: {}", ids.len(), ids.join(", ")),
            affects: vec![path],
            affects_more: 0,
        });
    }
    Ok(report)
}

/// Verify a whole pack: its name, its header against the index, every blob.
/// Returns the reason and the damaged blob ids.
fn verify_pack(
    key: &conservator_backup_core::crypto::MasterKey,
    name: &str,
    id: &Id,
    bytes: &[u8],
    entries: &[conservator_backup_core::format::PackEntry],
) -> (Option<String>, Vec<Id>) {
    let mut reasons = Vec::new();
    if Id::of_stored(bytes) != *id {
        reasons.push("content does not match its name (hash mismatch)".to_string());
    }
    match read_pack_header(key, bytes, name) {
        Ok(h) => {
            let mut a = h.clone();
            let mut b = entries.to_vec();
            a.sort_by_key(|e| e.offset);
            b.sort_by_key(|e| e.offset);
            if a != b {
                reasons.push("pack header disagrees with the index".into());
            }
        }
        Err(e) => reasons.push(format!("header unreadable: {e}")),
    }
    let mut bad = Vec::new();
    for e in entries {
        let end = e.offset as usize + e.length as usize;
        let ok = end <= bytes.len() && blob::decode(key, e.kind, &e.id, e.raw_len, &bytes[e.offset as usize..end]).is_ok();
        if !ok {
            bad.push(e.id);
        }
    }
    if !bad.is_empty() {
        reasons.push(format!("{} of {} blob(s) fail decryption or their hash", bad.len(), entries.len()));
    }
    if reasons.is_empty() { (None, bad) } else { (Some(reasons.join("; ")), bad) }
}
