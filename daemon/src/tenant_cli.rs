//! `conservator daemon`, `conservator tenant …` and `conservator config check`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, anyhow, bail};
use clap::{Args, Subcommand};
use conservator_backup::{CancellationToken, Progress};
use serde_json::json;

use crate::catalog::{Catalog, Status};
use crate::config::{self, Config};
use crate::output::{Bar, human};
use crate::tenant::{self, TenantRestoreOptions};

/// Options every config-driven command takes.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(long, env = "CONSERVATOR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

/// `conservator tenant …`.
#[derive(Debug, Args)]
pub struct TenantArgs {
    #[command(flatten)]
    pub global: ConfigArgs,
    #[command(subcommand)]
    pub cmd: TenantCmd,
}

/// Tenant commands.
#[derive(Debug, Subcommand)]
pub enum TenantCmd {
    /// List the configured tenants and their last backup.
    List,
    /// Back a tenant up now (database dump + media), as the scheduler would.
    Backup {
        /// Tenant id, e.g. ca-1a2b3c4d.
        tenant: String,
    },
    /// List a tenant's snapshots.
    Snapshots {
        /// Tenant id.
        tenant: String,
    },
    /// The catalog's record of runs (all tenants, or one).
    Runs {
        /// Tenant id.
        tenant: Option<String>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Restore a tenant from a snapshot into a new database and media directory (default),
    /// or in place over the live ones (--in-place, confirmed).
    Restore {
        /// Tenant id.
        tenant: String,
        /// Snapshot id (prefix) or `latest`.
        #[arg(long, default_value = "latest")]
        snapshot: String,
        /// Database to create (default `<schema>_restore_<snapshot>`).
        #[arg(long)]
        database: Option<String>,
        /// Media directory to create (default `<media>.restore-<snapshot>`).
        #[arg(long)]
        media_dir: Option<PathBuf>,
        /// Overwrite the live database and media (a safety backup is taken first).
        #[arg(long, conflicts_with_all = ["database", "media_dir"])]
        in_place: bool,
        /// Confirm --in-place without a prompt: give the tenant id again.
        #[arg(long, value_name = "TENANT")]
        confirm: Option<String>,
    },
}

/// `conservator config …`.
#[derive(Debug, Args)]
pub struct ConfigCmdArgs {
    #[command(flatten)]
    pub global: ConfigArgs,
    #[command(subcommand)]
    pub cmd: ConfigCmd,
}

/// Config commands.
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate the file and check every tenant's database, media and the repository, listing every problem.
    Check,
}

fn load(g: &ConfigArgs) -> Result<Config> {
    let path = g.config.as_ref().ok_or_else(|| anyhow!("no configuration given: pass --config FILE or set CONSERVATOR_CONFIG"))?;
    config::load_file(path).map_err(|p| anyhow!("{}", p.to_string().trim_end()))
}

/// Load for the daemon and `config check`: when the file has problems, the start-time checks
/// that can run on it anyway are added, so one run lists every problem.
async fn load_checked(g: &ConfigArgs) -> Result<Config> {
    let path = g.config.as_ref().ok_or_else(|| anyhow!("no configuration given: pass --config FILE or set CONSERVATOR_CONFIG"))?;
    match config::load_file(path) {
        Ok(c) => Ok(c),
        Err(mut p) => {
            if let Ok(text) = std::fs::read_to_string(path) {
                p.0.extend(tenant::preflight_raw(&text).await);
            }
            Err(anyhow!("{}", p.to_string().trim_end()))
        }
    }
}

async fn catalog(cfg: &Config) -> Result<Catalog> {
    Catalog::open(&cfg.daemon.catalog_url()).await
}

fn tenant_of<'a>(cfg: &'a Config, id: &str) -> Result<&'a config::TenantConfig> {
    cfg.tenant(id).ok_or_else(|| {
        let ids: Vec<&str> = cfg.tenants.iter().map(|t| t.id.as_str()).collect();
        anyhow!("no tenant {id:?} in the configuration (tenants: {})", ids.join(", "))
    })
}

fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

fn cancel_on_ctrl_c() -> CancellationToken {
    let t = CancellationToken::new();
    let t2 = t.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            t2.cancel();
        }
    });
    t
}

