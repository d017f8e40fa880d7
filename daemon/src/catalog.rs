//! The catalog: what the daemon did, per tenant (SQLite through sqlx by default).
//!
//! One row per run (backup or restore): its status, sizes, duration, the database
//! coordinates of the dump and the error text when it failed. A run is inserted as
//! `running` before any work starts and finished exactly once; a row still `running` when
//! the daemon starts was cut off (crash, SIGKILL, deadline) and is marked `interrupted`.
//! Schema changes go through [`MIGRATIONS`], tracked by SQLite's `user_version`.

use std::str::FromStr;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// Schema versions, in order; entry `i` moves `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &["
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant          TEXT    NOT NULL,
    kind            TEXT    NOT NULL,   -- backup | restore
    trigger_kind    TEXT    NOT NULL,   -- schedule | manual
    status          TEXT    NOT NULL,   -- running | succeeded | failed | cancelled | interrupted
    started_at      TEXT    NOT NULL,   -- RFC 3339, UTC
    finished_at     TEXT,
    duration_secs   REAL,
    snapshot_id     TEXT,
    logical_bytes   INTEGER,
    bytes_added     INTEGER,
    bytes_stored    INTEGER,
    db_bytes        INTEGER,
    media_bytes     INTEGER,
    gtid            TEXT,
    binlog_file     TEXT,
    binlog_pos      INTEGER,
    schema_revision INTEGER,
    snapshots_forgotten INTEGER,
    error           TEXT
);
CREATE INDEX runs_by_tenant ON runs (tenant, started_at);
", "
ALTER TABLE runs ADD COLUMN retention_error TEXT;
"];

/// A run's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In progress.
    Running,
    /// Done, a restore point was made (backup) or the tenant was restored.
    Succeeded,
    /// Done, and it did not work; `error` says why.
    Failed,
    /// Stopped on request (shutdown deadline).
    Cancelled,
    /// Found running at start-up: the daemon died under it.
    Interrupted,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Interrupted => "interrupted",
        }
    }
    fn parse(s: &str) -> Status {
        match s {
            "running" => Status::Running,
            "succeeded" => Status::Succeeded,
            "failed" => Status::Failed,
            "cancelled" => Status::Cancelled,
            _ => Status::Interrupted,
        }
    }
}

/// What a finished backup run records.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunFacts {
    /// The snapshot written (also for a failed, incomplete one).
    pub snapshot_id: Option<String>,
    /// Bytes of the restore point (dump + media).
    pub logical_bytes: Option<u64>,
    /// New bytes this run added (before compression).
    pub bytes_added: Option<u64>,
    /// Bytes it stored (after compression and encryption).
    pub bytes_stored: Option<u64>,
    /// The dump's size.
    pub db_bytes: Option<u64>,
    /// The media's size.
    pub media_bytes: Option<u64>,
    /// GTID at the dump's consistent point.
    pub gtid: Option<String>,
    /// Binlog file at that point.
    pub binlog_file: Option<String>,
    /// Binlog position at that point.
    pub binlog_pos: Option<u64>,
    /// `MAX(version_num)` of `ca_schema_updates`.
    pub schema_revision: Option<i64>,
    /// Snapshots removed by retention after the run.
    pub snapshots_forgotten: Option<u64>,
    /// Why retention could not be applied after a backup that succeeded (retried next run).
    pub retention_error: Option<String>,
}

/// One row.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Row id.
    pub id: i64,
    /// Tenant.
    pub tenant: String,
    /// `backup` or `restore`.
    pub kind: String,
    /// `schedule` or `manual`.
    pub trigger: String,
    /// Status.
    pub status: Status,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time.
    pub duration_secs: Option<f64>,
    /// Facts.
    #[serde(flatten)]
    pub facts: RunFacts,
    /// Why it failed.
    pub error: Option<String>,
}

/// The catalog handle (cheap to clone).
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: SqlitePool,
}

