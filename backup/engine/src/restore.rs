//! Restore a snapshot (or a subpath) to a directory, or a named stream to a writer.
//!
//! Plan, then apply: the tree is walked into a list of entries; files that already
//! exist at the target with the right size are hashed chunk by chunk and only
//! differing chunks are fetched. Needed blobs are grouped by pack and fetched as
//! coalesced ranges, several packs at a time; every blob is decrypted and checked
//! against its id before a byte of it is written. Metadata (mode, owner when root,
//! mtime) is applied last, directories deepest first.

use std::collections::HashMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use conservator_backup_core::blob;
use conservator_backup_core::format::{Node, NodeKind, Snapshot, Tree, decode_content_list, pack_key};
use conservator_backup_core::Id;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::index::MasterIndex;
use crate::repo::Repository;
use crate::{Error, Progress, Result, lock};

/// How long a restore waits for a running prune to finish.
pub const RESTORE_LOCK_WAIT: Duration = Duration::from_secs(300);

/// Largest coalesced read of a pack during restore.
const MAX_RANGE: u64 = 8 << 20;

/// Restore options.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Target directory.
    pub target: PathBuf,
    /// Only this absolute path inside the snapshot.
    pub subpath: Option<String>,
    /// Packs fetched at once.
    pub parallel: usize,
    /// With `subpath`: put its content at `target` itself, not at `target/<subpath>`.
    pub subpath_at_target: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    /// Files restored or verified.
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Bytes of all restored files.
    pub total_bytes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Bytes already correct at the target (not rewritten).
    pub bytes_unchanged: u64,
    /// Files already identical.
    pub files_unchanged: u64,
    /// Files whose content was recorded as changing during the backup.
    pub files_changed_during_backup: u64,
    /// Seconds.
    pub duration_secs: f64,
}

struct FileItem {
    path: PathBuf,
    node: Node,
}

struct Want {
    loc: crate::index::BlobLoc,
    id: Id,
    targets: Vec<(usize, u64)>,
}

/// Walk a snapshot's tree into (dirs, files, symlinks) under `target`.
async fn plan_entries(
    repo: &Repository,
    index: &MasterIndex,
    snap: &Snapshot,
    subpath: Option<&str>,
    subpath_at_target: bool,
    target: &Path,
) -> Result<(Vec<(PathBuf, Node)>, Vec<FileItem>, Vec<(PathBuf, Node)>)> {
    let root_id = snap.tree.ok_or_else(|| Error::NotFound("this snapshot holds only streams; restore them with --stream".into()))?;
    let root = Tree::decode(&repo.read_blob(index, &root_id).await?)?;
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut links = Vec::new();
    let mut stack: Vec<(PathBuf, Node)> = Vec::new();
    // Root nodes are named by absolute path.
    for n in root.nodes {
        let full = PathBuf::from(std::ffi::OsStr::from_bytes(&n.name));
        match subpath {
            None => stack.push((target.join(full.strip_prefix("/").unwrap_or(&full)), n)),
            Some(sp) => {
                let sp = Path::new(sp);
                if let Ok(rest) = sp.strip_prefix(&full) {
                    // descend to the subpath
                    let mut node = n;
                    for comp in rest.components() {
                        let sub = node
                            .subtree
                            .ok_or_else(|| Error::NotFound(format!("{} is not in this snapshot", sp.display())))?;
                        let t = Tree::decode(&repo.read_blob(index, &sub).await?)?;
                        node = t
                            .get(comp.as_os_str().as_bytes())
                            .cloned()
                            .ok_or_else(|| Error::NotFound(format!("{} is not in this snapshot", sp.display())))?;
                    }
                    let dest = if subpath_at_target { target.to_path_buf() } else { target.join(sp.strip_prefix("/").unwrap_or(sp)) };
                    stack.push((dest, node));
                }
            }
        }
    }
    if stack.is_empty() {
        if let Some(sp) = subpath {
            return Err(Error::NotFound(format!("{sp} is not in this snapshot (paths: {})", snap.paths.join(", "))));
        }
    }
    while let Some((path, node)) = stack.pop() {
        match node.kind {
            NodeKind::Dir => {
                if let Some(sub) = node.subtree {
                    let t = Tree::decode(&repo.read_blob(index, &sub).await?)?;
                    for child in t.nodes {
                        stack.push((path.join(std::ffi::OsStr::from_bytes(&child.name)), child));
                    }
                }
                dirs.push((path, node));
            }
            NodeKind::File => files.push(FileItem { path, node }),
            NodeKind::Symlink => links.push((path, node)),
        }
    }
    Ok((dirs, files, links))
}

