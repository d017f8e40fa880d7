//! The command line.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use conservator_backup::backup::{BackupOptions, StreamSource};
use conservator_backup::repo::{KeyOptions, local_hostname};
use conservator_backup::restore::RestoreOptions;
use conservator_backup::{CancellationToken, Progress, Repository};
use conservator_backup_core::crypto::Secret;
use conservator_backup_core::retention::RetentionPolicy;
use serde_json::json;

use crate::output::{Bar, human};

/// conservator: backups that provably restore, for a hosted Collective Access platform.
#[derive(Debug, Parser)]
#[command(name = "conservator", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    cmd: Command,
}

impl Cli {
    /// Whether JSON output was asked for.
    pub fn json(&self) -> bool {
        match &self.cmd {
            Command::Repo(r) => r.global.json,
            Command::Daemon(g) => g.json,
            Command::Tenant(t) => t.global.json,
            Command::Config(c) => c.global.json,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon: scheduled backups of every configured tenant, /healthz and /metrics.
    Daemon(crate::tenant_cli::ConfigArgs),
    /// Back up, list and restore the configured tenants.
    Tenant(crate::tenant_cli::TenantArgs),
    /// Check a configuration file.
    Config(crate::tenant_cli::ConfigCmdArgs),
    /// Work with a backup repository directly (the engine).
    Repo(RepoArgs),
}

#[derive(Debug, Args)]
struct RepoArgs {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    cmd: RepoCmd,
}

#[derive(Debug, Args)]
struct Global {
    /// Repository location: a directory, `local:/dir`, or `s3:http(s)://host[:port]/bucket[/prefix]`
    /// (S3 credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, region from AWS_REGION).
    #[arg(long, env = "CONSERVATOR_REPO", global = true)]
    repo: Option<String>,
    /// File holding the passphrase (or set CONSERVATOR_PASSWORD).
    #[arg(long, env = "CONSERVATOR_PASSWORD_FILE", global = true)]
    password_file: Option<PathBuf>,
    /// Key file made by `repo key generate` (or set CONSERVATOR_KEY to its content).
    #[arg(long, env = "CONSERVATOR_KEY_FILE", global = true)]
    key_file: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars.
    #[arg(long, global = true)]
    no_progress: bool,
}

#[derive(Debug, Subcommand)]
enum RepoCmd {
    /// Create a repository.
    Init {
        /// Label of the first key.
        #[arg(long, default_value = "default")]
        label: String,
    },
    /// Back up directory trees and/or a command's output as a named stream.
    Backup {
        /// Paths to back up (made absolute).
        paths: Vec<PathBuf>,
        /// Store the standard output of the command after `--` as a stream with this name.
        #[arg(long)]
        stream: Option<String>,
        /// Tag (repeatable), e.g. `tenant=ca-1a2b3c4d`.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Host name to record.
        #[arg(long)]
        host: Option<String>,
        /// Parent snapshot id (default: newest with the same paths and tags).
        #[arg(long)]
        parent: Option<String>,
        /// Read every file even when unchanged since the parent.
        #[arg(long)]
        force: bool,
        /// Wait this many seconds for a conflicting lock.
        #[arg(long, default_value_t = 60)]
        lock_wait: u64,
        /// The stream's command.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// List snapshots.
    Snapshots {
        /// Only snapshots with this tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
    },
    /// Restore a snapshot (`ID`, `ID:/sub/path` or `latest`) to a directory, or a stream to stdout.
    Restore {
        /// Snapshot.
        snapshot: String,
        /// Target directory (paths are restored under it by their full path).
        #[arg(long)]
        target: Option<PathBuf>,
        /// Only this absolute path of the snapshot.
        #[arg(long)]
        path: Option<String>,
        /// Write this stream to stdout instead.
        #[arg(long)]
        stream: Option<String>,
        /// Packs fetched in parallel.
        #[arg(long, default_value_t = 4)]
        parallel: usize,
    },
    /// Check the repository; with --read-data, decrypt and verify every pack.
    Check {
        #[arg(long)]
        read_data: bool,
    },
    /// Remove snapshots by a retention policy (shown as a plan with --dry-run).
    Forget {
        #[arg(long, default_value_t = 0)]
        keep_last: u32,
        #[arg(long, default_value_t = 0)]
        keep_hourly: u32,
        #[arg(long, default_value_t = 0)]
        keep_daily: u32,
        #[arg(long, default_value_t = 0)]
        keep_weekly: u32,
        #[arg(long, default_value_t = 0)]
        keep_monthly: u32,
        #[arg(long, default_value_t = 0)]
        keep_yearly: u32,
        /// Only snapshots with this tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Show the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Prune afterwards.
        #[arg(long)]
        prune: bool,
        /// With --prune: repack a pack once this share (%) of it is unused.
        #[arg(long, default_value_t = conservator_backup::prune::REPACK_UNUSED_PERCENT)]
        repack_unused: u64,
    },
    /// Delete unreferenced data, repacking partly used packs.
    Prune {
        /// Show the plan, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Repack a pack once this share (%) of it is unused (0: any unused byte).
        #[arg(long, default_value_t = conservator_backup::prune::REPACK_UNUSED_PERCENT)]
        repack_unused: u64,
    },
    /// Manage the keys that open the repository.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
    },
    /// Repository statistics.
    Stats,
    /// Remove stale locks (of dead processes, or not refreshed for 30 min); --all removes every lock.
    Unlock {
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCmd {
    /// List keys.
    List,
    /// Add a key: a passphrase from --new-password-file or CONSERVATOR_NEW_PASSWORD, or a key file.
    Add {
        #[arg(long, default_value = "added")]
        label: String,
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
    /// Remove a key by id (prefix). Removing the last key needs --shred and destroys the repository.
    Remove {
        id: String,
        /// Allow removing the last key: every backup in the repository becomes unreadable, forever.
        #[arg(long)]
        shred: bool,
    },
    /// Print a new random key file to stdout.
    Generate,
}

fn read_secret_file(p: &PathBuf, what: &str) -> Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("read {what} {}", p.display()))
}

fn secret(g: &Global) -> Result<Secret> {
    if let Some(p) = &g.key_file {
        return Ok(Secret::parse_key_file(&read_secret_file(p, "key file")?)?);
    }
    if let Ok(k) = std::env::var("CONSERVATOR_KEY") {
        return Ok(Secret::parse_key_file(&k).context("parse CONSERVATOR_KEY")?);
    }
    if let Some(p) = &g.password_file {
        let s = read_secret_file(p, "password file")?;
        return Ok(Secret::Passphrase(s.trim_end_matches(['\n', '\r']).to_string()));
    }
    if let Ok(s) = std::env::var("CONSERVATOR_PASSWORD") {
        return Ok(Secret::Passphrase(s));
    }
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let s = rpassword::prompt_password("repository passphrase: ")?;
        return Ok(Secret::Passphrase(s));
    }
    bail!(
        "no repository secret given: set CONSERVATOR_PASSWORD or CONSERVATOR_PASSWORD_FILE (a passphrase), \
         or CONSERVATOR_KEY / --key-file (a key file from `conservator repo key generate`)"
    )
}

fn store(g: &Global) -> Result<conservator_store::DynStore> {
    let loc = g.repo.as_deref().context("no repository given: pass --repo or set CONSERVATOR_REPO")?;
    Ok(conservator_store::open(loc)?)
}

async fn open(g: &Global) -> Result<Arc<Repository>> {
    let s = store(g)?;
    let sec = secret(g)?;
    Ok(Arc::new(Repository::open(s, &sec).await?))
}

fn cancel_on_ctrl_c() -> CancellationToken {
    let t = CancellationToken::new();
    let t2 = t.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("interrupted: stopping cleanly (packs written so far are kept for the next run)");
            t2.cancel();
        }
    });
    t
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

