//! Backup: directory trees and named streams into one snapshot.
//!
//! Threads: one *walker* reads files in order, chunks and hashes them and decides
//! which blobs are new; `workers` threads compress + seal new blobs into their own
//! packs; an async *uploader* puts finished packs (two at a time) and writes an
//! index file every [`INDEX_EVERY`] packs, so an interrupted backup's packs are
//! reused by the next run. The snapshot is written last, after its index.

use std::collections::{BTreeMap, HashSet};
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use conservator_backup_core::blob::{self, BlobKind};
use conservator_backup_core::chunker::{ChunkerParams, chunk_reader, chunk_slice};
use conservator_backup_core::dump::{ENDS_LEN, StreamEnds};
use conservator_backup_core::format::{
    FinishedPack, IndexPack, Node, NodeKind, PackBuilder, Snapshot, StreamRef, Summary, Tree, encode_content_list, pack_key,
};
use conservator_backup_core::{FORMAT_VERSION, Id};
use conservator_store::Bytes;
use tokio_util::sync::CancellationToken;

use crate::index::{MasterIndex, write_index};
use crate::repo::Repository;
use crate::{Error, Progress, Result, lock};

/// Write an index file after this many packs.
pub const INDEX_EVERY: usize = 32;


/// A named stream: a command whose stdout is stored.
#[derive(Clone, Default)]
pub struct StreamSource {
    /// Stream name.
    pub name: String,
    /// Program and arguments (recorded in the snapshot: never put a secret here).
    pub command: Vec<String>,
    /// Extra environment for the command (e.g. `MYSQL_PWD`); never recorded or printed.
    pub env: Vec<(String, String)>,
    /// Decides, from the stream's first and last bytes, whether a stream whose command
    /// exited 0 is whole, and what it says about itself (recorded as the stream's `meta`).
    pub check: Option<StreamCheck>,
}

impl std::fmt::Debug for StreamSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("StreamSource")
            .field("name", &self.name)
            .field("command", &self.command)
            .field("env", &env)
            .field("check", &self.check.is_some())
            .finish()
    }
}

/// A completeness check of a stream: `Ok(meta)` when whole, `Err(reason)` when not.
pub type StreamCheck = Arc<dyn Fn(&StreamEnds) -> std::result::Result<BTreeMap<String, String>, String> + Send + Sync>;

/// What to back up.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Absolute paths.
    pub paths: Vec<PathBuf>,
    /// Streams.
    pub streams: Vec<StreamSource>,
    /// Tags.
    pub tags: Vec<String>,
    /// Host name recorded.
    pub hostname: String,
    /// Parent snapshot; `None` picks the newest with the same paths and tags.
    pub parent: Option<Id>,
    /// Read every file even if unchanged.
    pub force: bool,
    /// How long to wait for a conflicting lock.
    pub lock_wait: Duration,
    /// Free-form facts recorded in the snapshot (tenant, plan, schema revision …).
    pub meta: BTreeMap<String, String>,
}

/// Outcome.
#[derive(Debug, Clone)]
pub struct BackupResult {
    /// New snapshot id.
    pub id: Id,
    /// The snapshot.
    pub snapshot: Snapshot,
}

struct Job {
    kind: BlobKind,
    id: Id,
    data: Vec<u8>,
}