/// Restore a snapshot to a directory.
pub async fn restore(
    repo: Arc<Repository>,
    snap: &Snapshot,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<RestoreSummary> {
    // A shared lock: a prune (exclusive) waits for this restore, and this restore waits up to
    // RESTORE_LOCK_WAIT for a running prune rather than failing at once.
    let guard = lock::acquire(&repo.store, false, "restore", RESTORE_LOCK_WAIT).await?;
    let r = restore_locked(repo, snap, opts, progress, cancel).await;
    let _ = guard.release().await;
    r
}

async fn restore_locked(
    repo: Arc<Repository>,
    snap: &Snapshot,
    opts: &RestoreOptions,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<RestoreSummary> {
    let started = Instant::now();
    let index = Arc::new(MasterIndex::load(&repo, false).await?);
    let target = opts.target.clone();
    std::fs::create_dir_all(&target).map_err(|e| Error::io("create", &target, e))?;
    let (mut dirs, files, links) = plan_entries(&repo, &index, snap, opts.subpath.as_deref(), opts.subpath_at_target, &target).await?;
    let mut summary = RestoreSummary { dirs: dirs.len() as u64, symlinks: links.len() as u64, ..Default::default() };
    for (d, _) in &dirs {
        std::fs::create_dir_all(d).map_err(|e| Error::io("create directory", d, e))?;
    }
    // A file or symlink restored by its full path (a backed-up path that is a file, such as
    // `/var/www/ca/setup.php`) needs the directories above it, which the snapshot does not hold.
    let mut parents = std::collections::HashSet::new();
    for p in files.iter().map(|f| &f.path).chain(links.iter().map(|(p, _)| p)) {
        if let Some(parent) = p.parent() {
            if parents.insert(parent.to_path_buf()) && !parent.is_dir() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
            }
        }
    }
    // Decide what to write, hashing existing files in a blocking task.
    let key = repo.key.clone();
    let idx2 = index.clone();
    let prog2 = progress.clone();
    let (files, wants, unchanged_bytes, unchanged_files) = tokio::task::spawn_blocking(move || {
        let mut wants: HashMap<Id, Want> = HashMap::new();
        let mut unchanged_bytes = 0u64;
        let mut unchanged_files = 0u64;
        for (fi, f) in files.iter().enumerate() {
            prog2.add_total(f.node.size);
            prog2.items_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let existing = std::fs::symlink_metadata(&f.path).ok();
            let same_size = existing.as_ref().is_some_and(|m| m.is_file() && m.len() == f.node.size);
            if existing.as_ref().is_some_and(|m| !m.is_file()) {
                let _ = std::fs::remove_dir_all(&f.path).or_else(|_| std::fs::remove_file(&f.path));
            }
            let handle = if same_size { std::fs::File::open(&f.path).ok() } else { None };
            let mut off = 0u64;
            let mut all_same = true;
            for id in &f.node.content {
                let loc = idx2.get(id).ok_or_else(|| {
                    Error::Damaged(format!("{}: blob {} is in no index", f.path.display(), id.short()))
                })?;
                let len = loc.raw_len as u64;
                let same = handle.as_ref().is_some_and(|h| {
                    let mut buf = vec![0u8; len as usize];
                    h.read_exact_at(&mut buf, off).is_ok() && key.blob_id(&buf) == *id
                });
                if same {
                    unchanged_bytes += len;
                    prog2.add_done(len);
                } else {
                    all_same = false;
                    wants.entry(*id).or_insert(Want { loc, id: *id, targets: Vec::new() }).targets.push((fi, off));
                }
                off += len;
            }
            if off != f.node.size {
                return Err(Error::Damaged(format!(
                    "{}: its chunks add up to {off} bytes, the tree says {}",
                    f.path.display(),
                    f.node.size
                )));
            }
            if all_same && same_size {
                unchanged_files += 1;
                prog2.item();
            } else {
                // create or resize; existing correct chunks stay
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(!same_size)
                    .open(&f.path)
                    .map_err(|e| Error::io("create", &f.path, e))?;
                file.set_len(f.node.size).map_err(|e| Error::io("resize", &f.path, e))?;
            }
        }
        Ok::<_, Error>((files, wants, unchanged_bytes, unchanged_files))
    })
    .await
    .expect("restore planning task")?;
    summary.files = files.len() as u64;
    summary.bytes_unchanged = unchanged_bytes;
    summary.files_unchanged = unchanged_files;
    summary.total_bytes = files.iter().map(|f| f.node.size).sum();
    summary.files_changed_during_backup = files.iter().filter(|f| f.node.changed_during_backup).count() as u64;

    // Group by pack.
    let mut by_pack: HashMap<u32, Vec<Want>> = HashMap::new();
    for w in wants.into_values() {
        by_pack.entry(w.loc.pack).or_default().push(w);
    }
    let files = Arc::new(files);
    let parallel = opts.parallel.max(1);
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut set = tokio::task::JoinSet::new();
    let mut written = 0u64;
    for (pack, mut list) in by_pack {
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        list.sort_by_key(|w| w.loc.offset);
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let (repo, index, files, progress) = (repo.clone(), index.clone(), files.clone(), progress.clone());
        set.spawn(async move {
            let _permit = permit;
            let pack_id = index.pack_id(pack);
            let mut n = 0u64;
            // coalesce into ranges with gaps under 1 MiB, at most MAX_RANGE each (a blob
            // larger than that is read alone): memory stays at `parallel` ranges
            let mut i = 0;
            while i < list.len() {
                let start = list[i].loc.offset as u64;
                let mut end = start + list[i].loc.length as u64;
                let mut j = i + 1;
                while j < list.len() {
                    let o = list[j].loc.offset as u64;
                    if o > end + (1 << 20) || o + list[j].loc.length as u64 - start > MAX_RANGE {
                        break;
                    }
                    end = end.max(o + list[j].loc.length as u64);
                    j += 1;
                }
                let bytes = repo.store.get_range(&pack_key(&pack_id), start, end - start).await?;
                let chunk: Vec<(Id, crate::index::BlobLoc, Vec<(usize, u64)>)> =
                    list[i..j].iter().map(|w| (w.id, w.loc, w.targets.clone())).collect();
                let (key, files, progress) = (repo.key.clone(), files.clone(), progress.clone());
                n += tokio::task::spawn_blocking(move || {
                    let mut n = 0u64;
                    for (id, loc, targets) in chunk {
                        let s = (loc.offset as u64 - start) as usize;
                        let data = blob::decode(&key, loc.kind, &id, loc.raw_len, &bytes[s..s + loc.length as usize])
                            .map_err(|e| Error::Damaged(format!("pack {}: {e}", pack_id.short())))?;
                        for (fi, off) in targets {
                            let path = &files[fi].path;
                            let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::io("open", path, e))?;
                            f.write_all_at(&data, off).map_err(|e| Error::io("write", path, e))?;
                            n += data.len() as u64;
                            progress.add_done(data.len() as u64);
                        }
                    }
                    Ok::<_, Error>(n)
                })
                .await
                .expect("restore write task")?;
                i = j;
            }
            Ok::<_, Error>(n)
        });
        while set.len() > parallel * 2 {
            written += set.join_next().await.expect("nonempty").expect("restore task")?;
        }
    }
    while let Some(r) = set.join_next().await {
        written += r.expect("restore task")?;
    }
    summary.bytes_written = written;

    // Symlinks, then metadata: files, links, directories deepest first.
    let is_root = unsafe_free_geteuid() == 0;
    for (path, node) in &links {
        let target = std::ffi::OsStr::from_bytes(&node.target);
        if let Ok(cur) = std::fs::read_link(path) {
            if cur.as_os_str() == target {
                continue;
            }
        }
        if std::fs::symlink_metadata(path).is_ok() {
            let _ = std::fs::remove_dir_all(path).or_else(|_| std::fs::remove_file(path));
        }
        std::os::unix::fs::symlink(target, path).map_err(|e| Error::io("create symlink", path, e))?;
    }
    for f in files.iter() {
        apply_meta(&f.path, &f.node, is_root)?;
        progress.item();
    }
    for (path, node) in &links {
        if is_root {
            let _ = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid));
        }
        let t = filetime::FileTime::from_unix_time(node.mtime_ns.div_euclid(1_000_000_000), node.mtime_ns.rem_euclid(1_000_000_000) as u32);
        let _ = filetime::set_symlink_file_times(path, t, t);
    }
    dirs.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (path, node) in &dirs {
        apply_meta(path, node, is_root)?;
    }
    summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn unsafe_free_geteuid() -> u32 {
    // The owner of /proc/self is the effective uid; no unsafe needed.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(u32::MAX)
}

