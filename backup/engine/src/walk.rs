//! Walking snapshot trees (shared by check and prune).

use std::collections::{HashMap, HashSet};

use conservator_backup_core::Id;
use conservator_backup_core::format::{NodeKind, Snapshot, Tree, decode_content_list};

use crate::index::MasterIndex;
use crate::repo::Repository;
use crate::{Error, Result};

/// A blob reference found while walking: which snapshot path uses it.
#[derive(Debug, Clone)]
pub struct Use {
    /// Path in the snapshot (or `stream:<name>`).
    pub path: String,
}

/// Visit every blob a snapshot references, with the path that uses it.
/// Trees are decoded once per call (`seen` caches them across snapshots).
pub async fn walk_snapshot(
    repo: &Repository,
    index: &MasterIndex,
    snap: &Snapshot,
    cache: &mut HashMap<Id, std::sync::Arc<Tree>>,
    visit: &mut (dyn FnMut(&Id, &str) + Send),
    unreadable: &mut Vec<(String, String)>,
    mut seen: Option<&mut HashSet<Id>>,
) -> Result<()> {
    let mut stack: Vec<(Id, String)> = Vec::new();
    if let Some(t) = snap.tree {
        stack.push((t, String::new()));
    }
    for s in &snap.streams {
        let where_ = format!("stream:{}", s.name);
        visit(&s.content, &where_);
        match repo.read_blob(index, &s.content).await.and_then(|b| Ok(decode_content_list(&b)?)) {
            Ok(ids) => {
                for id in ids {
                    visit(&id, &where_);
                }
            }
            Err(e) => unreadable.push((where_, e.to_string())),
        }
    }
    while let Some((id, path)) = stack.pop() {
        if let Some(seen) = seen.as_deref_mut()
            && !seen.insert(id)
        {
            continue;
        }
        visit(&id, if path.is_empty() { "/" } else { &path });
        let tree = match cache.get(&id) {
            Some(t) => t.clone(),
            None => match repo.read_blob(index, &id).await.and_then(|b| Ok(Tree::decode(&b)?)) {
                Ok(t) => {
                    let t = std::sync::Arc::new(t);
                    if cache.len() < 200_000 {
                        cache.insert(id, t.clone());
                    }
                    t
                }
                Err(e) => {
                    unreadable.push((if path.is_empty() { "/".into() } else { path.clone() }, e.to_string()));
                    continue;
                }
            },
        };
        for n in &tree.nodes {
            let name = String::from_utf8_lossy(&n.name);
            let p = if path.is_empty() { name.into_owned() } else { format!("{path}/{name}") };
            match n.kind {
                NodeKind::Dir => {
                    if let Some(s) = n.subtree {
                        stack.push((s, p));
                    }
                }
                NodeKind::File => {
                    for c in &n.content {
                        visit(c, &p);
                    }
                }
                NodeKind::Symlink => {}
            }
        }
    }
    Ok(())
}

/// Every blob used by any of the snapshots. Fails if any tree is unreadable:
/// nothing may be deleted on an incomplete view.
pub async fn used_blobs(repo: &Repository, index: &MasterIndex, snaps: &[(Id, Snapshot)]) -> Result<HashSet<Id>> {
    let mut used = HashSet::new();
    let mut cache = HashMap::new();
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    for (_, s) in snaps {
        let mut v = |id: &Id, _: &str| {
            used.insert(*id);
        };
        walk_snapshot(repo, index, s, &mut cache, &mut v, &mut bad, Some(&mut seen)).await?;
    }
    if let Some((path, e)) = bad.first() {
        return Err(Error::Damaged(format!("cannot read the tree at {path}: {e}")));
    }
    Ok(used)
}