/// `conservator daemon --config FILE`.
pub async fn daemon_cmd(g: &ConfigArgs) -> Result<u8> {
    let cfg = load_checked(g).await?;
    let problems = tenant::preflight(&cfg).await;
    if !problems.is_empty() {
        bail!(
            "{} problem(s) stop the daemon:\n{}",
            problems.len(),
            problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
        );
    }
    let catalog = catalog(&cfg).await?;
    crate::daemon::run(cfg, catalog).await?;
    Ok(0)
}

/// `conservator config check`.
pub async fn config_cmd(a: &ConfigCmdArgs) -> Result<u8> {
    match a.cmd {
        ConfigCmd::Check => {
            let cfg = load_checked(&a.global).await?;
            let problems = tenant::preflight(&cfg).await;
            if a.global.json {
                print_json(&json!({"ok": problems.is_empty(), "tenants": cfg.tenants.len(), "problems": problems}));
            } else if problems.is_empty() {
                println!("configuration ok: {} tenant(s), every database, media directory and the repository reachable", cfg.tenants.len());
            } else {
                for p in &problems {
                    println!("problem: {p}");
                }
            }
            if problems.is_empty() { Ok(0) } else { bail!("{} problem(s) found", problems.len()) }
        }
    }
}

/// `conservator tenant …`.
pub async fn tenant_cmd(a: &TenantArgs) -> Result<u8> {
    let g = &a.global;
    let cfg = load(g)?;
    let progress_on = !g.no_progress && !g.json;
    match &a.cmd {
        TenantCmd::List => {
            let cat = catalog(&cfg).await?;
            let mut out = Vec::new();
            for t in &cfg.tenants {
                let last = cat.last_success(&t.id).await?;
                out.push(json!({
                    "tenant": t.id, "plan": t.plan.to_string(), "schedule": t.schedule.text,
                    "database": t.database.schema, "media": t.media,
                    "last_success": last.as_ref().map(|r| r.started_at.to_rfc3339()),
                    "last_snapshot": last.as_ref().and_then(|r| r.facts.snapshot_id.clone()),
                }));
            }
            if g.json {
                print_json(&serde_json::Value::Array(out));
            } else {
                for t in out {
                    println!(
                        "{:<22} {:<10} {:<14} last success {}",
                        t["tenant"].as_str().unwrap_or(""),
                        t["plan"].as_str().unwrap_or(""),
                        t["schedule"].as_str().unwrap_or(""),
                        t["last_success"].as_str().unwrap_or("never")
                    );
                }
            }
            Ok(0)
        }
        TenantCmd::Backup { tenant } => {
            let t = tenant_of(&cfg, tenant)?;
            let cat = catalog(&cfg).await?;
            let progress = Arc::new(Progress::default());
            let bar = Bar::bytes(&progress, "backup", progress_on);
            let rep = tenant::backup(&cfg, t, &cat, "manual", progress, &cancel_on_ctrl_c()).await?;
            drop(bar);
            if g.json {
                print_json(&serde_json::to_value(&rep)?);
            } else if rep.status == Status::Succeeded {
                println!(
                    "tenant {}: snapshot {} ({} of database and media, {} new, {} stored) in {:.1}s; GTID {}",
                    rep.tenant,
                    &rep.facts.snapshot_id.as_deref().unwrap_or("")[..8],
                    human(rep.facts.logical_bytes.unwrap_or(0)),
                    human(rep.facts.bytes_added.unwrap_or(0)),
                    human(rep.facts.bytes_stored.unwrap_or(0)),
                    rep.duration_secs,
                    rep.facts.gtid.as_deref().unwrap_or("-")
                );
            }
            match rep.status {
                Status::Succeeded => Ok(0),
                _ => {
                    let e = rep.error.unwrap_or_default();
                    eprintln!("error: tenant {}: backup failed: {e}", rep.tenant);
                    Ok(if rep.facts.snapshot_id.is_some() { 3 } else { 1 })
                }
            }
        }
        TenantCmd::Snapshots { tenant } => {
            let t = tenant_of(&cfg, tenant)?;
            let snaps = tenant::snapshots(&cfg, t).await?;
            if g.json {
                let v: Vec<_> = snaps
                    .iter()
                    .map(|(id, s)| {
                        json!({"id": id, "time": s.time, "complete": s.complete, "meta": s.meta,
                               "streams": s.streams.iter().map(|x| json!({"name": x.name, "size": x.size, "complete": x.complete, "meta": x.meta, "incomplete_reason": x.incomplete_reason})).collect::<Vec<_>>(),
                               "total_bytes": s.summary.total_bytes})
                    })
                    .collect();
                print_json(&serde_json::Value::Array(v));
            } else {
                for (id, s) in &snaps {
                    println!(
                        "{}  {}  {:>10}  {}  {}",
                        &id[..8],
                        s.time.format("%Y-%m-%d %H:%M:%S"),
                        human(s.summary.total_bytes),
                        if s.complete { "complete  " } else { "INCOMPLETE" },
                        s.streams.first().and_then(|x| x.meta.get("gtid")).map(|g| format!("gtid {g}")).unwrap_or_default()
                    );
                }
            }
            Ok(0)
        }
        TenantCmd::Runs { tenant, limit } => {
            let cat = catalog(&cfg).await?;
            let runs = cat.runs(tenant.as_deref(), *limit).await?;
            if g.json {
                print_json(&serde_json::to_value(&runs)?);
            } else {
                for r in runs {
                    println!(
                        "{:>5} {} {:<18} {:<8} {:<11} {:>7.1}s {}",
                        r.id,
                        r.started_at.format("%Y-%m-%d %H:%M:%S"),
                        r.tenant,
                        r.kind,
                        format!("{:?}", r.status).to_lowercase(),
                        r.duration_secs.unwrap_or(0.0),
                        r.error.as_deref().map(|e| e.lines().next().unwrap_or("")).unwrap_or("")
                    );
                }
            }
            Ok(0)
        }
        TenantCmd::Restore { tenant, snapshot, database, media_dir, in_place, confirm } => {
            let t = tenant_of(&cfg, tenant)?;
            if *in_place {
                let ok = match confirm {
                    Some(c) => c == &t.id,
                    None if std::io::stdin().is_terminal() => {
                        eprint!(
                            "This overwrites the live database {} and media {} of tenant {} (a safety backup is taken first).\n\
                             Type the tenant id to go on: ",
                            t.database.schema,
                            t.media.display(),
                            t.id
                        );
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line)?;
                        line.trim() == t.id
                    }
                    None => false,
                };
                if !ok {
                    bail!(
                        "restoring in place overwrites tenant {}'s live data: confirm with --confirm {} (or answer the prompt)",
                        t.id,
                        t.id
                    );
                }
            }
            let cat = catalog(&cfg).await?;
            let opts = TenantRestoreOptions { snapshot: snapshot.clone(), database: database.clone(), media_dir: media_dir.clone(), in_place: *in_place };
            let progress = Arc::new(Progress::default());
            let bar = Bar::bytes(&progress, "restore", progress_on);
            let rep = tenant::restore(&cfg, t, &cat, &opts, progress, &cancel_on_ctrl_c()).await;
            drop(bar);
            let rep = rep?;
            if g.json {
                print_json(&serde_json::to_value(&rep)?);
            } else {
                println!(
                    "restored tenant {} from snapshot {} ({}) in {:.1}s:\n  database {} ({} of SQL)\n  media    {} ({} files, {})",
                    rep.tenant,
                    &rep.snapshot_id[..8],
                    rep.snapshot_time,
                    rep.duration_secs,
                    rep.database,
                    human(rep.db_bytes),
                    rep.media_dir.display(),
                    rep.media_files,
                    human(rep.media_bytes)
                );
                if let Some(d) = &rep.extra_paths_dir {
                    println!("  config   under {}", d.display());
                }
                if rep.renamed.references_rewritten + rep.renamed.definers_rewritten > 0 {
                    println!(
                        "  renamed  {} statement(s) naming the old database, {} DEFINER clause(s) set to CURRENT_USER",
                        rep.renamed.references_rewritten, rep.renamed.definers_rewritten
                    );
                }
                if let Some(p) = &rep.previous_media {
                    println!("  the live media as it was is kept at {} (delete it once satisfied)", p.display());
                }
                if let Some(s) = &rep.safety_snapshot {
                    println!("  the live state before the restore is snapshot {}", &s[..8]);
                }
            }
            Ok(0)
        }
    }
}