fn apply_meta(path: &Path, node: &Node, is_root: bool) -> Result<()> {
    if is_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(|e| Error::io("chown", path, e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode)).map_err(|e| Error::io("chmod", path, e))?;
    let t = filetime::FileTime::from_unix_time(node.mtime_ns.div_euclid(1_000_000_000), node.mtime_ns.rem_euclid(1_000_000_000) as u32);
    filetime::set_file_mtime(path, t).map_err(|e| Error::io("set mtime of", path, e))?;
    Ok(())
}

/// Write a named stream to `out`, in order, verifying every blob.
pub async fn restore_stream(
    repo: Arc<Repository>,
    snap: &Snapshot,
    name: &str,
    out: &mut (dyn std::io::Write + Send),
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<u64> {
    let guard = lock::acquire(&repo.store, false, "restore", RESTORE_LOCK_WAIT).await?;
    let r = restore_stream_locked(repo, snap, name, out, progress, cancel).await;
    let _ = guard.release().await;
    r
}

async fn restore_stream_locked(
    repo: Arc<Repository>,
    snap: &Snapshot,
    name: &str,
    out: &mut (dyn std::io::Write + Send),
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<u64> {
    let s = snap.streams.iter().find(|s| s.name == name).ok_or_else(|| {
        let names: Vec<_> = snap.streams.iter().map(|s| s.name.as_str()).collect();
        Error::NotFound(format!("no stream {name:?} in this snapshot (it has: {})", names.join(", ")))
    })?;
    if !s.complete {
        return Err(Error::Invalid(format!(
            "stream {name} is incomplete ({} exited with {:?}): it is not a usable restore point. {}",
            s.command.first().map(String::as_str).unwrap_or("the command"),
            s.exit_code,
            s.stderr_tail.lines().last().unwrap_or("")
        )));
    }
    let index = Arc::new(MasterIndex::load(&repo, false).await?);
    let ids = decode_content_list(&repo.read_blob(&index, &s.content).await?)?;
    progress.add_total(s.size);
    let mut total = 0u64;
    // read ahead up to 8 blobs
    let mut queue = std::collections::VecDeque::new();
    let mut next = 0;
    loop {
        while queue.len() < 8 && next < ids.len() {
            let (repo, index, id) = (repo.clone(), index.clone(), ids[next]);
            queue.push_back(tokio::spawn(async move { repo.read_blob(&index, &id).await }));
            next += 1;
        }
        let Some(h) = queue.pop_front() else { break };
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        let data = h.await.expect("stream read task")?;
        out.write_all(&data).map_err(|e| Error::io("write", "standard output", e))?;
        total += data.len() as u64;
        progress.add_done(data.len() as u64);
    }
    out.flush().map_err(|e| Error::io("write", "standard output", e))?;
    if total != s.size {
        return Err(Error::Damaged(format!("stream {name}: restored {total} bytes, the snapshot says {}", s.size)));
    }
    Ok(total)
}

