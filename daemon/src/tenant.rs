//! A tenant's backup and restore: its MariaDB database (a `mariadb-dump` stream) and its
//! media (a directory tree), one snapshot per run, in the tenant's own repository under
//! the tenant's own key.
//!
//! The dump is streamed into the repository (no temporary file). It counts only when the
//! tool exits 0 *and* the stream ends with the dump's completion trailer; anything else is
//! a failed run whose snapshot is kept as *incomplete* (never `latest`, never a restore
//! point) with the tool's own error text.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use conservator_backup::backup::{BackupOptions, StreamSource};
use conservator_backup::repo::{KeyOptions, local_hostname};
use conservator_backup::restore::RestoreOptions;
use conservator_backup::{CancellationToken, Progress, Repository};
use conservator_backup_core::crypto::Secret;
use conservator_backup_core::dump::{RenameReport, Renamer, check_dump};
use conservator_backup_core::format::Snapshot;
use serde::Serialize;

use crate::catalog::{Catalog, RunFacts, Status};
use crate::config::{Config, TenantConfig};

/// The tag every snapshot of a tenant carries.
pub fn tenant_tag(t: &TenantConfig) -> String {
    format!("tenant={}", t.id)
}

/// The name of a tenant's database stream in its snapshots.
pub fn db_stream_name(t: &TenantConfig) -> String {
    format!("db/{}.sql", t.database.schema)
}

/// Where a tenant's key file lives.
pub fn key_path(cfg: &Config, tenant: &str) -> PathBuf {
    cfg.daemon.key_dir().join(format!("{tenant}.key"))
}

/// Open the tenant's repository; with `create`, make it (and its key) when it does not exist.
pub async fn open_repo(cfg: &Config, t: &TenantConfig, create: bool) -> Result<Arc<Repository>> {
    let location = cfg.tenant_repository(&t.id);
    let key_file = key_path(cfg, &t.id);
    let key_text = match std::fs::read_to_string(&key_file) {
        Ok(k) => Some(k),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(anyhow!("read the key file of tenant {} at {}: {e}", t.id, key_file.display())),
    };
    let store = conservator_store::open_locked(&location, cfg.repository.object_lock.as_deref(), create).await?;
    match key_text {
        Some(k) => {
            let secret = Secret::parse_key_file(&k).with_context(|| format!("key file {}", key_file.display()))?;
            match Repository::open(store.clone(), &secret).await {
                Ok(r) => Ok(Arc::new(r)),
                Err(conservator_backup::Error::NoRepository { .. }) if create => {
                    Ok(Arc::new(Repository::init(store, &secret, &KeyOptions { label: t.id.clone(), ..Default::default() }).await?))
                }
                Err(e) => Err(e.into()),
            }
        }
        None => {
            // Never make a second key for an existing repository: its data would be lost to us.
            if store.head("config").await?.is_some() {
                bail!(
                    "tenant {}'s repository {location} exists but its key file {} is missing: restore the key file \
                     from your secret store (without it the backups cannot be read)",
                    t.id,
                    key_file.display()
                );
            }
            if !create {
                bail!("tenant {} has no backups yet (no repository at {location})", t.id);
            }
            let text = Secret::generate_key_file();
            write_key_file(&key_file, &text)?;
            let secret = Secret::parse_key_file(&text)?;
            Ok(Arc::new(Repository::init(store, &secret, &KeyOptions { label: t.id.clone(), ..Default::default() }).await?))
        }
    }
}