/// Run a command; returns the exit code.
pub async fn run(cli: Cli) -> Result<u8> {
    match cli.cmd {
        Command::Repo(r) => repo_cmd(r).await,
        Command::Daemon(g) => crate::tenant_cli::daemon_cmd(&g).await,
        Command::Tenant(t) => crate::tenant_cli::tenant_cmd(&t).await,
        Command::Config(c) => crate::tenant_cli::config_cmd(&c).await,
    }
}

async fn repo_cmd(r: RepoArgs) -> Result<u8> {
    let g = &r.global;
    let progress_on = !g.no_progress && !g.json;
    match r.cmd {
        RepoCmd::Init { label } => {
            let loc = g.repo.as_deref().context("no repository given: pass --repo or set CONSERVATOR_REPO")?;
            let s = conservator_store::open_creating(loc).await?;
            let sec = secret(g)?;
            let repo = Repository::init(s, &sec, &KeyOptions { label, ..Default::default() }).await?;
            if g.json {
                print_json(&json!({ "repository": repo.store.describe(), "id": repo.config.id, "key_id": repo.key_id }));
            } else {
                println!("created repository {} at {}", repo.config.id.short(), repo.store.describe());
                println!("keep the passphrase or key file safe: without it the backups cannot be read");
            }
            Ok(0)
        }
        RepoCmd::Backup { paths, stream, tags, host, parent, force, lock_wait, command } => {
            let repo = open(g).await?;
            let mut abs = Vec::new();
            for p in paths {
                let a = if p.is_absolute() { p } else { std::env::current_dir()?.join(p) };
                abs.push(a);
            }
            let mut streams = Vec::new();
            match (stream, command.is_empty()) {
                (Some(name), false) => streams.push(StreamSource { name, command, ..Default::default() }),
                (Some(_), true) => bail!("--stream needs a command after `--`, e.g. --stream db.sql -- mariadb-dump ..."),
                (None, false) => bail!("a command after `--` needs --stream NAME"),
                (None, true) => {}
            }
            let parent = match parent {
                Some(p) => Some(repo.find_snapshot(&p).await?.0),
                None => None,
            };
            let opts = BackupOptions {
                paths: abs,
                streams,
                tags,
                hostname: host.unwrap_or_else(local_hostname),
                parent,
                force,
                lock_wait: Duration::from_secs(lock_wait),
                meta: Default::default(),
            };
            let progress = Arc::new(Progress::default());
            let bar = Bar::bytes(&progress, "backup", progress_on);
            let cancel = cancel_on_ctrl_c();
            let res = conservator_backup::backup::backup(repo, opts, progress, &cancel).await;
            drop(bar);
            let res = res?;
            let s = &res.snapshot;
            if g.json {
                print_json(&json!({
                    "snapshot_id": res.id,
                    "complete": s.complete,
                    "parent": s.parent,
                    "summary": s.summary,
                    "warnings": s.warnings,
                    "streams": s.streams.iter().map(|st| json!({"name": st.name, "size": st.size, "complete": st.complete, "exit_code": st.exit_code, "stderr_tail": st.stderr_tail})).collect::<Vec<_>>(),
                }));
            } else {
                let m = &s.summary;
                println!(
                    "files: {} new, {} changed, {} unchanged; {} dirs",
                    m.files_new, m.files_changed, m.files_unchanged, m.dirs
                );
                println!(
                    "processed {} (read {}), added {} ({} stored) in {:.1}s",
                    human(m.total_bytes),
                    human(m.bytes_read),
                    human(m.bytes_added),
                    human(m.bytes_stored),
                    m.duration_secs
                );
                for st in &s.streams {
                    println!("stream {}: {} , exit {:?}, {}", st.name, human(st.size), st.exit_code, if st.complete { "complete" } else { "INCOMPLETE" });
                }
                println!("snapshot {} saved{}", res.id, if s.complete { "" } else { " as INCOMPLETE (not a restore point)" });
            }
            if !s.complete {
                for w in &s.warnings {
                    eprintln!("warning: {w}");
                }
                for st in s.streams.iter().filter(|st| !st.complete) {
                    eprintln!("stream {} failed; its command said:\n{}", st.name, st.stderr_tail.trim_end());
                }
                return Ok(3);
            }
            Ok(0)
        }
        RepoCmd::Snapshots { tags } => {
            let repo = open(g).await?;
            let snaps: Vec<_> = repo.snapshots().await?.into_iter().filter(|(_, s)| tags.iter().all(|t| s.tags.contains(t))).collect();
            if g.json {
                let v: Vec<_> = snaps
                    .iter()
                    .map(|(id, s)| {
                        json!({"id": id, "time": s.time, "hostname": s.hostname, "tags": s.tags, "paths": s.paths,
                            "streams": s.streams.iter().map(|st| json!({"name": st.name, "size": st.size, "complete": st.complete})).collect::<Vec<_>>(),
                            "complete": s.complete, "parent": s.parent, "summary": s.summary})
                    })
                    .collect();
                print_json(&json!(v));
            } else {
                println!("{:<8}  {:<19}  {:<12}  {:>10}  {:<10}  paths / streams", "id", "time (UTC)", "host", "size", "state");
                for (id, s) in &snaps {
                    let mut what: Vec<String> = s.paths.clone();
                    what.extend(s.streams.iter().map(|st| format!("stream:{}", st.name)));
                    println!(
                        "{:<8}  {:<19}  {:<12}  {:>10}  {:<10}  {}",
                        id.short(),
                        s.time.format("%Y-%m-%d %H:%M:%S"),
                        s.hostname,
                        human(s.summary.total_bytes),
                        if s.complete { "complete" } else { "INCOMPLETE" },
                        what.join(" ")
                    );
                }
                println!("{} snapshot(s)", snaps.len());
            }
            Ok(0)
        }
        RepoCmd::Restore { snapshot, target, path, stream, parallel } => {
            let repo = open(g).await?;
            let (spec, sub) = match snapshot.split_once(':') {
                Some((a, b)) => (a.to_string(), Some(b.to_string())),
                None => (snapshot.clone(), path),
            };
            let (id, snap) = repo.find_snapshot(&spec).await?;
            let progress = Arc::new(Progress::default());
            let cancel = cancel_on_ctrl_c();
            if let Some(name) = stream {
                let bar = Bar::bytes(&progress, "restore", progress_on);
                let mut out = std::io::stdout();
                let n = conservator_backup::restore::restore_stream(repo, &snap, &name, &mut out, progress, &cancel).await?;
                drop(bar);
                eprintln!("restored stream {name} ({}) of snapshot {}", human(n), id.short());
                return Ok(0);
            }
            let target = target.context("give --target DIR (or --stream NAME to write a stream to stdout)")?;
            let bar = Bar::bytes(&progress, "restore", progress_on);
            let opts = RestoreOptions { target: target.clone(), subpath: sub, parallel, subpath_at_target: false };
            let res = conservator_backup::restore::restore(repo, &snap, &opts, progress, &cancel).await;
            drop(bar);
            let s = res?;
            if g.json {
                print_json(&json!({"snapshot_id": id, "target": target, "summary": s}));
            } else {
                println!(
                    "restored snapshot {} to {}: {} files ({} unchanged), {} dirs, {} symlinks; wrote {} of {} in {:.1}s",
                    id.short(),
                    target.display(),
                    s.files,
                    s.files_unchanged,
                    s.dirs,
                    s.symlinks,
                    human(s.bytes_written),
                    human(s.total_bytes),
                    s.duration_secs
                );
                if s.files_changed_during_backup > 0 {
                    eprintln!("warning: {} file(s) changed while they were backed up; their content may be inconsistent", s.files_changed_during_backup);
                }
            }
            Ok(0)
        }
        RepoCmd::Check { read_data } => {
            let repo = open(g).await?;
            let progress = Arc::new(Progress::default());
            let bar = Bar::bytes(&progress, "check", progress_on && read_data);
            let cancel = cancel_on_ctrl_c();
            let rep = conservator_backup::check::check(repo, read_data, progress, &cancel).await;
            drop(bar);
            let rep = rep?;
            if g.json {
                print_json(&json!(rep));
            } else {
                for w in &rep.warnings {
                    println!("warning: {w}");
                }
                for e in &rep.errors {
                    println!("error: {}: {}", e.object, e.detail);
                    for a in &e.affects {
                        println!("  affects {a}");
                    }
                    if e.affects_more > 0 {
                        println!("  ... and {} more", e.affects_more);
                    }
                }
                println!(
                    "checked {} snapshot(s), {} pack(s), {} blob(s){}: {}",
                    rep.snapshots,
                    rep.packs,
                    rep.blobs,
                    if read_data { format!(", read {} ({} packs)", human(rep.bytes_read), rep.packs_read) } else { String::new() },
                    if rep.ok() { "no errors".to_string() } else { format!("{} ERROR(S)", rep.errors.len()) }
                );
            }
            if !rep.ok() {
                bail!("the repository has {} error(s); see above", rep.errors.len());
            }
            Ok(0)
        }
        RepoCmd::Forget { keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, tags, dry_run, prune, repack_unused } => {
            let repo = open(g).await?;
            let policy = RetentionPolicy { keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly };
            let plan = conservator_backup::prune::forget(&repo, &policy, &tags, dry_run).await?;
            if g.json {
                print_json(&json!({"dry_run": dry_run, "decisions": plan.decisions}));
            } else {
                for d in &plan.decisions {
                    println!(
                        "{} {}  {}  {}",
                        if d.keep { "keep  " } else { "remove" },
                        d.id.short(),
                        d.time.format("%Y-%m-%d %H:%M:%S"),
                        d.reasons.join(", ")
                    );
                }
                println!(
                    "{}: keep {}, remove {}",
                    if dry_run { "plan (dry run, nothing changed)" } else { "done" },
                    plan.keep().len(),
                    plan.remove().len()
                );
            }
            if prune && !dry_run {
                let progress = Arc::new(Progress::default());
                let cancel = cancel_on_ctrl_c();
                let p = conservator_backup::prune::prune(repo, false, repack_unused, progress, &cancel).await?;
                if !g.json {
                    print_prune(&p, false);
                }
            }
            Ok(0)
        }
        RepoCmd::Prune { dry_run, repack_unused } => {
            let repo = open(g).await?;
            let progress = Arc::new(Progress::default());
            let cancel = cancel_on_ctrl_c();
            let p = conservator_backup::prune::prune(repo, dry_run, repack_unused, progress, &cancel).await?;
            if g.json {
                print_json(&json!({"dry_run": dry_run, "plan": p}));
            } else {
                print_prune(&p, dry_run);
            }
            Ok(0)
        }
        RepoCmd::Key { cmd } => key_cmd(g, cmd).await,
        RepoCmd::Stats => {
            let repo = open(g).await?;
            let index = conservator_backup::index::MasterIndex::load(&repo, false).await?;
            let snaps = repo.snapshots().await?;
            let stored: u64 = index.packs().iter().map(|p| p.size).sum();
            let raw: u64 = index.blobs().map(|(_, l)| l.raw_len as u64).sum();
            let logical: u64 = snaps.iter().map(|(_, s)| s.summary.total_bytes).sum();
            let v = json!({
                "repository": repo.store.describe(),
                "snapshots": snaps.len(),
                "packs": index.packs().len(),
                "blobs": index.blob_count(),
                "stored_bytes": stored,
                "unique_raw_bytes": raw,
                "logical_bytes_all_snapshots": logical,
                "compression_ratio": if stored > 0 { raw as f64 / stored as f64 } else { 0.0 },
                "dedup_ratio": if raw > 0 { logical as f64 / raw as f64 } else { 0.0 },
            });
            if g.json {
                print_json(&v);
            } else {
                println!("repository      {}", repo.store.describe());
                println!("snapshots       {}", snaps.len());
                println!("packs           {} ({})", index.packs().len(), human(stored));
                println!("blobs           {} ({} uncompressed)", index.blob_count(), human(raw));
                println!("all snapshots   {} logical", human(logical));
                println!("dedup x compr.  {:.2}x", if stored > 0 { logical as f64 / stored as f64 } else { 0.0 });
            }
            Ok(0)
        }
        RepoCmd::Unlock { all } => {
            let s = store(g)?;
            let n = conservator_backup::lock::unlock(&s, all).await?;
            if g.json {
                print_json(&json!({"removed": n}));
            } else {
                println!("removed {n} lock(s)");
            }
            Ok(0)
        }
    }
}