/// Run a backup.
pub async fn backup(
    repo: Arc<Repository>,
    opts: BackupOptions,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<BackupResult> {
    for p in &opts.paths {
        if !p.is_absolute() {
            return Err(Error::Invalid(format!("backup path {} must be absolute", p.display())));
        }
        std::fs::symlink_metadata(p).map_err(|e| Error::io("read", p, e))?;
    }
    if opts.paths.is_empty() && opts.streams.is_empty() {
        return Err(Error::Invalid("nothing to back up: give paths or --stream".into()));
    }
    let guard = lock::acquire(&repo.store, false, "backup", opts.lock_wait).await?;
    let res = run(repo, opts, progress, cancel).await;
    let rel = guard.release().await;
    let r = res?;
    rel?;
    Ok(r)
}

fn group_of(paths: &[String], tags: &[String]) -> (Vec<String>, Vec<String>) {
    let mut p = paths.to_vec();
    p.sort();
    let mut t = tags.to_vec();
    t.sort();
    (p, t)
}

async fn run(repo: Arc<Repository>, opts: BackupOptions, progress: Arc<Progress>, cancel: &CancellationToken) -> Result<BackupResult> {
    let started = Instant::now();
    let time = Utc::now();
    let index = Arc::new(MasterIndex::load(&repo, false).await?);
    let paths: Vec<String> = opts.paths.iter().map(|p| p.to_string_lossy().into_owned()).collect();

    // parent
    let mut parent: Option<(Id, Snapshot)> = None;
    if !opts.force && !opts.paths.is_empty() {
        let snaps = repo.snapshots().await?;
        parent = match opts.parent {
            Some(id) => snaps.into_iter().find(|(i, _)| *i == id),
            None => {
                let want = group_of(&paths, &opts.tags);
                snaps.into_iter().rev().find(|(_, s)| s.tree.is_some() && group_of(&s.paths, &s.tags) == want)
            }
        };
    }
    let parent_root = match &parent {
        Some((_, s)) => match s.tree {
            Some(t) => repo.read_blob(&index, &t).await.ok().and_then(|b| Tree::decode(&b).ok()),
            None => None,
        },
        None => None,
    };

    // size scan for the progress bar
    {
        let (paths, progress) = (opts.paths.clone(), progress.clone());
        std::thread::spawn(move || {
            for p in paths {
                scan_sizes(&p, &progress);
            }
        });
    }

    let workers = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8);
    let (job_tx, job_rx) = crossbeam_channel::bounded::<Job>(workers * 2);
    let (blob_tx, blob_rx) = crossbeam_channel::bounded::<conservator_backup_core::blob::EncodedBlob>(workers * 2);
    let (pack_tx, mut pack_rx) = tokio::sync::mpsc::channel::<FinishedPack>(1);
    let pack_size = repo.config.pack_size as usize;
    // Written packs' buffers go back to the packer: no fresh 16 MiB allocation (and its page
    // faults) per pack, and the allocator's heap does not fragment. Room for as many as can be
    // written at once plus one, so that once the pipeline is full no pack buffer is allocated
    // again (on this VM fresh pages are expensive: sys time varied 2-10 s without it).
    let (recycled_tx, recycled_rx) = crossbeam_channel::bounded::<Vec<u8>>(3);
    let mut worker_handles = Vec::new();
    // Workers compress and seal; one packer fills one pack at a time, so memory holds one
    // pack being filled, one queued and the uploads in flight, whatever the worker count.
    for _ in 0..workers {
        let rx = job_rx.clone();
        let tx = blob_tx.clone();
        let key = repo.key.clone();
        worker_handles.push(std::thread::spawn(move || {
            for job in rx {
                let b = blob::encode_with_id(&key, job.kind, job.id, &job.data);
                drop(job.data);
                if tx.send(b).is_err() {
                    return;
                }
            }
        }));
    }
    drop(blob_tx);
    {
        let key = repo.key.clone();
        let tx = pack_tx.clone();
        worker_handles.push(std::thread::spawn(move || {
            // Trees and content lists go into packs of their own (as restic does): damage to a
            // data pack then never hides which files it affects, and metadata stays small to read.
            // A pack is closed before a blob would take it past the pack size, so its buffer
            // is allocated once at its final size (plus room for the header) and never grows.
            let data_cap = pack_size + (64 << 10);
            let fresh = || match recycled_rx.try_recv() {
                Ok(buf) => PackBuilder::with_buffer(buf),
                Err(_) => PackBuilder::with_capacity(data_cap),
            };
            let mut data = PackBuilder::with_capacity(data_cap);
            let mut meta = PackBuilder::with_capacity(1 << 20);
            for b in blob_rx {
                let is_meta = !matches!(b.kind, conservator_backup_core::blob::BlobKind::Data);
                let pack = if is_meta { &mut meta } else { &mut data };
                if !pack.is_empty() && pack.len() + b.sealed.len() > pack_size {
                    let next = if is_meta { PackBuilder::with_capacity(1 << 20) } else { fresh() };
                    let full = std::mem::replace(pack, next);
                    if tx.blocking_send(full.finish(&key)).is_err() {
                        return;
                    }
                }
                pack.add(&b);
                drop(b);
            }
            for pack in [data, meta] {
                if !pack.is_empty() && tx.blocking_send(pack.finish(&key)).is_err() {
                    return;
                }
            }
        }));
    }
    drop(job_rx);
    drop(pack_tx);

    // uploader
    let up_repo = repo.clone();
    // Packs written at once, each holding a pack in memory.
    let uploads_in_flight = repo.store.write_concurrency().max(1);
    let up_progress = progress.clone();
    let uploader = tokio::spawn(async move {
        let mut pending: Vec<IndexPack> = Vec::new();
        let mut stored = 0u64;
        let mut inflight = tokio::task::JoinSet::new();
        let mut upload_err: Option<Error> = None;
        loop {
            // A slot first, then the next pack: a pack waiting for a slot stays in the channel
            // (one), not here as well.
            while inflight.len() >= uploads_in_flight {
                match inflight.join_next().await.expect("nonempty").expect("upload task") {
                    Ok(ip) => pending.push(ip),
                    Err(e) => upload_err = Some(e),
                }
            }
            if upload_err.is_some() {
                break;
            }
            let Some(p) = pack_rx.recv().await else { break };
            let repo = up_repo.clone();
            let progress = up_progress.clone();
            let recycled = recycled_tx.clone();
            inflight.spawn(async move {
                let size = p.bytes.len() as u64;
                let bytes = Bytes::from(p.bytes);
                repo.store.put(&pack_key(&p.id), bytes.clone()).await?;
                // The store has let go of its copy: the allocation is ours again.
                let _ = recycled.try_send(Vec::from(bytes));
                progress.bytes_stored.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, Error>(IndexPack { id: p.id, size, blobs: p.entries })
            });
            if pending.len() >= INDEX_EVERY {
                stored += pending.iter().map(|p| p.size).sum::<u64>();
                write_index(&up_repo, std::mem::take(&mut pending)).await?;
            }
        }
        drop(pack_rx);
        while let Some(r) = inflight.join_next().await {
            match r.expect("upload task") {
                Ok(ip) => pending.push(ip),
                Err(e) => upload_err = Some(e),
            }
        }
        stored += pending.iter().map(|p| p.size).sum::<u64>();
        // index what was uploaded, even on failure: the next run reuses it
        if !pending.is_empty() {
            write_index(&up_repo, pending).await?;
        }
        match upload_err {
            Some(e) => Err(e),
            None => Ok(stored),
        }
    });

    // walker (blocking)
    let w_repo = repo.clone();
    let w_index = index.clone();
    let w_progress = progress.clone();
    let w_cancel = cancel.child_token();
    let rt = tokio::runtime::Handle::current();
    let w_opts = opts.clone();
    let walker = tokio::task::spawn_blocking(move || {
        let known = Mutex::new(HashSet::new());
        let walker = |tx: crossbeam_channel::Sender<Job>, started| Walker {
            repo: &w_repo,
            index: &w_index,
            rt: rt.clone(),
            known: &known,
            tx,
            started,
            summary: Summary::default(),
            warnings: Vec::new(),
            incomplete: false,
            progress: &w_progress,
            cancel: &w_cancel,
            force: w_opts.force,
        };
        std::thread::scope(|scope| {
            // Streams run beside the tree walk, and start first: the walk waits until each
            // stream has produced its first chunk, so a database dump's consistent snapshot is
            // taken before the media walk begins and every file its rows name is already there
            // for the walk to find (a file written later is extra, never missing).
            let mut handles = Vec::new();
            let mut started = Vec::new();
            for st in &w_opts.streams {
                let (tx, rx) = crossbeam_channel::bounded::<()>(0);
                started.push(rx);
                let mut sw = walker(job_tx.clone(), Some(tx));
                handles.push(scope.spawn(move || {
                    let r = sw.stream(st);
                    sw.started = None;
                    (r, sw.summary, sw.warnings, sw.incomplete)
                }));
            }
            for rx in started {
                let _ = rx.recv(); // Err once the sender is dropped: first chunk, end or failure
            }
            let mut w = walker(job_tx.clone(), None);
            let tree = (|| {
                if w_opts.paths.is_empty() {
                    return Ok(None);
                }
                let mut root = Tree::default();
                for p in &w_opts.paths {
                    let name = p.as_os_str().as_bytes();
                    let prev = parent_root.as_ref().and_then(|t| t.get(name)).cloned();
                    if let Some(mut node) = w.entry(p, prev.as_ref())? {
                        node.name = name.to_vec();
                        root.nodes.push(node);
                    }
                }
                Ok::<_, Error>(Some(w.save_blob(BlobKind::Tree, root.encode())?))
            })();
            if tree.is_err() {
                w_cancel.cancel();
            }
            let mut streams = Vec::new();
            let mut first_err = tree.as_ref().err().map(|_| ());
            let mut stream_err = None;
            for h in handles {
                let (r, sum, warnings, incomplete) = h.join().expect("stream thread");
                merge_summary(&mut w.summary, &sum);
                w.warnings.extend(warnings);
                w.incomplete |= incomplete;
                match r {
                    Ok(sr) => streams.push(sr),
                    Err(e) => {
                        if first_err.is_none() && stream_err.is_none() {
                            stream_err = Some(e);
                        }
                        first_err = Some(());
                    }
                }
            }
            let tree = tree?;
            if let Some(e) = stream_err {
                return Err(e);
            }
            Ok::<_, Error>((tree, streams, w.summary, w.warnings, w.incomplete))
        })
    });
    let walked = walker.await.expect("walker task");
    // the walker dropped its sender: workers drain and exit
    let joined = tokio::task::spawn_blocking(move || {
        for h in worker_handles {
            let _ = h.join();
        }
    });
    joined.await.expect("worker join");
    let uploaded = uploader.await.expect("uploader task");
    let stored = uploaded?;
    let (tree, streams, mut summary, warnings, incomplete) = walked?;
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    summary.bytes_stored = stored;
    summary.duration_secs = started.elapsed().as_secs_f64();
    let complete = !incomplete && streams.iter().all(|s: &StreamRef| s.complete);
    let snapshot = Snapshot {
        version: FORMAT_VERSION,
        time,
        hostname: opts.hostname.clone(),
        tags: opts.tags.clone(),
        paths,
        tree,
        streams,
        parent: parent.map(|(id, _)| id),
        complete,
        summary,
        warnings,
        meta: opts.meta.clone(),
    };
    let id = repo.save_snapshot(&snapshot).await?;
    Ok(BackupResult { id, snapshot })
}