impl Catalog {
    /// Open (creating the file and its directory when missing) and migrate.
    pub async fn open(url: &str) -> Result<Catalog> {
        if let Some(path) = url.strip_prefix("sqlite://").filter(|p| !p.starts_with(':')) {
            if let Some(dir) = std::path::Path::new(path).parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("create the catalog directory {}", dir.display()))?;
            }
        }
        let opts = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("catalog URL {url:?}"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(10));
        // Switching a new file to WAL needs a moment of exclusive access, which SQLite's busy
        // timeout does not wait for: several processes creating the catalog at once retry.
        let mut attempt = 0;
        let pool = loop {
            match SqlitePoolOptions::new().max_connections(4).connect_with(opts.clone()).await {
                Ok(p) => break p,
                Err(e) if attempt < 20 && e.to_string().contains("database is locked") => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(25 * attempt)).await;
                }
                Err(e) => return Err(anyhow::Error::from(e).context(format!("open the catalog {url}"))),
            }
        };
        let c = Catalog { pool };
        c.migrate().await?;
        Ok(c)
    }

    /// Bring the schema to the newest version. Several processes may open a new catalog at
    /// once (the daemon and a `tenant runs` beside it): the version is read and the migrations
    /// applied inside one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock first,
    /// so exactly one of them migrates and the others see the result.
    async fn migrate(&self) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await.context("lock the catalog for migration")?;
        let r = migrate_locked(&mut conn).await;
        let end = if r.is_ok() { "COMMIT" } else { "ROLLBACK" };
        sqlx::raw_sql(end).execute(&mut *conn).await?;
        r
    }

    /// Mark runs left `running` by a daemon that died as `interrupted`; returns how many.
    pub async fn recover_interrupted(&self) -> Result<u64> {
        let r = sqlx::query(
            "UPDATE runs SET status = 'interrupted', finished_at = ?1, \
             error = COALESCE(error, 'the daemon stopped while this run was in progress') WHERE status = 'running'",
        )
        .bind(Utc::now().to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    /// Record that a run starts; returns its id.
    pub async fn start(&self, tenant: &str, kind: &str, trigger: &str) -> Result<i64> {
        let r = sqlx::query("INSERT INTO runs (tenant, kind, trigger_kind, status, started_at) VALUES (?1, ?2, ?3, 'running', ?4)")
            .bind(tenant)
            .bind(kind)
            .bind(trigger)
            .bind(Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(r.last_insert_rowid())
    }

    /// Record how a run ended (once: a finished run is never changed again). A run marked
    /// `interrupted` by a daemon that started while it was still going (a CLI run beside the
    /// daemon) gets its real outcome.
    pub async fn finish(&self, id: i64, status: Status, facts: &RunFacts, error: Option<&str>, duration_secs: f64) -> Result<()> {
        let n = |v: Option<u64>| v.map(|x| x as i64);
        sqlx::query(
            "UPDATE runs SET status = ?2, finished_at = ?3, duration_secs = ?4, snapshot_id = ?5, logical_bytes = ?6, \
             bytes_added = ?7, bytes_stored = ?8, db_bytes = ?9, media_bytes = ?10, gtid = ?11, binlog_file = ?12, \
             binlog_pos = ?13, schema_revision = ?14, snapshots_forgotten = ?15, error = ?16, retention_error = ?17 \
             WHERE id = ?1 AND status IN ('running', 'interrupted')",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(Utc::now().to_rfc3339())
        .bind(duration_secs)
        .bind(&facts.snapshot_id)
        .bind(n(facts.logical_bytes))
        .bind(n(facts.bytes_added))
        .bind(n(facts.bytes_stored))
        .bind(n(facts.db_bytes))
        .bind(n(facts.media_bytes))
        .bind(&facts.gtid)
        .bind(&facts.binlog_file)
        .bind(n(facts.binlog_pos))
        .bind(facts.schema_revision)
        .bind(n(facts.snapshots_forgotten))
        .bind(error)
        .bind(&facts.retention_error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Runs, newest first; of one tenant when given.
    pub async fn runs(&self, tenant: Option<&str>, limit: i64) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE (?1 IS NULL OR tenant = ?1) ORDER BY started_at DESC, id DESC LIMIT ?2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_run).collect()
    }

    /// The newest succeeded backup of each tenant.
    pub async fn last_success(&self, tenant: &str) -> Result<Option<Run>> {
        let row = sqlx::query(
            "SELECT * FROM runs WHERE tenant = ?1 AND kind = 'backup' AND status = 'succeeded' ORDER BY started_at DESC, id DESC LIMIT 1",
        )
        .bind(tenant)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_run).transpose()
    }
}

async fn migrate_locked(conn: &mut sqlx::SqliteConnection) -> Result<()> {
    let v: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *conn).await?;
    if v as usize > MIGRATIONS.len() {
        anyhow::bail!(
            "the catalog has schema version {v}, newer than this conservator knows ({}): upgrade conservator",
            MIGRATIONS.len()
        );
    }
    for (i, m) in MIGRATIONS.iter().enumerate().skip(v as usize) {
        sqlx::raw_sql(m).execute(&mut *conn).await.with_context(|| format!("catalog migration {}", i + 1))?;
        sqlx::raw_sql(&format!("PRAGMA user_version = {}", i + 1)).execute(&mut *conn).await?;
    }
    Ok(())
}

fn row_to_run(r: &sqlx::sqlite::SqliteRow) -> Result<Run> {
    let t = |s: Option<String>| s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|d| d.to_utc());
    let u = |v: Option<i64>| v.map(|x| x as u64);
    Ok(Run {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        kind: r.try_get("kind")?,
        trigger: r.try_get("trigger_kind")?,
        status: Status::parse(&r.try_get::<String, _>("status")?),
        started_at: t(r.try_get("started_at")?).unwrap_or_default(),
        finished_at: t(r.try_get("finished_at")?),
        duration_secs: r.try_get("duration_secs")?,
        facts: RunFacts {
            snapshot_id: r.try_get("snapshot_id")?,
            logical_bytes: u(r.try_get("logical_bytes")?),
            bytes_added: u(r.try_get("bytes_added")?),
            bytes_stored: u(r.try_get("bytes_stored")?),
            db_bytes: u(r.try_get("db_bytes")?),
            media_bytes: u(r.try_get("media_bytes")?),
            gtid: r.try_get("gtid")?,
            binlog_file: r.try_get("binlog_file")?,
            binlog_pos: u(r.try_get("binlog_pos")?),
            schema_revision: r.try_get("schema_revision")?,
            snapshots_forgotten: u(r.try_get("snapshots_forgotten")?),
            retention_error: r.try_get("retention_error")?,
        },
        error: r.try_get("error")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn many_processes_opening_a_new_catalog_at_once_all_succeed() {
        for round in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let url = format!("sqlite://{}/catalog.db", dir.path().display());
            // Each opener on a thread and runtime of its own, as separate processes would be.
            let opens: Vec<_> = (0..6)
                .map(|_| {
                    let url = url.clone();
                    std::thread::spawn(move || {
                        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                        rt.block_on(async { Catalog::open(&url).await.map(|c| drop(c)) })
                    })
                })
                .collect();
            for h in opens {
                h.join().unwrap().unwrap_or_else(|e| panic!("round {round}: {e:#}"));
            }
            let cats = [Catalog::open(&url).await.unwrap(), Catalog::open(&url).await.unwrap()];
            let id = cats[0].start("ca-1a2b3c4d", "backup", "manual").await.unwrap();
            assert_eq!(cats[1].runs(None, 10).await.unwrap()[0].id, id);
        }
    }

    #[tokio::test]
    async fn runs_round_trip_and_interrupted_ones_are_recovered() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sub/catalog.db", dir.path().display());
        let c = Catalog::open(&url).await.unwrap();
        let a = c.start("ca-1a2b3c4d", "backup", "schedule").await.unwrap();
        let facts = RunFacts { snapshot_id: Some("ab12".into()), logical_bytes: Some(1000), gtid: Some("0-1-42".into()), schema_revision: Some(212), ..Default::default() };
        c.finish(a, Status::Succeeded, &facts, None, 1.5).await.unwrap();
        // finishing twice changes nothing
        c.finish(a, Status::Failed, &RunFacts::default(), Some("late"), 9.0).await.unwrap();
        let b = c.start("ca-1a2b3c4d", "backup", "manual").await.unwrap();
        let _other = c.start("ca-00ff00ff", "backup", "manual").await.unwrap();
        drop(c);
        // a new daemon: the two running rows were cut off
        let c = Catalog::open(&url).await.unwrap();
        assert_eq!(c.recover_interrupted().await.unwrap(), 2);
        let runs = c.runs(Some("ca-1a2b3c4d"), 10).await.unwrap();
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].id, b);
        assert_eq!(runs[0].status, Status::Interrupted);
        assert_eq!(runs[1].status, Status::Succeeded);
        assert_eq!(runs[1].facts.gtid.as_deref(), Some("0-1-42"));
        assert_eq!(runs[1].facts.schema_revision, Some(212));
        assert_eq!(runs[1].error, None);
        let last = c.last_success("ca-1a2b3c4d").await.unwrap().unwrap();
        assert_eq!(last.id, a);
        assert!(c.last_success("ca-00ff00ff").await.unwrap().is_none());
    }
}
