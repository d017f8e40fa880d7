//! Daemon mode: the scheduler, `/healthz` and `/metrics`, and shutdown.
//!
//! One scheduler task computes each tenant's next run from its cron schedule (UTC), adds
//! up to `jitter_secs` of random delay, and starts the backup when a slot of the
//! `max_concurrent_backups` semaphore is free. A tenant never runs twice at once: a run
//! that comes due while the previous one still runs is skipped and counted. On SIGTERM or
//! SIGINT intake stops, running backups get `shutdown_grace_secs` to finish, then they are
//! cancelled (the engine stops at a safe point; the catalog row says `cancelled`), and the
//! process exits. A run cut off harder than that (SIGKILL) is marked `interrupted` at the
//! next start; the repository needs nothing (see ARCHITECTURE.md, crash safety).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use chrono::Utc;
use conservator_backup::{CancellationToken, Progress};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use rand::Rng;
use tokio::sync::Semaphore;

use crate::catalog::{Catalog, Status};
use crate::config::{Config, TenantConfig};
use crate::tenant;

/// The daemon's metrics, registered in one registry.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    last_success: GaugeVec,
    last_duration: GaugeVec,
    last_logical: GaugeVec,
    last_added: GaugeVec,
    last_stored: GaugeVec,
    runs: IntCounterVec,
    failures: IntCounterVec,
    skipped: IntCounterVec,
    running: IntGauge,
    tenants: IntGauge,
}