fn scan_sizes(p: &Path, progress: &Progress) {
    let Ok(m) = std::fs::symlink_metadata(p) else { return };
    if m.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                scan_sizes(&e.path(), progress);
            }
        }
    } else if m.is_file() {
        progress.add_total(m.len());
    }
}

struct Walker<'a> {
    repo: &'a Repository,
    index: &'a MasterIndex,
    rt: tokio::runtime::Handle,
    known: &'a Mutex<HashSet<Id>>,
    tx: crossbeam_channel::Sender<Job>,
    /// Dropped once this walker's stream has produced its first chunk (or ended).
    started: Option<crossbeam_channel::Sender<()>>,
    summary: Summary,
    warnings: Vec<String>,
    incomplete: bool,
    progress: &'a Progress,
    cancel: &'a CancellationToken,
    force: bool,
}

/// Add what a stream's walker counted to the main one.
fn merge_summary(into: &mut Summary, s: &Summary) {
    into.files_new += s.files_new;
    into.files_changed += s.files_changed;
    into.files_unchanged += s.files_unchanged;
    into.dirs += s.dirs;
    into.total_bytes += s.total_bytes;
    into.bytes_read += s.bytes_read;
    into.blobs_added += s.blobs_added;
    into.bytes_added += s.bytes_added;
    into.files_changed_during_read += s.files_changed_during_read;
    into.entries_skipped += s.entries_skipped;
}