fn write_key_file(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().expect("key files live in a directory");
    std::fs::create_dir_all(dir).with_context(|| format!("create the key directory {}", dir.display()))?;
    let tmp = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("create {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::hard_link(&tmp, path).with_context(|| format!("write the key file {}", path.display()))?;
    std::fs::remove_file(&tmp)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Run one SQL statement with the MariaDB client, returning its tab-separated output.
pub async fn query(t: &TenantConfig, database: Option<&str>, sql: &str) -> Result<String> {
    let mut cmd = tokio::process::Command::new(&t.client_tool);
    cmd.args(t.database.client_args()).args(["--batch", "--skip-column-names", "-e", sql]);
    if let Some(db) = database {
        cmd.arg(db);
    }
    if !t.database.password.expose().is_empty() {
        cmd.env("MYSQL_PWD", t.database.password.expose());
    }
    cmd.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let out = cmd.output().await.with_context(|| format!("run {}", t.client_tool))?;
    if !out.status.success() {
        bail!(
            "{} on {}: {}",
            t.client_tool,
            t.database.describe(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The CA schema revision (`MAX(version_num)` of `ca_schema_updates`).
pub async fn schema_revision(t: &TenantConfig, database: &str) -> Result<i64> {
    let out = query(t, Some(database), "SELECT MAX(version_num) FROM ca_schema_updates").await?;
    out.trim().parse().with_context(|| format!("read the CA schema revision of {database}: got {:?}", out.trim()))
}

/// The dump command (no secret in it: the password goes in `MYSQL_PWD`).
pub fn dump_command(t: &TenantConfig) -> Vec<String> {
    let mut c = vec![t.dump_tool.clone()];
    c.extend(t.database.client_args());
    for a in ["--single-transaction", "--master-data=2", "--gtid", "--routines", "--events", "--triggers", "--hex-blob"] {
        c.push(a.into());
    }
    c.push(t.database.schema.clone());
    c
}

/// What one tenant backup did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// Tenant.
    pub tenant: String,
    /// Catalog row.
    pub run_id: i64,
    /// Outcome.
    pub status: Status,
    /// What was recorded.
    #[serde(flatten)]
    pub facts: RunFacts,
    /// Why it failed.
    pub error: Option<String>,
    /// Seconds.
    pub duration_secs: f64,
}

/// Back a tenant up once: dump + media + extra paths into one snapshot, recorded in the
/// catalog; then apply the tenant's retention.
pub async fn backup(
    cfg: &Config,
    t: &TenantConfig,
    catalog: &Catalog,
    trigger: &str,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<BackupReport> {
    let run_id = catalog.start(&t.id, "backup", trigger).await?;
    let started = Instant::now();
    let mut facts = RunFacts::default();
    // The safety backup before an in-place restore applies no retention: retention could
    // forget and prune the very snapshot about to be restored.
    let retention = trigger != "pre-restore";
    let outcome = backup_inner(cfg, t, &mut facts, progress, cancel, retention).await;
    let (status, error) = match outcome {
        Ok(()) => (Status::Succeeded, None),
        Err(e) if cancel.is_cancelled() => (Status::Cancelled, Some(format!("cancelled: {e:#}"))),
        Err(e) => (Status::Failed, Some(format!("{e:#}"))),
    };
    let duration_secs = started.elapsed().as_secs_f64();
    catalog.finish(run_id, status, &facts, error.as_deref(), duration_secs).await?;
    match &error {
        None => tracing::info!(tenant = %t.id, run_id, snapshot = ?facts.snapshot_id, duration_secs, "backup succeeded"),
        Some(e) => tracing::warn!(tenant = %t.id, run_id, error = %e, "backup failed"),
    }
    Ok(BackupReport { tenant: t.id.clone(), run_id, status, facts, error, duration_secs })
}

async fn backup_inner(
    cfg: &Config,
    t: &TenantConfig,
    facts: &mut RunFacts,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
    retention: bool,
) -> Result<()> {
    let repo = open_repo(cfg, t, true).await?;
    let schema = &t.database.schema;
    let revision = schema_revision(t, schema).await.context("read the tenant database")?;
    facts.schema_revision = Some(revision);
    let charset = query(
        t,
        None,
        &format!(
            "SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{schema}'"
        ),
    )
    .await?;
    let mut cs = charset.trim().split('\t');
    let mut meta = BTreeMap::from([
        ("tenant".to_string(), t.id.clone()),
        ("plan".to_string(), t.plan.to_string()),
        ("database".to_string(), schema.clone()),
        ("ca_schema_revision".to_string(), revision.to_string()),
        ("media".to_string(), t.media.display().to_string()),
        ("conservator_version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
    ]);
    if let (Some(c), Some(co)) = (cs.next(), cs.next()) {
        meta.insert("db_charset".into(), c.to_string());
        meta.insert("db_collation".into(), co.to_string());
    }
    let mut env = Vec::new();
    if !t.database.password.expose().is_empty() {
        env.push(("MYSQL_PWD".to_string(), t.database.password.expose().to_string()));
    }
    let stream = StreamSource {
        name: db_stream_name(t),
        command: dump_command(t),
        env,
        check: Some(Arc::new(|ends| check_dump(ends).map(|f| f.to_meta()))),
    };
    let mut paths = vec![t.media.clone()];
    paths.extend(t.extra_paths.iter().cloned());
    let opts = BackupOptions {
        paths,
        streams: vec![stream],
        tags: vec![tenant_tag(t), format!("plan={}", t.plan)],
        hostname: local_hostname(),
        parent: None,
        force: false,
        lock_wait: Duration::from_secs(120),
        meta,
    };
    let res = conservator_backup::backup::backup(repo.clone(), opts, progress, cancel).await?;
    let s = &res.snapshot;
    facts.snapshot_id = Some(res.id.to_hex());
    facts.logical_bytes = Some(s.summary.total_bytes);
    facts.bytes_added = Some(s.summary.bytes_added);
    facts.bytes_stored = Some(s.summary.bytes_stored);
    let db = s.streams.first();
    facts.db_bytes = db.map(|d| d.size);
    facts.media_bytes = Some(s.summary.total_bytes - db.map_or(0, |d| d.size));
    if let Some(d) = db {
        facts.gtid = d.meta.get("gtid").cloned();
        facts.binlog_file = d.meta.get("binlog_file").cloned();
        facts.binlog_pos = d.meta.get("binlog_pos").and_then(|p| p.parse().ok());
    }
    if !s.complete {
        let why = match db {
            Some(d) if !d.complete => {
                let reason = d.incomplete_reason.clone().unwrap_or_else(|| "the dump is incomplete".into());
                let tail = d.stderr_tail.trim();
                let why = if tail.is_empty() || reason.contains(tail) { reason } else { format!("{reason}\n{tail}") };
                match conservator_backup_core::dump::dump_hint(&why) {
                    Some(h) => format!("{why}\nhint: {h}"),
                    None => why,
                }
            }
            _ => s.warnings.join("; "),
        };
        bail!(
            "the backup is not a restore point (snapshot {} kept as incomplete; the previous good one stays latest): {why}",
            res.id.short()
        );
    }
    // Retention, per tenant. The restore point is made whatever happens here: a retention
    // that fails (or is cancelled) is a warning on a succeeded run, and the next run retries it.
    if retention {
        let applied = async {
            let plan = conservator_backup::prune::forget(&repo, &t.retention.policy(), &[tenant_tag(t)], false).await?;
            let removed = plan.remove().len() as u64;
            facts.snapshots_forgotten = Some(removed);
            if removed > 0 {
                conservator_backup::prune::prune(
                    repo.clone(),
                    false,
                    conservator_backup::prune::REPACK_UNUSED_PERCENT,
                    Arc::new(Progress::default()),
                    cancel,
                )
                .await?;
            }
            Ok::<_, conservator_backup::Error>(())
        }
        .await;
        if let Err(e) = applied {
            tracing::warn!(tenant = %t.id, error = %e, "retention was not applied; the next backup tries again");
            facts.retention_error = Some(format!("{e}"));
        }
    }
    Ok(())
}

/// The tenant's complete snapshots, oldest first.
pub async fn snapshots(cfg: &Config, t: &TenantConfig) -> Result<Vec<(String, Snapshot)>> {
    let repo = open_repo(cfg, t, false).await?;
    let tag = tenant_tag(t);
    Ok(repo
        .snapshots()
        .await?
        .into_iter()
        .filter(|(_, s)| s.tags.contains(&tag))
        .map(|(id, s)| (id.to_hex(), s))
        .collect())
}

/// Where and how to restore.
#[derive(Debug, Clone, Default)]
pub struct TenantRestoreOptions {
    /// Snapshot id (prefix) or `latest`.
    pub snapshot: String,
    /// New database name (default `<schema>_restore_<snapshot>`).
    pub database: Option<String>,
    /// New media directory (default `<media>.restore-<snapshot>`).
    pub media_dir: Option<PathBuf>,
    /// Overwrite the live database and media (the caller has confirmed).
    pub in_place: bool,
}

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// Tenant.
    pub tenant: String,
    /// Snapshot restored.
    pub snapshot_id: String,
    /// When it was taken.
    pub snapshot_time: String,
    /// The database written.
    pub database: String,
    /// The media directory written.
    pub media_dir: PathBuf,
    /// Where the extra paths went (their full paths under it), or their own places in place.
    pub extra_paths_dir: Option<PathBuf>,
    /// Bytes of SQL loaded.
    pub db_bytes: u64,
    /// Files restored.
    pub media_files: u64,
    /// Bytes of media restored.
    pub media_bytes: u64,
    /// Rewrites made to load under the new name.
    pub renamed: RenameReport,
    /// In place: the live media as it was, moved aside (delete it once satisfied).
    pub previous_media: Option<PathBuf>,
    /// In place: the snapshot of the live state taken just before.
    pub safety_snapshot: Option<String>,
    /// GTID of the restored state.
    pub gtid: Option<String>,
    /// Seconds.
    pub duration_secs: f64,
}

fn snapshot_short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

/// Restore a tenant's database and media from one snapshot.
pub async fn restore(
    cfg: &Config,
    t: &TenantConfig,
    catalog: &Catalog,
    opts: &TenantRestoreOptions,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<RestoreReport> {
    let started = Instant::now();
    let run_id = catalog.start(&t.id, "restore", "manual").await?;
    let r = restore_inner(cfg, t, catalog, opts, progress, cancel, started).await;
    let (status, err) = match &r {
        Ok(_) => (Status::Succeeded, None),
        Err(e) if cancel.is_cancelled() => (Status::Cancelled, Some(format!("cancelled: {e:#}"))),
        Err(e) => (Status::Failed, Some(format!("{e:#}"))),
    };
    let facts = RunFacts {
        snapshot_id: r.as_ref().ok().map(|x| x.snapshot_id.clone()),
        db_bytes: r.as_ref().ok().map(|x| x.db_bytes),
        media_bytes: r.as_ref().ok().map(|x| x.media_bytes),
        ..Default::default()
    };
    catalog.finish(run_id, status, &facts, err.as_deref(), started.elapsed().as_secs_f64()).await?;
    r
}

async fn restore_inner(
    cfg: &Config,
    t: &TenantConfig,
    catalog: &Catalog,
    opts: &TenantRestoreOptions,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
    started: Instant,
) -> Result<RestoreReport> {
    let repo = open_repo(cfg, t, false).await?;
    let tag = tenant_tag(t);
    let all: Vec<_> = repo.snapshots().await?.into_iter().filter(|(_, s)| s.tags.contains(&tag)).collect();
    let (id, snap) = if opts.snapshot == "latest" {
        all.iter().rev().find(|(_, s)| s.complete).cloned().ok_or_else(|| anyhow!("tenant {} has no complete backup yet", t.id))?
    } else {
        let m: Vec<_> = all.iter().filter(|(i, _)| i.to_hex().starts_with(&opts.snapshot)).collect();
        match m.as_slice() {
            [one] => (*one).clone(),
            [] => bail!("tenant {} has no snapshot {:?} (see `conservator tenant snapshots {}`)", t.id, opts.snapshot, t.id),
            _ => bail!("snapshot prefix {:?} is ambiguous: give more characters", opts.snapshot),
        }
    };
    let id = id.to_hex();
    if !snap.complete {
        bail!("snapshot {} of tenant {} is incomplete (its backup failed): it is not a restore point", snapshot_short(&id), t.id);
    }
    let stream = snap
        .streams
        .iter()
        .find(|s| s.name.starts_with("db/"))
        .ok_or_else(|| anyhow!("snapshot {} holds no database dump", snapshot_short(&id)))?
        .clone();
    let source_db = snap.meta.get("database").cloned().unwrap_or_else(|| t.database.schema.clone());
    let source_media = snap.meta.get("media").map(PathBuf::from).unwrap_or_else(|| t.media.clone());
    let short = snapshot_short(&id).to_string();

    let (database, media_dir) = if opts.in_place {
        (t.database.schema.clone(), t.media.clone())
    } else {
        (
            opts.database.clone().unwrap_or_else(|| format!("{}_restore_{short}", t.database.schema)),
            opts.media_dir.clone().unwrap_or_else(|| PathBuf::from(format!("{}.restore-{short}", t.media.display()))),
        )
    };
    if !database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') || database.len() > 64 {
        bail!("database name {database:?} must be letters, digits and _ (at most 64)");
    }
    let mut safety_snapshot = None;
    if opts.in_place {
        // The live state, kept before it is overwritten.
        let rep = backup(cfg, t, catalog, "pre-restore", Arc::new(Progress::default()), cancel).await?;
        if rep.status != Status::Succeeded {
            bail!(
                "refusing to restore in place: the safety backup of the live state failed: {}",
                rep.error.unwrap_or_default()
            );
        }
        safety_snapshot = rep.facts.snapshot_id;
    } else {
        let tables = query(
            t,
            None,
            &format!("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{database}'"),
        )
        .await?;
        let exists = query(t, None, &format!("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '{database}'")).await?;
        if exists.trim() != "0" {
            bail!(
                "database {database} already exists ({} tables): choose another name with --database, or restore in place",
                tables.trim()
            );
        }
        if media_dir.exists() && std::fs::read_dir(&media_dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
            bail!("media directory {} already exists and is not empty: choose another with --media-dir", media_dir.display());
        }
    }

    // Nothing live is touched until everything that can fail without harm is done: first
    // the media, into a staging directory beside the target (needs the disk space; a damaged
    // pack or a full disk fails here, with the live tenant untouched), then the database,
    // then the staged media swapped in.
    let after_safety = |e: anyhow::Error| match &safety_snapshot {
        Some(s) => e.context(format!(
            "the live state before this restore is snapshot {}: `conservator tenant restore {} --snapshot {} --in-place` brings it back",
            &s[..8],
            t.id,
            &s[..12]
        )),
        None => e,
    };

    // 1. The media, staged.
    let parent = media_dir.parent().ok_or_else(|| anyhow!("media directory {} has no parent", media_dir.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    let staging = parent.join(format!(
        ".{}.conservator-restore-{short}",
        media_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let ropts = RestoreOptions {
        target: staging.clone(),
        subpath: Some(source_media.display().to_string()),
        parallel: 4,
        subpath_at_target: true,
    };
    let media = match conservator_backup::restore::restore(repo.clone(), &snap, &ropts, progress.clone(), cancel).await {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(anyhow::Error::from(e).context(format!(
                "restore the media into {} (nothing live was changed)",
                staging.display()
            )));
        }
    };

    // 2. The database.
    let charset = snap.meta.get("db_charset").cloned().unwrap_or_else(|| "utf8mb4".into());
    let collation = snap.meta.get("db_collation").cloned().unwrap_or_else(|| "utf8mb4_general_ci".into());
    let db_step = async {
        if opts.in_place {
            query(t, None, &format!("DROP DATABASE IF EXISTS `{database}`")).await?;
        }
        query(t, None, &format!("CREATE DATABASE `{database}` CHARACTER SET {charset} COLLATE {collation}")).await?;
        load_dump(&repo, &snap, &stream.name, t, &source_db, &database, progress.clone(), cancel).await
    };
    let renamed = match db_step.await {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            if !opts.in_place {
                let _ = query(t, None, &format!("DROP DATABASE IF EXISTS `{database}`")).await;
            }
            return Err(after_safety(e.context(format!("load the dump into {database}"))));
        }
    };

    // 3. The staged media swapped in.
    let mut previous_media = None;
    if opts.in_place && media_dir.exists() {
        let aside = parent.join(format!(
            "{}.pre-restore-{}",
            media_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        std::fs::rename(&media_dir, &aside)
            .with_context(|| format!("move the live media aside to {} (the restored media is at {})", aside.display(), staging.display()))
            .map_err(after_safety)?;
        previous_media = Some(aside);
    } else if media_dir.exists() {
        std::fs::remove_dir(&media_dir).with_context(|| format!("replace the empty {}", media_dir.display()))?;
    }
    if let Err(e) = std::fs::rename(&staging, &media_dir) {
        let was = previous_media.as_ref().map(|p| format!("; the live media was moved to {}", p.display())).unwrap_or_default();
        return Err(after_safety(anyhow!(
            "move the restored media from {} to {}: {e}{was}",
            staging.display(),
            media_dir.display()
        )));
    }

    // 3. Extra paths (configuration): in place to where they were, else beside the media.
    let extras: Vec<&String> = snap.paths.iter().filter(|p| Path::new(p.as_str()) != source_media).collect();
    let mut extra_paths_dir = None;
    if !extras.is_empty() {
        let target = if opts.in_place { PathBuf::from("/") } else { PathBuf::from(format!("{}.extra", media_dir.display())) };
        for p in extras {
            let ropts = RestoreOptions { target: target.clone(), subpath: Some(p.clone()), parallel: 2, subpath_at_target: false };
            conservator_backup::restore::restore(repo.clone(), &snap, &ropts, progress.clone(), cancel)
                .await
                .with_context(|| format!("restore {p}"))?;
        }
        extra_paths_dir = Some(target);
    }
    Ok(RestoreReport {
        tenant: t.id.clone(),
        snapshot_id: id,
        snapshot_time: snap.time.to_rfc3339(),
        database,
        media_dir,
        extra_paths_dir,
        db_bytes: stream.size,
        media_files: media.files,
        media_bytes: media.total_bytes,
        renamed,
        previous_media,
        safety_snapshot,
        gtid: stream.meta.get("gtid").cloned(),
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// Pipe the snapshot's dump stream into the client, renaming `from` to `to` in schema
/// statements when they differ.
#[allow(clippy::too_many_arguments)]
async fn load_dump(
    repo: &Arc<Repository>,
    snap: &Snapshot,
    stream: &str,
    t: &TenantConfig,
    from: &str,
    to: &str,
    progress: Arc<Progress>,
    cancel: &CancellationToken,
) -> Result<RenameReport> {
    let mut cmd = std::process::Command::new(&t.client_tool);
    cmd.args(t.database.client_args()).arg("--binary-mode").arg(to);
    if !t.database.password.expose().is_empty() {
        cmd.env("MYSQL_PWD", t.database.password.expose());
    }
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", t.client_tool))?;
    let stdin = child.stdin.take().expect("piped stdin");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut sink = RenamingSink { out: stdin, renamer: (from != to).then(|| Renamer::new(from, to)), pending: Vec::new(), buf: Vec::new() };
    let res = conservator_backup::restore::restore_stream(repo.clone(), snap, stream, &mut sink, progress, cancel).await;
    let flushed = sink.finish();
    let report = sink.renamer.as_ref().map(|r| r.report.clone()).unwrap_or_default();
    drop(sink);
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("wait task")?;
    let err = err_thread.join().unwrap_or_default();
    if !status.success() {
        let first = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
        bail!("{} exited with {status}: {first}", t.client_tool);
    }
    res?;
    flushed?;
    Ok(report)
}

/// A `Write` that passes whole lines through the [`Renamer`] (or straight through).
struct RenamingSink<W: Write> {
    out: W,
    renamer: Option<Renamer>,
    pending: Vec<u8>,
    buf: Vec<u8>,
}

impl<W: Write> RenamingSink<W> {
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(r) = &mut self.renamer {
            if !self.pending.is_empty() {
                self.buf.clear();
                r.line(&self.pending, &mut self.buf);
                self.pending.clear();
                tokio::task::block_in_place(|| self.out.write_all(&self.buf))?;
            }
        }
        tokio::task::block_in_place(|| self.out.flush())
    }
}

impl<W: Write> Write for RenamingSink<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let Some(r) = &mut self.renamer else {
            tokio::task::block_in_place(|| self.out.write_all(data))?;
            return Ok(data.len());
        };
        self.buf.clear();
        let mut rest = data;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            if self.pending.is_empty() {
                r.line(&rest[..=i], &mut self.buf);
            } else {
                self.pending.extend_from_slice(&rest[..=i]);
                r.line(&self.pending, &mut self.buf);
                self.pending.clear();
            }
            rest = &rest[i + 1..];
        }
        self.pending.extend_from_slice(rest);
        tokio::task::block_in_place(|| self.out.write_all(&self.buf))?;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A problem that stops the daemon at start (with all the others).
pub async fn preflight(cfg: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    // The repository base must be writable.
    let base = cfg.repository_base();
    match conservator_store::open_creating(&base).await {
        Ok(store) => {
            if let Err(e) = store.probe().await {
                problems.push(format!("repository {base} is not writable: {e}"));
            }
        }
        Err(e) => problems.push(format!("repository {base} cannot be opened: {e}")),
    }
    let key_dir = cfg.daemon.key_dir();
    if let Err(e) = std::fs::create_dir_all(&key_dir).and_then(|_| {
        let p = key_dir.join(format!(".probe-{:016x}", rand::random::<u64>()));
        std::fs::write(&p, b"")?;
        std::fs::remove_file(&p)
    }) {
        problems.push(format!("the key directory {} is not writable: {e}", key_dir.display()));
    }
    for t in &cfg.tenants {
        if let Err(e) = query(t, Some(&t.database.schema), "SELECT 1").await {
            problems.push(format!("tenant {}: database unreachable: {e:#}", t.id));
        }
        match std::fs::read_dir(&t.media) {
            Ok(_) => {}
            Err(e) => problems.push(format!("tenant {}: media directory {}: {e}", t.id, t.media.display())),
        }
        if which(&t.dump_tool).is_none() {
            problems.push(format!(
                "tenant {}: the dump tool {:?} is not installed (apt-get install mariadb-client)",
                t.id, t.dump_tool
            ));
        }
    }
    problems
}

/// The start-time checks that need no valid configuration, run on the raw file when it does not
/// load, so that one start lists every problem: the repository base, and each tenant's media
/// directory and database endpoint (a socket that answers, a TCP port that accepts; the login
/// itself is checked once the file is valid).
pub async fn preflight_raw(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Ok(doc) = toml::from_str::<toml::Table>(text) else { return problems };
    let get = |t: &toml::Table, k: &str| t.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let empty = toml::Table::new();
    let daemon = doc.get("daemon").and_then(|v| v.as_table()).unwrap_or(&empty);
    let repo = doc.get("repository").and_then(|v| v.as_table()).unwrap_or(&empty);
    let state_dir = get(daemon, "state_dir").unwrap_or_else(|| "/var/lib/conservator".into());
    let base = get(repo, "location").unwrap_or_else(|| format!("{}/repositories", state_dir.trim_end_matches('/')));
    match conservator_store::open_creating(&base).await {
        Ok(store) => {
            if let Err(e) = store.probe().await {
                problems.push(format!("repository {base} is not writable: {e}"));
            }
        }
        Err(e) => problems.push(format!("repository {base} cannot be opened: {e}")),
    }
    for (i, t) in doc.get("tenant").and_then(|v| v.as_array()).into_iter().flatten().enumerate() {
        let Some(t) = t.as_table() else { continue };
        let label = get(t, "id").map(|id| format!("tenant {id}")).unwrap_or_else(|| format!("tenant #{}", i + 1));
        if let Some(m) = get(t, "media") {
            if let Err(e) = std::fs::read_dir(&m) {
                problems.push(format!("{label}: media directory {m}: {e}"));
            }
        }
        let Some(db) = t.get("database").and_then(|v| v.as_table()) else { continue };
        if let Some(sock) = get(db, "socket") {
            if let Err(e) = std::os::unix::net::UnixStream::connect(&sock) {
                problems.push(format!("{label}: database unreachable: socket {sock}: {e}"));
            }
        } else if let Some(host) = get(db, "host") {
            let port = db.get("port").and_then(|v| v.as_integer()).unwrap_or(3306);
            let addr = format!("{host}:{port}");
            let reach = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(&addr)).await;
            match reach {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => problems.push(format!("{label}: database unreachable at {addr}: {e}")),
                Err(_) => problems.push(format!("{label}: database unreachable at {addr}: no answer within 5 s")),
            }
        }
    }
    problems
}

fn which(tool: &str) -> Option<PathBuf> {
    if tool.contains('/') {
        return Path::new(tool).exists().then(|| PathBuf::from(tool));
    }
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(tool)).find(|c| c.exists()))
}