impl Metrics {
    /// Register every metric.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let g = |name: &str, help: &str| {
            let v = GaugeVec::new(Opts::new(name, help), &["tenant"]).expect("valid metric");
            registry.register(Box::new(v.clone())).expect("unique metric");
            v
        };
        let c = |name: &str, help: &str, labels: &[&str]| {
            let v = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(v.clone())).expect("unique metric");
            v
        };
        let last_success = g("conservator_backup_last_success_timestamp_seconds", "Unix time of the tenant's last successful backup.");
        let last_duration = g("conservator_backup_last_duration_seconds", "Wall time of the tenant's last backup run, whatever its outcome.");
        let last_logical = g("conservator_backup_last_logical_bytes", "Bytes of the tenant's last successful restore point (dump + media).");
        let last_added = g("conservator_backup_last_added_bytes", "New bytes the tenant's last successful backup added, before compression.");
        let last_stored = g("conservator_backup_last_stored_bytes", "Bytes the tenant's last successful backup stored (compressed, encrypted).");
        let runs = c("conservator_backup_runs_total", "Backup runs by outcome.", &["tenant", "status"]);
        let failures = c("conservator_backup_failures_total", "Backup runs that did not make a restore point.", &["tenant"]);
        let skipped = c("conservator_backup_skipped_total", "Scheduled runs skipped because the tenant's previous run was still going.", &["tenant"]);
        let running = IntGauge::new("conservator_backups_running", "Backups running now.").expect("valid metric");
        registry.register(Box::new(running.clone())).expect("unique metric");
        let tenants = IntGauge::new("conservator_tenants", "Tenants configured.").expect("valid metric");
        registry.register(Box::new(tenants.clone())).expect("unique metric");
        Metrics { registry, last_success, last_duration, last_logical, last_added, last_stored, runs, failures, skipped, running, tenants }
    }

    fn record(&self, r: &tenant::BackupReport) {
        let t = r.tenant.as_str();
        self.last_duration.with_label_values(&[t]).set(r.duration_secs);
        let status = match r.status {
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            _ => "interrupted",
        };
        self.runs.with_label_values(&[t, status]).inc();
        if r.status == Status::Succeeded {
            self.last_success.with_label_values(&[t]).set(Utc::now().timestamp() as f64);
            self.last_logical.with_label_values(&[t]).set(r.facts.logical_bytes.unwrap_or(0) as f64);
            self.last_added.with_label_values(&[t]).set(r.facts.bytes_added.unwrap_or(0) as f64);
            self.last_stored.with_label_values(&[t]).set(r.facts.bytes_stored.unwrap_or(0) as f64);
        } else if r.status == Status::Failed {
            self.failures.with_label_values(&[t]).inc();
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("utf-8 exposition")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    shutting_down: CancellationToken,
}

async fn healthz_handler(State(s): State<AppState>) -> impl IntoResponse {
    if s.shutting_down.is_cancelled() { (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n") } else { (StatusCode::OK, "ok\n") }
}

async fn metrics_handler(State(s): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render())
}

/// Removes a tenant from the running set when dropped.
struct Release {
    running: Arc<Mutex<HashMap<String, ()>>>,
    tenant: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        if let Ok(mut r) = self.running.lock() {
            r.remove(&self.tenant);
        }
    }
}

/// Run the daemon until SIGTERM/SIGINT.
pub async fn run(cfg: Config, catalog: Catalog) -> Result<()> {
    let cfg = Arc::new(cfg);
    let metrics = Metrics::new();
    metrics.tenants.set(cfg.tenants.len() as i64);
    // Seed the gauges from the catalog so a restart does not forget the last success.
    for t in &cfg.tenants {
        if let Some(r) = catalog.last_success(&t.id).await? {
            metrics.last_success.with_label_values(&[t.id.as_str()]).set(r.started_at.timestamp() as f64);
        }
    }
    let interrupted = catalog.recover_interrupted().await?;
    if interrupted > 0 {
        tracing::warn!(runs = interrupted, "runs cut off by the previous daemon were marked interrupted");
    }
    let shutdown = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(cfg.daemon.listen)
        .await
        .with_context(|| format!("listen on {}", cfg.daemon.listen))?;
    let app = Router::new()
        .route("/healthz", get(healthz_handler))
        .route("/metrics", get(metrics_handler))
        .with_state(AppState { metrics: metrics.clone(), shutting_down: shutdown.clone() });
    let http_stop = CancellationToken::new();
    let http_stop2 = http_stop.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, app).with_graceful_shutdown(async move { http_stop2.cancelled().await }).await
    });
    eprintln!(
        "conservator daemon: {} tenant(s), listening on http://{}/ (healthz, metrics)",
        cfg.tenants.len(),
        cfg.daemon.listen
    );

    // Signals.
    {
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("shutdown requested: no new backups start");
            shutdown.cancel();
        });
    }

    let slots = Arc::new(Semaphore::new(cfg.daemon.max_concurrent_backups));
    let work_cancel = CancellationToken::new();
    let running: Arc<Mutex<HashMap<String, ()>>> = Arc::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next: Vec<(chrono::DateTime<Utc>, usize)> =
        cfg.tenants.iter().enumerate().filter_map(|(i, t)| t.schedule.next_after(Utc::now()).map(|n| (n, i))).collect();
    loop {
        next.sort();
        let Some(&(when, i)) = next.first() else {
            shutdown.cancelled().await;
            break;
        };
        let wait = (when - Utc::now()).to_std().unwrap_or(Duration::ZERO);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                if let Err(e) = done {
                    tracing::error!(error = %e, "a backup task panicked; its catalog row is marked interrupted at the next start");
                }
                continue;
            }
        }
        let t: TenantConfig = cfg.tenants[i].clone();
        next[0].0 = t.schedule.next_after(when.max(Utc::now())).unwrap_or(when + chrono::Duration::days(3650));
        if running.lock().expect("running set").contains_key(&t.id) {
            tracing::warn!(tenant = %t.id, "the previous backup still runs: this scheduled run is skipped");
            metrics.skipped.with_label_values(&[t.id.as_str()]).inc();
            continue;
        }
        running.lock().expect("running set").insert(t.id.clone(), ());
        let jitter = if cfg.daemon.jitter_secs > 0 { rand::thread_rng().gen_range(0..=cfg.daemon.jitter_secs * 1000) } else { 0 };
        let (cfg2, catalog2, metrics2, slots2, running2, cancel2, shutdown2) =
            (cfg.clone(), catalog.clone(), metrics.clone(), slots.clone(), running.clone(), work_cancel.clone(), shutdown.clone());
        tasks.spawn(async move {
            // Whatever ends this task (a panic included), the tenant is free again.
            let _free = Release { running: running2, tenant: t.id.clone() };
            let go = async {
                tokio::time::sleep(Duration::from_millis(jitter)).await;
                slots2.acquire_owned().await.expect("semaphore open")
            };
            let permit = tokio::select! {
                p = go => Some(p),
                _ = shutdown2.cancelled() => None,
            };
            if let Some(_permit) = permit {
                metrics2.running.inc();
                let r = tenant::backup(&cfg2, &t, &catalog2, "schedule", Arc::new(Progress::default()), &cancel2).await;
                metrics2.running.dec();
                match r {
                    Ok(rep) => metrics2.record(&rep),
                    Err(e) => tracing::error!(tenant = %t.id, error = %format!("{e:#}"), "recording the backup failed"),
                }
            }
        });
    }

    // Drain: let running backups finish within the grace period, then cancel them.
    let grace = Duration::from_secs(cfg.daemon.shutdown_grace_secs);
    let n = tasks.len();
    if n > 0 {
        eprintln!("conservator daemon: shutting down; waiting up to {grace:?} for {n} running backup(s)");
    }
    let drained = tokio::time::timeout(grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let names: Vec<String> = running.lock().expect("running set").keys().cloned().collect();
        eprintln!("conservator daemon: grace period over; cancelling {}", names.join(", "));
        work_cancel.cancel();
        if tokio::time::timeout(Duration::from_secs(60), async { while tasks.join_next().await.is_some() {} }).await.is_err() {
            tasks.abort_all();
        }
    }
    http_stop.cancel();
    let _ = http.await;
    eprintln!("conservator daemon: stopped");
    Ok(())
}