fn mtime_ns(m: &std::fs::Metadata) -> i64 {
    m.mtime() * 1_000_000_000 + m.mtime_nsec()
}
fn ctime_ns(m: &std::fs::Metadata) -> i64 {
    m.ctime() * 1_000_000_000 + m.ctime_nsec()
}

fn base_node(name: &OsStr, kind: NodeKind, m: &std::fs::Metadata) -> Node {
    Node {
        name: name.as_bytes().to_vec(),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_ns: mtime_ns(m),
        ctime_ns: ctime_ns(m),
        inode: m.ino(),
        size: 0,
        content: Vec::new(),
        subtree: None,
        target: Vec::new(),
        changed_during_backup: false,
    }
}

impl Walker<'_> {
    fn save_blob(&mut self, kind: BlobKind, data: Vec<u8>) -> Result<Id> {
        let id = self.repo.key.blob_id(&data);
        if !self.index.contains(&id) && self.known.lock().expect("known set").insert(id) {
            self.summary.blobs_added += 1;
            self.summary.bytes_added += data.len() as u64;
            self.tx.send(Job { kind, id, data }).map_err(|_| Error::Cancelled)?;
        }
        Ok(id)
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.is_cancelled() { Err(Error::Cancelled) } else { Ok(()) }
    }

    fn load_tree(&self, id: &Id) -> Option<Tree> {
        let bytes = self.rt.block_on(self.repo.read_blob(self.index, id)).ok()?;
        Tree::decode(&bytes).ok()
    }

    fn warn(&mut self, msg: String) {
        tracing::warn!("{msg}");
        self.warnings.push(msg);
    }

    /// Back up one path; `None` when it is skipped.
    fn entry(&mut self, path: &Path, prev: Option<&Node>) -> Result<Option<Node>> {
        self.check_cancel()?;
        let name = path.file_name().unwrap_or(path.as_os_str());
        let m = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(format!("{}: cannot read metadata: {e}", path.display()));
                self.summary.entries_skipped += 1;
                self.incomplete = true;
                return Ok(None);
            }
        };
        let ft = m.file_type();
        if ft.is_dir() {
            let mut node = base_node(name, NodeKind::Dir, &m);
            let prev_tree = prev.and_then(|p| p.subtree).and_then(|id| self.load_tree(&id));
            match self.dir(path, prev_tree)? {
                Some(id) => node.subtree = Some(id),
                None => return Ok(None),
            }
            self.summary.dirs += 1;
            Ok(Some(node))
        } else if ft.is_symlink() {
            let mut node = base_node(name, NodeKind::Symlink, &m);
            match std::fs::read_link(path) {
                Ok(t) => node.target = t.as_os_str().as_bytes().to_vec(),
                Err(e) => {
                    self.warn(format!("{}: cannot read symlink: {e}", path.display()));
                    self.summary.entries_skipped += 1;
                    self.incomplete = true;
                    return Ok(None);
                }
            }
            Ok(Some(node))
        } else if ft.is_file() {
            self.file(path, name, &m, prev).map(Some)
        } else {
            self.warn(format!("{}: skipped special file (fifo, socket or device)", path.display()));
            self.summary.entries_skipped += 1;
            Ok(None)
        }
    }

    fn dir(&mut self, path: &Path, prev: Option<Tree>) -> Result<Option<Id>> {
        let rd = match std::fs::read_dir(path) {
            Ok(rd) => rd,
            Err(e) => {
                self.warn(format!("{}: cannot list directory: {e}", path.display()));
                self.summary.entries_skipped += 1;
                self.incomplete = true;
                return Ok(None);
            }
        };
        let mut names: Vec<_> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => names.push(e.file_name()),
                Err(e) => {
                    self.warn(format!("{}: error while listing: {e}", path.display()));
                    self.incomplete = true;
                }
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut tree = Tree::default();
        for n in names {
            let child = path.join(&n);
            let prev_node = prev.as_ref().and_then(|t| t.get(n.as_bytes()));
            if let Some(node) = self.entry(&child, prev_node)? {
                tree.nodes.push(node);
            }
        }
        Ok(Some(self.save_blob(BlobKind::Tree, tree.encode())?))
    }

    fn file(&mut self, path: &Path, name: &OsStr, m: &std::fs::Metadata, prev: Option<&Node>) -> Result<Node> {
        let mut node = base_node(name, NodeKind::File, m);
        node.size = m.len();
        self.summary.total_bytes += m.len();
        if let Some(p) = prev
            && !self.force
            && p.kind == NodeKind::File
            && p.size == m.len()
            && p.mtime_ns == mtime_ns(m)
            && p.inode == m.ino()
            && !p.changed_during_backup
            && p.content.iter().all(|id| self.index.contains(id))
        {
            node.content = p.content.clone();
            self.summary.files_unchanged += 1;
            self.progress.add_done(m.len());
            self.progress.item();
            return Ok(node);
        }
        if prev.is_some() {
            self.summary.files_changed += 1;
        } else {
            self.summary.files_new += 1;
        }
        let mut f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) => {
                self.warn(format!("{}: cannot open: {e}", path.display()));
                self.summary.entries_skipped += 1;
                self.incomplete = true;
                node.changed_during_backup = true;
                return Ok(node);
            }
        };
        let params = self.repo.config.chunker_files;
        let mut content = Vec::new();
        let read = if m.len() <= params.max as u64 {
            let mut buf = Vec::with_capacity(m.len() as usize);
            let r = f.read_to_end(&mut buf).map(|n| n as u64).map_err(|e| Error::io("read", path, e));
            match r {
                Ok(n) => {
                    let bounds = chunk_slice(&buf, params);
                    if bounds.len() == 1 {
                        // one chunk (every file under the minimum chunk size): no copy
                        content.push(self.save_blob(BlobKind::Data, buf)?);
                        self.progress.add_done(n);
                    } else {
                        for (o, l) in bounds {
                            content.push(self.save_blob(BlobKind::Data, buf[o..o + l].to_vec())?);
                            self.progress.add_done(l as u64);
                        }
                    }
                    Ok(n)
                }
                Err(e) => Err(e),
            }
        } else {
            let mut out = Vec::new();
            let r = chunk_reader(&mut f, params, |chunk| {
                let len = chunk.len() as u64;
                out.push(self.save_blob(BlobKind::Data, chunk).map_err(|_| conservator_backup_core::Error::Invalid {
                    what: "backup".into(),
                    detail: "cancelled".into(),
                })?);
                self.progress.add_done(len);
                self.check_cancel().map_err(|_| conservator_backup_core::Error::Invalid { what: "backup".into(), detail: "cancelled".into() })
            });
            content = out;
            r.map_err(|e| match e {
                conservator_backup_core::Error::Read { source, .. } => Error::io("read", path, source),
                _ => Error::Cancelled,
            })
        };
        let n = match read {
            Ok(n) => n,
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => {
                self.warn(format!("{e}"));
                self.incomplete = true;
                node.changed_during_backup = true;
                node.content = content;
                return Ok(node);
            }
        };
        self.summary.bytes_read += n;
        self.progress.item();
        node.content = content;
        node.size = n;
        if let Ok(after) = f.metadata()
            && (after.len() != m.len() || mtime_ns(&after) != mtime_ns(m) || ctime_ns(&after) != ctime_ns(m) || n != m.len())
        {
            node.changed_during_backup = true;
            self.summary.files_changed_during_read += 1;
            self.warn(format!("{}: changed while it was read; its content in this snapshot may be inconsistent", path.display()));
        }
        Ok(node)
    }

    fn stream(&mut self, s: &StreamSource) -> Result<StreamRef> {
        let (prog, args) = s
            .command
            .split_first()
            .ok_or_else(|| Error::Invalid(format!("stream {}: empty command", s.name)))?;
        let spawned = std::process::Command::new(prog)
            .args(args)
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("cannot run {prog:?}: {e}");
                self.warn(format!("stream {}: {msg}", s.name));
                let content = self.save_blob(BlobKind::Tree, encode_content_list(&[]))?;
                return Ok(StreamRef {
                    name: s.name.clone(),
                    size: 0,
                    content,
                    command: s.command.clone(),
                    exit_code: None,
                    complete: false,
                    stderr_tail: msg.clone(),
                    incomplete_reason: Some(msg),
                    meta: BTreeMap::new(),
                });
            }
        };
        let mut stderr = child.stderr.take().expect("piped stderr");
        let stdout = child.stdout.take().expect("piped stdout");
        // Cancellation must reach a command that writes nothing for a while (a dump waiting for
        // a lock or a connection): a watcher kills it, which ends its output and so this stream.
        let child = Arc::new(Mutex::new(child));
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watcher = {
            let (child, finished, cancel) = (child.clone(), finished.clone(), self.cancel.clone());
            std::thread::spawn(move || {
                while !finished.load(std::sync::atomic::Ordering::Relaxed) {
                    if cancel.is_cancelled() {
                        let _ = child.lock().expect("child").kill();
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            })
        };
        let err_thread = std::thread::spawn(move || {
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                if tail.len() > 64 * 1024 {
                    tail.drain(..tail.len() - 16 * 1024);
                }
            }
            let start = tail.len().saturating_sub(4096);
            String::from_utf8_lossy(&tail[start..]).into_owned()
        });
        let params: ChunkerParams = self.repo.config.chunker_streams;
        let mut ids = Vec::new();
        let mut cancelled = false;
        let mut ends = StreamEnds::default();
        let res = chunk_reader(stdout, params, |chunk| {
            let len = chunk.len() as u64;
            if ends.head.len() < ENDS_LEN {
                let take = (ENDS_LEN - ends.head.len()).min(chunk.len());
                ends.head.extend_from_slice(&chunk[..take]);
            }
            ends.tail.extend_from_slice(&chunk[chunk.len().saturating_sub(ENDS_LEN)..]);
            if ends.tail.len() > 2 * ENDS_LEN {
                ends.tail.drain(..ends.tail.len() - ENDS_LEN);
            }
            self.summary.bytes_read += len;
            self.summary.total_bytes += len;
            self.progress.add_done(len);
            match self.save_blob(BlobKind::Data, chunk) {
                Ok(id) => ids.push(id),
                Err(_) => cancelled = true,
            }
            self.started = None;
            if cancelled || self.cancel.is_cancelled() {
                cancelled = true;
                return Err(conservator_backup_core::Error::Invalid { what: "stream".into(), detail: "cancelled".into() });
            }
            Ok(())
        });
        if cancelled {
            finished.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = watcher.join();
            let mut child = child.lock().expect("child");
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Cancelled);
        }
        let read_err = res.as_ref().err().map(|e| e.to_string());
        let size = res.unwrap_or(0);
        finished.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = watcher.join();
        if self.cancel.is_cancelled() {
            let mut child = child.lock().expect("child");
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Cancelled);
        }
        let status = child
            .lock()
            .expect("child")
            .wait()
            .map_err(|e| Error::Command { name: s.name.clone(), command: prog.clone(), source: e })?;
        let mut tail = err_thread.join().unwrap_or_default();
        if let Some(e) = &read_err {
            tail.push_str(&format!("\n(conservator: reading the stream failed: {e})"));
        }
        ends.size = size;
        let mut reason = None;
        let mut meta = BTreeMap::new();
        if let Some(e) = &read_err {
            reason = Some(format!("reading the stream failed: {e}"));
        } else if !status.success() {
            let last = tail.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").trim();
            reason = Some(if last.is_empty() { format!("{prog} exited with {status}") } else { format!("{prog} exited with {status}: {last}") });
        } else if let Some(check) = &s.check {
            match check(&ends) {
                Ok(m) => meta = m,
                Err(why) => reason = Some(why),
            }
        }
        let complete = reason.is_none();
        if let Some(why) = &reason {
            self.warn(format!("stream {}: incomplete: {why}", s.name));
        }
        let content = self.save_blob(BlobKind::Tree, encode_content_list(&ids))?;
        Ok(StreamRef {
            name: s.name.clone(),
            size,
            content,
            command: s.command.clone(),
            exit_code: status.code(),
            complete,
            stderr_tail: if complete { String::new() } else { tail },
            incomplete_reason: reason,
            meta,
        })
    }
}