fn print_prune(p: &conservator_backup::prune::PrunePlan, dry_run: bool) {
    println!(
        "{}: {} snapshot(s) use {} blob(s); keep {} pack(s), delete {} ({}), repack {} ({} of it still used), remove {} unindexed ({})",
        if dry_run { "prune plan (dry run, nothing changed)" } else { "pruned" },
        p.snapshots,
        p.blobs_used,
        p.packs_keep,
        p.packs_delete.len(),
        human(p.bytes_delete),
        p.packs_repack.len(),
        human(p.bytes_repack_used),
        p.packs_unindexed.len(),
        human(p.bytes_unindexed)
    );
    println!("stored: {} -> {}", human(p.bytes_before + p.bytes_unindexed), human(p.bytes_after));
}

async fn key_cmd(g: &Global, cmd: KeyCmd) -> Result<u8> {
    match cmd {
        KeyCmd::Generate => {
            print!("{}", Secret::generate_key_file());
            Ok(0)
        }
        KeyCmd::List => {
            let repo = open(g).await?;
            let keys = repo.list_keys().await?;
            if g.json {
                print_json(&json!(keys));
            } else {
                for k in keys {
                    println!("{} {:<12} {:<16} {} {}", &k.id[..8], k.kind, k.label, k.created, if k.current { "(current)" } else { "" });
                }
            }
            Ok(0)
        }
        KeyCmd::Add { label, new_password_file, new_key_file } => {
            let repo = open(g).await?;
            let new = if let Some(p) = new_key_file {
                Secret::parse_key_file(&read_secret_file(&p, "key file")?)?
            } else if let Some(p) = new_password_file {
                Secret::Passphrase(read_secret_file(&p, "password file")?.trim_end_matches(['\n', '\r']).to_string())
            } else if let Ok(s) = std::env::var("CONSERVATOR_NEW_PASSWORD") {
                Secret::Passphrase(s)
            } else {
                bail!("give the new key: --new-password-file, --new-key-file or CONSERVATOR_NEW_PASSWORD")
            };
            let id = repo.add_key(&new, &KeyOptions { label, ..Default::default() }).await?;
            if g.json {
                print_json(&json!({"key_id": id}));
            } else {
                println!("added key {}", &id[..8]);
            }
            Ok(0)
        }
        KeyCmd::Remove { id, shred } => {
            let repo = open(g).await?;
            repo.remove_key(&id, shred).await?;
            if g.json {
                print_json(&json!({"removed": id}));
            } else {
                println!("removed key {id}");
            }
            Ok(0)
        }
    }
}
